//! Config drives and CD-ROMs: find a filesystem by label (or by type) without udev, mount it
//! read-only on a private temporary directory, read one file, unmount.
//!
//! Devices are found by probing the superblocks of every block device sysfs lists
//! ([`crate::system::probe`]), after a quick look at `/dev/disk/by-label/<label>` (present
//! when udev runs; the device behind it is probed too, so a stale link is ignored). Labels
//! match exactly, as udev's links do (`config-2` and `CONFIG-2` are two labels).
//!
//! Files are read with the drive's root as the root of path resolution
//! ([`crate::system::rootfs::Root`]): a symlink on the drive cannot point outside it.
//!
//! When the kernel cannot mount the filesystem (`ENODEV`: no `iso9660`/`udf` module, as in
//! minimal initramfs kernels), ISO 9660 images (UDF bridge discs included) are read directly
//! by [`super::iso9660`] instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{iso9660, util, Error, MAX_CONFIG_SIZE};
use crate::system::blockdev::SysBlock;
use crate::system::mounts::{self, MountGuard};
use crate::system::rootfs::Root;
use crate::system::{devnames, probe};

/// Where to look for drives and how long to wait for one.
#[derive(Debug, Clone)]
pub struct Search {
    /// `/dev`.
    pub dev_dir: PathBuf,
    /// How long [`Search::wait_for_label`] waits.
    pub wait: Duration,
    /// How often it looks again.
    pub poll: Duration,
}

/// A block device with a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    pub device: PathBuf,
    pub fs_type: String,
    pub label: Option<String>,
}

impl Search {
    /// Every block device whose probed filesystem satisfies `want`, in kernel-name order.
    pub fn scan(&self, want: impl Fn(&probe::Signature) -> bool) -> Vec<Drive> {
        let all = match SysBlock::all() {
            Ok(all) => all,
            Err(e) => {
                log::warn!("listing block devices: {}", super::util::chain(&e));
                return Vec::new();
            }
        };
        all.into_iter()
            .filter_map(|b| {
                let device = self.dev_dir.join(&b.name);
                match probe::probe_path(&device) {
                    Ok(Some(sig)) if sig.usage == probe::Usage::Filesystem && want(&sig) => {
                        Some(Drive {
                            device,
                            fs_type: sig.fs_type,
                            label: sig.label,
                        })
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The device whose filesystem label is exactly `label`, if one is there now.
    pub fn find_label(&self, label: &str) -> Option<Drive> {
        let link = self
            .dev_dir
            .join("disk/by-label")
            .join(devnames::encode(label));
        if let Ok(node) = std::fs::canonicalize(&link) {
            if let Ok(Some(sig)) = probe::probe_path(&node) {
                if sig.label.as_deref() == Some(label) {
                    return Some(Drive {
                        device: node,
                        fs_type: sig.fs_type,
                        label: sig.label,
                    });
                }
            }
        }
        let mut found = self.scan(|s| s.label.as_deref() == Some(label));
        if found.len() > 1 {
            log::warn!(
                "{} devices are labelled {label:?}; using {}",
                found.len(),
                found[0].device.display()
            );
        }
        (!found.is_empty()).then(|| found.swap_remove(0))
    }

    /// Waits (up to `self.wait`) for a filesystem labelled `label`. Stops early, with an
    /// error, when `cancel` becomes true.
    pub fn wait_for_label(&self, label: &str, cancel: &AtomicBool) -> Result<Drive, Error> {
        let what = format!("a drive labelled {label:?}");
        self.poll_until(&what, cancel, || self.find_label(label))
    }

    /// Calls `look` until it finds something, the wait runs out, or `cancel` is set.
    pub fn poll_until<T>(
        &self,
        what: &str,
        cancel: &AtomicBool,
        mut look: impl FnMut() -> Option<T>,
    ) -> Result<T, Error> {
        let start = Instant::now();
        let mut logged = false;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Drive {
                    what: format!("stopped waiting for {what}"),
                    source: None,
                });
            }
            if let Some(found) = look() {
                return Ok(found);
            }
            let waited = start.elapsed();
            if waited >= self.wait {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    wait: self.wait,
                });
            }
            if !logged {
                log::info!("waiting up to {:?} for {what}", self.wait);
                logged = true;
            }
            std::thread::sleep(self.poll.min(self.wait - waited));
        }
    }
}

