//! No secret leaves Ember: distinct secrets are planted in every place a config can carry one
//! (inline and base64 file contents, appends, a remote file fetched with an `Authorization`
//! and a custom header, the remote file's data, a merged config's URL userinfo and query token,
//! the merged config's own contents, a kernel-command-line config URL's userinfo and token, a
//! proxy's password, a password hash, an SSH key, unit and drop-in contents, a LUKS key file,
//! the status webhook's token, a cloud's user data, IMDS session token and instance-role
//! credentials), then the runner goes through successful and failing boots at
//! the most verbose log level: `ignition` as the dracut units call it, `ember run` logging to
//! the system log (syslog and journal sockets captured), `ember apply` and `ember plan`. Every
//! output, log record, journal entry, status file, webhook queue, webhook body, state file,
//! result file and failure report is searched for each secret, also base64-encoded (at every
//! alignment), percent-encoded and JSON-escaped.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::harness::{
    self, ember_bin, require_root, respond, sha512_hash, HttpServer, LogSockets, TempDir,
};

// ---------------------------------------------------------------------------------------------
// The secrets

const INLINE: &str = "SECRET-INLINE-0001 a/b+c";
const INLINE_B64: &str = "SECRET-BASE64-0002";
const BEARER: &str = "SECRET-BEARER-0003";
const HEADER: &str = "SECRET-HEADER-0004";
const REMOTE: &str = "SECRET-REMOTE-CONTENT-0005\n";
const PW_HASH: &str = "$6$SECRETSALT0006$SECRETPWHASH0006abcdefghijklmnop/qrstuv.wxyz";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5SECRETSSHKEY0007 core@host";
const URL_PASS: &str = "SECRET-URLPASS-0008";
const URL_TOKEN: &str = "SECRET-URLTOKEN-0009";
const CHILD: &str = "SECRET-CHILD-0010";
const UNIT: &str = "SECRET-UNIT-0011";
const DROPIN: &str = "SECRET-DROPIN-0012";
const APPEND: &str = "SECRET-APPEND-0013";
const PROXY_PASS: &str = "SECRET-PROXYPASS-0014";
const HOOK_TOKEN: &str = "SECRET-HOOKTOKEN-0015";
const CMD_TOKEN: &str = "SECRET-CMDTOKEN-0016";
const CMD_PASS: &str = "SECRET-CMDPASS-0017";
const LUKS_KEY: &str = "SECRET-LUKSKEY-0018";
const BAD_URL: &str = "SECRET-BADURL-0019";
const BAD_TAIL: &str = "SECRET-TRUNCATED-0020";
const IMDS_TOKEN: &str = "SECRET-IMDSTOKEN-0021";
const AWS_KEY_ID: &str = "SECRET-AKID-0022";
const AWS_SECRET_KEY: &str = "SECRET-SAK-0023";
const AWS_SESSION: &str = "SECRET-STS-0024";
const UNIT_GARBAGE: &str = "SECRET-UNITGARBAGE-0025";
const DATA_MERGE: &str = "SECRET-DATAMERGE-0026";

const ALL: &[&str] = &[
    INLINE,
    INLINE_B64,
    BEARER,
    HEADER,
    REMOTE,
    PW_HASH,
    SSH_KEY,
    URL_PASS,
    URL_TOKEN,
    CHILD,
    UNIT,
    DROPIN,
    APPEND,
    PROXY_PASS,
    HOOK_TOKEN,
    CMD_TOKEN,
    CMD_PASS,
    LUKS_KEY,
    BAD_URL,
    BAD_TAIL,
    IMDS_TOKEN,
    AWS_KEY_ID,
    AWS_SECRET_KEY,
    AWS_SESSION,
    UNIT_GARBAGE,
    DATA_MERGE,
];

/// Every byte but the unreserved ones as `%XX` (upper or lower case hex).
fn percent(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// The base64 characters that depend only on `secret`'s bytes, for each of the three
/// alignments it can have inside a longer encoded text, in the standard and URL alphabets.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for k in 0..3 {
            let mut buf = vec![0u8; k];
            buf.extend_from_slice(secret);
            let enc: Vec<char> = engine.encode(&buf).chars().collect();
            // Character i holds bits 6i..6i+6: bytes 6i/8 to (6i+5)/8.
            let inside = |i: usize| 6 * i / 8 >= k && (6 * i + 5) / 8 < k + secret.len();
            out.push(
                (0..enc.len())
                    .filter(|&i| inside(i))
                    .map(|i| enc[i])
                    .collect(),
            );
        }
    }
    out
}

