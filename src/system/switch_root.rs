//! Leaving the initramfs: the classic switch_root.
//!
//! 1. check that the init program exists inside the new root (symlinks resolved inside it);
//! 2. move `/dev`, `/proc`, `/sys` and `/run` into the new root (a mount point the new root
//!    lacks and cannot get is detached instead);
//! 3. free the initramfs: delete every file of the old root's filesystem, never crossing into
//!    another mount (only when that filesystem is a ramfs or tmpfs: a disk is never touched);
//! 4. move the new root onto `/`, chroot into it, and exec init as process 1.
//!
//! Everything before the exec is checked, so that a failure leaves a usable initramfs
//! (the init check) or at worst a consistent new root.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::system::rootfs::Root;

/// The API filesystems moved into the new root.
pub const MOVED_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is not a mount point")]
    NotMounted(PathBuf),
    #[error("{init} does not exist in the new root {root}")]
    NoInit { root: PathBuf, init: PathBuf },
    #[error("looking for {init} in the new root")]
    CheckInit {
        init: PathBuf,
        #[source]
        source: crate::system::rootfs::Error,
    },
    #[error("{op}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("executing {init} in the new root")]
    Exec {
        init: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let op = op.into();
    move |source| Error::Io { op, source }
}

fn nix_err(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let op = op.into();
    move |e| Error::Io {
        op,
        source: io::Error::from(e),
    }
}

/// Checks that `init` (an absolute path inside the root) resolves to an executable file
/// inside `new_root`.
pub fn check_init(new_root: &Path, init: &Path) -> Result<(), Error> {
    let root = Root::open(new_root).map_err(|source| Error::CheckInit {
        init: init.to_owned(),
        source,
    })?;
    match root.stat_follow(init) {
        Ok(Some(st)) if st.is_file() && st.mode & 0o111 != 0 => Ok(()),
        Ok(_) => Err(Error::NoInit {
            root: new_root.to_owned(),
            init: init.to_owned(),
        }),
        Err(source) => Err(Error::CheckInit {
            init: init.to_owned(),
            source,
        }),
    }
}

/// Whether `path` is on a ramfs or tmpfs (what an initramfs is).
pub fn is_ram_filesystem(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| {
            let t = s.f_type;
            t == RAMFS_MAGIC || t == TMPFS_MAGIC
        })
        .unwrap_or(false)
}

/// Deletes everything under `dir` that is on the same filesystem as `dir` itself; other
/// mounts (and what is under them) are left alone.  Returns the number of entries removed.
/// Errors on single entries are skipped (freeing memory is best effort).
pub fn remove_same_filesystem(dir: &Path) -> io::Result<u64> {
    let dev = std::fs::symlink_metadata(dir)?.dev();
    Ok(remove_children(dir, dev))
}

fn remove_children(dir: &Path, dev: u64) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.dev() != dev {
            continue; // a mount point: not ours to delete
        }
        if md.is_dir() {
            n += remove_children(&p, dev);
            if std::fs::remove_dir(&p).is_ok() {
                n += 1;
            }
        } else if std::fs::remove_file(&p).is_ok() {
            n += 1;
        }
    }
    n
}

