//! JSON Schemas (draft 2020-12) of each spec version, generated from the model's field tables.
//!
//! The checked-in copies under `config-schema/` are tested against this generator. A schema
//! describes configs as Ignition documents them; it is stricter than Ignition's decoder in two
//! ways that JSON Schema cannot express: keys are case-sensitive, and duplicate keys are not
//! considered.

use serde_json::{json, Map, Value as J};

use super::model::*;
use super::version::Spec;

/// Whether Ignition's validation makes a field required in `spec`.
fn required(desc: &StructDesc, f: &FieldDesc, spec: Spec) -> bool {
    match (desc.go_name, f.json) {
        ("Config", "ignition") | ("Ignition", "version") => true,
        ("File" | "Directory" | "Link", "path") => true,
        ("Link", "target") => spec >= Spec::V3_3,
        ("Disk" | "Filesystem", "device") => true,
        ("Raid", "devices") => true,
        ("Raid", "level") => spec >= Spec::V3_3,
        ("Luks", "device") => true,
        ("Unit" | "Dropin" | "PasswdUser" | "PasswdGroup" | "Luks" | "Raid", "name") => true,
        ("HttpHeader" | "HTTPHeader", "name") => true,
        ("Tang", "url" | "thumbprint") => true,
        _ => false,
    }
}

fn def_name(desc: &StructDesc, shape: Shape30, spec: Spec) -> String {
    if spec == Spec::V3_0 {
        if let Some(n) = shape.go_name() {
            return n.to_string();
        }
    }
    if spec == Spec::V3_2 && desc.go_name == "ClevisCustom" {
        return "Custom".into();
    }
    desc.go_name.to_string()
}

struct Gen {
    spec: Spec,
    defs: Map<String, J>,
}

impl Gen {
    fn struct_def(&mut self, s: &dyn DynStruct, shape: Shape30) -> String {
        let desc = s.desc();
        let name = def_name(desc, shape, self.spec);
        if self.defs.contains_key(&name) {
            return name;
        }
        self.defs.insert(name.clone(), J::Null); // placeholder against recursion
        let mut props = Map::new();
        let mut req = Vec::new();
        for (i, f) in desc.fields.iter().enumerate() {
            if !f.in_spec(self.spec) {
                continue;
            }
            if self.spec == Spec::V3_0
                && desc.go_name == "Resource"
                && f.json == "compression"
                && matches!(shape, Shape30::ConfigReference | Shape30::CaReference)
            {
                continue;
            }
            let mut p = match s.field(i) {
                FieldRef::Str(_) => json!({"type": "string"}),
                FieldRef::OptStr(_) => json!({"type": ["string", "null"]}),
                FieldRef::Int(_) => json!({"type": "integer"}),
                FieldRef::OptInt(_) => json!({"type": ["integer", "null"]}),
                FieldRef::OptBool(_) => json!({"type": ["boolean", "null"]}),
                FieldRef::StrList(_) => {
                    json!({"type": ["array", "null"], "items": {"type": "string"}})
                }
                FieldRef::Struct(inner) => {
                    let n = self.struct_def(inner, f.shape30);
                    json!({"$ref": format!("#/$defs/{n}")})
                }
                FieldRef::List(l) => {
                    let mut tmp: Box<dyn DynStruct> = if l.is_empty() {
                        default_of(l.elem_desc())
                    } else {
                        l.get(0).clone_box()
                    };
                    tmp.reset();
                    let n = self.struct_def(tmp.as_ref(), f.shape30);
                    json!({"type": ["array", "null"], "items": {"$ref": format!("#/$defs/{n}")}})
                }
            };
            let obj = p.as_object_mut().expect("object literal");
            obj.insert(
                "description".into(),
                J::String(field_doc(desc, f, self.spec)),
            );
            match (desc.go_name, f.json) {
                ("Ignition", "version") => {
                    obj.insert("const".into(), J::String(self.spec.as_str().into()));
                }
                ("Filesystem", "format") => {
                    let mut v: Vec<&str> = vec!["ext4", "btrfs", "xfs", "vfat", "swap"];
                    if self.spec >= Spec::V3_3 {
                        v.push("none");
                    }
                    if self.spec == Spec::V3_7Exp {
                        v.push("virtiofs");
                    }
                    obj.insert("enum".into(), enum_with_null(&v));
                }
                ("Verification", "hash") if self.spec == Spec::V3_0 => {
                    obj.insert(
                        "pattern".into(),
                        J::String("^sha512-[0-9a-fA-F]{128}$".into()),
                    );
                }
                _ => match f.constraint {
                    Constraint::Enum(v) => {
                        obj.insert("enum".into(), enum_with_null(v));
                    }
                    Constraint::Pattern(p) => {
                        obj.insert("pattern".into(), J::String(p.into()));
                    }
                    Constraint::Range(lo, hi) => {
                        obj.insert("minimum".into(), lo.into());
                        obj.insert("maximum".into(), hi.into());
                    }
                    Constraint::None => {}
                },
            }
            if required(desc, f, self.spec) {
                req.push(J::String(f.json.into()));
            }
            props.insert(f.json.into(), p);
        }
        let mut def = json!({
            "type": "object",
            "description": desc.doc.trim(),
            "properties": props,
            "additionalProperties": false,
        });
        if !req.is_empty() {
            def["required"] = J::Array(req);
        }
        self.defs.insert(name.clone(), def);
        name
    }
}

