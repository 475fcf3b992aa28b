//! `storage.directories`, `storage.files` and `storage.links`, with Ignition's semantics.
//!
//! Planning resolves every path inside the root (symlinks in the tree followed, re-rooted),
//! refuses two entries that land on the same real path, orders entries by depth (hard links
//! last), and checks each entry against the tree and against the other entries: what exists
//! where `overwrite` is false, entries placed below a file, hard-link targets, owner names, and
//! data URLs that carry a hash or are compressed. Only then is anything written.
//!
//! Files are written into a temporary file in the destination directory that already has its
//! final owner and mode, fsynced and renamed over the destination; a failed download, a hash
//! mismatch or a bad gzip stream leaves nothing behind. Appends to an existing file are
//! fetched (and verified) into an unnamed temporary file first and only then appended.

use std::collections::HashMap;
use std::io::{self, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::owners::{self, Owners, Spec};
use super::users;
use super::{entry_path, failure, Error};
use crate::config::dataurl;
use crate::config::model::{is_remote_source, Directory, File, Link, Resource};
use crate::config::{Config, JsonPath};
use crate::fetch::{self, Fetcher};
use crate::stages::oplog::Op;
use crate::stages::{clean_abs, fetch_resource, Failure, OpLog};
use crate::system::rootfs::{self, DirHandle, FileKind, FileStat, Root, Staged};

/// One config entry.
#[derive(Debug, Clone, Copy)]
enum Kind<'c> {
    Dir(&'c Directory),
    File(&'c File),
    Link(&'c Link),
}

impl Kind<'_> {
    fn list(&self) -> &'static str {
        match self {
            Kind::Dir(_) => "directories",
            Kind::File(_) => "files",
            Kind::Link(_) => "links",
        }
    }
    fn config_path(&self) -> &str {
        match self {
            Kind::Dir(d) => &d.path,
            Kind::File(f) => &f.path,
            Kind::Link(l) => &l.path,
        }
    }
    fn overwrite(&self) -> bool {
        match self {
            Kind::Dir(d) => d.overwrite == Some(true),
            Kind::File(f) => f.overwrite == Some(true),
            Kind::Link(l) => l.overwrite == Some(true),
        }
    }
    fn is_hard_link(&self) -> bool {
        matches!(self, Kind::Link(l) if l.hard == Some(true))
    }
    fn noun(&self) -> &'static str {
        match self {
            Kind::Dir(_) => "directory",
            Kind::File(_) => "file",
            Kind::Link(l) if l.hard == Some(true) => "hard link",
            Kind::Link(_) => "symlink",
        }
    }
}

/// An entry with its resolved path, what planning found, and (once known) its owner ids.
#[derive(Debug)]
struct Entry<'c> {
    kind: Kind<'c>,
    index: usize,
    /// The real in-root path (directories resolved, last component literal).
    path: PathBuf,
    /// Components of `path`.
    depth: usize,
    user: Spec<'c>,
    group: Spec<'c>,
    uid: Option<u32>,
    gid: Option<u32>,
    /// What will be done, for the plan log.
    action: &'static str,
}

/// Where a file's contents come from, as a plan shows it (never the contents).
fn contents_of(r: &Resource) -> String {
    match r.source_str() {
        None => "empty".into(),
        Some(_) if !r.is_remote() => "inline data".into(),
        Some(s) => crate::providers::cmdline::redact_url(s),
    }
}

impl Entry<'_> {
    fn plan_line(&self) -> super::PlanLine {
        let p = self.path.display();
        let noun = self.kind.noun();
        let mut what = match (self.action, self.kind) {
            ("replace", Kind::Dir(_)) => format!(
                "REPLACE {p} with a directory: DELETES what is there now, with everything below it"
            ),
            ("replace", _) => format!("OVERWRITE {noun} {p}"),
            ("update", _) => format!("keep {noun} {p}"),
            ("append to", _) => format!("append to file {p}"),
            (a, _) => format!("{a} {noun} {p}"),
        };
        match self.kind {
            Kind::File(f) => {
                if self.action != "update" && self.action != "append to" {
                    what.push_str(&format!(", contents: {}", contents_of(&f.contents)));
                }
                if !f.append.is_empty() {
                    let srcs: Vec<String> = f.append.iter().map(contents_of).collect();
                    what.push_str(&format!(", appending: {}", srcs.join(", ")));
                }
                if let Some(m) = f.mode {
                    what.push_str(&format!(", mode {m:04o}"));
                }
            }
            Kind::Dir(d) => {
                if let Some(m) = d.mode {
                    what.push_str(&format!(", mode {m:04o}"));
                }
            }
            Kind::Link(l) => {
                what.push_str(&format!(" -> {:?}", l.target.as_deref().unwrap_or("")));
            }
        }
        let line = super::PlanLine::new(what, Some(self.json_path()));
        if self.action == "replace" {
            line.destructive()
        } else {
            line
        }
    }

    fn json_path(&self) -> JsonPath {
        entry_path("storage", self.kind.list(), self.index)
    }

    fn describe(&self) -> String {
        let p = self.path.display();
        match self.kind {
            Kind::Dir(_) => format!("creating directory \"{p}\""),
            Kind::File(_) => format!("writing file \"{p}\""),
            Kind::Link(l) => format!(
                "writing {} \"{p}\" -> {:?}",
                self.kind.noun(),
                l.target.as_deref().unwrap_or("")
            ),
        }
    }
}

