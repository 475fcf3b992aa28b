//! Block devices: sizes, sysfs facts, "in use" checks, and telling the kernel about partitions.
//!
//! Nothing here needs udev or libblkid.  Partition changes reach the kernel through
//! [`notify_kernel`], which first asks the kernel to re-read the whole table (`BLKRRPART`) and
//! then reconciles partition by partition with `BLKPG` add/delete/resize until the kernel's view
//! (sysfs `start`/`size`) equals the table.  That covers kernels that re-read tables, kernels
//! that refuse because a partition is in use (`EBUSY`), and kernels that parse no tables at all.
//! Device nodes are made by devtmpfs when `/dev` is one; otherwise this module makes them with
//! mknod(2) from sysfs `dev`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::system::mounts;

/// Where sysfs is mounted.
pub const SYSFS: &str = "/sys";

/// How long [`notify_kernel`] waits for partition nodes by default.  Ignition waits up to
/// 30 s for device aliases to appear; we use the same bound.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors from block-device operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a block device")]
    NotBlockDevice { path: PathBuf },
    #[error("{op} on {path}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading sysfs {path}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bad value {value:?} in sysfs {path}")]
    SysfsValue { path: PathBuf, value: String },
    #[error("{path} is a partition, not a whole disk")]
    NotWholeDisk { path: PathBuf },
    #[error("partition {number} of {disk} is in use and differs from the partition table")]
    PartitionBusy { disk: PathBuf, number: u32 },
    #[error("creating device node {path}")]
    Mknod {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {timeout:?} waiting for the partitions of {disk} to match the table: {detail}")]
    SettleTimeout {
        disk: PathBuf,
        timeout: Duration,
        detail: String,
    },
    #[error("reading mounts")]
    Mounts(#[source] mounts::Error),
}

type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------------------------
// ioctls

// The kernel's `struct blkpg_ioctl_arg` and `struct blkpg_partition` (linux/blkpg.h).
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// Runs an ioctl whose argument is a pointer (or, with `arg` null/0, none).
///
/// # Safety
/// `arg` must be what the kernel expects for `request`: a pointer to a live, correctly laid out
/// value of the right size (writable if the kernel writes to it), or an integer argument.
unsafe fn ioctl_raw(
    fd: &impl AsRawFd,
    request: u32,
    arg: libc::c_ulong,
) -> io::Result<libc::c_int> {
    // SAFETY: forwarded from the caller's contract; the fd is borrowed, so it is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn blkpg(file: &File, op: libc::c_int, number: u32, start: u64, len: u64) -> io::Result<()> {
    let start = i64::try_from(start).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let length = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let pno = i32::try_from(number).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut part = BlkpgPartition {
        start,
        length,
        pno,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: BLKPG takes a pointer to blkpg_ioctl_arg whose data points to a blkpg_partition
    // of `datalen` bytes; both live on this stack frame for the duration of the call.
    unsafe {
        ioctl_raw(
            file,
            linux_raw_sys::ioctl::BLKPG,
            &mut arg as *mut _ as libc::c_ulong,
        )
    }
    .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Opened devices

/// An open block device.
#[derive(Debug)]
pub struct BlockDevice {
    path: PathBuf,
    file: File,
}

impl BlockDevice {
    /// Opens `path` (a device node or a symlink to one) read-only.
    pub fn open(path: &Path) -> Result<BlockDevice> {
        Self::open_with(path, false)
    }

    /// Opens `path` for reading and writing.
    pub fn open_rw(path: &Path) -> Result<BlockDevice> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, write: bool) -> Result<BlockDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        if !meta.file_type().is_block_device() {
            return Err(Error::NotBlockDevice {
                path: path.to_owned(),
            });
        }
        Ok(BlockDevice {
            path: path.to_owned(),
            file,
        })
    }

    /// The path it was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for reading and writing sectors.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Mutable access to the open file (for `Read + Write + Seek` users).
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    fn ioctl_err(&self, op: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Ioctl {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// Size in bytes (`BLKGETSIZE64`).
    pub fn size_bytes(&self) -> Result<u64> {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points to `size`.
        unsafe {
            ioctl_raw(
                &self.file,
                linux_raw_sys::ioctl::BLKGETSIZE64,
                &mut size as *mut u64 as libc::c_ulong,
            )
        }
        .map_err(self.ioctl_err("BLKGETSIZE64"))?;
        Ok(size)
    }

    /// Logical sector size in bytes (`BLKSSZGET`): the unit of LBAs in a GPT.
    pub fn logical_sector_size(&self) -> Result<u32> {
        self.int_ioctl(linux_raw_sys::ioctl::BLKSSZGET, "BLKSSZGET")
    }

    /// Physical sector size in bytes (`BLKPBSZGET`).
    pub fn physical_sector_size(&self) -> Result<u32> {
        self.int_ioctl(linux_raw_sys::ioctl::BLKPBSZGET, "BLKPBSZGET")
    }

    fn int_ioctl(&self, request: u32, op: &'static str) -> Result<u32> {
        let mut v: libc::c_int = 0;
        // SAFETY: BLKSSZGET/BLKPBSZGET write one int through the pointer, which points to `v`.
        unsafe {
            ioctl_raw(
                &self.file,
                request,
                &mut v as *mut libc::c_int as libc::c_ulong,
            )
        }
        .map_err(self.ioctl_err(op))?;
        u32::try_from(v).map_err(|_| Error::Ioctl {
            op,
            path: self.path.clone(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })
    }

    /// Asks the kernel to re-read the partition table (`BLKRRPART`).  Fails with `EBUSY` while
    /// a partition is in use.  On kernels without partition-table parsers it succeeds and drops
    /// every partition.
    pub fn reread_partitions(&self) -> Result<()> {
        // SAFETY: BLKRRPART takes no argument.
        unsafe { ioctl_raw(&self.file, linux_raw_sys::ioctl::BLKRRPART, 0) }
            .map_err(self.ioctl_err("BLKRRPART"))?;
        Ok(())
    }

    /// Flushes the device's buffers (`fsync` + `BLKFLSBUF`), so that later reads through other
    /// descriptors see what was written.
    pub fn flush(&self) -> Result<()> {
        self.file.sync_all().map_err(self.ioctl_err("fsync"))?;
        // SAFETY: BLKFLSBUF takes no argument.
        unsafe { ioctl_raw(&self.file, linux_raw_sys::ioctl::BLKFLSBUF, 0) }
            .map_err(self.ioctl_err("BLKFLSBUF"))?;
        Ok(())
    }

    /// Tells the kernel partition `number` spans `len` bytes from byte `start` (`BLKPG` add).
    pub fn add_partition(&self, number: u32, start: u64, len: u64) -> Result<()> {
        log::debug!(
            "{}: BLKPG add partition {number} at {start}+{len}",
            self.path.display()
        );
        blkpg(&self.file, BLKPG_ADD_PARTITION, number, start, len)
            .map_err(self.ioctl_err("BLKPG add partition"))
    }

    /// Removes partition `number` from the kernel's view (`BLKPG` delete).
    pub fn delete_partition(&self, number: u32) -> Result<()> {
        log::debug!("{}: BLKPG delete partition {number}", self.path.display());
        blkpg(&self.file, BLKPG_DEL_PARTITION, number, 0, 0)
            .map_err(self.ioctl_err("BLKPG delete partition"))
    }

    /// Changes the length of partition `number` (`BLKPG` resize; the start must not change).
    pub fn resize_partition(&self, number: u32, start: u64, len: u64) -> Result<()> {
        log::debug!(
            "{}: BLKPG resize partition {number} to {start}+{len}",
            self.path.display()
        );
        blkpg(&self.file, BLKPG_RESIZE_PARTITION, number, start, len)
            .map_err(self.ioctl_err("BLKPG resize partition"))
    }
}

// ---------------------------------------------------------------------------------------------
// sysfs

/// A block device as sysfs describes it (`/sys/class/block/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysBlock {
    /// Kernel name: `vda`, `vda1`, `loop3p2`, `nvme0n1`, `dm-0`, `md127`.
    pub name: String,
    /// Canonical sysfs directory (under /sys/devices).
    pub sys_path: PathBuf,
    /// Device number.
    pub major: u32,
    pub minor: u32,
}

/// A partition as the kernel knows it.  `start` and `size` are in 512-byte units, as sysfs
/// reports them whatever the logical sector size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysPartition {
    pub number: u32,
    pub block: SysBlock,
    pub start: u64,
    pub size: u64,
}

fn read_sys(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Sysfs {
            path: path.to_owned(),
            source,
        })
}

fn read_sys_u64(path: &Path) -> Result<u64> {
    let s = read_sys(path)?;
    s.parse().map_err(|_| Error::SysfsValue {
        path: path.to_owned(),
        value: s,
    })
}

fn parse_dev(path: &Path, s: &str) -> Result<(u32, u32)> {
    let bad = || Error::SysfsValue {
        path: path.to_owned(),
        value: s.to_string(),
    };
    let (ma, mi) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        ma.parse().map_err(|_| bad())?,
        mi.parse().map_err(|_| bad())?,
    ))
}

