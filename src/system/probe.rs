//! Superblock probing without libblkid: type, UUID and label in blkid's formats.
//!
//! Known types: ext2/ext3/ext4 (told apart by feature flags as blkid does), xfs, btrfs, vfat
//! (FAT12/16/32), swap, crypto_LUKS (1 and 2), iso9660, udf, linux_raid_member (md 1.0, 1.1,
//! 1.2 and 0.90), and the partition tables gpt and dos (for wiping).  UUIDs are lower-case
//! 8-4-4-4-12 except vfat (`ABCD-1234`), iso9660 (from the creation date,
//! `YYYY-MM-DD-HH-MM-SS-CC`) and udf (blkid's 16 hex digits).  Labels are trimmed like blkid
//! trims them; vfat's label is the root directory's volume-label entry (blkid reports the boot
//! sector copy only as `LABEL_FATBOOT`).
//!
//! [`wipe_signatures`] is `wipefs -a`: it zeroes the magic bytes of every signature found,
//! repeatedly, until nothing is left.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::system::blockdev::{self, BlockDevice};

/// Errors from probing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("block device")]
    Device(#[from] blockdev::Error),
    #[error("ambivalent result: signatures of {0} found")]
    Ambivalent(String),
}

type Result<T> = std::result::Result<T, Error>;

/// What a signature is used for (blkid's `USAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Filesystem,
    Crypto,
    Raid,
    Other,
    PartitionTable,
}

/// A detected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// blkid's `TYPE` (`ext4`, `vfat`, `crypto_LUKS`, `linux_raid_member`, `gpt`, ...).
    pub fs_type: String,
    pub usage: Usage,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Byte ranges `(offset, len)` of the magic(s), which [`wipe_signatures`] zeroes.
    pub magics: Vec<(u64, usize)>,
}

impl Signature {
    fn new(fs_type: &str, usage: Usage) -> Signature {
        Signature {
            fs_type: fs_type.to_string(),
            usage,
            uuid: None,
            label: None,
            magics: Vec::new(),
        }
    }
}

/// Random-access reads that tolerate short devices.
struct Dev<'a, D: Read + Seek> {
    d: &'a mut D,
    size: u64,
}

impl<D: Read + Seek> Dev<'_, D> {
    /// `len` bytes at `off`, or `None` if they are beyond the end.
    fn read(&mut self, off: u64, len: usize) -> Result<Option<Vec<u8>>> {
        if off.checked_add(len as u64).is_none_or(|e| e > self.size) {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        self.d
            .seek(SeekFrom::Start(off))
            .and_then(|_| self.d.read_exact(&mut buf))
            .map_err(|source| Error::Io {
                what: format!("{len} bytes at offset {off}"),
                source,
            })?;
        Ok(Some(buf))
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// blkid's standard UUID text, or `None` for an all-zero UUID (blkid omits those).
fn uuid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b.iter().all(|x| *x == 0) {
        return None;
    }
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{x:02x}"));
    }
    Some(s)
}

/// A NUL-padded byte label, cut at the first NUL, trailing whitespace trimmed; `None` if empty.
fn label_text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]);
    let s = s.trim_end();
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Individual probes

