//! `ember validate` as a user runs it: the three output formats, `--strict`, exit codes, standard
//! input, several files, configs merged through data: URLs, secrets, and bad input of every kind
//! (each must end with a clear error and exit 1 or 2, never a panic or a hang).

use std::io::Write;

use serde_json::Value;

use crate::harness::TempDir;
use crate::lint_support::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn example(name: &str) -> String {
    format!("{EXAMPLES}/{name}")
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}):\n{}", r.stdout))
}

/// Percent-encodes a config for a `data:,` URL.
fn data_url(config: &str) -> String {
    let mut out = String::from("data:,");
    for b in config.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sha512_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha512::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Output formats

#[test]
fn human_format() {
    let mistakes = example("mistakes.ign");
    let r = ember(&["validate", &mistakes], None);
    r.expect_code(1);
    let out = &r.stdout;
    // One finding: location, severity, message, code; the JSON path; the source line with a
    // caret under the position; a hint.
    let want = format!(
        "{mistakes}:8:16: error: path not absolute [path-not-absolute]
    at $.storage.files.0.path
    8 |       {{\"path\": \"etc/hostname\", \"mode\": 644, \"contents\": {{\"source\": \"data:,<redacted>\"}}}},
      |                ^
    hint: make it absolute: \"/etc/hostname\"
"
    );
    assert!(out.starts_with(&want), "{out}");
    // Ember's own findings are in the same format, with their own codes.
    assert!(out.contains(&format!(
        "{mistakes}:4:5: warning: unused key filesytems [unused-key]\n    at $.storage.filesytems\n"
    )));
    assert!(out.contains("    hint: did you mean \"filesystems\"?\n"));
    assert!(out.contains("[mode-looks-octal]"));
    assert!(out.contains("    hint: if you meant 0644, write 420\n"));
    assert!(out.ends_with(&format!("{mistakes}: 5 errors, 4 warnings (spec 3.4.0)\n")));
    // Every finding line has the file:line:col: severity: message [code] shape.
    let finding_lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with(&mistakes) && l.contains(": error: ") || l.contains(": warning: ")
        })
        .collect();
    assert_eq!(finding_lines.len(), 9, "{out}");
    for l in finding_lines {
        let rest = l.strip_prefix(&format!("{mistakes}:")).unwrap();
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap();
        let col: usize = parts.next().unwrap().parse().unwrap();
        assert!(line >= 1 && col >= 1, "{l}");
        assert!(l.ends_with(']'), "{l}");
    }
    // A clean config.
    let clean = example("clean.ign");
    let r = ember(&["validate", &clean], None);
    r.expect_code(0);
    assert_eq!(r.stdout, format!("{clean}: valid (spec 3.6.0)\n"));
    assert_eq!(r.stderr, "");
}

#[test]
fn json_format() {
    let mistakes = example("mistakes.ign");
    let clean = example("clean.ign");
    let r = ember(&["validate", "--format", "json", &mistakes, &clean], None);
    r.expect_code(1);
    let v = json_of(&r);
    assert_eq!(v["format"], "ember-findings/1");
    let obj = v.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["files", "findings", "format"]
    );
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 9);
    let keys = [
        "code", "column", "file", "hint", "ignition", "line", "message", "path", "severity",
        "source",
    ];
    for f in findings {
        let o = f.as_object().unwrap();
        assert_eq!(
            o.keys().map(String::as_str).collect::<Vec<_>>(),
            keys,
            "{f}"
        );
        assert_eq!(f["file"], mistakes.as_str());
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
        assert!(f["code"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-'));
        assert!(f["message"].is_string());
        assert!(f["path"].as_str().unwrap().starts_with("$."));
        assert!(f["line"].as_u64().unwrap() >= 1);
        assert!(f["column"].as_u64().unwrap() >= 1);
        assert!(f["hint"].is_string() || f["hint"].is_null());
        assert!(f["ignition"].is_boolean());
        assert!(f["source"].is_null());
    }
    // The first finding, in full.
    assert_eq!(
        findings[0],
        serde_json::json!({
            "file": mistakes, "severity": "error", "code": "path-not-absolute",
            "message": "path not absolute", "path": "$.storage.files.0.path", "line": 8,
            "column": 16, "hint": "make it absolute: \"/etc/hostname\"", "ignition": true,
            "source": null,
        })
    );
    // Ignition's findings are marked as such; Ember's own are not.
    let by_code = |c: &str| findings.iter().find(|f| f["code"] == c).unwrap();
    assert_eq!(by_code("duplicate")["ignition"], true);
    assert_eq!(by_code("unused-key")["ignition"], true);
    assert_eq!(by_code("mode-looks-octal")["ignition"], false);
    // Per-file summaries agree with the findings.
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0],
        serde_json::json!({"file": mistakes, "spec": "3.4.0", "readable": true, "valid": false, "errors": 5, "warnings": 4})
    );
    assert_eq!(
        files[1],
        serde_json::json!({"file": clean, "spec": "3.6.0", "readable": true, "valid": true, "errors": 0, "warnings": 0})
    );
    let errors = findings.iter().filter(|f| f["severity"] == "error").count();
    assert_eq!(files[0]["errors"].as_u64(), Some(errors as u64));
    assert_eq!(r.stderr, "");
}

