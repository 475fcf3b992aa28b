//! The failure report: what a person at the console reads when a stage fails.
//!
//! One screen, root cause first:
//!
//! ```text
//! ember: the files stage failed: no such user "app" in the target's account files
//!   operation: checking file "/etc/app.conf"
//!   config:    $.storage.files.0.user.name in the user config from the file platform (/config.ign)
//!   hint:      add the user under passwd.users or use "id" instead of "name"
//!   next:      starting a shell on the console; exit it to reboot
//! ```
//!
//! The lines are `operation` (what Ember was doing), `config` (the JSON path, and which config:
//! the user config and where it came from, a referenced config's URL without userinfo or query,
//! or a base config file), `hint`, `details` (the whole error chain, only when it says more than
//! the first two lines) and `next` (what happens now, for the caller that runs the boot).
//!
//! A report never holds the config or any part of it but JSON paths: the texts come from
//! errors, which name paths and redacted URLs only, and every URL in them is redacted once more
//! here ([`scrub`]). Each line is cut to a few console rows, so the whole report fits on an 80x25
//! console.
//!
//! [`Report::render`] makes the text; [`write_console`] puts it on `/dev/console` (or the kernel
//! log) for the code that runs Ember as PID 1.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::Failure;
use crate::providers::cmdline::redact_url;

/// Longest text of one field, in characters (about four rows of an 80-column console).
const FIELD_MAX: usize = 320;
/// Longest `details` text.
const DETAILS_MAX: usize = 480;
/// Most lines of one multi-line field (the disks stage lists several errors, one per line).
const FIELD_LINES: usize = 6;

/// A failure as the console report shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// What failed, e.g. `the files stage failed` or `the disks stage would fail`.
    pub title: String,
    /// The innermost error's message.
    pub root_cause: String,
    /// What Ember was doing.
    pub operation: Option<String>,
    /// The JSON path of the config entry.
    pub path: Option<String>,
    /// Which config the path is in (or what config was being handled).
    pub config: Option<String>,
    pub hint: Option<String>,
    /// The whole error chain, when it says more than the operation and the root cause.
    pub details: Option<String>,
}

impl Report {
    /// The report of a stage's failure (`title`: `the {stage} stage failed`).
    pub fn from_failure(stage: &str, f: &Failure) -> Report {
        Report::with_title(format!("the {stage} stage failed"), f)
    }

    /// The report of a failure under any title.
    pub fn with_title(title: impl Into<String>, f: &Failure) -> Report {
        let cause = f
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        Report {
            path: f.path.as_ref().map(|p| p.to_string()),
            config: f.config.clone(),
            hint: f.hint.clone(),
            ..Report::step(title.into(), &f.operation, cause)
        }
    }

    /// The report of a failed step whose error says the step and has the causes as its
    /// sources (`waiting for the root device: device … did not appear`): as
    /// [`Report::with_title`] with the error's own message as the operation.
    pub fn from_step(title: impl Into<String>, e: &(dyn std::error::Error + 'static)) -> Report {
        Report::step(title.into(), &e.to_string(), e.source())
    }

    /// `operation` caused by `cause` and its sources: the innermost cause first, the operation
    /// (only when there is a cause: else it is the root cause, not repeated), and the whole
    /// chain as details when it says more than those two.
    fn step(
        title: String,
        operation: &str,
        cause: Option<&(dyn std::error::Error + 'static)>,
    ) -> Report {
        let mut root_cause = operation.to_string();
        let mut chain = operation.to_string();
        let mut cur = cause;
        while let Some(e) = cur {
            root_cause = e.to_string();
            chain.push_str(": ");
            chain.push_str(&root_cause);
            cur = e.source();
        }
        let plain = match cause {
            Some(_) => format!("{operation}: {root_cause}"),
            None => operation.to_string(),
        };
        Report {
            title,
            root_cause,
            operation: cause.is_some().then(|| operation.to_string()),
            details: (chain != plain).then_some(chain),
            ..Report::default()
        }
    }

    /// The report of any error: its innermost cause first, the chain as details.
    pub fn from_error(title: impl Into<String>, e: &(dyn std::error::Error + 'static)) -> Report {
        let root = crate::logging::root_cause(e);
        let chain = crate::logging::chain(e);
        Report {
            title: title.into(),
            details: (chain != root).then_some(chain),
            root_cause: root,
            ..Report::default()
        }
    }

    /// Where in the config, as the `config:` line shows it.
    pub fn location(&self) -> Option<String> {
        match (&self.path, &self.config) {
            (Some(p), Some(c)) => Some(format!("{p} in {c}")),
            (Some(p), None) => Some(p.clone()),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => None,
        }
    }

    /// The report's text; `next` says what happens now (PID 1: "a shell on the console", "reboot
    /// in 5 minutes"). Every line ends with a newline.
    pub fn render(&self, next: Option<&str>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ember: {}: {}",
            self.title,
            field(&self.root_cause, FIELD_MAX, "  ")
        );
        let mut line = |label: &str, value: &str, max: usize| {
            let _ = writeln!(s, "  {label:<10} {}", field(value, max, "             "));
        };
        if let Some(o) = &self.operation {
            line("operation:", o, FIELD_MAX);
        }
        if let Some(l) = self.location() {
            line("config:", &l, FIELD_MAX);
        }
        if let Some(h) = &self.hint {
            line("hint:", h, FIELD_MAX);
        }
        if let Some(d) = &self.details {
            line("details:", d, DETAILS_MAX);
        }
        if let Some(n) = next {
            line("next:", n, FIELD_MAX);
        }
        s
    }

    /// The report as JSON (`operation`, `rootCause`, `path`, `config`, `hint`, `details`), for
    /// the status file and the status webhook.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "operation": self.operation.as_deref().map(scrub),
            "rootCause": scrub(&self.root_cause),
            "path": self.path,
            "config": self.config.as_deref().map(scrub),
            "hint": self.hint.as_deref().map(scrub),
            "details": self.details.as_deref().map(scrub),
        })
    }
}

