//! `system::passwd` against the real shadow-utils.
//!
//! Each case builds a small target tree from this Debian machine's defaults (base-passwd's
//! passwd/group, shadow files, the host's login.defs, /etc/default/useradd and /etc/skel),
//! copies it, applies Ember on one copy and the real `useradd/usermod/userdel/groupadd/
//! groupmod/groupdel --root` with Ignition's exact arguments on the other, and compares the
//! two trees: every account file field by field (the last-change day may differ by one), and
//! every other file, directory and link with its type, mode, owner, contents and (for files
//! and links) modification time. Only the `<file>-` backups are left out: Ember keeps the
//! state before the whole call, the tools the state before their last command.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use ember::system::passwd::{self, Action, Error, GroupSpec, UserSpec};
use ember::system::rootfs::Root;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root: it runs useradd --root and checks file owners (run the integration tests as root)"
    );
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ember-passwd-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a shadow-utils tool. /proc is mounted inside the `--root` tree for the duration:
/// without it, Debian 12's useradd (glibc 2.36 emulates fchmodat(AT_SYMLINK_NOFOLLOW) through
/// /proc/self/fd) fails on the first directory in /etc/skel and silently stops copying the
/// rest. Ember has no such dependency; the reference should show the intended behaviour.
fn run(cmd: &[String]) -> std::process::Output {
    let root = cmd
        .iter()
        .position(|a| a == "--root")
        .map(|i| PathBuf::from(&cmd[i + 1]));
    let proc_dir = root.map(|r| r.join("proc")).filter(|p| p.is_dir());
    if let Some(p) = &proc_dir {
        let st = Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success(), "mounting /proc in {}", p.display());
    }
    let out = Command::new(format!("/usr/sbin/{}", cmd[0]))
        .args(&cmd[1..])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if let Some(p) = &proc_dir {
        let st = Command::new("umount").arg(p).status().unwrap();
        assert!(st.success(), "unmounting {}", p.display());
    }
    out
}

fn run_ok(cmd: &[String]) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(v: &str) -> String {
    v.to_string()
}

