//! Users and groups, written natively into the target's account files.
//!
//! Ignition runs shadow-utils (`useradd`, `usermod`, `userdel`, `groupadd`, `groupmod`,
//! `groupdel`, all with `--root`) for the `passwd` section of a config. The initramfs Ember
//! runs in has no shadow-utils, so this module edits the target's `/etc/passwd`,
//! `/etc/shadow`, `/etc/group`, `/etc/gshadow`, `/etc/subuid` and `/etc/subgid` itself, with
//! the results those commands give for the exact arguments Ignition passes. Semantics follow
//! shadow-utils 4.13 as built for Debian 12: id allocation and defaults from the target's
//! `/etc/login.defs` and `/etc/default/useradd`, user private groups, shadow ageing fields,
//! /etc/skel, home moves, lastlog/faillog records, subordinate ids, and the same locks
//! (`/etc/.pwd.lock` with an fcntl lock, `<file>.lock` link locks), all inside the target.
//!
//! Each call to [`apply_groups`] or [`apply_users`] is one transaction for the account files:
//! every spec is checked and applied in memory first, in order, so a bad name, a taken uid or
//! a missing group fails the call before any file is touched. Then each changed file is
//! replaced atomically (keeping its owner and shadow-utils' `mode & 0664`), after saving the
//! previous contents as `<file>-` like shadow-utils. Last come home directories, mail spools
//! and log records; the checks shadow-utils makes there (the new home must not exist, userdel
//! only removes what the user owns) are made before writing too, but an I/O failure at that
//! point is reported with the account files already updated, as with shadow-utils.
//!
//! Differences from the real tools, on purpose:
//! - Names follow upstream shadow-utils rules (see `names`), not Debian's relaxed patch.
//! - Fields that would corrupt the files (`:` or a newline in a password hash, GECOS, home
//!   or shell) are errors; shadow-utils does not check passwords.
//! - `/etc/passwd` must exist; shadow-utils would create an empty one.
//! - The `<file>-` backups hold the state before the whole call, not before the last command.
//! - A home directory that is a symlink is removed as a link by userdel (shadow-utils fails).
//! - Hooks (`/etc/shadow-maint/*`), nscd/sssd cache flushes, `pam_tally2`, SELinux contexts,
//!   btrfs subvolume homes and MAX_MEMBERS_PER_GROUP splitting are not done.
//! - Copying /etc/skel never depends on /proc. (Debian 12's useradd, through glibc 2.36's
//!   fchmodat(AT_SYMLINK_NOFOLLOW) emulation, silently stops copying at the first directory
//!   in /etc/skel when /proc is not mounted inside the `--root` tree.)
//! - `noLogInit` (`--no-log-init`): useradd otherwise zeroes the new uid's records in
//!   `/var/log/lastlog` and `/var/log/faillog` when those files already reach that far (it
//!   never grows them); with `no_log_init` Ember leaves both files alone, as useradd does.

mod alloc;
mod db;
mod defs;
mod home;
mod lock;
mod names;

use std::path::{Path, PathBuf};

use crate::system::rootfs::{self, FileStat, Ownership, Root};
use alloc::IdKind;
use db::{GrEnt, PwEnt, Record, SgEnt, SpEnt, SubEnt, Table};
use defs::{LoginDefs, UseraddDefaults};
use home::FsAction;

const PASSWD: &str = "/etc/passwd";
const SHADOW: &str = "/etc/shadow";
const GROUP: &str = "/etc/group";
const GSHADOW: &str = "/etc/gshadow";
const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";
const LOGIN_DEFS: &str = "/etc/login.defs";
const USERADD_DEFAULTS: &str = "/etc/default/useradd";
const NSSWITCH: &str = "/etc/nsswitch.conf";
/// Where nss-altfiles (used by Fedora CoreOS and RHCOS) keeps the image's own accounts.
const ALT_PASSWD: &str = "/usr/lib/passwd";
const ALT_GROUP: &str = "/usr/lib/group";

/// Errors of this module. Password hashes never appear in them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fs(#[from] rootfs::Error),
    #[error("the target root has no /etc/passwd")]
    NoPasswd,
    #[error("invalid user name {0:?}")]
    InvalidUserName(String),
    #[error("invalid group name {0:?}")]
    InvalidGroupName(String),
    #[error("{name:?}: invalid {field}")]
    InvalidField { name: String, field: &'static str },
    #[error("{name:?}: {id} is not a valid id")]
    InvalidId { name: String, id: u32 },
    #[error("user {name:?}: uid {uid} is already used by {other:?}")]
    UidTaken {
        name: String,
        uid: u32,
        other: String,
    },
    #[error("group {name:?}: gid {gid} is already used by {other:?}")]
    GidTaken {
        name: String,
        gid: u32,
        other: String,
    },
    #[error("user {user:?}: group {group:?} does not exist")]
    GroupNotFound { user: String, group: String },
    #[error(
        "user {name:?}: a group with that name exists (name it as the primary group to use it)"
    )]
    UserGroupExists { name: String },
    #[error("{name:?} exists, but not in {file} where it could be changed")]
    NotLocal { name: String, file: &'static str },
    #[error("group {group:?} is the primary group of user {user:?}")]
    GroupBusy { group: String, user: String },
    #[error("no free {what} left for {name:?}")]
    IdsExhausted { name: String, what: &'static str },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{file} has several entries named {name:?}")]
    DuplicateEntry { file: &'static str, name: String },
    #[error("{file}: the entry of {name:?} is not valid UTF-8 and cannot be rewritten")]
    NotUtf8 { file: &'static str, name: String },
    #[error("timed out waiting for {path}")]
    LockTimeout { path: &'static str },
    #[error("locking {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is held by running process {pid}")]
    Locked { path: String, pid: i32 },
    #[error("{path} exists and is not a usable lock")]
    LockInUse { path: String },
    #[error("home directory {path} already exists")]
    HomeExists { path: String },
    #[error("previous home directory {path} is not a directory")]
    OldHomeNotDir { path: String },
    #[error("{path} of user {user:?} is not owned by the user; not removing it")]
    NotOwned { user: String, path: String },
    #[error("setting up mailbox {path}")]
    Mailbox {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("updating {path}")]
    LogRecord {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("user {0:?} does not exist")]
    NoSuchUser(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A group as Ignition's `passwd.groups` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub gid: Option<u32>,
    /// Crypted password; `None` or empty leaves the default (`!` in gshadow) or the current one.
    pub password_hash: Option<String>,
    pub system: bool,
    /// `false` deletes the group if it exists.
    pub should_exist: bool,
}

impl GroupSpec {
    pub fn new(name: impl Into<String>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            gid: None,
            password_hash: None,
            system: false,
            should_exist: true,
        }
    }
}

/// A user as Ignition's `passwd.users` describes it. As with Ignition, an empty string in
/// `gecos`, `home_dir`, `primary_group` or `shell` means "not set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub uid: Option<u32>,
    /// Crypted password. New users without one get `*` (no password login). For an existing
    /// user, `Some("")` also sets `*`, `None` keeps the current password.
    pub password_hash: Option<String>,
    pub gecos: Option<String>,
    pub home_dir: Option<String>,
    pub no_create_home: bool,
    pub primary_group: Option<String>,
    /// Supplementary groups; for an existing user a non-empty list replaces the current one.
    pub groups: Vec<String>,
    pub no_user_group: bool,
    pub no_log_init: bool,
    pub shell: Option<String>,
    pub system: bool,
    /// `false` deletes the user (with home directory and mail spool) if it exists.
    pub should_exist: bool,
}

impl UserSpec {
    pub fn new(name: impl Into<String>) -> UserSpec {
        UserSpec {
            name: name.into(),
            uid: None,
            password_hash: None,
            gecos: None,
            home_dir: None,
            no_create_home: false,
            primary_group: None,
            groups: Vec::new(),
            no_user_group: false,
            no_log_init: false,
            shell: None,
            system: false,
            should_exist: true,
        }
    }
}

/// What happened to one spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Modified,
    /// It exists and nothing differed (usermod's "no changes").
    Unchanged,
    Removed,
    /// `should_exist: false` and it did not exist.
    Absent,
}

/// Result for one user spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOutcome {
    pub name: String,
    pub action: Action,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
}

/// Result for one group spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    pub name: String,
    pub action: Action,
    pub gid: Option<u32>,
}