fn probe_ext<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    let Some(sb) = dev.read(1024, 1024)? else {
        return Ok(None);
    };
    if le16(&sb, 0x38) != 0xEF53 {
        return Ok(None);
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    let flags = le32(&sb, 0x160);
    const HAS_JOURNAL: u32 = 0x4;
    const JOURNAL_DEV: u32 = 0x8;
    const RO_SUPP: u32 = 0x1 | 0x2 | 0x4; // sparse_super, large_file, btree_dir
    const EXT2_INCOMPAT_SUPP: u32 = 0x2 | 0x10; // filetype, meta_bg
    const EXT3_INCOMPAT_SUPP: u32 = 0x2 | 0x4 | 0x10; // + recover
    const TEST_FILESYS: u32 = 0x4;
    let journal = compat & HAS_JOURNAL != 0;
    let ext3_ok = ro_compat & !RO_SUPP == 0 && incompat & !EXT3_INCOMPAT_SUPP == 0;
    let ext2_ok = ro_compat & !RO_SUPP == 0 && incompat & !EXT2_INCOMPAT_SUPP == 0;
    let ty = if incompat & JOURNAL_DEV != 0 {
        "jbd"
    } else if journal && ext3_ok {
        "ext3"
    } else if !journal && ext2_ok {
        "ext2"
    } else if flags & TEST_FILESYS != 0 {
        "ext4dev"
    } else {
        "ext4"
    };
    let mut s = Signature::new(ty, Usage::Filesystem);
    s.uuid = uuid_text(&sb[0x68..0x78]);
    s.label = label_text(&sb[0x78..0x88]);
    s.magics.push((1024 + 0x38, 2));
    Ok(Some(s))
}

fn probe_xfs<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    let Some(sb) = dev.read(0, 512)? else {
        return Ok(None);
    };
    if &sb[0..4] != b"XFSB" {
        return Ok(None);
    }
    // A few sanity checks, as blkid does, so that stray "XFSB" bytes are not taken for xfs.
    let blocksize = u32::from_be_bytes([sb[4], sb[5], sb[6], sb[7]]);
    let sectsize = u16::from_be_bytes([sb[102], sb[103]]);
    if !(512..=65536).contains(&blocksize)
        || !blocksize.is_power_of_two()
        || !(512..=32768).contains(&sectsize)
    {
        return Ok(None);
    }
    let mut s = Signature::new("xfs", Usage::Filesystem);
    s.uuid = uuid_text(&sb[32..48]);
    s.label = label_text(&sb[108..120]);
    s.magics.push((0, 4));
    Ok(Some(s))
}

fn probe_btrfs<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    const MIRRORS: [u64; 3] = [0x10000, 0x400_0000, 0x40_0000_0000];
    let mut found: Option<Signature> = None;
    for (i, off) in MIRRORS.iter().enumerate() {
        let Some(sb) = dev.read(*off, 0x1000)? else {
            break;
        };
        if &sb[0x40..0x48] != b"_BHRfS_M" {
            if i == 0 {
                return Ok(None);
            }
            continue;
        }
        let s = found.get_or_insert_with(|| {
            let mut s = Signature::new("btrfs", Usage::Filesystem);
            s.uuid = uuid_text(&sb[0x20..0x30]);
            s.label = label_text(&sb[0x12b..0x12b + 256]);
            s
        });
        s.magics.push((off + 0x40, 8));
    }
    Ok(found)
}

/// Whether a 512-byte sector looks like a FAT boot sector (used to tell FAT from an MBR).
pub fn looks_like_fat_boot_sector(b: &[u8]) -> bool {
    fat_geometry(b).is_some()
}

struct FatGeometry {
    sector_size: u64,
    cluster_size: u64,
    reserved: u64,
    fats: u64,
    fat_length: u64,
    dir_entries: u64,
    fat32: bool,
}

