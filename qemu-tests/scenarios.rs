//! Real boots of Ember's minimal initramfs under QEMU (TCG), one scenario per test; see
//! `qemu-tests/harness.rs` for how a machine is made and looked at.
//!
//! Every test boots Debian's kernel with Ember as `/init`, a root disk holding a small busybox
//! root (labelled `root`), and the config in fw_cfg (the qemu platform).  It checks the
//! result from inside (the root's init prints what it finds after the switch) and from
//! outside (the disk images on the host).  Each boot's timings are printed and appended to
//! `target/qemu-tests/timings.log`.

use std::io::Write;
use std::path::Path;

use crate::harness::{HttpServer, TempDir};
use crate::qemu_harness::{self as qh, HostDisk, TestRoot, APPEND, BOOT_TIMEOUT};

/// The demo root (shared with `scripts/qemu-demo.sh`): what its init shows, and the
/// filesystems it mounts first.
fn demo_root() -> TestRoot {
    let mut r = TestRoot::new().show(
        &include_str!("demo-show")
            .lines()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>(),
    );
    for l in include_str!("demo-mounts").lines() {
        if let [label, fstype, dir] = l.split_whitespace().collect::<Vec<_>>()[..] {
            r = r.mount(label, fstype, dir);
        }
    }
    r
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Scenario 1: the qemu platform with the config in fw_cfg partitions a blank disk, makes ext4
/// and xfs on it, writes files, a user with an SSH key and a unit, and pivots into the root.
#[test]
fn qemu_fw_cfg_provisions_and_pivots() {
    let test = "qemu_fw_cfg_provisions_and_pivots";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu1");
    let root = dir.path().join("root.img");
    demo_root().build(dir.path(), &root);
    let data = dir.path().join("data.img");
    qh::blank_image(&data, 512);
    let config_path = qh::repo().join(qh::DEMO_CONFIG);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();

    let b = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .disk(&data, "data")
        .fw_cfg_config(&config_path)
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    let d = b.dump();
    assert!(b.exited, "the boot did not finish in time\n{d}");
    assert!(b.reached_test_init(), "no switch to the new root\n{d}");
    let c = &b.console;
    assert!(
        c.contains("ember: first boot (the root filesystem has no /etc/.ignition-result.json): provisioning"),
        "{d}"
    );
    for stage in [
        "fetch-offline",
        "kargs",
        "disks",
        "mount",
        "files",
        "umount",
    ] {
        assert!(
            c.contains(&format!("ember: stage {stage}: done")),
            "{stage}\n{d}"
        );
    }
    // Nothing in the config needs the network: no DHCP, the fetch stage is not run.
    assert!(!c.contains("network (DHCP)"), "{d}");
    assert!(!c.contains("stage fetch:"), "{d}");
    assert!(
        c.contains("ember: switching to the new root: exec /sbin/init in /sysroot"),
        "{d}"
    );
    let t = b.timings();
    assert!(t.ember_cpu.is_some(), "no CPU time line\n{d}");

    // Inside: process 1 is the new root's init, on the provisioned state.
    assert_eq!(b.fact("pid"), Some("1"), "{d}");
    assert_eq!(
        b.file("/etc/hostname").as_deref(),
        Some("ember-demo"),
        "{d}"
    );
    assert_eq!(
        b.file("/etc/motd").as_deref(),
        Some("Provisioned by Ember from examples/qemu-demo.ign.")
    );
    assert_eq!(b.stat("/etc/hostname"), Some("644 0:0 11"));
    assert_eq!(b.link("/etc/localtime"), Some("/usr/share/zoneinfo/UTC"));
    let passwd = b.file("/etc/passwd").unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("core:x:1000:")),
        "{passwd}"
    );
    let group = b.file("/etc/group").unwrap();
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("operators:x:") && l.ends_with(":core")),
        "{group}"
    );
    let key = config["passwd"]["users"][0]["sshAuthorizedKeys"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        b.file("/home/core/.ssh/authorized_keys.d/ignition")
            .as_deref(),
        Some(key)
    );
    assert!(b
        .stat("/home/core/.ssh/authorized_keys.d/ignition")
        .is_some_and(|s| s.starts_with("600 1000:")));
    let unit = config["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert_eq!(
        b.file("/etc/systemd/system/hello.service").as_deref(),
        Some(unit.trim_end())
    );
    assert!(b
        .file("/etc/systemd/system-preset/20-ignition.preset")
        .is_some_and(|p| p.lines().any(|l| l == "enable hello.service")));
    // The new partitions, mounted by label by the test init.
    let mut listing = b.listing("/var/lib/data");
    listing.sort();
    assert_eq!(listing, ["cache", "hello.txt", "lost+found"], "{d}");
    assert_eq!(
        b.file("/var/lib/data/hello.txt").as_deref(),
        Some("hello from the ext4 partition")
    );
    assert_eq!(b.stat("/var/lib/data/hello.txt"), Some("600 1000:0 30"));
    assert_eq!(
        b.file("/srv/www/index.html").as_deref(),
        Some("<h1>served from the xfs partition</h1>")
    );
    // The switch: the API filesystems moved, the root is the disk, the initramfs is freed,
    // and the config cache (secrets) did not survive.
    let mounts = b.mounts();
    for (dir_, fs) in [
        ("/", "ext4"),
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "devtmpfs"),
        ("/run", "tmpfs"),
        ("/var/lib/data", "ext4"),
        ("/srv", "xfs"),
    ] {
        assert!(
            mounts.iter().any(|m| m.0 == dir_ && m.1 == fs),
            "{dir_} ({fs}) is not mounted: {mounts:?}"
        );
    }
    assert!(b.facts().contains(&"missing /run/ignition.json"), "{d}");
    assert!(b.facts().contains(&"missing /init"), "{d}");
    let status = b.boot_json();
    assert_eq!(status["firstBoot"], true);
    assert!(status["error"].is_null());
    assert!(status["network"].is_null());

    // Outside: the images on the host.
    let mut rd = HostDisk::open(&root);
    let r = rd.mount(None, "ext4");
    assert_eq!(read(&r, "etc/hostname"), "ember-demo\n");
    let result: serde_json::Value =
        serde_json::from_str(&read(&r, "etc/.ignition-result.json")).unwrap();
    assert!(result["provisioningBootID"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(result["userConfigProvided"], true);
    assert!(read(&r, "etc/shadow")
        .lines()
        .any(|l| l.starts_with("core:")));
    assert_eq!(
        read(&r, "home/core/.ssh/authorized_keys.d/ignition").trim_end(),
        key
    );
    drop(rd);
    let mut dd = HostDisk::open(&data);
    assert_eq!(dd.partitions(), [1, 2]);
    assert_eq!(
        qh::blkid(&dd.node(Some(1))),
        ("ext4".to_string(), "data".to_string())
    );
    assert_eq!(
        qh::blkid(&dd.node(Some(2))),
        ("xfs".to_string(), "srv".to_string())
    );
    let p1 = dd.mount(Some(1), "ext4");
    assert_eq!(read(&p1, "hello.txt"), "hello from the ext4 partition\n");
    assert!(p1.join("cache").is_dir());
    let p2 = dd.mount(Some(2), "xfs");
    assert_eq!(
        read(&p2, "www/index.html"),
        "<h1>served from the xfs partition</h1>\n"
    );
}

/// Scenario 6: a second boot of a provisioned disk provisions nothing and goes straight to
/// the switch, although the config is still offered.
#[test]
fn qemu_second_boot_only_pivots() {
    let test = "qemu_second_boot_only_pivots";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu6");
    let root = dir.path().join("root.img");
    TestRoot::new()
        .show(&["/etc/hostname", "/etc/second", "/run/ember/boot.json"])
        .build(dir.path(), &root);
    let cfg = dir.path().join("config.ign");
    std::fs::write(
        &cfg,
        r#"{"ignition":{"version":"3.4.0"},
            "storage":{"files":[
              {"path":"/etc/hostname","overwrite":true,"contents":{"source":"data:,second-boot"}},
              {"path":"/etc/second","contents":{"source":"data:,written%20once"}}]}}"#,
    )
    .unwrap();
    let vm = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .fw_cfg_config(&cfg);

    let first = vm.boot(&dir, BOOT_TIMEOUT);
    first.record(test, "first boot");
    assert!(first.reached_test_init(), "first boot\n{}", first.dump());
    assert!(
        first.console.contains("ember: first boot"),
        "{}",
        first.dump()
    );
    let stamp = qh::result_file(&root);

    let second = vm.boot(&dir, BOOT_TIMEOUT);
    second.record(test, "second boot");
    second.assert_second_boot();
    let d = second.dump();
    let c = &second.console;
    assert!(!c.contains("fetched user config"), "{d}");
    assert!(c.contains("ember: switching to the new root"), "{d}");
    assert_eq!(second.file("/etc/hostname").as_deref(), Some("second-boot"));
    assert_eq!(second.file("/etc/second").as_deref(), Some("written once"));
    let status = second.boot_json();
    assert_eq!(status["firstBoot"], false);
    let phases: Vec<&str> = status["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        phases,
        ["loading kernel modules", "mounting the root filesystem"]
    );
    // The result file is the first boot's: nothing was provisioned again.
    assert_eq!(qh::result_file(&root), stamp);
}

