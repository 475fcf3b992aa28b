//! Decoding the position tree into the model with the semantics of Go's `json.Unmarshal` into
//! the Ignition types of one spec version.
//!
//! What Go does, and so what Ember does:
//! * keys match fields exactly or, failing that, case-insensitively (Unicode simple folding);
//! * a key that is not a field of that version is skipped without looking at its value;
//! * a duplicated key decodes again *into* the same field, so objects merge and list elements
//!   are decoded into the existing elements;
//! * `null` clears pointers and lists and is ignored for plain values and structs;
//! * the first type mismatch in document order is the error, with Go's message and offset.
//!
//! The decoder also records things Ignition accepts silently but that are likely mistakes
//! (case-insensitive matches, duplicate keys, strings with invalid UTF-8); the linter turns them
//! into warnings.

use std::fmt;

use super::json::{Doc, Kind, Member, Node};
use super::model::{
    Config, ConfigStruct, DynList, DynStruct, FieldDesc, FieldMut, Quirk, Shape30, StructDesc,
};
use super::version::Spec;

/// A Go `UnmarshalTypeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// "string", "number", "number 1.5", "bool", "array", "object".
    pub value: String,
    pub go_type: String,
    /// The top-level Go type's name (`Config`, `versionStub`).
    pub top: &'static str,
    /// The top-level Go type with package (`types.Config`).
    pub top_go_type: &'static str,
    /// Dotted JSON path below the top level (`storage.files.0.mode`); empty at the top.
    pub field_path: String,
    /// Go's offset: one past a literal, or one past an opening bracket.
    pub offset: usize,
    /// Where the mistyped value starts.
    pub value_start: usize,
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field_path.is_empty() {
            write!(
                f,
                "json: cannot unmarshal {} into Go value of type {}",
                self.value, self.top_go_type
            )
        } else {
            write!(
                f,
                "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
                self.value, self.top, self.field_path, self.go_type
            )
        }
    }
}

impl std::error::Error for TypeError {}

/// Something Ignition accepts silently that Ember points out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A key matched a field only case-insensitively.
    CaseFolded {
        path: Vec<String>,
        written: String,
        field: &'static str,
        key_start: usize,
    },
    /// The same field was given twice in one object.
    DuplicateKey {
        path: Vec<String>,
        key: String,
        key_start: usize,
    },
    /// A string contained invalid UTF-8 (Go replaces it with U+FFFD).
    InvalidUtf8 { path: Vec<String>, start: usize },
}

/// Go's case folding for key matching: ASCII upper-casing plus the four non-ASCII runes whose
/// simple folding reaches an ASCII letter.
fn fold_eq(key: &str, field: &str) -> bool {
    let mut k = key.chars();
    for fc in field.chars() {
        let Some(c) = k.next() else { return false };
        let c = match c {
            '\u{17f}' => 'S',             // LATIN SMALL LETTER LONG S
            '\u{212a}' => 'K',            // KELVIN SIGN
            '\u{130}' | '\u{131}' => 'I', // dotted capital I, dotless small i
            c => c.to_ascii_uppercase(),
        };
        if c != fc.to_ascii_uppercase() {
            return false;
        }
    }
    k.next().is_none()
}

fn literal_offset(node: &Node) -> usize {
    match node.kind {
        Kind::Object(_) | Kind::Array(_) | Kind::Opaque { .. } => node.start as usize + 1,
        _ => node.end as usize,
    }
}

struct Decoder<'d, 'a> {
    spec: Spec,
    path: Vec<String>,
    notes: Vec<Note>,
    doc: &'d Doc<'a>,
}

type R = Result<(), TypeError>;

impl Decoder<'_, '_> {
    fn err(&self, node: &Node, value: String, go_type: &str) -> TypeError {
        TypeError {
            value,
            go_type: go_type.to_string(),
            top: "Config",
            top_go_type: "types.Config",
            field_path: self.path.join("."),
            offset: literal_offset(node),
            value_start: node.start as usize,
        }
    }

    fn kind_err(&self, node: &Node, go_type: &str) -> TypeError {
        self.err(node, node.go_kind().to_string(), go_type)
    }

    /// The string's contents, noting invalid UTF-8.
    fn string(&mut self, node: &Node) -> String {
        if let Kind::Str { plain: false } = node.kind {
            if super::json::has_invalid_utf8(self.doc.raw_str(node)) {
                self.notes.push(Note::InvalidUtf8 {
                    path: self.path.clone(),
                    start: node.start as usize,
                });
            }
        }
        self.doc.str_of(node).into_owned()
    }