fn fat_geometry(ms: &[u8]) -> Option<FatGeometry> {
    if ms.len() < 512 {
        return None;
    }
    let strong = &ms[0x52..0x57] == b"MSWIN"
        || &ms[0x52..0x5a] == b"FAT32   "
        || &ms[0x36..0x3b] == b"MSDOS"
        || &ms[0x36..0x3e] == b"FAT16   "
        || &ms[0x36..0x3e] == b"FAT12   "
        || &ms[0x36..0x3e] == b"FAT     ";
    // The weak magics (an x86 jump, or 55 AA) count only together with the 55 AA signature.
    let weak = ms[510] == 0x55 && ms[511] == 0xAA;
    if !strong && !weak {
        return None;
    }
    let sector_size = u64::from(le16(ms, 0x0B));
    let cluster_size = u64::from(ms[0x0D]);
    let reserved = u64::from(le16(ms, 0x0E));
    let fats = u64::from(ms[0x10]);
    let dir_entries = u64::from(le16(ms, 0x11));
    let media = ms[0x15];
    if fats == 0
        || reserved == 0
        || !(media >= 0xF8 || media == 0xF0)
        || cluster_size == 0
        || !cluster_size.is_power_of_two()
        || !(512..=4096).contains(&sector_size)
        || !sector_size.is_power_of_two()
    {
        return None;
    }
    let fat16_length = u64::from(le16(ms, 0x16));
    let fat_length = if fat16_length != 0 {
        fat16_length
    } else {
        u64::from(le32(ms, 0x24))
    };
    let mut sectors = u64::from(le16(ms, 0x13));
    if sectors == 0 {
        sectors = u64::from(le32(ms, 0x20));
    }
    let dir_size = (dir_entries * 32).div_ceil(sector_size);
    let meta = reserved + fat_length * fats + dir_size;
    let clusters = sectors.checked_sub(meta)? / cluster_size;
    let max = if fat16_length != 0 {
        0xFFF4
    } else {
        0x0FFF_FFF4
    };
    if clusters > max || fat_length == 0 {
        return None;
    }
    if !strong && (&ms[0x36..0x3e] == b"JFS     " || &ms[0x36..0x3e] == b"HPFS    ") {
        return None;
    }
    Some(FatGeometry {
        sector_size,
        cluster_size,
        reserved,
        fats,
        fat_length,
        dir_entries,
        fat32: fat16_length == 0,
    })
}

