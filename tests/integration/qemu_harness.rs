//! Reusable pieces for tests that boot Ember's minimal initramfs under QEMU (root only):
//!
//! - [`kernel`]: the kernel to boot (`EMBER_TEST_KVER`, else the newest `/boot/vmlinuz-*` that
//!   has `/lib/modules/<version>/modules.dep`);
//! - [`release_ember`]: the release binary (`EMBER_TEST_BINARY`, else `cargo build --release`);
//! - [`build_initramfs`]: runs `initramfs/build.sh`;
//! - [`ext4_image`]: a disk image made with `mkfs.ext4 -d` from a directory tree;
//! - [`Vm`] / [`Running`]: a QEMU (TCG) launch with disks, fw_cfg config and user networking,
//!   whose serial console is read with bounded waits; QEMU is killed on timeout and on drop.
//!
//! Everything is created under a caller's [`TempDir`], so nothing outlives the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TempDir;

/// How long one boot may take before QEMU is killed (TCG on a loaded 2-core machine).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// A kernel and its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    pub image: PathBuf,
    pub moddir: PathBuf,
}

/// The kernel to boot, or why there is none.
pub fn kernel() -> Result<Kernel, String> {
    let have = |v: &str| {
        Path::new("/boot").join(format!("vmlinuz-{v}")).exists()
            && Path::new("/lib/modules").join(v).join("modules.dep").exists()
    };
    let version = match std::env::var("EMBER_TEST_KVER") {
        Ok(v) if !v.is_empty() => {
            if !have(&v) {
                return Err(format!(
                    "EMBER_TEST_KVER={v}: no /boot/vmlinuz-{v} with /lib/modules/{v}/modules.dep"
                ));
            }
            v
        }
        _ => {
            let mut versions: Vec<String> = std::fs::read_dir("/boot")
                .map_err(|e| format!("reading /boot: {e}"))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("vmlinuz-")
                        .map(str::to_string)
                })
                .filter(|v| have(v))
                .collect();
            versions.sort();
            versions.pop().ok_or(
                "no kernel with modules in /boot and /lib/modules (install linux-image-amd64)",
            )?
        }
    };
    Ok(Kernel {
        image: PathBuf::from(format!("/boot/vmlinuz-{version}")),
        moddir: PathBuf::from(format!("/lib/modules/{version}")),
        version,
    })
}