/// Device number of a block-device node (following symlinks).
pub fn device_number(path: &Path) -> Result<(u32, u32)> {
    let meta = fs::metadata(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(Error::NotBlockDevice {
            path: path.to_owned(),
        });
    }
    let rdev = meta.rdev();
    Ok((libc::major(rdev), libc::minor(rdev)))
}

impl SysBlock {
    /// The sysfs entry of the block device at `path` (a node or a symlink to one).
    pub fn from_path(path: &Path) -> Result<SysBlock> {
        let (major, minor) = device_number(path)?;
        Self::from_devno(major, minor)
    }

    /// The sysfs entry of device `major:minor`.
    pub fn from_devno(major: u32, minor: u32) -> Result<SysBlock> {
        let link = PathBuf::from(format!("{SYSFS}/dev/block/{major}:{minor}"));
        let sys_path = fs::canonicalize(&link).map_err(|source| Error::Sysfs {
            path: link.clone(),
            source,
        })?;
        Self::from_sys_dir(sys_path)
    }

    /// The sysfs entry of kernel device `name` (`/sys/class/block/<name>`).
    pub fn from_name(name: &str) -> Result<SysBlock> {
        let link = PathBuf::from(format!("{SYSFS}/class/block/{name}"));
        let sys_path = fs::canonicalize(&link).map_err(|source| Error::Sysfs {
            path: link.clone(),
            source,
        })?;
        Self::from_sys_dir(sys_path)
    }

