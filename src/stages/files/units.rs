//! `systemd.units`: unit files, drop-ins, masks and presets, without a running systemd and
//! without `systemctl`.
//!
//! Ignition asks `systemctl --root` whether a unit to be disabled is enabled and, if so, has
//! it remove the unit's enablement symlinks. Ember does both natively, from the unit files
//! and symlinks in the target (see [`state`] and [`disable`], and `docs/files-stage.md`).

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::entries::go_clean;
use super::{entry_path, failure, Error};
use crate::config::model::Unit;
use crate::config::{unit as unitfile, Config, JsonPath};
use crate::stages::oplog::Op;
use crate::stages::{Failure, OpLog};
use crate::system::rootfs::{DirHandle, Root, Staged};

/// Where units and drop-ins are written.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Where presets are appended.
pub const PRESET_FILE: &str = "/etc/systemd/system-preset/20-ignition.preset";

/// The system unit search path, in systemd's order of precedence (the transient, control and
/// generator directories are left out: they only exist on a running system).
const SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Directories whose symlinks make a unit enabled (`is-enabled` looks at both; `disable`
/// without `--runtime` only changes the first).
const CONFIG_DIRS: &[&str] = &["/etc/systemd/system", "/run/systemd/system"];

/// Whether `name` can be used as a file name under /etc/systemd/system and on a preset line:
/// not empty, not `.` or `..`, no `/`, NUL, whitespace or control characters, at most 255
/// bytes.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
}

/// `(template, instance)` of an instance name such as `a@b.service` → (`a@.service`, `b`).
/// `None` for plain units and for templates themselves (`a@.service`).
pub fn split_instance(name: &str) -> Option<(String, &str)> {
    let at = name.find('@')?;
    let dot = name.rfind('.')?;
    if dot <= at + 1 {
        return None;
    }
    let instance = &name[at + 1..dot];
    Some((format!("{}{}", &name[..=at], &name[dot..]), instance))
}

/// What the units step will do, for the log.
#[derive(Debug, Default)]
pub struct Plan {
    lines: Vec<super::PlanLine>,
}

impl Plan {
    pub fn log(&self) {
        for l in &self.lines {
            log::info!("plan: {l}");
        }
    }

    /// The plan, one line per action.
    pub fn lines(self) -> Vec<super::PlanLine> {
        self.lines
    }

    fn push(&mut self, action: String, path: &JsonPath) {
        self.lines
            .push(super::PlanLine::new(action, Some(path.clone())));
    }
}

fn unit_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}")
}

fn has_contents(u: &Unit) -> bool {
    u.contents.as_deref().is_some_and(|c| !c.is_empty())
}

/// Checks unit and drop-in names and what is in the way, before anything is written.
pub fn plan(root: &Root, cfg: &Config) -> Result<Plan, Failure> {
    let mut plan = Plan::default();
    for (i, u) in cfg.systemd.units.iter().enumerate() {
        let jp = entry_path("systemd", "units", i);
        let op = format!("checking unit {:?}", u.name);
        if !safe_name(&u.name) {
            return Err(failure(
                &op,
                Some(jp.key("name")),
                Error::InvalidUnitName(u.name.clone()),
            ));
        }
        for (k, d) in u.dropins.iter().enumerate() {
            if !safe_name(&d.name) {
                return Err(failure(
                    &op,
                    Some(jp.key("dropins").index(k).key("name")),
                    Error::InvalidDropinName(d.name.clone()),
                ));
            }
            if d.contents.is_some() {
                plan.push(
                    format!("write drop-in {UNIT_DIR}/{}.d/{}", u.name, d.name),
                    &jp.key("dropins").index(k),
                );
            }
        }
        let path = unit_path(&u.name);
        let current = root
            .lstat(&path)
            .map_err(|e| failure(&op, Some(jp.clone()), Error::Fs(e)))?;
        if current.is_some_and(|c| c.is_dir()) && has_contents(u) && u.mask != Some(true) {
            return Err(failure(
                &op,
                Some(jp.clone()),
                Error::NotRegular(path.clone()),
            ));
        }
        if u.dropins.iter().any(|d| d.contents.is_some()) {
            let dir = format!("{path}.d");
            if let Some(c) = root
                .stat_follow(&dir)
                .map_err(|e| failure(&op, Some(jp.clone()), Error::Fs(e)))?
            {
                if !c.is_dir() {
                    return Err(failure(&op, Some(jp.clone()), Error::NotDirectory(dir)));
                }
            }
        }
        if has_contents(u) {
            let exists = current.is_some_and(|c| c.is_file());
            if exists {
                plan.lines.push(
                    super::PlanLine::new(format!("OVERWRITE unit {path}"), Some(jp.clone()))
                        .destructive(),
                );
            } else {
                plan.push(format!("write unit {path}"), &jp);
            }
        }
        match u.mask {
            Some(true) => plan.push(format!("mask {}", u.name), &jp),
            Some(false) => plan.push(format!("unmask {} if masked", u.name), &jp),
            None => {}
        }
        match u.enabled {
            Some(true) => plan.push(format!("preset: enable {}", u.name), &jp),
            Some(false) => plan.push(format!("preset: disable {} if it is enabled", u.name), &jp),
            None => {}
        }
    }
    Ok(plan)
}

