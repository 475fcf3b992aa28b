//! The stage runner through its command lines, as real processes: `ignition` invoked exactly as
//! the dracut units invoke it, `ember stage` / `run` / `apply`, and `ignition-apply`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, ember_bin, respond, sha512_hash, HttpServer, Out as Run};

const SECRET_HASH: &str = "$6$rounds=5000$EMBERSECRETHASHxyz$abcdefghijklmnop";
const SECRET_PAYLOAD: &str = "EMBER-SECRET-PAYLOAD-4242";

/// The harness's scratch machine, recording everything every process printed.
struct Machine {
    m: harness::Machine,
    /// Everything every process printed, to search for secrets.
    transcript: std::cell::RefCell<String>,
}

impl std::ops::Deref for Machine {
    type Target = harness::Machine;
    fn deref(&self) -> &harness::Machine {
        &self.m
    }
}

impl Machine {
    fn new(tag: &str) -> Machine {
        Machine {
            m: harness::Machine::new(
                &format!("runner-{tag}"),
                "BOOT_IMAGE=/vmlinuz root=/dev/vda4 quiet\n",
            ),
            transcript: Default::default(),
        }
    }

    fn config(&self, json: &str) {
        self.config_text(json);
    }

    fn run(&self, c: Command) -> Run {
        let r = self.m.run(c);
        self.transcript.borrow_mut().push_str(&r.all());
        r
    }

    /// `ignition` exactly as the dracut units call it (plus the test's file locations).
    fn ignition_with(&self, stage: &str, envs: &[(&str, &str)]) -> Run {
        let mut c = self.ignition_command(stage);
        for (k, v) in envs {
            c.env(k, v);
        }
        self.run(c)
    }

    fn ignition(&self, stage: &str) -> Run {
        self.ignition_with(stage, &[])
    }

    fn ignition_args(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut c = self.command(&self.p("bin/ignition"));
        c.args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        self.run(c)
    }

    fn ember(&self, args: &[&str]) -> Run {
        let mut c = self.command(&ember_bin());
        c.args(args);
        self.run(c)
    }

    fn cache(&self) -> Option<String> {
        std::fs::read_to_string(self.p("run/ignition.json")).ok()
    }

