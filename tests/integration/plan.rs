//! `ember plan` as a process: the plan text for each kind of operation (create, keep, resize,
//! delete, wipe, format, reuse; users, files, units, kernel arguments, mounts), exit codes, and
//! that nothing changes: device hashes and the root tree before and after, no cache or status
//! file.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ember::system::blockdev;
use ember::system::loopdev::ScratchDisk;

use crate::harness::{ember_bin, require_root, respond, tool, HttpServer, TempDir};

/// SHA-256 of a whole device (or file), read after dropping its cached pages.
pub fn device_hash(dev: &Path) -> String {
    use sha2::{Digest, Sha256};
    if let Ok(b) = blockdev::BlockDevice::open(dev) {
        let _ = b.flush();
    }
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

/// Every path below `dir` with its mode, owner, and contents (or link target).
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                walk(base, &p, out);
                "dir".into()
            } else {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            };
            out.insert(
                p.strip_prefix(base).unwrap().to_path_buf(),
                format!("{:o} {}:{} {what}", m.mode(), m.uid(), m.gid()),
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A scratch place: a root, empty system config dirs, a kernel command line.
struct Place {
    dir: TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Place {
    fn new(tag: &str) -> Place {
        let dir = TempDir::new(&format!("plan-{tag}"));
        for d in ["root/etc", "root/home", "sys/run", "sys/etc", "sys/usr"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for (f, t) in [
            (
                "cmdline",
                "BOOT_IMAGE=/vmlinuz root=/dev/vda4 quiet console=tty0\n",
            ),
            (
                "root/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nold:x:1000:1000::/home/old:/bin/sh\n",
            ),
            ("root/etc/group", "root:x:0:\nold:x:1000:\n"),
            (
                "root/etc/shadow",
                "root:*:19000:0:99999:7:::\nold:*:19000:0:99999:7:::\n",
            ),
            ("root/etc/gshadow", "root:*::\nold:!::\n"),
            ("root/etc/motd", "the old motd\n"),
            ("root/etc/hosts", "127.0.0.1 localhost\n"),
        ] {
            std::fs::write(dir.path().join(f), t).unwrap();
        }
        std::fs::write(dir.path().join("helper"), "#!/bin/sh\nexit 0\n").unwrap();
        Place { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn plan(&self, config: &serde_json::Value, extra: &[&str]) -> Out {
        std::fs::write(self.p("config.ign"), config.to_string()).unwrap();
        let mut c = Command::new(ember_bin());
        c.current_dir(self.dir.path())
            .env("IGNITION_KERNEL_CMDLINE_PATH", self.p("cmdline"))
            .env("IGNITION_SYSTEM_RUNTIME_CONFIG_DIR", self.p("sys/run"))
            .env("IGNITION_SYSTEM_LOCAL_CONFIG_DIR", self.p("sys/etc"))
            .env("IGNITION_SYSTEM_CONFIG_DIR", self.p("sys/usr"))
            .env("EMBER_STATUS_FILE", self.p("run/ember/status.json"))
            .env("EMBER_KARGS_HELPER", self.p("helper"))
            .env("EMBER_DEVICE_TIMEOUT", "2")
            .env_remove("EMBER_LOG")
            .args(["plan", "--root"])
            .arg(self.p("root"))
            .args(extra)
            .arg("config.ign");
        let o = c.output().unwrap();
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        // Never a cache, a state, a status file or a neednet flag.
        assert!(!self.p("run").exists(), "ember plan wrote to run/");
        out
    }
}

fn has_line(out: &str, parts: &[&str]) -> bool {
    out.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[track_caller]
fn assert_line(out: &str, parts: &[&str]) {
    assert!(has_line(out, parts), "no line with {parts:?} in:\n{out}");
}

#[test]
fn files_users_units_kargs_and_references() {
    let child = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "systemd": {"units": [{"name": "app.service", "enabled": true,
            "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}
    })
    .to_string();
    let server = HttpServer::start(move |_, c| respond(c, 200, &[], child.as_bytes()));
    let place = Place::new("files");
    std::fs::create_dir_all(place.p("sys/usr/base.d")).unwrap();
    std::fs::write(
        place.p("sys/usr/base.d/10-base.ign"),
        r#"{"ignition":{"version":"3.4.0"},"storage":{"directories":[{"path":"/var/lib/base"}]}}"#,
    )
    .unwrap();
    let config = serde_json::json!({
        "ignition": {"version": "3.4.0", "config": {"merge": [{"source": server.url("/child.ign?token=T0K")}]}},
        "kernelArguments": {"shouldExist": ["console=tty0", "nosmt"], "shouldNotExist": ["quiet", "rhgb"]},
        "passwd": {
            "users": [{"name": "core", "passwordHash": "$6$xyz$abc", "sshAuthorizedKeys": ["ssh-ed25519 AAAA k"]},
                      {"name": "root", "shell": "/bin/bash"},
                      {"name": "old", "shouldExist": false},
                      {"name": "never", "shouldExist": false}],
            "groups": [{"name": "app"}]
        },
        "storage": {
            "files": [
                {"path": "/etc/motd", "overwrite": true, "mode": 420, "contents": {"source": "data:,new"}},
                {"path": "/etc/hosts", "append": [{"source": "data:,10.0.0.1%20db"}]},
                {"path": "/etc/app.conf", "group": {"name": "app"}, "contents": {"source": server.url("/app.conf")}}
            ],
            "directories": [{"path": "/var/lib/app", "mode": 448}],
            "links": [{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"}]
        }
    });
    let before = tree(&place.p("root"));
    let o = place.plan(&config, &["--platform", "metal"]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(
        tree(&place.p("root")),
        before,
        "ember plan changed the root"
    );
    let out = &o.stdout;
    assert!(
        out.starts_with("ember plan: the config config.ign, platform metal, root "),
        "{out}"
    );
    assert!(
        out.ends_with("The stages can carry out this plan.\n"),
        "{out}"
    );
    // The top lists the destructive operations.
    assert!(
        out.contains("DESTRUCTIVE: 2 operations destroy data:\n"),
        "{out}"
    );
    // config
    assert_line(
        out,
        &[
            "merge http://127.0.0.1:",
            "/child.ign (",
            "bytes, fetched)",
            "[$.ignition.config.merge.0]",
        ],
    );
    assert!(!out.contains("T0K"), "{out}");
    assert_line(out, &["base config ", "sys/usr/base.d/10-base.ign"]);
    assert_line(out, &["needs the network ($.storage.files.2.contents)"]);
    // The referenced config, and the remote file to check it (its data is not kept).
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, ["/child.ign", "/app.conf"]);
    assert_line(
        out,
        &[
            "fetched http://127.0.0.1:",
            "/app.conf for /etc/app.conf: ",
            " bytes, no hash to check (the data is not kept)",
            "[$.storage.files.2.contents]",
        ],
    );
    // kargs, against the kernel command line now.
    assert_line(
        out,
        &[
            "ensure \"console=tty0\": present now",
            "[$.kernelArguments.shouldExist.0]",
        ],
    );
    assert_line(
        out,
        &[
            "ADD \"nosmt\": absent now",
            "[$.kernelArguments.shouldExist.1]",
        ],
    );
    assert_line(
        out,
        &[
            "REMOVE \"quiet\": present now",
            "[$.kernelArguments.shouldNotExist.0]",
        ],
    );
    assert_line(
        out,
        &[
            "ensure \"rhgb\" is absent: absent now",
            "[$.kernelArguments.shouldNotExist.1]",
        ],
    );
    assert_line(out, &["run ", "helper --should-exist console=tty0 --should-exist nosmt --should-not-exist quiet --should-not-exist rhgb"]);
    // files: users and groups by what the target has now.
    assert_line(out, &["create group \"app\"", "[$.passwd.groups.0]"]);
    assert_line(out, &["create user \"core\", set its password hash, write 1 SSH key to ~/.ssh/authorized_keys.d/ignition", "[$.passwd.users.0]"]);
    assert_line(out, &["modify user \"root\"", "[$.passwd.users.1]"]);
    assert_line(
        out,
        &[
            "DELETE user \"old\" with its home directory /home/old and mail spool",
            "[$.passwd.users.2]",
        ],
    );
    assert_line(
        out,
        &[
            "nothing to do: user \"never\" is absent as required",
            "[$.passwd.users.3]",
        ],
    );
    assert!(!out.contains("$6$xyz"), "{out}");
    // files, directories, links: create / overwrite / append / keep.
    assert_line(
        out,
        &[
            "OVERWRITE file /etc/motd, contents: inline data, mode 0644",
            "[$.storage.files.0]",
        ],
    );
    assert_line(
        out,
        &[
            "append to file /etc/hosts, appending: inline data",
            "[$.storage.files.1]",
        ],
    );
    assert_line(
        out,
        &[
            "create file /etc/app.conf, contents: http://127.0.0.1:",
            "/app.conf",
            "[$.storage.files.2]",
        ],
    );
    assert_line(
        out,
        &[
            "create directory /var/lib/app, mode 0700",
            "[$.storage.directories.1]",
        ],
    );
    assert_line(
        out,
        &[
            "create directory /var/lib/base",
            "[$.storage.directories.0]",
        ],
    );
    assert_line(
        out,
        &[
            "create symlink /etc/localtime -> \"/usr/share/zoneinfo/UTC\"",
            "[$.storage.links.0]",
        ],
    );
    assert_line(
        out,
        &[
            "write unit /etc/systemd/system/app.service",
            "[$.systemd.units.0]",
        ],
    );
    assert_line(out, &["preset: enable app.service", "[$.systemd.units.0]"]);
    assert_line(out, &["write the result file /etc/.ignition-result.json"]);
    // Order: passwd, then entries by depth, then units.
    let files = out.split("\nfiles\n").nth(1).unwrap();
    let at = |s: &str| files.find(s).unwrap_or_else(|| panic!("{s} in {files}"));
    assert!(at("create group") < at("OVERWRITE file") && at("OVERWRITE file") < at("write unit"));

    // A second plan with a kept symlink and a file in the way.
    std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", place.p("root/etc/localtime")).unwrap();
    let before = tree(&place.p("root"));
    let o = place.plan(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"links": [{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"}],
                        "directories": [{"path": "/etc/motd", "overwrite": true}]}
        }),
        &[],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_line(
        &o.stdout,
        &["keep symlink /etc/localtime", "[$.storage.links.0]"],
    );
    assert_line(
        &o.stdout,
        &[
            "REPLACE /etc/motd with a directory: DELETES what is there now",
            "[$.storage.directories.1]",
        ],
    );
    assert!(
        o.stdout
            .contains("DESTRUCTIVE: 1 operation destroys data:\n"),
        "{}",
        o.stdout
    );
    assert_eq!(tree(&place.p("root")), before);
}

#[test]
fn a_step_that_would_fail_exits_1_with_the_report() {
    let place = Place::new("fail");
    let before = tree(&place.p("root"));
    let o = place.plan(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/app.conf", "user": {"name": "app"}}]}
        }),
        &[],
    );
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.ends_with(
            "The files stage would fail: no such user \"app\" in the target's account files\n"
        ),
        "{}",
        o.stdout
    );
    assert!(o.stderr.starts_with(
        "ember: the files stage would fail: no such user \"app\" in the target's account files\n  \
         operation: checking file \"/etc/app.conf\"\n  \
         config:    $.storage.files.0.user.name in the config config.ign\n"
    ), "{}", o.stderr);
    assert_eq!(tree(&place.p("root")), before);

    // A missing kernel-argument helper is the kargs stage's failure.
    std::fs::remove_file(place.p("helper")).unwrap();
    let o = place.plan(
        &serde_json::json!({"ignition": {"version": "3.4.0"}, "kernelArguments": {"shouldExist": ["a"]}}),
        &[],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stdout
            .contains("The kargs stage would fail: the kernel argument helper "),
        "{}",
        o.stdout
    );

    // An invalid config: the fetch stage's failure, with the findings shown.
    let o = place.plan(
        &serde_json::json!({"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "rel"}]}}),
        &[],
    );
    assert_eq!(o.code, 1);
    assert_line(&o.stdout, &["findings: 1 error, 0 warnings"]);
    assert_line(
        &o.stdout,
        &["error at $.storage.files.0.path", "path not absolute"],
    );
    assert!(
        o.stderr
            .contains("config:    $.storage.files.0.path in the config config.ign"),
        "{}",
        o.stderr
    );
}

#[test]
fn remote_files_are_fetched_to_check_them_and_config_from_stdin() {
    let server = HttpServer::start(|req, c| match req.path() {
        "/motd" => respond(c, 200, &[], b"welcome\n"),
        _ => respond(c, 404, &[], b""),
    });
    let place = Place::new("remote");
    let sha512 = |b: &[u8]| {
        use sha2::Digest;
        format!("sha512-{:x}", sha2::Sha512::digest(b))
    };
    let plan_stdin = |config: serde_json::Value| -> Out {
        use std::io::Write;
        let mut child = Command::new(ember_bin())
            .env("IGNITION_SYSTEM_RUNTIME_CONFIG_DIR", place.p("sys/run"))
            .env("IGNITION_SYSTEM_LOCAL_CONFIG_DIR", place.p("sys/etc"))
            .env("IGNITION_SYSTEM_CONFIG_DIR", place.p("sys/usr"))
            .env("EMBER_STATUS_FILE", place.p("run/ember/status.json"))
            .env_remove("EMBER_LOG")
            .args(["plan", "--root"])
            .arg(place.p("root"))
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(config.to_string().as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(!place.p("run").exists(), "ember plan wrote to run/");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let before = tree(&place.p("root"));
    let file = |source: String, hash: &str| {
        serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/motd", "overwrite": true,
                "contents": {"source": source, "verification": {"hash": hash}}}]}
        })
    };

    // The right hash: the plan can be carried out, and says so with the size.
    let o = plan_stdin(file(server.url("/motd"), &sha512(b"welcome\n")));
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .starts_with("ember plan: the config from standard input, platform (none)"),
        "{}",
        o.stdout
    );
    assert_line(
        &o.stdout,
        &[
            "OVERWRITE file /etc/motd, contents: http://127.0.0.1:",
            "[$.storage.files.0]",
        ],
    );
    assert_line(
        &o.stdout,
        &[
            "/motd for /etc/motd: 8 bytes, matches verification.hash",
            "[$.storage.files.0.contents]",
        ],
    );

    // Another hash: the files stage would fail, and the plan says so before any disk is touched.
    let o = plan_stdin(file(server.url("/motd"), &sha512(b"other\n")));
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("The files stage would fail: hash verification failed"),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.starts_with(
            "ember: the files stage would fail: hash verification failed (calculated "
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(
            "  operation: writing file \"/etc/motd\"\n  \
         config:    $.storage.files.0.contents in the config from standard input\n  \
         hint:      the fetched data does not match verification.hash"
        ),
        "{}",
        o.stderr
    );

    // Nothing there: the same, with the URL (without its query) and a hint.
    let o = plan_stdin(file(server.url("/gone?sig=S1G"), &sha512(b"welcome\n")));
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stderr.starts_with(&format!(
            "ember: the files stage would fail: resource not found: {}\n",
            server.url("/gone")
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("  hint:      check the URL"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("S1G") && !o.stdout.contains("S1G"));

    // Not a config at all: the fetch stage would fail, exit 1, the report says where.
    let o = plan_stdin(serde_json::json!(["not", "a", "config"]));
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stderr.starts_with("ember: the fetch stage would fail: "),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("  operation: parsing the config\n"),
        "{}",
        o.stderr
    );
    assert_eq!(
        tree(&place.p("root")),
        before,
        "ember plan changed the root"
    );
}

#[test]
fn remote_files_use_the_ca_of_a_base_config() {
    let (ca_pem, tls) = crate::runner::https_server(|_, c| respond(c, 200, &[], b"over tls\n"));
    let place = Place::new("base-ca");
    // The CA comes from a base config only: the user config alone cannot fetch the file.
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        ca_pem.as_bytes(),
    );
    std::fs::create_dir_all(place.p("sys/usr/base.d")).unwrap();
    std::fs::write(
        place.p("sys/usr/base.d/ca.ign"),
        serde_json::json!({
            "ignition": {"version": "3.4.0", "security": {"tls": {"certificateAuthorities": [
                {"source": format!("data:;base64,{b64}")}
            ]}}}
        })
        .to_string(),
    )
    .unwrap();
    let url = format!("https://127.0.0.1:{}/motd", tls.port());
    let config = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "overwrite": true,
            "contents": {"source": url}}]}
    });
    let o = place.plan(&config, &[]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_line(&o.stdout, &["base config ", "base.d/ca.ign"]);
    assert_line(
        &o.stdout,
        &[
            &format!("fetched {url} for /etc/motd: 9 bytes"),
            "[$.storage.files.0.contents]",
        ],
    );
}

