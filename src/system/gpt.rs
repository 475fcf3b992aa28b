//! GUID partition tables: read, plan and write, the way Ignition drives `sgdisk`.
//!
//! The model is a [`Table`]: disk GUID, sector size, usable LBA range and partitions by
//! number.  Changes are a list of [`Op`]s applied in order, with the semantics of the
//! corresponding `sgdisk` options (gdisk 1.0.9, read from its source and checked against the
//! binary in tests):
//!
//! * [`Op::ZapAll`] is `--zap-all`: forget every partition, new disk GUID; on write, the
//!   primary and backup headers and arrays and the MBR are wiped before anything else.
//! * [`Op::Delete`] is `--delete=N`.
//! * [`Op::New`] is `--new=N:START:+SIZE` with sectors; number 0 takes the lowest free
//!   number; start 0 takes the first sector of the *largest* free block (rounded to the
//!   alignment); size 0 runs to the end of that same largest free block, so a non-default start
//!   outside it fails, exactly as with sgdisk.  A requested start is moved to an alignment
//!   boundary when the sectors in between are free, as sgdisk does, while the end computed
//!   from the size stays where it was.
//! * [`Op::Name`], [`Op::TypeGuid`], [`Op::PartGuid`] are `--change-name`, `--typecode` and
//!   `--partition-guid`; number 0 means "the partition the last `New` created".
//!
//! Alignment is 1 MiB (2048 sectors at 512 bytes, 256 at 4096), reduced like sgdisk to the
//! largest power of two dividing every existing partition's start (never below 8 on disks of
//! 585937500 sectors or more).
//!
//! [`Table::pretend`] applies ops to a copy and returns the resulting table without writing
//! anything: what `sgdisk --pretend … --info=N` tells Ignition.  Writing ([`Table::write`])
//! goes through the `gptman` crate, which keeps partition numbers, and also writes a
//! protective MBR (keeping any boot code) and the backup header and array.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::str::FromStr;

use crate::system::blockdev::{self, BlockDevice, PartitionExtent};