    fn cache_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.cache().expect("the cache exists")).unwrap()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.p("run/ignition/state")).unwrap())
            .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.p("run/ember/status.json")).unwrap())
            .unwrap()
    }

    fn neednet(&self) -> bool {
        self.p("run/ignition/neednet").exists()
    }

    fn reset_run(&self) {
        let _ = std::fs::remove_dir_all(self.p("run"));
    }

    /// A helper script that records its arguments, one per line.
    fn kargs_helper(&self, exit_code: i32) -> PathBuf {
        let script = self.p("kargs-helper");
        let out = self.p("kargs-args");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'helper says no' >&2\nexit {exit_code}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn kargs_args(&self) -> Vec<String> {
        std::fs::read_to_string(self.p("kargs-args"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn assert_no_secrets(&self) {
        let t = self.transcript.borrow();
        assert!(!t.is_empty());
        for secret in [SECRET_HASH, "EMBERSECRETHASH", SECRET_PAYLOAD] {
            assert!(
                !t.contains(secret),
                "output shows a secret ({secret}):\n{t}"
            );
        }
    }
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

fn kargs_config(exist: &[&str], not_exist: &[&str]) -> String {
    serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "kernelArguments": {"shouldExist": exist, "shouldNotExist": not_exist}
    })
    .to_string()
}

fn secret_config() -> String {
    serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "core", "passwordHash": SECRET_HASH,
                               "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaEMBERKEY core@host"]}]},
        "storage": {
            "files": [{"path": "/etc/motd", "mode": 420,
                       "contents": {"source": format!("data:,{SECRET_PAYLOAD}")}}],
            "directories": [{"path": "/var/lib/app", "mode": 448}],
            "links": [{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"}]
        },
        "systemd": {"units": [{"name": "app.service", "enabled": true,
                               "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}
    })
    .to_string()
}

#[test]
fn every_stage_as_the_dracut_units_run_it() {
    let m = Machine::new("seq");
    m.config(&secret_config());

    let r = m.ignition("fetch-offline");
    ok(&r);
    assert!(
        r.stdout.contains("INFO     : Stage: fetch-offline"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Ignition finished successfully"));
    assert!(
        !m.neednet(),
        "a config with only data: URLs needs no network"
    );
    // The cache: Ignition's layout, the internal version, mode 0600.
    let meta = std::fs::metadata(m.p("run/ignition.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let cache = m.cache_json();
    assert_eq!(cache["ignition"]["version"], "3.7.0-experimental");
    assert_eq!(cache["storage"]["files"][0]["path"], "/etc/motd");
    assert_eq!(cache["passwd"]["users"][0]["passwordHash"], SECRET_HASH);
    assert!(m
        .cache()
        .unwrap()
        .starts_with(r#"{"ignition":{"config":{"replace":{"verification":{}}},"proxy":{},"security":{"tls":{}},"timeouts":{},"version":"3.7.0-experimental"},"kernelArguments":{},"passwd":{"#));
    let state_meta = std::fs::metadata(m.p("run/ignition/state")).unwrap();
    assert_eq!(state_meta.permissions().mode() & 0o777, 0o600);

    // fetch re-fetches (the provider's config changed in between) and rewrites the cache.
    m.config(&secret_config().replace("/etc/motd", "/etc/motd2"));
    ok(&m.ignition("fetch"));
    assert_eq!(m.cache_json()["storage"]["files"][0]["path"], "/etc/motd2");

    for stage in ["kargs", "disks", "mount", "files", "umount"] {
        let r = m.ignition(stage);
        ok(&r);
        assert!(
            r.stdout
                .contains(&format!("INFO     : {stage}: {stage} passed")),
            "{}",
            r.stdout
        );
    }
    // The tree the files stage wrote.
    let root = m.p("root");
    let motd = root.join("etc/motd2");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), SECRET_PAYLOAD);
    assert_eq!(
        std::fs::metadata(&motd).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    let app = std::fs::metadata(root.join("var/lib/app")).unwrap();
    assert!(app.is_dir());
    assert_eq!(app.permissions().mode() & 0o7777, 0o700);
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert!(
        std::fs::read_to_string(root.join("etc/systemd/system/app.service"))
            .unwrap()
            .contains("ExecStart=/bin/true")
    );
    assert!(
        std::fs::read_to_string(root.join("etc/systemd/system-preset/20-ignition.preset"))
            .unwrap()
            .contains("enable app.service")
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("core:x:")), "{passwd}");
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    assert!(shadow.contains(&format!("core:{SECRET_HASH}:")), "{shadow}");
    assert!(
        std::fs::read_to_string(root.join("home/core/.ssh/authorized_keys.d/ignition"))
            .unwrap()
            .contains("AAAAC3NzaEMBERKEY")
    );
    assert!(root.join("etc/.ignition-result.json").exists());
    // The state: the user config from the file provider, one base entry per stage.
    let state = m.state();
    let fetched = state["fetchedConfigs"].as_array().unwrap();
    assert_eq!(
        fetched[0],
        serde_json::json!({"kind": "user", "source": "file", "referenced": false})
    );
    let bases = fetched
        .iter()
        .filter(|e| {
            **e == serde_json::json!({"kind": "base", "source": "system", "referenced": false})
        })
        .count();
    assert_eq!(bases, 7);
    assert!(state["luksPersistKeyFiles"].is_object());
    // Ember's status file: one entry per stage run.
    let status = m.status();
    let runs = status["stages"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r["stage"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "fetch-offline",
            "fetch",
            "kargs",
            "disks",
            "mount",
            "files",
            "umount"
        ]
    );
    assert!(runs
        .iter()
        .all(|r| r["result"] == "passed" && r["error"].is_null()));
    let state_text = std::fs::read_to_string(m.p("run/ignition/state")).unwrap();
    assert!(!state_text.contains(SECRET_PAYLOAD));
    m.assert_no_secrets();
}

#[test]
fn no_config_anywhere_is_an_empty_config() {
    let m = Machine::new("empty");
    m.config("");
    ok(&m.ignition("fetch-offline"));
    assert_eq!(
        m.cache().unwrap(),
        r#"{"ignition":{"config":{"replace":{"verification":{}}},"proxy":{},"security":{"tls":{}},"timeouts":{},"version":"3.7.0-experimental"},"kernelArguments":{},"passwd":{},"storage":{},"systemd":{}}"#
    );
    ok(&m.ignition("files"));
    // metal has no source of its own.
    let mut c = m.command(&m.p("bin/ignition"));
    c.args([
        "-platform",
        "metal",
        "-stage",
        "fetch-offline",
        "-config-cache",
        m.p("run/metal.json").to_str().unwrap(),
        "-state-file",
        m.p("run/state2").to_str().unwrap(),
        "-log-to-stdout",
    ]);
    ok(&m.run(c));
    assert!(std::fs::read_to_string(m.p("run/metal.json"))
        .unwrap()
        .contains("3.7.0-experimental"));
}

#[test]
fn neednet_from_fetch_offline() {
    let server = HttpServer::start(|req, conn| {
        let body = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "kernelArguments": {"shouldExist": [req.path()]}
        })
        .to_string();
        respond(conn, 200, &[], body.as_bytes());
    });

    // A resource needs the network, the config itself does not: neednet and a cache.
    let m = Machine::new("neednet1");
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/a", "contents": {"source": server.url("/file")}}]}
        })
        .to_string(),
    );
    let r = m.ignition("fetch-offline");
    ok(&r);
    assert!(m.neednet());
    assert!(
        r.stdout
            .contains("$.storage.files.0.contents needs the network"),
        "{}",
        r.stdout
    );
    assert!(
        m.cache().is_some(),
        "the config was obtained offline: it is cached"
    );
    assert!(
        server.requests().is_empty(),
        "fetch-offline must not touch the network"
    );

    // The config itself is remote (kernel command line): neednet, no cache; fetch gets it.
    let m = Machine::new("neednet2");
    m.cmdline(&format!(
        "quiet ignition.config.url={}",
        server.url("/user.ign")
    ));
    ok(&m.ignition("fetch-offline"));
    assert!(m.neednet());
    assert!(m.cache().is_none());
    assert!(server.requests().is_empty());
    assert_eq!(m.status()["stages"][0]["result"], "neednet");
    ok(&m.ignition("fetch"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "/user.ign"
    );
    let state = m.state();
    let user: Vec<&serde_json::Value> = state["fetchedConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "user")
        .collect();
    assert_eq!(user.len(), 1, "{state}");
    assert_eq!(user[0]["source"], "cmdline");

    // A merged config is remote: neednet, no cache.
    let m = Machine::new("neednet3");
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [{"source": server.url("/m.ign")}]}}
        })
        .to_string(),
    );
    ok(&m.ignition("fetch-offline"));
    assert!(m.neednet());
    assert!(m.cache().is_none());
    // A tang server without advertisement needs the network too.
    let m = Machine::new("neednet4");
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.5.0"},
            "storage": {"luks": [{"name": "root", "device": "/dev/vda4",
                                  "clevis": {"tang": [{"url": "http://tang.example", "thumbprint": "abc"}]}}]}
        })
        .to_string(),
    );
    ok(&m.ignition("fetch-offline"));
    assert!(m.neednet());
}

