//! Deciding what to do with each configured partition: Ignition's matching rules and decision
//! matrix (`docs/operator-notes.md`, "Partition Reuse Semantics"), computed on an in-memory
//! GPT ([`crate::system::gpt::Table`]) so that nothing is written until the whole plan holds.
//!
//! The steps, as Ignition takes them:
//!
//! 1. partitions with number 0 are moved last (stable);
//! 2. `startMiB`/`sizeMiB` become sectors;
//! 3. a pretend run deletes every configured partition that exists and recreates every one that
//!    should exist (keeping the existing start and size where they are unspecified and
//!    `wipePartitionEntry` is false) to learn the real start and size of those given as 0 or
//!    left out; only values that were *specified* take the pretend's result, unspecified ones
//!    stay unspecified (they then match anything);
//! 4. each partition goes through the decision matrix against the table as it is.
//!
//! Number 0 takes the lowest free number at the time it is created (after the deletions and
//! the partitions listed before it), exactly as `sgdisk --new=0` does; such a partition never
//! matches an existing one.

use std::collections::BTreeSet;
use std::fmt;

use crate::system::gpt::{self, Guid, Op, Table};

/// A configured partition with sizes in sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// Index in the disk's `partitions` list (for JSON paths).
    pub index: usize,
    /// As configured; 0 = the next free number.
    pub number: u32,
    pub label: Option<String>,
    pub guid: Option<Guid>,
    pub type_guid: Option<Guid>,
    /// Sectors; `None` = unspecified.
    pub start: Option<u64>,
    pub size: Option<u64>,
    pub should_exist: bool,
    pub wipe_entry: bool,
    pub resize: bool,
}

/// What happens to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionAction {
    /// It exists and matches.
    Keep {
        number: u32,
        existing: gpt::Partition,
    },
    /// It does not exist and should not.
    Absent {
        number: u32,
    },
    Create {
        new: gpt::Partition,
    },
    /// `shouldExist: false` with `wipePartitionEntry: true`.
    Delete {
        existing: gpt::Partition,
    },
    /// `resize: true` and everything but the size matches: same number, start, GUIDs, label.
    Resize {
        existing: gpt::Partition,
        new: gpt::Partition,
    },
    /// `wipePartitionEntry: true` and it does not match.
    Recreate {
        existing: gpt::Partition,
        new: gpt::Partition,
        reason: String,
    },
}

impl PartitionAction {
    pub fn number(&self) -> u32 {
        match self {
            PartitionAction::Keep { number, .. } | PartitionAction::Absent { number } => *number,
            PartitionAction::Create { new } => new.number,
            PartitionAction::Delete { existing } => existing.number,
            PartitionAction::Resize { existing, .. }
            | PartitionAction::Recreate { existing, .. } => existing.number,
        }
    }

    /// Whether the action changes the table.
    pub fn changes(&self) -> bool {
        !matches!(
            self,
            PartitionAction::Keep { .. } | PartitionAction::Absent { .. }
        )
    }
}

/// Why a disk's partitions cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "partition {number} exists but is specified as nonexistant and wipePartitionEntry is false"
    )]
    ShouldNotExist { number: u32 },
    #[error("partition {number} didn't match: {reason}")]
    Mismatch { number: u32, reason: String },
    #[error("refusing to modify active partition {number}")]
    Active { number: u32 },
    #[error("partition {number} does not fit: {detail}")]
    DoesNotFit { number: u32, detail: String },
    #[error("partition {number}: {detail}")]
    Table { number: u32, detail: String },
    #[error("{0} MiB is out of range")]
    OutOfRange(i64),
}

impl PartitionError {
    /// The partition the error is about.
    pub fn number(&self) -> Option<u32> {
        match self {
            PartitionError::ShouldNotExist { number }
            | PartitionError::Mismatch { number, .. }
            | PartitionError::Active { number }
            | PartitionError::DoesNotFit { number, .. }
            | PartitionError::Table { number, .. } => Some(*number),
            PartitionError::OutOfRange(_) => None,
        }
    }
}

/// The result of planning one disk's partitions.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    /// One action per configured partition, in the order they were processed (number 0
    /// last), with the index of the config entry.
    pub actions: Vec<(usize, PartitionAction)>,
    /// The sgdisk-equivalent operations, in the order Ignition passes them.
    pub ops: Vec<Op>,
    /// The table after the operations.
    pub result: Table,
}

