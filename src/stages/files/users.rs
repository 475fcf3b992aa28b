//! `passwd.groups` and `passwd.users`: mapped to [`crate::system::passwd`]'s specs and applied
//! as two transactions (groups, then users), then home directories made by the mount stage are
//! handed to their users and SSH keys are written.

use std::collections::HashSet;
use std::path::Path;

use super::{entry_path, failure, owners, Error};
use crate::config::model::{PasswdGroup, PasswdUser};
use crate::config::{Config, JsonPath};
use crate::stages::{Failure, OpLog, Settings, State};
use crate::system::passwd::{self, Action, GroupSpec, UserSpec};
use crate::system::rootfs::Root;

/// glibc's `lckpwdf` lock file, created by the passwd module.
const PWD_LOCK: &str = "/etc/.pwd.lock";

/// What the passwd step will do, and which names exist once it did.
#[derive(Debug, Default)]
pub struct Plan {
    groups: Vec<GroupSpec>,
    users: Vec<UserSpec>,
    /// Users and groups that exist after the step (created or kept by the config).
    pub will_have_users: HashSet<String>,
    pub will_have_groups: HashSet<String>,
    /// Users and groups the config deletes.
    pub removes_users: HashSet<String>,
    pub removes_groups: HashSet<String>,
}

fn id_of(v: Option<i64>, path: JsonPath) -> Result<Option<u32>, Failure> {
    v.map(owners::id)
        .transpose()
        .map_err(|e| failure("checking an id", Some(path), e))
}

fn group_spec(g: &PasswdGroup, path: JsonPath) -> Result<GroupSpec, Failure> {
    let mut s = GroupSpec::new(g.name.clone());
    s.gid = id_of(g.gid, path.key("gid"))?;
    s.password_hash = g.password_hash.clone();
    s.system = g.system == Some(true);
    s.should_exist = g.should_exist != Some(false);
    Ok(s)
}

fn user_spec(u: &PasswdUser, path: JsonPath) -> Result<UserSpec, Failure> {
    let mut s = UserSpec::new(u.name.clone());
    s.uid = id_of(u.uid, path.key("uid"))?;
    s.password_hash = u.password_hash.clone();
    s.gecos = u.gecos.clone();
    s.home_dir = u.home_dir.clone();
    s.no_create_home = u.no_create_home == Some(true);
    s.primary_group = u.primary_group.clone();
    s.groups = u.groups.clone();
    s.no_user_group = u.no_user_group == Some(true);
    s.no_log_init = u.no_log_init == Some(true);
    s.shell = u.shell.clone();
    s.system = u.system == Some(true);
    s.should_exist = u.should_exist != Some(false);
    Ok(s)
}

/// Maps the config's users and groups and checks what can be checked before writing.
pub fn plan(root: &Root, cfg: &Config) -> Result<Plan, Failure> {
    let pw = &cfg.passwd;
    let mut plan = Plan::default();
    if pw.users.is_empty() && pw.groups.is_empty() {
        return Ok(plan);
    }
    match root.lstat("/etc/passwd") {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(failure(
                "checking the target's account files",
                Some(JsonPath::root().key("passwd")),
                Error::NoPasswdFile,
            ))
        }
        Err(e) => {
            return Err(failure(
                "checking the target's account files",
                Some(JsonPath::root().key("passwd")),
                Error::Fs(e),
            ))
        }
    }
    for (i, g) in pw.groups.iter().enumerate() {
        let s = group_spec(g, entry_path("passwd", "groups", i))?;
        if s.should_exist {
            plan.will_have_groups.insert(s.name.clone());
            plan.removes_groups.remove(&s.name);
        } else {
            plan.will_have_groups.remove(&s.name);
            plan.removes_groups.insert(s.name.clone());
        }
        plan.groups.push(s);
    }
    let user_groups = usergroups_enabled(root);
    for (i, u) in pw.users.iter().enumerate() {
        let s = user_spec(u, entry_path("passwd", "users", i))?;
        if s.should_exist {
            plan.will_have_users.insert(s.name.clone());
            plan.removes_users.remove(&s.name);
            if !s.no_user_group && user_groups {
                // useradd's user private group (or an existing group of that name).
                plan.will_have_groups.insert(s.name.clone());
            }
        } else {
            plan.will_have_users.remove(&s.name);
            plan.removes_users.insert(s.name.clone());
        }
        plan.users.push(s);
    }
    Ok(plan)
}

/// Whether useradd makes a group named after each new user: `USERGROUPS_ENAB yes` in the
/// target's /etc/login.defs (shadow-utils' default is no when the key or the file is missing).
fn usergroups_enabled(root: &Root) -> bool {
    let Ok(bytes) = root.read_file_follow("/etc/login.defs") else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut value = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("USERGROUPS_ENAB") {
            // shadow-utils keeps the first definition.
            value = words
                .next()
                .map(|v| v.trim_matches('"').eq_ignore_ascii_case("yes"));
            break;
        }
    }
    value.unwrap_or(false)
}

