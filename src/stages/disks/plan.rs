//! The disks stage's plan: every operation the stage will carry out, with the evidence it was
//! decided on, computed before anything is written.
//!
//! [`Plan`] is plain data; its `Display` prints one line per operation, the way the stage logs
//! it and `ember plan` shows it:
//!
//! ```text
//! disk /dev/disk/by-id/virtio-data (/dev/vdb): GPT, 4 partitions, 2097152 sectors of 512 bytes
//!   partition 1 "boot": keep, sectors 2048-264191, 262144 sectors (128 MiB)
//!   partition 2 "root": create at sector 264192, 1048576 sectors (512 MiB), type 0FC63DAF-…
//! raid "data": create raid1 from /dev/vdc1, /dev/vdd1
//! luks "secret" on /dev/vdb3: format LUKS2 (found: nothing), open as /dev/mapper/secret
//! filesystem /dev/disk/by-partlabel/root (/dev/vdb2): create ext4 label "root" (found: nothing)
//! ```
//!
//! Key material is never part of the display or of `Debug`.

use std::fmt;
use std::path::PathBuf;

use super::partitions::{PartitionAction, Sectors};
use crate::config::JsonPath;
use crate::system::blockdev::Usage;
use crate::system::gpt;
use crate::system::probe::Signature;

/// Everything the disks stage will do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub disks: Vec<DiskPlan>,
    pub raids: Vec<RaidPlan>,
    pub luks: Vec<LuksPlan>,
    pub filesystems: Vec<FilesystemPlan>,
}

impl Plan {
    /// Whether carrying out the plan writes anything (to disks, or creates devices).
    pub fn writes(&self) -> bool {
        self.disks.iter().any(|d| d.table.is_some())
            || !self.raids.is_empty()
            || !self.luks.is_empty()
            || self.filesystems.iter().any(|f| f.action.writes())
    }

    /// The plan as log lines, one per operation.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disks.is_empty()
            && self.raids.is_empty()
            && self.luks.is_empty()
            && self.filesystems.is_empty()
        {
            return writeln!(f, "nothing to do");
        }
        for d in &self.disks {
            write!(f, "{d}")?;
        }
        for r in &self.raids {
            writeln!(f, "{r}")?;
        }
        for l in &self.luks {
            writeln!(f, "{l}")?;
        }
        for fs in &self.filesystems {
            writeln!(f, "{fs}")?;
        }
        Ok(())
    }
}

/// A device as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A device that exists now and is not changed by the partition phase.
    Existing { node: PathBuf },
    /// A partition of a disk this stage partitions; `node` is its kernel node once the
    /// partition phase is done.
    Partition {
        disk: PathBuf,
        number: u32,
        node: PathBuf,
        /// Byte range on the disk.
        start: u64,
        len: u64,
        /// Created or moved by this stage (else it exists with the same extent).
        changed: bool,
    },
    /// An md array this stage creates.
    Raid { name: String },
    /// A LUKS volume this stage opens (`/dev/mapper/<name>`).
    Luks { name: String },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Existing { node } => write!(f, "{}", node.display()),
            Target::Partition {
                node,
                changed: false,
                ..
            } => write!(f, "{}", node.display()),
            Target::Partition {
                node,
                number,
                disk,
                changed: true,
                ..
            } => write!(
                f,
                "{}, partition {number} of {} made by this stage",
                node.display(),
                disk.display()
            ),
            Target::Raid { name } => write!(f, "array {name:?} made by this stage"),
            Target::Luks { name } => write!(f, "/dev/mapper/{name}, opened by this stage"),
        }
    }
}

/// What a probe found on a device: blkid's TYPE, LABEL and UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub fs_type: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

impl From<&Signature> for Found {
    fn from(s: &Signature) -> Found {
        Found {
            fs_type: s.fs_type.clone(),
            label: s.label.clone(),
            uuid: s.uuid.clone(),
        }
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fs_type)?;
        if let Some(l) = &self.label {
            write!(f, " label {l:?}")?;
        }
        if let Some(u) = &self.uuid {
            write!(f, " UUID {u}")?;
        }
        Ok(())
    }
}

/// What a disk had before the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundTable {
    /// No partition table.
    None,
    Gpt {
        partitions: usize,
    },
    /// An MBR table (only acceptable with `wipeTable`).
    Dos,
    /// A damaged GPT (only acceptable with `wipeTable`).
    Corrupt(String),
}

impl fmt::Display for FoundTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoundTable::None => f.write_str("no partition table"),
            FoundTable::Gpt { partitions: 1 } => f.write_str("GPT, 1 partition"),
            FoundTable::Gpt { partitions } => write!(f, "GPT, {partitions} partitions"),
            FoundTable::Dos => f.write_str("MBR partition table"),
            FoundTable::Corrupt(why) => write!(f, "corrupt GPT ({why})"),
        }
    }
}

