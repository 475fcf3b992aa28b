//! Command lines. The binary's name chooses the personality:
//!
//! | argv\[0\]            | behaves as                                   |
//! |----------------------|----------------------------------------------|
//! | `ignition`           | Ignition's stage runner (`-platform`, `-stage`, ...; [`ignition`]) |
//! | `ignition-apply`     | Ignition's apply tool (only inside a container) |
//! | `ignition-rmcfg`     | Ignition's config deletion for the platform  |
//! | `ignition-validate`  | Ignition's validator (same flags, output, exit codes) |
//! | `init` (or process 1 without arguments) | the initramfs's init ([`crate::boot`]) |
//! | `modprobe`           | a kmod-free module loader ([`crate::system::kmod`]) |
//! | anything else        | Ember's own command line (`ember help`)      |
//!
//! Only these exact names switch personality: a binary under any other name (`ember`,
//! `ember-x86_64`, `ignition.bak`) is Ember's own command line, so that a mistyped or
//! renamed binary shows help instead of running a boot stage.
//!
//! Each personality returns an exit code; `main` only exits with it.

pub mod ember_stage;
pub mod goflag;
pub mod ignition;
pub mod ignition_validate;
pub mod lint;
pub mod plan;

use std::ffi::OsString;
use std::io::{Read, Write};

use crate::stages::engine;

/// Ember's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Ignition release whose behaviour Ember follows (used where tools expect Ignition's
/// version, such as `-version` of the compatible personalities).
pub const IGNITION_COMPAT_VERSION: &str = "2.27.0";

/// Exit codes of `ember` commands.
pub mod exit {
    /// Success (for `validate`: no errors).
    pub const OK: i32 = 0;
    /// The command ran and found errors (for `validate`: the config has errors).
    pub const FAILURE: i32 = 1;
    /// Bad usage, or input that could not be read.
    pub const USAGE: i32 = 2;
}

pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let rest: Vec<OsString> = args.into_iter().skip(1).collect();
    match argv0.as_str() {
        "ignition-validate" => ignition_validate::main(&argv0, &to_strings(&rest)),
        "ignition" => ignition::main(&argv0, &to_strings(&rest)),
        "ignition-apply" => ignition::apply_main(&argv0, rest),
        "ignition-rmcfg" => ignition::rmcfg_main(&argv0, &to_strings(&rest)),
        // The minimal initramfs: Ember is /init, and /sbin/modprobe for the kernel's requests.
        "init" => crate::boot::main(rest),
        _ if std::process::id() == 1 && rest.is_empty() => crate::boot::main(rest),
        "modprobe" => crate::system::kmod::modprobe_main(&to_strings(&rest)),
        _ => ember_main(rest),
    }
}

/// `Err(the platforms, comma-separated)` when `p` is not a platform Ember knows.
pub fn check_platform(p: &str) -> Result<(), String> {
    if crate::providers::PLATFORMS.contains(&p) {
        Ok(())
    } else {
        Err(crate::providers::PLATFORMS.join(", "))
    }
}

/// Reads a config named on the command line: a file, or `-` for standard input. At most
/// [`engine::MAX_CONFIG_SIZE`] bytes are read (`/dev/zero` would otherwise fill the memory).
pub fn read_input(name: &str) -> Result<Vec<u8>, String> {
    let limit = engine::MAX_CONFIG_SIZE;
    let mut v = Vec::new();
    let shown = if name == "-" {
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut v)
            .map_err(|e| format!("reading standard input: {e}"))?;
        "standard input"
    } else {
        let f = std::fs::File::open(name).map_err(|e| format!("cannot open {name}: {e}"))?;
        if let Ok(m) = f.metadata() {
            v.reserve_exact(m.len().min(limit + 1) as usize);
        }
        f.take(limit + 1)
            .read_to_end(&mut v)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        name
    };
    if v.len() as u64 > limit {
        return Err(format!(
            "{shown} is larger than {} MiB, the largest config Ember reads",
            limit >> 20
        ));
    }
    Ok(v)
}

