//! The QEMU test harness: real boots of Ember's minimal initramfs (root only).
//!
//! - [`kernel`]: the kernel to boot, from `qemu-tests/get-kernel.sh` (an unpacked package named
//!   by `EMBER_QEMU_KERNEL_DIR`, the cache, the installed Debian kernel, or Debian's
//!   linux-image-amd64 fetched with `apt-get download` and cached);
//! - [`ember_binary`] and [`initramfs`]: the static release binary and the image
//!   `initramfs/build.sh` makes of it, built once per test run;
//! - [`TestRoot`]: an ext4 image of a small root filesystem whose `/sbin/init`
//!   (`qemu-tests/test-init.sh`, busybox) prints the machine's state to the console and powers
//!   off;
//! - [`Vm`] / [`Boot`]: one QEMU (TCG) boot with virtio disks, the fw_cfg config and user
//!   networking; the serial console is read until QEMU exits or a timeout kills it; boots run
//!   one at a time;
//! - [`HostDisk`]: a disk image looked at from the host after the boot (a loop device, the
//!   partitions added with BLKPG since the host kernel parses no partition tables, mounts);
//! - [`Timings`]: kernel start → Ember → switch_root and Ember's CPU time, from the console.
//!
//! [`vm_or_skip`] decides whether a test can boot at all: without qemu-system-x86_64 or a
//! kernel the test prints why and passes, unless `EMBER_QEMU_REQUIRED=1` (CI) makes that a
//! failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ember::system::blockdev::{self, NotifyOptions};
use ember::system::gpt;
use ember::system::loopdev::{LoopDevice, LoopOptions};
use ember::system::mounts::MountGuard;

use crate::harness::{require_root, TempDir};

/// How long one boot may take before QEMU is killed (TCG on a busy 2-core machine; a boot
/// takes 10–30 s).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The test root's init (also used by `scripts/qemu-demo.sh`).
pub const TEST_INIT: &str = include_str!("test-init.sh");

/// The config of scenario 1 and of the demo.
pub const DEMO_CONFIG: &str = "examples/qemu-demo.ign";

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kernel arguments of most test boots: the qemu platform, the root by label, and no wait
/// after a failure: the machine reboots at once and QEMU (`-no-reboot`) exits.
pub const APPEND: &str = "ignition.platform.id=qemu root=LABEL=root ember.failure_timeout=0";

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// Where built images are kept during a run (`<target>/qemu-tests`).
fn work_dir() -> PathBuf {
    let d = target_dir().join("qemu-tests");
    std::fs::create_dir_all(&d).expect("creating target/qemu-tests");
    d
}

// ---------------------------------------------------------------------------------------------
// Kernel, binary, initramfs

/// A kernel and its module directory.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    pub image: PathBuf,
    pub moddir: PathBuf,
}

/// The kernel to boot (see `qemu-tests/get-kernel.sh`), or why there is none.  Asked once.
pub fn kernel() -> Result<Kernel, String> {
    static K: OnceLock<Result<Kernel, String>> = OnceLock::new();
    K.get_or_init(|| {
        let script = repo().join("qemu-tests/get-kernel.sh");
        let o = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        if !o.status.success() {
            return Err(if err.is_empty() {
                format!("{} failed", script.display())
            } else {
                err
            });
        }
        let out = String::from_utf8_lossy(&o.stdout);
        let mut w = out.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some(v), Some(img), Some(m)) => Ok(Kernel {
                version: v.to_string(),
                image: PathBuf::from(img),
                moddir: PathBuf::from(m),
            }),
            _ => Err(format!("get-kernel.sh printed {out:?}")),
        }
    })
    .clone()
}

/// The kernel (for tests that only need its modules), or `None` after printing why there is
/// none; a failure instead when `EMBER_QEMU_REQUIRED` is set.
pub fn kernel_or_skip(test: &str) -> Option<Kernel> {
    match kernel() {
        Ok(k) => Some(k),
        Err(e) => {
            assert!(!qemu_required(), "{test}: no kernel: {e}");
            eprintln!("{test}: SKIPPED (no kernel with modules here): {e}");
            None
        }
    }
}

