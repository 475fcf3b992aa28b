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
use ember::stages::disks::{self, FsAction, Options, Outcome};
use ember::stages::{mount, Context, Failure, Mode, OpLog, Settings, Stage, State};
use ember::system::blockdev::{self, SysBlock};
use ember::system::devnames::DevNames;
use ember::system::gpt::Guid;
use ember::system::loopdev::ScratchDisk;
use ember::system::mounts::{self, MountGuard};

use crate::harness::{require_root, tool, TempDir};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A scratch disk whose /dev/disk links are removed when it goes.
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

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = DevNames::default().remove_links_to(&self.inner.name());
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

/// The failure's whole chain, for message checks.
fn chain(f: &Failure) -> String {
    f.chain()
}

// ---------------------------------------------------------------------------------------------
// Outside views

/// `number -> (start, end, name)` from `sgdisk -p`.
fn sgdisk_table(disk: &Path) -> BTreeMap<u32, (u64, u64, String)> {
    let out = tool("sgdisk", &["-p", disk.to_str().unwrap()]);
    let mut m = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.starts_with("Number") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f.get(6..).map(|n| n.join(" ")).unwrap_or_default();
        m.insert(
            f[0].parse().unwrap(),
            (f[1].parse().unwrap(), f[2].parse().unwrap(), name),
        );
    }
    m
}

fn sgdisk_info(disk: &Path, n: u32) -> String {
    tool("sgdisk", &["-i", &n.to_string(), disk.to_str().unwrap()])
}

fn sgdisk_verify_ok(disk: &Path) {
    let out = tool("sgdisk", &["-v", disk.to_str().unwrap()]);
    assert!(out.contains("No problems found"), "sgdisk -v: {out}");
}

/// `blkid -p` as a map (empty when nothing is found).
fn blkid(dev: &str) -> BTreeMap<String, String> {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export", dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\ ", " ")))
        .collect()
}

/// SHA-256 of the whole device.
fn device_hash(dev: &Path) -> String {
    use sha2::{Digest, Sha256};
    // Partitions and the whole disk have separate page caches: drop the disk's first.
    blockdev::BlockDevice::open(dev).unwrap().flush().unwrap();
    let mut f = std::fs::File::open(dev).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

fn kernel_partitions(disk: &Path) -> Vec<(u32, u64, u64)> {
    SysBlock::from_path(disk)
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.number, p.start, p.size))
        .collect()
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
    let msg = chain(&err);
    assert!(
        msg.ends_with(
            "partition 1 didn't match: label did not match (specified \"uno\", got \"one\")"
        ),
        "{msg}"
    );
    assert_eq!(err.path.as_ref().unwrap().to_string(), "$.storage.disks.0");
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
    let msg = chain(&Run::new(&json).disks().unwrap_err());
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
        let msg = chain(&err);
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
    let msg = chain(&Run::new(&change).disks().unwrap_err());
    assert!(
        msg.ends_with("refusing to modify active partition 1"),
        "{msg}"
    );
    let wipe = disks_json(
        &format!(r#"{{"device":"{}","wipeTable":true}}"#, disk.dev()),
        "",
    );
    let msg = chain(&Run::new(&wipe).disks().unwrap_err());
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
    let msg = chain(&Run::new(&fmt).disks().unwrap_err());
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
        chain(&err),
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
        chain(&err).ends_with("did not appear within 0.200 s"),
        "{}",
        chain(&err)
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
    let msg = chain(&run.disks().unwrap_err());
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
    let msg = chain(&Run::new(&json).disks().unwrap_err());
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
    let msg = chain(&Run::new(&json).disks().unwrap_err());
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
    let msg = chain(&Run::new(&json(false)).disks().unwrap_err());
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
    let msg = chain(&Run::new(&json(false)).disks().unwrap_err());
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
    let msg = chain(&err);
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
    let msg = chain(&run.mount().unwrap_err());
    assert!(msg.contains("contains a non-directory component"), "{msg}");
    assert!(!outside.path().join("x").exists());
    assert!(is_mounted(&run.root.path().join("var/x")).is_none());
}
