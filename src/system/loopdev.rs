//! Loop devices: attach a file as a block device, with a guard that cleans up.
//!
//! Devices are allocated with `LOOP_CTL_GET_FREE` (never a fixed number) and configured with
//! `LOOP_CONFIGURE` (falling back to `LOOP_SET_FD` + `LOOP_SET_BLOCK_SIZE` +
//! `LOOP_SET_STATUS64` on kernels older than 5.8).  They are created with `LO_FLAGS_PARTSCAN`,
//! without which the kernel refuses partitions on loop devices, and `LO_FLAGS_AUTOCLEAR`, so the
//! kernel detaches them by itself once the last user closes them, even if this process dies.
//!
//! [`LoopDevice`]'s `Drop` deletes the partitions the kernel has for it (`BLKPG`) and detaches
//! it; it runs during a panic's unwinding, so tests clean up after failures too.
//! [`ScratchDisk`] is the test fixture: a sparse file of N MiB, already unlinked, on a loop;
//! its `Drop` also removes the /dev/disk/by-* links to it, so that no test leaves links behind
//! to a loop device that a later test gets.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linux_raw_sys::loop_device as lo;

use crate::system::blockdev::{BlockDevice, SysBlock};

/// Errors from loop-device operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} on {path}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unsupported logical block size {0} (use 512, 1024, 2048 or 4096)")]
    BlockSize(u32),
    #[error("creating backing file {path}")]
    Backing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} did not appear")]
    NodeMissing { path: PathBuf },
    #[error("no free loop device after {0} attempts")]
    NoFreeDevice(u32),
}

type Result<T> = std::result::Result<T, Error>;

fn ioctl_int(file: &File, request: u32, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: used only with loop ioctls that take an integer argument (or a pointer supplied
    // by the callers below, which point to live, correctly laid out kernel structs).
    let r = unsafe { libc::ioctl(file.as_raw_fd(), request as libc::c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Options for attaching a file.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Logical sector size the loop device reports: 512 (default) or 4096 (or 1024, 2048).
    pub block_size: u32,
    pub read_only: bool,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            block_size: 512,
            read_only: false,
        }
    }
}

/// An attached loop device.  Dropping it deletes its partitions and detaches it.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    number: u32,
    file: Option<File>,
}

