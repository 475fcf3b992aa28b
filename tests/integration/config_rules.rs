//! Every validation rule of Ignition (reference §1.4), every Go decoding quirk (§1.1), the
//! duplicate-key lists, unused keys and the context-tree warning: one small config each, run
//! through the `ignition-validate` personality, asserting Ignition's exact report lines.
//!
//! The expected line and column of each entry were worked out by hand from the report rules
//! (reference §1.5): a literal value's marker is its first byte, an object's or array's is one
//! past its bracket, an unused key's is its opening quote, a syntax or type error points one past
//! the offending byte (Go's offset), and an offset at the end of the input prints `line 0 col 0`.
//! Configs are laid out one item per line so that the counting is easy to check: the comments
//! give the columns that matter.

use crate::lint_support::*;

/// Runs `ignition-validate` on `src` and compares its stdout lines with `want`; the exit code
/// must be 1 if any expected line is an error, else 0.
#[track_caller]
fn check(src: &str, want: &[&str]) {
    check_bytes(src.as_bytes(), want);
}

#[track_caller]
fn check_bytes(src: &[u8], want: &[&str]) {
    let r = validate_src(src);
    let code = if want.iter().any(|l| l.starts_with("error")) {
        1
    } else {
        0
    };
    assert_eq!(
        r.lines(),
        want,
        "\n--- config ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(src),
        r.stderr
    );
    r.expect_code(code);
    assert_eq!(r.stderr, "", "nothing on stderr when there is a report");
}

/// Like [`check`], but the order of the lines does not matter (unused keys within one object
/// come in Go's random map order in Ignition).
#[track_caller]
fn check_unordered(src: &str, want: &[&str]) {
    let r = validate_src(src.as_bytes());
    let mut got = r.lines();
    let mut want = want.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "\n{src}");
}

const NOT_MATCHING: &str =
    "Line and column reporting may be inconsistent. Unused keys may not be reported";

// ---------------------------------------------------------------------------------------------
// ignition: merge, replace, certificate authorities, proxy

#[test]
fn merge_source_is_required_from_3_1() {
    // Line 2 holds the merge entry: its bracket is column 1, so its marker is column 2.
    for v in ["3.1.0", "3.4.0", "3.6.0"] {
        check(
            &format!("{{\"ignition\": {{\"version\": \"{v}\", \"config\": {{\"merge\": [\n{{\"verification\": {{}}}},\n{{\"source\": \"\"}}\n]}}}}}}\n"),
            &[
                "error at $.ignition.config.merge.0, line 2 col 2: source is required",
                "error at $.ignition.config.merge.1, line 3 col 2: source is required",
                // Both keys are "" (a missing source counts as ""): a duplicate.
                "error at $.ignition.config.merge.1, line 3 col 2: duplicate entry defined",
            ],
        );
    }
    // 3.0.0's ConfigReference has no such rule.
    check(
        "{\"ignition\": {\"version\": \"3.0.0\", \"config\": {\"merge\": [\n{\"verification\": {}},\n{\"source\": \"data:,x\"}\n]}}}\n",
        &[],
    );
}

#[test]
fn merge_source_url_is_checked_twice() {
    // IgnitionConfig's own rule reports at the entry, Resource's at its source (col 12).
    check(
        "{\"ignition\": {\"version\": \"3.6.0\", \"config\": {\"merge\": [\n{\"source\": \"ftp://x\"}\n], \"replace\": {\"source\": \"gopher://y\"}}}}\n",
        // Line 3: `], "replace": {"source": "gopher://y"}}}}`: `"replace"` 4-12, `{` 15,
        // `"source"` 16-23, value at 26.
        &[
            "error at $.ignition.config.merge.0, line 2 col 2: invalid url scheme",
            "error at $.ignition.config.merge.0.source, line 2 col 12: invalid url scheme",
            "error at $.ignition.config.replace.source, line 3 col 26: invalid url scheme",
        ],
    );
}

#[test]
fn certificate_authorities() {
    for v in ["3.1.0", "3.6.0"] {
        check(
            &format!("{{\"ignition\": {{\"version\": \"{v}\", \"security\": {{\"tls\": {{\"certificateAuthorities\": [\n{{}},\n{{\"source\": \"ftp://ca\"}}\n]}}}}}}}}\n"),
            &[
                "error at $.ignition.security.tls.certificateAuthorities.0, line 2 col 2: source is required",
                "error at $.ignition.security.tls.certificateAuthorities.1, line 3 col 2: invalid url scheme",
                "error at $.ignition.security.tls.certificateAuthorities.1.source, line 3 col 12: invalid url scheme",
            ],
        );
    }
    // 3.0.0: the source is a plain string validated as a URL, so "" (and absent) is an invalid
    // scheme, reported once, at the source.
    check(
        "{\"ignition\": {\"version\": \"3.0.0\", \"security\": {\"tls\": {\"certificateAuthorities\": [\n{},\n{\"source\": \"\"},\n{\"source\": \"ftp://ca\"}\n]}}}}\n",
        &[
            "error at $.ignition.security.tls.certificateAuthorities.0.source, line 2 col 2: invalid url scheme",
            "error at $.ignition.security.tls.certificateAuthorities.1.source, line 3 col 12: invalid url scheme",
            "error at $.ignition.security.tls.certificateAuthorities.2.source, line 4 col 12: invalid url scheme",
            "error at $.ignition.security.tls.certificateAuthorities.1, line 3 col 2: duplicate entry defined",
        ],
    );
}

