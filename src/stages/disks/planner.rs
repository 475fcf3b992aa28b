//! Computing the plan: waiting for devices, reading what is on them, deciding.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::devices::{self, partition_node, Resolver, WaitError, Window};
use super::filesystems::{self, FsSpec};
use super::partitions::{self, PartitionAction, PartitionSpec};
use super::plan::*;
use super::{luks, raid, storage_is_empty, storage_path, Error, Options, Timings};
use crate::config::model::{Disk, Luks, Storage, Tang};
use crate::config::JsonPath;
use crate::fetch;
use crate::providers::cmdline::redact_url;
use crate::stages::{fetch_resource, Context, Failure};
use crate::system::blockdev::{self, BlockDevice, SysBlock};
use crate::system::command;
use crate::system::devnames;
use crate::system::gpt::{self, Guid, Op, Table};
use crate::system::mounts::{self, MountInfo};
use crate::system::probe;

/// The largest key file Ember fetches.
const MAX_KEY_FILE: u64 = 64 << 20;

pub(super) fn plan_with(
    ctx: &Context,
    opts: &Options,
    resolver: &mut Resolver,
    timings: &mut Timings,
) -> Result<Plan, Failure> {
    let started = Instant::now();
    let storage = &ctx.config.storage;
    if storage_is_empty(storage) {
        return Ok(Plan::default());
    }
    let mounts = mounts::mountinfo().map_err(|e| {
        Failure::new("reading the mount table").caused_by(blockdev::Error::Mounts(e))
    })?;
    let mut p = Planner {
        storage,
        fetcher: ctx.fetcher,
        opts,
        resolver,
        mounts,
        waited: Duration::ZERO,
        plan: Plan::default(),
        disks: Vec::new(),
        uses: HashMap::new(),
    };
    let result = p.plan_all();
    timings.waits += p.waited;
    timings.planning += started.elapsed().saturating_sub(p.waited);
    result?;
    Ok(p.plan)
}

/// A disk as planned, for resolving names of partitions that may not exist yet.
struct PlannedDisk {
    node: PathBuf,
    sector_size: u64,
    /// The table after the stage.
    after: Option<Table>,
    /// Numbers created, resized or recreated (all of them on a wiped disk).
    changed: BTreeSet<u32>,
}

struct Planner<'a> {
    storage: &'a Storage,
    fetcher: &'a fetch::Fetcher,
    opts: &'a Options,
    resolver: &'a mut Resolver,
    mounts: Vec<MountInfo>,
    waited: Duration,
    plan: Plan,
    disks: Vec<PlannedDisk>,
    /// Device → the config entry using it (one device cannot serve two roles).
    uses: HashMap<String, String>,
}

/// What is on a device: a content signature and a LUKS header.
pub(super) struct Inspection {
    pub found: Option<Found>,
    pub luks: Option<luks::Header>,
}

pub(super) fn inspect<D: Read + Seek>(dev: &mut D, device: &str) -> Result<Inspection, Error> {
    let found = match probe::probe(dev) {
        Ok(s) => s.as_ref().map(Found::from),
        Err(probe::Error::Ambivalent(what)) => {
            log::warn!(
                "{device}: several signatures ({what}); using the first, as a permissive probe does"
            );
            probe::probe_all(dev, 512)
                .map_err(|source| Error::Probe {
                    device: device.into(),
                    source,
                })?
                .iter()
                .find(|s| s.usage != probe::Usage::PartitionTable)
                .map(Found::from)
        }
        Err(source) => {
            return Err(Error::Probe {
                device: device.into(),
                source,
            })
        }
    };
    let luks = luks::read_header(dev).map_err(|source| Error::Read {
        device: device.into(),
        source,
    })?;
    Ok(Inspection { found, luks })
}