/// One disk.
#[derive(Debug, Clone)]
pub struct DiskPlan {
    /// `$.storage.disks.N`.
    pub path: JsonPath,
    /// As configured.
    pub device: String,
    /// Its kernel node.
    pub node: PathBuf,
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub found: FoundTable,
    pub wipe_table: bool,
    /// Partitions of the disk in use now (mounted or held), with why.
    pub active: Vec<(u32, Usage)>,
    /// Per configured partition (index in the config's list), in processing order.
    pub actions: Vec<(usize, PartitionAction)>,
    /// The equivalent sgdisk options, in Ignition's order.
    pub ops: Vec<gpt::Op>,
    /// The table to write; `None` when the disk is left as it is.
    pub table: Option<gpt::Table>,
    /// The table the disk has after the stage (`None`: no table).
    pub after: Option<gpt::Table>,
}

impl DiskPlan {
    pub(crate) fn sectors(&self, n: u64) -> Sectors {
        Sectors {
            count: n,
            sector_size: self.sector_size,
        }
    }
}

pub(crate) fn label_part(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" {name:?}")
    }
}

impl fmt::Display for DiskPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "disk {} ({}): {}, {} sectors of {} bytes",
            self.device,
            self.node.display(),
            self.found,
            self.disk_sectors,
            self.sector_size
        )?;
        for (n, u) in &self.active {
            writeln!(f, "  partition {n} is in use ({u})")?;
        }
        if self.wipe_table {
            writeln!(f, "  wipe the partition table ({})", self.found)?;
        }
        for (_, a) in &self.actions {
            match a {
                PartitionAction::Keep { existing, .. } => writeln!(
                    f,
                    "  partition {}{}: keep, matches (sectors {}-{}, {})",
                    existing.number,
                    label_part(&existing.name),
                    existing.start,
                    existing.end,
                    self.sectors(existing.size())
                )?,
                PartitionAction::Absent { number } => {
                    writeln!(f, "  partition {number}: nothing to do, absent as required")?
                }
                PartitionAction::Create { new } => writeln!(
                    f,
                    "  partition {}{}: create at sector {}, {}, type {}, GUID {}",
                    new.number,
                    label_part(&new.name),
                    new.start,
                    self.sectors(new.size()),
                    new.type_guid,
                    new.guid
                )?,
                PartitionAction::Delete { existing } => writeln!(
                    f,
                    "  partition {}{}: delete (was sectors {}-{}, {})",
                    existing.number,
                    label_part(&existing.name),
                    existing.start,
                    existing.end,
                    self.sectors(existing.size())
                )?,
                PartitionAction::Resize { existing, new } => writeln!(
                    f,
                    "  partition {}{}: resize from {} to {} (start {} kept)",
                    existing.number,
                    label_part(&existing.name),
                    self.sectors(existing.size()),
                    self.sectors(new.size()),
                    existing.start
                )?,
                PartitionAction::Recreate {
                    existing,
                    new,
                    reason,
                } => writeln!(
                    f,
                    "  partition {}{}: delete and recreate{} at sector {}, {} ({reason})",
                    existing.number,
                    label_part(&existing.name),
                    label_part(&new.name),
                    new.start,
                    self.sectors(new.size())
                )?,
            }
        }
        if self.table.is_some() {
            writeln!(
                f,
                "  write the partition table: {}",
                self.ops
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
        } else {
            writeln!(f, "  partition table unchanged")?;
        }
        Ok(())
    }
}

/// A software RAID array to create.
#[derive(Debug, Clone)]
pub struct RaidPlan {
    /// `$.storage.raid.N`.
    pub path: JsonPath,
    pub name: String,
    pub level: String,
    /// Members as configured and as resolved, spares last.
    pub devices: Vec<(String, Target)>,
    pub spares: u32,
    pub options: Vec<String>,
}

impl fmt::Display for RaidPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "raid {:?}: create {} from {}",
            self.name,
            self.level,
            self.devices
                .iter()
                .map(|(_, t)| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if self.spares > 0 {
            write!(f, " ({} spare)", self.spares)?;
        }
        if !self.options.is_empty() {
            write!(f, ", mdadm options {}", self.options.join(" "))?;
        }
        Ok(())
    }
}

/// What happens to a LUKS volume's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuksAction {
    /// luksFormat, after wiping what was there (`wipeVolume`) or on an empty device.
    Format { wipe: Option<Found> },
    /// An existing LUKS2 volume whose label, UUID and discard flag match; the key was checked
    /// when `key_checked`.
    Reuse { found: Found, key_checked: bool },
    /// The device is made by this stage; what is on it is checked when it exists.
    Decide,
}

/// Where a LUKS key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// 4096 random bytes as hex, kept for the files stage (unless clevis replaces it).
    Generated,
    /// `keyFile` (the JSON path of the resource).
    Resource(JsonPath),
    /// `cex`: the dummy key file on s390x.
    Cex,
}

