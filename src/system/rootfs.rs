//! Every path resolved inside a target root.
//!
//! The files stage writes into a directory tree that is not ours: `/sysroot` at boot, or any
//! directory for an image build. That tree may already contain symlinks pointing anywhere
//! (`etc -> /etc`, `x -> ../../..`). Ember must never read or write outside the tree because of
//! them, so every path handed to [`Root`] is resolved by the kernel with `openat2(2)` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` on a file descriptor of the root: absolute symlink
//! targets and `..` are re-rooted exactly as if the process had done `chroot(root)`, and
//! `/proc/self/fd`-style magic links are refused.
//!
//! Path strings are first cleaned lexically, like Go's `filepath.Join(root, path)` that Ignition
//! uses: empty and `.` components are dropped and `..` removes the previous component (never
//! going above the root). What is left is a list of plain names.
//!
//! All operations resolve the *parent* of the last component inside the root, then act on the
//! last component with an `*at` system call that does not follow it. Only the `*_follow`
//! operations follow a final symlink, and they follow it inside the root too.
//!
//! Decisions worth knowing:
//! - Symlinks in intermediate components are followed to any depth (the kernel's limit of 40),
//!   always re-rooted. Ignition follows only one level per component and then hands the result
//!   to system calls that follow the rest on the host; Ember's resolution is the safe superset.
//! - A link that points at itself once re-rooted (`etc -> /etc` as the root's own `/etc`) is a
//!   loop: anything below it fails with "too many levels of symbolic links".
//! - A dangling symlink in the middle of a path is never "repaired": [`Root::mkdir_all`] refuses
//!   to create its target.
//! - [`Root::remove_all`] never follows symlinks: removing a link to a directory removes the link.
//!
//! Requires Linux 5.6 or newer (`openat2`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::Gid;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};

/// Errors from operations inside a target root.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root directory itself could not be opened.
    #[error("opening target root {}", path.display())]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{op} {path} in {}", root.display())]
    Io {
        op: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The operation was refused because of what is (or is not) at the path.
    #[error("{op} {path} in {}: {problem}", root.display())]
    Refused {
        op: &'static str,
        path: String,
        root: PathBuf,
        problem: &'static str,
    },
    /// The reader that supplied the contents failed; nothing was written.
    #[error("{op} {path} in {}: reading the new contents failed", root.display())]
    Source {
        op: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The callback of [`Root::write_file_atomic_with`] failed; nothing was written.
    #[error("{op} {path} in {}", root.display())]
    Fill {
        op: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The kind of the underlying I/O error, if there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::OpenRoot { source, .. } | Error::Io { source, .. } => Some(source.kind()),
            Error::Refused { .. } | Error::Source { .. } | Error::Fill { .. } => None,
        }
    }

    /// The raw errno of the underlying system call, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::OpenRoot { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            Error::Refused { .. } | Error::Source { .. } | Error::Fill { .. } => None,
        }
    }

    /// True when the error means "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }

    /// True when the error means "already exists".
    pub fn is_already_exists(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::AlreadyExists)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What kind of filesystem object a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    Unknown,
}

/// The metadata Ember cares about, from `lstat`/`fstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    /// Access time as (seconds, nanoseconds).
    pub atime: (i64, i64),
    /// Modification time as (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

impl FileStat {
    fn from_raw(st: &rustix::fs::Stat) -> FileStat {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            _ => FileKind::Unknown,
        };
        FileStat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            nlink: st.st_nlink,
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: st.st_rdev,
            atime: (st.st_atime, i64::try_from(st.st_atime_nsec).unwrap_or(0)),
            mtime: (st.st_mtime, i64::try_from(st.st_mtime_nsec).unwrap_or(0)),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == FileKind::Symlink
    }

    /// True when both describe the same inode.
    pub fn same_file(&self, other: &FileStat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// How [`Root::open_file`] opens a regular file. The last component is never followed.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    /// Create the file if it is missing (with `mode`, then chmod to exactly `mode`).
    pub create: bool,
    /// Fail if the file exists.
    pub create_new: bool,
    pub truncate: bool,
    /// Permission bits for a created file; 0 means 0o644.
    pub mode: u32,
}

/// Result of a successful [`Root::mkdir_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MkdirAll {
    /// In-root paths of the directories that were created, outermost first.
    pub created: Vec<PathBuf>,
}

/// Which owner a tree copy or [`Root::chown_tree`] gives each entry, as shadow-utils does:
/// the uid becomes `new_uid` when it was `old_uid` (or `old_uid` is `None`); a `None`
/// `new_uid` keeps the uid (a copy keeps the source's). Same for groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    pub old_uid: Option<u32>,
    pub new_uid: Option<u32>,
    pub old_gid: Option<u32>,
    pub new_gid: Option<u32>,
}

impl Ownership {
    /// Everything becomes `uid:gid`.
    pub fn all(uid: u32, gid: u32) -> Ownership {
        Ownership {
            old_uid: None,
            new_uid: Some(uid),
            old_gid: None,
            new_gid: Some(gid),
        }
    }

    /// The (uid, gid) to set on an entry currently owned by `uid:gid`; `None` means unchanged.
    fn pick(&self, uid: u32, gid: u32) -> (Option<u32>, Option<u32>) {
        let u = match self.old_uid {
            Some(old) if old != uid => None,
            _ => self.new_uid,
        };
        let g = match self.old_gid {
            Some(old) if old != gid => None,
            _ => self.new_gid,
        };
        (u, g)
    }

    /// Like `pick`, with unchanged ids filled in from the entry.
    fn resolve(&self, uid: u32, gid: u32) -> (u32, u32) {
        let (u, g) = self.pick(uid, gid);
        (u.unwrap_or(uid), g.unwrap_or(gid))
    }
}

/// A target root directory. All paths given to its methods are inside it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A file written under a temporary name by [`Root::stage_file_in`], not yet in place.
#[derive(Debug)]
#[must_use = "a staged file must be committed or discarded"]
pub struct Staged {
    tmp: OsString,
    name: OsString,
}

/// A directory of a [`Root`], opened by [`Root::open_dir`].
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    /// Its in-root path, for messages.
    shown: String,
    /// Owner and group a file created in it gets (our fsuid, and our fsgid or the
    /// directory's group when it is setgid), when known.
    new_owner: Option<(u32, u32)>,
}

impl DirHandle {
    /// The in-root path the directory was opened at.
    pub fn path(&self) -> &Path {
        Path::new(&self.shown)
    }
}

/// A path split into its cleaned, plain components.
struct InRoot {
    comps: Vec<OsString>,
    shown: String,
}

