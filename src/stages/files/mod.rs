//! The files stage: users and groups, files, directories and links, systemd units, LUKS key
//! files and crypttab, and the result file, written into the target root.
//!
//! Order (Ignition's): passwd (groups, then users, their home directories and SSH keys) →
//! files, directories and links → systemd units, drop-ins, masks and presets → LUKS key files
//! and `/etc/crypttab` → `/etc/.ignition-result.json`.
//!
//! Like every stage it plans before it writes: every path is resolved inside the root, checked
//! against the other entries and against what is already in the tree, every owner name is
//! looked up in the target's account files, unit names are checked, the LUKS keys handed over
//! by the disks stage are found, the boot id is read. Only when all of that passed is anything
//! written, so a config that cannot be applied leaves the tree as it was. What can still fail
//! afterwards is what cannot be known in advance: a download, a full disk, a rule of the
//! account files (those are checked as one transaction before the account files are touched).
//!
//! Every write goes through [`crate::system::rootfs::Root`], so symlinks already in the tree
//! never lead outside it. See `docs/files-stage.md` for the behaviour in detail.

mod entries;
mod luks;
mod owners;
mod result;
mod units;
mod users;

use std::fmt;

use super::{Context, Failure, Mode};
use crate::config::JsonPath;
use crate::fetch;
use crate::system::command;
use crate::system::passwd;
use crate::system::rootfs::{self, Root};

pub use luks::crypttab_line;
pub use result::{format_rfc3339, ResultReport};