/// The console report of a stage's failure, without a `next` line.
pub fn failure_report(stage: &str, f: &Failure) -> String {
    Report::from_failure(stage, f).render(None)
}

/// One field: URLs redacted, cut to `max` characters and [`FIELD_LINES`] lines, continuation
/// lines indented.
fn field(text: &str, max: usize, indent: &str) -> String {
    let clean = scrub(text);
    let mut out = String::new();
    let mut used = 0;
    for (i, l) in clean.lines().enumerate() {
        if i == FIELD_LINES {
            out.push('\n');
            out.push_str(indent);
            out.push('…');
            break;
        }
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        let room = max.saturating_sub(used);
        let n = l.chars().count();
        if n > room {
            out.extend(l.chars().take(room));
            out.push('…');
            break;
        }
        out.push_str(l);
        used += n;
    }
    out
}

/// Redacts every URL in a text: userinfo, query strings and fragments removed, `data:` payloads
/// replaced (see [`redact_url`]). Errors are written without them already; this is the last
/// line of defence before text leaves Ember (console, status file, webhook).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        let (start, _) = at;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // A URL ends at whitespace or a quote/bracket that cannot be part of it.
        let end = tail
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .map_or(tail.len(), |(i, _)| i);
        // Punctuation that ends a sentence or a clause is not part of it.
        let end = tail[..end].trim_end_matches([':', ',', ';', '.']).len();
        let url = &tail[..end];
        // redact_url shows a data: URL (any case) as data:<redacted>.
        out.push_str(&redact_url(url));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The next URL in `s`: (byte offset of its scheme, length of the scheme). A URL is a scheme
/// of letters (and `+-.` after the first) followed by `://`, or `data:`.
fn find_url(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && i > 0 {
            // Walk back over the scheme.
            let mut start = i;
            while start > 0
                && (b[start - 1].is_ascii_alphanumeric() || b"+-.".contains(&b[start - 1]))
            {
                start -= 1;
            }
            while start < i && !b[start].is_ascii_alphabetic() {
                start += 1;
            }
            let scheme = &s[start..i];
            let slashes = b.get(i + 1..i + 3) == Some(b"//");
            // `data:` in prose ("no data: …") is not a URL: one has a payload right after.
            let payload = b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace());
            if !scheme.is_empty() && (slashes || (payload && scheme.eq_ignore_ascii_case("data"))) {
                return Some((start, i - start));
            }
        }
        i += 1;
    }
    None
}

/// Puts a report on the system console for whoever watches the machine boot: `/dev/console`
/// when it can be opened, else the kernel log (`/dev/kmsg`, one record per line at level
/// "critical"). The boot process reports its failure with it; the command lines print the
/// report on standard error.
pub fn write_console(text: &str) -> std::io::Result<()> {
    write_console_at(Path::new("/dev/console"), Path::new("/dev/kmsg"), text)
}