/// A target tree like a freshly installed Debian root, plus a few things that exercise the
/// edges: a comment and a NIS line in /etc/passwd, a skel with a subdirectory, a private
/// file, a hard link and a symlink into /etc/skel, lastlog/faillog files with old records.
fn build_tree(dir: &Path) {
    let etc = dir.join("etc");
    fs::create_dir_all(etc.join("default")).unwrap();
    let mut passwd = fs::read_to_string("/usr/share/base-passwd/passwd.master").unwrap();
    passwd.push_str("# local accounts below\n");
    let group = fs::read_to_string("/usr/share/base-passwd/group.master").unwrap();
    let shadow: String = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{}:*:19000:0:99999:7:::\n", l.split(':').next().unwrap()))
        .collect();
    let gshadow: String = group
        .lines()
        .map(|l| format!("{}:*::\n", l.split(':').next().unwrap()))
        .collect();
    passwd.push_str("+@netadmins::::::\n");
    fs::write(etc.join("passwd"), passwd).unwrap();
    fs::write(etc.join("group"), group).unwrap();
    fs::write(etc.join("shadow"), shadow).unwrap();
    fs::write(etc.join("gshadow"), gshadow).unwrap();
    for f in ["shadow", "gshadow"] {
        fs::set_permissions(etc.join(f), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(etc.join(f), Some(0), Some(42)).unwrap();
    }
    fs::copy("/etc/login.defs", etc.join("login.defs")).unwrap();
    fs::copy("/etc/default/useradd", etc.join("default/useradd")).unwrap();
    fs::write(etc.join("subuid"), "").unwrap();
    fs::write(etc.join("subgid"), "").unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg("/etc/skel")
        .arg(etc.join("skel"))
        .status()
        .unwrap();
    assert!(st.success());
    let skel = etc.join("skel");
    fs::create_dir(skel.join(".config")).unwrap();
    fs::write(skel.join(".config/app.conf"), "setting=1\n").unwrap();
    fs::write(skel.join(".private"), "secret\n").unwrap();
    fs::set_permissions(skel.join(".private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(skel.join(".private"), skel.join(".private-link")).unwrap();
    std::os::unix::fs::symlink("/etc/skel/.bashrc", skel.join(".bashrc-link")).unwrap();
    std::os::unix::fs::symlink(".profile", skel.join(".profile-rel")).unwrap();
    fs::create_dir_all(dir.join("home")).unwrap();
    fs::create_dir_all(dir.join("proc")).unwrap();
    fs::create_dir_all(dir.join("var/mail")).unwrap();
    std::os::unix::fs::chown(dir.join("var/mail"), Some(0), Some(8)).unwrap();
    fs::set_permissions(dir.join("var/mail"), fs::Permissions::from_mode(0o2775)).unwrap();
    fs::create_dir_all(dir.join("var/log")).unwrap();
    // Old records at uid 1000 (and 1001) that a new user must not inherit.
    let mut lastlog = vec![0u8; 292 * 1100];
    lastlog[292 * 1000..292 * 1000 + 4].copy_from_slice(&1_600_000_000u32.to_le_bytes());
    lastlog[292 * 1000 + 4..292 * 1000 + 9].copy_from_slice(b"pts/1");
    lastlog[292 * 1001 + 4..292 * 1001 + 9].copy_from_slice(b"pts/2");
    fs::write(dir.join("var/log/lastlog"), lastlog).unwrap();
    let mut faillog = vec![0u8; 32 * 1100];
    faillog[32 * 1000] = 3;
    fs::write(dir.join("var/log/faillog"), faillog).unwrap();
}

/// Two identical trees: `ember` for Ember, `tools` for shadow-utils.
struct Pair {
    _base: TempDir,
    ember: PathBuf,
    tools: PathBuf,
}

fn pair(tag: &str, tweak: impl Fn(&Path)) -> Pair {
    let base = TempDir::new(tag);
    let ember = base.0.join("ember");
    let tools = base.0.join("tools");
    fs::create_dir(&ember).unwrap();
    build_tree(&ember);
    tweak(&ember);
    let st = Command::new("cp")
        .arg("-a")
        .arg(&ember)
        .arg(&tools)
        .status()
        .unwrap();
    assert!(st.success());
    Pair {
        _base: base,
        ember,
        tools,
    }
}

impl Pair {
    /// Runs a setup command with the real tool on both trees.
    fn setup(&self, cmd: &[&str]) {
        for root in [&self.ember, &self.tools] {
            let mut c: Vec<String> = vec![s(cmd[0]), s("--root"), root.display().to_string()];
            c.extend(cmd[1..].iter().map(|a| s(a)));
            run_ok(&c);
        }
    }
}

/// Ignition's argv for a group (internal/exec/util/passwd.go), run on `root`.
fn ignition_group_cmds(root: &Path, g: &GroupSpec) -> Vec<Vec<String>> {
    let r = root.display().to_string();
    let exists = group_exists(root, &g.name);
    if !g.should_exist {
        return if exists {
            vec![vec![s("groupdel"), s("--root"), r, g.name.clone()]]
        } else {
            vec![]
        };
    }
    let mut a = if exists {
        vec![s("groupmod"), s("--root"), r]
    } else {
        vec![s("groupadd"), s("--root"), r]
    };
    if let Some(gid) = g.gid {
        a.extend([s("--gid"), gid.to_string()]);
    }
    if let Some(p) = g.password_hash.as_deref().filter(|p| !p.is_empty()) {
        a.extend([s("--password"), s(p)]);
    }
    if !exists && g.system {
        a.push(s("--system"));
    }
    a.push(g.name.clone());
    vec![a]
}

fn group_exists(root: &Path, name: &str) -> bool {
    fs::read_to_string(root.join("etc/group"))
        .unwrap()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

fn user_exists(root: &Path, name: &str) -> bool {
    fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

/// Ignition's argv for a user, including the second `usermod --password`.
fn ignition_user_cmds(root: &Path, u: &UserSpec) -> Vec<Vec<String>> {
    let r = root.display().to_string();
    let exists = user_exists(root, &u.name);
    if !u.should_exist {
        return if exists {
            vec![vec![
                s("userdel"),
                s("--remove"),
                s("--root"),
                r,
                u.name.clone(),
            ]]
        } else {
            vec![]
        };
    }
    let nonempty = |o: &Option<String>| o.clone().filter(|v| !v.is_empty());
    let mut a;
    if exists {
        a = vec![s("usermod"), s("--root"), r.clone()];
        if let Some(h) = nonempty(&u.home_dir) {
            a.extend([s("--home"), h, s("--move-home")]);
        }
    } else {
        a = vec![s("useradd"), s("--root"), r.clone()];
        if let Some(h) = nonempty(&u.home_dir) {
            a.extend([s("--home-dir"), h]);
        }
        a.push(if u.no_create_home {
            s("--no-create-home")
        } else {
            s("--create-home")
        });
        if u.no_user_group {
            a.push(s("--no-user-group"));
        }
        if u.system {
            a.push(s("--system"));
        }
        if u.no_log_init {
            a.push(s("--no-log-init"));
        }
    }
    let pw = u
        .password_hash
        .clone()
        .map(|p| if p.is_empty() { s("*") } else { p });
    match (&pw, exists) {
        (Some(p), _) => a.extend([s("--password"), p.clone()]),
        (None, false) => a.extend([s("--password"), s("*")]),
        (None, true) => {}
    }
    if let Some(uid) = u.uid {
        a.extend([s("--uid"), uid.to_string()]);
    }
    if let Some(c) = nonempty(&u.gecos) {
        a.extend([s("--comment"), c]);
    }
    if let Some(g) = nonempty(&u.primary_group) {
        a.extend([s("--gid"), g]);
    }
    if !u.groups.is_empty() {
        a.extend([s("--groups"), u.groups.join(",")]);
    }
    if let Some(sh) = nonempty(&u.shell) {
        a.extend([s("--shell"), sh]);
    }
    a.push(u.name.clone());
    let mut cmds = vec![a];
    if let Some(p) = pw {
        cmds.push(vec![
            s("usermod"),
            s("--root"),
            r,
            s("--password"),
            p,
            u.name.clone(),
        ]);
    }
    cmds
}

#[derive(Debug, PartialEq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    data: Vec<u8>,
    mtime: Option<(i64, i64)>,
    nlink: u64,
}

const ACCOUNT_FILES: [&str; 6] = ["passwd", "shadow", "group", "gshadow", "subuid", "subgid"];

/// Every file of the tree except the account files (compared separately) and their backups.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let md = fs::symlink_metadata(&p).unwrap();
            let name = rel.to_string_lossy().to_string();
            if name == "proc" {
                continue;
            }
            if let Some(f) = name.strip_prefix("etc/") {
                let f = f.strip_suffix('-').unwrap_or(f);
                if ACCOUNT_FILES.contains(&f) {
                    continue;
                }
            }
            let (kind, data, mtime) = if md.is_dir() {
                ("dir", Vec::new(), None)
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                (
                    "symlink",
                    t.as_os_str().as_encoded_bytes().to_vec(),
                    Some((md.mtime(), md.mtime_nsec())),
                )
            } else {
                (
                    "file",
                    fs::read(&p).unwrap(),
                    Some((md.mtime(), md.mtime_nsec())),
                )
            };
            // Files the tools and Ember both create "now" cannot have the same time.
            let mtime = if name == "etc/.pwd.lock"
                || name.starts_with("var/log/")
                || name.starts_with("var/mail/")
            {
                None
            } else {
                mtime
            };
            out.insert(
                rel,
                Node {
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    data,
                    mtime,
                    nlink: if md.is_dir() { 0 } else { md.nlink() },
                },
            );
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Compares the account files line by line and field by field.
fn compare_account_files(p: &Pair) {
    for f in ACCOUNT_FILES {
        let a = p.ember.join("etc").join(f);
        let b = p.tools.join("etc").join(f);
        assert_eq!(a.exists(), b.exists(), "/etc/{f} exists on one side only");
        if !a.exists() {
            continue;
        }
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert_eq!(
            (ma.mode() & 0o7777, ma.uid(), ma.gid()),
            (mb.mode() & 0o7777, mb.uid(), mb.gid()),
            "owner/mode of /etc/{f}"
        );
        let ta = fs::read_to_string(&a).unwrap();
        let tb = fs::read_to_string(&b).unwrap();
        let la: Vec<&str> = ta.split('\n').collect();
        let lb: Vec<&str> = tb.split('\n').collect();
        assert_eq!(
            la.len(),
            lb.len(),
            "/etc/{f} line count\n--- ember:\n{ta}\n--- tools:\n{tb}"
        );
        for (x, y) in la.iter().zip(&lb) {
            let fx: Vec<&str> = x.split(':').collect();
            let fy: Vec<&str> = y.split(':').collect();
            assert_eq!(fx.len(), fy.len(), "/etc/{f}: {x:?} vs {y:?}");
            for (i, (vx, vy)) in fx.iter().zip(&fy).enumerate() {
                if f == "shadow" && i == 2 && vx != vy {
                    let (dx, dy): (i64, i64) = (vx.parse().unwrap(), vy.parse().unwrap());
                    assert!(
                        (dx - dy).abs() <= 1,
                        "/etc/shadow last change {x:?} vs {y:?}"
                    );
                    continue;
                }
                assert_eq!(
                    vx, vy,
                    "/etc/{f} field {i}: {x:?} vs {y:?}\n--- ember:\n{ta}\n--- tools:\n{tb}"
                );
            }
        }
    }
}

fn compare(p: &Pair) {
    compare_account_files(p);
    let a = snapshot(&p.ember);
    let b = snapshot(&p.tools);
    let keys: std::collections::BTreeSet<&PathBuf> = a.keys().chain(b.keys()).collect();
    for k in keys {
        assert_eq!(
            a.get(k),
            b.get(k),
            "{} differs (left: Ember, right: shadow-utils)",
            k.display()
        );
    }
}

enum Step {
    Groups(Vec<GroupSpec>),
    Users(Vec<UserSpec>),
}

/// Applies the step with Ember on one tree and with the tools on the other, then compares.
fn check(p: &Pair, step: Step) {
    let root = Root::open(&p.ember).unwrap();
    match &step {
        Step::Groups(gs) => {
            let cmds: Vec<Vec<String>> = gs
                .iter()
                .flat_map(|g| {
                    let c = ignition_group_cmds(&p.tools, g);
                    for cmd in &c {
                        run_ok(cmd);
                    }
                    c
                })
                .collect();
            let _ = cmds;
            passwd::apply_groups(&root, gs).unwrap();
        }
        Step::Users(us) => {
            for u in us {
                for cmd in ignition_user_cmds(&p.tools, u) {
                    run_ok(&cmd);
                }
            }
            passwd::apply_users(&root, us).unwrap();
        }
    }
    compare(p);
}

fn user(name: &str) -> UserSpec {
    UserSpec::new(name)
}

#[test]
fn new_user_with_defaults() {
    require_root();
    let p = pair("new", |_| {});
    check(&p, Step::Users(vec![user("alice")]));
    let root = Root::open(&p.ember).unwrap();
    let u = passwd::lookup_user(&root, "alice").unwrap().unwrap();
    assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/alice"));
    // The old lastlog/faillog records of uid 1000 were reset, uid 1001's kept.
    let lastlog = fs::read(p.ember.join("var/log/lastlog")).unwrap();
    assert!(lastlog[292 * 1000..292 * 1001].iter().all(|b| *b == 0));
    assert_eq!(&lastlog[292 * 1001 + 4..292 * 1001 + 9], b"pts/2");
}

#[test]
fn system_user() {
    require_root();
    let p = pair("system", |_| {});
    let mut u = user("svc");
    u.system = true;
    u.no_create_home = true;
    let mut v = user("svc2");
    v.system = true;
    check(&p, Step::Users(vec![u, v]));
}

#[test]
fn explicit_uid_gecos_shell_password_home() {
    require_root();
    let p = pair("explicit", |_| {});
    let mut u = user("bob");
    u.uid = Some(5000);
    u.gecos = Some(s("Bob Builder,Room 4,,"));
    u.shell = Some(s("/bin/zsh"));
    u.password_hash = Some(s("$6$rounds=4096$saltsalt$Zb3Dq0e4c6bM7qk9YxJ9mJp5qZl0c2n3r4t5u6v7w8x9y0A1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q7R8S9T0"));
    u.home_dir = Some(s("/srv/users/bob/"));
    check(&p, Step::Users(vec![u]));
}

#[test]
fn extra_groups_no_user_group_no_create_home() {
    require_root();
    let p = pair("groups", |_| {});
    let mut a = user("carl");
    a.groups = vec![s("sudo"), s("adm"), s("20")];
    let mut b = user("dora");
    b.no_user_group = true;
    b.no_create_home = true;
    b.groups = vec![s("audio")];
    let mut c = user("emil");
    c.primary_group = Some(s("staff"));
    let mut d = user("fred");
    d.primary_group = Some(s("100"));
    d.no_log_init = true;
    check(&p, Step::Users(vec![a, b, c, d]));
}

#[test]
fn no_log_init_keeps_old_records() {
    require_root();
    let p = pair("nologinit", |_| {});
    let mut u = user("gail");
    u.no_log_init = true;
    check(&p, Step::Users(vec![u]));
    let lastlog = fs::read(p.ember.join("var/log/lastlog")).unwrap();
    assert_eq!(&lastlog[292 * 1000 + 4..292 * 1000 + 9], b"pts/1");
}

#[test]
fn existing_user_modified() {
    require_root();
    let p = pair("modify", |_| {});
    p.setup(&[
        "useradd",
        "--create-home",
        "--groups",
        "sudo,adm",
        "--password",
        "*",
        "hank",
    ]);
    p.setup(&["groupadd", "--gid", "2500", "ops"]);
    for t in [&p.ember, &p.tools] {
        fs::write(t.join("home/hank/notes"), "mine\n").unwrap();
        std::os::unix::fs::chown(t.join("home/hank/notes"), Some(1000), Some(1000)).unwrap();
        fs::write(t.join("home/hank/roots"), "not hank's\n").unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for f in ["notes", "roots"] {
            fs::File::options()
                .write(true)
                .open(t.join("home/hank").join(f))
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
    let mut u = user("hank");
    u.uid = Some(6000);
    u.gecos = Some(s("Hank Hill"));
    u.shell = Some(s("/bin/dash"));
    u.home_dir = Some(s("/home/hank2"));
    u.groups = vec![s("audio"), s("ops")];
    u.primary_group = Some(s("ops"));
    u.password_hash = Some(s(
        "$y$j9T$abcdefghijklmnop$0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcde",
    ));
    check(&p, Step::Users(vec![u]));
    let md = fs::metadata(p.ember.join("home/hank2/notes")).unwrap();
    assert_eq!((md.uid(), md.gid()), (6000, 2500));
    let md = fs::metadata(p.ember.join("home/hank2/roots")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

#[test]
fn existing_user_uid_change_without_move() {
    require_root();
    let p = pair("uidchange", |_| {});
    p.setup(&["useradd", "--create-home", "--password", "*", "ivy"]);
    let mut u = user("ivy");
    u.uid = Some(7000);
    u.password_hash = Some(s(""));
    check(&p, Step::Users(vec![u]));
    let mut same = user("ivy");
    same.uid = Some(7000);
    let root = Root::open(&p.ember).unwrap();
    let out = passwd::apply_users(&root, &[same]).unwrap();
    assert_eq!(out[0].action, Action::Unchanged);
}

#[test]
fn user_deleted() {
    require_root();
    let p = pair("delete", |_| {});
    p.setup(&[
        "useradd",
        "--create-home",
        "--groups",
        "sudo",
        "--password",
        "*",
        "jack",
    ]);
    p.setup(&["useradd", "--create-home", "--password", "*", "kate"]);
    p.setup(&[
        "useradd",
        "--no-create-home",
        "--gid",
        "kate",
        "--password",
        "*",
        "lara",
    ]);
    let mut j = user("jack");
    j.should_exist = false;
    let mut k = user("kate");
    k.should_exist = false;
    let mut none = user("nobody-here");
    none.should_exist = false;
    check(&p, Step::Users(vec![j, k, none]));
    assert!(!p.ember.join("home/jack").exists());
    // kate's group stays: it is lara's primary group.
    assert!(group_exists(&p.ember, "kate"));
}

#[test]
fn groups_created_modified_deleted() {
    require_root();
    let p = pair("grp", |_| {});
    p.setup(&["groupadd", "--gid", "3100", "ops"]);
    p.setup(&["groupadd", "tmp"]);
    p.setup(&[
        "useradd",
        "--no-create-home",
        "--gid",
        "ops",
        "--password",
        "*",
        "mia",
    ]);
    let mut devs = GroupSpec::new("devs");
    devs.gid = Some(3000);
    let mut sys = GroupSpec::new("daemons");
    sys.system = true;
    let mut pw = GroupSpec::new("secret");
    pw.password_hash = Some(s("$6$abc$def"));
    let mut ops = GroupSpec::new("ops");
    ops.gid = Some(3200);
    ops.password_hash = Some(s("$6$xyz$uvw"));
    let mut tmp = GroupSpec::new("tmp");
    tmp.should_exist = false;
    let mut gone = GroupSpec::new("never");
    gone.should_exist = false;
    check(&p, Step::Groups(vec![devs, sys, pw, ops, tmp, gone]));
    let root = Root::open(&p.ember).unwrap();
    assert_eq!(
        passwd::lookup_user(&root, "mia").unwrap().unwrap().gid,
        3200
    );
}

#[test]
fn batch_of_users_in_sequence() {
    require_root();
    let p = pair("batch", |_| {});
    let mut b = user("nina");
    b.system = true;
    let mut c = user("otto");
    c.uid = Some(1500);
    let mut d = user("paul");
    d.groups = vec![s("otto"), s("nina")];
    check(&p, Step::Users(vec![user("mark"), b, c, d, user("quin")]));
}

#[test]
fn existing_home_is_not_filled() {
    require_root();
    let p = pair("homeexists", |dir| {
        fs::create_dir_all(dir.join("home/rosa")).unwrap();
        fs::write(dir.join("home/rosa/keep"), "keep\n").unwrap();
    });
    check(&p, Step::Users(vec![user("rosa")]));
    assert!(!p.ember.join("home/rosa/.bashrc").exists());
}

#[test]
fn mail_spool_and_home_mode() {
    require_root();
    let p = pair("mail", |dir| {
        let mut d = fs::read_to_string(dir.join("etc/default/useradd")).unwrap();
        d.push_str("CREATE_MAIL_SPOOL=yes\nHOME=/users\nINACTIVE=30\n");
        fs::write(dir.join("etc/default/useradd"), d).unwrap();
        let mut l = fs::read_to_string(dir.join("etc/login.defs")).unwrap();
        l.push_str("HOME_MODE 0750\nPASS_MAX_DAYS 90\n");
        fs::write(dir.join("etc/login.defs"), l).unwrap();
    });
    check(&p, Step::Users(vec![user("sara")]));
    assert!(p.ember.join("var/mail/sara").exists());
    let mut gone = user("sara");
    gone.should_exist = false;
    check(&p, Step::Users(vec![gone]));
    assert!(!p.ember.join("var/mail/sara").exists());
}

#[test]
fn without_login_defs_or_useradd_defaults() {
    require_root();
    let p = pair("nodefs", |dir| {
        fs::remove_file(dir.join("etc/login.defs")).unwrap();
        fs::remove_file(dir.join("etc/default/useradd")).unwrap();
    });
    let mut sys = user("tina");
    sys.system = true;
    check(&p, Step::Users(vec![user("theo"), sys]));
}

#[test]
fn subordinate_ids_are_allocated_and_freed() {
    require_root();
    let p = pair("subid", |dir| {
        fs::write(
            dir.join("etc/subuid"),
            "zed:165536:65536\nold:100000:65536\n",
        )
        .unwrap();
        fs::write(dir.join("etc/subgid"), "zed:100000:65536\n").unwrap();
    });
    check(&p, Step::Users(vec![user("uma")]));
    let mut gone = user("uma");
    gone.should_exist = false;
    check(&p, Step::Users(vec![gone]));
}

// ---- bad input: clear errors, nothing written ----

/// A byte-for-byte picture of the whole tree, to check that a failed call wrote nothing.
fn exact(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let data = if md.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (md.mode(), md.uid(), md.gid(), data),
            );
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn expect_user_error(
    tag: &str,
    specs: Vec<UserSpec>,
    check_err: impl Fn(&Error) -> bool,
) -> String {
    let p = pair(tag, |_| {});
    // Take the locks once so that /etc/.pwd.lock exists in the "before" picture.
    passwd::apply_users(&Root::open(&p.ember).unwrap(), &[]).unwrap();
    let before = exact(&p.ember);
    let err = passwd::apply_users(&Root::open(&p.ember).unwrap(), &specs).unwrap_err();
    assert!(check_err(&err), "unexpected error: {err:?}");
    assert_eq!(exact(&p.ember), before, "a failed call changed the tree");
    err.to_string()
}

#[test]
fn invalid_names_are_refused() {
    require_root();
    let long = "x".repeat(33);
    for bad in ["-rf", "a:b", "two words", "", "a,b", "+nis", long.as_str()] {
        let msg = expect_user_error("badname", vec![user("fine"), user(bad)], |e| {
            matches!(e, Error::InvalidUserName(_))
        });
        assert!(msg.starts_with("invalid user name"), "{msg}");
        // The real useradd refuses these too.
        let t = pair("badname-tool", |_| {});
        let out = run(&[
            s("useradd"),
            s("--root"),
            t.tools.display().to_string(),
            s(bad),
        ]);
        assert!(!out.status.success(), "useradd accepted {bad:?}");
    }
    // Refused by upstream shadow-utils' rules, which Ember follows; Debian's patched
    // useradd would take them.
    for bad in ["1234", "a@b", "caf\u{e9}"] {
        expect_user_error("badname-upstream", vec![user(bad)], |e| {
            matches!(e, Error::InvalidUserName(_))
        });
    }
    let p = pair("badgroup", |_| {});
    let e = passwd::apply_groups(
        &Root::open(&p.ember).unwrap(),
        &[GroupSpec::new("bad group")],
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidGroupName(_)), "{e}");
}

#[test]
fn taken_uid_and_gid_are_refused() {
    require_root();
    let mut u = user("newroot");
    u.uid = Some(0);
    let msg = expect_user_error("uidtaken", vec![user("first"), u], |e| {
        matches!(e, Error::UidTaken { uid: 0, .. })
    });
    assert!(msg.contains("\"root\""), "{msg}");
    let p = pair("gidtaken", |_| {});
    let root = Root::open(&p.ember).unwrap();
    let mut g = GroupSpec::new("dup");
    g.gid = Some(27);
    let before = fs::read(p.ember.join("etc/group")).unwrap();
    let e = passwd::apply_groups(&root, &[GroupSpec::new("fine"), g]).unwrap_err();
    assert!(matches!(e, Error::GidTaken { gid: 27, .. }), "{e}");
    assert_eq!(fs::read(p.ember.join("etc/group")).unwrap(), before);
    let mut busy = GroupSpec::new("users");
    busy.should_exist = false;
    p.setup(&[
        "useradd",
        "--no-create-home",
        "--no-user-group",
        "--password",
        "*",
        "vera",
    ]);
    let e = passwd::apply_groups(&root, &[busy]).unwrap_err();
    assert!(matches!(e, Error::GroupBusy { .. }), "{e}");
}

#[test]
fn missing_groups_are_refused() {
    require_root();
    let mut u = user("walt");
    u.groups = vec![s("sudo"), s("nosuchgroup")];
    let msg = expect_user_error("nogroup", vec![u], |e| {
        matches!(e, Error::GroupNotFound { .. })
    });
    assert_eq!(msg, "user \"walt\": group \"nosuchgroup\" does not exist");
    let mut u = user("walt");
    u.primary_group = Some(s("4242"));
    expect_user_error("noprimary", vec![u], |e| {
        matches!(e, Error::GroupNotFound { .. })
    });
}

#[test]
fn bad_fields_are_refused_without_echoing_secrets() {
    require_root();
    let mut u = user("xena");
    u.password_hash = Some(s("$6$salt:with:colons"));
    let msg = expect_user_error("badpw", vec![u], |e| {
        matches!(e, Error::InvalidField { .. })
    });
    assert!(!msg.contains("salt"), "{msg}");
    let mut u = user("xena");
    u.home_dir = Some(s("relative/home"));
    expect_user_error("badhome", vec![u], |e| {
        matches!(e, Error::InvalidField { .. })
    });
    let mut u = user("xena");
    u.shell = Some(s("bash"));
    expect_user_error("badshell", vec![u], |e| {
        matches!(e, Error::InvalidField { .. })
    });
}

#[test]
fn target_without_passwd_is_refused() {
    require_root();
    let t = TempDir::new("nopasswd");
    fs::create_dir(t.0.join("etc")).unwrap();
    let root = Root::open(&t.0).unwrap();
    let e = passwd::apply_users(&root, &[user("yann")]).unwrap_err();
    assert!(matches!(e, Error::NoPasswd), "{e}");
    assert_eq!(e.to_string(), "the target root has no /etc/passwd");
    let e = passwd::apply_groups(&root, &[GroupSpec::new("g")]).unwrap_err();
    assert!(matches!(e, Error::NoPasswd));
    assert_eq!(
        fs::read_dir(t.0.join("etc")).unwrap().count(),
        0,
        "something was created"
    );
}

#[test]
fn locks_are_honoured() {
    require_root();
    let p = pair("locks", |_| {});
    let root = Root::open(&p.ember).unwrap();
    // A lock held by a live process (this one) is respected.
    fs::write(
        p.ember.join("etc/group.lock"),
        format!("{}\0", std::process::id()),
    )
    .unwrap();
    let before = fs::read(p.ember.join("etc/passwd")).unwrap();
    let e = passwd::apply_users(&root, &[user("zoe")]).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert_eq!(fs::read(p.ember.join("etc/passwd")).unwrap(), before);
    assert!(
        !p.ember.join("etc/passwd.lock").exists(),
        "locks taken before the failure were not released"
    );
    // A stale lock (its process is gone) is replaced.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    fs::write(p.ember.join("etc/group.lock"), format!("{dead}\0")).unwrap();
    passwd::apply_users(&root, &[user("zoe")]).unwrap();
    for f in ACCOUNT_FILES {
        assert!(
            !p.ember.join(format!("etc/{f}.lock")).exists(),
            "{f}.lock left behind"
        );
    }
    // While another process holds lckpwdf's fcntl lock, Ember waits for it.
    let mut holder = Command::new("perl")
        .arg("-e")
        .arg(
            "use Fcntl qw(F_SETLKW F_WRLCK SEEK_SET); use IO::Handle; \
             open(my $fh, '>>', $ARGV[0]) or die $!; \
             my $lk = pack('s s x4 q q l x4', F_WRLCK, SEEK_SET, 0, 0, 0); \
             fcntl($fh, F_SETLKW, $lk) or die $!; \
             print \"locked\\n\"; STDOUT->flush; sleep 2;",
        )
        .arg(p.ember.join("etc/.pwd.lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    passwd::apply_users(&root, &[user("zack")]).unwrap();
    assert!(
        holder.try_wait().unwrap().is_some(),
        "Ember did not wait for the fcntl lock"
    );
}

// ---- SSH keys and lookups ----

#[test]
fn ssh_keys_are_written_as_the_user() {
    require_root();
    let p = pair("ssh", |_| {});
    let root = Root::open(&p.ember).unwrap();
    passwd::apply_users(&root, &[user("core")]).unwrap();
    let keys = vec![
        s("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1 a@b"),
        s("ssh-rsa AAAAB3Nza c@d"),
    ];
    let path = passwd::write_ssh_keys(&root, "core", &keys, true)
        .unwrap()
        .unwrap();
    assert_eq!(
        path,
        PathBuf::from("/home/core/.ssh/authorized_keys.d/ignition")
    );
    let file = p.ember.join("home/core/.ssh/authorized_keys.d/ignition");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("{}\n{}\n", keys[0], keys[1])
    );
    let md = fs::metadata(&file).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o600, 1000, 1000)
    );
    for d in ["home/core/.ssh", "home/core/.ssh/authorized_keys.d"] {
        let md = fs::metadata(p.ember.join(d)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o700, 1000, 1000),
            "{d}"
        );
    }
    let path = passwd::write_ssh_keys(&root, "core", &[s("ssh-ed25519 KEY\n")], false)
        .unwrap()
        .unwrap();
    assert_eq!(path, PathBuf::from("/home/core/.ssh/authorized_keys"));
    assert_eq!(
        fs::read_to_string(p.ember.join("home/core/.ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 KEY\n"
    );
    assert_eq!(
        passwd::write_ssh_keys(&root, "core", &[], true).unwrap(),
        None
    );
    assert!(matches!(
        passwd::write_ssh_keys(&root, "ghost", &keys, true),
        Err(Error::NoSuchUser(_))
    ));

    // A home that is a symlink out of the target never leads out of it: with nothing at the
    // re-rooted place the write is refused, with a directory there it lands there.
    let outside = TempDir::new("ssh-outside");
    fs::remove_dir_all(p.ember.join("home/core")).unwrap();
    std::os::unix::fs::symlink(&outside.0, p.ember.join("home/core")).unwrap();
    let e = passwd::write_ssh_keys(&root, "core", &keys, true).unwrap_err();
    assert!(matches!(e, Error::Fs(_)), "{e}");
    assert_eq!(
        fs::read_dir(&outside.0).unwrap().count(),
        0,
        "wrote outside the root"
    );
    let rerooted = p.ember.join(outside.0.strip_prefix("/").unwrap());
    fs::create_dir_all(&rerooted).unwrap();
    passwd::write_ssh_keys(&root, "core", &keys, true).unwrap();
    assert_eq!(
        fs::read_dir(&outside.0).unwrap().count(),
        0,
        "wrote outside the root"
    );
    assert!(rerooted.join(".ssh/authorized_keys.d/ignition").exists());
}

#[test]
fn lookups_use_the_target_and_its_altfiles() {
    require_root();
    let p = pair("lookup", |dir| {
        fs::create_dir_all(dir.join("usr/lib")).unwrap();
        fs::write(
            dir.join("usr/lib/passwd"),
            "imageuser:x:900:900::/var/lib/image:/sbin/nologin\n",
        )
        .unwrap();
        fs::write(
            dir.join("usr/lib/group"),
            "docker:x:901:\nimageuser:x:900:\n",
        )
        .unwrap();
    });
    let root = Root::open(&p.ember).unwrap();
    assert_eq!(
        passwd::lookup_user(&root, "root").unwrap().unwrap().home,
        "/root"
    );
    assert_eq!(
        passwd::lookup_group(&root, "sudo").unwrap().unwrap().gid,
        27
    );
    // Not listed in nsswitch.conf: /usr/lib/passwd is not consulted.
    assert_eq!(passwd::lookup_user(&root, "imageuser").unwrap(), None);
    // The host's users are never consulted.
    for host_user in fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').next())
    {
        if !user_exists(&p.ember, host_user) {
            assert_eq!(
                passwd::lookup_user(&root, host_user).unwrap(),
                None,
                "{host_user}"
            );
        }
    }
    fs::write(
        p.ember.join("etc/nsswitch.conf"),
        "passwd: files altfiles\ngroup: files altfiles\n",
    )
    .unwrap();
    let u = passwd::lookup_user(&root, "imageuser").unwrap().unwrap();
    assert_eq!((u.uid, u.gid), (900, 900));
    assert_eq!(
        passwd::lookup_group(&root, "docker").unwrap().unwrap().gid,
        901
    );
    // Like useradd: an altfiles group works as the primary group, not as a supplementary one,
    // and ids used there are not handed out again.
    let mut a = user("alt1");
    a.primary_group = Some(s("docker"));
    a.system = true;
    a.uid = None;
    let out = passwd::apply_users(&root, &[a]).unwrap();
    assert_eq!(out[0].gid, Some(901));
    let mut b = user("alt2");
    b.groups = vec![s("docker")];
    assert!(matches!(
        passwd::apply_users(&root, &[b]),
        Err(Error::GroupNotFound { .. })
    ));
    let mut c = user("imageuser");
    c.gecos = Some(s("x"));
    assert!(matches!(
        passwd::apply_users(&root, &[c]),
        Err(Error::NotLocal { .. })
    ));
}

#[test]
fn without_shadow_files() {
    require_root();
    let p = pair("noshadow", |dir| {
        fs::remove_file(dir.join("etc/shadow")).unwrap();
        fs::remove_file(dir.join("etc/gshadow")).unwrap();
    });
    let mut u = user("abel");
    u.password_hash = Some(s("$6$abc$def"));
    let mut g = GroupSpec::new("club");
    g.password_hash = Some(s("$6$ghi$jkl"));
    check(&p, Step::Groups(vec![g]));
    check(&p, Step::Users(vec![u, user("beth")]));
    let mut m = user("beth");
    m.password_hash = Some(s("$6$new$pass"));
    let mut g = GroupSpec::new("club");
    g.password_hash = Some(s("$6$mno$pqr"));
    check(&p, Step::Users(vec![m]));
    check(&p, Step::Groups(vec![g]));
}

#[test]
fn gshadow_admins_and_missing_entries() {
    require_root();
    let p = pair("gshadow", |dir| {
        // "floppy" has no gshadow entry; "audio" lists an administrator.
        let gs = fs::read_to_string(dir.join("etc/gshadow")).unwrap();
        let gs: String = gs
            .lines()
            .filter(|l| !l.starts_with("floppy:"))
            .map(|l| {
                if l.starts_with("audio:") {
                    "audio:*:cleo:\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(dir.join("etc/gshadow"), gs).unwrap();
    });
    p.setup(&[
        "useradd",
        "--no-create-home",
        "--groups",
        "audio,video",
        "--password",
        "*",
        "cleo",
    ]);
    let mut u = user("cleo");
    u.groups = vec![s("floppy"), s("video")];
    check(&p, Step::Users(vec![u]));
    let mut g = GroupSpec::new("floppy");
    g.password_hash = Some(s("$6$st$uv"));
    check(&p, Step::Groups(vec![g]));
    let mut d = user("cleo");
    d.should_exist = false;
    check(&p, Step::Users(vec![d]));
}

/// Mounts a tmpfs and unmounts it on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf) -> Tmpfs {
        fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs at {}", at.display());
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn home_moved_to_another_filesystem() {
    require_root();
    let p = pair("xdev", |_| {});
    p.setup(&["useradd", "--create-home", "--password", "*", "dina"]);
    let _a = Tmpfs::mount(p.ember.join("srv"));
    let _b = Tmpfs::mount(p.tools.join("srv"));
    for t in [&p.ember, &p.tools] {
        fs::set_permissions(t.join("srv"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut u = user("dina");
    u.home_dir = Some(s("/srv/dina"));
    u.uid = Some(4000);
    check(&p, Step::Users(vec![u]));
    assert!(!p.ember.join("home/dina").exists());
    assert_eq!(
        fs::metadata(p.ember.join("srv/dina/.bashrc"))
            .unwrap()
            .uid(),
        4000
    );
}

#[test]
fn home_conflicts_are_refused_before_writing() {
    require_root();
    let p = pair("homeconflict", |_| {});
    p.setup(&["useradd", "--create-home", "--password", "*", "eden"]);
    p.setup(&["useradd", "--create-home", "--password", "*", "finn"]);
    let root = Root::open(&p.ember).unwrap();
    passwd::apply_users(&root, &[]).unwrap();
    let before = exact(&p.ember);
    let mut u = user("eden");
    u.home_dir = Some(s("/home/finn"));
    let e = passwd::apply_users(&root, &[u]).unwrap_err();
    assert!(matches!(e, Error::HomeExists { .. }), "{e}");
    assert_eq!(exact(&p.ember), before);
    // userdel --remove does not delete a home that belongs to someone else.
    std::os::unix::fs::chown(p.ember.join("home/finn"), Some(0), Some(0)).unwrap();
    let before = exact(&p.ember);
    let mut d = user("finn");
    d.should_exist = false;
    let e = passwd::apply_users(&root, &[d]).unwrap_err();
    assert!(matches!(e, Error::NotOwned { .. }), "{e}");
    assert_eq!(exact(&p.ember), before);
}
