//! Carrying out a plan, phase by phase: partitions → raid → luks → filesystems.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::devices::{Resolver, WaitError};
use super::filesystems::{self, FsSpec};
use super::partitions::PartitionAction;
use super::plan::*;
use super::planner::{inspect_node, luks_decide};
use super::{luks, raid, Error, Options, Timings};
use crate::stages::{Context, Failure};
use crate::system::blockdev::{self, NotifyOptions, SysBlock};
use crate::system::command::Command;
use crate::system::gpt;
use crate::system::probe;

pub(super) fn execute(
    ctx: &mut Context,
    opts: &Options,
    plan: &Plan,
    resolver: &mut Resolver,
    timings: &mut Timings,
) -> Result<(), Failure> {
    let mut x = Executor {
        ctx,
        opts,
        resolver,
        timings,
    };
    for d in &plan.disks {
        x.step(format!("partitioning {}", d.device), &d.path, |x| {
            x.partition(d)
        })?;
    }
    for r in &plan.raids {
        let started = Instant::now();
        let res = x.step(format!("creating raid array {:?}", r.name), &r.path, |x| {
            x.raid(r)
        });
        x.timings.raid += started.elapsed();
        res?;
    }
    for l in &plan.luks {
        let started = Instant::now();
        let res = x.step(
            format!("setting up LUKS volume {:?} on {}", l.name, l.device),
            &l.path,
            |x| x.luks(l),
        );
        x.timings.luks += started.elapsed();
        res?;
    }
    x.filesystems(&plan.filesystems)
}

struct Executor<'a, 'c> {
    ctx: &'a mut Context<'c>,
    opts: &'a Options,
    resolver: &'a mut Resolver,
    timings: &'a mut Timings,
}

