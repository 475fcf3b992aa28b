//! The files stage on real directory trees: every file, directory and link rule, owners from
//! the target's account files, hostile symlinks, appends, a second run over its own output,
//! systemd units and presets, SSH keys, the result file, LUKS key files and crypttab, and bad
//! input that must leave the tree exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ember::config::{self, Config};
use ember::fetch::{Fetcher, Options};
use ember::stages::state::FetchedConfig;
use ember::stages::{files, Context, Failure, Mode, OpLog, Settings, Stage, State};
use serde_json::{json, Value};
use sha2::Digest;

use crate::harness::{respond, HttpServer, TempDir};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root: it sets file owners (run the integration tests as root)"
    );
}

/// A target tree with account files that know a user and a group the host does not have.
fn target(tag: &str) -> TempDir {
    require_root();
    let t = TempDir::new(&format!("files-{tag}"));
    let etc = t.path().join("etc");
    fs::create_dir_all(&etc).unwrap();
    let w = |name: &str, text: &str, mode: u32| {
        let p = etc.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    w(
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nember-fs-owner:x:4242:4343::/home/ember-fs-owner:/bin/sh\n",
        0o644,
    );
    w(
        "shadow",
        "root:*:19000:0:99999:7:::\nember-fs-owner:*:19000:0:99999:7:::\n",
        0o640,
    );
    w(
        "group",
        "root:x:0:\nember-fs-group:x:4343:\nwheel:x:10:\n",
        0o644,
    );
    w(
        "gshadow",
        "root:*::\nember-fs-group:!::\nwheel:!::\n",
        0o640,
    );
    w("login.defs", "USERGROUPS_ENAB yes\n", 0o644);
    t
}

fn parse(cfg: Value) -> Config {
    let raw = serde_json::to_vec(&cfg).unwrap();
    let parsed = config::parse(&raw);
    parsed
        .config
        .unwrap_or_else(|| panic!("test config is invalid: {:?}", parsed.report))
}

fn v36(body: Value) -> Value {
    let mut c = json!({"ignition": {"version": "3.6.0"}});
    if let (Value::Object(c), Value::Object(b)) = (&mut c, body) {
        c.extend(b);
    }
    c
}

struct Env {
    settings: Settings,
    state: State,
    fetcher: Fetcher,
    _boot_id: TempDir,
}

impl Env {
    fn new() -> Env {
        Env::with_mode(Mode::Boot)
    }

    fn with_mode(mode: Mode) -> Env {
        let boot = TempDir::new("bootid");
        let boot_id = boot.path().join("boot_id");
        fs::write(&boot_id, "0b1e5a8c-7a4e-4a4f-9d5e-3c2b1a0f9e8d\n").unwrap();
        let mut settings = Settings::new("file", mode);
        settings.result_file = None;
        settings.boot_id_path = boot_id;
        let fetcher = Fetcher::new(Options {
            system_ca_files: Some(Vec::new()),
            deadline: Some(std::time::Duration::from_secs(10)),
            ..Options::default()
        })
        .unwrap();
        Env {
            settings,
            state: State::default(),
            fetcher,
            _boot_id: boot,
        }
    }

    fn run(&mut self, root: &Path, cfg: &Config) -> Result<OpLog, Failure> {
        let ops = OpLog::new();
        let mut ctx = Context {
            stage: Stage::Files,
            root,
            config: cfg,
            state: &mut self.state,
            fetcher: &self.fetcher,
            ops: &ops,
            settings: &self.settings,
        };
        files::run(&mut ctx).map(|_| ops)
    }

    fn run_ok(&mut self, root: &Path, cfg: &Config) -> OpLog {
        match self.run(root, cfg) {
            Ok(ops) => ops,
            Err(f) => panic!(
                "files stage failed: {} (at {:?}, hint {:?})",
                f.chain(),
                f.path.map(|p| p.to_string()),
                f.hint
            ),
        }
    }

    fn run_err(&mut self, root: &Path, cfg: &Config) -> Failure {
        match self.run(root, cfg) {
            Ok(_) => panic!("the files stage should have failed"),
            Err(f) => f,
        }
    }
}

/// Everything about a tree a user could notice, except times: kind, mode, owner, contents or
/// link target, per path.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let head = format!("{:o} {}:{}", md.mode() & 0o7777, md.uid(), md.gid());
            let ft = md.file_type();
            if ft.is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, format!("link {head} -> {}", t.display()));
            } else if ft.is_dir() {
                out.insert(rel, format!("dir {head}"));
                walk(base, &p, out);
            } else {
                let data = fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!("file {head} {}", String::from_utf8_lossy(&data)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn meta(p: impl AsRef<Path>) -> fs::Metadata {
    fs::symlink_metadata(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn mode(p: impl AsRef<Path>) -> u32 {
    meta(p).mode() & 0o7777
}

fn owner(p: impl AsRef<Path>) -> (u32, u32) {
    let m = meta(p);
    (m.uid(), m.gid())
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn gzip_data_url(data: &[u8]) -> String {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    let gz = enc.finish().unwrap();
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(gz)
    )
}

/// Temporary names the stage would leave behind if it failed half-way.
fn temp_files(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_keys()
        .filter(|k| k.contains(".ember-"))
        .collect()
}

#[test]
fn files_directories_and_links_follow_ignitions_rules() {
    let t = target("rules");
    let root = t.path();
    let gz_body = b"compressed body\n".repeat(50);
    let cfg = parse(v36(json!({"storage": {
        "directories": [
            {"path": "/d1"},
            {"path": "/d2/sub", "mode": 0o700},
            {"path": "/sticky", "mode": 0o1777},
            {"path": "/setgid", "mode": 0o2775, "group": {"id": 4343}},
        ],
        "files": [
            {"path": "/f/plain", "contents": {"source": "data:,hello%0A"}, "mode": 0o600},
            {"path": "/f/empty"},
            {"path": "/f/empty-source", "contents": {"source": ""}},
            {"path": "/f/gz", "contents": {"source": gzip_data_url(&gz_body), "compression": "gzip",
                "verification": {"hash": format!("sha256-{}", hex(&sha2::Sha256::digest(&gz_body)))}}},
            {"path": "/f/suid", "contents": {"source": "data:,x"}, "mode": 0o4755, "user": {"id": 4242}},
            {"path": "/f/appended", "append": [{"source": "data:,a"}, {"source": "data:,b"}]},
            {"path": "/f/both", "contents": {"source": "data:,1"}, "append": [{"source": "data:,2"}]},
            {"path": "/deep/er/still/file", "contents": {"source": "data:,deep"}},
        ],
        "links": [
            {"path": "/l/abs", "target": "/f/plain"},
            {"path": "/l/rel", "target": "../f/plain"},
            {"path": "/l/dangling", "target": "/nowhere"},
            {"path": "/l/hard", "target": "/f/plain", "hard": true},
        ],
    }})));
    let mut env = Env::new();
    let ops = env.run_ok(root, &cfg);
    assert!(ops.records().iter().all(|r| r.error.is_none()));

    assert_eq!(mode(root.join("d1")), 0o755);
    assert_eq!(owner(root.join("d1")), (0, 0));
    assert_eq!(mode(root.join("d2")), 0o755, "missing parents are 0755");
    assert_eq!(
        owner(root.join("d2")),
        (0, 0),
        "missing parents are root:root"
    );
    assert_eq!(mode(root.join("d2/sub")), 0o700);
    assert_eq!(mode(root.join("sticky")), 0o1777);
    assert_eq!(mode(root.join("setgid")), 0o2775);
    assert_eq!(owner(root.join("setgid")), (0, 4343));

    assert_eq!(read(root.join("f/plain")), "hello\n");
    assert_eq!(mode(root.join("f/plain")), 0o600);
    assert_eq!(mode(root.join("f")), 0o755);
    assert_eq!(read(root.join("f/empty")), "");
    assert_eq!(mode(root.join("f/empty")), 0o644, "files default to 0644");
    assert_eq!(read(root.join("f/empty-source")), "");
    assert_eq!(fs::read(root.join("f/gz")).unwrap(), gz_body);
    assert_eq!(
        mode(root.join("f/suid")),
        0o4755,
        "setuid survives the chown"
    );
    assert_eq!(owner(root.join("f/suid")), (4242, 0));
    assert_eq!(read(root.join("f/appended")), "ab");
    assert_eq!(read(root.join("f/both")), "12");
    assert_eq!(read(root.join("deep/er/still/file")), "deep");
    for d in ["deep", "deep/er", "deep/er/still"] {
        assert_eq!(mode(root.join(d)), 0o755);
    }

    assert_eq!(
        fs::read_link(root.join("l/abs")).unwrap(),
        Path::new("/f/plain")
    );
    assert_eq!(
        fs::read_link(root.join("l/rel")).unwrap(),
        Path::new("../f/plain")
    );
    assert_eq!(
        fs::read_link(root.join("l/dangling")).unwrap(),
        Path::new("/nowhere")
    );
    assert_eq!(
        meta(root.join("l/hard")).ino(),
        meta(root.join("f/plain")).ino()
    );
    assert!(temp_files(root).is_empty());
}

#[test]
fn special_bits_are_masked_before_spec_3_6() {
    let t = target("mask35");
    let root = t.path();
    let cfg = parse(json!({"ignition": {"version": "3.5.0"}, "storage": {
        "files": [{"path": "/x", "mode": 0o4755}],
        "directories": [{"path": "/d", "mode": 0o1777}],
    }}));
    Env::new().run_ok(root, &cfg);
    assert_eq!(mode(root.join("x")), 0o755);
    assert_eq!(mode(root.join("d")), 0o777);
}

#[test]
fn existing_files_keep_mode_and_owner_unless_given() {
    let t = target("existing");
    let root = t.path();
    let keep = root.join("etc/keep");
    fs::write(&keep, "old\n").unwrap();
    fs::set_permissions(&keep, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&keep, Some(4242), Some(4343)).unwrap();
    let chmodded = root.join("etc/chmodded");
    fs::write(&chmodded, "c").unwrap();
    fs::set_permissions(&chmodded, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&chmodded, Some(4242), Some(4343)).unwrap();
    let motd = root.join("etc/motd");
    fs::write(&motd, "hi\n").unwrap();
    fs::set_permissions(&motd, fs::Permissions::from_mode(0o664)).unwrap();
    let replaced = root.join("etc/replaced");
    fs::write(&replaced, "before").unwrap();
    std::os::unix::fs::chown(&replaced, Some(4242), Some(4343)).unwrap();
    let ino_motd = meta(&motd).ino();

    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/etc/keep"},
        {"path": "/etc/chmodded", "mode": 0o644},
        {"path": "/etc/motd", "append": [{"source": "data:,more%0A"}]},
        {"path": "/etc/new-append", "append": [{"source": "data:,first%0A"}, {"source": "data:,second%0A"}]},
        {"path": "/etc/replaced", "overwrite": true, "contents": {"source": "data:,after"}},
    ]}})));
    Env::new().run_ok(root, &cfg);

    assert_eq!(read(&keep), "old\n");
    assert_eq!((mode(&keep), owner(&keep)), (0o640, (4242, 4343)));
    assert_eq!((mode(&chmodded), owner(&chmodded)), (0o644, (4242, 4343)));
    assert_eq!(read(&motd), "hi\nmore\n", "appended to the existing file");
    assert_eq!(mode(&motd), 0o664);
    assert_eq!(meta(&motd).ino(), ino_motd, "appends go to the same file");
    assert_eq!(read(root.join("etc/new-append")), "first\nsecond\n");
    assert_eq!(mode(root.join("etc/new-append")), 0o644);
    assert_eq!(read(&replaced), "after");
    assert_eq!(
        owner(&replaced),
        (0, 0),
        "a replaced file is root's unless given"
    );
    assert_eq!(mode(&replaced), 0o644);
}