/// Why an operation of the files stage failed. Messages name paths and config entries, never
/// contents, hashes of passwords or keys.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fs(#[from] rootfs::Error),
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error(transparent)]
    Passwd(#[from] passwd::Error),
    #[error(transparent)]
    Command(#[from] command::Error),
    #[error("{path:?} resolves to {resolved:?} after symlink chasing, but the entry with path {other:?} also resolves there")]
    Collision {
        path: String,
        resolved: String,
        other: String,
    },
    #[error("a non-regular file exists at {0:?} and overwrite is false")]
    NotRegular(String),
    #[error("a file exists at {0:?} and overwrite is false")]
    FileExists(String),
    #[error("a non-directory exists at {0:?} and overwrite is false")]
    NotDirectory(String),
    #[error("a different {what} exists at {path:?} and overwrite is false")]
    LinkMismatch { path: String, what: &'static str },
    #[error("{path:?} is below {ancestor:?}, which this config makes a {what}")]
    UnderNonDirectory {
        path: String,
        ancestor: String,
        what: &'static str,
    },
    #[error("hard link target {0:?} does not exist and no entry of the config creates it")]
    HardLinkTargetMissing(String),
    #[error("hard link target {0:?} is a directory")]
    HardLinkTargetIsDir(String),
    #[error("no such user {0:?} in the target's account files")]
    NoSuchUser(String),
    #[error("no such group {0:?} in the target's account files")]
    NoSuchGroup(String),
    #[error("{0} is not a valid user or group id")]
    InvalidId(i64),
    #[error("the target root has no /etc/passwd")]
    NoPasswdFile,
    #[error("invalid unit name {0:?}")]
    InvalidUnitName(String),
    #[error("invalid drop-in name {0:?}")]
    InvalidDropinName(String),
    #[error("invalid LUKS volume name {0:?}")]
    InvalidLuksName(String),
    #[error("no key for LUKS volume {0:?} was handed over by the disks stage")]
    MissingLuksKey(String),
    #[error("LUKS volume {0:?} has no device")]
    MissingLuksDevice(String),
    #[error("cryptsetup printed no UUID for LUKS volume {0:?}")]
    EmptyLuksUuid(String),
    #[error("{0} cannot be applied to a directory tree")]
    Unsupported(&'static str),
    #[error("reading the boot id from {path}")]
    BootId {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the result file")]
    ResultEncode(#[source] serde_json::Error),
}

impl Error {
    /// The fetch error behind this one, if any (also through a failed atomic write).
    pub fn fetch_error(&self) -> Option<&fetch::Error> {
        match self {
            Error::Fetch(e) => Some(e),
            Error::Fs(rootfs::Error::Fill { source, .. }) => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<fetch::Error>()),
            _ => None,
        }
    }
}

/// The JSON path of an entry of a config list, e.g. `$.storage.files.3`.
pub(crate) fn entry_path(section: &str, list: &str, index: usize) -> JsonPath {
    JsonPath::root().key(section).key(list).index(index)
}

/// A failure of `operation` caused by `err`, at `path`, with a hint derived from the error.
pub(crate) fn failure(operation: impl fmt::Display, path: Option<JsonPath>, err: Error) -> Failure {
    let hint = hint_for(&err);
    let mut f = Failure::new(operation.to_string());
    if let Some(p) = path {
        f = f.at(p);
    }
    if let Some(h) = hint {
        f = f.hint(h);
    }
    f.caused_by(err)
}

fn hint_for(err: &Error) -> Option<String> {
    if let Some(fe) = err.fetch_error() {
        let h = match fe {
            fetch::Error::NeedsNetwork { .. } => {
                "this resource needs the network; it cannot be fetched offline"
            }
            fe => fe.hint().unwrap_or("check the source and the network"),
        };
        return Some(h.to_string());
    }
    let h = match err {
        Error::Collision { .. } => "give each entry a path that names a different place in the target",
        Error::NotRegular(_) | Error::FileExists(_) | Error::NotDirectory(_) | Error::LinkMismatch { .. } => {
            "set \"overwrite\": true to replace what is there"
        }
        Error::UnderNonDirectory { .. } => {
            "an entry can only be placed inside a directory, not below a file or a link of the config"
        }
        Error::HardLinkTargetMissing(_) | Error::HardLinkTargetIsDir(_) => {
            "a hard link's target must be an existing file, or a file or symlink of this config"
        }
        Error::NoSuchUser(_) => "add the user under passwd.users or use \"id\" instead of \"name\"",
        Error::NoSuchGroup(_) => "add the group under passwd.groups or use \"id\" instead of \"name\"",
        Error::InvalidId(_) => "ids are between 0 and 4294967294",
        Error::NoPasswdFile => "users and groups need the target's /etc/passwd: is the root filesystem mounted at the root?",
        Error::InvalidUnitName(_) | Error::InvalidDropinName(_) => {
            "a unit or drop-in name is a plain file name such as \"foo.service\" or \"10-foo.conf\""
        }
        Error::InvalidLuksName(_) => "a LUKS volume name is a plain name such as \"data\"",
        Error::MissingLuksKey(_) => "the disks stage must run before the files stage on the same state file",
        Error::Unsupported(_) => "pass --ignore-unsupported to skip it",
        Error::Passwd(passwd::Error::NoPasswd) => {
            "users and groups need the target's /etc/passwd: is the root filesystem mounted at the root?"
        }
        _ => return None,
    };
    Some(h.to_string())
}

/// What the stage does with sections that `ember apply` cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    Do,
    Skip,
}

/// Decides whether a section that needs a booting machine (users and groups, LUKS) is done.
fn supported(
    ctx: &Context,
    present: bool,
    what: &'static str,
    path: JsonPath,
) -> Result<Support, Failure> {
    if !present {
        return Ok(Support::Do);
    }
    match ctx.settings.mode {
        Mode::Boot => Ok(Support::Do),
        Mode::Apply {
            ignore_unsupported: true,
        } => {
            log::warn!("skipping {what}: not supported when applying to a directory tree");
            Ok(Support::Skip)
        }
        Mode::Apply {
            ignore_unsupported: false,
        } => Err(failure(
            format!("checking {what}"),
            Some(path),
            Error::Unsupported(what),
        )),
    }
}

/// One line of the files stage's plan, for `ember plan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLine {
    /// What will be done, e.g. `create file /etc/motd (contents: inline data)`; paths and
    /// names only, never contents.
    pub action: String,
    /// The config entry it comes from.
    pub path: Option<JsonPath>,
    /// Whether something already in the target is lost (an overwritten file, a replaced
    /// directory, a deleted user).
    pub destructive: bool,
}

/// As the log shows it: the action, then the config entry in parentheses.
impl fmt::Display for PlanLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} ({p})", self.action),
            None => f.write_str(&self.action),
        }
    }
}

impl PlanLine {
    pub(crate) fn new(action: impl Into<String>, path: Option<JsonPath>) -> Self {
        PlanLine {
            action: action.into(),
            path,
            destructive: false,
        }
    }

    pub(crate) fn destructive(mut self) -> Self {
        self.destructive = true;
        self
    }
}

