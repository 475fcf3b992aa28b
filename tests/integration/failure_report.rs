//! Snapshot tests of the failure report: typical failures, run the way they happen at boot
//! (the `ignition` command line as the dracut units call it), and the text on standard error
//! compared with `tests/integration/snapshots/<name>.txt` after the temporary directory, the
//! server's port, loop device names and durations are replaced by placeholders.
//! `EMBER_UPDATE_SNAPSHOTS=1` rewrites the snapshots instead.

use std::path::Path;

use crate::harness::{self, respond, sha512_hash, HttpServer, Out, TempDir};

// ---------------------------------------------------------------------------------------------
// The snapshot helper

/// Set to 1 to rewrite the snapshots from the current output.
pub const UPDATE_ENV: &str = "EMBER_UPDATE_SNAPSHOTS";

/// Compares `actual` with the checked-in snapshot `name`; on a difference, fails with a line
/// diff and how to update. With `EMBER_UPDATE_SNAPSHOTS=1` the snapshot is (re)written instead.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os(UPDATE_ENV).is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(e) => e,
        Err(_) => panic!(
            "no snapshot {}; the output was:\n{actual}\nrun with {UPDATE_ENV}=1 to create it",
            path.display()
        ),
    };
    if expected != actual {
        panic!(
            "the output differs from the snapshot {} (- snapshot, + output):\n{}\n\
             if the new output is right, run the test with {UPDATE_ENV}=1 and commit the file",
            path.display(),
            diff(&expected, actual)
        );
    }
}

/// A line diff (longest common subsequence), ` `/`-`/`+` prefixed.
fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[test]
fn the_diff_shows_changed_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
    assert_eq!(diff("", "n\n"), "+ n\n");
}

// ---------------------------------------------------------------------------------------------
// A machine to fail on

/// The harness's scratch machine, with a 2 s device timeout and the failure checks.
struct Machine(harness::Machine);

impl std::ops::Deref for Machine {
    type Target = harness::Machine;
    fn deref(&self) -> &harness::Machine {
        &self.0
    }
}

impl Machine {
    fn new(tag: &str) -> Machine {
        Machine(harness::Machine::new(
            &format!("report-{tag}"),
            "root=/dev/vda4 quiet\n",
        ))
    }

    /// `ignition` as the dracut units call it.
    fn ignition(&self, stage: &str) -> Out {
        let mut c = self.ignition_command(stage);
        c.env("EMBER_DEVICE_TIMEOUT", "2");
        self.run(c)
    }

    /// The stages up to (not including) `last`, each passing, then `last`, which must fail:
    /// its report, normalised.
    fn fail_at(&self, before: &[&str], last: &str, server: Option<&HttpServer>) -> String {
        for s in before {
            let o = self.ignition(s);
            assert_eq!(o.code, 0, "{s}: {}{}", o.stdout, o.stderr);
        }
        let o = self.ignition(last);
        assert_eq!(o.code, 1, "{last}: {}{}", o.stdout, o.stderr);
        // The status file carries the same error.
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.p("run/ember/status.json")).unwrap())
                .unwrap();
        let e = &status["stages"].as_array().unwrap().last().unwrap()["error"];
        assert!(
            o.stderr.contains(e["rootCause"].as_str().unwrap()),
            "{status}\n{}",
            o.stderr
        );
        self.normalise(&o.stderr, server)
    }

    fn normalise(&self, text: &str, server: Option<&HttpServer>) -> String {
        let mut t = text.replace(&self.dir().display().to_string(), "<tmp>");
        if let Some(s) = server {
            t = t.replace(&s.addr.to_string(), "127.0.0.1:<port>");
        }
        durations(&t)
    }
}