/// Finds the volume-label entry among `entries` directory entries at byte `off`.
fn fat_dir_label<D: Read + Seek>(
    dev: &mut Dev<D>,
    off: u64,
    entries: u64,
) -> Result<Option<Vec<u8>>> {
    let Some(dir) = dev.read(off, (entries * 32) as usize)? else {
        return Ok(None);
    };
    for e in dir.chunks_exact(32) {
        if e[0] == 0 {
            break;
        }
        let attr = e[11];
        if e[0] == 0xE5 || le16(e, 20) != 0 || le16(e, 26) != 0 || attr & 0x3F == 0x0F {
            continue;
        }
        if attr & (0x08 | 0x10) == 0x08 {
            let mut name = e[..11].to_vec();
            if name[0] == 0x05 {
                name[0] = 0xE5;
            }
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn probe_vfat<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    let Some(ms) = dev.read(0, 512)? else {
        return Ok(None);
    };
    let Some(g) = fat_geometry(&ms) else {
        return Ok(None);
    };
    let mut s = Signature::new("vfat", Usage::Filesystem);
    let (serial_at, sig_at, type_at) = if g.fat32 {
        (0x43, 0x42, 0x52)
    } else {
        (0x27, 0x26, 0x36)
    };
    let label = if g.fat32 {
        let cluster_bytes = g.cluster_size * g.sector_size;
        let data_start = (g.reserved + g.fats * g.fat_length) * g.sector_size;
        let fat_start = g.reserved * g.sector_size;
        let mut cluster = u64::from(le32(&ms, 0x2C));
        let mut label = None;
        // Follow the root directory's cluster chain, bounded like blkid.
        for _ in 0..100 {
            if !(2..0x0FFF_FFF8).contains(&cluster) {
                break;
            }
            let off = data_start + (cluster - 2) * cluster_bytes;
            if let Some(l) = fat_dir_label(dev, off, cluster_bytes / 32)? {
                label = Some(l);
                break;
            }
            match dev.read(fat_start + cluster * 4, 4)? {
                Some(b) => cluster = u64::from(le32(&b, 0) & 0x0FFF_FFFF),
                None => break,
            }
        }
        label
    } else {
        let root = (g.reserved + g.fats * g.fat_length) * g.sector_size;
        fat_dir_label(dev, root, g.dir_entries)?
    };
    s.label = label.and_then(|l| label_text(&l));
    if g.fat32 || matches!(ms[sig_at], 0x28 | 0x29) {
        let b = &ms[serial_at..serial_at + 4];
        s.uuid = Some(format!("{:02X}{:02X}-{:02X}{:02X}", b[3], b[2], b[1], b[0]));
    }
    if ms[type_at..type_at + 3] == *b"FAT" || ms[type_at..type_at + 5] == *b"MSWIN" {
        s.magics.push((type_at as u64, 8));
    } else if &ms[0x36..0x3b] == b"MSDOS" {
        s.magics.push((0x36, 5));
    }
    if ms[0] == 0xEB || ms[0] == 0xE9 {
        s.magics.push((0, 1));
    }
    s.magics.push((0x1FE, 2));
    Ok(Some(s))
}

fn probe_swap<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    for page in [4096u64, 8192, 16384, 32768, 65536] {
        let Some(m) = dev.read(page - 10, 10)? else {
            break;
        };
        match &m[..] {
            b"SWAPSPACE2" => {
                let Some(h) = dev.read(1024, 64)? else {
                    return Ok(None);
                };
                let mut s = Signature::new("swap", Usage::Other);
                if le32(&h, 0) == 1 {
                    s.uuid = uuid_text(&h[12..28]);
                    s.label = label_text(&h[28..44]);
                }
                s.magics.push((page - 10, 10));
                return Ok(Some(s));
            }
            b"SWAP-SPACE" => {
                let mut s = Signature::new("swap", Usage::Other);
                s.magics.push((page - 10, 10));
                return Ok(Some(s));
            }
            _ => {
                let m9 = &m[1..];
                if [&b"S1SUSPEND"[..], b"S2SUSPEND", b"ULSUSPEND"].contains(&m9)
                    || &m[..] == b"LINHIB0001"
                {
                    let mut s = Signature::new("swsuspend", Usage::Other);
                    s.magics.push((page - 10, 10));
                    return Ok(Some(s));
                }
            }
        }
    }
    Ok(None)
}

fn probe_luks<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    const PRIMARY: &[u8] = b"LUKS\xba\xbe";
    const SECONDARY: &[u8] = b"SKUL\xba\xbe";
    const SECONDARY_OFFSETS: [u64; 9] = [
        0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
    ];
    let mut hdr = dev.read(0, 512)?;
    let mut magics = Vec::new();
    if hdr.as_ref().is_some_and(|h| &h[..6] == PRIMARY) {
        magics.push((0u64, 6usize));
    } else {
        hdr = None;
    }
    for off in SECONDARY_OFFSETS {
        if let Some(h) = dev.read(off, 512)? {
            if &h[..6] == SECONDARY && u16::from_be_bytes([h[6], h[7]]) == 2 {
                magics.push((off, 6));
                if hdr.is_none() {
                    hdr = Some(h);
                }
            }
        }
    }
    let Some(h) = hdr else {
        return Ok(None);
    };
    let version = u16::from_be_bytes([h[6], h[7]]);
    let mut s = Signature::new("crypto_LUKS", Usage::Crypto);
    s.uuid = label_text(&h[168..208]);
    if version == 2 {
        s.label = label_text(&h[24..72]);
    }
    s.magics = magics;
    Ok(Some(s))
}

fn digits_empty(b: &[u8]) -> bool {
    b.iter().all(|c| *c == b'0' || *c == 0)
}