impl InRoot {
    fn new(path: &Path) -> InRoot {
        let mut comps: Vec<OsString> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => comps.push(n.to_os_string()),
                Component::ParentDir => {
                    comps.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut shown = String::new();
        for c in &comps {
            shown.push('/');
            shown.push_str(&c.to_string_lossy());
        }
        if shown.is_empty() {
            shown.push('/');
        }
        InRoot { comps, shown }
    }

    fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// Relative path of the first `n` components, or "." when `n` is 0.
    fn prefix(&self, n: usize) -> PathBuf {
        if n == 0 {
            return PathBuf::from(".");
        }
        let mut p = PathBuf::new();
        for c in &self.comps[..n] {
            p.push(c);
        }
        p
    }

    fn parent_rel(&self) -> PathBuf {
        self.prefix(self.comps.len().saturating_sub(1))
    }

    fn name(&self) -> Option<&OsStr> {
        self.comps.last().map(|c| c.as_os_str())
    }

    fn shown_prefix(&self, n: usize) -> PathBuf {
        let mut p = PathBuf::from("/");
        for c in &self.comps[..n] {
            p.push(c);
        }
        p
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The process's umask, read once from /proc/self/status (`None` when that is not possible:
/// then modes are always set explicitly).
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

/// The process id, for temporary names (asked once: temporary names are created with
/// `O_EXCL`, so a stale value after a fork could only cost a retry).
fn pid() -> i32 {
    static PID: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *PID.get_or_init(|| rustix::process::getpid().as_raw_nonzero().get())
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn to_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

fn uid_arg(uid: Option<u32>) -> Option<Uid> {
    uid.filter(|u| *u != u32::MAX).map(Uid::from_raw)
}

fn gid_arg(gid: Option<u32>) -> Option<Gid> {
    gid.filter(|g| *g != u32::MAX).map(Gid::from_raw)
}

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

/// Converts a directory entry name to an `OsString`.
fn entry_name(e: &rustix::fs::DirEntry) -> OsString {
    OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()
}

fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

impl Root {
    /// Opens `path` (a directory on the host) as a target root.
    pub fn open(path: impl AsRef<Path>) -> Result<Root> {
        let path = path.as_ref();
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::OpenRoot {
            path: path.to_path_buf(),
            source: to_io(e),
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path this root was opened from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, op: &'static str, p: &InRoot, e: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            path: p.shown.clone(),
            root: self.path.clone(),
            source: e.into(),
        }
    }

    fn refused(&self, op: &'static str, p: &InRoot, problem: &'static str) -> Error {
        Error::Refused {
            op,
            path: p.shown.clone(),
            root: self.path.clone(),
            problem,
        }
    }

    /// Opens the whole of `p` inside the root with `flags`, as operation `op`.
    fn open_whole(&self, op: &'static str, p: &InRoot, flags: OFlags) -> Result<OwnedFd> {
        self.open_rel(&p.prefix(p.comps.len()), flags, Mode::empty())
            .map_err(|e| self.err(op, p, e))
    }

    /// openat2 inside the root, retrying the rare EAGAIN that RESOLVE_IN_ROOT returns when a
    /// concurrent rename raced with the lookup.
    fn open_rel(&self, rel: &Path, flags: OFlags, m: Mode) -> io::Result<OwnedFd> {
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, m, resolve_flags()) {
                Err(rustix::io::Errno::AGAIN) if tries < 16 => tries += 1,
                Err(rustix::io::Errno::NOSYS) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "openat2 is not available (Linux 5.6 or newer is required)",
                    ))
                }
                r => return r.map_err(to_io),
            }
        }
    }

    /// An O_PATH descriptor of the parent directory of `p`, resolved inside the root.
    fn parent_fd(&self, p: &InRoot) -> io::Result<OwnedFd> {
        self.open_rel(
            &p.parent_rel(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )
    }

    /// Parent descriptor and last component, or a refusal when the path is the root itself.
    fn split(&self, op: &'static str, p: &InRoot) -> Result<(OwnedFd, OsString)> {
        let name = match p.name() {
            Some(n) => n.to_os_string(),
            None => return Err(self.refused(op, p, "the path is the root directory itself")),
        };
        let parent = self.parent_fd(p).map_err(|e| self.err(op, p, e))?;
        Ok((parent, name))
    }

    fn lstat_in(&self, p: &InRoot) -> io::Result<Option<FileStat>> {
        let st = match p.name() {
            None => rustix::fs::fstat(&self.fd).map_err(to_io)?,
            Some(name) => {
                let parent = match self.parent_fd(p) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(rustix::io::Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(to_io(e)),
                }
            }
        };
        Ok(Some(FileStat::from_raw(&st)))
    }

    /// `lstat` of the path: `None` when it (or one of its parents) does not exist.
    pub fn lstat(&self, path: impl AsRef<Path>) -> Result<Option<FileStat>> {
        let p = InRoot::new(path.as_ref());
        self.lstat_in(&p).map_err(|e| self.err("looking up", &p, e))
    }

    /// `stat` following a final symlink (inside the root); `None` when nothing is there.
    pub fn stat_follow(&self, path: impl AsRef<Path>) -> Result<Option<FileStat>> {
        let p = InRoot::new(path.as_ref());
        let rel = p.prefix(p.comps.len());
        match self.open_rel(&rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => {
                let st =
                    rustix::fs::fstat(&fd).map_err(|e| self.err("looking up", &p, to_io(e)))?;
                Ok(Some(FileStat::from_raw(&st)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("looking up", &p, e)),
        }
    }

    /// True when something (even a dangling symlink) exists at the path.
    pub fn exists(&self, path: impl AsRef<Path>) -> Result<bool> {
        Ok(self.lstat(path)?.is_some())
    }

    /// Reads a regular file. A symlink as the last component is refused.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split("reading", &p)?;
        let fd = rustix::fs::openat(
            &parent,
            &name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => self.refused("reading", &p, "it is a symbolic link"),
            e => self.err("reading", &p, to_io(e)),
        })?;
        self.read_regular(fd, &p)
    }

    /// Reads a regular file, following symlinks (inside the root) at the last component too.
    pub fn read_file_follow(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let p = InRoot::new(path.as_ref());
        let fd = self.open_whole(
            "reading",
            &p,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        )?;
        self.read_regular(fd, &p)
    }

    fn read_regular(&self, fd: OwnedFd, p: &InRoot) -> Result<Vec<u8>> {
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("reading", p, to_io(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(self.refused("reading", p, "it is not a regular file"));
        }
        let mut f = File::from(fd);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| self.err("reading", p, e))?;
        Ok(buf)
    }

    /// Opens a regular file without following a final symlink.
    pub fn open_file(&self, path: impl AsRef<Path>, opts: &OpenOptions) -> Result<File> {
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split("opening", &p)?;
        let create_mode = if opts.mode == 0 { 0o644 } else { opts.mode };
        // Refuse anything that is not a regular file before opening it: opening a FIFO or a
        // device can block or have side effects.
        if let Some(st) = self
            .lstat_at(&parent, &name)
            .map_err(|e| self.err("opening", &p, e))?
        {
            if opts.create_new {
                return Err(self.err("opening", &p, io::Error::from(io::ErrorKind::AlreadyExists)));
            }
            if !st.is_file() {
                return Err(self.refused("opening", &p, "it is not a regular file"));
            }
        }
        let mut flags = OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        flags |= match (opts.read, opts.write || opts.append) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if opts.append {
            flags |= OFlags::APPEND;
        }
        if opts.truncate {
            flags |= OFlags::TRUNC;
        }
        if opts.create || opts.create_new {
            flags |= OFlags::CREATE | OFlags::EXCL;
        }
        let (fd, created) = match rustix::fs::openat(&parent, &name, flags, mode(create_mode)) {
            Ok(fd) => (fd, opts.create || opts.create_new),
            Err(rustix::io::Errno::EXIST) if opts.create && !opts.create_new => {
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    flags & !(OFlags::CREATE | OFlags::EXCL),
                    Mode::empty(),
                )
                .map_err(|e| self.open_error(&p, e))?;
                (fd, false)
            }
            Err(e) => return Err(self.open_error(&p, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("opening", &p, to_io(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(self.refused("opening", &p, "it is not a regular file"));
        }
        if created {
            // The umask applied to the create mode; set exactly what was asked.
            rustix::fs::fchmod(&fd, mode(create_mode))
                .map_err(|e| self.err("setting the mode of", &p, to_io(e)))?;
        }
        // O_NONBLOCK only guarded the open; regular files ignore it but clear it anyway.
        let fl = rustix::fs::fcntl_getfl(&fd).map_err(|e| self.err("opening", &p, to_io(e)))?;
        rustix::fs::fcntl_setfl(&fd, fl & !OFlags::NONBLOCK)
            .map_err(|e| self.err("opening", &p, to_io(e)))?;
        Ok(File::from(fd))
    }

    fn open_error(&self, p: &InRoot, e: rustix::io::Errno) -> Error {
        match e {
            rustix::io::Errno::LOOP => self.refused("opening", p, "it is a symbolic link"),
            e => self.err("opening", p, to_io(e)),
        }
    }

    fn lstat_at(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<Option<FileStat>> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileStat::from_raw(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Creates the directory and its missing parents, each 0755 root:root.
    pub fn mkdir_all(&self, path: impl AsRef<Path>) -> Result<MkdirAll> {
        self.mkdir_all_with(path, 0o755, 0, 0)
    }

    /// Creates the directory and its missing parents with the given mode and owner (the mode is
    /// set explicitly, so the umask does not apply). Existing components are left alone; a
    /// component that exists but is not a directory (or a symlink to one) is an error.
    pub fn mkdir_all_with(
        &self,
        path: impl AsRef<Path>,
        mode_bits: u32,
        uid: u32,
        gid: u32,
    ) -> Result<MkdirAll> {
        const OP: &str = "creating directory";
        let p = InRoot::new(path.as_ref());
        let mut out = MkdirAll::default();
        // Usually the whole path is there already: one lookup instead of one per component.
        if self
            .open_rel(
                &p.prefix(p.comps.len()),
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .is_ok()
        {
            return Ok(out);
        }
        for i in 1..=p.comps.len() {
            let rel = p.prefix(i);
            match self.open_rel(&rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let sub = InRoot::new(&p.shown_prefix(i));
                    return Err(self.err(OP, &sub, e));
                }
            }
            let sub = InRoot::new(&p.shown_prefix(i));
            let parent = self
                .open_rel(
                    &p.prefix(i - 1),
                    OFlags::PATH | OFlags::DIRECTORY,
                    Mode::empty(),
                )
                .map_err(|e| self.err(OP, &sub, e))?;
            let name = &p.comps[i - 1];
            match rustix::fs::mkdirat(&parent, name, Mode::empty()) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    // Something is there but does not resolve to a directory: a dangling or
                    // looping symlink. Do not create its target.
                    return Err(self.refused(
                        OP,
                        &sub,
                        "a symbolic link that does not lead to a directory is in the way",
                    ));
                }
                Err(e) => return Err(self.err(OP, &sub, to_io(e))),
            }
            rustix::fs::chownat(
                &parent,
                name,
                uid_arg(Some(uid)),
                gid_arg(Some(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.err(OP, &sub, to_io(e)))?;
            self.chmod_dir_at(&parent, name, mode_bits)
                .map_err(|e| self.err(OP, &sub, e))?;
            log::debug!("created directory {} in {}", sub.shown, self.path.display());
            out.created.push(p.shown_prefix(i));
        }
        Ok(out)
    }

    fn chmod_dir_at(&self, parent: &OwnedFd, name: &OsStr, mode_bits: u32) -> io::Result<()> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(to_io)?;
        rustix::fs::fchmod(&fd, mode(mode_bits)).map_err(to_io)
    }

    /// Creates one directory (its parent must exist) with exactly `mode_bits`, owned by the
    /// caller (root).
    pub fn create_dir(&self, path: impl AsRef<Path>, mode_bits: u32) -> Result<()> {
        const OP: &str = "creating directory";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::mkdirat(&parent, &name, Mode::empty())
            .map_err(|e| self.err(OP, &p, to_io(e)))?;
        self.chmod_dir_at(&parent, &name, mode_bits)
            .map_err(|e| self.err(OP, &p, e))
    }

    /// Replaces the file at `path` atomically.
    ///
    /// A temporary file is created in the destination directory, chowned and then chmodded
    /// (chmod after chown, so setuid/setgid survive) before any byte is written, so the
    /// metadata is final before the name can appear. The contents are copied and fsynced, the
    /// temporary file is renamed over `path` and the directory is fsynced. If anything fails,
    /// including `contents`, the temporary file is removed and the old file is untouched.
    /// A symlink at `path` is replaced, not followed. Returns the number of bytes written.
    pub fn write_file_atomic(
        &self,
        path: impl AsRef<Path>,
        mut contents: impl Read,
        mode_bits: u32,
        uid: u32,
        gid: u32,
    ) -> Result<u64> {
        let path = path.as_ref();
        let mut read_failed = None;
        let r = self.write_file_atomic_with(path, mode_bits, uid, gid, true, |file| {
            copy_checked(&mut contents, file).map_err(|e| match e {
                CopyError::Read(e) => {
                    read_failed = Some(e.kind());
                    e
                }
                CopyError::Write(e) => e,
            })
        });
        match r {
            Err(Error::Fill {
                op,
                path,
                root,
                source,
            }) => Err(if read_failed.is_some() {
                Error::Source {
                    op,
                    path,
                    root,
                    source,
                }
            } else {
                Error::Io {
                    op,
                    path,
                    root,
                    source,
                }
            }),
            r => r,
        }
    }

    /// Like [`Root::write_file_atomic`], but `fill` writes the contents into the temporary file
    /// (already open for reading and writing, empty, with its final owner and mode) and returns
    /// the number of bytes it wrote. An error from `fill` is returned as [`Error::Fill`] and
    /// nothing appears at `path`: the temporary file is removed.
    ///
    /// With `sync_dir` false the directory is not fsynced after the rename: a caller writing
    /// many files into one directory calls [`Root::fsync_dir`] once at the end instead.
    pub fn write_file_atomic_with(
        &self,
        path: impl AsRef<Path>,
        mode_bits: u32,
        uid: u32,
        gid: u32,
        sync_dir: bool,
        fill: impl FnOnce(&mut File) -> io::Result<u64>,
    ) -> Result<u64> {
        const OP: &str = "writing";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        if let Some(st) = self
            .lstat_at(&parent, &name)
            .map_err(|e| self.err(OP, &p, e))?
        {
            if st.is_dir() {
                return Err(self.refused(OP, &p, "a directory is in the way"));
            }
        }
        self.write_atomic_at(&parent, &name, &p, mode_bits, uid, gid, sync_dir, fill)
    }

    /// Opens a directory inside the root once, for many operations on its entries
    /// ([`Root::write_file_atomic_in`]). The directory stays the one that was resolved now,
    /// whatever happens to its path later.
    pub fn open_dir(&self, path: impl AsRef<Path>) -> Result<DirHandle> {
        const OP: &str = "opening directory";
        let p = InRoot::new(path.as_ref());
        let fd = self.open_whole(OP, &p, OFlags::PATH | OFlags::DIRECTORY)?;
        let new_owner = rustix::fs::fstat(&fd).ok().map(|st| {
            let uid = rustix::process::geteuid().as_raw();
            let gid = if st.st_mode & 0o2000 != 0 {
                st.st_gid
            } else {
                rustix::process::getegid().as_raw()
            };
            (uid, gid)
        });
        Ok(DirHandle {
            fd,
            shown: p.shown,
            new_owner,
        })
    }

    /// Writes a file under a temporary name in an opened directory, next to the entry `name`
    /// (one plain component) it is meant to replace: like [`Root::write_file_atomic_with`]
    /// (owner and mode set before any byte, `fill` writes the contents), but neither fsynced
    /// nor renamed. This is for writing many files with one filesystem sync: stage them all,
    /// [`Root::syncfs`] once, then [`Root::commit_staged`] each, then sync again to make the
    /// renames durable. Until it is committed or discarded the temporary file stays; when
    /// `fill` or anything else fails, it is removed and nothing is left.
    #[allow(clippy::too_many_arguments)]
    pub fn stage_file_in(
        &self,
        dir: &DirHandle,
        name: &OsStr,
        mode_bits: u32,
        uid: u32,
        gid: u32,
        fill: impl FnOnce(&mut File) -> io::Result<u64>,
    ) -> Result<Staged> {
        const OP: &str = "writing";
        let p = InRoot::new(&Path::new(&dir.shown).join(name));
        if name.is_empty() || is_dot(name) || name.as_bytes().contains(&b'/') {
            return Err(self.refused(OP, &p, "not a plain file name"));
        }
        // Skip the chown and chmod when the file is created that way anyway: two system calls
        // of seven per file.
        let same_owner = dir.new_owner == Some((uid, gid));
        let direct_mode = mode_bits & 0o7000 == 0 && umask().is_some_and(|u| mode_bits & u == 0);
        let (tmp, fd) = self
            .create_temp_mode(&dir.fd, name, if direct_mode { mode_bits } else { 0o600 })
            .map_err(|e| self.err(OP, &p, e))?;
        let guard = TempGuard {
            dir: dir.fd.as_fd(),
            name: Some(tmp.clone()),
        };
        if same_owner && direct_mode {
            let mut file = File::from(fd);
            fill(&mut file).map_err(|source| Error::Fill {
                op: OP,
                path: p.shown.clone(),
                root: self.path.clone(),
                source,
            })?;
        } else {
            let file = self.fill_temp(fd, &p, mode_bits, uid, gid, fill)?;
            drop(file);
        }
        guard.disarm();
        Ok(Staged {
            tmp,
            name: name.to_os_string(),
        })
    }

    /// Renames a staged file over its destination. A directory in the way is refused, or,
    /// with `replace_dir`, removed with everything below it first. On failure the temporary
    /// file is removed.
    pub fn commit_staged(&self, dir: &DirHandle, staged: Staged, replace_dir: bool) -> Result<()> {
        const OP: &str = "writing";
        let guard = TempGuard {
            dir: dir.fd.as_fd(),
            name: Some(staged.tmp.clone()),
        };
        let rename = || rustix::fs::renameat(&dir.fd, &staged.tmp, &dir.fd, &staged.name);
        let in_the_way = |e: rustix::io::Errno| {
            matches!(
                e,
                rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST
            )
        };
        let p = || InRoot::new(&Path::new(&dir.shown).join(&staged.name));
        match rename() {
            Ok(()) => {}
            Err(e) if in_the_way(e) && replace_dir => {
                remove_tree_at(dir.fd.as_fd(), &staged.name)
                    .map_err(|e| self.err("removing", &p(), e))?;
                rename().map_err(|e| self.err(OP, &p(), to_io(e)))?;
            }
            Err(e) if in_the_way(e) => {
                return Err(self.refused(OP, &p(), "a directory is in the way"))
            }
            Err(e) => return Err(self.err(OP, &p(), to_io(e))),
        }
        // A staged file is a new inode, so the rename moved it: nothing is left to remove.
        guard.disarm();
        Ok(())
    }

    /// Removes a staged file that will not be committed.
    pub fn discard_staged(&self, dir: &DirHandle, staged: Staged) {
        let _ = rustix::fs::unlinkat(&dir.fd, &staged.tmp, AtFlags::empty());
    }

    /// `syncfs(2)` on the filesystem of an opened directory: everything written to it so far
    /// (file contents and metadata) is on stable storage when this returns.
    pub fn syncfs(&self, dir: &DirHandle) -> Result<()> {
        let p = InRoot::new(Path::new(&dir.shown));
        let fd = rustix::fs::openat(
            &dir.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err("syncing the filesystem of", &p, to_io(e)))?;
        rustix::fs::syncfs(&fd).map_err(|e| self.err("syncing the filesystem of", &p, to_io(e)))
    }

    /// The device number of the filesystem an opened directory is on.
    pub fn dir_dev(&self, dir: &DirHandle) -> Result<u64> {
        let p = InRoot::new(Path::new(&dir.shown));
        rustix::fs::fstat(&dir.fd)
            .map(|st| st.st_dev)
            .map_err(|e| self.err("looking up", &p, to_io(e)))
    }

    /// chown, chmod and fill a new temporary file; restores setuid/setgid if writing cleared
    /// them.
    fn fill_temp(
        &self,
        fd: OwnedFd,
        p: &InRoot,
        mode_bits: u32,
        uid: u32,
        gid: u32,
        fill: impl FnOnce(&mut File) -> io::Result<u64>,
    ) -> Result<File> {
        const OP: &str = "writing";
        rustix::fs::fchown(&fd, uid_arg(Some(uid)), gid_arg(Some(gid)))
            .map_err(|e| self.err("changing the owner of", p, to_io(e)))?;
        rustix::fs::fchmod(&fd, mode(mode_bits))
            .map_err(|e| self.err("setting the mode of", p, to_io(e)))?;
        let mut file = File::from(fd);
        fill(&mut file).map_err(|source| Error::Fill {
            op: OP,
            path: p.shown.clone(),
            root: self.path.clone(),
            source,
        })?;
        // Writing drops setuid/setgid when the caller lacks CAP_FSETID; put them back.
        if mode_bits & 0o6000 != 0 {
            let st = rustix::fs::fstat(&file).map_err(|e| self.err(OP, p, to_io(e)))?;
            if st.st_mode & 0o7777 != mode_bits & 0o7777 {
                rustix::fs::fchmod(&file, mode(mode_bits))
                    .map_err(|e| self.err("setting the mode of", p, to_io(e)))?;
            }
        }
        Ok(file)
    }

    /// `lstat` of the entry `name` (one plain component) of an opened directory; `None` when
    /// there is nothing.
    pub fn lstat_entry(&self, dir: &DirHandle, name: &OsStr) -> Result<Option<FileStat>> {
        let p = InRoot::new(&Path::new(&dir.shown).join(name));
        if name.is_empty() || is_dot(name) || name.as_bytes().contains(&b'/') {
            return Err(self.refused("looking up", &p, "not a plain file name"));
        }
        self.lstat_at(&dir.fd, name)
            .map_err(|e| self.err("looking up", &p, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_atomic_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        p: &InRoot,
        mode_bits: u32,
        uid: u32,
        gid: u32,
        sync_dir: bool,
        fill: impl FnOnce(&mut File) -> io::Result<u64>,
    ) -> Result<u64> {
        const OP: &str = "writing";
        let (tmp_name, fd) = self
            .create_temp(parent, name)
            .map_err(|e| self.err(OP, p, e))?;
        let guard = TempGuard {
            dir: parent.as_fd(),
            name: Some(tmp_name.clone()),
        };
        let mut written = 0;
        let file = self.fill_temp(fd, p, mode_bits, uid, gid, |f| {
            written = fill(f)?;
            Ok(written)
        })?;
        file.sync_all().map_err(|e| self.err(OP, p, e))?;
        drop(file);
        rustix::fs::renameat(parent, &tmp_name, parent, name).map_err(|e| match e {
            rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST => {
                self.refused(OP, p, "a directory is in the way")
            }
            e => self.err(OP, p, to_io(e)),
        })?;
        guard.disarm();
        if sync_dir {
            self.sync_dir(parent).map_err(|e| self.err(OP, p, e))?;
        }
        log::debug!("wrote {} in {}", p.shown, self.path.display());
        Ok(written)
    }

    /// fsyncs a directory (resolved inside the root), making renames into it durable.
    pub fn fsync_dir(&self, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "syncing directory";
        let p = InRoot::new(path.as_ref());
        let fd = self.open_whole(OP, &p, OFlags::RDONLY | OFlags::DIRECTORY)?;
        rustix::fs::fsync(&fd).map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// An unnamed temporary file (`O_TMPFILE`) for reading and writing, on the filesystem of
    /// the directory `dir` (which must exist). Where the filesystem has no `O_TMPFILE`, a
    /// named temporary file is created and unlinked at once. Nothing is left behind when the
    /// file is dropped.
    pub fn temp_file_in(&self, dir: impl AsRef<Path>) -> Result<File> {
        const OP: &str = "creating a temporary file in";
        let p = InRoot::new(dir.as_ref());
        let dfd = self.open_whole(OP, &p, OFlags::PATH | OFlags::DIRECTORY)?;
        match rustix::fs::openat(
            &dfd,
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {}
            Err(e) => return Err(self.err(OP, &p, to_io(e))),
        }
        let (name, fd) = self
            .create_temp(&dfd, OsStr::new("tmp"))
            .map_err(|e| self.err(OP, &p, e))?;
        rustix::fs::unlinkat(&dfd, &name, AtFlags::empty())
            .map_err(|e| self.err(OP, &p, to_io(e)))?;
        Ok(File::from(fd))
    }

    fn create_temp(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<(OsString, OwnedFd)> {
        self.create_temp_mode(dir, name, 0o600)
    }

    /// A new file under a fresh temporary name in `dir`, created with `create_mode` (the
    /// umask applies).
    fn create_temp_mode(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        create_mode: u32,
    ) -> io::Result<(OsString, OwnedFd)> {
        // Keep the temporary name within NAME_MAX whatever the final name is.
        let bytes = name.as_bytes();
        let base = &bytes[..bytes.len().min(200)];
        let pid = pid();
        let mut tries = 0;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let mut tmp = Vec::with_capacity(base.len() + 40);
            tmp.push(b'.');
            tmp.extend_from_slice(base);
            tmp.extend_from_slice(format!(".ember-{pid}-{n}-{nanos:x}").as_bytes());
            let tmp = OsStr::from_bytes(&tmp).to_os_string();
            match rustix::fs::openat(
                dir,
                &tmp,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(create_mode & 0o777),
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(rustix::io::Errno::EXIST) if tries < 100 => tries += 1,
                Err(e) => return Err(to_io(e)),
            }
        }
    }

    fn sync_dir(&self, dir: &OwnedFd) -> io::Result<()> {
        let fd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(to_io)?;
        rustix::fs::fsync(&fd).map_err(to_io)
    }

    /// Appends to a regular file, creating it 0644 root:root when missing. Refuses anything
    /// that is not a regular file (a symlink included). Returns true when the file was created.
    pub fn append(&self, path: impl AsRef<Path>, mut contents: impl Read) -> Result<bool> {
        const OP: &str = "appending to";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        let existed = match self
            .lstat_at(&parent, &name)
            .map_err(|e| self.err(OP, &p, e))?
        {
            Some(st) if !st.is_file() => {
                return Err(self.refused(OP, &p, "only regular files can be appended to"))
            }
            Some(_) => true,
            None => false,
        };
        let opts = OpenOptions {
            write: true,
            append: true,
            create: true,
            mode: 0o644,
            ..OpenOptions::default()
        };
        let mut file = self.open_file(path.as_ref(), &opts)?;
        copy_checked(&mut contents, &mut file).map_err(|e| match e {
            CopyError::Read(e) => Error::Source {
                op: OP,
                path: p.shown.clone(),
                root: self.path.clone(),
                source: e,
            },
            CopyError::Write(e) => self.err(OP, &p, e),
        })?;
        file.sync_all().map_err(|e| self.err(OP, &p, e))?;
        Ok(!existed)
    }

    /// Creates a symlink at `path` whose target is stored exactly as given (not re-rooted).
    pub fn symlink(&self, target: impl AsRef<Path>, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "creating symlink";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::symlinkat(target.as_ref(), &parent, &name)
            .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Creates a symlink at `path` (target stored as given) that replaces whatever
    /// non-directory is there, atomically: the link is made under a temporary name in the same
    /// directory and renamed over `path`. A directory in the way is refused.
    pub fn symlink_replace(&self, target: impl AsRef<Path>, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "creating symlink";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        self.replace_with(OP, &p, &parent, &name, |tmp| {
            rustix::fs::symlinkat(target.as_ref(), &parent, tmp)
        })
    }

    /// Creates a hard link at `path` to `target` (resolved like [`Root::hard_link`]) that
    /// replaces whatever non-directory is at `path`, atomically (see [`Root::symlink_replace`]).
    pub fn hard_link_replace(
        &self,
        target: impl AsRef<Path>,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        const OP: &str = "creating hard link";
        let p = InRoot::new(path.as_ref());
        let t = InRoot::new(target.as_ref());
        let (tparent, tname) = self.split(OP, &t)?;
        let (parent, name) = self.split(OP, &p)?;
        self.replace_with(OP, &p, &parent, &name, |tmp| {
            rustix::fs::linkat(&tparent, &tname, &parent, tmp, AtFlags::empty())
        })
    }

    /// Makes a new entry under a fresh temporary name with `make`, then renames it over `name`.
    fn replace_with(
        &self,
        op: &'static str,
        p: &InRoot,
        parent: &OwnedFd,
        name: &OsStr,
        make: impl Fn(&OsStr) -> rustix::io::Result<()>,
    ) -> Result<()> {
        if let Some(st) = self
            .lstat_at(parent, name)
            .map_err(|e| self.err(op, p, e))?
        {
            if st.is_dir() {
                return Err(self.refused(op, p, "a directory is in the way"));
            }
        }
        let bytes = name.as_bytes();
        let base = &bytes[..bytes.len().min(200)];
        let pid = pid();
        let mut tries = 0;
        let tmp = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp = Vec::with_capacity(base.len() + 32);
            tmp.push(b'.');
            tmp.extend_from_slice(base);
            tmp.extend_from_slice(format!(".ember-{pid}-{n}").as_bytes());
            let tmp = OsStr::from_bytes(&tmp).to_os_string();
            match make(&tmp) {
                Ok(()) => break tmp,
                Err(rustix::io::Errno::EXIST) if tries < 100 => tries += 1,
                Err(e) => return Err(self.err(op, p, to_io(e))),
            }
        };
        let guard = TempGuard {
            dir: parent.as_fd(),
            name: Some(tmp.clone()),
        };
        rustix::fs::renameat(parent, &tmp, parent, name).map_err(|e| self.err(op, p, to_io(e)))?;
        // rename(2) does nothing when both names already link the same inode; the guard then
        // removes the temporary name (otherwise it is gone and the unlink fails harmlessly).
        drop(guard);
        Ok(())
    }

    /// Reads the target of the symlink at `path`.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        const OP: &str = "reading symlink";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        let target = rustix::fs::readlinkat(&parent, &name, Vec::new())
            .map_err(|e| self.err(OP, &p, to_io(e)))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// Creates a hard link at `path` to `target`; both are resolved inside the root and the
    /// last component of `target` is not followed (like `link(2)` and Go's `os.Link`).
    pub fn hard_link(&self, target: impl AsRef<Path>, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "creating hard link";
        let p = InRoot::new(path.as_ref());
        let t = InRoot::new(target.as_ref());
        let (tparent, tname) = self.split(OP, &t)?;
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::linkat(&tparent, &tname, &parent, &name, AtFlags::empty())
            .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Renames `from` to `to` (both inside the root, neither last component followed).
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "renaming";
        let f = InRoot::new(from.as_ref());
        let t = InRoot::new(to.as_ref());
        let (fparent, fname) = self.split(OP, &f)?;
        let (tparent, tname) = self.split(OP, &t)?;
        rustix::fs::renameat(&fparent, &fname, &tparent, &tname)
            .map_err(|e| self.err(OP, &f, to_io(e)))
    }

    /// Removes a file, symlink or other non-directory.
    pub fn unlink(&self, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "removing";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::unlinkat(&parent, &name, AtFlags::empty())
            .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, path: impl AsRef<Path>) -> Result<()> {
        const OP: &str = "removing directory";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR)
            .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Removes the path and, if it is a directory, everything below it. Symlinks are removed,
    /// never followed. A missing path is not an error. Returns true if something was removed.
    pub fn remove_all(&self, path: impl AsRef<Path>) -> Result<bool> {
        const OP: &str = "removing";
        let p = InRoot::new(path.as_ref());
        if p.is_root() {
            return Err(self.refused(OP, &p, "the path is the root directory itself"));
        }
        let parent = match self.parent_fd(&p) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.err(OP, &p, e)),
        };
        let name = p.name().unwrap_or_default().to_os_string();
        match remove_tree_at(parent.as_fd(), &name) {
            Ok(removed) => Ok(removed),
            Err(e) => Err(self.err(OP, &p, e)),
        }
    }

    /// Changes owner and/or group of the path itself (a symlink is not followed).
    pub fn lchown(&self, path: impl AsRef<Path>, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        const OP: &str = "changing the owner of";
        let p = InRoot::new(path.as_ref());
        if p.is_root() {
            return rustix::fs::chownat(
                &self.fd,
                "",
                uid_arg(uid),
                gid_arg(gid),
                AtFlags::EMPTY_PATH,
            )
            .map_err(|e| self.err(OP, &p, to_io(e)));
        }
        let (parent, name) = self.split(OP, &p)?;
        rustix::fs::chownat(
            &parent,
            &name,
            uid_arg(uid),
            gid_arg(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Sets the permission bits (including setuid/setgid/sticky) of the path itself. Refused for
    /// a symlink: symlinks have no mode of their own on Linux.
    pub fn chmod(&self, path: impl AsRef<Path>, mode_bits: u32) -> Result<()> {
        const OP: &str = "setting the mode of";
        let p = InRoot::new(path.as_ref());
        if p.is_root() {
            let fd = self
                .open_rel(
                    Path::new("."),
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                )
                .map_err(|e| self.err(OP, &p, e))?;
            return rustix::fs::fchmod(&fd, mode(mode_bits))
                .map_err(|e| self.err(OP, &p, to_io(e)));
        }
        let (parent, name) = self.split(OP, &p)?;
        chmod_at(parent.as_fd(), &name, mode_bits).map_err(|e| match e {
            ChmodError::Symlink => self.refused(OP, &p, "it is a symbolic link"),
            ChmodError::Io(e) => self.err(OP, &p, e),
        })
    }

    /// Sets owner, group and mode of an existing node: lchown first, then chmod (so that
    /// setuid/setgid bits survive the chown). `None` leaves that attribute unchanged.
    pub fn set_permissions(
        &self,
        path: impl AsRef<Path>,
        uid: Option<u32>,
        gid: Option<u32>,
        mode_bits: Option<u32>,
    ) -> Result<()> {
        let path = path.as_ref();
        if uid.is_some() || gid.is_some() {
            self.lchown(path, uid, gid)?;
        }
        if let Some(m) = mode_bits {
            self.chmod(path, m)?;
        }
        Ok(())
    }

    /// The real in-root path that `path` names: every directory component is resolved
    /// (symlinks followed inside the root, to any depth, exactly as the other operations
    /// resolve them), the last component is kept as it is. Components that do not exist yet
    /// are kept literally, so paths that are about to be created can be compared too: two
    /// paths name the same place exactly when their resolved paths are equal.
    ///
    /// Fails on a symlink loop or when a component is a file.
    pub fn resolve(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        const OP: &str = "resolving";
        let p = InRoot::new(path.as_ref());
        let Some(name) = p.name() else {
            return Ok(PathBuf::from("/"));
        };
        let mut todo: std::collections::VecDeque<OsString> =
            p.comps[..p.comps.len() - 1].iter().cloned().collect();
        // `base` only ever holds real directory names, so it resolves without any symlink.
        let mut base: Vec<OsString> = Vec::new();
        let mut links = 0;
        let mut missing = false;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                base.pop();
                continue;
            }
            if missing {
                base.push(c);
                continue;
            }
            let mut rel = PathBuf::from(".");
            for b in &base {
                rel.push(b);
            }
            let dir = self
                .open_rel(&rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
                .map_err(|e| self.err(OP, &p, e))?;
            match rustix::fs::statat(&dir, &c, AtFlags::SYMLINK_NOFOLLOW) {
                Err(rustix::io::Errno::NOENT) => {
                    missing = true;
                    base.push(c);
                }
                Err(e) => return Err(self.err(OP, &p, to_io(e))),
                Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => base.push(c),
                    FileType::Symlink => {
                        links += 1;
                        if links > 40 {
                            return Err(self.err(OP, &p, io::Error::from(rustix::io::Errno::LOOP)));
                        }
                        let target = rustix::fs::readlinkat(&dir, &c, Vec::new())
                            .map_err(|e| self.err(OP, &p, to_io(e)))?;
                        let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                        if target.is_absolute() {
                            base.clear();
                        }
                        for tc in target.components().rev() {
                            match tc {
                                Component::Normal(n) => todo.push_front(n.to_os_string()),
                                Component::ParentDir => todo.push_front(OsString::from("..")),
                                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                            }
                        }
                    }
                    _ => return Err(self.err(OP, &p, io::Error::from(rustix::io::Errno::NOTDIR))),
                },
            }
        }
        let mut out = PathBuf::from("/");
        for b in &base {
            out.push(b);
        }
        out.push(name);
        Ok(out)
    }

    /// Copies the contents of directory `src` into the existing directory `dst` (like
    /// shadow-utils' `copy_tree` for /etc/skel): directories, regular files, symlinks, hard links
    /// (kept as links within the copy) and device/FIFO nodes; permission bits and timestamps
    /// are preserved and owners are mapped with `owners`. A symlink whose target starts with
    /// the string `src` gets that prefix replaced by `dst`. Existing entries in `dst` are
    /// errors, as with shadow-utils.
    pub fn copy_tree(
        &self,
        src: impl AsRef<Path>,
        dst: impl AsRef<Path>,
        owners: Ownership,
    ) -> Result<()> {
        self.copy_impl(src.as_ref(), dst.as_ref(), owners, false)
    }

    /// Copies the directory `src` to `dst`, which must not exist: `dst` is created with the
    /// mode, times and (mapped) owner of `src`, then filled like [`Root::copy_tree`].
    pub fn copy_dir(
        &self,
        src: impl AsRef<Path>,
        dst: impl AsRef<Path>,
        owners: Ownership,
    ) -> Result<()> {
        self.copy_impl(src.as_ref(), dst.as_ref(), owners, true)
    }

    fn copy_impl(&self, src: &Path, dst: &Path, owners: Ownership, copy_root: bool) -> Result<()> {
        const OP: &str = "copying";
        let s = InRoot::new(src);
        let d = InRoot::new(dst);
        // Symlink targets are rewritten with the paths exactly as given, as shadow-utils does
        // (a home of "/home/x/" turns "/etc/skel/.bashrc" into "/home/x//.bashrc").
        let mut ctx = CopyCtx {
            src_prefix: src.as_os_str().as_bytes().to_vec(),
            dst_prefix: dst.as_os_str().as_bytes().to_vec(),
            owners,
            links: Vec::new(),
        };
        if copy_root {
            let (sparent, sname) = self.split(OP, &s)?;
            let (dparent, dname) = self.split(OP, &d)?;
            let st = rustix::fs::statat(&sparent, &sname, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(OP, &s, to_io(e)))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(self.refused(OP, &s, "it is not a directory"));
            }
            // copy_entry creates the directory and recurses into it.
            return copy_entry(
                &mut ctx,
                sparent.as_fd(),
                &sname,
                dparent.as_fd(),
                &dname,
                Path::new(""),
            )
            .map_err(|(rel, e)| {
                let shown = InRoot::new(&Path::new(&s.shown).join(rel));
                self.err(OP, &shown, e)
            });
        }
        let sfd = self
            .open_rel(
                &s.prefix(s.comps.len()),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .map_err(|e| self.err(OP, &s, e))?;
        let dfd = self
            .open_rel(
                &d.prefix(d.comps.len()),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .map_err(|e| self.err(OP, &d, e))?;
        copy_dir_contents(&mut ctx, sfd.as_fd(), dfd.as_fd(), Path::new("")).map_err(|(rel, e)| {
            let shown = InRoot::new(&Path::new(&s.shown).join(rel));
            self.err(OP, &shown, e)
        })
    }

    /// Changes ownership below and of the directory `path`, like shadow-utils' `chown_tree`,
    /// mapping owners with `owners`. Symlinks are not followed.
    pub fn chown_tree(&self, path: impl AsRef<Path>, owners: Ownership) -> Result<()> {
        const OP: &str = "changing the owner of";
        let p = InRoot::new(path.as_ref());
        let fd = self.open_whole(
            OP,
            &p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )?;
        chown_tree_fd(fd.as_fd(), &owners).map_err(|e| self.err(OP, &p, e))
    }

    /// Sets access and modification times of the path itself (seconds, nanoseconds).
    pub fn set_times(
        &self,
        path: impl AsRef<Path>,
        atime: (i64, i64),
        mtime: (i64, i64),
    ) -> Result<()> {
        const OP: &str = "setting the times of";
        let p = InRoot::new(path.as_ref());
        let (parent, name) = self.split(OP, &p)?;
        let ts = Timestamps {
            last_access: Timespec {
                tv_sec: atime.0,
                tv_nsec: atime.1,
            },
            last_modification: Timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1,
            },
        };
        rustix::fs::utimensat(&parent, &name, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.err(OP, &p, to_io(e)))
    }

    /// Lists a directory (not following a final symlink): names and `lstat` of each entry.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<(OsString, FileStat)>> {
        const OP: &str = "listing";
        let p = InRoot::new(path.as_ref());
        let fd = self.open_whole(
            OP,
            &p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )?;
        let names = list_dir(fd.as_fd()).map_err(|e| self.err(OP, &p, e))?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let st = rustix::fs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(OP, &p, to_io(e)))?;
            out.push((n, FileStat::from_raw(&st)));
        }
        Ok(out)
    }
}

fn list_dir_with_ino(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, u64)>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)?;
    let mut d = Dir::new(fd).map_err(to_io)?;
    let mut out = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent.map_err(to_io)?;
        let name = entry_name(&ent);
        if !is_dot(&name) {
            out.push((name, ent.ino()));
        }
    }
    Ok(out)
}

fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    Ok(list_dir_with_ino(dir)?
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

/// Removes `name` in `dir`, recursively for directories, never following symlinks.
fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(to_io(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(to_io)?;
        for child in list_dir(sub.as_fd())? {
            remove_tree_at(sub.as_fd(), &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(to_io)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(to_io)?;
    }
    Ok(true)
}

enum ChmodError {
    Symlink,
    Io(io::Error),
}

/// chmod without following a symlink: directories and regular files are opened (O_NOFOLLOW)
/// and fchmod-ed; other node types are chmodded by name right after checking they are not a
/// symlink.
fn chmod_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode_bits: u32,
) -> std::result::Result<(), ChmodError> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| ChmodError::Io(to_io(e)))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    match ft {
        FileType::Symlink => Err(ChmodError::Symlink),
        FileType::Directory | FileType::RegularFile => {
            let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
            if ft == FileType::Directory {
                flags |= OFlags::DIRECTORY;
            } else {
                flags |= OFlags::NONBLOCK;
            }
            let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
                rustix::io::Errno::LOOP => ChmodError::Symlink,
                e => ChmodError::Io(to_io(e)),
            })?;
            rustix::fs::fchmod(&fd, mode(mode_bits)).map_err(|e| ChmodError::Io(to_io(e)))
        }
        _ => rustix::fs::chmodat(dir, name, mode(mode_bits), AtFlags::empty())
            .map_err(|e| ChmodError::Io(to_io(e))),
    }
}

