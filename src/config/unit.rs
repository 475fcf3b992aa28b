//! Placeholder until the go-systemd compatible unit parser lands (replaced on merge).
#![allow(dead_code)]

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOption {
    pub section: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitParseError(pub String);

pub fn deserialize_options(contents: &str) -> Result<Vec<UnitOption>, UnitParseError> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in contents.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            out.push(UnitOption {
                section: section.clone(),
                name: k.trim().into(),
                value: v.trim().into(),
            });
        }
    }
    Ok(out)
}

pub fn has_section(opts: &[UnitOption], name: &str) -> bool {
    opts.iter().any(|o| o.section == name)
}
