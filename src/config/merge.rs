//! Merging a child config into a parent, with Ignition's rules.
//!
//! Field by field, for configs already translated to the internal model:
//! * plain values (`version`, `path`, `name`, `number`, ...) take the child's value, even empty;
//! * optional values take the child's value only when the child sets it;
//! * structs: a zero child keeps the parent's, a zero parent takes the child's, otherwise merge;
//! * append lists (`files[].append`, mkfs/mount/mdadm/luks options) are the parent's items then
//!   the child's;
//! * keyed lists: parent items keep their position and are merged with the child item of the same
//!   key; a parent item whose key the child uses in a *sibling* list of the same family is
//!   dropped (files, directories and links share paths; `shouldExist` and `shouldNotExist` share
//!   kernel arguments), so a child directory can replace a parent file; child items with new keys
//!   are appended;
//! * an HTTP header in the child with the parent's name and no value removes the header.
//!
//! Merging is a pure function; fetching referenced configs is the runner's job.

use std::collections::{HashMap, HashSet};

use super::model::{Config, DynList, DynStruct, FieldMut, FieldRef, HttpHeader};

/// `child` merged into `parent`.
pub fn merge(parent: &Config, child: &Config) -> Config {
    let mut result = parent.clone();
    merge_into(&mut result, child);
    result
}

/// Lists that share one key space, by struct: (family name, member lists).
fn family(go_name: &str, json: &str) -> Option<&'static str> {
    match (go_name, json) {
        ("Storage", "files" | "directories" | "links") => Some("node"),
        ("KernelArguments", "shouldExist" | "shouldNotExist") => Some("karg"),
        _ => None,
    }
}

fn list_keys(r: FieldRef<'_>) -> Vec<String> {
    match r {
        FieldRef::List(l) => (0..l.len())
            .map(|i| l.get(i).key().unwrap_or_default())
            .collect(),
        FieldRef::StrList(v) => v.to_vec(),
        _ => Vec::new(),
    }
}

/// Merges `child` into `result`, which starts as a copy of the parent.
fn merge_into(result: &mut dyn DynStruct, child: &dyn DynStruct) {
    let desc = result.desc();
    // For each family, which list of the child holds each key.
    let mut child_family: HashMap<&'static str, HashMap<String, &'static str>> = HashMap::new();
    for (i, f) in desc.fields.iter().enumerate() {
        if let Some(fam) = family(desc.go_name, f.json) {
            let m = child_family.entry(fam).or_default();
            for k in list_keys(child.field(i)) {
                m.insert(k, f.json);
            }
        }
    }

    for (i, f) in desc.fields.iter().enumerate() {
        let other_list = |key: &str| -> bool {
            family(desc.go_name, f.json)
                .and_then(|fam| child_family.get(fam))
                .and_then(|m| m.get(key))
                .is_some_and(|list| *list != f.json)
        };
        match (result.field_mut(i), child.field(i)) {
            (FieldMut::Str(r), FieldRef::Str(c)) => *r = c.clone(),
            (FieldMut::Int(r), FieldRef::Int(c)) => *r = c,
            (FieldMut::OptStr(r), FieldRef::OptStr(c)) if c.is_some() => *r = c.clone(),
            (FieldMut::OptInt(r), FieldRef::OptInt(c)) if c.is_some() => *r = c,
            (FieldMut::OptBool(r), FieldRef::OptBool(c)) if c.is_some() => *r = c,
            (FieldMut::Struct(r), FieldRef::Struct(c)) => {
                if c.is_zero() {
                    // keep the parent's
                } else if r.is_zero() {
                    r.assign(c);
                } else {
                    merge_into(r, c);
                }
            }
            (FieldMut::StrList(r), FieldRef::StrList(c)) => {
                if f.append_list {
                    r.extend(c.iter().cloned());
                } else {
                    let child_set: HashSet<&String> = c.iter().collect();
                    let parent_set: HashSet<String> = r.iter().cloned().collect();
                    let mut out: Vec<String> = Vec::with_capacity(r.len() + c.len());
                    for item in r.iter() {
                        if child_set.contains(item) {
                            out.push(item.clone());
                        } else if other_list(item) {
                            continue;
                        } else {
                            out.push(item.clone());
                        }
                    }
                    for item in c {
                        if !parent_set.contains(item) {
                            out.push(item.clone());
                        }
                    }
                    *r = out;
                }
            }
            (FieldMut::List(r), FieldRef::List(c)) => merge_list(r, c, f.append_list, &other_list),
            _ => {}
        }
    }
}