/// Moves the API filesystems from the current root into `new_root`.
pub fn move_api_mounts(new_root: &Path) -> Result<(), Error> {
    // Decided before anything moves: the check reads /proc/self/mountinfo.
    let mounted: Vec<&str> = MOVED_MOUNTS
        .into_iter()
        .filter(|m| crate::system::mounts::is_mount_point(Path::new(m)).unwrap_or(false))
        .collect();
    for m in mounted {
        let src = Path::new(m);
        let dst = new_root.join(&m[1..]);
        if !dst.is_dir() && std::fs::create_dir(&dst).is_err() {
            log::warn!(
                "{} has no {m} and it cannot be created: detaching the initramfs's {m}",
                new_root.display()
            );
            let _ = crate::system::mounts::umount_lazy(src);
            continue;
        }
        nix::mount::mount(
            Some(src),
            &dst,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(nix_err(format!("moving {m} to {}", dst.display())))?;
    }
    Ok(())
}

/// Switches to `new_root` and runs `init` there as this process (which should be process 1),
/// with `args` (after argv\[0\]) and exactly the environment `env`.  Returns only on failure.
pub fn switch_root(
    new_root: &Path,
    init: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> Error {
    match prepare(new_root, init) {
        Ok(()) => {}
        Err(e) => return e,
    }
    let e = std::process::Command::new(init)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .exec();
    Error::Exec {
        init: init.to_owned(),
        source: e,
    }
}

fn prepare(new_root: &Path, init: &Path) -> Result<(), Error> {
    if !crate::system::mounts::is_mount_point(new_root).unwrap_or(false) {
        return Err(Error::NotMounted(new_root.to_owned()));
    }
    check_init(new_root, init)?;
    move_api_mounts(new_root)?;
    std::env::set_current_dir(new_root)
        .map_err(io_err(format!("changing to {}", new_root.display())))?;
    if is_ram_filesystem(Path::new("/")) {
        match remove_same_filesystem(Path::new("/")) {
            Ok(n) => log::debug!("freed the initramfs ({n} entries)"),
            Err(e) => log::warn!("freeing the initramfs: {e}"),
        }
    } else {
        log::warn!("/ is not a ramfs or tmpfs: leaving its files alone");
    }
    nix::mount::mount(
        Some(Path::new(".")),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(nix_err(format!("moving {} to /", new_root.display())))?;
    rustix::process::chroot(".").map_err(|e| Error::Io {
        op: "changing the root directory".into(),
        source: io::Error::from_raw_os_error(e.raw_os_error()),
    })?;
    std::env::set_current_dir("/").map_err(io_err("changing to /"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ember-sr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn init_is_looked_up_inside_the_root() {
        use std::os::unix::fs::PermissionsExt;
        let r = temp("init");
        std::fs::create_dir_all(r.join("lib/systemd")).unwrap();
        std::fs::create_dir_all(r.join("sbin")).unwrap();
        std::fs::write(r.join("lib/systemd/systemd"), "x").unwrap();
        std::fs::set_permissions(
            r.join("lib/systemd/systemd"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        // An absolute symlink, resolved inside the root, not on the host.
        std::os::unix::fs::symlink("/lib/systemd/systemd", r.join("sbin/init")).unwrap();
        check_init(&r, Path::new("/sbin/init")).unwrap();
        std::fs::write(r.join("sbin/plain"), "x").unwrap();
        assert!(matches!(
            check_init(&r, Path::new("/sbin/plain")),
            Err(Error::NoInit { .. })
        ));
        assert!(matches!(
            check_init(&r, Path::new("/sbin/missing")),
            Err(Error::NoInit { .. })
        ));
        // Escaping the root resolves inside it, where there is nothing.
        std::os::unix::fs::symlink("../../../../bin/sh", r.join("sbin/esc")).unwrap();
        assert!(check_init(&r, Path::new("/sbin/esc")).is_err());
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn freeing_stops_at_mount_points() {
        // SAFETY: geteuid(2) has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "this test needs root (it mounts a tmpfs); run it as root"
        );
        let r = temp("free");
        std::fs::create_dir_all(r.join("a/b/c")).unwrap();
        std::fs::write(r.join("a/b/c/file"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("a/link")).unwrap();
        std::fs::create_dir_all(r.join("mnt")).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &r.join("mnt"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(r.join("mnt/keep"), "x").unwrap();
        let n = remove_same_filesystem(&r).unwrap();
        assert_eq!(n, 5, "a, a/b, a/b/c, a/b/c/file, a/link");
        assert!(r.join("mnt/keep").exists());
        assert!(!r.join("a").exists());
        assert!(Path::new("/etc/passwd").exists());
        nix::mount::umount(&r.join("mnt")).unwrap();
        std::fs::remove_dir_all(&r).unwrap();
    }
}
