//! Owners of files, directories and links: by id, or by name looked up in the target's account
//! files (never the host's), with a cache so that thousands of entries owned by the same user
//! cost one lookup.

use std::collections::HashMap;

use super::Error;
use crate::config::model::{NodeGroup, NodeUser};
use crate::system::passwd;
use crate::system::rootfs::Root;

/// Converts a config id to a uid/gid. `-1` (and anything out of range) is refused: `chown`
/// would read `u32::MAX` as "leave unchanged".
pub fn id(v: i64) -> Result<u32, Error> {
    u32::try_from(v)
        .ok()
        .filter(|&i| i != u32::MAX)
        .ok_or(Error::InvalidId(v))
}

/// How an entry names its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec<'c> {
    /// Nothing given: the default applies.
    Default,
    Id(u32),
    Name(&'c str),
}

/// The user of an entry: an `id` wins over a `name`, as with Ignition.
pub fn user_spec(u: &NodeUser) -> Result<Spec<'_>, Error> {
    if let Some(i) = u.id {
        return Ok(Spec::Id(id(i)?));
    }
    match u.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(Spec::Name(n)),
        _ => Ok(Spec::Default),
    }
}

/// The group of an entry, like [`user_spec`].
pub fn group_spec(g: &NodeGroup) -> Result<Spec<'_>, Error> {
    if let Some(i) = g.id {
        return Ok(Spec::Id(id(i)?));
    }
    match g.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(Spec::Name(n)),
        _ => Ok(Spec::Default),
    }
}

/// Name lookups in the target, cached. The cache must be cleared when the account files
/// change ([`Owners::invalidate`]).
pub struct Owners<'r> {
    root: &'r Root,
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
}

impl<'r> Owners<'r> {
    pub fn new(root: &'r Root) -> Self {
        Owners {
            root,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// Forgets every lookup (after users and groups were written).
    pub fn invalidate(&mut self) {
        self.users.clear();
        self.groups.clear();
    }

    /// The uid of `name` in the target, `None` when there is no such user.
    pub fn uid(&mut self, name: &str) -> Result<Option<u32>, Error> {
        if let Some(v) = self.users.get(name) {
            return Ok(*v);
        }
        let v = passwd::lookup_user(self.root, name)?.map(|u| u.uid);
        self.users.insert(name.to_string(), v);
        Ok(v)
    }

    /// The gid of `name` in the target, `None` when there is no such group.
    pub fn gid(&mut self, name: &str) -> Result<Option<u32>, Error> {
        if let Some(v) = self.groups.get(name) {
            return Ok(*v);
        }
        let v = passwd::lookup_group(self.root, name)?.map(|g| g.gid);
        self.groups.insert(name.to_string(), v);
        Ok(v)
    }

    /// Resolves a user spec to a uid (`None` for the default).
    pub fn resolve_user(&mut self, s: Spec<'_>) -> Result<Option<u32>, Error> {
        match s {
            Spec::Default => Ok(None),
            Spec::Id(i) => Ok(Some(i)),
            Spec::Name(n) => self
                .uid(n)?
                .map(Some)
                .ok_or_else(|| Error::NoSuchUser(n.to_string())),
        }
    }

    /// Resolves a group spec to a gid (`None` for the default).
    pub fn resolve_group(&mut self, s: Spec<'_>) -> Result<Option<u32>, Error> {
        match s {
            Spec::Default => Ok(None),
            Spec::Id(i) => Ok(Some(i)),
            Spec::Name(n) => self
                .gid(n)?
                .map(Some)
                .ok_or_else(|| Error::NoSuchGroup(n.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_range_only() {
        assert_eq!(id(0).unwrap(), 0);
        assert_eq!(id(4294967294).unwrap(), 4294967294);
        assert!(id(-1).is_err());
        assert!(id(4294967295).is_err());
        assert!(id(1 << 40).is_err());
    }

    #[test]
    fn id_wins_over_name() {
        let u = NodeUser {
            id: Some(7),
            name: Some("core".into()),
        };
        assert_eq!(user_spec(&u).unwrap(), Spec::Id(7));
        let g = NodeGroup {
            id: None,
            name: Some("wheel".into()),
        };
        assert_eq!(group_spec(&g).unwrap(), Spec::Name("wheel"));
        assert_eq!(group_spec(&NodeGroup::default()).unwrap(), Spec::Default);
    }
}
