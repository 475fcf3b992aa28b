//! Mounting, unmounting and reading the mount table (`/proc/self/mountinfo`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Errors from mount operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounting {source_desc} on {target} (type {fs_type})")]
    Mount {
        source_desc: String,
        target: PathBuf,
        fs_type: String,
        #[source]
        source: io::Error,
    },
    #[error("unmounting {target}")]
    Umount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, Error>;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// Optional fields (`shared:1`, `master:2`, ...).
    pub optional: Vec<String>,
    pub fs_type: String,
    /// Mount source (`/dev/vda4`, `tmpfs`, `none`, ...).
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

/// Decodes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of a mountinfo file.  Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let mut it = line.split(' ');
    let id = it.next()?.parse().ok()?;
    let parent_id = it.next()?.parse().ok()?;
    let (ma, mi) = it.next()?.split_once(':')?;
    let root = PathBuf::from(unescape(it.next()?));
    let mount_point = PathBuf::from(unescape(it.next()?));
    let mount_options = it.next()?.to_string();
    let mut optional = Vec::new();
    loop {
        let f = it.next()?;
        if f == "-" {
            break;
        }
        optional.push(f.to_string());
    }
    let fs_type = unescape(it.next()?);
    let source = unescape(it.next()?);
    let super_options = it.next().unwrap_or("").to_string();
    Some(MountInfo {
        id,
        parent_id,
        major: ma.parse().ok()?,
        minor: mi.parse().ok()?,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// The calling process's mount table.
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_mountinfo(&text))
}

/// Whether `path` is a mount point (exactly, after resolving symlinks).
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let p = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    Ok(mountinfo()?.iter().any(|m| m.mount_point == p))
}

/// The mount at `path` (after resolving symlinks): the last one mounted there, which hides
/// any earlier ones. `None` when nothing is mounted there or `path` does not resolve.
pub fn mounted_at(path: &Path) -> Result<Option<MountInfo>> {
    let Ok(p) = fs::canonicalize(path) else {
        return Ok(None);
    };
    Ok(mountinfo()?.into_iter().rev().find(|m| m.mount_point == p))
}

/// Mounts whose device number is `major:minor`.
pub fn mounts_of_device(major: u32, minor: u32) -> Result<Vec<MountInfo>> {
    Ok(mountinfo()?
        .into_iter()
        .filter(|m| m.major == major && m.minor == minor)
        .collect())
}

/// Splits mount(8)-style options (`["ro", "noatime", "discard"]`, or one comma-separated
/// string) into mount(2) flags and the remaining filesystem-specific data string.
pub fn split_options<S: AsRef<str>>(options: &[S]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for opt in options
        .iter()
        .flat_map(|o| o.as_ref().split(','))
        .filter(|o| !o.is_empty())
    {
        match opt {
            "defaults" | "rw" | "async" | "auto" | "noauto" | "nouser" | "exec" | "suid"
            | "dev" | "atime" | "diratime" | "loud" | "nofail" | "_netdev" => {
                if opt == "rw" {
                    flags.remove(MsFlags::MS_RDONLY);
                }
            }
            "ro" => flags.insert(MsFlags::MS_RDONLY),
            "nosuid" => flags.insert(MsFlags::MS_NOSUID),
            "nodev" => flags.insert(MsFlags::MS_NODEV),
            "noexec" => flags.insert(MsFlags::MS_NOEXEC),
            "sync" => flags.insert(MsFlags::MS_SYNCHRONOUS),
            "dirsync" => flags.insert(MsFlags::MS_DIRSYNC),
            "remount" => flags.insert(MsFlags::MS_REMOUNT),
            "bind" => flags.insert(MsFlags::MS_BIND),
            "rbind" => flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC),
            "noatime" => flags.insert(MsFlags::MS_NOATIME),
            "nodiratime" => flags.insert(MsFlags::MS_NODIRATIME),
            "relatime" => flags.insert(MsFlags::MS_RELATIME),
            "strictatime" => flags.insert(MsFlags::MS_STRICTATIME),
            "lazytime" => flags.insert(MsFlags::MS_LAZYTIME),
            "silent" => flags.insert(MsFlags::MS_SILENT),
            "mand" => flags.insert(MsFlags::MS_MANDLOCK),
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Mounts `source` (a device path or a pseudo source like `tmpfs`) on `target`.
/// `options` are mount(8)-style and are split with [`split_options`].
pub fn mount<S: AsRef<str>>(
    source: &Path,
    target: &Path,
    fs_type: &str,
    options: &[S],
) -> Result<()> {
    let (flags, data) = split_options(options);
    log::debug!(
        "mounting {} on {} (type {fs_type}, flags {flags:?}, data {data:?})",
        source.display(),
        target.display()
    );
    nix::mount::mount(
        Some(source),
        target,
        Some(fs_type),
        flags,
        if data.is_empty() {
            None
        } else {
            Some(data.as_str())
        },
    )
    .map_err(|e| Error::Mount {
        source_desc: source.display().to_string(),
        target: target.to_owned(),
        fs_type: fs_type.to_string(),
        source: io::Error::from(e),
    })
}

/// Unmounts `target`.
pub fn umount(target: &Path) -> Result<()> {
    log::debug!("unmounting {}", target.display());
    nix::mount::umount2(target, MntFlags::empty()).map_err(|e| Error::Umount {
        target: target.to_owned(),
        source: io::Error::from(e),
    })
}

/// Lazily unmounts `target` (`MNT_DETACH`): it disappears now and is cleaned up when unused.
pub fn umount_lazy(target: &Path) -> Result<()> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|e| Error::Umount {
        target: target.to_owned(),
        source: io::Error::from(e),
    })
}

