//! Findings about a config: what, where (JSON path, line, column), how bad, and how to fix it.
//!
//! [`Entry::ignition_line`] prints an entry exactly as Ignition's reports do
//! (`error at $.storage.files.0.path, line 4 col 17: path not absolute`), which is what the
//! `ignition-validate` personality prints. Ember's own formats add a rule code and a hint.

use std::fmt;

use std::borrow::Cow;

use super::json::{Doc, Kind, LineIndex, Node};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One element of a JSON path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathElem {
    Key(Cow<'static, str>),
    Index(usize),
}

/// A JSON path such as `$.storage.files.3.path`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(pub Vec<PathElem>);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath(Vec::new())
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathElem::Key(Cow::Owned(k.to_string())));
        p
    }
    /// Appends a field name in place (no allocation for static names).
    pub fn push_field(&mut self, k: &'static str) {
        self.0.push(PathElem::Key(Cow::Borrowed(k)));
    }
    pub fn push_index(&mut self, i: usize) {
        self.0.push(PathElem::Index(i));
    }
    pub fn pop(&mut self) {
        self.0.pop();
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathElem::Index(i));
        p
    }
    /// Parses the dotted form used in Ember's decoder notes (`storage.files.0`).
    pub fn from_dotted(parts: &[String]) -> Self {
        JsonPath(
            parts
                .iter()
                .map(|p| match p.parse::<usize>() {
                    Ok(i) => PathElem::Index(i),
                    Err(_) => PathElem::Key(Cow::Owned(p.clone())),
                })
                .collect(),
        )
    }

    /// The deepest node of `tree` on this path, as Ignition correlates report entries: keys
    /// match exactly, the last duplicate wins, and the walk stops where the path leaves the
    /// document.
    pub fn deepest<'t>(&self, doc: &'t Doc) -> &'t Node {
        let mut node = &doc.root;
        for e in &self.0 {
            let next = match (e, &node.kind) {
                (PathElem::Key(k), Kind::Object(_)) => doc.get(node, k).map(|m| &m.value),
                (PathElem::Index(i), Kind::Array(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// Whether the whole path exists in `tree`, and if not, whether it stopped at a value that
    /// is not a container (Ignition's "context tree does not match" case).
    pub fn lookup<'t>(&self, doc: &'t Doc) -> Lookup<'t> {
        let mut node = &doc.root;
        for e in &self.0 {
            match (e, &node.kind) {
                (PathElem::Key(k), Kind::Object(_)) => match doc.get(node, k) {
                    Some(m) => node = &m.value,
                    None => return Lookup::NotFound,
                },
                (PathElem::Index(i), Kind::Array(items)) => match items.get(*i) {
                    Some(n) => node = n,
                    None => return Lookup::NotFound,
                },
                _ => return Lookup::BadPath,
            }
        }
        Lookup::Found(node)
    }
}

pub enum Lookup<'t> {
    Found(&'t Node),
    NotFound,
    BadPath,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for e in &self.0 {
            match e {
                PathElem::Key(k) => write!(f, ".{k}")?,
                PathElem::Index(i) => write!(f, ".{i}")?,
            }
        }
        Ok(())
    }
}

/// A position in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Byte index.
    pub index: usize,
    /// 1-based line, 0 when the index is at the end of the input (as Ignition prints it).
    pub line: usize,
    /// 1-based column in bytes, 0 at the end of the input.
    pub column: usize,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub severity: Severity,
    /// Where in the config; `None` for findings about the document as a whole (syntax and
    /// type errors), which Ignition prints without a path.
    pub path: Option<JsonPath>,
    pub message: String,
    pub marker: Option<Marker>,
    /// A stable identifier of the rule (`path-not-absolute`), for the JSON and SARIF outputs.
    pub code: &'static str,
    /// How to fix it, where Ember knows.
    pub hint: Option<String>,
    /// Ember's own finding, not one Ignition reports (left out by `ignition-validate`).
    pub ember_only: bool,
    /// Which config this is about when configs are merged (a file name or URL); `None` for the
    /// config being validated.
    pub source: Option<String>,
    /// Where Ember's own formats point when that differs from Ignition's marker: the offending
    /// byte of a syntax error (Go points one past it), the start of a mistyped value (Go points
    /// at its end).
    pub ember_marker: Option<Marker>,
}

