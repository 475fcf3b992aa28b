//! Device names without udev: resolving `/dev/disk/by-*` (and `/dev/md/NAME`,
//! `/dev/mapper/NAME`) by scanning sysfs, GPTs and superblocks, and creating the udev-style
//! links so that later stages and external tools find them.
//!
//! What is derived, per device (`-partN` is appended for partitions where udev does):
//!
//! | link | from |
//! |---|---|
//! | `by-label/L`, `by-uuid/U` | the superblock ([`crate::system::probe`]) |
//! | `by-partlabel/L`, `by-partuuid/u` | the parent disk's GPT entry (uuid lower-case) |
//! | `by-id/virtio-<serial>` | sysfs `serial` of virtio disks |
//! | `by-id/nvme-<model>_<serial>`, `by-id/nvme-<wwid>` | the NVMe controller's sysfs `model`/`serial`, namespace `wwid` |
//! | `by-id/wwn-0x<naa>` | SCSI/ATA sysfs `device/wwid` of the `naa.` form |
//! | `by-id/dm-name-<n>`, `by-id/dm-uuid-<u>` | sysfs `dm/name`, `dm/uuid` |
//! | `by-id/md-name-<n>`, `by-id/md-uuid-<u>` | the md superblock of a member |
//! | `by-path/pci-<addr>[-nvme-<nsid>\|-scsi-<h:c:t:l>]` | the sysfs device path |
//!
//! Not derived (they need ioctls or inquiry data udev's helpers get): `ata-<model>_<serial>`
//! and `scsi-…` ids, USB paths, by-path for platform/ACPI devices.  Loop devices get no by-id
//! or by-path links, as with udev.
//!
//! Link names are escaped like udev does: bytes other than ASCII letters, digits,
//! `#+-.:=@_` and valid UTF-8 sequences become `\xHH` (so `/` is `\x2f`, space `\x20`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use crate::system::blockdev::{self, SysBlock};
use crate::system::{gpt, probe};

/// Errors from name resolution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no block device matches {0}")]
    NotFound(PathBuf),
    #[error("{path} matches more than one device: {devices}")]
    Ambiguous { path: PathBuf, devices: String },
    #[error("block device")]
    Device(#[from] blockdev::Error),
    #[error("creating link {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, Error>;

/// Escapes a string for a `/dev/disk/by-*` link name, like udev.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let ok = c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii();
        if ok && c != '\\' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out
}

/// Reverses [`encode`] (`\xHH` sequences back to bytes).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kinds of `/dev/disk/by-*` directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Label,
    Uuid,
    PartLabel,
    PartUuid,
    Id,
    Path,
}

impl LinkKind {
    pub const ALL: [LinkKind; 6] = [
        LinkKind::Label,
        LinkKind::Uuid,
        LinkKind::PartLabel,
        LinkKind::PartUuid,
        LinkKind::Id,
        LinkKind::Path,
    ];

    /// Directory name under `/dev/disk`.
    pub fn dir(self) -> &'static str {
        match self {
            LinkKind::Label => "by-label",
            LinkKind::Uuid => "by-uuid",
            LinkKind::PartLabel => "by-partlabel",
            LinkKind::PartUuid => "by-partuuid",
            LinkKind::Id => "by-id",
            LinkKind::Path => "by-path",
        }
    }

    fn from_dir(d: &str) -> Option<LinkKind> {
        LinkKind::ALL.into_iter().find(|k| k.dir() == d)
    }
}

/// The canonical block-device node `path` leads to, if it exists now.
pub fn existing_node(path: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(path).ok()?;
    fs::metadata(&real)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|_| real)
}

/// A `/dev` name found by scanning the block devices rather than by following a path:
/// `disk/by-*/X`, `mapper/X` or `md/X` (relative to the dev directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Link(LinkKind, String),
    Mapper(String),
    Md(String),
}

/// Which scanned device a [`Query`] names.
#[derive(Debug)]
pub enum Choice<'a> {
    None,
    One(&'a SysBlock),
    /// Several devices, none preferred (their kernel names, comma-separated).
    Ambiguous(String),
}

