//! The work process of the boot: modules, the first-boot decision, Ignition's stages in
//! process, and the root filesystem on `/sysroot`.  Exit code 0 means "ready to switch".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cmdline::{root_device, RootError};
use super::{say, BootArgs, BOOT_STATUS, MODULE_LIST, STAMP, SYSROOT};
use crate::logging::chain;
use crate::providers::cmdline::redact_url;
use crate::stages::disks::devices::{have_program, Resolver, WaitError};
use crate::stages::engine::{self, Options, Outcome};
use crate::stages::report::{self, Report};
use crate::stages::{Mode, Settings, Stage};
use crate::system::command::Command;
use crate::system::{kmod, mounts, net, pid1, probe, rootfs};

/// How long a missing root device is waited for before deciding that it does not exist yet
/// (and so that this is the first boot, whose config creates it).
pub const ROOT_PROBE_WAIT: Duration = Duration::from_secs(5);

/// How many kernel modules are loaded at once (see `kmod::ModuleDb::coldplug`).
const MODULE_THREADS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the kernel command line has no ignition.platform.id")]
    NoPlatform,
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("waiting for the root device")]
    RootWait(#[source] WaitError),
    #[error("{0} holds no filesystem Ember recognizes")]
    RootType(PathBuf),
    #[error("{device} holds {fs_type}, not a filesystem")]
    NotAFilesystem { device: PathBuf, fs_type: String },
    #[error("probing {device}")]
    Probe {
        device: PathBuf,
        #[source]
        source: probe::Error,
    },
    #[error("creating {SYSROOT}")]
    Sysroot(#[source] std::io::Error),
    #[error("mounting the root filesystem")]
    RootMount(#[source] mounts::Error),
    #[error("unmounting the root filesystem")]
    RootUmount(#[source] mounts::Error),
    #[error("looking for the provisioning stamp {STAMP}")]
    Stamp(#[source] rootfs::Error),
    #[error("bringing up the network")]
    Network(#[source] net::Error),
    #[error(transparent)]
    Stage(#[from] engine::Error),
}

impl Error {
    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NoPlatform => {
                "add ignition.platform.id=<platform> (qemu, metal, aws, gcp, ...) to the kernel command line"
            }
            Error::Root(RootError::Missing) => {
                "add root=<device> (a /dev path, LABEL=, UUID=, PARTUUID= or PARTLABEL=) to the kernel command line"
            }
            Error::RootWait(_) => {
                "check root= against the devices (ls /dev/disk/by-* in the rescue shell), the \
                 kernel modules for the disk controller, or raise ember.root_timeout="
            }
            Error::RootType(_) => {
                "check that root= names the root filesystem; for a filesystem type Ember does \
                 not recognize, set rootfstype= on the kernel command line"
            }
            Error::NotAFilesystem { .. } => {
                "root= names a container (LUKS, an md member, swap), not a filesystem: point \
                 root= at the filesystem inside it (/dev/mapper/<name>, /dev/md/<name>, or its \
                 LABEL= or UUID=)"
            }
            Error::RootMount(_) => {
                "the filesystem root= names does not mount: repair it (fsck) or check \
                 rootfstype= and rootflags=; Ember does not provision over it unless \
                 ignition.firstboot is on the kernel command line"
            }
            Error::Network(_) => {
                "check that the machine has a NIC with a DHCP server behind it; ember.netif= \
                 picks the interface, ember.net_timeout= the time allowed"
            }
            _ => return None,
        })
    }

    /// The failure report (`crate::stages::report`): a stage's failure as the engine reports
    /// it, any other step's with the step as the operation and a hint where there is one.
    pub fn to_report(&self) -> Report {
        if let Error::Stage(e) = self {
            return e.to_report();
        }
        let mut r = Report::from_step("the boot failed", self);
        r.hint = self.hint().map(String::from);
        r
    }
}

/// The boot's status file (`/run/ember/boot.json`).
#[derive(Default)]
struct Status {
    phases: Vec<serde_json::Value>,
    first_boot: Option<bool>,
    reason: String,
    network: serde_json::Value,
    error: serde_json::Value,
}

impl Status {
    /// Runs `f` as a named phase: a milestone before and after, its time recorded.
    fn phase<T, E>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let start = pid1::uptime();
        let clock = Instant::now();
        say(&format!("{name}: started"));
        let out = f();
        let took = clock.elapsed();
        let how = if out.is_ok() { "done" } else { "failed" };
        say(&format!("{name}: {how} in {:.3} s", took.as_secs_f64()));
        self.phases.push(serde_json::json!({
            "name": name,
            "startMs": start.as_millis() as u64,
            "durationMs": took.as_millis() as u64,
            "ok": out.is_ok(),
        }));
        out
    }

    fn write(&self) {
        let (own, programs) = (pid1::cpu_time(false), pid1::cpu_time(true));
        let doc = serde_json::json!({
            "firstBoot": self.first_boot,
            "firstBootReason": self.reason,
            "phases": self.phases,
            "network": self.network,
            "error": self.error,
            // This process's own CPU time, and that of the programs it ran (mkfs, ...).
            "cpu": {
                "userMs": own.user.as_millis() as u64,
                "systemMs": own.system.as_millis() as u64,
                "programsMs": programs.total().as_millis() as u64,
            },
        });
        let path = Path::new(BOOT_STATUS);
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = std::fs::write(path, doc.to_string()) {
            log::warn!("writing {BOOT_STATUS}: {e}");
        }
    }
}

/// The work process: returns 0 when the root is mounted on /sysroot and ready.
pub fn main() -> i32 {
    crate::logging::init(crate::logging::Target::Stdout);
    let args = BootArgs::from_system();
    let mut st = Status::default();
    let result = run(&args, &mut st);
    let code = match &result {
        Ok(()) => 0,
        Err(e) => {
            let report = e.to_report();
            let text = report.render(Some(&super::failure_next(&args)));
            // The console, or the kernel log when there is none; standard error as a last resort.
            if report::write_console(&text).is_err() {
                eprint!("{text}");
            }
            st.error = report.to_json();
            1
        }
    };
    st.write();
    code
}

fn run(args: &BootArgs, st: &mut Status) -> Result<(), Error> {
    st.phase("loading kernel modules", || {
        load_modules(args);
        Ok::<(), Error>(())
    })?;
    let device = root_device(args.root.as_deref())?;
    // A later boot whose final mount is read-only (`ro`, the default) keeps the root mounted
    // as the stamp check mounted it, rather than mounting it twice.
    let keep = args.read_only;
    let mut kept = false;
    let (first, reason) = match args.firstboot {
        Some(b) => (b, format!("ignition.firstboot is {b}")),
        None => match provisioned(args, &device, keep)? {
            None => (
                true,
                format!("the root device {} does not exist yet", device.display()),
            ),
            Some(false) => (true, format!("the root filesystem has no {STAMP}")),
            Some(true) => {
                kept = keep;
                (false, format!("the root filesystem has {STAMP}"))
            }
        },
    };
    st.first_boot = Some(first);
    st.reason = reason.clone();
    if first {
        say(&format!("first boot ({reason}): provisioning"));
        provision(args, &device, st)?;
    } else {
        say(&format!("not the first boot ({reason}): no provisioning"));
    }
    st.phase("mounting the root filesystem", || {
        if kept {
            log::info!("the root filesystem stays mounted read-only on {SYSROOT}");
            Ok(())
        } else {
            mount_root(args, &device, args.read_only)
        }
    })?;
    // The config cache holds secrets (password hashes, file contents) and nothing after the
    // switch reads it.
    let _ = std::fs::remove_file(engine::DEFAULT_CONFIG_CACHE);
    Ok(())
}

/// Loads the drivers of the hardware that is there, as udev's coldplug would
/// (`kmod::ModuleDb::coldplug`: the modules whose aliases match a device's modalias in
/// sysfs, again as loading them reveals new devices), plus the image's own list and
/// `ember.modules=`, loaded whatever the hardware.  A module that
/// is missing or finds no device is logged, not fatal (the image serves many machines).
fn load_modules(args: &BootArgs) {
    let mut wanted: Vec<String> = std::fs::read_to_string(MODULE_LIST)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    wanted.extend(args.modules.iter().cloned());
    let dir = kmod::running_dir();
    let db = match kmod::ModuleDb::open(&dir) {
        Ok(db) => db,
        Err(e) => {
            log::warn!(
                "cannot load kernel modules: {} (was the initramfs built for kernel {}?)",
                chain(&e),
                kmod::kernel_release()
            );
            return;
        }
    };
    let mut inserted = Vec::new();
    let mut absent = Vec::new();
    for (n, r) in db.coldplug(Path::new("/sys"), &wanted, MODULE_THREADS) {
        match r {
            Ok(kmod::Loaded::Inserted(m)) => inserted.extend(m),
            Ok(kmod::Loaded::Present) => {}
            Err(kmod::Error::NotFound(_)) => log::warn!("kernel module {n} is not in the image"),
            Err(kmod::Error::Load { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                absent.push(n)
            }
            Err(e) => log::warn!("kernel module {n}: {}", chain(&e)),
        }
    }
    inserted.sort();
    log::info!(
        "loaded {} kernel modules: {}",
        inserted.len(),
        inserted.join(" ")
    );
    if !absent.is_empty() {
        log::info!("no device here for: {}", absent.join(", "));
    }
}

/// Whether the root filesystem carries the stamp; `None` when the device does not exist.
/// With `keep`, a root that carries it stays mounted read-only on /sysroot.
fn provisioned(args: &BootArgs, device: &Path, keep: bool) -> Result<Option<bool>, Error> {
    let wait = ROOT_PROBE_WAIT.min(args.root_timeout);
    let node = match find_root(device, wait) {
        Ok(n) => n,
        Err(Error::RootWait(WaitError::Timeout { .. })) => return Ok(None),
        Err(e) => return Err(e),
    };
    match mount_node(args, &node, true) {
        Ok(()) => {}
        // No filesystem on it yet (a blank partition named by root=): a new machine.
        Err(Error::RootType(_)) => {
            log::info!("{} holds no filesystem yet: unprovisioned", node.display());
            return Ok(Some(false));
        }
        // A filesystem that does not mount is not evidence of a new machine: provisioning
        // would wipe what may be a provisioned root, so the boot stops instead.
        Err(e) => return Err(e),
    }
    let found = rootfs::Root::open(SYSROOT)
        .and_then(|r| r.lstat(STAMP))
        .map(|s| s.is_some());
    if !(keep && matches!(found, Ok(true))) {
        mounts::umount(Path::new(SYSROOT)).map_err(Error::RootUmount)?;
    }
    Ok(Some(found.map_err(Error::Stamp)?))
}

/// The kernel node of the root device, waited for at most `wait`.
fn find_root(device: &Path, wait: Duration) -> Result<PathBuf, Error> {
    let dev = device.to_string_lossy().into_owned();
    let mut r = Resolver::new(Path::new("/dev"));
    if !matches!(r.find(&dev), Ok(None)) || !have_program("mdadm") {
        return r
            .wait_nodes(&[dev.as_str()], wait)
            .map_err(Error::RootWait)
            .map(|mut v| v.remove(0));
    }
    // A root on md (named /dev/md/..., or by LABEL= or UUID= of the filesystem on the array)
    // made by an earlier boot is not assembled yet: no udev does it here.  Without this a
    // provisioned RAID root looks absent, so "first boot", and is made again.  Members may
    // appear late (slow controllers), so the assembly is tried again each second of the wait.
    let deadline = Instant::now() + wait;
    loop {
        assemble_md(
            deadline
                .saturating_duration_since(Instant::now())
                .max(MDADM_MIN),
        );
        r.refresh();
        let left = deadline.saturating_duration_since(Instant::now());
        match r.wait_nodes(&[dev.as_str()], left.min(MD_RETRY)) {
            Ok(mut v) => return Ok(v.remove(0)),
            Err(WaitError::Timeout { .. }) if left > MD_RETRY => continue,
            Err(WaitError::Timeout { path, .. }) => {
                return Err(Error::RootWait(WaitError::Timeout {
                    path,
                    timeout: wait,
                }))
            }
            Err(e) => return Err(Error::RootWait(e)),
        }
    }
}

/// How often the wait for a root that may be on md tries to assemble arrays again.
const MD_RETRY: Duration = Duration::from_secs(1);

/// The least time each mdadm run gets, even when the wait for the root is nearly over.
const MDADM_MIN: Duration = Duration::from_secs(5);

/// Assembles the md arrays whose members carry superblocks (`mdadm --examine --scan` reads
/// them without the md driver, which is loaded only when there are some).  Each mdadm run
/// is killed after `timeout`: a hung device must not hold the boot much past
/// `ember.root_timeout`.
fn assemble_md(timeout: Duration) {
    let found = Command::new("mdadm")
        .args(["--examine", "--scan"])
        .timeout(timeout)
        .run();
    if !found.is_ok_and(|o| o.stdout_str().contains("ARRAY")) {
        return;
    }
    if let Err(e) = crate::system::kmod::ensure_md() {
        log::info!("loading md_mod: {e}");
    }
    match Command::new("mdadm")
        .args(["--assemble", "--scan"])
        .timeout(timeout)
        .run()
    {
        Ok(o) => log::info!("assembling md arrays: {}", o.stderr_str().trim()),
        Err(e) => log::info!("assembling md arrays: {e}"),
    }
}

/// Mounts the root device on /sysroot (unmounting whatever is there first).
fn mount_root(args: &BootArgs, device: &Path, read_only: bool) -> Result<(), Error> {
    if mounts::is_mount_point(Path::new(SYSROOT)).unwrap_or(false) {
        mounts::umount(Path::new(SYSROOT)).map_err(Error::RootUmount)?;
    }
    let node = find_root(device, args.root_timeout)?;
    mount_node(args, &node, read_only)
}

fn mount_node(args: &BootArgs, node: &Path, read_only: bool) -> Result<(), Error> {
    let fstype = match &args.rootfstype {
        Some(t) => t.clone(),
        None => root_content(node, probe::probe_path(node))?
            .ok_or_else(|| Error::RootType(node.to_owned()))?,
    };
    std::fs::create_dir_all(SYSROOT).map_err(Error::Sysroot)?;
    let opts = args.root_options(read_only);
    log::info!(
        "mounting {} ({fstype}, {}) on {SYSROOT}",
        node.display(),
        opts.join(",")
    );
    mounts::mount(node, Path::new(SYSROOT), &fstype, &opts).map_err(|e| {
        if args.rootfstype.is_some() {
            // The probe was skipped: it tells a blank root (a new machine) from one that
            // does not mount.
            mount_failure(node, &fstype, e, probe::probe_path(node))
        } else {
            Error::RootMount(e)
        }
    })
}

/// The filesystem types the probe recognizes: only for these does "the probe finds nothing"
/// mean that the device holds no filesystem.
const PROBED_TYPES: [&str; 8] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "iso9660", "udf",
];

/// What a probe of the root node means: `Ok(Some(type))` a filesystem to mount, `Ok(None)`
/// nothing on it yet (a blank device: a new machine).  A LUKS container, an md member or swap
/// is an error: it may well hold a provisioned root, which must not be provisioned over.
fn root_content(
    node: &Path,
    probed: Result<Option<probe::Signature>, probe::Error>,
) -> Result<Option<String>, Error> {
    match probed {
        Ok(None) => Ok(None),
        Ok(Some(sig)) if sig.usage == probe::Usage::Filesystem => Ok(Some(sig.fs_type)),
        Ok(Some(sig)) => Err(Error::NotAFilesystem {
            device: node.to_owned(),
            fs_type: sig.fs_type,
        }),
        Err(source) => Err(Error::Probe {
            device: node.to_owned(),
            source,
        }),
    }
}

/// The error of a failed mount with `rootfstype=` set, from a probe made after it: a blank
/// device is [`Error::RootType`] (so a new machine, as without `rootfstype=`), a container
/// [`Error::NotAFilesystem`], anything else the mount's own error.
fn mount_failure(
    node: &Path,
    fstype: &str,
    err: mounts::Error,
    probed: Result<Option<probe::Signature>, probe::Error>,
) -> Error {
    match root_content(node, probed) {
        Ok(None) if PROBED_TYPES.contains(&fstype) => Error::RootType(node.to_owned()),
        Err(e @ Error::NotAFilesystem { .. }) => e,
        _ => Error::RootMount(err),
    }
}

/// Runs one stage in process, as `ignition --stage S --root /sysroot` would.
fn stage(st: &mut Status, settings: &Settings, s: Stage) -> Result<Outcome, Error> {
    let mut o = Options::new(s, settings.clone());
    o.root = PathBuf::from(SYSROOT);
    Ok(st.phase(&format!("stage {s}"), || engine::run(&o))?)
}

/// Ignition's order: fetch-offline, (network and fetch when needed), kargs, disks, the root
/// on /sysroot read-write, mount, files, umount.
fn provision(args: &BootArgs, device: &Path, st: &mut Status) -> Result<(), Error> {
    let platform = args.platform.clone().ok_or(Error::NoPlatform)?;
    let mut settings = Settings::new(platform, Mode::Boot);
    if let Some(u) = &args.config_url {
        say(&format!(
            "config named on the kernel command line: {}",
            redact_url(u)
        ));
    }
    let mut network = None;
    if stage(st, &settings, Stage::FetchOffline)? == Outcome::NeedNet {
        let opts = net::Options {
            interface: args.netif.clone(),
            timeout: args.net_timeout,
        };
        let c = st
            .phase("network (DHCP)", || net::bring_up(&opts))
            .map_err(Error::Network)?;
        if let Err(e) = std::fs::write("/etc/resolv.conf", net::resolv_conf(&c.lease)) {
            log::warn!("writing /etc/resolv.conf: {e}");
        }
        st.network = serde_json::json!({
            "interface": c.interface,
            "address": format!("{}/{}", c.lease.address, c.lease.prefix),
            "server": c.lease.server.to_string(),
        });
        settings.dhcp_server = Some(c.lease.server.to_string());
        network = Some(c);
        // As ignition-fetch.service: only when fetch-offline could not write the cache.
        if !Path::new(engine::DEFAULT_CONFIG_CACHE).exists() {
            stage(st, &settings, Stage::Fetch)?;
        }
    }
    stage(st, &settings, Stage::Kargs)?;
    stage(st, &settings, Stage::Disks)?;
    st.phase("mounting the root filesystem read-write", || {
        mount_root(args, device, false)
    })?;
    let body = stage(st, &settings, Stage::Mount).and_then(|_| stage(st, &settings, Stage::Files));
    let umount = stage(st, &settings, Stage::Umount);
    body?;
    umount?;
    if let Some(c) = &network {
        if let Err(e) = net::tear_down(c) {
            log::warn!("taking the network down: {}", chain(&e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_step_reports() {
        let e = Error::RootWait(WaitError::Timeout {
            path: "/dev/disk/by-label/root".into(),
            timeout: Duration::from_secs(60),
        });
        let next = "rebooting in 300 s";
        assert_eq!(
            e.to_report().render(Some(next)),
            "ember: the boot failed: device /dev/disk/by-label/root did not appear within 60 s\n\
             \x20 operation: waiting for the root device\n\
             \x20 hint:      check root= against the devices (ls /dev/disk/by-* in the rescue \
             shell), the kernel modules for the disk controller, or raise ember.root_timeout=\n\
             \x20 next:      rebooting in 300 s\n"
        );
        // Without a cause, the step is the root cause and is not repeated.
        let r = Error::NoPlatform.to_report().render(None);
        assert_eq!(
            r,
            "ember: the boot failed: the kernel command line has no ignition.platform.id\n\
             \x20 hint:      add ignition.platform.id=<platform> (qemu, metal, aws, gcp, ...) to \
             the kernel command line\n"
        );
        let j = Error::Root(RootError::Missing).to_report().to_json();
        assert_eq!(j["rootCause"], "the kernel command line has no root=");
        assert!(j["hint"].as_str().unwrap().starts_with("add root=<device>"));
    }

    fn sig(fs_type: &str, usage: probe::Usage) -> Result<Option<probe::Signature>, probe::Error> {
        Ok(Some(probe::Signature {
            fs_type: fs_type.into(),
            usage,
            uuid: None,
            label: None,
            magics: Vec::new(),
        }))
    }

    fn mount_error() -> mounts::Error {
        mounts::Error::Mount {
            source_desc: "/dev/vda4".into(),
            target: SYSROOT.into(),
            fs_type: "xfs".into(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        }
    }

    #[test]
    fn only_a_blank_root_is_unprovisioned() {
        let node = Path::new("/dev/vda4");
        // Nothing on it: a new machine.
        assert!(matches!(root_content(node, Ok(None)), Ok(None)));
        assert_eq!(
            root_content(node, sig("ext4", probe::Usage::Filesystem)).unwrap(),
            Some("ext4".to_string())
        );
        // A container may hold a provisioned root: the boot stops with a hint.
        for (t, u) in [
            ("crypto_LUKS", probe::Usage::Crypto),
            ("linux_raid_member", probe::Usage::Raid),
            ("swap", probe::Usage::Other),
        ] {
            let e = root_content(node, sig(t, u)).unwrap_err();
            assert!(matches!(e, Error::NotAFilesystem { .. }), "{t}: {e:?}");
            let r = e.to_report();
            assert_eq!(
                r.root_cause,
                format!("/dev/vda4 holds {t}, not a filesystem")
            );
            assert!(r
                .hint
                .unwrap()
                .contains("point root= at the filesystem inside it"));
        }
        // A real blank device image probes as nothing.
        let blank = std::env::temp_dir().join(format!("ember-blank-root-{}", std::process::id()));
        std::fs::File::create(&blank)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let probed = root_content(&blank, probe::probe_path(&blank));
        let _ = std::fs::remove_file(&blank);
        assert!(matches!(probed, Ok(None)), "{probed:?}");
    }

    #[test]
    fn a_blank_root_with_rootfstype_is_unprovisioned() {
        let node = Path::new("/dev/vda4");
        let blank = mount_failure(node, "xfs", mount_error(), Ok(None));
        assert!(matches!(blank, Error::RootType(_)), "{blank:?}");
        // A filesystem that does not mount, or a type the probe does not know: no guess.
        let broken = mount_failure(
            node,
            "xfs",
            mount_error(),
            sig("xfs", probe::Usage::Filesystem),
        );
        assert!(matches!(broken, Error::RootMount(_)), "{broken:?}");
        let unknown = mount_failure(node, "f2fs", mount_error(), Ok(None));
        assert!(matches!(unknown, Error::RootMount(_)), "{unknown:?}");
        let luks = mount_failure(
            node,
            "xfs",
            mount_error(),
            sig("crypto_LUKS", probe::Usage::Crypto),
        );
        assert!(matches!(luks, Error::NotAFilesystem { .. }), "{luks:?}");
    }

    #[test]
    fn what_happens_after_a_failure() {
        let mut a = BootArgs::parse("");
        a.shell = false;
        assert_eq!(
            super::super::failure_next(&a),
            "rebooting in 300 s (ember.failure_timeout=SECONDS on the kernel command line changes this)"
        );
        a.failure_timeout = Duration::ZERO;
        assert_eq!(super::super::failure_next(&a), "rebooting");
    }
}