/// MiB to sectors, as Ignition converts them.
pub fn mib_to_sectors(mib: Option<i64>, sector_size: u64) -> Result<Option<u64>, PartitionError> {
    match mib {
        None => Ok(None),
        Some(m) => u64::try_from(m)
            .ok()
            .and_then(|m| m.checked_mul(1024 * 1024 / sector_size))
            .map(Some)
            .ok_or(PartitionError::OutOfRange(m)),
    }
}

/// Plans the partitions of a disk whose table is `base` (after `wipeTable`, if any).
/// `active` holds the numbers of partitions in use; changing one of them is refused.
pub fn plan(
    base: &Table,
    specs: &[PartitionSpec],
    active: &BTreeSet<u32>,
) -> Result<PartitionPlan, PartitionError> {
    let mut sorted: Vec<PartitionSpec> = specs.to_vec();
    sorted.sort_by_key(|p| p.number == 0);

    // The pretend run: delete every configured partition that exists, recreate every one that
    // should exist, and read back where the defaults put them.
    let mut pretend = base.clone();
    let mut pretend_news = Vec::new();
    for p in &sorted {
        if let Some(info) = (p.number != 0).then(|| base.partition(p.number)).flatten() {
            apply(&mut pretend, Op::Delete(p.number), p.number)?;
            let start = p
                .start
                .or((!p.wipe_entry).then_some(info.start))
                .unwrap_or(0);
            let size = p
                .size
                .or((!p.wipe_entry).then_some(info.size()))
                .unwrap_or(0);
            if p.should_exist {
                pretend_news.push((p.number, start, size));
            }
        } else if p.should_exist {
            pretend_news.push((p.number, p.start.unwrap_or(0), p.size.unwrap_or(0)));
        }
    }
    // sgdisk does all deletions before the creations.
    let mut numbers = Vec::with_capacity(sorted.len());
    let mut news = pretend_news.into_iter();
    for p in &sorted {
        if !p.should_exist {
            numbers.push(p.number);
            continue;
        }
        let (number, start, size) = news.next().unwrap_or((p.number, 0, 0));
        let got = create(&mut pretend, number, start, size)?;
        numbers.push(got);
    }

    // Specified values take the pretend's result; unspecified ones stay unspecified.
    let mut resolved = Vec::with_capacity(sorted.len());
    for (p, &n) in sorted.iter().zip(&numbers) {
        let mut r = p.clone();
        let inspect = p.start.is_none_or(|s| s == 0) || p.size.is_none_or(|s| s == 0);
        if p.should_exist && inspect {
            if let Some(dims) = pretend.partition(n) {
                if r.start.is_some() {
                    r.start = Some(dims.start);
                }
                if r.size.is_some() {
                    r.size = Some(dims.size());
                }
            }
        }
        resolved.push((r, n));
    }

    // The decision matrix.
    let mut actions = Vec::new();
    let mut deletes = Vec::new();
    let mut creates: Vec<NewPartition> = Vec::new();
    for (p, n) in &resolved {
        let existing = (p.number != 0).then(|| base.partition(p.number)).flatten();
        let check_active = |number: u32| {
            if active.contains(&number) {
                Err(PartitionError::Active { number })
            } else {
                Ok(())
            }
        };
        let action = match (existing, p.should_exist) {
            (None, false) => PartitionAction::Absent { number: p.number },
            (None, true) => {
                creates.push(NewPartition {
                    number: *n,
                    start: p.start.unwrap_or(0),
                    size: p.size.unwrap_or(0),
                    label: p.label.clone(),
                    type_guid: p.type_guid,
                    guid: p.guid,
                });
                PartitionAction::Create {
                    new: placeholder(*n),
                }
            }
            (Some(_), false) if !p.wipe_entry => {
                return Err(PartitionError::ShouldNotExist { number: p.number })
            }
            (Some(info), false) => {
                check_active(info.number)?;
                deletes.push(info.number);
                PartitionAction::Delete {
                    existing: info.clone(),
                }
            }
            (Some(info), true) => match matches(info, p) {
                Ok(()) => PartitionAction::Keep {
                    number: info.number,
                    existing: info.clone(),
                },
                Err(reason) if !p.wipe_entry => {
                    if p.resize && matches_common(info, p).is_ok() {
                        check_active(info.number)?;
                        deletes.push(info.number);
                        creates.push(NewPartition {
                            number: info.number,
                            start: info.start,
                            size: p.size.unwrap_or(0),
                            label: Some(info.name.clone()),
                            type_guid: Some(info.type_guid),
                            guid: Some(info.guid),
                        });
                        PartitionAction::Resize {
                            existing: info.clone(),
                            new: placeholder(info.number),
                        }
                    } else {
                        return Err(PartitionError::Mismatch {
                            number: p.number,
                            reason,
                        });
                    }
                }
                Err(reason) => {
                    check_active(info.number)?;
                    deletes.push(info.number);
                    creates.push(NewPartition {
                        number: info.number,
                        start: p.start.unwrap_or(0),
                        size: p.size.unwrap_or(0),
                        label: p.label.clone(),
                        type_guid: p.type_guid,
                        guid: p.guid,
                    });
                    PartitionAction::Recreate {
                        existing: info.clone(),
                        new: placeholder(info.number),
                        reason,
                    }
                }
            },
        };
        actions.push((p.index, action));
    }

    // The real operations, in Ignition's order: deletions, then each creation with its name,
    // type and GUID.
    let mut ops: Vec<Op> = deletes.iter().map(|n| Op::Delete(*n)).collect();
    let mut result = base.clone();
    for n in &deletes {
        apply(&mut result, Op::Delete(*n), *n)?;
    }
    for c in creates {
        let n = c.number;
        ops.push(Op::New {
            number: n,
            start: c.start,
            size: c.size,
        });
        create(&mut result, n, c.start, c.size)?;
        let mut extra = Vec::new();
        if let Some(l) = c.label {
            extra.push(Op::Name { number: n, name: l });
        }
        if let Some(t) = c.type_guid {
            extra.push(Op::TypeGuid { number: n, guid: t });
        }
        if let Some(g) = c.guid {
            extra.push(Op::PartGuid { number: n, guid: g });
        }
        for op in extra {
            apply(&mut result, op.clone(), n)?;
            ops.push(op);
        }
    }
    // Fill in what the new partitions look like.
    for (_, a) in &mut actions {
        match a {
            PartitionAction::Create { new }
            | PartitionAction::Resize { new, .. }
            | PartitionAction::Recreate { new, .. } => {
                if let Some(p) = result.partition(new.number) {
                    *new = p.clone();
                }
            }
            _ => {}
        }
    }
    Ok(PartitionPlan {
        actions,
        ops,
        result,
    })
}