fn merge_list(
    result: &mut dyn DynList,
    child: &dyn DynList,
    append: bool,
    other_list: &dyn Fn(&str) -> bool,
) {
    let mut items: Vec<Box<dyn DynStruct>> = Vec::with_capacity(result.len() + child.len());
    if append {
        for i in 0..result.len() {
            items.push(result.get(i).clone_box());
        }
        for i in 0..child.len() {
            items.push(child.get(i).clone_box());
        }
        result.set_items(items);
        return;
    }
    let mut child_index: HashMap<String, usize> = HashMap::new();
    for i in 0..child.len() {
        child_index
            .entry(child.get(i).key().unwrap_or_default())
            .or_insert(i);
    }
    let mut parent_keys: HashSet<String> = HashSet::new();
    for i in 0..result.len() {
        let p = result.get(i);
        let key = p.key().unwrap_or_default();
        parent_keys.insert(key.clone());
        if let Some(&ci) = child_index.get(&key) {
            let c = child.get(ci);
            if let Some(h) = c.as_any().downcast_ref::<HttpHeader>() {
                if h.value.is_none() {
                    // A child header without a value deletes the parent's header.
                    continue;
                }
            }
            let mut merged = p.clone_box();
            merge_into(merged.as_mut(), c);
            items.push(merged);
        } else if other_list(&key) {
            continue;
        } else {
            items.push(p.clone_box());
        }
    }
    for i in 0..child.len() {
        let c = child.get(i);
        let key = c.key().unwrap_or_default();
        if parent_keys.contains(&key) {
            continue;
        }
        if let Some(h) = c.as_any().downcast_ref::<HttpHeader>() {
            if h.value.is_none() {
                continue;
            }
        }
        items.push(c.clone_box());
    }
    result.set_items(items);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn cfg(s: &str) -> Config {
        let p = parse(s.as_bytes());
        assert!(p.error.is_none(), "{:?}", p.report);
        p.config.unwrap()
    }

    #[test]
    fn child_overrides_and_appends() {
        let parent = cfg(r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[
            {"path":"/a","mode":420,"contents":{"source":"data:,a"},"append":[{"source":"data:,1"}]},
            {"path":"/b","mode":384}]},
            "passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k1"]}]}}"#);
        let child = cfg(r#"{"ignition":{"version":"3.1.0"},"storage":{"files":[
            {"path":"/a","contents":{"source":"data:,A"},"append":[{"source":"data:,2"}]},
            {"path":"/c"}]},
            "passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k2","k1"]}]}}"#);
        let m = merge(&parent, &child);
        let files: Vec<&str> = m.storage.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["/a", "/b", "/c"]);
        let a = &m.storage.files[0];
        assert_eq!(a.mode, Some(420), "unset pointer keeps the parent's");
        assert_eq!(a.contents.source.as_deref(), Some("data:,A"));
        let app: Vec<_> = a.append.iter().map(|r| r.source.clone().unwrap()).collect();
        assert_eq!(app, ["data:,1", "data:,2"]);
        assert_eq!(m.passwd.users[0].ssh_authorized_keys, ["k1", "k2"]);
    }

    #[test]
    fn child_directory_replaces_parent_file() {
        let parent = cfg(
            r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/x"},{"path":"/y"}]},
            "kernelArguments":{"shouldExist":["quiet","a=1"]}}"#,
        );
        let child = cfg(
            r#"{"ignition":{"version":"3.3.0"},"storage":{"directories":[{"path":"/x"}]},
            "kernelArguments":{"shouldNotExist":["quiet"]}}"#,
        );
        let m = merge(&parent, &child);
        assert_eq!(m.storage.files.len(), 1);
        assert_eq!(m.storage.files[0].path, "/y");
        assert_eq!(m.storage.directories[0].path, "/x");
        assert_eq!(m.kernel_arguments.should_exist, ["a=1"]);
        assert_eq!(m.kernel_arguments.should_not_exist, ["quiet"]);
    }

    #[test]
    fn header_without_value_deletes() {
        let parent = cfg(
            r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/x","contents":{"source":"http://h/x",
            "httpHeaders":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}}]}}"#,
        );
        let child = cfg(
            r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/x","contents":{"source":"http://h/x",
            "httpHeaders":[{"name":"A"},{"name":"C","value":"3"}]}}]}}"#,
        );
        let m = merge(&parent, &child);
        let names: Vec<_> = m.storage.files[0]
            .contents
            .http_headers
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["B", "C"]);
        assert_eq!(
            m.storage.files[0].contents.source.as_deref(),
            Some("http://h/x")
        );
    }
}