/// Replaces every duration (`2s`, `1.5s`, `250ms`, `3m0s`, `1.2µs`) standing alone with
/// `<duration>`.
pub fn durations(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let boundary = |c: Option<&char>| c.is_none_or(|c| !c.is_alphanumeric() && *c != '.');
    let end = |c: Option<&char>| c.is_none_or(|c| !c.is_alphanumeric());
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || boundary(b.get(i - 1))) {
            // Number-unit pairs, one after the other (3m0s).
            let mut j = i;
            let mut pairs = 0;
            loop {
                let mut k = j;
                while k < b.len() && (b[k].is_ascii_digit() || b[k] == '.') {
                    k += 1;
                }
                if k == j {
                    break;
                }
                let unit = ["ms", "µs", "us", "ns", "h", "m", "s"]
                    .iter()
                    .find(|u| {
                        let u: Vec<char> = u.chars().collect();
                        b.get(k..k + u.len()) == Some(&u[..])
                    })
                    .map(|u| u.chars().count());
                let Some(n) = unit else { break };
                j = k + n;
                pairs += 1;
            }
            // Or one number, a space and a unit ("2 s", "0.200 s", as the disks stage says).
            if pairs == 0 {
                let mut k = j;
                while k < b.len() && (b[k].is_ascii_digit() || b[k] == '.') {
                    k += 1;
                }
                if b.get(k) == Some(&' ') && matches!(b.get(k + 1), Some('s')) && end(b.get(k + 2))
                {
                    out.push_str("<duration>");
                    i = k + 2;
                    continue;
                }
            }
            if pairs > 0 && end(b.get(j)) {
                out.push_str("<duration>");
                i = j;
                continue;
            }
            while i < b.len() && b[i].is_alphanumeric() {
                out.push(b[i]);
                i += 1;
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[test]
fn durations_are_normalised() {
    assert_eq!(
        durations("within 2s, 1.5s or 250ms; 3m0s (Duration 5s) 10 MiB 32.0 MiB sha512-ab5s x2s 2 s."),
        "within <duration>, <duration> or <duration>; <duration> (Duration <duration>) 10 MiB 32.0 MiB sha512-ab5s x2s <duration>."
    );
    assert_eq!(
        durations("partition 2 of 3 sectors 43008-83967"),
        "partition 2 of 3 sectors 43008-83967"
    );
}

// ---------------------------------------------------------------------------------------------
// The reports

#[test]
fn report_hash_mismatch_of_a_remote_file() {
    let server = HttpServer::start(|_, c| respond(c, 200, &[], b"the real motd\n"));
    let m = Machine::new("hash");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "mode": 420, "contents": {
            "source": server.url("/motd?token=SECRET-TOKEN"),
            "verification": {"hash": sha512_hash(b"another motd\n")}}}]}
    }));
    let r = m.fail_at(
        &["fetch-offline", "fetch", "kargs", "disks", "mount"],
        "files",
        Some(&server),
    );
    assert!(!r.contains("SECRET-TOKEN"), "{r}");
    assert_snapshot("hash_mismatch_of_a_remote_file", &r);
}

#[test]
fn report_missing_user_for_a_file_owner() {
    let m = Machine::new("owner");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/app.conf", "user": {"name": "app"},
                               "contents": {"source": "data:,x"}}]}
    }));
    let r = m.fail_at(&["fetch-offline", "kargs", "disks", "mount"], "files", None);
    assert_snapshot("missing_user_for_a_file_owner", &r);
}

#[test]
fn report_invalid_config_after_merge() {
    // Each config is valid alone; merged, the filesystem is xfs with a label too long for it.
    let child = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"filesystems": [{"device": "/dev/vdb1", "format": "xfs"}]}
    })
    .to_string();
    let server = HttpServer::start(move |_, c| respond(c, 200, &[], child.as_bytes()));
    let m = Machine::new("merge");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0", "config": {"merge": [{"source": server.url("/child.ign")}]}},
        "storage": {"filesystems": [{"device": "/dev/vdb1", "format": "btrfs", "label": "a-label-of-20-chars"}]}
    }));
    let o = m.ignition("fetch-offline");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(m.p("run/ignition/neednet").exists());
    let r = m.fail_at(&[], "fetch", Some(&server));
    assert_snapshot("invalid_config_after_merge", &r);
}

#[test]
fn report_syntax_error_in_a_referenced_config() {
    // The syntax error has no JSON path: the report points at the reference in the user
    // config, names the child in the operation and gives the line and column in the child.
    let server = HttpServer::start(|_, c| {
        respond(
            c,
            200,
            &[],
            b"{\"ignition\": {\"version\": \"3.4.0\"},\n \"storage\": }\n",
        )
    });
    let m = Machine::new("childsyntax");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0", "config": {"merge": [{"source": server.url("/child.ign")}]}}
    }));
    let o = m.ignition("fetch-offline");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let r = m.fail_at(&[], "fetch", Some(&server));
    assert!(
        r.contains("operation: parsing the config http://127.0.0.1:<port>/child.ign referenced at $.ignition.config.merge.0"),
        "{r}"
    );
    assert!(
        r.contains(
            "config:    $.ignition.config.merge.0 in the user config from the file platform"
        ),
        "{r}"
    );
    assert!(!r.contains("in the referenced config"), "{r}");
    assert!(r.contains("line 2"), "{r}");
    assert_snapshot("invalid_referenced_config_syntax", &r);
}

#[test]
fn report_fetch_timeout() {
    // A server that accepts and never answers; the config gives every fetch one second.
    let server = HttpServer::start(|_, _| std::thread::sleep(std::time::Duration::from_secs(20)));
    let m = Machine::new("timeout");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0", "timeouts": {"httpTotal": 1},
                     "config": {"merge": [{"source": server.url("/slow.ign?sig=SECRET-SIG")}]}}
    }));
    let o = m.ignition("fetch-offline");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let r = m.fail_at(&[], "fetch", Some(&server));
    assert!(!r.contains("SECRET-SIG"), "{r}");
    assert_snapshot("fetch_timeout", &r);
}

#[test]
fn report_partition_does_not_fit() {
    crate::harness::require_root();
    use ember::system::loopdev::ScratchDisk;
    let disk = ScratchDisk::new(32).unwrap();
    let m = Machine::new("fit");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"disks": [{"device": disk.path(), "wipeTable": true, "partitions": [
            {"number": 1, "label": "a", "sizeMiB": 20},
            {"number": 2, "label": "b", "sizeMiB": 20}]}]}
    }));
    let before = crate::plan::device_hash(disk.path());
    let r = m.fail_at(&["fetch-offline", "kargs"], "disks", None);
    assert_eq!(
        crate::plan::device_hash(disk.path()),
        before,
        "the disk was written"
    );
    let r = r.replace(&disk.path().display().to_string(), "/dev/loopN");
    assert_snapshot("partition_does_not_fit", &r);
}