#[test]
fn proxies() {
    // `"httpProxy": ` puts the value at col 14, `"httpsProxy": ` at col 15.
    check(
        "{\"ignition\": {\"version\": \"3.6.0\", \"proxy\": {\n\"httpProxy\": \"ftp://p\",\n\"httpsProxy\": \"http://p\"\n}}}\n",
        &[
            "error at $.ignition.proxy.httpProxy, line 2 col 14: proxies must be http(s)",
            "warning at $.ignition.proxy.httpsProxy, line 3 col 15: insecure plaintext HTTP proxy specified for HTTPS resources",
        ],
    );
    check(
        "{\"ignition\": {\"version\": \"3.1.0\", \"proxy\": {\n\"httpProxy\": \"http://[::1\",\n\"httpsProxy\": \"\"\n}}}\n",
        &[
            "error at $.ignition.proxy.httpProxy, line 2 col 14: unable to parse url",
            "error at $.ignition.proxy.httpsProxy, line 3 col 15: proxies must be http(s)",
        ],
    );
    // An http proxy for HTTP and an https proxy for HTTPS are fine.
    check(
        "{\"ignition\": {\"version\": \"3.6.0\", \"proxy\": {\n\"httpProxy\": \"https://p\",\n\"httpsProxy\": \"HTTPS://p:3128\"\n}}}\n",
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// Resources: compression, verification, source URLs, HTTP headers

/// A 3.x config with one file whose `contents` object is alone on line 3.
fn contents(v: &str, c: &str) -> String {
    cfg(
        v,
        &format!("\n\"storage\": {{\"files\": [{{\"path\": \"/f\", \"contents\":\n{c}\n}}]}}"),
    )
}

#[test]
fn compression() {
    // `{"compression": "xz"`: the value starts at col 17.
    check(
        &contents("3.6.0", r#"{"compression": "xz", "source": "data:,x"}"#),
        &["error at $.storage.files.0.contents.compression, line 3 col 17: invalid compression method"],
    );
    check(
        &contents("3.0.0", r#"{"compression": "bzip2", "source": "data:,x"}"#),
        &["error at $.storage.files.0.contents.compression, line 3 col 17: invalid compression method"],
    );
    check(
        &contents("3.6.0", r#"{"compression": "", "source": "data:,x"}"#),
        &[],
    );
}

#[test]
fn verification() {
    // `{"verification": {"hash": "`: the hash starts at col 27.
    check(
        &contents("3.6.0", &format!(r#"{{"verification": {{"hash": "sha512-{SHA512}"}}}}"#)),
        &["error at $.storage.files.0.contents.verification.hash, line 3 col 27: source must be specified if verification is specified"],
    );
    // `{"source": "data:,x", "verification": {"hash": "`: the hash starts at col 48.
    let hashed = |v: &str, h: &str| {
        contents(
            v,
            &format!(r#"{{"source": "data:,x", "verification": {{"hash": "{h}"}}}}"#),
        )
    };
    let at = "error at $.storage.files.0.contents.verification.hash, line 3 col 48";
    check(
        &hashed("3.6.0", "sha512"),
        &[&format!("{at}: malformed hash specifier")],
    );
    check(
        &hashed("3.6.0", "md5-0123"),
        &[&format!("{at}: unrecognized hash function")],
    );
    check(
        &hashed("3.6.0", "sha512-0123"),
        &[&format!("{at}: incorrect size for hash sum")],
    );
    check(
        &hashed("3.6.0", &format!("sha256-{SHA512}")),
        &[&format!("{at}: incorrect size for hash sum")],
    );
    // sha256 arrived in 3.1.0.
    check(
        &hashed("3.0.0", &format!("sha256-{SHA256}")),
        &[&format!("{at}: unrecognized hash function")],
    );
    check(&hashed("3.1.0", &format!("sha256-{SHA256}")), &[]);
    // Only the length of the digest is checked, not its characters.
    check(
        &hashed("3.6.0", &format!("sha512-{}", "z".repeat(128))),
        &[],
    );
    // An empty source is still a source here: the rule wants it nil.
    check(
        &contents(
            "3.6.0",
            &format!(r#"{{"source": "", "verification": {{"hash": "sha512-{SHA512}"}}}}"#),
        ),
        &[],
    );
}

#[test]
fn source_urls() {
    // `{"source": "`: the URL starts at col 12.
    let src = |v: &str, url: &str| contents(v, &format!(r#"{{"source": "{url}"}}"#));
    let at = "error at $.storage.files.0.contents.source, line 3 col 12";
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("3.6.0", "ftp://example.com/x", Some("invalid url scheme")),
        ("3.6.0", "file:///etc/passwd", Some("invalid url scheme")),
        ("3.6.0", "/etc/passwd", Some("invalid url scheme")),
        ("3.6.0", "http://[::1", Some("unable to parse url")),
        (
            "3.6.0",
            "http://example.com/%zz",
            Some("unable to parse url"),
        ),
        ("3.6.0", "HTTP://example.com/x", None),
        ("3.6.0", "tftp://10.0.0.1/x", None),
        ("3.0.0", "s3://bucket/key", None),
        (
            "3.0.0",
            "s3://bucket/key?versionId=",
            Some("invalid S3 object VersionId"),
        ),
        (
            "3.6.0",
            "s3://bucket/key?versionId=",
            Some("invalid S3 object VersionId"),
        ),
        ("3.6.0", "s3://bucket/key?versionId=abc", None),
        // gs from 3.2.0, arn from 3.4.0.
        ("3.1.0", "gs://bucket/object", Some("invalid url scheme")),
        ("3.2.0", "gs://bucket/object", None),
        (
            "3.3.0",
            "arn:aws:s3:::bucket/key",
            Some("invalid url scheme"),
        ),
        ("3.4.0", "arn:aws:s3:::bucket/key", None),
        (
            "3.4.0",
            "arn:aws:s3:::bucket",
            Some("invalid S3 ARN format"),
        ),
        (
            "3.4.0",
            "arn:aws:iam:::bucket/key",
            Some("invalid S3 ARN format"),
        ),
        ("3.4.0", "arn:aws:s3", Some("invalid S3 ARN format")),
        (
            "3.4.0",
            "arn:aws:s3:us-east-1:123456789012:accesspoint/ap",
            Some("invalid S3 ARN format"),
        ),
        (
            "3.4.0",
            "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/key",
            None,
        ),
        (
            "3.4.0",
            "arn:aws:s3:::bucket/key?versionId=",
            Some("invalid S3 object VersionId"),
        ),
        ("3.0.0", "data:,hello%20world", None),
        ("3.0.0", "data:text/plain;base64,aGVsbG8=", None),
        // The data URL library's own error texts.
        ("3.6.0", "data:;base64,!!!", Some("invalid data character")),
        ("3.6.0", "data:text/plain", Some("incomplete media type")),
    ];
    for (v, url, err) in cases {
        let want: Vec<String> = err.iter().map(|e| format!("{at}: {e}")).collect();
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check(&src(v, url), &want);
    }
    // An empty source counts as unspecified.
    check(&src("3.6.0", ""), &[]);
}

#[test]
fn http_headers() {
    // `{"source": "data:,x", "httpHeaders": [`: the array's bracket is col 38, marker 39.
    check(
        &contents("3.6.0", r#"{"source": "data:,x", "httpHeaders": [{"name": "A", "value": "b"}]}"#),
        &["error at $.storage.files.0.contents.httpHeaders, line 3 col 39: cannot use HTTP headers with this source scheme"],
    );
    check(
        &contents("3.1.0", r#"{"source": "tftp://h/x", "httpHeaders": [{"name": "A", "value": "b"}]}"#),
        // `"tftp://h/x"` is 12 bytes (12-23), so the bracket is col 41.
        &["error at $.storage.files.0.contents.httpHeaders, line 3 col 42: cannot use HTTP headers with this source scheme"],
    );
    // `{"httpHeaders": [`: bracket col 17, marker 18.
    check(
        &contents("3.6.0", r#"{"httpHeaders": [{"name": "A", "value": "b"}]}"#),
        &["error at $.storage.files.0.contents.httpHeaders, line 3 col 18: unable to parse url"],
    );
    check(
        &contents(
            "3.6.0",
            r#"{"source": "http://[x", "httpHeaders": [{"name": "A"}]}"#,
        ),
        &[
            "error at $.storage.files.0.contents.source, line 3 col 12: unable to parse url",
            // `"http://[x"` is 11 bytes (12-22), so the bracket is col 40.
            "error at $.storage.files.0.contents.httpHeaders, line 3 col 41: unable to parse url",
        ],
    );
    // Line 4: `{"name": "", "value": ""}`: name at col 10, value at col 23. A header without a
    // value is fine (it removes a parent's header when merging).
    check(
        &contents("3.6.0", "{\"source\": \"http://x\", \"httpHeaders\": [\n{\"name\": \"\", \"value\": \"\"},\n{\"name\": \"B\"}]}"),
        &[
            "error at $.storage.files.0.contents.httpHeaders.0.name, line 4 col 10: HTTP header name can't be empty",
            "error at $.storage.files.0.contents.httpHeaders.0.value, line 4 col 23: unable to parse HTTP header",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Files, directories, links

#[test]
fn node_paths() {
    // `{"path": "`: the path starts at col 10, for files, directories and links alike.
    for (list, extra) in [
        ("files", ""),
        ("directories", ""),
        ("links", ", \"target\": \"/t\""),
    ] {
        for (p, msg) in [
            ("", "path not specified"),
            ("etc/hostname", "path not absolute"),
            ("./x", "path not absolute"),
            ("/a/../b", "path is not fully simplified"),
            ("/a//b", "path is not fully simplified"),
            ("/a/", "path is not fully simplified"),
            ("/a/.", "path is not fully simplified"),
        ] {
            check(
                &cfg(
                    "3.6.0",
                    &format!("\n\"storage\": {{\"{list}\": [\n{{\"path\": \"{p}\"{extra}}}\n]}}"),
                ),
                &[&format!(
                    "error at $.storage.{list}.0.path, line 3 col 10: {msg}"
                )],
            );
        }
    }
}

#[test]
fn owner_by_id_and_name() {
    // `{"path": "/f", "user": {`: the user object's bracket is col 24, marker 25; for
    // `"group": {` one more.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [\n{\"path\": \"/f\", \"user\": {\"id\": 1, \"name\": \"u\"}}\n],\n\"directories\": [\n{\"path\": \"/d\", \"group\": {\"id\": 1, \"name\": \"g\"}}\n]}"),
        &[
            "error at $.storage.directories.0.group, line 6 col 26: cannot set both id and name",
            "error at $.storage.files.0.user, line 3 col 25: cannot set both id and name",
        ],
    );
    // An empty name does not count.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [\n{\"path\": \"/f\", \"user\": {\"id\": 1, \"name\": \"\"}}\n]}"),
        &[],
    );
}

#[test]
fn modes() {
    // `{"path": "/f", "mode": `: the mode starts at col 24.
    let file = |v: &str, m: &str| {
        cfg(
            v,
            &format!("\n\"storage\": {{\"files\": [\n{{\"path\": \"/f\", \"mode\": {m}}}\n]}}"),
        )
    };
    let at = "$.storage.files.0.mode, line 3 col 24";
    let special = "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0";
    check(
        &file("3.6.0", "-1"),
        &[&format!("error at {at}: illegal file mode")],
    );
    check(
        &file("3.6.0", "4096"),
        &[&format!("error at {at}: illegal file mode")],
    );
    check(&file("3.6.0", "4095"), &[]);
    check(&file("3.6.0", "0"), &[]);
    // Before 3.6 special bits warn; -1 has every bit set, so it also warns.
    check(
        &file("3.5.0", "2541"),
        &[&format!("warning at {at}: {special}")],
    );
    check(
        &file("3.0.0", "512"),
        &[&format!("warning at {at}: {special}")],
    );
    check(
        &file("3.5.0", "-1"),
        &[
            &format!("error at {at}: illegal file mode"),
            &format!("warning at {at}: {special}"),
        ],
    );
    check(
        &file("3.5.0", "4096"),
        &[&format!("error at {at}: illegal file mode")],
    );
    // Directories have the same rules.
    check(
        &cfg("3.4.0", "\n\"storage\": {\"directories\": [\n{\"path\": \"/d\", \"mode\": 1517},\n{\"path\": \"/e\", \"mode\": 8191}\n]}"),
        &[
            "warning at $.storage.directories.0.mode, line 3 col 24: setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
            "error at $.storage.directories.1.mode, line 4 col 24: illegal file mode",
            "warning at $.storage.directories.1.mode, line 4 col 24: setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
        ],
    );
}

#[test]
fn overwrite_needs_a_source() {
    // `{"path": "/f", "overwrite": `: true starts at col 29.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [\n{\"path\": \"/f\", \"overwrite\": true},\n{\"path\": \"/g\", \"overwrite\": true, \"contents\": {\"source\": \"\"}},\n{\"path\": \"/h\", \"overwrite\": false}\n]}"),
        &["error at $.storage.files.0.overwrite, line 3 col 29: overwrite must be false if source is unspecified"],
    );
}

#[test]
fn paths_below_links() {
    let body = "
\"storage\": {
\"directories\": [
{\"path\": \"/l/d\"},
{\"path\": \"/ll/x\"}
],
\"files\": [
{\"path\": \"/l/f\"}
],
\"links\": [
{\"path\": \"/l\", \"target\": \"/t\"},
{\"path\": \"/l/m\", \"target\": \"/t\"}
]}";
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.storage.directories.0, line 4 col 2: directory path includes link in config",
            "error at $.storage.files.0, line 8 col 2: file path includes link in config",
            "error at $.storage.links.1, line 12 col 2: link path includes link in config",
        ],
    );
}

#[test]
fn link_target_required_from_3_3() {
    // Line 3 has no target (the entry's marker, col 2); line 4's empty target is at col 26.
    let src = |v: &str| {
        cfg(v, "\n\"storage\": {\"links\": [\n{\"path\": \"/l\"},\n{\"path\": \"/m\", \"target\": \"\"},\n{\"path\": \"/n\", \"target\": null}\n]}")
    };
    for v in ["3.3.0", "3.4.0", "3.5.0", "3.6.0", "3.7.0-experimental"] {
        check(
            &src(v),
            &[
                "error at $.storage.links.0.target, line 3 col 2: link target is required",
                "error at $.storage.links.1.target, line 4 col 26: link target is required",
                // null is a literal: the deepest node of the path is the null itself.
                "error at $.storage.links.2.target, line 5 col 26: link target is required",
            ],
        );
    }
    for v in ["3.0.0", "3.1.0", "3.2.0"] {
        check(&src(v), &[]);
    }
}

#[test]
fn hard_links() {
    let body = "
\"storage\": {
\"directories\": [{\"path\": \"/d\"}, {\"path\": \"/x/d\"}],
\"links\": [
{\"path\": \"/l\", \"target\": \"/d\", \"hard\": true},
{\"path\": \"/x/l\", \"target\": \"../d\", \"hard\": true},
{\"path\": \"/s\", \"target\": \"/d\"},
{\"path\": \"/h\", \"target\": \"/d/\", \"hard\": true}
]}";
    // A relative target is joined to the link's own path: /x/l + ../d = /x/d. A trailing slash
    // is cleaned away.
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.storage.links.0, line 5 col 2: hard link target is a directory",
            "error at $.storage.links.1, line 6 col 2: hard link target is a directory",
            "error at $.storage.links.3, line 8 col 2: hard link target is a directory",
        ],
    );
    // Owners of hard links: line 4 `"user": {"id": 0},` id at col 16; line 5
    // `"group": {"name": "g"}}` name at col 19.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"links\": [\n{\"path\": \"/l\", \"target\": \"/t\", \"hard\": true,\n\"user\": {\"id\": 0},\n\"group\": {\"name\": \"g\"}}\n]}"),
        &[
            "warning at $.storage.links.0.user.id, line 4 col 16: user/group ignored for hard link",
            "warning at $.storage.links.0.group.name, line 5 col 19: user/group ignored for hard link",
        ],
    );
}

#[test]
fn filesystems_on_disks() {
    // `{"device": "`: the device starts at col 12.
    let body = "
\"storage\": {
\"disks\": [
{\"device\": \"/dev/vda\", \"partitions\": [{\"number\": 1}]},
{\"device\": \"/dev/vdb\", \"wipeTable\": true},
{\"device\": \"/dev/vdc\", \"wipeTable\": true}
],
\"filesystems\": [
{\"device\": \"/dev/vda\", \"format\": \"ext4\"},
{\"device\": \"/dev/vdb\", \"format\": \"ext4\"},
{\"device\": \"/dev/vdc\", \"format\": \"xfs\", \"wipeFilesystem\": true}
]}";
    check(
        &cfg("3.6.0", body),
        &[
            "warning at $.storage.filesystems.0.device, line 9 col 12: filesystem overwrites partitioned device",
            "warning at $.storage.filesystems.1.device, line 10 col 12: device matches disk with wipeTable enabled; filesystem will be wiped",
        ],
    );
}

#[test]
fn paths_conflicting_with_units() {
    // Line 6: `"links": [{"path": "` puts the path at col 20.
    let body = "
\"storage\": {\"files\": [
{\"path\": \"/etc/systemd/system/a.service\"},
{\"path\": \"/etc/systemd/system/a.service.d/b.conf\"}
],
\"links\": [{\"path\": \"/etc/systemd/system/c.service\", \"target\": \"/dev/null\"}],
\"directories\": [{\"path\": \"/etc/systemd/system/d.service\"}]},
\"systemd\": {\"units\": [
{\"name\": \"a.service\", \"contents\": \"[Unit]\", \"dropins\": [{\"name\": \"b.conf\", \"contents\": \"[Unit]\"}]},
{\"name\": \"c.service\", \"contents\": \"[Unit]\"},
{\"name\": \"d.service\", \"contents\": \"\"}
]}";
    // d.service has empty contents, so its path is free. The Config's own rule comes first.
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.storage.files.0.path, line 3 col 10: path conflicts with systemd unit or dropin",
            "error at $.storage.files.1.path, line 4 col 10: path conflicts with systemd unit or dropin",
            "error at $.storage.links.0.path, line 6 col 20: path conflicts with systemd unit or dropin",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Disks and partitions

#[test]
fn disk_device() {
    // Line 3: `{"device": "", "partitions": [{"number": 1}, {"number": 1}]},`: "" at col 12, the
    // second partition's bracket at col 46 (marker 47). An empty device skips the disk's other
    // rules (no collision error) but not the duplicate check.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"disks\": [\n{\"device\": \"\", \"partitions\": [{\"number\": 1}, {\"number\": 1}]},\n{\"device\": \"vdb\"},\n{\"device\": \"/dev/../vdc\"}\n]}"),
        &[
            "error at $.storage.disks.0.device, line 3 col 12: disk device is required",
            "error at $.storage.disks.1.device, line 4 col 12: path not absolute",
            "error at $.storage.disks.2.device, line 5 col 12: path is not fully simplified",
            "error at $.storage.disks.0.partitions.1, line 3 col 47: duplicate entry defined",
        ],
    );
}

fn partitions(v: &str, parts: &str) -> String {
    cfg(
        v,
        &format!("\n\"storage\": {{\"disks\": [{{\"device\": \"/dev/vda\", \"partitions\": [\n{parts}\n]}}]}}"),
    )
}

#[test]
fn partition_numbers_collide() {
    check(
        &partitions("3.6.0", "{\"number\": 1, \"label\": \"a\"},\n{\"number\": 1, \"label\": \"b\"},\n{\"label\": \"c\"},\n{\"label\": \"d\"}"),
        &[
            "error at $.storage.disks.0.partitions.1, line 4 col 2: partition numbers collide",
            "error at $.storage.disks.0.partitions.1, line 4 col 2: duplicate entry defined",
        ],
    );
}

#[test]
fn partitions_overlap() {
    // 10..19 and 15..24 overlap; a start of 0 is never checked.
    check(
        &partitions("3.6.0", "{\"number\": 1, \"startMiB\": 10, \"sizeMiB\": 10},\n{\"number\": 2, \"startMiB\": 15, \"sizeMiB\": 10},\n{\"number\": 3, \"startMiB\": 0, \"sizeMiB\": 100}"),
        &["error at $.storage.disks.0.partitions.1, line 4 col 2: partitions overlap"],
    );
    // Adjacent ranges do not overlap.
    check(
        &partitions("3.6.0", "{\"number\": 1, \"startMiB\": 10, \"sizeMiB\": 10},\n{\"number\": 2, \"startMiB\": 20, \"sizeMiB\": 10}"),
        &[],
    );
}

#[test]
fn partition_labels_twice() {
    check(
        &partitions("3.6.0", "{\"number\": 1, \"label\": \"x\"},\n{\"number\": 2, \"label\": \"x\"}"),
        &["error at $.storage.disks.0.partitions.1, line 4 col 2: cannot use the same partition label twice"],
    );
}

#[test]
fn partition_rules() {
    let parts = "{\"number\": 1, \"shouldExist\": false, \"label\": \"x\"},
{\"number\": 2, \"shouldExist\": false, \"sizeMiB\": 0},
{\"number\": 3, \"label\": \"0123456789012345678901234567890123456\"},
{\"number\": 4, \"label\": \"a:b\"},
{\"number\": 5, \"guid\": \"xyz\", \"typeGuid\": \"0FC63DAF-8483-4772-8E79-3D69D8477DE4X\"},
{\"number\": 6, \"guid\": \"\", \"typeGuid\": \"0fc63daf-8483-4772-8e79-3d69d8477de4\", \"label\": \"012345678901234567890123456789012345\"},
{\"number\": 7, \"shouldExist\": false, \"wipePartitionEntry\": true, \"guid\": \"\"}";
    // Lines 5 and 6: `{"number": N, "label": "` puts the label at col 24. Line 7:
    // `{"number": 5, "guid": "xyz", "typeGuid": "`: guid at col 23, typeGuid at col 42. An
    // empty guid is allowed, with or without shouldExist.
    check(
        &partitions("3.6.0", parts),
        &[
            "error at $.storage.disks.0.partitions.0, line 3 col 2: shouldExist specified false with other options also specified",
            "error at $.storage.disks.0.partitions.1, line 4 col 2: shouldExist specified false with other options also specified",
            "error at $.storage.disks.0.partitions.2.label, line 5 col 24: partition labels may not exceed 36 characters",
            "error at $.storage.disks.0.partitions.3.label, line 6 col 24: partition label will be truncated to text before the colon",
            "error at $.storage.disks.0.partitions.4.guid, line 7 col 23: doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
            "error at $.storage.disks.0.partitions.4.typeGuid, line 7 col 42: doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
        ],
    );
    // Neither a number nor a label.
    check(
        &partitions("3.0.0", "{\"sizeMiB\": 10},\n{\"number\": 0, \"label\": \"\"}"),
        &["error at $.storage.disks.0.partitions.0, line 3 col 2: a partition number >= 1 or a label must be specified"],
    );
}

// ---------------------------------------------------------------------------------------------
// RAID

#[test]
fn raid() {
    let body = "
\"storage\": {\"raid\": [
{\"name\": \"a\", \"devices\": [\"/dev/sda\"]},
{\"name\": \"b\", \"level\": \"raid7\", \"devices\": [\"/dev/sda\"]},
{\"name\": \"c\", \"level\": \"raid0\", \"spares\": 1, \"devices\": [\"/dev/sda\"]},
{\"name\": \"d\", \"level\": \"raid1\"},
{\"name\": \"e\", \"level\": \"raid1\", \"devices\": [\"sda\", \"/dev/sdb\"]},
{\"name\": \"f\", \"level\": \"\", \"devices\": [\"/dev/sdc\"]}
]}";
    // `{"name": "b", "level": "`: level at col 24. Line 7: `..."devices": ["`: the first
    // device at col 45.
    let rest = [
        "error at $.storage.raid.1.level, line 4 col 24: unrecognized raid level",
        "error at $.storage.raid.2.level, line 5 col 24: spares unsupported for linear and raid0 arrays",
        "error at $.storage.raid.3.devices, line 6 col 2: raid devices required",
        "error at $.storage.raid.4.devices.0, line 7 col 45: path not absolute",
    ];
    for v in ["3.3.0", "3.6.0"] {
        let mut want =
            vec!["error at $.storage.raid.0.level, line 3 col 2: raid level is required"];
        want.extend(rest);
        want.push("error at $.storage.raid.5.level, line 8 col 24: raid level is required");
        check(&cfg(v, body), &want);
    }
    // Up to 3.2 the level is a plain string: missing or empty is just not a known level.
    for v in ["3.0.0", "3.2.0"] {
        let mut want =
            vec!["error at $.storage.raid.0.level, line 3 col 2: unrecognized raid level"];
        want.extend(rest);
        want.push("error at $.storage.raid.5.level, line 8 col 24: unrecognized raid level");
        check(&cfg(v, body), &want);
    }
    // Every level Ignition knows.
    for level in [
        "linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4", "raid5", "5",
        "raid6", "6", "raid10", "10",
    ] {
        check(
            &cfg("3.6.0", &format!("\n\"storage\": {{\"raid\": [{{\"name\": \"md\", \"level\": \"{level}\", \"devices\": [\"/dev/sda\"], \"spares\": 0}}]}}")),
            &[],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystems

#[test]
fn filesystem_format_and_label() {
    let body = "
\"storage\": {\"filesystems\": [
{\"device\": \"/dev/a\", \"format\": \"ext5\"},
{\"device\": \"/dev/b\", \"path\": \"/var\"},
{\"device\": \"/dev/c\", \"label\": \"x\"},
{\"device\": \"/dev/d\", \"format\": \"ext4\", \"label\": \"0123456789abcdefg\"},
{\"device\": \"dev/e\", \"format\": \"xfs\", \"path\": \"var\"},
{\"device\": \"/dev/f\", \"options\": [\"-q\"]},
{\"device\": \"/dev/g\", \"format\": \"\", \"wipeFilesystem\": true}
]}";
    let empty = "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions are specified";
    check(
        &cfg("3.6.0", body),
        &[
            // `{"device": "/dev/a", "format": "`: format at col 32.
            "error at $.storage.filesystems.0.format, line 3 col 32: invalid filesystem format",
            &format!("error at $.storage.filesystems.1.format, line 4 col 2: {empty}"),
            &format!("error at $.storage.filesystems.2.format, line 5 col 2: {empty}"),
            // `{"device": "/dev/c", "label": "`: label at col 31.
            "error at $.storage.filesystems.2.label, line 5 col 31: filesystem must specify format if label is specified",
            // `..."format": "ext4", "label": "`: label at col 49.
            "error at $.storage.filesystems.3.label, line 6 col 49: filesystem labels cannot be longer than 16 characters when using ext4",
            // `{"device": "dev/e", "format": "xfs", "path": "`: path at col 46.
            "error at $.storage.filesystems.4.path, line 7 col 46: path not absolute",
            "error at $.storage.filesystems.4.device, line 7 col 12: path not absolute",
            &format!("error at $.storage.filesystems.5.format, line 8 col 2: {empty}"),
            // `{"device": "/dev/g", "format": ""`: format at col 32.
            &format!("error at $.storage.filesystems.6.format, line 9 col 32: {empty}"),
        ],
    );
}

#[test]
fn filesystem_label_lengths() {
    let body = format!(
        "
\"storage\": {{\"filesystems\": [
{{\"device\": \"/dev/a\", \"format\": \"xfs\", \"label\": \"0123456789ab\"}},
{{\"device\": \"/dev/b\", \"format\": \"xfs\", \"label\": \"0123456789abc\"}},
{{\"device\": \"/dev/c\", \"format\": \"swap\", \"label\": \"0123456789abcdef\"}},
{{\"device\": \"/dev/d\", \"format\": \"vfat\", \"label\": \"0123456789ab\"}},
{{\"device\": \"/dev/e\", \"format\": \"btrfs\", \"label\": \"{}\"}},
{{\"device\": \"/dev/f\", \"format\": \"btrfs\", \"label\": \"{}\"}},
{{\"device\": \"/dev/g\", \"format\": \"vfat\", \"label\": \"EFI-SYSTEM\"}}
]}}",
        "x".repeat(257),
        "x".repeat(256)
    );
    // The label starts at col 48 after "xfs", 49 after "swap"/"vfat", 50 after "btrfs".
    check(
        &cfg("3.6.0", &body),
        &[
            "error at $.storage.filesystems.1.label, line 4 col 48: filesystem labels cannot be longer than 12 characters when using xfs",
            "error at $.storage.filesystems.2.label, line 5 col 49: filesystem labels cannot be longer than 15 characters when using swap",
            "error at $.storage.filesystems.3.label, line 6 col 49: filesystem labels cannot be longer than 11 characters when using vfat",
            "error at $.storage.filesystems.4.label, line 7 col 50: filesystem labels cannot be longer than 256 characters when using btrfs",
        ],
    );
}

#[test]
fn filesystem_formats_per_version() {
    let fs = |v: &str, f: &str| {
        cfg(v, &format!("\n\"storage\": {{\"filesystems\": [\n{{\"device\": \"/dev/a\", \"format\": \"{f}\"}}\n]}}"))
    };
    let invalid =
        "error at $.storage.filesystems.0.format, line 3 col 32: invalid filesystem format";
    for v in ["3.0.0", "3.1.0", "3.2.0"] {
        check(&fs(v, "none"), &[invalid]);
    }
    for v in ["3.3.0", "3.6.0", "3.7.0-experimental"] {
        check(&fs(v, "none"), &[]);
    }
    for f in ["ext4", "btrfs", "xfs", "swap", "vfat"] {
        check(&fs("3.0.0", f), &[]);
    }
    check(&fs("3.6.0", "virtiofs"), &[invalid]);
    check(&fs("3.6.0", "EXT4"), &[invalid]);
    // 3.7.0-experimental: a virtiofs device is a tag of at most 36 bytes, not a path.
    let tag = |t: &str| {
        cfg(
            "3.7.0-experimental",
            &format!("\n\"storage\": {{\"filesystems\": [\n{{\"device\": \"{t}\", \"format\": \"virtiofs\", \"path\": \"/mnt\"}}\n]}}"),
        )
    };
    check(&tag("share"), &[]);
    check(&tag(&"t".repeat(36)), &[]);
    check(
        &tag(&"t".repeat(37)),
        &["error at $.storage.filesystems.0.device, line 3 col 12: virtiofs device tag cannot be longer than 36 bytes"],
    );
    check(
        &tag(""),
        &["error at $.storage.filesystems.0.device, line 3 col 12: device not specified"],
    );
}

// ---------------------------------------------------------------------------------------------
// LUKS, clevis, tang (3.2+)

fn luks(v: &str, entries: &str) -> String {
    cfg(v, &format!("\n\"storage\": {{\"luks\": [\n{entries}\n]}}"))
}

#[test]
fn luks_rules() {
    let entries = "{\"name\": \"a/b\", \"device\": \"/dev/a\"},
{\"name\": \"c\", \"device\": \"/dev/c\", \"label\": \"012345678901234567890123456789012345678901234567\"},
{\"name\": \"d\"},
{\"name\": \"e\", \"device\": \"dev/e\"},
{\"name\": \"f\", \"device\": \"\", \"label\": \"01234567890123456789012345678901234567890123456\"}";
    for v in ["3.2.0", "3.6.0"] {
        check(
            &luks(v, entries),
            &[
                "error at $.storage.luks.0.name, line 3 col 10: device names cannot contain slashes",
                // `{"name": "c", "device": "/dev/c", "label": "`: label at col 44.
                "error at $.storage.luks.1.label, line 4 col 44: luks device labels cannot be longer than 47 characters",
                "error at $.storage.luks.2.device, line 5 col 2: disk device is required",
                // `{"name": "e", "device": "`: device at col 25.
                "error at $.storage.luks.3.device, line 6 col 25: path not absolute",
                "error at $.storage.luks.4.device, line 7 col 25: disk device is required",
            ],
        );
    }
}

#[test]
fn clevis_custom() {
    // `{"name": "a", "device": "/dev/a", "clevis": {`: clevis bracket col 45 (marker 46);
    // `"custom": {` follows: its bracket is col 56 (marker 57).
    let entries = "{\"name\": \"a\", \"device\": \"/dev/a\", \"clevis\": {\"tpm2\": true, \"custom\": {\"pin\": \"sss\", \"config\": \"{}\"}}},
{\"name\": \"b\", \"device\": \"/dev/b\", \"clevis\": {\"custom\": {\"config\": \"{}\"}}},
{\"name\": \"c\", \"device\": \"/dev/c\", \"clevis\": {\"custom\": {\"pin\": \"tpm2\"}}},
{\"name\": \"d\", \"device\": \"/dev/d\", \"clevis\": {\"custom\": {\"needsNetwork\": true}}},
{\"name\": \"e\", \"device\": \"/dev/e\", \"clevis\": {\"threshold\": 2, \"custom\": {\"pin\": \"tang\", \"config\": \"{}\"}}},
{\"name\": \"f\", \"device\": \"/dev/f\", \"clevis\": {\"threshold\": 0, \"custom\": {\"pin\": \"tang\", \"config\": \"{}\"}}}";
    for v in ["3.3.0", "3.6.0"] {
        check(
            &luks(v, entries),
            &[
                "error at $.storage.luks.0.clevis, line 3 col 46: cannot use custom clevis config with tpm2, tang, or threshold",
                "error at $.storage.luks.1.clevis.custom.pin, line 4 col 57: missing required custom clevis pin",
                "error at $.storage.luks.2.clevis.custom.config, line 5 col 57: missing required custom clevis config",
                "error at $.storage.luks.3.clevis.custom.pin, line 6 col 57: missing required custom clevis pin",
                "error at $.storage.luks.3.clevis.custom.config, line 6 col 57: missing required custom clevis config",
                "error at $.storage.luks.4.clevis, line 7 col 46: cannot use custom clevis config with tpm2, tang, or threshold",
            ],
        );
    }
}

#[test]
fn clevis_pin_restricted_from_3_2_to_3_5() {
    // `..."clevis": {"custom": {"pin": "`: the pin at col 64.
    let e = "{\"name\": \"a\", \"device\": \"/dev/a\", \"clevis\": {\"custom\": {\"pin\": \"yubikey\", \"config\": \"{}\"}}}";
    for v in ["3.2.0", "3.3.0", "3.4.0", "3.5.0"] {
        check(
            &luks(v, e),
            &["error at $.storage.luks.0.clevis.custom.pin, line 3 col 64: unsupported clevis pin"],
        );
    }
    for v in ["3.6.0", "3.7.0-experimental"] {
        check(&luks(v, e), &[]);
    }
    for pin in ["tpm2", "tang", "sss"] {
        check(&luks("3.2.0", &e.replace("yubikey", pin)), &[]);
    }
}

#[test]
fn luks_key_file_error_path_is_keys() {
    // The rule reports at `keys` (a key that does not exist, so the marker is the luks entry
    // itself), the Resource rule at keyFile.source (col 57).
    for v in ["3.2.0", "3.6.0"] {
        check(
            &luks(
                v,
                "{\"name\": \"a\", \"device\": \"/dev/a\", \"keyFile\": {\"source\": \"ftp://k\"}}",
            ),
            &[
                "error at $.storage.luks.0.keys, line 3 col 2: invalid key-file source",
                "error at $.storage.luks.0.keyFile.source, line 3 col 57: invalid url scheme",
            ],
        );
    }
}

#[test]
fn cex_from_3_5() {
    // Line 3: `..."cex": {` bracket col 42 (marker 43). Line 4: `..."keyFile": {` bracket col 72
    // (marker 73).
    let e = "{\"name\": \"a\", \"device\": \"/dev/a\", \"cex\": {\"enabled\": true}, \"clevis\": {\"tpm2\": true}},
{\"name\": \"b\", \"device\": \"/dev/b\", \"cex\": {\"enabled\": true}, \"keyFile\": {\"source\": \"data:,k\"}},
{\"name\": \"c\", \"device\": \"/dev/c\", \"cex\": {\"enabled\": false}, \"keyFile\": {\"source\": \"data:,k\"}}";
    for v in ["3.5.0", "3.6.0"] {
        check(
            &luks(v, e),
            &[
                "error at $.storage.luks.0.cex, line 3 col 43: cannot use cex with clevis",
                "error at $.storage.luks.1.keyFile, line 4 col 73: cannot use key file with cex",
            ],
        );
    }
}

#[test]
fn tang() {
    let e = "{\"name\": \"a\", \"device\": \"/dev/a\", \"clevis\": {\"tang\": [
{\"url\": \"ftp://t\", \"thumbprint\": \"x\"},
{\"url\": \"http://t2\"},
{\"url\": \"http://t3\", \"thumbprint\": \"y\", \"advertisement\": \"{\"},
{\"url\": \"https://t4\", \"thumbprint\": \"\", \"advertisement\": \"{\\\"payload\\\": 1}\"},
{\"url\": \"http://[t5\", \"thumbprint\": \"z\"}
]}}";
    let common = [
        // `{"url": "`: url at col 9.
        "error at $.storage.luks.0.clevis.tang.0.url, line 4 col 9: invalid url scheme",
        "error at $.storage.luks.0.clevis.tang.1.thumbprint, line 5 col 2: thumbprint is required",
    ];
    // `{"url": "https://t4", "thumbprint": "`: thumbprint at col 37.
    let t4 =
        "error at $.storage.luks.0.clevis.tang.3.thumbprint, line 7 col 37: thumbprint is required";
    let t5 = "error at $.storage.luks.0.clevis.tang.4.url, line 8 col 9: unable to parse url";
    for v in ["3.4.0", "3.5.0", "3.6.0"] {
        let mut want = common.to_vec();
        // `{"url": "http://t3", "thumbprint": "y", "advertisement": "`: col 58.
        want.push("error at $.storage.luks.0.clevis.tang.2.advertisement, line 6 col 58: advertisement is not valid JSON");
        want.push(t4);
        want.push(t5);
        check(&luks(v, e), &want);
    }
    // Before 3.4 there is no advertisement: unused keys (`"advertisement"` at col 41).
    for v in ["3.2.0", "3.3.0"] {
        let mut want = common.to_vec();
        want.push(t4);
        want.push(t5);
        want.push("warning at $.storage.luks.0.clevis.tang.2.advertisement, line 6 col 41: unused key advertisement");
        want.push("warning at $.storage.luks.0.clevis.tang.3.advertisement, line 7 col 41: unused key advertisement");
        check(&luks(v, e), &want);
    }
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn units_and_dropins() {
    let body = "
\"systemd\": {\"units\": [
{\"name\": \"a.txt\"},
{\"name\": \"b.service\", \"contents\": \"[Service\"},
{\"name\": \"c.service\", \"enabled\": true, \"contents\": \"[Service]\\nExecStart=/bin/true\"},
{\"name\": \"d.service\", \"dropins\": [{\"name\": \"x.txt\", \"contents\": \"[Service] x\"}]},
{\"name\": \"e.service\", \"enabled\": true, \"mask\": true},
{\"name\": \"f\"}
]}";
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.systemd.units.0.name, line 3 col 10: invalid systemd unit extension",
            // `{"name": "b.service", "contents": "`: contents at col 35.
            "error at $.systemd.units.1.contents, line 4 col 35: invalid unit content: unable to find end of section",
            // `{"name": "c.service", "enabled": true, "contents": "`: contents at col 52.
            "warning at $.systemd.units.2.contents, line 5 col 52: unit \"c.service\" is enabled, but has no install section so enable does nothing",
            // `..."dropins": [{"name": "x.txt", "contents": "`: name at col 44, contents at 65.
            "error at $.systemd.units.3.dropins.0.contents, line 6 col 65: invalid unit content: found garbage after section name : <redacted>",
            "error at $.systemd.units.3.dropins.0.name, line 6 col 44: invalid systemd drop-in extension",
            "error at $.systemd.units.5.name, line 8 col 10: invalid systemd unit extension",
        ],
    );
    // Every unit type Ignition knows.
    for ext in [
        "service",
        "socket",
        "device",
        "mount",
        "automount",
        "swap",
        "target",
        "path",
        "timer",
        "snapshot",
        "slice",
        "scope",
    ] {
        check(
            &cfg(
                "3.0.0",
                &format!("\n\"systemd\": {{\"units\": [{{\"name\": \"x.{ext}\"}}]}}"),
            ),
            &[],
        );
    }
}

#[test]
fn unit_lines_longer_than_systemd_allows() {
    // go-systemd reads lines of at most 2048 bytes. `{"name": "l.service", "contents": "` puts
    // the contents at col 35.
    let line = |n: usize| {
        cfg(
            "3.6.0",
            &format!("\n\"systemd\": {{\"units\": [\n{{\"name\": \"l.service\", \"contents\": \"[Service]\\nX={}\"}}\n]}}", "a".repeat(n)),
        )
    };
    check(&line(2000), &[]);
    check(
        &line(2100),
        &["error at $.systemd.units.0.contents, line 3 col 35: invalid unit content: line too long (max 2048 bytes)"],
    );
}

#[test]
fn enabled_unit_with_unparseable_contents() {
    // The contents error and the missing [Install] warning are independent rules; both apply.
    check(
        &cfg("3.6.0", "\n\"systemd\": {\"units\": [\n{\"name\": \"c.service\", \"enabled\": true, \"contents\": \"[Service\"}\n]}"),
        &[
            "error at $.systemd.units.0.contents, line 3 col 52: invalid unit content: unable to find end of section",
            "warning at $.systemd.units.0.contents, line 3 col 52: unit \"c.service\" is enabled, but has no install section so enable does nothing",
        ],
    );
}

#[test]
fn template_units() {
    // units.1 has no contents, so its marker is the entry (line 4, col 2).
    check(
        &cfg("3.6.0", "\n\"systemd\": {\"units\": [\n{\"name\": \"t@.service\", \"contents\": \"[Service]\\nExecStart=/bin/true\"},\n{\"name\": \"t@x.service\", \"enabled\": true},\n{\"name\": \"u@.service\", \"contents\": \"[Install]\\nWantedBy=multi-user.target\"},\n{\"name\": \"u@y.service\", \"enabled\": true}\n]}"),
        &["warning at $.systemd.units.1.contents, line 4 col 2: template unit \"t@.service\" for \"t@x.service\" doesn't have Install section"],
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates

#[test]
fn duplicates_in_storage_lists() {
    let body = "
\"storage\": {
\"directories\": [
{\"path\": \"/n\"}
],
\"disks\": [
{\"device\": \"/dev/a\"},
{\"device\": \"/dev/a\"}
],
\"files\": [
{\"path\": \"/n\"},
{\"path\": \"/f\", \"append\": [
{\"source\": \"data:,a\"},
{\"source\": \"data:,a\"}
]}
],
\"filesystems\": [
{\"device\": \"/dev/b\", \"format\": \"ext4\", \"options\": [
\"-q\",
\"-q\"
], \"mountOptions\": [
\"ro\",
\"ro\"
]},
{\"device\": \"/dev/b\", \"format\": \"ext4\"}
],
\"links\": [
{\"path\": \"/f\", \"target\": \"/t\"}
],
\"luks\": [
{\"name\": \"l\", \"device\": \"/dev/c\", \"options\": [
\"x\",
\"x\"
], \"openOptions\": [
\"y\",
\"y\"
]},
{\"name\": \"l\", \"device\": \"/dev/d\"}
],
\"raid\": [
{\"name\": \"r\", \"level\": \"raid1\", \"devices\": [
\"/dev/e\",
\"/dev/e\"
], \"options\": [
\"o\",
\"o\"
]},
{\"name\": \"r\", \"level\": \"raid1\", \"devices\": [\"/dev/f\"]}
]}";
    // Files, directories and links share one namespace; append and the option lists (except
    // luks openOptions) are exempt.
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.storage.disks.1, line 8 col 2: duplicate entry defined",
            "error at $.storage.files.0, line 11 col 2: duplicate entry defined",
            "error at $.storage.filesystems.1, line 25 col 2: duplicate entry defined",
            "error at $.storage.links.0, line 28 col 2: duplicate entry defined",
            "error at $.storage.luks.1, line 38 col 2: duplicate entry defined",
            "error at $.storage.raid.1, line 48 col 2: duplicate entry defined",
            "error at $.storage.luks.0.openOptions.1, line 36 col 1: duplicate entry defined",
            "error at $.storage.raid.0.devices.1, line 43 col 1: duplicate entry defined",
        ],
    );
}

#[test]
fn duplicates_elsewhere() {
    let src = "{\"ignition\": {\"version\": \"3.6.0\",
\"config\": {\"merge\": [
{\"source\": \"https://e/a\"},
{\"source\": \"https://e/a\"}
]},
\"proxy\": {\"noProxy\": [
\"a\",
\"a\"
]},
\"security\": {\"tls\": {\"certificateAuthorities\": [
{\"source\": \"https://e/c\", \"httpHeaders\": [
{\"name\": \"H\", \"value\": \"1\"},
{\"name\": \"H\", \"value\": \"2\"}
]},
{\"source\": \"https://e/c\"}
]}}},
\"kernelArguments\": {\"shouldExist\": [
\"k\"
], \"shouldNotExist\": [
\"k\"
]},
\"passwd\": {\"users\": [
{\"name\": \"u\", \"sshAuthorizedKeys\": [
\"key\",
\"key\"
], \"groups\": [
\"g\",
\"g\"
]},
{\"name\": \"u\"}
], \"groups\": [
{\"name\": \"g\"},
{\"name\": \"g\"}
]},
\"storage\": {\"disks\": [{\"device\": \"/dev/a\", \"partitions\": [
{\"number\": 1},
{\"number\": 1},
{\"label\": \"p\"},
{\"label\": \"p\"}
]}],
\"luks\": [{\"name\": \"l\", \"device\": \"/dev/b\", \"clevis\": {\"tang\": [
{\"url\": \"http://t\", \"thumbprint\": \"x\"},
{\"url\": \"http://t\", \"thumbprint\": \"y\"}
]}}]},
\"systemd\": {\"units\": [
{\"name\": \"a.service\", \"dropins\": [
{\"name\": \"d.conf\"},
{\"name\": \"d.conf\"}
]},
{\"name\": \"a.service\"}
]}
}
";
    check(
        src,
        &[
            // The disk's own rules come first (pass 1), then duplicates in walk order (pass 2).
            "error at $.storage.disks.0.partitions.1, line 37 col 2: partition numbers collide",
            "error at $.storage.disks.0.partitions.3, line 39 col 2: cannot use the same partition label twice",
            "error at $.ignition.config.merge.1, line 4 col 2: duplicate entry defined",
            "error at $.ignition.proxy.noProxy.1, line 8 col 1: duplicate entry defined",
            "error at $.ignition.security.tls.certificateAuthorities.1, line 15 col 2: duplicate entry defined",
            "error at $.ignition.security.tls.certificateAuthorities.0.httpHeaders.1, line 13 col 2: duplicate entry defined",
            // shouldExist and shouldNotExist share one namespace.
            "error at $.kernelArguments.shouldNotExist.0, line 20 col 1: duplicate entry defined",
            "error at $.passwd.groups.1, line 33 col 2: duplicate entry defined",
            "error at $.passwd.users.1, line 30 col 2: duplicate entry defined",
            "error at $.passwd.users.0.groups.1, line 28 col 1: duplicate entry defined",
            "error at $.passwd.users.0.sshAuthorizedKeys.1, line 25 col 1: duplicate entry defined",
            // Partitions: number:1 twice, label:p twice.
            "error at $.storage.disks.0.partitions.1, line 37 col 2: duplicate entry defined",
            "error at $.storage.disks.0.partitions.3, line 39 col 2: duplicate entry defined",
            "error at $.storage.luks.0.clevis.tang.1, line 43 col 2: duplicate entry defined",
            "error at $.systemd.units.1, line 50 col 2: duplicate entry defined",
            "error at $.systemd.units.0.dropins.1, line 48 col 2: duplicate entry defined",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Unused keys and the context tree

#[test]
fn unused_keys() {
    // Each unknown key opens its line (col 1); keys inside an unknown key are not reported.
    let body = "
\"storage\": {\"files\": [{\"path\": \"/f\",
\"foo\": 1, \"contents\": {\"source\": \"data:,x\",
\"bar\": {\"baz\": 1}}}],
\"filesytems\": [{\"device\": \"/dev/a\"}]},
\"qux\": null";
    check_unordered(
        &cfg("3.6.0", body),
        &[
            "warning at $.storage.files.0.foo, line 3 col 1: unused key foo",
            "warning at $.storage.files.0.contents.bar, line 4 col 1: unused key bar",
            "warning at $.storage.filesytems, line 5 col 1: unused key filesytems",
            "warning at $.qux, line 6 col 1: unused key qux",
        ],
    );
    // Unused keys come after errors.
    check(
        &cfg(
            "3.6.0",
            "\n\"storage\": {\"files\": [{\"path\": \"x\",\n\"foo\": 1}]}",
        ),
        &[
            "error at $.storage.files.0.path, line 2 col 32: path not absolute",
            "warning at $.storage.files.0.foo, line 3 col 1: unused key foo",
        ],
    );
}

#[test]
fn context_tree_mismatch() {
    // `"storage": null`: the null at col 12.
    check(
        &cfg("3.6.0", "\n\"storage\": null"),
        &[&format!("warning at $.storage, line 2 col 12: context tree does not match content tree at $.storage. {NOT_MATCHING}")],
    );
    // A later null does not clear the earlier object, but the report walks the later value:
    // its errors point at the null, and its unused keys are lost.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [{\"path\": \"rel\", \"foo\": 1}]},\n\"storage\": null"),
        &[
            "error at $.storage.files.0.path, line 3 col 12: path not absolute",
            &format!("warning at $.storage, line 3 col 12: context tree does not match content tree at $.storage. {NOT_MATCHING}"),
        ],
    );
    // `"contents": null` in a file: the null at col 50.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"contents\": null}]}"),
        &[&format!("warning at $.storage.files.0.contents, line 2 col 50: context tree does not match content tree at $.storage.files.0.contents. {NOT_MATCHING}")],
    );
    // A null list element decodes as an empty entry: `"storage": {"files": [null]}` has the
    // null at col 23.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [null]}"),
        &[
            "error at $.storage.files.0.path, line 2 col 23: path not specified",
            &format!("warning at $.storage.files.0, line 2 col 23: context tree does not match content tree at $.storage.files.0. {NOT_MATCHING}"),
        ],
    );
}

#[test]
fn null_for_3_2_pointer_structs_is_unspecified() {
    // In 3.2 luks.clevis and clevis.custom are Go pointers: null is simply "not set". From 3.3
    // they are struct values: null is a no-op plus the context warning. `..."clevis": null`
    // puts the null at col 45.
    let e = "{\"name\": \"a\", \"device\": \"/dev/a\", \"clevis\": null},\n{\"name\": \"b\", \"device\": \"/dev/b\", \"clevis\": {\"custom\": null}}";
    check(&luks("3.2.0", e), &[]);
    check(
        &luks("3.3.0", e),
        &[
            &format!("warning at $.storage.luks.0.clevis, line 3 col 45: context tree does not match content tree at $.storage.luks.0.clevis. {NOT_MATCHING}"),
            // `{"custom": null`: the null at col 56.
            &format!("warning at $.storage.luks.1.clevis.custom, line 4 col 56: context tree does not match content tree at $.storage.luks.1.clevis.custom. {NOT_MATCHING}"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Go's encoding/json quirks

#[test]
fn keys_match_case_insensitively() {
    // Decoded and validated, and also unused keys. The error's path is not in the document
    // (only "Storage" is), so its marker falls back to the root object: line 1 col 2.
    check(
        "{\"IGNITION\": {\"VERSION\": \"3.6.0\"},\n\"Storage\": {\"Files\": [{\"PATH\": \"rel\"}]}}\n",
        &[
            "error at $.storage.files.0.path, line 1 col 2: path not absolute",
            "warning at $.IGNITION, line 1 col 2: unused key IGNITION",
            "warning at $.Storage, line 2 col 1: unused key Storage",
        ],
    );
    // A key with escapes is unescaped before matching: "p\u0061th" is "path" exactly.
    check(
        &cfg(
            "3.6.0",
            "\n\"storage\": {\"files\": [{\"p\\u0061th\": \"rel\"}]}",
        ),
        // `"p\u0061th"` spans cols 24-34, so the value is at col 37.
        &["error at $.storage.files.0.path, line 2 col 37: path not absolute"],
    );
    // Go folds the Kelvin sign to K and the long s to S.
    check(
        &cfg(
            "3.6.0",
            "\n\"\u{17f}torage\": {\"files\": [{\"path\": \"rel\"}]}",
        ),
        &[
            "error at $.storage.files.0.path, line 1 col 2: path not absolute",
            "warning at $.\u{17f}torage, line 2 col 1: unused key \u{17f}torage",
        ],
    );
}

#[test]
fn required_is_not_enforced_by_the_decoder() {
    // Go's decoder ignores `required`: an empty entry decodes, and validation reports what is
    // missing at the entry (col 2 on its line).
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [\n{}\n], \"disks\": [\n{}\n]},\n\"systemd\": {\"units\": [\n{}\n]}"),
        &[
            "error at $.storage.disks.0.device, line 5 col 2: disk device is required",
            "error at $.storage.files.0.path, line 3 col 2: path not specified",
            "error at $.systemd.units.0.name, line 8 col 2: invalid systemd unit extension",
        ],
    );
}

#[test]
fn duplicate_keys_last_wins() {
    // `"storage": {"files": [{"path": "/a", "path": "rel"}]}`: the second path at col 46.
    check(
        &cfg(
            "3.6.0",
            "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"path\": \"rel\"}]}",
        ),
        &["error at $.storage.files.0.path, line 2 col 46: path not absolute"],
    );
    // A null clears a pointer: overwrite is unset again, so no error.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"overwrite\": true, \"overwrite\": null}]}"),
        &[],
    );
    // A repeated key decodes again into the same list: an empty array empties it.
    check(
        &cfg(
            "3.6.0",
            "\n\"storage\": {\"files\": [{\"path\": \"rel\"}], \"files\": []}",
        ),
        &[],
    );
    // The version is read the same way: the last one counts.
    check(
        "{\"ignition\": {\"version\": \"3.6.0\", \"version\": \"3.0.0\"},\n\"kernelArguments\": {}}\n",
        &["warning at $.kernelArguments, line 2 col 1: unused key kernelArguments"],
    );
}

#[test]
fn numbers_must_be_go_ints() {
    // `"storage": {"files": [{"path": "/a", "mode": `: the number starts at col 46. Go's offset
    // is one past its last byte.
    let mode = |m: &str| {
        cfg(
            "3.6.0",
            &format!("\n\"storage\": {{\"files\": [{{\"path\": \"/a\", \"mode\": {m}}}]}}"),
        )
    };
    let go = "into Go struct field Config.storage.files.0.mode of type int";
    check(
        &mode("420.0"),
        &[&format!(
            "error at line 2 col 51: json: cannot unmarshal number 420.0 {go}"
        )],
    );
    check(
        &mode("1e2"),
        &[&format!(
            "error at line 2 col 49: json: cannot unmarshal number 1e2 {go}"
        )],
    );
    check(
        &mode("-0.5"),
        &[&format!(
            "error at line 2 col 50: json: cannot unmarshal number -0.5 {go}"
        )],
    );
    check(
        &mode("99999999999999999999"),
        &[&format!(
            "error at line 2 col 66: json: cannot unmarshal number 99999999999999999999 {go}"
        )],
    );
    check(
        &mode("-9223372036854775809"),
        &[&format!(
            "error at line 2 col 66: json: cannot unmarshal number -9223372036854775809 {go}"
        )],
    );
    // The largest Go int is accepted by the decoder (and is then an illegal mode).
    check(
        &mode("9223372036854775807"),
        &["error at $.storage.files.0.mode, line 2 col 46: illegal file mode"],
    );
    // `"420"`: a string for an int; one past the closing quote is col 51.
    check(
        &mode("\"420\""),
        &[&format!(
            "error at line 2 col 51: json: cannot unmarshal string {go}"
        )],
    );
}

#[test]
fn type_errors() {
    // `"storage": {"files": [{"path": "/a", "overwrite": "true"}]}`: the string spans 51-56.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"overwrite\": \"true\"}]}"),
        &["error at line 2 col 57: json: cannot unmarshal string into Go struct field Config.storage.files.0.overwrite of type bool"],
    );
    // An object where a list belongs: one past its bracket (col 22) is col 23.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": {}}"),
        &["error at line 2 col 23: json: cannot unmarshal object into Go struct field Config.storage.files of type []types.File"],
    );
    // An array where an object belongs: `"storage": [` bracket at col 12.
    check(
        &cfg("3.6.0", "\n\"storage\": []"),
        &["error at line 2 col 13: json: cannot unmarshal array into Go struct field Config.storage of type types.Storage"],
    );
    // A number where a string belongs: `{"path": 5` at col 32.
    check(
        &cfg("3.6.0", "\n\"storage\": {\"files\": [{\"path\": 5}]}"),
        &["error at line 2 col 33: json: cannot unmarshal number into Go struct field Config.storage.files.0.path of type string"],
    );
    // A string list element of the wrong type: `..."groups": [1` puts 1 at col 47.
    check(
        &cfg("3.6.0", "\n\"passwd\": {\"users\": [{\"name\": \"u\", \"groups\": [1]}]}"),
        &["error at line 2 col 48: json: cannot unmarshal number into Go struct field Config.passwd.users.0.groups.0 of type types.Group"],
    );
    // 3.0.0 names its own types: `{"path": "/a", "contents": 5` puts 5 at col 50.
    check(
        &cfg("3.0.0", "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"contents\": 5}]}"),
        &["error at line 2 col 51: json: cannot unmarshal number into Go struct field Config.storage.files.0.contents of type types.FileContents"],
    );
    // Only the first type error is reported, in document order.
    check(
        &cfg("3.6.0", "\n\"systemd\": {\"units\": [{\"name\": 1}]},\n\"passwd\": {\"users\": [{\"name\": 2}]}"),
        &["error at line 2 col 33: json: cannot unmarshal number into Go struct field Config.systemd.units.0.name of type string"],
    );
    // A type error in a key the version does not have is no error at all.
    check(
        &cfg("3.2.0", "\n\"kernelArguments\": 1"),
        &["warning at $.kernelArguments, line 2 col 1: unused key kernelArguments"],
    );
}

#[test]
fn syntax_errors() {
    let cases: &[(&[u8], &str)] = &[
        // Truncated: the offset is the end of the input.
        (b"{\"ignition\": {\"version\": \"3.6.0\"}", "error at line 0 col 0: unexpected end of JSON input"),
        (b"{\"ignition\": {\"version\": \"3.6", "error at line 0 col 0: unexpected end of JSON input"),
        (b"  \n", "error at line 0 col 0: unexpected end of JSON input"),
        // A trailing comma: '}' at col 35, reported one past it.
        (b"{\"ignition\": {\"version\": \"3.6.0\"},}\n", "error at line 1 col 36: invalid character '}' looking for beginning of object key string"),
        // Offending byte is the last one: its offset is the end of the input.
        (b"{\"ignition\": {\"version\": \"3.6.0\"},}", "error at line 0 col 0: invalid character '}' looking for beginning of object key string"),
        // A missing comma: the '"' opening line 2 is the offending byte.
        (b"{\"ignition\": {\"version\": \"3.6.0\"}\n\"storage\": {}}\n", "error at line 2 col 2: invalid character '\"' after object key:value pair"),
        (b"{'ignition': 1}\n", "error at line 1 col 3: invalid character '\\'' looking for beginning of object key string"),
        // An octal mode: `"mode": 0644` puts 0 at col 46 and the offending 6 at col 47.
        (b"{\"ignition\": {\"version\": \"3.6.0\"},\n\"storage\": {\"files\": [{\"path\": \"/a\", \"mode\": 0644}]}}\n", "error at line 2 col 48: invalid character '6' after object key:value pair"),
        // A raw tab inside a string: `{"ignition": {"version": "3.6` then the tab at col 30.
        (b"{\"ignition\": {\"version\": \"3.6\t.0\"}}\n", "error at line 1 col 31: invalid character '\\t' in string literal"),
        (b"{\"a\": \"\\x\"}\n", "error at line 1 col 10: invalid character 'x' in string escape code"),
        (b"{\"a\": tru}\n", "error at line 1 col 11: invalid character '}' in literal true (expecting 'e')"),
        (b"{\"a\": -}\n", "error at line 1 col 9: invalid character '}' in numeric literal"),
        (b"{\"a\": 1.}\n", "error at line 1 col 10: invalid character '}' after decimal point in numeric literal"),
        (b"{\"a\": 1e}\n", "error at line 1 col 10: invalid character '}' in exponent of numeric literal"),
        (b"{\"a\" 1}\n", "error at line 1 col 7: invalid character '1' after object key"),
        (b"[1 2]\n", "error at line 1 col 5: invalid character '2' after array element"),
        // Anything after the top-level value.
        (b"{\"ignition\": {\"version\": \"3.6.0\"}} x\n", "error at line 1 col 37: invalid character 'x' after top-level value"),
        // Invalid UTF-8 outside a string: byte 0xff shows as the Latin-1 rune it would be.
        (b"{\"ignition\": \xff}\n", "error at line 1 col 15: invalid character '\u{ff}' looking for beginning of value"),
        // A byte-order mark is not allowed.
        (b"\xef\xbb\xbf{\"ignition\": {\"version\": \"3.6.0\"}}\n", "error at line 1 col 2: invalid character '\u{ef}' looking for beginning of value"),
        // NUL and other control bytes.
        (b"\x00\n", "error at line 1 col 2: invalid character '\\x00' looking for beginning of value"),
    ];
    for (src, want) in cases {
        check_bytes(src, &[want]);
    }
}

#[test]
fn nesting_deeper_than_go_allows() {
    // Go's scanner allows 10000 levels; the 10001st '[' (col 10001) is the offending byte.
    let mut deep = "[".repeat(10_001);
    deep.push('\n');
    check(
        &deep,
        &["error at line 1 col 10002: invalid character '[' exceeded max depth"],
    );
    // 10000 levels are valid JSON; the error is then the type of the top-level value.
    let ok = format!("{}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    check(&ok, &["error at line 1 col 2: json: cannot unmarshal array into Go value of type util.versionStub"]);
}

#[test]
fn invalid_utf8_in_strings_is_replaced() {
    // Go replaces invalid UTF-8 in strings with U+FFFD: Ignition accepts the config.
    let src = b"{\"ignition\": {\"version\": \"3.6.0\"},\n\"storage\": {\"files\": [{\"path\": \"/caf\xe9\"}]}}\n";
    check_bytes(src, &[]);
    // A lone surrogate escape is replaced too.
    check(
        &cfg(
            "3.6.0",
            "\n\"storage\": {\"files\": [{\"path\": \"/a\\ud800\"}]}",
        ),
        &[],
    );
    // Ember's own linter warns about the first; `"/caf` starts at col 32.
    let r = ember_validate_src(src, &[]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(":2:32: warning: string holds invalid UTF-8"),
        "{}",
        r.stdout
    );
}

#[test]
fn empty_input_is_no_config() {
    let r = validate_src(b"");
    r.expect_code(1);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "couldn't parse config: not a config (empty)\n");
}

#[test]
fn report_order_follows_the_go_walk() {
    // Ignition, kernelArguments, passwd, storage (directories, disks, files, filesystems,
    // links, luks, raid), systemd; then duplicates; then unused keys.
    let body = "
\"systemd\": {\"units\": [{\"name\": \"x\"}]},
\"storage\": {
\"raid\": [{\"name\": \"r\", \"level\": \"raid1\"}],
\"links\": [{\"path\": \"l\", \"target\": \"/t\"}],
\"files\": [{\"path\": \"f\"}, {\"path\": \"f\"}],
\"directories\": [{\"path\": \"d\"}],
\"junk\": 1},
\"passwd\": {\"users\": [{\"name\": \"u\"}, {\"name\": \"u\"}]},
\"kernelArguments\": {\"shouldExist\": [\"a\", \"a\"]}";
    check(
        &cfg("3.6.0", body),
        &[
            "error at $.storage.directories.0.path, line 7 col 26: path not absolute",
            "error at $.storage.files.0.path, line 6 col 20: path not absolute",
            "error at $.storage.files.1.path, line 6 col 35: path not absolute",
            "error at $.storage.links.0.path, line 5 col 20: path not absolute",
            "error at $.storage.raid.0.devices, line 4 col 11: raid devices required",
            "error at $.systemd.units.0.name, line 2 col 32: invalid systemd unit extension",
            "error at $.kernelArguments.shouldExist.1, line 10 col 42: duplicate entry defined",
            "error at $.passwd.users.1, line 9 col 38: duplicate entry defined",
            "error at $.storage.files.1, line 6 col 27: duplicate entry defined",
            "warning at $.storage.junk, line 8 col 1: unused key junk",
        ],
    );
}
