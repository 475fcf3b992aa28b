//! Ember's `log::Log` implementation for the stage runner.
//!
//! Two destinations, as Ignition has them:
//! - standard output (`-log-to-stdout`), one line per record in Ignition's layout: the level
//!   name padded to nine columns, `: `, the stage prefix, the message
//!   (`INFO     : files: op(1): [started]  writing file "/etc/hostname"`);
//! - the system log through the `/dev/log` datagram socket (ident `ignition`, facility daemon),
//!   falling back to standard output when there is no socket (early boot without journald,
//!   containers).
//!
//! The level comes from `EMBER_LOG` (`off`, `error`, `warn`, `info`, `debug`, `trace`; default
//! `info`). Levels map to Ignition's names: error → `CRITICAL`, warn → `WARNING`,
//! info → `INFO`, debug and trace → `DEBUG`.
//!
//! The logger prints what callers give it and cannot tell a secret from anything else: every
//! caller is responsible for logging paths, JSON paths and redacted URLs, never contents.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// An error and its causes on one line (`what: why: deeper why`), for logs and reports.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The innermost cause's message (`e`'s own when it has no source).
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e;
    while let Some(c) = last.source() {
        last = c;
    }
    last.to_string()
}

/// The ident syslog records carry (journald's `SYSLOG_IDENTIFIER`).
pub const SYSLOG_IDENT: &str = "ignition";
/// The environment variable that sets the level.
pub const LEVEL_ENV: &str = "EMBER_LOG";
/// Longest message sent to syslog; longer ones are cut (datagrams have a size limit).
const SYSLOG_MAX: usize = 8 * 1024;
/// How long one record may wait for room in the syslog socket.
const SYSLOG_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// Where log records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output in Ignition's `-log-to-stdout` layout.
    Stdout,
    /// Standard error in the same layout (for commands whose standard output is data).
    Stderr,
    /// The system log (`/dev/log`), or standard output when it cannot be reached.
    Syslog,
}

enum Sink {
    Stdout,
    Stderr,
    Syslog(UnixDatagram),
}

struct State {
    sink: Sink,
    prefix: String,
}