/// The forms of a secret searched for.
fn forms(secret: &str) -> Vec<String> {
    let mut f = vec![
        secret.to_string(),
        secret.trim().to_string(),
        percent(secret, true),
        percent(secret, false),
        percent(secret, true).replace("%20", "+"),
    ];
    let json = serde_json::to_string(secret).unwrap();
    f.push(json[1..json.len() - 1].to_string());
    f.extend(base64_forms(secret.as_bytes()));
    f.sort();
    f.dedup();
    f.retain(|s| s.len() >= 8);
    f
}

/// Things to search: (where it came from, its bytes).
#[derive(Default)]
struct Evidence {
    items: RefCell<Vec<(String, Vec<u8>)>>,
}

impl Evidence {
    fn add(&self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.items.borrow_mut().push((what.into(), bytes.into()));
    }

    /// Fails on the first secret found, showing where and around it.
    fn assert_clean(&self, secrets: &[&str]) {
        let items = self.items.borrow();
        assert!(!items.is_empty(), "nothing was collected");
        // EMBER_SECRETS_DUMP=DIR keeps what was searched, to read it.
        if let Some(dir) = std::env::var_os("EMBER_SECRETS_DUMP") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut all = Vec::new();
            for (what, bytes) in items.iter() {
                all.extend_from_slice(format!("===== {what}\n").as_bytes());
                all.extend_from_slice(bytes);
                all.push(b'\n');
            }
            let n = std::thread::current()
                .name()
                .unwrap_or("x")
                .replace("::", "-");
            std::fs::write(dir.join(n), all).unwrap();
        }
        for (what, bytes) in items.iter() {
            let text = String::from_utf8_lossy(bytes);
            for s in secrets {
                for form in forms(s) {
                    if let Some(at) = text.find(&form) {
                        let mut from = at.saturating_sub(300);
                        while !text.is_char_boundary(from) {
                            from -= 1;
                        }
                        let mut to = (at + form.len() + 100).min(text.len());
                        while !text.is_char_boundary(to) {
                            to += 1;
                        }
                        panic!(
                            "the secret {s:?} (as {form:?}) is in {what}:\n…{}…",
                            &text[from..to]
                        );
                    }
                }
            }
            // A cut secret leaves its marker.
            assert!(
                !text.contains("SECRET-") && !text.contains("SECRETSALT"),
                "a secret's marker is in {what}:\n{text}"
            );
        }
    }

    fn len(&self) -> usize {
        self.items.borrow().len()
    }
}

// ---------------------------------------------------------------------------------------------
// The server: the remote file (only with both headers), the merged config, the user config,
// the status webhook.

fn child_config() -> String {
    serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/child.txt", "mode": 384,
                               "contents": {"source": format!("data:,{}", percent(CHILD, true))}}]}
    })
    .to_string()
}

fn start_server() -> HttpServer {
    start_server_with_user_data(Arc::new(Mutex::new(String::new())))
}