impl Executor<'_, '_> {
    /// Runs one logged operation.
    fn step(
        &mut self,
        desc: String,
        path: &crate::config::JsonPath,
        f: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Failure> {
        let ops = self.ctx.ops;
        ops.run(&desc, || f(self))
            .map_err(|e| Failure::new(desc.clone()).at(path.clone()).caused_by(e))
    }

    fn links(&mut self, node: &Path) {
        let started = Instant::now();
        if let Err(e) = self.resolver.dev_names().create_links(node) {
            log::warn!("creating device links for {}: {e}", node.display());
        }
        self.resolver.refresh();
        self.timings.links += started.elapsed();
    }

    /// The node of a planned device now that the earlier phases ran, waiting for it.
    fn node_of(&mut self, target: &Target, device: &str) -> Result<PathBuf, Error> {
        let path = match target {
            Target::Existing { node } | Target::Partition { node, .. } => node.clone(),
            Target::Raid { name } => raid::array_path(self.resolver.dev_dir(), name),
            Target::Luks { name } => self.resolver.dev_dir().join("mapper").join(name),
        };
        let started = Instant::now();
        let r = self
            .resolver
            .wait_nodes(&[&path.to_string_lossy()], self.opts.device_timeout);
        self.timings.waits += started.elapsed();
        let node = r.map_err(|e| match e {
            WaitError::Timeout { timeout, .. } if device != path.to_string_lossy() => {
                WaitError::Timeout {
                    path: format!("{device} ({})", path.display()),
                    timeout,
                }
            }
            e => e,
        })?;
        Ok(node.into_iter().next().unwrap_or(path))
    }

    // ---- partitions

    fn partition(&mut self, d: &DiskPlan) -> Result<(), Error> {
        if let Some(t) = &d.table {
            let started = Instant::now();
            gpt::write_device(&d.node, t).map_err(|source| Error::WriteTable {
                device: d.device.clone(),
                source,
            })?;
            self.timings.table_writes += started.elapsed();
        }
        if d.table.is_some() || d.after.is_some() {
            // Make the kernel's partitions equal the table (BLKPG, as partx does for Ignition),
            // then check them as Ignition does.
            let started = Instant::now();
            let extents = d
                .after
                .as_ref()
                .map(|t| t.kernel_extents())
                .unwrap_or_default();
            let report = blockdev::notify_kernel(
                &d.node,
                &extents,
                &NotifyOptions {
                    reread: false,
                    timeout: self.opts.device_timeout,
                },
            )
            .map_err(|source| Error::Notify {
                device: d.device.clone(),
                source,
            })?;
            log::debug!("{}: kernel partitions: {report:?}", d.device);
            self.timings.kernel_notify += started.elapsed();
            verify(d)?;
        }
        let started = Instant::now();
        if let Err(e) = self.resolver.dev_names().refresh_disk_links(&d.node) {
            log::warn!("creating device links for {}: {e}", d.device);
        }
        self.resolver.refresh();
        self.timings.links += started.elapsed();
        Ok(())
    }

    // ---- raid

    fn raid(&mut self, r: &RaidPlan) -> Result<(), Error> {
        let mut members = Vec::new();
        for (dev, t) in &r.devices {
            members.push(self.node_of(t, dev)?);
        }
        let path = raid::array_path(self.resolver.dev_dir(), &r.name);
        raid::mdadm_create(&path, &r.level, &members, r.spares, &r.options).run()?;
        self.resolver.refresh();
        let node = self.node_of(
            &Target::Raid {
                name: r.name.clone(),
            },
            &path.to_string_lossy(),
        )?;
        // mdadm makes /dev/md/<name> itself when udev is absent; make sure it is there.
        if let Err(e) = self.resolver.dev_names().resolve(&path) {
            log::warn!("linking {}: {e}", path.display());
        }
        self.links(&node);
        Ok(())
    }

    // ---- luks

    fn luks(&mut self, l: &LuksPlan) -> Result<(), Error> {
        let node = self.node_of(&l.target, &l.device)?;
        let kf = luks::KeyFile::new(&l.key_bytes).map_err(Error::KeyFile)?;
        let mut action = l.action.clone();
        if action == LuksAction::Decide {
            let insp = inspect_node(&node, &l.device)?;
            let cfg = self
                .ctx
                .config
                .storage
                .luks
                .iter()
                .find(|c| c.name == l.name);
            action = match cfg {
                Some(c) => luks_decide(c, &l.key, &l.device, &insp)?,
                None => LuksAction::Format { wipe: insp.found },
            };
            let decided = LuksPlan {
                action: action.clone(),
                ..l.clone()
            };
            log::info!("decided now that the device exists: {decided}");
        }
        self.ctx
            .state
            .luks_persist_key_files
            .insert(l.name.clone(), l.key_bytes.data_url());
        if let LuksAction::Format { wipe } = &action {
            if wipe.is_some() {
                probe::wipe_device(&node).map_err(|source| Error::Wipe {
                    device: l.device.clone(),
                    source,
                })?;
            }
            luks::format_command(
                kf.path(),
                l.label.as_deref(),
                l.uuid.as_deref(),
                &l.options,
                &node,
            )
            .run()?;
        }
        luks::open_command(&node, &l.name, kf.path(), l.discard, &l.open_options).run()?;
        if let Some((pin, cfg)) = &l.clevis {
            Command::new("clevis")
                .args(["luks", "bind", "-f", "-k"])
                .arg(kf.path())
                .arg("-d")
                .arg(&node)
                .arg(pin)
                .secret_arg(cfg)
                .run()?;
            if l.clevis_unlock_check {
                Command::new("cryptsetup")
                    .args(["luksClose", &l.name])
                    .run()?;
                Command::new("clevis")
                    .args(["luks", "unlock", "-d"])
                    .arg(&node)
                    .args(["-n", &l.name])
                    .run()?;
            }
            if l.key == KeySource::Generated {
                Command::new("cryptsetup")
                    .arg("luksRemoveKey")
                    .arg(&node)
                    .arg(kf.path())
                    .run()?;
                self.ctx.state.luks_persist_key_files.remove(&l.name);
            }
        }
        drop(kf);
        let mapper = self.resolver.dev_dir().join("mapper").join(&l.name);
        self.resolver.refresh();
        let mapped = self.node_of(
            &Target::Luks {
                name: l.name.clone(),
            },
            &mapper.to_string_lossy(),
        )?;
        self.links(&mapped);
        Ok(())
    }

    // ---- filesystems

    fn filesystems(&mut self, list: &[FilesystemPlan]) -> Result<(), Failure> {
        let mut jobs = Vec::new();
        for f in list {
            if !f.action.writes() {
                continue;
            }
            let fail = |e: Error| {
                Failure::new(format!("creating the filesystem on {}", f.device))
                    .at(f.path.clone())
                    .caused_by(e)
            };
            let node = self.node_of(&f.target, &f.device).map_err(fail)?;
            let action = if f.action == FsAction::Decide {
                let insp = inspect_node(&node, &f.device).map_err(fail)?;
                let spec = FsSpec {
                    format: &f.format,
                    label: f.label.as_deref(),
                    uuid: f.uuid.as_deref(),
                    wipe: f.wipe,
                };
                let a = filesystems::decide(&spec, insp.found.as_ref()).map_err(|source| {
                    fail(Error::BadFilesystem {
                        device: f.device.clone(),
                        source,
                    })
                })?;
                let decided = FilesystemPlan {
                    action: a.clone(),
                    ..f.clone()
                };
                log::info!("decided now that the device exists: {decided}");
                a
            } else {
                f.action.clone()
            };
            if action.writes() {
                jobs.push(Job {
                    fs: f,
                    node,
                    action,
                });
            }
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let ops = self.ctx.ops;
        let workers = self.opts.mkfs_parallelism.clamp(1, jobs.len());
        let next = AtomicUsize::new(0);
        let failures: Mutex<Vec<(usize, Failure)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(j) = jobs.get(i) else { break };
                    if let Err(f) = j.run(ops) {
                        if let Ok(mut v) = failures.lock() {
                            v.push((i, f));
                        }
                    }
                });
            }
        });
        self.timings.mkfs += started.elapsed();
        for j in &jobs {
            self.links(&j.node);
        }
        let mut failures = failures.into_inner().unwrap_or_default();
        failures.sort_by_key(|(i, _)| *i);
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0).1),
            _ => {
                let path = failures[0].1.path.clone();
                let msgs = failures.iter().map(|(_, f)| f.chain()).collect();
                let mut f = Failure::new("creating filesystems").caused_by(Error::Several(msgs));
                f.path = path;
                Err(f)
            }
        }
    }
}

