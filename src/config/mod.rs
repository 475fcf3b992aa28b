//! Configs: spec versions 3.0.0 to 3.6.0 (and 3.7.0-experimental), read exactly as Ignition
//! reads them, validated with exact locations, translated to one internal model, merged.
//!
//! The pipeline of [`parse`] follows Ignition's, step for step, so that the same configs pass
//! and fail with the same report:
//!
//! 1. an empty input is "no config" ([`ParseError::Empty`]);
//! 2. the JSON must be syntactically valid ([`json`]);
//! 3. `ignition.version` is read through a small stub and must be a supported version
//!    ([`version`]);
//! 4. the document is decoded into that version's types ([`decode`]);
//! 5. the version's validation rules run ([`validate`]) and report entries get their line and
//!    column ([`report`]);
//! 6. the config is translated up to the internal model ([`model`], version 3.7.0-experimental).
//!
//! Ember adds findings of its own (marked `ember_only`): keys matched only case-insensitively,
//! duplicate keys, invalid UTF-8, information lost in translation, and whole-config checks.

pub mod dataurl;
pub mod decode;
pub mod gzip;
pub mod json;
pub mod marshal;
pub mod merge;
pub mod model;
pub mod redact;
pub mod report;
pub mod schema;
pub mod unit;
pub mod url;
pub mod validate;
pub mod version;

use std::fmt;

pub use model::Config;

/// The largest config Ember reads, from any source: a provider's, one named on the kernel
/// command line or read from a device, a referenced config, the cache, and a gzip config
/// decompressed (a guard against runaway sources and decompression bombs; Ignition has no
/// limit).
pub const MAX_CONFIG_SIZE: u64 = 256 << 20;
pub use report::{Entry, JsonPath, Report, Severity};
pub use version::Spec;

use decode::Note;
use validate::ember_warning;

/// Why a config could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The input is empty: "no config" for the engine.
    Empty,
    /// The report holds at least one error.
    Invalid,
    /// `ignition.version` is missing, unparseable or unsupported.
    Version(version::VersionError),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("not a config (empty)"),
            ParseError::Invalid => f.write_str("config is not valid"),
            ParseError::Version(v) => write!(f, "{v}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The result of reading one config.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The spec version the config declared, when it could be read.
    pub spec: Option<Spec>,
    /// The config translated to the internal model; `None` when `error` is set.
    pub config: Option<Config>,
    /// Every finding, Ignition's first (in Ignition's order), then Ember's own.
    pub report: Report,
    pub error: Option<ParseError>,
}

impl Parsed {
    fn failed(report: Report, error: ParseError) -> Self {
        Parsed {
            spec: None,
            config: None,
            report,
            error: Some(error),
        }
    }
}

fn document_error(msg: String, index: usize, code: &'static str) -> Entry {
    let mut e = Entry::error(JsonPath::root(), code, msg).at_index(index);
    e.path = None;
    e
}

/// Reads, validates and translates a config, as Ignition's `config.Parse` does.
pub fn parse(raw: &[u8]) -> Parsed {
    if raw.is_empty() {
        return Parsed::failed(Report::default(), ParseError::Empty);
    }
    let mut report = Report::default();
    let doc = match json::parse_doc(raw) {
        Ok(t) => t,
        Err(e) => {
            // Go's offset is one past the offending byte.
            let at = e.offset.saturating_sub(1).min(raw.len().saturating_sub(1));
            report.push(
                document_error(e.msg.clone(), e.offset, "json-syntax")
                    .with_hint(syntax_hint(&e.msg, raw, at))
                    .ember_at(at),
            );
            report.correlate(None, raw);
            return Parsed::failed(report, ParseError::Invalid);
        }
    };
    let version = match decode::decode_version_stub(&doc) {
        Ok(v) => v,
        Err(e) => {
            report.push(
                document_error(e.to_string(), e.offset, "json-type")
                    .with_hint("\"ignition\" must be an object and \"ignition.version\" a string")
                    .ember_at(e.value_start),
            );
            report.correlate(None, raw);
            return Parsed::failed(report, ParseError::Invalid);
        }
    };
    let spec = match version::spec_from_version(&version) {
        Ok(s) => s,
        Err(e) => {
            let mut p = Parsed::failed(report, ParseError::Version(e));
            p.report.push(version_entry(&version, e));
            p.report.correlate(Some(&doc), raw);
            return p;
        }
    };
    let (mut cfg, notes) = match decode::decode_config(&doc, spec) {
        Ok(x) => x,
        Err(e) => {
            report.push(
                document_error(e.to_string(), e.offset, "json-type").with_hint(type_hint(&e)),
            );
            report.correlate(None, raw);
            let mut p = Parsed::failed(report, ParseError::Invalid);
            p.spec = Some(spec);
            return p;
        }
    };

    report.extend(validate::rules(&cfg, spec));
    report.extend(validate::duplicates(&cfg, spec));
    report.extend(validate::unused_keys(&cfg, spec, &doc));

    // Ember's own findings.
    for n in notes {
        report.push(note_entry(n));
    }
    if spec.is_experimental() {
        report.push(
            ember_warning(
                JsonPath::root().key("ignition").key("version"),
                "experimental-spec",
                "spec 3.7.0-experimental may change incompatibly in any release",
            )
            .with_hint("use \"3.6.0\" unless you need an experimental feature"),
        );
    }
    report.extend(validate::mode_checks(&cfg));
    translate(&mut cfg, spec, &mut report);
    let boot = boot_only_errors(&cfg, spec, &report);
    report.extend(boot);
    report.extend(validate::whole_config_checks(&cfg));
    report.correlate(Some(&doc), raw);

    // Only Ignition's findings decide whether the config is usable; Ember's own errors are
    // enforced by the linter and by the stages where they matter.
    let error = report.ignition_has_errors().then_some(ParseError::Invalid);
    Parsed {
        spec: Some(spec),
        config: if error.is_none() { Some(cfg) } else { None },
        report,
        error,
    }
}