/// The server, also an AWS instance metadata service (IMDSv2) whose user data is
/// `user_data`.
fn start_server_with_user_data(user_data: Arc<Mutex<String>>) -> HttpServer {
    HttpServer::start(move |req, c| {
        let auth_ok = req.header("authorization") == Some(&format!("Bearer {BEARER}"))
            && req.header("x-custom-token") == Some(HEADER);
        let imds_ok = req.header("x-aws-ec2-metadata-token") == Some(IMDS_TOKEN);
        match req.path() {
            "/latest/api/token" if req.method == "PUT" => {
                respond(c, 200, &[], IMDS_TOKEN.as_bytes())
            }
            _ if req.path().starts_with("/latest/") || req.path().starts_with("/2019-10-01/") => {
                if !imds_ok {
                    respond(c, 401, &[], b"")
                } else {
                    match req.path() {
                        "/latest/meta-data/placement/region" => respond(c, 200, &[], b"eu-west-3"),
                        "/latest/meta-data/iam/security-credentials/" => {
                            respond(c, 200, &[], b"ember-role\n")
                        }
                        "/latest/meta-data/iam/security-credentials/ember-role" => respond(
                            c,
                            200,
                            &[],
                            serde_json::json!({"AccessKeyId": AWS_KEY_ID,
                                "SecretAccessKey": AWS_SECRET_KEY, "Token": AWS_SESSION,
                                "Expiration": "2099-01-01T00:00:00Z"})
                            .to_string()
                            .as_bytes(),
                        ),
                        "/2019-10-01/user-data" => {
                            let u = user_data.lock().unwrap().clone();
                            respond(c, 200, &[], u.as_bytes())
                        }
                        _ => respond(c, 404, &[], b""),
                    }
                }
            }
            // An S3 endpoint: the object only for a signed request with the session token.
            "/ember-bucket/object.txt"
                if req
                    .header("authorization")
                    .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=SECRET-AKID"))
                    && req.header("x-amz-security-token") == Some(AWS_SESSION) =>
            {
                respond(c, 200, &[], REMOTE.as_bytes())
            }
            "/ember-bucket/object.txt" | "/ember-bucket/denied.txt" => {
                respond(c, 403, &[], b"<Error><Code>AccessDenied</Code></Error>")
            }
            "/files/remote.txt" if auth_ok => respond(c, 200, &[], REMOTE.as_bytes()),
            "/files/remote.txt" => respond(c, 401, &[], b""),
            "/files/forbidden.txt" => respond(c, 403, &[], b""),
            "/child.ign" => respond(c, 200, &[], child_config().as_bytes()),
            "/user.ign" => respond(c, 200, &[], the_config(req_port(req)).as_bytes()),
            "/hook" => respond(c, 200, &[], b""),
            _ => respond(c, 404, &[], b""),
        }
    })
}

/// The port the client connected to (from its Host header).
fn req_port(req: &crate::harness::HttpRequest) -> u16 {
    req.header("host")
        .and_then(|h| h.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The config with every secret a valid config can carry, for a server on `port`.
fn the_config(port: u16) -> String {
    config_with(port, |_| {})
}

fn config_with(port: u16, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let mut v = serde_json::json!({
        "ignition": {
            "version": "3.4.0",
            "config": {"merge": [
                {"source": format!("http://embuser:{URL_PASS}@127.0.0.1:{port}/child.ign?token={URL_TOKEN}")},
                {"source": format!("data:,{}", percent(&serde_json::json!({
                    "ignition": {"version": "3.4.0"},
                    "storage": {"files": [{"path": "/etc/data-merge.txt", "mode": 384,
                        "contents": {"source": format!("data:,{DATA_MERGE}")}}]}
                }).to_string(), true))}
            ]},
            "proxy": {"httpProxy": format!("http://proxyuser:{PROXY_PASS}@127.0.0.1:9"),
                      "noProxy": ["127.0.0.1"]}
        },
        "passwd": {"users": [{"name": "core", "passwordHash": PW_HASH,
                              "sshAuthorizedKeys": [SSH_KEY]}]},
        "storage": {"files": [
            {"path": "/etc/inline.txt", "mode": 384,
             "contents": {"source": format!("data:,{}", percent(INLINE, true))}},
            {"path": "/etc/inline64.txt", "mode": 384,
             "contents": {"source": format!("data:;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(INLINE_B64))}},
            {"path": "/etc/remote.txt", "mode": 384,
             "contents": {"source": format!("{base}/files/remote.txt"),
                          "httpHeaders": [{"name": "Authorization", "value": format!("Bearer {BEARER}")},
                                          {"name": "X-Custom-Token", "value": HEADER}],
                          "verification": {"hash": sha512_hash(REMOTE.as_bytes())}}},
            {"path": "/etc/appended.txt", "mode": 384,
             "append": [{"source": format!("data:,{}", percent(APPEND, true))}]}
        ]},
        "systemd": {"units": [{
            "name": "app.service", "enabled": true,
            "contents": format!("[Service]\nEnvironment=TOKEN={UNIT}\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"),
            "dropins": [{"name": "secret.conf", "contents": format!("[Service]\nEnvironment=KEY={DROPIN}\n")}]
        }]}
    });
    change(&mut v);
    v.to_string()
}

// ---------------------------------------------------------------------------------------------
// A machine

/// The harness's scratch machine, logging at trace level, every output kept as evidence.
struct Machine<'a> {
    m: harness::Machine,
    ev: &'a Evidence,
}

impl std::ops::Deref for Machine<'_> {
    type Target = harness::Machine;
    fn deref(&self) -> &harness::Machine {
        &self.m
    }
}

struct Out {
    code: i32,
    all: String,
}

const STAGES: [&str; 7] = [
    "fetch-offline",
    "fetch",
    "kargs",
    "disks",
    "mount",
    "files",
    "umount",
];

impl<'a> Machine<'a> {
    fn new(top: &TempDir, tag: &str, cmdline: &str, config: &str, ev: &'a Evidence) -> Self {
        let m = harness::Machine::in_dir(top.path().join(tag), cmdline);
        m.config_text(config);
        Machine { m, ev }
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = self.m.command(program);
        c.env("EMBER_LOG", "trace")
            .env("EMBER_STATUS_TIMEOUT", "5")
            .env("EMBER_DEVICE_TIMEOUT", "2");
        c
    }

    fn run(&self, what: &str, c: Command) -> Out {
        self.run_input(what, c, None)
    }

    fn run_input(&self, what: &str, c: Command, stdin: Option<Vec<u8>>) -> Out {
        let o = self.m.run_input(c, stdin);
        let out = Out {
            code: o.code,
            all: o.all(),
        };
        self.ev
            .add(format!("the standard output of {what}"), o.stdout);
        self.ev
            .add(format!("the standard error of {what}"), o.stderr);
        out
    }

    /// `ignition --stage=S` as the dracut units call it, logging to standard output.
    fn ignition(&self, stage: &str) -> Out {
        let mut c = self.command(&self.p("bin/ignition"));
        c.args(self.stage_args())
            .arg(format!("--stage={stage}"))
            .arg("--log-to-stdout");
        self.run(&format!("ignition --stage={stage}"), c)
    }

    /// The stages in boot order until one fails (fetch only when fetch-offline asked for
    /// it); umount after a failure once mount ran. The failed stage, if any.
    fn boot(&self) -> Option<&'static str> {
        let mut neednet = false;
        let mut mounted = false;
        for stage in STAGES {
            if stage == "fetch" && !neednet {
                continue;
            }
            let o = self.ignition(stage);
            match o.code {
                0 => {}
                1 => {
                    if mounted {
                        self.ignition("umount");
                    }
                    return Some(stage);
                }
                c => panic!("{stage} exited {c}: {}", o.all),
            }
            neednet |= stage == "fetch-offline" && self.p("run/ignition/neednet").exists();
            mounted |= stage == "mount";
        }
        None
    }

    /// Every file the runs left outside the target root, but the config cache (which holds
    /// the config by design: it must be private); and the result file in the root.
    fn collect(&self) {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    walk(&p, out);
                } else if m.is_file() {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.p("run"), &mut files);
        for f in files {
            if f == self.p("run/ignition.json") {
                let mode = std::fs::metadata(&f).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "the config cache is readable by others");
                continue;
            }
            self.ev
                .add(f.display().to_string(), std::fs::read(&f).unwrap());
        }
        let result = self.p("root/etc/.ignition-result.json");
        if let Ok(b) = std::fs::read(&result) {
            self.ev.add(result.display().to_string(), b);
        }
    }
}