#[test]
fn overwrite_decides_what_happens_to_what_is_there() {
    let t = target("overwrite");
    let root = t.path();
    fs::create_dir_all(root.join("wipe/inner")).unwrap();
    fs::write(root.join("wipe/inner/f"), "x").unwrap();
    fs::create_dir_all(root.join("was-dir/sub")).unwrap();
    std::os::unix::fs::symlink("/old", root.join("relink")).unwrap();
    std::os::unix::fs::symlink("/f/target", root.join("same")).unwrap();
    std::os::unix::fs::lchown(root.join("same"), Some(4242), Some(4343)).unwrap();
    let cfg = parse(v36(json!({"storage": {
        "directories": [{"path": "/wipe", "overwrite": true}],
        "files": [{"path": "/was-dir", "overwrite": true, "contents": {"source": "data:,now%20a%20file"}}],
        "links": [
            {"path": "/relink", "target": "/new", "overwrite": true},
            {"path": "/same", "target": "/f/../f/target/"},
        ],
    }})));
    Env::new().run_ok(root, &cfg);
    assert!(root.join("wipe").is_dir());
    assert!(
        !root.join("wipe/inner").exists(),
        "overwrite empties a directory"
    );
    assert_eq!(read(root.join("was-dir")), "now a file");
    assert_eq!(
        fs::read_link(root.join("relink")).unwrap(),
        Path::new("/new")
    );
    assert_eq!(
        fs::read_link(root.join("same")).unwrap(),
        Path::new("/f/target")
    );
    assert_eq!(
        owner(root.join("same")),
        (4242, 4343),
        "a matching symlink is left alone, owner included"
    );
}

