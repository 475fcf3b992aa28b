//! The disks, mount and umount stages on real loop devices (root), checked from outside with
//! sgdisk, blkid and the mount table.
//!
//! md and dm-crypt tests need kernel support.  When the host kernel lacks it (no module
//! support, no md, no device-mapper: the case on the build machine), those tests boot a
//! QEMU/KVM virtual machine with a Debian kernel and run themselves inside it (see
//! [`vm`]); when that is impossible too, they fail saying what is missing.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ember::config::Config;
use ember::fetch::{self, Fetcher};
use ember::stages::disks::{self, FsAction, LuksAction, Options, Outcome};
use ember::stages::{mount, Context, Failure, Mode, OpLog, Settings, Stage, State};
use ember::system::blockdev;
use ember::system::gpt::Guid;
use ember::system::loopdev::ScratchDisk;
use ember::system::mounts::{self, MountGuard};

use crate::harness::{
    blkid, kernel_partitions, require_root, sgdisk_table, sgdisk_verify_ok, tool, TempDir,
};
use crate::plan::device_hash;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A scratch disk (root needed), with its paths as strings for configs.
struct Disk {
    inner: ScratchDisk,
}

impl Disk {
    fn new(mib: u64) -> Disk {
        require_root();
        Disk {
            inner: ScratchDisk::new(mib).expect("creating a scratch disk"),
        }
    }
    fn with_sector_size(mib: u64, ss: u32) -> Disk {
        require_root();
        Disk {
            inner: ScratchDisk::with_block_size(mib, ss).expect("creating a scratch disk"),
        }
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn dev(&self) -> String {
        self.inner.path().display().to_string()
    }
    fn part(&self, n: u32) -> String {
        self.inner.partition_path(n).display().to_string()
    }
}

/// A short unique suffix for labels (tests run in parallel and share /dev/disk).
fn uniq(tag: &str) -> String {
    format!(
        "{tag}{}",
        &Guid::random().to_string()[..6].to_ascii_lowercase()
    )
}

/// A config plus everything a stage needs.
struct Run {
    config: Config,
    state: State,
    fetcher: Fetcher,
    ops: OpLog,
    settings: Settings,
    root: TempDir,
}

fn config(json: &str) -> Config {
    let parsed = ember::config::parse(json.as_bytes());
    match parsed.config {
        Some(c) => c,
        None => panic!(
            "test config does not parse: {:?}\n{json}",
            parsed.report.entries
        ),
    }
}

impl Run {
    fn new(json: &str) -> Run {
        Run {
            config: config(json),
            state: State::default(),
            fetcher: Fetcher::new(fetch::Options::default()).unwrap(),
            ops: OpLog::new(),
            settings: Settings::new("metal", Mode::Boot),
            root: TempDir::new("disks-root"),
        }
    }

    fn with<T>(&mut self, stage: Stage, f: impl FnOnce(&mut Context) -> T) -> T {
        let mut ctx = Context {
            stage,
            root: &self.root.0,
            config: &self.config,
            state: &mut self.state,
            fetcher: &self.fetcher,
            ops: &self.ops,
            settings: &self.settings,
        };
        f(&mut ctx)
    }

    fn disks_with(&mut self, opts: &Options) -> Result<Outcome, Failure> {
        self.with(Stage::Disks, |c| disks::run_with(c, opts))
    }

    fn disks(&mut self) -> Result<Outcome, Failure> {
        self.disks_with(&opts())
    }

    fn plan(&mut self) -> Result<disks::Plan, Failure> {
        self.with(Stage::Disks, |c| disks::plan(c, &opts()))
    }

    fn mount(&mut self) -> Result<(), Failure> {
        self.with(Stage::Mount, |c| mount::run_mount_with(c, &opts()))
    }

    fn umount(&mut self) -> Result<(), Failure> {
        self.with(Stage::Umount, mount::run_umount)
    }
}

fn opts() -> Options {
    Options {
        device_timeout: Duration::from_secs(10),
        ..Options::default()
    }
}

fn disks_json(disks: &str, filesystems: &str) -> String {
    format!(
        r#"{{"ignition":{{"version":"3.5.0"}},"storage":{{"disks":[{disks}],"filesystems":[{filesystems}]}}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// Outside views

fn sgdisk_info(disk: &Path, n: u32) -> String {
    tool("sgdisk", &["-i", &n.to_string(), disk.to_str().unwrap()])
}

/// Makes partitions with sgdisk itself (not Ember) and tells the kernel.
fn sgdisk_make(disk: &Disk, args: &[&str]) {
    let mut a: Vec<&str> = args.to_vec();
    let dev = disk.dev();
    a.push(&dev);
    tool("sgdisk", &a);
    let t = ember::system::gpt::read_device(disk.path())
        .unwrap()
        .unwrap();
    blockdev::notify_kernel(
        disk.path(),
        &t.kernel_extents(),
        &blockdev::NotifyOptions {
            reread: false,
            ..Default::default()
        },
    )
    .unwrap();
}

fn mkfs(args: &[&str]) {
    tool(args[0], &args[1..]);
}

fn is_mounted(target: &Path) -> Option<mounts::MountInfo> {
    let real = std::fs::canonicalize(target).ok()?;
    mounts::mountinfo()
        .unwrap()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == real)
}

// ---------------------------------------------------------------------------------------------
// Partitions and filesystems

#[test]
fn creates_partitions_and_filesystems() {
    let disk = Disk::new(128);
    let (boot, root, data) = (uniq("boot"), uniq("root"), uniq("data"));
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":1,"label":"{boot}","sizeMiB":16,"typeGuid":"c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}},
                {{"number":2,"label":"{root}","sizeMiB":0,"guid":"5b2b5f5e-0e2b-4e0a-9c39-1f1d1c1b1a19"}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"{}","format":"vfat","label":"EFI"}},
               {{"device":"/dev/disk/by-partlabel/{root}","format":"ext4","label":"{data}"}}"#,
            disk.part(1)
        ),
    );
    let mut run = Run::new(&json);
    // Planning alone writes nothing.
    let blank = device_hash(disk.path());
    let plan = run.plan().unwrap();
    assert!(plan.writes());
    assert_eq!(device_hash(disk.path()), blank);
    assert!(kernel_partitions(disk.path()).is_empty());

    let out = run.disks().unwrap();
    // The same plan (new partitions get random GUIDs in each).
    let no_guids = |p: &disks::Plan| {
        p.lines()
            .into_iter()
            .map(|l| l.split(", GUID").next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(no_guids(&out.plan), no_guids(&plan));
    let t = sgdisk_table(disk.path());
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[&1], (2048, 34815, boot));
    assert_eq!(t[&2], (34816, 262110, root.clone()));
    sgdisk_verify_ok(disk.path());
    assert!(sgdisk_info(disk.path(), 1).contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"));
    assert!(sgdisk_info(disk.path(), 2)
        .contains("Partition unique GUID: 5B2B5F5E-0E2B-4E0A-9C39-1F1D1C1B1A19"));
    assert_eq!(
        kernel_partitions(disk.path()),
        vec![(1, 2048, 32768), (2, 34816, 262110 - 34816 + 1)]
    );

    let p1 = blkid(&disk.part(1));
    assert_eq!(p1.get("TYPE").map(String::as_str), Some("vfat"), "{p1:?}");
    assert_eq!(p1.get("LABEL").map(String::as_str), Some("EFI"));
    let p2 = blkid(&disk.part(2));
    assert_eq!(p2.get("TYPE").map(String::as_str), Some("ext4"), "{p2:?}");
    assert_eq!(p2.get("LABEL"), Some(&data));

    // The udev-style names exist for later stages and tools.
    let part2 = PathBuf::from(disk.part(2));
    assert_eq!(
        std::fs::canonicalize(format!("/dev/disk/by-partlabel/{root}")).unwrap(),
        part2
    );
    assert_eq!(
        std::fs::canonicalize(format!("/dev/disk/by-label/{data}")).unwrap(),
        part2
    );

    // The plan said so, and was logged as operations.
    assert_eq!(out.plan.disks[0].actions.len(), 2);
    assert!(out
        .plan
        .filesystems
        .iter()
        .all(|f| f.action == FsAction::Create { wipe: None }));
    let text = out.plan.to_string();
    assert!(text.contains("partition 1 \"boot"), "{text}");
    assert!(text.contains("create ext4 label"), "{text}");
    let ops: Vec<String> = run
        .ops
        .records()
        .into_iter()
        .map(|r| r.description)
        .collect();
    assert!(
        ops.iter().any(|o| o.starts_with("partitioning /dev/loop")),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|o| o.starts_with("creating ext4 filesystem on /dev/disk/by-partlabel/")),
        "{ops:?}"
    );
}

