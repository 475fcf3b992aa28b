//! The privileged block-device layer on real loop devices, checked from outside with sgdisk,
//! blkid and lsblk.  Needs root.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ember::system::blockdev::{self, BlockDevice, NotifyOptions};
use ember::system::devnames::{self, DevNames};
use ember::system::gpt::{self, Guid, Op};
use ember::system::loopdev::ScratchDisk;
use ember::system::mounts::{self, MountGuard};
use ember::system::probe;

use crate::harness::{
    blkid, kernel_partitions, require_root, sgdisk_table, sgdisk_verify_ok, tool, TempDir,
};

const MIB: u64 = 1024 * 1024;

fn new(number: u32, start: u64, size: u64) -> Op {
    Op::New {
        number,
        start,
        size,
    }
}

fn name(number: u32, name: &str) -> Op {
    Op::Name {
        number,
        name: name.into(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Applies ops to the disk's table, writes it and tells the kernel.
fn commit(disk: &Path, ops: &[Op]) -> gpt::Table {
    let mut t = gpt::read_device_or_new(disk).unwrap();
    t.apply(ops).unwrap();
    gpt::write_device(disk, &t).unwrap();
    blockdev::notify_kernel(disk, &t.kernel_extents(), &NotifyOptions::default()).unwrap();
    t
}

fn unique(tag: &str) -> String {
    format!(
        "{tag}{}",
        Guid::random().to_string()[..6].to_ascii_lowercase()
    )
}

#[test]
fn create_partitions_as_sgdisk_sees_them() {
    require_root();
    let disk = ScratchDisk::new(64).unwrap();
    let boot_guid: Guid = "5B2B5F5E-0E2B-4E0A-9C39-1F1D1C1B1A19".parse().unwrap();
    let t = commit(
        disk.path(),
        &[
            new(1, 0, 16 * MIB / 512),
            name(1, "boot"),
            Op::TypeGuid {
                number: 1,
                guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap(),
            },
            Op::PartGuid {
                number: 1,
                guid: boot_guid,
            },
            new(2, 0, 0),
            name(2, "root"),
        ],
    );
    sgdisk_verify_ok(disk.path());
    let s = sgdisk_table(disk.path());
    assert_eq!(s.len(), 2);
    assert_eq!(s[&1], (2048, 2048 + 32768 - 1, "boot".to_string()));
    assert_eq!(s[&2].0, 2048 + 32768);
    assert_eq!(s[&2].1, t.last_usable);
    assert_eq!(s[&2].2, "root");
    let info = tool("sgdisk", &["-i", "1", path_str(disk.path())]);
    assert!(
        info.contains(&format!("Partition unique GUID: {boot_guid}")),
        "{info}"
    );
    assert!(
        info.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        "{info}"
    );
    let info2 = tool("sgdisk", &["-i", "2", path_str(disk.path())]);
    assert!(
        info2.contains("0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
        "{info2}"
    );
    // The kernel knows both, and the nodes exist.
    assert_eq!(
        kernel_partitions(disk.path()),
        vec![
            (1, 2048, 32768),
            (2, 2048 + 32768, t.last_usable - 2048 - 32768 + 1)
        ]
    );
    assert!(disk.partition_path(1).exists() && disk.partition_path(2).exists());
    let lsblk = tool("lsblk", &["-rno", "NAME", path_str(disk.path())]);
    assert!(lsblk.contains(&format!("{}p2", disk.name())), "{lsblk}");
    // Reading back gives the same model.
    let back = gpt::read_device(disk.path()).unwrap().unwrap();
    assert_eq!(back, t);
    assert_eq!(back.partition(1).unwrap().guid, boot_guid);
}

#[test]
fn numbers_are_kept_when_first_is_deleted() {
    require_root();
    let disk = ScratchDisk::new(64).unwrap();
    commit(
        disk.path(),
        &[new(1, 0, 8192), new(2, 0, 8192), name(2, "keep")],
    );
    assert!(disk.partition_path(1).exists());
    commit(disk.path(), &[Op::Delete(1)]);
    let s = sgdisk_table(disk.path());
    assert_eq!(s.keys().collect::<Vec<_>>(), vec![&2]);
    assert_eq!(
        s[&2],
        (2048 + 8192, 2048 + 2 * 8192 - 1, "keep".to_string())
    );
    sgdisk_verify_ok(disk.path());
    assert_eq!(kernel_partitions(disk.path()), vec![(2, 2048 + 8192, 8192)]);
    assert!(!disk.partition_path(1).exists());
    assert!(disk.partition_path(2).exists());
    // Number 0 now takes the freed number 1, in the largest free block.
    let t = commit(disk.path(), &[new(0, 0, 2048)]);
    assert_eq!(t.partition(1).unwrap().start, 2048 + 2 * 8192);
    assert_eq!(sgdisk_table(disk.path())[&1].0, 2048 + 2 * 8192);
}

/// Builds the same table with sgdisk and with us on two image files, then compares what
/// `sgdisk --pretend --new … --info` says with our pretend, scenario by scenario.
#[test]
fn pretend_matches_sgdisk_pretend() {
    let dir = TempDir::new("pretend");
    // (setup ops as sgdisk args, the `--new` to pretend)
    type Scenario<'a> = (&'a [&'a str], (u32, u64, u64));
    let scenarios: &[Scenario] = &[
        (&[], (1, 0, 0)),
        (&[], (3, 0, 4096)),
        (&[], (1, 100, 0)),
        (&[], (1, 5000, 1000)),
        (
            &[
                "-n",
                "1:2048:+20480",
                "-n",
                "2:40960:+20480",
                "-n",
                "3:0:+2048",
            ],
            (4, 0, 0),
        ),
        (
            &[
                "-n",
                "1:2048:+20480",
                "-n",
                "2:40960:+20480",
                "-n",
                "3:0:+2048",
            ],
            (4, 23000, 100),
        ),
        (
            &[
                "-n",
                "1:2048:+20480",
                "-n",
                "2:40960:+20480",
                "-n",
                "3:0:+2048",
            ],
            (4, 30000, 0),
        ),
        (
            &[
                "-n",
                "1:2048:+20480",
                "-n",
                "2:40960:+20480",
                "-n",
                "3:0:+2048",
            ],
            (0, 0, 2048),
        ),
        (
            &[
                "-n",
                "1:2048:+20480",
                "-n",
                "2:40960:+20480",
                "-n",
                "3:0:+2048",
            ],
            (4, 34, 100),
        ),
        (
            &[
                "-n",
                "1:2048:+2050",
                "-n",
                "3:6144:+2048",
                "-n",
                "2:4098:+100",
            ],
            (4, 0, 0),
        ),
        (
            &[
                "-n",
                "1:2048:+2050",
                "-n",
                "3:6144:+2048",
                "-n",
                "2:4098:+100",
            ],
            (4, 4199, 10),
        ),
        (&["-n", "2:0:+1000", "-n", "5:0:+3"], (0, 0, 0)),
        (&["-n", "1:0:0"], (2, 0, 0)),
        (&["-n", "1:0:+10000"], (1, 0, 0)),
        (&["-n", "1:0:+10000"], (2, 0, 400000)),
        (&["-n", "1:0:+10000"], (2, 12000, 400000)),
    ];
    for (i, (setup, (n, start, size))) in scenarios.iter().enumerate() {
        let img = dir.path().join(format!("s{i}.img"));
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(100 * MIB).unwrap();
        drop(f);
        let mut args: Vec<&str> = vec!["-o"];
        args.extend_from_slice(setup);
        args.push(path_str(&img));
        tool("sgdisk", &args);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let ours = gpt::read(&mut file, 512).unwrap().unwrap();
        let newarg = format!("{n}:{start}:+{size}");
        let out = std::process::Command::new("sgdisk")
            .args([
                "--pretend",
                "--new",
                &newarg,
                "--info",
                &n.max(&1).to_string(),
                path_str(&img),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let grab = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let sg_failed = text.contains("Could not create partition");
        let mine = ours.pretend(&[new(*n, *start, *size)]);
        match mine {
            Err(e) => assert!(
                sg_failed,
                "scenario {i}: we failed ({e}) but sgdisk did not: {text}"
            ),
            Ok(t) => {
                assert!(
                    !sg_failed,
                    "scenario {i}: sgdisk failed but we did not: {text}"
                );
                let num = if *n == 0 {
                    // sgdisk --info=1 above is only meaningful for explicit numbers; find ours.
                    *t.partitions()
                        .map(|p| p.number)
                        .collect::<Vec<_>>()
                        .iter()
                        .find(|k| ours.partition(**k).is_none())
                        .unwrap()
                } else {
                    *n
                };
                let p = t.partition(num).unwrap();
                if *n != 0 || num == 1 {
                    assert_eq!(
                        grab("First sector: "),
                        Some(p.start),
                        "scenario {i}: {text}"
                    );
                    assert_eq!(grab("Last sector: "), Some(p.end), "scenario {i}: {text}");
                }
            }
        }
    }
}

#[test]
fn sector_size_4096() {
    require_root();
    let disk = ScratchDisk::with_block_size(64, 4096).unwrap();
    let dev = BlockDevice::open(disk.path()).unwrap();
    assert_eq!(dev.logical_sector_size().unwrap(), 4096);
    assert_eq!(dev.size_bytes().unwrap(), 64 * MIB);
    let t = commit(disk.path(), &[new(1, 0, 1024), name(1, "a"), new(2, 0, 0)]);
    assert_eq!(t.first_usable, 6);
    assert_eq!(t.partition(1).unwrap().start, 256);
    sgdisk_verify_ok(disk.path());
    let out = tool("sgdisk", &["-p", path_str(disk.path())]);
    assert!(
        out.contains("Sector size (logical): 4096 bytes") || out.contains("4096/"),
        "{out}"
    );
    let s = sgdisk_table(disk.path());
    assert_eq!(s[&1], (256, 256 + 1024 - 1, "a".to_string()));
    assert_eq!(s[&2].0, 256 + 1024);
    // sysfs counts 512-byte units whatever the sector size.
    assert_eq!(kernel_partitions(disk.path())[0], (1, 256 * 8, 1024 * 8));
    // A filesystem on the partition is seen by blkid where we put it.
    tool(
        "mkfs.ext4",
        &["-q", "-F", "-L", "fourk", path_str(&disk.partition_path(2))],
    );
    assert_eq!(
        blkid(&disk.partition_path(2))
            .get("LABEL")
            .map(String::as_str),
        Some("fourk")
    );
}

#[test]
fn blkpg_path_while_a_partition_is_mounted() {
    require_root();
    let disk = ScratchDisk::new(64).unwrap();
    commit(
        disk.path(),
        &[new(1, 0, 16384), new(2, 0, 8192), new(3, 0, 8192)],
    );
    tool(
        "mkfs.ext4",
        &["-q", "-F", path_str(&disk.partition_path(1))],
    );
    let mnt = TempDir::new("blkpg-mnt");
    let guard =
        MountGuard::mount(&disk.partition_path(1), mnt.path(), "ext4", &["noatime"]).unwrap();
    assert!(mounts::is_mount_point(mnt.path()).unwrap());
    assert!(blockdev::in_use(&disk.partition_path(1)).unwrap());
    assert!(!blockdev::in_use(&disk.partition_path(2)).unwrap());
    let usage = blockdev::usage(&disk.partition_path(1)).unwrap();
    assert_eq!(usage.mount_points, vec![mnt.path().canonicalize().unwrap()]);

    // BLKRRPART is refused while p1 is mounted.
    let err = BlockDevice::open(disk.path())
        .unwrap()
        .reread_partitions()
        .unwrap_err();
    match &err {
        blockdev::Error::Ioctl { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::EBUSY), "{err}")
        }
        e => panic!("unexpected {e:?}"),
    }

    // Delete 2, grow 3 in place, add 4: done with BLKPG, p1 untouched.
    let mut t = gpt::read_device(disk.path()).unwrap().unwrap();
    let p3_start = t.partition(3).unwrap().start;
    t.apply(&[
        Op::Delete(2),
        Op::Delete(3),
        new(3, p3_start, 16384),
        new(4, 0, 2048),
    ])
    .unwrap();
    gpt::write_device(disk.path(), &t).unwrap();
    let report =
        blockdev::notify_kernel(disk.path(), &t.kernel_extents(), &NotifyOptions::default())
            .unwrap();
    assert!(!report.reread);
    assert_eq!(report.deleted, vec![2]);
    assert_eq!(report.resized, vec![3]);
    assert_eq!(report.added, vec![4]);
    let sys = kernel_partitions(disk.path());
    assert_eq!(sys.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 3, 4]);
    assert_eq!(sys[1], (3, p3_start, 16384));
    assert!(!disk.partition_path(2).exists());
    assert!(disk.partition_path(4).exists());
    assert!(mounts::is_mount_point(mnt.path()).unwrap());
    sgdisk_verify_ok(disk.path());

    // Changing the mounted partition is refused with a clear error.
    let mut t2 = t.clone();
    t2.apply(&[Op::Delete(1)]).unwrap();
    let err = blockdev::notify_kernel(
        disk.path(),
        &t2.kernel_extents(),
        &NotifyOptions {
            reread: false,
            timeout: Duration::from_secs(2),
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, blockdev::Error::PartitionBusy { number: 1, .. }),
        "{err:?}"
    );
    guard.unmount().unwrap();
    assert!(!mounts::is_mount_point(mnt.path()).unwrap());
}

#[test]
fn corrupt_gpt_is_an_error_until_zapped() {
    require_root();
    let disk = ScratchDisk::new(16).unwrap();
    commit(disk.path(), &[new(1, 0, 0)]);
    {
        let mut f = OpenOptions::new().write(true).open(disk.path()).unwrap();
        let last = 16 * MIB / 512 - 1;
        for lba in [1, last] {
            // Overwrite the header CRC field.
            f.seek(SeekFrom::Start(lba * 512 + 16)).unwrap();
            f.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
        }
        f.sync_all().unwrap();
    }
    BlockDevice::open(disk.path()).unwrap().flush().unwrap();
    let err = gpt::read_device(disk.path()).unwrap_err();
    assert!(matches!(err, gpt::Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    gpt::zap_device(disk.path()).unwrap();
    assert!(gpt::read_device(disk.path()).unwrap().is_none());
    assert!(!blkid(disk.path()).contains_key("PTTYPE"));
    // A fresh table can be made afterwards.
    commit(disk.path(), &[new(1, 0, 0)]);
    sgdisk_verify_ok(disk.path());
}

fn check_probe(dev: &Path, want_type: &str) -> probe::Signature {
    let sig = probe::probe_path(dev)
        .unwrap()
        .unwrap_or_else(|| panic!("nothing found for {want_type}"));
    let b = blkid(dev);
    assert_eq!(sig.fs_type, want_type);
    assert_eq!(b.get("TYPE"), Some(&sig.fs_type), "blkid {b:?}");
    assert_eq!(
        b.get("UUID"),
        sig.uuid.as_ref(),
        "uuid for {want_type}: blkid {b:?}"
    );
    assert_eq!(
        b.get("LABEL"),
        sig.label.as_ref(),
        "label for {want_type}: blkid {b:?}"
    );
    sig
}

#[test]
fn probe_every_type_like_blkid() {
    require_root();
    let uuid = "3f6b6c1e-2a2b-4c4d-8e8f-9a9b0c0d1e1f";
    type Mk = Box<dyn Fn(&str)>;
    let cases: Vec<(&str, u64, Mk, Option<&str>)> = vec![
        (
            "ext4",
            64,
            Box::new(move |d| {
                tool("mkfs.ext4", &["-q", "-F", "-L", "my root", "-U", uuid, d]);
            }),
            Some("my root"),
        ),
        (
            "ext3",
            64,
            Box::new(move |d| {
                tool("mkfs.ext3", &["-q", "-F", "-L", "e3", d]);
            }),
            Some("e3"),
        ),
        (
            "ext2",
            64,
            Box::new(move |d| {
                tool("mkfs.ext2", &["-q", "-F", d]);
            }),
            None,
        ),
        (
            "xfs",
            320,
            Box::new(move |d| {
                tool(
                    "mkfs.xfs",
                    &["-q", "-f", "-L", "xlabel", "-m", &format!("uuid={uuid}"), d],
                );
            }),
            Some("xlabel"),
        ),
        (
            "btrfs",
            128,
            Box::new(move |d| {
                tool("mkfs.btrfs", &["-q", "-f", "-L", "bl", "-U", uuid, d]);
            }),
            Some("bl"),
        ),
        (
            "vfat",
            64,
            Box::new(move |d| {
                tool("mkfs.fat", &["-i", "A1B2C3D4", "-n", "EFI", d]);
            }),
            Some("EFI"),
        ),
        (
            "vfat",
            600,
            Box::new(move |d| {
                tool(
                    "mkfs.fat",
                    &["-F", "32", "-i", "0badcafe", "-n", "BIGFAT", d],
                );
            }),
            Some("BIGFAT"),
        ),
        (
            "vfat",
            4,
            Box::new(move |d| {
                tool("mkfs.fat", &["-F", "12", "-n", "SMALL", d]);
            }),
            Some("SMALL"),
        ),
        (
            "swap",
            64,
            Box::new(move |d| {
                tool("mkswap", &["-L", "sw", "-U", uuid, d]);
            }),
            Some("sw"),
        ),
    ];
    for (ty, mib, mk, label) in cases {
        let disk = ScratchDisk::new(mib).unwrap();
        mk(path_str(disk.path()));
        let sig = check_probe(disk.path(), ty);
        assert_eq!(sig.label.as_deref(), label, "{ty}");
        // And wiping removes it, as wipefs would.
        let erased = probe::wipe_device(disk.path()).unwrap();
        assert!(erased.iter().any(|s| s.fs_type == ty), "{ty}: {erased:?}");
        assert!(
            !blkid(disk.path()).contains_key("TYPE"),
            "{ty} survived wiping"
        );
        assert!(probe::probe_path(disk.path()).unwrap().is_none());
    }
}

#[test]
fn probe_luks_iso_udf_md_like_blkid() {
    require_root();
    let dir = TempDir::new("probe");
    // LUKS2 with a label and LUKS1, on loop devices, with a throwaway test key.
    let key = dir.path().join("key");
    std::fs::write(&key, b"test key, not a secret").unwrap();
    for (ty, extra) in [
        ("luks2", &["--label", "cryptlabel"][..]),
        ("luks1", &[][..]),
    ] {
        let disk = ScratchDisk::new(32).unwrap();
        let mut args = vec![
            "luksFormat",
            "--batch-mode",
            "--type",
            ty,
            "--key-file",
            path_str(&key),
            "--pbkdf-force-iterations",
            "1000",
            "--uuid",
            "0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f9",
        ];
        args.extend(["--pbkdf", "pbkdf2"]);
        args.extend(extra);
        args.push(path_str(disk.path()));
        tool("cryptsetup", &args);
        let sig = check_probe(disk.path(), "crypto_LUKS");
        assert_eq!(
            sig.uuid.as_deref(),
            Some("0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f9")
        );
        probe::wipe_device(disk.path()).unwrap();
        assert!(
            !blkid(disk.path()).contains_key("TYPE"),
            "{ty} survived wiping"
        );
    }

    // ISO 9660 (plain and Joliet) and UDF images copied onto loop devices.
    let root = dir.path().join("isoroot");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello"), b"hi").unwrap();
    for (ty, flags) in [
        ("iso9660", &["-V", "MY_ISO"][..]),
        ("iso9660", &["-J", "-V", "Joliet Label"][..]),
        ("udf", &["-udf", "-V", "MYUDF"][..]),
    ] {
        let img = dir.path().join("x.iso");
        let mut args = vec!["-quiet", "-o", path_str(&img)];
        args.extend(flags);
        args.push(path_str(&root));
        tool("genisoimage", &args);
        let disk = ScratchDisk::new(8).unwrap();
        let data = std::fs::read(&img).unwrap();
        let mut f = OpenOptions::new().write(true).open(disk.path()).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        drop(f);
        check_probe(disk.path(), ty);
    }

    // md superblocks: no md driver here, so write them the way mdadm does and let blkid judge.
    for version in ["1.2", "1.1", "1.0", "0.90"] {
        let disk = ScratchDisk::new(16).unwrap();
        let size = 16 * MIB;
        let (off, sb) = md_superblock(version, size);
        let mut f = OpenOptions::new().write(true).open(disk.path()).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&sb).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let sig = check_probe(disk.path(), "linux_raid_member");
        if version != "0.90" {
            assert_eq!(sig.label.as_deref(), Some("any:data"));
        }
        probe::wipe_device(disk.path()).unwrap();
        assert!(
            !blkid(disk.path()).contains_key("TYPE"),
            "md {version} survived wiping"
        );
    }
}

/// An md superblock of `version` for a device of `size` bytes: `(offset, bytes)`.
fn md_superblock(version: &str, size: u64) -> (u64, Vec<u8>) {
    let uuid: [u8; 16] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0,
        0x01,
    ];
    if version == "0.90" {
        let mut sb = vec![0u8; 4096];
        let w = |sb: &mut Vec<u8>, i: usize, v: u32| {
            sb[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes())
        };
        w(&mut sb, 0, 0xa92b4efc);
        w(&mut sb, 1, 0);
        w(&mut sb, 2, 90);
        w(
            &mut sb,
            5,
            u32::from_le_bytes(uuid[0..4].try_into().unwrap()),
        );
        w(&mut sb, 7, 1); // level
        w(&mut sb, 10, 2); // raid disks
        w(
            &mut sb,
            13,
            u32::from_le_bytes(uuid[4..8].try_into().unwrap()),
        );
        w(
            &mut sb,
            14,
            u32::from_le_bytes(uuid[8..12].try_into().unwrap()),
        );
        w(
            &mut sb,
            15,
            u32::from_le_bytes(uuid[12..16].try_into().unwrap()),
        );
        // Checksum over the 4 KiB superblock with the checksum word (index 38) zero.
        let sum: u64 = sb
            .chunks(4)
            .map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap())))
            .sum();
        let csum = (sum & 0xffff_ffff) as u32 + (sum >> 32) as u32;
        w(&mut sb, 38, csum);
        return ((size & !0xffff) - 0x10000, sb);
    }
    let sector: u64 = match version {
        "1.1" => 0,
        "1.2" => 8,
        _ => ((size / 512) - 16) & !7,
    };
    let mut sb = vec![0u8; 1024];
    sb[0..4].copy_from_slice(&0xa92b4efcu32.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&uuid);
    sb[32..40].copy_from_slice(b"any:data");
    sb[72..76].copy_from_slice(&1u32.to_le_bytes()); // level
    sb[92..96].copy_from_slice(&2u32.to_le_bytes()); // raid_disks
    sb[144..152].copy_from_slice(&sector.to_le_bytes()); // super_offset
    sb[220..224].copy_from_slice(&2u32.to_le_bytes()); // max_dev
                                                       // sb_csum over 256 + 2*max_dev bytes with the checksum field (offset 216) zero.
    let n = 256 + 2 * 2;
    let mut sum: u64 = 0;
    for c in sb[..n].chunks(4) {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        sum += u64::from(u32::from_le_bytes(b));
    }
    let csum = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
    sb[216..220].copy_from_slice(&csum.to_le_bytes());
    (sector * 512, sb)
}

#[test]
fn gpt_signatures_are_wiped() {
    require_root();
    let disk = ScratchDisk::new(16).unwrap();
    commit(disk.path(), &[new(1, 0, 0)]);
    assert_eq!(
        blkid(disk.path()).get("PTTYPE").map(String::as_str),
        Some("gpt")
    );
    let erased = probe::wipe_device(disk.path()).unwrap();
    assert!(erased.iter().any(|s| s.fs_type == "gpt"));
    assert!(!blkid(disk.path()).contains_key("PTTYPE"));
    assert!(gpt::read_device(disk.path()).unwrap().is_none());
}

/// Removes the /dev/disk links a test made, even when it fails.
struct LinkCleanup(String);
impl Drop for LinkCleanup {
    fn drop(&mut self) {
        let _ = DevNames::default().remove_links_to(&self.0);
    }
}

#[test]
fn by_links_resolve_and_are_created() {
    require_root();
    let disk = ScratchDisk::new(64).unwrap();
    let _cleanup = LinkCleanup(disk.name());
    let partlabel = unique("my data/");
    let fslabel = unique("root fs ");
    let fsuuid = Guid::random().to_lowercase();
    let partuuid: Guid = Guid::random();
    commit(
        disk.path(),
        &[
            new(1, 0, 16384),
            name(1, &partlabel),
            Op::PartGuid {
                number: 1,
                guid: partuuid,
            },
            new(2, 0, 0),
        ],
    );
    let p1 = disk.partition_path(1);
    tool(
        "mkfs.ext4",
        &["-q", "-F", "-L", &fslabel, "-U", &fsuuid, path_str(&p1)],
    );

    let names = DevNames::default();
    let dev = PathBuf::from("/dev/disk");
    let by = |kind: &str, v: &str| dev.join(kind).join(devnames::encode(v));
    for link in [
        by("by-partlabel", &partlabel),
        by("by-partuuid", &partuuid.to_lowercase()),
        by("by-label", &fslabel),
        by("by-uuid", &fsuuid),
    ] {
        let _ = std::fs::remove_file(&link);
        assert_eq!(names.resolve(&link).unwrap(), p1, "{}", link.display());
        // The link now exists, is relative like udev's, and tools follow it.
        assert_eq!(std::fs::canonicalize(&link).unwrap(), p1);
        let target = std::fs::read_link(&link).unwrap();
        assert!(target.starts_with("../.."), "{}", target.display());
        let b = blkid(&link);
        assert_eq!(b.get("UUID"), Some(&fsuuid));
    }
    assert!(by("by-partlabel", &partlabel)
        .to_str()
        .unwrap()
        .contains("\\x2f"));
    assert!(by("by-label", &fslabel).to_str().unwrap().contains("\\x20"));
    assert!(names
        .resolve(Path::new("/dev/disk/by-label/ember-no-such-label"))
        .is_err());
    assert_eq!(names.resolve(disk.path()).unwrap(), disk.path());

    // After a change, refresh rewrites the disk's links.
    let _ = names.refresh_disk_links(disk.path()).unwrap();
    let newlabel = unique("relabelled");
    tool("e2label", &[path_str(&p1), &newlabel]);
    let links = names.refresh_disk_links(disk.path()).unwrap();
    assert!(links.contains(&by("by-label", &newlabel)), "{links:?}");
    assert!(!by("by-label", &fslabel).exists());
    assert!(links.contains(&by("by-partuuid", &partuuid.to_lowercase())));
    let p2names = names.names(&disk.partition_path(2)).unwrap();
    assert!(p2names.part_uuid.is_some());
    assert!(p2names.label.is_none());
    let removed = names.remove_links_to(&disk.name()).unwrap();
    assert!(removed.len() >= 4, "{removed:?}");
}

#[test]
fn loop_devices_clean_up_partitions() {
    require_root();
    let (name, p1) = {
        let disk = ScratchDisk::new(16).unwrap();
        commit(disk.path(), &[new(1, 0, 0)]);
        assert!(disk.partition_path(1).exists());
        (disk.name(), disk.partition_path(1))
    };
    // Dropped: the partition node is gone and the device is detached (or reused by now).
    assert!(!Path::new(&format!("/sys/class/block/{name}/{name}p1")).exists());
    let _ = p1;
    let r = std::panic::catch_unwind(|| {
        let disk = ScratchDisk::new(16).unwrap();
        commit(disk.path(), &[new(1, 0, 0)]);
        let n = disk.name();
        std::panic::panic_any(n);
    });
    let n = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(!Path::new(&format!("/sys/class/block/{n}/{n}p1")).exists());
}

#[test]
fn scratch_disks_remove_their_dev_disk_links() {
    require_root();
    let label = format!("emb-gone-{}", &Guid::random().to_string()[..8]);
    let names = DevNames::default();
    let (links, other) = {
        let disk = ScratchDisk::new(16).unwrap();
        commit(disk.path(), &[new(1, 0, 0), name(1, &label)]);
        let links = names.refresh_disk_links(disk.path()).unwrap();
        let by_label = Path::new("/dev/disk/by-partlabel").join(&label);
        assert!(links.contains(&by_label), "{links:?}");
        // A link to another device is left alone.
        let other = Path::new("/dev/disk/by-partlabel").join(format!("{label}-other"));
        std::os::unix::fs::symlink("../../ember-no-such-device", &other).unwrap();
        (links, other)
    };
    for l in &links {
        assert!(
            l.symlink_metadata().is_err(),
            "{} is still there",
            l.display()
        );
    }
    assert!(other.symlink_metadata().is_ok());
    std::fs::remove_file(&other).unwrap();
}
