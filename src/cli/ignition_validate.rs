//! The `ignition-validate` personality: Ignition's validator, flag for flag and byte for byte.
//!
//! * `ignition-validate [-version] CONFIG|-`
//! * report lines (`error at $.x, line L col C: message`) on stdout, one per finding, only the
//!   findings Ignition itself makes;
//! * exit 1 when there is an error, when the config cannot be parsed (`couldn't parse config:
//!   ...` on stderr), when it cannot be read (`couldn't read config: ...`), or on wrong usage;
//!   exit 0 otherwise (warnings included); Go's flag errors exit 2.

use std::io::{Read, Write};

use super::goflag::{self, FlagError, Kind};
use super::IGNITION_COMPAT_VERSION;
use crate::config;

fn usage(argv0: &str) -> String {
    format!(
        "Usage:\n  {argv0} [flags] config.ign\n\nFlags:\n  -version\n    \tprint the version and exit\n"
    )
}

/// Go's text for an I/O error of `op` on `path` (`open x: no such file or directory`).
pub fn go_io_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(libc_errno) => go_errno_text(libc_errno),
        None => e.to_string().to_lowercase(),
    };
    format!("{op} {path}: {text}")
}

fn go_errno_text(errno: i32) -> String {
    // Go's syscall error strings for the errors reading a file can give.
    match errno {
        1 => "operation not permitted".into(),
        2 => "no such file or directory".into(),
        5 => "input/output error".into(),
        13 => "permission denied".into(),
        20 => "not a directory".into(),
        21 => "is a directory".into(),
        24 => "too many open files".into(),
        36 => "file name too long".into(),
        40 => "too many levels of symbolic links".into(),
        n => {
            let s = std::io::Error::from_raw_os_error(n).to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

pub fn main(argv0: &str, args: &[String]) -> i32 {
    let parsed = match goflag::parse(args, &[("version", Kind::Bool)]) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            eprint!("{}", usage(argv0));
            return 0;
        }
        Err(FlagError::Message(m)) => {
            eprintln!("{m}");
            eprint!("{}", usage(argv0));
            return 2;
        }
    };
    if parsed.flag("version") {
        println!("Ignition v{IGNITION_COMPAT_VERSION}");
        return 0;
    }
    if parsed.args.len() != 1 {
        eprint!("{}", usage(argv0));
        return 1;
    }
    let name = &parsed.args[0];
    let blob = if name == "-" {
        read_at_most(std::io::stdin().lock(), "/dev/stdin")
    } else {
        std::fs::File::open(name)
            .map_err(|e| go_io_error("open", name, &e))
            .and_then(|f| read_at_most(f, name))
    };
    let blob = match blob {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("couldn't read config: {msg}");
            return 1;
        }
    };
    let parsed = config::parse(&blob);
    let lines: Vec<String> = parsed
        .report
        .ignition_entries()
        .map(|e| e.ignition_line())
        .collect();
    if !lines.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", lines.join("\n").trim());
    }
    if parsed.report.ignition_has_errors() {
        return 1;
    }
    if let Some(e) = &parsed.error {
        eprintln!("couldn't parse config: {e}");
        return 1;
    }
    0
}

/// Reads at most [`crate::config::MAX_CONFIG_SIZE`] bytes, failing the way Go's `os.ReadFile`
/// does (`read x: ...`); a larger input is refused instead of filling memory.
fn read_at_most(r: impl Read, path: &str) -> Result<Vec<u8>, String> {
    let limit = crate::config::MAX_CONFIG_SIZE;
    let mut v = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|e| go_io_error("read", path, &e))?;
    if v.len() as u64 > limit {
        return Err(format!(
            "{path} is larger than {} MiB, the largest config Ember reads",
            limit >> 20
        ));
    }
    Ok(v)
}
