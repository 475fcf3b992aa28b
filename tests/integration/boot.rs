//! Ember as PID 1 in its minimal initramfs, booted under QEMU (TCG; root): the qemu platform
//! with the config in fw_cfg, a blank disk that the config partitions and formats, a remote
//! file fetched over QEMU's user network (so DHCP runs), and a small root filesystem whose
//! /sbin/init prints what it finds to the serial console and powers off.
//!
//! 1. first boot: provisioning, then the switch to the new root, which shows the result;
//! 2. second boot of the same disks: no provisioning (the stamp is there), straight switch;
//! 3. a config whose file hash does not match: no switch, the report on the console, a
//!    reboot (`ember.failure_timeout=0`), and nothing written.

use std::path::Path;

use sha2::Digest;

use crate::harness::{HttpServer, TempDir};
use crate::qemu_harness::{self as qh, BOOT_TIMEOUT};

/// The test root's /sbin/init: prints the provisioned state, then powers off.
const TEST_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
echo "EMBER-TEST pid=$$"
echo "EMBER-TEST hostname=$($B cat /etc/hostname 2>&1)"
echo "EMBER-TEST user=$($B grep '^core:' /etc/passwd)"
echo "EMBER-TEST keys=$($B cat /home/core/.ssh/authorized_keys.d/ignition 2>&1)"
echo "EMBER-TEST remote=$($B cat /etc/remote.txt 2>&1)"
$B mount -o ro /dev/disk/by-label/data /mnt 2>/dev/null || $B mount -o ro /dev/vdb1 /mnt
echo "EMBER-TEST data=$($B cat /mnt/hello.txt 2>&1)"
$B umount /mnt
while read -r dev mnt fs rest; do echo "EMBER-TEST mount $mnt $fs"; done < /proc/mounts
echo "EMBER-TEST boot=$($B cat /run/ember/boot.json 2>&1)"
echo "EMBER-TEST config-cache=$($B ls /run/ignition.json 2>&1)"
echo "EMBER-TEST initramfs-init=$($B ls /init 2>&1)"
echo "EMBER-TEST done"
$B poweroff -f
"#;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmberBootTestKeyxxxxxxxxxxxxxxxxxxxxxxx test@ember";