#[test]
fn base_configs_precedence_merge_order_and_user_override() {
    let m = Machine::new("base");
    let k = |v: &[&str]| kargs_config(v, &[]);
    m.put("sys/usr/base.d/10-a.ign", &k(&["from-usr-a"]));
    m.put("sys/etc/base.d/10-a.ign", &k(&["from-etc-a"])); // hides usr's 10-a
    m.put("sys/run/base.d/20-b.ign", &k(&["from-run-b"]));
    m.put("sys/usr/base.d/05-first.ign", &k(&["from-usr-first"]));
    m.put("sys/usr/base.d/15-broken.ign", "{ not json");
    m.put(
        "sys/etc/base.platform.d/file/00-p.ign",
        &k(&["from-platform"]),
    );
    m.put("sys/run/base.platform.d/qemu/00-q.ign", &k(&["from-qemu"]));
    // The base config is not rendered: this merge would need the network and is ignored.
    m.put(
        "sys/run/base.d/30-merge.ign",
        r#"{"ignition":{"version":"3.4.0","config":{"merge":[{"source":"http://127.0.0.1:9/x"}]}}}"#,
    );
    // The user drops one base argument and adds its own.
    m.config(&kargs_config(&["from-user"], &["from-run-b"]));
    let helper = m.kargs_helper(0);
    let envs = [("EMBER_KARGS_HELPER", helper.to_str().unwrap())];

    let r = m.ignition_with("fetch-offline", &envs);
    ok(&r);
    assert!(!m.neednet());
    assert!(
        r.stdout.contains("WARNING  : ignoring base config"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("15-broken.ign"), "{}", r.stdout);
    // The cache holds the user config only (the base is merged again in every stage).
    let cache = m.cache().unwrap();
    assert!(!cache.contains("from-etc-a"), "{cache}");

    ok(&m.ignition_with("kargs", &envs));
    assert_eq!(
        m.kargs_args(),
        [
            "--should-exist",
            "from-usr-first",
            "--should-exist",
            "from-etc-a",
            "--should-exist",
            "from-platform",
            "--should-exist",
            "from-user",
            "--should-not-exist",
            "from-run-b"
        ]
    );
}

#[test]
fn config_source_precedence() {
    let m = Machine::new("sources");
    m.config(&kargs_config(&["provider"], &[]));
    ok(&m.ignition("fetch-offline"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "provider"
    );

    // user.ign beats the provider; the runtime dir beats the others.
    m.put("sys/usr/user.ign", &kargs_config(&["usr-user-ign"], &[]));
    ok(&m.ignition("fetch"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "usr-user-ign"
    );
    m.put("sys/etc/user.ign", &kargs_config(&["etc-user-ign"], &[]));
    ok(&m.ignition("fetch"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "etc-user-ign"
    );
    assert_eq!(
        m.state()["fetchedConfigs"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["kind"],
        "base"
    );

    // The kernel command line beats everything; the last occurrence wins.
    let url = |v: &str| data_url(&kargs_config(&[v], &[]));
    m.cmdline(&format!(
        "quiet ignition.config.url={} root=/dev/vda ignition.config.url={}",
        url("first"),
        url("cmdline-last")
    ));
    ok(&m.ignition("fetch"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "cmdline-last"
    );

    // A device without a path is an error.
    m.cmdline("ignition.config.device=CONFIG");
    let r = m.ignition("fetch-offline");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("ignition.config.device is set but ignition.config.path is not"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_from_a_labelled_device_on_the_command_line() {
    crate::harness::require_root();
    use ember::system::loopdev::ScratchDisk;
    let m = Machine::new("device");
    let label = format!("EMB{}", std::process::id() % 100_000);
    m.put(
        "fsroot/boot/config.ign",
        &kargs_config(&["from-device"], &[]),
    );
    let disk = ScratchDisk::new(16).unwrap();
    crate::harness::tool(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            &label,
            "-d",
            m.p("fsroot").to_str().unwrap(),
            disk.path().to_str().unwrap(),
        ],
    );
    m.cmdline(&format!(
        "ignition.config.device={label} ignition.config.path=/boot/../boot/config.ign"
    ));
    let r = m.ignition("fetch-offline");
    ok(&r);
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"][0],
        "from-device"
    );
    // Unmounted again.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&disk.path().display().to_string()),
        "{mounts}"
    );
    // A path that is not there is an error.
    m.cmdline(&format!(
        "ignition.config.device={label} ignition.config.path=/nope.ign"
    ));
    let r = m.ignition("fetch-offline");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("/nope.ign"), "{}", r.stderr);
}

fn data_url(json: &str) -> String {
    format!(
        "data:;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json)
    )
}

#[test]
fn rendering_stops_at_a_bounded_number_of_referenced_configs() {
    // 40 merges of 30 merges each: 1,240 referenced configs, more than Ember fetches. A
    // media-type parameter keeps the sources distinct.
    let url = |tag: &str, json: &str| {
        format!(
            "data:text/plain;t={tag};base64,{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json)
        )
    };
    let leaf = r#"{"ignition":{"version":"3.4.0"}}"#;
    let inner = |n: usize| {
        serde_json::json!({"ignition": {"version": "3.4.0", "config": {"merge":
            (0..30).map(|i| serde_json::json!({"source": url(&format!("{n}x{i}"), leaf)})).collect::<Vec<_>>()
        }}})
        .to_string()
    };
    let top = serde_json::json!({"ignition": {"version": "3.4.0", "config": {"merge":
        (0..40).map(|n| serde_json::json!({"source": url(&n.to_string(), &inner(n))})).collect::<Vec<_>>()
    }}})
    .to_string();
    let m = Machine::new("refcap");
    m.config(&top);
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("reference more than 1000 configs"),
        "{}",
        r.all()
    );
}

#[test]
fn the_reference_bound_counts_only_this_renders_references() {
    // fetch-offline fetches the 600 data: merges, records them in the state and stops at the
    // http one; fetch renders all 601 again. The state's 600 entries from fetch-offline are not
    // references of this render: the bound of 1000 is not reached.
    let server = HttpServer::start(|req, conn| {
        match req.path() {
        "/last.ign" => respond(
            conn,
            200,
            &[],
            br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/from-http","mode":420}]}}"#,
        ),
        _ => respond(conn, 404, &[], b""),
    }
    });
    // A media-type parameter keeps the sources distinct.
    let leaf = data_url(r#"{"ignition":{"version":"3.4.0"}}"#);
    let mut merge: Vec<serde_json::Value> = (0..600)
        .map(|i| {
            serde_json::json!({"source": leaf.replacen("data:", &format!("data:text/plain;t={i}"), 1)})
        })
        .collect();
    merge.push(serde_json::json!({"source": server.url("/last.ign")}));
    let m = Machine::new("refcount");
    m.config(
        &serde_json::json!({"ignition": {"version": "3.4.0", "config": {"merge": merge}}})
            .to_string(),
    );
    ok(&m.ignition("fetch-offline"));
    assert!(m.p("run/ignition/neednet").exists());
    ok(&m.ignition("fetch"));
    assert!(m.cache().unwrap().contains("/etc/from-http"));
}

#[test]
fn render_merge_and_replace() {
    let remote = kargs_config(&["from-http"], &[]);
    let remote_bytes = remote.clone();
    let server = HttpServer::start(move |req, conn| {
        match req.path() {
        "/merge.ign" => respond(conn, 200, &[], remote_bytes.as_bytes()),
        "/old.ign" => respond(
            conn,
            200,
            &[],
            br#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/from-3.0","mode":420}]}}"#,
        ),
        _ => respond(conn, 404, &[], b""),
    }
    });
    let m = Machine::new("render");
    let nested = serde_json::json!({
        "ignition": {"version": "3.3.0", "config": {"merge": [{"source": server.url("/old.ign")}]}},
        "kernelArguments": {"shouldExist": ["from-data"]}
    })
    .to_string();
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [
                {"source": data_url(&nested)},
                {"source": server.url("/merge.ign?token=SECRETQUERY"), "verification": {"hash": sha512_hash(remote.as_bytes())}}
            ]}},
            "kernelArguments": {"shouldExist": ["from-user"]}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    ok(&r);
    let cache = m.cache_json();
    assert_eq!(
        cache["kernelArguments"]["shouldExist"],
        serde_json::json!(["from-user", "from-data", "from-http"])
    );
    assert_eq!(cache["storage"]["files"][0]["path"], "/from-3.0");
    // Referenced configs are recorded with only their URL path.
    let fetched = m.state()["fetchedConfigs"].clone();
    let refs: Vec<String> = fetched
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["referenced"] == true)
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refs, ["", "/old.ign", "/merge.ign"]);
    assert!(!r.all().contains("SECRETQUERY"), "{}", r.all());

    // replace: the referenced config stands in for the user config.
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"replace": {"source": data_url(&kargs_config(&["replaced"], &[]))}}},
            "kernelArguments": {"shouldExist": ["lost"]}
        })
        .to_string(),
    );
    ok(&m.ignition("fetch"));
    assert_eq!(
        m.cache_json()["kernelArguments"]["shouldExist"],
        serde_json::json!(["replaced"])
    );

    // A hash mismatch fails the stage.
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [
                {"source": server.url("/merge.ign"), "verification": {"hash": sha512_hash(b"other")}}
            ]}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("hash verification failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("config:    $.ignition.config.merge.0"),
        "{}",
        r.stderr
    );

    // A referenced config that is not there fails too.
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"replace": {"source": server.url("/missing.ign")}}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("not found"), "{}", r.stderr);

    // A config that replaces itself stops with a clear error instead of looping.
    let server2 = HttpServer::start(|req, conn| {
        let body = format!(
            r#"{{"ignition":{{"version":"3.4.0","config":{{"replace":{{"source":"http://{}/loop.ign"}}}}}}}}"#,
            req.header("host").unwrap_or("")
        );
        respond(conn, 200, &[], body.as_bytes());
    });
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"replace": {"source": server2.url("/loop.ign")}}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("levels deep"), "{}", r.stderr);
}