#[test]
fn what_is_in_the_way_without_overwrite_is_an_error_before_anything_is_written() {
    let t = target("inway");
    let root = t.path();
    fs::write(root.join("etc/hostname"), "old").unwrap();
    fs::create_dir(root.join("adir")).unwrap();
    fs::write(root.join("afile"), "").unwrap();
    std::os::unix::fs::symlink("/a", root.join("alink")).unwrap();
    fs::write(root.join("hl-target"), "t").unwrap();
    fs::write(root.join("hl-other"), "o").unwrap();
    let cases = [
        (
            json!({"files": [{"path": "/etc/hostname", "contents": {"source": "data:,new"}}]}),
            "$.storage.files.0",
            "a file exists",
        ),
        (
            json!({"files": [{"path": "/adir"}]}),
            "$.storage.files.0",
            "non-regular",
        ),
        (
            json!({"directories": [{"path": "/afile"}]}),
            "$.storage.directories.0",
            "non-directory",
        ),
        (
            json!({"links": [{"path": "/alink", "target": "/b"}]}),
            "$.storage.links.0",
            "different symlink",
        ),
        (
            json!({"links": [{"path": "/hl-other", "target": "/hl-target", "hard": true}]}),
            "$.storage.links.0",
            "different hard link",
        ),
        (
            json!({"files": [{"path": "/afile/below", "contents": {"source": "data:,x"}}]}),
            "$.storage.files.0",
            "resolving",
        ),
        (
            json!({"files": [{"path": "/newfile"}, {"path": "/newfile/below"}]}),
            "$.storage.files.1",
            "makes a file",
        ),
        (
            json!({"links": [{"path": "/hard-to-nothing", "target": "/missing", "hard": true}]}),
            "$.storage.links.0.target",
            "does not exist",
        ),
    ];
    for (storage, path, words) in cases {
        let before = snapshot(root);
        // Something valid comes first in every list, to show that nothing is written at all.
        let mut storage = storage;
        storage
            .as_object_mut()
            .unwrap()
            .entry("directories")
            .or_insert(json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!({"path": "/zz-valid-dir"}));
        let cfg = parse(v36(json!({"storage": storage})));
        let f = Env::new().run_err(root, &cfg);
        assert_eq!(
            f.path.as_ref().map(|p| p.to_string()).as_deref(),
            Some(path),
            "{}",
            f.chain()
        );
        assert!(
            f.chain().contains(words),
            "{:?} not in {}",
            words,
            f.chain()
        );
        assert!(f.hint.is_some(), "{}", f.chain());
        assert_eq!(snapshot(root), before, "{}", f.chain());
    }
}

#[test]
fn owners_by_name_come_from_the_target_not_the_host() {
    let t = target("owners");
    let root = t.path();
    // The host has no such user or group: only the target's account files can answer.
    assert!(!read("/etc/passwd").contains("ember-fs-owner"));
    let cfg = parse(v36(json!({
        "passwd": {"users": [{"name": "made-here", "uid": 5151, "noCreateHome": true}]},
        "storage": {
            "files": [
                {"path": "/o/by-name", "user": {"name": "ember-fs-owner"}, "group": {"name": "ember-fs-group"}},
                {"path": "/o/by-id", "user": {"id": 7}},
                {"path": "/o/new-user", "user": {"name": "made-here"}, "group": {"name": "made-here"}},
            ],
            "directories": [{"path": "/o/dir", "group": {"name": "ember-fs-group"}}],
            "links": [
                {"path": "/o/link", "target": "/o/by-name", "user": {"name": "ember-fs-owner"}, "group": {"id": 0}},
                {"path": "/o/link-default", "target": "/o/by-name"},
            ],
        },
    })));
    Env::new().run_ok(root, &cfg);
    assert_eq!(owner(root.join("o/by-name")), (4242, 4343));
    assert_eq!(owner(root.join("o/by-id")), (7, 0));
    let made = read(root.join("etc/passwd"));
    assert!(made.contains("made-here:x:5151:"), "{made}");
    let gid = made
        .lines()
        .find(|l| l.starts_with("made-here:"))
        .and_then(|l| l.split(':').nth(3))
        .unwrap()
        .parse::<u32>()
        .unwrap();
    assert_eq!(owner(root.join("o/new-user")), (5151, gid));
    assert_eq!(owner(root.join("o/dir")), (0, 4343));
    assert_eq!(owner(root.join("o/link")), (4242, 0));
    assert_eq!(
        owner(root.join("o/link-default")),
        (4242, 4343),
        "a new symlink defaults to the owner of what it points to"
    );
}

