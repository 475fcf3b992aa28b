//! Where secrets sit in a config's source, so that nothing Ember prints shows them.
//!
//! A config carries password hashes, inline file contents (`data:` URLs), unit contents, HTTP
//! header values and clevis configs. Reports point into the source; before a source line is
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
            let (start, end) = (node.start as usize + 1, node.end as usize - 1);
            match key {
                Some("passwordHash" | "value" | "contents" | "config") => out.push((start, end)),
                Some("source") if doc.raw_str(node).starts_with(b"data:") => {
                    // Keep "data:<mediatype>," visible; hide the payload.
                    let raw = doc.src.get(start..end).unwrap_or_default();
                    let comma = raw.iter().position(|&b| b == b',').map_or(0, |p| p + 1);
                    if start + comma < end {
                        out.push((start + comma, end));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
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
}