/// Units collected for the preset file, keyed like Ignition (`<unit>-enabled`,
/// `<template>-disabled`), so that `BTreeMap` order is Ignition's `sort.Strings` order.
#[derive(Debug)]
struct Preset {
    unit: String,
    enabled: bool,
    instances: Vec<String>,
}

fn collect_presets(units: &[Unit]) -> BTreeMap<String, Preset> {
    let mut presets: BTreeMap<String, Preset> = BTreeMap::new();
    for u in units {
        let Some(enabled) = u.enabled else { continue };
        let status = if enabled { "enabled" } else { "disabled" };
        match split_instance(&u.name) {
            Some((template, instance)) => {
                let key = format!("{template}-{status}");
                let p = presets.entry(key).or_insert_with(|| Preset {
                    unit: template,
                    enabled,
                    instances: Vec::new(),
                });
                p.instances.push(instance.to_string());
            }
            None => {
                presets
                    .entry(format!("{}-{status}", u.name))
                    .or_insert_with(|| Preset {
                        unit: u.name.clone(),
                        enabled,
                        instances: Vec::new(),
                    });
            }
        }
    }
    presets
}

/// Writes drop-ins, unit files, masks, then the presets.
pub fn apply(root: &Root, cfg: &Config, _plan: &Plan, ops: &OpLog) -> Result<(), Failure> {
    let units = &cfg.systemd.units;
    if units.is_empty() {
        return Ok(());
    }
    // Drop-ins and unit files of every unit first, as one batch (one filesystem sync instead
    // of one per file), then masks in config order: a mask replaces a unit file written for
    // the same unit, as it does in Ignition's per-unit order.
    let mut batch = Batch::new(root);
    for (i, u) in units.iter().enumerate() {
        let jp = entry_path("systemd", "units", i);
        for (k, d) in u.dropins.iter().enumerate() {
            let Some(contents) = &d.contents else {
                continue;
            };
            let dir = format!("{UNIT_DIR}/{}.d", u.name);
            let desc = format!(
                "writing systemd drop-in {:?} at \"{dir}/{}\"",
                d.name, d.name
            );
            batch
                .stage(ops, desc, &dir, &d.name, contents.as_bytes())
                .map_err(|(desc, e)| failure(desc, Some(jp.key("dropins").index(k)), e))?;
        }
        if let Some(contents) = u.contents.as_deref().filter(|c| !c.is_empty()) {
            let desc = format!("writing unit {:?} at \"{}\"", u.name, unit_path(&u.name));
            batch
                .stage(ops, desc, UNIT_DIR, &u.name, contents.as_bytes())
                .map_err(|(desc, e)| failure(desc, Some(jp.clone()), e))?;
        }
    }
    batch
        .commit()
        .map_err(|(desc, e)| failure(desc, Some(JsonPath::root().key("systemd")), e))?;
    for (i, u) in units.iter().enumerate() {
        let jp = entry_path("systemd", "units", i);
        match u.mask {
            Some(true) => {
                let desc = format!("masking unit {:?}", u.name);
                ops.run(&desc, || mask(root, &u.name))
                    .map_err(|e| failure(&desc, Some(jp.key("mask")), e))?;
            }
            Some(false) => {
                let desc = format!("unmasking unit {:?}", u.name);
                ops.run(&desc, || unmask(root, &u.name))
                    .map_err(|e| failure(&desc, Some(jp.key("mask")), e))?;
            }
            None => {}
        }
    }

    let presets = collect_presets(units);
    if presets.is_empty() {
        return Ok(());
    }
    let jp = JsonPath::root().key("systemd").key("units");
    let mut lines = Vec::new();
    for p in presets.values() {
        if p.enabled {
            let mut line = format!("enable {}", p.unit);
            for i in &p.instances {
                line.push(' ');
                line.push_str(i);
            }
            lines.push(line);
            continue;
        }
        // Disabled: each named unit (each instance of a template) only if it is enabled now.
        let names: Vec<String> = if p.instances.is_empty() {
            vec![p.unit.clone()]
        } else {
            p.instances
                .iter()
                .map(|i| instance_name(&p.unit, i))
                .collect()
        };
        for name in names {
            let desc = format!("removing enablement symlink(s) for {name:?}");
            let st = state(root, &name);
            if !st.counts_as_enabled() {
                log::info!("unit {name:?} is {}: not disabling it", st.word());
                continue;
            }
            ops.run(&desc, || disable(root, &name).map(|_| ()))
                .map_err(|e| failure(&desc, Some(jp.clone()), e))?;
            lines.push(format!("disable {name}"));
        }
    }
    let desc = format!("writing systemd presets to \"{PRESET_FILE}\"");
    ops.run(&desc, || append_lines(root, PRESET_FILE, &lines, 0o644))
        .map_err(|e| failure(&desc, Some(jp), e))?;
    Ok(())
}