/// The webhook bodies the server received.
fn collect_webhook(server: &HttpServer, ev: &Evidence) -> usize {
    let hooks: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/hook")
        .collect();
    for (i, r) in hooks.iter().enumerate() {
        ev.add(format!("status webhook body #{i}"), r.body.clone());
    }
    hooks.len()
}

fn hook_cmdline(server: &HttpServer) -> String {
    format!(
        "root=/dev/vda4 ember.status_url={}\n",
        server.url(&format!("/hook?sig={HOOK_TOKEN}"))
    )
}

// ---------------------------------------------------------------------------------------------
// Boots that succeed

#[test]
fn no_secret_in_a_successful_boot() {
    let server = start_server();
    let top = TempDir::new("secrets-ok");
    let ev = Evidence::default();

    // The file platform's config.
    let m = Machine::new(
        &top,
        "file",
        &hook_cmdline(&server),
        &the_config(server.port()),
        &ev,
    );
    assert_eq!(m.boot(), None, "the boot failed");
    // Everything was really provisioned (the secrets did their jobs).
    let read = |p: &str| std::fs::read_to_string(m.p(p)).unwrap();
    assert_eq!(read("root/etc/inline.txt"), INLINE);
    assert_eq!(read("root/etc/inline64.txt"), INLINE_B64);
    assert_eq!(read("root/etc/remote.txt"), REMOTE);
    assert_eq!(read("root/etc/appended.txt"), APPEND);
    assert_eq!(read("root/etc/child.txt"), CHILD);
    assert_eq!(read("root/etc/data-merge.txt"), DATA_MERGE);
    assert!(read("root/etc/shadow").contains(PW_HASH));
    assert!(read("root/home/core/.ssh/authorized_keys.d/ignition").contains(SSH_KEY));
    assert!(read("root/etc/systemd/system/app.service").contains(UNIT));
    m.collect();

    // The user config from the kernel command line, at a URL with userinfo and a token.
    let cmdline = format!(
        "root=/dev/vda4 ignition.config.url=http://embuser:{CMD_PASS}@127.0.0.1:{}/user.ign?token={CMD_TOKEN} ember.status_url={}\n",
        server.port(),
        server.url(&format!("/hook?sig={HOOK_TOKEN}"))
    );
    let m = Machine::new(&top, "cmdline", &cmdline, "", &ev);
    assert_eq!(m.boot(), None, "the boot failed");
    assert_eq!(
        std::fs::read_to_string(m.p("root/etc/remote.txt")).unwrap(),
        REMOTE
    );
    m.collect();

    assert!(collect_webhook(&server, &ev) >= 12);
    ev.assert_clean(ALL);
}