#[test]
fn plan_and_apply_refuse_inputs_larger_than_a_config_can_be() {
    let dir = TempDir::new("plan-big");
    // Sparse: one byte over the 256 MiB limit costs no disk.
    let big = dir.path().join("big.ign");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    let big = big.to_str().unwrap();
    let root = dir.path().to_str().unwrap();
    for (args, prefix) in [
        (vec!["plan", "--root", root, big], "ember plan: "),
        (vec!["apply", "--root", root, big], "ember apply: "),
    ] {
        let o = Command::new(ember_bin()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr,
            format!("{prefix}{big} is larger than 256 MiB, the largest config Ember reads\n")
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let run = |args: &[&str]| {
        Command::new(ember_bin())
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&["plan"]), Some(2));
    assert_eq!(run(&["plan", "/nonexistent/config.ign"]), Some(2));
    assert_eq!(run(&["plan", "--platform", "nonesuch", "-"]), Some(2));
    assert_eq!(run(&["plan", "--root", "/nonexistent", "-"]), Some(2));
    assert_eq!(run(&["plan", "--help"]), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Disks

/// Partitions made by sgdisk itself, and the kernel told (this kernel parses no tables).
fn sgdisk(disk: &ScratchDisk, args: &[&str]) {
    let dev = disk.path().display().to_string();
    let mut a = args.to_vec();
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

fn part(disk: &ScratchDisk, n: u32) -> String {
    disk.partition_path(n).display().to_string()
}

#[test]
fn disks_create_keep_resize_delete_wipe_format_reuse() {
    require_root();
    let place = Place::new("disks");
    let tag = format!("{:05}", std::process::id() % 100_000);
    // Disk A: keep 1 (ext4, reused), grow 2, delete 3 (ext4), format 4 (vfat), create 5.
    let a = ScratchDisk::new(64).unwrap();
    sgdisk(
        &a,
        &[
            "-n",
            "1:2048:+8M",
            "-c",
            "1:keep",
            "-n",
            "2:18432:+8M",
            "-c",
            "2:grow",
            "-n",
            "3:51200:+8M",
            "-c",
            "3:old",
            "-n",
            "4:67584:+8M",
            "-c",
            "4:fs",
        ],
    );
    tool(
        "mkfs.ext4",
        &["-q", "-L", &format!("KEEP{tag}"), &part(&a, 1)],
    );
    tool(
        "mkfs.ext4",
        &["-q", "-L", &format!("OLD{tag}"), &part(&a, 3)],
    );
    tool("mkfs.vfat", &["-n", "OLDFAT", &part(&a, 4)]);
    // Disk B: a table with an ext4 partition, wiped and partitioned anew.
    let b = ScratchDisk::new(32).unwrap();
    sgdisk(
        &b,
        &[
            "-n",
            "1:2048:+12M",
            "-c",
            "1:first",
            "-n",
            "2:0:+8M",
            "-c",
            "2:second",
        ],
    );
    tool(
        "mkfs.ext4",
        &["-q", "-L", &format!("GONE{tag}"), &part(&b, 1)],
    );

    let config = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {
            "disks": [
                {"device": a.path(), "partitions": [
                    {"number": 1, "label": "keep"},
                    {"number": 2, "label": "grow", "sizeMiB": 16, "resize": true},
                    {"number": 3, "shouldExist": false, "wipePartitionEntry": true},
                    {"number": 5, "label": "new", "sizeMiB": 4}]},
                {"device": b.path(), "wipeTable": true, "partitions": [
                    {"number": 1, "label": "fresh", "sizeMiB": 8}]}
            ],
            "filesystems": [
                {"device": part(&a, 1), "format": "ext4", "label": format!("KEEP{tag}"), "path": "/srv"},
                {"device": part(&a, 4), "format": "ext4", "wipeFilesystem": true, "label": "data"},
                {"device": part(&b, 1), "format": "ext4", "wipeFilesystem": true, "path": "/var"}
            ]
        }
    });
    let (ha, hb) = (device_hash(a.path()), device_hash(b.path()));
    let before = tree(&place.p("root"));
    let o = place.plan(&config, &[]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(device_hash(a.path()), ha, "ember plan wrote to disk A");
    assert_eq!(device_hash(b.path()), hb, "ember plan wrote to disk B");
    assert_eq!(tree(&place.p("root")), before);
    let out = &o.stdout;
    let (da, db) = (
        a.path().display().to_string(),
        b.path().display().to_string(),
    );

    // Evidence: what is there now.
    assert_line(
        out,
        &[
            &format!("disk {da} ({da}): GPT, 4 partitions, 131072 sectors (64 MiB)"),
            "[$.storage.disks.0]",
        ],
    );
    assert_line(
        out,
        &[
            "now: partition 3 \"old\": sectors 51200-67583, 16384 sectors (8 MiB), holds ext4",
            &format!("label \"OLD{tag}\""),
        ],
    );
    assert_line(
        out,
        &["now: partition 4 \"fs\"", "holds vfat label \"OLDFAT\""],
    );
    assert_line(out, &["now: partition 2 \"grow\"", "no filesystem found"]);
    // Decisions.
    assert_line(
        out,
        &[
            "keep partition 1 \"keep\": matches (sectors 2048-18431",
            "[$.storage.disks.0.partitions.0]",
        ],
    );
    assert_line(out, &["grow partition 2 \"grow\" from 16384 sectors (8 MiB) to 32768 sectors (16 MiB) (start 18432 kept)", "[$.storage.disks.0.partitions.1]"]);
    assert_line(out, &[&format!("DELETE partition 3 \"old\" of {da} (sectors 51200-67583, 16384 sectors (8 MiB)): ext4 label \"OLD{tag}\""), "found on it is lost", "[$.storage.disks.0.partitions.2]"]);
    assert_line(
        out,
        &[
            "create partition 5 \"new\" at sector",
            "8192 sectors (4 MiB)",
            "[$.storage.disks.0.partitions.3]",
        ],
    );
    assert_line(
        out,
        &[
            "write the partition table (as sgdisk",
            "[$.storage.disks.0]",
        ],
    );
    // Disk B: wiped; what was on it is lost.
    assert_line(
        out,
        &[
            &format!("WIPE the partition table of {db} (GPT, 2 partitions)"),
            "[$.storage.disks.1.wipeTable]",
        ],
    );
    assert_line(
        out,
        &[
            "DELETE partition 1 \"first\"",
            "with the table: ext4",
            &format!("label \"GONE{tag}\""),
            "is lost",
        ],
    );
    assert_line(
        out,
        &[
            "DELETE partition 2 \"second\"",
            "with the table: its contents are lost",
        ],
    );
    assert_line(
        out,
        &[
            "create partition 1 \"fresh\" at sector 2048, 16384 sectors (8 MiB)",
            "[$.storage.disks.1.partitions.0]",
        ],
    );
    // Filesystems: reuse, format over vfat, format over the old ext4 read at the new place.
    assert_line(
        out,
        &[
            &format!("keep the existing ext4 label \"KEEP{tag}\""),
            "[$.storage.filesystems.0]",
        ],
    );
    assert_line(
        out,
        &[
            &format!(
                "FORMAT {} ({}) as ext4 label \"data\": WIPES vfat label \"OLDFAT\"",
                part(&a, 4),
                part(&a, 4)
            ),
            "[$.storage.filesystems.1]",
        ],
    );
    assert_line(
        out,
        &[
            &format!("FORMAT {}", part(&b, 1)),
            "partition 1 of",
            "made by this stage) as ext4: WIPES ext4",
            &format!("label \"GONE{tag}\""),
            "[$.storage.filesystems.2]",
        ],
    );
    // Mounts.
    assert_line(
        out,
        &[
            &format!(
                "mount {} (ext4) at {}",
                part(&a, 1),
                place.p("root/srv").display()
            ),
            "creating /srv",
            "[$.storage.filesystems.0]",
        ],
    );
    assert_line(
        out,
        &[
            &format!(
                "mount {} (ext4) at {}",
                part(&b, 1),
                place.p("root/var").display()
            ),
            "[$.storage.filesystems.2]",
        ],
    );
    assert_line(
        out,
        &[
            "the files stage checks entries below",
            "/var against the directory as it is now",
        ],
    );
    // The summary at the top: every destructive operation, once.
    let top = out.split("\n\nconfig\n").next().unwrap();
    assert!(
        top.contains("DESTRUCTIVE: 6 operations destroy data:"),
        "{top}"
    );
    for needle in [
        "DELETE partition 3",
        "WIPE the partition table",
        "DELETE partition 1 \"first\"",
        "DELETE partition 2 \"second\"",
        "WIPES vfat",
        "WIPES ext4",
    ] {
        assert!(top.contains(needle), "{needle} in {top}");
    }
    assert!(!top.contains("keep partition"), "{top}");

    // A plan that cannot be carried out: partition 5 does not fit; still nothing written.
    let mut bad = config.clone();
    bad["storage"]["disks"][0]["partitions"][3]["sizeMiB"] = 100.into();
    let o = place.plan(&bad, &[]);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("The disks stage would fail: "),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.starts_with("ember: the disks stage would fail: "),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("config:    $.storage.disks.0.partitions.3 in the config config.ign"),
        "{}",
        o.stderr
    );
    assert_eq!(device_hash(a.path()), ha);
    assert_eq!(device_hash(b.path()), hb);
}