#[test]
fn second_run_changes_nothing() {
    let disk = Disk::new(64);
    let (a, b, l) = (uniq("a"), uniq("b"), uniq("l"));
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","wipeTable":true,"partitions":[
                {{"number":1,"label":"{a}","sizeMiB":8}},
                {{"number":2,"label":"{b}"}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"{}","format":"swap","label":"sw"}},
               {{"device":"/dev/disk/by-partlabel/{b}","format":"ext4","label":"{l}"}}"#,
            disk.part(1)
        ),
    );
    Run::new(&json).disks().unwrap();
    let view = || {
        (
            tool("sgdisk", &["-p", &disk.dev()]),
            blkid(&disk.part(1)),
            blkid(&disk.part(2)),
            device_hash(disk.path()),
        )
    };
    let before = view();
    assert_eq!(before.2.get("LABEL"), Some(&l));

    // wipeTable is true, so the second run wipes and rewrites the table: the same table
    // (partitions at the same places, names, types, GUIDs) except for a new disk GUID, and
    // the filesystems are kept.  Without wipeTable nothing at all is written.
    let json2 = json.replace(r#""wipeTable":true,"#, "");
    let mut run = Run::new(&json2);
    let out = run.disks().unwrap();
    assert!(!out.plan.writes(), "{}", out.plan);
    assert!(out.plan.disks[0].table.is_none());
    assert!(out
        .plan
        .filesystems
        .iter()
        .all(|f| matches!(f.action, FsAction::Keep { .. })));
    assert_eq!(view(), before);

    // Once more with the kernel not knowing the partitions: planning reads them at their
    // place through the disk node, whose page cache still holds what the first run read
    // there before mkfs; it must see the filesystems anyway.
    let dev = blockdev::BlockDevice::open(disk.path()).unwrap();
    dev.delete_partition(1).unwrap();
    dev.delete_partition(2).unwrap();
    assert!(kernel_partitions(disk.path()).is_empty());
    let out = Run::new(&json2).disks().unwrap();
    assert!(!out.plan.writes(), "{}", out.plan);
    assert_eq!(kernel_partitions(disk.path()).len(), 2);
    assert_eq!(view(), before);
}

#[test]
fn match_resize_delete_recreate_and_number_zero() {
    let disk = Disk::new(128);
    sgdisk_make(
        &disk,
        &[
            "--new=1:2048:+16M",
            "-c",
            "1:one",
            "--new=2:0:+8M",
            "-c",
            "2:two",
            "--new=3:0:+8M",
            "-c",
            "3:three",
            "--new=4:0:+8M",
            "-c",
            "4:four",
        ],
    );
    let guid2 = sgdisk_info(disk.path(), 2)
        .lines()
        .find(|l| l.starts_with("Partition unique GUID"))
        .unwrap()
        .to_string();
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":0,"label":"zero","sizeMiB":4}},
                {{"number":1,"label":"one","startMiB":1,"sizeMiB":16}},
                {{"number":2,"label":"two","sizeMiB":12,"resize":true}},
                {{"number":3,"shouldExist":false,"wipePartitionEntry":true}},
                {{"number":4,"label":"four-new","sizeMiB":8,"wipePartitionEntry":true}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let out = Run::new(&json).disks().unwrap();
    let t = sgdisk_table(disk.path());
    let want: BTreeMap<u32, (u64, u64, String)> = [
        (1, (2048, 34815, "one".to_string())),
        (2, (34816, 59391, "two".to_string())),
        // Number 0 took 3, freed by shouldExist: false, and the largest free block.
        (3, (75776, 83967, "zero".to_string())),
        (4, (59392, 75775, "four-new".to_string())),
    ]
    .into();
    assert_eq!(t, want, "plan:\n{}", out.plan);
    sgdisk_verify_ok(disk.path());
    // A resized partition keeps its GUID.
    assert!(sgdisk_info(disk.path(), 2).contains(&guid2));
    let kernel: Vec<(u32, u64, u64)> = t.iter().map(|(n, (s, e, _))| (*n, *s, e - s + 1)).collect();
    assert_eq!(kernel_partitions(disk.path()), kernel);
    let text = out.plan.to_string();
    for needle in [
        "partition 1 \"one\": keep",
        "partition 2 \"two\": resize from 16384 sectors (8 MiB) to 24576 sectors (12 MiB)",
        "partition 3 \"three\": delete",
        "partition 4 \"four\": delete and recreate \"four-new\"",
        "partition 3 \"zero\": create",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
}

#[test]
fn mismatch_is_an_error_and_nothing_is_written() {
    let disk = Disk::new(64);
    sgdisk_make(&disk, &["--new=1:2048:+16M", "-c", "1:one"]);
    let before = device_hash(disk.path());
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":2,"label":"two","startMiB":20,"sizeMiB":8}},
                {{"number":1,"label":"uno","sizeMiB":16}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let err = Run::new(&json).disks().unwrap_err();
    let msg = err.chain();
    assert!(
        msg.ends_with(
            "partition 1 didn't match: label did not match (specified \"uno\", got \"one\")"
        ),
        "{msg}"
    );
    assert_eq!(
        err.path.as_ref().unwrap().to_string(),
        "$.storage.disks.0.partitions.1"
    );
    assert!(err.hint.as_deref().unwrap().contains("wipePartitionEntry"));
    // Partition 2 would have fitted, but the plan failed as a whole: nothing was written.
    assert_eq!(device_hash(disk.path()), before);
    assert_eq!(sgdisk_table(disk.path()).len(), 1);

    // shouldExist: false on an existing partition without wipePartitionEntry.
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"shouldExist":false}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let msg = Run::new(&json).disks().unwrap_err().chain();
    assert!(
        msg.ends_with(
            "partition 1 exists but is specified as nonexistant and wipePartitionEntry is false"
        ),
        "{msg}"
    );
    assert_eq!(device_hash(disk.path()), before);
}

#[test]
fn wipe_table_replaces_everything() {
    let disk = Disk::new(64);
    sgdisk_make(&disk, &["--new=1:0:+8M", "--new=2:0:+8M", "--new=3:0:+8M"]);
    let guid_line = |d: &Disk| {
        tool("sgdisk", &["-p", &d.dev()])
            .lines()
            .find(|l| l.starts_with("Disk identifier"))
            .unwrap()
            .to_string()
    };
    let old_guid = guid_line(&disk);
    let label = uniq("only");
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","wipeTable":true,"partitions":[{{"number":2,"label":"{label}","sizeMiB":32}}]}}"#,
            disk.dev()
        ),
        "",
    );
    Run::new(&json).disks().unwrap();
    let t = sgdisk_table(disk.path());
    assert_eq!(t.len(), 1);
    assert_eq!(t[&2], (2048, 67583, label));
    assert_ne!(guid_line(&disk), old_guid);
    assert_eq!(kernel_partitions(disk.path()), vec![(2, 2048, 65536)]);
    sgdisk_verify_ok(disk.path());

    // A lone wipeTable leaves no table at all.
    let json = disks_json(
        &format!(r#"{{"device":"{}","wipeTable":true}}"#, disk.dev()),
        "",
    );
    Run::new(&json).disks().unwrap();
    assert!(!blkid(&disk.dev()).contains_key("PTTYPE"));
    assert!(kernel_partitions(disk.path()).is_empty());
}

#[test]
fn wiped_table_keeps_filesystems_at_the_same_place() {
    // As with Ignition, wipeTable only wipes the table: a partition recreated at the same
    // place shows the filesystem that was there, and a matching one is reused.
    let disk = Disk::new(64);
    sgdisk_make(&disk, &["--new=1:2048:+32M"]);
    let label = uniq("keep");
    mkfs(&["mkfs.ext4", "-q", "-L", &label, &disk.part(1)]);
    let uuid = blkid(&disk.part(1))["UUID"].clone();
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","wipeTable":true,"partitions":[{{"number":1,"startMiB":1,"sizeMiB":32}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"{}","format":"ext4","label":"{label}"}}"#,
            disk.part(1)
        ),
    );
    let out = Run::new(&json).disks().unwrap();
    assert!(matches!(
        out.plan.filesystems[0].action,
        FsAction::Keep { .. }
    ));
    assert_eq!(blkid(&disk.part(1))["UUID"], uuid);
}