/// The ordered entries.
#[derive(Debug, Default)]
pub struct Plan<'c> {
    entries: Vec<Entry<'c>>,
    /// Remote contents fetched and verified before anything is written, by the address of
    /// their resource in the config (see [`Plan::prefetch`]).
    prefetched: Prefetched,
}

/// Fetched contents by the address of their [`Resource`] in the config.
type Prefetched = HashMap<usize, Vec<u8>>;

fn key(r: &Resource) -> usize {
    r as *const Resource as usize
}

/// A remote source up to this size is fetched and verified before the first write.
pub const PREFETCH_ITEM_MAX: u64 = 4 << 20;
/// All of them together at most this much.
pub const PREFETCH_TOTAL_MAX: u64 = 32 << 20;

impl Plan<'_> {
    /// Fetches the remote sources (contents and appends) of the planned files that are at most
    /// [`PREFETCH_ITEM_MAX`] bytes, up to [`PREFETCH_TOTAL_MAX`] in all, and verifies their
    /// hashes, so that a missing or wrong remote file stops the stage before its first write.
    /// What is larger is fetched while writing, as before.
    pub fn prefetch(&mut self, fetcher: &Fetcher) -> Result<(), Failure> {
        let mut items = Vec::new();
        for e in &self.entries {
            let Kind::File(f) = e.kind else { continue };
            let jp = e.json_path();
            let sources = std::iter::once((&f.contents, resource_path(&jp, "contents", None)))
                .chain(
                    f.append
                        .iter()
                        .enumerate()
                        .map(|(k, a)| (a, resource_path(&jp, "append", Some(k)))),
                );
            for (r, at) in sources {
                let Some(res) = fetch_resource(r) else {
                    continue;
                };
                if !r.is_remote() {
                    continue;
                }
                items.push((key(r), res, at, e.describe()));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        let left = std::sync::atomic::AtomicU64::new(PREFETCH_TOTAL_MAX);
        let results = fetcher.fetch_many(items, |f, (k, res, at, desc)| {
            let max = PREFETCH_ITEM_MAX.min(left.load(Ordering::Relaxed));
            let r = match f.fetch_limited(&res, max) {
                Ok(data) => {
                    let n = data.len() as u64;
                    let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                        Some(l.saturating_sub(n))
                    });
                    Ok(Some((k, data)))
                }
                // Too large to keep: fetched while writing.
                Err(fetch::Error::TooLarge { .. }) => Ok(None),
                Err(e) => Err(e),
            };
            r.map_err(|x| failure(desc, Some(at), Error::Fetch(x)))
        });
        for r in results {
            if let Some((k, data)) = r? {
                self.prefetched.insert(k, data);
            }
        }
        log::debug!(
            "{} remote sources fetched before writing",
            self.prefetched.len()
        );
        Ok(())
    }

    /// The plan, one line per entry, in the order the entries are written.
    pub fn lines(&self) -> Vec<super::PlanLine> {
        self.entries.iter().map(Entry::plan_line).collect()
    }

    pub fn log(&self) {
        for e in &self.entries {
            log::info!(
                "plan: {} {} {} ({})",
                e.action,
                e.kind.noun(),
                e.path.display(),
                e.json_path()
            );
        }
    }
}

/// Go's `filepath.Clean`, for comparing symlink targets.
pub(super) fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Resolves config paths to real in-root paths, caching each parent directory.
pub(super) struct Resolver<'r> {
    root: &'r Root,
    dirs: HashMap<PathBuf, PathBuf>,
}

impl<'r> Resolver<'r> {
    pub(super) fn new(root: &'r Root) -> Self {
        Resolver {
            root,
            dirs: HashMap::new(),
        }
    }

    /// The real path `p` names: every directory component resolved inside the root, the
    /// last one kept. `None` for the root itself.
    pub(super) fn resolve(&mut self, p: &str) -> Result<Option<PathBuf>, rootfs::Error> {
        let clean = clean_abs(p);
        let (Some(parent), Some(name)) = (clean.parent(), clean.file_name()) else {
            return Ok(None);
        };
        if parent == Path::new("/") {
            return Ok(Some(clean));
        }
        if let Some(r) = self.dirs.get(parent) {
            return Ok(Some(r.join(name)));
        }
        // Every component of the parent is resolved, the last one included.
        let out = self.root.resolve(&clean)?;
        let real_parent = out.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.dirs.insert(parent.to_path_buf(), real_parent);
        Ok(Some(out))
    }
}

fn resource_path(base: &JsonPath, field: &'static str, index: Option<usize>) -> JsonPath {
    let p = base.key(field);
    match index {
        Some(i) => p.index(i),
        None => p,
    }
}