    fn go_type_name(&self, f: &FieldDesc, inner: &StructDesc) -> String {
        if self.spec == Spec::V3_0 {
            if let Some(n) = f.shape30.go_name() {
                return if f.go_type.starts_with("[]") {
                    format!("[]types.{n}")
                } else {
                    format!("types.{n}")
                };
            }
        }
        if self.spec == Spec::V3_2 && inner.go_name == "ClevisCustom" {
            return "types.Custom".into();
        }
        f.go_type.to_string()
    }

    fn elem_type_name(&self, f: &FieldDesc) -> String {
        if self.spec == Spec::V3_0 {
            if let Some(n) = f.shape30.go_name() {
                return format!("types.{n}");
            }
        }
        f.elem_go_type.to_string()
    }

    /// The fields a key may match in this version and shape.
    fn available(&self, desc: &StructDesc, shape: Shape30, i: usize) -> bool {
        let f = &desc.fields[i];
        if !f.in_spec(self.spec) {
            return false;
        }
        if self.spec == Spec::V3_0 && desc.go_name == "Resource" {
            return !matches!(
                (shape, f.json),
                (
                    Shape30::ConfigReference | Shape30::CaReference,
                    "compression"
                )
            );
        }
        true
    }

    fn find_field(&mut self, desc: &StructDesc, shape: Shape30, m: &Member) -> Option<usize> {
        let exact = (0..desc.fields.len())
            .find(|&i| self.available(desc, shape, i) && self.doc.key_is(m, desc.fields[i].json));
        if exact.is_some() {
            return exact;
        }
        let key = self.doc.key(m);
        let folded = (0..desc.fields.len())
            .find(|&i| self.available(desc, shape, i) && fold_eq(&key, desc.fields[i].json));
        if let Some(i) = folded {
            self.notes.push(Note::CaseFolded {
                path: self.path.clone(),
                written: key.to_string(),
                field: desc.fields[i].json,
                key_start: m.key_start as usize,
            });
        }
        folded
    }

    fn decode_struct(&mut self, node: &Node, target: &mut dyn DynStruct, shape: Shape30) -> R {
        let Kind::Object(members) = &node.kind else {
            // Callers handle null and report other kinds with the field's type.
            return Ok(());
        };
        let desc = target.desc();
        let mut seen: Vec<usize> = Vec::new();
        for m in members {
            let Some(i) = self.find_field(desc, shape, m) else {
                continue;
            };
            if seen.contains(&i) {
                self.notes.push(Note::DuplicateKey {
                    path: self.path.clone(),
                    key: self.doc.key(m).to_string(),
                    key_start: m.key_start as usize,
                });
            } else {
                seen.push(i);
            }
            let f = &desc.fields[i];
            self.path.push(f.json.to_string());
            let r = self.decode_field(&m.value, f, target.field_mut(i));
            self.path.pop();
            r?;
        }
        self.finalize(target, shape);
        Ok(())
    }

    /// Applies the "always set after translation" rules of plain Go strings in old specs to a
    /// struct that was present in the document.
    fn finalize(&mut self, target: &mut dyn DynStruct, shape: Shape30) {
        let desc = target.desc();
        for (i, f) in desc.fields.iter().enumerate() {
            let applies = match f.quirk {
                Quirk::ValueStrUntil3_2 => self.spec <= Spec::V3_2,
                Quirk::ValueStrIn3_2 => self.spec == Spec::V3_2,
                _ => false,
            } || (self.spec == Spec::V3_0
                && shape == Shape30::CaReference
                && f.json == "source");
            if applies {
                if let FieldMut::OptStr(v) = target.field_mut(i) {
                    if v.is_none() {
                        *v = Some(String::new());
                    }
                }
            }
        }
    }