#[test]
fn filesystem_reuse_wipe_and_mismatch() {
    let disk = Disk::new(64);
    sgdisk_make(&disk, &["--new=1:2048:+24M"]);
    let label = uniq("fs");
    mkfs(&["mkfs.ext4", "-q", "-L", &label, &disk.part(1)]);
    let uuid = blkid(&disk.part(1))["UUID"].clone();
    let part_json = r#"{"number":1,"startMiB":1,"sizeMiB":24},{"number":2,"sizeMiB":8}"#;
    let disk_json = format!(
        r#"{{"device":"{}","partitions":[{part_json}]}}"#,
        disk.dev()
    );

    // Reuse: same type and label (UUID given in upper case).
    let json = disks_json(
        &disk_json,
        &format!(
            r#"{{"device":"{}","format":"ext4","label":"{label}","uuid":"{}"}}"#,
            disk.part(1),
            uuid.to_uppercase()
        ),
    );
    let out = Run::new(&json).disks().unwrap();
    assert!(matches!(
        out.plan.filesystems[0].action,
        FsAction::Keep { .. }
    ));
    assert_eq!(blkid(&disk.part(1))["UUID"], uuid);
    assert_eq!(sgdisk_table(disk.path()).len(), 2);

    // Mismatch: an error before anything is written, with what was found.
    let before = device_hash(disk.path());
    for (fs, found) in [
        (r#""format":"xfs""#.to_string(), "found ext4"),
        (
            r#""format":"ext4","label":"other""#.to_string(),
            "wanted ext4 label \"other\"",
        ),
    ] {
        let json = disks_json(
            &disk_json.replace(
                r#","sizeMiB":8"#,
                r#","sizeMiB":4,"wipePartitionEntry":true"#,
            ),
            &format!(r#"{{"device":"{}",{fs}}}"#, disk.part(1)),
        );
        let err = Run::new(&json).disks().unwrap_err();
        let msg = err.chain();
        assert!(
            msg.contains("filesystem is not of the correct type, label, or UUID (found ext4 label"),
            "{msg}"
        );
        assert!(msg.contains(found), "{msg}");
        assert_eq!(
            err.path.as_ref().unwrap().to_string(),
            "$.storage.filesystems.0"
        );
        // Partition 2 would have been recreated smaller: it was not.
        assert_eq!(device_hash(disk.path()), before);
    }

    // Wipe: the old filesystem goes.
    let json = disks_json(
        &disk_json,
        &format!(
            r#"{{"device":"{}","format":"vfat","label":"NEW","wipeFilesystem":true}}"#,
            disk.part(1)
        ),
    );
    let out = Run::new(&json).disks().unwrap();
    assert!(
        matches!(&out.plan.filesystems[0].action, FsAction::Create { wipe: Some(f) } if f.fs_type == "ext4")
    );
    assert_eq!(blkid(&disk.part(1))["TYPE"], "vfat");
    assert_eq!(blkid(&disk.part(1))["LABEL"], "NEW");

    // format none: with a filesystem present and no wipe it is an error; with wipe, the
    // device ends up empty.
    let none = |wipe: bool| {
        disks_json(
            &disk_json,
            &format!(
                r#"{{"device":"{}","format":"none","wipeFilesystem":{wipe}}}"#,
                disk.part(1)
            ),
        )
    };
    assert!(Run::new(&none(false)).disks().is_err());
    Run::new(&none(true)).disks().unwrap();
    let after = blkid(&disk.part(1));
    assert!(!after.contains_key("TYPE"), "{after:?}");
}

#[test]
fn sectors_of_4096_bytes() {
    let disk = Disk::with_sector_size(64, 4096);
    let (a, b, l) = (uniq("a"), uniq("b"), uniq("l"));
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":1,"label":"{a}","sizeMiB":8}},
                {{"number":2,"label":"{b}","sizeMiB":0}}]}}"#,
            disk.dev()
        ),
        &format!(r#"{{"device":"/dev/disk/by-partlabel/{b}","format":"ext4","label":"{l}"}}"#),
    );
    let out = Run::new(&json).disks().unwrap();
    assert_eq!(out.plan.disks[0].sector_size, 4096);
    let p = tool("sgdisk", &["-p", &disk.dev()]);
    assert!(p.contains("Sector size (logical/physical): 4096/"), "{p}");
    let t = sgdisk_table(disk.path());
    assert_eq!(t[&1], (256, 2303, a));
    assert_eq!(t[&2], (2304, 16384 - 6, b));
    sgdisk_verify_ok(disk.path());
    // sysfs counts 512-byte units whatever the sector size.
    assert_eq!(kernel_partitions(disk.path())[0], (1, 2048, 16384));
    assert_eq!(blkid(&disk.part(2)).get("LABEL"), Some(&l));
}

#[test]
fn table_on_disk_but_not_in_the_kernel() {
    // This host's kernel parses no partition tables: a table written by another tool is
    // unknown to the kernel until someone tells it.  An unchanged table is not rewritten, but
    // the kernel is told, so the partitions' devices appear.
    let disk = Disk::new(64);
    let label = uniq("late");
    tool(
        "sgdisk",
        &[
            "--new=1:0:+16M",
            &format!("--change-name=1:{label}"),
            &disk.dev(),
        ],
    );
    assert!(kernel_partitions(disk.path()).is_empty());
    let before = device_hash(disk.path());
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"label":"{label}"}}]}}"#,
            disk.dev()
        ),
        &format!(r#"{{"device":"/dev/disk/by-partlabel/{label}","format":"ext4"}}"#),
    );
    let out = Run::new(&json).disks().unwrap();
    assert!(out.plan.disks[0].table.is_none());
    assert_eq!(kernel_partitions(disk.path()), vec![(1, 2048, 32768)]);
    assert_eq!(blkid(&disk.part(1))["TYPE"], "ext4");
    assert_ne!(device_hash(disk.path()), before);
}

