//! Process 1: API filesystems, console, the work process, then switch_root or the failure
//! path.  Never returns.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use super::{
    reboot_next, say, use_shell, BootArgs, BOOT_STATUS, PATH, RESCUE_SHELL, SYSROOT, WORKER_FLAG,
};
use crate::logging::chain;
use crate::stages::engine;
use crate::system::pid1::{self, Exit};
use crate::system::switch_root;

pub fn main(args: Vec<OsString>) -> ! {
    // Process 1 was the kernel's init thread until the exec of /init: the CPU time of the
    // kernel's own start-up is on its account already.
    let before = pid1::cpu_time(false);
    // What the kernel gave init, handed on unchanged to the real init.
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mounted = pid1::mount_api_filesystems();
    pid1::ensure_console();
    std::env::set_var("PATH", PATH);
    say(&format!(
        "Ember {} started as process 1",
        crate::cli::VERSION
    ));
    if let Err(e) = mounted {
        eprintln!("ember: mounting the API filesystems: {}", chain(&e));
        failure(&BootArgs::default());
    }
    let bargs = BootArgs::from_system();
    if let Some(level) = &bargs.log {
        std::env::set_var(crate::logging::LEVEL_ENV, level);
    }
    // For switch_root's own messages; the console is on the standard descriptors.
    crate::logging::init(crate::logging::Target::Stdout);
    let exit = match std::process::Command::new("/proc/self/exe")
        .arg0("init")
        .arg(WORKER_FLAG)
        .spawn()
    {
        Ok(child) => pid1::reap_until(child.id()),
        Err(e) => {
            eprintln!("ember: starting the boot process: {e}");
            failure(&bargs);
        }
    };
    match exit {
        Exit::Code(0) => {
            say(&cpu_line(before));
            say(&format!(
                "switching to the new root: exec {} in {SYSROOT}",
                bargs.init.display()
            ));
            let e = switch_root::switch_root(Path::new(SYSROOT), &bargs.init, &args[..], &env);
            eprintln!("ember: switching to the new root failed: {}", chain(&e));
        }
        Exit::Code(code) => say(&format!("the boot failed (exit code {code})")),
        Exit::Signal(sig) => say(&format!(
            "the boot process crashed (signal {sig}); this is a bug in Ember"
        )),
    }
    failure(&bargs)
}

/// Ember's CPU time (process 1 and the boot process, user and system, from getrusage) and
/// that of the programs the boot process ran, as one console line.  The boot process's own
/// share comes from its status file: the kernel only reports it added to its children's.
/// System time includes the kernel's work for Ember: loading modules, probing devices.
fn cpu_line(before: pid1::CpuTime) -> String {
    let now = pid1::cpu_time(false);
    let own = pid1::CpuTime {
        user: now.user.saturating_sub(before.user),
        system: now.system.saturating_sub(before.system),
    };
    let descendants = pid1::cpu_time(true);
    let status = std::fs::read(BOOT_STATUS)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let ms = |key: &str| {
        status
            .as_ref()
            .and_then(|v| v["cpu"][key].as_u64())
            .map(Duration::from_millis)
    };
    // Without the status file, everything the children used counts as Ember's.
    let worker = match (ms("userMs"), ms("systemMs")) {
        (Some(user), Some(system)) => pid1::CpuTime {
            user: user.min(descendants.user),
            system: system.min(descendants.system),
        },
        _ => descendants,
    };
    let ember = pid1::CpuTime {
        user: own.user + worker.user,
        system: own.system + worker.system,
    };
    let s = |d: Duration| d.as_secs_f64();
    format!(
        "CPU time: Ember {:.3} s (user {:.3} s, system {:.3} s; process 1 {:.3} s, boot process \
         {:.3} s), programs it ran {:.3} s",
        s(ember.total()),
        s(ember.user),
        s(ember.system),
        s(own.total()),
        s(worker.total()),
        s(descendants.total().saturating_sub(worker.total()))
    )
}

/// The failure path: a rescue shell when the image has one (and `ember.shell` allows it),
/// otherwise the report stays on the console for `ember.failure_timeout`; then a reboot.
fn failure(args: &BootArgs) -> ! {
    say(&format!(
        "the failure report is above; details in {BOOT_STATUS} and {}",
        engine::DEFAULT_STATUS_FILE
    ));
    if use_shell(args) {
        say(&format!(
            "starting a rescue shell ({RESCUE_SHELL}); the machine reboots when it exits"
        ));
        let mut cmd = std::process::Command::new(RESCUE_SHELL);
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe system calls: a new session with the console as its terminal,
        // so that the shell has job control and ^C.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 1);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => {
                pid1::reap_until(child.id());
            }
            Err(e) => {
                eprintln!("ember: starting the rescue shell: {e}");
                wait(args.failure_timeout);
            }
        }
    } else {
        wait(args.failure_timeout);
    }
    say("rebooting");
    if crate::system::mounts::is_mount_point(Path::new(SYSROOT)).unwrap_or(false) {
        let _ = crate::system::mounts::umount(Path::new(SYSROOT));
    }
    let e = pid1::reboot(false);
    eprintln!("ember: rebooting: {e}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn wait(d: Duration) {
    if !d.is_zero() {
        say(&reboot_next(d));
        std::thread::sleep(d);
    }
}