/// Fails the test unless QEMU, a kernel and the build tools are there; returns the kernel.
pub fn require_vm() -> Kernel {
    crate::harness::require_root();
    for tool in ["qemu-system-x86_64", "cpio", "zstd", "mkfs.ext4"] {
        assert!(
            ember::stages::disks::devices::have_program(tool),
            "{tool} is not installed (see scripts/install-deps.sh)"
        );
    }
    kernel().unwrap_or_else(|e| panic!("cannot boot a VM: {e}"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The release binary: `EMBER_TEST_BINARY`, else built (or found up to date) with cargo.
pub fn release_ember() -> PathBuf {
    if let Some(p) = std::env::var_os("EMBER_TEST_BINARY").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = ember::system::command::Command::new(cargo)
        .args(["build", "--release", "--bin", "ember", "--manifest-path"])
        .arg(repo().join("Cargo.toml"))
        .timeout(Duration::from_secs(1800))
        .run();
    if let Err(e) = out {
        panic!("building the release binary: {e}");
    }
    let bin = repo().join("target/x86_64-unknown-linux-gnu/release/ember");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// Builds an initramfs with `initramfs/build.sh` into `out`; `extra` are more arguments
/// (`--busybox`, `--module NAME`, ...).
pub fn build_initramfs(ember: &Path, k: &Kernel, out: &Path, extra: &[&str]) {
    let o = Command::new(repo().join("initramfs/build.sh"))
        .arg("--ember")
        .arg(ember)
        .args(["--kver", &k.version, "--moddir"])
        .arg(&k.moddir)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .expect("running initramfs/build.sh");
    assert!(
        o.status.success(),
        "initramfs/build.sh failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An ext4 image of `size_mib` labelled `label` holding the tree at `tree`.
pub fn ext4_image(tree: &Path, label: &str, size_mib: u64, out: &Path) {
    let _ = std::fs::remove_file(out);
    crate::harness::tool(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            label,
            "-d",
            &tree.display().to_string(),
            &out.display().to_string(),
            &format!("{size_mib}M"),
        ],
    );
}

/// A blank (sparse) disk image.
pub fn blank_image(out: &Path, size_mib: u64) {
    let f = std::fs::File::create(out).unwrap();
    f.set_len(size_mib << 20).unwrap();
}

/// A QEMU machine to start.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: PathBuf,
    initrd: PathBuf,
    append: Vec<String>,
    args: Vec<String>,
    memory_mib: u32,
}

impl Vm {
    /// q35 with TCG, serial console, no display, `-no-reboot` (a reboot ends QEMU).
    pub fn new(k: &Kernel, initrd: &Path) -> Vm {
        Vm {
            kernel: k.image.clone(),
            initrd: initrd.to_owned(),
            append: vec!["console=ttyS0".into(), "panic=-1".into()],
            args: vec!["-device".into(), "virtio-rng-pci".into()],
            memory_mib: 1024,
        }
    }

    /// Adds kernel command-line words.
    pub fn append(mut self, words: &str) -> Vm {
        self.append
            .extend(words.split_whitespace().map(String::from));
        self
    }

    /// A raw virtio disk whose serial gives `/dev/disk/by-id/virtio-<serial>`.
    pub fn disk(mut self, image: &Path, serial: &str) -> Vm {
        let id = format!("d{}", self.args.len());
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

    /// The config for the qemu platform (fw_cfg `opt/com.coreos/config`).
    pub fn fw_cfg_config(mut self, file: &Path) -> Vm {
        self.args.push("-fw_cfg".into());
        self.args.push(format!(
            "name=opt/com.coreos/config,file={}",
            file.display()
        ));
        self
    }

    /// User networking with a virtio NIC: the guest is 10.0.2.15, the host's 127.0.0.1 is
    /// 10.0.2.2, DNS is 10.0.2.3.
    pub fn user_net(mut self) -> Vm {
        self.args.push("-nic".into());
        self.args.push("user,model=virtio-net-pci".into());
        self
    }

    /// Any other QEMU arguments.
    pub fn arg(mut self, a: &str) -> Vm {
        self.args.push(a.into());
        self
    }

    /// Starts QEMU; the console goes to `<dir>/console-<n>.log`.
    pub fn start(&self, dir: &TempDir) -> Running {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let console = dir
            .path()
            .join(format!("console-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35,accel=tcg", "-m"])
            .arg(self.memory_mib.to_string())
            .args(["-display", "none", "-no-reboot", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(self.append.join(" "))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("starting qemu-system-x86_64");
        Running {
            child: Some(child),
            console,
            started: Instant::now(),
        }
    }
}

/// A running QEMU.
pub struct Running {
    child: Option<Child>,
    console: PathBuf,
    started: Instant,
}

/// How a boot ended.
#[derive(Debug)]
pub struct Finished {
    /// The serial console, `\r` removed.
    pub console: String,
    /// False when QEMU was killed at the timeout.
    pub exited: bool,
    pub took: Duration,
}

impl Running {
    /// The console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console)
            .unwrap_or_default()
            .replace('\r', "")
    }

    /// Waits until QEMU exits (the guest powered off or rebooted), at most `timeout`; kills it
    /// then.  QEMU's own errors are appended to the console text.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => panic!("waiting for qemu: {e}"),
            }
        };
        let mut console = self.console();
        if let Some(mut err) = child.stderr.take() {
            use std::io::Read;
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            if !s.trim().is_empty() {
                console.push_str("\n[qemu stderr] ");
                console.push_str(&s);
            }
        }
        Finished {
            console,
            exited,
            took: self.started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The milestone lines Ember prints (`[   2.345678] ember: ...`) as (seconds since boot,
/// message), for timings.
pub fn milestones(console: &str) -> Vec<(f64, String)> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (t, msg) = rest.split_once(']')?;
            let msg = msg.trim_start().strip_prefix("ember: ")?;
            Some((t.trim().parse().ok()?, msg.to_string()))
        })
        .collect()
}

/// The kernel's timestamp of the first line containing `needle`.
pub fn kernel_time(console: &str, needle: &str) -> Option<f64> {
    console.lines().find(|l| l.contains(needle)).and_then(|l| {
        let rest = l.strip_prefix('[')?;
        rest.split_once(']')?.0.trim().parse().ok()
    })
}