/// Checks a data URL that carries a hash or is compressed by decoding it completely, so that a
/// mismatch is found before anything is written. Remote sources are checked when fetched.
fn precheck(fetcher: &Fetcher, r: &Resource) -> Result<(), fetch::Error> {
    let Some(res) = fetch_resource(r) else {
        return Ok(());
    };
    if !res.source.starts_with("data:")
        || (res.hash.is_none() && res.compression == fetch::Compression::None)
    {
        return Ok(());
    }
    fetcher.fetch_to(&res, &mut io::sink()).map(|_| ())
}

/// Whether a name will exist in the target once the passwd step ran.
fn will_exist(
    owners: &mut Owners,
    name: &str,
    now: fn(&mut Owners, &str) -> Result<Option<u32>, Error>,
    created: &std::collections::HashSet<String>,
    removed: &std::collections::HashSet<String>,
) -> Result<bool, Error> {
    if created.contains(name) {
        return Ok(true);
    }
    Ok(now(owners, name)?.is_some() && !removed.contains(name))
}

/// Builds and checks the ordered list of entries.
pub fn plan<'c>(
    root: &Root,
    cfg: &'c Config,
    fetcher: &Fetcher,
    owners: &mut Owners,
    users: &users::Plan,
) -> Result<Plan<'c>, Failure> {
    let st = &cfg.storage;
    let mut resolver = Resolver::new(root);
    let kinds = st
        .directories
        .iter()
        .enumerate()
        .map(|(i, d)| (Kind::Dir(d), i))
        .chain(st.files.iter().enumerate().map(|(i, f)| (Kind::File(f), i)))
        .chain(st.links.iter().enumerate().map(|(i, l)| (Kind::Link(l), i)));
    let mut entries: Vec<Entry<'c>> =
        Vec::with_capacity(st.directories.len() + st.files.len() + st.links.len());
    for (kind, index) in kinds {
        let jp = || entry_path("storage", kind.list(), index);
        let op = || format!("resolving {:?}", kind.config_path());
        let path = match resolver.resolve(kind.config_path()) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(failure(
                    op(),
                    Some(jp()),
                    Error::Fs(rootfs::Error::Refused {
                        op: "writing",
                        path: "/".into(),
                        root: root.path().to_path_buf(),
                        problem: "the path is the root directory itself",
                    }),
                ))
            }
            Err(e) => {
                return Err(failure(op(), Some(jp()), Error::Fs(e)).hint(
                    "every component above the path must be a directory, or a symlink that leads to one inside the root",
                ))
            }
        };
        let (user, group) = match kind {
            Kind::Dir(d) => (owners::user_spec(&d.user), owners::group_spec(&d.group)),
            Kind::File(f) => (owners::user_spec(&f.user), owners::group_spec(&f.group)),
            Kind::Link(l) => (owners::user_spec(&l.user), owners::group_spec(&l.group)),
        };
        let user = user.map_err(|e| failure("checking the owner", Some(jp().key("user")), e))?;
        let group = group.map_err(|e| failure("checking the group", Some(jp().key("group")), e))?;
        entries.push(Entry {
            kind,
            index,
            depth: depth(&path),
            path,
            user,
            group,
            uid: None,
            gid: None,
            action: "",
        });
    }

    // Duplicates after symlink chasing, in config order (directories, files, links).
    let mut by_path: HashMap<&Path, usize> = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(&j) = by_path.get(e.path.as_path()) {
            return Err(failure(
                format!("checking {:?}", e.kind.config_path()),
                Some(e.json_path()),
                Error::Collision {
                    path: e.kind.config_path().to_string(),
                    resolved: e.path.display().to_string(),
                    other: entries[j].kind.config_path().to_string(),
                },
            ));
        }
        by_path.insert(e.path.as_path(), i);
    }

    // Checks against the tree and the other entries.
    let mut actions: Vec<&'static str> = Vec::with_capacity(entries.len());
    // Whether each parent directory exists: nothing below a missing one needs a lookup.
    let mut parent_exists: HashMap<&Path, bool> = HashMap::new();
    for e in &entries {
        let jp = e.json_path();
        let op = format!("checking {} {:?}", e.kind.noun(), e.kind.config_path());
        let fail = |err: Error| failure(&op, Some(jp.clone()), err);
        let mut ancestor_replaced = false;
        for a in e.path.ancestors().skip(1) {
            let Some(&j) = by_path.get(a) else { continue };
            let other = &entries[j];
            match other.kind {
                Kind::File(_) => {
                    return Err(fail(Error::UnderNonDirectory {
                        path: e.path.display().to_string(),
                        ancestor: a.display().to_string(),
                        what: "file",
                    }))
                }
                Kind::Link(_) => {
                    // Ignition's validation refuses a path below a link of the config; the
                    // same holds once paths are resolved through the tree's symlinks.
                    return Err(fail(Error::UnderNonDirectory {
                        path: e.path.display().to_string(),
                        ancestor: a.display().to_string(),
                        what: other.kind.noun(),
                    }));
                }
                _ => {}
            }
            if other.kind.overwrite() {
                ancestor_replaced = true;
            }
        }
        let parent = e.path.parent().unwrap_or(Path::new("/"));
        let parent_there = match parent_exists.get(parent) {
            Some(&b) => b,
            None => {
                let b = root
                    .stat_follow(parent)
                    .map_err(|x| fail(Error::Fs(x)))?
                    .is_some();
                parent_exists.insert(parent, b);
                b
            }
        };
        let current = if ancestor_replaced || !parent_there {
            None
        } else {
            root.lstat(&e.path).map_err(|x| fail(Error::Fs(x)))?
        };
        let overwrite = e.kind.overwrite();
        let action = match (e.kind, current) {
            (_, Some(_)) if overwrite => "replace",
            (_, None) => "create",
            (Kind::Dir(_), Some(c)) => {
                if !c.is_dir() {
                    return Err(fail(Error::NotDirectory(e.path.display().to_string())));
                }
                "update"
            }
            (Kind::File(f), Some(c)) => {
                if !c.is_file() {
                    return Err(fail(Error::NotRegular(e.path.display().to_string())));
                }
                if f.contents.source.is_some() {
                    return Err(fail(Error::FileExists(e.path.display().to_string())));
                }
                if f.append.is_empty() {
                    "update"
                } else {
                    "append to"
                }
            }
            (Kind::Link(l), Some(c)) if l.hard != Some(true) => {
                let target = l.target.as_deref().unwrap_or("");
                let same = c.is_symlink()
                    && root
                        .read_link(&e.path)
                        .map(|t| go_clean(&t.to_string_lossy()) == go_clean(target))
                        .unwrap_or(false);
                if !same {
                    return Err(fail(Error::LinkMismatch {
                        path: e.path.display().to_string(),
                        what: "symlink",
                    }));
                }
                "keep"
            }
            // Existing hard links are checked below, with the targets.
            (Kind::Link(_), Some(_)) => "keep",
        };
        actions.push(action);

        // Owner names must exist once users and groups are written.
        type Lookup = fn(&mut Owners, &str) -> Result<Option<u32>, Error>;
        let owner_checks = [
            (
                e.user,
                "user",
                (|o, n| o.uid(n)) as Lookup,
                &users.will_have_users,
                &users.removes_users,
                Error::NoSuchUser as fn(String) -> Error,
            ),
            (
                e.group,
                "group",
                (|o, n| o.gid(n)) as Lookup,
                &users.will_have_groups,
                &users.removes_groups,
                Error::NoSuchGroup,
            ),
        ];
        for (spec, key, lookup, created, removed, missing) in owner_checks {
            let Spec::Name(n) = spec else { continue };
            let ok = will_exist(owners, n, lookup, created, removed)
                .map_err(|x| failure(&op, Some(jp.key(key)), x))?;
            if !ok {
                return Err(failure(
                    &op,
                    Some(jp.key(key).key("name")),
                    missing(n.to_string()),
                ));
            }
        }

        if let Kind::File(f) = e.kind {
            if f.contents.source.is_some() {
                precheck(fetcher, &f.contents).map_err(|x| {
                    failure(
                        &op,
                        Some(resource_path(&jp, "contents", None)),
                        Error::Fetch(x),
                    )
                })?;
            }
            for (k, a) in f.append.iter().enumerate() {
                precheck(fetcher, a).map_err(|x| {
                    failure(
                        &op,
                        Some(resource_path(&jp, "append", Some(k))),
                        Error::Fetch(x),
                    )
                })?;
            }
        }
    }

    // Hard links: the target must be there (or made by this config) and not a directory; an
    // existing link that is kept must already be the same file.
    for (i, e) in entries.iter().enumerate() {
        let Kind::Link(l) = e.kind else { continue };
        if l.hard != Some(true) {
            continue;
        }
        let jp = e.json_path();
        let op = format!("checking hard link {:?}", l.path);
        let target = l.target.as_deref().unwrap_or("");
        let fail = |err: Error| failure(&op, Some(jp.key("target")), err);
        let t = match resolver.resolve(target) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(fail(Error::HardLinkTargetIsDir(target.to_string()))),
            Err(x) => return Err(fail(Error::Fs(x))),
        };
        // Whether the target is made anew by this run (a new inode).
        let made = by_path.get(t.as_path()).map(|&j| (&entries[j], actions[j]));
        let existing = root.lstat(&e.path).map_err(|x| fail(Error::Fs(x)))?;
        let keep = actions[i] == "keep";
        match made {
            Some((o, _)) if matches!(o.kind, Kind::Dir(_)) => {
                return Err(fail(Error::HardLinkTargetIsDir(target.to_string())))
            }
            Some((_, act)) => {
                if keep && act != "keep" && act != "update" && act != "append to" {
                    return Err(failure(
                        &op,
                        Some(jp.clone()),
                        Error::LinkMismatch {
                            path: e.path.display().to_string(),
                            what: "hard link",
                        },
                    ));
                }
                if keep {
                    let ts = root.lstat(&t).map_err(|x| fail(Error::Fs(x)))?;
                    if !matches!((existing, ts), (Some(a), Some(b)) if a.same_file(&b)) {
                        return Err(failure(
                            &op,
                            Some(jp.clone()),
                            Error::LinkMismatch {
                                path: e.path.display().to_string(),
                                what: "hard link",
                            },
                        ));
                    }
                }
            }
            None => {
                let ts = root.lstat(&t).map_err(|x| fail(Error::Fs(x)))?;
                match ts {
                    None => return Err(fail(Error::HardLinkTargetMissing(target.to_string()))),
                    Some(s) if s.is_dir() => {
                        return Err(fail(Error::HardLinkTargetIsDir(target.to_string())))
                    }
                    Some(s) => {
                        if keep && !existing.is_some_and(|a| a.same_file(&s)) {
                            return Err(failure(
                                &op,
                                Some(jp.clone()),
                                Error::LinkMismatch {
                                    path: e.path.display().to_string(),
                                    what: "hard link",
                                },
                            ));
                        }
                    }
                }
            }
        }
    }
    drop(by_path);

    for (e, a) in entries.iter_mut().zip(actions) {
        e.action = a;
    }
    // Depth order (stable), hard links last in config order.
    let (mut order, hard): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| !e.kind.is_hard_link());
    order.sort_by_key(|e| e.depth);
    order.extend(hard);
    Ok(Plan {
        entries: order,
        prefetched: Prefetched::new(),
    })
}