/// A user as the target's name service would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// A group as the target's name service would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Creates, changes or deletes groups like `groupadd`/`groupmod`/`groupdel --root` would
/// with Ignition's arguments, in order, as one transaction.
pub fn apply_groups(root: &Root, specs: &[GroupSpec]) -> Result<Vec<GroupOutcome>> {
    let mut s = Session::open(root)?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(s.apply_group(spec)?);
    }
    s.commit()?;
    Ok(out)
}

/// Creates, changes or deletes users like `useradd`/`usermod`/`userdel --root` would with
/// Ignition's arguments (including its second `usermod --password`), in order, as one
/// transaction for the account files; home directories follow once the files are written.
pub fn apply_users(root: &Root, specs: &[UserSpec]) -> Result<Vec<UserOutcome>> {
    let mut s = Session::open(root)?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(s.apply_user(spec)?);
    }
    s.commit()?;
    for a in &s.actions {
        home::run(root, a)?;
    }
    Ok(out)
}

/// Looks a user up in the target's account files, the way its NSS (`files`, plus
/// `altfiles` when its nsswitch.conf lists it) would. Never consults the host.
pub fn lookup_user(root: &Root, name: &str) -> Result<Option<UserInfo>> {
    let db = Db::load(root, false)?;
    Ok(db.getpwnam(name).map(|p| UserInfo {
        name: p.name.clone(),
        uid: p.uid,
        gid: p.gid,
        home: p.dir.clone(),
        shell: p.shell.clone(),
    }))
}

/// Looks a group up in the target's account files, like [`lookup_user`].
pub fn lookup_group(root: &Root, name: &str) -> Result<Option<GroupInfo>> {
    let db = Db::load(root, false)?;
    Ok(db.getgrnam(name).map(|g| GroupInfo {
        name: g.name.clone(),
        gid: g.gid,
        members: g.members.clone(),
    }))
}

/// Writes a user's SSH keys as Ignition does: the keys joined with newlines plus a final
/// newline, to `~/.ssh/authorized_keys.d/ignition` (or `~/.ssh/authorized_keys` when
/// `fragment` is false). Missing directories are created 0700 and the file is written 0600,
/// all owned by the user's uid and primary gid, inside the root. Nothing is written for an
/// empty key list. Returns the in-root path written.
pub fn write_ssh_keys(
    root: &Root,
    user: &str,
    keys: &[String],
    fragment: bool,
) -> Result<Option<PathBuf>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let info = lookup_user(root, user)?.ok_or_else(|| Error::NoSuchUser(user.to_string()))?;
    let mut text = keys.join("\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let home = Path::new(&info.home);
    let (dir, file) = if fragment {
        let d = home.join(".ssh/authorized_keys.d");
        let f = d.join("ignition");
        (d, f)
    } else {
        let d = home.join(".ssh");
        let f = d.join("authorized_keys");
        (d, f)
    };
    root.mkdir_all_with(&dir, 0o700, info.uid, info.gid)?;
    root.write_file_atomic(&file, text.as_bytes(), 0o600, info.uid, info.gid)?;
    Ok(Some(file))
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.is_empty())
}

/// Name service sources of the target for one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Files,
    Alt,
}

fn nss_sources(conf: Option<&str>, db: &str) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(conf) = conf {
        for line in conf.lines() {
            let line = line.split('#').next().unwrap_or("");
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            if key.trim() != db {
                continue;
            }
            let mut in_action = false;
            for tok in rest.split_whitespace() {
                if tok.starts_with('[') {
                    in_action = !tok.ends_with(']');
                    continue;
                }
                if in_action {
                    in_action = !tok.ends_with(']');
                    continue;
                }
                match tok {
                    "files" | "compat" => out.push(Source::Files),
                    "altfiles" => out.push(Source::Alt),
                    _ => {}
                }
            }
        }
    }
    if !out.contains(&Source::Files) {
        out.insert(0, Source::Files);
    }
    out
}

/// Original state of an account file, for the backup and to keep owner and mode.
#[derive(Debug, Clone)]
struct Orig {
    data: Vec<u8>,
    stat: Option<FileStat>,
}