/// Opens a block device for reading what is on it now.  The disk and each partition have
/// their own page cache, which the kernel does not keep coherent: data written through one
/// (mkfs on `/dev/vda1`) can be stale when read through the other (`/dev/vda`).  The
/// device's clean cached pages are dropped first (`POSIX_FADV_DONTNEED`; unlike `BLKFLSBUF`
/// this sends no flush to the device, which on a loop device would sync its backing file).
pub(super) fn open_fresh(node: &Path, device: &str) -> Result<BlockDevice, Error> {
    use std::os::fd::AsRawFd;
    let dev = BlockDevice::open(node).map_err(|source| Error::Device {
        device: device.into(),
        source,
    })?;
    // SAFETY: the descriptor is open for the lifetime of `dev`; offset 0 and length 0 mean
    // the whole file; fadvise only drops cache and cannot affect memory we own.
    let r = unsafe { libc::posix_fadvise(dev.file().as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        log::debug!(
            "{}: posix_fadvise: {}",
            node.display(),
            std::io::Error::from_raw_os_error(r)
        );
    }
    Ok(dev)
}

/// What a disk holds now (for `ember plan`'s evidence): its logical sector size, and its GPT's
/// partitions with what a probe finds on each (read at its place on the disk). `None` for the
/// table when the disk has no GPT (or one that cannot be read).
pub(super) fn current_layout(node: &Path) -> Result<super::Layout, Error> {
    let device = node.display().to_string();
    let dev_err = |source| Error::Device {
        device: device.clone(),
        source,
    };
    let mut dev = open_fresh(node, &device)?;
    let ss = u64::from(dev.logical_sector_size().map_err(dev_err)?);
    let bytes = dev.size_bytes().map_err(dev_err)?;
    let table = gpt::read(dev.file_mut(), ss).ok().flatten();
    let mut partitions = Vec::new();
    if let Some(t) = &table {
        for p in t.partitions() {
            let mut w = Window::new(dev.file(), p.start * ss, p.size() * ss);
            let found = inspect(&mut w, &device).ok().and_then(|i| i.found);
            partitions.push((p.clone(), found));
        }
    }
    Ok(super::Layout {
        sector_size: ss,
        bytes,
        has_gpt: table.is_some(),
        partitions,
    })
}

/// Inspects the device at `node`.
pub(super) fn inspect_node(node: &Path, device: &str) -> Result<Inspection, Error> {
    let dev = open_fresh(node, device)?;
    let mut f: &File = dev.file();
    inspect(&mut f, device)
}

fn parse_guid(s: &Option<String>) -> Result<Option<Guid>, Error> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(g) => g
            .parse()
            .map(Some)
            .map_err(|_| Error::BadGuid(g.to_string())),
    }
}

