//! The disks stage: partitions, RAID arrays, LUKS volumes and filesystems, with Ignition's
//! semantics (see `docs/disks.md`).
//!
//! The stage plans first: it waits (bounded) for the devices the config names, reads every
//! disk's GPT, every device's superblock and LUKS header, decides each operation with
//! Ignition's rules and checks that every one can be carried out ([`plan`]).  Only then does it
//! write, phase by phase as Ignition does: partitions → raid → luks → filesystems
//! ([`run`]).  Devices made by an earlier phase are predicted during planning: a partition
//! that will exist is read at its future place on the disk, so a filesystem on a partition the
//! stage creates is checked before anything is written.  Only what cannot be known in advance
//! (the contents of a new md array, of a reused LUKS volume) is decided when it exists, by the
//! same rules.

pub mod devices;
pub mod filesystems;
pub mod luks;
pub mod partitions;
pub mod plan;
pub mod raid;

mod execute;
mod planner;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::model::Storage;
use crate::config::JsonPath;
use crate::fetch;
use crate::system::blockdev;
use crate::system::command;
use crate::system::gpt;
use crate::system::probe;

use super::{Context, Failure, Mode};
use devices::{Resolver, WaitError};
use filesystems::BadFilesystem;
use partitions::PartitionError;
pub use plan::{
    DiskPlan, FilesystemPlan, Found, FoundTable, FsAction, KeySource, LuksAction, LuksPlan, Plan,
    RaidPlan, Target,
};

/// Ignition waits up to 30 s for each device to appear; so does Ember by default.
pub const DEFAULT_DEVICE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the stage runs (what does not come from the config).
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for the devices of each phase, and for the kernel to show new
    /// partitions and arrays.
    pub device_timeout: Duration,
    /// At most this many mkfs at once.
    pub mkfs_parallelism: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            device_timeout: DEFAULT_DEVICE_TIMEOUT,
            mkfs_parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

impl Options {
    /// The defaults, with `EMBER_DEVICE_TIMEOUT` (seconds, fractions allowed) overriding the
    /// device timeout.
    pub fn from_env() -> Options {
        let mut o = Options::default();
        if let Some(t) = super::secs_from_env("EMBER_DEVICE_TIMEOUT") {
            o.device_timeout = t;
        }
        o
    }
}

/// Where the stage's time went (wall clock).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Waiting for devices to appear (before planning and between phases).
    pub waits: Duration,
    /// Planning without the waits: reading tables, superblocks and headers, deciding.
    pub planning: Duration,
    /// Writing partition tables.
    pub table_writes: Duration,
    /// BLKPG and waiting for the kernel to show the partitions.
    pub kernel_notify: Duration,
    /// Creating `/dev/disk/by-*` links.
    pub links: Duration,
    /// mdadm and waiting for arrays.
    pub raid: Duration,
    /// cryptsetup and clevis.
    pub luks: Duration,
    /// Wiping and mkfs (the parallel section, wall clock).
    pub mkfs: Duration,
    pub total: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub plan: Plan,
    pub timings: Timings,
}