/// [`write_console`] with other device paths (for tests).
pub fn write_console_at(console: &Path, kmsg: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOCTTY: PID 1 must not acquire the console as its controlling terminal by writing.
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console);
    if let Ok(mut c) = opened {
        if c.write_all(text.as_bytes()).and_then(|_| c.flush()).is_ok() {
            return Ok(());
        }
    }
    let mut k = std::fs::OpenOptions::new().write(true).open(kmsg)?;
    for line in text.lines() {
        // <2> is "critical"; each write is one record of the kernel log.
        let line = line.strip_prefix("ember: ").unwrap_or(line);
        k.write_all(format!("<2>ember: {line}\n").as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JsonPath;

    #[test]
    fn root_cause_first_then_operation_path_and_hint() {
        let f = Failure::new("writing file \"/etc/x\"")
            .caused_by(std::io::Error::from_raw_os_error(13))
            .at(JsonPath::root().key("storage").key("files").index(3))
            .in_config("the user config from the file platform (/c.ign)")
            .hint("check the owner");
        let r = failure_report("files", &f);
        assert_eq!(
            r,
            "ember: the files stage failed: Permission denied (os error 13)\n\
             \x20 operation: writing file \"/etc/x\"\n\
             \x20 config:    $.storage.files.3 in the user config from the file platform (/c.ign)\n\
             \x20 hint:      check the owner\n"
        );
        let r = Report::from_failure("files", &f).render(Some("rebooting in 300 s"));
        assert!(r.ends_with("  next:      rebooting in 300 s\n"), "{r}");
    }

    #[test]
    fn details_only_when_they_say_more() {
        #[derive(Debug, thiserror::Error)]
        #[error("middle")]
        struct Middle(#[source] std::io::Error);
        let f = Failure::new("op").caused_by(Middle(std::io::Error::other("bottom")));
        let r = Report::from_failure("disks", &f);
        assert_eq!(r.root_cause, "bottom");
        assert_eq!(r.details.as_deref(), Some("op: middle: bottom"));
        let f = Failure::new("op").caused_by(std::io::Error::other("bottom"));
        assert_eq!(Report::from_failure("disks", &f).details, None);
        // No cause: the operation is the root cause and is not repeated.
        let r = Report::from_failure("disks", &Failure::new("op"));
        assert_eq!(r.render(None), "ember: the disks stage failed: op\n");
    }

    #[test]
    fn urls_are_scrubbed_and_fields_cut() {
        assert_eq!(
            scrub("fetching https://u:p@h.example/c.ign?token=SECRET#x: 404"),
            "fetching https://h.example/c.ign: 404"
        );
        assert_eq!(
            scrub("got \"data:,SECRET\" here"),
            "got \"data:<redacted>\" here"
        );
        assert_eq!(scrub("DATA:text/plain;base64,U0VDUkVU"), "data:<redacted>");
        assert_eq!(scrub("no url: a: b"), "no url: a: b");
        assert_eq!(scrub("no data: here"), "no data: here");
        assert_eq!(
            scrub("tftp://h/x?y=1 and s3://b/k"),
            "tftp://h/x and s3://b/k"
        );
        let long = "x".repeat(1000);
        let r = Report {
            title: "t".into(),
            root_cause: long,
            ..Report::default()
        }
        .render(None);
        assert!(r.chars().count() < FIELD_MAX + 40, "{r}");
        let many: Vec<String> = (0..20).map(|i| format!("error {i}")).collect();
        let r = Report {
            title: "t".into(),
            root_cause: many.join("\n"),
            ..Report::default()
        }
        .render(None);
        assert_eq!(r.lines().count(), FIELD_LINES + 1, "{r}");
        assert!(r.contains("\n  error 1\n"), "{r}");
    }

    #[test]
    fn console_falls_back_to_the_kernel_log() {
        let dir = std::env::temp_dir().join(format!("ember-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kmsg = dir.join("kmsg");
        std::fs::write(&kmsg, "").unwrap();
        write_console_at(&dir.join("no-console"), &kmsg, "a\nb\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&kmsg).unwrap(),
            "<2>ember: a\n<2>ember: b\n"
        );
        let console = dir.join("console");
        std::fs::write(&console, "").unwrap();
        write_console_at(&console, &kmsg, "c\n").unwrap();
        assert_eq!(std::fs::read_to_string(&console).unwrap(), "c\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