#[test]
fn json_columns_count_bytes_and_sarif_columns_count_characters() {
    // `"é"` is two bytes: the mode's byte column is one more than its character column.
    let src = "{\"ignition\": {\"version\": \"3.6.0\"},\n\"storage\": {\"files\": [{\"path\": \"/é\", \"mode\": -1}]}}\n";
    let r = ember_validate_src(src.as_bytes(), &["--format", "json"]);
    r.expect_code(1);
    let v = json_of(&r);
    let f = &v["findings"][0];
    assert_eq!(f["code"], "mode-illegal");
    // `"storage": {"files": [{"path": "/é", "mode": `: 46 bytes, 45 characters.
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(2), Some(47))
    );
    let r = ember_validate_src(src.as_bytes(), &["--format", "sarif"]);
    let v = json_of(&r);
    let region = &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 2);
    assert_eq!(region["startColumn"], 46);
}

#[test]
fn sarif_format() {
    let mistakes = example("mistakes.ign");
    let r = ember(
        &[
            "validate",
            "--format",
            "sarif",
            &mistakes,
            "/nonexistent/x.ign",
        ],
        None,
    );
    r.expect_code(2);
    let v = json_of(&r);
    // SARIF 2.1.0's required properties: version, runs; run.tool.driver.name; result.message.
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "ember");
    assert!(driver["version"].is_string());
    assert_eq!(run["columnKind"], "unicodeCodePoints");
    let rules = driver["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = rule_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), rule_ids.len(), "rule ids are unique");
    for rule in rules {
        assert!(rule["shortDescription"]["text"].is_string());
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 10, "9 findings and the unreadable file");
    for res in results {
        assert!(res["message"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        let id = res["ruleId"].as_str().unwrap();
        assert!(rule_ids.contains(&id), "{id} is described in rules");
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
        let loc = &res["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].is_string());
        if id != "unreadable-input" {
            assert_eq!(loc["artifactLocation"]["uri"], mistakes.as_str());
            assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
            assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
            assert!(
                res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
                    .as_str()
                    .unwrap()
                    .starts_with("$.")
            );
        }
    }
    let first = &results[0];
    assert_eq!(first["ruleId"], "path-not-absolute");
    assert_eq!(first["level"], "error");
    assert_eq!(
        first["message"]["text"],
        "path not absolute. Hint: make it absolute: \"/etc/hostname\""
    );
    assert_eq!(
        first["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 8, "startColumn": 16})
    );
    let unreadable = results
        .iter()
        .find(|r| r["ruleId"] == "unreadable-input")
        .unwrap();
    assert_eq!(unreadable["level"], "error");
    assert_eq!(
        unreadable["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "/nonexistent/x.ign"
    );
    // Names that are not valid URI references are encoded.
    let r = ember(
        &["validate", "--format", "sarif", "-"],
        Some(b"{\"ignition\": {\"version\": \"3.6.0\"}, \"x\": 1}"),
    );
    r.expect_code(0);
    let v = json_of(&r);
    assert_eq!(
        v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "%3Cstdin%3E"
    );
    assert_eq!(v["runs"][0]["results"][0]["level"], "warning");
}

// ---------------------------------------------------------------------------------------------
// --strict, exit codes, standard input, several files

#[test]
fn strict_makes_warnings_errors() {
    let src = cfg("3.6.0", "\n\"storage\": {\"filesytems\": []}");
    let r = ember_validate_src(src.as_bytes(), &[]);
    r.expect_code(0);
    assert!(r.stdout.contains(": warning: unused key filesytems"));
    assert!(r.stdout.contains("0 errors, 1 warning (spec 3.6.0)"));
    let r = ember_validate_src(src.as_bytes(), &["--strict"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains(": error: unused key filesytems"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 error, 0 warnings"));
    let r = ember_validate_src(src.as_bytes(), &["--strict", "--format", "json"]);
    r.expect_code(1);
    let v = json_of(&r);
    assert_eq!(v["findings"][0]["severity"], "error");
    assert_eq!(v["files"][0]["valid"], false);
    // A clean config stays clean.
    ember(&["validate", "--strict", &example("clean.ign")], None).expect_code(0);
}

#[test]
fn inputs_larger_than_a_config_can_be_are_refused() {
    let dir = TempDir::new("big");
    // Sparse: one byte over the 256 MiB limit costs no disk.
    let big = dir.path().join("big.ign");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    let r = ember(&["validate", big.to_str().unwrap()], None);
    r.expect_code(2);
    assert!(
        r.stdout.contains("big.ign: error: ") && r.stdout.contains("is larger than 256 MiB"),
        "{}",
        r.stdout
    );
    // ignition-validate refuses it too, in its own words.
    let r = ignition_validate(&[big.to_str().unwrap()], None);
    r.expect_code(1);
    assert!(
        r.stderr.starts_with("couldn't read config: ")
            && r.stderr.contains("is larger than 256 MiB"),
        "{}",
        r.stderr
    );
}

#[test]
fn exit_codes() {
    let dir = TempDir::new("exit");
    let clean = example("clean.ign");
    let mistakes = example("mistakes.ign");
    // 0: no errors; 1: errors.
    ember(&["validate", &clean], None).expect_code(0);
    ember(&["validate", &mistakes], None).expect_code(1);
    ember(&["validate", &clean, &mistakes], None).expect_code(1);
    // 2: an input that cannot be read, whatever the others contain.
    let missing = dir.path().join("missing.ign");
    let r = ember(&["validate", missing.to_str().unwrap()], None);
    r.expect_code(2);
    assert!(
        r.stdout.contains("missing.ign: error: cannot open"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("No such file or directory"));
    let r = ember(&["validate", dir.path().to_str().unwrap()], None);
    r.expect_code(2);
    assert!(r.stdout.contains("Is a directory"), "{}", r.stdout);
    // Opens but cannot be read: /proc/self/mem has nothing mapped at offset 0.
    let r = ember(&["validate", "/proc/self/mem"], None);
    r.expect_code(2);
    assert!(
        r.stdout.contains("/proc/self/mem: error: cannot read"),
        "{}",
        r.stdout
    );
    ember(&["validate", &clean, missing.to_str().unwrap()], None).expect_code(2);
    ember(&["validate", &mistakes, missing.to_str().unwrap()], None).expect_code(2);
    // A dangling symlink.
    let link = dir.path().join("dangling.ign");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
    ember(&["validate", link.to_str().unwrap()], None).expect_code(2);
    // 2: bad usage, with the reason and the usage on stderr, nothing on stdout.
    for args in [
        &["validate"][..],
        &["validate", "--bogus", &clean],
        &["validate", "--format", "xml", &clean],
        &["validate", &clean, "--format"],
        &["validate", "--strict=yes", &clean],
        &["frobnicate"],
        &[],
    ] {
        let r = ember(args, None);
        r.expect_code(2);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            r.stderr.contains("Usage")
                || r.stderr.contains("use human, json or sarif")
                || r.stderr.contains("missing argument for option '--format'"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // --help documents the exit codes.
    let r = ember(&["validate", "--help"], None);
    r.expect_code(0);
    for l in [
        "0  no errors",
        "1  at least one config has errors",
        "2  bad usage, or an input could not be read",
    ] {
        assert!(r.stdout.contains(l), "{}", r.stdout);
    }
}

#[test]
fn standard_input() {
    let r = ember(
        &["validate", "-"],
        Some(b"{\"ignition\": {\"version\": \"3.5.0\"}}"),
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "<stdin>: valid (spec 3.5.0)\n");
    let r = ember(
        &["validate", "--format", "json", "-"],
        Some(b"{\"ignition\": {\"version\": \"3.5.0\"},\n\"storage\": {\"files\": [{\"path\": \"x\"}]}}"),
    );
    r.expect_code(1);
    let v = json_of(&r);
    assert_eq!(v["findings"][0]["file"], "<stdin>");
    assert_eq!(v["findings"][0]["line"], 2);
    assert_eq!(v["files"][0]["file"], "<stdin>");
    // Standard input mixed with files.
    let r = ember(&["validate", &example("clean.ign"), "-"], Some(b""));
    r.expect_code(1);
    assert!(
        r.stdout
            .contains("<stdin>: error: not a config (empty) [empty]"),
        "{}",
        r.stdout
    );
    // ignition-validate reads it too.
    let r = ignition_validate(
        &["-"],
        Some(b"{\"ignition\": {\"version\": \"3.5.0\"}, \"x\": 1}"),
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "warning at $.x, line 1 col 36: unused key x\n");
}

#[test]
fn several_files() {
    let dir = TempDir::new("several");
    let mut names = Vec::new();
    for (i, v) in ["3.0.0", "3.2.0", "3.4.0", "3.6.0"].iter().enumerate() {
        let p = dir.path().join(format!("c{i}.ign"));
        let body = if i == 2 {
            "\n\"storage\": {\"files\": [{\"path\": \"x\"}]}"
        } else {
            "\n\"passwd\": {}"
        };
        std::fs::write(&p, cfg(v, body)).unwrap();
        names.push(p.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = ["validate"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .collect();
    let r = ember(&args, None);
    r.expect_code(1);
    let summaries: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.contains(": error: "))
        .collect();
    assert_eq!(
        summaries,
        vec![
            format!("{}: valid (spec 3.0.0)", names[0]),
            format!("{}: valid (spec 3.2.0)", names[1]),
            format!("{}: 1 error, 0 warnings (spec 3.4.0)", names[2]),
            format!("{}: valid (spec 3.6.0)", names[3]),
        ],
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains(&format!("{}:2:32: error: path not absolute", names[2])));
    let mut json_args = vec!["validate", "--format", "json"];
    json_args.extend(names.iter().map(String::as_str));
    let v = json_of(&ember(&json_args, None));
    let valid: Vec<bool> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["valid"].as_bool().unwrap())
        .collect();
    assert_eq!(valid, vec![true, true, false, true]);
}

// ---------------------------------------------------------------------------------------------
// Configs merged through data: URLs

#[test]
fn merged_children_are_checked() {
    // The child has an error of its own; the parent points at the reference (line 2, col 2).
    let child = r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "rel"}]}}"#;
    let src = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\", \"config\": {{\"merge\": [\n{{\"source\": \"{}\"}},\n{{\"source\": \"https://example.com/other.ign\"}}\n]}}}}}}\n",
        data_url(child)
    );
    let r = ember_validate_src(src.as_bytes(), &["--format", "json"]);
    r.expect_code(1);
    let v = json_of(&r);
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f[0]["code"], "path-not-absolute");
    assert_eq!(f[0]["source"], "ignition.config.merge.0 (data URL)");
    assert_eq!(f[0]["ignition"], false);
    // Position inside the child: `{"ignition": {"version": "3.6.0"}, "storage": {"files":
    // [{"path": ` is 66 bytes.
    assert_eq!(
        (f[0]["line"].as_u64(), f[0]["column"].as_u64()),
        (Some(1), Some(67))
    );
    assert_eq!(f[1]["code"], "child-invalid");
    assert_eq!(f[1]["path"], "$.ignition.config.merge.0");
    assert_eq!(
        (f[1]["line"].as_u64(), f[1]["column"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(f[2]["code"], "not-fetched");
    assert_eq!(f[2]["severity"], "info");
    assert_eq!(
        (f[2]["line"].as_u64(), f[2]["column"].as_u64()),
        (Some(3), Some(2))
    );
    // ignition-validate does not look into referenced configs.
    validate_src(src.as_bytes()).expect_code(0);
    // Human output names the child.
    let r = ember_validate_src(src.as_bytes(), &[]);
    assert!(
        r.stdout
            .contains("[ignition.config.merge.0 (data URL)]:1:67: error: path not absolute"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_merged_config_is_checked_as_a_whole() {
    // Each config is fine alone; merged, a directory sits below a file, and a 3.2 child's
    // empty link target fails the latest rules that Ignition applies to the merged config.
    let child = r#"{"ignition": {"version": "3.2.0"}, "storage": {"directories": [{"path": "/etc/hostname/x"}], "links": [{"path": "/l"}]}}"#;
    let src = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\", \"config\": {{\"merge\": [{{\"source\": \"{}\"}}]}}}},\n\"storage\": {{\"files\": [{{\"path\": \"/etc/hostname\", \"contents\": {{\"source\": \"data:,h\"}}}}]}}}}\n",
        data_url(child)
    );
    let v = json_of(&ember_validate_src(src.as_bytes(), &["--format", "json"]));
    let f = v["findings"].as_array().unwrap();
    let codes: Vec<(&str, &str)> = f
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap(),
                e["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("link-target-required", "ignition.config.merge.0 (data URL)"),
            ("link-target-required", "the merged config"),
            ("path-below-file", "the merged config"),
        ]
    );
    assert_eq!(f[1]["message"], "after merging: link target is required");
    assert_eq!(f[2]["path"], "$.storage.directories.0.path");
    assert!(f[2]["message"]
        .as_str()
        .unwrap()
        .contains("\"/etc/hostname/x\" is below \"/etc/hostname\""));
    assert_eq!(v["files"][0]["valid"], false);

    // Findings of the parent itself are not repeated for the merged config.
    let child = r#"{"ignition": {"version": "3.6.0"}}"#;
    let src = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\", \"config\": {{\"merge\": [{{\"source\": \"{}\"}}]}}}},\n\"systemd\": {{\"units\": [{{\"name\": \"u.service\", \"enabled\": true, \"contents\": \"[Service]\"}}]}}}}\n",
        data_url(child)
    );
    let v = json_of(&ember_validate_src(src.as_bytes(), &["--format", "json"]));
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["unit-without-install"], "{v}");
}

#[test]
fn replace_verification_and_compression() {
    use flate2::write::GzEncoder;
    let child = r#"{"ignition": {"version": "3.6.0"}, "systemd": {"units": [{"name": "bad"}]}}"#;
    // A gzipped child behind the right hash (of the decompressed data, as Ignition verifies
    // it): decompressed and checked.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(child.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &gz);
    let src = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\", \"config\": {{\"replace\": {{\"source\": \"data:;base64,{b64}\", \"compression\": \"gzip\", \"verification\": {{\"hash\": \"sha512-{}\"}}}}}}}}}}",
        sha512_hex(child.as_bytes())
    );
    let v = json_of(&ember_validate_src(src.as_bytes(), &["--format", "json"]));
    let f = &v["findings"][0];
    assert_eq!(f["code"], "unit-extension", "{v}");
    assert_eq!(f["source"], "ignition.config.replace (data URL)");
    // A wrong hash: not merged, reported at the hash.
    let bad = src.replace(&sha512_hex(child.as_bytes()), SHA512);
    let v = json_of(&ember_validate_src(bad.as_bytes(), &["--format", "json"]));
    let f = &v["findings"][0];
    assert_eq!(f["code"], "hash-mismatch");
    assert_eq!(f["path"], "$.ignition.config.replace.verification.hash");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .starts_with("hash verification failed"));
    // Not gzip although it says so.
    let plain = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\", \"config\": {{\"replace\": {{\"source\": \"{}\", \"compression\": \"gzip\"}}}}}}}}",
        data_url(child)
    );
    let r = ember_validate_src(plain.as_bytes(), &["--format", "json"]);
    r.expect_code(1);
    assert_eq!(json_of(&r)["findings"][0]["code"], "gzip");
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[test]
fn secrets_are_never_printed() {
    let child = r#"{"ignition": {"version": "3.6.0"}, "passwd": {"users": [{"name": "x", "passwordHash": "S3CRET-CHILD-HASH"}]}, "systemd": {"units": [{"name": "c.service", "contents": "[Service] S3CRET-CHILD-UNIT"}]}}"#;
    // Only warnings (unknown keys, a unit without [Install]) on each line, so that the parent
    // is usable and its references are followed, and every line is shown in an excerpt.
    let warnings = format!(
        r#"{{"ignition": {{"version": "3.6.0", "config": {{"merge": [{{"source": "https://user:S3CRET-PW@example.com/c.ign", "httpHeaders": [{{"name": "Authorization", "value": "S3CRET-HEADER"}}]}}, {{"source": "{child}"}}]}}, "x": 1}},
"passwd": {{"users": [{{"name": "core", "passwordHash": "$6$S3CRET-HASH", "foo": 1}}]}},
"storage": {{"files": [{{"path": "/etc/f", "contents": {{"source": "data:,S3CRET-PAYLOAD"}}, "bar": 1}}], "luks": [{{"name": "l", "device": "/dev/vdb", "clevis": {{"custom": {{"pin": "tpm2", "config": "S3CRET-CLEVIS"}}}}}}]}},
"systemd": {{"units": [{{"name": "a.service", "enabled": true, "contents": "[Service]\nEnvironment=S3CRET-UNIT"}}, {{"name": "b.service", "dropins": [{{"name": "d.conf", "contents": "[Service]\nEnvironment=S3CRET-DROPIN"}}]}}]}}}}
"#,
        child = data_url(child)
    );
    // Errors whose messages would quote unit contents.
    let errors = warnings
        .replace("\\nEnvironment=S3CRET-UNIT", " S3CRET-UNIT")
        .replace("\\nEnvironment=S3CRET-DROPIN", " S3CRET-DROPIN");
    assert_ne!(errors, warnings);
    let mut variants = vec![warnings.clone(), errors.clone()];
    // Each line broken in turn: the excerpt of a syntax error is shown without a position tree.
    for i in 0..warnings.lines().count() {
        let broken: Vec<String> = warnings
            .lines()
            .enumerate()
            .map(|(j, l)| {
                if i == j {
                    format!("{l} ,,")
                } else {
                    l.to_string()
                }
            })
            .collect();
        variants.push(broken.join("\n"));
    }
    // Truncated in the middle of the unit contents.
    variants.push(warnings[..warnings.find("S3CRET-UNIT").unwrap() + 8].to_string());
    for src in &variants {
        for format in ["human", "json", "sarif"] {
            for strict in [false, true] {
                let mut args = vec!["--format", format];
                if strict {
                    args.push("--strict");
                }
                let r = ember_validate_src(src.as_bytes(), &args);
                assert!(matches!(r.code, Some(0 | 1)), "{}", r.stderr);
                let all = format!("{}{}", r.stdout, r.stderr);
                assert!(
                    !all.contains("S3CRET"),
                    "a secret in the {format} output:\n{all}\n--- config ---\n{src}"
                );
                assert!(!all.contains("panicked"));
            }
        }
    }
    // The findings are all there, their excerpts redacted.
    let r = ember_validate_src(warnings.as_bytes(), &[]);
    for want in [
        "https://<redacted>@example.com/c.ign",
        "\"value\": \"<redacted>\"",
        "\"passwordHash\": \"<redacted>\"",
        "\"source\": \"data:,<redacted>\"",
        "\"contents\": \"<redacted>\"",
        "warning: unused key x",
        "warning: unused key foo",
        "warning: unused key bar",
        "warning: unit \"a.service\" is enabled, but has no install section",
        "[ignition.config.merge.1 (data URL)]:1:167: error: invalid unit content: found garbage after section name : <redacted> [unit-content]",
        "info: referenced config is not a data: URL",
    ] {
        assert!(r.stdout.contains(want), "{want}:\n{}", r.stdout);
    }
    let r = ember_validate_src(errors.as_bytes(), &[]);
    assert!(
        r.stdout
            .contains("error: invalid unit content: found garbage after section name : <redacted>"),
        "{}",
        r.stdout
    );
    // ignition-validate prints Ignition's messages (it is a drop-in), but no source, and not
    // the unit text that one of them quotes.
    let r = validate_src(warnings.as_bytes());
    assert!(!r.stdout.contains("S3CRET"), "{}", r.stdout);
    let r = validate_src(errors.as_bytes());
    assert!(
        r.stdout
            .contains("invalid unit content: found garbage after section name : <redacted>"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("S3CRET"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// Bad input: a clear error, exit 1 or 2, never a panic or a hang

/// Runs `ember validate` on `src` in all three formats and asserts a clean failure with a
/// finding of `code`; returns the human output.
#[track_caller]
fn fails_cleanly(src: &[u8], code: &str, exit: i32) -> String {
    for format in ["json", "sarif"] {
        let r = ember_validate_src(src, &["--format", format]);
        r.expect_code(exit);
        let v = json_of(&r);
        let text = v.to_string();
        assert!(
            text.contains(&format!("\"{code}\"")),
            "{format}: no {code} in {text}"
        );
    }
    let r = ember_validate_src(src, &[]);
    r.expect_code(exit);
    assert!(r.stdout.contains(&format!("[{code}]")), "{}", r.stdout);
    // Nothing but text: no control bytes from the input reach the terminal.
    assert!(
        !r.stdout.bytes().any(|b| b < 0x20 && b != b'\n'),
        "control bytes in the output:\n{:?}",
        r.stdout
    );
    r.stdout
}

#[test]
fn truncated_json() {
    let full = std::fs::read(example("clean.ign")).unwrap();
    for cut in [1, 2, 10, full.len() / 2, full.len() - 2] {
        let out = fails_cleanly(&full[..cut], "json-syntax", 1);
        assert!(out.contains("unexpected end of JSON input"), "{out}");
        assert!(out.contains("hint: the JSON stops early"), "{out}");
    }
    let r = validate_src(&full[..full.len() / 2]);
    r.expect_code(1);
    assert_eq!(
        r.stdout,
        "error at line 0 col 0: unexpected end of JSON input\n"
    );
}

#[test]
fn wrong_types() {
    for (body, msg) in [
        ("\n\"storage\": {\"files\": [{\"path\": true}]}", "cannot unmarshal bool into Go struct field Config.storage.files.0.path of type string"),
        ("\n\"storage\": {\"files\": \"/etc/motd\"}", "cannot unmarshal string into Go struct field Config.storage.files of type []types.File"),
        ("\n\"systemd\": {\"units\": [{\"name\": \"a.service\", \"enabled\": \"yes\"}]}", "of type bool"),
        ("\n\"passwd\": [\"core\"]", "of type types.Passwd"),
    ] {
        let out = fails_cleanly(cfg("3.6.0", body).as_bytes(), "json-type", 1);
        assert!(out.contains(msg), "{out}");
    }
    for top in ["\"config\"", "42", "[]", "true"] {
        fails_cleanly(top.as_bytes(), "json-type", 1);
    }
    fails_cleanly(b"null", "version-missing", 1);
}

#[test]
fn huge_numbers() {
    for n in [
        "1e400",
        "123456789012345678901234567890",
        "-99999999999999999999",
        "1.7976931348623157e309",
    ] {
        let src = cfg(
            "3.6.0",
            &format!("\n\"storage\": {{\"files\": [{{\"path\": \"/a\", \"mode\": {n}}}]}}"),
        );
        let out = fails_cleanly(src.as_bytes(), "json-type", 1);
        assert!(
            out.contains(&format!("cannot unmarshal number {n} into")),
            "{out}"
        );
    }
    // A number with 100,000 digits.
    let src = cfg(
        "3.6.0",
        &format!(
            "\n\"ignition\": {{\"timeouts\": {{\"httpTotal\": {}}}}}",
            "9".repeat(100_000)
        ),
    );
    fails_cleanly(src.as_bytes(), "json-type", 1);
}

#[test]
fn deep_nesting() {
    let arrays = "[".repeat(100_000);
    let out = fails_cleanly(arrays.as_bytes(), "json-syntax", 1);
    assert!(
        out.contains(":1:10001: error: invalid character '[' exceeded max depth"),
        "{out}"
    );
    let closed = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    fails_cleanly(closed.as_bytes(), "json-syntax", 1);
    let objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    fails_cleanly(objects.as_bytes(), "json-syntax", 1);
    // Deep but allowed nesting inside an unknown key: a warning only.
    let deep_ok = cfg(
        "3.6.0",
        &format!("\n\"x\": {}{}", "[".repeat(9_990), "]".repeat(9_990)),
    );
    let r = ember_validate_src(deep_ok.as_bytes(), &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("unused key x"));
    let r = validate_src(deep_ok.as_bytes());
    r.expect_code(0);
    assert_eq!(r.stdout, "warning at $.x, line 2 col 1: unused key x\n");
}

#[test]
fn binary_garbage() {
    // Deterministic pseudo-random bytes (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut garbage = Vec::with_capacity(1 << 16);
    for _ in 0..(1 << 16) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push((x >> 24) as u8);
    }
    // Make sure it does not start with a byte that begins a JSON value.
    garbage[0] = 0x05;
    let out = fails_cleanly(&garbage, "json-syntax", 1);
    assert!(
        out.contains(":1:1: error: invalid character '\\x05' looking for beginning of value"),
        "{out}"
    );
    // Garbage after a valid start.
    let mut g2 = b"{\"ignition\": {\"version\": \"3.6.0\"}, \"x\": ".to_vec();
    g2.extend_from_slice(&garbage[1..]);
    fails_cleanly(&g2, "json-syntax", 1);
    // NUL bytes.
    fails_cleanly(&[0u8; 4096], "json-syntax", 1);
    validate_src(&garbage).expect_code(1);
}

#[test]
fn invalid_utf8() {
    // Inside a string: accepted (Go replaces it) with an Ember warning.
    let src = b"{\"ignition\": {\"version\": \"3.6.0\"},\n\"storage\": {\"files\": [{\"path\": \"/etc/caf\xe9\", \"contents\": {\"source\": \"data:,caf%E9\"}}]}}\n";
    let r = ember_validate_src(src, &["--format", "json"]);
    r.expect_code(0);
    let v = json_of(&r);
    assert_eq!(v["findings"][0]["code"], "invalid-utf8");
    assert_eq!(v["findings"][0]["severity"], "warning");
    assert_eq!(v["findings"][0]["path"], "$.storage.files.0.path");
    ember_validate_src(src, &["--strict"]).expect_code(1);
    validate_src(src).expect_code(0);
    let p = ember::config::parse(src);
    assert_eq!(p.config.unwrap().storage.files[0].path, "/etc/caf\u{fffd}");
    // Outside a string: a syntax error.
    let out = fails_cleanly(
        b"{\"ignition\": {\"version\": \"3.6.0\"}, \xe9}",
        "json-syntax",
        1,
    );
    assert!(
        out.contains("invalid character '\u{e9}' looking for beginning of object key string"),
        "{out}"
    );
    // Invalid UTF-8 in a key.
    let r = ember_validate_src(
        b"{\"ignition\": {\"version\": \"3.6.0\"}, \"\xff\": 1}",
        &[],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("unused key \u{fffd}"), "{}", r.stdout);
}

#[test]
fn empty_and_blank_files() {
    let out = fails_cleanly(b"", "empty", 1);
    assert!(out.contains("error: not a config (empty)"), "{out}");
    let out = fails_cleanly(b" \n\t\n", "json-syntax", 1);
    assert!(out.contains("unexpected end of JSON input"), "{out}");
}

#[test]
fn byte_order_mark() {
    let mut src = b"\xef\xbb\xbf".to_vec();
    src.extend_from_slice(&std::fs::read(example("clean.ign")).unwrap());
    let out = fails_cleanly(&src, "json-syntax", 1);
    assert!(
        out.contains(":1:1: error: invalid character '\u{ef}' looking for beginning of value"),
        "{out}"
    );
    assert!(
        out.contains("hint: the file starts with a byte-order mark"),
        "{out}"
    );
    let r = validate_src(&src);
    r.expect_code(1);
    assert_eq!(
        r.stdout,
        "error at line 1 col 2: invalid character '\u{ef}' looking for beginning of value\n"
    );
}

#[test]
fn hundred_megabyte_inputs() {
    let dir = TempDir::new("100mb");
    const MB100: usize = 100 << 20;
    // A valid config with a 100 MB data URL.
    let big = dir.path().join("big.ign");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        f.write_all(b"{\"ignition\": {\"version\": \"3.6.0\"}, \"storage\": {\"files\": [{\"path\": \"/big\", \"contents\": {\"source\": \"data:;base64,").unwrap();
        let chunk = [b'A'; 1 << 16];
        for _ in 0..MB100 / chunk.len() {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"}}]}}\n").unwrap();
    }
    let r = ember(&["validate", big.to_str().unwrap()], None);
    r.expect_code(0);
    assert_eq!(r.stdout, format!("{}: valid (spec 3.6.0)\n", big.display()));
    ignition_validate(&[big.to_str().unwrap()], None).expect_code(0);
    // The same with a syntax error at its very end (one 100 MB line to show an excerpt of).
    let broken = dir.path().join("broken.ign");
    let mut bytes = std::fs::read(&big).unwrap();
    let n = bytes.len();
    bytes[n - 2] = b',';
    std::fs::write(&broken, &bytes).unwrap();
    drop(bytes);
    let r = ember(&["validate", broken.to_str().unwrap()], None);
    r.expect_code(1);
    assert!(
        r.stdout.contains("error: unexpected end of JSON input"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.len() < 2000, "the excerpt is cut to a window");
    // 100 MB of garbage.
    let garbage = dir.path().join("garbage.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&garbage).unwrap());
        let mut x: u64 = 88172645463325252;
        let mut chunk = vec![0u8; 1 << 16];
        for _ in 0..MB100 / chunk.len() {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&chunk).unwrap();
        }
    }
    for format in ["human", "json", "sarif"] {
        let r = ember(
            &["validate", "--format", format, garbage.to_str().unwrap()],
            None,
        );
        r.expect_code(1);
        assert!(r.stdout.contains("json-syntax"), "{}", r.stdout);
    }
    ignition_validate(&[garbage.to_str().unwrap()], None).expect_code(1);
}

#[test]
fn many_findings_on_one_long_line() {
    // A minified config with 5000 findings on its single line: each excerpt is a window, so the
    // output stays small and quick.
    let files: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                "{{\"path\": \"rel/f{i}\", \"contents\": {{\"source\": \"data:,{}\"}}}}",
                "x".repeat(200)
            )
        })
        .collect();
    let src = format!(
        "{{\"ignition\": {{\"version\": \"3.6.0\"}}, \"storage\": {{\"files\": [{}]}}}}",
        files.join(", ")
    );
    for format in ["human", "json", "sarif"] {
        let r = ember_validate_src(src.as_bytes(), &["--format", format]);
        r.expect_code(1);
        if format == "human" {
            assert!(r.stdout.ends_with("5000 errors, 0 warnings (spec 3.6.0)\n"));
            assert!(
                r.stdout.lines().all(|l| l.chars().count() < 250),
                "long line in output"
            );
        } else {
            assert_eq!(
                r.stdout.matches("path-not-absolute").count(),
                if format == "json" { 5000 } else { 5001 }
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ignition-validate command line, and the documentation of rule codes

#[test]
fn ignition_validate_command_line() {
    let dir = TempDir::new("ivcli");
    let clean = example("clean.ign");
    let r = ignition_validate(&[&clean], None);
    r.expect_code(0);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    let r = ignition_validate(&[&example("mistakes.ign")], None);
    r.expect_code(1);
    assert_eq!(
        r.lines()[0],
        "error at $.storage.files.0.path, line 8 col 16: path not absolute"
    );
    // Usage errors.
    for args in [&[][..], &[clean.as_str(), clean.as_str()]] {
        let r = ignition_validate(args, None);
        r.expect_code(1);
        assert!(
            r.stderr
                .starts_with("Usage:\n  ignition-validate [flags] config.ign\n"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    let r = ignition_validate(&["-strict", &clean], None);
    r.expect_code(2);
    assert!(
        r.stderr
            .starts_with("flag provided but not defined: -strict\n"),
        "{}",
        r.stderr
    );
    let r = ignition_validate(&["-version"], None);
    r.expect_code(0);
    assert!(r.stdout.starts_with("Ignition v"), "{}", r.stdout);
    // Unreadable files, in Go's words.
    let missing = dir.path().join("missing.ign");
    let r = ignition_validate(&[missing.to_str().unwrap()], None);
    r.expect_code(1);
    assert_eq!(
        r.stderr,
        format!(
            "couldn't read config: open {}: no such file or directory\n",
            missing.display()
        )
    );
    let r = ignition_validate(&[dir.path().to_str().unwrap()], None);
    r.expect_code(1);
    assert_eq!(
        r.stderr,
        format!(
            "couldn't read config: read {}: is a directory\n",
            dir.path().display()
        )
    );
}

#[test]
fn docs_list_every_rule_code() {
    // Codes are the hyphenated string literals of the validator, the parser and the linter
    // (plus three one-word codes).
    let mut in_source = std::collections::BTreeSet::new();
    for f in [
        "src/config/validate.rs",
        "src/config/mod.rs",
        "src/cli/lint.rs",
    ] {
        let text = std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for lit in text.split('"').skip(1).step_by(2) {
            let code_like = lit.contains('-')
                && !lit.starts_with('-')
                && !lit.ends_with('-')
                && !lit.contains("--")
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if code_like {
                in_source.insert(lit.to_string());
            }
        }
    }
    for c in ["duplicate", "empty", "gzip"] {
        in_source.insert(c.to_string());
    }
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/linter.md")).unwrap();
    let section =
        &doc[doc.find("## Rule codes").unwrap()..doc.find("## `ignition-validate` mode").unwrap()];
    let documented: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let undocumented: Vec<&String> = in_source.difference(&documented).collect();
    let stale: Vec<&String> = documented.difference(&in_source).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/linter.md's rule table is out of date: undocumented {undocumented:?}, no longer used {stale:?}"
    );
}