impl LoopDevice {
    /// Attaches `backing` to a free loop device.
    pub fn attach(backing: &Path, opts: &LoopOptions) -> Result<LoopDevice> {
        if ![512, 1024, 2048, 4096].contains(&opts.block_size) {
            return Err(Error::BlockSize(opts.block_size));
        }
        let backing_file = OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(backing)
            .map_err(|source| Error::Open {
                path: backing.to_owned(),
                source,
            })?;
        let ctl_path = Path::new("/dev/loop-control");
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(ctl_path)
            .map_err(|source| Error::Open {
                path: ctl_path.to_owned(),
                source,
            })?;
        // Another process may take the device between GET_FREE and CONFIGURE: retry then.
        const ATTEMPTS: u32 = 20;
        for _ in 0..ATTEMPTS {
            let n = ioctl_int(&ctl, lo::LOOP_CTL_GET_FREE, 0).map_err(|source| Error::Ioctl {
                op: "LOOP_CTL_GET_FREE",
                path: ctl_path.to_owned(),
                source,
            })?;
            let number = n as u32;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let file = open_loop_node(&path, number, opts.read_only)?;
            match configure(&file, &backing_file, opts) {
                Ok(()) => {
                    log::debug!("attached {} to {}", backing.display(), path.display());
                    return Ok(LoopDevice {
                        path,
                        number,
                        file: Some(file),
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
                Err(source) => {
                    return Err(Error::Ioctl {
                        op: "LOOP_CONFIGURE",
                        path,
                        source,
                    })
                }
            }
        }
        Err(Error::NoFreeDevice(ATTEMPTS))
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// N in `/dev/loopN`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Kernel name, `loopN`.
    pub fn name(&self) -> String {
        format!("loop{}", self.number)
    }

    /// Deletes the partitions and detaches now, reporting errors.
    pub fn detach(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        // Remove partition nodes: without this, partitions added with BLKPG would outlive the
        // detach on kernels that do not rescan, and show up on the next user of this number.
        if let Ok(dev) = BlockDevice::open(&self.path) {
            if let Ok(blk) = SysBlock::from_name(&self.name()) {
                for p in blk.partitions().unwrap_or_default() {
                    if let Err(e) = dev.delete_partition(p.number) {
                        log::warn!("{e}");
                    }
                }
            }
        }
        match ioctl_int(&file, lo::LOOP_CLR_FD, 0) {
            Ok(_) => Ok(()),
            // Already detached (autoclear), nothing to do.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(source) => Err(Error::Ioctl {
                op: "LOOP_CLR_FD",
                path: self.path.clone(),
                source,
            }),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            log::warn!("{e}");
        }
    }
}

fn open_loop_node(path: &Path, number: u32, read_only: bool) -> Result<File> {
    // LOOP_CTL_GET_FREE may have just created the device; devtmpfs makes its node
    // asynchronously, and without devtmpfs we make it ourselves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !crate::system::blockdev::dev_is_devtmpfs() {
                    let _ = crate::system::blockdev::make_node(path, 7, number);
                }
                if Instant::now() >= deadline {
                    return Err(Error::NodeMissing {
                        path: path.to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(Error::Open {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}

fn configure(loop_file: &File, backing: &File, opts: &LoopOptions) -> io::Result<()> {
    let mut flags = lo::LO_FLAGS_PARTSCAN as u32 | lo::LO_FLAGS_AUTOCLEAR as u32;
    if opts.read_only {
        flags |= lo::LO_FLAGS_READ_ONLY as u32;
    }
    // SAFETY: loop_config is plain old data (integers and byte arrays); all-zero is valid.
    let mut cfg: lo::loop_config = unsafe { std::mem::zeroed() };
    cfg.fd = backing.as_raw_fd() as u32;
    cfg.block_size = opts.block_size;
    cfg.info.lo_flags = flags;
    match ioctl_int(
        loop_file,
        lo::LOOP_CONFIGURE,
        &cfg as *const lo::loop_config as libc::c_ulong,
    ) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => {
            // Kernels before 5.8: attach, then set the block size and flags.
            ioctl_int(
                loop_file,
                lo::LOOP_SET_FD,
                backing.as_raw_fd() as libc::c_ulong,
            )?;
            let rest = (|| {
                ioctl_int(
                    loop_file,
                    lo::LOOP_SET_BLOCK_SIZE,
                    opts.block_size as libc::c_ulong,
                )?;
                // SAFETY: loop_info64 is plain old data; all-zero is valid.
                let mut info: lo::loop_info64 = unsafe { std::mem::zeroed() };
                info.lo_flags = flags;
                ioctl_int(
                    loop_file,
                    lo::LOOP_SET_STATUS64,
                    &info as *const lo::loop_info64 as libc::c_ulong,
                )
            })();
            if let Err(e) = rest {
                let _ = ioctl_int(loop_file, lo::LOOP_CLR_FD, 0);
                return Err(e);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A sparse file of a given size attached to a loop device: a scratch disk for tests and
/// benchmarks.  The file is unlinked as soon as it is attached, so nothing is left behind
/// whatever happens to the process; dropping the disk removes the /dev/disk/by-* links to it
/// and its partitions (made by Ember's disks stage) and detaches the loop device.
#[derive(Debug)]
pub struct ScratchDisk {
    // Declared first: dropped (detached) before anything else.
    loop_dev: LoopDevice,
    size: u64,
}

impl ScratchDisk {
    /// A `size_mib` MiB disk with 512-byte logical sectors.
    pub fn new(size_mib: u64) -> Result<ScratchDisk> {
        Self::with_options(size_mib, &LoopOptions::default())
    }

    /// A `size_mib` MiB disk with the given logical sector size.
    pub fn with_block_size(size_mib: u64, block_size: u32) -> Result<ScratchDisk> {
        Self::with_options(
            size_mib,
            &LoopOptions {
                block_size,
                ..Default::default()
            },
        )
    }

    /// A `size_mib` MiB disk with full options.  The backing file is made in
    /// `$EMBER_SCRATCH_DIR`, else `/var/tmp`, else the temp directory.
    pub fn with_options(size_mib: u64, opts: &LoopOptions) -> Result<ScratchDisk> {
        let dir = std::env::var_os("EMBER_SCRATCH_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .or_else(|| Some(PathBuf::from("/var/tmp")).filter(|d| d.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let mut rnd = [0u8; 8];
        crate::system::random_bytes(&mut rnd);
        let path = dir.join(format!(
            "ember-scratch-{}-{:016x}.img",
            std::process::id(),
            u64::from_le_bytes(rnd)
        ));
        let size = size_mib * 1024 * 1024;
        let backing_err = |source| Error::Backing {
            path: path.clone(),
            source,
        };
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(backing_err)?;
        let attached = f
            .set_len(size)
            .map_err(backing_err)
            .and_then(|()| LoopDevice::attach(&path, opts));
        drop(f);
        let _ = std::fs::remove_file(&path);
        Ok(ScratchDisk {
            loop_dev: attached?,
            size,
        })
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        self.loop_dev.path()
    }

    /// Kernel name, `loopN`.
    pub fn name(&self) -> String {
        self.loop_dev.name()
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The node of partition `n` (`/dev/loopNpM`).
    pub fn partition_path(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}p{n}", self.path().display()))
    }

    pub fn loop_device(&self) -> &LoopDevice {
        &self.loop_dev
    }
}

impl Drop for ScratchDisk {
    fn drop(&mut self) {
        // Before the loop device goes (the field is dropped after this): links left behind
        // would name whatever the next user of this loop number puts there.
        if let Err(e) = crate::system::devnames::DevNames::default().remove_links_to(&self.name()) {
            log::warn!("{e}");
        }
    }
}