// ---------------------------------------------------------------------------------------------
// Boots that fail

#[test]
fn no_secret_in_failing_boots() {
    let server = start_server();
    let port = server.port();
    let top = TempDir::new("secrets-fail");
    let ev = Evidence::default();
    let hook = hook_cmdline(&server);

    let cases: Vec<(&str, String, String, &str)> = vec![
        // A remote file that is not what its hash says.
        (
            "hash",
            hook.clone(),
            config_with(port, |v| {
                v["storage"]["files"][2]["contents"]["verification"]["hash"] =
                    sha512_hash(b"something else").into();
            }),
            "files",
        ),
        // A remote file the server refuses.
        (
            "forbidden",
            hook.clone(),
            config_with(port, |v| {
                v["storage"]["files"][2]["contents"]["source"] =
                    format!("http://127.0.0.1:{port}/files/forbidden.txt?t={URL_TOKEN}").into();
            }),
            "files",
        ),
        // The merged config is not there (its URL has userinfo and a token).
        (
            "merge404",
            hook.clone(),
            config_with(port, |v| {
                v["ignition"]["config"]["merge"][0]["source"] = format!(
                    "http://embuser:{URL_PASS}@127.0.0.1:{port}/gone.ign?token={URL_TOKEN}"
                )
                .into();
            }),
            "fetch",
        ),
        // The config on the kernel command line is not there.
        (
            "cmdline404",
            format!(
                "ignition.config.url=http://embuser:{CMD_PASS}@127.0.0.1:{port}/nothing.ign?token={CMD_TOKEN} ember.status_url={}\n",
                server.url(&format!("/hook?sig={HOOK_TOKEN}"))
            ),
            String::new(),
            "fetch",
        ),
        // Invalid values next to secrets: a relative path, a bad URL with credentials, a bad
        // hash.
        (
            "invalid",
            hook.clone(),
            config_with(port, |v| {
                v["storage"]["files"][0]["path"] = "etc/inline.txt".into();
                v["storage"]["files"][1]["contents"]["source"] =
                    format!("http://user:{BAD_URL}@[::1/%zz").into();
                v["storage"]["files"][2]["contents"]["verification"]["hash"] =
                    format!("sha512-{BAD_URL}").into();
                v["passwd"]["users"][0]["sshAuthorizedKeys"] =
                    serde_json::json!([format!("{SSH_KEY}\nssh-rsa x")]);
            }),
            "fetch-offline",
        ),
        // A unit whose contents do not parse (the parser's message quotes the bad text).
        (
            "unit",
            hook.clone(),
            config_with(port, |v| {
                v["systemd"]["units"][0]["contents"] =
                    format!("[Service]{UNIT_GARBAGE}\nExecStart=/bin/true\n").into();
            }),
            "fetch-offline",
        ),
        // Not JSON: cut in the middle of a secret.
        (
            "truncated",
            hook.clone(),
            {
                let full = the_config(port);
                let at = full.find(PW_HASH).unwrap();
                format!("{}{BAD_TAIL}", &full[..at + 12])
            },
            "fetch-offline",
        ),
        // A wrong type where a secret should be.
        (
            "type",
            hook.clone(),
            config_with(port, |v| {
                v["passwd"]["users"][0]["passwordHash"] = serde_json::json!({"x": PW_HASH});
                v["passwd"]["users"][0]["sshAuthorizedKeys"] = serde_json::json!([SSH_KEY, 42]);
                v["storage"]["files"][0]["contents"]["source"] = serde_json::json!([INLINE]);
            }),
            "fetch-offline",
        ),
    ];
    for (tag, cmdline, config, fails) in &cases {
        let m = Machine::new(&top, tag, cmdline, config, &ev);
        assert_eq!(m.boot(), Some(*fails), "{tag}");
        m.collect();
    }
    assert!(collect_webhook(&server, &ev) >= cases.len());
    ev.assert_clean(ALL);
}