fn qemu_required() -> bool {
    std::env::var("EMBER_QEMU_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The kernel when this machine can boot test VMs.  Otherwise prints why and returns `None`
/// (the test then passes without booting), or fails when `EMBER_QEMU_REQUIRED` is set.
pub fn vm_or_skip(test: &str) -> Option<Kernel> {
    require_root();
    let why = if !ember::stages::disks::devices::have_program("qemu-system-x86_64") {
        "qemu-system-x86_64 is not installed (package qemu-system-x86)".to_string()
    } else {
        match kernel() {
            Ok(k) => return Some(k),
            Err(e) => format!("no kernel to boot: {e}"),
        }
    };
    assert!(!qemu_required(), "{test}: cannot boot a VM: {why}");
    eprintln!("{test}: SKIPPED (no VM can be booted here): {why}");
    None
}

/// The static release binary: `EMBER_TEST_BINARY`, else `cargo build --release` (once).
pub fn ember_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("EMBER_TEST_BINARY").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let started = Instant::now();
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--release", "--bin", "ember", "--manifest-path"])
            .arg(repo().join("Cargo.toml"))
            .stdin(Stdio::null());
        // What `cargo test` sets for the test binary would make this build differ from a
        // plain `cargo build --release` (ring's build script watches CARGO_MANIFEST_DIR) and
        // rebuild everything each time.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_TARGET_TMPDIR",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || k == "LD_LIBRARY_PATH"
            {
                cmd.env_remove(k.as_ref());
            }
        }
        let o = cmd.output().expect("running cargo build --release");
        assert!(
            o.status.success(),
            "building the release binary failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bin = target_dir().join("x86_64-unknown-linux-gnu/release/ember");
        assert!(bin.exists(), "{} was not built", bin.display());
        eprintln!(
            "qemu-tests: release binary {} ({} bytes) ready in {:.1} s",
            bin.display(),
            std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0),
            started.elapsed().as_secs_f64()
        );
        bin
    })
    .clone()
}

/// Runs `initramfs/build.sh` for Ember and kernel `k` into `out`, with `extra` arguments.
pub fn build_initramfs(ember: &Path, k: &Kernel, out: &Path, extra: &[&str]) {
    let o = Command::new(repo().join("initramfs/build.sh"))
        .arg("--ember")
        .arg(ember)
        .args(["--kver", &k.version, "--moddir"])
        .arg(&k.moddir)
        .arg("-o")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running initramfs/build.sh");
    assert!(
        o.status.success(),
        "initramfs/build.sh failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The minimal initramfs for kernel `k` (no shell), built once per run.
pub fn initramfs(k: &Kernel) -> PathBuf {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let ember = ember_binary();
        // build.sh writes a temporary file and renames it: concurrent runs do not clash.
        let out = work_dir().join(format!("initramfs-{}.img", k.version));
        let started = Instant::now();
        build_initramfs(&ember, k, &out, &[]);
        eprintln!(
            "qemu-tests: {} ({} bytes) built in {:.1} s",
            out.display(),
            std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
            started.elapsed().as_secs_f64()
        );
        out
    })
    .clone()
}