#[test]
fn an_unknown_owner_name_is_an_error_before_anything_is_written() {
    let t = target("unknown-owner");
    let root = t.path();
    let before = snapshot(root);
    // "root" exists on every host; "daemon" on Debian hosts but not in this target.
    let cfg = parse(v36(json!({"storage": {
        "files": [{"path": "/etc/a"}, {"path": "/etc/b", "user": {"name": "daemon"}}],
    }})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.files.1.user.name"
    );
    assert!(
        f.chain().contains("no such user \"daemon\""),
        "{}",
        f.chain()
    );
    assert_eq!(snapshot(root), before);

    let cfg = parse(v36(json!({"storage": {
        "directories": [{"path": "/x", "group": {"name": "nogroup"}}],
    }})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.directories.0.group.name"
    );
    assert_eq!(snapshot(root), before);

    // Without USERGROUPS_ENAB, a new user gets no group of its own name: known while planning.
    fs::remove_file(root.join("etc/login.defs")).unwrap();
    let before = snapshot(root);
    let cfg = parse(v36(json!({
        "passwd": {"users": [{"name": "solo"}]},
        "storage": {"files": [{"path": "/etc/solo", "user": {"name": "solo"}, "group": {"name": "solo"}}]},
    })));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.files.0.group.name"
    );
    assert_eq!(snapshot(root), before);
}

#[test]
fn hostile_symlinks_never_lead_outside_the_root() {
    require_root();
    let base = TempDir::new("files-hostile");
    let outside = base.path().join("outside");
    fs::create_dir_all(outside.join("etc")).unwrap();
    fs::write(outside.join("sentinel"), "untouched").unwrap();
    fs::write(outside.join("etc/passwd"), "host:x:0:0::/:/bin/sh\n").unwrap();
    let root = base.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let sym = |t: &Path, l: &str| std::os::unix::fs::symlink(t, root.join(l)).unwrap();
    sym(&outside, "abs");
    sym(Path::new("../outside"), "up");
    sym(Path::new("/"), "slash");
    sym(Path::new("../../../../../.."), "dotdot");
    sym(&outside.join("sentinel"), "sentinel-link");
    let outside_before = snapshot(&outside);

    let cfg = parse(v36(json!({"storage": {
        "directories": [{"path": "/up/newdir", "mode": 0o700}],
        "files": [
            {"path": "/abs/x", "contents": {"source": "data:,x"}},
            {"path": "/up/y", "contents": {"source": "data:,y"}},
            {"path": "/slash/z", "contents": {"source": "data:,z"}},
            {"path": "/dotdot/w", "contents": {"source": "data:,w"}},
            {"path": "/up/sentinel", "append": [{"source": "data:,appended"}]},
            {"path": "/up/etc/passwd", "append": [{"source": "data:,evil:x:0:0::/:/bin/sh"}]},
            {"path": "/sentinel-link", "overwrite": true, "contents": {"source": "data:,replaced"}},
        ],
        "links": [
            {"path": "/up/l", "target": "/etc/passwd"},
            {"path": "/up/h", "target": "/abs/x", "hard": true},
        ],
    }})));
    Env::new().run_ok(&root, &cfg);

    assert_eq!(
        snapshot(&outside),
        outside_before,
        "nothing outside the root changed"
    );
    // Every path was re-rooted inside the root.
    let abs_in_root = root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(read(abs_in_root.join("x")), "x");
    assert_eq!(read(root.join("outside/y")), "y");
    assert_eq!(read(root.join("z")), "z");
    assert_eq!(read(root.join("w")), "w");
    assert_eq!(read(root.join("outside/sentinel")), "appended");
    assert_eq!(
        read(root.join("outside/etc/passwd")),
        "evil:x:0:0::/:/bin/sh"
    );
    assert!(root.join("outside/newdir").is_dir());
    assert_eq!(
        fs::read_link(root.join("sentinel-link")).ok(),
        None,
        "the link itself was replaced, not followed"
    );
    assert_eq!(read(root.join("sentinel-link")), "replaced");
    assert_eq!(
        meta(root.join("outside/h")).ino(),
        meta(abs_in_root.join("x")).ino()
    );
}

#[test]
fn two_paths_that_resolve_to_one_place_are_refused() {
    let t = target("collide");
    let root = t.path();
    fs::create_dir(root.join("real")).unwrap();
    std::os::unix::fs::symlink("/real", root.join("alias")).unwrap();
    let before = snapshot(root);
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/real/f", "contents": {"source": "data:,1"}},
        {"path": "/alias/f", "contents": {"source": "data:,2"}},
    ]}})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.storage.files.1");
    assert!(
        f.chain()
            .contains("\"/alias/f\" resolves to \"/real/f\" after symlink chasing, but the entry with path \"/real/f\" also resolves there"),
        "{}",
        f.chain()
    );
    assert_eq!(snapshot(root), before);
}

