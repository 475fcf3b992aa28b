//! Choosing uids, gids and subordinate id ranges as shadow-utils 4.13 does.
//!
//! Normal accounts get one more than the highest id in use within `[UID_MIN, UID_MAX]` (or the
//! lowest free id when that overflows). System accounts are allocated from the top down: one
//! less than the lowest id in use within `[SYS_UID_MIN, SYS_UID_MAX]`, then any free id going
//! down. "In use" for the highest/lowest scan means the target's `/etc/passwd` (resp.
//! `/etc/group`); every candidate is also checked against all the sources the target's NSS
//! would consult (so ids taken in `/usr/lib/passwd` under nss-altfiles are skipped too).

use std::collections::HashSet;

use super::db::SubEnt;
use super::defs::LoginDefs;
use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    User,
    Group,
}

impl IdKind {
    fn keys(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            IdKind::User => ("UID_MIN", "UID_MAX", "SYS_UID_MIN", "SYS_UID_MAX"),
            IdKind::Group => ("GID_MIN", "GID_MAX", "SYS_GID_MIN", "SYS_GID_MAX"),
        }
    }
}

/// An allocation range, inclusive, and the lowest id a caller may ask for explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub min: u32,
    pub max: u32,
    pub preferred_min: u32,
}

pub(crate) fn range(defs: &LoginDefs, kind: IdKind, system: bool) -> Result<Range, Error> {
    let (k_min, k_max, k_sys_min, k_sys_max) = kind.keys();
    if system {
        let mut min = defs.get_id(k_sys_min, 101);
        let default_max = defs.get_id(k_min, 1000).wrapping_sub(1);
        let max = defs.get_id(k_sys_max, u64::from(default_max));
        if max < min {
            return Err(Error::Config(format!(
                "{k_sys_min} ({min}) is above {k_sys_max} ({max})"
            )));
        }
        // 0 is root's and the downward search cannot handle it.
        if min == 0 {
            min = 1;
        }
        Ok(Range {
            min,
            max,
            preferred_min: 1,
        })
    } else {
        let min = defs.get_id(k_min, 1000);
        let max = defs.get_id(k_max, 60000);
        if max < min {
            return Err(Error::Config(format!(
                "{k_min} ({min}) is above {k_max} ({max})"
            )));
        }
        Ok(Range {
            min,
            max,
            preferred_min: min,
        })
    }
}

/// Picks a new id. `local` are the ids in the target's own file, in file order; `taken` says
/// whether any name service source already uses an id. A `preferred` id is used when it is in
/// `[preferred_min, max]` and free.
pub(crate) fn find_new_id(
    r: Range,
    system: bool,
    local: impl Iterator<Item = u32>,
    taken: impl Fn(u32) -> bool,
    preferred: Option<u32>,
) -> Option<u32> {
    if let Some(p) = preferred {
        if p >= r.preferred_min && p <= r.max && !taken(p) {
            return Some(p);
        }
    }
    let (min, max) = (i64::from(r.min), i64::from(r.max));
    let mut used_local = HashSet::new();
    let mut lowest = max;
    let mut highest = min;
    for id in local {
        let id64 = i64::from(id);
        if id64 <= lowest && id64 >= min {
            lowest = id64 - 1;
        }
        if id64 >= highest && id64 <= max {
            highest = id64 + 1;
        }
        if (min..=max).contains(&id64) {
            used_local.insert(id);
        }
    }
    let free = |id: i64| -> Option<u32> {
        let id = u32::try_from(id).ok()?;
        (!used_local.contains(&id) && !taken(id)).then_some(id)
    };
    if system {
        if lowest < min {
            lowest = max;
        }
        if let Some(id) = (min..=lowest).rev().find_map(free) {
            return Some(id);
        }
        if lowest != max {
            return (min..=max).rev().find_map(free);
        }
    } else {
        if highest > max {
            highest = min;
        }
        if let Some(id) = (highest..=max).find_map(free) {
            return Some(id);
        }
        if highest != min {
            return (min..=max).find_map(free);
        }
    }
    None
}

/// The subordinate id settings (`SUB_UID_MIN`, `SUB_UID_MAX`, `SUB_UID_COUNT` or the GID ones).
pub(crate) fn sub_settings(defs: &LoginDefs, kind: IdKind) -> (u64, u64, u64) {
    let p = match kind {
        IdKind::User => "UID",
        IdKind::Group => "GID",
    };
    (
        defs.get_ulong(&format!("SUB_{p}_MIN"), 100_000),
        defs.get_ulong(&format!("SUB_{p}_MAX"), 600_100_000),
        defs.get_ulong(&format!("SUB_{p}_COUNT"), 65_536),
    )
}

