//! Loading kernel modules without kmod: `modules.dep` for the dependency order,
//! `modules.alias` for the names the kernel asks for (`fs-xfs`, `crypto-xts`, `net-pf-38`),
//! `modules.builtin` for modules compiled into the kernel, and finit_module(2) to load.
//!
//! The initramfs ships `/lib/modules/<release>/` with these three text files (see
//! `initramfs/build.sh`); Ember loads its boot list from it as PID 1 and, installed as
//! `/sbin/modprobe`, serves the kernel's own module requests ([`modprobe_main`]).
//!
//! Names are compared with dashes and underscores equal (`md-mod` is `md_mod`), as kmod does.
//! Only exact aliases are resolved: the wildcard device aliases (`pci:v…`) are udev's business,
//! and Ember loads its drivers by name instead.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module {0} not found in modules.dep or modules.alias")]
    NotFound(String),
    #[error("opening module file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading module {name} from {path}")]
    Load {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, Error>;

/// finit_module(2) flag: the file is compressed and the kernel decompresses it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// A module name as kmod compares them: dashes are underscores.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a `modules.dep` path: `kernel/fs/xfs/xfs.ko.zst` → `xfs`.
pub fn name_of_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    normalize(stem)
}

/// What one module directory (`/lib/modules/<release>`) knows.
#[derive(Debug, Default)]
pub struct ModuleDb {
    dir: PathBuf,
    /// name → (file relative to `dir`, direct and indirect dependencies as names).
    deps: HashMap<String, (String, Vec<String>)>,
    /// alias → module names.
    aliases: HashMap<String, Vec<String>>,
    builtin: HashSet<String>,
    /// module → (names to load before it, names to load after it), from `modules.softdep`.
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
}

/// One module to insert, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub path: PathBuf,
    /// A soft dependency (or one of its dependencies): its failure is not the load's failure.
    pub soft: bool,
}

/// What [`ModuleDb::load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Modules inserted now, dependencies first.
    Inserted(Vec<String>),
    /// Built into the kernel, or loaded before.
    Present,
}