fn full_config() -> Config {
    parse(v36(json!({
        "passwd": {
            "groups": [{"name": "admins", "gid": 3000}],
            "users": [{"name": "core", "uid": 1500, "groups": ["admins", "wheel"],
                       "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests core@test"]}],
        },
        "storage": {
            "directories": [{"path": "/var/lib/app", "mode": 0o750, "user": {"name": "core"}}],
            "files": [
                {"path": "/etc/app.conf", "overwrite": true, "contents": {"source": "data:,a=1%0A"}},
                {"path": "/etc/app.d/empty"},
                {"path": "/var/lib/app/state", "user": {"name": "core"}, "group": {"name": "admins"}, "mode": 0o640},
            ],
            "links": [
                {"path": "/etc/app.link", "target": "/etc/app.conf"},
                {"path": "/etc/app.d/hard", "target": "/etc/app.d/empty", "hard": true},
            ],
        },
        "systemd": {"units": [
            {"name": "app.service", "enabled": true,
             "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
             "dropins": [{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}]},
            {"name": "getty@.service", "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=getty.target\n"},
            {"name": "getty@tty2.service", "enabled": true},
            {"name": "noisy.service", "mask": true},
        ]},
    })))
}

#[test]
fn running_again_on_its_own_output_changes_nothing() {
    let t = target("rerun");
    let root = t.path();
    let cfg = full_config();
    let mut env = Env::new();
    env.run_ok(root, &cfg);
    let first = snapshot(root);
    env.run_ok(root, &cfg);
    let second = snapshot(root);
    // The account files' `-` backups hold the state before each call, so they differ by design.
    let strip = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter().filter(|(k, _)| !k.ends_with('-')).collect()
    };
    assert_eq!(strip(first.clone()), strip(second));
    assert!(first.contains_key("home/core/.ssh/authorized_keys.d/ignition"));
    assert_eq!(
        read(root.join("etc/systemd/system-preset/20-ignition.preset")),
        "enable app.service\nenable getty@.service tty2\n",
        "preset lines are not repeated"
    );
}

