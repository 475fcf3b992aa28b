//! Finding the devices a config names, without udev.
//!
//! A config names devices by any path: a kernel node (`/dev/vda`), a udev link
//! (`/dev/disk/by-partlabel/root`), an md or mapper name.  Ignition asks systemd to wait for the
//! `.device` unit of each; Ember resolves the path itself ([`Resolver`]): an existing path is
//! followed, a missing `/dev/disk/by-*`, `/dev/md/*` or `/dev/mapper/*` name is looked up by
//! scanning sysfs, GPTs and superblocks ([`crate::system::devnames`]).  [`Resolver::wait`]
//! repeats that, bounded, until every path resolves.
//!
//! Planning never creates links; the stage creates them after each phase
//! ([`crate::system::devnames::DevNames::refresh_disk_links`], `create_links`).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::system::blockdev::SysBlock;
pub(crate) use crate::system::devnames::existing_node;
use crate::system::devnames::{Choice, DevNames, DeviceNames, Query};

/// Looks device paths up, caching one scan of every block device between refreshes.
pub(crate) struct Resolver {
    names: DevNames,
    scan: Option<Vec<(SysBlock, DeviceNames)>>,
}

/// What a failed lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(PathBuf),
    Missing,
    /// More than one device carries the name.
    Ambiguous(String),
}

impl Resolver {
    pub(crate) fn new(dev_dir: &Path) -> Resolver {
        Resolver {
            names: DevNames {
                dev: dev_dir.to_owned(),
            },
            scan: None,
        }
    }

    /// The `/dev` directory in use.
    pub(crate) fn dev_dir(&self) -> &Path {
        &self.names.dev
    }

    pub(crate) fn dev_names(&self) -> &DevNames {
        &self.names
    }

    /// Forgets the cached scan (devices or their contents changed).
    pub(crate) fn refresh(&mut self) {
        self.scan = None;
    }

    /// The kernel node of `path`, without creating anything.
    pub(crate) fn lookup(&mut self, path: &Path) -> Lookup {
        if let Some(node) = existing_node(path) {
            return Lookup::Found(node);
        }
        let Some(query) = self.names.relative(path).and_then(Query::parse) else {
            return Lookup::Missing;
        };
        if self.scan.is_none() {
            self.scan = self.names.scan().ok();
        }
        let Some(scan) = self.scan.as_ref() else {
            return Lookup::Missing;
        };
        match query.choose(scan) {
            Choice::None => Lookup::Missing,
            Choice::One(b) => Lookup::Found(self.names.dev.join(&b.name)),
            Choice::Ambiguous(names) => Lookup::Ambiguous(names),
        }
    }

    /// [`Resolver::lookup`] as a result: `Ok(None)` when missing, an error when ambiguous.
    pub(crate) fn find(&mut self, path: &str) -> Result<Option<PathBuf>, WaitError> {
        match self.lookup(Path::new(path)) {
            Lookup::Found(n) => Ok(Some(n)),
            Lookup::Missing => Ok(None),
            Lookup::Ambiguous(devices) => Err(WaitError::Ambiguous {
                path: path.to_string(),
                devices,
            }),
        }
    }

    /// Resolves every path with `resolve` (`Ok(None)`: not there yet), retrying the missing
    /// ones with a fresh scan until `timeout` has passed.
    pub(crate) fn wait<T, E: From<WaitError>>(
        &mut self,
        paths: &[&str],
        timeout: Duration,
        mut resolve: impl FnMut(&mut Resolver, &str) -> Result<Option<T>, E>,
    ) -> Result<Vec<T>, E> {
        let started = Instant::now();
        let mut out: Vec<Option<T>> = paths.iter().map(|_| None).collect();
        let mut delay = Duration::from_millis(10);
        let mut logged = false;
        loop {
            let mut missing = None;
            for (i, p) in paths.iter().enumerate() {
                if out[i].is_none() {
                    match resolve(self, p)? {
                        Some(t) => out[i] = Some(t),
                        None => {
                            missing.get_or_insert(i);
                        }
                    }
                }
            }
            let Some(first_missing) = missing else {
                return Ok(out.into_iter().flatten().collect());
            };
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(WaitError::Timeout {
                    path: paths[first_missing].to_string(),
                    timeout,
                }
                .into());
            }
            if !logged {
                log::info!(
                    "waiting up to {} for {}",
                    fmt_duration(timeout),
                    paths[first_missing]
                );
                logged = true;
            }
            std::thread::sleep(delay.min(timeout.saturating_sub(waited)));
            delay = (delay * 2).min(Duration::from_millis(250));
            self.refresh();
        }
    }

    /// Waits for existing devices only: the kernel node of each path.
    pub(crate) fn wait_nodes(
        &mut self,
        paths: &[&str],
        timeout: Duration,
    ) -> Result<Vec<PathBuf>, WaitError> {
        self.wait(paths, timeout, |r, p| r.find(p))
    }
}

/// Why waiting for devices failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("device {path} did not appear within {}", fmt_duration(*.timeout))]
    Timeout { path: String, timeout: Duration },
    #[error("{path} names more than one device: {devices}")]
    Ambiguous { path: String, devices: String },
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// The node name of partition `number` of disk node `disk`: `vda` → `vda3`, `loop0` →
/// `loop0p3`, `nvme0n1` → `nvme0n1p3` (a `p` when the disk name ends in a digit, as the
/// kernel names them).
pub(crate) fn partition_node(disk: &Path, number: u32) -> PathBuf {
    let s = disk.to_string_lossy();
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        PathBuf::from(format!("{s}p{number}"))
    } else {
        PathBuf::from(format!("{s}{number}"))
    }
}

/// A byte range of a device, readable as if it were a device of its own: what a partition
/// will contain once it exists.
pub(crate) struct Window<'a> {
    file: &'a fs::File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    pub(crate) fn new(file: &'a fs::File, start: u64, len: u64) -> Window<'a> {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl std::io::Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl std::io::Seek for Window<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            std::io::SeekFrom::Start(o) => Some(o),
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the window",
            )),
        }
    }
}

pub use crate::system::command::have_program;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn partition_node_names() {
        assert_eq!(
            partition_node(Path::new("/dev/vda"), 3),
            PathBuf::from("/dev/vda3")
        );
        assert_eq!(
            partition_node(Path::new("/dev/loop0"), 3),
            PathBuf::from("/dev/loop0p3")
        );
        assert_eq!(
            partition_node(Path::new("/dev/nvme0n1"), 12),
            PathBuf::from("/dev/nvme0n1p12")
        );
    }

    #[test]
    fn window_reads_its_range_only() {
        let path = std::env::temp_dir().join(format!("ember-window-{}", std::process::id()));
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&(0..=255u8).collect::<Vec<_>>()).unwrap();
        let f = fs::File::open(&path).unwrap();
        let mut w = Window::new(&f, 16, 32);
        assert_eq!(w.seek(SeekFrom::End(0)).unwrap(), 32);
        w.seek(SeekFrom::Start(30)).unwrap();
        let mut buf = [0u8; 8];
        let n = w.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[46, 47]);
        assert_eq!(w.read(&mut buf).unwrap(), 0);
        assert!(w.seek(SeekFrom::Current(-100)).is_err());
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn waiting_for_a_missing_device_is_bounded() {
        let mut r = Resolver::new(Path::new("/dev"));
        let started = Instant::now();
        let err = r
            .wait_nodes(
                &["/dev/disk/by-partlabel/ember-never-there"],
                Duration::from_millis(200),
            )
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "device /dev/disk/by-partlabel/ember-never-there did not appear within 0.200 s"
        );
    }
}