#[test]
fn mounted_partition_is_kept_and_the_rest_changes_through_blkpg() {
    let disk = Disk::new(64);
    sgdisk_make(&disk, &["--new=1:2048:+16M", "-c", "1:busy"]);
    mkfs(&["mkfs.ext4", "-q", &disk.part(1)]);
    let mnt = TempDir::new("busy-mnt");
    let guard = MountGuard::mount(Path::new(&disk.part(1)), mnt.path(), "ext4", &["ro"]).unwrap();

    let two = uniq("two");
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":1,"label":"busy","sizeMiB":16}},
                {{"number":2,"label":"{two}","sizeMiB":8}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let out = Run::new(&json).disks().unwrap();
    assert_eq!(out.plan.disks[0].active.len(), 1);
    assert!(out
        .plan
        .to_string()
        .contains("partition 1 is in use (mounted on"));
    assert_eq!(
        kernel_partitions(disk.path()),
        vec![(1, 2048, 32768), (2, 34816, 16384)]
    );
    assert!(is_mounted(mnt.path()).is_some());
    assert_eq!(sgdisk_table(disk.path())[&2].2, two);

    // Changing the mounted partition, or wiping the table, is refused before any write.
    let before = device_hash(disk.path());
    let change = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"sizeMiB":8,"wipePartitionEntry":true}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let msg = Run::new(&change).disks().unwrap_err().chain();
    assert!(
        msg.ends_with("refusing to modify active partition 1"),
        "{msg}"
    );
    let wipe = disks_json(
        &format!(r#"{{"device":"{}","wipeTable":true}}"#, disk.dev()),
        "",
    );
    let msg = Run::new(&wipe).disks().unwrap_err().chain();
    assert!(msg.contains("refusing to wipe active disk"), "{msg}");
    assert!(msg.contains("partition 1 mounted on"), "{msg}");
    // Formatting it is refused too.
    let fmt = disks_json(
        "",
        &format!(
            r#"{{"device":"{}","format":"xfs","wipeFilesystem":true}}"#,
            disk.part(1)
        ),
    );
    let msg = Run::new(&fmt).disks().unwrap_err().chain();
    assert!(msg.contains("refusing to format"), "{msg}");
    assert_eq!(device_hash(disk.path()), before);
    guard.unmount().unwrap();
}

#[test]
fn device_that_never_appears_fails_after_a_bounded_wait() {
    require_root();
    let json = disks_json(
        r#"{"device":"/dev/disk/by-id/ember-no-such-disk","partitions":[{"number":1}]}"#,
        "",
    );
    let started = Instant::now();
    let err = Run::new(&json)
        .disks_with(&Options {
            device_timeout: Duration::from_millis(300),
            ..Options::default()
        })
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.chain(),
        "waiting for the disks: device /dev/disk/by-id/ember-no-such-disk did not appear within 0.300 s"
    );
    // A filesystem on a partition name that nothing provides.
    let json = disks_json(
        "",
        r#"{"device":"/dev/disk/by-partlabel/ember-nowhere","format":"ext4"}"#,
    );
    let err = Run::new(&json)
        .disks_with(&Options {
            device_timeout: Duration::from_millis(200),
            ..Options::default()
        })
        .unwrap_err();
    assert!(
        err.chain().ends_with("did not appear within 0.200 s"),
        "{}",
        err.chain()
    );
}

#[test]
fn overlapping_and_oversized_partitions_are_refused() {
    let disk = Disk::new(64);
    let overlapping = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":1,"startMiB":1,"sizeMiB":10}},
                {{"number":2,"startMiB":5,"sizeMiB":10}}]}}"#,
            disk.dev()
        ),
        "",
    );
    // Overlaps within the config are caught by validation, as Ignition does.
    let parsed = ember::config::parse(overlapping.as_bytes());
    assert!(parsed
        .report
        .entries
        .iter()
        .any(|e| e.message == "partitions overlap"));
    // The stage checks them itself too (a config assembled without validation).
    let mut cfg = config(&overlapping.replace(r#""startMiB":5"#, r#""startMiB":20"#));
    cfg.storage.disks[0].partitions[1].start_mib = Some(5);
    let before = device_hash(disk.path());
    let mut run = Run::new(&overlapping.replace(r#""startMiB":5"#, r#""startMiB":20"#));
    run.config = cfg;
    let msg = run.disks().unwrap_err().chain();
    assert!(
        msg.ends_with(
            "partition 2 does not fit: sectors 10240-30719 overlap partition 1 (sectors 2048-22527)"
        ),
        "{msg}"
    );
    // Overlapping a partition that is on the disk but not in the config.
    sgdisk_make(&disk, &["--new=3:2048:+10M"]);
    let before_existing = device_hash(disk.path());
    assert_ne!(before, before_existing);
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"startMiB":5,"sizeMiB":10}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let msg = Run::new(&json).disks().unwrap_err().chain();
    assert!(
        msg.ends_with(
            "partition 1 does not fit: sectors 10240-30719 overlap partition 3 (sectors 2048-22527)"
        ),
        "{msg}"
    );
    // Larger than the disk.
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"sizeMiB":100}}]}}"#,
            disk.dev()
        ),
        "",
    );
    let msg = Run::new(&json).disks().unwrap_err().chain();
    assert!(
        msg.contains("partition 1 does not fit: sectors 22528-227327"),
        "{msg}"
    );
    assert!(
        msg.contains("outside the usable sectors 34-131038"),
        "{msg}"
    );
    assert_eq!(device_hash(disk.path()), before_existing);
    assert_eq!(kernel_partitions(disk.path()), vec![(3, 2048, 20480)]);
}

/// Flips the CRC bytes of both GPT headers.
fn corrupt_gpt(disk: &Disk) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk.path())
        .unwrap();
    let size = f.seek(SeekFrom::End(0)).unwrap();
    for off in [512 + 16, size - 512 + 16] {
        let mut b = [0u8; 4];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut b).unwrap();
        for x in &mut b {
            *x ^= 0xff;
        }
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&b).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn corrupt_gpt_with_and_without_wipe_table() {
    let disk = Disk::new(64);
    tool("sgdisk", &["--new=1:0:+8M", &disk.dev()]);
    corrupt_gpt(&disk);
    let before = device_hash(disk.path());
    let json = |wipe: bool| {
        disks_json(
            &format!(
                r#"{{"device":"{}","wipeTable":{wipe},"partitions":[{{"number":1,"sizeMiB":16}}]}}"#,
                disk.dev()
            ),
            "",
        )
    };
    let msg = Run::new(&json(false)).disks().unwrap_err().chain();
    assert!(msg.contains("reading the partition table of"), "{msg}");
    assert!(msg.contains("the GPT is corrupt"), "{msg}");
    assert_eq!(device_hash(disk.path()), before);

    let out = Run::new(&json(true)).disks().unwrap();
    assert!(matches!(
        out.plan.disks[0].found,
        disks::FoundTable::Corrupt(_)
    ));
    sgdisk_verify_ok(disk.path());
    assert_eq!(sgdisk_table(disk.path())[&1].1, 2048 + 32768 - 1);
}