#[test]
fn units_dropins_masks_and_presets() {
    let t = target("units");
    let root = t.path();
    let sys = root.join("etc/systemd/system");
    let lib = root.join("usr/lib/systemd/system");
    fs::create_dir_all(sys.join("multi-user.target.wants")).unwrap();
    fs::create_dir_all(&lib).unwrap();
    // An installed and enabled unit, with an alias.
    fs::write(
        lib.join("on.service"),
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=on-alias.service\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/on.service",
        sys.join("multi-user.target.wants/on.service"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/on.service",
        sys.join("on-alias.service"),
    )
    .unwrap();
    // Installed, not enabled.
    fs::write(
        lib.join("off.service"),
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    // An instance enabled by hand, and another one that stays.
    fs::write(
        lib.join("tpl@.service"),
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    for i in ["one", "keep"] {
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/tpl@.service",
            sys.join(format!("multi-user.target.wants/tpl@{i}.service")),
        )
        .unwrap();
    }
    // Masked before; the config unmasks it.
    std::os::unix::fs::symlink("/dev/null", sys.join("was-masked.service")).unwrap();
    // A masked unit whose link points elsewhere is not a mask: unmask leaves it.
    std::os::unix::fs::symlink("/opt/units/other.service", sys.join("not-a-mask.service")).unwrap();

    let cfg = parse(v36(json!({"systemd": {"units": [
        {"name": "new.service", "enabled": true,
         "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
         "dropins": [
             {"name": "10-a.conf", "contents": "[Service]\nEnvironment=A=1\n"},
             {"name": "20-empty.conf", "contents": ""},
             {"name": "30-none.conf"},
         ]},
        {"name": "nocontents.service", "contents": ""},
        {"name": "masked.service", "mask": true},
        {"name": "was-masked.service", "mask": false},
        {"name": "not-a-mask.service", "mask": false},
        {"name": "on.service", "enabled": false},
        {"name": "off.service", "enabled": false},
        {"name": "absent.service", "enabled": false},
        {"name": "inst@a.service", "enabled": true, "contents": ""},
        {"name": "inst@b.service", "enabled": true},
        {"name": "tpl@one.service", "enabled": false},
        {"name": "zz.target", "enabled": true},
    ]}})));
    Env::new().run_ok(root, &cfg);

    assert_eq!(
        read(sys.join("new.service")),
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    );
    assert_eq!(mode(sys.join("new.service")), 0o644);
    assert_eq!(
        read(sys.join("new.service.d/10-a.conf")),
        "[Service]\nEnvironment=A=1\n"
    );
    assert_eq!(
        read(sys.join("new.service.d/20-empty.conf")),
        "",
        "empty contents write an empty drop-in"
    );
    assert!(
        !sys.join("new.service.d/30-none.conf").exists(),
        "no contents, no drop-in"
    );
    assert!(
        !sys.join("nocontents.service").exists(),
        "empty unit contents write nothing"
    );
    assert_eq!(
        fs::read_link(sys.join("masked.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert!(!sys.join("was-masked.service").exists());
    assert!(meta(sys.join("not-a-mask.service"))
        .file_type()
        .is_symlink());

    // on.service was enabled: its symlinks are gone and it is preset disabled.
    assert!(!sys.join("multi-user.target.wants/on.service").exists());
    assert!(fs::symlink_metadata(sys.join("on-alias.service")).is_err());
    // Only the named instance is disabled.
    assert!(fs::symlink_metadata(sys.join("multi-user.target.wants/tpl@one.service")).is_err());
    assert!(fs::symlink_metadata(sys.join("multi-user.target.wants/tpl@keep.service")).is_ok());
    assert_eq!(
        read(root.join("etc/systemd/system-preset/20-ignition.preset")),
        "enable inst@.service a b\nenable new.service\ndisable on.service\ndisable tpl@one.service\nenable zz.target\n"
    );
    assert_eq!(
        mode(root.join("etc/systemd/system-preset/20-ignition.preset")),
        0o644
    );
}

#[test]
fn a_unit_name_with_a_slash_is_refused_before_anything_is_written() {
    let t = target("unit-slash");
    let root = t.path();
    let before = snapshot(root);
    for (unit, path) in [
        (
            json!({"name": "../../etc/evil.service", "contents": "[Unit]\n"}),
            "$.systemd.units.1.name",
        ),
        (
            json!({"name": "ok.service", "dropins": [{"name": "../x.conf", "contents": ""}]}),
            "$.systemd.units.1.dropins.0.name",
        ),
    ] {
        let cfg = parse(v36(json!({
            "storage": {"files": [{"path": "/etc/written-first", "contents": {"source": "data:,x"}}]},
            "systemd": {"units": [{"name": "fine.service", "contents": "[Unit]\n"}, unit]},
        })));
        let f = Env::new().run_err(root, &cfg);
        assert_eq!(f.path.as_ref().unwrap().to_string(), path);
        assert!(f.chain().contains("invalid"), "{}", f.chain());
        assert_eq!(snapshot(root), before);
    }
}

#[test]
fn ssh_keys_go_where_ignition_puts_them() {
    for fragment in [true, false] {
        let t = target("ssh");
        let root = t.path();
        let cfg = parse(v36(json!({"passwd": {"users": [
            {"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA1 a@b", "ssh-rsa AAAA2 c@d"]},
        ]}})));
        let mut env = Env::new();
        env.settings.write_authorized_keys_fragment = fragment;
        env.run_ok(root, &cfg);
        let (dir, file) = if fragment {
            (".ssh/authorized_keys.d", ".ssh/authorized_keys.d/ignition")
        } else {
            (".ssh", ".ssh/authorized_keys")
        };
        let home = root.join("home/core");
        let uid = owner(&home).0;
        assert_ne!(uid, 0);
        assert_eq!(
            read(home.join(file)),
            "ssh-ed25519 AAAA1 a@b\nssh-rsa AAAA2 c@d\n"
        );
        assert_eq!(mode(home.join(file)), 0o600);
        assert_eq!(mode(home.join(dir)), 0o700);
        assert_eq!(mode(home.join(".ssh")), 0o700);
        assert_eq!(owner(home.join(file)), owner(&home));
        assert_eq!(owner(home.join(dir)), owner(&home));
        let other = if fragment {
            ".ssh/authorized_keys"
        } else {
            ".ssh/authorized_keys.d"
        };
        assert!(!home.join(other).exists());
    }
}

#[test]
fn directories_made_by_the_mount_stage_under_a_home_go_to_the_user() {
    let t = target("notated");
    let root = t.path();
    fs::create_dir_all(root.join("home/core/data")).unwrap();
    fs::create_dir_all(root.join("home/core2")).unwrap();
    fs::create_dir_all(root.join("var/x")).unwrap();
    let cfg = parse(v36(
        json!({"passwd": {"users": [{"name": "core", "uid": 1600, "noCreateHome": true}]}}),
    ));
    let mut env = Env::new();
    env.state.notated_directories = vec![
        format!("{}/home/core/data", root.display()),
        "/home/core2".into(),
        "/var/x".into(),
    ];
    env.run_ok(root, &cfg);
    assert_eq!(owner(root.join("home/core/data")).0, 1600);
    assert_eq!(mode(root.join("home/core/data")), 0o700);
    assert_eq!(owner(root.join("home/core2")), (0, 0));
    assert_eq!(owner(root.join("var/x")), (0, 0));
}

#[test]
fn the_result_file_records_the_provisioning() {
    let t = target("result");
    let root = t.path();
    let cfg = parse(v36(json!({})));
    let mut env = Env::new();
    env.settings.result_file = Some(PathBuf::from("/etc/.ignition-result.json"));
    env.state.fetched_configs.push(FetchedConfig {
        kind: "user".into(),
        source: "file".into(),
        referenced: false,
    });
    env.run_ok(root, &cfg);
    let path = root.join("etc/.ignition-result.json");
    assert_eq!(mode(&path), 0o600);
    let text = read(&path);
    assert!(text.starts_with("{\n  \"provisioningBootID\": \"0b1e5a8c-7a4e-4a4f-9d5e-3c2b1a0f9e8d\",\n  \"provisioningDate\": \""), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["userConfigProvided"], json!(true));
    let date = v["provisioningDate"].as_str().unwrap();
    assert_eq!(date.len(), 20, "{date}");
    assert!(date.ends_with('Z') && date.as_bytes()[10] == b'T', "{date}");
    assert!(v.get("previousReport").is_none());

    // A second run keeps the first report (this host has no is-live-image).
    env.state.fetched_configs.clear();
    env.run_ok(root, &cfg);
    let v2: Value = serde_json::from_str(&read(&path)).unwrap();
    assert_eq!(v2["userConfigProvided"], json!(false));
    assert_eq!(v2["previousReport"], v);

    // Not written when applying to a tree.
    let t2 = target("result-apply");
    let mut env = Env::with_mode(Mode::Apply {
        ignore_unsupported: false,
    });
    env.settings.result_file = Some(PathBuf::from("/etc/.ignition-result.json"));
    env.run_ok(t2.path(), &cfg);
    assert!(!t2.path().join("etc/.ignition-result.json").exists());
}

#[test]
fn luks_key_files_and_crypttab() {
    let t = target("luks");
    let root = t.path();
    let dev = TempDir::new("files-luks-dev");
    let img = dev.path().join("volume.img");
    fs::File::create(&img).unwrap().set_len(20 << 20).unwrap();
    let key = dev.path().join("key");
    fs::write(&key, "not-a-secret-test-key").unwrap();
    let uuid = "6f1c3e1a-8b9d-4c5e-a7f2-0d1e2f3a4b5c";
    let out = std::process::Command::new("cryptsetup")
        .args(["luksFormat", "--type", "luks2", "-q", "--pbkdf", "pbkdf2"])
        .args([
            "--pbkdf-force-iterations",
            "1000",
            "--uuid",
            uuid,
            "--key-file",
        ])
        .arg(&key)
        .arg(&img)
        .output()
        .expect("running cryptsetup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = parse(v36(json!({"storage": {"luks": [
        {"name": "data", "device": img.display().to_string()},
        {"name": "net", "device": img.display().to_string(),
         "clevis": {"tang": [{"url": "http://127.0.0.1:1", "thumbprint": "x"}]}},
    ]}})));
    let key_url = format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode("not-a-secret-test-key")
    );
    let mut env = Env::new();
    env.state
        .luks_persist_key_files
        .insert("data".into(), key_url.clone());
    env.run_ok(root, &cfg);
    assert_eq!(read(root.join("etc/luks/data")), "not-a-secret-test-key");
    assert_eq!(mode(root.join("etc/luks/data")), 0o600);
    assert_eq!(mode(root.join("etc/luks")), 0o700);
    assert!(
        !root.join("etc/luks/net").exists(),
        "clevis volumes have no key file"
    );
    let expected = format!(
        "data UUID={uuid} /etc/luks/data luks,x-initrd.attach\nnet UUID={uuid} none luks,_netdev,x-initrd.attach\n"
    );
    assert_eq!(read(root.join("etc/crypttab")), expected);
    assert_eq!(mode(root.join("etc/crypttab")), 0o600);
    assert!(
        env.state.luks_persist_key_files.is_empty(),
        "keys are forgotten"
    );

    // Again: no second line per volume.
    env.state
        .luks_persist_key_files
        .insert("data".into(), key_url);
    env.run_ok(root, &cfg);
    assert_eq!(read(root.join("etc/crypttab")), expected);

    // Without the disks stage's key: refused before writing.
    let t2 = target("luks-nokey");
    let before = snapshot(t2.path());
    let f = Env::new().run_err(t2.path(), &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.storage.luks.0");
    assert_eq!(snapshot(t2.path()), before);
}