/// Small files written atomically as a group: each is staged under a temporary name, then
/// one filesystem sync, then every rename. Nothing of the group appears unless all of it
/// could be written.
struct Batch<'r, 'o> {
    root: &'r Root,
    items: Vec<(DirHandle, Staged, Op<'o>, String)>,
}

impl<'r, 'o> Batch<'r, 'o> {
    fn new(root: &'r Root) -> Self {
        Batch {
            root,
            items: Vec::new(),
        }
    }

    /// Stages `contents` as `dir/name` (0644 root:root, `dir` created if missing).
    fn stage(
        &mut self,
        ops: &'o OpLog,
        desc: String,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), (String, Error)> {
        let op = ops.start(&desc);
        let r = (|| -> Result<(DirHandle, Staged), Error> {
            self.root.mkdir_all(dir)?;
            let d = self.root.open_dir(dir)?;
            let staged = self
                .root
                .stage_file_in(&d, OsStr::new(name), 0o644, 0, 0, |f| {
                    f.write_all(contents)?;
                    Ok(contents.len() as u64)
                })?;
            Ok((d, staged))
        })();
        match r {
            Ok((d, staged)) => {
                self.items.push((d, staged, op, desc));
                Ok(())
            }
            Err(e) => {
                op.fail(&e);
                self.discard();
                Err((desc, e))
            }
        }
    }

    fn discard(&mut self) {
        for (d, s, op, _) in self.items.drain(..) {
            self.root.discard_staged(&d, s);
            op.fail(&"not written: another file failed");
        }
    }

    /// Syncs and renames everything staged.
    fn commit(mut self) -> Result<(), (String, Error)> {
        let mut devs = Vec::new();
        for (d, ..) in &self.items {
            let r = self.root.dir_dev(d).and_then(|dev| {
                if devs.contains(&dev) {
                    return Ok(());
                }
                devs.push(dev);
                self.root.syncfs(d)
            });
            if let Err(e) = r {
                self.discard();
                return Err(("syncing systemd units to disk".into(), Error::Fs(e)));
            }
        }
        let mut items = std::mem::take(&mut self.items).into_iter();
        while let Some((d, s, op, desc)) = items.next() {
            if let Err(e) = self.root.commit_staged(&d, s, false) {
                op.fail(&e);
                self.items.extend(items);
                self.discard();
                return Err((desc, Error::Fs(e)));
            }
            op.finish();
        }
        Ok(())
    }
}

fn instance_name(template: &str, instance: &str) -> String {
    match template.find('@') {
        Some(at) => format!("{}{instance}{}", &template[..=at], &template[at + 1..]),
        None => template.to_string(),
    }
}

/// Appends the lines that the file does not hold yet (presets and crypttab lines are only
/// useful once), creating the file with `mode` when missing. Refuses a non-regular file.
pub(super) fn append_lines(
    root: &Root,
    path: &str,
    lines: &[String],
    mode: u32,
) -> Result<(), Error> {
    let existing = match root.lstat(path)? {
        None => String::new(),
        Some(st) if st.is_file() => String::from_utf8_lossy(&root.read_file(path)?).into_owned(),
        Some(_) => return Err(Error::NotRegular(path.to_string())),
    };
    let have: HashSet<&str> = existing.lines().collect();
    let mut add = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        add.push('\n');
    }
    let mut added = HashSet::new();
    for l in lines {
        if have.contains(l.as_str()) || !added.insert(l.as_str()) {
            log::debug!("{path} already has the line for this entry");
            continue;
        }
        add.push_str(l);
        add.push('\n');
    }
    if add.is_empty() || add == "\n" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent() {
        root.mkdir_all(parent)?;
    }
    let created = root.append(path, add.as_bytes())?;
    if created {
        root.chmod(path, mode)?;
    }
    Ok(())
}