struct Logger {
    state: Mutex<State>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Ignition's name for a level.
pub fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "CRITICAL",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

/// A record in the stdout layout (without the newline).
pub fn format_line(level: log::Level, prefix: &str, msg: &str) -> String {
    format!("{:<9}: {prefix}{msg}", level_name(level))
}

/// The syslog severity of a level: crit for errors (as Ignition logs failures), warning,
/// info, debug.
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 2,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// A record as a syslog datagram: `<PRI>ignition[PID]: message`.
pub fn format_syslog(level: log::Level, prefix: &str, msg: &str) -> Vec<u8> {
    let severity = severity(level);
    let mut out = format!(
        "<{}>{SYSLOG_IDENT}[{}]: {prefix}{msg}",
        FACILITY_DAEMON * 8 + severity,
        std::process::id()
    )
    .into_bytes();
    if out.len() > SYSLOG_MAX {
        let mut cut = SYSLOG_MAX;
        // Cut on a character boundary so the journal shows valid UTF-8.
        while cut > 0 && (out[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The level from `EMBER_LOG`, or info when it is unset or not a level name.
pub fn level_from_env() -> log::LevelFilter {
    level_from_env_or(log::LevelFilter::Info)
}

/// The level from `EMBER_LOG`, or `default` when it is unset or not a level name.
pub fn level_from_env_or(default: log::LevelFilter) -> log::LevelFilter {
    std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<log::LevelFilter>().ok())
        .unwrap_or(default)
}

fn open_sink(target: Target) -> Sink {
    match target {
        Target::Stdout => Sink::Stdout,
        Target::Stderr => Sink::Stderr,
        Target::Syslog => match connect_syslog(Path::new("/dev/log")) {
            Some(s) => Sink::Syslog(s),
            None => Sink::Stdout,
        },
    }
}

fn connect_syslog(path: &Path) -> Option<UnixDatagram> {
    let sock = UnixDatagram::unbound().ok()?;
    sock.connect(path).ok()?;
    // A journal that stops reading must not stall provisioning: after this long a record
    // goes to standard output instead.
    sock.set_write_timeout(Some(SYSLOG_SEND_TIMEOUT)).ok()?;
    Some(sock)
}

/// Installs the logger (once per process; later calls switch the destination) and sets the
/// level from `EMBER_LOG` (default: info).
pub fn init(target: Target) {
    init_with_default(target, log::LevelFilter::Info);
}

/// [`init`] with another level when `EMBER_LOG` does not set one.
pub fn init_with_default(target: Target, default: log::LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger {
        state: Mutex::new(State {
            sink: Sink::Stdout,
            prefix: String::new(),
        }),
    });
    if let Ok(mut st) = logger.state.lock() {
        st.sink = open_sink(target);
    }
    // Fails only when another logger is installed already (in which case that one is used).
    let _ = log::set_logger(logger);
    log::set_max_level(level_from_env_or(default));
}

/// Sets the prefix put before every message (Ignition prefixes a stage's lines with
/// `<stage>: `); `None` removes it.
pub fn set_prefix(prefix: Option<&str>) {
    if let Some(l) = LOGGER.get() {
        if let Ok(mut st) = l.state.lock() {
            st.prefix = prefix.map(|p| format!("{p}: ")).unwrap_or_default();
        }
    }
}

/// journald's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Encodes journal fields in journald's native format: `KEY=value\n`, or, for values with a
/// newline, `KEY\n`, the length as 64-bit little endian, the value and `\n`.
pub fn journal_datagram(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        out.extend_from_slice(k.as_bytes());
        if v.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Sends a structured entry to the journal at `socket` (best effort: no journal, no entry).
pub fn journal_send_to(
    socket: &Path,
    priority: log::Level,
    message: &str,
    fields: &[(&str, &str)],
) {
    let Some(sock) = connect_syslog(socket) else {
        return;
    };
    let severity = severity(priority).to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("MESSAGE", message),
        ("PRIORITY", &severity),
        ("SYSLOG_IDENTIFIER", SYSLOG_IDENT),
    ];
    all.extend_from_slice(fields);
    let _ = sock.send(&journal_datagram(&all));
}

/// Sends a structured entry to the journal, as Ignition does for facts that tools look up by
/// `MESSAGE_ID` (fetched configs, written SSH keys). Callers pass no secrets. The entry comes
/// in addition to the ordinary log line, which callers log themselves.
pub fn journal_send(priority: log::Level, message: &str, fields: &[(&str, &str)]) {
    journal_send_to(Path::new(JOURNAL_SOCKET), priority, message, fields);
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(st) = self.state.lock() else { return };
        let msg = record.args().to_string();
        match &st.sink {
            Sink::Stdout => {
                let line = format_line(record.level(), &st.prefix, &msg);
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Sink::Stderr => {
                let line = format_line(record.level(), &st.prefix, &msg);
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Sink::Syslog(sock) => {
                let dgram = format_syslog(record.level(), &st.prefix, &msg);
                if sock.send(&dgram).is_err() {
                    // The journal went away (or never read): keep the record on stdout.
                    let line = format_line(record.level(), &st.prefix, &msg);
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            }
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignition_stdout_layout() {
        assert_eq!(
            format_line(log::Level::Info, "files: ", "op(1): [started]  x"),
            "INFO     : files: op(1): [started]  x"
        );
        assert_eq!(format_line(log::Level::Warn, "", "w"), "WARNING  : w");
        assert_eq!(format_line(log::Level::Error, "", "e"), "CRITICAL : e");
        assert_eq!(format_line(log::Level::Debug, "", "d"), "DEBUG    : d");
        assert_eq!(format_line(log::Level::Trace, "", "t"), "DEBUG    : t");
    }

    #[test]
    fn syslog_datagrams() {
        let d = format_syslog(log::Level::Info, "disks: ", "hello");
        let s = String::from_utf8(d).unwrap();
        assert!(s.starts_with("<30>ignition["), "{s}");
        assert!(s.ends_with("]: disks: hello"), "{s}");
        let d = format_syslog(log::Level::Error, "", "x");
        assert!(d.starts_with(b"<26>"));
        // Long messages are cut on a character boundary.
        let long = "é".repeat(SYSLOG_MAX);
        let d = format_syslog(log::Level::Info, "", &long);
        assert!(d.len() <= SYSLOG_MAX);
        assert!(String::from_utf8(d).is_ok());
    }

    #[test]
    fn journal_entries() {
        assert_eq!(
            journal_datagram(&[("MESSAGE", "hi"), ("X", "a\nb")]),
            b"MESSAGE=hi\nX\n\x03\0\0\0\0\0\0\0a\nb\n"
        );
        let dir = std::env::temp_dir().join(format!("ember-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        journal_send_to(
            &path,
            log::Level::Info,
            "fetched",
            &[("IGNITION_CONFIG_TYPE", "user")],
        );
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"MESSAGE=fetched\nPRIORITY=6\nSYSLOG_IDENTIFIER=ignition\nIGNITION_CONFIG_TYPE=user\n"
        );
        // No journal: nothing happens.
        journal_send_to(&dir.join("missing"), log::Level::Info, "x", &[]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syslog_socket_receives_records() {
        let dir = std::env::temp_dir().join(format!("ember-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let client = connect_syslog(&path).expect("connects");
        client
            .send(&format_syslog(log::Level::Warn, "", "ping"))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.starts_with("<28>ignition[") && got.ends_with(": ping"),
            "{got}"
        );
        assert!(connect_syslog(&dir.join("missing")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