/// Writes the planned entries, depth by depth, hard links last.
pub fn apply(
    root: &Root,
    mut plan: Plan,
    fetcher: &Fetcher,
    ops: &OpLog,
    owners: &mut Owners,
) -> Result<(), Failure> {
    owners.invalidate();
    for e in &mut plan.entries {
        let jp = e.json_path();
        e.uid = owners
            .resolve_user(e.user)
            .map_err(|x| failure("looking up the owner", Some(jp.key("user")), x))?;
        e.gid = owners
            .resolve_group(e.group)
            .map_err(|x| failure("looking up the group", Some(jp.key("group")), x))?;
    }
    let (entries, pre) = (plan.entries, plan.prefetched);
    if entries.is_empty() {
        return Ok(());
    }
    let mut synced = Synced::default();
    let mut start = 0;
    while start < entries.len() {
        let first = &entries[start];
        let hard = first.kind.is_hard_link();
        let d = first.depth;
        let mut end = start + 1;
        while end < entries.len()
            && !hard
            && !entries[end].kind.is_hard_link()
            && entries[end].depth == d
        {
            end += 1;
        }
        run_level(root, &entries[start..end], fetcher, &pre, ops, &mut synced)?;
        start = end;
    }
    // Directories, links and renames become durable with one sync per filesystem.
    let desc = "syncing the written files to disk";
    let op = ops.start(desc);
    let r = (|| -> Result<(), Error> {
        let top = root.open_dir("/")?;
        synced.note(root, &top)?;
        for d in &synced.handles {
            root.syncfs(d)?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            op.finish();
            Ok(())
        }
        Err(e) => {
            op.fail(&e);
            Err(failure(desc, None, e))
        }
    }
}

/// One open directory per filesystem written to, for the final sync.
#[derive(Default)]
struct Synced {
    devs: Vec<u64>,
    handles: Vec<DirHandle>,
}

impl Synced {
    fn note(&mut self, root: &Root, dir: &DirHandle) -> Result<(), Error> {
        let dev = root.dir_dev(dir)?;
        if !self.devs.contains(&dev) {
            self.devs.push(dev);
            self.handles.push(root.open_dir(dir.path())?);
        }
        Ok(())
    }
}

fn parent_bytes<'p>(e: &'p Entry) -> &'p [u8] {
    use std::os::unix::ffi::OsStrExt;
    e.path
        .parent()
        .map_or(&[][..], |p| p.as_os_str().as_bytes())
}

