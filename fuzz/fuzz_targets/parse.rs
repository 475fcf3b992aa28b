//! Arbitrary bytes through the config pipeline: parse, marshal and re-parse, runtime
//! validation, merges.
#![no_main]

use ember::config::model::{Config, DynStruct, FieldRef, HttpHeader};
use ember::config::{self, marshal, merge, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = config::parse(data);
    // A config comes back exactly when there is no error, and an error-free config has no
    // Ignition error in its report.
    assert_eq!(parsed.config.is_some(), parsed.error.is_none());
    if parsed.error.is_none() {
        assert!(!parsed.report.ignition_has_errors());
    }
    let Some(cfg) = parsed.config else { return };

    // What Ember writes to its cache, it reads back as the same config, unless the config
    // breaks a rule of the latest spec that its own spec did not have (Ignition's runtime
    // check after translation fails then too, and so must the re-parse).
    let runtime = config::validate_runtime(&cfg);
    let text = marshal::to_json(&cfg);
    let again = config::parse(text.as_bytes());
    if runtime.has_errors() {
        assert!(
            again.error.is_some(),
            "runtime rules fail but the marshalled config parses: {:?}\n{text}",
            runtime.entries
        );
    } else {
        assert!(
            again.error.is_none(),
            "the marshalled config does not parse: {:?}\n{text}",
            again.report.entries
        );
        let cfg2 = again.config.expect("no error, so a config");
        assert_eq!(cfg2, cfg, "round trip through {text}");
        assert_eq!(marshal::to_json(&cfg2), text, "marshalling is not stable");
    }

    // An empty config is the identity of merging, on either side: the child's zero structs
    // keep the parent's, a zero parent struct takes the child's, and the only plain value
    // at the top (ignition.version) is the same in both.
    let empty = Config::empty();
    assert_eq!(merge::merge(&cfg, &empty), cfg, "merge(c, empty) != c");
    assert_eq!(merge::merge(&empty, &cfg), cfg, "merge(empty, c) != c");

    // Merging a config with itself keeps every keyed list's keys, in order, doubles the
    // append lists, and changes no value.
    let twice = merge::merge(&cfg, &cfg);
    check_self_merge(&cfg, &twice, "$");
    let _ = config::validate_runtime(&twice);
    let _ = validate::whole_config_checks(&twice);
});

fn check_self_merge(orig: &dyn DynStruct, merged: &dyn DynStruct, at: &str) {
    let desc = orig.desc();
    for (i, f) in desc.fields.iter().enumerate() {
        let here = format!("{at}.{}", f.json);
        match (orig.field(i), merged.field(i)) {
            (FieldRef::Str(a), FieldRef::Str(b)) => assert_eq!(a, b, "{here}"),
            (FieldRef::OptStr(a), FieldRef::OptStr(b)) => assert_eq!(a, b, "{here}"),
            (FieldRef::Int(a), FieldRef::Int(b)) => assert_eq!(a, b, "{here}"),
            (FieldRef::OptInt(a), FieldRef::OptInt(b)) => assert_eq!(a, b, "{here}"),
            (FieldRef::OptBool(a), FieldRef::OptBool(b)) => assert_eq!(a, b, "{here}"),
            (FieldRef::Struct(a), FieldRef::Struct(b)) => check_self_merge(a, b, &here),
            (FieldRef::StrList(a), FieldRef::StrList(b)) => {
                if f.append_list {
                    let doubled: Vec<&String> = a.iter().chain(a.iter()).collect();
                    assert_eq!(doubled, b.iter().collect::<Vec<_>>(), "{here}");
                } else {
                    assert_eq!(a, b, "{here}");
                }
            }
            (FieldRef::List(a), FieldRef::List(b)) => {
                if f.append_list {
                    assert_eq!(b.len(), 2 * a.len(), "{here}");
                    for j in 0..b.len() {
                        let want = format!("{:?}", a.get(j % a.len()));
                        assert_eq!(want, format!("{:?}", b.get(j)), "{here}.{j}");
                    }
                } else {
                    let keys = |l: &dyn ember::config::model::DynList| -> Vec<String> {
                        (0..l.len())
                            .map(|j| l.get(j).key().unwrap_or_default())
                            .collect()
                    };
                    let (ka, kb) = (keys(a), keys(b));
                    if a.elem_desc().go_name == "HTTPHeader" {
                        // A child header without a value deletes the parent's header of that
                        // name: every name whose first header has no value goes.
                        let kept: Vec<String> = (0..a.len())
                            .filter(|&j| {
                                let first = ka.iter().position(|k| *k == ka[j]).unwrap_or(j);
                                let h = a.get(first).as_any().downcast_ref::<HttpHeader>();
                                h.is_some_and(|h| h.value.is_some())
                            })
                            .map(|j| ka[j].clone())
                            .collect();
                        assert_eq!(kept, kb, "{here}: header names");
                        continue;
                    }
                    assert_eq!(ka, kb, "{here}: keys");
                    // An item whose key is unique in its list is merged with itself alone;
                    // with duplicate keys every item merges with the first of them.
                    for j in 0..a.len() {
                        if ka.iter().filter(|k| **k == ka[j]).count() == 1 {
                            check_self_merge(a.get(j), b.get(j), &format!("{here}.{j}"));
                        }
                    }
                }
            }
            _ => panic!("{here}: field kinds differ"),
        }
    }
}