fn probe_iso9660<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    let Some(pvd) = dev.read(0x8000, 2048)? else {
        return Ok(None);
    };
    if &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    let mut s = Signature::new("iso9660", Usage::Filesystem);
    s.magics.push((0x8001, 5));
    let iso_label = label_text(&pvd[40..72]);
    // Joliet supplementary descriptors follow; their UCS-2 label is preferred when it is
    // compatible with the plain one, as blkid merges them.
    let mut joliet = None;
    for i in 1..32u64 {
        let Some(vd) = dev.read(0x8000 + i * 2048, 2048)? else {
            break;
        };
        if &vd[1..6] != b"CD001" || vd[0] == 255 {
            break;
        }
        if vd[0] == 2 && vd[88] == b'%' && vd[89] == b'/' && matches!(vd[90], b'@' | b'C' | b'E') {
            let units: Vec<u16> = vd[40..72]
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let text = String::from_utf16_lossy(&units);
            let text = text.trim_end_matches(['\0', ' ']).to_string();
            if !text.is_empty() {
                joliet = Some(text);
            }
            break;
        }
    }
    s.label = match (joliet, iso_label) {
        (Some(j), Some(i)) if i.len() > j.len() && i.starts_with(&j) => Some(i),
        (Some(j), _) => Some(j),
        (None, i) => i,
    };
    let date = if !digits_empty(&pvd[813..829]) {
        Some(&pvd[813..829])
    } else if !digits_empty(&pvd[830..846]) {
        Some(&pvd[830..846])
    } else {
        None
    };
    if let Some(d) = date {
        let c = |r: std::ops::Range<usize>| String::from_utf8_lossy(&d[r]).into_owned();
        s.uuid = Some(format!(
            "{}-{}-{}-{}-{}-{}-{}",
            c(0..4),
            c(4..6),
            c(6..8),
            c(8..10),
            c(10..12),
            c(12..14),
            c(14..16)
        ));
    }
    Ok(Some(s))
}

/// Decodes an OSTA CS0 "dstring" of `b.len()` bytes (last byte = used length).
fn udf_dstring(b: &[u8]) -> Option<String> {
    let used = *b.last()? as usize;
    if used == 0 || used > b.len() - 1 {
        return None;
    }
    let body = &b[1..used];
    let text = match b[0] {
        8 => body.iter().map(|c| *c as char).collect::<String>(),
        16 => {
            let u: Vec<u16> = body
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&u)
        }
        _ => return None,
    };
    let t = text.trim_end_matches(['\0', ' ']).to_string();
    (!t.is_empty()).then_some(t)
}

fn probe_udf<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    // Volume recognition sequence: BEA01 then NSR02/NSR03, at 32 KiB in 2 KiB steps (or the
    // block size if larger).
    let mut nsr = false;
    let mut bea_at = None;
    for vsd_len in [2048u64, 4096] {
        for i in 0..64u64 {
            let off = 0x8000 + i * vsd_len;
            let Some(vsd) = dev.read(off, 6)? else {
                break;
            };
            match &vsd[1..6] {
                b"BEA01" => bea_at = bea_at.or(Some(off)),
                b"NSR02" | b"NSR03" => {
                    nsr = true;
                    break;
                }
                b"TEA01" => break,
                b"CD001" | b"CDW02" | b"BOOT2" => {}
                _ if vsd[1..6] == [0; 5] => break,
                _ => {}
            }
        }
        if nsr {
            break;
        }
    }
    if !nsr {
        return Ok(None);
    }
    for bs in [512u64, 1024, 2048, 4096] {
        let Some(avdp) = dev.read(256 * bs, 512)? else {
            continue;
        };
        if le16(&avdp, 0) != 2 || le32(&avdp, 12) != 256 {
            continue;
        }
        let vds_len = u64::from(le32(&avdp, 16));
        let vds_loc = u64::from(le32(&avdp, 20));
        let mut s = Signature::new("udf", Usage::Filesystem);
        if let Some(off) = bea_at {
            s.magics.push((off + 1, 5));
        }
        let mut pvd_label = None;
        for i in 0..(vds_len / bs).min(64) {
            let Some(d) = dev.read((vds_loc + i) * bs, 512)? else {
                break;
            };
            match le16(&d, 0) {
                1 => {
                    pvd_label = udf_dstring(&d[24..56]);
                    s.uuid = udf_uuid(&d[72..200]);
                }
                6 => {
                    if let Some(l) = udf_dstring(&d[84..212]) {
                        s.label = Some(l);
                    }
                }
                8 => break,
                _ => {}
            }
        }
        if s.label.is_none() {
            s.label = pvd_label;
        }
        return Ok(Some(s));
    }
    Ok(None)
}