/// A partition to create: `--new=N:start:+size` and its name, type and GUID.
struct NewPartition {
    number: u32,
    start: u64,
    size: u64,
    label: Option<String>,
    type_guid: Option<Guid>,
    guid: Option<Guid>,
}

fn placeholder(number: u32) -> gpt::Partition {
    gpt::Partition {
        number,
        start: 0,
        end: 0,
        type_guid: Guid::NIL,
        guid: Guid::NIL,
        name: String::new(),
        attributes: 0,
    }
}

fn apply(t: &mut Table, op: Op, number: u32) -> Result<(), PartitionError> {
    t.apply(std::slice::from_ref(&op))
        .map_err(|e| PartitionError::Table {
            number,
            detail: e.to_string(),
        })
}

/// Creates a partition like `--new=N:start:+size`, returning the number it got, with a clear
/// reason when it cannot be made.
fn create(t: &mut Table, number: u32, start: u64, size: u64) -> Result<u32, PartitionError> {
    let before: BTreeSet<u32> = t.partitions().map(|p| p.number).collect();
    match t.apply(&[Op::New {
        number,
        start,
        size,
    }]) {
        Ok(()) => Ok(t
            .partitions()
            .map(|p| p.number)
            .find(|n| !before.contains(n))
            .unwrap_or(number)),
        Err(gpt::Error::CannotCreate { number, start, end }) => Err(PartitionError::DoesNotFit {
            number,
            detail: why_not(t, start, end),
        }),
        Err(e) => Err(PartitionError::Table {
            number,
            detail: e.to_string(),
        }),
    }
}