/// A root filesystem image with busybox, the test init and minimal account files.
fn test_root(dir: &Path, out: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let t = dir.join("tree");
    for d in ["bin", "sbin", "etc", "dev", "proc", "sys", "run", "mnt", "home", "root"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", t.join("bin/busybox")).expect("/bin/busybox (busybox-static)");
    std::fs::write(t.join("sbin/init"), TEST_INIT).unwrap();
    std::fs::set_permissions(t.join("sbin/init"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    std::fs::write(t.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(t.join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
    std::fs::write(t.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    qh::ext4_image(&t, "root", 64, out);
}

/// Reads a file from an ext4 image without mounting it (`None`: not there).
fn debugfs_cat(image: &Path, path: &str) -> Option<String> {
    let o = std::process::Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .output()
        .expect("running debugfs");
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("not found") || err.contains("File not found") {
        return None;
    }
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn line<'a>(console: &'a str, key: &str) -> &'a str {
    let prefix = format!("EMBER-TEST {key}=");
    console
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} line on the console:\n{console}"))
}

/// Kernel start → Ember start → switch, from the console's timestamps.
fn timings(what: &str, console: &str) {
    let ms = qh::milestones(console);
    let start = ms.iter().find(|(_, m)| m.contains("started as process 1"));
    let switch = ms.iter().find(|(_, m)| m.contains("switching to the new root"));
    let init = qh::kernel_time(console, "Run /init as init process");
    eprintln!(
        "{what}: kernel → /init {:?} s, Ember start {:?} s, switch_root {:?} s",
        init,
        start.map(|s| s.0),
        switch.map(|s| s.0)
    );
}

#[test]
fn qemu_first_boot_provisions_and_second_boot_only_pivots() {
    let k = qh::require_vm();
    let dir = TempDir::new("boot");
    let ember = qh::release_ember();
    let initrd = dir.path().join("initramfs.img");
    qh::build_initramfs(&ember, &k, &initrd, &[]);
    let root = dir.path().join("root.img");
    test_root(dir.path(), &root);
    let data = dir.path().join("data.img");
    qh::blank_image(&data, 64);

    let remote = b"fetched over the network\n".to_vec();
    let body = remote.clone();
    let server = HttpServer::start(move |req, conn| {
        if req.path() == "/remote.txt" {
            crate::harness::respond(conn, 200, &[], &body);
        } else {
            crate::harness::respond(conn, 404, &[], b"");
        }
    });
    let hash = sha2::Sha512::digest(&remote)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let config = format!(
        r#"{{"ignition":{{"version":"3.4.0"}},
 "storage":{{
   "disks":[{{"device":"/dev/disk/by-id/virtio-data","wipeTable":true,
              "partitions":[{{"number":1,"label":"data"}}]}}],
   "filesystems":[{{"device":"/dev/disk/by-partlabel/data","format":"ext4","label":"data",
                    "path":"/var/data"}}],
   "files":[
     {{"path":"/etc/hostname","contents":{{"source":"data:,ember-qemu"}},"mode":420}},
     {{"path":"/var/data/hello.txt","contents":{{"source":"data:,hello%20from%20ember"}}}},
     {{"path":"/etc/remote.txt","contents":{{"source":"http://10.0.2.2:{}/remote.txt",
        "verification":{{"hash":"sha512-{hash}"}}}},"mode":420}}]}},
 "passwd":{{"users":[{{"name":"core","sshAuthorizedKeys":["{KEY}"]}}]}}}}"#,
        server.port()
    );
    let cfg = dir.path().join("config.ign");
    std::fs::write(&cfg, config).unwrap();
    let vm = |append: &str| {
        qh::Vm::new(&k, &initrd)
            .append(append)
            .disk(&root, "root")
            .disk(&data, "data")
            .fw_cfg_config(&cfg)
            .user_net()
    };

    // First boot: no stamp in the root filesystem, so Ember provisions.
    let first = vm("ignition.platform.id=qemu root=/dev/disk/by-label/root ember.failure_timeout=0")
        .start(&dir)
        .wait(BOOT_TIMEOUT);
    let c = &first.console;
    assert!(first.exited, "the first boot did not finish in time:\n{c}");
    timings("first boot", c);
    assert!(c.contains("EMBER-TEST done"), "no switch to the new root:\n{c}");
    assert!(c.contains("ember: first boot (the root filesystem has no /etc/.ignition-result.json)"), "{c}");
    assert!(c.contains("ember: network (DHCP): done"), "{c}");
    assert!(c.contains("is 10.0.2.15/24 from DHCP server 10.0.2.2"), "{c}");
    assert!(c.contains("ember: switching to the new root: exec /sbin/init in /sysroot"), "{c}");
    assert_eq!(line(c, "pid"), "1");
    assert_eq!(line(c, "hostname"), "ember-qemu");
    assert!(line(c, "user").starts_with("core:x:1000:"), "{c}");
    assert_eq!(line(c, "keys"), KEY);
    assert_eq!(line(c, "remote"), "fetched over the network");
    assert_eq!(line(c, "data"), "hello from ember");
    // The API filesystems moved into the new root; the initramfs is gone; no secrets left.
    for m in ["/proc proc", "/sys sysfs", "/dev devtmpfs", "/run tmpfs", "/ ext4"] {
        assert!(c.contains(&format!("EMBER-TEST mount {m}")), "{m} not mounted:\n{c}");
    }
    assert!(line(c, "config-cache").contains("No such file"), "{c}");
    assert!(line(c, "initramfs-init").contains("No such file"), "{c}");
    let status: serde_json::Value = serde_json::from_str(line(c, "boot")).unwrap();
    assert_eq!(status["firstBoot"], true);
    assert_eq!(status["network"]["address"], "10.0.2.15/24");
    assert!(status["error"].is_null());
    assert_eq!(server.requests().len(), 1);
    // From outside: the stamp and the files are in the image.
    assert!(debugfs_cat(&root, "/etc/.ignition-result.json")
        .unwrap()
        .contains("provisioningBootID"));
    assert_eq!(debugfs_cat(&root, "/etc/hostname").as_deref(), Some("ember-qemu"));

    // Second boot of the same disks: the stamp is there, nothing is provisioned.
    let second = vm("ignition.platform.id=qemu root=LABEL=root ember.failure_timeout=0")
        .start(&dir)
        .wait(BOOT_TIMEOUT);
    let c = &second.console;
    assert!(second.exited, "the second boot did not finish in time:\n{c}");
    timings("second boot", c);
    assert!(c.contains("ember: not the first boot (the root filesystem has /etc/.ignition-result.json): no provisioning"), "{c}");
    assert!(!c.contains("stage fetch-offline"), "{c}");
    assert!(!c.contains("network (DHCP)"), "{c}");
    assert_eq!(line(c, "hostname"), "ember-qemu");
    assert_eq!(line(c, "data"), "hello from ember");
    let status: serde_json::Value = serde_json::from_str(line(c, "boot")).unwrap();
    assert_eq!(status["firstBoot"], false);
    assert_eq!(server.requests().len(), 1, "the second boot fetched something");
}

#[test]
fn qemu_failing_config_does_not_pivot() {
    let k = qh::require_vm();
    let dir = TempDir::new("bootfail");
    let ember = qh::release_ember();
    let initrd = dir.path().join("initramfs.img");
    qh::build_initramfs(&ember, &k, &initrd, &[]);
    let root = dir.path().join("root.img");
    test_root(dir.path(), &root);
    let config = format!(
        r#"{{"ignition":{{"version":"3.4.0"}},
 "storage":{{"files":[
   {{"path":"/etc/good","contents":{{"source":"data:,fine"}}}},
   {{"path":"/etc/bad","contents":{{"source":"data:,hello",
      "verification":{{"hash":"sha512-{}"}}}}}}]}}}}"#,
        "0".repeat(128)
    );
    let cfg = dir.path().join("config.ign");
    std::fs::write(&cfg, config).unwrap();
    let run = qh::Vm::new(&k, &initrd)
        .append("ignition.platform.id=qemu root=LABEL=root ember.failure_timeout=0")
        .disk(&root, "root")
        .fw_cfg_config(&cfg)
        .start(&dir)
        .wait(BOOT_TIMEOUT);
    let c = &run.console;
    assert!(run.exited, "the machine did not reboot after the failure:\n{c}");
    assert!(c.contains("ember: the files stage failed: hash verification failed"), "{c}");
    assert!(c.contains("  operation: checking file \"/etc/bad\""), "{c}");
    assert!(c.contains("  config:    $.storage.files.1.contents"), "{c}");
    assert!(c.contains("ember: the boot failed (exit code 1)"), "{c}");
    assert!(c.contains("ember: rebooting"), "{c}");
    assert!(!c.contains("switching to the new root"), "{c}");
    assert!(!c.contains("EMBER-TEST"), "{c}");
    // Nothing was written: not the bad file, not the good one, no stamp.
    assert_eq!(debugfs_cat(&root, "/etc/bad"), None);
    assert_eq!(debugfs_cat(&root, "/etc/good"), None);
    assert_eq!(debugfs_cat(&root, "/etc/.ignition-result.json"), None);
}
