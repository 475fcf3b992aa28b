//! Helpers for the config and linter tests: run the built binary as `ember` or through a
//! symlink named `ignition-validate`, always under a timeout, and build small configs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::{ember_bin, TempDir};

/// Generous: every run here takes milliseconds, except the 100 MB inputs.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// `None` when a signal ended the process (a panic with `panic = "abort"`, a crash).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The non-empty stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| !l.is_empty()).collect()
    }
    /// Asserts the process exited normally with `code` and did not panic.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs `cmd` feeding it `stdin`, killing it and failing the test after `timeout`.
pub fn run_cmd(mut cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            // The child may exit before reading everything (a syntax error early on).
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {timeout:?}");
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Path of a symlink named `ignition-validate` pointing at the built binary (created once,
/// next to the binary, atomically so that parallel test processes do not race).
pub fn ignition_validate_bin() -> &'static Path {
    static LINK: OnceLock<PathBuf> = OnceLock::new();
    LINK.get_or_init(|| {
        let bin = ember_bin();
        let dir = bin.parent().expect("binary has a directory").to_path_buf();
        let link = dir.join("ignition-validate");
        let tmp = dir.join(format!(".ignition-validate.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&bin, &tmp).expect("creating the ignition-validate symlink");
        std::fs::rename(&tmp, &link).expect("renaming the ignition-validate symlink");
        link
    })
}

/// `ember ARGS...` with optional standard input.
pub fn ember(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(ember_bin());
    cmd.args(args);
    run_cmd(cmd, stdin.map(<[u8]>::to_vec), TIMEOUT)
}

/// `ignition-validate ARGS...` with optional standard input.
pub fn ignition_validate(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(ignition_validate_bin());
    cmd.args(args);
    run_cmd(cmd, stdin.map(<[u8]>::to_vec), TIMEOUT)
}

/// Writes `src` to a file in a fresh temp dir and runs `ignition-validate FILE`.
pub fn validate_src(src: &[u8]) -> Run {
    let dir = TempDir::new("iv");
    let file = dir.path().join("config.ign");
    std::fs::write(&file, src).unwrap();
    ignition_validate(&[file.to_str().unwrap()], None)
}

/// Writes `src` to a file and runs `ember validate [extra...] FILE`.
pub fn ember_validate_src(src: &[u8], extra: &[&str]) -> Run {
    let dir = TempDir::new("ev");
    let file = dir.path().join("config.ign");
    std::fs::write(&file, src).unwrap();
    let mut args = vec!["validate"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    ember(&args, None)
}

/// A config whose first line is `{"ignition": {"version": "V"},` followed by `body` (which
/// starts with a newline, so the body's text begins on line 2) and a closing `}` line.
///
/// On line 1 the version string's opening quote is column 26 and the ignition object's
/// bracket column 14.
pub fn cfg(version: &str, body: &str) -> String {
    format!("{{\"ignition\": {{\"version\": \"{version}\"}},{body}\n}}\n")
}

/// 128 hex digits: a well-formed sha512 sum.
pub const SHA512: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// 64 hex digits: a well-formed sha256 sum.
pub const SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