/// How many threads write one depth level.
fn workers(groups: usize, entries: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.clamp(1, 4).min(groups).min(entries / 64).max(1)
}

/// Entries of one level that share a parent directory.
struct Group<'a, 'c> {
    parent: &'a Path,
    entries: Vec<&'a Entry<'c>>,
}

/// What a group leaves for the end of its level: files written under temporary names, with
/// their operations still open.
struct Pending<'a, 'c, 'o> {
    dir: Option<DirHandle>,
    staged: Vec<(Staged, Op<'o>, &'a Entry<'c>)>,
    /// Symlinks made, whose owner is set once the level's files are in place (by default it
    /// is the owner of what they point to).
    links: Vec<&'a Entry<'c>>,
}

impl Pending<'_, '_, '_> {
    /// Removes the temporary files; their operations fail as cancelled.
    fn discard(self, root: &Root) {
        let Some(dir) = &self.dir else { return };
        for (s, op, _) in self.staged {
            root.discard_staged(dir, s);
            op.fail(&"not written: another entry of the config failed");
        }
    }
}

/// Writes one depth level. Entries at the same depth are independent (none is inside
/// another), so groups of entries that share a directory are written in parallel. New file
/// contents are staged under temporary names; once every entry of the level succeeded, the
/// filesystem is synced once and the files are renamed into place, so a failure anywhere in
/// the level leaves none of its files behind, and no file is fsynced on its own.
fn run_level<'a, 'c, 'o>(
    root: &Root,
    level: &'a [Entry<'c>],
    fetcher: &Fetcher,
    pre: &Prefetched,
    ops: &'o OpLog,
    synced: &mut Synced,
) -> Result<(), Failure> {
    // Group by parent; parents are created first, once each, so that workers never race to
    // create the same directory.
    let mut order: Vec<&Entry> = level.iter().collect();
    // Paths are clean, so equal parents are equal byte strings.
    order.sort_by(|a, b| parent_bytes(a).cmp(parent_bytes(b)));
    let mut groups: Vec<Group> = Vec::new();
    for e in order {
        let parent = e.path.parent().unwrap_or(Path::new("/"));
        match groups.last_mut() {
            Some(g) if g.parent == parent => g.entries.push(e),
            _ => groups.push(Group {
                parent,
                entries: vec![e],
            }),
        }
    }
    for g in &groups {
        if g.parent == Path::new("/") {
            continue;
        }
        if let Err(err) = root.mkdir_all(g.parent) {
            // Reported for the first entry that needed the directory.
            let e = g.entries[0];
            let desc = e.describe();
            ops.start(&desc).fail(&err);
            return Err(failure(desc, Some(e.json_path()), Error::Fs(err)));
        }
    }

    let mut pending: Vec<Pending<'a, 'c, 'o>> = Vec::with_capacity(groups.len());
    let mut failed: Option<Failure> = None;
    let n = workers(groups.len(), level.len());
    if n <= 1 {
        for g in &groups {
            let (p, r) = run_group(root, g, fetcher, pre, ops);
            pending.push(p);
            if let Err(f) = r {
                failed = Some(f);
                break;
            }
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let out: Mutex<Vec<Pending<'a, 'c, 'o>>> = Mutex::new(Vec::new());
        let first_err: Mutex<Option<(usize, Failure)>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(g) = groups.get(i) else { break };
                        let (p, r) = run_group(root, g, fetcher, pre, ops);
                        if let Ok(mut v) = out.lock() {
                            v.push(p);
                        }
                        if let Err(f) = r {
                            stop.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_err.lock() {
                                if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                    *slot = Some((i, f));
                                }
                            }
                            break;
                        }
                    }
                });
            }
        });
        pending = out.into_inner().unwrap_or_default();
        failed = first_err.into_inner().ok().flatten().map(|(_, f)| f);
    }
    if let Some(f) = failed {
        for p in pending {
            p.discard(root);
        }
        return Err(f);
    }
    let links: Vec<&Entry> = pending
        .iter()
        .flat_map(|p| p.links.iter().copied())
        .collect();
    if pending.iter().any(|p| !p.staged.is_empty()) {
        commit_level(root, pending, synced)?;
    }
    for e in links {
        chown_symlink(root, e).map_err(|err| failure(e.describe(), Some(e.json_path()), err))?;
    }
    Ok(())
}

