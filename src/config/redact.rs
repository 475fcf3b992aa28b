//! Where secrets sit in a config's source, so that nothing Ember prints shows them.
//!
//! A config carries password hashes, inline file contents (`data:` URLs), unit contents, HTTP
//! header values, clevis configs and credentials in URLs. Reports point into the source; before a source line is
//! shown, the spans found here are replaced with `<redacted>`.

use super::json::{Doc, Kind, Node};

/// The placeholder shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Byte ranges (start, end) of secret string contents, without their quotes.
pub fn secret_spans(doc: &Doc) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    walk(doc, &doc.root, None, &mut out);
    out.sort_unstable();
    out
}

fn walk(doc: &Doc, node: &Node, key: Option<&str>, out: &mut Vec<(usize, usize)>) {
    match &node.kind {
        Kind::Object(members) => {
            for m in members.iter() {
                let k = doc.key(m);
                walk(doc, &m.value, Some(&k), out);
            }
        }
        Kind::Array(items) => {
            for i in items.iter() {
                walk(doc, i, key, out);
            }
        }
        Kind::Str { .. } => {
            let start = node.start as usize + 1;
            if let Some((s, e)) = key.and_then(|k| secret_part(k, doc.raw_str(node))) {
                out.push((start + s, start + e));
            }
        }
        _ => {}
    }
}

/// The part of a string value under `key` that is secret, as offsets into its raw text:
/// password hashes, header values, unit and drop-in contents and clevis configs whole, the
/// payload of a `data:` URL (its media type stays visible), the userinfo of any other URL.
fn secret_part(key: &str, raw: &[u8]) -> Option<(usize, usize)> {
    let span = match key {
        "passwordHash" | "value" | "contents" | "config" => (0, raw.len()),
        "source" if raw.starts_with(b"data:") => {
            let comma = raw.iter().position(|&b| b == b',').map_or(0, |p| p + 1);
            (comma, raw.len())
        }
        "source" | "httpProxy" | "httpsProxy" | "url" => {
            // scheme://userinfo@host...: hide the userinfo.
            let at = raw.windows(3).position(|w| w == b"://")? + 3;
            let authority_end = raw[at..]
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .map_or(raw.len(), |p| at + p);
            let user_end = raw[at..authority_end].iter().rposition(|&b| b == b'@')?;
            (at, at + user_end)
        }
        _ => return None,
    };
    (span.0 < span.1).then_some(span)
}

/// Like [`secret_spans`], for input that is not valid JSON (the linter still shows the source
/// line of a syntax error): a tolerant scan of string literals, in which a string followed by
/// ':' is a key and any other string a value of the innermost key. Unterminated strings run to
/// the end of the input. When in doubt it hides more, never less.
pub fn secret_spans_lenient(src: &[u8]) -> Vec<(usize, usize)> {
    // For each open container, the key its strings belong to: an object's last key, an array's
    // own key (the one it is the value of).
    let mut stack: Vec<(bool, Option<(usize, usize)>)> = vec![(true, None)];
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < src.len() && src[j] != b'"' {
                    j += if src[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(src.len());
                let mut k = j + 1;
                while k < src.len() && matches!(src[k], b' ' | b'\t' | b'\r' | b'\n') {
                    k += 1;
                }
                let top = stack.len() - 1;
                if src.get(k) == Some(&b':') {
                    stack[top].1 = Some((start, end));
                } else if let Some((ks, ke)) = stack[top].1 {
                    let key = super::json::unquote(&src[ks..ke]);
                    if let Some((s, e)) = secret_part(&key, &src[start..end]) {
                        out.push((start + s, start + e));
                    }
                }
                i = j + 1;
            }
            b'{' => {
                stack.push((true, None));
                i += 1;
            }
            b'[' => {
                let key = stack[stack.len() - 1].1;
                stack.push((false, key));
                i += 1;
            }
            b'}' | b']' => {
                if stack.len() > 1 {
                    stack.pop();
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Redacts a whole document's text, for showing configs in reports.
pub fn redact_text(src: &[u8], spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(src.len());
    let mut pos = 0;
    for &(s, e) in spans {
        if s < pos {
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&src[pos..s]));
        out.push_str(REDACTED);
        pos = e;
    }
    out.push_str(&String::from_utf8_lossy(&src[pos.min(src.len())..]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json::parse_doc;

    #[test]
    fn hides_secrets() {
        let src = br#"{"passwd":{"users":[{"name":"core","passwordHash":"$6$salt$hash"}]},
"storage":{"files":[{"path":"/x","contents":{"source":"data:,top%20secret"}}]},
"systemd":{"units":[{"name":"a.service","contents":"Environment=TOKEN=abc"}]}}"#;
        let t = parse_doc(src).unwrap();
        let text = redact_text(src, &secret_spans(&t));
        assert!(!text.contains("$6$salt"));
        assert!(!text.contains("top%20secret"));
        assert!(!text.contains("TOKEN=abc"));
        assert!(text.contains(r#""source":"data:,<redacted>""#));
        assert!(text.contains(r#""name":"core""#));
    }

    #[test]
    fn hides_secrets_in_invalid_json_too() {
        let src = br#"{"passwd":{"users":[{"name":"core","passwordHash":"$6$salt$hash",}]},
"ignition":{"config":{"merge":[{"source":"https://u:pw@h/c","httpHeaders":[{"name":"A","value":"tok"}]}]}},
"storage":{"files":[{"path":"/x","contents":{"source":"data:text/plain,top%20secret"}}]},
"systemd":{"units":[{"name":"a.service","contents":"Environment=TOKEN=abc"#;
        assert!(parse_doc(src).is_err());
        let text = redact_text(src, &secret_spans_lenient(src));
        for s in ["$6$salt", "u:pw", "tok\"", "top%20secret", "TOKEN=abc"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert!(
            text.contains(r#""source":"https://<redacted>@h/c""#),
            "{text}"
        );
        assert!(
            text.contains(r#""source":"data:text/plain,<redacted>""#),
            "{text}"
        );
        assert!(text.contains(r#""name":"a.service""#));
        // On valid JSON both scans agree.
        let valid = br#"{"a":[{"passwordHash":"x","b":["c"]}],"value":"v","source":"data:,p"}"#;
        let doc = parse_doc(valid).unwrap();
        assert_eq!(secret_spans(&doc), secret_spans_lenient(valid));
    }
}