fn chown_tree_fd(dir: BorrowedFd<'_>, ids: &Ownership) -> io::Result<()> {
    for name in list_dir(dir)? {
        let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(to_io)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rustix::fs::openat(
                dir,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(to_io)?;
            chown_tree_fd(sub.as_fd(), ids)?;
        }
        let (u, g) = ids.pick(st.st_uid, st.st_gid);
        if u.is_some() || g.is_some() {
            rustix::fs::chownat(
                dir,
                &name,
                uid_arg(u),
                gid_arg(g),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(to_io)?;
        }
    }
    let st = rustix::fs::fstat(dir).map_err(to_io)?;
    let (u, g) = ids.pick(st.st_uid, st.st_gid);
    if u.is_some() || g.is_some() {
        rustix::fs::fchown(dir, uid_arg(u), gid_arg(g)).map_err(to_io)?;
    }
    Ok(())
}

struct CopyCtx {
    src_prefix: Vec<u8>,
    dst_prefix: Vec<u8>,
    owners: Ownership,
    /// (dev, ino) of multiply-linked source files already copied, with the destination's
    /// directory fd and name so later names can be hard links to it.
    links: Vec<(u64, u64, OwnedFd, OsString)>,
}

type CopyResult = std::result::Result<(), (PathBuf, io::Error)>;

fn copy_dir_contents(
    ctx: &mut CopyCtx,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    rel: &Path,
) -> CopyResult {
    let names = list_dir(src).map_err(|e| (rel.to_path_buf(), e))?;
    for name in names {
        let here = rel.join(&name);
        copy_entry(ctx, src, &name, dst, &name, &here)?;
    }
    Ok(())
}

fn copy_entry(
    ctx: &mut CopyCtx,
    src: BorrowedFd<'_>,
    sname: &OsStr,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    rel: &Path,
) -> CopyResult {
    let fail = |e: io::Error| (rel.to_path_buf(), e);
    let failx = |e: rustix::io::Errno| (rel.to_path_buf(), to_io(e));
    let st = match rustix::fs::statat(src, sname, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        // Vanished while copying: shadow-utils does not care either.
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(failx(e)),
    };
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: i64::try_from(st.st_atime_nsec).unwrap_or(0),
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
        },
    };
    let perm = st.st_mode & 0o7777;
    let (uid, gid) = ctx.owners.resolve(st.st_uid, st.st_gid);
    let owner = (uid_arg(Some(uid)), gid_arg(Some(gid)));
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(failx)?;
            rustix::fs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(failx)?;
            let sfd = rustix::fs::openat(
                src,
                sname,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(failx)?;
            let dfd = rustix::fs::openat(
                dst,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(failx)?;
            rustix::fs::fchmod(&dfd, mode(perm)).map_err(failx)?;
            copy_dir_contents(ctx, sfd.as_fd(), dfd.as_fd(), rel)?;
            rustix::fs::utimensat(dst, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(failx)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, sname, Vec::new()).map_err(failx)?;
            let mut target = target.into_bytes();
            if target.starts_with(&ctx.src_prefix) {
                let mut t = ctx.dst_prefix.clone();
                t.extend_from_slice(&target[ctx.src_prefix.len()..]);
                target = t;
            }
            rustix::fs::symlinkat(OsStr::from_bytes(&target), dst, name).map_err(failx)?;
            rustix::fs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(failx)?;
            rustix::fs::utimensat(dst, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(failx)?;
        }
        FileType::RegularFile => {
            if st.st_nlink > 1 {
                if let Some((_, _, ldir, lname)) = ctx
                    .links
                    .iter()
                    .find(|(d, i, _, _)| *d == st.st_dev && *i == st.st_ino)
                {
                    rustix::fs::linkat(ldir, lname, dst, name, AtFlags::empty()).map_err(failx)?;
                    return Ok(());
                }
            }
            let sfd = rustix::fs::openat(
                src,
                sname,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(failx)?;
            let dfd = rustix::fs::openat(
                dst,
                name,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(failx)?;
            rustix::fs::fchown(&dfd, owner.0, owner.1).map_err(failx)?;
            rustix::fs::fchmod(&dfd, mode(perm)).map_err(failx)?;
            let mut sf = File::from(sfd);
            let mut df = File::from(dfd);
            io::copy(&mut sf, &mut df).map_err(fail)?;
            df.sync_all().map_err(fail)?;
            drop(df);
            rustix::fs::utimensat(dst, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(failx)?;
            if st.st_nlink > 1 {
                let keep = rustix::fs::openat(
                    dst,
                    ".",
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(failx)?;
                ctx.links
                    .push((st.st_dev, st.st_ino, keep, name.to_os_string()));
            }
        }
        ft => {
            rustix::fs::mknodat(dst, name, ft, mode(perm), st.st_rdev).map_err(failx)?;
            rustix::fs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(failx)?;
            rustix::fs::chmodat(dst, name, mode(perm), AtFlags::empty()).map_err(failx)?;
            rustix::fs::utimensat(dst, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(failx)?;
        }
    }
    Ok(())
}

/// Removes a temporary file on drop unless disarmed.
struct TempGuard<'a> {
    dir: BorrowedFd<'a>,
    name: Option<OsString>,
}

impl TempGuard<'_> {
    fn disarm(mut self) {
        self.name = None;
    }
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = rustix::fs::unlinkat(self.dir, &name, AtFlags::empty());
        }
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that tells reader failures from writer failures.
fn copy_checked(r: &mut impl Read, w: &mut File) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        // `n` comes from `read` into `buf`, so it is at most buf.len().
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "ember-rootfs-unit-{tag}-{}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn paths_are_cleaned_lexically() {
        let p = InRoot::new(Path::new("/a/./b//../c/"));
        assert_eq!(p.shown, "/a/c");
        let p = InRoot::new(Path::new("../../etc/passwd"));
        assert_eq!(p.shown, "/etc/passwd");
        let p = InRoot::new(Path::new("/.."));
        assert!(p.is_root());
        assert_eq!(p.shown, "/");
        assert_eq!(
            InRoot::new(Path::new("x/y")).parent_rel(),
            PathBuf::from("x")
        );
        assert_eq!(
            InRoot::new(Path::new("/y")).parent_rel(),
            PathBuf::from(".")
        );
    }

    #[test]
    fn write_read_and_resolve() {
        let t = TempDir::new("basic");
        std::fs::create_dir(t.0.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", t.0.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", t.0.join("up")).unwrap();
        let root = Root::open(&t.0).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        root.write_file_atomic("/abs/f", &b"hello"[..], 0o640, uid, gid)
            .unwrap();
        assert_eq!(std::fs::read(t.0.join("real/f")).unwrap(), b"hello");
        let md = std::fs::metadata(t.0.join("real/f")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o640);
        assert_eq!(root.read_file("/up/up/real/f").unwrap(), b"hello");
        assert_eq!(root.resolve("/up/abs/f").unwrap(), PathBuf::from("/real/f"));
        assert_eq!(root.resolve("/").unwrap(), PathBuf::from("/"));
        assert!(root.lstat("/abs").unwrap().unwrap().is_symlink());
        assert!(root.stat_follow("/abs").unwrap().unwrap().is_dir());
        assert!(root.lstat("/missing/x").unwrap().is_none());
        assert!(root.read_file("/abs").is_err());
        assert_eq!(md.uid(), uid);
    }

    #[test]
    fn staged_files_appear_only_when_committed() {
        let t = TempDir::new("staged");
        std::fs::create_dir(t.0.join("d")).unwrap();
        std::fs::write(t.0.join("d/old"), "old").unwrap();
        let root = Root::open(&t.0).unwrap();
        let dir = root.open_dir("/d").unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let write = |data: &'static [u8]| {
            move |f: &mut File| -> io::Result<u64> {
                f.write_all(data)?;
                Ok(data.len() as u64)
            }
        };
        let a = root
            .stage_file_in(&dir, OsStr::new("old"), 0o640, uid, gid, write(b"new"))
            .unwrap();
        let b = root
            .stage_file_in(&dir, OsStr::new("b"), 0o2755, uid, gid, write(b"b"))
            .unwrap();
        let c = root
            .stage_file_in(&dir, OsStr::new("c"), 0o644, uid, gid, write(b"c"))
            .unwrap();
        // Staged, not visible under their names yet.
        assert_eq!(std::fs::read(t.0.join("d/old")).unwrap(), b"old");
        assert!(!t.0.join("d/b").exists());
        root.syncfs(&dir).unwrap();
        root.commit_staged(&dir, a, false).unwrap();
        root.commit_staged(&dir, b, false).unwrap();
        root.discard_staged(&dir, c);
        assert_eq!(std::fs::read(t.0.join("d/old")).unwrap(), b"new");
        let mode = |n: &str| std::fs::metadata(t.0.join(n)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("d/old"), 0o640);
        assert_eq!(mode("d/b"), 0o2755);
        let names: Vec<_> = std::fs::read_dir(t.0.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A failing fill leaves nothing; a bad name is refused.
        let r = root.stage_file_in(&dir, OsStr::new("x"), 0o644, uid, gid, |_| {
            Err(io::Error::other("fetch failed"))
        });
        assert!(matches!(r, Err(Error::Fill { .. })));
        assert!(root
            .stage_file_in(&dir, OsStr::new("../x"), 0o644, uid, gid, write(b""))
            .is_err());
        assert_eq!(std::fs::read_dir(t.0.join("d")).unwrap().count(), 2);
        // A directory in the way is refused at commit, and the temporary file removed.
        std::fs::create_dir(t.0.join("d/sub")).unwrap();
        let s = root
            .stage_file_in(&dir, OsStr::new("sub"), 0o644, uid, gid, write(b"x"))
            .unwrap();
        assert!(root.commit_staged(&dir, s, false).is_err());
        assert_eq!(std::fs::read_dir(t.0.join("d")).unwrap().count(), 3);
        std::fs::write(t.0.join("d/sub/inner"), "x").unwrap();
        let s = root
            .stage_file_in(&dir, OsStr::new("sub"), 0o644, uid, gid, write(b"file now"))
            .unwrap();
        root.commit_staged(&dir, s, true).unwrap();
        assert_eq!(std::fs::read(t.0.join("d/sub")).unwrap(), b"file now");
        assert_eq!(std::fs::read_dir(t.0.join("d")).unwrap().count(), 3);
    }

    #[test]
    fn failing_reader_leaves_nothing() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("source broke"));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let t = TempDir::new("fail");
        std::fs::write(t.0.join("f"), b"old").unwrap();
        let root = Root::open(&t.0).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let err = root
            .write_file_atomic("/f", Failing(3), 0o644, uid, gid)
            .unwrap_err();
        assert!(matches!(err, Error::Source { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "writing /f in {}: reading the new contents failed",
                t.0.display()
            )
        );
        assert_eq!(std::fs::read(t.0.join("f")).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(&t.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("f")]);
    }

    #[test]
    fn remove_all_does_not_follow() {
        let t = TempDir::new("rm");
        let keep = TempDir::new("rm-keep");
        std::fs::write(keep.0.join("k"), b"k").unwrap();
        std::fs::create_dir_all(t.0.join("d/e")).unwrap();
        std::fs::write(t.0.join("d/e/f"), b"f").unwrap();
        std::os::unix::fs::symlink(&keep.0, t.0.join("d/link")).unwrap();
        std::os::unix::fs::symlink("../..", t.0.join("d/e/up")).unwrap();
        let root = Root::open(&t.0).unwrap();
        assert!(root.remove_all("/d").unwrap());
        assert!(!t.0.join("d").exists());
        assert!(keep.0.join("k").exists());
        assert!(!root.remove_all("/d").unwrap());
        assert!(root.remove_all("/").is_err());
    }

    #[test]
    fn mkdir_all_reports_created() {
        let t = TempDir::new("mkdir");
        std::fs::create_dir(t.0.join("a")).unwrap();
        std::os::unix::fs::symlink("/nowhere", t.0.join("dangling")).unwrap();
        let root = Root::open(&t.0).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let r = root.mkdir_all_with("/a/b/c", 0o751, uid, gid).unwrap();
        assert_eq!(
            r.created,
            vec![PathBuf::from("/a/b"), PathBuf::from("/a/b/c")]
        );
        let md = std::fs::metadata(t.0.join("a/b/c")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o751);
        assert_eq!(
            root.mkdir_all_with("/a/b/c", 0o751, uid, gid)
                .unwrap()
                .created
                .len(),
            0
        );
        let e = root
            .mkdir_all_with("/dangling/x", 0o755, uid, gid)
            .unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e:?}");
        assert!(!t.0.join("nowhere").exists());
    }
}