/// Translates a decoded config of version `spec` up to the internal model, applying the
/// changes Ignition's translations make.
fn translate(cfg: &mut Config, spec: Spec, report: &mut Report) {
    if spec == Spec::V3_4 {
        // Ignition's 3.4 → 3.5 translation copies only url and thumbprint of tang servers.
        for (i, l) in cfg.storage.luks.iter_mut().enumerate() {
            for (j, t) in l.clevis.tang.iter_mut().enumerate() {
                if t.advertisement.take().is_some() {
                    report.push(
                        ember_warning(
                            JsonPath::root()
                                .key("storage")
                                .key("luks")
                                .index(i)
                                .key("clevis")
                                .key("tang")
                                .index(j)
                                .key("advertisement"),
                            "tang-advertisement-dropped",
                            "Ignition drops tang advertisements of spec 3.4.0 configs, so the server is contacted at boot",
                        )
                        .with_hint("use spec 3.5.0 or later to keep offline advertisements"),
                    );
                }
            }
        }
    }
    if spec < Spec::V3_6 {
        for f in &mut cfg.storage.files {
            if let Some(m) = &mut f.mode {
                *m &= !0o7000;
            }
        }
        for d in &mut cfg.storage.directories {
            if let Some(m) = &mut d.mode {
                *m &= !0o7000;
            }
        }
    }
    cfg.ignition.version = Spec::LATEST.as_str().to_string();
}

/// Errors that Ignition's check at boot finds in the translated config although the rules of
/// the config's own version pass it (an empty link target in 3.0–3.2): `ignition-validate`
/// accepts such a config and the boot fails, so Ember reports them as its own errors.
fn boot_only_errors(cfg: &Config, spec: Spec, report: &Report) -> Report {
    let mut out = Report::default();
    // From 3.3.0 on, every rule of the latest spec that a config of that version can reach is
    // at least as strict in the version's own rules (the later specs only add fields, formats,
    // pins and schemes), so the second pass can only find something in 3.0–3.2 configs.
    if report.ignition_has_errors() || spec >= Spec::V3_3 {
        return out;
    }
    for mut e in validate::rules(cfg, Spec::LATEST).entries {
        if e.severity != Severity::Error
            || report
                .entries
                .iter()
                .any(|o| o.path == e.path && o.message == e.message)
        {
            continue;
        }
        e.hint = Some(format!(
            "spec {spec} does not check this, but Ignition checks every config again at boot, \
             translated to the latest spec, and stops there"
        ));
        e.message = format!("{} (fails at boot)", e.message);
        out.push(e.ember());
    }
    out
}

/// Validates a config that was assembled at run time (merged, or read from the cache) with the
/// latest rules, as Ignition does after rendering: no duplicate or unused-key checks, no
/// positions.
pub fn validate_runtime(cfg: &Config) -> Report {
    validate::rules(cfg, Spec::LATEST)
}

