//! Real boots where the config comes over the network or from a cloud's data source, one
//! scenario per test: metal with `ignition.config.url`, a PXE boot through QEMU's iPXE and
//! TFTP server, the EC2 (IMDSv2) and GCE metadata services at 169.254.169.254, and an
//! OpenStack config drive.  See `qemu-tests/harness.rs` for the machine and
//! `qemu-tests/netsupport.rs` for the servers; the configs are in `qemu-tests/configs/`.
//!
//! Each test checks what a user would: the files, users and units in the new root (from
//! inside, as the root's init shows them after the switch, and for metal also from the host),
//! that the switch to the root's `/sbin/init` happened, and what the servers were asked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{HttpRequest, TempDir};
use crate::qemu_harness::{self as qh, Boot, HostDisk, TestRoot, Vm, BOOT_TIMEOUT};
use crate::qemu_netsupport::{self as ns, Imds};

/// Every boot: the root by label and an immediate reboot on failure (QEMU then exits).
const COMMON: &str = "root=LABEL=root ember.failure_timeout=0";

/// Adds QEMU arguments.
fn with_args(vm: Vm, args: &[String]) -> Vm {
    args.iter().fold(vm, |vm, a| vm.arg(a))
}

/// The boot reached the new root's init as process 1 after Ember's switch (the show list
/// must have `/init`: the initramfs's, which must be gone).
fn assert_pivoted(b: &Boot) {
    let d = b.dump();
    assert!(b.exited, "the boot did not finish in time\n{d}");
    assert!(b.reached_test_init(), "no switch to the new root\n{d}");
    assert!(
        b.console
            .contains("ember: switching to the new root: exec /sbin/init in /sysroot"),
        "{d}"
    );
    assert_eq!(b.fact("pid"), Some("1"), "{d}");
    assert!(
        b.mounts().iter().any(|m| m.0 == "/" && m.1 == "ext4"),
        "the root is not the ext4 disk: {:?}",
        b.mounts()
    );
    assert!(
        b.facts().contains(&"missing /init"),
        "the initramfs is still the root\n{d}"
    );
}

/// The provisioning stamp Ember leaves in the root, read from the host.
fn stamp(root: &Path) -> serde_json::Value {
    serde_json::from_str(&qh::result_file(root)).expect("the result file is JSON")
}

/// The first SSH key of the first user of a config.
fn first_key(config: &serde_json::Value) -> &str {
    config["passwd"]["users"][0]["sshAuthorizedKeys"][0]
        .as_str()
        .expect("the config has a user with an SSH key")
}

/// What a config from `qemu-tests/configs/{aws,gcp,openstack,pxe}.ign` provisions, as the
/// new root's init shows it: hostname, motd, the user with its key, the enabled unit.
fn assert_simple_config(b: &Boot, config: &serde_json::Value) {
    let d = b.dump();
    let data = |i: usize| {
        let src = config["storage"]["files"][i]["contents"]["source"]
            .as_str()
            .unwrap();
        let text = src.strip_prefix("data:,").unwrap().replace("%20", " ");
        text.strip_suffix("%0A").unwrap().to_string()
    };
    assert_eq!(b.file("/etc/hostname"), Some(data(0)), "{d}");
    assert!(b
        .stat("/etc/hostname")
        .is_some_and(|s| s.starts_with("644 0:0 ")));
    assert_eq!(b.file("/etc/motd"), Some(data(1)), "{d}");
    let user = config["passwd"]["users"][0]["name"].as_str().unwrap();
    let passwd = b.file("/etc/passwd").unwrap_or_default();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with(&format!("{user}:x:1000:"))),
        "{passwd}\n{d}"
    );
    let keys = format!("/home/{user}/.ssh/authorized_keys.d/ignition");
    assert_eq!(b.file(&keys).as_deref(), Some(first_key(config)), "{d}");
    assert!(b.stat(&keys).is_some_and(|s| s.starts_with("600 1000:")));
    let unit = &config["systemd"]["units"][0];
    let name = unit["name"].as_str().unwrap();
    assert_eq!(
        b.file(&format!("/etc/systemd/system/{name}")).as_deref(),
        Some(unit["contents"].as_str().unwrap().trim_end()),
        "{d}"
    );
    assert!(
        b.file("/etc/systemd/system-preset/20-ignition.preset")
            .is_some_and(|p| p.lines().any(|l| l == format!("enable {name}"))),
        "{d}"
    );
}