/// Explains why sectors `start..=end` cannot hold a new partition in `t`.
fn why_not(t: &Table, start: u64, end: u64) -> String {
    let mib = |s: u64| s as f64 * t.sector_size as f64 / 1048576.0;
    if end < start {
        return format!("it would end (sector {end}) before it starts (sector {start})");
    }
    if start < t.first_usable || end > t.last_usable {
        return format!(
            "sectors {start}-{end} ({:.1}-{:.1} MiB) are outside the usable sectors {}-{} of \
             the disk ({:.1} MiB)",
            mib(start),
            mib(end + 1),
            t.first_usable,
            t.last_usable,
            mib(t.disk_sectors)
        );
    }
    let overlapping: Vec<String> = t
        .partitions()
        .filter(|p| p.start <= end && p.end >= start)
        .map(|p| format!("partition {} (sectors {}-{})", p.number, p.start, p.end))
        .collect();
    if !overlapping.is_empty() {
        return format!(
            "sectors {start}-{end} overlap {}",
            overlapping.join(" and ")
        );
    }
    format!("sectors {start}-{end} are not free")
}

fn matches_common(existing: &gpt::Partition, spec: &PartitionSpec) -> Result<(), String> {
    if spec.number != existing.number {
        return Err(format!(
            "partition numbers did not match (specified {}, got {})",
            spec.number, existing.number
        ));
    }
    if let Some(s) = spec.start {
        if s != existing.start {
            return Err(format!(
                "starting sector did not match (specified {s}, got {})",
                existing.start
            ));
        }
    }
    if let Some(g) = spec.guid {
        if g != existing.guid {
            return Err(format!(
                "GUID did not match (specified \"{g}\", got \"{}\")",
                existing.guid
            ));
        }
    }
    if let Some(g) = spec.type_guid {
        if g != existing.type_guid {
            return Err(format!(
                "type GUID did not match (specified \"{g}\", got \"{}\")",
                existing.type_guid
            ));
        }
    }
    if let Some(l) = &spec.label {
        if *l != existing.name {
            return Err(format!(
                "label did not match (specified {l:?}, got {:?})",
                existing.name
            ));
        }
    }
    Ok(())
}

fn matches(existing: &gpt::Partition, spec: &PartitionSpec) -> Result<(), String> {
    matches_common(existing, spec)?;
    if let Some(s) = spec.size {
        if s != existing.size() {
            return Err(format!(
                "size did not match (specified {s}, got {})",
                existing.size()
            ));
        }
    }
    Ok(())
}