fn to_strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

const HELP: &str = "\
ember: early-boot provisioning for Ignition configs (spec 3.0.0-3.6.0)

Usage:
  ember validate [--format human|json|sarif] [--strict] FILE...|-
  ember schema [VERSION]
  ember stage NAME --platform P [--root DIR] [--config-cache F] [--state-file F]
              [--neednet F] [--fetch-timeout D] [--syslog]
  ember run --platform P [--root DIR] [same options as stage]
  ember apply --root DIR [--ignore-unsupported] [--offline] CONFIG|-
  ember plan [--platform P] [--root DIR] CONFIG|-
  ember version

Commands:
  validate   check configs and report every problem with its location
  schema     print the JSON Schema (draft 2020-12) of a spec version (default 3.6.0)
  stage      run one provisioning stage (fetch-offline, fetch, kargs, disks, mount, files,
             umount), as `ignition` does at boot
  run        run every stage in boot order in one process
  apply      apply a config to a directory tree (image builds, containers)
  plan       show everything the stages would do on this machine with a config, without
             doing it (destructive operations in capitals, with the data they destroy)
  version    print Ember's version

Run `ember COMMAND --help` for a command's options and exit codes.

Invoked as `ignition`, `ignition-apply`, `ignition-rmcfg` or `ignition-validate` (a symlink
or a copy under that name), Ember behaves as that Ignition command, flag for flag.
";

fn ember_main(args: Vec<OsString>) -> i32 {
    let mut it = args.into_iter();
    let Some(cmd) = it.next() else {
        eprint!("{HELP}");
        return exit::USAGE;
    };
    let rest: Vec<OsString> = it.collect();
    match cmd.to_string_lossy().as_ref() {
        "validate" | "lint" => lint::main(rest),
        "schema" => schema_main(rest),
        "stage" => ember_stage::stage_main(rest),
        "run" => ember_stage::run_main(rest),
        "apply" => ember_stage::apply_main(rest),
        "plan" => plan::main(rest),
        "version" | "--version" | "-V" => {
            println!("ember {VERSION} (Ignition {IGNITION_COMPAT_VERSION} compatible)");
            exit::OK
        }
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            exit::OK
        }
        other => {
            eprintln!("ember: unknown command {other:?}\n");
            eprint!("{HELP}");
            exit::USAGE
        }
    }
}

fn schema_main(args: Vec<OsString>) -> i32 {
    let args = to_strings(&args);
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("Usage: ember schema [VERSION]\n\nPrints the JSON Schema of a spec version (default {}).", crate::config::Spec::MAX_STABLE);
        return exit::OK;
    }
    if args.len() > 1 {
        eprintln!("ember schema: at most one version");
        return exit::USAGE;
    }
    let spec = match args.first() {
        None => crate::config::Spec::MAX_STABLE,
        Some(v) => match crate::config::Spec::from_canonical(v)
            .or_else(|| crate::config::Spec::from_canonical(&format!("{v}.0")))
        {
            Some(s) => s,
            None => {
                eprintln!(
                    "ember schema: unknown version {v:?}; supported: {} and 3.7.0-experimental",
                    crate::config::version::supported_list()
                );
                return exit::USAGE;
            }
        },
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", crate::config::schema::schema_json(spec));
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_read_up_to_the_config_size_limit() {
        let dir = std::env::temp_dir().join(format!("ember-cli-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.ign");
        std::fs::write(&small, b"{}").unwrap();
        assert_eq!(read_input(small.to_str().unwrap()).unwrap(), b"{}");
        // A sparse file one byte over the limit: refused once the limit is read, not after.
        let big = dir.join("big.ign");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(engine::MAX_CONFIG_SIZE + 1)
            .unwrap();
        let err = read_input(big.to_str().unwrap()).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{} is larger than 256 MiB, the largest config Ember reads",
                big.display()
            )
        );
        let missing = dir.join("missing.ign");
        let err = read_input(missing.to_str().unwrap()).unwrap_err();
        assert!(err.starts_with("cannot open "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