    fn decode_field(&mut self, node: &Node, f: &FieldDesc, slot: FieldMut<'_>) -> R {
        let value_str = match f.quirk {
            Quirk::ValueStrUntil3_2 => self.spec <= Spec::V3_2,
            Quirk::ValueStrIn3_2 => self.spec == Spec::V3_2,
            Quirk::ValueStrIn3_0 => self.spec == Spec::V3_0,
            _ => false,
        };
        match slot {
            FieldMut::Str(s) => match &node.kind {
                Kind::Str { .. } => {
                    *s = self.string(node);
                    Ok(())
                }
                Kind::Null => Ok(()),
                _ => Err(self.kind_err(node, "string")),
            },
            FieldMut::OptStr(s) => match &node.kind {
                Kind::Str { .. } => {
                    *s = Some(self.string(node));
                    Ok(())
                }
                Kind::Null => {
                    if !value_str {
                        *s = None;
                    }
                    Ok(())
                }
                _ => Err(self.kind_err(node, "string")),
            },
            FieldMut::Int(n) => match &node.kind {
                Kind::Number => {
                    let lit = self.doc.number(node);
                    *n = parse_go_int(lit)
                        .ok_or_else(|| self.err(node, format!("number {lit}"), "int"))?;
                    Ok(())
                }
                Kind::Null => Ok(()),
                _ => Err(self.kind_err(node, "int")),
            },
            FieldMut::OptInt(n) => match &node.kind {
                Kind::Number => {
                    let lit = self.doc.number(node);
                    *n = Some(
                        parse_go_int(lit)
                            .ok_or_else(|| self.err(node, format!("number {lit}"), "int"))?,
                    );
                    Ok(())
                }
                Kind::Null => {
                    *n = None;
                    Ok(())
                }
                _ => Err(self.kind_err(node, "int")),
            },
            FieldMut::OptBool(b) => match &node.kind {
                Kind::Bool(v) => {
                    *b = Some(*v);
                    Ok(())
                }
                Kind::Null => {
                    *b = None;
                    Ok(())
                }
                _ => Err(self.kind_err(node, "bool")),
            },
            FieldMut::Struct(inner) => {
                let ptr_in_3_2 = f.quirk == Quirk::PtrStructIn3_2 && self.spec == Spec::V3_2;
                match &node.kind {
                    Kind::Object(_) => self.decode_struct(node, inner, f.shape30),
                    Kind::Null => {
                        if ptr_in_3_2 {
                            inner.reset();
                        }
                        Ok(())
                    }
                    _ => {
                        let t = self.go_type_name(f, inner.desc());
                        Err(self.kind_err(node, &t))
                    }
                }
            }
            FieldMut::List(list) => match &node.kind {
                Kind::Array(items) => self.decode_list(items, f, list),
                Kind::Null => {
                    list.clear();
                    Ok(())
                }
                _ => {
                    let t = self.go_type_name(f, list.elem_desc());
                    Err(self.kind_err(node, &t))
                }
            },
            FieldMut::StrList(list) => match &node.kind {
                Kind::Array(items) => {
                    if items.is_empty() {
                        list.clear();
                    }
                    list.reserve_exact(items.len().saturating_sub(list.len()));
                    for (i, item) in items.iter().enumerate() {
                        if i >= list.len() {
                            list.push(String::new());
                        }
                        self.path.push(i.to_string());
                        let r = match &item.kind {
                            Kind::Str { .. } => {
                                list[i] = self.string(item);
                                Ok(())
                            }
                            Kind::Null => Ok(()),
                            _ => Err(self.kind_err(item, f.elem_go_type)),
                        };
                        self.path.pop();
                        r?;
                    }
                    list.truncate(items.len());
                    Ok(())
                }
                Kind::Null => {
                    list.clear();
                    Ok(())
                }
                _ => Err(self.kind_err(node, f.go_type)),
            },
        }
    }