#[test]
fn kargs_stage_and_its_helper() {
    let m = Machine::new("kargs");
    m.config(&kargs_config(
        &["console=ttyS0,115200n8", "quiet"],
        &["rhgb"],
    ));
    ok(&m.ignition("fetch-offline"));

    // No helper: a clear error naming the helper and what it must do.
    let r = m.ignition("kargs");
    assert_eq!(r.code, 1, "{}", r.all());
    let missing = m.p("no-kargs-helper").display().to_string();
    assert!(
        r.stderr.contains(&format!(
            "the kernel argument helper {missing} does not exist"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--should-exist"), "{}", r.stderr);
    assert!(
        r.stderr.contains("config:    $.kernelArguments"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("CRITICAL : kargs: op(1): [failed]"),
        "{}",
        r.stdout
    );
    let status = m.status();
    let last = status["stages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["stage"], "kargs");
    assert_eq!(last["result"], "failed");
    assert_eq!(last["error"]["path"], "$.kernelArguments");
    assert!(last["error"]["rootCause"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let op = &last["operations"][0];
    assert_eq!(op["number"], 1);
    assert!(op["description"]
        .as_str()
        .unwrap()
        .starts_with("updating kernel arguments"));
    assert!(
        op["error"].as_str().unwrap().contains("does not exist"),
        "{op}"
    );
    assert!(op["durationMs"].is_u64());

    let helper = m.kargs_helper(0);
    let envs = [("EMBER_KARGS_HELPER", helper.to_str().unwrap())];
    let r = m.ignition_with("kargs", &envs);
    ok(&r);
    assert_eq!(
        m.kargs_args(),
        [
            "--should-exist",
            "console=ttyS0,115200n8",
            "--should-exist",
            "quiet",
            "--should-not-exist",
            "rhgb"
        ]
    );
    assert!(
        r.stdout.contains("kargs: op(1): [finished]"),
        "{}",
        r.stdout
    );

    // A failing helper fails the stage, with its error output.
    let helper = m.kargs_helper(3);
    let r = m.ignition_with("kargs", &[("EMBER_KARGS_HELPER", helper.to_str().unwrap())]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("helper says no"), "{}", r.stderr);

    // Nothing to do: the helper is not run.
    m.config(&kargs_config(&[], &[]));
    ok(&m.ignition("fetch"));
    let _ = std::fs::remove_file(m.p("kargs-args"));
    let helper = m.kargs_helper(0);
    ok(&m.ignition_with("kargs", &[("EMBER_KARGS_HELPER", helper.to_str().unwrap())]));
    assert!(!m.p("kargs-args").exists());
}

#[test]
fn flag_errors_and_exit_codes() {
    let m = Machine::new("flags");
    let r = m.ignition_args(&[], &[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "'--platform' must be provided\n")
    );
    let r = m.ignition_args(&["-platform", "file"], &[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "'--stage' must be provided\n")
    );
    let r = m.ignition_args(&["-platform=nope", "-stage=files"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("invalid value \"nope\" for flag -platform: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Usage of ignition:"), "{}", r.stderr);
    let r = m.ignition_args(&["--platform", "file", "--stage", "nostage"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("invalid value \"nostage\" for flag -stage: "),
        "{}",
        r.stderr
    );
    let r = m.ignition_args(
        &["-platform=file", "-stage=files", "-fetch-timeout=soon"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("invalid value \"soon\" for flag -fetch-timeout: parse error\n"),
        "{}",
        r.stderr
    );
    let r = m.ignition_args(&["-bogus"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("flag provided but not defined: -bogus\n"),
        "{}",
        r.stderr
    );
    let r = m.ignition_args(&["-version"], &[]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "Ignition v2.27.0\n");
    let r = m.ignition_args(&["-h"], &[]);
    assert_eq!(r.code, 0);
    for flag in [
        "-config-cache",
        "-fetch-timeout duration",
        "-neednet",
        "-state-file",
        "-log-to-stdout",
    ] {
        assert!(r.stderr.contains(flag), "{flag}: {}", r.stderr);
    }
    let r = m.ignition_args(
        &["-platform=file", "-stage=files"],
        &[("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT", "yes")],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT must be true, 1, false or 0"),
        "{}",
        r.stderr
    );

    // A Go duration is accepted.
    m.config(&kargs_config(&[], &[]));
    let cache = m.p("c.json");
    let state = m.p("s");
    let r = m.ignition_args(
        &[
            "-platform=file",
            "-stage=fetch-offline",
            "-fetch-timeout=1m30s",
            &format!("-config-cache={}", cache.display()),
            &format!("-state-file={}", state.display()),
            "-log-to-stdout",
        ],
        &[("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT", "0")],
    );
    ok(&r);

    // Exit 3: a state file that cannot be loaded.
    std::fs::write(&state, "not json").unwrap();
    let r = m.ignition_args(
        &[
            "-platform=file",
            "-stage=files",
            &format!("-config-cache={}", cache.display()),
            &format!("-state-file={}", state.display()),
            "-log-to-stdout",
        ],
        &[],
    );
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("loading the state"), "{}", r.stderr);

    // Exit 1: an invalid user config; the report points at the entry, never at contents.
    m.config(&secret_config().replace("\"/etc/motd\"", "\"etc/motd\""));
    let r = m.ignition("fetch-offline");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("path not absolute"), "{}", r.stderr);
    assert!(
        r.stderr.contains("config:    $.storage.files.0.path"),
        "{}",
        r.stderr
    );
    assert!(m.cache().is_none());
    // A missing provider config file is a failure too (the file platform needs it).
    std::fs::remove_file(m.p("config.ign")).unwrap();
    let r = m.ignition("fetch-offline");
    assert_eq!(r.code, 1, "{}", r.all());
    // A stage before the cache exists.
    let r = m.ignition("disks");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("run that stage first"), "{}", r.stderr);
    m.assert_no_secrets();
}

#[test]
fn failure_reports_never_show_the_config() {
    let m = Machine::new("secrets");
    // Valid config, failing stage (kargs without helper) and an invalid one.
    let mut cfg: serde_json::Value = serde_json::from_str(&secret_config()).unwrap();
    cfg["kernelArguments"] = serde_json::json!({"shouldExist": ["x"]});
    m.config(&cfg.to_string());
    ok(&m.ignition("fetch-offline"));
    assert_eq!(m.ignition("kargs").code, 1);
    cfg["storage"]["files"][0]["path"] = "relative".into();
    m.config(&cfg.to_string());
    assert_eq!(m.ignition("fetch").code, 1);
    // Ember's own command lines too.
    let r = m.ember(&[
        "stage",
        "kargs",
        "--platform",
        "file",
        "--config-cache",
        m.p("run/ignition.json").to_str().unwrap(),
        "--state-file",
        m.p("run/ignition/state").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    m.assert_no_secrets();
}

#[test]
fn ember_stage_and_run() {
    let m = Machine::new("ember");
    m.config(&secret_config());
    let cache = m.p("run/ignition.json");
    let state = m.p("run/ignition/state");
    let neednet = m.p("run/ignition/neednet");
    let root = m.p("root");
    let files = [
        "--root",
        root.to_str().unwrap(),
        "--config-cache",
        cache.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
        "--neednet",
        neednet.to_str().unwrap(),
    ];
    let mut args = vec![
        "stage",
        "fetch-offline",
        "--platform",
        "file",
        "--fetch-timeout",
        "30s",
    ];
    args.extend(files);
    let r = m.ember(&args);
    ok(&r);
    assert!(
        r.stdout
            .contains("INFO     : fetch-offline: fetch-offline passed"),
        "{}",
        r.stdout
    );
    assert!(cache.exists());

    let r = m.ember(&["stage", "bogus", "--platform", "file"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown stage \"bogus\""), "{}", r.stderr);
    let r = m.ember(&["stage", "files"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--platform is required"), "{}", r.stderr);
    let r = m.ember(&[
        "stage",
        "files",
        "--platform",
        "file",
        "--fetch-timeout",
        "2 minutes",
    ]);
    assert_eq!(r.code, 2);
    let r = m.ember(&["stage", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Usage: ember stage NAME"));

    m.reset_run();
    let mut args = vec!["run", "--platform", "file"];
    args.extend(files);
    let r = m.ember(&args);
    ok(&r);
    for stage in [
        "fetch-offline",
        "kargs",
        "disks",
        "mount",
        "files",
        "umount",
    ] {
        assert!(
            r.stdout.contains(&format!("{stage}: {stage} passed")),
            "{stage}: {}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains("fetch: fetch passed"),
        "fetch runs only when needed"
    );
    let bases = m.state()["fetchedConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "base")
        .count();
    assert_eq!(bases, 6);
    assert_eq!(
        std::fs::read_to_string(m.p("root/etc/motd")).unwrap(),
        SECRET_PAYLOAD
    );
    assert!(m.p("root/etc/.ignition-result.json").exists());

    // With a remote config, run fetches it online after fetch-offline asks for the network.
    let server = HttpServer::start(|_, conn| {
        respond(conn, 200, &[], kargs_config(&[], &[]).as_bytes());
    });
    m.reset_run();
    m.cmdline(&format!("ignition.config.url={}", server.url("/c.ign")));
    let r = m.ember(&args);
    ok(&r);
    assert!(r.stdout.contains("fetch: fetch passed"), "{}", r.stdout);
    assert!(neednet.exists());
    assert_eq!(server.requests().len(), 1);

    // A failing stage stops the run with exit 1.
    m.cmdline("quiet");
    m.config(&kargs_config(&["x"], &[]));
    m.reset_run();
    let r = m.ember(&args);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("the kargs stage failed"), "{}", r.stderr);
    m.assert_no_secrets();
}

#[test]
fn ember_apply_and_ignition_apply() {
    let m = Machine::new("apply");
    let tree = m.p("tree");
    std::fs::create_dir_all(&tree).unwrap();
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [{"source": data_url(&kargs_config(&[], &[]))}]}},
            "storage": {"files": [{"path": "/etc/motd", "contents": {"source": format!("data:,{SECRET_PAYLOAD}")}}]}
        })
        .to_string(),
    );
    let cfg = m.p("config.ign");
    let r = m.ember(&[
        "apply",
        "--root",
        tree.to_str().unwrap(),
        cfg.to_str().unwrap(),
    ]);
    ok(&r);
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/motd")).unwrap(),
        SECRET_PAYLOAD
    );
    assert!(
        !tree.join("etc/.ignition-result.json").exists(),
        "no result file when applying"
    );

    // Disks, kernel arguments and users are refused, by name, unless ignored.
    let mut full: serde_json::Value = serde_json::from_str(&secret_config()).unwrap();
    full["storage"]["disks"] = serde_json::json!([{"device": "/dev/vdz", "wipeTable": true}]);
    full["kernelArguments"] = serde_json::json!({"shouldExist": ["quiet"]});
    m.config(&full.to_string());
    let tree = m.p("tree2");
    std::fs::create_dir_all(&tree).unwrap();
    let r = m.ember(&[
        "apply",
        "--root",
        tree.to_str().unwrap(),
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(
        std::fs::read_dir(&tree).unwrap().count(),
        0,
        "a refused config writes nothing"
    );
    for entry in [
        "$.storage.disks.0 (disk \"/dev/vdz\")",
        "$.kernelArguments",
        "$.passwd.users.0 (user \"core\")",
    ] {
        assert!(r.stderr.contains(entry), "{entry}: {}", r.stderr);
    }
    assert!(r.stderr.contains("--ignore-unsupported"), "{}", r.stderr);
    let r = m.ember(&[
        "apply",
        "--ignore-unsupported",
        "--root",
        tree.to_str().unwrap(),
        cfg.to_str().unwrap(),
    ]);
    ok(&r);
    assert!(
        r.stdout.contains("WARNING  : ignoring $.storage.disks.0"),
        "{}",
        r.stdout
    );
    // Files, directories, links and units are written; users are not.
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/motd")).unwrap(),
        SECRET_PAYLOAD
    );
    assert!(tree.join("etc/systemd/system/app.service").exists());
    assert!(!tree.join("etc/passwd").exists());
    assert!(!tree.join("home/core").exists());

    // --offline: a remote resource is an error.
    let tree = m.p("tree3");
    std::fs::create_dir_all(&tree).unwrap();
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/x", "contents": {"source": "http://127.0.0.1:9/x"}}]}
        })
        .to_string(),
    );
    let r = m.ember(&[
        "apply",
        "--offline",
        "--root",
        tree.to_str().unwrap(),
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("--offline"), "{}", r.stderr);

    // Usage errors.
    assert_eq!(m.ember(&["apply", cfg.to_str().unwrap()]).code, 2);
    assert_eq!(
        m.ember(&["apply", "--root", tree.to_str().unwrap()]).code,
        2
    );
    assert_eq!(
        m.ember(&[
            "apply",
            "--root",
            m.p("nope").to_str().unwrap(),
            cfg.to_str().unwrap()
        ])
        .code,
        2
    );

    // ignition-apply: pflag-style flags, only in a container.
    let tree = m.p("tree4");
    std::fs::create_dir_all(&tree).unwrap();
    m.config(&kargs_config(&[], &[]));
    let mut c = m.command(&m.p("bin/ignition-apply"));
    c.args(["--root", tree.to_str().unwrap(), cfg.to_str().unwrap()])
        .env("container", "podman");
    ok(&m.run(c));
    let in_container =
        Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists();
    if !in_container {
        let mut c = m.command(&m.p("bin/ignition-apply"));
        c.args(["--root", tree.to_str().unwrap(), cfg.to_str().unwrap()])
            .env_remove("container");
        let r = m.run(c);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("outside a container"), "{}", r.stderr);
    }
    m.assert_no_secrets();
}

#[test]
fn personalities_by_name() {
    let m = Machine::new("names");
    // Any other name is Ember's own command line.
    let other = m.p("bin/ember-renamed");
    std::os::unix::fs::symlink(ember_bin(), &other).unwrap();
    let r = m.run(m.command(&other));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ember stage NAME"), "{}", r.stderr);
    // ignition-rmcfg: only some platforms can delete their config.
    let rmcfg = |args: &[&str]| {
        let mut c = m.command(&m.p("bin/ignition-rmcfg"));
        c.args(args);
        m.run(c)
    };
    let r = rmcfg(&["-platform=file", "-log-to-stdout"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("cannot delete config on platform file"),
        "{}",
        r.stderr
    );
    let r = rmcfg(&[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "'--platform' must be provided\n")
    );
    assert_eq!(rmcfg(&["-platform=nope"]).code, 2);

    let r = m.ember(&["help"]);
    ok(&r);
    for cmd in ["ember stage", "ember run", "ember apply"] {
        assert!(r.stdout.contains(cmd), "{cmd}: {}", r.stdout);
    }
}

#[test]
fn logs_go_to_syslog_without_log_to_stdout() {
    crate::harness::require_root();
    let m = Machine::new("syslog");
    m.config(&secret_config());
    // A private /dev and /run in a mount namespace, whose /dev/log and journal socket are ours.
    let logs = crate::harness::LogSockets::new(m.dir());
    let mut c = logs.wrap(
        m.command(Path::new("unshare")),
        &m.p("olddev"),
        &m.p("bin/ignition"),
    );
    c.args([
        "-platform=file",
        "-stage=fetch-offline",
        &format!("-config-cache={}", m.p("run/ignition.json").display()),
        &format!("-state-file={}", m.p("run/ignition/state").display()),
        &format!("-neednet={}", m.p("run/ignition/neednet").display()),
    ]);
    let r = m.run(c);
    ok(&r);
    assert!(r.stdout.is_empty(), "logs went to stdout: {}", r.stdout);
    let records = logs.finish();
    let of = |socket: &str| -> Vec<String> {
        records
            .iter()
            .filter(|(n, _)| n == socket)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    };
    let got = of("syslog");
    assert!(
        got.iter()
            .any(|l| l.starts_with("<30>ignition[") && l.ends_with("]: Stage: fetch-offline")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|l| l.ends_with("]: fetch-offline: fetch-offline passed")),
        "{got:?}"
    );
    let all = got.join("\n");
    assert!(!all.contains(SECRET_PAYLOAD) && !all.contains("EMBERSECRETHASH"));
    // The structured journal entry tools look for.
    let entry = of("journal").into_iter().next().expect("a journal entry");
    for field in [
        "MESSAGE=fetched user config from \"file\"\n",
        "MESSAGE_ID=57124006b5c94805b77ce473e92a8aeb\n",
        "IGNITION_CONFIG_TYPE=user\n",
        "IGNITION_CONFIG_SRC=file\n",
        "IGNITION_CONFIG_REFERENCED=false\n",
        "SYSLOG_IDENTIFIER=ignition\n",
    ] {
        assert!(entry.contains(field), "{field}: {entry}");
    }
}

/// A CA and an HTTPS server on 127.0.0.1 with a certificate it signed (also used by `plan`).
pub(crate) fn https_server(
    handler: impl Fn(&crate::harness::HttpRequest, &mut dyn crate::harness::Conn)
        + Send
        + Sync
        + 'static,
) -> (String, HttpServer) {
    use std::sync::Arc;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ember runner test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap(),
    );
    let server = HttpServer::start_with(
        move |tcp| {
            let conn = rustls::ServerConnection::new(config.clone()).ok()?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock).ok()?;
            }
            Some(Box::new(s))
        },
        handler,
    );
    (ca.pem(), server)
}

#[test]
fn certificate_authorities_apply_to_later_fetches_and_are_inlined() {
    let (ca_pem, tls) = https_server(|_, conn| {
        respond(
            conn,
            200,
            &[],
            kargs_config(&["over-https"], &[]).as_bytes(),
        );
    });
    let pem = ca_pem.clone();
    let plain = HttpServer::start(move |_, conn| respond(conn, 200, &[], pem.as_bytes()));
    let merged = format!("https://127.0.0.1:{}/m.ign", tls.port());
    let m = Machine::new("tls");

    // Without the CA the server is not trusted.
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [{"source": merged}]}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("unknown authority"), "{}", r.stderr);

    // A CA fetched over http, given by a merged child, applies to the merges after it.
    let child = serde_json::json!({
        "ignition": {"version": "3.4.0", "security": {"tls": {"certificateAuthorities": [
            {"source": plain.url("/ca.pem"), "verification": {"hash": sha512_hash(ca_pem.as_bytes())}}
        ]}}}
    })
    .to_string();
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "config": {"merge": [
                {"source": data_url(&child)},
                {"source": merged}
            ]}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    ok(&r);
    let cache = m.cache_json();
    assert_eq!(
        cache["kernelArguments"]["shouldExist"],
        serde_json::json!(["over-https"])
    );
    // The CA is in the cache as a data: URL, so later stages need no network for it.
    let ca = &cache["ignition"]["security"]["tls"]["certificateAuthorities"][0];
    let src = ca["source"].as_str().unwrap();
    let b64 = src.strip_prefix("data:;base64,").expect("inlined CA");
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    assert_eq!(decoded, ca_pem.as_bytes());
    let fetched_ca = plain.requests().len();
    drop(plain);
    let helper = m.kargs_helper(0);
    ok(&m.ignition_with("kargs", &[("EMBER_KARGS_HELPER", helper.to_str().unwrap())]));
    assert_eq!(m.kargs_args(), ["--should-exist", "over-https"]);
    assert!(fetched_ca >= 1);

    // A CA that is not a certificate bundle fails the stage.
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0", "security": {"tls": {"certificateAuthorities": [
                {"source": "data:,not%20a%20certificate"}
            ]}}}
        })
        .to_string(),
    );
    let r = m.ignition("fetch");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("certificate authority bundle"),
        "{}",
        r.stderr
    );
}

