//! The one way Ember runs external programs (mkfs.*, cryptsetup, mdadm, ...).
//!
//! A [`Command`] is a program plus arguments, optional bytes for its standard input and an
//! optional timeout.  Arguments marked secret are shown as `<redacted>` wherever the command
//! line is displayed (logs and errors).  When the program cannot be started, exits non-zero or
//! runs out of time, the error carries the full (redacted) command line and the program's
//! standard error, trimmed and bounded.
//!
//! ```no_run
//! use ember::system::command::Command;
//! let out = Command::new("mkfs.ext4").args(["-F", "-L", "root", "/dev/vda4"]).run()?;
//! # Ok::<(), ember::system::command::Error>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Whether `program` can be found in `PATH` (or is an executable path).
pub fn have_program(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return is_exec(std::path::Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|d| is_exec(&d.join(program)))
}

/// At most this many bytes of a failed program's standard error are kept in the error.
pub const STDERR_LIMIT: usize = 4096;

/// Errors from running a program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started (not found, not executable, ...).
    #[error("starting `{cmdline}`")]
    Spawn {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the running program (its pipes, waiting for it) failed.
    #[error("running `{cmdline}`")]
    Io {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{cmdline}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        cmdline: String,
        status: String,
        /// Trimmed, at most [`STDERR_LIMIT`] bytes.
        stderr: String,
    },
    /// The program did not finish in time and was killed.
    #[error("`{cmdline}` did not finish within {timeout:?} and was killed{}", stderr_suffix(.stderr))]
    Timeout {
        cmdline: String,
        timeout: Duration,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl Error {
    /// The redacted command line of the program this error is about.
    pub fn cmdline(&self) -> &str {
        match self {
            Error::Spawn { cmdline, .. }
            | Error::Io { cmdline, .. }
            | Error::Failed { cmdline, .. }
            | Error::Timeout { cmdline, .. } => cmdline,
        }
    }
}

#[derive(Clone)]
struct Arg {
    value: OsString,
    secret: bool,
}

/// A program to run.  Build it, then call [`Command::run`] or [`Command::run_unchecked`].
#[derive(Clone)]
pub struct Command {
    program: OsString,
    args: Vec<Arg>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

/// What a finished program produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Standard error as (lossy) UTF-8.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("cmdline", &self.cmdline())
            .field("stdin", &self.stdin.as_ref().map(|b| b.len()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cmdline())
    }
}

impl Command {
    /// A command running `program` (looked up in `PATH` unless it contains a slash).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.args.push(Arg {
            value: arg.as_ref().to_owned(),
            secret: false,
        });
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Appends an argument that is shown as `<redacted>` in logs and errors.
    pub fn secret_arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.args.push(Arg {
            value: arg.as_ref().to_owned(),
            secret: true,
        });
        self
    }

    /// Sets an environment variable for the program (values are never logged).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds these bytes to the program's standard input (otherwise it reads /dev/null).
    /// The bytes are never logged.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the program if it has not finished after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = Some(timeout);
        self
    }

    /// The command line as shown in logs and errors: arguments quoted when needed, secret
    /// ones replaced by `<redacted>`.
    pub fn cmdline(&self) -> String {
        let mut s = quote(&self.program.to_string_lossy());
        for a in &self.args {
            s.push(' ');
            if a.secret {
                s.push_str("<redacted>");
            } else {
                s.push_str(&quote(&a.value.to_string_lossy()));
            }
        }
        s
    }

    /// Runs the program; a non-zero exit is an [`Error::Failed`].
    pub fn run(&self) -> Result<Output, Error> {
        self.check(self.run_unchecked()?)
    }

    /// The output of this command as [`Command::run`] judges it: a non-zero exit is an
    /// [`Error::Failed`].  For callers that first look at the exit status themselves.
    pub fn check(&self, out: Output) -> Result<Output, Error> {
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Failed {
                cmdline: self.cmdline(),
                status: describe_status(out.status),
                stderr: bounded_stderr(&out.stderr),
            })
        }
    }

    /// Runs the program and returns its output whatever its exit status.  Failing to start
    /// it, or the timeout, are still errors.
    pub fn run_unchecked(&self) -> Result<Output, Error> {
        let cmdline = self.cmdline();
        log::debug!("running `{cmdline}`");
        let mut cmd = std::process::Command::new(&self.program);
        for a in &self.args {
            cmd.arg(&a.value);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            cmdline: cmdline.clone(),
            source,
        })?;
        let io_err = |source| Error::Io {
            cmdline: cmdline.clone(),
            source,
        };

        // Feed stdin and drain both pipes on their own threads so that no pipe can fill up
        // and block the program while we wait for it.
        let stdin_thread = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
                // A program that exits without reading all of its input is not our error;
                // its exit status tells what happened.
                match pipe.write_all(&bytes) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    r => r,
                }
            })),
            _ => None,
        };
        let stdout_thread = child.stdout.take().map(spawn_reader);
        let stderr_thread = child.stderr.take().map(spawn_reader);

        let status = match self.timeout {
            None => child.wait().map_err(io_err)?,
            Some(limit) => {
                let started = Instant::now();
                loop {
                    if let Some(st) = child.try_wait().map_err(io_err)? {
                        break st;
                    }
                    if started.elapsed() >= limit {
                        let _ = child.kill();
                        let _ = child.wait();
                        let stderr = stderr_thread
                            .and_then(|t| t.join().ok())
                            .and_then(|r| r.ok())
                            .unwrap_or_default();
                        log::debug!("`{cmdline}` timed out after {limit:?}");
                        return Err(Error::Timeout {
                            cmdline,
                            timeout: limit,
                            stderr: bounded_stderr(&stderr),
                        });
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            }
        };
        if let Some(t) = stdin_thread {
            join(t).map_err(io_err)?;
        }
        let stdout = match stdout_thread {
            Some(t) => join(t).map_err(io_err)?,
            None => Vec::new(),
        };
        let stderr = match stderr_thread {
            Some(t) => join(t).map_err(io_err)?,
            None => Vec::new(),
        };
        log::debug!("`{cmdline}` exited: {}", describe_status(status));
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

fn spawn_reader<R: Read + Send + 'static>(
    mut r: R,
) -> thread::JoinHandle<std::io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        Ok(buf)
    })
}