    fn decode_list(&mut self, items: &[Node], f: &FieldDesc, list: &mut dyn DynList) -> R {
        if items.is_empty() {
            list.clear();
            return Ok(());
        }
        list.reserve_exact(items.len().saturating_sub(list.len()));
        for (i, item) in items.iter().enumerate() {
            if i >= list.len() {
                list.push_default();
            }
            self.path.push(i.to_string());
            let r = match &item.kind {
                Kind::Object(_) => self.decode_struct(item, list.get_mut(i), f.shape30),
                Kind::Null => Ok(()),
                _ => {
                    let t = self.elem_type_name(f);
                    Err(self.kind_err(item, &t))
                }
            };
            self.path.pop();
            r?;
        }
        list.truncate(items.len());
        Ok(())
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)` on a JSON number literal.
fn parse_go_int(lit: &str) -> Option<i64> {
    let digits = lit.strip_prefix('-').unwrap_or(lit);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    lit.parse::<i64>().ok()
}

/// Decodes a whole config of version `spec`.
pub fn decode_config(doc: &Doc, spec: Spec) -> Result<(Config, Vec<Note>), TypeError> {
    let mut d = Decoder {
        spec,
        path: Vec::new(),
        notes: Vec::new(),
        doc,
    };
    let mut cfg = Config::default();
    let tree = &doc.root;
    match &tree.kind {
        Kind::Object(_) => d.decode_struct(tree, &mut cfg, Shape30::Full)?,
        Kind::Null => {}
        _ => return Err(d.kind_err(tree, Config::DESC.go_name)),
    }
    Ok((cfg, d.notes))
}

const STUB_IGNITION_TYPE: &str = "struct { Version string \"json:\\\"version\\\"\" }";

/// Reads `ignition.version` the way Ignition's version stub does (same quirks, same errors).
/// `Ok(None)` means the version is absent or null.
pub fn decode_version_stub(doc: &Doc) -> Result<String, TypeError> {
    let tree = &doc.root;
    let err = |node: &Node, value: String, field_path: &str, go_type: &str| TypeError {
        value,
        go_type: go_type.to_string(),
        top: "versionStub",
        top_go_type: "util.versionStub",
        field_path: field_path.to_string(),
        offset: literal_offset(node),
        value_start: node.start as usize,
    };
    let mut version = String::new();
    match &tree.kind {
        Kind::Null => {}
        Kind::Object(members) => {
            for m in members.iter().filter(|m| fold_eq(&doc.key(m), "ignition")) {
                match &m.value.kind {
                    Kind::Null => {}
                    Kind::Object(inner) => {
                        for v in inner.iter().filter(|v| fold_eq(&doc.key(v), "version")) {
                            match &v.value.kind {
                                Kind::Str { .. } => version = doc.str_of(&v.value).into_owned(),
                                Kind::Null => {}
                                _ => {
                                    return Err(err(
                                        &v.value,
                                        v.value.go_kind().into(),
                                        "ignition.version",
                                        "string",
                                    ))
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(err(
                            &m.value,
                            m.value.go_kind().into(),
                            "ignition",
                            STUB_IGNITION_TYPE,
                        ))
                    }
                }
            }
        }
        _ => return Err(err(tree, tree.go_kind().into(), "", "")),
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json::parse_doc;

    fn decode(src: &str, spec: Spec) -> Result<Config, String> {
        let doc = parse_doc(src.as_bytes()).unwrap();
        decode_config(&doc, spec)
            .map(|(c, _)| c)
            .map_err(|e| format!("{e} @{}", e.offset))
    }

    #[test]
    fn decodes_basic_config() {
        let c = decode(
            r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/a","mode":420,"contents":{"source":"data:,x"}}]}}"#,
            Spec::V3_4,
        )
        .unwrap();
        assert_eq!(c.ignition.version, "3.4.0");
        assert_eq!(c.storage.files[0].path, "/a");
        assert_eq!(c.storage.files[0].mode, Some(420));
        assert_eq!(
            c.storage.files[0].contents.source.as_deref(),
            Some("data:,x")
        );
    }

    #[test]
    fn case_insensitive_and_duplicates_like_go() {
        let c = decode(
            r#"{"IGNITION":{"VERSION":"3.6.0"},"Storage":{"Files":[{"PATH":"rel"}]}}"#,
            Spec::V3_6,
        )
        .unwrap();
        assert_eq!(c.ignition.version, "3.6.0");
        assert_eq!(c.storage.files[0].path, "rel");
        // Long s folds to S.
        let c = decode(r#"{"ſtorage":{"files":[{"path":"/x"}]}}"#, Spec::V3_6).unwrap();
        assert_eq!(c.storage.files[0].path, "/x");
        // Duplicate objects merge; a later null does not clear a struct.
        let c = decode(
            r#"{"storage":{"files":[{"path":"/a","mode":420}]},"storage":{"directories":[{"path":"/d"}]},"storage":null}"#,
            Spec::V3_6,
        )
        .unwrap();
        assert_eq!(c.storage.files.len(), 1);
        assert_eq!(c.storage.directories.len(), 1);
        // A duplicated list decodes into the existing elements.
        let c = decode(
            r#"{"storage":{"files":[{"path":"/a","mode":420}],"files":[{"path":"/b"}]}}"#,
            Spec::V3_6,
        )
        .unwrap();
        assert_eq!(c.storage.files[0].path, "/b");
        assert_eq!(c.storage.files[0].mode, Some(420));
        // null clears pointers and lists.
        let c = decode(
            r#"{"storage":{"files":[{"path":"/a","mode":420,"mode":null}],"directories":[{"path":"/d"}],"directories":null}}"#,
            Spec::V3_6,
        )
        .unwrap();
        assert_eq!(c.storage.files[0].mode, None);
        assert!(c.storage.directories.is_empty());
    }

    #[test]
    fn go_type_errors() {
        let e = decode(
            r#"{"storage":{"files":[{"path":"/a","mode":420.0}]}}"#,
            Spec::V3_6,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "json: cannot unmarshal number 420.0 into Go struct field Config.storage.files.0.mode of type int @46"
        );
        let e = decode(r#"{"storage":{"files":{}}}"#, Spec::V3_6).unwrap_err();
        assert_eq!(
            e,
            "json: cannot unmarshal object into Go struct field Config.storage.files of type []types.File @21"
        );
        let e = decode(
            r#"{"passwd":{"users":[{"name":"a","groups":[1]}]}}"#,
            Spec::V3_6,
        )
        .unwrap_err();
        assert!(e.starts_with(
            "json: cannot unmarshal number into Go struct field Config.passwd.users.0.groups.0 of type types.Group"
        ));
        let e = decode(
            r#"{"storage":{"files":[{"overwrite":"true"}]}}"#,
            Spec::V3_6,
        )
        .unwrap_err();
        assert!(e.contains("of type bool"));
        let e = decode(r#"{"storage":{"files":[{"contents":5}]}}"#, Spec::V3_0).unwrap_err();
        assert!(e.contains("of type types.FileContents"), "{e}");
        let e = decode(r#"[]"#, Spec::V3_6).unwrap_err();
        assert_eq!(
            e,
            "json: cannot unmarshal array into Go value of type types.Config @1"
        );
        let e = decode(
            r#"{"storage":{"files":[{"mode":99999999999999999999}]}}"#,
            Spec::V3_6,
        )
        .unwrap_err();
        assert!(e.contains("number 99999999999999999999"));
    }

    #[test]
    fn fields_are_gated_by_version() {
        // kernelArguments does not exist in 3.2: skipped without looking at the value.
        let c = decode(r#"{"kernelArguments":5}"#, Spec::V3_2).unwrap();
        assert!(c.kernel_arguments.should_exist.is_empty());
        assert!(decode(r#"{"kernelArguments":5}"#, Spec::V3_3).is_err());
        // 3.0 config references have no compression field.
        let c = decode(
            r#"{"ignition":{"config":{"replace":{"source":"data:,","compression":"gzip"}}}}"#,
            Spec::V3_0,
        )
        .unwrap();
        assert_eq!(c.ignition.config.replace.compression, None);
    }

    #[test]
    fn old_plain_strings_become_set() {
        let c = decode(r#"{"storage":{"links":[{"path":"/l"}]}}"#, Spec::V3_2).unwrap();
        assert_eq!(c.storage.links[0].target.as_deref(), Some(""));
        let c = decode(r#"{"storage":{"links":[{"path":"/l"}]}}"#, Spec::V3_3).unwrap();
        assert_eq!(c.storage.links[0].target, None);
        let c = decode(
            r#"{"ignition":{"security":{"tls":{"certificateAuthorities":[{}]}}}}"#,
            Spec::V3_0,
        )
        .unwrap();
        assert_eq!(
            c.ignition.security.tls.certificate_authorities[0]
                .source
                .as_deref(),
            Some("")
        );
        let c = decode(
            r#"{"storage":{"luks":[{"name":"a","clevis":{"custom":{}}}]}}"#,
            Spec::V3_2,
        )
        .unwrap();
        assert_eq!(c.storage.luks[0].clevis.custom.pin.as_deref(), Some(""));
    }

    #[test]
    fn version_stub() {
        let t = parse_doc(br#"{"ignition":{"version":3}}"#).unwrap();
        assert_eq!(
            decode_version_stub(&t).unwrap_err().to_string(),
            "json: cannot unmarshal number into Go struct field versionStub.ignition.version of type string"
        );
        let t = parse_doc(br#""x""#).unwrap();
        assert_eq!(
            decode_version_stub(&t).unwrap_err().to_string(),
            "json: cannot unmarshal string into Go value of type util.versionStub"
        );
        let t = parse_doc(br#"{"Ignition":{"Version":"3.1.0"},"ignition":{}}"#).unwrap();
        assert_eq!(decode_version_stub(&t).unwrap(), "3.1.0");
    }
}
