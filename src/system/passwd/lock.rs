//! Locking the account files inside the target root, compatible with shadow-utils and glibc.
//!
//! Two locks are taken, in this order, exactly as `useradd --root` ends up doing:
//! 1. `lckpwdf(3)`: an exclusive `fcntl` write lock on `/etc/.pwd.lock` (created 0600),
//!    waiting up to 15 seconds like glibc;
//! 2. for each account file, shadow-utils' link lock: write our pid to `<file>.<pid>`, hard
//!    link it to `<file>.lock` and check the link count. An existing lock whose pid is no
//!    longer running is stale and replaced; a live one is an error.
//!
//! Dropping [`Locks`] removes the `.lock` files (in reverse order) and then releases the
//! fcntl lock. `/etc/.pwd.lock` itself stays, as glibc leaves it.

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use super::Error;
use crate::system::rootfs::{OpenOptions, Root};

const PWD_LOCK: &str = "/etc/.pwd.lock";
const LCKPWDF_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) struct Locks<'r> {
    root: &'r Root,
    held: Vec<String>,
    _pwd_lock: File,
}

impl std::fmt::Debug for Locks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks").field("held", &self.held).finish()
    }
}

impl<'r> Locks<'r> {
    /// Takes `/etc/.pwd.lock`, then a link lock for each of `files` (in-root paths).
    pub fn acquire(root: &'r Root, files: &[&str]) -> Result<Locks<'r>, Error> {
        let pwd_lock = lckpwdf(root)?;
        let mut locks = Locks {
            root,
            held: Vec::new(),
            _pwd_lock: pwd_lock,
        };
        for f in files {
            lock_file(root, f)?;
            locks.held.push(format!("{f}.lock"));
        }
        Ok(locks)
    }
}

impl Drop for Locks<'_> {
    fn drop(&mut self) {
        for l in self.held.iter().rev() {
            if let Err(e) = self.root.unlink(l) {
                log::warn!("removing lock file {l}: {e}");
            }
        }
    }
}

fn lckpwdf(root: &Root) -> Result<File, Error> {
    let opts = OpenOptions {
        write: true,
        create: true,
        mode: 0o600,
        ..OpenOptions::default()
    };
    let file = root.open_file(PWD_LOCK, &opts)?;
    let start = Instant::now();
    loop {
        match rustix::fs::fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::ACCESS) => {
                if start.elapsed() >= LCKPWDF_TIMEOUT {
                    return Err(Error::LockTimeout { path: PWD_LOCK });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(Error::Lock {
                    path: PWD_LOCK.to_string(),
                    source: std::io::Error::from(e),
                })
            }
        }
    }
}

/// shadow-utils' `do_lock_file`, inside the root.
fn lock_file(root: &Root, file: &str) -> Result<(), Error> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let tmp = format!("{file}.{pid}");
    let lock = format!("{file}.lock");
    let result = lock_with_tmp(root, &tmp, &lock, pid);
    // The pid file is only a stepping stone; never leave it behind.
    let _ = root.unlink(&tmp);
    result
}

fn lock_with_tmp(root: &Root, tmp: &str, lock: &str, pid: i32) -> Result<(), Error> {
    let opts = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        mode: 0o600,
        ..OpenOptions::default()
    };
    let mut f = root.open_file(tmp, &opts)?;
    // shadow-utils writes the pid followed by its terminating NUL.
    f.write_all(format!("{pid}\0").as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|source| Error::Lock {
            path: tmp.to_string(),
            source,
        })?;
    drop(f);
    for attempt in 0..2 {
        match root.hard_link(tmp, lock) {
            Ok(()) => {
                let links = root.lstat(tmp)?.map(|s| s.nlink).unwrap_or(0);
                if links != 2 {
                    return Err(Error::LockInUse {
                        path: lock.to_string(),
                    });
                }
                return Ok(());
            }
            Err(e) if e.is_already_exists() && attempt == 0 => {
                let other = root.read_file(lock)?;
                let text = String::from_utf8_lossy(&other);
                let text = text.split('\0').next().unwrap_or("").trim();
                let Ok(other_pid) = text.parse::<i32>() else {
                    return Err(Error::LockInUse {
                        path: lock.to_string(),
                    });
                };
                if other_pid > 0 && process_alive(other_pid) {
                    return Err(Error::Locked {
                        path: lock.to_string(),
                        pid: other_pid,
                    });
                }
                log::info!("removing stale lock {lock} of process {other_pid}");
                root.unlink(lock)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::LockInUse {
        path: lock.to_string(),
    })
}

fn process_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}