/// The paths [`assert_simple_config`] looks at, for the test root's show list.
fn simple_show(config: &serde_json::Value) -> Vec<String> {
    let user = config["passwd"]["users"][0]["name"].as_str().unwrap();
    let unit = config["systemd"]["units"][0]["name"].as_str().unwrap();
    vec![
        "/etc/hostname".into(),
        "/etc/motd".into(),
        "/etc/passwd".into(),
        format!("/home/{user}/.ssh/authorized_keys.d/ignition"),
        format!("/etc/systemd/system/{unit}"),
        "/etc/systemd/system-preset/20-ignition.preset".into(),
        "/run/ember/boot.json".into(),
        "/proc/cmdline".into(),
        "/init".into(),
    ]
}

fn build_root(dir: &TempDir, show: &[String]) -> std::path::PathBuf {
    let root = dir.path().join("root.img");
    let show: Vec<&str> = show.iter().map(String::as_str).collect();
    TestRoot::new().show(&show).build(dir.path(), &root);
    root
}

/// Scenario 2: bare metal.  The config comes from `ignition.config.url` on an HTTP server of
/// the host; it merges a child config from the same server and has remote files checked by
/// their sha512.  Ember brings up the network by DHCP for the fetch stage.
#[test]
fn qemu_metal_config_url_over_http() {
    let test = "qemu_metal_config_url_over_http";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu-metal");
    let template = ns::config_bytes("metal/config.ign");
    let child = ns::config_bytes("metal/child.ign");
    let motd = ns::config_bytes("metal/files/motd");
    let hello = ns::config_bytes("metal/files/hello.sh");
    // The shipped config's hashes are those of the shipped files.
    let tpl = String::from_utf8_lossy(&template);
    for (name, body) in [("child.ign", &child), ("motd", &motd), ("hello.sh", &hello)] {
        assert!(
            tpl.contains(&format!("sha512-{}", crate::harness::sha512_hex(body))),
            "qemu-tests/configs/metal/config.ign does not have the sha512 of {name}"
        );
    }

    // The config names its own server: it is served once the port is known.
    let server = ns::FileServer::start();
    server.put("/child.ign", child.clone());
    server.put("/files/motd", motd.clone());
    server.put("/files/hello.sh", hello.clone());
    let port = server.port();
    server.put("/config.ign", ns::with_port(&template, port));
    let config: serde_json::Value = serde_json::from_slice(&template).unwrap();
    let child_cfg: serde_json::Value = serde_json::from_slice(&child).unwrap();

    let show: Vec<String> = [
        "/etc/hostname",
        "/etc/motd",
        "/usr/local/bin/hello",
        "/etc/ember/child.conf",
        "/etc/passwd",
        "/etc/group",
        "/home/core/.ssh/authorized_keys.d/ignition",
        "/home/ops/.ssh/authorized_keys.d/ignition",
        "/etc/systemd/system/metal-hello.service",
        "/etc/systemd/system-preset/20-ignition.preset",
        "/etc/resolv.conf",
        "/run/ember/boot.json",
        "/init",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let root = build_root(&dir, &show);
    let url = format!("http://10.0.2.2:{port}/config.ign");
    let b = Vm::new(&k, &initrd)
        .append(&format!(
            "ignition.platform.id=metal ignition.config.url={url} {COMMON}"
        ))
        .disk(&root, "root")
        .user_net()
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    let d = b.dump();
    assert_pivoted(&b);
    let c = &b.console;
    assert!(
        c.contains(&format!(
            "ember: config named on the kernel command line: {url}"
        )),
        "{d}"
    );
    // fetch-offline cannot fetch an http URL: the network comes up, then the fetch stage.
    assert!(c.contains("ember: network (DHCP): done"), "{d}");
    assert!(
        c.contains("is 10.0.2.15/24 from DHCP server 10.0.2.2"),
        "{d}"
    );
    for stage in [
        "fetch-offline",
        "fetch",
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
    let status = b.boot_json();
    assert_eq!(status["firstBoot"], true);
    assert_eq!(status["network"]["address"], "10.0.2.15/24", "{status}");
    assert!(status["error"].is_null(), "{status}");

    // Inside: the remote files with their modes, the inline file, and the child's user,
    // file and unit.
    let text = |v: &[u8]| String::from_utf8_lossy(v).trim_end().to_string();
    assert_eq!(
        b.file("/etc/hostname").as_deref(),
        Some("metal-node"),
        "{d}"
    );
    assert_eq!(b.file("/etc/motd"), Some(text(&motd)), "{d}");
    assert_eq!(
        b.stat("/etc/motd"),
        Some(format!("644 0:0 {}", motd.len()).as_str())
    );
    assert_eq!(b.file("/usr/local/bin/hello"), Some(text(&hello)), "{d}");
    assert_eq!(
        b.stat("/usr/local/bin/hello"),
        Some(format!("755 0:0 {}", hello.len()).as_str())
    );
    assert_eq!(
        b.file("/etc/ember/child.conf").as_deref(),
        Some("merged from child.ign"),
        "{d}"
    );
    assert!(b
        .stat("/etc/ember/child.conf")
        .is_some_and(|s| s.starts_with("600 0:0 ")));
    let passwd = b.file("/etc/passwd").unwrap_or_default();
    assert!(passwd.lines().any(|l| l.starts_with("core:x:")), "{passwd}");
    assert!(
        passwd.lines().any(|l| l.starts_with("ops:x:1100:")),
        "{passwd}"
    );
    assert_eq!(
        b.file("/home/core/.ssh/authorized_keys.d/ignition")
            .as_deref(),
        Some(first_key(&config))
    );
    assert_eq!(
        b.file("/home/ops/.ssh/authorized_keys.d/ignition")
            .as_deref(),
        Some(first_key(&child_cfg))
    );
    let unit = child_cfg["systemd"]["units"][0]["contents"]
        .as_str()
        .unwrap();
    assert_eq!(
        b.file("/etc/systemd/system/metal-hello.service").as_deref(),
        Some(unit.trim_end())
    );
    assert!(b
        .file("/etc/systemd/system-preset/20-ignition.preset")
        .is_some_and(|p| p.lines().any(|l| l == "enable metal-hello.service")));
    // The network was taken down again before the switch; the lease's resolver stays.
    assert!(
        b.file("/etc/resolv.conf").is_none(),
        "the initramfs's resolv.conf leaked into the root\n{d}"
    );

    // Outside: the root image on the host.
    let mut rd = HostDisk::open(&root);
    let r = rd.mount(None, "ext4");
    let mode = |rel: &str| {
        std::fs::metadata(r.join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(std::fs::read(r.join("etc/motd")).unwrap(), motd);
    assert_eq!(mode("etc/motd"), 0o644);
    assert_eq!(std::fs::read(r.join("usr/local/bin/hello")).unwrap(), hello);
    assert_eq!(mode("usr/local/bin/hello"), 0o755);
    assert_eq!(
        std::fs::read_to_string(r.join("etc/ember/child.conf")).unwrap(),
        "merged from child.ign\n"
    );
    assert_eq!(mode("etc/ember/child.conf"), 0o600);
    let shadow = std::fs::read_to_string(r.join("etc/shadow")).unwrap();
    for u in ["core:", "ops:"] {
        assert!(shadow.lines().any(|l| l.starts_with(u)), "{shadow}");
    }
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.join("etc/.ignition-result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["userConfigProvided"], true);
    drop(rd);

    // The server: the config first, then the child it merges, then each file once.
    let reqs = server.requests();
    let lines = ns::request_lines(&reqs);
    let paths: Vec<&str> = reqs.iter().map(HttpRequest::path).collect();
    assert_eq!(paths.len(), 4, "{lines}");
    assert_eq!(&paths[..2], ["/config.ign", "/child.ign"], "{lines}");
    let mut rest = paths[2..].to_vec();
    rest.sort();
    assert_eq!(rest, ["/files/hello.sh", "/files/motd"], "{lines}");
    for r in &reqs {
        assert_eq!(r.method, "GET", "{lines}");
        assert!(
            r.header("User-Agent")
                .is_some_and(|u| u.starts_with("Ignition/")),
            "{r:?}"
        );
    }
}

/// Scenario 3: PXE.  No `-kernel`: QEMU's iPXE gets `boot.ipxe` from the user network's
/// TFTP server, loads the kernel and Ember's initramfs over TFTP, and boots them with the
/// script's command line, whose `ignition.config.url` names the host's HTTP server.
#[test]
fn qemu_pxe_boot_fetches_the_config() {
    let test = "qemu_pxe_boot_fetches_the_config";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu-pxe");
    let config_bytes = ns::config_bytes("pxe.ign");
    let config = ns::config_json("pxe.ign");
    let server = ns::FileServer::start();
    server.put("/pxe.ign", config_bytes);
    let url = format!("http://10.0.2.2:{}/pxe.ign", server.port());
    let cmdline = format!(
        "console=ttyS0 panic=-1 ignition.platform.id=metal ignition.config.url={url} {COMMON}"
    );
    let tftp = ns::pxe_dir(dir.path(), &k.image, &initrd, &cmdline);
    let root = build_root(&dir, &simple_show(&config));
    let vm = with_args(
        Vm::new(&k, &initrd).firmware_boot().disk(&root, "root"),
        &ns::pxe_args(&tftp),
    );
    let qemu_args: Vec<String> = vm
        .command()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        !qemu_args.iter().any(|a| a == "-kernel" || a == "-initrd"),
        "{qemu_args:?}"
    );
    let b = vm.boot(&dir, BOOT_TIMEOUT);
    b.record(test, "PXE boot");
    let d = b.dump();
    assert_pivoted(&b);
    // The kernel ran with the command line of the iPXE script, so the script booted it.
    assert_eq!(
        b.file("/proc/cmdline").as_deref(),
        Some(cmdline.as_str()),
        "{d}"
    );
    let c = &b.console;
    assert!(c.contains("ember: network (DHCP): done"), "{d}");
    assert!(c.contains("ember: stage fetch: done"), "{d}");
    assert_simple_config(&b, &config);
    let reqs = server.requests();
    assert_eq!(
        reqs.iter().map(HttpRequest::path).collect::<Vec<_>>(),
        ["/pxe.ign"],
        "{}",
        ns::request_lines(&reqs)
    );
}

/// Boots `platform` with a user network on 169.254.0.0/16 whose 169.254.169.254:80 leads to
/// the metadata mock on 127.0.0.1:`port`, and checks what every metadata scenario shares: the
/// switch happened, DHCP gave 169.254.0.15/16, and `config` was provisioned.
fn metadata_boot(
    test: &str,
    k: &qh::Kernel,
    platform: &str,
    config: &serde_json::Value,
    port: u16,
) -> Boot {
    let initrd = qh::initramfs(k);
    let dir = TempDir::new(&format!("qemu-{platform}"));
    let root = build_root(&dir, &simple_show(config));
    let netdev = ns::link_local_metadata_netdev("md", port);
    let b = Vm::new(k, &initrd)
        .append(&format!("ignition.platform.id={platform} {COMMON}"))
        .disk(&root, "root")
        .arg("-netdev")
        .arg(&netdev)
        .arg("-device")
        .arg("virtio-net-pci,netdev=md")
        .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    assert_pivoted(&b);
    assert!(
        b.console.contains("ember: network (DHCP): done"),
        "{}",
        b.dump()
    );
    assert_eq!(b.boot_json()["network"]["address"], "169.254.0.15/16");
    assert_simple_config(&b, config);
    b
}

/// Scenario 4a: EC2.  The user data comes from an IMDSv2 mock at 169.254.169.254 (a session
/// token first, then the user data with it), reached over a user network on 169.254.0.0/16
/// that Ember configures by DHCP.
#[test]
fn qemu_aws_imdsv2_user_data() {
    let test = "qemu_aws_imdsv2_user_data";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let config = ns::config_json("aws.ign");
    let imds = Imds::start(ns::config_bytes("aws.ign"), "eu-west-3");
    let b = metadata_boot(test, &k, "aws", &config, imds.server.port());
    assert!(
        b.console
            .contains("is 169.254.0.15/16 from DHCP server 169.254.0.2"),
        "{}",
        b.dump()
    );

    // IMDSv2: every GET carried a token that a PUT before it had handed out, and the user
    // data was asked for once.
    let reqs = imds.server.requests();
    let lines = ns::request_lines(&reqs);
    let tokens = imds.tokens();
    assert!(!tokens.is_empty(), "no token was asked for\n{lines}");
    let first = &reqs[0];
    assert_eq!(
        (first.method.as_str(), first.path()),
        ("PUT", "/latest/api/token"),
        "{lines}"
    );
    assert_eq!(
        first.header("X-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    let mut puts = 0;
    for r in &reqs {
        if r.method == "PUT" {
            puts += 1;
            continue;
        }
        let tok = r.header("X-aws-ec2-metadata-token");
        let issued_by = tok.and_then(|t| tokens.iter().position(|x| x == t));
        assert!(
            issued_by.is_some_and(|i| i < puts),
            "{} {} without a token issued before it\n{lines}",
            r.method,
            r.target
        );
    }
    let user_data: Vec<&HttpRequest> = reqs
        .iter()
        .filter(|r| r.path().ends_with("/user-data"))
        .collect();
    assert_eq!(user_data.len(), 1, "{lines}");
    assert_eq!(user_data[0].method, "GET");
    assert_eq!(user_data[0].path(), "/2019-10-01/user-data", "{lines}");
}

/// Scenario 4b: GCE.  The user data is the `user-data` instance attribute of a metadata
/// mock at 169.254.169.254 that answers only requests with `Metadata-Flavor: Google`.
#[test]
fn qemu_gcp_metadata_user_data() {
    let test = "qemu_gcp_metadata_user_data";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let config = ns::config_json("gcp.ign");
    let server = ns::gce_metadata_server(ns::config_bytes("gcp.ign"));
    metadata_boot(test, &k, "gcp", &config, server.port());
    let reqs = server.requests();
    let lines = ns::request_lines(&reqs);
    let user_data: Vec<&HttpRequest> = reqs
        .iter()
        .filter(|r| r.path() == ns::GCE_USER_DATA)
        .collect();
    assert_eq!(user_data.len(), 1, "{lines}");
    assert_eq!(user_data[0].method, "GET");
    for r in &reqs {
        assert_eq!(
            r.header("Metadata-Flavor"),
            Some("Google"),
            "{} {} without the flavor header\n{lines}",
            r.method,
            r.target
        );
    }
}

/// Scenario 4c: OpenStack with a config drive: an ISO 9660 image labelled `config-2` on a
/// SATA CD-ROM holds `openstack/latest/user_data`.  The machine has no NIC: the drive is
/// enough, and no network is brought up.
#[test]
fn qemu_openstack_config_drive() {
    let test = "qemu_openstack_config_drive";
    let Some(k) = qh::vm_or_skip(test) else {
        return;
    };
    let initrd = qh::initramfs(&k);
    let dir = TempDir::new("qemu-openstack");
    let user_data = ns::config_bytes("openstack.ign");
    let config = ns::config_json("openstack.ign");
    let iso = dir.path().join("config-2.iso");
    let meta = br#"{"uuid": "8d7a4d4c-6f1e-4f7e-9a59-0d9c1e3f5a11", "name": "openstack-node"}"#;
    ns::iso_image(
        dir.path(),
        "config-2",
        &[
            ("openstack/latest/user_data", &user_data),
            ("openstack/latest/meta_data.json", meta),
        ],
        &iso,
    );
    let root = build_root(&dir, &simple_show(&config));
    let b = with_args(
        Vm::new(&k, &initrd)
            .append(&format!("ignition.platform.id=openstack {COMMON}"))
            .disk(&root, "root"),
        &ns::sata_cdrom_args(&iso, "cd0"),
    )
    .boot(&dir, BOOT_TIMEOUT);
    b.record(test, "first boot");
    let d = b.dump();
    assert_pivoted(&b);
    let c = &b.console;
    assert!(c.contains("openstack/latest/user_data"), "{d}");
    assert!(
        !c.contains("network (DHCP)"),
        "the network was brought up\n{d}"
    );
    assert!(!c.contains("stage fetch:"), "{d}");
    assert!(b.boot_json()["network"].is_null());
    assert_simple_config(&b, &config);
    assert_eq!(stamp(&root)["userConfigProvided"], true);
}

/// One raw HTTP/1.1 exchange with a server on 127.0.0.1: (status, body).
fn exchange(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
        ns::METADATA_ADDR
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

/// The mocks refuse what the real services refuse, so that the boots above would fail if
/// Ember skipped the IMDSv2 token or the GCE flavor header (no VM needed).
#[test]
fn metadata_mocks_refuse_what_the_clouds_refuse() {
    let imds = Imds::start(b"{}".to_vec(), "eu-west-3");
    let port = imds.server.port();
    assert_eq!(exchange(port, "GET", "/2019-10-01/user-data", &[]).0, 401);
    assert_eq!(exchange(port, "PUT", "/latest/api/token", &[]).0, 400);
    let ttl = ("X-aws-ec2-metadata-token-ttl-seconds", "21600");
    let (status, token) = exchange(port, "PUT", "/latest/api/token", &[ttl]);
    assert_eq!(status, 200);
    assert_eq!(imds.tokens(), std::slice::from_ref(&token));
    let bad = ("X-aws-ec2-metadata-token", "forged");
    assert_eq!(exchange(port, "GET", "/latest/user-data", &[bad]).0, 401);
    let good = ("X-aws-ec2-metadata-token", token.as_str());
    assert_eq!(
        exchange(port, "GET", "/2019-10-01/user-data", &[good]),
        (200, "{}".to_string())
    );
    assert_eq!(
        exchange(port, "GET", "/latest/meta-data/placement/region", &[good]),
        (200, "eu-west-3".to_string())
    );
    assert_eq!(
        exchange(
            port,
            "GET",
            "/latest/meta-data/iam/security-credentials/",
            &[good]
        )
        .0,
        404
    );

    let gce = ns::gce_metadata_server(b"{}".to_vec());
    let port = gce.port();
    assert_eq!(exchange(port, "GET", ns::GCE_USER_DATA, &[]).0, 403);
    let flavor = ("Metadata-Flavor", "Google");
    assert_eq!(
        exchange(port, "GET", ns::GCE_USER_DATA, &[flavor]),
        (200, "{}".to_string())
    );
}