impl Query {
    /// The query for `rel` (a path relative to the dev directory); `None` for any other name.
    pub fn parse(rel: &Path) -> Option<Query> {
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["disk", dir, name] => Some(Query::Link(LinkKind::from_dir(dir)?, decode(name))),
            ["mapper", name] => Some(Query::Mapper(name.to_string())),
            ["md", name] => Some(Query::Md(name.to_string())),
            _ => None,
        }
    }

    /// The device of `scan` this names.  When several match, udev would pick one by link
    /// priority; a single whole disk among them (before partitions) is the closest general
    /// rule, otherwise the name is ambiguous.
    pub fn choose<'a>(&self, scan: &'a [(SysBlock, DeviceNames)]) -> Choice<'a> {
        let found: Vec<&SysBlock> = scan
            .iter()
            .filter(|(b, n)| match self {
                Query::Link(kind, want) => n.matches(*kind, want),
                Query::Mapper(name) => n.mapper_name.as_deref() == Some(name.as_str()),
                Query::Md(name) => {
                    n.md_name.as_deref() == Some(name.as_str()) || b.name == format!("md{name}")
                }
            })
            .map(|(b, _)| b)
            .collect();
        match found[..] {
            [] => Choice::None,
            [one] => Choice::One(one),
            _ => match found
                .iter()
                .filter(|b| !b.is_partition())
                .collect::<Vec<_>>()[..]
            {
                [disk] => Choice::One(disk),
                _ => Choice::Ambiguous(
                    found
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            },
        }
    }
}

/// The names udev would give one block device (unescaped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceNames {
    pub kernel_name: String,
    pub fs_type: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub part_label: Option<String>,
    pub part_uuid: Option<String>,
    pub ids: Vec<String>,
    pub paths: Vec<String>,
    /// `/dev/mapper/<name>` for dm devices, `/dev/md/<name>` for md arrays.
    pub mapper_name: Option<String>,
    pub md_name: Option<String>,
}

impl DeviceNames {
    /// `(kind, unescaped name)` pairs for every by-* link.
    pub fn links(&self) -> Vec<(LinkKind, String)> {
        let mut v = Vec::new();
        let mut one = |k, o: &Option<String>| {
            if let Some(s) = o {
                if !s.is_empty() {
                    v.push((k, s.clone()));
                }
            }
        };
        one(LinkKind::Label, &self.label);
        one(LinkKind::Uuid, &self.uuid);
        one(LinkKind::PartLabel, &self.part_label);
        one(LinkKind::PartUuid, &self.part_uuid);
        for i in &self.ids {
            v.push((LinkKind::Id, i.clone()));
        }
        for p in &self.paths {
            v.push((LinkKind::Path, p.clone()));
        }
        v
    }

    fn matches(&self, kind: LinkKind, name: &str) -> bool {
        match kind {
            LinkKind::Label => self.label.as_deref() == Some(name),
            LinkKind::Uuid => self.uuid.as_deref() == Some(name),
            LinkKind::PartLabel => self.part_label.as_deref() == Some(name),
            LinkKind::PartUuid => self.part_uuid.as_deref() == Some(name),
            LinkKind::Id => self.ids.iter().any(|i| i == name),
            LinkKind::Path => self.paths.iter().any(|p| p == name),
        }
    }
}

/// Where `/dev` is; [`DevNames::default`] uses the real one.  Tests may point `dev` elsewhere
/// (links are relative, `../../<kernel name>`, as udev makes them).
#[derive(Debug, Clone)]
pub struct DevNames {
    pub dev: PathBuf,
}

impl Default for DevNames {
    fn default() -> Self {
        DevNames {
            dev: PathBuf::from("/dev"),
        }
    }
}