fn mask(root: &Root, name: &str) -> Result<(), Error> {
    let path = unit_path(name);
    root.mkdir_all(UNIT_DIR)?;
    match root.lstat(&path)? {
        Some(st) if st.is_dir() => {
            root.remove_all(&path)?;
            root.symlink("/dev/null", &path)?;
        }
        Some(_) => root.symlink_replace("/dev/null", &path)?,
        None => root.symlink("/dev/null", &path)?,
    }
    Ok(())
}

fn unmask(root: &Root, name: &str) -> Result<(), Error> {
    let path = unit_path(name);
    if let Some(st) = root.lstat(&path)? {
        if st.is_symlink() && root.read_link(&path)? == Path::new("/dev/null") {
            root.unlink(&path)?;
        }
    }
    Ok(())
}

/// A unit's enablement, as `systemctl is-enabled` names it (the states Ember can tell apart
/// without a running systemd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Enabled,
    Alias,
    Static,
    Indirect,
    Disabled,
    Linked,
    Masked,
    Bad,
    NotFound,
}

impl State {
    /// Whether `systemctl is-enabled` exits 0 for this state.
    pub fn counts_as_enabled(self) -> bool {
        matches!(
            self,
            State::Enabled | State::Alias | State::Static | State::Indirect
        )
    }

    pub fn word(self) -> &'static str {
        match self {
            State::Enabled => "enabled",
            State::Alias => "alias",
            State::Static => "static",
            State::Indirect => "indirect",
            State::Disabled => "disabled",
            State::Linked => "linked",
            State::Masked => "masked",
            State::Bad => "bad",
            State::NotFound => "not-found",
        }
    }
}

/// The `[Install]` settings that matter for enablement.
#[derive(Debug, Default, Clone)]
struct Install {
    targets: usize,
    alias: Vec<String>,
    also: Vec<String>,
}

/// The unit file for `name` (or its template) first in the search path: in-root path, and
/// whether it was found under the instance's own name.
fn find_unit(root: &Root, name: &str) -> Option<PathBuf> {
    let mut candidates = vec![name.to_string()];
    if let Some((template, _)) = split_instance(name) {
        candidates.push(template);
    }
    for n in &candidates {
        for d in SEARCH_PATH {
            let p = PathBuf::from(d).join(n);
            if let Ok(Some(_)) = root.lstat(&p) {
                return Some(p);
            }
        }
    }
    None
}