/// A mount that is undone when the guard is dropped (lazily if a plain unmount fails).
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    active: bool,
}

impl MountGuard {
    /// Mounts like [`mount`] and returns a guard for it.
    pub fn mount<S: AsRef<str>>(
        source: &Path,
        target: &Path,
        fs_type: &str,
        options: &[S],
    ) -> Result<MountGuard> {
        mount(source, target, fs_type, options)?;
        Ok(MountGuard {
            target: target.to_owned(),
            active: true,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting errors (the guard then does nothing on drop).
    pub fn unmount(mut self) -> Result<()> {
        self.active = false;
        umount(&self.target)
    }

    /// Keeps the mount: the guard will not unmount it.
    pub fn leak(mut self) -> PathBuf {
        self.active = false;
        self.target.clone()
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.active && umount(&self.target).is_err() {
            if let Err(e) = umount_lazy(&self.target) {
                log::warn!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
25 1 254:3 / / rw,relatime shared:1 - ext4 /dev/vda3 rw,errors=remount-ro
30 25 7:0 /sub /mnt/with\\040space rw,relatime - xfs /dev/loop0 rw,attr2
31 25 0:45 / /var rw - btrfs /dev/loop1p2 rw,space_cache=v2,subvolid=5
bad line
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].optional, vec!["shared:5"]);
        assert_eq!(m[1].source, "/dev/vda3");
        assert_eq!((m[1].major, m[1].minor), (254, 3));
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[2].root, PathBuf::from("/sub"));
        assert!(m[2].optional.is_empty());
        assert_eq!(m[3].fs_type, "btrfs");
        assert_eq!(m[3].super_options, "rw,space_cache=v2,subvolid=5");
    }

    #[test]
    fn own_mountinfo_has_root() {
        let m = mountinfo().unwrap();
        assert!(m.iter().any(|m| m.mount_point == Path::new("/")));
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = split_options(&["ro,noatime", "discard", "subvol=@home"]);
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOATIME));
        assert_eq!(d, "discard,subvol=@home");
        let (f, d) = split_options::<&str>(&[]);
        assert!(f.is_empty());
        assert_eq!(d, "");
        let (f, _) = split_options(&["ro", "rw"]);
        assert!(!f.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn the_mount_at_a_path() {
        let proc = mounted_at(Path::new("/proc"))
            .unwrap()
            .expect("/proc is a mount");
        assert_eq!(proc.fs_type, "proc");
        assert!(mounted_at(Path::new("/no/such/ember/path"))
            .unwrap()
            .is_none());
    }
}
