//! Loading kernel modules without kmod: `modules.dep` for the dependency order,
//! `modules.alias` for the names the kernel asks for (`fs-xfs`, `crypto-xts`, `net-pf-38`),
//! `modules.builtin` for modules compiled into the kernel, and finit_module(2) to load.
//!
//! The initramfs ships `/lib/modules/<release>/` with these three text files (see
//! `initramfs/build.sh`); Ember loads its boot list from it as PID 1 and, installed as
//! `/sbin/modprobe`, serves the kernel's own module requests ([`modprobe_main`]).
//!
//! Names are compared with dashes and underscores equal (`md-mod` is `md_mod`), as kmod does.
//! Aliases with wildcards (`pci:v00001AF4d*sv*sd*bc*sc*i*`) match device modaliases the way
//! kmod's fnmatch does; [`device_modaliases`] lists the devices the kernel has, so that PID 1
//! can load the drivers of the hardware that is there (what udev's coldplug does elsewhere).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::system::command;

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

/// An alias as kmod compares them: dashes are underscores, except inside `[...]` (where a
/// dash is a range).
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// fnmatch(3) without flags, as kmod matches aliases: `*` any run, `?` any one byte,
/// `[abc]`, `[a-z]` and `[!a]` (or `[^a]`) one byte of (not of) a set.  A `[` without its `]`
/// is an ordinary byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // One byte of a class at p[i] (just after '['): Some((matched, index after ']')).
    fn class(p: &[u8], mut i: usize, c: u8) -> Option<(bool, usize)> {
        let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let &lo = p.get(i)?;
            if lo == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
                let hi = p[i + 2];
                matched |= lo <= c && c <= hi;
                i += 3;
            } else {
                matched |= lo == c;
                i += 1;
            }
        }
    }
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last '*': (pattern index after it, text index it covers to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match class(pattern, p + 1, text[t]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (text[t] == b'[').then_some(p + 1),
            },
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                t += 1;
            }
            None => match star {
                // Let the last '*' swallow one more byte and try again from there.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The modaliases of the devices the kernel has found: every `/sys/bus/*/devices/*/modalias`
/// under `sys`.  Unreadable entries are skipped.
pub fn device_modaliases(sys: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(buses) = std::fs::read_dir(sys.join("bus")) else {
        return out;
    };
    for bus in buses.flatten() {
        let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        for d in devices.flatten() {
            if let Ok(a) = std::fs::read_to_string(d.path().join("modalias")) {
                let a = a.trim();
                if !a.is_empty() {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out
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
    /// (alias pattern with `*`, `?` or `[...]`, module name), in file order.
    patterns: Vec<(String, String)>,
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
                let a = normalize_alias(a);
                if a.contains(['*', '?', '[']) {
                    db.patterns.push((a, normalize(m)));
                } else {
                    db.aliases.entry(a).or_default().push(normalize(m));
                }
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

    /// The module names `name` stands for: itself when known, otherwise the modules whose
    /// aliases it matches (exact aliases, then patterns; a device modalias works too).
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.deps.contains_key(&n) || self.builtin.contains(&n) {
            return vec![n];
        }
        let a = normalize_alias(name);
        if let Some(m) = self.aliases.get(&a) {
            return m.clone();
        }
        let mut out: Vec<String> = Vec::new();
        for (p, m) in &self.patterns {
            if glob_match(p.as_bytes(), a.as_bytes()) && !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
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
    /// Loads `first` (by name) and the drivers of every device in `sys` (the modules whose
    /// aliases match a `/sys/bus/*/devices/*/modalias`), on up to `threads` threads, until no
    /// device without a tried driver is left: whenever a load returns, the devices are
    /// scanned again, because a driver brings new ones (virtio_pci the virtio devices, which
    /// want virtio_blk).  A slow probe (an AHCI controller waiting for its links) holds up
    /// only its own thread.  Every module is tried once; the results come in completion order.
    pub fn coldplug(
        &self,
        sys: &Path,
        first: &[String],
        threads: usize,
    ) -> Vec<(String, Result<Loaded>)> {
        use std::sync::{Condvar, Mutex};
        struct State {
            queue: std::collections::VecDeque<String>,
            tried: HashSet<String>,
            seen: BTreeSet<String>,
            busy: usize,
            results: Vec<(String, Result<Loaded>)>,
        }
        impl State {
            fn scan(&mut self, db: &ModuleDb, sys: &Path) {
                let devices = device_modaliases(sys);
                for alias in devices.difference(&self.seen) {
                    for m in db.resolve(alias) {
                        if self.tried.insert(m.clone()) {
                            self.queue.push_back(m);
                        }
                    }
                }
                self.seen = devices;
            }
        }
        let mut st = State {
            queue: first.iter().cloned().collect(),
            tried: first.iter().cloned().collect(),
            seen: BTreeSet::new(),
            busy: 0,
            results: Vec::new(),
        };
        st.scan(self, sys);
        let state = Mutex::new(st);
        let wake = Condvar::new();
        let work = || {
            let Ok(mut g) = state.lock() else { return };
            loop {
                if let Some(m) = g.queue.pop_front() {
                    g.busy += 1;
                    drop(g);
                    let r = self.load(&m, "");
                    let added = matches!(r, Ok(Loaded::Inserted(_)));
                    g = match state.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    g.busy -= 1;
                    g.results.push((m, r));
                    // Only a module inserted now can have brought new devices.
                    if added {
                        g.scan(self, sys);
                    }
                    wake.notify_all();
                } else if g.busy == 0 {
                    wake.notify_all();
                    return;
                } else {
                    g = match wake.wait(g) {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.max(1) {
                s.spawn(work);
            }
            work();
        });
        state.into_inner().map(|s| s.results).unwrap_or_default()
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

/// How long one `modprobe` may take before it is killed.
pub const MODPROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads `module` with `modprobe` (found on `PATH`; Ember itself at boot), unless it is
/// loaded already ([`is_loaded`]).  Bounded by [`MODPROBE_TIMEOUT`].
pub fn modprobe(module: &str) -> std::result::Result<(), command::Error> {
    if is_loaded(&normalize(module)) {
        log::debug!("kernel module {module} is already loaded");
        return Ok(());
    }
    modprobe_with(Path::new("modprobe"), module)
}

/// Runs `program module` (a `modprobe`), logged and bounded by [`MODPROBE_TIMEOUT`], without
/// checking first whether the module is loaded: the caller chose the program (the providers
/// take it from their endpoints; tests give a fake one).
pub fn modprobe_with(program: &Path, module: &str) -> std::result::Result<(), command::Error> {
    log::info!("loading kernel module {module}");
    command::Command::new(program)
        .arg(module)
        .timeout(MODPROBE_TIMEOUT)
        .run()?;
    Ok(())
}

/// Makes md (software RAID) available: `modprobe md_mod` unless `/proc/mdstat` exists (md
/// built in or loaded).  The error is modprobe's.
pub fn ensure_md() -> std::result::Result<(), command::Error> {
    if Path::new("/proc/mdstat").exists() {
        return Ok(());
    }
    modprobe("md_mod")
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
                eprintln!("modprobe: {}", crate::logging::chain(&e));
            }
            return 1;
        }
    };
    let mut code = 0;
    for m in mods {
        if let Err(e) = db.load(&m, &params) {
            if !quiet {
                eprintln!("modprobe: {}", crate::logging::chain(&e));
            }
            code = 1;
        }
    }
    code
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
        // A device's modalias matches wildcard aliases.
        assert_eq!(
            db.resolve("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"),
            ["virtio_blk"]
        );
        assert!(db
            .resolve("pci:v00008086d00001001sv0sd0bc01sc00i00")
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
        // The tables of any kernel installed here (the QEMU tests' Debian kernel, say).
        let Some(dir) = std::fs::read_dir("/lib/modules")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|d| d.join("modules.dep").exists() && d.join("modules.alias").exists())
        else {
            return;
        };
        let db = ModuleDb::open(&dir).unwrap();
        assert!(!db.deps.is_empty());
        for f in db.deps.values().map(|(f, _)| f) {
            assert!(!f.contains(':'), "{f}");
        }
        // QEMU's devices, as their modaliases read in sysfs.
        let has = |alias: &str, module: &str| db.resolve(alias).iter().any(|m| m == module);
        if db.deps.contains_key("virtio_blk") {
            assert!(has("virtio:d00000002v00001AF4", "virtio_blk"));
            assert!(has(
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                "virtio_pci"
            ));
        }
        if db.deps.contains_key("qemu_fw_cfg") {
            assert!(has("acpi:QEMU0002:", "qemu_fw_cfg"));
        }
        if db.deps.contains_key("ahci") {
            assert!(has(
                "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
                "ahci"
            ));
        }
    }

    #[test]
    fn globs_as_fnmatch() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(!m(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00008086d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(m(
            "pci:v*d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(m("acpi*:QEMU0002:*", "acpi:QEMU0002:"));
        assert!(m("virtio:d00000002v*", "virtio:d00000002v00001AF4"));
        assert!(!m("virtio:d00000002v*", "virtio:d00000001v00001AF4"));
        assert!(m("usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0150dc00"));
        assert!(!m("usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0350dc00"));
        assert!(m("x[!0-9]y", "xay") && !m("x[!0-9]y", "x5y") && m("x[^a]y", "xby"));
        assert!(m("mdio:0001????", "mdio:0001abcd") && !m("mdio:0001????", "mdio:0001abc"));
        assert!(m("a[]]b", "a]b") && m("a[b", "a[b") && !m("a[b", "ab"));
        assert!(m("*", "") && m("**a**", "xxa") && !m("a*b", "acbd") && m("a*b*c", "abxbxc"));
    }

    #[test]
    fn aliases_normalize_outside_classes() {
        assert_eq!(normalize_alias("fs-xfs"), "fs_xfs");
        assert_eq!(normalize_alias("usb:v1[0-2]-x"), "usb:v1[0-2]_x");
    }

    #[test]
    fn device_modaliases_from_a_sysfs_tree() {
        let d = std::env::temp_dir().join(format!("ember-kmod-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (dev, alias) in [
            (
                "pci/devices/0000:00:02.0",
                Some("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n"),
            ),
            (
                "virtio/devices/virtio0",
                Some("virtio:d00000002v00001AF4\n"),
            ),
            (
                "virtio/devices/virtio1",
                Some("virtio:d00000002v00001AF4\n"),
            ),
            ("platform/devices/serial8250", None),
        ] {
            std::fs::create_dir_all(d.join("bus").join(dev)).unwrap();
            if let Some(a) = alias {
                std::fs::write(d.join("bus").join(dev).join("modalias"), a).unwrap();
            }
        }
        let got: Vec<String> = device_modaliases(&d).into_iter().collect();
        assert_eq!(
            got,
            [
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                "virtio:d00000002v00001AF4"
            ]
        );
        let db = ModuleDb::parse(
            DEP,
            &format!("{ALIAS}alias virtio:d00000002v* virtio_blk\n"),
            BUILTIN,
            "",
        );
        let mods: BTreeSet<String> = got.iter().flat_map(|a| db.resolve(a)).collect();
        assert_eq!(mods.into_iter().collect::<Vec<_>>(), ["virtio_blk"]);
        assert!(device_modaliases(&d.join("nonexistent")).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn coldplug_tries_each_module_once() {
        // Devices whose drivers are built in, and names that are unknown: nothing touches
        // the kernel, and every module is reported once whatever the thread count.
        let d = std::env::temp_dir().join(format!("ember-kmod-cold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (dev, alias) in [
            ("pci/devices/a", "pci:v00001AF4d00001001sv0sd0bc01sc00i00"),
            ("pci/devices/b", "pci:v00001AF4d00001002sv0sd0bc01sc00i00"),
            ("acpi/devices/c", "acpi:QEMU0002:"),
        ] {
            std::fs::create_dir_all(d.join("bus").join(dev)).unwrap();
            std::fs::write(d.join("bus").join(dev).join("modalias"), alias).unwrap();
        }
        let alias =
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* ext4\nalias acpi*:QEMU0002:* crc32c_generic\n";
        let db = ModuleDb::parse(DEP, alias, BUILTIN, "");
        let first: Vec<String> = ["nosuch1", "ext4", "nosuch2"].map(String::from).into();
        for threads in [1, 3, 8] {
            let mut got: Vec<(String, &str)> = db
                .coldplug(&d, &first, threads)
                .into_iter()
                .map(|(n, r)| {
                    let what = match r {
                        Ok(Loaded::Present) => "present",
                        Err(Error::NotFound(_)) => "not found",
                        _ => "other",
                    };
                    (n, what)
                })
                .collect();
            got.sort();
            let want: Vec<(String, &str)> = [
                ("crc32c_generic", "present"),
                ("ext4", "present"),
                ("nosuch1", "not found"),
                ("nosuch2", "not found"),
            ]
            .map(|(n, w)| (n.to_string(), w))
            .into();
            assert_eq!(got, want, "{threads} threads");
        }
        assert!(db.coldplug(&d.join("none"), &[], 4).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn modprobe_usage_errors() {
        assert_eq!(modprobe_main(&[]), 2);
        assert_eq!(modprobe_main(&["-x".into(), "a".into()]), 2);
    }
}