impl Planner<'_> {
    fn plan_all(&mut self) -> Result<(), Failure> {
        self.plan_disks()?;
        self.plan_raids()?;
        self.plan_luks()?;
        self.plan_filesystems()
    }

    /// Waits for `paths`, resolving names of devices this stage makes first.
    fn wait_targets(&mut self, paths: &[&str]) -> Result<Vec<Target>, Error> {
        let started = Instant::now();
        let disks = &self.disks;
        let storage = self.storage;
        let result = self.resolver.wait(paths, self.opts.device_timeout, |r, p| {
            resolve_planned(r, disks, storage, p)
        });
        self.waited += started.elapsed();
        result
    }

    fn note_use(&mut self, target: &Target, device: &str, who: String) -> Result<(), Error> {
        let key = match target {
            Target::Existing { node } | Target::Partition { node, .. } => {
                node.display().to_string()
            }
            Target::Raid { name } => format!("md:{name}"),
            Target::Luks { name } => format!("mapper:{name}"),
        };
        if let Some(first) = self.uses.get(&key) {
            return Err(Error::Conflict {
                device: device.to_string(),
                node: target.to_string(),
                first: first.clone(),
                second: who,
            });
        }
        self.uses.insert(key, who);
        Ok(())
    }

    /// The node of `target` if the kernel has it now with the contents it will have: for
    /// in-use checks and for tools that need a device during planning.
    fn current_node(&self, target: &Target) -> Option<PathBuf> {
        match target {
            Target::Existing { node } => Some(node.clone()),
            Target::Partition {
                disk,
                number,
                node,
                start,
                len,
                changed: false,
            } => {
                let sys = SysBlock::from_path(disk).ok()?;
                let kp = sys.partitions().ok()?;
                kp.iter()
                    .find(|p| {
                        p.number == *number && p.start * 512 == *start && p.size * 512 == *len
                    })
                    .and_then(|_| devices::existing_node(node))
            }
            _ => None,
        }
    }

    fn refuse_in_use(&self, target: &Target, device: &str, action: &str) -> Result<(), Error> {
        let Some(node) = self.current_node(target) else {
            return Ok(());
        };
        let Ok(blk) = SysBlock::from_path(&node) else {
            return Ok(());
        };
        match blockdev::usage_of(&blk, &self.mounts) {
            Ok(u) if u.in_use() => Err(Error::InUse {
                action: action.into(),
                device: device.into(),
                why: u.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// What is on `target` now, or will be once the partition phase is done; `None` when it
    /// cannot be known before the stage makes the device.
    fn inspect_target(&self, target: &Target, device: &str) -> Result<Option<Inspection>, Error> {
        match target {
            Target::Existing { node } => inspect_node(node, device).map(Some),
            Target::Partition {
                disk, start, len, ..
            } => {
                // Through the partition's own node when the kernel has it at that place (its
                // cache holds what was written through it), else at its place on the disk.
                if let Some(node) = self.current_node(target) {
                    return inspect_node(&node, device).map(Some);
                }
                let dev = open_fresh(disk, device)?;
                inspect(&mut Window::new(dev.file(), *start, *len), device).map(Some)
            }
            Target::Luks { name } => {
                // A freshly formatted volume holds nothing; a reused one can only be read once
                // it is open.
                let fresh = self
                    .plan
                    .luks
                    .iter()
                    .any(|l| l.name == *name && matches!(l.action, LuksAction::Format { .. }));
                Ok(fresh.then_some(Inspection {
                    found: None,
                    luks: None,
                }))
            }
            Target::Raid { .. } => Ok(None),
        }
    }

    // ---- partitions

    fn plan_disks(&mut self) -> Result<(), Failure> {
        let storage = self.storage;
        if storage.disks.is_empty() {
            return Ok(());
        }
        let paths: Vec<&str> = storage.disks.iter().map(|d| d.device.as_str()).collect();
        let started = Instant::now();
        let nodes = self
            .resolver
            .wait_nodes(&paths, self.opts.device_timeout)
            .map_err(|e| {
                // The disk entry whose device is missing (or ambiguous).
                let missing = match &e {
                    WaitError::Timeout { path, .. } | WaitError::Ambiguous { path, .. } => {
                        path.clone()
                    }
                };
                let at = storage.disks.iter().position(|d| d.device == missing);
                let e = Error::Wait(e);
                let mut f = Failure::new("waiting for the disks");
                if let Some(h) = hint_for(&e) {
                    f = f.hint(h);
                }
                if let Some(i) = at {
                    f = f.at(storage_path("disks", i).key("device"));
                }
                f.caused_by(e)
            });
        self.waited += started.elapsed();
        let nodes = nodes?;
        for (i, (disk, node)) in storage.disks.iter().zip(&nodes).enumerate() {
            let path = storage_path("disks", i);
            let fail = |e: Error| {
                // Point at the partition entry when the error is about one.
                let number = match &e {
                    Error::Partition { source, .. } => source.number(),
                    _ => None,
                };
                let at = number
                    .and_then(|n| {
                        disk.partitions
                            .iter()
                            .position(|p| p.number == i64::from(n))
                    })
                    .map(|j| path.key("partitions").index(j))
                    .unwrap_or_else(|| path.clone());
                failure(format!("planning the partitions of {}", disk.device), at, e)
            };
            if let Some(j) = nodes[..i].iter().position(|n| n == node) {
                return Err(fail(Error::SameDisk {
                    first: storage.disks[j].device.clone(),
                    second: disk.device.clone(),
                    node: node.clone(),
                }));
            }
            let dp = self.plan_disk(disk, node, path.clone()).map_err(fail)?;
            let mut changed = BTreeSet::new();
            for (_, a) in &dp.actions {
                match a {
                    PartitionAction::Create { new }
                    | PartitionAction::Resize { new, .. }
                    | PartitionAction::Recreate { new, .. } => {
                        changed.insert(new.number);
                    }
                    _ => {}
                }
            }
            if dp.wipe_table {
                if let Some(t) = &dp.after {
                    changed.extend(t.partitions().map(|p| p.number));
                }
            }
            self.disks.push(PlannedDisk {
                node: node.clone(),
                sector_size: dp.sector_size,
                after: dp.after.clone(),
                changed,
            });
            self.plan.disks.push(dp);
        }
        Ok(())
    }

    fn plan_disk(&mut self, disk: &Disk, node: &Path, path: JsonPath) -> Result<DiskPlan, Error> {
        let dev_err = |source| Error::Device {
            device: disk.device.clone(),
            source,
        };
        let mut dev = open_fresh(node, &disk.device)?;
        let ss = u64::from(dev.logical_sector_size().map_err(dev_err)?);
        let bytes = dev.size_bytes().map_err(dev_err)?;
        let wipe = disk.wipe_table == Some(true);
        let (found, current) = match gpt::read(dev.file_mut(), ss) {
            Ok(Some(t)) => (
                FoundTable::Gpt {
                    partitions: t.partitions().count(),
                },
                Some(t),
            ),
            Ok(None) => (FoundTable::None, None),
            Err(gpt::Error::NotGpt) if wipe => (FoundTable::Dos, None),
            Err(gpt::Error::NotGpt) => {
                return Err(Error::NotGpt {
                    device: disk.device.clone(),
                })
            }
            Err(e @ gpt::Error::Corrupt { .. }) if wipe => {
                (FoundTable::Corrupt(e.to_string()), None)
            }
            Err(source) => {
                return Err(Error::ReadTable {
                    device: disk.device.clone(),
                    source,
                })
            }
        };

        // In use: the disk itself, and each partition the kernel knows.
        let sys = SysBlock::from_path(node).map_err(dev_err)?;
        let disk_usage = blockdev::usage_of(&sys, &self.mounts).map_err(dev_err)?;
        let mut active = Vec::new();
        for kp in sys.partitions().map_err(dev_err)? {
            let u = blockdev::usage_of(&kp.block, &self.mounts).map_err(dev_err)?;
            if u.in_use() {
                active.push((kp.number, u));
            }
        }
        if disk_usage.in_use() && active.is_empty() {
            return Err(Error::ActiveDisk {
                device: disk.device.clone(),
                why: disk_usage.to_string(),
            });
        }
        if wipe && !active.is_empty() {
            return Err(Error::WipeActive {
                device: disk.device.clone(),
                why: active
                    .iter()
                    .map(|(n, u)| format!("partition {n} {u}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }

        let table_err = |source| Error::ReadTable {
            device: disk.device.clone(),
            source,
        };
        let mut base = match &current {
            Some(t) => t.clone(),
            None => Table::new(ss, bytes).map_err(table_err)?,
        };
        if wipe {
            base.apply(&[Op::ZapAll]).map_err(table_err)?;
        }

        let mut specs = Vec::with_capacity(disk.partitions.len());
        for (i, p) in disk.partitions.iter().enumerate() {
            let conv = |m| {
                partitions::mib_to_sectors(m, ss).map_err(|source| Error::Partition {
                    device: disk.device.clone(),
                    source,
                })
            };
            specs.push(PartitionSpec {
                index: i,
                number: u32::try_from(p.number).map_err(|_| Error::BadNumber(p.number))?,
                label: p.label.clone(),
                guid: parse_guid(&p.guid)?,
                type_guid: parse_guid(&p.type_guid)?,
                start: conv(p.start_mib)?,
                size: conv(p.size_mib)?,
                should_exist: p.should_exist != Some(false),
                wipe_entry: p.wipe_partition_entry == Some(true),
                resize: p.resize == Some(true),
            });
        }
        let active_numbers: BTreeSet<u32> = active.iter().map(|(n, _)| *n).collect();
        let pp = partitions::plan(&base, &specs, &active_numbers).map_err(|source| {
            Error::Partition {
                device: disk.device.clone(),
                source,
            }
        })?;
        let changed = wipe || !pp.ops.is_empty();
        let after = if !pp.ops.is_empty() {
            Some(pp.result.clone())
        } else if wipe {
            None
        } else {
            current
        };
        Ok(DiskPlan {
            path,
            device: disk.device.clone(),
            node: node.to_owned(),
            sector_size: ss,
            disk_sectors: bytes / ss,
            found,
            wipe_table: wipe,
            active,
            actions: pp.actions,
            ops: pp.ops,
            table: changed.then_some(pp.result),
            after,
        })
    }

    // ---- raid

    fn plan_raids(&mut self) -> Result<(), Failure> {
        let storage = self.storage;
        for (i, r) in storage.raid.iter().enumerate() {
            let path = storage_path("raid", i);
            let level = r.level.clone().unwrap_or_default();
            let fail =
                |e: Error| failure(format!("planning raid array {:?}", r.name), path.clone(), e);
            if !command::have_program("mdadm") {
                return Err(fail(Error::MissingTool {
                    program: "mdadm".into(),
                    purpose: format!("for raid array {:?}", r.name),
                }));
            }
            if let Err(why) = raid::ensure_md(&level) {
                return Err(fail(Error::Unsupported(why))
                    .hint("use a kernel with md support, or load md_mod and the level's module"));
            }
            let paths: Vec<&str> = r.devices.iter().map(String::as_str).collect();
            let targets = self.wait_targets(&paths).map_err(fail)?;
            let mut devices = Vec::new();
            for (dev, t) in r.devices.iter().zip(targets) {
                self.note_use(&t, dev, format!("raid array {:?}", r.name))
                    .map_err(fail)?;
                self.refuse_in_use(&t, dev, "use as a raid member")
                    .map_err(fail)?;
                devices.push((dev.clone(), t));
            }
            let spares = u32::try_from(r.spares.unwrap_or(0).max(0)).unwrap_or(0);
            self.plan.raids.push(RaidPlan {
                path,
                name: r.name.clone(),
                level,
                devices,
                spares,
                options: r.options.clone(),
            });
        }
        Ok(())
    }

    // ---- luks

    fn plan_luks(&mut self) -> Result<(), Failure> {
        let storage = self.storage;
        for (i, l) in storage.luks.iter().enumerate() {
            let path = storage_path("luks", i);
            let lp = self.plan_one_luks(l, path.clone()).map_err(|e| {
                let dm = matches!(e, Error::Unsupported(_));
                let f = failure(
                    format!("planning LUKS volume {:?}", l.name),
                    path.clone(),
                    e,
                );
                if dm {
                    f.hint(
                        "use a kernel with device-mapper and dm-crypt, or load dm_mod and dm_crypt",
                    )
                } else {
                    f
                }
            })?;
            self.plan.luks.push(lp);
        }
        Ok(())
    }

    fn plan_one_luks(&mut self, l: &Luks, path: JsonPath) -> Result<LuksPlan, Error> {
        let device = l
            .device
            .clone()
            .filter(|d| !d.is_empty())
            .ok_or(Error::NoDevice)?;
        if l.cex.enabled == Some(true) {
            return Err(Error::Cex);
        }
        if !command::have_program("cryptsetup") {
            return Err(Error::MissingTool {
                program: "cryptsetup".into(),
                purpose: format!("for LUKS volume {:?}", l.name),
            });
        }
        let uses_clevis = luks::has_clevis(&l.clevis);
        if uses_clevis && !command::have_program("clevis") {
            return Err(Error::MissingTool {
                program: "clevis".into(),
                purpose: format!("for the clevis binding of LUKS volume {:?}", l.name),
            });
        }
        luks::ensure_dm().map_err(Error::Unsupported)?;
        let target = self
            .wait_targets(&[device.as_str()])?
            .pop()
            .ok_or(Error::NoDevice)?;
        self.note_use(&target, &device, format!("LUKS volume {:?}", l.name))?;

        // The key.
        let (key, key_bytes) = match fetch_resource(&l.key_file) {
            Some(res) if l.key_file.source_str().is_some() => {
                let bytes = self
                    .fetcher
                    .fetch_bytes(&res, MAX_KEY_FILE)
                    .map_err(Error::FetchKey)?
                    .ok_or(Error::KeyNotFound)?;
                (
                    KeySource::Resource(path.key("keyFile")),
                    luks::Secret(bytes),
                )
            }
            _ => (KeySource::Generated, luks::Secret::generate()),
        };

        let action = match self.inspect_target(&target, &device)? {
            None => LuksAction::Decide,
            Some(insp) => match luks_decide(l, &key, &device, &insp)? {
                LuksAction::Reuse { found, .. } => {
                    // Prove the key opens it, when the device can be handed to cryptsetup now.
                    let key_checked = match self.current_node(&target) {
                        Some(node) => {
                            let kf = luks::KeyFile::new(&key_bytes).map_err(Error::KeyFile)?;
                            let test = luks::test_key_command(&node, kf.path());
                            if !luks::key_opens(&test, test.run_unchecked()?)? {
                                return Err(Error::BadVolume {
                                    device: device.clone(),
                                    reason: format!("found {found}, but the key does not open it"),
                                });
                            }
                            true
                        }
                        None => false,
                    };
                    LuksAction::Reuse { found, key_checked }
                }
                other => other,
            },
        };
        if matches!(action, LuksAction::Format { .. }) {
            self.refuse_in_use(&target, &device, "format")?;
        }

        // Clevis: tang servers without a configured advertisement are asked for it.
        let mut clevis = None;
        if uses_clevis {
            let mut advs = Vec::new();
            for t in &l.clevis.tang {
                advs.push(Some(tang_advertisement(self.fetcher, t)?));
            }
            clevis = luks::clevis_config(&l.clevis, &advs);
        }

        Ok(LuksPlan {
            path,
            name: l.name.clone(),
            device,
            target,
            action,
            key,
            label: l.label.clone(),
            uuid: l.uuid.clone(),
            discard: l.discard == Some(true),
            options: l.options.clone(),
            open_options: l.open_options.clone(),
            clevis,
            clevis_unlock_check: luks::clevis_unlock_check(&l.clevis),
            key_bytes,
        })
    }

    // ---- filesystems

    fn plan_filesystems(&mut self) -> Result<(), Failure> {
        let storage = self.storage;
        for (i, f) in storage.filesystems.iter().enumerate() {
            let path = storage_path("filesystems", i);
            let Some(format) = f
                .format
                .as_deref()
                .filter(|f| !f.is_empty() && *f != "virtiofs")
            else {
                continue;
            };
            let fail = |e: Error| {
                failure(
                    format!("planning the filesystem on {}", f.device),
                    path.clone(),
                    e,
                )
            };
            if let Some(program) = filesystems::mkfs_program(format) {
                if !command::have_program(program) {
                    return Err(fail(Error::MissingTool {
                        program: program.into(),
                        purpose: format!("to make {format} filesystems"),
                    }));
                }
            }
            let target = self
                .wait_targets(&[f.device.as_str()])
                .map_err(fail)?
                .pop()
                .ok_or_else(|| fail(Error::NoDevice))?;
            self.note_use(&target, &f.device, format!("filesystem {path}"))
                .map_err(fail)?;
            let spec = FsSpec {
                format,
                label: f.label.as_deref(),
                uuid: f.uuid.as_deref(),
                wipe: f.wipe_filesystem == Some(true),
            };
            let action = match self.inspect_target(&target, &f.device).map_err(fail)? {
                None => FsAction::Decide,
                Some(insp) => {
                    filesystems::decide(&spec, insp.found.as_ref()).map_err(|source| {
                        fail(Error::BadFilesystem {
                            device: f.device.clone(),
                            source,
                        })
                    })?
                }
            };
            if action.writes() {
                self.refuse_in_use(&target, &f.device, "format")
                    .map_err(fail)?;
            }
            self.plan.filesystems.push(FilesystemPlan {
                path,
                device: f.device.clone(),
                target,
                format: format.to_string(),
                label: f.label.clone(),
                uuid: f.uuid.clone(),
                wipe: spec.wipe,
                options: f.options.clone(),
                action,
            });
        }
        Ok(())
    }
}

/// How to get past the common refusals.
/// The advertisement of tang server `t`: the config's, else the server's `<url>/adv`.
fn tang_advertisement(fetcher: &fetch::Fetcher, t: &Tang) -> Result<serde_json::Value, Error> {
    let url = redact_url(&t.url);
    if let Some(a) = t.advertisement.as_deref().filter(|a| !a.is_empty()) {
        return serde_json::from_str(a).map_err(|_| Error::BadAdvertisement { url });
    }
    let adv = format!("{}/adv", t.url.trim_end_matches('/'));
    let bytes = match fetcher.fetch_bytes(&fetch::Resource::new(adv), 1 << 20) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Error::NoAdvertisement { url }),
        Err(source) => return Err(Error::FetchAdvertisement { url, source }),
    };
    serde_json::from_slice(&bytes).map_err(|_| Error::BadAdvertisement { url })
}

/// A planning failure of `op` at `at`, with the hint for `e` when there is one.
fn failure(op: String, at: JsonPath, e: Error) -> Failure {
    let hint = hint_for(&e);
    let f = Failure::new(op).at(at).caused_by(e);
    match hint {
        Some(h) => f.hint(h),
        None => f,
    }
}

fn hint_for(e: &Error) -> Option<&'static str> {
    use super::partitions::PartitionError as P;
    Some(match e {
        Error::Partition { source, .. } => match source {
            P::Mismatch { .. } => {
                "set wipePartitionEntry to replace the partition (its data is lost), or resize \
                 if only its size differs"
            }
            P::ShouldNotExist { .. } => "set wipePartitionEntry to delete it",
            P::Active { .. } => "unmount it (or stop what holds it) first",
            P::DoesNotFit { .. } => {
                "check startMiB and sizeMiB against the disk and its other partitions"
            }
            _ => return None,
        },
        Error::NotGpt { .. } | Error::ReadTable { .. } => {
            "set wipeTable to replace the partition table (the partitions on it are lost)"
        }
        Error::ActiveDisk { .. } | Error::WipeActive { .. } | Error::InUse { .. } => {
            "unmount it (or stop what holds it) first"
        }
        Error::BadFilesystem { .. } => {
            "set wipeFilesystem to replace it (its data is lost), or fix format, label and uuid"
        }
        Error::Wait(_) => "check the device path; EMBER_DEVICE_TIMEOUT sets how long to wait",
        Error::NoAdvertisement { .. } => {
            "check the tang server's URL, or give its advertisement in the config"
        }
        _ => return None,
    })
}

/// Ignition's LUKS reuse rules, given what is on the device.
pub(super) fn luks_decide(
    l: &Luks,
    key: &KeySource,
    device: &str,
    insp: &Inspection,
) -> Result<LuksAction, Error> {
    let bad = |reason: String| Error::BadVolume {
        device: device.to_string(),
        reason,
    };
    if l.wipe_volume == Some(true) {
        return Ok(LuksAction::Format {
            wipe: insp.found.clone(),
        });
    }
    match (&insp.luks, &insp.found) {
        (Some(h), _) if h.version == 2 => {
            let found = Found {
                fs_type: "crypto_LUKS".into(),
                label: h.label.clone(),
                uuid: h.uuid.clone(),
            };
            if luks::has_clevis(&l.clevis) {
                return Err(bad(format!(
                    "found {found}, and a volume with a clevis binding is never reused"
                )));
            }
            if !matches!(key, KeySource::Resource(_)) {
                return Err(bad(format!(
                    "found {found}, and only a volume with a keyFile can be reused"
                )));
            }
            if let Some(want) = &l.label {
                if h.label.as_deref().unwrap_or("") != want {
                    return Err(bad(format!("found {found}, wanted label {want:?}")));
                }
            }
            if let Some(want) = &l.uuid {
                if !h.uuid.as_deref().unwrap_or("").eq_ignore_ascii_case(want) {
                    return Err(bad(format!("found {found}, wanted UUID {want}")));
                }
            }
            let discard = l.discard == Some(true);
            if h.allow_discards != discard {
                return Err(bad(format!(
                    "found {found} {} discards, the config {} them",
                    if h.allow_discards { "with" } else { "without" },
                    if discard { "wants" } else { "does not want" }
                )));
            }
            Ok(LuksAction::Reuse {
                found,
                key_checked: false,
            })
        }
        (Some(h), _) => Err(bad(format!(
            "found a LUKS{} volume; only LUKS2 volumes are reused",
            h.version
        ))),
        (None, Some(f)) => Err(bad(format!("found {f}"))),
        (None, None) => Ok(LuksAction::Format { wipe: None }),
    }
}

/// Resolves a config device path during planning: names of partitions, arrays and volumes this
/// stage makes come first, then existing devices (a partition of a planned disk becomes the
/// planned partition).  `Ok(None)`: nothing by that name yet.
fn resolve_planned(
    r: &mut Resolver,
    disks: &[PlannedDisk],
    storage: &Storage,
    path: &str,
) -> Result<Option<Target>, Error> {
    let p = Path::new(path);
    let dev = r.dev_dir().to_owned();
    let rel = p
        .strip_prefix(&dev)
        .or_else(|_| p.strip_prefix("/dev"))
        .ok()
        .map(|r| r.to_string_lossy().into_owned());
    let planned_part = |d: &PlannedDisk, n: u32| -> Option<Target> {
        let part = d.after.as_ref()?.partition(n)?;
        Some(Target::Partition {
            disk: d.node.clone(),
            number: n,
            node: partition_node(&d.node, n),
            start: part.start * d.sector_size,
            len: part.size() * d.sector_size,
            changed: d.changed.contains(&n),
        })
    };
    let deleted = |d: &PlannedDisk, n: u32| Error::Deleted {
        device: path.into(),
        number: n,
        disk: d.node.clone(),
    };
    if let Some(rel) = rel.as_deref() {
        // Arrays and volumes this stage makes.
        if let Some(name) = rel.strip_prefix("md/") {
            if storage.raid.iter().any(|x| x.name == name) {
                return Ok(Some(Target::Raid { name: name.into() }));
            }
        }
        if storage.raid.iter().any(|x| x.name == path) {
            return Ok(Some(Target::Raid { name: path.into() }));
        }
        let mapper = rel.strip_prefix("mapper/").map(str::to_string).or_else(|| {
            rel.strip_prefix("disk/by-id/dm-name-")
                .map(devnames::decode)
        });
        if let Some(name) = mapper {
            if storage.luks.iter().any(|x| x.name == name) {
                return Ok(Some(Target::Luks { name }));
            }
        }
        // Partition names in the planned tables.
        let select = |keep: &dyn Fn(&gpt::Partition) -> bool| -> Vec<Target> {
            disks
                .iter()
                .flat_map(|d| {
                    d.after
                        .iter()
                        .flat_map(|t| t.partitions())
                        .filter(|p| keep(p))
                        .filter_map(|p| planned_part(d, p.number))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let matching = if let Some(want) = rel.strip_prefix("disk/by-partlabel/") {
            let want = devnames::decode(want);
            select(&|p| p.name == want)
        } else if let Some(want) = rel.strip_prefix("disk/by-partuuid/") {
            let want = devnames::decode(want).to_ascii_lowercase();
            select(&|p| p.guid.to_lowercase() == want)
        } else {
            Vec::new()
        };
        match matching.len() {
            0 => {}
            1 => return Ok(matching.into_iter().next()),
            _ => {
                return Err(WaitError::Ambiguous {
                    path: path.into(),
                    devices: matching
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .into())
            }
        }
    }
    // Partition nodes of planned disks by kernel name (`/dev/loop0p2`, `/dev/vda2`), even
    // before the kernel has them, and `<disk link>-partN`.
    for d in disks {
        if let Some(t) = &d.after {
            if let Some(part) = t
                .partitions()
                .find(|part| p == partition_node(&d.node, part.number))
            {
                return Ok(planned_part(d, part.number));
            }
        }
    }
    if let Some((disk_path, n)) = path
        .rsplit_once("-part")
        .and_then(|(a, b)| b.parse::<u32>().ok().map(|n| (a, n)))
    {
        if let Ok(Some(disk_node)) = r.find(disk_path) {
            if let Some(d) = disks.iter().find(|d| d.node == disk_node) {
                return planned_part(d, n).map(Some).ok_or_else(|| deleted(d, n));
            }
        }
    }
    // Existing devices.
    let Some(node) = r.find(path)? else {
        return Ok(None);
    };
    if let Ok(blk) = SysBlock::from_path(&node) {
        if let (Some(n), Ok(whole)) = (blk.partition_number(), blk.whole_disk()) {
            let whole_node = r.dev_dir().join(&whole.name);
            if let Some(d) = disks.iter().find(|d| d.node == whole_node) {
                return planned_part(d, n).map(Some).ok_or_else(|| deleted(d, n));
            }
        }
    }
    Ok(Some(Target::Existing { node }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// An HTTP server on 127.0.0.1 that answers every request with `status` and `body`.
    fn server(status: &'static str, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://user:pw@{addr}")
    }

    fn fetcher() -> fetch::Fetcher {
        fetch::Fetcher::new(fetch::Options {
            system_ca_files: Some(Vec::new()),
            ..fetch::Options::default()
        })
        .unwrap()
    }

    fn tang(url: &str, advertisement: Option<&str>) -> Tang {
        Tang {
            url: url.to_string(),
            advertisement: advertisement.map(str::to_string),
            ..Tang::default()
        }
    }

    #[test]
    fn a_missing_tang_advertisement_is_its_own_error() {
        let url = server("404 Not Found", "");
        let e = tang_advertisement(&fetcher(), &tang(&url, None)).unwrap_err();
        assert!(matches!(e, Error::NoAdvertisement { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("404"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
        assert!(hint_for(&e).is_some());
    }

    #[test]
    fn tang_advertisements_fetched_or_given() {
        let url = server("200 OK", r#"{"payload":"x"}"#);
        let adv = tang_advertisement(&fetcher(), &tang(&url, None)).unwrap();
        assert_eq!(adv["payload"], "x");
        let adv = tang_advertisement(&fetcher(), &tang(&url, Some(r#"{"a":1}"#))).unwrap();
        assert_eq!(adv["a"], 1);
        let e = tang_advertisement(&fetcher(), &tang(&url, Some("nope"))).unwrap_err();
        assert!(matches!(e, Error::BadAdvertisement { .. }), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