/// The module directory of the running kernel: `/lib/modules/<uname -r>`.
pub fn running_dir() -> PathBuf {
    PathBuf::from("/lib/modules").join(kernel_release())
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; uname(2) fills it and cannot fail with a valid pointer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: the kernel NUL-terminates `release` within the array.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

impl ModuleDb {
    /// Reads `modules.dep` (required), `modules.alias`, `modules.builtin` and
    /// `modules.softdep` (optional).
    pub fn open(dir: &Path) -> Result<ModuleDb> {
        let read = |name: &str, required: bool| -> Result<String> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(s),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(source) => Err(Error::Read { path, source }),
            }
        };
        let mut db = ModuleDb::parse(
            &read("modules.dep", true)?,
            &read("modules.alias", false)?,
            &read("modules.builtin", false)?,
            &read("modules.softdep", false)?,
        );
        db.dir = dir.to_owned();
        Ok(db)
    }

    /// Builds the tables from the files' texts.
    pub fn parse(dep: &str, alias: &str, builtin: &str, softdep: &str) -> ModuleDb {
        let mut db = ModuleDb::default();
        for line in dep.lines() {
            let Some((file, rest)) = line.split_once(':') else {
                continue;
            };
            let file = file.trim();
            if file.is_empty() {
                continue;
            }
            let deps = rest.split_whitespace().map(name_of_path).collect();
            db.deps.insert(name_of_path(file), (file.to_string(), deps));
        }
        for line in alias.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(a), Some(m)) = (w.next(), w.next(), w.next()) {
                db.aliases
                    .entry(normalize(a))
                    .or_default()
                    .push(normalize(m));
            }
        }
        db.builtin = builtin
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(name_of_path)
            .collect();
        for line in softdep.lines() {
            let mut w = line.split_whitespace();
            let (Some("softdep"), Some(m)) = (w.next(), w.next()) else {
                continue;
            };
            let entry = db.softdeps.entry(normalize(m)).or_default();
            let mut post = false;
            for word in w {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    n if post => entry.1.push(n.to_string()),
                    n => entry.0.push(n.to_string()),
                }
            }
        }
        db
    }

    /// The module names `name` stands for: itself when known, otherwise its aliases.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.deps.contains_key(&n) || self.builtin.contains(&n) {
            return vec![n];
        }
        self.aliases.get(&n).cloned().unwrap_or_default()
    }

    /// The files to insert for `name`, dependencies first (each once); soft dependencies
    /// before (`pre:`) or after (`post:`) the module that names them.
    pub fn load_order(&self, name: &str) -> Result<Vec<Step>> {
        let mods = self.resolve(name);
        if mods.is_empty() {
            return Err(Error::NotFound(name.to_string()));
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for m in mods {
            self.visit(&m, false, &mut seen, &mut out);
        }
        Ok(out)
    }

    fn visit(&self, name: &str, soft: bool, seen: &mut HashSet<String>, out: &mut Vec<Step>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some((file, deps)) = self.deps.get(name) else {
            // Built in (or unknown, which modules.dep does not produce for dependencies).
            return;
        };
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for m in pre.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&m, true, seen, out);
        }
        for d in deps {
            self.visit(d, soft, seen, out);
        }
        out.push(Step {
            name: name.to_string(),
            path: self.dir.join(file),
            soft,
        });
        for m in post.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&m, true, seen, out);
        }
    }

    /// Loads `name` (a module or an alias) and what it depends on.  `params` are the module's
    /// parameters (`key=value ...`), given to `name` itself only.
    pub fn load(&self, name: &str, params: &str) -> Result<Loaded> {
        let order = self.load_order(name)?;
        let wanted: Vec<String> = self.resolve(name);
        let mut inserted = Vec::new();
        for step in order {
            if is_loaded(&step.name) {
                continue;
            }
            let p = if wanted.contains(&step.name) {
                params
            } else {
                ""
            };
            match insert_retrying(&step.path, p) {
                Ok(true) => inserted.push(step.name),
                Ok(false) => {}
                // A soft dependency is an optimisation (crc32c_intel on a CPU without SSE4.2).
                Err(e) if step.soft => log::debug!("soft dependency {}: {e}", step.name),
                Err(source) => {
                    return Err(Error::Load {
                        name: step.name,
                        path: step.path,
                        source,
                    })
                }
            }
        }
        if inserted.is_empty() {
            Ok(Loaded::Present)
        } else {
            Ok(Loaded::Inserted(inserted))
        }
    }
}

impl ModuleDb {
    /// Loads each of `names` as [`ModuleDb::load`] does (no parameters), on up to `threads`
    /// threads: a driver's probe can wait for hardware (an AHCI link, a NIC's reset) while
    /// the other modules load.  Two threads that need the same dependency are fine: the
    /// kernel makes the second wait for the first and then reports it present.  The results
    /// are in the order of `names`.
    pub fn load_many(&self, names: &[String], threads: usize) -> Vec<(String, Result<Loaded>)> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Loaded>>>> =
            Mutex::new(names.iter().map(|_| None).collect());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(name) = names.get(i) else { break };
            let r = self.load(name, "");
            if let Ok(mut v) = results.lock() {
                v[i] = Some(r);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.clamp(1, names.len().max(1)) {
                s.spawn(work);
            }
            work();
        });
        let results = results.into_inner().unwrap_or_default();
        names
            .iter()
            .cloned()
            .zip(results)
            .map(|(n, r)| {
                let r = r.unwrap_or_else(|| Err(Error::NotFound(n.clone())));
                (n, r)
            })
            .collect()
    }
}

/// Whether the module is loaded and initialised (or built in with parameters):
/// `/sys/module/<name>`.  A module another thread is still loading ("coming") is not: inserting
/// it again waits for that load, then reports it present, or fails as that load did.
pub fn is_loaded(name: &str) -> bool {
    let dir = Path::new("/sys/module").join(name);
    match std::fs::read_to_string(dir.join("initstate")) {
        Ok(state) => state.trim() == "live",
        // Built-in modules may have a directory (for their parameters) without an initstate.
        Err(_) => dir.exists() && !dir.join("refcnt").exists(),
    }
}