/// Syncs the filesystems of a level's staged files, then renames them into place.
fn commit_level(root: &Root, pending: Vec<Pending>, synced: &mut Synced) -> Result<(), Failure> {
    // Contents on disk before any name points to them: one sync per filesystem.
    let mut devs: Vec<u64> = Vec::new();
    let mut sync_err = None;
    for p in &pending {
        let Some(dir) = &p.dir else { continue };
        if p.staged.is_empty() {
            continue;
        }
        let r = root.dir_dev(dir).and_then(|dev| {
            if devs.contains(&dev) {
                return Ok(());
            }
            devs.push(dev);
            root.syncfs(dir)
        });
        if let Err(e) = r.map_err(Error::Fs).and_then(|()| synced.note(root, dir)) {
            sync_err = Some(e);
            break;
        }
    }
    if let Some(e) = sync_err {
        for p in pending {
            p.discard(root);
        }
        return Err(failure("syncing the written files to disk", None, e));
    }

    // Then the renames.
    let mut rest = pending.into_iter();
    while let Some(p) = rest.next() {
        let Some(dir) = p.dir else { continue };
        let mut staged = p.staged.into_iter();
        while let Some((s, op, e)) = staged.next() {
            if let Err(err) = root.commit_staged(&dir, s, e.kind.overwrite()) {
                op.fail(&err);
                for (s, op, _) in staged {
                    root.discard_staged(&dir, s);
                    op.fail(&"not written: another entry of the config failed");
                }
                for p in rest {
                    p.discard(root);
                }
                return Err(failure(e.describe(), Some(e.json_path()), Error::Fs(err)));
            }
            op.finish();
        }
    }
    Ok(())
}