fn clean(s: &str) -> String {
    // udev replaces whitespace runs in ids with one underscore and trims the ends.
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

fn pci_addr(s: &str) -> bool {
    // DDDD:BB:DD.F
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && s.chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// Names of one device; `gpt_cache` avoids re-reading a disk's table for each partition.
fn names_of(blk: &SysBlock, gpt_cache: &mut HashMap<String, Option<gpt::Table>>) -> DeviceNames {
    let mut n = DeviceNames {
        kernel_name: blk.name.clone(),
        ..Default::default()
    };
    let node = blk.dev_path();
    if let Ok(Some(sig)) = probe::probe_path(&node) {
        n.fs_type = Some(sig.fs_type.clone());
        n.label = sig.label.clone();
        n.uuid = sig.uuid.clone();
    }
    let part = blk.partition_number();
    let disk = blk.whole_disk().unwrap_or_else(|_| blk.clone());
    let suffix = part.map(|p| format!("-part{p}")).unwrap_or_default();
    if let Some(num) = part {
        let table = gpt_cache
            .entry(disk.name.clone())
            .or_insert_with(|| gpt::read_device(&disk.dev_path()).ok().flatten());
        if let Some(p) = table.as_ref().and_then(|t| t.partition(num)) {
            n.part_uuid = Some(p.guid.to_lowercase());
            if !p.name.is_empty() {
                n.part_label = Some(p.name.clone());
            }
        }
    }

    // by-id
    let dname = &disk.name;
    if dname.starts_with("vd") {
        if let Some(serial) = disk.attr("serial").filter(|s| !s.is_empty()) {
            n.ids.push(format!("virtio-{}{suffix}", clean(&serial)));
        }
    }
    if dname.starts_with("nvme") {
        let model = disk.attr("device/model").map(|s| clean(&s));
        let serial = disk.attr("device/serial").map(|s| clean(&s));
        if let (Some(m), Some(s)) = (model, serial) {
            if !m.is_empty() && !s.is_empty() {
                n.ids.push(format!("nvme-{m}_{s}{suffix}"));
            }
        }
        if let Some(w) = disk.attr("wwid").filter(|s| !s.is_empty()) {
            n.ids.push(format!("nvme-{}{suffix}", clean(&w)));
        }
    }
    if dname.starts_with("sd") {
        if let Some(w) = disk.attr("device/wwid") {
            if let Some(naa) = w.trim().strip_prefix("naa.") {
                n.ids
                    .push(format!("wwn-0x{}{suffix}", naa.to_ascii_lowercase()));
            }
        }
    }
    if blk.is_device_mapper() {
        n.mapper_name = blk.dm_name();
        if let Some(name) = &n.mapper_name {
            n.ids.push(format!("dm-name-{name}"));
        }
        if let Some(uuid) = blk.dm_uuid() {
            n.ids.push(format!("dm-uuid-{uuid}"));
        }
    }
    if disk.is_md() {
        if let Some((name, uuid)) = md_identity(&disk) {
            if let Some(name) = name {
                n.ids.push(format!("md-name-{name}{suffix}"));
                let short = name.rsplit(':').next().unwrap_or(&name).to_string();
                if part.is_none() {
                    n.md_name = Some(short);
                }
            }
            n.ids.push(format!("md-uuid-{uuid}{suffix}"));
        }
    }

    // by-path
    let comps: Vec<String> = disk
        .sys_path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if let Some(pci) = comps.iter().rev().find(|c| pci_addr(c)) {
        let mut path = format!("pci-{pci}");
        if dname.starts_with("nvme") {
            if let Some(nsid) = disk.attr("nsid") {
                path.push_str(&format!("-nvme-{nsid}"));
            }
        } else if let Some(hctl) = comps.iter().rev().find(|c| {
            let parts: Vec<&str> = c.split(':').collect();
            parts.len() == 4 && parts.iter().all(|p| p.parse::<u32>().is_ok())
        }) {
            path.push_str(&format!("-scsi-{hctl}"));
        }
        n.paths.push(format!("{path}{suffix}"));
    }
    n
}

/// `(name as stored, uuid in mdadm's xxxxxxxx:xxxxxxxx:… form)` of an md array, from the
/// superblock of its first readable member.
fn md_identity(md: &SysBlock) -> Option<(Option<String>, String)> {
    let slaves = fs::read_dir(md.sys_path.join("slaves")).ok()?;
    for s in slaves.filter_map(|e| e.ok()) {
        let member = PathBuf::from("/dev").join(s.file_name());
        if let Ok(Some(sig)) = probe::probe_path(&member) {
            if sig.fs_type == "linux_raid_member" {
                let uuid = sig.uuid?.replace('-', "");
                let md_uuid = uuid
                    .as_bytes()
                    .chunks(8)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(":");
                return Some((sig.label, md_uuid));
            }
        }
    }
    None
}

impl DevNames {
    /// The names of the device at `path` (any node or link to it).
    pub fn names(&self, path: &Path) -> Result<DeviceNames> {
        let blk = SysBlock::from_path(path)?;
        Ok(names_of(&blk, &mut HashMap::new()))
    }

    /// `path` relative to the dev directory (or to `/dev`).
    pub fn relative<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        path.strip_prefix(&self.dev)
            .or_else(|_| path.strip_prefix("/dev"))
            .ok()
    }

    /// Names of every block device the kernel knows.
    pub fn scan(&self) -> Result<Vec<(SysBlock, DeviceNames)>> {
        let mut cache = HashMap::new();
        Ok(SysBlock::all()?
            .into_iter()
            .map(|b| {
                let n = names_of(&b, &mut cache);
                (b, n)
            })
            .collect())
    }

    /// Resolves a device path to its kernel node (`/dev/<name>`).
    ///
    /// An existing path is followed.  A missing `/dev/disk/by-*/X`, `/dev/mapper/X` or
    /// `/dev/md/X` is looked up by scanning every block device; when found, the missing link is
    /// created (so later lookups and other tools find it) and the node returned.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf> {
        if let Some(real) = existing_node(path) {
            return Ok(real);
        }
        let query = self
            .relative(path)
            .and_then(Query::parse)
            .ok_or_else(|| Error::NotFound(path.to_owned()))?;
        let scan = self.scan()?;
        let blk = match query.choose(&scan) {
            Choice::None => return Err(Error::NotFound(path.to_owned())),
            Choice::One(blk) => blk,
            Choice::Ambiguous(devices) => {
                return Err(Error::Ambiguous {
                    path: path.to_owned(),
                    devices,
                })
            }
        };
        let node = self.dev.join(&blk.name);
        if path.starts_with(&self.dev) {
            self.link(path, &blk.name)?;
        }
        Ok(node)
    }

    /// Creates or replaces symlink `link` → `<relative path to dev>/<kernel name>`.
    fn link(&self, link: &Path, kernel_name: &str) -> Result<()> {
        let err = |source| Error::Link {
            path: link.to_owned(),
            source,
        };
        let parent = link
            .parent()
            .ok_or_else(|| err(io::ErrorKind::InvalidInput.into()))?;
        fs::create_dir_all(parent).map_err(err)?;
        let depth = parent
            .strip_prefix(&self.dev)
            .map(|r| r.components().count())
            .unwrap_or(0);
        let target = PathBuf::from("../".repeat(depth)).join(kernel_name);
        if fs::read_link(link).is_ok_and(|t| t == target) {
            return Ok(());
        }
        // Atomically replace whatever is there.
        let tmp = parent.join(format!(".#ember-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(err)?;
        fs::rename(&tmp, link).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e)
        })?;
        log::debug!("linked {} -> {}", link.display(), target.display());
        Ok(())
    }

    /// Creates every by-* link (and `/dev/mapper`, `/dev/md` names) of the device at `path`.
    /// Returns the links made or confirmed.
    pub fn create_links(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let blk = SysBlock::from_path(path)?;
        self.create_links_for(&blk, &names_of(&blk, &mut HashMap::new()))
    }

    fn create_links_for(&self, blk: &SysBlock, n: &DeviceNames) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for (kind, name) in n.links() {
            let l = self.dev.join("disk").join(kind.dir()).join(encode(&name));
            self.link(&l, &blk.name)?;
            out.push(l);
        }
        if let Some(m) = &n.md_name {
            let l = self.dev.join("md").join(m);
            self.link(&l, &blk.name)?;
            out.push(l);
        }
        Ok(out)
    }

    /// After a disk changed (new table, new filesystems): removes the by-* links that point to
    /// the disk or any of its partitions, then creates the current ones for the disk and each
    /// partition.  Returns the links now present.
    pub fn refresh_disk_links(&self, disk: &Path) -> Result<Vec<PathBuf>> {
        let blk = SysBlock::from_path(disk)?.whole_disk()?;
        self.remove_links_to(&blk.name)?;
        let mut cache = HashMap::new();
        let mut out = self.create_links_for(&blk, &names_of(&blk, &mut cache))?;
        for p in blk.partitions()? {
            out.extend(self.create_links_for(&p.block, &names_of(&p.block, &mut cache))?);
        }
        Ok(out)
    }

    /// Removes every by-* link whose target is the device `disk_name` or one of its
    /// partitions (`<disk>N` or `<disk>pN`).  Returns the links removed.
    pub fn remove_links_to(&self, disk_name: &str) -> Result<Vec<PathBuf>> {
        // The kernel puts a `p` between a name that ends in a digit and the partition number
        // (loop1p2, nvme0n1p2; loop10 is another disk) and nothing otherwise (sda2).
        let needs_p = disk_name.ends_with(|c: char| c.is_ascii_digit());
        let is_ours = |target: &str| {
            target == disk_name
                || target.strip_prefix(disk_name).is_some_and(|rest| {
                    let digits = if needs_p {
                        rest.strip_prefix('p')
                    } else {
                        Some(rest)
                    };
                    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                })
        };
        let mut removed = Vec::new();
        for kind in LinkKind::ALL {
            let dir = self.dev.join("disk").join(kind.dir());
            let Ok(rd) = fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                let p = e.path();
                let Ok(t) = fs::read_link(&p) else {
                    continue;
                };
                let base = t
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if is_ours(&base) {
                    fs::remove_file(&p).map_err(|source| Error::Link {
                        path: p.clone(),
                        source,
                    })?;
                    removed.push(p);
                }
            }
        }
        Ok(removed)
    }
}