fn version_entry(version: &str, e: version::VersionError) -> Entry {
    let path = JsonPath::root().key("ignition").key("version");
    let (code, msg, hint) = match e {
        version::VersionError::Unparseable if version.is_empty() => (
            "version-missing",
            "ignition.version is missing or empty".to_string(),
            format!(
                "add \"ignition\": {{\"version\": \"{}\"}}; supported versions: {}",
                Spec::MAX_STABLE,
                version::supported_list()
            ),
        ),
        version::VersionError::Unparseable => (
            "version-unparseable",
            format!("version {version:?} is not a version number"),
            format!("supported versions: {}", version::supported_list()),
        ),
        version::VersionError::Unsupported => (
            "version-unsupported",
            format!("spec version {version:?} is not supported"),
            format!(
                "supported versions: {} (and 3.7.0-experimental); 2.x configs must be translated first",
                version::supported_list()
            ),
        ),
    };
    Entry::error(path, code, msg).with_hint(hint).ember()
}

fn note_entry(n: Note) -> Entry {
    match n {
        Note::CaseFolded {
            path,
            written,
            field,
            key_start,
        } => ember_warning(
            JsonPath::from_dotted(&path).key(&written),
            "key-case",
            format!(
                "key {written:?} is read as {field:?} only because Ignition ignores case in keys"
            ),
        )
        .with_hint(format!("write it as {field:?}"))
        .at_index(key_start),
        Note::DuplicateKey {
            path,
            key,
            key_start,
        } => ember_warning(
            JsonPath::from_dotted(&path).key(&key),
            "duplicate-key",
            format!(
                "key {key:?} appears more than once in this object; Ignition merges the values"
            ),
        )
        .with_hint("keep one occurrence")
        .at_index(key_start),
        Note::InvalidUtf8 { path, start } => ember_warning(
            JsonPath::from_dotted(&path),
            "invalid-utf8",
            "string holds invalid UTF-8; Ignition replaces those bytes with U+FFFD",
        )
        .with_hint("save the file as UTF-8")
        .at_index(start),
    }
}

fn syntax_hint(msg: &str, raw: &[u8], at: usize) -> String {
    // A number with a leading zero, like an octal file mode.
    let before = &raw[..at.min(raw.len())];
    let digits_before = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits_before > 0
        && before[before.len() - digits_before] == b'0'
        && raw.get(at).is_some_and(u8::is_ascii_digit)
    {
        return "JSON numbers cannot start with 0: write file modes in decimal (0644 is 420, 0755 is 493)".into();
    }
    if msg.contains("unexpected end") {
        "the JSON stops early: check for a missing '}' or ']' or a truncated file".into()
    } else if msg.contains("looking for beginning of object key string") {
        "object keys need double quotes, and JSON allows no trailing comma".into()
    } else if msg.contains("after object key:value pair") || msg.contains("after array element") {
        "a ',' is missing between two entries, or a bracket is not closed".into()
    } else if msg.contains("exceeded max depth") {
        "nesting deeper than 10000 levels is not accepted".into()
    } else if msg.contains("'ï'") {
        "the file starts with a byte-order mark; save it as UTF-8 without BOM".into()
    } else {
        "the file is not valid JSON at this position".into()
    }
}