// ---------------------------------------------------------------------------------------------
// ember run into the system log, ember apply, ember plan

#[test]
fn no_secret_in_ember_run_syslog_journal_apply_and_plan() {
    require_root();
    let server = start_server();
    let port = server.port();
    let top = TempDir::new("secrets-cli");
    let ev = Evidence::default();
    let logs = LogSockets::new(top.path());

    // ember run --syslog: a successful run and one that fails in the files stage.
    for (tag, config, code) in [
        ("run-ok", the_config(port), 0),
        (
            "run-hash",
            config_with(port, |v| {
                v["storage"]["files"][2]["contents"]["verification"]["hash"] =
                    sha512_hash(b"not it").into();
            }),
            1,
        ),
    ] {
        let m = Machine::new(&top, tag, &hook_cmdline(&server), &config, &ev);
        let mut c = logs.wrap(
            m.command(Path::new("unshare")),
            &m.p("olddev"),
            &ember_bin(),
        );
        c.arg("run")
            .args(m.stage_args())
            .arg("--syslog")
            .env("EMBER_LOG", "trace");
        let o = m.run(&format!("ember run ({tag})"), c);
        assert_eq!(o.code, code, "{tag}: {}", o.all);
        m.collect();
        if code == 0 {
            assert_eq!(
                std::fs::read_to_string(m.p("root/etc/remote.txt")).unwrap(),
                REMOTE
            );
        }
    }

    // ember apply, and ember plan: with the config, and with failing ones.
    let failing = [
        config_with(port, |v| {
            v["storage"]["files"][2]["contents"]["verification"]["hash"] =
                sha512_hash(b"not it").into();
        }),
        config_with(port, |v| {
            v["ignition"]["config"]["merge"][0]["source"] =
                format!("http://embuser:{URL_PASS}@127.0.0.1:{port}/gone.ign?token={URL_TOKEN}")
                    .into();
        }),
        config_with(port, |v| {
            v["storage"]["files"][0]["path"] = "relative".into();
        }),
        config_with(port, |v| {
            v["systemd"]["units"][0]["dropins"][0]["contents"] =
                format!("[Service]{UNIT_GARBAGE}\n").into();
        }),
    ];
    for (i, config) in std::iter::once(the_config(port)).chain(failing).enumerate() {
        let m = Machine::new(&top, &format!("cli{i}"), "quiet\n", &config, &ev);
        let mut c = m.command(&ember_bin());
        c.args(["plan", "--root"]).arg(m.p("root")).arg("-");
        let input = std::fs::read(m.p("config.ign")).unwrap();
        let o = m.run_input(&format!("ember plan (config {i})"), c, Some(input));
        assert_eq!(o.code, if i == 0 { 0 } else { 1 }, "{}", o.all);
        let mut c = m.command(&ember_bin());
        c.args(["apply", "--ignore-unsupported", "--root"])
            .arg(m.p("root"))
            .arg("config.ign");
        let o = m.run(&format!("ember apply (config {i})"), c);
        assert_eq!(o.code, if i == 0 { 0 } else { 1 }, "{}", o.all);
        let mut c = m.command(&m.p("bin/ignition-apply"));
        c.arg(format!("-root={}", m.p("root").display()))
            .arg("-ignore-unsupported")
            .arg("config.ign");
        m.run(&format!("ignition-apply (config {i})"), c);
        m.collect();
    }

    let records = logs.finish();
    for (i, (name, b)) in records.iter().enumerate() {
        ev.add(format!("{name} record #{i}"), b.clone());
    }
    assert!(
        records.iter().any(|(n, _)| n == "syslog"),
        "nothing reached the system log"
    );
    assert!(
        records.iter().any(|(n, r)| n == "journal"
            && String::from_utf8_lossy(r).contains("IGNITION_CONFIG_REFERENCED=true")),
        "no journal entry for the referenced config"
    );
    assert!(
        records
            .iter()
            .any(|(_, r)| String::from_utf8_lossy(r).contains("DEBUG") || r.starts_with(b"<31>")),
        "no debug records: the level was not the most verbose"
    );
    collect_webhook(&server, &ev);
    assert!(ev.len() > 30);
    ev.assert_clean(ALL);
}