/// [`DevNames::resolve`] with the real `/dev`.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    DevNames::default().resolve(path)
}

/// [`DevNames::refresh_disk_links`] with the real `/dev`.
pub fn refresh_disk_links(disk: &Path) -> Result<Vec<PathBuf>> {
    DevNames::default().refresh_disk_links(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_like_udev() {
        assert_eq!(encode("my data"), "my\\x20data");
        assert_eq!(encode("a/b"), "a\\x2fb");
        assert_eq!(encode("back\\slash"), "back\\x5cslash");
        assert_eq!(encode("ok#+-.:=@_AZ09"), "ok#+-.:=@_AZ09");
        assert_eq!(encode("héllo"), "héllo");
        assert_eq!(encode("a$b"), "a\\x24b");
        for s in ["my data", "a/b", "back\\slash", "héllo", "x\\x2f"] {
            assert_eq!(decode(&encode(s)), s);
        }
        assert_eq!(decode("bad\\xZZ"), "bad\\xZZ");
        assert_eq!(decode("\\xéé"), "\\xéé");
    }

    #[test]
    fn pci_addresses() {
        assert!(pci_addr("0000:00:04.0"));
        assert!(!pci_addr("pci0000:00"));
        assert!(!pci_addr("virtio1"));
    }

    #[test]
    fn removing_links_to_loop1_leaves_loop10() {
        let top = std::env::temp_dir().join(format!("ember-devnames-{}", std::process::id()));
        let dir = top.join("disk/by-label");
        fs::create_dir_all(&dir).unwrap();
        for (link, target) in [
            ("a", "loop1"),
            ("b", "loop1p2"),
            ("c", "loop10"),
            ("d", "loop10p1"),
            ("e", "loop1p"),
            ("f", "sda1"),
        ] {
            std::os::unix::fs::symlink(format!("../../{target}"), dir.join(link)).unwrap();
        }
        let names = DevNames { dev: top.clone() };
        let mut removed = names.remove_links_to("loop1").unwrap();
        removed.sort();
        assert_eq!(removed, [dir.join("a"), dir.join("b")]);
        let mut sda = names.remove_links_to("sda").unwrap();
        sda.extend(names.remove_links_to("sd").unwrap());
        assert_eq!(sda, [dir.join("f")]);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn ids_are_cleaned() {
        assert_eq!(clean("  QEMU   NVMe Ctrl "), "QEMU_NVMe_Ctrl");
    }
}
