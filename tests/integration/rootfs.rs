//! `system::rootfs`: paths resolved inside a target root, against a hostile tree.
//!
//! The canary directory sits next to the root and is watched with inotify: any open, read,
//! write, attribute change, creation or deletion in it shows up as an event, so "nothing
//! outside the root was touched" is checked by the kernel, not by comparing a few files.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ember::system::rootfs::{Error, Ownership, Root};
use rustix::fs::inotify;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root: it chowns files and checks owners (run the integration tests as root)"
    );
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ember-rootfs-{tag}-{}-{n}", std::process::id()));
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

/// Everything `lstat` says about a file that an operation could change, plus its contents.
#[derive(Debug, PartialEq)]
struct Snap {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Option<Vec<u8>>,
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Snap> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Snap>) {
        let md = fs::symlink_metadata(dir).unwrap();
        out.insert(
            dir.strip_prefix(base).unwrap().to_path_buf(),
            snap_of(dir, &md),
        );
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    snap_of(&p, &md),
                );
            }
        }
    }
    fn snap_of(p: &Path, md: &fs::Metadata) -> Snap {
        Snap {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            content: if md.is_file() {
                Some(fs::read(p).unwrap())
            } else {
                None
            },
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A directory outside the root whose every access is recorded by inotify.
struct Canary {
    dir: PathBuf,
    inotify: OwnedFd,
    before: BTreeMap<PathBuf, Snap>,
}

impl Canary {
    fn new(dir: PathBuf) -> Canary {
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("secret"), b"host secret\n").unwrap();
        fs::write(dir.join("passwd"), b"root:x:0:0:host:/root:/bin/sh\n").unwrap();
        fs::write(dir.join("sub/file"), b"nested\n").unwrap();
        let before = snapshot(&dir);
        let inotify =
            inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
        for d in [dir.clone(), dir.join("sub")] {
            inotify::add_watch(&inotify, &d, inotify::WatchFlags::ALL_EVENTS).unwrap();
        }
        Canary {
            dir,
            inotify,
            before,
        }
    }

    fn assert_untouched(&self) {
        let mut buf = [MaybeUninit::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut events = Vec::new();
        loop {
            match reader.next() {
                Ok(ev) => events.push(format!("{:?} {:?}", ev.events(), ev.file_name())),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
        assert!(
            events.is_empty(),
            "the canary outside the root was accessed: {events:?}"
        );
        assert_eq!(
            snapshot(&self.dir),
            self.before,
            "the canary outside the root changed"
        );
    }
}

/// The hostile target: base/root is the root, base/canary is the canary next to it.
struct Hostile {
    base: TempDir,
    root_dir: PathBuf,
    canary: Canary,
}

fn hostile() -> Hostile {
    let base = TempDir::new("hostile");
    let root_dir = base.0.join("root");
    let canary_dir = base.0.join("canary");
    fs::create_dir_all(root_dir.join("real")).unwrap();
    fs::create_dir_all(root_dir.join("etc2")).unwrap();
    fs::write(root_dir.join("real/inside"), b"inside\n").unwrap();
    fs::write(
        root_dir.join("etc2/passwd"),
        b"root:x:0:0:target:/root:/bin/sh\n",
    )
    .unwrap();
    let link =
        |target: &str, name: &str| std::os::unix::fs::symlink(target, root_dir.join(name)).unwrap();
    link("/etc", "etc"); // loops on itself once re-rooted
    link("../../..", "x"); // climbs out: re-rooted to the root
    link("loop2", "loop1");
    link("loop1", "loop2");
    link("/nonexistent/file", "dangling");
    link("/real", "abs");
    link("/etc2", "sysetc");
    link("../canary", "canary-rel"); // would be the canary without re-rooting
    std::os::unix::fs::symlink(&canary_dir, root_dir.join("canary")).unwrap(); // absolute host path
    let canary = Canary::new(canary_dir);
    Hostile {
        base,
        root_dir,
        canary,
    }
}

fn errno(e: &Error) -> Option<i32> {
    e.raw_os_error()
}

#[test]
fn hostile_tree_never_escapes_the_root() {
    require_root();
    let h = hostile();
    let r = &h.root_dir;
    let root = Root::open(r).unwrap();
    let write = |p: &str, data: &[u8]| root.write_file_atomic(p, data, 0o644, 0, 0);

    // `etc -> /etc` is the root's own /etc once re-rooted: a loop. Decided: an error, and
    // nothing is written anywhere (not in the host's /etc, not next to the link).
    let e = write("/etc/foo", b"x").unwrap_err();
    assert_eq!(errno(&e), Some(libc_eloop()), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("writing /etc/foo in {}", r.display())),
        "{e}"
    );
    assert!(!Path::new("/etc/foo").exists());

    // `x -> ../../..` climbs to the root and no further.
    write("/x/foo", b"one").unwrap();
    assert_eq!(fs::read(r.join("foo")).unwrap(), b"one");
    write("/x/x/x/real/../foo2", b"two").unwrap();
    assert_eq!(fs::read(r.join("foo2")).unwrap(), b"two");
    write("/../../../foo3", b"three").unwrap();
    assert_eq!(fs::read(r.join("foo3")).unwrap(), b"three");
    // Absolute symlink targets are re-rooted.
    write("/abs/inside2", b"four").unwrap();
    assert_eq!(fs::read(r.join("real/inside2")).unwrap(), b"four");
    assert_eq!(
        root.read_file_follow("/sysetc/passwd").unwrap(),
        b"root:x:0:0:target:/root:/bin/sh\n"
    );
    assert_eq!(root.read_file("/x/x/real/inside").unwrap(), b"inside\n");

    // Both links that "point at" the canary lead nowhere inside the root.
    for p in ["/canary/evil", "/canary-rel/evil", "/canary/sub/file"] {
        assert!(write(p, b"evil").unwrap_err().is_not_found(), "{p}");
        assert!(root.read_file(p).unwrap_err().is_not_found() || p.ends_with("evil"));
        assert!(root.read_file_follow(p).is_err(), "{p}");
        assert!(root.unlink(p).is_err(), "{p}");
        assert!(root.lchown(p, Some(4321), Some(4321)).is_err(), "{p}");
        assert!(root.chmod(p, 0o777).is_err(), "{p}");
        assert!(root.hard_link(p, "/hl-evil").is_err(), "{p}");
        assert!(root.lstat(p).unwrap().is_none(), "{p}");
    }
    assert!(root.read_file_follow("/canary/secret").is_err());
    assert!(root.read_file_follow("/canary-rel/passwd").is_err());
    for p in ["/canary/sub/new", "/canary-rel/new", "/dangling/new"] {
        let e = root.mkdir_all(p).unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{p}: {e}");
    }
    assert!(!r.join("nonexistent").exists());
    assert!(root
        .chown_tree("/canary", Ownership::all(4321, 4321))
        .is_err());
    assert!(root
        .copy_tree("/canary", "/real", Ownership::all(0, 0))
        .is_err());
    assert!(root
        .copy_dir("/canary-rel", "/copied", Ownership::all(0, 0))
        .is_err());
    assert!(root.read_dir("/canary").is_err());
    assert!(root.append("/canary/secret", &b"evil"[..]).is_err());
    assert!(root
        .open_file("/canary-rel/secret", &Default::default())
        .is_err());

    // The last component is never followed: the link itself is what gets acted on.
    let e = root.append("/canary", &b"evil"[..]).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    let e = root.chmod("/canary", 0o777).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(root.read_file("/canary").is_err());
    root.lchown("/canary", Some(1234), Some(2345)).unwrap();
    let md = fs::symlink_metadata(r.join("canary")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 2345));
    root.set_permissions("/canary-rel", Some(77), Some(88), None)
        .unwrap();
    assert_eq!(
        fs::symlink_metadata(r.join("canary-rel")).unwrap().uid(),
        77
    );

    // Symlinks are stored literally; following them later stays inside.
    root.symlink(h.canary.dir.join("secret"), "/x/newlink")
        .unwrap();
    assert_eq!(
        fs::read_link(r.join("newlink")).unwrap(),
        h.canary.dir.join("secret")
    );
    assert!(root
        .read_file_follow("/newlink")
        .unwrap_err()
        .is_not_found());

    // Hard links: the link target is resolved inside the root too.
    root.hard_link("/x/abs/inside", "/hl").unwrap();
    assert_eq!(
        fs::metadata(r.join("hl")).unwrap().ino(),
        fs::metadata(r.join("real/inside")).unwrap().ino()
    );

    // Resolution for "two paths are the same place" checks.
    assert_eq!(
        root.resolve("/x/x/abs/inside").unwrap(),
        PathBuf::from("/real/inside")
    );
    assert_eq!(
        root.resolve("/sysetc/passwd").unwrap(),
        PathBuf::from("/etc2/passwd")
    );
    assert_eq!(root.resolve("/x/canary").unwrap(), PathBuf::from("/canary"));
    // Paths that do not exist yet resolve too (the files stage checks them before creating).
    assert_eq!(
        root.resolve("/x/abs/new/dir/f").unwrap(),
        PathBuf::from("/real/new/dir/f")
    );
    assert_eq!(
        root.resolve("/dangling/f").unwrap(),
        PathBuf::from("/nonexistent/file/f")
    );
    assert_eq!(
        root.resolve("/canary/secret").unwrap(),
        h.canary.dir.join("secret")
    );
    assert_eq!(
        root.resolve("/canary-rel/secret").unwrap(),
        h.canary.dir.join("secret")
    );
    assert_eq!(
        errno(&root.resolve("/loop1/f").unwrap_err()),
        Some(libc_eloop())
    );
    assert_eq!(
        errno(&root.resolve("/etc/passwd").unwrap_err()),
        Some(libc_eloop())
    );
    assert!(root.resolve("/real/inside/f").is_err());

    // Loops fail cleanly, naming the path and the operation.
    let e = write("/loop1/f", b"x").unwrap_err();
    assert_eq!(errno(&e), Some(libc_eloop()));
    assert!(e.to_string().contains("/loop1/f"), "{e}");
    assert!(root.lstat("/loop1").unwrap().unwrap().is_symlink());
    assert!(root.stat_follow("/loop1").is_err());

    // A dangling link as the last component is replaced, its target is never created.
    write("/dangling", b"now a file").unwrap();
    assert!(fs::symlink_metadata(r.join("dangling")).unwrap().is_file());
    assert!(!Path::new("/nonexistent/file").exists());

    // remove_all removes links, never what they point to.
    assert!(root.remove_all("/x").unwrap());
    assert!(root.remove_all("/canary").unwrap());
    assert!(root.remove_all("/canary-rel").unwrap());
    assert!(r.join("foo").exists() && r.join("real/inside").exists());

    // Nothing appeared next to the root either.
    let mut siblings: Vec<OsString> = fs::read_dir(&h.base.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    siblings.sort();
    assert_eq!(
        siblings,
        vec![OsString::from("canary"), OsString::from("root")]
    );
    h.canary.assert_untouched();
}

fn libc_eloop() -> i32 {
    rustix::io::Errno::LOOP.raw_os_error()
}

#[test]
fn failed_source_leaves_old_file_and_no_temp() {
    require_root();
    let t = TempDir::new("atomic");
    fs::create_dir(t.0.join("etc")).unwrap();
    fs::write(t.0.join("etc/motd"), b"old contents\n").unwrap();
    let ino = fs::metadata(t.0.join("etc/motd")).unwrap().ino();
    let root = Root::open(&t.0).unwrap();

    /// Yields 3 MiB, then fails, like a download that breaks halfway.
    struct BreaksMidway(usize);
    impl Read for BreaksMidway {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 >= 3 << 20 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = buf.len().min(4096);
            buf[..n].fill(b'n');
            self.0 += n;
            Ok(n)
        }
    }
    let e = root
        .write_file_atomic("/etc/motd", BreaksMidway(0), 0o600, 1000, 1000)
        .unwrap_err();
    assert!(matches!(e, Error::Source { .. }), "{e}");
    assert_eq!(fs::read(t.0.join("etc/motd")).unwrap(), b"old contents\n");
    let md = fs::metadata(t.0.join("etc/motd")).unwrap();
    assert_eq!((md.ino(), md.uid(), md.mode() & 0o7777), (ino, 0, 0o644));
    let names: Vec<OsString> = fs::read_dir(t.0.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![OsString::from("motd")],
        "a temporary file was left behind"
    );
}

#[test]
fn owner_and_mode_are_final_before_the_name_appears() {
    require_root();
    let t = TempDir::new("meta");
    fs::create_dir(t.0.join("bin")).unwrap();
    fs::write(t.0.join("bin/tool"), b"old").unwrap();
    let root = Root::open(&t.0).unwrap();
    let dir = t.0.join("bin");

    /// The hook: while Ember is still streaming the contents, look at the temporary file it
    /// writes into, and at the real name.
    struct Inspect {
        dir: PathBuf,
        seen_ino: Option<u64>,
        sent: bool,
    }
    impl Read for Inspect {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.sent {
                return Ok(0);
            }
            let temps: Vec<PathBuf> = fs::read_dir(&self.dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".tool.")
                })
                .collect();
            assert_eq!(temps.len(), 1, "expected one temporary file, saw {temps:?}");
            let md = fs::symlink_metadata(&temps[0]).unwrap();
            assert_eq!(
                md.mode() & 0o7777,
                0o4750,
                "mode not final before the contents"
            );
            assert_eq!(
                (md.uid(), md.gid()),
                (1234, 2345),
                "owner not final before the contents"
            );
            assert_eq!(md.len(), 0);
            assert_eq!(
                fs::read(self.dir.join("tool")).unwrap(),
                b"old",
                "name replaced too early"
            );
            self.seen_ino = Some(md.ino());
            let data = b"#!/bin/sh\necho new\n";
            buf[..data.len()].copy_from_slice(data);
            self.sent = true;
            Ok(data.len())
        }
    }
    let mut hook = Inspect {
        dir: dir.clone(),
        seen_ino: None,
        sent: false,
    };
    root.write_file_atomic("/bin/tool", &mut hook, 0o4750, 1234, 2345)
        .unwrap();
    let md = fs::symlink_metadata(dir.join("tool")).unwrap();
    assert_eq!(
        Some(md.ino()),
        hook.seen_ino,
        "the inspected temporary file is not what was renamed"
    );
    assert_eq!(md.mode() & 0o7777, 0o4750, "setuid did not survive");
    assert_eq!((md.uid(), md.gid()), (1234, 2345));
    assert_eq!(
        fs::read(dir.join("tool")).unwrap(),
        b"#!/bin/sh\necho new\n"
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn concurrent_reader_never_sees_a_half_made_file() {
    require_root();
    let t = TempDir::new("race");
    fs::create_dir(t.0.join("etc")).unwrap();
    let target = t.0.join("etc/conf");
    let a: Vec<u8> = b"A".repeat(200_000);
    let b: Vec<u8> = b"B".repeat(300_000);
    fs::write(&target, &a).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&target, Some(101), Some(101)).unwrap();
    let root = Root::open(&t.0).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, target, a, b) = (stop.clone(), target.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut f = fs::File::open(&target).unwrap();
                let md = f.metadata().unwrap();
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                if data == a {
                    assert_eq!((md.mode() & 0o7777, md.uid()), (0o640, 101));
                } else if data == b {
                    assert_eq!((md.mode() & 0o7777, md.uid()), (0o600, 202));
                } else {
                    panic!("reader saw {} bytes that are neither version", data.len());
                }
                seen += 1;
            }
            seen
        })
    };
    for i in 0..200 {
        if i % 2 == 0 {
            root.write_file_atomic("/etc/conf", &b[..], 0o600, 202, 202)
                .unwrap();
        } else {
            root.write_file_atomic("/etc/conf", &a[..], 0o640, 101, 101)
                .unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen > 0);
    assert_eq!(fs::read_dir(t.0.join("etc")).unwrap().count(), 1);
}