#[test]
fn authorized_keys_fragment_switch() {
    let m = Machine::new("keys");
    m.config(&secret_config());
    ok(&m.ignition("fetch-offline"));
    ok(&m.ignition_with(
        "files",
        &[("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT", "false")],
    ));
    let ssh = m.p("root/home/core/.ssh");
    assert!(std::fs::read_to_string(ssh.join("authorized_keys"))
        .unwrap()
        .contains("AAAAC3NzaEMBERKEY"));
    assert!(!ssh.join("authorized_keys.d").exists());
    m.assert_no_secrets();
}

#[test]
fn whole_sequence_on_a_loop_device() {
    crate::harness::require_root();
    use ember::system::loopdev::ScratchDisk;
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = ember::system::mounts::umount_lazy(&self.0);
        }
    }
    let m = Machine::new("loop");
    let disk = ScratchDisk::new(64).unwrap();
    let _cleanup = Cleanup(m.p("root/var"));
    let tag = std::process::id() % 100_000;
    let (plabel, fslabel) = (format!("emb-var-{tag}"), format!("EMBVAR{tag}"));
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {
                "disks": [{"device": disk.path(), "wipeTable": true,
                           "partitions": [{"number": 1, "label": plabel, "sizeMiB": 0}]}],
                "filesystems": [{"device": format!("/dev/disk/by-partlabel/{plabel}"), "format": "ext4",
                                 "label": fslabel, "path": "/var", "wipeFilesystem": true}],
                "files": [{"path": "/var/lib/hello", "mode": 420,
                           "contents": {"source": format!("data:,{SECRET_PAYLOAD}")}}]
            }
        })
        .to_string(),
    );
    for stage in ["fetch-offline", "kargs", "disks", "mount", "files"] {
        ok(&m.ignition(stage));
    }
    let var = m.p("root/var");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(&format!(" {} ", var.display())),
        "the mount stage mounted /var"
    );
    assert_eq!(
        std::fs::read_to_string(var.join("lib/hello")).unwrap(),
        SECRET_PAYLOAD
    );
    ok(&m.ignition("umount"));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&format!(" {} ", var.display())));
    assert!(
        !var.join("lib/hello").exists(),
        "the file went to the new filesystem"
    );

    // The filesystem on the new partition holds the file.
    let part = disk.partition_path(1);
    let blkid = crate::harness::tool("blkid", &["-o", "export", part.to_str().unwrap()]);
    assert!(blkid.contains(&format!("LABEL={fslabel}")), "{blkid}");
    assert!(blkid.contains("TYPE=ext4"), "{blkid}");
    let check = m.p("check");
    std::fs::create_dir_all(&check).unwrap();
    crate::harness::tool(
        "mount",
        &["-o", "ro", part.to_str().unwrap(), check.to_str().unwrap()],
    );
    let got = std::fs::read_to_string(check.join("lib/hello"));
    crate::harness::tool("umount", &[check.to_str().unwrap()]);
    assert_eq!(got.unwrap(), SECRET_PAYLOAD);
    let state = m.state();
    assert_eq!(
        state["fetchedConfigs"].as_array().unwrap().len(),
        7,
        "{state}"
    );
    m.assert_no_secrets();
}

