//! Writing a config as JSON the way Go's `json.Marshal` writes Ignition's types.
//!
//! The config cache (`/run/ignition.json`) is read by other stages and sometimes by other tools,
//! so Ember writes it in Ignition's layout: fields in the types' order, optional fields and empty
//! lists left out, structs always present, and Go's string escaping (`<`, `>`, `&`, U+2028 and
//! U+2029 escaped; invalid UTF-8 as U+FFFD).

use super::model::{Config, DynStruct, FieldRef};

/// Compact JSON, as Ignition writes its cache.
pub fn to_json(cfg: &Config) -> String {
    let mut out = String::with_capacity(4096);
    write_struct(&mut out, cfg);
    out
}

fn write_struct(out: &mut String, s: &dyn DynStruct) {
    let desc = s.desc();
    out.push('{');
    let mut first = true;
    for (i, f) in desc.fields.iter().enumerate() {
        let start = out.len();
        if !first {
            out.push(',');
        }
        write_string(out, f.json);
        out.push(':');
        let written = match s.field(i) {
            FieldRef::Str(v) => {
                if v.is_empty() && !f.always_marshal {
                    false
                } else {
                    write_string(out, v);
                    true
                }
            }
            FieldRef::OptStr(v) => match v {
                Some(v) => {
                    write_string(out, v);
                    true
                }
                None => false,
            },
            FieldRef::Int(v) => {
                if v == 0 && !f.always_marshal {
                    false
                } else {
                    out.push_str(&v.to_string());
                    true
                }
            }
            FieldRef::OptInt(v) => match v {
                Some(v) => {
                    out.push_str(&v.to_string());
                    true
                }
                None => false,
            },
            FieldRef::OptBool(v) => match v {
                Some(v) => {
                    out.push_str(if v { "true" } else { "false" });
                    true
                }
                None => false,
            },
            FieldRef::Struct(inner) => {
                write_struct(out, inner);
                true
            }
            FieldRef::List(l) => {
                if l.is_empty() {
                    false
                } else {
                    out.push('[');
                    for j in 0..l.len() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_struct(out, l.get(j));
                    }
                    out.push(']');
                    true
                }
            }
            FieldRef::StrList(v) => {
                if v.is_empty() {
                    false
                } else {
                    out.push('[');
                    for (j, item) in v.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_string(out, item);
                    }
                    out.push(']');
                    true
                }
            }
        };
        if written {
            first = false;
        } else {
            out.truncate(start);
        }
    }
    out.push('}');
}

/// Go's JSON string encoding with HTML escaping on.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn matches_ignitions_cache_layout() {
        let p = parse(br#"{"ignition":{"version":"3.4.0"}}"#);
        assert_eq!(
            to_json(&p.config.unwrap()),
            r#"{"ignition":{"config":{"replace":{"verification":{}}},"proxy":{},"security":{"tls":{}},"timeouts":{},"version":"3.7.0-experimental"},"kernelArguments":{},"passwd":{},"storage":{},"systemd":{}}"#
        );
    }

    #[test]
    fn files_and_escaping() {
        let p = parse(
            br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/a<&>","mode":420,"contents":{"source":"data:,x"}}]}}"#,
        );
        let s = to_json(&p.config.unwrap());
        assert!(
            s.contains(r#""files":[{"group":{},"path":"/a\u003c\u0026\u003e","user":{},"contents":{"source":"data:,x","verification":{}},"mode":420}]"#),
            "{s}"
        );
        // What Ember writes, Ember reads back to the same config.
        let again = parse(s.as_bytes());
        assert!(again.error.is_none());
    }
}