#[test]
fn directories_appends_and_permissions() {
    require_root();
    let t = TempDir::new("dirs");
    let root = Root::open(&t.0).unwrap();

    let made = root.mkdir_all("/var/lib/app/data").unwrap();
    let expect: Vec<PathBuf> = ["/var", "/var/lib", "/var/lib/app", "/var/lib/app/data"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(made.created, expect);
    for p in ["var", "var/lib", "var/lib/app", "var/lib/app/data"] {
        let md = fs::metadata(t.0.join(p)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o755, 0, 0),
            "{p}"
        );
    }
    assert!(root.mkdir_all("/var/lib").unwrap().created.is_empty());
    fs::write(t.0.join("var/file"), b"f").unwrap();
    assert!(root.mkdir_all("/var/file/sub").is_err());

    root.create_dir("/var/lib/private", 0o700).unwrap();
    assert_eq!(
        fs::metadata(t.0.join("var/lib/private")).unwrap().mode() & 0o7777,
        0o700
    );
    assert!(root
        .create_dir("/var/lib/private", 0o700)
        .unwrap_err()
        .is_already_exists());

    assert!(root.append("/var/log.txt", &b"one\n"[..]).unwrap());
    assert!(!root.append("/var/log.txt", &b"two\n"[..]).unwrap());
    assert_eq!(fs::read(t.0.join("var/log.txt")).unwrap(), b"one\ntwo\n");
    let md = fs::metadata(t.0.join("var/log.txt")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o644, 0));
    let e = root.append("/var/lib", &b"x"[..]).unwrap_err();
    assert!(
        e.to_string()
            .contains("only regular files can be appended to"),
        "{e}"
    );

    root.set_permissions("/var/log.txt", Some(1000), Some(1000), Some(0o2755))
        .unwrap();
    let md = fs::metadata(t.0.join("var/log.txt")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o2755, 1000, 1000)
    );
    root.chmod("/", 0o755).unwrap();
    root.unlink("/var/log.txt").unwrap();
    assert!(root.unlink("/var/log.txt").unwrap_err().is_not_found());
    root.remove_dir("/var/lib/private").unwrap();
    root.rename("/var/lib/app", "/var/app").unwrap();
    assert!(t.0.join("var/app/data").is_dir());
}