/// blkid's UDF UUID: from the first 16 characters of the volume set identifier.
fn udf_uuid(volset: &[u8]) -> Option<String> {
    let used = *volset.last()? as usize;
    if used < 2 || used > volset.len() - 1 {
        return None;
    }
    let mut buf: Vec<u8> = match volset[0] {
        8 => volset[1..used].to_vec(),
        16 => volset[1..used]
            .chunks_exact(2)
            .map(|c| if c[0] == 0 { c[1] } else { c[0] })
            .collect(),
        _ => return None,
    };
    buf.truncate(16);
    let hex = buf.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    let s = if hex >= 16 {
        String::from_utf8_lossy(&buf[..16]).to_ascii_lowercase()
    } else if hex >= 8 {
        let mut s = String::from_utf8_lossy(&buf[..8]).to_ascii_lowercase();
        for c in buf.iter().skip(8).take(4) {
            s.push_str(&format!("{c:02x}"));
        }
        s
    } else {
        buf.iter().take(8).map(|c| format!("{c:02x}")).collect()
    };
    (!s.is_empty()).then_some(s)
}

fn probe_md<D: Read + Seek>(dev: &mut Dev<D>) -> Result<Option<Signature>> {
    const MAGIC: u32 = 0xa92b_4efc;
    // 1.x superblocks: 1.1 at 0, 1.2 at 4 KiB, 1.0 at the end (8 KiB back, 4 KiB aligned).
    let sectors = dev.size / 512;
    let mut offsets = vec![0u64, 8];
    if sectors >= 16 {
        offsets.push((sectors - 16) & !7);
    }
    for sector in offsets {
        let Some(sb) = dev.read(sector * 512, 256)? else {
            continue;
        };
        // magic, major version 1, super_offset pointing at itself, valid checksum.
        if le32(&sb, 0) != MAGIC || le32(&sb, 4) != 1 || le64(&sb, 144) != sector {
            continue;
        }
        let max_dev = u64::from(le32(&sb, 220));
        let Some(full) = dev.read(sector * 512, (256 + 2 * max_dev.min(1920)) as usize)? else {
            continue;
        };
        if md1_checksum(&full) != le32(&sb, 216) {
            continue;
        }
        let mut s = Signature::new("linux_raid_member", Usage::Raid);
        s.uuid = uuid_text(&sb[16..32]);
        s.label = label_text(&sb[32..64]);
        s.magics.push((sector * 512, 4));
        return Ok(Some(s));
    }
    // 0.90 at the last 64 KiB-aligned 64 KiB block.
    if dev.size >= 0x10000 {
        let off = (dev.size & !0xFFFF) - 0x10000;
        if let Some(sb) = dev.read(off, 64)? {
            if le32(&sb, 0) == MAGIC {
                // blkid byte-swaps each uuid word of 0.90 superblocks.
                let mut uuid = [0u8; 16];
                let words: &[usize] = if le32(&sb, 8) >= 90 {
                    &[20, 52, 56, 60]
                } else {
                    &[20]
                };
                for (i, w) in words.iter().enumerate() {
                    for k in 0..4 {
                        uuid[i * 4 + k] = sb[w + 3 - k];
                    }
                }
                let mut s = Signature::new("linux_raid_member", Usage::Raid);
                s.uuid = uuid_text(&uuid);
                s.magics.push((off, 4));
                return Ok(Some(s));
            }
        }
    }
    Ok(None)
}