#[test]
fn mbr_table_needs_wipe_table() {
    let disk = Disk::new(64);
    let mut child = std::process::Command::new("sfdisk")
        .args(["-q", &disk.dev()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\n,10M,83\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let before = device_hash(disk.path());
    let json = |wipe: bool| {
        disks_json(
            &format!(
                r#"{{"device":"{}","wipeTable":{wipe},"partitions":[{{"number":1}}]}}"#,
                disk.dev()
            ),
            "",
        )
    };
    let msg = Run::new(&json(false)).disks().unwrap_err().chain();
    assert!(
        msg.contains("does not have a GPT but an MBR partition table"),
        "{msg}"
    );
    assert_eq!(device_hash(disk.path()), before);
    Run::new(&json(true)).disks().unwrap();
    assert_eq!(blkid(&disk.dev())["PTTYPE"], "gpt");
    sgdisk_verify_ok(disk.path());
}

#[test]
fn number_zero_partitions_take_the_next_free_numbers() {
    let disk = Disk::new(64);
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"label":"z1","sizeMiB":4}},
                {{"number":2,"label":"two","sizeMiB":4}},
                {{"label":"z3","sizeMiB":4}}]}}"#,
            disk.dev()
        ),
        "",
    );
    Run::new(&json).disks().unwrap();
    let t = sgdisk_table(disk.path());
    let names: Vec<(u32, &str)> = t.iter().map(|(n, v)| (*n, v.2.as_str())).collect();
    assert_eq!(names, vec![(1, "z1"), (2, "two"), (3, "z3")]);
    // Number 2 came first (explicit numbers before number 0).
    assert_eq!(t[&2].0, 2048);
}

// ---------------------------------------------------------------------------------------------
// Mount and umount

/// A disk with a root filesystem (p1) and a data filesystem (p2) meant for `/var/lib/data`,
/// the deeper one listed first.
fn two_filesystems(disk: &Disk) -> String {
    let (r, d) = (uniq("r"), uniq("d"));
    disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[
                {{"number":1,"label":"{r}","sizeMiB":40}},
                {{"number":2,"label":"{d}","sizeMiB":0}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"/dev/disk/by-partlabel/{d}","format":"ext4","path":"/var/lib/data","mountOptions":["ro","noatime"]}},
               {{"device":"/dev/disk/by-partlabel/{r}","format":"ext4","path":"/"}}"#
        ),
    )
}

#[test]
fn mount_in_depth_order_then_umount_in_reverse() {
    let disk = Disk::new(128);
    let mut run = Run::new(&two_filesystems(&disk));
    run.disks().unwrap();
    run.mount().unwrap();
    let root = run.root.path().to_path_buf();
    let data = root.join("var/lib/data");
    let (m_root, m_data) = (is_mounted(&root).unwrap(), is_mounted(&data).unwrap());
    let devno = |p: &str| blockdev::device_number(Path::new(p)).unwrap();
    assert_eq!((m_root.major, m_root.minor), devno(&disk.part(1)));
    assert_eq!((m_data.major, m_data.minor), devno(&disk.part(2)));
    assert!(
        m_data.mount_options.starts_with("ro,"),
        "{}",
        m_data.mount_options
    );
    assert!(
        m_data.mount_options.contains("noatime"),
        "{}",
        m_data.mount_options
    );
    // The data mount sits on the root mount: it was mounted after it.
    assert_eq!(m_data.parent_id, m_root.id);
    // Directories made inside the root filesystem, 0755, recorded for the files stage.
    use std::os::unix::fs::PermissionsExt;
    for d in ["var", "var/lib"] {
        let mode = std::fs::metadata(root.join(d))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755, "{d}");
    }
    assert_eq!(
        run.state.notated_directories,
        vec![
            "/var".to_string(),
            "/var/lib".into(),
            "/var/lib/data".into()
        ]
    );
    // Mounting again changes nothing.
    run.mount().unwrap();
    assert_eq!(is_mounted(&data).unwrap().id, m_data.id);

    run.umount().unwrap();
    assert!(is_mounted(&data).is_none());
    assert!(is_mounted(&root).is_none());
    assert!(root.is_dir());
    // A second umount has nothing to do.
    run.umount().unwrap();
}

#[test]
fn umount_leaves_a_busy_mount_alone() {
    let disk = Disk::new(128);
    let mut run = Run::new(&two_filesystems(&disk));
    run.disks().unwrap();
    run.mount().unwrap();
    let root = run.root.path().to_path_buf();
    let data = root.join("var/lib/data");
    let busy = std::fs::File::open(&data).unwrap();
    let err = run.umount().unwrap_err();
    let msg = err.chain();
    assert!(
        msg.contains(&format!("unmounting {}", data.display())),
        "{msg}"
    );
    assert!(msg.contains("busy"), "{msg}");
    // Left mounted, and the mount point still exists.
    assert!(is_mounted(&data).is_some());
    assert!(data.is_dir());
    drop(busy);
    run.umount().unwrap();
    assert!(is_mounted(&root).is_none());
}

#[test]
fn mount_refuses_a_symlink_in_the_path() {
    let disk = Disk::new(64);
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"{}","format":"ext4","path":"/var/x"}}"#,
            disk.part(1)
        ),
    );
    let mut run = Run::new(&json);
    run.disks().unwrap();
    let outside = TempDir::new("outside");
    std::os::unix::fs::symlink(outside.path(), run.root.path().join("var")).unwrap();
    let msg = run.mount().unwrap_err().chain();
    assert!(msg.contains("contains a non-directory component"), "{msg}");
    assert!(!outside.path().join("x").exists());
    assert!(is_mounted(&run.root.path().join("var/x")).is_none());
}

// ---------------------------------------------------------------------------------------------
// RAID and LUKS (in a VM when the host kernel cannot)

/// Whether the running kernel can make md arrays (loading md_mod if needed).
fn md_ok() -> bool {
    if !Path::new("/proc/mdstat").exists() {
        let _ = std::process::Command::new("modprobe")
            .args(["-a", "md_mod", "raid1"])
            .output();
    }
    Path::new("/proc/mdstat").exists()
}

/// Whether the running kernel has device-mapper (loading dm_mod and dm_crypt if needed).
fn dm_ok() -> bool {
    let has = || std::fs::read_to_string("/proc/misc").is_ok_and(|s| s.contains(" device-mapper"));
    if !has() {
        let _ = std::process::Command::new("modprobe")
            .args(["-a", "dm_mod", "dm_crypt"])
            .output();
    }
    has()
}

mod vm {
    //! Runs one test of this binary inside a KVM guest: the newest Debian kernel in /boot
    //! with its modules, a busybox initramfs that mounts the host's root read-only over
    //! virtio-9p (a tmpfs on /run, the temp and scratch directory), and the same test binary run in a chroot
    //! there with `EMBER_IN_VM=1`.
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crate::harness::TempDir;

