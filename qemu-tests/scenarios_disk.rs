//! QEMU scenarios about disks: a provisioning that fails half-way (scenario 5) and a root
//! filesystem on software RAID1 (scenario 7).  See `qemu-tests/harness.rs` for the machine
//! and `qemu-tests/configs/` for the configs (`@NAME@` placeholders are filled in by the test:
//! the port of the HTTP server on the host, hashes, the test init).

use std::path::{Path, PathBuf};

use crate::harness::sha512_hex;
use ember::system::mounts::MountGuard;

use crate::harness::{respond, HttpServer, TempDir};
use crate::qemu_harness::{self as qh, HostDisk, TestRoot, APPEND, BOOT_TIMEOUT};

/// `qemu-tests/configs/<name>` with each `@KEY@` replaced, written to `dir`.
fn config(dir: &Path, name: &str, vars: &[(&str, &str)]) -> PathBuf {
    let src = qh::repo().join("qemu-tests/configs").join(name);
    let mut text =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    assert!(
        !text.contains('@'),
        "{name}: a placeholder was not filled in"
    );
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out
}

/// Every path under `dir` (relative, sorted), directories included.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("listing {}: {e}", d.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// A read-only loop device over part of another device (`losetup --offset`), e.g. the data
/// area of an md member; detached on drop.
struct OffsetLoop(PathBuf);

impl OffsetLoop {
    fn attach(node: &Path, offset: u64) -> OffsetLoop {
        let out = crate::harness::tool(
            "losetup",
            &[
                "--find",
                "--show",
                "--read-only",
                "--offset",
                &offset.to_string(),
                &node.display().to_string(),
            ],
        );
        OffsetLoop(PathBuf::from(out.trim()))
    }
}

impl Drop for OffsetLoop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.0)
            .status();
    }
}

/// Scenario 5: the config partitions and formats a disk and writes files, one of which is
/// fetched from the host and does not match its verification hash.  The machine must not
/// switch to the root: the failure report is on the console (without config contents), the
/// machine reboots at once (no shell in the image, `ember.failure_timeout=0`), and no file of
/// the failed level is on the disk, neither under its name nor under a temporary one.
#[test]
fn qemu_hash_mismatch_fails_without_partial_files() {
    let test = "qemu_hash_mismatch_fails_without_partial_files";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu5disk");
    let root = dir.path().join("root.img");
    TestRoot::new()
        .show(&["/etc/hostname"])
        .build(dir.path(), &root);
    let data = dir.path().join("data.img");
    qh::blank_image(&data, 128);

    let tool = b"the tool, exactly as the config expects it\n".to_vec();
    // The config expects the hash of an empty file: this cannot match.
    let payload = b"PAYLOAD-BODY-NOT-THE-ONE-EXPECTED\n".repeat(2000);
    let (t, p) = (tool.clone(), payload.clone());
    let server = HttpServer::start(move |req, conn| match req.path() {
        "/tool.bin" => respond(conn, 200, &[], &t),
        "/payload.bin" => respond(conn, 200, &[], &p),
        _ => respond(conn, 404, &[], b""),
    });
    let port = server.port().to_string();
    let cfg = config(
        dir.path(),
        "hash-mismatch.ign",
        &[("PORT", &port), ("TOOL_SHA512", &sha512_hex(&tool))],
    );

    let b = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .disk(&data, "data")
        .fw_cfg_config(&cfg)
        .user_net()
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "failing boot");
    let d = b.dump();
    let c = &b.console;

    // It got as far as the files stage: the disk was partitioned and formatted, the payload
    // fetched.
    b.assert_failed_and_rebooted();
    assert!(c.contains("ember: stage disks: done"), "{d}");
    assert!(
        server.requests().iter().any(|r| r.path() == "/payload.bin"),
        "the payload was never fetched\n{d}"
    );
    // The report, root cause first.
    let report: Vec<&str> = c
        .lines()
        .skip_while(|l| !l.starts_with("ember: the files stage failed: "))
        .take_while(|l| l.starts_with("ember: the files stage failed: ") || l.starts_with("  "))
        .collect();
    assert!(!report.is_empty(), "no failure report\n{d}");
    let expected = sha512_hex(b"");
    assert_eq!(
        report[0],
        format!(
            "ember: the files stage failed: hash verification failed (calculated {} but \
             expected {expected})",
            sha512_hex(&payload)
        ),
        "{d}"
    );
    let field = |name: &str| {
        let prefix = format!("  {name:<10} ");
        report
            .iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("the report has no {name} line\n{d}"))
    };
    assert_eq!(
        field("operation:"),
        "writing file \"/var/lib/app/payload.bin\"",
        "{d}"
    );
    assert_eq!(
        field("config:"),
        "$.storage.files.3.contents in the user config from the qemu platform",
        "{d}"
    );
    assert!(
        field("hint:").starts_with("the fetched data does not match verification.hash"),
        "{d}"
    );
    // No config content anywhere on the console: not the data URLs' contents, not the query
    // string of the payload's URL, not what was fetched.
    for secret in [
        "PLANTED-SECRET-ONE",
        "PLANTED-SECRET-TWO",
        "signature=",
        "db_password",
        "never-booted",
        "PAYLOAD-BODY",
        "the tool, exactly",
    ] {
        assert!(!c.contains(secret), "the console shows {secret:?}\n{d}");
    }
    // No switch, no shell (the image has none), a reboot at once.
    assert!(!c.contains("rescue shell"), "{d}");
    assert!(!c.contains("rebooting in "), "{d}");
    assert!(c.contains("ember: rebooting"), "{d}");
    assert!(!c.contains("EMBER-TEST"), "the root's init ran\n{d}");

    // Outside.  The data disk: partitioned and formatted (the disks stage finished), and not
    // one file of the level that failed: the whole filesystem holds only lost+found.
    let mut dd = HostDisk::open(&data);
    assert_eq!(dd.partitions(), [1], "{d}");
    assert_eq!(
        qh::blkid(&dd.node(Some(1))),
        ("ext4".to_string(), "app".to_string())
    );
    let app = dd.mount(Some(1), "ext4");
    let on_data = tree(&app);
    assert_eq!(on_data, ["lost+found"], "files left on the data disk");
    drop(dd);
    // The root: not marked as provisioned, so the next boot provisions again.  Compared with
    // the tree the image was made of, only the data filesystem's mount point (made by the
    // mount stage) is new.  The files stage fetched and checked the small remote files before
    // its first write, so not even /etc/hostname (a shallower level than the failed file) was
    // written.  No temporary file (`.ember-*`) anywhere.
    let mut rd = HostDisk::open(&root);
    let r = rd.mount(None, "ext4");
    assert!(!r.join("etc/.ignition-result.json").exists());
    let before = tree(&dir.path().join("tree"));
    let after = tree(&r);
    let added: Vec<&String> = after
        .iter()
        .filter(|p| !before.contains(p) && p.as_str() != "lost+found")
        .collect();
    let hostname = std::fs::read_to_string(r.join("etc/hostname")).ok();
    eprintln!(
        "{test}: on the disks after the failure: the data disk's filesystem holds \
         {on_data:?}; the root gained {added:?} (/etc/hostname: {hostname:?})"
    );
    assert!(
        added.iter().all(|p| p.as_str() == "var/lib/app"),
        "unexpected entries on the root after the failure: {added:?}"
    );
    assert_ne!(
        hostname.as_deref(),
        Some("never-booted"),
        "/etc/hostname was written"
    );
    assert!(after.iter().all(|p| !p.contains(".ember-")), "{after:?}");
}

