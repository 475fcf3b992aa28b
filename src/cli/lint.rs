//! `ember validate`: the linter.
//!
//! Checks each config with Ignition's rules plus Ember's own, follows `ignition.config.merge`
//! and `replace` entries given as `data:` URLs (other sources are noted, not fetched), checks the
//! merged result as a whole, and prints the findings as text for people, JSON for tools, or
//! SARIF 2.1.0 for code-scanning services. Source lines shown in the text output have secrets
//! (password hashes, inline contents, header values) replaced with `<redacted>`.

use std::ffi::OsString;
use std::io::Write;

use serde_json::{json, Value as J};
use sha2::Digest;

use super::exit;
use crate::config::json;
use crate::config::report::{Entry, JsonPath, Report, Severity};
use crate::config::{self, merge, redact, Config, Spec};

const HELP: &str = "\
Usage: ember validate [--format human|json|sarif] [--strict] FILE...|-

Checks Ignition configs (spec 3.0.0 to 3.6.0, and 3.7.0-experimental) and reports every
problem with its file, line, column and JSON path, a message and, where Ember knows one, a
hint. Configs merged or replaced through data: URLs are checked too, and so is the merged
result. `-` reads standard input.

Options:
  --format FORMAT   human (default), json (documented in docs/linter.md) or sarif (2.1.0)
  --strict          treat warnings as errors
  -h, --help        show this help

Exit codes:
  0  no errors (warnings allowed unless --strict)
  1  at least one config has errors
  2  bad usage, or an input could not be read
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Human,
    Json,
    Sarif,
}

/// The findings for one input.
struct FileResult {
    name: String,
    src: Vec<u8>,
    read_error: Option<String>,
    spec: Option<Spec>,
    report: Report,
}

impl FileResult {
    fn errors(&self) -> usize {
        self.report
            .entries
            .iter()
            .filter(|e| e.severity == Severity::Error)
            .count()
            + usize::from(self.read_error.is_some())
    }
    fn warnings(&self) -> usize {
        self.report
            .entries
            .iter()
            .filter(|e| e.severity == Severity::Warning)
            .count()
    }
}