/// Sectors as `N sectors (X MiB)`.
pub(crate) struct Sectors {
    pub count: u64,
    pub sector_size: u64,
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.count as f64 * self.sector_size as f64;
        let mib = bytes / 1048576.0;
        if mib.fract() == 0.0 {
            write!(f, "{} sectors ({} MiB)", self.count, mib as u64)
        } else {
            write!(f, "{} sectors ({mib:.2} MiB)", self.count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 2048; // sectors of 512 bytes

    fn spec(number: u32) -> PartitionSpec {
        PartitionSpec {
            index: 0,
            number,
            label: None,
            guid: None,
            type_guid: None,
            start: None,
            size: None,
            should_exist: true,
            wipe_entry: false,
            resize: false,
        }
    }

    fn sized(number: u32, start_mib: u64, size_mib: u64) -> PartitionSpec {
        PartitionSpec {
            start: Some(start_mib * MIB),
            size: Some(size_mib * MIB),
            ..spec(number)
        }
    }

    fn disk(mib: u64) -> Table {
        Table::new(512, mib << 20).unwrap()
    }

    fn table_with(mib: u64, parts: &[(u32, u64, u64, &str)]) -> Table {
        let mut t = disk(mib);
        for (n, s, z, name) in parts {
            t.apply(&[
                Op::New {
                    number: *n,
                    start: s * MIB,
                    size: z * MIB,
                },
                Op::Name {
                    number: *n,
                    name: name.to_string(),
                },
            ])
            .unwrap();
        }
        t
    }

    fn none() -> BTreeSet<u32> {
        BTreeSet::new()
    }

    #[test]
    fn mib_conversion() {
        assert_eq!(mib_to_sectors(Some(3), 512).unwrap(), Some(6144));
        assert_eq!(mib_to_sectors(Some(3), 4096).unwrap(), Some(768));
        assert_eq!(mib_to_sectors(None, 512).unwrap(), None);
        assert_eq!(
            mib_to_sectors(Some(-1), 512),
            Err(PartitionError::OutOfRange(-1))
        );
    }

    #[test]
    fn creates_on_an_empty_disk_with_defaults() {
        let base = disk(64);
        let mut root = spec(2);
        root.label = Some("root".into());
        root.size = Some(0);
        let p = plan(&base, &[sized(1, 1, 16), root], &none()).unwrap();
        assert_eq!(
            p.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            vec![
                "--new=1:2048:+32768".to_string(),
                // Size 0 was resolved by the pretend run, as Ignition passes it to sgdisk.
                "--new=2:0:+96223".into(),
                "--change-name=2:root".into()
            ]
        );
        let p2 = p.result.partition(2).unwrap();
        assert_eq!(p2.start, 17 * MIB);
        assert_eq!(p2.end, p.result.last_usable);
        assert!(matches!(&p.actions[1].1, PartitionAction::Create { new } if new.name == "root"));
    }

    #[test]
    fn matching_partitions_are_kept_and_nothing_is_written() {
        let base = table_with(64, &[(1, 1, 16, "boot"), (2, 17, 0, "root")]);
        let mut root = spec(2);
        root.label = Some("root".into());
        root.size = Some(0); // "as large as possible" matches the existing one
        let mut boot = sized(1, 1, 16);
        boot.type_guid = Some(gpt::LINUX_FILESYSTEM);
        let p = plan(&base, &[boot, root], &none()).unwrap();
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        assert!(p.actions.iter().all(|(_, a)| !a.changes()));
    }

    #[test]
    fn mismatch_without_wipe_is_an_error() {
        let base = table_with(64, &[(1, 1, 16, "boot")]);
        let mut s = sized(1, 1, 16);
        s.label = Some("efi".into());
        assert_eq!(
            plan(&base, &[s], &none()).unwrap_err().to_string(),
            "partition 1 didn't match: label did not match (specified \"efi\", got \"boot\")"
        );
        let s = sized(1, 1, 8);
        assert_eq!(
            plan(&base, &[s], &none()).unwrap_err().to_string(),
            "partition 1 didn't match: size did not match (specified 16384, got 32768)"
        );
    }

    #[test]
    fn mismatch_with_wipe_recreates() {
        let base = table_with(64, &[(1, 1, 16, "boot")]);
        let mut s = sized(1, 1, 8);
        s.wipe_entry = true;
        s.label = Some("efi".into());
        let p = plan(&base, &[s], &none()).unwrap();
        assert_eq!(p.ops[0], Op::Delete(1));
        let n = p.result.partition(1).unwrap();
        assert_eq!((n.start, n.size(), n.name.as_str()), (MIB, 8 * MIB, "efi"));
        assert!(matches!(p.actions[0].1, PartitionAction::Recreate { .. }));
    }

    #[test]
    fn resize_keeps_identity() {
        let base = table_with(64, &[(1, 1, 16, "boot")]);
        let guid = base.partition(1).unwrap().guid;
        let mut s = spec(1);
        s.size = Some(32 * MIB);
        s.resize = true;
        s.label = Some("boot".into());
        let p = plan(&base, &[s.clone()], &none()).unwrap();
        let n = p.result.partition(1).unwrap();
        assert_eq!((n.start, n.size(), n.guid), (MIB, 32 * MIB, guid));
        assert_eq!(n.name, "boot");
        assert!(matches!(p.actions[0].1, PartitionAction::Resize { .. }));
        // Without resize it is a mismatch; with a different label it is not resizable.
        s.resize = false;
        assert!(plan(&base, &[s.clone()], &none()).is_err());
        s.resize = true;
        s.label = Some("other".into());
        assert!(matches!(
            plan(&base, &[s], &none()),
            Err(PartitionError::Mismatch { .. })
        ));
    }

    #[test]
    fn resize_to_fill_grows_to_the_end() {
        let base = table_with(64, &[(1, 1, 16, "a")]);
        let mut s = spec(1);
        s.size = Some(0);
        s.resize = true;
        let p = plan(&base, &[s], &none()).unwrap();
        let n = p.result.partition(1).unwrap();
        assert_eq!((n.start, n.end), (MIB, p.result.last_usable));
    }

    #[test]
    fn should_not_exist() {
        let base = table_with(64, &[(1, 1, 16, "a"), (2, 17, 8, "b")]);
        let mut s = spec(2);
        s.should_exist = false;
        assert_eq!(
            plan(&base, &[s.clone()], &none()).unwrap_err(),
            PartitionError::ShouldNotExist { number: 2 }
        );
        s.wipe_entry = true;
        let p = plan(&base, &[s], &none()).unwrap();
        assert_eq!(p.ops, vec![Op::Delete(2)]);
        assert!(p.result.partition(2).is_none());
        // Absent and should not exist: nothing.
        let mut s = spec(5);
        s.should_exist = false;
        let p = plan(&base, &[s], &none()).unwrap();
        assert!(p.ops.is_empty());
        assert_eq!(p.actions[0].1, PartitionAction::Absent { number: 5 });
    }

    #[test]
    fn number_zero_takes_the_next_free_number_including_freed_ones() {
        let base = table_with(64, &[(1, 1, 8, "a"), (2, 9, 8, "b"), (3, 17, 8, "c")]);
        let mut del = spec(2);
        del.should_exist = false;
        del.wipe_entry = true;
        let mut z = sized(0, 40, 4);
        z.label = Some("new".into());
        // Number 0 listed first still goes last.
        let p = plan(&base, &[z, del], &none()).unwrap();
        assert_eq!(p.result.partition(2).unwrap().name, "new");
        assert_eq!(p.result.partition(2).unwrap().start, 40 * MIB);
        assert_eq!(
            p.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            vec![
                "--delete=2".to_string(),
                "--new=2:81920:+8192".into(),
                "--change-name=2:new".into()
            ]
        );
    }

    #[test]
    fn unspecified_start_keeps_existing_unless_wiping() {
        let base = table_with(64, &[(1, 10, 8, "a")]);
        // Only the size changes; start unspecified stays where it is.
        let mut s = spec(1);
        s.size = Some(4 * MIB);
        s.wipe_entry = true;
        let p = plan(&base, &[s], &none()).unwrap();
        // With wipePartitionEntry the unspecified start goes to the largest free block: the
        // pretend deleted partition 1, so the whole disk is free and it starts at 1 MiB.
        assert_eq!(p.result.partition(1).unwrap().start, MIB);
    }

    #[test]
    fn overlapping_and_oversized_partitions_are_refused() {
        let base = disk(64);
        let err = plan(&base, &[sized(1, 1, 10), sized(2, 5, 10)], &none()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "partition 2 does not fit: sectors 10240-30719 overlap partition 1 (sectors 2048-22527)"
        );
        let err = plan(&base, &[sized(1, 1, 100)], &none()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "partition 1 does not fit: sectors 2048-206847 (1.0-101.0 MiB) are outside"
            ),
            "{err}"
        );
    }

    #[test]
    fn active_partitions_cannot_change() {
        let base = table_with(64, &[(1, 1, 16, "a"), (2, 17, 8, "b")]);
        let active: BTreeSet<u32> = [1].into();
        // Keeping an active partition is fine.
        let mut keep = sized(1, 1, 16);
        keep.label = Some("a".into());
        let mut grow = spec(2);
        grow.size = Some(16 * MIB);
        grow.resize = true;
        assert!(plan(&base, &[keep.clone(), grow], &active).is_ok());
        let mut change = keep;
        change.size = Some(8 * MIB);
        change.wipe_entry = true;
        assert_eq!(
            plan(&base, &[change], &active).unwrap_err(),
            PartitionError::Active { number: 1 }
        );
    }

    #[test]
    fn guid_comparison_is_case_insensitive_and_empty_means_any() {
        let mut base = table_with(64, &[(1, 1, 16, "a")]);
        let g: Guid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap();
        base.apply(&[Op::PartGuid { number: 1, guid: g }]).unwrap();
        let mut s = sized(1, 1, 16);
        s.guid = Some("0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".parse().unwrap());
        assert!(plan(&base, &[s], &none()).unwrap().ops.is_empty());
    }

    #[test]
    fn sectors_display() {
        let s = Sectors {
            count: 2048,
            sector_size: 512,
        };
        assert_eq!(s.to_string(), "2048 sectors (1 MiB)");
        let s = Sectors {
            count: 3,
            sector_size: 512,
        };
        assert_eq!(s.to_string(), "3 sectors (0.00 MiB)");
    }
}