/// Scenario 5: a file whose hash does not match: no switch, the report on the console, a
/// reboot, and nothing written to the disk.
#[test]
fn qemu_failing_config_does_not_pivot() {
    let test = "qemu_failing_config_does_not_pivot";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu5");
    let root = dir.path().join("root.img");
    TestRoot::new().build(dir.path(), &root);
    let cfg = dir.path().join("config.ign");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"ignition":{{"version":"3.4.0"}},
 "storage":{{"files":[
   {{"path":"/etc/good","contents":{{"source":"data:,fine"}}}},
   {{"path":"/etc/bad","contents":{{"source":"data:,hello",
      "verification":{{"hash":"sha512-{}"}}}}}}]}}}}"#,
            "0".repeat(128)
        ),
    )
    .unwrap();
    let b = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .fw_cfg_config(&cfg)
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "failing boot");
    let d = b.dump();
    let c = &b.console;
    b.assert_failed_and_rebooted();
    assert!(c.contains("ember: the files stage failed: "), "{d}");
    assert!(c.contains("  config:    $.storage.files.1"), "{d}");
    assert!(c.contains("ember: rebooting"), "{d}");
    // The disk: not the bad file, not the good one, no result file.
    let mut rd = HostDisk::open(&root);
    let r = rd.mount(None, "ext4");
    for f in ["etc/bad", "etc/good", "etc/.ignition-result.json"] {
        assert!(!r.join(f).exists(), "{f} was written\n{d}");
    }
}