/// The account files of the target, in memory.
struct Db {
    passwd: Table<PwEnt>,
    shadow: Option<Table<SpEnt>>,
    group: Table<GrEnt>,
    gshadow: Option<Table<SgEnt>>,
    subuid: Option<Table<SubEnt>>,
    subgid: Option<Table<SubEnt>>,
    alt_passwd: Vec<PwEnt>,
    alt_group: Vec<GrEnt>,
    pw_sources: Vec<Source>,
    gr_sources: Vec<Source>,
    origs: Vec<(&'static str, Orig)>,
}

fn read_optional(root: &Root, path: &'static str) -> Result<Option<(Vec<u8>, FileStat)>> {
    match root.lstat(path)? {
        None => Ok(None),
        Some(st) => Ok(Some((root.read_file(path)?, st))),
    }
}

fn parse_alt<E: Record>(root: &Root, path: &'static str) -> Vec<E> {
    match root.read_file_follow(path) {
        Ok(data) => Table::<E>::parse(path, &data).entries().cloned().collect(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            log::warn!("ignoring {path}: {e}");
            Vec::new()
        }
    }
}

impl Db {
    /// Reads the files. With `for_update`, /etc/passwd is required and originals are kept.
    fn load(root: &Root, for_update: bool) -> Result<Db> {
        let mut origs = Vec::new();
        let mut table = |path: &'static str, required: bool| -> Result<Option<Vec<u8>>> {
            match read_optional(root, path)? {
                Some((data, st)) => {
                    origs.push((
                        path,
                        Orig {
                            data: data.clone(),
                            stat: Some(st),
                        },
                    ));
                    Ok(Some(data))
                }
                None if required => Err(Error::NoPasswd),
                None => Ok(None),
            }
        };
        let passwd = match table(PASSWD, for_update)? {
            Some(d) => Table::parse(PASSWD, &d),
            None => Table::empty(PASSWD),
        };
        let shadow = table(SHADOW, false)?.map(|d| Table::parse(SHADOW, &d));
        let group = match table(GROUP, false)? {
            Some(d) => Table::parse(GROUP, &d),
            None => Table::empty(GROUP),
        };
        let gshadow = table(GSHADOW, false)?.map(|d| Table::parse(GSHADOW, &d));
        let subuid = table(SUBUID, false)?.map(|d| Table::parse(SUBUID, &d));
        let subgid = table(SUBGID, false)?.map(|d| Table::parse(SUBGID, &d));
        let conf = match root.read_file_follow(NSSWITCH) {
            Ok(d) => Some(String::from_utf8_lossy(&d).into_owned()),
            Err(_) => None,
        };
        let pw_sources = nss_sources(conf.as_deref(), "passwd");
        let gr_sources = nss_sources(conf.as_deref(), "group");
        let alt_passwd = if pw_sources.contains(&Source::Alt) {
            parse_alt(root, ALT_PASSWD)
        } else {
            Vec::new()
        };
        let alt_group = if gr_sources.contains(&Source::Alt) {
            parse_alt(root, ALT_GROUP)
        } else {
            Vec::new()
        };
        Ok(Db {
            passwd,
            shadow,
            group,
            gshadow,
            subuid,
            subgid,
            alt_passwd,
            alt_group,
            pw_sources,
            gr_sources,
            origs,
        })
    }

    /// All users in NSS order.
    fn users(&self) -> impl Iterator<Item = &PwEnt> {
        self.pw_sources
            .iter()
            .flat_map(move |s| -> Box<dyn Iterator<Item = &PwEnt>> {
                match s {
                    Source::Files => Box::new(self.passwd.entries()),
                    Source::Alt => Box::new(self.alt_passwd.iter()),
                }
            })
    }

    /// All groups in NSS order.
    fn groups(&self) -> impl Iterator<Item = &GrEnt> {
        self.gr_sources
            .iter()
            .flat_map(move |s| -> Box<dyn Iterator<Item = &GrEnt>> {
                match s {
                    Source::Files => Box::new(self.group.entries()),
                    Source::Alt => Box::new(self.alt_group.iter()),
                }
            })
    }

    fn getpwnam(&self, name: &str) -> Option<&PwEnt> {
        self.users().find(|p| p.name == name)
    }

    fn getpwuid(&self, uid: u32) -> Option<&PwEnt> {
        self.users().find(|p| p.uid == uid)
    }

    fn getgrnam(&self, name: &str) -> Option<&GrEnt> {
        self.groups().find(|g| g.name == name)
    }

    fn getgrgid(&self, gid: u32) -> Option<&GrEnt> {
        self.groups().find(|g| g.gid == gid)
    }

    /// shadow-utils' `getgr_nam_gid`: a number names a gid, anything else a group name.
    fn getgr_nam_gid(&self, s: &str) -> Option<&GrEnt> {
        match parse_gid_arg(s) {
            Some(gid) => self.getgrgid(gid),
            None => self.getgrnam(s),
        }
    }

    fn orig(&self, path: &str) -> Option<&Orig> {
        self.origs.iter().find(|(p, _)| *p == path).map(|(_, o)| o)
    }
}

/// A decimal number the way `strtoll(s, &end, 10)` accepts it as a whole, fitting a gid.
fn parse_gid_arg(s: &str) -> Option<u32> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One locked, loaded editing session of the account files.
struct Session<'r> {
    root: &'r Root,
    defs: LoginDefs,
    useradd: UseraddDefaults,
    db: Db,
    today: Option<i64>,
    actions: Vec<FsAction>,
    _locks: lock::Locks<'r>,
}