static MOUNT_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A read-only mount on a private temporary directory; unmounted and removed on drop.
pub struct TempMount {
    guard: Option<MountGuard>,
    dir: PathBuf,
}

impl TempMount {
    /// Mounts `drive` read-only (and nodev, nosuid, noexec).
    pub fn new(drive: &Drive) -> Result<TempMount, Error> {
        Self::mount(drive).map_err(|(_, e)| e)
    }

    /// Like [`TempMount::new`]; the flag says the kernel does not know the filesystem type.
    fn mount(drive: &Drive) -> Result<TempMount, (bool, Error)> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "ember-drive-{}-{}",
            std::process::id(),
            MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| {
                (
                    false,
                    Error::Io {
                        path: dir.clone(),
                        source,
                    },
                )
            })?;
        match MountGuard::mount(
            &drive.device,
            &dir,
            &drive.fs_type,
            &["ro", "nodev", "nosuid", "noexec"],
        ) {
            Ok(guard) => Ok(TempMount {
                guard: Some(guard),
                dir,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                let unknown = matches!(&e, mounts::Error::Mount { source, .. }
                    if source.raw_os_error() == Some(libc::ENODEV));
                Err((
                    unknown,
                    Error::Drive {
                        what: format!("mounting {}", drive.device.display()),
                        source: Some(Box::new(e)),
                    },
                ))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads `rel` (resolved inside the drive); `Ok(None)` when it does not exist. A file
    /// larger than [`MAX_CONFIG_SIZE`] is an error (checked before reading).
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, Error> {
        let root = Root::open(&self.dir).map_err(|e| Error::Drive {
            what: format!("opening {}", self.dir.display()),
            source: Some(Box::new(e)),
        })?;
        let failed = |e: crate::system::rootfs::Error| Error::Drive {
            what: format!("reading {rel} from the drive"),
            source: Some(Box::new(e)),
        };
        match root.stat_follow(rel) {
            Ok(None) => return Ok(None),
            Ok(Some(st)) if st.size > MAX_CONFIG_SIZE => {
                return Err(Error::Drive {
                    what: format!(
                        "{rel} on the drive is {} bytes, larger than the {MAX_CONFIG_SIZE} bytes \
                         a config may have",
                        st.size
                    ),
                    source: None,
                })
            }
            Ok(Some(_)) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(failed(e)),
        }
        match root.read_file_follow(rel) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// Whether `rel` exists on the drive.
    pub fn exists(&self, rel: &str) -> bool {
        Root::open(&self.dir)
            .and_then(|r| r.exists(rel))
            .unwrap_or(false)
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            if let Err(e) = guard.unmount() {
                log::warn!("{}", super::util::chain(&e));
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A drive opened for reading: mounted, or read directly as an ISO 9660 image.
pub enum Opened {
    Mounted(TempMount),
    Image(iso9660::Image),
}

impl Opened {
    /// Reads `rel`; `Ok(None)` when it does not exist.
    pub fn read(&mut self, rel: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Opened::Mounted(m) => m.read(rel),
            Opened::Image(i) => i.read(rel),
        }
    }

    /// Whether `rel` exists.
    pub fn exists(&mut self, rel: &str) -> bool {
        match self {
            Opened::Mounted(m) => m.exists(rel),
            Opened::Image(i) => i.exists(rel),
        }
    }
}

/// Mounts `drive` read-only, or, when the kernel does not know its filesystem and it is
/// ISO 9660 or UDF, opens it as an ISO 9660 image.
pub fn open(drive: &Drive) -> Result<Opened, Error> {
    match TempMount::mount(drive) {
        Ok(m) => Ok(Opened::Mounted(m)),
        Err((true, e)) if matches!(drive.fs_type.as_str(), "iso9660" | "udf") => {
            log::info!(
                "the kernel cannot mount {} ({}); reading it as an ISO 9660 image",
                drive.device.display(),
                drive.fs_type
            );
            iso9660::Image::open(&drive.device)
                .map(Opened::Image)
                .map_err(|direct| {
                    // The mount error says more to most readers; keep why the image failed.
                    log::warn!(
                        "reading {} as an ISO 9660 image failed too: {}",
                        drive.device.display(),
                        util::chain(&direct)
                    );
                    e
                })
        }
        Err((_, e)) => Err(e),
    }
}

/// Opens `drive`, reads `rel`, closes (unmounts) it. `Ok(None)` when the file is missing.
pub fn read_file(drive: &Drive, rel: &str) -> Result<Option<Vec<u8>>, Error> {
    log::info!(
        "reading {rel} from {} ({})",
        drive.device.display(),
        drive.fs_type
    );
    open(drive)?.read(rel)
}

/// The race entries for a config drive labelled `config-2` or `CONFIG-2` holding `path`
/// (cloudstack and openstack race them against their metadata services).
pub fn race_sources(drives: &Search, path: &'static str) -> Vec<(String, util::Source)> {
    ["config-2", "CONFIG-2"]
        .into_iter()
        .map(|label| {
            let drives = drives.clone();
            let read: util::Source =
                Box::new(move |cancel| read_from_label(&drives, label, path, cancel));
            (format!("config drive {label}"), read)
        })
        .collect()
}

/// A wait that ran out as "nothing there" (`Ok(None)`), for platforms where a missing drive
/// means no config (ibmcloud, proxmoxve); other errors stay errors.
pub fn timeout_means_none<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Timeout { what, wait }) => {
            log::info!("{what} did not appear within {wait:?}; no config");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A platform whose config is [`openstack_user_data`] (nutanix, powervs). Works offline.
pub struct OpenStackDrive {
    pub id: &'static str,
    pub drives: Search,
}

impl super::Provider for OpenStackDrive {
    fn id(&self) -> &'static str {
        self.id
    }

    fn fetch_config(&self, _fetcher: &crate::fetch::Fetcher) -> Result<Option<Vec<u8>>, Error> {
        openstack_user_data(&self.drives)
    }
}

/// `openstack/latest/user_data` on the drive labelled `config-2`, empty meaning no config: the
/// whole of the nutanix and powervs providers.
pub fn openstack_user_data(drives: &Search) -> Result<Option<Vec<u8>>, Error> {
    let never = AtomicBool::new(false);
    Ok(
        read_from_label(drives, "config-2", "openstack/latest/user_data", &never)?
            .and_then(util::non_empty),
    )
}

/// Waits for the drive labelled `label` and reads `rel` from it (`Ok(None)` when the file is
/// missing): the config-drive source of openstack, cloudstack, kubevirt, nutanix, powervs,
/// ibmcloud and proxmoxve.
pub fn read_from_label(
    search: &Search,
    label: &str,
    rel: &str,
    cancel: &AtomicBool,
) -> Result<Option<Vec<u8>>, Error> {
    let drive = search.wait_for_label(label, cancel)?;
    read_file(&drive, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_the_limit_is_refused_before_reading() {
        let dir = std::env::temp_dir().join(format!("ember-cd-big-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/small"), b"{}").unwrap();
        // Sparse: nothing is written, and nothing would be read if the check works.
        let big = std::fs::File::create(dir.join("d/big")).unwrap();
        big.set_len(MAX_CONFIG_SIZE + 1).unwrap();
        let m = TempMount {
            guard: None,
            dir: dir.clone(),
        };
        assert_eq!(m.read("d/small").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(m.read("d/missing").unwrap(), None);
        let err = m.read("d/big").unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(err.to_string().contains("d/big"), "{err}");
        drop(m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waits_are_bounded_and_cancellable() {
        let s = Search {
            dev_dir: PathBuf::from("/nonexistent-dev"),
            wait: Duration::from_millis(50),
            poll: Duration::from_millis(10),
        };
        let cancel = AtomicBool::new(false);
        let mut calls = 0;
        let err = s
            .poll_until("the thing", &cancel, || {
                calls += 1;
                None::<()>
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "the thing did not appear within 50ms");
        assert!(calls >= 2, "looked again while waiting ({calls})");
        cancel.store(true, Ordering::SeqCst);
        let err = s.poll_until("it", &cancel, || Some(1)).unwrap_err();
        assert_eq!(err.to_string(), "stopped waiting for it");
        let cancel = AtomicBool::new(false);
        let mut n = 0;
        assert_eq!(
            s.poll_until("it", &cancel, || {
                n += 1;
                (n == 3).then_some(7)
            })
            .unwrap(),
            7
        );
    }

    #[test]
    fn a_label_nobody_has_is_not_found() {
        let s = Search {
            dev_dir: PathBuf::from("/dev"),
            wait: Duration::ZERO,
            poll: Duration::from_millis(10),
        };
        assert_eq!(s.find_label("ember-no-such-label-\u{1F525}"), None);
    }
}
