//! Command lines. The binary's name chooses the personality:
//!
//! | argv\[0\]            | behaves as                                   |
//! |----------------------|----------------------------------------------|
//! | `ignition-validate`  | Ignition's validator (same flags, output, exit codes) |
//! | anything else        | Ember's own command line (`ember help`)      |
//!
//! Each personality returns an exit code; `main` only exits with it.

pub mod goflag;
pub mod ignition_validate;
pub mod lint;

use std::ffi::OsString;
use std::io::Write;

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
        _ => ember_main(rest),
    }
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
  ember version

Commands:
  validate   check configs and report every problem with its location
  schema     print the JSON Schema (draft 2020-12) of a spec version (default 3.6.0)
  version    print Ember's version

Run `ember validate --help` for the linter's options and exit codes.

Invoked as `ignition-validate`, Ember behaves as Ignition's validator.
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
