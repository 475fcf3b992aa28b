//! What process 1 needs from the kernel before and after it has work to do: the API
//! filesystems, a console on the standard descriptors, the kernel log, the boot clock,
//! reaping orphans, and rebooting.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::system::mounts;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating {path}")]
    Mkdir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Mount(#[from] mounts::Error),
}

/// The API filesystems an initramfs mounts: (source, target, type, options).
pub const API_MOUNTS: [(&str, &str, &str, &str); 4] = [
    ("proc", "/proc", "proc", "nosuid,nodev,noexec"),
    ("sysfs", "/sys", "sysfs", "nosuid,nodev,noexec"),
    ("devtmpfs", "/dev", "devtmpfs", "nosuid,mode=0755"),
    ("tmpfs", "/run", "tmpfs", "nosuid,nodev,mode=0755"),
];

/// Mounts /proc, /sys, /dev (devtmpfs) and /run (tmpfs) where they are not mounted yet.
pub fn mount_api_filesystems() -> Result<(), Error> {
    for (source, target, fstype, options) in API_MOUNTS {
        let t = Path::new(target);
        std::fs::create_dir_all(t).map_err(|source| Error::Mkdir {
            path: target.to_string(),
            source,
        })?;
        // /proc is needed to tell; before it is mounted nothing is.
        let mounted = Path::new("/proc/self/mountinfo").exists()
            && mounts::is_mount_point(t).unwrap_or(false);
        if !mounted {
            mounts::mount(Path::new(source), t, fstype, &[options])?;
        }
    }
    Ok(())
}

/// Makes sure descriptors 0, 1 and 2 are open, on /dev/console when they are not (the kernel
/// opens them for init only when the initramfs has a /dev/console).
pub fn ensure_console() {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    let closed = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0;
    if !(closed(0) || closed(1) || closed(2)) {
        return;
    }
    let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        if closed(fd) {
            // SAFETY: dup2 onto a closed standard descriptor; `console` stays open meanwhile.
            unsafe { libc::dup2(console.as_raw_fd(), fd) };
        }
    }
    // `console` may itself be one of 0..2 (the lowest free number): keep it open then.
    if console.as_raw_fd() <= 2 {
        std::mem::forget(console);
    }
}

/// Time since boot (CLOCK_BOOTTIME), the clock of the kernel's log timestamps.
pub fn uptime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// CPU time from getrusage(2): of this process, or (`children`) of its descendants that
/// have been waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

pub fn cpu_time(children: bool) -> CpuTime {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: rusage is plain old data; getrusage(2) fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return CpuTime::default();
    }
    let tv = |t: libc::timeval| {
        Duration::new(t.tv_sec.max(0) as u64, 0)
            + Duration::from_micros(t.tv_usec.clamp(0, 999_999) as u64)
    };
    CpuTime {
        user: tv(ru.ru_utime),
        system: tv(ru.ru_stime),
    }
}

/// Writes one line to the kernel log (`/dev/kmsg`) at `level` (0–7), as `ember: <msg>`.
/// Best effort: the kernel rate-limits user messages.
pub fn kmsg(level: u8, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(format!("<{}>ember: {msg}\n", level.min(7)).as_bytes());
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Waits for child `pid`, reaping every other child (orphans re-parented to process 1)
/// meanwhile.
pub fn reap_until(pid: u32) -> Exit {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid(2) with a valid pointer to `status`.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ECHILD: nothing left to wait for (the child was reaped elsewhere).
            return Exit::Code(-1);
        }
        if r as u32 == pid {
            if libc::WIFEXITED(status) {
                return Exit::Code(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Exit::Signal(libc::WTERMSIG(status));
            }
        }
    }
}

/// Flushes the filesystems and reboots (or powers off).  Returns only if the kernel refused.
pub fn reboot(power_off: bool) -> std::io::Error {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let cmd = if power_off {
        libc::RB_POWER_OFF
    } else {
        libc::RB_AUTOBOOT
    };
    // SAFETY: reboot(2) with a valid command; it only returns on error.
    unsafe { libc::reboot(cmd) };
    std::io::Error::last_os_error()
}