#[test]
fn a_hash_mismatch_leaves_nothing_behind() {
    let t = target("hash");
    let root = t.path();
    let before = snapshot(root);
    let wrong = format!("sha512-{}", "0".repeat(128));
    // A data URL is checked while planning.
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/etc/good", "contents": {"source": "data:,fine"}},
        {"path": "/etc/bad", "contents": {"source": "data:,oops", "verification": {"hash": wrong}}},
    ]}})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.files.1.contents"
    );
    assert!(
        f.chain().contains("hash verification failed"),
        "{}",
        f.chain()
    );
    assert!(f.hint.unwrap().contains("verification.hash"));
    assert_eq!(snapshot(root), before);

    // A remote source can only be checked once downloaded.
    let server = HttpServer::start(|_, w| respond(w, 200, &[], b"served body"));
    // Files of the same depth are only renamed into place once all of them were written, so
    // the good file next to the bad one does not appear either.
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/etc/good-neighbour", "contents": {"source": "data:,fine"}},
        {"path": "/etc/remote", "contents": {"source": server.url("/blob"), "verification": {"hash": wrong}}},
        {"path": "/etc/remote-append", "append": [{"source": server.url("/blob"), "verification": {"hash": wrong}}]},
    ]}})));
    let f = Env::new().run_err(root, &cfg);
    assert!(
        f.chain().contains("hash verification failed"),
        "{}",
        f.chain()
    );
    assert!(f
        .path
        .as_ref()
        .unwrap()
        .to_string()
        .starts_with("$.storage.files."));
    assert_eq!(snapshot(root), before, "no file, no temporary file");
    assert!(temp_files(root).is_empty());

    // Remote sources up to 4 MiB are fetched and checked before the first write, so a bad
    // one deep in the tree also keeps the files of shallower levels from being written.
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/hostname", "contents": {"source": "data:,shallow"}},
        {"path": "/srv/app/deep/payload", "contents": {"source": server.url("/blob"), "verification": {"hash": wrong}}},
    ]}})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.files.1.contents"
    );
    assert_eq!(snapshot(root), before, "nothing at any depth");
    // The same for a remote source that does not exist: one request, its 404 the cause.
    let missing = HttpServer::start(|_, w| respond(w, 404, &[], b""));
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/hostname", "contents": {"source": "data:,shallow"}},
        {"path": "/srv/app/deep/payload", "contents": {"source": missing.url("/gone")}},
    ]}})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(
        f.path.as_ref().unwrap().to_string(),
        "$.storage.files.1.contents"
    );
    assert!(f.chain().contains("not found"), "{}", f.chain());
    assert_eq!(missing.requests().len(), 1);
    assert_eq!(snapshot(root), before, "nothing at any depth");

    // A small source is fetched once, ahead; a source over 4 MiB is refused ahead as soon as
    // its Content-Length is known, and fetched while writing; both land whole.
    let big: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 251) as u8).collect();
    let big_hash = crate::harness::sha512_hex(&big);
    let served = big.clone();
    let server2 = HttpServer::start(move |r, w| match r.path() {
        "/big" => respond(w, 200, &[], &served),
        _ => respond(w, 200, &[], b"small"),
    });
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/opt/a/big", "contents": {"source": server2.url("/big"), "verification": {"hash": format!("sha512-{big_hash}")}}},
        {"path": "/opt/small", "contents": {"source": server2.url("/small")}, "append": [{"source": server2.url("/small")}]},
    ]}})));
    Env::new().run_ok(root, &cfg);
    assert_eq!(fs::read(root.join("opt/a/big")).unwrap(), big);
    assert_eq!(read(root.join("opt/small")), "smallsmall");
    let paths: Vec<String> = server2
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/small").count(),
        2,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| *p == "/big").count(),
        2,
        "{paths:?}"
    );
    fs::remove_dir_all(root.join("opt")).unwrap();

    // An append to an existing file with a bad hash leaves the file as it was.
    fs::write(root.join("etc/motd"), "hi\n").unwrap();
    let before = snapshot(root);
    let cfg = parse(v36(json!({"storage": {"files": [
        {"path": "/etc/motd", "append": [{"source": server.url("/blob"), "verification": {"hash": wrong}}]},
    ]}})));
    Env::new().run_err(root, &cfg);
    assert_eq!(snapshot(root), before);
}

