//! Ember as the initramfs's `/init` (process 1), without systemd or dracut.
//!
//! Process 1 ([`init`]) only does what must happen in process 1: it mounts the API
//! filesystems, makes sure the console is on the standard descriptors, starts a second
//! process for the work (the same binary with [`WORKER_FLAG`]), reaps orphans while it waits,
//! and then either switches to the new root (`system::switch_root`) or handles the failure
//! (rescue shell, else a reboot after `ember.failure_timeout`).  A crash of the work process
//! (a panic aborts) therefore never panics the kernel.
//!
//! The work process ([`provision`]) loads the image's kernel modules, decides whether this is
//! the first boot, provisions by running Ignition's stages in-process, and leaves the root
//! filesystem mounted on `/sysroot`.  See `docs/boot.md`.

pub mod cmdline;
pub mod init;
pub mod provision;

use std::ffi::OsString;

pub use cmdline::BootArgs;

/// The argument that makes `init` the work process.
pub const WORKER_FLAG: &str = "--ember-boot-worker";
/// Where the new root is mounted.
pub const SYSROOT: &str = "/sysroot";
/// The kernel modules loaded at boot, one name per line (`#` comments).
pub const MODULE_LIST: &str = "/etc/ember/modules";
/// The boot's own status: phases with their times, first-boot decision, network, error.
pub const BOOT_STATUS: &str = "/run/ember/boot.json";
/// The file in the root filesystem that says it was provisioned (Ignition's result file).
pub const STAMP: &str = crate::stages::RESULT_FILE;
/// PATH for the stages' programs.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The rescue shell process 1 starts after a failure, when the image has one.
pub const RESCUE_SHELL: &str = "/bin/sh";

/// Whether process 1 starts the rescue shell after a failure: the image has one and
/// `ember.shell` allows it.
pub fn use_shell(args: &BootArgs) -> bool {
    args.shell && std::path::Path::new(RESCUE_SHELL).exists()
}

/// What process 1 does after a failure (the report's `next:` line): a rescue shell when
/// [`use_shell`], else a reboot after `ember.failure_timeout`.
pub fn failure_next(args: &BootArgs) -> String {
    if use_shell(args) {
        format!("starting a shell on the console ({RESCUE_SHELL}); exit it to reboot")
    } else {
        reboot_next(args.failure_timeout)
    }
}

/// The reboot after `timeout`, as said on the console.
pub fn reboot_next(timeout: std::time::Duration) -> String {
    if timeout.is_zero() {
        "rebooting".to_string()
    } else {
        format!(
            "rebooting in {} s (ember.failure_timeout=SECONDS on the kernel command line changes this)",
            timeout.as_secs()
        )
    }
}

/// Entry point for the `init` personality.  As process 1 it never returns.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.first().is_some_and(|a| a == WORKER_FLAG) {
        return provision::main();
    }
    if std::process::id() != 1 {
        eprintln!(
            "ember: init works only as process 1, as the initramfs's /init \
             (see docs/boot.md); use `ember run` to provision from a running system"
        );
        return crate::cli::exit::USAGE;
    }
    init::main(args)
}

/// A boot milestone on the console, with the kernel log's clock (`[   2.345678] ember: …`),
/// and in the kernel log at debug level (so `dmesg` has it after the switch).
pub fn say(msg: &str) {
    use std::io::Write;
    let t = crate::system::pid1::uptime();
    let line = format!(
        "[{:5}.{:06}] ember: {msg}\n",
        t.as_secs(),
        t.subsec_micros()
    );
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    crate::system::pid1::kmsg(7, msg);
}