/// A root filesystem that is there but does not mount is no evidence of a new machine: the
/// boot stops with a report and provisions nothing (the disk is left exactly as it was),
/// rather than guessing "first boot" and rewriting what may be a provisioned root.
#[test]
fn qemu_root_that_does_not_mount_is_not_reprovisioned() {
    let test = "qemu_root_that_does_not_mount_is_not_reprovisioned";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu-badroot");
    let root = dir.path().join("root.img");
    TestRoot::new().build(dir.path(), &root);
    // Zero ext4's first group descriptor block: the superblock still says ext4 (and carries
    // the label), but the kernel refuses to mount it.
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&root)
            .unwrap();
        let mut sb = [0u8; 1024];
        f.seek(SeekFrom::Start(1024)).unwrap();
        f.read_exact(&mut sb).unwrap();
        let block = 1024u64 << u32::from_le_bytes(sb[24..28].try_into().unwrap());
        let gdt = if block == 1024 { 2048 } else { block };
        f.seek(SeekFrom::Start(gdt)).unwrap();
        f.write_all(&vec![0u8; block as usize]).unwrap();
    }
    let before = std::fs::read(&root).unwrap();
    let cfg = dir.path().join("config.ign");
    std::fs::write(
        &cfg,
        r#"{"ignition":{"version":"3.4.0"},
 "storage":{"files":[{"path":"/etc/fresh","contents":{"source":"data:,new"}}]}}"#,
    )
    .unwrap();
    let b = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .fw_cfg_config(&cfg)
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "failing boot");
    let d = b.dump();
    let c = &b.console;
    b.assert_failed_and_rebooted();
    assert!(!c.contains("first boot"), "{d}");
    assert!(!c.contains("stage files"), "{d}");
    assert!(
        c.contains("  operation: mounting the root filesystem"),
        "{d}"
    );
    assert!(
        c.contains("  hint:      the filesystem root= names does not mount"),
        "{d}"
    );
    assert!(
        std::fs::read(&root).unwrap() == before,
        "the root disk was changed\n{d}"
    );
}