/// One wipe-and-mkfs, run on a worker thread.
struct Job<'p> {
    fs: &'p FilesystemPlan,
    node: PathBuf,
    action: FsAction,
}

impl Job<'_> {
    fn run(&self, ops: &crate::stages::OpLog) -> Result<(), Failure> {
        let f = self.fs;
        let desc = if f.format == "none" {
            format!("wiping {}", f.device)
        } else {
            format!("creating {} filesystem on {}", f.format, f.device)
        };
        ops.run(&desc, || -> Result<(), Error> {
            probe::wipe_device(&self.node).map_err(|source| Error::Wipe {
                device: f.device.clone(),
                source,
            })?;
            if let FsAction::Create { .. } = self.action {
                if let Some(cmd) = filesystems::mkfs_command(
                    &f.format,
                    f.label.as_deref(),
                    f.uuid.as_deref(),
                    &f.options,
                    &self.node,
                ) {
                    cmd.run()?;
                }
            }
            Ok(())
        })
        .map_err(|e| Failure::new(desc).at(f.path.clone()).caused_by(e))
    }
}

/// Ignition's check after partitioning: each created or changed partition has the expected
/// start and size in sysfs, and deleted ones are gone.
fn verify(d: &DiskPlan) -> Result<(), Error> {
    let dev_err = |source| Error::Device {
        device: d.device.clone(),
        source,
    };
    let kernel = SysBlock::from_path(&d.node)
        .and_then(|s| s.partitions())
        .map_err(dev_err)?;
    let ss = d.sector_size;
    let bad = |number, detail: String| Error::Verify {
        device: d.device.clone(),
        number,
        detail,
    };
    for (_, a) in &d.actions {
        match a {
            PartitionAction::Create { new }
            | PartitionAction::Resize { new, .. }
            | PartitionAction::Recreate { new, .. } => {
                let Some(k) = kernel.iter().find(|k| k.number == new.number) else {
                    return Err(bad(new.number, "the kernel does not show it".into()));
                };
                let (want_start, want_size) = (new.start * ss / 512, new.size() * ss / 512);
                if (k.start, k.size) != (want_start, want_size) {
                    return Err(bad(
                        new.number,
                        format!(
                            "sysfs shows start {} size {} (512-byte units), expected start \
                             {want_start} size {want_size}",
                            k.start, k.size
                        ),
                    ));
                }
            }
            PartitionAction::Delete { existing } => {
                let reused = d
                    .after
                    .as_ref()
                    .is_some_and(|t| t.partition(existing.number).is_some());
                if !reused && kernel.iter().any(|k| k.number == existing.number) {
                    return Err(bad(
                        existing.number,
                        "deleted, but the kernel still shows it".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