/// The same with busybox (`build.sh --busybox`): a shell for the failure path.
pub fn initramfs_with_shell(k: &Kernel) -> PathBuf {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let out = work_dir().join(format!("initramfs-{}-busybox.img", k.version));
        build_initramfs(&ember_binary(), k, &out, &["--busybox"]);
        out
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// Images

/// A blank (sparse) disk image of `size_mib`.
pub fn blank_image(out: &Path, size_mib: u64) {
    let f = std::fs::File::create(out).expect("creating a disk image");
    f.set_len(size_mib << 20).expect("sizing a disk image");
}

/// The small root filesystem the tests pivot into: busybox, [`TEST_INIT`] as `/sbin/init`,
/// account files with root only, and the lists the init reads.
pub struct TestRoot {
    /// Files, directories and links the init shows (`/etc/ember-test/show`).
    pub show: Vec<String>,
    /// (label, fstype, directory) the init mounts read-only first (`/etc/ember-test/mounts`).
    pub mounts: Vec<(String, String, String)>,
}

impl TestRoot {
    pub fn new() -> TestRoot {
        TestRoot {
            show: Vec::new(),
            mounts: Vec::new(),
        }
    }

    pub fn show(mut self, paths: &[&str]) -> TestRoot {
        self.show.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    pub fn mount(mut self, label: &str, fstype: &str, dir: &str) -> TestRoot {
        self.mounts.push((label.into(), fstype.into(), dir.into()));
        self
    }

    /// Writes the tree under `dir/tree` and an ext4 image labelled `root` of it to `out`.
    pub fn build(&self, dir: &Path, out: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let t = dir.join("tree");
        let _ = std::fs::remove_dir_all(&t);
        for d in [
            "bin",
            "sbin",
            "etc/ember-test",
            "dev",
            "proc",
            "sys",
            "run",
            "tmp",
            "mnt",
            "home",
            "root",
            "var/lib",
            "srv",
        ] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", t.join("bin/busybox"))
            .expect("copying /bin/busybox (package busybox-static)");
        std::os::unix::fs::symlink("busybox", t.join("bin/sh")).unwrap();
        std::fs::write(t.join("sbin/init"), TEST_INIT).unwrap();
        std::fs::set_permissions(t.join("sbin/init"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let files = [
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\nusers:x:100:\n"),
            ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
            ("etc/gshadow", "root:*::\nusers:*::\n"),
        ];
        for (p, c) in files {
            std::fs::write(t.join(p), c).unwrap();
        }
        let mut show = self.show.join("\n");
        show.push('\n');
        std::fs::write(t.join("etc/ember-test/show"), show).unwrap();
        let mounts: String = self
            .mounts
            .iter()
            .map(|(l, f, d)| format!("{l} {f} {d}\n"))
            .collect();
        std::fs::write(t.join("etc/ember-test/mounts"), mounts).unwrap();
        let _ = std::fs::remove_file(out);
        crate::harness::tool(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-L",
                "root",
                "-d",
                &t.display().to_string(),
                &out.display().to_string(),
                "64M",
            ],
        );
    }
}

impl Default for TestRoot {
    fn default() -> Self {
        TestRoot::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Booting

/// One boot at a time: two TCG guests on two cores slow each other past every timeout.  Every
/// test that starts QEMU (here and in the disks tests' VM) holds it while the guest runs.
pub fn boot_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A QEMU machine to start.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: PathBuf,
    initrd: PathBuf,
    append: Vec<String>,
    args: Vec<String>,
    disks: usize,
    memory_mib: u32,
    /// False for a firmware boot (PXE): no `-kernel`, `-initrd` or `-append`.
    direct_kernel: bool,
}

impl Vm {
    /// q35 with TCG, the serial console on ttyS0, no display, no network unless asked, and
    /// `-no-reboot` (a reboot ends QEMU).
    pub fn new(k: &Kernel, initrd: &Path) -> Vm {
        Vm {
            kernel: k.image.clone(),
            initrd: initrd.to_owned(),
            append: vec!["console=ttyS0".into(), "panic=-1".into()],
            args: vec!["-device".into(), "virtio-rng-pci".into()],
            disks: 0,
            memory_mib: 1024,
            direct_kernel: true,
        }
    }

    /// Adds kernel command-line words.
    pub fn append(mut self, words: &str) -> Vm {
        self.append
            .extend(words.split_whitespace().map(String::from));
        self
    }

    /// A raw virtio disk; its serial gives `/dev/disk/by-id/virtio-<serial>`.
    pub fn disk(mut self, image: &Path, serial: &str) -> Vm {
        let id = format!("disk{}", self.disks);
        self.disks += 1;
        self.args.push("-drive".into());
        self.args.push(format!(
            "file={},if=none,id={id},format=raw",
            image.display()
        ));
        self.args.push("-device".into());
        self.args
            .push(format!("virtio-blk-pci,drive={id},serial={serial}"));
        self
    }

    /// The qemu platform's config: fw_cfg `opt/com.coreos/config`.
    pub fn fw_cfg_config(mut self, file: &Path) -> Vm {
        self.args.push("-fw_cfg".into());
        self.args.push(format!(
            "name=opt/com.coreos/config,file={}",
            file.display()
        ));
        self
    }

    /// User networking with a virtio NIC: the guest gets 10.0.2.15 by DHCP, the host's
    /// 127.0.0.1 is 10.0.2.2.  Without it the machine has no NIC.
    pub fn user_net(mut self) -> Vm {
        self.args.push("-nic".into());
        self.args.push("user,model=virtio-net-pci".into());
        self
    }

    /// The firmware boots the machine (from the network, say): no `-kernel`, `-initrd` or
    /// `-append`; the kernel, initramfs and command line are the boot loader's.
    pub fn firmware_boot(mut self) -> Vm {
        self.direct_kernel = false;
        self
    }

    /// Any other QEMU arguments.
    pub fn arg(mut self, a: &str) -> Vm {
        self.args.push(a.into());
        self
    }

    /// The QEMU command line; the serial console is QEMU's standard input and output.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m"])
            .arg(self.memory_mib.to_string())
            .args(["-display", "none", "-no-reboot", "-monitor", "none"])
            .args(["-serial", "stdio"]);
        if self.direct_kernel {
            cmd.arg("-kernel")
                .arg(&self.kernel)
                .arg("-initrd")
                .arg(&self.initrd)
                .arg("-append")
                .arg(self.append.join(" "));
        }
        cmd.args(&self.args);
        if !self.args.iter().any(|a| a == "-nic" || a == "-netdev") {
            cmd.args(["-nic", "none"]);
        }
        cmd
    }

    /// Boots and waits until QEMU exits (the guest powered off or rebooted) or `timeout`
    /// passes (QEMU is killed then).  The console is also saved in `dir`.
    pub fn boot(&self, dir: &TempDir, timeout: Duration) -> Boot {
        self.boot_typing(dir, timeout, &[])
    }

    /// [`Vm::boot`], typing on the serial console: each `(wait_for, text)` in turn, `text` is
    /// sent once the console shows `wait_for` (after where the previous one was seen).
    pub fn boot_typing(&self, dir: &TempDir, timeout: Duration, input: &[(&str, &str)]) -> Boot {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        static N: AtomicU32 = AtomicU32::new(0);
        let saved = dir
            .path()
            .join(format!("console-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let _one_at_a_time = boot_lock();
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("starting qemu-system-x86_64");
        let mut stdin = child.stdin.take();
        let console = Arc::new(Mutex::new(Vec::<u8>::new()));
        let reader = {
            let mut out = child.stdout.take().expect("qemu's stdout");
            let console = console.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut c) = console.lock() {
                        c.extend_from_slice(&buf[..n]);
                    }
                }
            })
        };
        let err_reader = {
            let mut err = child.stderr.take().expect("qemu's stderr");
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            })
        };
        let mut guard = KillOnDrop(Some(child));
        let deadline = started + timeout;
        let (mut next, mut from) = (0usize, 0usize);
        let exited = loop {
            if let Some((wait_for, text)) = input.get(next) {
                let seen = console.lock().map(|c| {
                    c[from..]
                        .windows(wait_for.len().max(1))
                        .position(|w| w == wait_for.as_bytes())
                        .map(|i| from + i + wait_for.len())
                });
                if let Ok(Some(end)) = seen {
                    if let Some(w) = stdin.as_mut() {
                        let _ = w.write_all(text.as_bytes()).and_then(|_| w.flush());
                    }
                    next += 1;
                    from = end;
                    continue;
                }
            }
            let c = guard.0.as_mut().expect("qemu is running");
            match c.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() >= deadline => break false,
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("waiting for qemu: {e}"),
            }
        };
        let mut child = guard.0.take().expect("qemu is running");
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        drop(stdin);
        let _ = reader.join();
        let qemu_stderr = err_reader.join().unwrap_or_default();
        let bytes = console.lock().map(|c| c.clone()).unwrap_or_default();
        let _ = std::fs::write(&saved, &bytes);
        Boot {
            console: String::from_utf8_lossy(&bytes).replace('\r', ""),
            qemu_stderr,
            exited,
            took: started.elapsed(),
        }
    }
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How a boot went.
#[derive(Debug)]
pub struct Boot {
    /// The serial console (`\r` removed).
    pub console: String,
    /// What QEMU itself printed on stderr.
    pub qemu_stderr: String,
    /// False when QEMU was killed at the timeout.
    pub exited: bool,
    /// Wall-clock time of the boot.
    pub took: Duration,
}