    /// KVM when the CPU can virtualise (vmx/svm) and /dev/kvm exists, else emulation (TCG;
    /// nested hosts often expose /dev/kvm without being able to run a guest on it).
    fn accel() -> Vec<&'static str> {
        let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virt = cpu
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        if virt && Path::new("/dev/kvm").exists() {
            vec!["-enable-kvm", "-cpu", "host,-arch-capabilities"]
        } else {
            vec!["-accel", "tcg,thread=multi", "-cpu", "max"]
        }
    }

    /// Why a VM cannot be started here, or the kernel version to boot.
    fn kernel() -> Result<String, String> {
        for tool in ["qemu-system-x86_64", "cpio", "modprobe"] {
            if !ember::stages::disks::devices::have_program(tool) {
                return Err(format!("{tool} is not installed"));
            }
        }
        if !Path::new("/bin/busybox").exists() {
            return Err("/bin/busybox is missing (package busybox-static)".into());
        }
        let versions: Vec<String> = std::fs::read_dir("/boot")
            .map_err(|e| format!("reading /boot: {e}"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("vmlinuz-")
                    .map(str::to_string)
            })
            .filter(|v| {
                Path::new("/lib/modules")
                    .join(v)
                    .join("modules.dep")
                    .exists()
            })
            .collect();
        newest(versions).ok_or_else(|| {
            "no kernel with modules in /boot and /lib/modules (package linux-image-amd64)".into()
        })
    }

    /// The newest of kernel `versions`, numbers compared as numbers (6.1.0-10 is newer than
    /// 6.1.0-9), like `sort -V` in qemu-tests/get-kernel.sh.
    pub(super) fn newest(versions: Vec<String>) -> Option<String> {
        versions
            .into_iter()
            .max_by(|a, b| version_key(a).cmp(&version_key(b)))
    }

    /// A version as runs of digits (compared as numbers) and runs of anything else.
    fn version_key(v: &str) -> Vec<(u64, String)> {
        let mut key = Vec::new();
        let mut rest = v;
        while !rest.is_empty() {
            let digits = rest.starts_with(|c: char| c.is_ascii_digit());
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            key.push(if digits {
                (run.parse().unwrap_or(u64::MAX), String::new())
            } else {
                (0, run.to_string())
            });
            rest = tail;
        }
        key
    }

    /// The module files to load, in order, for `modules` of kernel `version`.
    fn module_files(version: &str, modules: &[&str]) -> Result<Vec<PathBuf>, String> {
        let mut out: Vec<PathBuf> = Vec::new();
        for m in modules {
            let o = std::process::Command::new("modprobe")
                .args(["-S", version, "--show-depends", m])
                .output()
                .map_err(|e| format!("modprobe: {e}"))?;
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some(rest) = line.strip_prefix("insmod ") {
                    let p = PathBuf::from(rest.split_whitespace().next().unwrap_or_default());
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        Ok(out)
    }

    const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
for m in $($B cat /modules.list); do $B insmod /mods/$m || echo "insmod $m failed"; done
# The virtio device may still be probing: retry for a few seconds.
n=0
until $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /host 2>/dev/null; do
  n=$((n+1)); [ $n -gt 100 ] && break; $B usleep 100000
done
if $B grep -q " /host " /proc/mounts; then
  $B mount -t proc proc /host/proc
  $B mount -t sysfs sysfs /host/sys
  $B mount -t devtmpfs devtmpfs /host/dev
  # Only /run gets a tmpfs: the test binary may live below /tmp or /var/tmp (a checkout
  # there), so those stay the host's; TMPDIR points the tests to /run/tmp instead.
  $B mount -t tmpfs tmpfs /host/run
  $B mkdir -p /host/run/tmp
  echo /modprobe > /proc/sys/kernel/modprobe
  $B cp /guest.sh /host/run/ember-guest.sh
  $B chroot /host /bin/sh /run/ember-guest.sh
else
  echo "EMBER-VM-ERROR cannot mount the host root"
fi
$B sync
echo o > /proc/sysrq-trigger
$B poweroff -f
"#;

    /// The kernel's module loader inside the guest: the host's modprobe in the chroot.
    const MODPROBE: &str =
        "#!/bin/busybox sh\nexec /bin/busybox chroot /host /sbin/modprobe \"$@\"\n";

    /// Runs test `name` of this binary in a VM and fails the calling test if it fails there.
    /// `needs` says what the host lacks.
    pub fn run(name: &str, needs: &str) {
        if std::env::var_os("EMBER_IN_VM").is_some() {
            panic!("{needs} is not available, even in the test VM");
        }
        let version = kernel().unwrap_or_else(|why| {
            panic!(
                "this host's kernel has no {needs} support, and no VM can be started to test it \
                 ({why}); install linux-image-amd64, qemu-system-x86, busybox-static and cpio"
            )
        });
        let exe = std::env::current_exe().unwrap();
        let dir = TempDir::new("vm");
        let stage = dir.path().join("initramfs");
        std::fs::create_dir_all(stage.join("bin")).unwrap();
        std::fs::create_dir_all(stage.join("mods")).unwrap();
        std::fs::copy("/bin/busybox", stage.join("bin/busybox")).unwrap();
        let write_exec = |p: PathBuf, text: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write_exec(stage.join("init"), INIT);
        write_exec(stage.join("modprobe"), MODPROBE);
        write_exec(
            stage.join("guest.sh"),
            &format!(
                "modprobe -a loop md_mod raid1 dm_mod dm_crypt\n\
                 cd /\n\
                 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root EMBER_IN_VM=1 \
                 TMPDIR=/run/tmp EMBER_SCRATCH_DIR=/run/tmp RUST_BACKTRACE=1 {} --exact {name} --nocapture --test-threads=1\n\
                 echo \"EMBER-VM-EXIT $?\"\n",
                exe.display()
            ),
        );
        let mods = module_files(&version, &["virtio_pci", "9pnet_virtio", "9p"]).unwrap();
        let mut list = String::new();
        for m in &mods {
            let base = m.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(m, stage.join("mods").join(&base)).unwrap();
            list.push_str(&base);
            list.push('\n');
        }
        std::fs::write(stage.join("modules.list"), list).unwrap();
        let cpio = dir.path().join("initramfs.cpio");
        crate::harness::tool(
            "sh",
            &[
                "-c",
                &format!(
                    "cd {} && find . | cpio -o -H newc --quiet > {}",
                    stage.display(),
                    cpio.display()
                ),
            ],
        );
        let serial = dir.path().join("console.log");
        // One guest at a time, shared with the QEMU scenarios: two TCG guests on two cores slow
        // each other past every timeout.
        let one_at_a_time = crate::qemu_harness::boot_lock();
        let started = std::time::Instant::now();
        let result = ember::system::command::Command::new("qemu-system-x86_64")
            .args(accel())
            .args(["-m", "2048", "-smp", "2"])
            .args([
                "-display",
                "none",
                "-no-reboot",
                "-monitor",
                "none",
                "-nic",
                "none",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(format!("/boot/vmlinuz-{version}"))
            .arg("-initrd")
            .arg(&cpio)
            .args(["-append", "console=ttyS0 panic=-1 loglevel=3 rdinit=/init"])
            .args([
                "-virtfs",
                "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            ])
            .timeout(Duration::from_secs(900))
            .run();
        drop(one_at_a_time);
        let log = std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .replace('\r', "");
        let ok = log.contains("EMBER-VM-EXIT 0") && log.contains("test result: ok. 1 passed");
        if let Err(e) = &result {
            panic!("running the test VM: {e}\nguest console:\n{log}");
        }
        if !ok {
            panic!("{name} failed in the VM (kernel {version}):\n{log}");
        }
        if std::env::var_os("EMBER_VM_VERBOSE").is_some() {
            eprintln!("{log}");
        }
        eprintln!(
            "{name}: passed in a VM with kernel {version} in {:?} (the host kernel has no {needs})",
            started.elapsed()
        );
    }
}

#[test]
fn the_test_vm_boots_the_newest_kernel_by_version_number() {
    let v = |l: &[&str]| vm::newest(l.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        v(&["6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-2-amd64"]).as_deref(),
        Some("6.1.0-10-amd64")
    );
    assert_eq!(
        v(&["6.10.0-1-amd64", "6.9.12-1-amd64"]).as_deref(),
        Some("6.10.0-1-amd64")
    );
    assert_eq!(v(&["6.1.0-56-amd64"]).as_deref(), Some("6.1.0-56-amd64"));
    assert_eq!(v(&[]), None);
}

/// An md array name no other test uses.
fn md_name() -> String {
    uniq("emb")
}

fn mdadm_detail(path: &str) -> String {
    tool("mdadm", &["--detail", path])
}

#[test]
fn raid1_over_two_loop_devices() {
    require_root();
    if !md_ok() {
        return vm::run(
            "disks_stage::raid1_over_two_loop_devices",
            "md (software RAID)",
        );
    }
    let (d1, d2, d3) = (Disk::new(64), Disk::new(64), Disk::new(64));
    let labels = [uniq("m"), uniq("m"), uniq("m")];
    let name = md_name();
    let fs_label = uniq("md");
    let disk = |d: &Disk, l: &str| {
        format!(
            r#"{{"device":"{}","wipeTable":true,"partitions":[{{"number":1,"label":"{l}","typeGuid":"A19D880F-05FC-4D3B-A006-743F0F84911E"}}]}}"#,
            d.dev()
        )
    };
    let json = format!(
        r#"{{"ignition":{{"version":"3.5.0"}},"storage":{{
            "disks":[{},{},{}],
            "raid":[{{"name":"{name}","level":"raid1","spares":1,
                      "devices":["/dev/disk/by-partlabel/{}","/dev/disk/by-partlabel/{}","/dev/disk/by-partlabel/{}"]}}],
            "filesystems":[{{"device":"/dev/md/{name}","format":"ext4","label":"{fs_label}"}}]}}}}"#,
        disk(&d1, &labels[0]),
        disk(&d2, &labels[1]),
        disk(&d3, &labels[2]),
        labels[0],
        labels[1],
        labels[2]
    );
    let mut run = Run::new(&json);
    let out = run.disks().unwrap();
    assert_eq!(out.plan.filesystems[0].action, FsAction::Decide);
    assert!(out
        .plan
        .to_string()
        .contains(&format!("raid \"{name}\": create raid1 from")));

    let md = format!("/dev/md/{name}");
    let detail = mdadm_detail(&md);
    assert!(detail.contains("Raid Level : raid1"), "{detail}");
    assert!(detail.contains("Active Devices : 2"), "{detail}");
    assert!(detail.contains("Spare Devices : 1"), "{detail}");
    let mdstat = std::fs::read_to_string("/proc/mdstat").unwrap();
    assert!(mdstat.contains("raid1"), "{mdstat}");
    let b = blkid(&md);
    assert_eq!(b.get("TYPE").map(String::as_str), Some("ext4"), "{b:?}");
    assert_eq!(b.get("LABEL"), Some(&fs_label));
    for d in [&d1, &d2, &d3] {
        assert_eq!(blkid(&d.part(1))["TYPE"], "linux_raid_member");
    }
    assert_eq!(
        std::fs::canonicalize(format!("/dev/disk/by-label/{fs_label}")).unwrap(),
        std::fs::canonicalize(&md).unwrap()
    );
    tool("mdadm", &["--stop", &md]);
}

/// A LUKS config on partition 1 of `disk`; the key comes from a data URL unless `key` is
/// `None` (then it is generated).
fn luks_json(
    disk: &Disk,
    part: &str,
    name: &str,
    key: Option<&str>,
    extra: &str,
    fs: &str,
) -> String {
    let key = key
        .map(|k| format!(r#""keyFile":{{"source":"data:,{k}"}},"#))
        .unwrap_or_default();
    format!(
        r#"{{"ignition":{{"version":"3.5.0"}},"storage":{{
            "disks":[{{"device":"{}","partitions":[{{"number":1,"label":"{part}"}}]}}],
            "luks":[{{"name":"{name}","device":"/dev/disk/by-partlabel/{part}",{key}
                      "options":["--pbkdf","pbkdf2","--pbkdf-force-iterations","1000"]{extra}}}],
            "filesystems":[{fs}]}}}}"#,
        disk.dev()
    )
}