pub fn main(args: Vec<OsString>) -> i32 {
    let mut format = Format::Human;
    let mut strict = false;
    let mut files: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => {
                eprintln!("ember validate: {e}\n\n{HELP}");
                return exit::USAGE;
            }
        };
        use lexopt::Arg::*;
        match arg {
            Long("format") | Short('f') => {
                let v = parser.value().map(|v| v.to_string_lossy().into_owned());
                format = match v.as_deref() {
                    Ok("human") | Ok("text") => Format::Human,
                    Ok("json") => Format::Json,
                    Ok("sarif") => Format::Sarif,
                    Ok(other) => {
                        eprintln!(
                            "ember validate: unknown format {other:?}; use human, json or sarif"
                        );
                        return exit::USAGE;
                    }
                    Err(e) => {
                        eprintln!("ember validate: {e}");
                        return exit::USAGE;
                    }
                };
            }
            Long("strict") => strict = true,
            Long("help") | Short('h') => {
                print!("{HELP}");
                return exit::OK;
            }
            Value(v) => files.push(v.to_string_lossy().into_owned()),
            other => {
                eprintln!("ember validate: {}\n\n{HELP}", other.unexpected());
                return exit::USAGE;
            }
        }
    }
    if files.is_empty() {
        eprintln!(
            "ember validate: no input; give one or more files, or - for standard input\n\n{HELP}"
        );
        return exit::USAGE;
    }

    let mut results: Vec<FileResult> = files.iter().map(|f| check_input(f)).collect();
    if strict {
        for r in &mut results {
            for e in &mut r.report.entries {
                if e.severity == Severity::Warning {
                    e.severity = Severity::Error;
                }
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let text = render_results(&results, format);
    let _ = out.write_all(text.as_bytes());
    if results.iter().any(|r| r.read_error.is_some()) {
        exit::USAGE
    } else if results.iter().any(|r| r.errors() > 0) {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn render_results(results: &[FileResult], format: Format) -> String {
    match format {
        Format::Human => human(results),
        Format::Json => serde_json::to_string_pretty(&json_doc(results)).unwrap_or_default() + "\n",
        Format::Sarif => {
            serde_json::to_string_pretty(&sarif_doc(results)).unwrap_or_default() + "\n"
        }
    }
}

/// Lints `src` as the command does for a file named `name` and renders the findings in each
/// format: `[human, json, sarif]`. The fuzz targets drive the whole linter through this.
pub fn lint_and_render(name: &str, src: &[u8]) -> [String; 3] {
    let (spec, report) = lint_bytes(src);
    let results = [FileResult {
        name: name.to_string(),
        src: src.to_vec(),
        read_error: None,
        spec,
        report,
    }];
    [Format::Human, Format::Json, Format::Sarif].map(|f| render_results(&results, f))
}

fn check_input(name: &str) -> FileResult {
    let display = if name == "-" {
        "<stdin>".to_string()
    } else {
        name.to_string()
    };
    let src = match super::read_input(name) {
        Ok(s) => s,
        Err(e) => {
            return FileResult {
                name: display,
                src: Vec::new(),
                read_error: Some(e),
                spec: None,
                report: Report::default(),
            }
        }
    };
    let (spec, report) = lint_bytes(&src);
    FileResult {
        name: display,
        src,
        read_error: None,
        spec,
        report,
    }
}

/// Everything the linter finds in one config, its merged children included.
pub fn lint_bytes(src: &[u8]) -> (Option<Spec>, Report) {
    let parsed = config::parse(src);
    let mut report = parsed.report;
    if let Some(config::ParseError::Empty) = parsed.error {
        let mut e = Entry::error(JsonPath::root(), "empty", "not a config (empty)").with_hint(
            "the file is empty; a minimal config is {\"ignition\": {\"version\": \"3.6.0\"}}",
        );
        e.path = None;
        report.push(e);
    }
    if let Some(cfg) = parsed.config {
        let mut findings = Report::default();
        let mut budget = Budget::new();
        let rendered = render_sized(cfg, 0, "", 0, &mut findings, &mut budget);
        let had_children = !findings.entries.is_empty() || rendered.merged_any;
        report.extend(findings);
        // Findings about the references themselves point into this config.
        if report
            .entries
            .iter()
            .any(|e| e.source.is_none() && e.marker.is_none())
        {
            if let Ok(doc) = json::parse_doc(src) {
                report.correlate(Some(&doc), src);
            }
        }
        if had_children {
            for mut e in config::validate_runtime(&rendered.config).entries {
                // What the config's own validation already reported is not news.
                if report
                    .entries
                    .iter()
                    .any(|o| o.source.is_none() && o.path == e.path && o.message == e.message)
                {
                    continue;
                }
                e.ember_only = true;
                e.source = Some("the merged config".into());
                e.message = format!("after merging: {}", e.message);
                report.push(e);
            }
            for mut e in config::validate::whole_config_checks(&rendered.config).entries {
                e.source = Some("the merged config".into());
                report.push(e);
            }
        }
    }
    (parsed.spec, report)
}

/// How much work following referenced configs may take. Each referenced config can hold
/// many more, compressed ones among them, so without a bound a 40 KB config referencing 30
/// configs that each reference 30 more, four levels deep, has the linter parse 810,000
/// configs. Ignition would fetch them all; the linter checks the first ones and says so.
struct Budget {
    /// Referenced configs that may still be read.
    configs: usize,
    /// Bytes that may still be parsed or merged: each referenced config costs its size, each
    /// merge the size of everything merged so far.
    bytes: u64,
    /// Whether the warning that checking stopped has been given.
    warned: bool,
}

impl Budget {
    /// At most this many referenced configs are checked.
    const CONFIGS: usize = crate::stages::engine::MAX_REFERENCED_CONFIGS;
    /// At most this many bytes of referenced configs are parsed and merged (each merge counts
    /// as parsing everything merged so far again).
    const BYTES: u64 = config::gzip::MAX_CONFIG_SIZE;

    fn new() -> Self {
        Budget {
            configs: Self::CONFIGS,
            bytes: Self::BYTES,
            warned: false,
        }
    }

    /// Takes `bytes` from the budget, or reports (once) that checking stops here.
    fn take(&mut self, bytes: u64, at: (&JsonPath, &str), findings: &mut Report) -> bool {
        if bytes <= self.bytes {
            self.bytes -= bytes;
            return true;
        }
        self.exhausted(at, findings);
        false
    }

    fn take_config(&mut self, at: (&JsonPath, &str), findings: &mut Report) -> bool {
        if self.configs > 0 {
            self.configs -= 1;
            return true;
        }
        self.exhausted(at, findings);
        false
    }

    /// Stops all further checking of references; `at` is the reference where it stopped
    /// (its path in the config holding it, and its label from the top).
    fn exhausted(&mut self, (path, label): (&JsonPath, &str), findings: &mut Report) {
        self.configs = 0;
        self.bytes = 0;
        if !self.warned {
            self.warned = true;
            findings.push(
                Entry::warning(
                    path.clone(),
                    "references-not-checked",
                    format!(
                        "referenced configs are checked up to {} configs or {} MiB in all: \
                         ignition.config.{label} and the references after it are not checked",
                        Self::CONFIGS,
                        Self::BYTES >> 20
                    ),
                )
                .with_hint("check the referenced configs on their own")
                .ember(),
            );
        }
    }
}

/// A config with the number of source bytes it was rendered from, children included.
struct Rendered {
    config: Config,
    bytes: u64,
    merged_any: bool,
}

/// Follows data: URL merges and replacements like Ignition's rendering, collecting findings of
/// the referenced configs: the rendered config, and whether anything was merged.
fn render_sized(
    cfg: Config,
    own_bytes: u64,
    label: &str,
    depth: usize,
    findings: &mut Report,
    budget: &mut Budget,
) -> Rendered {
    let refs = &cfg.ignition.config;
    if depth > 8 || (refs.merge.is_empty() && refs.replace.source_str().is_none()) {
        return Rendered {
            config: cfg,
            bytes: own_bytes,
            merged_any: false,
        };
    }
    let base_path = JsonPath::root().key("ignition").key("config");
    if let Some(src) = cfg.ignition.config.replace.source_str().map(str::to_string) {
        let here = format!("{label}replace");
        let p = base_path.key("replace");
        let res = &cfg.ignition.config.replace;
        if let Some((child, size)) = child_config(&src, res, &p, &here, findings, budget) {
            let mut r = render_sized(
                child,
                size,
                &format!("{here} ▸ "),
                depth + 1,
                findings,
                budget,
            );
            r.merged_any = true;
            return r;
        }
        return Rendered {
            config: cfg,
            bytes: own_bytes,
            merged_any: false,
        };
    }
    let mut acc = cfg.clone();
    let mut acc_bytes = own_bytes;
    let mut merged_any = false;
    for (i, r) in cfg.ignition.config.merge.iter().enumerate() {
        let Some(src) = r.source_str() else { continue };
        let here = format!("{label}merge.{i}");
        let p = base_path.key("merge").index(i);
        if let Some((child, size)) = child_config(src, r, &p, &here, findings, budget) {
            let rendered = render_sized(
                child,
                size,
                &format!("{here} ▸ "),
                depth + 1,
                findings,
                budget,
            );
            let merged_bytes = acc_bytes.saturating_add(rendered.bytes);
            if !budget.take(merged_bytes, (&p, &here), findings) {
                break;
            }
            acc = merge::merge(&acc, &rendered.config);
            acc_bytes = merged_bytes;
            merged_any = true;
        }
    }
    Rendered {
        config: acc,
        bytes: acc_bytes,
        merged_any,
    }
}

/// Reads and checks one referenced config; returns it with its size.
fn child_config(
    src: &str,
    res: &config::model::Resource,
    path: &JsonPath,
    label: &str,
    findings: &mut Report,
    budget: &mut Budget,
) -> Option<(Config, u64)> {
    if !src.starts_with("data:") {
        findings.push(
            Entry::new(
                Severity::Info,
                path.clone(),
                "not-fetched",
                "referenced config is not a data: URL; the linter does not fetch it",
            )
            .ember(),
        );
        return None;
    }
    if !budget.take_config((path, label), findings) {
        return None;
    }
    let data = config::dataurl::decode(src).ok()?.data;
    let data = if res.compression.as_deref() == Some("gzip") {
        match config::gzip::decompress_at_most(&data, budget.bytes) {
            Ok(Some(d)) => d,
            Ok(None) => {
                budget.exhausted((path, label), findings);
                return None;
            }
            Err(_) => {
                findings.push(
                    Entry::error(
                        path.clone(),
                        "gzip",
                        "referenced config is not valid gzip data",
                    )
                    .ember(),
                );
                return None;
            }
        }
    } else {
        data
    };
    if let Some(h) = &res.verification.hash {
        if let Some((func, want)) = h.split_once('-') {
            let got = match func {
                "sha512" => Some(hex(&sha2::Sha512::digest(&data))),
                "sha256" => Some(hex(&sha2::Sha256::digest(&data))),
                _ => None,
            };
            if let Some(got) = got {
                if !got.eq_ignore_ascii_case(want) {
                    findings.push(
                        Entry::error(
                            path.key("verification").key("hash"),
                            "hash-mismatch",
                            format!(
                                "hash verification failed (calculated {got} but expected {want})"
                            ),
                        )
                        .ember(),
                    );
                    return None;
                }
            }
        }
    }
    if !budget.take(data.len() as u64, (path, label), findings) {
        return None;
    }
    let parsed = config::parse(&data);
    for mut e in parsed.report.entries {
        e.ember_only = true;
        e.source = Some(format!("ignition.config.{label} (data URL)"));
        findings.push(e);
    }
    if let Some(err) = &parsed.error {
        findings.push(
            Entry::error(
                path.clone(),
                "child-invalid",
                format!("referenced config: {err}"),
            )
            .ember(),
        );
    }
    parsed.config.map(|c| (c, data.len() as u64))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Output formats

fn human(results: &[FileResult]) -> String {
    let mut out = String::new();
    for r in results {
        if let Some(e) = &r.read_error {
            out.push_str(&format!("{}: error: {e}\n", r.name));
            continue;
        }
        if r.report.entries.is_empty() {
            let spec = r.spec.map(|s| format!(" (spec {s})")).unwrap_or_default();
            out.push_str(&format!("{}: valid{spec}\n", r.name));
            continue;
        }
        let secrets = match json::parse_doc(&r.src) {
            Ok(d) => redact::secret_spans(&d),
            Err(_) => redact::secret_spans_lenient(&r.src),
        };
        for e in &r.report.entries {
            out.push_str(&human_entry(r, e, &secrets));
        }
        let (errs, warns) = (r.errors(), r.warnings());
        let spec = r.spec.map(|s| format!(" (spec {s})")).unwrap_or_default();
        if errs == 0 && warns == 0 {
            out.push_str(&format!("{}: valid{spec}\n", r.name));
        } else {
            out.push_str(&format!(
                "{}: {} error{}, {} warning{}{spec}\n",
                r.name,
                errs,
                if errs == 1 { "" } else { "s" },
                warns,
                if warns == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

fn human_entry(r: &FileResult, e: &Entry, secrets: &[(usize, usize)]) -> String {
    let mut s = String::new();
    let own_source = e.source.is_none();
    let pos = e.position();
    let loc = match (&pos, own_source) {
        (Some(m), true) if m.line > 0 => format!("{}:{}:{}", r.name, m.line, m.column),
        (Some(_), true) => format!("{}:end of input", r.name),
        (Some(m), false) if m.line > 0 => format!(
            "{} [{}]:{}:{}",
            r.name,
            e.source.as_deref().unwrap_or(""),
            m.line,
            m.column
        ),
        _ => match &e.source {
            Some(src) => format!("{} [{}]", r.name, src),
            None => r.name.clone(),
        },
    };
    s.push_str(&format!(
        "{loc}: {}: {} [{}]\n",
        e.severity.as_str(),
        e.message,
        e.code
    ));
    if let Some(p) = &e.path {
        if !p.is_root() || pos.is_none() {
            s.push_str(&format!("    at {p}\n"));
        }
    }
    if let (Some(m), true) = (&pos, own_source) {
        if m.line > 0 {
            s.push_str(&source_excerpt(&r.src, m.index, m.line, secrets));
        }
    }
    if let Some(h) = &e.hint {
        s.push_str(&format!("    hint: {h}\n"));
    }
    s
}

/// The source line of a position with a caret under it, secrets redacted, control characters
/// replaced (the input may be binary garbage), long lines cut to a window around the caret.
///
/// Only a few hundred bytes around the position are looked at, so that a report with thousands
/// of findings on one very long line (a minified config) stays fast.
fn source_excerpt(src: &[u8], pos: usize, line: usize, secrets: &[(usize, usize)]) -> String {
    /// Characters shown.
    const WIDTH: usize = 100;
    /// Bytes looked at on each side of the position (a character has at most 4 bytes).
    const SPAN: usize = 4 * WIDTH;
    let pos = pos.min(src.len());
    let lo = pos.saturating_sub(SPAN);
    let mut start = src[lo..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(lo, |p| lo + p + 1);
    // Start on a character boundary.
    while start < pos && src[start] & 0xc0 == 0x80 {
        start += 1;
    }
    let hi = pos.saturating_add(SPAN).min(src.len());
    let end = src[pos..hi]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(hi, |p| pos + p);
    let more_left = start > 0 && src[start - 1] != b'\n';
    let more_right = end < src.len() && src[end] != b'\n';

    // Secret spans are string contents: sorted by start, disjoint, so sorted by end too.
    let mut k = secrets.partition_point(|&(_, se)| se <= start);
    let mut shown: Vec<char> = Vec::new();
    let mut caret = None;
    let mut i = start;
    while i < end {
        if caret.is_none() && i >= pos {
            caret = Some(shown.len());
        }
        if let Some(&(ss, se)) = secrets.get(k) {
            if ss <= i {
                if caret.is_none() && pos < se {
                    caret = Some(shown.len());
                }
                shown.extend(redact::REDACTED.chars());
                i = se.max(i + 1);
                k += 1;
                continue;
            }
        }
        let len = utf8_len(src[i]);
        let chunk = &src[i..(i + len).min(end)];
        shown.extend(String::from_utf8_lossy(chunk).chars().map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        }));
        i += len;
    }
    let caret = caret.unwrap_or(shown.len());
    let (mut from, mut to) = (0, shown.len());
    if shown.len() > WIDTH {
        from = caret.saturating_sub(WIDTH / 2).min(shown.len() - WIDTH);
        to = from + WIDTH;
    }
    let prefix = if more_left || from > 0 { "…" } else { "" };
    let suffix = if more_right || to < shown.len() {
        "…"
    } else {
        ""
    };
    let window: String = shown[from..to].iter().collect();
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret_pad = " ".repeat(caret - from + prefix.chars().count());
    format!("    {gutter} | {prefix}{window}{suffix}\n    {pad} | {caret_pad}^\n")
}

/// SARIF columns (1-based, in Unicode code points) of byte positions `(line, offset)`, counted
/// in one pass over each line however many findings share it (a minified config has all of
/// them on one line).
fn char_columns(lines: &[&[u8]], regions: &[Option<(usize, usize)>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..regions.len())
        .filter(|&i| regions[i].is_some())
        .collect();
    order.sort_by_key(|&i| regions[i]);
    let mut out = vec![0; regions.len()];
    // (line, byte offset, characters before it) of the previous position.
    let mut at: Option<(usize, usize, usize)> = None;
    for i in order {
        let Some((line, off)) = regions[i] else {
            continue;
        };
        let lb = lines.get(line).copied().unwrap_or_default();
        let (from, mut chars) = match at {
            Some((l, o, c)) if l == line => (o, c),
            _ => (0, 0),
        };
        // Characters are the bytes that do not continue a UTF-8 sequence.
        chars += lb[from.min(off)..off]
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count();
        at = Some((line, off, chars));
        out[i] = chars + 1;
    }
    out
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xf0..=0xf7 => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// A file name as a SARIF `uri` (a URI reference): bytes outside the unreserved characters and
/// `/` are percent-encoded, so that `:` cannot read as a scheme and spaces or `<stdin>` stay
/// valid.
fn sarif_uri(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn entry_json(file: &str, e: &Entry) -> J {
    json!({
        "file": file,
        "severity": e.severity.as_str(),
        "code": e.code,
        "message": e.message,
        "path": e.path.as_ref().map(|p| p.to_string()),
        "line": e.position().map(|m| m.line),
        "column": e.position().map(|m| m.column),
        "hint": e.hint,
        "ignition": !e.ember_only,
        "source": e.source,
    })
}

fn json_doc(results: &[FileResult]) -> J {
    let mut findings = Vec::new();
    let mut files = Vec::new();
    for r in results {
        for e in &r.report.entries {
            findings.push(entry_json(&r.name, e));
        }
        if let Some(err) = &r.read_error {
            findings.push(json!({
                "file": r.name, "severity": "error", "code": "unreadable-input", "message": err,
                "path": null, "line": null, "column": null, "hint": null, "ignition": false, "source": null,
            }));
        }
        files.push(json!({
            "file": r.name,
            "spec": r.spec.map(|s| s.as_str()),
            "readable": r.read_error.is_none(),
            "valid": r.errors() == 0,
            "errors": r.errors(),
            "warnings": r.warnings(),
        }));
    }
    json!({ "format": "ember-findings/1", "findings": findings, "files": files })
}

fn sarif_doc(results: &[FileResult]) -> J {
    let mut rules: Vec<J> = Vec::new();
    let mut rule_ids: Vec<&str> = Vec::new();
    let mut sarif_results = Vec::new();
    for r in results {
        if let Some(err) = &r.read_error {
            if !rule_ids.contains(&"unreadable-input") {
                rule_ids.push("unreadable-input");
                rules.push(json!({"id": "unreadable-input", "shortDescription": {"text": "the input could not be read"}}));
            }
            sarif_results.push(json!({
                "ruleId": "unreadable-input", "level": "error", "message": {"text": err},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(&r.name)}}}],
            }));
            continue;
        }
        let lines: Vec<&[u8]> = r.src.split(|&b| b == b'\n').collect();
        // (line index, byte offset in the line) of each entry shown with a region.
        let regions: Vec<Option<(usize, usize)>> = r
            .report
            .entries
            .iter()
            .map(|e| match (e.position(), &e.source) {
                (Some(m), None) if m.line == 0 => {
                    // End of input: point at the end of the last line.
                    let l = lines.len().saturating_sub(1);
                    Some((l, lines.get(l).map_or(0, |x| x.len())))
                }
                (Some(m), None) => {
                    let lb = lines.get(m.line - 1).copied().unwrap_or_default();
                    Some((m.line - 1, (m.column - 1).min(lb.len())))
                }
                _ => None,
            })
            .collect();
        let columns = char_columns(&lines, &regions);
        for (e, (region, col)) in r.report.entries.iter().zip(regions.iter().zip(columns)) {
            if !rule_ids.contains(&e.code) {
                rule_ids.push(e.code);
                rules.push(json!({
                    "id": e.code,
                    "shortDescription": {"text": e.message},
                    "properties": {"ignition": !e.ember_only},
                }));
            }
            let mut text = e.message.clone();
            if let Some(s) = &e.source {
                text = format!("{text} (in {s})");
            }
            if let Some(h) = &e.hint {
                text = format!("{text}. Hint: {h}");
            }
            let mut phys = json!({"artifactLocation": {"uri": sarif_uri(&r.name)}});
            if let Some((line, _)) = region {
                phys["region"] = json!({"startLine": line + 1, "startColumn": col});
            }
            let mut res = json!({
                "ruleId": e.code,
                "level": match e.severity { Severity::Error => "error", Severity::Warning => "warning", Severity::Info => "note" },
                "message": {"text": text},
                "locations": [{"physicalLocation": phys}],
            });
            if let Some(p) = &e.path {
                res["locations"][0]["logicalLocations"] =
                    json!([{"fullyQualifiedName": p.to_string(), "kind": "member"}]);
            }
            sarif_results.push(res);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ember",
                "version": super::VERSION,
                "informationUri": "https://example.invalid/ember",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": sarif_results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excerpt(src: &[u8], pos: usize) -> String {
        let secrets = json::parse_doc(src)
            .map(|d| redact::secret_spans(&d))
            .unwrap_or_default();
        source_excerpt(src, pos, 1, &secrets)
    }

    #[test]
    fn long_lines_are_windowed() {
        let src = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let e = excerpt(src.as_bytes(), 300);
        let (text, caret) = e.split_once('\n').unwrap();
        assert_eq!(
            text,
            format!("    1 | …{}X{}…", "a".repeat(50), "b".repeat(49))
        );
        assert_eq!(caret, format!("      | {}^\n", " ".repeat(51)));
        let start = excerpt(src.as_bytes(), 0);
        assert!(start.starts_with(&format!("    1 | {}…\n", "a".repeat(100))));
    }

    /// A config whose 30 merges each reference (gzip-compressed) a config with 30 merges, and so
    /// on `depth` levels down, to a config with one relative file path.
    fn nested_references(depth: usize) -> String {
        use base64::Engine;
        use std::io::Write;
        let mut cur =
            r#"{"ignition":{"version":"3.6.0"},"storage":{"files":[{"path":"rel"}]}}"#.to_string();
        for _ in 0..depth {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(cur.as_bytes()).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
            let merges: Vec<String> = (0..30)
                .map(|i| format!(r#"{{"source":"data:;p={i};base64,{b64}","compression":"gzip"}}"#))
                .collect();
            cur = format!(
                r#"{{"ignition":{{"version":"3.6.0","config":{{"merge":[{}]}}}}}}"#,
                merges.join(",")
            );
        }
        cur
    }

    #[test]
    fn referenced_configs_are_checked_within_a_budget() {
        // 30 + 900 configs: all checked.
        let (_, report) = lint_bytes(nested_references(2).as_bytes());
        let relative = |r: &Report| {
            r.entries
                .iter()
                .filter(|e| e.code == "path-not-absolute")
                .count()
        };
        assert_eq!(
            relative(&report),
            900,
            "one per leaf (invalid, so not merged)"
        );
        assert!(!report
            .entries
            .iter()
            .any(|e| e.code == "references-not-checked"));

        // 63 KB that reference 30^5 = 24 million configs (this took hours): the first 1000
        // are checked, and the linter says where it stopped.
        let src = nested_references(5);
        assert!(src.len() < 65536);
        let (_, report) = lint_bytes(src.as_bytes());
        let stops: Vec<&Entry> = report
            .entries
            .iter()
            .filter(|e| e.code == "references-not-checked")
            .collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].severity, Severity::Warning);
        assert!(
            stops[0]
                .message
                .ends_with("ignition.config.merge.0 ▸ merge.0 ▸ merge.1 ▸ merge.2 ▸ merge.3 and the references after it are not checked"),
            "{}",
            stops[0].message
        );
        assert!(relative(&report) > 0 && relative(&report) < 1000);
    }

    #[test]
    fn many_findings_on_one_long_line() {
        // One line of 20,000 files, each with a relative path (an error) and an inline secret:
        // 20,000 excerpts of a 1 MB line. Walking the whole line (and every secret) for each
        // finding took hours; from the nearest mark it is quick.
        let files: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"path":"r{i}","contents":{{"source":"data:,s{i}"}}}}"#))
            .collect();
        let src = format!(
            r#"{{"ignition":{{"version":"3.6.0"}},"storage":{{"files":[{}]}}}}"#,
            files.join(",")
        );
        let [human, _json, sarif] = lint_and_render("big.ign", src.as_bytes());
        let last = "\"path\":\"r19999\"";
        let col = src.find(last).unwrap() + "\"path\":".len() + 1;
        assert!(human.contains(&format!("big.ign:1:{col}: error: path not absolute")));
        assert!(human.matches("<redacted>").count() > 20_000);
        assert!(!human.contains("s19999"), "secrets stay hidden");
        let doc: J = serde_json::from_str(&sarif).unwrap();
        let results = doc["runs"][0]["results"].as_array().unwrap();
        let cols: Vec<u64> = results
            .iter()
            .filter(|r| r["ruleId"] == "path-not-absolute")
            .map(|r| {
                r["locations"][0]["physicalLocation"]["region"]["startColumn"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(cols.len(), 20_000);
        assert_eq!(*cols.last().unwrap(), col as u64);
    }
}