/// Writes the entries of one directory. Files are staged (see [`run_level`]); what was staged
/// is returned even when an entry failed, so that it can be removed.
fn run_group<'a, 'c, 'o>(
    root: &Root,
    g: &Group<'a, 'c>,
    fetcher: &Fetcher,
    pre: &Prefetched,
    ops: &'o OpLog,
) -> (Pending<'a, 'c, 'o>, Result<(), Failure>) {
    let mut p = Pending {
        dir: None,
        staged: Vec::new(),
        links: Vec::new(),
    };
    for &e in &g.entries {
        let desc = e.describe();
        let op = ops.start(&desc);
        let r = match e.kind {
            Kind::Dir(d) => write_dir(root, e, d).map(|()| None),
            Kind::File(f) => write_file(root, e, f, fetcher, pre, g.parent, &mut p.dir),
            Kind::Link(l) => write_link(root, e, l).map(|made| {
                if made && l.hard != Some(true) {
                    p.links.push(e);
                }
                None
            }),
        };
        match r {
            Ok(Some(s)) => p.staged.push((s, op, e)),
            Ok(None) => op.finish(),
            Err(err) => {
                op.fail(&err);
                return (p, Err(failure(desc, Some(e.json_path()), err)));
            }
        }
    }
    (p, Ok(()))
}

fn mode_of(m: Option<i64>) -> Option<u32> {
    // Validation keeps modes within 0..=0o7777; mask anyway.
    m.map(|m| (m & 0o7777) as u32)
}

fn write_dir(root: &Root, e: &Entry, d: &Directory) -> Result<(), Error> {
    let path = &e.path;
    let mode = mode_of(d.mode);
    match root.lstat(path)? {
        Some(st) if st.is_dir() && e.kind.overwrite() => {
            root.remove_all(path)?;
        }
        Some(st) if st.is_dir() => {
            root.set_permissions(path, e.uid, e.gid, mode)?;
            return Ok(());
        }
        Some(_) if e.kind.overwrite() => {
            root.remove_all(path)?;
        }
        Some(_) => return Err(Error::NotDirectory(path.display().to_string())),
        None => {}
    }
    root.create_dir(path, mode.unwrap_or(0o755))?;
    if e.uid.is_some() || e.gid.is_some() {
        // chown before chmod, so that setgid and sticky bits survive.
        root.set_permissions(path, e.uid, e.gid, mode)?;
    }
    Ok(())
}

/// Fetches a resource into `file`. Remote sources go through `fetch_to_file`, which can start
/// over after a partial download; data URLs and empty sources cannot fail half-way.
fn fetch_into(
    fetcher: &Fetcher,
    res: &fetch::Resource,
    file: &mut std::fs::File,
) -> io::Result<u64> {
    if let Some(n) = plain_data_url(res, file)? {
        return Ok(n);
    }
    let r = if !is_remote_source(&res.source) {
        fetcher.fetch_to(res, file)
    } else {
        fetcher.fetch_to_file(res, file)
    };
    r.map(|o| o.size).map_err(io::Error::other)
}

/// Appends a resource to `w` (the file is not restarted on a retry).
fn fetch_append(
    fetcher: &Fetcher,
    res: &fetch::Resource,
    w: &mut std::fs::File,
) -> io::Result<u64> {
    if let Some(n) = plain_data_url(res, w)? {
        return Ok(n);
    }
    fetcher
        .fetch_to(res, w)
        .map(|o| o.size)
        .map_err(io::Error::other)
}

/// A data URL with neither hash nor compression has nothing to verify: it is decoded and
/// written directly (the fetcher would do the same through a 256 KiB copy buffer, which for
/// thousands of small files costs more than the files themselves). `None` for anything else.
fn plain_data_url(res: &fetch::Resource, w: &mut dyn Write) -> io::Result<Option<u64>> {
    if !res.source.starts_with("data:")
        || res.hash.is_some()
        || res.compression != fetch::Compression::None
    {
        return Ok(None);
    }
    let d = dataurl::decode(&res.source)
        .map_err(|source| io::Error::other(fetch::Error::DataUrl { source }))?;
    w.write_all(&d.data)?;
    Ok(Some(d.data.len() as u64))
}