/// The failure path with a shell in the image: the report, then a rescue shell on the
/// console (its commands typed in over the serial line), and a reboot when it exits.
#[test]
fn qemu_failure_opens_the_rescue_shell() {
    let test = "qemu_failure_opens_the_rescue_shell";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs_with_shell(&k);
    let dir = TempDir::new("qemushell");
    let root = dir.path().join("root.img");
    TestRoot::new().build(dir.path(), &root);
    let cfg = dir.path().join("config.ign");
    // A config that cannot even be parsed.
    std::fs::write(
        &cfg,
        r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative"}]}}"#,
    )
    .unwrap();
    let b = qh::Vm::new(&k, &initrd)
        .append("ignition.platform.id=qemu root=LABEL=root")
        .disk(&root, "root")
        .fw_cfg_config(&cfg)
        .boot_typing(
            &dir,
            BOOT_TIMEOUT,
            &[(
                "starting a rescue shell",
                "echo RESCUE-$((6*7)) pid1=$(cat /proc/1/comm) mounts=$(grep -c sysroot /proc/mounts)\nexit\n",
            )],
        );
    b.record(test, "failing boot");
    let d = b.dump();
    let c = &b.console;
    b.assert_failed_and_rebooted();
    assert!(c.contains("path not absolute"), "{d}");
    assert!(
        c.contains("ember: starting a rescue shell (/bin/sh); the machine reboots when it exits"),
        "{d}"
    );
    // The shell ran the typed commands, as a child of Ember (process 1).
    assert!(c.contains("RESCUE-42 pid1=init"), "{d}");
    let after_shell = c.split("RESCUE-42").nth(1).unwrap_or_default();
    assert!(after_shell.contains("ember: rebooting"), "{d}");
}

/// A config with a remote file: fetch-offline asks for the network, Ember's DHCP client
/// brings up the NIC on QEMU's user network, and the file comes from a server on the host
/// (10.0.2.2), checked by its sha512.
#[test]
fn qemu_remote_file_brings_up_the_network() {
    let test = "qemu_remote_file_brings_up_the_network";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemunet");
    let root = dir.path().join("root.img");
    TestRoot::new()
        .show(&[
            "/etc/remote.txt",
            "/run/ember/boot.json",
            "/etc/resolv.conf",
        ])
        .build(dir.path(), &root);
    let body = b"fetched over the network\n".to_vec();
    let served = body.clone();
    let server = HttpServer::start(move |req, conn| {
        if req.path() == "/remote.txt" {
            crate::harness::respond(conn, 200, &[], &served);
        } else {
            crate::harness::respond(conn, 404, &[], b"");
        }
    });
    let hash = crate::harness::sha512_hex(&body);
    let cfg = dir.path().join("config.ign");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"ignition":{{"version":"3.4.0"}},
 "storage":{{"files":[{{"path":"/etc/remote.txt","mode":420,
   "contents":{{"source":"http://10.0.2.2:{}/remote.txt","verification":{{"hash":"sha512-{hash}"}}}}}}]}}}}"#,
            server.port()
        ),
    )
    .unwrap();
    let b = qh::Vm::new(&k, &initrd)
        .append(APPEND)
        .disk(&root, "root")
        .fw_cfg_config(&cfg)
        .user_net()
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    let d = b.dump();
    assert!(b.reached_test_init(), "{d}");
    let c = &b.console;
    assert!(c.contains("ember: network (DHCP): done"), "{d}");
    assert!(
        c.contains("is 10.0.2.15/24 from DHCP server 10.0.2.2"),
        "{d}"
    );
    assert_eq!(
        b.file("/etc/remote.txt").as_deref(),
        Some("fetched over the network")
    );
    let status = b.boot_json();
    assert_eq!(status["network"]["address"], "10.0.2.15/24");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].path(), "/remote.txt");
}