// ---------------------------------------------------------------------------------------------
// A cloud's user data, through the engine in a process of its own

/// Set (to a directory) in the child process that runs [`cloud_boot_in_process`].
const CHILD_ENV: &str = "EMBER_SECRETS_CHILD";

#[test]
fn no_secret_in_a_cloud_provider_boot() {
    // The engine runs in a child process (this test binary, one test), logging to its
    // standard error at the most verbose level, so that no other test's records mix in.
    let top = TempDir::new("secrets-cloud");
    let ev = Evidence::default();
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "secrets::cloud_boot_in_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, top.path())
        .env("EMBER_LOG", "trace")
        .env("EMBER_STATUS_TIMEOUT", "5")
        .env("EMBER_DEVICE_TIMEOUT", "2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "the child failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "the child did not run:\n{out}");
    assert!(err.contains("fetched user config from \"aws\""), "{err}");
    assert!(err.contains("DEBUG"), "not the most verbose level:\n{err}");
    ev.add("the child's standard output", o.stdout);
    ev.add("the child's standard error", o.stderr);
    ev.assert_clean(ALL);
}

#[test]
#[ignore = "run by no_secret_in_a_cloud_provider_boot in a process of its own"]
fn cloud_boot_in_process() {
    use ember::stages::{engine, Mode, Settings, Stage};
    let Some(top) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    ember::logging::init(ember::logging::Target::Stderr);
    let user_data = Arc::new(Mutex::new(String::new()));
    let server = start_server_with_user_data(user_data.clone());
    let port = server.port();
    let ev = Evidence::default();
    let runs = [
        ("ok", the_config(port), None),
        (
            "hash",
            config_with(port, |v| {
                v["storage"]["files"][2]["contents"]["verification"]["hash"] =
                    sha512_hash(b"not it").into();
            }),
            Some(Stage::Files),
        ),
        (
            "invalid",
            config_with(port, |v| {
                v["storage"]["files"][1]["contents"]["source"] =
                    format!("http://user:{BAD_URL}@[::1/%zz").into();
            }),
            Some(Stage::Fetch),
        ),
    ];
    for (tag, config, fails) in runs {
        *user_data.lock().unwrap() = config;
        let dir = TempDir(top.join(tag));
        let m = Machine::new(&dir, "m", &hook_cmdline(&server), "", &ev);
        let mut failed = None;
        for stage in [
            Stage::Fetch,
            Stage::Kargs,
            Stage::Disks,
            Stage::Mount,
            Stage::Files,
            Stage::Umount,
        ] {
            let mut o = engine::Options::new(stage, Settings::new("aws", Mode::Boot));
            o.root = m.p("root");
            o.config_cache = m.p("run/ignition.json");
            o.state_file = m.p("run/ignition/state");
            o.neednet = m.p("run/ignition/neednet");
            o.status_file = Some(m.p("run/ember/status.json"));
            o.cmdline.cmdline_path = m.p("cmdline");
            o.settings.kargs_helper = m.p("no-helper");
            o.dirs = ember::providers::system::SystemDirs {
                runtime: m.p("sys/run"),
                local: m.p("sys/etc"),
                system: m.p("sys/usr"),
            };
            o.endpoints = ember::providers::Endpoints {
                metadata: server.url(""),
                link_local_v6: None,
                metadata_timeout: std::time::Duration::from_secs(2),
                ..ember::providers::Endpoints::default()
            };
            if let Err(e) = engine::run(&o) {
                eprint!("{}", e.report());
                failed = Some(stage);
                break;
            }
        }
        assert_eq!(failed, fails, "{tag}");
        if fails.is_none() {
            assert_eq!(
                std::fs::read_to_string(m.p("root/etc/remote.txt")).unwrap(),
                REMOTE
            );
        }
        m.collect();
    }
    // S3 objects fetched with the instance role's credentials (signed requests), as the
    // files stage would fetch them; a refusal is logged as the engine logs a failure.
    let provider = ember::providers::get(
        "aws",
        &ember::providers::Endpoints {
            metadata: server.url(""),
            metadata_timeout: std::time::Duration::from_secs(2),
            ..ember::providers::Endpoints::default()
        },
    )
    .unwrap();
    let mut opts = ember::fetch::Options {
        s3_endpoint: Some(server.url("")),
        ..ember::fetch::Options::default()
    };
    provider.configure_fetcher(&mut opts);
    let fetcher = ember::fetch::Fetcher::new(opts).unwrap();
    let got = fetcher
        .fetch_bytes(
            &ember::fetch::Resource::new("s3://ember-bucket/object.txt"),
            1 << 20,
        )
        .unwrap();
    assert_eq!(got.as_deref(), Some(REMOTE.as_bytes()));
    let e = fetcher
        .fetch_bytes(
            &ember::fetch::Resource::new("s3://ember-bucket/denied.txt?versionId=SECRET-AKID-0022"),
            1 << 20,
        )
        .unwrap_err();
    let f = ember::stages::Failure::new("writing file \"/etc/s3.txt\"").caused_by(e);
    log::error!("{}", f.chain());
    eprint!(
        "{}",
        ember::stages::report::Report::from_failure("files", &f).render(None)
    );
    collect_webhook(&server, &ev);
    // Everything else the runs left, on standard output for the parent to search too.
    for (what, bytes) in ev.items.borrow().iter() {
        println!("===== {what}\n{}", String::from_utf8_lossy(bytes));
    }
    ev.assert_clean(ALL);
}