/// The lowest start of a free run of `count` ids in `[min, max]`, given the existing ranges
/// sorted by start. `None` when the settings are impossible or nothing is free.
pub(crate) fn find_free_range<'a>(
    sorted: impl Iterator<Item = &'a SubEnt>,
    min: u64,
    max: u64,
    count: u64,
) -> Option<u64> {
    if count == 0 || max < min || count >= max || min.checked_add(count - 1)? > max {
        return None;
    }
    let mut low = min;
    for r in sorted {
        let first = r.start;
        let last = first.wrapping_add(r.count).wrapping_sub(1);
        let high = first.min(max.saturating_add(1));
        if high > low && high - low >= count {
            return Some(low);
        }
        if low < last.wrapping_add(1) {
            low = last.wrapping_add(1);
        }
        if low > max {
            return None;
        }
    }
    (max - low + 1 >= count).then_some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal() -> Range {
        Range {
            min: 1000,
            max: 60000,
            preferred_min: 1000,
        }
    }

    fn sys() -> Range {
        Range {
            min: 101,
            max: 999,
            preferred_min: 1,
        }
    }

    #[test]
    fn normal_ids_go_above_the_highest() {
        let none = |_| false;
        assert_eq!(
            find_new_id(normal(), false, [0, 1, 65534].into_iter(), none, None),
            Some(1000)
        );
        assert_eq!(
            find_new_id(normal(), false, [1000, 1005, 1001].into_iter(), none, None),
            Some(1006)
        );
        // A gap below the highest is not reused while there is room above.
        assert_eq!(
            find_new_id(normal(), false, [1000, 1002].into_iter(), none, None),
            Some(1003)
        );
        // At the top, the lowest free id is taken.
        assert_eq!(
            find_new_id(normal(), false, [1000, 60000].into_iter(), none, None),
            Some(1001)
        );
        // Ids taken in another NSS source are skipped.
        assert_eq!(
            find_new_id(normal(), false, [1000].into_iter(), |id| id == 1001, None),
            Some(1002)
        );
    }

    #[test]
    fn system_ids_go_down_from_the_top() {
        let none = |_| false;
        assert_eq!(
            find_new_id(sys(), true, [0, 1, 2, 65534].into_iter(), none, None),
            Some(999)
        );
        assert_eq!(
            find_new_id(sys(), true, [999, 998, 100].into_iter(), none, None),
            Some(997)
        );
        assert_eq!(
            find_new_id(sys(), true, [500, 999].into_iter(), none, None),
            Some(499)
        );
        // Lowest used is the bottom of the range: search from the top for a free one.
        assert_eq!(
            find_new_id(sys(), true, [101, 999].into_iter(), none, None),
            Some(998)
        );
    }

    #[test]
    fn preferred_ids() {
        let none = |_| false;
        // A user private group takes the uid when it is free and inside the allowed range.
        assert_eq!(
            find_new_id(normal(), false, [1000].into_iter(), none, Some(1500)),
            Some(1500)
        );
        assert_eq!(
            find_new_id(
                normal(),
                false,
                [1000].into_iter(),
                |id| id == 1500,
                Some(1500)
            ),
            Some(1001)
        );
        assert_eq!(
            find_new_id(normal(), false, [1000].into_iter(), none, Some(70000)),
            Some(1001)
        );
        assert_eq!(
            find_new_id(sys(), true, [].into_iter(), none, Some(50)),
            Some(50)
        );
    }

    #[test]
    fn ranges_from_login_defs() {
        let d = LoginDefs::parse("UID_MIN 500\n");
        assert_eq!(
            range(&d, IdKind::User, true).unwrap(),
            Range {
                min: 101,
                max: 499,
                preferred_min: 1
            }
        );
        let d = LoginDefs::parse("SYS_GID_MIN 0\nSYS_GID_MAX 10\n");
        assert_eq!(range(&d, IdKind::Group, true).unwrap().min, 1);
        let d = LoginDefs::parse("UID_MIN 5000\nUID_MAX 10\n");
        assert!(range(&d, IdKind::User, false).is_err());
    }

    #[test]
    fn subordinate_ranges() {
        let e = |start, count| SubEnt {
            owner: "x".into(),
            start,
            count,
        };
        let v: Vec<SubEnt> = vec![];
        assert_eq!(
            find_free_range(v.iter(), 100_000, 600_100_000, 65536),
            Some(100_000)
        );
        let v = [e(100_000, 65536), e(165_536, 65536)];
        assert_eq!(
            find_free_range(v.iter(), 100_000, 600_100_000, 65536),
            Some(231_072)
        );
        let v = [e(165_536, 65536)];
        assert_eq!(
            find_free_range(v.iter(), 100_000, 600_100_000, 65536),
            Some(100_000)
        );
        let v = [e(120_000, 10)];
        assert_eq!(
            find_free_range(v.iter(), 100_000, 600_100_000, 65536),
            Some(120_010)
        );
        assert_eq!(find_free_range(v.iter(), 100_000, 100_010, 65536), None);
    }
}