/// Writes a file entry: new contents are staged next to the destination and returned, to be
/// renamed into place by [`run_level`]; appends to an existing file are made in place.
fn write_file(
    root: &Root,
    e: &Entry,
    f: &File,
    fetcher: &Fetcher,
    pre: &Prefetched,
    parent: &Path,
    dir: &mut Option<DirHandle>,
) -> Result<Option<Staged>, Error> {
    let path = &e.path;
    let name = path.file_name().unwrap_or_default();
    let d = match dir {
        Some(d) => d,
        None => dir.insert(root.open_dir(parent)?),
    };
    // Looked up again, through the directory as it is now: a symlink made by an earlier
    // entry may have put something at this path since the plan was made. With overwrite,
    // whatever is there is replaced (a directory is removed when the file is renamed into
    // place), so there is nothing to look up.
    let existing = if e.kind.overwrite() {
        None
    } else {
        root.lstat_entry(d, name)?.map(|st| st.kind)
    };
    let replace = match existing {
        None => true,
        Some(FileKind::File) if f.contents.source.is_none() => false,
        Some(FileKind::File) => return Err(Error::FileExists(path.display().to_string())),
        Some(_) => return Err(Error::NotRegular(path.display().to_string())),
    };
    if replace {
        let mode = mode_of(f.mode).unwrap_or(0o644);
        let fill = |file: &mut std::fs::File| -> io::Result<u64> {
            let mut size = 0;
            if let Some(data) = pre.get(&key(&f.contents)) {
                file.write_all(data)?;
                size += data.len() as u64;
            } else if let Some(res) = fetch_resource(&f.contents) {
                if f.append.is_empty() {
                    return fetch_into(fetcher, &res, file);
                }
                // Appends follow in the same file, so the contents must not be restarted
                // under them.
                size += fetch_append(fetcher, &res, file)?;
            }
            for a in &f.append {
                if let Some(data) = pre.get(&key(a)) {
                    file.write_all(data)?;
                    size += data.len() as u64;
                } else if let Some(res) = fetch_resource(a) {
                    size += fetch_append(fetcher, &res, file)?;
                }
            }
            Ok(size)
        };
        let staged =
            root.stage_file_in(d, name, mode, e.uid.unwrap_or(0), e.gid.unwrap_or(0), fill)?;
        return Ok(Some(staged));
    }
    // An existing regular file without new contents: appends and permissions only.
    let fetched: Vec<(&Resource, fetch::Resource)> = f
        .append
        .iter()
        .filter_map(|a| fetch_resource(a).map(|res| (a, res)))
        .collect();
    if !fetched.is_empty() {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut tmp = root.temp_file_in(dir)?;
        for (a, res) in &fetched {
            let r = match pre.get(&key(a)) {
                Some(data) => tmp.write_all(data).map(|()| data.len() as u64),
                None => fetch_append(fetcher, res, &mut tmp),
            };
            r.map_err(|source| {
                Error::Fs(rootfs::Error::Fill {
                    op: "appending to",
                    path: path.display().to_string(),
                    root: root.path().to_path_buf(),
                    source,
                })
            })?;
        }
        tmp.rewind().map_err(|source| {
            Error::Fs(rootfs::Error::Io {
                op: "appending to",
                path: path.display().to_string(),
                root: root.path().to_path_buf(),
                source,
            })
        })?;
        root.append(path, &mut tmp)?;
    }
    root.set_permissions(path, e.uid, e.gid, mode_of(f.mode))?;
    Ok(None)
}

/// Makes a link; false when a matching one was already there and is left alone.
fn write_link(root: &Root, e: &Entry, l: &Link) -> Result<bool, Error> {
    let path = &e.path;
    let target = l.target.as_deref().unwrap_or("");
    let hard = l.hard == Some(true);
    let current = root.lstat(path)?;
    let mut replace = false;
    match current {
        Some(st) if !e.kind.overwrite() => {
            let same = if hard {
                let t = root.lstat(target)?;
                t.is_some_and(|t| t.same_file(&st))
            } else {
                st.is_symlink()
                    && go_clean(&root.read_link(path)?.to_string_lossy()) == go_clean(target)
            };
            if same {
                // Ignition leaves a matching link alone, owner included.
                return Ok(false);
            }
            return Err(Error::LinkMismatch {
                path: path.display().to_string(),
                what: e.kind.noun(),
            });
        }
        Some(st) if st.is_dir() => {
            root.remove_all(path)?;
        }
        Some(_) => replace = true,
        None => {}
    }
    if hard {
        if replace {
            root.hard_link_replace(target, path)?;
        } else {
            root.hard_link(target, path)?;
        }
        return Ok(true);
    }
    if replace {
        root.symlink_replace(target, path)?;
    } else {
        root.symlink(target, path)?;
    }
    Ok(true)
}

/// Sets the owner of a new symlink: as configured, else (like Ignition) the owner of what it
/// points to, looked up inside the root, or root when it points nowhere.
fn chown_symlink(root: &Root, e: &Entry) -> Result<(), Error> {
    let path = &e.path;
    // Ignition's default owner of a new symlink is the owner of what it points to (0:0 when
    // it points nowhere); here that is looked up inside the root.
    let (uid, gid) = match (e.uid, e.gid) {
        (Some(u), Some(g)) => (u, g),
        (u, g) => {
            let t: Option<FileStat> = root.stat_follow(path).unwrap_or(None);
            (
                u.unwrap_or(t.map_or(0, |t| t.uid)),
                g.unwrap_or(t.map_or(0, |t| t.gid)),
            )
        }
    };
    if (uid, gid) != (0, 0) {
        root.lchown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean_matches_go() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("a/../..", ".."),
            ("//a//b/", "/a/b"),
            ("./a/.", "a"),
            ("/etc/../usr/./lib/", "/usr/lib"),
        ] {
            assert_eq!(go_clean(i), o, "{i}");
        }
    }

    #[test]
    fn clean_abs_stays_in_root() {
        assert_eq!(clean_abs("/../../etc//x/./y"), PathBuf::from("/etc/x/y"));
        assert_eq!(clean_abs("a/b"), PathBuf::from("/a/b"));
        assert_eq!(depth(Path::new("/a/b/c")), 3);
        assert_eq!(depth(Path::new("/")), 0);
    }
}