// ---------------------------------------------------------------------------------------------
// LUKS key files

#[test]
fn no_secret_from_a_luks_key_file() {
    require_root();
    use ember::system::loopdev::ScratchDisk;
    let server = start_server();
    let top = TempDir::new("secrets-luks");
    let ev = Evidence::default();
    let disk = ScratchDisk::new(64).unwrap();
    let name = format!("embsec{}", std::process::id());
    let config = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {
            "disks": [{"device": disk.path(), "wipeTable": true,
                       "partitions": [{"number": 1, "label": format!("sec{}", std::process::id())}]}],
            "luks": [{"name": name, "device": disk.partition_path(1),
                      "keyFile": {"source": format!("data:,{}", percent(LUKS_KEY, true))},
                      "options": ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]}],
            "filesystems": [{"device": format!("/dev/mapper/{name}"), "format": "ext4",
                             "wipeFilesystem": true}]
        }
    })
    .to_string();
    let m = Machine::new(&top, "luks", &hook_cmdline(&server), &config, &ev);
    let mut c = m.command(&ember_bin());
    c.args(["plan", "--root"])
        .arg(m.p("root"))
        .arg("config.ign");
    m.run("ember plan (LUKS)", c);
    // Where the kernel has no dm-crypt, the disks stage fails before writing; elsewhere it
    // formats and opens the volume. Either way the key stays out of every output.
    for stage in ["fetch-offline", "kargs", "disks"] {
        if m.ignition(stage).code != 0 {
            break;
        }
    }
    if Path::new(&format!("/dev/mapper/{name}")).exists() {
        let _ = Command::new("cryptsetup").args(["close", &name]).status();
    }
    // The state carries the key for the files stage to write (as Ignition's does): private.
    if let Ok(md) = std::fs::metadata(m.p("run/ignition/state")) {
        assert_eq!(
            md.permissions().mode() & 0o077,
            0,
            "the state is readable by others"
        );
        let _ = std::fs::remove_file(m.p("run/ignition/state"));
    }
    m.collect();
    collect_webhook(&server, &ev);
    ev.assert_clean(ALL);
}

#[test]
fn the_search_finds_every_form() {
    // The checker itself: a secret in base64 at any offset, percent-encoded or JSON-escaped
    // is found.
    for secret in [INLINE, PW_HASH, REMOTE] {
        for prefix in ["", "a", "ab", "abc"] {
            let ev = Evidence::default();
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{secret}"));
            ev.add("test", format!("x {enc} y"));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ev.assert_clean(&[secret])
            }));
            assert!(r.is_err(), "{secret:?} after {prefix:?} not found in {enc}");
        }
        for shown in [
            percent(secret, true),
            serde_json::to_string(secret).unwrap(),
        ] {
            let ev = Evidence::default();
            ev.add("test", shown.clone());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ev.assert_clean(&[secret])
            }));
            assert!(r.is_err(), "{shown} not found");
        }
    }
}