impl Plan {
    pub fn log(&self) {
        for g in &self.groups {
            let what = if g.should_exist {
                "create or update"
            } else {
                "delete"
            };
            log::info!("plan: {what} group {:?}", g.name);
        }
        for u in &self.users {
            let what = if u.should_exist {
                "create or update"
            } else {
                "delete"
            };
            log::info!("plan: {what} user {:?}", u.name);
        }
    }
}

/// The passwd step's plan for `ember plan`: each group and user created, modified or deleted
/// (by what the target's account files hold now), password and SSH keys by count only.
pub fn plan_lines(
    root: &Root,
    cfg: &Config,
    owners: &mut owners::Owners,
    settings: &Settings,
) -> Result<Vec<super::PlanLine>, Failure> {
    use super::PlanLine;
    let mut out = Vec::new();
    for (i, g) in cfg.passwd.groups.iter().enumerate() {
        let jp = entry_path("passwd", "groups", i);
        let exists = owners
            .gid(&g.name)
            .map_err(|e| failure("looking up a group", Some(jp.clone()), e))?
            .is_some();
        out.push(match (g.should_exist != Some(false), exists) {
            (true, false) => PlanLine::new(format!("create group {:?}", g.name), Some(jp)),
            (true, true) => PlanLine::new(format!("modify group {:?}", g.name), Some(jp)),
            (false, true) => {
                PlanLine::new(format!("DELETE group {:?}", g.name), Some(jp)).destructive()
            }
            (false, false) => PlanLine::new(
                format!("nothing to do: group {:?} is absent as required", g.name),
                Some(jp),
            ),
        });
    }
    for (i, u) in cfg.passwd.users.iter().enumerate() {
        let jp = entry_path("passwd", "users", i);
        let exists = owners
            .uid(&u.name)
            .map_err(|e| failure("looking up a user", Some(jp.clone()), e))?
            .is_some();
        let mut what = match (u.should_exist != Some(false), exists) {
            (true, false) => format!("create user {:?}", u.name),
            (true, true) => format!("modify user {:?}", u.name),
            (false, true) => {
                // userdel --remove: the home directory and the mail spool go too.
                let home = passwd::lookup_user(root, &u.name)
                    .ok()
                    .flatten()
                    .map(|i| format!(" {}", i.home))
                    .unwrap_or_default();
                out.push(
                    PlanLine::new(
                        format!(
                            "DELETE user {:?} with its home directory{home} and mail spool",
                            u.name
                        ),
                        Some(jp),
                    )
                    .destructive(),
                );
                continue;
            }
            (false, false) => {
                out.push(PlanLine::new(
                    format!("nothing to do: user {:?} is absent as required", u.name),
                    Some(jp),
                ));
                continue;
            }
        };
        if u.password_hash.is_some() {
            what.push_str(", set its password hash");
        }
        if !u.ssh_authorized_keys.is_empty() {
            let n = u.ssh_authorized_keys.len();
            let file = if settings.write_authorized_keys_fragment {
                "~/.ssh/authorized_keys.d/ignition"
            } else {
                "~/.ssh/authorized_keys"
            };
            what.push_str(&format!(
                ", write {n} SSH key{} to {file}",
                if n == 1 { "" } else { "s" }
            ));
        }
        out.push(PlanLine::new(what, Some(jp)));
    }
    Ok(out)
}

/// The name an error of the passwd module is about, to find the config entry.
fn error_subject(e: &passwd::Error) -> Option<&str> {
    use passwd::Error as P;
    Some(match e {
        P::InvalidUserName(n) | P::InvalidGroupName(n) | P::NoSuchUser(n) => n,
        P::InvalidField { name, .. }
        | P::InvalidId { name, .. }
        | P::UidTaken { name, .. }
        | P::GidTaken { name, .. }
        | P::UserGroupExists { name }
        | P::NotLocal { name, .. }
        | P::IdsExhausted { name, .. }
        | P::DuplicateEntry { name, .. }
        | P::NotUtf8 { name, .. } => name,
        P::GroupNotFound { user, .. } | P::NotOwned { user, .. } => user,
        P::GroupBusy { group, .. } => group,
        _ => return None,
    })
}

fn passwd_failure(op: &str, list: &'static str, names: &[&str], e: passwd::Error) -> Failure {
    let path = match error_subject(&e).and_then(|n| names.iter().position(|x| *x == n)) {
        Some(i) => entry_path("passwd", list, i),
        None => JsonPath::root().key("passwd").key(list),
    };
    failure(op, Some(path), Error::Passwd(e))
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Created => "created",
        Action::Modified => "modified",
        Action::Unchanged => "unchanged",
        Action::Removed => "deleted",
        Action::Absent => "absent",
    }
}