fn read_install(root: &Root, path: &Path) -> Option<Install> {
    let bytes = root.read_file_follow(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let opts = unitfile::deserialize_options(&text).ok()?;
    let mut ins = Install::default();
    for o in opts.iter().filter(|o| o.section == "Install") {
        let words = || o.value.split_whitespace().map(str::to_string);
        match o.name.as_str() {
            "WantedBy" | "RequiredBy" | "UpheldBy" => ins.targets += words().count(),
            "Alias" => ins.alias.extend(words()),
            "Also" => ins.also.extend(words()),
            _ => {}
        }
    }
    Some(ins)
}

fn base_name(p: &Path) -> Option<&OsStr> {
    p.file_name()
}

/// Whether a symlink in a config directory enables `name`: in a `.wants`, `.requires` or
/// `.upholds` directory named after it or pointing to a file of that name, or at the top
/// level as an alias (another name pointing to it).
fn enablement_links(root: &Root, name: &str) -> bool {
    for dir in CONFIG_DIRS {
        let Ok(entries) = root.read_dir(dir) else {
            continue;
        };
        for (n, st) in &entries {
            let n = n.to_string_lossy();
            if st.is_symlink() && n != name {
                let p = Path::new(dir).join(n.as_ref());
                if let Ok(t) = root.read_link(&p) {
                    if base_name(&t).is_some_and(|b| b == name) {
                        return true;
                    }
                }
                continue;
            }
            if !st.is_dir()
                || !(n.ends_with(".wants") || n.ends_with(".requires") || n.ends_with(".upholds"))
            {
                continue;
            }
            let sub = Path::new(dir).join(n.as_ref());
            let Ok(links) = root.read_dir(&sub) else {
                continue;
            };
            for (ln, lst) in links {
                if !lst.is_symlink() {
                    continue;
                }
                if ln == name {
                    return true;
                }
                if let Ok(t) = root.read_link(sub.join(&ln)) {
                    if base_name(&t).is_some_and(|b| b == name) && split_instance(name).is_none() {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Determines a unit's enablement from the target's unit files and symlinks.
pub fn state(root: &Root, name: &str) -> State {
    let Some(found) = find_unit(root, name) else {
        return if enablement_links(root, name) {
            State::Enabled
        } else {
            State::NotFound
        };
    };
    let in_config = CONFIG_DIRS.iter().any(|d| found.starts_with(d));
    let st = root.lstat(&found).ok().flatten();
    if in_config {
        if let Some(st) = st {
            let to_null = st.is_symlink()
                && root
                    .read_link(&found)
                    .is_ok_and(|t| t == Path::new("/dev/null"));
            if to_null || (st.is_file() && st.size == 0) {
                return State::Masked;
            }
        }
    }
    if enablement_links(root, name) {
        return State::Enabled;
    }
    let found_name = found.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Some(st) = st {
        if st.is_symlink() {
            if let Ok(t) = root.read_link(&found) {
                let target_name = base_name(&t).map(|b| b.to_string_lossy().into_owned());
                if target_name != found_name {
                    return State::Alias;
                }
                if in_config {
                    // `systemctl link`: the file lives outside the search path.
                    return State::Linked;
                }
            }
        }
    }
    let Some(install) = read_install(root, &found) else {
        return State::Bad;
    };
    if install.targets == 0 && install.alias.is_empty() {
        if install.also.is_empty() {
            State::Static
        } else {
            State::Indirect
        }
    } else {
        State::Disabled
    }
}

/// Removes the symlinks in /etc/systemd/system (recursively, not following links) that enable
/// `name` or the units of its `Also=`, as `systemctl --root R disable` does: symlinks named
/// after one of them, or pointing to a file of that name or to one of their unit files. Masks
/// (links to /dev/null) are kept. Returns the removed paths.
pub fn disable(root: &Root, name: &str) -> Result<Vec<PathBuf>, Error> {
    let mut names: HashSet<String> = HashSet::new();
    let mut files: HashSet<String> = HashSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if !names.insert(n.clone()) {
            continue;
        }
        if let Some(f) = find_unit(root, &n) {
            if f.file_name().is_some_and(|b| b == n.as_str()) {
                files.insert(f.display().to_string());
            }
            if let Some(ins) = read_install(root, &f) {
                todo.extend(ins.also.into_iter().filter(|a| safe_name(a)));
            }
        }
    }
    let mut removed = Vec::new();
    remove_links(root, Path::new(UNIT_DIR), &names, &files, 0, &mut removed)?;
    for p in &removed {
        log::info!("removed enablement symlink {}", p.display());
    }
    Ok(removed)
}

fn remove_links(
    root: &Root,
    dir: &Path,
    names: &HashSet<String>,
    files: &HashSet<String>,
    depth: usize,
    removed: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let entries = match root.read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for (n, st) in entries {
        let p = dir.join(&n);
        if st.is_dir() {
            if depth < 3 {
                remove_links(root, &p, names, files, depth + 1, removed)?;
            }
            continue;
        }
        if !st.is_symlink() {
            continue;
        }
        let t = root.read_link(&p)?;
        let ts = t.to_string_lossy();
        if ts == "/dev/null" {
            continue;
        }
        let own = names.contains(n.to_string_lossy().as_ref());
        let to_name = base_name(&t).is_some_and(|b| names.contains(b.to_string_lossy().as_ref()));
        let to_file = t.is_absolute() && files.contains(&go_clean(&ts));
        if own || to_name || to_file {
            root.unlink(&p)?;
            removed.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(safe_name("foo.service"));
        assert!(safe_name("a@b\\x2d.service"));
        for bad in [
            "",
            ".",
            "..",
            "a/b.service",
            "a b.service",
            "a\nb.service",
            "a\0.service",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(!safe_name(&"a".repeat(256)));
    }

    #[test]
    fn instances() {
        assert_eq!(
            split_instance("a@b.service"),
            Some(("a@.service".to_string(), "b"))
        );
        assert_eq!(split_instance("a@.service"), None);
        assert_eq!(split_instance("plain.service"), None);
        assert_eq!(instance_name("a@.service", "x"), "a@x.service");
    }

    #[test]
    fn presets_grouped_and_sorted_like_ignition() {
        let unit = |n: &str, e: bool| Unit {
            name: n.into(),
            enabled: Some(e),
            ..Unit::default()
        };
        let p = collect_presets(&[
            unit("z.service", true),
            unit("a@2.service", true),
            unit("a@1.service", true),
            unit("a@3.service", false),
            unit("m.service", false),
        ]);
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "a@.service-disabled",
                "a@.service-enabled",
                "m.service-disabled",
                "z.service-enabled"
            ]
        );
        assert_eq!(p["a@.service-enabled"].instances, ["2", "1"]);
    }
}