/// Scenario 7: two blank disks become one md RAID1 holding an ext4 root labelled `root`; the
/// root's whole content (busybox fetched from the host, the test init, the files) comes from
/// the config.  Ember creates the array, provisions and switches to it; the root's init sees
/// the mirror with both members active.  On the host each disk carries an md superblock of the
/// same array, and each member's data area holds the whole filesystem.
#[test]
fn qemu_raid1_root_across_two_disks() {
    let test = "qemu_raid1_root_across_two_disks";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu7raid");
    let (a, b_img) = (dir.path().join("a.img"), dir.path().join("b.img"));
    qh::blank_image(&a, 128);
    qh::blank_image(&b_img, 128);

    let busybox = std::fs::read("/bin/busybox").expect("reading /bin/busybox (busybox-static)");
    let served = busybox.clone();
    let server = HttpServer::start(move |req, conn| match req.path() {
        "/busybox" => respond(conn, 200, &[], &served),
        _ => respond(conn, 404, &[], b""),
    });
    use base64::Engine;
    let init = base64::engine::general_purpose::STANDARD.encode(qh::TEST_INIT);
    let port = server.port().to_string();
    let cfg = config(
        dir.path(),
        "raid1-root.ign",
        &[
            ("PORT", &port),
            ("BUSYBOX_SHA512", &sha512_hex(&busybox)),
            ("INIT_BASE64", &init),
        ],
    );

    let vm = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&a, "mirror-a")
        .disk(&b_img, "mirror-b")
        .fw_cfg_config(&cfg)
        .user_net();
    let b = vm.boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    let d = b.dump();
    assert!(b.exited, "the boot did not finish in time\n{d}");
    assert!(b.reached_test_init(), "no switch to the new root\n{d}");
    let c = &b.console;
    assert!(
        c.contains(
            "ember: first boot (the root device /dev/disk/by-label/root does not exist yet): \
             provisioning"
        ),
        "{d}"
    );
    assert!(c.contains("ember: stage disks: done"), "{d}");

    // Inside: the root is the array, mirrored on both members.
    assert_eq!(b.fact("pid"), Some("1"), "{d}");
    let mounts = b.mounts();
    let (_, fstype, source) = mounts
        .iter()
        .find(|m| m.0 == "/")
        .copied()
        .unwrap_or_else(|| panic!("no / in /proc/mounts\n{d}"));
    assert_eq!(fstype, "ext4", "{d}");
    assert!(source.starts_with("/dev/md"), "the root is {source}\n{d}");
    let mdstat = b
        .file("/proc/mdstat")
        .unwrap_or_else(|| panic!("no /proc/mdstat\n{d}"));
    let array = mdstat
        .lines()
        .find(|l| l.starts_with("md"))
        .unwrap_or_else(|| panic!("no array in /proc/mdstat:\n{mdstat}"));
    eprintln!("{test}: /proc/mdstat in the new root:\n{mdstat}");
    assert!(array.contains(" : active raid1 "), "{mdstat}");
    assert!(
        array.contains("vda1[") && array.contains("vdb1["),
        "{mdstat}"
    );
    assert!(mdstat.contains("[2/2] [UU]"), "{mdstat}");
    assert_eq!(b.file("/etc/hostname").as_deref(), Some("mirrored"));
    assert_eq!(
        b.file("/etc/mirrored.txt").as_deref(),
        Some("written once, stored on two disks")
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");

    // Outside: both disks carry a superblock of the same array (mdadm reads it without the md
    // driver), and each member's data area holds the filesystem with the files.
    let mut uuids = Vec::new();
    for (img, role) in [(&a, "Active device 0"), (&b_img, "Active device 1")] {
        let hd = HostDisk::open(img);
        assert_eq!(hd.partitions(), [1]);
        let node = hd.node(Some(1));
        let (ty, _label) = qh::blkid(&node);
        assert_eq!(ty, "linux_raid_member", "{}", img.display());
        let ex = crate::harness::tool("mdadm", &["--examine", &node.display().to_string()]);
        let val = |key: &str| {
            ex.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(" : ")?;
                    (k.trim() == key).then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no {key} in mdadm --examine:\n{ex}"))
        };
        assert_eq!(val("Raid Level"), "raid1", "{ex}");
        assert_eq!(val("Raid Devices"), "2", "{ex}");
        assert!(val("Name").ends_with(":root"), "{ex}");
        assert_eq!(val("Device Role"), role, "{ex}");
        assert!(val("Array State").starts_with("AA"), "{ex}");
        eprintln!(
            "{test}: {}: md superblock of array {:?} ({}), {}, {}, array state {}",
            img.display(),
            val("Name"),
            val("Array UUID"),
            val("Device Role"),
            val("State"),
            val("Array State")
        );
        uuids.push(val("Array UUID"));
        // "Data Offset : 4096 sectors"
        let offset: u64 = val("Data Offset")
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("data offset in:\n{ex}"));
        let lo = OffsetLoop::attach(&node, offset * 512);
        assert_eq!(
            qh::blkid(&lo.0),
            ("ext4".to_string(), "root".to_string()),
            "{}",
            img.display()
        );
        let mnt = TempDir::new("raidmember");
        let g = MountGuard::mount(&lo.0, mnt.path(), "ext4", &["ro", "noload"])
            .unwrap_or_else(|e| panic!("mounting the data area of {}: {e}", img.display()));
        let m = mnt.path();
        assert_eq!(
            std::fs::read_to_string(m.join("etc/mirrored.txt")).unwrap(),
            "written once, stored on two disks\n"
        );
        assert_eq!(std::fs::read(m.join("bin/busybox")).unwrap(), busybox);
        assert!(m.join("etc/.ignition-result.json").is_file());
        drop(g);
        drop(lo);
    }
    assert_eq!(uuids[0], uuids[1], "two different arrays");

    // A second boot finds the array (assembled from its superblocks; no udev does it here)
    // and the stamp on it: no provisioning, the same root.
    let second = vm.boot(&dir, BOOT_TIMEOUT);
    second.record(test, "second boot");
    second.assert_second_boot();
    let mdstat = second.file("/proc/mdstat").unwrap_or_default();
    eprintln!("{test}: /proc/mdstat on the second boot:\n{mdstat}");
    assert!(mdstat.contains(" : active raid1 "), "{mdstat}");
    assert!(mdstat.contains("[2/2] [UU]"), "{mdstat}");
    assert_eq!(
        second.file("/etc/mirrored.txt").as_deref(),
        Some("written once, stored on two disks")
    );
    assert_eq!(server.requests().len(), 1, "busybox fetched again");
}