#[test]
fn ember_run_unmounts_what_a_failing_mount_stage_mounted() {
    crate::harness::require_root();
    use ember::system::loopdev::ScratchDisk;
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = ember::system::mounts::umount_lazy(&self.0);
        }
    }
    let m = Machine::new("mountfail");
    let (var_disk, srv_disk) = (ScratchDisk::new(64).unwrap(), ScratchDisk::new(64).unwrap());
    let _cleanup = Cleanup(m.p("root/var"));
    // /var mounts; /srv cannot (a file is in the way), after /var (same depth, config order).
    m.put("root/srv", "not a directory");
    m.config(
        &serde_json::json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"filesystems": [
                {"device": var_disk.path(), "format": "ext4", "path": "/var", "wipeFilesystem": true},
                {"device": srv_disk.path(), "format": "ext4", "path": "/srv", "wipeFilesystem": true}
            ]}
        })
        .to_string(),
    );
    let (root, cache, state, neednet) = (
        m.p("root"),
        m.p("run/ignition.json"),
        m.p("run/ignition/state"),
        m.p("run/ignition/neednet"),
    );
    let r = m.ember(&[
        "run",
        "--platform",
        "file",
        "--root",
        root.to_str().unwrap(),
        "--config-cache",
        cache.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
        "--neednet",
        neednet.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("the mount stage failed"), "{}", r.stderr);
    assert!(
        r.stdout.contains("unmounting after the failure"),
        "{}",
        r.stdout
    );
    let real_root = std::fs::canonicalize(&root).unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&format!(" {}/", real_root.display())),
        "nothing is left mounted under the root: {mountinfo}"
    );
}