/// Opens the target root, decides whether users/groups and LUKS volumes are handled here (see
/// [`supported`]), and plans the users: the start shared by [`plan`] and [`run`].
fn open_and_plan_users(ctx: &Context) -> Result<(Root, bool, bool, users::Plan), Failure> {
    let root =
        Root::open(ctx.root).map_err(|e| failure("opening the target root", None, Error::Fs(e)))?;
    let cfg = ctx.config;
    let passwd_present = !cfg.passwd.users.is_empty() || !cfg.passwd.groups.is_empty();
    let do_passwd = supported(
        ctx,
        passwd_present,
        "users and groups",
        JsonPath::root().key("passwd"),
    )? == Support::Do;
    let do_luks = supported(
        ctx,
        !cfg.storage.luks.is_empty(),
        "LUKS volumes",
        JsonPath::root().key("storage").key("luks"),
    )? == Support::Do;
    let users_plan = if do_passwd {
        users::plan(&root, cfg)?
    } else {
        users::Plan::default()
    };
    Ok((root, do_passwd, do_luks, users_plan))
}

/// What the files stage would do, in its order, with the checks [`run`] makes before writing;
/// writes nothing. LUKS keys are not looked for (the disks stage hands them over when it runs).
pub fn plan(ctx: &Context) -> Result<Vec<PlanLine>, Failure> {
    let cfg = ctx.config;
    let (root, do_passwd, do_luks, users_plan) = open_and_plan_users(ctx)?;
    let mut owners = owners::Owners::new(&root);
    let mut lines = Vec::new();
    if do_passwd {
        lines.extend(users::plan_lines(&root, cfg, &mut owners, ctx.settings)?);
    }
    let entries_plan = entries::plan(&root, cfg, ctx.fetcher, &mut owners, &users_plan)?;
    lines.extend(entries_plan.lines());
    lines.extend(units::plan(&root, cfg)?.lines());
    if do_luks && ctx.settings.mode == Mode::Boot {
        lines.extend(luks::plan_with(cfg, None)?.lines());
    }
    if let (Some(path), Mode::Boot) = (&ctx.settings.result_file, ctx.settings.mode) {
        let r = result::plan(&root, path, ctx.settings, ctx.state)?;
        lines.push(r.line());
    }
    Ok(lines)
}

/// Runs the files stage.
pub fn run(ctx: &mut Context) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let cfg = ctx.config;

    // ---- Plan: nothing below writes until every check has passed.
    let (root, do_passwd, do_luks, users_plan) = open_and_plan_users(ctx)?;
    let mut owners = owners::Owners::new(&root);
    let mut entries_plan = entries::plan(&root, cfg, ctx.fetcher, &mut owners, &users_plan)?;
    entries_plan.prefetch(ctx.fetcher)?;
    let units_plan = units::plan(&root, cfg)?;
    let luks_plan = if do_luks && ctx.settings.mode == Mode::Boot {
        luks::plan(cfg, ctx.state)?
    } else {
        luks::Plan::default()
    };
    let result_plan = match (&ctx.settings.result_file, ctx.settings.mode) {
        (Some(path), Mode::Boot) => Some(result::plan(&root, path, ctx.settings, ctx.state)?),
        _ => None,
    };

    users_plan.log();
    entries_plan.log();
    units_plan.log();
    luks_plan.log();
    if let Some(r) = &result_plan {
        r.log();
    }

    let planned = started.elapsed();

    // ---- Write.
    if do_passwd {
        users::apply(&root, cfg, ctx.ops, ctx.settings, ctx.state)?;
    }
    entries::apply(&root, entries_plan, ctx.fetcher, ctx.ops, &mut owners)?;
    units::apply(&root, cfg, &units_plan, ctx.ops)?;
    if do_luks && ctx.settings.mode == Mode::Boot {
        luks::apply(
            &root,
            cfg,
            &luks_plan,
            ctx.fetcher,
            ctx.ops,
            ctx.settings,
            ctx.state,
        )?;
    }
    if let Some(r) = result_plan {
        result::apply(&root, r, ctx.ops)?;
    }
    log::debug!(
        "files stage: planned in {:.3} s, wrote in {:.3} s",
        planned.as_secs_f64(),
        (started.elapsed() - planned).as_secs_f64()
    );
    Ok(())
}