fn type_hint(e: &decode::TypeError) -> String {
    match e.go_type.as_str() {
        "int" if e.value.starts_with("number ") => {
            "integers only: no decimal point or exponent, and within 64 bits".into()
        }
        "int" => "this must be a number (modes are decimal, e.g. 420 for 0644)".into(),
        "bool" => "this must be true or false, without quotes".into(),
        "string" => "this must be a string in double quotes".into(),
        t if t.starts_with("[]") || t == "types.HTTPHeaders" => {
            "this must be a list: [ ... ]".into()
        }
        t if t.starts_with("types.") => "this must be an object: { ... }".into(),
        _ => "the value has the wrong type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(src: &str) -> Vec<String> {
        parse(src.as_bytes())
            .report
            .ignition_entries()
            .map(|e| e.ignition_line())
            .collect()
    }

    #[test]
    fn reproduces_ignitions_report() {
        // The same layout as Ignition's own example; the expected lines are Ignition's output.
        let src = concat!(
            "{\n",
            "  \"ignition\": {\"version\": \"3.5.0\"},\n",
            "  \"storage\": {\"files\": [\n",
            "              {\"path\": \"/foo/bar\", \"mode\": 3565, \"foo\": 1, \"contents\": {\"source\": \"data:,\"}},\n",
            "              {\"path\": \"/foo/bar\"},\n",
            "              {\"path\": \"foo/bar\", \"overwrite\": true}\n",
            "  ]},\n",
            "  \"systemd\": {\"units\": [{\"name\": \"x.service\", \"enabled\": true, \"contents\": \"[Service]\\nType=oneshot\"}]}\n",
            "}\n"
        );
        assert_eq!(
            lines(src),
            vec![
                "warning at $.storage.files.0.mode, line 4 col 44: setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
                "error at $.storage.files.2.path, line 6 col 24: path not absolute",
                "error at $.storage.files.2.overwrite, line 6 col 48: overwrite must be false if source is unspecified",
                "warning at $.systemd.units.0.contents, line 8 col 76: unit \"x.service\" is enabled, but has no install section so enable does nothing",
                "error at $.storage.files.1, line 5 col 16: duplicate entry defined",
                "warning at $.storage.files.0.foo, line 4 col 50: unused key foo",
            ]
        );
    }

    #[test]
    fn document_level_errors() {
        assert_eq!(parse(b"").error, Some(ParseError::Empty));
        assert_eq!(
            lines("{\"ignition\": "),
            vec!["error at line 0 col 0: unexpected end of JSON input"]
        );
        assert_eq!(
            lines("{\"ignition\": {\"version\": 3}}"),
            vec!["error at line 1 col 27: json: cannot unmarshal number into Go struct field versionStub.ignition.version of type string"]
        );
        let p = parse(b"{\"ignition\": {\"version\": \"2.2.0\"}}");
        assert_eq!(
            p.error,
            Some(ParseError::Version(version::VersionError::Unsupported))
        );
        assert_eq!(p.report.ignition_entries().count(), 0);
        assert_eq!(
            parse(b"{}").error,
            Some(ParseError::Version(version::VersionError::Unparseable))
        );
    }

    #[test]
    fn case_insensitive_keys_fall_back_to_root_marker() {
        assert_eq!(
            lines(r#"{"IGNITION":{"VERSION":"3.6.0"},"Storage":{"Files":[{"PATH":"rel"}]}}"#),
            vec![
                "error at $.storage.files.0.path, line 1 col 2: path not absolute",
                "warning at $.IGNITION, line 1 col 2: unused key IGNITION",
                "warning at $.Storage, line 1 col 33: unused key Storage",
            ]
        );
    }

    #[test]
    fn one_context_warning_per_mismatched_subtree() {
        assert_eq!(
            lines(r#"{"ignition":{"version":"3.6.0"},"storage":{"files":[{"path":"/a"}]},"storage":null}"#),
            vec!["warning at $.storage, line 1 col 79: context tree does not match content tree at $.storage. Line and column reporting may be inconsistent. Unused keys may not be reported"]
        );
    }

    #[test]
    fn reports_what_only_the_boot_time_check_rejects() {
        // Spec 3.2 lets a link target be empty; the translated config then fails the latest
        // rules, which Ignition applies at boot.
        let p = parse(
            br#"{"ignition":{"version":"3.2.0"},"storage":{"links":[{"path":"/l","target":""}]}}"#,
        );
        assert!(p.error.is_none(), "Ignition accepts it: {:?}", p.report);
        assert_eq!(p.report.ignition_entries().count(), 0);
        let e = p
            .report
            .entries
            .iter()
            .find(|e| e.severity == Severity::Error)
            .expect("an error of Ember's own");
        assert!(e.ember_only);
        assert_eq!(e.message, "link target is required (fails at boot)");
        assert_eq!(
            e.path.as_ref().unwrap().to_string(),
            "$.storage.links.0.target"
        );
        let m = e.position().unwrap();
        assert_eq!((m.line, m.column), (1, 75));
        assert!(validate_runtime(p.config.as_ref().unwrap()).has_errors());

        // The same link in 3.3 is Ignition's own error, reported once.
        let p = parse(
            br#"{"ignition":{"version":"3.3.0"},"storage":{"links":[{"path":"/l","target":""}]}}"#,
        );
        assert_eq!(p.error, Some(ParseError::Invalid));
        assert_eq!(
            p.report
                .entries
                .iter()
                .filter(|e| e.message.starts_with("link target is required"))
                .count(),
            1
        );
    }

    #[test]
    fn enabled_unit_with_bad_contents_also_lacks_install() {
        let l = lines(
            r#"{"ignition":{"version":"3.6.0"},"systemd":{"units":[{"name":"a.service","enabled":true,"contents":"[Service"}]}}"#,
        );
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[0].starts_with("error at $.systemd.units.0.contents"));
        assert!(l[1].starts_with("warning at $.systemd.units.0.contents"));
    }

    #[test]
    fn translation_masks_special_bits_before_3_6() {
        let p = parse(
            br#"{"ignition":{"version":"3.5.0"},"storage":{"files":[{"path":"/a","mode":3565}]}}"#,
        );
        assert_eq!(p.config.unwrap().storage.files[0].mode, Some(493));
        let p = parse(
            br#"{"ignition":{"version":"3.6.0"},"storage":{"files":[{"path":"/a","mode":3565}]}}"#,
        );
        assert_eq!(p.config.unwrap().storage.files[0].mode, Some(3565));
    }
}
