//! Command lines parsed the way Go's `flag` package parses them, for the personalities that
//! stand in for Ignition's Go binaries (`ignition`, `ignition-validate`).
//!
//! Go's rules: flags start with one or two dashes; values come as `-name=value` or as the next
//! argument (booleans only take the `=` form); parsing stops at the first non-flag argument, at
//! a lone `-`, or after `--`; `-h`/`-help` ask for usage; an unknown flag is an error.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Value,
}

/// What went wrong, with Go's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    Help,
    Message(String),
}

/// The parsed flags and positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub values: HashMap<String, String>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "true")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub fn parse(args: &[String], spec: &[(&str, Kind)]) -> Result<Parsed, FlagError> {
    let kinds: HashMap<&str, Kind> = spec.iter().copied().collect();
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.len() < 2 || !a.starts_with('-') {
            break;
        }
        let mut name = &a[1..];
        if let Some(rest) = name.strip_prefix('-') {
            if rest.is_empty() {
                i += 1; // "--" ends the flags
                break;
            }
            name = rest;
        }
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(FlagError::Message(format!("bad flag syntax: {a}")));
        }
        i += 1;
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(&kind) = kinds.get(name) else {
            if name == "help" || name == "h" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Message(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match kind {
            Kind::Bool => {
                let v = inline.unwrap_or_else(|| "true".into());
                match parse_bool(&v) {
                    Some(b) => b.to_string(),
                    None => {
                        return Err(FlagError::Message(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        )))
                    }
                }
            }
            Kind::Value => match inline {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(i) else {
                        return Err(FlagError::Message(format!(
                            "flag needs an argument: -{name}"
                        )));
                    };
                    i += 1;
                    v.clone()
                }
            },
        };
        out.values.insert(name.to_string(), value);
    }
    out.args = args[i..].to_vec();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_flag_rules() {
        let spec = [("version", Kind::Bool), ("stage", Kind::Value)];
        let p = parse(&s(&["--stage", "files", "-version", "x"]), &spec).unwrap();
        assert_eq!(p.get("stage"), Some("files"));
        assert!(p.flag("version"));
        assert_eq!(p.args, ["x"]);
        let p = parse(&s(&["-stage=disks", "-", "-version"]), &spec).unwrap();
        assert_eq!(p.get("stage"), Some("disks"));
        assert_eq!(p.args, ["-", "-version"]);
        assert_eq!(
            parse(&s(&["-nope"]), &spec).unwrap_err(),
            FlagError::Message("flag provided but not defined: -nope".into())
        );
        assert_eq!(parse(&s(&["-h"]), &spec).unwrap_err(), FlagError::Help);
        assert_eq!(
            parse(&s(&["-stage"]), &spec).unwrap_err(),
            FlagError::Message("flag needs an argument: -stage".into())
        );
        let p = parse(&s(&["--", "-version"]), &spec).unwrap();
        assert_eq!(p.args, ["-version"]);
    }
}