    fn from_sys_dir(sys_path: PathBuf) -> Result<SysBlock> {
        let dev_file = sys_path.join("dev");
        let dev = read_sys(&dev_file)?;
        let (major, minor) = parse_dev(&dev_file, &dev)?;
        let name = sys_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SysBlock {
            name,
            sys_path,
            major,
            minor,
        })
    }

    /// Every block device the kernel knows, in `/sys/class/block` order (sorted by name).
    pub fn all() -> Result<Vec<SysBlock>> {
        let dir = PathBuf::from(format!("{SYSFS}/class/block"));
        let rd = fs::read_dir(&dir).map_err(|source| Error::Sysfs {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            // A device can vanish between readdir and canonicalize: skip it.
            if let Ok(b) = SysBlock::from_name(&n) {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// `/dev/<name>`.
    pub fn dev_path(&self) -> PathBuf {
        PathBuf::from("/dev").join(&self.name)
    }

    /// Whether this is a partition of another block device.
    pub fn is_partition(&self) -> bool {
        self.sys_path.join("partition").exists()
    }

    /// Partition number, if this is a partition.
    pub fn partition_number(&self) -> Option<u32> {
        read_sys(&self.sys_path.join("partition"))
            .ok()
            .and_then(|s| s.parse().ok())
    }

    /// The whole disk of a partition (or the device itself if it is not a partition).
    pub fn whole_disk(&self) -> Result<SysBlock> {
        if !self.is_partition() {
            return Ok(self.clone());
        }
        match self.sys_path.parent() {
            Some(p) => Self::from_sys_dir(p.to_owned()),
            None => Err(Error::NotWholeDisk {
                path: self.sys_path.clone(),
            }),
        }
    }

    /// Size in 512-byte units.
    pub fn size_512(&self) -> Result<u64> {
        read_sys_u64(&self.sys_path.join("size"))
    }

    /// Partitions of this disk known to the kernel, by number.
    pub fn partitions(&self) -> Result<Vec<SysPartition>> {
        let rd = fs::read_dir(&self.sys_path).map_err(|source| Error::Sysfs {
            path: self.sys_path.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            let num_file = p.join("partition");
            if !num_file.exists() {
                continue;
            }
            // A partition being removed right now may lose its files under us: skip it.
            let Ok(number) = read_sys_u64(&num_file) else {
                continue;
            };
            let (Ok(start), Ok(size), Ok(block)) = (
                read_sys_u64(&p.join("start")),
                read_sys_u64(&p.join("size")),
                Self::from_sys_dir(p.clone()),
            ) else {
                continue;
            };
            out.push(SysPartition {
                number: u32::try_from(number).unwrap_or(u32::MAX),
                block,
                start,
                size,
            });
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// Names of the devices holding this one (dm, md, ... stacked on it).
    pub fn holders(&self) -> Result<Vec<String>> {
        let dir = self.sys_path.join("holders");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Sysfs { path: dir, source }),
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Whether this is a device-mapper device.
    pub fn is_device_mapper(&self) -> bool {
        self.sys_path.join("dm").is_dir()
    }

    /// Device-mapper name (`/dev/mapper/<name>`), for dm devices.
    pub fn dm_name(&self) -> Option<String> {
        read_sys(&self.sys_path.join("dm/name"))
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// Device-mapper uuid (e.g. `CRYPT-LUKS2-…`), for dm devices that have one.
    pub fn dm_uuid(&self) -> Option<String> {
        read_sys(&self.sys_path.join("dm/uuid"))
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// Whether this is an md (software RAID) array.
    pub fn is_md(&self) -> bool {
        self.sys_path.join("md").is_dir()
    }

    /// Reads `<sysfs dir>/<rel>` trimmed, if it exists.
    pub fn attr(&self, rel: &str) -> Option<String> {
        read_sys(&self.sys_path.join(rel)).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// In-use checks

/// Why a device counts as in use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    /// Devices stacked on it (skipped for device-mapper devices, as Ignition does).
    pub holders: Vec<String>,
    /// Mount points where it is mounted.
    pub mount_points: Vec<PathBuf>,
}

impl Usage {
    pub fn in_use(&self) -> bool {
        !self.holders.is_empty() || !self.mount_points.is_empty()
    }
}

/// Why it is in use: `mounted on /a, held by md127` (mount points first).
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mounts = self
            .mount_points
            .iter()
            .map(|m| format!("mounted on {}", m.display()));
        let holders = self.holders.iter().map(|h| format!("held by {h}"));
        let why: Vec<String> = mounts.chain(holders).collect();
        f.write_str(&why.join(", "))
    }
}

/// Whether the device at `path` is in use, as Ignition decides it: it has holders (ignored for
/// device-mapper devices) or it is the source of a mount.  Mounts are matched by device number
/// and also by source path, since some filesystems (btrfs) report an anonymous device number.
pub fn usage(path: &Path) -> Result<Usage> {
    let blk = SysBlock::from_path(path)?;
    let mounts = mounts::mountinfo().map_err(Error::Mounts)?;
    usage_of(&blk, &mounts)
}

/// [`usage`] for a sysfs entry against a given mount table.
pub fn usage_of(blk: &SysBlock, mounts: &[mounts::MountInfo]) -> Result<Usage> {
    let holders = if blk.is_device_mapper() {
        Vec::new()
    } else {
        blk.holders()?
    };
    let mut mount_points = Vec::new();
    for m in mounts {
        let by_number = m.major == blk.major && m.minor == blk.minor;
        let by_source = m.source.starts_with('/')
            && device_number(Path::new(&m.source)).ok() == Some((blk.major, blk.minor));
        if by_number || by_source {
            mount_points.push(m.mount_point.clone());
        }
    }
    Ok(Usage {
        holders,
        mount_points,
    })
}

/// Shorthand for `usage(path)?.in_use()`.
pub fn in_use(path: &Path) -> Result<bool> {
    Ok(usage(path)?.in_use())
}

// ---------------------------------------------------------------------------------------------
// Telling the kernel

/// A partition as the kernel should see it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionExtent {
    pub number: u32,
    pub start: u64,
    pub len: u64,
}

/// Options for [`notify_kernel`].
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Try `BLKRRPART` first.  Turn off to go straight to per-partition `BLKPG`.
    pub reread: bool,
    /// How long to wait for sysfs and `/dev` to show the partitions.
    pub timeout: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            reread: true,
            timeout: DEFAULT_SETTLE_TIMEOUT,
        }
    }
}

/// What [`notify_kernel`] had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReport {
    /// `BLKRRPART` succeeded (it may still have produced nothing).
    pub reread: bool,
    /// Partitions added, deleted and resized with `BLKPG`.
    pub added: Vec<u32>,
    pub deleted: Vec<u32>,
    pub resized: Vec<u32>,
    /// Device nodes this function created with mknod (only when /dev is not a devtmpfs).
    pub nodes_created: Vec<PathBuf>,
}

/// Makes the kernel's partitions of `disk` equal `table` (every partition the table has, and
/// no other), then waits until sysfs shows them with the expected start and size and their
/// `/dev` nodes exist.
///
/// Tries `BLKRRPART` first (if enabled); whatever it achieved, the kernel's view is then
/// compared with `table` and fixed with `BLKPG`: extra partitions deleted, missing ones added,
/// ones whose length changed resized, ones that moved deleted and re-added.  A partition that
/// must change but is in use is an error ([`Error::PartitionBusy`]); unchanged ones, in use or
/// not, are left alone.
pub fn notify_kernel(
    disk: &Path,
    table: &[PartitionExtent],
    opts: &NotifyOptions,
) -> Result<NotifyReport> {
    let dev = BlockDevice::open(disk)?;
    let blk = SysBlock::from_path(disk)?;
    if blk.is_partition() {
        return Err(Error::NotWholeDisk {
            path: disk.to_owned(),
        });
    }
    let mut report = NotifyReport::default();
    if opts.reread {
        match dev.reread_partitions() {
            Ok(()) => report.reread = true,
            Err(e) => log::debug!("{}: {e}; updating partitions one by one", disk.display()),
        }
    }

    let current = blk.partitions()?;
    let want = |n: u32| table.iter().find(|p| p.number == n);
    // The kernel refuses (EBUSY) an extent that overlaps another partition it still has, so
    // the order matters: deletions first, then shrinking resizes, then growing ones, then
    // additions.
    let mut resizes = Vec::new();
    for p in &current {
        let start = p.start * 512;
        let len = p.size * 512;
        match want(p.number) {
            Some(w) if w.start == start && w.len == len => {}
            Some(w) if w.start == start => resizes.push((p, w.len, len)),
            _ => {
                retry_busy(&p.block, opts.timeout, || dev.delete_partition(p.number))
                    .map_err(|e| busy_or(e, disk, p.number))?;
                report.deleted.push(p.number);
            }
        }
    }
    resizes.sort_by_key(|(_, new_len, old_len)| new_len > old_len);
    for (p, new_len, _) in resizes {
        retry_busy(&p.block, opts.timeout, || {
            dev.resize_partition(p.number, p.start * 512, new_len)
        })
        .map_err(|e| busy_or(e, disk, p.number))?;
        report.resized.push(p.number);
    }
    for w in table {
        let present = current
            .iter()
            .any(|p| p.number == w.number && p.start * 512 == w.start);
        if !present {
            dev.add_partition(w.number, w.start, w.len)?;
            report.added.push(w.number);
        }
    }

    let make_nodes = !dev_is_devtmpfs();
    let deadline = Instant::now() + opts.timeout;
    loop {
        let mismatch = settle_check(&blk, table, make_nodes, &mut report)?;
        match mismatch {
            None => return Ok(report),
            Some(detail) if Instant::now() >= deadline => {
                return Err(Error::SettleTimeout {
                    disk: disk.to_owned(),
                    timeout: opts.timeout,
                    detail,
                })
            }
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn is_ebusy(e: &Error) -> bool {
    matches!(e, Error::Ioctl { source, .. } if source.raw_os_error() == Some(libc::EBUSY))
}

/// Runs a BLKPG change, retrying while it fails with `EBUSY` because something merely has the
/// partition open for a moment (a prober, udev, blkid).  A partition that is mounted or has
/// holders is really in use: that fails at once.
fn retry_busy(part: &SysBlock, timeout: Duration, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    let deadline = Instant::now() + timeout.min(Duration::from_secs(5));
    loop {
        match f() {
            Err(e) if is_ebusy(&e) && Instant::now() < deadline => {
                let really_used = mounts::mountinfo()
                    .ok()
                    .and_then(|m| usage_of(part, &m).ok())
                    .is_none_or(|u| u.in_use());
                if really_used {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn busy_or(e: Error, disk: &Path, number: u32) -> Error {
    match &e {
        Error::Ioctl { source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
            Error::PartitionBusy {
                disk: disk.to_owned(),
                number,
            }
        }
        _ => e,
    }
}

/// Whether /dev is a devtmpfs (the kernel then makes and removes nodes itself).
pub fn dev_is_devtmpfs() -> bool {
    match mounts::mountinfo() {
        Ok(m) => m
            .iter()
            .rev()
            .find(|m| m.mount_point == Path::new("/dev"))
            .is_some_and(|m| m.fs_type == "devtmpfs"),
        Err(_) => false,
    }
}

/// Returns `None` when the kernel and /dev match `table`, or a description of what is not yet
/// there.
fn settle_check(
    disk: &SysBlock,
    table: &[PartitionExtent],
    make_nodes: bool,
    report: &mut NotifyReport,
) -> Result<Option<String>> {
    let parts = disk.partitions()?;
    for w in table {
        let Some(p) = parts.iter().find(|p| p.number == w.number) else {
            return Ok(Some(format!("partition {} missing in sysfs", w.number)));
        };
        if p.start * 512 != w.start || p.size * 512 != w.len {
            return Ok(Some(format!(
                "partition {} is at {}+{} in sysfs, expected {}+{}",
                w.number,
                p.start * 512,
                p.size * 512,
                w.start,
                w.len
            )));
        }
        let node = p.block.dev_path();
        if !node_matches(&node, p.block.major, p.block.minor) {
            if make_nodes {
                make_node(&node, p.block.major, p.block.minor)?;
                report.nodes_created.push(node);
            } else {
                return Ok(Some(format!("{} does not exist yet", node.display())));
            }
        }
    }
    if let Some(extra) = parts
        .iter()
        .find(|p| !table.iter().any(|w| w.number == p.number))
    {
        return Ok(Some(format!("partition {} still present", extra.number)));
    }
    Ok(None)
}

fn node_matches(node: &Path, major: u32, minor: u32) -> bool {
    match fs::symlink_metadata(node) {
        Ok(m) => {
            m.file_type().is_block_device()
                && libc::major(m.rdev()) == major
                && libc::minor(m.rdev()) == minor
        }
        Err(_) => false,
    }
}

/// Creates (or replaces) block-device node `node` for `major:minor`, mode 0660 like udev's
/// default for disks.
pub fn make_node(node: &Path, major: u32, minor: u32) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let err = |source| Error::Mknod {
        path: node.to_owned(),
        source,
    };
    match fs::remove_file(node) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    mknod(
        node,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(major.into(), minor.into()),
    )
    .map_err(|e| err(io::Error::from(e)))?;
    log::debug!("created {} ({major}:{minor})", node.display());
    Ok(())
}

/// Whether a device may hold a disc to read: a CD-ROM drive reporting a disc
/// (`CDROM_DRIVE_STATUS` = `CDS_DISC_OK`), or not a CD-ROM at all (azure's OVF disc).
pub fn cdrom_disc_ready(device: &Path) -> bool {
    const CDROM_DRIVE_STATUS: libc::c_ulong = 0x5326;
    const CDSL_CURRENT: libc::c_ulong = i32::MAX as libc::c_ulong;
    const CDS_DISC_OK: libc::c_int = 4;
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(device)
    else {
        return false;
    };
    // SAFETY: CDROM_DRIVE_STATUS takes an integer slot argument and writes nothing.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), CDROM_DRIVE_STATUS as _, CDSL_CURRENT) };
    if r < 0 {
        // Not a CD-ROM driver (ENOTTY, EINVAL): an image or a disk; let the mount decide.
        let e = std::io::Error::last_os_error().raw_os_error();
        return matches!(e, Some(libc::ENOTTY) | Some(libc::EINVAL));
    }
    r == CDS_DISC_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_says_why() {
        let u = Usage {
            holders: vec!["md127".into(), "dm-0".into()],
            mount_points: vec![PathBuf::from("/boot")],
        };
        assert_eq!(
            u.to_string(),
            "mounted on /boot, held by md127, held by dm-0"
        );
        assert_eq!(Usage::default().to_string(), "");
    }

    #[test]
    fn blkpg_struct_layout_matches_the_kernel() {
        // linux/blkpg.h on x86_64: 8+8+4+64+64 = 148, padded to 152.
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
    }

    #[test]
    fn parse_dev_numbers() {
        let p = Path::new("/sys/x/dev");
        assert_eq!(parse_dev(p, "259:3").unwrap(), (259, 3));
        assert!(parse_dev(p, "259").is_err());
        assert!(parse_dev(p, "a:b").is_err());
    }

    #[test]
    fn regular_file_is_not_a_block_device() {
        let err = BlockDevice::open(Path::new("/proc/self/status")).unwrap_err();
        assert!(matches!(err, Error::NotBlockDevice { .. }), "{err:?}");
        assert!(matches!(
            device_number(Path::new("/proc/self/status")),
            Err(Error::NotBlockDevice { .. })
        ));
    }

    #[test]
    fn usage_counts_holders_and_mounts() {
        let u = Usage::default();
        assert!(!u.in_use());
        let u = Usage {
            holders: vec!["dm-0".into()],
            mount_points: vec![],
        };
        assert!(u.in_use());
    }
}