#[test]
fn bad_users_are_refused_before_anything_is_written() {
    let t = target("badusers");
    let root = t.path();
    let before = snapshot(root);
    let cases = [
        (
            json!({"users": [{"name": "ok-user"}, {"name": "Bad User!"}]}),
            "$.passwd.users.1",
            "invalid user name",
        ),
        (
            json!({"users": [{"name": "newcomer", "uid": 4242}]}),
            "$.passwd.users.0",
            "uid 4242 is already used by \"ember-fs-owner\"",
        ),
        (
            json!({"users": [{"name": "neg", "uid": -5}]}),
            "$.passwd.users.0.uid",
            "not a valid user or group id",
        ),
    ];
    for (passwd, path, words) in cases {
        let cfg = parse(v36(json!({
            "passwd": passwd,
            "storage": {"files": [{"path": "/etc/would-be-written", "contents": {"source": "data:,x"}}]},
            "systemd": {"units": [{"name": "x.service", "contents": "[Unit]\n"}]},
        })));
        let f = Env::new().run_err(root, &cfg);
        assert_eq!(f.path.as_ref().unwrap().to_string(), path, "{}", f.chain());
        assert!(
            f.chain().contains(words),
            "{:?} not in {}",
            words,
            f.chain()
        );
        assert_eq!(snapshot(root), before, "{}", f.chain());
    }
}

#[test]
fn a_root_without_etc_passwd_is_a_clear_error() {
    require_root();
    let t = TempDir::new("files-nopasswd");
    let root = t.path();
    fs::create_dir(root.join("etc")).unwrap();
    let before = snapshot(root);
    let cfg = parse(v36(json!({
        "passwd": {"users": [{"name": "core"}]},
        "storage": {"files": [{"path": "/etc/x", "contents": {"source": "data:,x"}}]},
    })));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.passwd");
    assert!(
        f.chain().contains("the target root has no /etc/passwd"),
        "{}",
        f.chain()
    );
    assert!(f.hint.is_some());
    assert_eq!(snapshot(root), before);
}

#[test]
fn apply_mode_refuses_users_unless_told_to_ignore_them() {
    let t = target("apply");
    let root = t.path();
    let before = snapshot(root);
    let cfg = parse(v36(json!({
        "passwd": {"users": [{"name": "core"}]},
        "storage": {"files": [{"path": "/etc/x", "contents": {"source": "data:,x"}}]},
    })));
    let mut env = Env::with_mode(Mode::Apply {
        ignore_unsupported: false,
    });
    let f = env.run_err(root, &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.passwd");
    assert!(f.hint.unwrap().contains("--ignore-unsupported"));
    assert_eq!(snapshot(root), before);

    let mut env = Env::with_mode(Mode::Apply {
        ignore_unsupported: true,
    });
    env.run_ok(root, &cfg);
    assert_eq!(read(root.join("etc/x")), "x");
    assert!(!read(root.join("etc/passwd")).contains("core"));

    // LUKS volumes likewise: no device to ask, no crypttab.
    let before = snapshot(root);
    let cfg = parse(v36(
        json!({"storage": {"luks": [{"name": "data", "device": "/dev/vdb"}]}}),
    ));
    let mut env = Env::with_mode(Mode::Apply {
        ignore_unsupported: false,
    });
    let f = env.run_err(root, &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.storage.luks");
    assert_eq!(snapshot(root), before);
    let mut env = Env::with_mode(Mode::Apply {
        ignore_unsupported: true,
    });
    env.run_ok(root, &cfg);
    assert_eq!(snapshot(root), before);
}

#[test]
fn logs_name_paths_never_contents() {
    let t = target("logs");
    let root = t.path();
    let cfg = parse(v36(json!({
        "passwd": {"users": [{"name": "core", "passwordHash": "$6$secret-salt$secrethash",
                              "sshAuthorizedKeys": ["ssh-ed25519 SECRETKEYMATERIAL x"]}]},
        "storage": {"files": [{"path": "/etc/secret", "contents": {"source": "data:,TOPSECRETCONTENT"}}]},
    })));
    let ops = Env::new().run_ok(root, &cfg);
    let all: String = ops
        .records()
        .iter()
        .map(|r| format!("{}\n", r.description))
        .collect();
    assert!(all.contains("writing file \"/etc/secret\""), "{all}");
    for secret in ["TOPSECRET", "SECRETKEY", "secrethash"] {
        assert!(!all.contains(secret), "{secret} leaked into {all}");
    }
}

#[test]
fn a_path_below_a_link_of_the_config_is_refused_after_resolution() {
    let t = target("below-link");
    let root = t.path();
    fs::write(root.join("etc/hostname"), "keep-me\n").unwrap();
    fs::create_dir(root.join("y")).unwrap();
    std::os::unix::fs::symlink("/y", root.join("x")).unwrap();
    let before = snapshot(root);
    // Literally the paths do not overlap, so validation lets them through; resolved, the
    // file is below the link, which would lead it to /etc/hostname.
    let cfg = parse(v36(json!({"storage": {
        "links": [{"path": "/x/cfg", "target": "/etc"}],
        "files": [{"path": "/y/cfg/hostname", "contents": {"source": "data:,clobbered"}}],
    }})));
    let f = Env::new().run_err(root, &cfg);
    assert_eq!(f.path.as_ref().unwrap().to_string(), "$.storage.files.0");
    assert!(
        f.chain().contains("which this config makes a symlink"),
        "{}",
        f.chain()
    );
    assert_eq!(snapshot(root), before);
}