impl Entry {
    pub fn new(
        severity: Severity,
        path: JsonPath,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Entry {
            severity,
            path: Some(path),
            message: message.into(),
            marker: None,
            code,
            hint: None,
            ember_only: false,
            source: None,
            ember_marker: None,
        }
    }

    pub fn error(path: JsonPath, code: &'static str, message: impl Into<String>) -> Self {
        Entry::new(Severity::Error, path, code, message)
    }

    pub fn warning(path: JsonPath, code: &'static str, message: impl Into<String>) -> Self {
        Entry::new(Severity::Warning, path, code, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn ember(mut self) -> Self {
        self.ember_only = true;
        self
    }

    pub fn at_index(mut self, index: usize) -> Self {
        self.marker = Some(Marker {
            index,
            line: 0,
            column: 0,
        });
        self
    }

    /// Sets the position Ember's own formats use.
    pub fn ember_at(mut self, index: usize) -> Self {
        self.ember_marker = Some(Marker {
            index,
            line: 0,
            column: 0,
        });
        self
    }

    /// The position for Ember's formats.
    pub fn position(&self) -> Option<Marker> {
        self.ember_marker.or(self.marker)
    }

    /// The entry as Ignition prints it.
    pub fn ignition_line(&self) -> String {
        let mut at = String::new();
        if let Some(p) = &self.path {
            at.push_str(" at ");
            at.push_str(&p.to_string());
        }
        if let Some(m) = &self.marker {
            if at.is_empty() {
                at.push_str(" at");
            } else {
                at.push(',');
            }
            at.push_str(&format!(" line {} col {}", m.line, m.column));
        }
        format!("{}{}: {}", self.severity.as_str(), at, self.message)
    }
}

/// The findings of one validation run, in Ignition's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<Entry>,
}

impl Report {
    pub fn push(&mut self, e: Entry) {
        self.entries.push(e);
    }

    pub fn extend(&mut self, other: Report) {
        self.entries.extend(other.entries);
    }

    pub fn has_errors(&self) -> bool {
        self.entries.iter().any(|e| e.severity == Severity::Error)
    }

    /// Only what Ignition itself reports.
    pub fn ignition_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| !e.ember_only)
    }

    pub fn ignition_has_errors(&self) -> bool {
        self.ignition_entries()
            .any(|e| e.severity == Severity::Error)
    }

    /// Gives every entry without a marker the position of the deepest node on its path, and
    /// fills in lines and columns.
    pub fn correlate(&mut self, doc: Option<&Doc>, src: &[u8]) {
        if self.entries.is_empty() {
            return;
        }
        let index = LineIndex::new(src);
        for e in &mut self.entries {
            if e.source.is_some() {
                continue;
            }
            if e.marker.is_none() {
                if let (Some(doc), Some(path)) = (doc, &e.path) {
                    let node = path.deepest(doc);
                    e.marker = Some(Marker {
                        index: node.marker(),
                        line: 0,
                        column: 0,
                    });
                }
            }
            for m in [&mut e.marker, &mut e.ember_marker].into_iter().flatten() {
                let (l, c) = index.line_col(m.index);
                m.line = l;
                m.column = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_ignition() {
        let mut e = Entry::error(
            JsonPath::root()
                .key("storage")
                .key("files")
                .index(0)
                .key("path"),
            "path-not-absolute",
            "path not absolute",
        );
        assert_eq!(
            e.ignition_line(),
            "error at $.storage.files.0.path: path not absolute"
        );
        e.marker = Some(Marker {
            index: 0,
            line: 4,
            column: 17,
        });
        assert_eq!(
            e.ignition_line(),
            "error at $.storage.files.0.path, line 4 col 17: path not absolute"
        );
        let mut g = e.clone();
        g.path = None;
        g.marker = Some(Marker {
            index: 0,
            line: 0,
            column: 0,
        });
        assert_eq!(
            g.ignition_line(),
            "error at line 0 col 0: path not absolute"
        );
    }
}