#[test]
fn luks_with_a_key_file_and_reuse() {
    require_root();
    if !dm_ok() {
        return vm::run(
            "disks_stage::luks_with_a_key_file_and_reuse",
            "device-mapper (dm-crypt)",
        );
    }
    let disk = Disk::new(64);
    let (part, name, fsl) = (uniq("c"), uniq("embluks"), uniq("cfs"));
    let fs = format!(r#"{{"device":"/dev/mapper/{name}","format":"ext4","label":"{fsl}"}}"#);
    let json = luks_json(
        &disk,
        &part,
        &name,
        Some("s3cret-key"),
        r#","label":"crypt","discard":true"#,
        &fs,
    );
    let mut run = Run::new(&json);
    let out = run.disks().unwrap();
    assert_eq!(out.plan.luks[0].action, LuksAction::Format { wipe: None });
    assert_eq!(
        out.plan.filesystems[0].action,
        FsAction::Create { wipe: None }
    );
    // Key material is in no log line, no plan line.
    assert!(!out.plan.to_string().contains("s3cret"));
    assert!(!format!("{:?}", out.plan).contains("s3cret"));
    let hdr = blkid(&disk.part(1));
    assert_eq!(hdr["TYPE"], "crypto_LUKS");
    assert_eq!(hdr["LABEL"], "crypt");
    assert_eq!(hdr["VERSION"], "2");
    let mapper = format!("/dev/mapper/{name}");
    assert_eq!(blkid(&mapper)["LABEL"], fsl);
    let status = tool("cryptsetup", &["status", &name]);
    assert!(status.contains("discards"), "{status}");
    // The key, for the files stage to write to /etc/luks/<name>.
    let url = &run.state.luks_persist_key_files[&name];
    assert_eq!(
        ember::config::dataurl::decode(url).unwrap().data,
        b"s3cret-key"
    );
    let luks_uuid = hdr["UUID"].clone();
    let fs_uuid = blkid(&mapper)["UUID"].clone();

    // Closed and run again: the volume and the filesystem on it are reused.
    tool("cryptsetup", &["close", &name]);
    let out = Run::new(&json).disks().unwrap();
    assert!(matches!(
        out.plan.luks[0].action,
        LuksAction::Reuse {
            key_checked: true,
            ..
        }
    ));
    assert_eq!(out.plan.filesystems[0].action, FsAction::Decide);
    assert_eq!(blkid(&disk.part(1))["UUID"], luks_uuid);
    assert_eq!(blkid(&mapper)["UUID"], fs_uuid);
    tool("cryptsetup", &["close", &name]);

    // A mismatch (label) or a wrong key is an error before anything is written.
    let before = device_hash(disk.path());
    for (key, extra, why) in [
        (
            "s3cret-key",
            r#","label":"other","discard":true"#,
            "wanted label \"other\"",
        ),
        (
            "wrong-key",
            r#","label":"crypt","discard":true"#,
            "the key does not open it",
        ),
        (
            "s3cret-key",
            r#","label":"crypt""#,
            "with discards, the config does not want them",
        ),
    ] {
        let json = luks_json(&disk, &part, &name, Some(key), extra, &fs);
        let msg = Run::new(&json).disks().unwrap_err().chain();
        assert!(msg.contains("cannot be reused"), "{msg}");
        assert!(msg.contains(why), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }
    assert_eq!(device_hash(disk.path()), before);

    // wipeVolume replaces it, here with a generated key kept for the files stage.
    let json = luks_json(
        &disk,
        &part,
        &name,
        None,
        r#","wipeVolume":true"#,
        &fs.replace(r#""label""#, r#""wipeFilesystem":true,"label""#),
    );
    let mut run = Run::new(&json);
    run.disks().unwrap();
    assert_ne!(blkid(&disk.part(1))["UUID"], luks_uuid);
    let key = ember::config::dataurl::decode(&run.state.luks_persist_key_files[&name])
        .unwrap()
        .data;
    assert_eq!(key.len(), 8192);
    assert!(key.iter().all(u8::is_ascii_hexdigit));
    tool("cryptsetup", &["close", &name]);
}

#[test]
fn raid_and_luks_need_kernel_support_and_say_so_before_writing() {
    let disk = Disk::new(64);
    let before = device_hash(disk.path());
    let part = uniq("k");
    // Each check needs the host to lack something; say which were skipped, and fail when
    // none could run (nothing would have been checked).
    let mut checked = 0;
    let skipped = |what: &str| eprintln!("skipped: {what}");
    if md_ok() {
        skipped("the kernel has md (software RAID): its missing-support error is not checked");
    } else {
        checked += 1;
        let json = format!(
            r#"{{"ignition":{{"version":"3.5.0"}},"storage":{{
                "disks":[{{"device":"{}","partitions":[{{"number":1,"label":"{part}"}}]}}],
                "raid":[{{"name":"x","level":"raid1","devices":["/dev/disk/by-partlabel/{part}","{}"]}}]}}}}"#,
            disk.dev(),
            disk.part(2)
        );
        let err = Run::new(&json).disks().unwrap_err();
        assert!(
            err.chain()
                .contains("the kernel has no md (software RAID) support"),
            "{}",
            err.chain()
        );
        assert!(err.hint.is_some());
    }
    if dm_ok() {
        skipped("the kernel has device-mapper: its missing-support error is not checked");
    } else {
        checked += 1;
        let json = luks_json(&disk, &part, "k", Some("x"), "", "");
        let err = Run::new(&json).disks().unwrap_err();
        assert!(
            err.chain()
                .contains("the kernel has no device-mapper support"),
            "{}",
            err.chain()
        );
    }
    if ember::stages::disks::devices::have_program("clevis") {
        skipped("clevis is installed: the missing-clevis error is not checked");
    } else {
        checked += 1;
        let json = luks_json(&disk, &part, "k", None, r#","clevis":{"tpm2":true}"#, "");
        let msg = Run::new(&json).disks().unwrap_err().chain();
        assert!(
            msg.ends_with(
                "clevis is needed for the clevis binding of LUKS volume \"k\" but was not found in PATH"
            ),
            "{msg}"
        );
    }
    assert!(
        checked > 0,
        "this host has md, device-mapper and clevis: none of the missing-support errors could be checked"
    );
    assert_eq!(device_hash(disk.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Benchmark (benches/disks-stage.sh)

/// CPU time (user + system) of this process and of its waited-for children.
fn cpu_times() -> (Duration, Duration) {
    let get = |who| {
        // SAFETY: getrusage fills the zeroed struct we own; `who` is a valid constant.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut r) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(r.ru_utime) + tv(r.ru_stime)
    };
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "benchmark; run benches/disks-stage.sh"]
fn bench_disks_stage() {
    require_root();
    let iterations: usize = std::env::var("EMBER_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // (name, values per iteration in ms)
    let mut rows: Vec<(&str, Vec<f64>)> = [
        "total (wall)",
        "  waits for devices",
        "  planning",
        "  GPT write",
        "  kernel notify (BLKPG + settle)",
        "  by-* links",
        "  wipe + mkfs section (wall)",
        "Ember's own wall (total - mkfs section)",
        "Ember's own CPU (getrusage self)",
        "mkfs CPU (getrusage children)",
        "second run, nothing to do (wall)",
        "second run CPU (getrusage self)",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    for _ in 0..iterations {
        let disk = Disk::new(256);
        let (b, e, r, d) = (uniq("bios"), uniq("efi"), uniq("boot"), uniq("root"));
        let json = disks_json(
            &format!(
                r#"{{"device":"{}","wipeTable":true,"partitions":[
                    {{"number":1,"label":"{b}","sizeMiB":1,"typeGuid":"21686148-6449-6E6F-744E-656564454649"}},
                    {{"number":2,"label":"{e}","sizeMiB":32,"typeGuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}},
                    {{"number":3,"label":"{r}","sizeMiB":64}},
                    {{"number":4,"label":"{d}","sizeMiB":0}}]}}"#,
                disk.dev()
            ),
            &format!(
                r#"{{"device":"/dev/disk/by-partlabel/{e}","format":"vfat","label":"EFI-SYSTEM"}},
                   {{"device":"/dev/disk/by-partlabel/{d}","format":"ext4","label":"{d}"}}"#
            ),
        );
        let mut run = Run::new(&json);
        let (s0, c0) = cpu_times();
        let out = run.disks().unwrap();
        let (s1, c1) = cpu_times();
        let t = &out.timings;
        let vals = [
            t.total,
            t.waits,
            t.planning,
            t.table_writes,
            t.kernel_notify,
            t.links,
            t.mkfs,
            t.total.saturating_sub(t.mkfs),
            s1 - s0,
            c1 - c0,
        ];
        for (row, v) in rows.iter_mut().zip(vals) {
            row.1.push(ms(v));
        }
        let json2 = json.replace(r#""wipeTable":true,"#, "");
        let mut run2 = Run::new(&json2);
        let (s2, _) = cpu_times();
        let out2 = run2.disks().unwrap();
        let (s3, _) = cpu_times();
        assert!(!out2.plan.writes());
        rows[10].1.push(ms(out2.timings.total));
        rows[11].1.push(ms(s3 - s2));
    }
    println!("\ndisks stage: 256 MiB loop disk, 4 partitions, vfat + ext4, {iterations} runs (ms)");
    println!("{:<42} {:>9} {:>9} {:>9}", "", "median", "min", "max");
    for (name, mut v) in rows {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name:<42} {:>9.2} {:>9.2} {:>9.2}",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
}

#[test]
fn planning_reads_through_stale_disk_cache() {
    // The disk node and the partition nodes have separate page caches.  The first run reads
    // partition 1's place through the disk while planning (caching what was there), then
    // mkswap writes through the partition.  If the kernel's idea of the partition then
    // differs from the table (another tool, or a kernel that dropped it), planning must read
    // the partition at its place through the disk: it has to see the swap header, not the
    // cached zeros.
    let disk = Disk::new(64);
    let json = disks_json(
        &format!(
            r#"{{"device":"{}","partitions":[{{"number":1,"sizeMiB":16}}]}}"#,
            disk.dev()
        ),
        &format!(
            r#"{{"device":"{}","format":"swap","label":"cached"}}"#,
            disk.part(1)
        ),
    );
    Run::new(&json).disks().unwrap();
    let dev = blockdev::BlockDevice::open(disk.path()).unwrap();
    dev.resize_partition(1, 1 << 20, 8 << 20).unwrap();
    let plan = Run::new(&json).plan().unwrap();
    assert!(
        matches!(&plan.filesystems[0].action, FsAction::Keep { found } if found.fs_type == "swap"),
        "{plan}"
    );
}

#[test]
fn apply_mode_refuses_or_skips_storage() {
    let json = disks_json(
        "",
        r#"{"device":"/dev/disk/by-label/ember-nothing","format":"ext4","path":"/x"}"#,
    );
    let mut run = Run::new(&json);
    run.settings.mode = Mode::Apply {
        ignore_unsupported: false,
    };
    let err = run.disks().unwrap_err();
    assert!(
        err.chain()
            .contains("cannot be applied to a directory tree"),
        "{}",
        err.chain()
    );
    assert!(err
        .hint
        .as_deref()
        .unwrap()
        .contains("--ignore-unsupported"));
    let err = run.mount().unwrap_err();
    assert!(err.chain().contains("cannot be mounted"), "{}", err.chain());
    run.settings.mode = Mode::Apply {
        ignore_unsupported: true,
    };
    // Skipped quickly: no wait for the device that does not exist.
    let started = Instant::now();
    assert!(run.disks().unwrap().plan.filesystems.is_empty());
    run.mount().unwrap();
    run.umount().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!run.root.path().join("x").exists());
}