/// md 1.x superblock checksum: 32-bit little-endian words summed with the checksum field
/// (offset 216) counted as zero, then folded to 32 bits.
fn md1_checksum(sb: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    for (i, c) in sb.chunks(4).enumerate() {
        if i == 216 / 4 {
            continue;
        }
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        sum += u64::from(u32::from_le_bytes(b));
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

fn probe_tables<D: Read + Seek>(dev: &mut Dev<D>, sector_size: u64) -> Result<Option<Signature>> {
    let Some(s0) = dev.read(0, 512)? else {
        return Ok(None);
    };
    let mbr_sig = s0[510] == 0x55 && s0[511] == 0xAA;
    let mut gpt = Signature::new("gpt", Usage::PartitionTable);
    for ss in [sector_size, 512, 4096] {
        if let Some(h) = dev.read(ss, 8)? {
            if &h[..] == b"EFI PART" && !gpt.magics.contains(&(ss, 8)) {
                gpt.magics.push((ss, 8));
            }
        }
        if dev.size >= ss {
            let last = (dev.size / ss - 1) * ss;
            if let Some(h) = dev.read(last, 8)? {
                if &h[..] == b"EFI PART" && !gpt.magics.contains(&(last, 8)) {
                    gpt.magics.push((last, 8));
                }
            }
        }
    }
    let protective = mbr_sig && (0..4).any(|i| s0[446 + 16 * i + 4] == 0xEE);
    if !gpt.magics.is_empty() || protective {
        if mbr_sig {
            gpt.magics.push((0x1FE, 2));
        }
        return Ok(Some(gpt));
    }
    let entries: Vec<&[u8]> = (0..4).map(|i| &s0[446 + 16 * i..462 + 16 * i]).collect();
    if mbr_sig
        && entries.iter().all(|e| e[0] == 0 || e[0] == 0x80)
        && entries.iter().any(|e| e[4] != 0)
        && !looks_like_fat_boot_sector(&s0)
    {
        let mut dos = Signature::new("dos", Usage::PartitionTable);
        dos.magics.push((0x1FE, 2));
        return Ok(Some(dos));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Entry points

/// Every signature found on `dev` (partition tables included), in blkid's order of
/// precedence: raid, crypto, then filesystems, then partition tables.
pub fn probe_all<D: Read + Seek>(dev: &mut D, sector_size: u64) -> Result<Vec<Signature>> {
    let size = dev.seek(SeekFrom::End(0)).map_err(|source| Error::Io {
        what: "the device size".into(),
        source,
    })?;
    let mut d = Dev { d: dev, size };
    let mut out = Vec::new();
    type Probe<D> = fn(&mut Dev<D>) -> Result<Option<Signature>>;
    let probes: [Probe<D>; 9] = [
        probe_md,
        probe_luks,
        probe_vfat,
        probe_swap,
        probe_xfs,
        probe_ext,
        probe_iso9660,
        probe_udf,
        probe_btrfs,
    ];
    for p in probes {
        if let Some(s) = p(&mut d)? {
            out.push(s);
        }
    }
    if let Some(t) = probe_tables(&mut d, sector_size)? {
        out.push(t);
    }
    Ok(out)
}

/// The one content signature (not partition tables) of `dev`, like `blkid -p`: `Ok(None)` when
/// there is none; a raid member or LUKS header wins over anything else, as in blkid; any other
/// combination of two signatures is [`Error::Ambivalent`] (use [`probe_all`] to see them).
/// An ISO 9660 image that is also UDF is reported as udf, like blkid does.
pub fn probe<D: Read + Seek>(dev: &mut D) -> Result<Option<Signature>> {
    let mut all: Vec<Signature> = probe_all(dev, 512)?
        .into_iter()
        .filter(|s| s.usage != Usage::PartitionTable)
        .collect();
    if let Some(i) = all
        .iter()
        .position(|s| matches!(s.usage, Usage::Raid | Usage::Crypto))
    {
        return Ok(Some(all.swap_remove(i)));
    }
    if all.iter().any(|s| s.fs_type == "udf") {
        all.retain(|s| s.fs_type != "iso9660");
    }
    match all.len() {
        0 => Ok(None),
        1 => Ok(all.pop()),
        _ => Err(Error::Ambivalent(
            all.iter()
                .map(|s| s.fs_type.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// [`probe`] for a device or image path.
pub fn probe_path(path: &Path) -> Result<Option<Signature>> {
    let mut f = std::fs::File::open(path).map_err(|source| Error::Io {
        what: path.display().to_string(),
        source,
    })?;
    probe(&mut f)
}

/// Zeroes the magic bytes of every signature on `dev` (filesystems, raid, LUKS, GPT and MBR
/// tables), probing again until nothing is left, like `wipefs -a`.  Returns what was erased.
pub fn wipe_signatures<D: Read + Write + Seek>(
    dev: &mut D,
    sector_size: u64,
) -> Result<Vec<Signature>> {
    let mut erased = Vec::new();
    for _ in 0..16 {
        let found = probe_all(dev, sector_size)?;
        if found.is_empty() {
            break;
        }
        for s in found {
            for (off, len) in &s.magics {
                dev.seek(SeekFrom::Start(*off))
                    .and_then(|_| dev.write_all(&vec![0u8; *len]))
                    .map_err(|source| Error::Io {
                        what: format!("erasing {} magic at {off}", s.fs_type),
                        source,
                    })?;
            }
            log::debug!(
                "erased {} signature ({} magic(s))",
                s.fs_type,
                s.magics.len()
            );
            erased.push(s);
        }
    }
    dev.flush().map_err(|source| Error::Io {
        what: "flushing".into(),
        source,
    })?;
    Ok(erased)
}

/// [`wipe_signatures`] on a block device, flushing its caches afterwards.
pub fn wipe_device(path: &Path) -> Result<Vec<Signature>> {
    let mut dev = BlockDevice::open_rw(path)?;
    let ss = u64::from(dev.logical_sector_size()?);
    let erased = wipe_signatures(dev.file_mut(), ss)?;
    dev.flush()?;
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn empty_device_has_nothing() {
        let mut d = Cursor::new(vec![0u8; 1 << 20]);
        assert!(probe(&mut d).unwrap().is_none());
        assert!(probe_all(&mut d, 512).unwrap().is_empty());
        // Tiny devices do not error.
        let mut d = Cursor::new(vec![0u8; 100]);
        assert!(probe(&mut d).unwrap().is_none());
    }

    #[test]
    fn ext_types_by_features() {
        let mut img = vec![0u8; 1 << 20];
        img[1024 + 0x38] = 0x53;
        img[1024 + 0x39] = 0xEF;
        img[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0xAB; 16]);
        img[1024 + 0x78..1024 + 0x7d].copy_from_slice(b"data ");
        let t = |img: &Vec<u8>| probe(&mut Cursor::new(img.clone())).unwrap().unwrap();
        assert_eq!(t(&img).fs_type, "ext2");
        assert_eq!(t(&img).label.as_deref(), Some("data"));
        assert_eq!(
            t(&img).uuid.as_deref(),
            Some("abababab-abab-abab-abab-abababababab")
        );
        img[1024 + 0x5C] = 0x04; // has_journal
        assert_eq!(t(&img).fs_type, "ext3");
        img[1024 + 0x60] = 0x40; // extents
        assert_eq!(t(&img).fs_type, "ext4");
        img[1024 + 0x5C] = 0;
        assert_eq!(t(&img).fs_type, "ext4");
    }

    #[test]
    fn wipe_removes_everything() {
        let mut img = vec![0u8; 1 << 20];
        img[1024 + 0x38] = 0x53;
        img[1024 + 0x39] = 0xEF;
        img[0..4].copy_from_slice(b"LUKS");
        img[4..6].copy_from_slice(&[0xba, 0xbe]);
        img[7] = 1;
        let mut d = Cursor::new(img);
        let erased = wipe_signatures(&mut d, 512).unwrap();
        let types: Vec<_> = erased.iter().map(|s| s.fs_type.as_str()).collect();
        assert_eq!(types, ["crypto_LUKS", "ext2"]);
        assert!(probe_all(&mut d, 512).unwrap().is_empty());
    }

    #[test]
    fn dstring_decoding() {
        let mut b = [0u8; 32];
        b[0] = 8;
        b[1..5].copy_from_slice(b"DATA");
        b[31] = 5;
        assert_eq!(udf_dstring(&b).as_deref(), Some("DATA"));
        b[31] = 0;
        assert_eq!(udf_dstring(&b), None);
    }
}