#[test]
fn report_unknown_platform() {
    // The `ignition` command line refuses an unknown platform as a usage error; Ember as PID 1
    // takes the platform from the kernel command line, and the engine reports it.
    use ember::stages::engine;
    use ember::stages::{Mode, Settings, Stage};
    let m = Machine::new("platform");
    let mut o = engine::Options::new(Stage::Fetch, Settings::new("nonesuch", Mode::Boot));
    o.root = m.p("root");
    o.config_cache = m.p("run/ignition.json");
    o.state_file = m.p("run/ignition/state");
    o.neednet = m.p("run/ignition/neednet");
    o.status_file = None;
    o.cmdline.cmdline_path = m.p("cmdline");
    o.dirs = ember::providers::system::SystemDirs {
        runtime: m.p("sys/run"),
        local: m.p("sys/etc"),
        system: m.p("sys/usr"),
    };
    let e = engine::run(&o).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    let r = e
        .to_report()
        .render(Some("a shell on the console; exit it to reboot"));
    assert_snapshot("unknown_platform", &m.normalise(&r, None));
}

#[test]
fn console_output_for_pid1() {
    let dir = TempDir::new("console");
    let kmsg = dir.path().join("kmsg");
    std::fs::write(&kmsg, "").unwrap();
    let f = ember::stages::Failure::new("mounting the root filesystem")
        .caused_by(std::io::Error::from_raw_os_error(libc::ENOENT));
    let text =
        ember::stages::report::Report::from_failure("boot", &f).render(Some("rebooting in 300 s"));
    ember::stages::report::write_console_at(&dir.path().join("none"), &kmsg, &text).unwrap();
    assert_eq!(
        std::fs::read_to_string(&kmsg).unwrap(),
        "<2>ember: the boot stage failed: No such file or directory (os error 2)\n\
         <2>ember:   operation: mounting the root filesystem\n\
         <2>ember:   next:      rebooting in 300 s\n"
    );
}

#[test]
fn report_http_404_for_the_config() {
    // The config named on the kernel command line is not on the server: nothing can be
    // provisioned, and the report says which URL (without its token) and what to check.
    let server = HttpServer::start(|_, c| respond(c, 404, &[], b"not here"));
    let m = Machine::new("404");
    std::fs::write(
        m.p("cmdline"),
        format!(
            "root=/dev/vda4 ignition.config.url={}\n",
            server.url("/machines/m1.ign?token=SECRET-TOKEN")
        ),
    )
    .unwrap();
    let o = m.ignition("fetch-offline");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(m.p("run/ignition/neednet").exists());
    let r = m.fail_at(&[], "fetch", Some(&server));
    assert!(!r.contains("SECRET-TOKEN"), "{r}");
    assert_snapshot("http_404_for_the_config", &r);
}

#[test]
fn report_disk_device_that_does_not_exist() {
    let m = Machine::new("nodisk");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"disks": [{"device": "/dev/disk/by-id/virtio-does-not-exist", "wipeTable": true,
            "partitions": [{"number": 1, "label": "root"}]}]}
    }));
    let r = m.fail_at(&["fetch-offline", "kargs"], "disks", None);
    assert_snapshot("disk_device_that_does_not_exist", &r);
}

#[test]
fn report_file_path_that_is_a_directory_already() {
    let m = Machine::new("isdir");
    std::fs::create_dir_all(m.p("root/etc/app.conf/conf.d")).unwrap();
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/app.conf", "mode": 420,
                               "contents": {"source": "data:,SECRET-CONTENTS"}}]}
    }));
    let r = m.fail_at(&["fetch-offline", "kargs", "disks", "mount"], "files", None);
    assert!(!r.contains("SECRET-CONTENTS"), "{r}");
    assert_snapshot("file_path_that_is_a_directory_already", &r);
}

#[test]
fn report_invalid_config() {
    // A syntax error: the line and column, no part of the config.
    let m = Machine::new("syntax");
    std::fs::write(
        m.p("config.ign"),
        "{\"ignition\": {\"version\": \"3.4.0\"},\n \"passwd\": {\"users\": [{\"name\": \"core\", \"passwordHash\": \"SECRET-HASH\"}]\n",
    )
    .unwrap();
    let r = m.fail_at(&[], "fetch-offline", None);
    assert!(!r.contains("SECRET-HASH"), "{r}");
    assert_snapshot("invalid_config_syntax", &r);

    // A value the spec does not allow: its JSON path and a hint.
    let m = Machine::new("invalid");
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "etc/motd", "contents": {"source": "data:,SECRET-CONTENTS"}}]}
    }));
    let r = m.fail_at(&[], "fetch-offline", None);
    assert!(!r.contains("SECRET-CONTENTS"), "{r}");
    assert_snapshot("invalid_config_value", &r);
}