fn enum_with_null(v: &[&str]) -> J {
    let mut items: Vec<J> = v.iter().map(|s| J::String((*s).into())).collect();
    items.push(J::Null);
    J::Array(items)
}

fn field_doc(desc: &StructDesc, f: &FieldDesc, spec: Spec) -> String {
    let mut d = f.doc.to_string();
    if desc.go_name == "Verification" && spec == Spec::V3_0 {
        d = "Expected hash of the data as sha512-<hex digest>.".into();
    }
    if desc.go_name == "Resource" && f.json == "source" {
        // gs arrived in 3.2.0, arn in 3.4.0.
        let schemes = if spec < Spec::V3_2 {
            "an http, https, tftp, s3 or data URL"
        } else if spec < Spec::V3_4 {
            "an http, https, tftp, s3, gs or data URL"
        } else {
            "an http, https, tftp, s3, arn, gs or data URL"
        };
        d = format!("Where to fetch from: {schemes}.");
    }
    d
}

fn default_of(desc: &StructDesc) -> Box<dyn DynStruct> {
    // Find an instance of the element type by walking a default config.
    fn find(s: &mut dyn DynStruct, want: &str) -> Option<Box<dyn DynStruct>> {
        if s.desc().go_name == want {
            return Some(s.clone_box());
        }
        for i in 0..s.desc().fields.len() {
            match s.field_mut(i) {
                FieldMut::Struct(inner) => {
                    if let Some(x) = find(inner, want) {
                        return Some(x);
                    }
                }
                FieldMut::List(l) => {
                    l.push_default();
                    if let Some(x) = find(l.get_mut(0), want) {
                        return Some(x);
                    }
                }
                _ => {}
            }
        }
        None
    }
    find(&mut Config::default(), desc.go_name).unwrap_or_else(|| Box::new(Config::default()))
}

/// The schema of one spec version.
pub fn schema(spec: Spec) -> J {
    let mut g = Gen {
        spec,
        defs: Map::new(),
    };
    let root = g.struct_def(&Config::default(), Shape30::Full);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://ember.invalid/config-schema/{}.json", spec.as_str()),
        "title": format!("Ignition config, spec {}", spec.as_str()),
        "description": format!(
            "A CoreOS Ignition config of spec version {}, as read by Ember. Generated from Ember's config model; do not edit.",
            spec.as_str()
        ),
        "$ref": format!("#/$defs/{root}"),
        "$defs": g.defs,
    })
}

/// The schema as pretty-printed JSON text, as checked in under `config-schema/`.
pub fn schema_json(spec: Spec) -> String {
    serde_json::to_string_pretty(&schema(spec)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_version() {
        let s30 = schema(Spec::V3_0);
        assert!(s30["$defs"]["FileContents"]["properties"]["compression"].is_object());
        assert!(s30["$defs"]["ConfigReference"]["properties"]["compression"].is_null());
        assert!(s30["$defs"]["Config"]["properties"]["kernelArguments"].is_null());
        let s36 = schema(Spec::V3_6);
        assert!(s36["$defs"]["Config"]["properties"]["kernelArguments"].is_object());
        assert_eq!(s36["$defs"]["File"]["additionalProperties"], J::Bool(false));
        for (_, d) in s36["$defs"].as_object().unwrap() {
            for (k, p) in d["properties"].as_object().unwrap() {
                assert!(p["description"].is_string(), "{k}");
            }
        }
    }
}