impl Boot {
    /// The console and QEMU's errors, for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "--- serial console ({:.1} s, {}) ---\n{}",
            self.took.as_secs_f64(),
            if self.exited {
                "QEMU exited"
            } else {
                "killed at the timeout"
            },
            self.console
        );
        if !self.qemu_stderr.trim().is_empty() {
            s.push_str("\n--- qemu stderr ---\n");
            s.push_str(&self.qemu_stderr);
        }
        s
    }

    /// The test init's lines, without their `EMBER-TEST ` prefix.
    pub fn facts(&self) -> Vec<&str> {
        self.console
            .lines()
            .filter_map(|l| l.strip_prefix("EMBER-TEST "))
            .collect()
    }

    /// Prints this boot's timings and appends them to `<target>/qemu-tests/timings.log`.
    pub fn record(&self, test: &str, what: &str) {
        use std::io::Write;
        let line = format!("{test} ({what}): {}", self.timings());
        eprintln!("{line}");
        let log = work_dir().join("timings.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// A failed boot: QEMU exited (the machine rebooted, `-no-reboot`) after Ember said the
    /// boot failed, and there was no switch to the new root.
    pub fn assert_failed_and_rebooted(&self) {
        let d = self.dump();
        assert!(
            self.exited,
            "the machine did not reboot after the failure\n{d}"
        );
        assert!(
            self.console
                .contains("ember: the boot failed (exit code 1)"),
            "{d}"
        );
        assert!(!self.console.contains("switching to the new root"), "{d}");
        assert!(!self.reached_test_init(), "{d}");
    }

    /// `/run/ember/boot.json` of the new root (what the test init showed), parsed.
    pub fn boot_json(&self) -> serde_json::Value {
        let text = self
            .file("/run/ember/boot.json")
            .unwrap_or_else(|| panic!("no /run/ember/boot.json in the new root\n{}", self.dump()));
        serde_json::from_str(&text).expect("boot.json is JSON")
    }

    /// A later boot of a provisioned root: Ember saw the stamp, ran no stage and switched.
    pub fn assert_second_boot(&self) {
        let d = self.dump();
        assert!(self.reached_test_init(), "second boot\n{d}");
        assert!(
            self.console.contains(
                "ember: not the first boot (the root filesystem has /etc/.ignition-result.json): no provisioning"
            ),
            "{d}"
        );
        assert!(
            !self.console.contains("ember: stage "),
            "a stage ran on the second boot\n{d}"
        );
    }

    /// Whether the test init ran to its end (the switch to the new root worked).
    pub fn reached_test_init(&self) -> bool {
        self.facts().contains(&"done")
    }

    /// The value of an `EMBER-TEST key=value` line.
    pub fn fact(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.facts()
            .into_iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// The contents of a file the test init showed (lines joined with `\n`), `None` when it
    /// was missing or not shown.
    pub fn file(&self, path: &str) -> Option<String> {
        let prefix = format!("cat {path}: ");
        let lines: Vec<&str> = self
            .facts()
            .into_iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        if lines.is_empty() {
            None
        } else {
            Some(lines.join("\n"))
        }
    }

    /// `mode uid:gid size` of a file the test init showed.
    pub fn stat(&self, path: &str) -> Option<&str> {
        let prefix = format!("stat {path}: ");
        self.facts()
            .into_iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// The names in a directory the test init listed.
    pub fn listing(&self, path: &str) -> Vec<&str> {
        let prefix = format!("ls {path}: ");
        self.facts()
            .into_iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    /// The target of a symlink the test init showed.
    pub fn link(&self, path: &str) -> Option<&str> {
        let prefix = format!("link {path} -> ");
        self.facts()
            .into_iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// (mount point, type, source) of every line of the new root's /proc/mounts.
    pub fn mounts(&self) -> Vec<(&str, &str, &str)> {
        self.facts()
            .into_iter()
            .filter_map(|l| {
                let mut w = l.strip_prefix("mount ")?.split(' ');
                Some((w.next()?, w.next()?, w.next()?))
            })
            .collect()
    }

    /// Ember's milestone lines (`[  2.345678] ember: ...`) as (seconds since boot, message).
    pub fn milestones(&self) -> Vec<(f64, &str)> {
        self.console
            .lines()
            .filter_map(|l| {
                let (t, msg) = l.strip_prefix('[')?.split_once(']')?;
                let msg = msg.trim_start().strip_prefix("ember: ")?;
                Some((t.trim().parse().ok()?, msg))
            })
            .collect()
    }

    /// The time of the first milestone that contains `needle`.
    pub fn milestone(&self, needle: &str) -> Option<f64> {
        self.milestones()
            .into_iter()
            .find(|(_, m)| m.contains(needle))
            .map(|(t, _)| t)
    }

    /// The boot's timings, as far as the console shows them.
    pub fn timings(&self) -> Timings {
        // "CPU time: Ember 1.2 s (user 0.1 s, system 1.1 s; ...), programs it ran 0.3 s"
        let cpu = self.milestones().into_iter().find_map(|(_, m)| {
            let rest = m.strip_prefix("CPU time: Ember ")?;
            let (ember, rest) = rest.split_once(" s ")?;
            let system = rest.split("system ").nth(1)?.split(" s").next()?;
            let programs = rest.split("programs it ran ").nth(1)?.strip_suffix(" s")?;
            Some((
                ember.parse().ok()?,
                system.parse().ok()?,
                programs.parse().ok()?,
            ))
        });
        Timings {
            ember_start: self.milestone("started as process 1"),
            switch_root: self.milestone("switching to the new root"),
            ember_cpu: cpu.map(|c: (f64, f64, f64)| c.0),
            ember_system_cpu: cpu.map(|c| c.1),
            programs_cpu: cpu.map(|c| c.2),
            test_init_uptime: self.fact("uptime").and_then(|u| u.parse().ok()),
            wall: self.took,
        }
    }
}

/// Where a boot's time went (seconds; kernel start is 0).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Kernel start → Ember's first line as process 1.
    pub ember_start: Option<f64>,
    /// Kernel start → Ember's exec of the new root's init.
    pub switch_root: Option<f64>,
    /// CPU time of Ember's own processes (user + system), from getrusage.
    pub ember_cpu: Option<f64>,
    /// The kernel's share of that (system time: module loading and device probing mostly).
    pub ember_system_cpu: Option<f64>,
    /// CPU time of the programs Ember ran (mkfs, ...).
    pub programs_cpu: Option<f64>,
    /// The new root's init's first look at /proc/uptime.
    pub test_init_uptime: Option<f64>,
    /// QEMU start → exit on the host.
    pub wall: Duration,
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.3} s"));
        let span = match (self.ember_start, self.switch_root) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        write!(
            f,
            "kernel start → Ember start {}, Ember start → switch_root {}, Ember CPU {} \
             (system {}), programs it ran {}, new init at {}, wall {:.1} s",
            s(self.ember_start),
            s(span),
            s(self.ember_cpu),
            s(self.ember_system_cpu),
            s(self.programs_cpu),
            s(self.test_init_uptime),
            self.wall.as_secs_f64()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Looking at images from the host

/// A disk image on a loop device, with its GPT partitions known to the (partition-table
/// blind) host kernel through BLKPG.  Dropping it unmounts and detaches.
pub struct HostDisk {
    mounts: Vec<MountGuard>,
    dirs: Vec<TempDir>,
    lo: LoopDevice,
    partitions: Vec<u32>,
}

impl HostDisk {
    /// Attaches `image` read-only and adds the partitions its GPT has (if any).
    pub fn open(image: &Path) -> HostDisk {
        let lo = LoopDevice::attach(
            image,
            &LoopOptions {
                read_only: true,
                ..LoopOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("attaching {}: {e}", image.display()));
        let table = gpt::read_device(lo.path())
            .unwrap_or_else(|e| panic!("reading the GPT of {}: {e}", image.display()));
        let mut partitions = Vec::new();
        if let Some(t) = table {
            let extents = t.kernel_extents();
            partitions = extents.iter().map(|e| e.number).collect();
            let opts = NotifyOptions {
                reread: false,
                ..NotifyOptions::default()
            };
            blockdev::notify_kernel(lo.path(), &extents, &opts)
                .unwrap_or_else(|e| panic!("adding the partitions of {}: {e}", image.display()));
        }
        HostDisk {
            mounts: Vec::new(),
            dirs: Vec::new(),
            lo,
            partitions,
        }
    }

    /// The partition numbers of the GPT.
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// The node of partition `n` (`None`: the whole disk).
    pub fn node(&self, n: Option<u32>) -> PathBuf {
        match n {
            Some(n) => PathBuf::from(format!("{}p{n}", self.lo.path().display())),
            None => self.lo.path().to_owned(),
        }
    }

    /// Mounts partition `n` (or the whole disk) read-only and returns where.
    pub fn mount(&mut self, n: Option<u32>, fstype: &str) -> PathBuf {
        let dir = TempDir::new("hostdisk");
        let node = self.node(n);
        let opts: &[&str] = if fstype == "xfs" {
            &["ro", "norecovery"]
        } else {
            &["ro"]
        };
        let g = MountGuard::mount(&node, dir.path(), fstype, opts)
            .unwrap_or_else(|e| panic!("mounting {} ({fstype}): {e}", node.display()));
        let p = dir.path().to_owned();
        self.mounts.push(g);
        self.dirs.push(dir);
        p
    }
}

/// The result file Ember leaves in the root filesystem image `root`
/// (`/etc/.ignition-result.json`), read from the host.
pub fn result_file(root: &Path) -> String {
    let mut d = HostDisk::open(root);
    let m = d.mount(None, "ext4");
    std::fs::read_to_string(m.join("etc/.ignition-result.json"))
        .unwrap_or_else(|e| panic!("reading etc/.ignition-result.json of the root image: {e}"))
}

impl Drop for HostDisk {
    fn drop(&mut self) {
        // Unmount before the directories go and the loop device is detached.
        self.mounts.clear();
        self.dirs.clear();
    }
}

/// The `blkid` view of a node: (TYPE, LABEL).
pub fn blkid(node: &Path) -> (String, String) {
    let v = |tag: &str| {
        Command::new("blkid")
            .args(["-p", "-o", "value", "-s", tag])
            .arg(node)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    (v("TYPE"), v("LABEL"))
}

#[test]
fn boot_timings_go_to_the_cargo_target_dir() {
    if std::env::var_os("EMBER_TEST_RECORD_CHILD").is_some() {
        let boot = Boot {
            console: String::new(),
            qemu_stderr: String::new(),
            exited: true,
            took: Duration::ZERO,
        };
        return boot.record("child", "no boot");
    }
    // A child of this test binary, with its own CARGO_TARGET_DIR (this process's environment
    // is shared by the tests running beside it).
    let target = TempDir::new("target-dir");
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "qemu_harness::boot_timings_go_to_the_cargo_target_dir",
            "--test-threads=1",
        ])
        .env("CARGO_TARGET_DIR", target.path())
        .env("EMBER_TEST_RECORD_CHILD", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = std::fs::read_to_string(target.path().join("qemu-tests/timings.log"))
        .unwrap_or_else(|e| panic!("timings.log in CARGO_TARGET_DIR: {e}"));
    assert!(log.starts_with("child (no boot): "), "{log}");
}