/// [`insert`], again while the kernel answers `EBUSY`: another thread's load of the same
/// module was under way and failed; the retry fails (or succeeds) on its own account.
fn insert_retrying(path: &Path, params: &str) -> std::io::Result<bool> {
    let mut tries = 0;
    loop {
        match insert(path, params) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Inserts one module file.  `Ok(false)` when the kernel already had it.
pub fn insert(path: &Path, params: &str) -> std::io::Result<bool> {
    let file = File::open(path)?;
    let compressed = [".xz", ".zst", ".gz"]
        .iter()
        .any(|s| path.to_string_lossy().ends_with(s));
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    let params = std::ffi::CString::new(params)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: finit_module(2) reads the open module file and a NUL-terminated parameter
    // string, both alive for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        return Ok(false);
    }
    Err(e)
}

/// `modprobe [-q] [-a] [-b] [--] NAME [PARAM...]` (or `-a NAME...`): the part of kmod's
/// modprobe the kernel (`request_module`) and the stages use.  Returns the exit code.
pub fn modprobe_main(args: &[String]) -> i32 {
    let mut quiet = false;
    let mut all = false;
    let mut names = Vec::new();
    let mut opts_done = false;
    for a in args {
        if !opts_done && a.starts_with('-') && a.len() > 1 {
            match a.as_str() {
                "--" => opts_done = true,
                "-q" | "--quiet" => quiet = true,
                "-a" | "--all" => all = true,
                // Accepted and ignored: blacklist handling, verbosity, syslog.
                "-b" | "--use-blacklist" | "-v" | "--verbose" | "-s" | "--syslog" => {}
                _ if a.starts_with("-") && a.chars().skip(1).all(|c| "qabvs".contains(c)) => {
                    quiet |= a.contains('q');
                    all |= a.contains('a');
                }
                other => {
                    eprintln!("modprobe: option {other} is not supported by Ember's modprobe");
                    return 2;
                }
            }
        } else {
            names.push(a.clone());
        }
    }
    if names.is_empty() {
        eprintln!("modprobe: no module name given");
        return 2;
    }
    let (mods, params) = if all {
        (names, String::new())
    } else {
        let params = names[1..].join(" ");
        (vec![names[0].clone()], params)
    };
    let dir = running_dir();
    let db = match ModuleDb::open(&dir) {
        Ok(db) => db,
        Err(e) => {
            if !quiet {
                eprintln!("modprobe: {}", chain(&e));
            }
            return 1;
        }
    };
    let mut code = 0;
    for m in mods {
        if let Err(e) = db.load(&m, &params) {
            if !quiet {
                eprintln!("modprobe: {}", chain(&e));
            }
            code = 1;
        }
    }
    code
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/btrfs/btrfs.ko: kernel/lib/raid6/raid6_pq.ko kernel/lib/libcrc32c.ko kernel/crypto/xor.ko
kernel/lib/raid6/raid6_pq.ko:
kernel/lib/libcrc32c.ko:
kernel/crypto/xor.ko:
kernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko
kernel/drivers/md/md-mod.ko:
kernel/fs/xfs/xfs.ko.zst: kernel/lib/libcrc32c.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias fs-xfs xfs
alias fs-btrfs btrfs
alias md-personality-3 raid1
alias crypto-crc32c libcrc32c
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
";
    const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\n";
    const SOFTDEP: &str = "\
softdep libcrc32c pre: crc32c
softdep xfs pre: crypto-xxhash post: virtio-blk
";

    #[test]
    fn names_and_paths() {
        assert_eq!(name_of_path("kernel/drivers/md/md-mod.ko"), "md_mod");
        assert_eq!(name_of_path("kernel/fs/xfs/xfs.ko.zst"), "xfs");
        assert_eq!(name_of_path("x.ko.xz"), "x");
        assert_eq!(normalize("dm-crypt"), "dm_crypt");
    }

    #[test]
    fn dependencies_come_first_once() {
        let mut db = ModuleDb::parse(DEP, ALIAS, BUILTIN, "");
        db.dir = PathBuf::from("/m");
        let order: Vec<String> = db
            .load_order("btrfs")
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(order, ["raid6_pq", "libcrc32c", "xor", "btrfs"]);
        let order = db.load_order("virtio-blk").unwrap();
        let names: Vec<&str> = order.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["virtio", "virtio_ring", "virtio_blk"]);
        assert!(order.iter().all(|s| !s.soft));
        assert_eq!(
            order[2].path,
            PathBuf::from("/m/kernel/drivers/block/virtio_blk.ko")
        );
    }

    #[test]
    fn aliases_and_builtins() {
        let db = ModuleDb::parse(DEP, ALIAS, BUILTIN, "");
        assert_eq!(db.resolve("fs-xfs"), ["xfs"]);
        assert_eq!(db.resolve("md-personality-3"), ["raid1"]);
        let order: Vec<String> = db
            .load_order("md-personality-3")
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(order, ["md_mod", "raid1"]);
        // Built in: nothing to insert, not an error.
        assert!(db.load_order("ext4").unwrap().is_empty());
        assert!(matches!(
            db.load_order("nosuchmodule"),
            Err(Error::NotFound(n)) if n == "nosuchmodule"
        ));
        // Wildcard aliases are not matched.
        assert!(db
            .resolve("pci:v00001AF4d00001001sv00sd00bc01sc00i00")
            .is_empty());
    }

    #[test]
    fn soft_dependencies() {
        let alias = format!(
            "{ALIAS}alias crc32c crc32c_intel\nalias crc32c crc32c_generic\nalias crypto-xxhash xxhash\n"
        );
        let dep =
            format!("{DEP}kernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/crypto/xxhash.ko:\n");
        let db = ModuleDb::parse(&dep, &alias, BUILTIN, SOFTDEP);
        let order = db.load_order("xfs").unwrap();
        let got: Vec<(&str, bool)> = order.iter().map(|s| (s.name.as_str(), s.soft)).collect();
        assert_eq!(
            got,
            [
                ("xxhash", true),
                // crc32c: the alias names a module and a built-in; only the module is inserted.
                ("crc32c_intel", true),
                ("libcrc32c", false),
                ("xfs", false),
                ("virtio", true),
                ("virtio_ring", true),
                ("virtio_blk", true),
            ]
        );
    }

    #[test]
    fn real_module_directory() {
        // The running kernel's own tables, when the machine has them.
        let dir = running_dir();
        if !dir.join("modules.dep").exists() {
            return;
        }
        let db = ModuleDb::open(&dir).unwrap();
        assert!(!db.deps.is_empty());
        for f in db.deps.values().map(|(f, _)| f) {
            assert!(!f.contains(':'), "{f}");
        }
    }

    #[test]
    fn load_many_keeps_the_order_of_the_names() {
        // Built-in modules need no insertion and unknown ones fail: nothing touches the kernel.
        let db = ModuleDb::parse(DEP, ALIAS, BUILTIN, "");
        let names: Vec<String> = ["ext4", "nosuch1", "crc32c_generic", "nosuch2", "ext4"]
            .map(String::from)
            .into();
        for threads in [1, 3, 8] {
            let got = db.load_many(&names, threads);
            let summary: Vec<(&str, &str)> = got
                .iter()
                .map(|(n, r)| {
                    let what = match r {
                        Ok(Loaded::Present) => "present",
                        Err(Error::NotFound(_)) => "not found",
                        _ => "other",
                    };
                    (n.as_str(), what)
                })
                .collect();
            assert_eq!(
                summary,
                [
                    ("ext4", "present"),
                    ("nosuch1", "not found"),
                    ("crc32c_generic", "present"),
                    ("nosuch2", "not found"),
                    ("ext4", "present"),
                ],
                "{threads} threads"
            );
        }
        assert!(db.load_many(&[], 4).is_empty());
    }

    #[test]
    fn modprobe_usage_errors() {
        assert_eq!(modprobe_main(&[]), 2);
        assert_eq!(modprobe_main(&["-x".into(), "a".into()]), 2);
    }
}
