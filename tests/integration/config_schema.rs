//! The JSON Schemas under `config-schema/`: the checked-in files are what `ember schema VERSION`
//! generates, every valid config of every version passes its version's schema, and invalid
//! configs that a schema can describe (unknown keys, wrong types, bad enum values) fail it.

use ember::config::{schema, Spec};
use serde_json::Value;

use crate::config_versions::VALID_CONFIGS;
use crate::lint_support::*;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config-schema");
const REGENERATE: &str = "run scripts/update-schemas.sh and commit config-schema/";

fn checked_in(spec: Spec) -> String {
    let path = format!("{SCHEMA_DIR}/{}.json", spec.as_str());
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path} ({e}): {REGENERATE}"))
}

fn validator(spec: Spec) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&checked_in(spec)).unwrap();
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the {spec} schema is not a valid schema: {e}"))
}

/// The schema's complaints about `src` (empty when it passes).
fn schema_errors(spec: Spec, src: &str) -> Vec<String> {
    let instance: Value = serde_json::from_str(src).unwrap();
    let v = validator(spec);
    v.iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn checked_in_schemas_are_up_to_date() {
    for spec in Spec::ALL {
        let generated = format!("{}\n", schema::schema_json(spec));
        assert!(
            checked_in(spec) == generated,
            "config-schema/{}.json differs from the generated schema: {REGENERATE}",
            spec.as_str()
        );
        // The command prints the same text.
        let r = ember(&["schema", spec.as_str()], None);
        r.expect_code(0);
        assert!(
            r.stdout == generated,
            "`ember schema {}` differs from the checked-in file: {REGENERATE}",
            spec.as_str()
        );
    }
    // No stray files.
    let mut names: Vec<String> = std::fs::read_dir(SCHEMA_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = Spec::ALL
        .iter()
        .map(|s| format!("{}.json", s.as_str()))
        .collect();
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn schemas_are_draft_2020_12_and_strict() {
    for spec in Spec::ALL {
        let s: Value = serde_json::from_str(&checked_in(spec)).unwrap();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        for (name, def) in s["$defs"].as_object().unwrap() {
            assert_eq!(def["additionalProperties"], false, "{spec} {name}");
            for (k, p) in def["properties"].as_object().unwrap() {
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{spec} {name}.{k} has no description"
                );
            }
        }
        assert_eq!(
            s["$defs"]["Ignition"]["properties"]["version"]["const"],
            spec.as_str()
        );
    }
}

#[test]
fn valid_configs_pass_their_schema() {
    for (spec, src) in VALID_CONFIGS {
        let errors = schema_errors(*spec, src);
        assert!(errors.is_empty(), "{spec}: {errors:#?}\n{src}");
    }
    let clean = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clean.ign"))
        .unwrap();
    assert_eq!(schema_errors(Spec::V3_6, &clean), Vec::<String>::new());
    // A config of one version is not one of another: the version is a constant.
    assert!(!schema_errors(Spec::V3_5, &clean).is_empty());
}

#[test]
fn schema_expressible_mistakes_fail() {
    let cases: &[(Spec, &str, &str)] = &[
        // Unknown keys, including a later version's field and a key in the wrong case.
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"filesytems": []}}"#,
            "filesytems",
        ),
        (
            Spec::V3_2,
            r#"{"ignition": {"version": "3.2.0"}, "kernelArguments": {}}"#,
            "kernelArguments",
        ),
        (
            Spec::V3_0,
            r#"{"ignition": {"version": "3.0.0", "proxy": {}}}"#,
            "proxy",
        ),
        (
            Spec::V3_0,
            r#"{"ignition": {"version": "3.0.0", "config": {"replace": {"source": "data:,x", "compression": "gzip"}}}}"#,
            "compression",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "Storage": {}}"#,
            "Storage",
        ),
        // Wrong types.
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/a", "mode": "0644"}]}}"#,
            "mode",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/a", "mode": 420.5}]}}"#,
            "mode",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": {}}}"#,
            "files",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "systemd": {"units": [{"name": "a.service", "enabled": "yes"}]}}"#,
            "enabled",
        ),
        (Spec::V3_6, r#"{"ignition": {"version": 3.6}}"#, "version"),
        // Enums, patterns, ranges.
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"filesystems": [{"device": "/dev/a", "format": "ext5"}]}}"#,
            "format",
        ),
        (
            Spec::V3_2,
            r#"{"ignition": {"version": "3.2.0"}, "storage": {"filesystems": [{"device": "/dev/a", "format": "none"}]}}"#,
            "format",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"raid": [{"name": "r", "level": "raid7", "devices": ["/dev/a"]}]}}"#,
            "level",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "data:,x", "compression": "xz"}}]}}"#,
            "compression",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "data:,x", "verification": {"hash": "md5-00"}}}]}}"#,
            "hash",
        ),
        (
            Spec::V3_0,
            r#"{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "data:,x", "verification": {"hash": "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}}]}}"#,
            "hash",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/a", "mode": 4096}]}}"#,
            "mode",
        ),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"disks": [{"device": "/dev/a", "partitions": [{"number": 1, "guid": "xyz"}]}]}}"#,
            "guid",
        ),
        // Required keys.
        (Spec::V3_6, r#"{"storage": {}}"#, "ignition"),
        (
            Spec::V3_6,
            r#"{"ignition": {"version": "3.6.0"}, "storage": {"files": [{"mode": 420}]}}"#,
            "path",
        ),
        (
            Spec::V3_3,
            r#"{"ignition": {"version": "3.3.0"}, "storage": {"links": [{"path": "/l"}]}}"#,
            "target",
        ),
    ];
    for (spec, src, about) in cases {
        let errors = schema_errors(*spec, src);
        assert!(!errors.is_empty(), "{spec} schema accepts {src}");
        assert!(
            errors.iter().any(|e| e.contains(about)),
            "{spec}: the complaint should be about {about}: {errors:#?}"
        );
        // Ember agrees that each is wrong: an error, or an unused-key warning.
        let p = ember::config::parse(src.as_bytes());
        assert!(
            p.error.is_some() || !p.report.entries.is_empty(),
            "Ember finds nothing in {src}"
        );
    }
    // A link without a target is fine in 3.2's schema (the target became required in 3.3).
    assert!(schema_errors(
        Spec::V3_2,
        r#"{"ignition": {"version": "3.2.0"}, "storage": {"links": [{"path": "/l"}]}}"#
    )
    .is_empty());
}