/// Errors from reading, planning and writing partition tables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("block device")]
    Device(#[from] blockdev::Error),
    #[error("the GPT is corrupt: primary header: {primary}; backup header: {backup}")]
    Corrupt { primary: String, backup: String },
    #[error("disk does not have a GPT")]
    NotGpt,
    #[error("sector size {0} is not a multiple of 512")]
    BadSectorSize(u64),
    #[error("disk of {sectors} sectors is too small for a GPT")]
    DiskTooSmall { sectors: u64 },
    #[error("partition {0} out of range")]
    NumberOutOfRange(u32),
    #[error("partition {0} does not exist")]
    NoSuchPartition(u32),
    #[error("partition {0} already exists")]
    PartitionExists(u32),
    #[error("no free partition number")]
    NoFreeNumber,
    #[error("partition number 0 refers to the last new partition, but none was created")]
    NoNewPartition,
    #[error("could not create partition {number} from {start} to {end}")]
    CannotCreate { number: u32, start: u64, end: u64 },
    #[error("partition {number}: invalid type GUID {guid}")]
    BadType { number: u32, guid: Guid },
    #[error("writing the GPT")]
    Write(#[source] gptman::Error),
    #[error("invalid GUID {0:?}")]
    BadGuid(String),
}

type Result<T> = std::result::Result<T, Error>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

// ---------------------------------------------------------------------------------------------
// GUIDs

/// A GUID, stored in the byte order of its text form (`00112233-4455-…` → `[0x00, 0x11, …]`).
/// Displayed upper-case, as Ignition compares them; parsing accepts either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

/// `0FC63DAF-8483-4772-8E79-3D69D8477DE4`, "Linux filesystem": sgdisk's default type (8300).
pub const LINUX_FILESYSTEM: Guid = Guid([
    0x0F, 0xC6, 0x3D, 0xAF, 0x84, 0x83, 0x47, 0x72, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4,
]);

impl Guid {
    pub const NIL: Guid = Guid([0; 16]);

    /// From the on-disk GPT layout (first three fields little-endian).
    pub fn from_gpt_bytes(b: [u8; 16]) -> Guid {
        let mut o = b;
        o[0..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
        Guid(o)
    }

    /// To the on-disk GPT layout.
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        // The conversion is its own inverse.
        Guid::from_gpt_bytes(self.0).0
    }

    /// A random (version 4) GUID.
    pub fn random() -> Guid {
        let mut b = [0u8; 16];
        crate::system::random_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Lower-case text form (as udev and blkid show partition UUIDs).
    pub fn to_lowercase(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl FromStr for Guid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Guid> {
        let bad = || Error::BadGuid(s.to_string());
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *o = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Guid(out))
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// One partition entry.  Sectors are logical sectors of the disk; `end` is inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub end: u64,
    pub type_guid: Guid,
    pub guid: Guid,
    /// The GPT partition name (Ignition's `label`).
    pub name: String,
    pub attributes: u64,
}

impl Partition {
    /// Size in sectors.
    pub fn size(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// A change to a table; see the module documentation for the exact semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ZapAll,
    Delete(u32),
    New { number: u32, start: u64, size: u64 },
    Name { number: u32, name: String },
    TypeGuid { number: u32, guid: Guid },
    PartGuid { number: u32, guid: Guid },
}

impl fmt::Display for Op {
    /// The equivalent sgdisk option, for logs and plans.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::ZapAll => write!(f, "--zap-all"),
            Op::Delete(n) => write!(f, "--delete={n}"),
            Op::New {
                number,
                start,
                size,
            } => write!(f, "--new={number}:{start}:+{size}"),
            Op::Name { number, name } => write!(f, "--change-name={number}:{name}"),
            Op::TypeGuid { number, guid } => write!(f, "--typecode={number}:{guid}"),
            Op::PartGuid { number, guid } => write!(f, "--partition-guid={number}:{guid}"),
        }
    }
}

const DEFAULT_ALIGNMENT_BYTES: u64 = 1024 * 1024;
const MIN_AF_ALIGNMENT: u64 = 8;
const SMALLEST_ADVANCED_FORMAT: u64 = 585_937_500;
const DEFAULT_ENTRIES: u32 = 128;
const ENTRY_SIZE: u64 = 128;

/// Where the structures a zap must wipe live (sectors).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    primary_header: u64,
    primary_array: u64,
    backup_header: u64,
    backup_array: u64,
    array_sectors: u64,
}

/// A GUID partition table in memory.
#[derive(Debug, Clone)]
pub struct Table {
    pub disk_guid: Guid,
    /// Logical sector size in bytes.
    pub sector_size: u64,
    /// Disk size in sectors.
    pub disk_sectors: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    /// Number of entries in the partition array (128 normally).
    pub entries: u32,
    alignment: u64,
    partitions: BTreeMap<u32, Partition>,
    /// The table as read, whose header geometry is kept on write.  `None` for new tables.
    raw: Option<gptman::GPT>,
    /// Locations to wipe before writing (set by a zap).
    wipe: Vec<Layout>,
    /// Whether there is a table to write (false after a lone zap).
    write_table: bool,
    /// Number chosen by the last `New` op (for ops on number 0).
    last_new: Option<u32>,
}

impl PartialEq for Table {
    /// Tables are equal when their visible contents are (disk GUID, geometry, partitions).
    fn eq(&self, o: &Table) -> bool {
        self.disk_guid == o.disk_guid
            && self.sector_size == o.sector_size
            && self.disk_sectors == o.disk_sectors
            && self.first_usable == o.first_usable
            && self.last_usable == o.last_usable
            && self.entries == o.entries
            && self.partitions == o.partitions
    }
}

fn array_sectors(entries: u32, sector_size: u64) -> u64 {
    (u64::from(entries) * ENTRY_SIZE).div_ceil(sector_size)
}

fn check_sector_size(sector_size: u64) -> Result<()> {
    if sector_size == 0 || sector_size % 512 != 0 {
        return Err(Error::BadSectorSize(sector_size));
    }
    Ok(())
}

impl Table {
    /// An empty table for a disk of `disk_bytes` bytes, as sgdisk makes one: 128 entries,
    /// first usable LBA right after the primary array, the backup array right before the
    /// backup header in the last sector, a random disk GUID.
    pub fn new(sector_size: u64, disk_bytes: u64) -> Result<Table> {
        check_sector_size(sector_size)?;
        let disk_sectors = disk_bytes / sector_size;
        let arr = array_sectors(DEFAULT_ENTRIES, sector_size);
        let first_usable = 2 + arr;
        if disk_sectors <= arr * 2 + 3 || disk_sectors < 2 * first_usable + 1 {
            return Err(Error::DiskTooSmall {
                sectors: disk_sectors,
            });
        }
        let mut t = Table {
            disk_guid: Guid::random(),
            sector_size,
            disk_sectors,
            first_usable,
            last_usable: disk_sectors - first_usable,
            entries: DEFAULT_ENTRIES,
            alignment: 1,
            partitions: BTreeMap::new(),
            raw: None,
            wipe: Vec::new(),
            write_table: true,
            last_new: None,
        };
        t.alignment = t.compute_alignment();
        Ok(t)
    }

    /// Partitions by number.
    pub fn partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.values()
    }

    /// Partition `number`, if it exists.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.get(&number)
    }

    /// Whether this table was not read from the disk (blank disk, or zapped).
    pub fn is_new(&self) -> bool {
        self.raw.is_none()
    }

    /// Alignment in sectors used for default and requested starts.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Overrides the alignment (sgdisk `--set-alignment`).
    pub fn set_alignment(&mut self, sectors: u64) {
        self.alignment = sectors.max(1);
    }

    /// The partitions as the kernel should see them, in bytes.
    pub fn kernel_extents(&self) -> Vec<PartitionExtent> {
        self.partitions
            .values()
            .map(|p| PartitionExtent {
                number: p.number,
                start: p.start * self.sector_size,
                len: p.size() * self.sector_size,
            })
            .collect()
    }

    /// Free blocks as sgdisk finds them: `(first, last)` sector pairs in disk order.
    pub fn free_blocks(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let first = self.first_available(start);
            if first == 0 {
                break;
            }
            let last = self.last_in_free(first);
            out.push((first, last));
            start = last + 1;
        }
        out
    }

    fn compute_alignment(&self) -> u64 {
        let mut align = (DEFAULT_ALIGNMENT_BYTES / self.sector_size).max(1);
        for p in self.partitions.values() {
            while align > 1 && p.start % align != 0 {
                align /= 2;
            }
        }
        if align < MIN_AF_ALIGNMENT && self.disk_sectors >= SMALLEST_ADVANCED_FORMAT {
            align = MIN_AF_ALIGNMENT;
        }
        align
    }

    fn is_free(&self, sector: u64) -> bool {
        sector >= self.first_usable
            && sector <= self.last_usable
            && !self
                .partitions
                .values()
                .any(|p| sector >= p.start && sector <= p.end)
    }

    /// Whether every sector of `a..=b` is free.
    fn range_free(&self, a: u64, b: u64) -> bool {
        a >= self.first_usable
            && b <= self.last_usable
            && !self.partitions.values().any(|p| p.start <= b && p.end >= a)
    }

    fn first_available(&self, start: u64) -> u64 {
        let mut first = start.max(self.first_usable);
        loop {
            let mut moved = false;
            for p in self.partitions.values() {
                if first >= p.start && first <= p.end {
                    first = p.end + 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        if first > self.last_usable {
            0
        } else {
            first
        }
    }

    fn last_in_free(&self, start: u64) -> u64 {
        let mut nearest = self.last_usable;
        for p in self.partitions.values() {
            if nearest > p.start && p.start > start {
                nearest = p.start - 1;
            }
        }
        nearest
    }

    fn first_in_largest(&self) -> u64 {
        let mut best = (0u64, 0u64); // (size, first)
        for (first, last) in self.free_blocks() {
            let size = last - first + 1;
            if size > best.0 {
                best = (size, first);
            }
        }
        best.1
    }

    /// Moves `sector` to an alignment boundary like sgdisk: down if every sector in between is
    /// free, else up under the same condition; otherwise leaves it.
    fn align(&self, sector: u64) -> u64 {
        let a = self.alignment;
        if sector % a == 0 {
            return sector;
        }
        let earlier = sector / a * a;
        let later = earlier + a;
        if earlier >= self.first_usable && self.range_free(earlier, sector - 1) {
            return earlier;
        }
        if later <= self.last_usable && self.range_free(sector + 1, later) {
            return later;
        }
        sector
    }

    fn resolve_number(&self, number: u32) -> Result<u32> {
        if number == 0 {
            self.last_new.ok_or(Error::NoNewPartition)
        } else {
            Ok(number)
        }
    }

    fn used_mut(&mut self, number: u32) -> Result<&mut Partition> {
        let n = self.resolve_number(number)?;
        if n > self.entries {
            return Err(Error::NumberOutOfRange(n));
        }
        self.partitions.get_mut(&n).ok_or(Error::NoSuchPartition(n))
    }

    /// Applies `ops` in order.  On error the table may be partly changed: apply to a copy
    /// (or use [`Table::pretend`]) when that matters.
    pub fn apply(&mut self, ops: &[Op]) -> Result<()> {
        for op in ops {
            self.apply_one(op)?;
        }
        Ok(())
    }

    /// The table `ops` would produce, leaving this one unchanged.
    pub fn pretend(&self, ops: &[Op]) -> Result<Table> {
        let mut t = self.clone();
        t.apply(ops)?;
        Ok(t)
    }

    fn apply_one(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::ZapAll => {
                self.wipe.push(self.layout());
                let fresh = Table::new(self.sector_size, self.disk_sectors * self.sector_size)?;
                let wipe = std::mem::take(&mut self.wipe);
                *self = fresh;
                self.wipe = wipe;
                // A zap alone leaves the disk without a table, as `sgdisk --zap-all` does.
                self.write_table = false;
            }
            Op::Delete(n) => {
                let (lo, hi) = match (self.partitions.keys().next(), self.partitions.keys().last())
                {
                    (Some(lo), Some(hi)) => (*lo, *hi),
                    _ => return Err(Error::NumberOutOfRange(*n)),
                };
                if *n < lo || *n > hi {
                    return Err(Error::NumberOutOfRange(*n));
                }
                self.partitions.remove(n);
                self.write_table = true;
            }
            Op::New {
                number,
                start,
                size,
            } => {
                let number = if *number == 0 {
                    (1..=self.entries)
                        .find(|n| !self.partitions.contains_key(n))
                        .ok_or(Error::NoFreeNumber)?
                } else {
                    *number
                };
                if number > self.entries {
                    return Err(Error::NumberOutOfRange(number));
                }
                if self.partitions.contains_key(&number) {
                    return Err(Error::PartitionExists(number));
                }
                let low = self.align(self.first_in_largest());
                let high = self.last_in_free(low);
                let req_start = if *start == 0 { low } else { *start };
                let end = if *size == 0 {
                    high
                } else {
                    req_start.checked_add(size - 1).unwrap_or_default()
                };
                let start = self.align(req_start);
                if start != req_start {
                    log::debug!(
                        "partition {number}: start moved from {req_start} to {start} to align \
                         on {} sectors",
                        self.alignment
                    );
                }
                if !(self.is_free(start) && start <= end && self.last_in_free(start) >= end) {
                    // Reported with the requested start, like sgdisk.
                    return Err(Error::CannotCreate {
                        number,
                        start: req_start,
                        end,
                    });
                }
                self.partitions.insert(
                    number,
                    Partition {
                        number,
                        start,
                        end,
                        type_guid: LINUX_FILESYSTEM,
                        guid: Guid::random(),
                        name: String::new(),
                        attributes: 0,
                    },
                );
                self.last_new = Some(number);
                self.write_table = true;
            }
            Op::Name { number, name } => {
                // GPT names hold 36 UTF-16 code units; sgdisk truncates longer ones.
                let mut units = 0;
                let truncated: String = name
                    .chars()
                    .take_while(|c| {
                        units += c.len_utf16();
                        units <= 36
                    })
                    .collect();
                self.used_mut(*number)?.name = truncated;
                self.write_table = true;
            }
            Op::TypeGuid { number, guid } => {
                if guid.is_nil() {
                    return Err(Error::BadType {
                        number: *number,
                        guid: *guid,
                    });
                }
                self.used_mut(*number)?.type_guid = *guid;
                self.write_table = true;
            }
            Op::PartGuid { number, guid } => {
                self.used_mut(*number)?.guid = *guid;
                self.write_table = true;
            }
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        match &self.raw {
            Some(raw) => {
                let h = &raw.header;
                let arr = array_sectors(h.number_of_partition_entries, self.sector_size);
                let (primary, backup) = if h.is_primary() {
                    (h.primary_lba, h.backup_lba)
                } else {
                    (h.backup_lba, h.primary_lba)
                };
                Layout {
                    primary_header: primary,
                    primary_array: 2,
                    backup_header: backup,
                    backup_array: backup.saturating_sub(arr),
                    array_sectors: arr,
                }
            }
            None => {
                let arr = array_sectors(self.entries, self.sector_size);
                Layout {
                    primary_header: 1,
                    primary_array: 2,
                    backup_header: self.disk_sectors - 1,
                    backup_array: self.disk_sectors - 1 - arr,
                    array_sectors: arr,
                }
            }
        }
    }

    /// Writes the table: wipes what a zap asked for, then (unless the table was only zapped)
    /// the protective MBR, the primary header and array and the backup array and header.
    /// Flushes the writer; for block devices also call [`BlockDevice::flush`].
    pub fn write<D: Read + Write + Seek>(&self, dev: &mut D) -> Result<()> {
        let ss = self.sector_size;
        let len = dev
            .seek(SeekFrom::End(0))
            .map_err(io_err("sizing the disk"))?;
        let sectors = len / ss;
        let zero = vec![0u8; ss as usize];
        let wipe_sectors = |first: u64, count: u64, dev: &mut D| -> Result<()> {
            for s in first..first.saturating_add(count) {
                if s >= sectors {
                    break;
                }
                dev.seek(SeekFrom::Start(s * ss))
                    .and_then(|_| dev.write_all(&zero))
                    .map_err(io_err(format!("wiping sector {s}")))?;
            }
            Ok(())
        };
        for l in &self.wipe {
            wipe_sectors(l.primary_header, 1, dev)?;
            wipe_sectors(l.primary_array, l.array_sectors, dev)?;
            wipe_sectors(l.backup_array, l.array_sectors, dev)?;
            wipe_sectors(l.backup_header, 1, dev)?;
        }
        if !self.wipe.is_empty() {
            // The MBR: the first 512 bytes, boot code included, as sgdisk does.
            dev.seek(SeekFrom::Start(0))
                .and_then(|_| dev.write_all(&[0u8; 512]))
                .map_err(io_err("wiping the MBR"))?;
        }
        if self.write_table {
            let mut gpt = match &self.raw {
                Some(raw) => raw.clone(),
                None => gptman::GPT::new_from(dev, ss, self.disk_guid.to_gpt_bytes())
                    .map_err(Error::Write)?,
            };
            gpt.header.disk_guid = self.disk_guid.to_gpt_bytes();
            for i in 1..=gpt.header.number_of_partition_entries {
                gpt[i] = match self.partitions.get(&i) {
                    Some(p) => gptman::GPTPartitionEntry {
                        partition_type_guid: p.type_guid.to_gpt_bytes(),
                        unique_partition_guid: p.guid.to_gpt_bytes(),
                        starting_lba: p.start,
                        ending_lba: p.end,
                        attribute_bits: p.attributes,
                        partition_name: p.name.as_str().into(),
                    },
                    None => gptman::GPTPartitionEntry::empty(),
                };
            }
            gptman::GPT::write_protective_mbr_into(dev, ss).map_err(Error::Write)?;
            gpt.write_into(dev).map_err(Error::Write)?;
        }
        dev.flush().map_err(io_err("flushing the GPT"))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What sector 0 holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mbr {
    None,
    Protective,
    Dos,
}

fn classify_mbr(sector0: &[u8]) -> Mbr {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xAA {
        return Mbr::None;
    }
    let entries: Vec<&[u8]> = (0..4)
        .map(|i| &sector0[446 + 16 * i..462 + 16 * i])
        .collect();
    if entries.iter().any(|e| e[4] == 0xEE) {
        return Mbr::Protective;
    }
    // Like libblkid: boot flags must be 0 or 0x80, some entry must be used, and a FAT boot
    // sector (which also ends in 55 AA) is not a partition table.
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80)
        || entries.iter().all(|e| e[4] == 0)
        || crate::system::probe::looks_like_fat_boot_sector(sector0)
    {
        return Mbr::None;
    }
    Mbr::Dos
}

/// Reads the GPT of a disk image or device with `sector_size`-byte sectors.
///
/// `Ok(None)`: no partition table at all.  [`Error::NotGpt`]: an MBR ("dos") table.
/// [`Error::Corrupt`]: a GPT signature is there but neither header (with its array) is valid.
/// A table whose primary header is damaged but whose backup is fine is read from the backup.
pub fn read<D: Read + Seek>(dev: &mut D, sector_size: u64) -> Result<Option<Table>> {
    check_sector_size(sector_size)?;
    let len = dev
        .seek(SeekFrom::End(0))
        .map_err(io_err("sizing the disk"))?;
    let disk_sectors = len / sector_size;
    let mut s0 = vec![0u8; 512];
    dev.seek(SeekFrom::Start(0))
        .and_then(|_| dev.read_exact(&mut s0))
        .map_err(io_err("reading the MBR"))?;
    let mbr = classify_mbr(&s0);
    let raw = match gptman::GPT::read_from(dev, sector_size) {
        Ok(g) => g,
        Err(gptman::Error::InvalidSignature) => {
            return if mbr == Mbr::Dos {
                Err(Error::NotGpt)
            } else {
                Ok(None)
            }
        }
        Err(gptman::Error::ReadError(p, b)) => {
            return Err(Error::Corrupt {
                primary: p.to_string(),
                backup: b.to_string(),
            })
        }
        Err(gptman::Error::Io(e)) => return Err(io_err("reading the GPT")(e)),
        Err(e) => {
            return Err(Error::Corrupt {
                primary: e.to_string(),
                backup: "not checked".into(),
            })
        }
    };
    let mut partitions = BTreeMap::new();
    for (n, e) in raw.iter() {
        if e.is_used() && e.ending_lba >= e.starting_lba {
            partitions.insert(
                n,
                Partition {
                    number: n,
                    start: e.starting_lba,
                    end: e.ending_lba,
                    type_guid: Guid::from_gpt_bytes(e.partition_type_guid),
                    guid: Guid::from_gpt_bytes(e.unique_partition_guid),
                    name: e.partition_name.as_str().to_string(),
                    attributes: e.attribute_bits,
                },
            );
        }
    }
    let mut t = Table {
        disk_guid: Guid::from_gpt_bytes(raw.header.disk_guid),
        sector_size,
        disk_sectors,
        first_usable: raw.header.first_usable_lba,
        last_usable: raw.header.last_usable_lba,
        entries: raw.header.number_of_partition_entries,
        alignment: 1,
        partitions,
        raw: Some(raw),
        wipe: Vec::new(),
        write_table: true,
        last_new: None,
    };
    t.alignment = t.compute_alignment();
    Ok(Some(t))
}

/// Like [`read`], but a disk without a table gives a new empty one.
pub fn read_or_new<D: Read + Seek>(dev: &mut D, sector_size: u64) -> Result<Table> {
    match read(dev, sector_size)? {
        Some(t) => Ok(t),
        None => {
            let len = dev
                .seek(SeekFrom::End(0))
                .map_err(io_err("sizing the disk"))?;
            Table::new(sector_size, len)
        }
    }
}

/// Reads the GPT of block device `path`, using its logical sector size.
pub fn read_device(path: &Path) -> Result<Option<Table>> {
    let mut dev = BlockDevice::open(path)?;
    let ss = u64::from(dev.logical_sector_size()?);
    read(dev.file_mut(), ss)
}

/// Like [`read_device`], but a disk without a table gives a new empty one.
pub fn read_device_or_new(path: &Path) -> Result<Table> {
    let mut dev = BlockDevice::open(path)?;
    let ss = u64::from(dev.logical_sector_size()?);
    read_or_new(dev.file_mut(), ss)
}

/// Writes `table` to block device `path` and flushes the device's caches.  The kernel is not
/// told: call [`blockdev::notify_kernel`] with [`Table::kernel_extents`] afterwards.
pub fn write_device(path: &Path, table: &Table) -> Result<()> {
    let mut dev = BlockDevice::open_rw(path)?;
    let ss = u64::from(dev.logical_sector_size()?);
    if ss != table.sector_size {
        return Err(Error::BadSectorSize(table.sector_size));
    }
    table.write(dev.file_mut())?;
    dev.flush()?;
    Ok(())
}

/// Zaps block device `path` like `sgdisk --zap-all` and flushes it.
pub fn zap_device(path: &Path) -> Result<()> {
    let mut dev = BlockDevice::open_rw(path)?;
    let ss = u64::from(dev.logical_sector_size()?);
    let len = dev.size_bytes()?;
    // A corrupt table is exactly what one zaps: fall back to the default layout.
    let mut t = match read(dev.file_mut(), ss) {
        Ok(Some(t)) => t,
        Ok(None) | Err(Error::Corrupt { .. }) | Err(Error::NotGpt) => Table::new(ss, len)?,
        Err(e) => return Err(e),
    };
    t.apply(&[Op::ZapAll])?;
    t.write(dev.file_mut())?;
    dev.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn disk(mib: u64) -> Cursor<Vec<u8>> {
        Cursor::new(vec![0u8; (mib * 1024 * 1024) as usize])
    }

    fn new(number: u32, start: u64, size: u64) -> Op {
        Op::New {
            number,
            start,
            size,
        }
    }

    #[test]
    fn guid_text_and_gpt_bytes() {
        let g: Guid = "0fc63daf-8483-4772-8e79-3d69d8477de4".parse().unwrap();
        assert_eq!(g, LINUX_FILESYSTEM);
        assert_eq!(g.to_string(), "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
        assert_eq!(g.to_lowercase(), "0fc63daf-8483-4772-8e79-3d69d8477de4");
        let b = g.to_gpt_bytes();
        assert_eq!(&b[..4], &[0xAF, 0x3D, 0xC6, 0x0F]);
        assert_eq!(Guid::from_gpt_bytes(b), g);
        assert!("0fc63daf-8483-4772-8e79-3d69d8477de"
            .parse::<Guid>()
            .is_err());
        assert!("0fc63daf84834772-8e79-3d69d8477de4x"
            .parse::<Guid>()
            .is_err());
        assert!("zzc63daf-8483-4772-8e79-3d69d8477de4"
            .parse::<Guid>()
            .is_err());
        let r = Guid::random();
        assert_ne!(r, Guid::random());
        assert_eq!(r.0[6] >> 4, 4);
    }

    #[test]
    fn blank_disk_has_no_table() {
        let mut d = disk(4);
        assert!(read(&mut d, 512).unwrap().is_none());
        let t = read_or_new(&mut d, 512).unwrap();
        assert!(t.is_new());
        assert_eq!(t.first_usable, 34);
        assert_eq!(t.last_usable, 8192 - 34);
        assert_eq!(t.alignment(), 2048);
    }

    #[test]
    fn new_table_4k_geometry() {
        let t = Table::new(4096, 16 * 1024 * 1024).unwrap();
        assert_eq!(t.first_usable, 6);
        assert_eq!(t.last_usable, 4096 - 6);
        assert_eq!(t.alignment(), 256);
        assert!(matches!(
            Table::new(1000, 1 << 20),
            Err(Error::BadSectorSize(1000))
        ));
        assert!(matches!(
            Table::new(512, 4096),
            Err(Error::DiskTooSmall { .. })
        ));
    }

    #[test]
    fn defaults_take_largest_block() {
        let mut t = Table::new(512, 100 << 20).unwrap();
        t.apply(&[new(1, 2048, 20480), new(2, 40960, 20480), new(3, 0, 2048)])
            .unwrap();
        assert_eq!(t.partition(3).unwrap().start, 61440);
        // Size 0: to the end of the largest free block.
        let p = t.pretend(&[new(4, 0, 0)]).unwrap();
        let p4 = p.partition(4).unwrap();
        assert_eq!((p4.start, p4.end), (63488, 204766));
        // A start in a smaller block with size 0 overlaps: error, as with sgdisk.
        assert!(matches!(
            t.pretend(&[new(4, 30000, 0)]),
            Err(Error::CannotCreate {
                number: 4,
                start: 30000,
                end: 204766
            })
        ));
        // The start is aligned down, the end stays where the size put it.
        let p = t.pretend(&[new(4, 23000, 100)]).unwrap();
        let p4 = p.partition(4).unwrap();
        assert_eq!((p4.start, p4.end), (22528, 23099));
        // Unalignable start stays as requested.
        let p = t.pretend(&[new(4, 34, 100)]).unwrap();
        assert_eq!(p.partition(4).unwrap().start, 34);
        // Pretend leaves the table alone.
        assert!(t.partition(4).is_none());
    }

    #[test]
    fn number_zero_and_ops_on_last_new() {
        let mut t = Table::new(512, 64 << 20).unwrap();
        t.apply(&[new(2, 0, 2048)]).unwrap();
        t.apply(&[
            new(0, 0, 2048),
            Op::Name {
                number: 0,
                name: "boot".into(),
            },
        ])
        .unwrap();
        assert_eq!(t.partition(1).unwrap().name, "boot");
        assert!(matches!(
            Table::new(512, 64 << 20).unwrap().apply(&[Op::Name {
                number: 0,
                name: "x".into()
            }]),
            Err(Error::NoNewPartition)
        ));
        assert!(matches!(
            t.apply(&[new(2, 0, 0)]),
            Err(Error::PartitionExists(2))
        ));
        assert!(matches!(
            t.apply(&[new(129, 0, 0)]),
            Err(Error::NumberOutOfRange(129))
        ));
        assert!(matches!(
            t.apply(&[Op::Delete(9)]),
            Err(Error::NumberOutOfRange(9))
        ));
        assert!(matches!(
            t.apply(&[Op::TypeGuid {
                number: 7,
                guid: LINUX_FILESYSTEM
            }]),
            Err(Error::NoSuchPartition(7))
        ));
    }

    #[test]
    fn names_truncate_to_36_utf16_units() {
        let mut t = Table::new(512, 64 << 20).unwrap();
        t.apply(&[
            new(1, 0, 0),
            Op::Name {
                number: 1,
                name: "x".repeat(40),
            },
        ])
        .unwrap();
        assert_eq!(t.partition(1).unwrap().name.len(), 36);
    }

    #[test]
    fn alignment_follows_existing_partitions() {
        let mut t = Table::new(512, 64 << 20).unwrap();
        // 34 would be moved up to 2048, which is free: the start is aligned.
        assert!(matches!(
            t.pretend(&[new(1, 34, 100)]),
            Err(Error::CannotCreate {
                start: 34,
                end: 133,
                ..
            })
        ));
        // Boxed in on both sides, 4098 stays, and the disk's alignment drops to 2.
        t.apply(&[new(1, 2048, 2050), new(3, 6144, 2048), new(2, 4098, 100)])
            .unwrap();
        assert_eq!(t.partition(2).unwrap().start, 4098);
        assert_eq!(t.compute_alignment(), 2);
    }

    #[test]
    fn write_read_roundtrip_keeps_numbers() {
        let mut d = disk(64);
        let mut t = read_or_new(&mut d, 512).unwrap();
        let guid: Guid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        t.apply(&[
            new(1, 0, 8192),
            new(2, 0, 8192),
            Op::Name {
                number: 2,
                name: "root".into(),
            },
            Op::PartGuid { number: 2, guid },
        ])
        .unwrap();
        t.write(&mut d).unwrap();
        let mut t = read(&mut d, 512).unwrap().unwrap();
        assert!(!t.is_new());
        t.apply(&[Op::Delete(1)]).unwrap();
        t.write(&mut d).unwrap();
        let back = read(&mut d, 512).unwrap().unwrap();
        assert!(back.partition(1).is_none());
        let p2 = back.partition(2).unwrap();
        assert_eq!(p2.name, "root");
        assert_eq!(p2.guid, guid);
        assert_eq!(p2.start, 2048 + 8192);
        assert_eq!(back, t);
    }

    #[test]
    fn zap_alone_leaves_no_table() {
        let mut d = disk(8);
        let mut t = read_or_new(&mut d, 512).unwrap();
        t.apply(&[new(1, 0, 0)]).unwrap();
        t.write(&mut d).unwrap();
        assert!(read(&mut d, 512).unwrap().is_some());
        let mut t = read(&mut d, 512).unwrap().unwrap();
        t.apply(&[Op::ZapAll]).unwrap();
        t.write(&mut d).unwrap();
        assert!(read(&mut d, 512).unwrap().is_none());
        assert!(d.get_ref()[..512].iter().all(|b| *b == 0));
    }

    #[test]
    fn corrupt_both_headers_is_an_error() {
        let mut d = disk(8);
        let mut t = read_or_new(&mut d, 512).unwrap();
        t.apply(&[new(1, 0, 0)]).unwrap();
        t.write(&mut d).unwrap();
        let last = 8 * 2048 - 1;
        d.get_mut()[512 + 20] ^= 0xff; // primary header CRC field
        d.get_mut()[last * 512 + 20] ^= 0xff; // backup header CRC field
        assert!(matches!(read(&mut d, 512), Err(Error::Corrupt { .. })));
        // One good copy is enough.
        d.get_mut()[last * 512 + 20] ^= 0xff;
        let t = read(&mut d, 512).unwrap().unwrap();
        assert!(t.partition(1).is_some());
    }

    #[test]
    fn dos_table_is_not_gpt() {
        let mut d = disk(8);
        let b = d.get_mut();
        b[510] = 0x55;
        b[511] = 0xAA;
        b[446 + 4] = 0x83;
        b[446 + 8] = 0x00;
        b[446 + 9] = 0x08;
        b[446 + 12] = 0x00;
        b[446 + 13] = 0x10;
        assert!(matches!(read(&mut d, 512), Err(Error::NotGpt)));
    }

    #[test]
    fn op_display_is_sgdisk_syntax() {
        assert_eq!(new(3, 0, 2048).to_string(), "--new=3:0:+2048");
        assert_eq!(
            Op::TypeGuid {
                number: 1,
                guid: LINUX_FILESYSTEM
            }
            .to_string(),
            "--typecode=1:0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
    }
}