impl<'r> Session<'r> {
    fn open(root: &'r Root) -> Result<Session<'r>> {
        if !root.exists(PASSWD)? {
            return Err(Error::NoPasswd);
        }
        let mut files = vec![PASSWD];
        for f in [SHADOW, GROUP, GSHADOW, SUBUID, SUBGID] {
            if f == GROUP || root.exists(f)? {
                files.push(f);
            }
        }
        let locks = lock::Locks::acquire(root, &files)?;
        let db = Db::load(root, true)?;
        let defs = match root.read_file_follow(LOGIN_DEFS) {
            Ok(d) => LoginDefs::parse(&String::from_utf8_lossy(&d)),
            Err(e) if e.is_not_found() => LoginDefs::default(),
            Err(e) => return Err(e.into()),
        };
        let useradd = match root.read_file_follow(USERADD_DEFAULTS) {
            Ok(d) => UseraddDefaults::parse(&String::from_utf8_lossy(&d)),
            Err(e) if e.is_not_found() => UseraddDefaults::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(Session {
            root,
            defs,
            useradd,
            db,
            today: defs::today(),
            actions: Vec::new(),
            _locks: locks,
        })
    }

    /// Writes every changed file: backup `<file>-` with the old contents, then the new
    /// contents atomically with the old owner and `mode & 0664` (shadow-utils' rule).
    fn commit(&self) -> Result<()> {
        let d = &self.db;
        let tables: [(&'static str, bool, Option<Vec<u8>>); 6] = [
            (PASSWD, d.passwd.changed, Some(d.passwd.to_bytes())),
            (
                SHADOW,
                d.shadow.as_ref().is_some_and(|t| t.changed),
                d.shadow.as_ref().map(Table::to_bytes),
            ),
            (GROUP, d.group.changed, Some(d.group.to_bytes())),
            (
                GSHADOW,
                d.gshadow.as_ref().is_some_and(|t| t.changed),
                d.gshadow.as_ref().map(Table::to_bytes),
            ),
            (
                SUBUID,
                d.subuid.as_ref().is_some_and(|t| t.changed),
                d.subuid.as_ref().map(Table::to_bytes),
            ),
            (
                SUBGID,
                d.subgid.as_ref().is_some_and(|t| t.changed),
                d.subgid.as_ref().map(Table::to_bytes),
            ),
        ];
        for (path, changed, bytes) in tables {
            let (true, Some(bytes)) = (changed, bytes) else {
                continue;
            };
            let (mode, uid, gid) = match d.orig(path) {
                Some(o) => {
                    let st = o.stat.as_ref();
                    let (mode, uid, gid) =
                        st.map(|s| (s.mode, s.uid, s.gid)).unwrap_or((0o644, 0, 0));
                    let backup = format!("{path}-");
                    self.root.write_file_atomic(
                        &backup,
                        o.data.as_slice(),
                        mode & 0o664,
                        uid,
                        gid,
                    )?;
                    if let Some(s) = st {
                        // utime(2) with whole seconds, as shadow-utils does.
                        self.root
                            .set_times(&backup, (s.atime.0, 0), (s.mtime.0, 0))?;
                    }
                    (mode & 0o664, uid, gid)
                }
                None => (0o644, 0, 0),
            };
            self.root
                .write_file_atomic(path, bytes.as_slice(), mode, uid, gid)?;
            log::info!("updated {path} in {}", self.root.path().display());
        }
        Ok(())
    }

    fn range(&self, kind: IdKind, system: bool) -> Result<alloc::Range> {
        alloc::range(&self.defs, kind, system)
    }

    fn new_uid(&self, name: &str, system: bool) -> Result<u32> {
        let r = self.range(IdKind::User, system)?;
        let local = self.db.passwd.entries().map(|p| p.uid);
        alloc::find_new_id(r, system, local, |id| self.db.getpwuid(id).is_some(), None).ok_or(
            Error::IdsExhausted {
                name: name.to_string(),
                what: "uid",
            },
        )
    }

    fn new_gid(&self, name: &str, system: bool, preferred: Option<u32>) -> Result<u32> {
        let r = self.range(IdKind::Group, system)?;
        let local = self.db.group.entries().map(|g| g.gid);
        alloc::find_new_id(
            r,
            system,
            local,
            |id| self.db.getgrgid(id).is_some(),
            preferred,
        )
        .ok_or(Error::IdsExhausted {
            name: name.to_string(),
            what: "gid",
        })
    }

    fn check_field(name: &str, field: &'static str, value: &str) -> Result<()> {
        if names::is_valid_field(value) {
            Ok(())
        } else {
            Err(Error::InvalidField {
                name: name.to_string(),
                field,
            })
        }
    }

    fn check_shell(name: &str, shell: &str) -> Result<()> {
        if names::is_valid_field(shell) && (shell.starts_with('/') || shell.starts_with('*')) {
            Ok(())
        } else {
            Err(Error::InvalidField {
                name: name.to_string(),
                field: "shell",
            })
        }
    }

    fn check_home(name: &str, home: &str) -> Result<()> {
        if names::is_valid_field(home) && home.starts_with('/') {
            Ok(())
        } else {
            Err(Error::InvalidField {
                name: name.to_string(),
                field: "home directory",
            })
        }
    }

    fn check_id(name: &str, id: u32) -> Result<u32> {
        if id == u32::MAX {
            return Err(Error::InvalidId {
                name: name.to_string(),
                id,
            });
        }
        Ok(id)
    }

    // ---- groups ----

    fn apply_group(&mut self, spec: &GroupSpec) -> Result<GroupOutcome> {
        let password = nonempty(&spec.password_hash);
        if let Some(p) = password {
            Self::check_field(&spec.name, "password hash", p)?;
        }
        let exists = self.db.getgrnam(&spec.name).is_some();
        let outcome = |action, gid| GroupOutcome {
            name: spec.name.clone(),
            action,
            gid,
        };
        if !spec.should_exist {
            if !exists {
                return Ok(outcome(Action::Absent, None));
            }
            let gid = self.groupdel(&spec.name)?;
            return Ok(outcome(Action::Removed, Some(gid)));
        }
        if exists {
            let gid = self.groupmod(&spec.name, spec.gid, password)?;
            Ok(outcome(Action::Modified, Some(gid)))
        } else {
            let gid = self.groupadd(&spec.name, spec.gid, password, spec.system)?;
            Ok(outcome(Action::Created, Some(gid)))
        }
    }

    fn groupadd(
        &mut self,
        name: &str,
        gid: Option<u32>,
        password: Option<&str>,
        system: bool,
    ) -> Result<u32> {
        if !names::is_valid_group_name(name) {
            return Err(Error::InvalidGroupName(name.to_string()));
        }
        let gid = match gid {
            Some(g) => {
                let g = Self::check_id(name, g)?;
                if let Some(other) = self.db.getgrgid(g) {
                    return Err(Error::GidTaken {
                        name: name.to_string(),
                        gid: g,
                        other: other.name.clone(),
                    });
                }
                g
            }
            None => self.new_gid(name, system, None)?,
        };
        let shadowed = self.db.gshadow.is_some();
        let passwd = match password {
            Some(_) if shadowed => "x".to_string(),
            Some(p) => p.to_string(),
            None => "x".to_string(),
        };
        self.db.group.update(GrEnt {
            name: name.to_string(),
            passwd,
            gid,
            members: Vec::new(),
        })?;
        if let Some(gs) = &mut self.db.gshadow {
            gs.update(SgEnt {
                name: name.to_string(),
                passwd: password.unwrap_or("!").to_string(),
                admins: Vec::new(),
                members: Vec::new(),
            })?;
        }
        Ok(gid)
    }

    fn groupmod(&mut self, name: &str, gid: Option<u32>, password: Option<&str>) -> Result<u32> {
        let current = self.db.getgrnam(name).map(|g| g.gid).unwrap_or_default();
        let mut new_gid = None;
        if let Some(g) = gid {
            let g = Self::check_id(name, g)?;
            if g != current {
                if let Some(other) = self.db.getgrgid(g) {
                    return Err(Error::GidTaken {
                        name: name.to_string(),
                        gid: g,
                        other: other.name.clone(),
                    });
                }
                new_gid = Some(g);
            }
        }
        let mut grp = self.db.group.find(name).cloned().ok_or(Error::NotLocal {
            name: name.to_string(),
            file: GROUP,
        })?;
        let old_gid = grp.gid;
        if let Some(g) = new_gid {
            grp.gid = g;
        }
        if let Some(p) = password {
            if self.db.gshadow.is_none() || grp.passwd != "x" {
                grp.passwd = p.to_string();
            }
            if let Some(gs) = &mut self.db.gshadow {
                if let Some(mut sg) = gs.find(name).cloned() {
                    sg.passwd = p.to_string();
                    gs.update(sg)?;
                } else if grp.passwd == "x" {
                    // group says "see gshadow" but gshadow has no entry: create it.
                    gs.update(SgEnt {
                        name: name.to_string(),
                        passwd: p.to_string(),
                        admins: Vec::new(),
                        members: grp.members.clone(),
                    })?;
                }
            }
        }
        if let Some(g) = new_gid {
            // Users whose primary group this is follow the new gid.
            let users: Vec<String> = self
                .db
                .users()
                .filter(|u| u.gid == old_gid)
                .map(|u| u.name.clone())
                .collect();
            for u in users {
                let mut pw = self.db.passwd.find(&u).cloned().ok_or(Error::NotLocal {
                    name: u,
                    file: PASSWD,
                })?;
                pw.gid = g;
                self.db.passwd.update(pw)?;
            }
        }
        let result = grp.gid;
        self.db.group.update(grp)?;
        Ok(result)
    }

    fn groupdel(&mut self, name: &str) -> Result<u32> {
        let grp = self.db.group.find(name).cloned().ok_or(Error::NotLocal {
            name: name.to_string(),
            file: GROUP,
        })?;
        if let Some(u) = self.db.users().find(|u| u.gid == grp.gid) {
            return Err(Error::GroupBusy {
                group: name.to_string(),
                user: u.name.clone(),
            });
        }
        self.db.group.remove(name)?;
        if let Some(gs) = &mut self.db.gshadow {
            gs.remove(name)?;
        }
        Ok(grp.gid)
    }

    // ---- users ----

    fn apply_user(&mut self, spec: &UserSpec) -> Result<UserOutcome> {
        let existing = self.db.getpwnam(&spec.name).cloned();
        if !spec.should_exist {
            return match existing {
                None => Ok(UserOutcome {
                    name: spec.name.clone(),
                    action: Action::Absent,
                    uid: None,
                    gid: None,
                    home: None,
                }),
                Some(_) => self.userdel(&spec.name),
            };
        }
        match existing {
            Some(pw) => self.usermod(spec, pw),
            None => self.useradd(spec),
        }
    }

    fn mail_file(&self, user: &str) -> Option<String> {
        let dir = match self.defs.get_str("MAIL_DIR") {
            Some(d) => d.to_string(),
            None if self.defs.get_str("MAIL_FILE").is_none() => "/var/mail".to_string(),
            None => return None,
        };
        Some(format!("{dir}/{user}"))
    }

    fn lastlog_uid_max(&self) -> u64 {
        // shadow-utils compares as uid_t.
        u64::from(self.defs.get_id("LASTLOG_UID_MAX", 0xFFFF_FFFF))
    }

    fn useradd(&mut self, spec: &UserSpec) -> Result<UserOutcome> {
        let name = spec.name.as_str();
        if !names::is_valid_user_name(name) {
            return Err(Error::InvalidUserName(name.to_string()));
        }
        let home_arg = nonempty(&spec.home_dir);
        if let Some(h) = home_arg {
            Self::check_home(name, h)?;
        }
        let comment = nonempty(&spec.gecos).unwrap_or("");
        Self::check_field(name, "GECOS", comment)?;
        let password = nonempty(&spec.password_hash).unwrap_or("*");
        Self::check_field(name, "password hash", password)?;
        let shell_arg = nonempty(&spec.shell);
        if let Some(s) = shell_arg {
            Self::check_shell(name, s)?;
        }
        if let Some(u) = spec.uid {
            Self::check_id(name, u)?;
        }
        let primary = match nonempty(&spec.primary_group) {
            Some(g) => Some(self.db.getgr_nam_gid(g).map(|g| g.gid).ok_or_else(|| {
                Error::GroupNotFound {
                    user: name.to_string(),
                    group: g.to_string(),
                }
            })?),
            None => None,
        };
        // useradd's --groups only looks at the target's own /etc/group.
        let mut supplementary: Vec<String> = Vec::new();
        for g in spec
            .groups
            .join(",")
            .split(',')
            .filter(|_| !spec.groups.is_empty())
        {
            let found = match parse_gid_arg(g) {
                Some(gid) => self.db.group.entries().find(|e| e.gid == gid),
                None => self.db.group.find(g),
            };
            let found = found.ok_or_else(|| Error::GroupNotFound {
                user: name.to_string(),
                group: g.to_string(),
            })?;
            supplementary.push(found.name.clone());
        }
        let user_group =
            primary.is_none() && !spec.no_user_group && self.defs.get_bool("USERGROUPS_ENAB");
        let default_gid = match &self.useradd.group {
            Some(v) => match self.db.getgr_nam_gid(v) {
                Some(g) => g.gid,
                None => {
                    log::warn!("/etc/default/useradd: group {v:?} does not exist; ignoring GROUP");
                    defs::DEFAULT_GROUP_GID
                }
            },
            None => defs::DEFAULT_GROUP_GID,
        };
        let mut gid = primary.unwrap_or(default_gid);
        let home = match home_arg {
            Some(h) => h.to_string(),
            None => format!("{}/{}", self.useradd.home, name),
        };
        let shell = shell_arg
            .map(str::to_string)
            .unwrap_or_else(|| self.useradd.shell.clone());
        let expire = defs::str_to_day(&self.useradd.expire).ok_or_else(|| {
            Error::Config("EXPIRE in /etc/default/useradd is not a date".to_string())
        })?;
        let no_log_init = spec.no_log_init || self.useradd.log_init == "no";

        let (uid_min, uid_max) = (
            self.defs.get_id("UID_MIN", 1000),
            self.defs.get_id("UID_MAX", 60000),
        );
        let in_user_range = match spec.uid {
            None | Some(0) => true,
            Some(u) => (uid_min..=uid_max).contains(&u),
        };
        let (_, _, subuid_count) = alloc::sub_settings(&self.defs, IdKind::User);
        let (_, _, subgid_count) = alloc::sub_settings(&self.defs, IdKind::Group);
        let want_subuid =
            subuid_count > 0 && self.db.subuid.is_some() && !spec.system && in_user_range;
        let want_subgid =
            subgid_count > 0 && self.db.subgid.is_some() && !spec.system && in_user_range;

        if user_group && self.db.getgrnam(name).is_some() {
            return Err(Error::UserGroupExists {
                name: name.to_string(),
            });
        }
        let uid = match spec.uid {
            Some(u) => {
                if let Some(other) = self.db.getpwuid(u) {
                    return Err(Error::UidTaken {
                        name: name.to_string(),
                        uid: u,
                        other: other.name.clone(),
                    });
                }
                u
            }
            None => self.new_uid(name, spec.system)?,
        };
        if user_group {
            gid = self.new_gid(name, spec.system, Some(uid))?;
            let shadowed = self.db.gshadow.is_some();
            self.db.group.update(GrEnt {
                name: name.to_string(),
                passwd: if shadowed { "x" } else { "!" }.to_string(),
                gid,
                members: Vec::new(),
            })?;
            if let Some(gs) = &mut self.db.gshadow {
                gs.update(SgEnt {
                    name: name.to_string(),
                    passwd: "!".to_string(),
                    admins: Vec::new(),
                    members: Vec::new(),
                })?;
            }
        }
        let subuid_start = if want_subuid {
            Some(self.new_sub_range(name, IdKind::User)?)
        } else {
            None
        };
        let subgid_start = if want_subgid {
            Some(self.new_sub_range(name, IdKind::Group)?)
        } else {
            None
        };

        if !no_log_init && self.db.getpwuid(uid).is_none() {
            self.actions.push(FsAction::ResetLogs {
                uid,
                lastlog_uid_max: self.lastlog_uid_max(),
            });
        }
        let shadowed = self.db.shadow.is_some();
        self.db.passwd.update(PwEnt {
            name: name.to_string(),
            passwd: if shadowed {
                "x".to_string()
            } else {
                password.to_string()
            },
            uid,
            gid,
            gecos: comment.to_string(),
            dir: home.clone(),
            shell,
        })?;
        let age = |key: &str, d: &LoginDefs| -> Option<i64> {
            let v = d.get_num(key, -1);
            (v != -1).then_some(v)
        };
        let sp = if spec.system {
            SpEnt {
                name: name.to_string(),
                passwd: password.to_string(),
                last_change: self.today,
                min: None,
                max: None,
                warn: None,
                inactive: None,
                expire: None,
                flag: None,
            }
        } else {
            SpEnt {
                name: name.to_string(),
                passwd: password.to_string(),
                last_change: self.today,
                min: age("PASS_MIN_DAYS", &self.defs),
                max: age("PASS_MAX_DAYS", &self.defs),
                warn: age("PASS_WARN_AGE", &self.defs),
                inactive: (self.useradd.inactive != -1).then_some(self.useradd.inactive),
                expire: (expire != -1).then_some(expire),
                flag: None,
            }
        };
        if let Some(t) = &mut self.db.shadow {
            t.update(sp)?;
        }
        if let (Some(start), Some(t)) = (subuid_start, &mut self.db.subuid) {
            t.append(SubEnt {
                owner: name.to_string(),
                start,
                count: subuid_count,
            });
        }
        if let (Some(start), Some(t)) = (subgid_start, &mut self.db.subgid) {
            t.append(SubEnt {
                owner: name.to_string(),
                start,
                count: subgid_count,
            });
        }
        self.add_to_groups(name, &supplementary)?;

        if !spec.no_create_home {
            let umask = self.defs.get_num("UMASK", 0o22);
            let mode = self.defs.get_num("HOME_MODE", 0o777 & !umask);
            self.actions.push(FsAction::CreateHome {
                user: name.to_string(),
                home: home.clone(),
                uid,
                gid,
                // mode_t cast in shadow-utils; only the permission bits matter to chmod.
                mode: (mode as u32) & 0o7777,
                skel: self.useradd.skel.clone(),
            });
        }
        if !spec.system && self.useradd.create_mail_spool.eq_ignore_ascii_case("yes") {
            if let Some(file) = self.mail_file(name) {
                let (mgid, mode) = match self.db.getgrnam("mail") {
                    Some(g) => (g.gid, 0o660),
                    None => (gid, 0o600),
                };
                self.actions.push(FsAction::CreateMail {
                    file,
                    uid,
                    gid: mgid,
                    mode,
                });
            }
        }
        Ok(UserOutcome {
            name: name.to_string(),
            action: Action::Created,
            uid: Some(uid),
            gid: Some(gid),
            home: Some(home),
        })
    }

    fn new_sub_range(&mut self, name: &str, kind: IdKind) -> Result<u64> {
        let (min, max, count) = alloc::sub_settings(&self.defs, kind);
        let table = match kind {
            IdKind::User => self.db.subuid.as_mut(),
            IdKind::Group => self.db.subgid.as_mut(),
        };
        let Some(t) = table else {
            return Err(Error::IdsExhausted {
                name: name.to_string(),
                what: "subordinate id range",
            });
        };
        // shadow-utils sorts the file by range before searching (and writes it sorted).
        t.sort_by(|a, b| {
            (a.start, a.count, a.owner.as_str()).cmp(&(b.start, b.count, b.owner.as_str()))
        });
        alloc::find_free_range(t.entries(), min, max, count).ok_or(Error::IdsExhausted {
            name: name.to_string(),
            what: "subordinate id range",
        })
    }

    /// useradd's grp_update: add `user` to each listed group, in /etc/group and /etc/gshadow.
    fn add_to_groups(&mut self, user: &str, groups: &[String]) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let targets: Vec<GrEnt> = self
            .db
            .group
            .entries()
            .filter(|g| groups.contains(&g.name))
            .cloned()
            .collect();
        for mut g in targets {
            if !g.members.iter().any(|m| m == user) {
                g.members.push(user.to_string());
            }
            self.db.group.update(g)?;
        }
        let in_group: Vec<String> = self.db.group.entries().map(|g| g.name.clone()).collect();
        if let Some(gs) = &mut self.db.gshadow {
            let targets: Vec<SgEnt> = gs
                .entries()
                .filter(|s| in_group.contains(&s.name) && groups.contains(&s.name))
                .cloned()
                .collect();
            for mut s in targets {
                if !s.members.iter().any(|m| m == user) {
                    s.members.push(user.to_string());
                }
                gs.update(s)?;
            }
        }
        Ok(())
    }

    fn usermod(&mut self, spec: &UserSpec, pw: PwEnt) -> Result<UserOutcome> {
        let name = spec.name.as_str();
        let mut comment = nonempty(&spec.gecos);
        if let Some(c) = comment {
            Self::check_field(name, "GECOS", c)?;
        }
        let mut new_home = nonempty(&spec.home_dir);
        if let Some(h) = new_home {
            Self::check_home(name, h)?;
        }
        let mut new_gid = match nonempty(&spec.primary_group) {
            Some(g) => Some(self.db.getgr_nam_gid(g).map(|g| g.gid).ok_or_else(|| {
                Error::GroupNotFound {
                    user: name.to_string(),
                    group: g.to_string(),
                }
            })?),
            None => None,
        };
        // usermod resolves --groups through NSS (but only edits /etc/group and /etc/gshadow).
        let set_groups = !spec.groups.is_empty();
        let mut groups: Vec<String> = Vec::new();
        if set_groups {
            for g in spec.groups.join(",").split(',') {
                let found = self
                    .db
                    .getgr_nam_gid(g)
                    .ok_or_else(|| Error::GroupNotFound {
                        user: name.to_string(),
                        group: g.to_string(),
                    })?;
                groups.push(found.name.clone());
            }
        }
        let password = spec
            .password_hash
            .as_deref()
            .map(|p| if p.is_empty() { "*" } else { p });
        if let Some(p) = password {
            Self::check_field(name, "password hash", p)?;
        }
        let mut new_shell = nonempty(&spec.shell);
        if let Some(s) = new_shell {
            Self::check_shell(name, s)?;
        }
        let mut new_uid = match spec.uid {
            Some(u) => Some(Self::check_id(name, u)?),
            None => None,
        };
        // Options that change nothing are dropped, as usermod does.
        if new_uid == Some(pw.uid) {
            new_uid = None;
        }
        if new_gid == Some(pw.gid) {
            new_gid = None;
        }
        if new_shell == Some(pw.shell.as_str()) {
            new_shell = None;
        }
        if new_home == Some(pw.dir.as_str()) {
            new_home = None;
        }
        if comment == Some(pw.gecos.as_str()) {
            comment = None;
        }
        let outcome = |action, uid, gid, home: &str| UserOutcome {
            name: name.to_string(),
            action,
            uid: Some(uid),
            gid: Some(gid),
            home: Some(home.to_string()),
        };
        if new_uid.is_none()
            && new_gid.is_none()
            && new_shell.is_none()
            && new_home.is_none()
            && comment.is_none()
            && password.is_none()
            && !set_groups
        {
            return Ok(outcome(Action::Unchanged, pw.uid, pw.gid, &pw.dir));
        }
        if let Some(u) = new_uid {
            if let Some(other) = self.db.getpwuid(u) {
                return Err(Error::UidTaken {
                    name: name.to_string(),
                    uid: u,
                    other: other.name.clone(),
                });
            }
        }
        let mut local = self.db.passwd.find(name).cloned().ok_or(Error::NotLocal {
            name: name.to_string(),
            file: PASSWD,
        })?;
        // Check what the filesystem part will need before anything is written.
        let old_home = pw.dir.clone();
        let final_home = new_home.map(|h| {
            if h.len() > 1 {
                h.strip_suffix('/').unwrap_or(h).to_string()
            } else {
                h.to_string()
            }
        });
        if let Some(h) = &final_home {
            if self.root.stat_follow(h)?.is_some() {
                return Err(Error::HomeExists { path: h.clone() });
            }
            if let Some(st) = self.root.stat_follow(&old_home)? {
                if !st.is_dir() {
                    return Err(Error::OldHomeNotDir {
                        path: old_home.clone(),
                    });
                }
            }
        }
        let any_user_change = new_uid.is_some()
            || new_gid.is_some()
            || comment.is_some()
            || new_home.is_some()
            || new_shell.is_some()
            || password.is_some();
        if any_user_change {
            let shadowed = self.db.shadow.is_some();
            if let Some(p) = password {
                if !shadowed || local.passwd != "x" {
                    local.passwd = p.to_string();
                }
            }
            if let Some(u) = new_uid {
                local.uid = u;
            }
            if let Some(g) = new_gid {
                local.gid = g;
            }
            if let Some(c) = comment {
                local.gecos = c.to_string();
            }
            if let Some(h) = &final_home {
                local.dir = h.clone();
            }
            if let Some(s) = new_shell {
                local.shell = s.to_string();
            }
            let pw_passwd = local.passwd.clone();
            self.db.passwd.update(local)?;
            if let (Some(p), Some(t)) = (password, &mut self.db.shadow) {
                if let Some(mut sp) = t.find(name).cloned() {
                    sp.passwd = p.to_string();
                    sp.last_change = self.today;
                    t.update(sp)?;
                } else if pw_passwd == "x" {
                    let age = |key: &str| {
                        let v = self.defs.get_num(key, -1);
                        (v != -1).then_some(v)
                    };
                    let sp = SpEnt {
                        name: name.to_string(),
                        passwd: p.to_string(),
                        last_change: self.today,
                        min: age("PASS_MIN_DAYS"),
                        max: age("PASS_MAX_DAYS"),
                        warn: age("PASS_WARN_AGE"),
                        inactive: None,
                        expire: None,
                        flag: None,
                    };
                    if let Some(t) = &mut self.db.shadow {
                        t.update(sp)?;
                    }
                }
            }
        }
        if set_groups {
            self.set_groups(name, &groups)?;
        }
        let owners = Ownership {
            old_uid: Some(pw.uid),
            new_uid,
            old_gid: Some(pw.gid),
            new_gid,
        };
        if let Some(h) = &final_home {
            self.actions.push(FsAction::MoveHome {
                from: old_home.clone(),
                to: h.clone(),
                owners,
            });
        }
        if let Some(u) = new_uid {
            if let Some(file) = self.mail_file(name) {
                self.actions.push(FsAction::ChownMail {
                    file,
                    old_uid: pw.uid,
                    new_uid: u,
                });
            }
            self.actions.push(FsAction::MoveLogs {
                old_uid: pw.uid,
                new_uid: u,
                lastlog_uid_max: self.lastlog_uid_max(),
            });
        }
        if final_home.is_none() && (new_uid.is_some() || new_gid.is_some()) {
            self.actions.push(FsAction::ChownHome {
                home: old_home.clone(),
                old_uid: pw.uid,
                new_uid,
                owners,
            });
        }
        Ok(outcome(
            Action::Modified,
            new_uid.unwrap_or(pw.uid),
            new_gid.unwrap_or(pw.gid),
            final_home.as_deref().unwrap_or(&old_home),
        ))
    }

    /// usermod --groups without --append: the user ends up in exactly `groups` (among the
    /// groups of /etc/group and /etc/gshadow); gshadow administrators are left alone.
    fn set_groups(&mut self, user: &str, groups: &[String]) -> Result<()> {
        let all: Vec<GrEnt> = self.db.group.entries().cloned().collect();
        for mut g in all {
            let was = g.members.iter().any(|m| m == user);
            let is = groups.contains(&g.name);
            if was && !is {
                g.members.retain(|m| m != user);
                self.db.group.update(g)?;
            } else if !was && is {
                g.members.push(user.to_string());
                self.db.group.update(g)?;
            }
        }
        if let Some(gs) = &mut self.db.gshadow {
            let all: Vec<SgEnt> = gs.entries().cloned().collect();
            for mut s in all {
                let was = s.members.iter().any(|m| m == user);
                let is = groups.contains(&s.name);
                if was && !is {
                    s.members.retain(|m| m != user);
                    gs.update(s)?;
                } else if !was && is {
                    s.members.push(user.to_string());
                    gs.update(s)?;
                }
            }
        }
        Ok(())
    }

    fn userdel(&mut self, name: &str) -> Result<UserOutcome> {
        let pw = self.db.passwd.find(name).cloned().ok_or(Error::NotLocal {
            name: name.to_string(),
            file: PASSWD,
        })?;
        // userdel --remove refuses a home or mailbox that is not the user's; check before
        // anything is written.
        let mail = self.mail_file(name);
        if let Some(m) = &mail {
            if let Some(st) = self.root.stat_follow(m)? {
                if st.uid != pw.uid {
                    return Err(Error::NotOwned {
                        user: name.to_string(),
                        path: m.clone(),
                    });
                }
            }
        }
        if let Some(st) = self.root.stat_follow(&pw.dir)? {
            if st.uid != pw.uid {
                return Err(Error::NotOwned {
                    user: name.to_string(),
                    path: pw.dir.clone(),
                });
            }
        }
        self.db.passwd.remove(name)?;
        if let Some(t) = &mut self.db.shadow {
            t.remove(name)?;
        }
        if let Some(t) = &mut self.db.subuid {
            t.remove_where(|e| e.owner == name);
        }
        if let Some(t) = &mut self.db.subgid {
            t.remove_where(|e| e.owner == name);
        }
        let member_of: Vec<GrEnt> = self
            .db
            .group
            .entries()
            .filter(|g| g.members.iter().any(|m| m == name))
            .cloned()
            .collect();
        for mut g in member_of {
            g.members.retain(|m| m != name);
            self.db.group.update(g)?;
        }
        if self.defs.get_bool("USERGROUPS_ENAB") {
            self.remove_user_group(name, pw.gid)?;
        }
        if let Some(gs) = &mut self.db.gshadow {
            let touched: Vec<SgEnt> = gs
                .entries()
                .filter(|s| s.members.iter().chain(&s.admins).any(|m| m == name))
                .cloned()
                .collect();
            for mut s in touched {
                s.members.retain(|m| m != name);
                s.admins.retain(|m| m != name);
                gs.update(s)?;
            }
        }
        if let Some(m) = mail {
            self.actions.push(FsAction::RemoveMail {
                user: name.to_string(),
                file: m,
            });
        }
        self.actions.push(FsAction::RemoveHome {
            user: name.to_string(),
            home: pw.dir.clone(),
        });
        Ok(UserOutcome {
            name: name.to_string(),
            action: Action::Removed,
            uid: Some(pw.uid),
            gid: Some(pw.gid),
            home: Some(pw.dir),
        })
    }

    /// userdel's remove_usergroup: the group named like the user goes too when it is the
    /// user's primary group, has no members and is nobody else's primary group.
    fn remove_user_group(&mut self, name: &str, user_gid: u32) -> Result<()> {
        let Some(g) = self.db.group.find(name).cloned() else {
            return Ok(());
        };
        if g.gid != user_gid {
            log::info!("group {name:?} is not the primary group of user {name:?}; keeping it");
            return Ok(());
        }
        if !g.members.is_empty() {
            log::info!("group {name:?} has other members; keeping it");
            return Ok(());
        }
        if let Some(u) = self.db.users().find(|u| u.name != name && u.gid == g.gid) {
            log::info!(
                "group {name:?} is the primary group of {:?}; keeping it",
                u.name
            );
            return Ok(());
        }
        self.db.group.remove(name)?;
        if let Some(gs) = &mut self.db.gshadow {
            gs.remove(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsswitch_sources() {
        assert_eq!(nss_sources(None, "passwd"), vec![Source::Files]);
        let conf = "passwd: files altfiles systemd\ngroup: [SUCCESS=merge] altfiles files # c\n";
        assert_eq!(
            nss_sources(Some(conf), "passwd"),
            vec![Source::Files, Source::Alt]
        );
        assert_eq!(
            nss_sources(Some(conf), "group"),
            vec![Source::Alt, Source::Files]
        );
        assert_eq!(
            nss_sources(Some("passwd: sss\n"), "passwd"),
            vec![Source::Files]
        );
    }

    #[test]
    fn gid_arguments() {
        assert_eq!(parse_gid_arg("100"), Some(100));
        assert_eq!(parse_gid_arg("wheel"), None);
        assert_eq!(parse_gid_arg(""), None);
        assert_eq!(parse_gid_arg("12a"), None);
    }
}