/// Errors of the disks stage (the [`Failure`] around them names the operation and config
/// entry).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("{device}")]
    Device {
        device: String,
        #[source]
        source: blockdev::Error,
    },
    #[error("{first} and {second} are the same disk ({node})")]
    SameDisk {
        first: String,
        second: String,
        node: PathBuf,
    },
    #[error("reading the partition table of {device}")]
    ReadTable {
        device: String,
        #[source]
        source: gpt::Error,
    },
    #[error(
        "{device} does not have a GPT but an MBR partition table; set wipeTable to replace it"
    )]
    NotGpt { device: String },
    #[error("refusing to operate on directly active disk {device} ({why})")]
    ActiveDisk { device: String, why: String },
    #[error("refusing to wipe active disk {device} ({why})")]
    WipeActive { device: String, why: String },
    #[error("{device}")]
    Partition {
        device: String,
        #[source]
        source: PartitionError,
    },
    #[error("partition number {0} is out of range")]
    BadNumber(i64),
    #[error("invalid GUID {0:?}")]
    BadGuid(String),
    #[error("writing the partition table of {device}")]
    WriteTable {
        device: String,
        #[source]
        source: gpt::Error,
    },
    #[error("telling the kernel about the partitions of {device}")]
    Notify {
        device: String,
        #[source]
        source: blockdev::Error,
    },
    #[error("partition {number} of {device}: {detail}")]
    Verify {
        device: String,
        number: u32,
        detail: String,
    },
    #[error("{program} is needed {purpose} but was not found in PATH")]
    MissingTool { program: String, purpose: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{device} ({node}) is used by both {first} and {second}")]
    Conflict {
        device: String,
        node: String,
        first: String,
        second: String,
    },
    #[error("refusing to {action} {device}: it is in use ({why})")]
    InUse {
        action: String,
        device: String,
        why: String,
    },
    #[error("{device} is partition {number} of {disk}, which will not exist after partitioning")]
    Deleted {
        device: String,
        number: u32,
        disk: PathBuf,
    },
    #[error("probing {device}")]
    Probe {
        device: String,
        #[source]
        source: probe::Error,
    },
    #[error("reading {device}")]
    Read {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}")]
    BadFilesystem {
        device: String,
        #[source]
        source: BadFilesystem,
    },
    #[error("volume {device} cannot be reused: {reason}; set wipeVolume to replace it")]
    BadVolume { device: String, reason: String },
    #[error("cex secure keys need an IBM Z (s390x) machine")]
    Cex,
    #[error("no device given")]
    NoDevice,
    #[error("fetching the key file")]
    FetchKey(#[source] fetch::Error),
    #[error("the key file was not found")]
    KeyNotFound,
    #[error("fetching the advertisement of tang server {url}")]
    FetchAdvertisement {
        url: String,
        #[source]
        source: fetch::Error,
    },
    #[error("tang server {url} has no advertisement (/adv answered 404)")]
    NoAdvertisement { url: String },
    #[error("the advertisement of tang server {url} is not JSON")]
    BadAdvertisement { url: String },
    #[error("writing the key to a private temporary file")]
    KeyFile(#[source] std::io::Error),
    #[error(transparent)]
    Command(#[from] command::Error),
    #[error("wiping {device}")]
    Wipe {
        device: String,
        #[source]
        source: probe::Error,
    },
    #[error("{}", .0.join("\n"))]
    Several(Vec<String>),
}

fn storage_is_empty(s: &Storage) -> bool {
    s.disks.is_empty() && s.raid.is_empty() && s.filesystems.is_empty() && s.luks.is_empty()
}

/// Runs the disks stage (device timeout from `EMBER_DEVICE_TIMEOUT`, else 30 s).
pub fn run(ctx: &mut Context) -> Result<(), Failure> {
    run_with(ctx, &Options::from_env()).map(|_| ())
}

/// Runs the disks stage: plan, log the plan (one info line per operation), carry it out.
pub fn run_with(ctx: &mut Context, opts: &Options) -> Result<Outcome, Failure> {
    let started = Instant::now();
    if storage_is_empty(&ctx.config.storage) {
        log::info!("disks: no disks, raid, luks or filesystems in the config; nothing to do");
        return Ok(Outcome::default());
    }
    if let Mode::Apply { ignore_unsupported } = ctx.settings.mode {
        if ignore_unsupported {
            log::warn!(
                "disks: skipping disks, raid, luks and filesystems (not supported when \
                 applying a config to a directory tree)"
            );
            return Ok(Outcome::default());
        }
        return Err(Failure::new("checking the storage section")
            .at(JsonPath::root().key("storage"))
            .hint("use --ignore-unsupported to skip disks, raid, luks and filesystems")
            .caused_by(Error::Unsupported(
                "disks, raid, luks and filesystems cannot be applied to a directory tree".into(),
            )));
    }
    let mut timings = Timings::default();
    let mut resolver = Resolver::new(&ctx.settings.dev_dir);
    let plan = planner::plan_with(ctx, opts, &mut resolver, &mut timings)?;
    for line in plan.lines() {
        log::info!("disks plan: {line}");
    }
    execute::execute(ctx, opts, &plan, &mut resolver, &mut timings)?;
    timings.total = started.elapsed();
    log::debug!("disks: {timings:?}");
    Ok(Outcome { plan, timings })
}

/// Computes the plan without writing anything (waiting for devices as the stage does).
pub fn plan(ctx: &Context, opts: &Options) -> Result<Plan, Failure> {
    let mut resolver = Resolver::new(&ctx.settings.dev_dir);
    planner::plan_with(ctx, opts, &mut resolver, &mut Timings::default())
}

/// What a disk holds now: see [`current_layout`].
#[derive(Debug, Clone)]
pub struct Layout {
    pub sector_size: u64,
    pub bytes: u64,
    pub has_gpt: bool,
    /// Each GPT partition, with the filesystem (or other signature) found on it.
    pub partitions: Vec<(gpt::Partition, Option<Found>)>,
}

/// Reads a disk's partitions and what is on each, without writing (for `ember plan`).
pub fn current_layout(node: &std::path::Path) -> Result<Layout, Error> {
    planner::current_layout(node)
}

fn storage_path(section: &str, i: usize) -> JsonPath {
    JsonPath::root().key("storage").key(section).index(i)
}