fn join<T>(t: thread::JoinHandle<std::io::Result<T>>) -> std::io::Result<T> {
    t.join()
        .unwrap_or_else(|_| Err(std::io::Error::other("pipe thread panicked")))
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        format!("killed by signal {sig}")
    } else {
        status.to_string()
    }
}

/// Trims the program's standard error and keeps at most [`STDERR_LIMIT`] bytes of it: the
/// end, where programs usually put the reason they failed.
fn bounded_stderr(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.len() <= STDERR_LIMIT {
        return text.to_string();
    }
    let mut cut = text.len() - STDERR_LIMIT;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[...] {}", &text[cut..])
}

/// Quotes an argument for display the way a shell user would type it.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_in_path() {
        assert!(have_program("sh"));
        assert!(!have_program("ember-no-such-program"));
        assert!(have_program("/bin/sh"));
    }

    #[test]
    fn success_captures_stdout() {
        let out = Command::new("sh")
            .args(["-c", "printf hello; printf oops >&2"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr_str(), "oops");
    }

    #[test]
    fn failure_carries_cmdline_status_and_stderr() {
        let err = Command::new("sh")
            .args([
                "-c",
                "echo '  bad thing happened  ' >&2; exit 3",
                "arg with space",
            ])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("`sh -c 'echo '\\''  bad thing"),
            "unexpected message: {msg}"
        );
        assert!(msg.contains("'arg with space'"), "{msg}");
        assert!(msg.contains("(exit status 3): bad thing happened"), "{msg}");
        match err {
            Error::Failed { stderr, .. } => assert_eq!(stderr, "bad thing happened"),
            e => panic!("wrong error {e:?}"),
        }
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let cmd = Command::new("sh")
            .args(["-c", "exit 1", "sh"])
            .secret_arg("hunter2");
        assert_eq!(cmd.cmdline(), "sh -c 'exit 1' sh <redacted>");
        assert!(!format!("{cmd:?}").contains("hunter2"));
        let err = cmd.run().unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(err.to_string().contains("<redacted>"));
    }

    #[test]
    fn secret_args_still_reach_the_program() {
        let out = Command::new("sh")
            .args(["-c", "printf %s \"$1\"", "sh"])
            .secret_arg("s3cret")
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"s3cret");
    }

    #[test]
    fn stdin_is_fed() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let out = Command::new("cat").stdin(input.clone()).run().unwrap();
        assert_eq!(out.stdout, input);
    }

    #[test]
    fn stdin_ignored_by_program_is_not_an_error() {
        let out = Command::new("true")
            .stdin(vec![0u8; 1 << 20])
            .run()
            .unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn timeout_kills() {
        let started = Instant::now();
        let err = Command::new("sh")
            .args(["-c", "echo going to sleep >&2; exec sleep 30"])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        match &err {
            Error::Timeout { stderr, .. } => assert_eq!(stderr, "going to sleep"),
            e => panic!("wrong error {e:?}"),
        }
        assert!(err.to_string().contains("did not finish within"));
    }

    #[test]
    fn missing_program_is_spawn_error() {
        let err = Command::new("/nonexistent/ember-test-tool")
            .arg("x")
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }));
        assert_eq!(err.cmdline(), "/nonexistent/ember-test-tool x");
    }

    #[test]
    fn stderr_is_bounded_to_its_end() {
        let big = "x".repeat(10_000) + "THE END";
        let s = bounded_stderr(big.as_bytes());
        assert!(s.len() <= STDERR_LIMIT + 10);
        assert!(s.ends_with("THE END"));
        assert!(s.starts_with("[...] "));
    }

    #[test]
    fn unchecked_returns_failure_status() {
        let out = Command::new("sh")
            .args(["-c", "exit 4"])
            .run_unchecked()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
    }
}