/// A LUKS2 volume.
#[derive(Clone)]
pub struct LuksPlan {
    /// `$.storage.luks.N`.
    pub path: JsonPath,
    pub name: String,
    pub device: String,
    pub target: Target,
    pub action: LuksAction,
    pub key: KeySource,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub discard: bool,
    pub options: Vec<String>,
    pub open_options: Vec<String>,
    /// `(pin, config JSON)` for `clevis luks bind`, when clevis is used.
    pub clevis: Option<(String, String)>,
    /// Whether the clevis binding can unlock without the network (the volume is then reopened
    /// through clevis to prove it).
    pub clevis_unlock_check: bool,
    /// The key bytes; never displayed.
    pub(crate) key_bytes: super::luks::Secret,
}

impl fmt::Debug for LuksPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LuksPlan")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("device", &self.device)
            .field("target", &self.target)
            .field("action", &self.action)
            .field("key", &self.key)
            .field("label", &self.label)
            .field("uuid", &self.uuid)
            .field("discard", &self.discard)
            .field("options", &self.options)
            .field("open_options", &self.open_options)
            .field("clevis", &self.clevis.as_ref().map(|(p, _)| p))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for LuksPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "luks {:?} on {} ({}): ",
            self.name, self.device, self.target
        )?;
        match &self.action {
            LuksAction::Format { wipe } => {
                if let Some(w) = wipe {
                    write!(f, "wipe {w}, then ")?;
                }
                write!(f, "format LUKS2")?;
                if let Some(l) = &self.label {
                    write!(f, " label {l:?}")?;
                }
                if let Some(u) = &self.uuid {
                    write!(f, " UUID {u}")?;
                }
                if wipe.is_none() {
                    write!(f, " (found: nothing)")?;
                }
            }
            LuksAction::Reuse { found, key_checked } => {
                write!(f, "reuse {found}")?;
                if !key_checked {
                    write!(f, " (key checked when opening)")?;
                }
            }
            LuksAction::Decide => write!(
                f,
                "format LUKS2 unless a matching volume is found once the device exists"
            )?,
        }
        write!(f, ", open as /dev/mapper/{}", self.name)?;
        if self.discard {
            write!(f, " with discards")?;
        }
        match &self.key {
            KeySource::Generated => write!(f, ", generated key")?,
            KeySource::Resource(p) => write!(f, ", key from {p}.keyFile")?,
            KeySource::Cex => write!(f, ", CEX key")?,
        }
        if let Some((pin, _)) = &self.clevis {
            write!(f, ", clevis {pin} binding")?;
        }
        Ok(())
    }
}

/// What happens to a filesystem's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsAction {
    /// A matching filesystem is there: nothing to do.
    Keep { found: Found },
    /// `format: none` and nothing to wipe, or nothing required.
    Nothing,
    /// Wipe signatures only (`format: none` with something on the device).
    Wipe { found: Found },
    /// Wipe what is there (if anything), then mkfs.
    Create { wipe: Option<Found> },
    /// The device is made by this stage in a way whose contents cannot be known before (a new
    /// array, a reused LUKS volume): decided when it exists, by the same rules.
    Decide,
}

impl FsAction {
    pub fn writes(&self) -> bool {
        matches!(
            self,
            FsAction::Wipe { .. } | FsAction::Create { .. } | FsAction::Decide
        )
    }
}

/// A filesystem.
#[derive(Debug, Clone)]
pub struct FilesystemPlan {
    /// `$.storage.filesystems.N`.
    pub path: JsonPath,
    pub device: String,
    pub target: Target,
    pub format: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub wipe: bool,
    pub options: Vec<String>,
    pub action: FsAction,
}

impl fmt::Display for FilesystemPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filesystem {} ({}): ", self.device, self.target)?;
        let what = || {
            let mut s = self.format.clone();
            if let Some(l) = &self.label {
                s.push_str(&format!(" label {l:?}"));
            }
            if let Some(u) = &self.uuid {
                s.push_str(&format!(" UUID {u}"));
            }
            if !self.options.is_empty() {
                s.push_str(&format!(" with options {}", self.options.join(" ")));
            }
            s
        };
        match &self.action {
            FsAction::Keep { found } => write!(f, "keep the existing {found}"),
            FsAction::Nothing => write!(f, "nothing to do (format none, found: nothing)"),
            FsAction::Wipe { found } => write!(f, "wipe {found} (format none)"),
            FsAction::Create { wipe: Some(w) } => write!(f, "wipe {w}, then create {}", what()),
            FsAction::Create { wipe: None } => write!(f, "create {} (found: nothing)", what()),
            FsAction::Decide => write!(
                f,
                "create {} unless a matching filesystem is found once the device exists",
                what()
            ),
        }
    }
}