/// Writes the groups, the users, the home directory ownership and the SSH keys.
pub fn apply(
    root: &Root,
    cfg: &Config,
    ops: &OpLog,
    settings: &Settings,
    state: &State,
) -> Result<(), Failure> {
    // Specs were checked by `plan`; mapping again cannot fail differently.
    let groups: Vec<GroupSpec> = cfg
        .passwd
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| group_spec(g, entry_path("passwd", "groups", i)))
        .collect::<Result<_, _>>()?;
    let users: Vec<UserSpec> = cfg
        .passwd
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| user_spec(u, entry_path("passwd", "users", i)))
        .collect::<Result<_, _>>()?;

    // shadow-utils' lock file stays behind like glibc leaves it; if this step creates it and
    // then fails, it is removed so that a refused config leaves the tree as it was.
    let lock_existed = !matches!(root.lstat(PWD_LOCK), Ok(None));
    let cleanup = |f: Failure| -> Failure {
        if !lock_existed {
            if let Err(e) = root.unlink(PWD_LOCK) {
                if !e.is_not_found() {
                    log::warn!("removing {PWD_LOCK}: {e}");
                }
            }
        }
        f
    };
    if !groups.is_empty() {
        let desc = format!(
            "writing {} group(s) to the target's account files",
            groups.len()
        );
        let op = ops.start(&desc);
        match passwd::apply_groups(root, &groups) {
            Ok(outcomes) => {
                op.finish();
                for o in outcomes {
                    log::info!("group {:?}: {}", o.name, action_word(o.action));
                }
            }
            Err(e) => {
                op.fail(&e);
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                return Err(cleanup(passwd_failure(&desc, "groups", &names, e)));
            }
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let desc = format!(
        "writing {} user(s) to the target's account files",
        users.len()
    );
    let op = ops.start(&desc);
    match passwd::apply_users(root, &users) {
        Ok(outcomes) => {
            op.finish();
            for o in outcomes {
                log::info!("user {:?}: {}", o.name, action_word(o.action));
            }
        }
        Err(e) => {
            op.fail(&e);
            return Err(cleanup(passwd_failure(&desc, "users", &names, e)));
        }
    }

    for (i, (u, spec)) in cfg.passwd.users.iter().zip(&users).enumerate() {
        if !spec.should_exist {
            continue;
        }
        let path = entry_path("passwd", "users", i);
        if !state.notated_directories.is_empty() {
            let desc = format!(
                "setting the owner of directories under the home of {:?}",
                u.name
            );
            ops.run(&desc, || {
                home_dir_permissions(root, &u.name, &state.notated_directories)
            })
            .map_err(|e| failure(&desc, Some(path.clone()), e))?;
        }
        if !u.ssh_authorized_keys.is_empty() {
            let desc = format!("writing SSH keys of user {:?}", u.name);
            ops.run(&desc, || {
                passwd::write_ssh_keys(
                    root,
                    &u.name,
                    &u.ssh_authorized_keys,
                    settings.write_authorized_keys_fragment,
                )
                .map(|_| ())
                .map_err(Error::Passwd)
            })
            .map_err(|e| failure(&desc, Some(path.key("sshAuthorizedKeys")), e))?;
        }
    }
    Ok(())
}

/// Strips the root's host path from a notated directory if it carries it; the result is an
/// in-root path.
fn in_root<'a>(root: &Root, dir: &'a str) -> &'a str {
    let host = root.path().to_string_lossy();
    let host = host.trim_end_matches('/');
    if !host.is_empty() {
        if let Some(rest) = dir.strip_prefix(host) {
            if rest.starts_with('/') {
                return rest;
            }
        }
    }
    dir
}

/// Whether `dir` is `home` or below it, by whole components.
fn at_or_under(dir: &str, home: &str) -> bool {
    let d = Path::new(dir);
    let h = Path::new(home);
    h.components().count() > 1 && d.starts_with(h)
}

/// Ignition's ModifyHomeDirPermissions: directories the mount stage created at or under the
/// user's home become the user's (uid and primary gid), mode 0700.
fn home_dir_permissions(root: &Root, name: &str, notated: &[String]) -> Result<(), Error> {
    let Some(info) = passwd::lookup_user(root, name)? else {
        return Err(Error::NoSuchUser(name.to_string()));
    };
    for d in notated {
        let d = in_root(root, d);
        if !at_or_under(d, &info.home) {
            continue;
        }
        match root.lstat(d)? {
            Some(st) if st.is_dir() => {
                root.set_permissions(d, Some(info.uid), Some(info.gid), Some(0o700))?;
                log::info!("gave {d:?} to user {name:?}, mode 0700");
            }
            _ => log::debug!("notated directory {d:?} is not a directory any more; skipped"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_prefix_is_by_component() {
        assert!(at_or_under("/home/core", "/home/core"));
        assert!(at_or_under("/home/core/x", "/home/core"));
        assert!(at_or_under("/home/core/x", "/home/core/"));
        assert!(!at_or_under("/home/core2", "/home/core"));
        assert!(!at_or_under("/var", "/"));
    }
}
