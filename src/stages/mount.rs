//! The mount and umount stages.
//!
//! Mount: every filesystem with a `path` whose format is not swap or none is mounted at
//! `<root>/<path>`, shallowest first (stable order for equal depths), with its
//! `mountOptions`.  Existing components of the mount path must be directories (a symlink or a
//! file is an error: nothing is followed out of the root); missing ones are created with mode
//! 0755 and recorded in `state.notated_directories` (as paths inside the root, `/var/lib/x`).
//! Devices are waited for and resolved like the disks stage does.  A filesystem already mounted
//! at its place from the same device is left as it is.
//!
//! Umount: the same list, deepest first; a path that is not a mount point is skipped.  A mount
//! that cannot be unmounted is left mounted and reported; nothing is ever deleted.

use crate::logging::chain;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::disks::devices::{Resolver, WaitError};
use super::disks::Options;
use super::{clean_abs, Context, Failure, Mode};
use crate::config::model::Filesystem;
use crate::config::JsonPath;
use crate::system::blockdev;
use crate::system::mounts;

/// Errors of the mount and umount stages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("mount path {path} contains a non-directory component {component}")]
    NotADirectory { path: PathBuf, component: PathBuf },
    #[error("checking {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating directory {path}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Mount(#[from] mounts::Error),
    #[error("{}", .0.join("\n"))]
    Several(Vec<String>),
    #[error("filesystems cannot be mounted when applying a config to a directory tree")]
    Unsupported,
}

/// A filesystem to mount.
struct Entry<'a> {
    index: usize,
    fs: &'a Filesystem,
    /// `path` inside the root, normalised (`/var/lib/x`).
    inner: PathBuf,
    /// `<root>/<path>`.
    target: PathBuf,
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// The filesystems to mount, shallowest first.
fn entries<'a>(config: &'a crate::config::Config, root: &Path) -> Vec<Entry<'a>> {
    let mut v: Vec<Entry> = config
        .storage
        .filesystems
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !matches!(
                f.format.as_deref(),
                None | Some("") | Some("swap") | Some("none")
            )
        })
        .filter_map(|(index, fs)| {
            let p = fs.path.as_deref().filter(|p| !p.is_empty())?;
            let inner = clean_abs(p);
            let target = root.join(inner.strip_prefix("/").unwrap_or(&inner));
            Some(Entry {
                index,
                fs,
                inner,
                target,
            })
        })
        .collect();
    v.sort_by_key(|e| depth(&e.inner));
    v
}

fn fs_path(i: usize) -> JsonPath {
    JsonPath::root().key("storage").key("filesystems").index(i)
}

/// Runs the mount stage (device timeout from `EMBER_DEVICE_TIMEOUT`, else 30 s).
pub fn run_mount(ctx: &mut Context) -> Result<(), Failure> {
    run_mount_with(ctx, &Options::from_env())
}

/// Runs the mount stage with the given device timeout.
pub fn run_mount_with(ctx: &mut Context, opts: &Options) -> Result<(), Failure> {
    let config = ctx.config;
    let list = entries(config, ctx.root);
    if list.is_empty() {
        return Ok(());
    }
    if let Mode::Apply { ignore_unsupported } = ctx.settings.mode {
        if ignore_unsupported {
            log::warn!("mount: skipping filesystems (not supported when applying to a tree)");
            return Ok(());
        }
        return Err(Failure::new("mounting filesystems")
            .at(fs_path(list[0].index))
            .hint("use --ignore-unsupported to skip them")
            .caused_by(Error::Unsupported));
    }
    let mut resolver = Resolver::new(&ctx.settings.dev_dir);
    let mut created = Vec::new();
    for e in &list {
        let desc = format!("mounting {} at {}", e.fs.device, e.target.display());
        let op = ctx.ops.start(&desc);
        match mount_one(e, ctx.root, &mut resolver, opts, &mut created) {
            Ok(()) => op.finish(),
            Err(err) => {
                op.fail(&err);
                record(ctx, &created);
                return Err(Failure::new(desc).at(fs_path(e.index)).caused_by(err));
            }
        }
    }
    record(ctx, &created);
    Ok(())
}

fn record(ctx: &mut Context, created: &[String]) {
    for d in created {
        if !ctx.state.notated_directories.contains(d) {
            ctx.state.notated_directories.push(d.clone());
        }
    }
}

/// The components of the mount path that do not exist yet, outermost first (host path,
/// in-root path); an existing component that is not a directory is an error.
fn missing_dirs(e: &Entry, root: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut cur = root.to_path_buf();
    let mut inner = PathBuf::from("/");
    let mut missing = Vec::new();
    for c in e
        .inner
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        cur.push(c);
        inner.push(c);
        if missing.is_empty() {
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => {
                    return Err(Error::NotADirectory {
                        path: e.target.clone(),
                        component: cur.clone(),
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Stat {
                        path: cur.clone(),
                        source,
                    })
                }
            }
        }
        missing.push((cur.clone(), inner.to_string_lossy().into_owned()));
    }
    Ok(missing)
}

/// A mount the mount stage would make (for `ember plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMount {
    /// `$.storage.filesystems.N`.
    pub path: JsonPath,
    /// As configured.
    pub device: String,
    pub format: String,
    /// `<root>/<path>`.
    pub target: PathBuf,
    pub options: Vec<String>,
    /// Directories the stage would create, as paths inside the root, outermost first.
    pub create_dirs: Vec<String>,
    /// What is mounted at the target now, if anything (`Some(true)`: the same device).
    pub mounted_now: Option<bool>,
}

/// What the mount stage would mount, in its order, with its checks of the mount paths; writes
/// nothing and waits for no device (the disks stage may make them).
pub fn plan(config: &crate::config::Config, root: &Path) -> Result<Vec<PlannedMount>, Failure> {
    let mut out = Vec::new();
    for e in entries(config, root) {
        let desc = format!("mounting {} at {}", e.fs.device, e.target.display());
        let missing = missing_dirs(&e, root)
            .map_err(|err| Failure::new(desc).at(fs_path(e.index)).caused_by(err))?;
        let mounted_now = mounts::mounted_at(&e.target).ok().flatten().map(|here| {
            blockdev::device_number(Path::new(&e.fs.device))
                .is_ok_and(|(ma, mi)| here.major == ma && here.minor == mi)
        });
        out.push(PlannedMount {
            path: fs_path(e.index),
            device: e.fs.device.clone(),
            format: e.fs.format.clone().unwrap_or_default(),
            target: e.target.clone(),
            options: e.fs.mount_options.clone(),
            create_dirs: missing.into_iter().map(|(_, inner)| inner).collect(),
            mounted_now,
        });
    }
    Ok(out)
}

fn mount_one(
    e: &Entry,
    root: &Path,
    resolver: &mut Resolver,
    opts: &Options,
    created: &mut Vec<String>,
) -> Result<(), Error> {
    // Every existing component must be a directory; create the missing ones.
    for (cur, inner) in missing_dirs(e, root)? {
        let mkdir_err = |source| Error::Mkdir {
            path: cur.clone(),
            source,
        };
        fs::create_dir(&cur).map_err(mkdir_err)?;
        fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).map_err(mkdir_err)?;
        created.push(inner);
    }

    let node = resolver
        .wait_nodes(&[e.fs.device.as_str()], opts.device_timeout)?
        .into_iter()
        .next()
        .unwrap_or_else(|| PathBuf::from(&e.fs.device));
    if e.fs.device.starts_with("/dev/") && !Path::new(&e.fs.device).exists() {
        // Make the configured name exist for later tools, as udev would have.
        if let Err(err) = resolver.dev_names().resolve(Path::new(&e.fs.device)) {
            log::debug!("linking {}: {err}", e.fs.device);
        }
    }
    if already_mounted(&e.target, &node) {
        log::info!(
            "{} is already mounted at {}",
            e.fs.device,
            e.target.display()
        );
        return Ok(());
    }
    let format = e.fs.format.as_deref().unwrap_or_default();
    mounts::mount(&node, &e.target, format, &e.fs.mount_options)?;
    Ok(())
}

fn already_mounted(target: &Path, node: &Path) -> bool {
    let Ok(Some(here)) = mounts::mounted_at(target) else {
        return false;
    };
    blockdev::device_number(node).is_ok_and(|(ma, mi)| here.major == ma && here.minor == mi)
}

/// Runs the umount stage: unmounts what the mount stage mounted, deepest first.
pub fn run_umount(ctx: &mut Context) -> Result<(), Failure> {
    let config = ctx.config;
    let list = entries(config, ctx.root);
    if list.is_empty() || matches!(ctx.settings.mode, Mode::Apply { .. }) {
        return Ok(());
    }
    let mut failed = Vec::new();
    let mut first_path = None;
    for e in list.iter().rev() {
        if !mounts::is_mount_point(&e.target).unwrap_or(false) {
            log::info!("{} is not mounted; nothing to unmount", e.target.display());
            continue;
        }
        let desc = format!("unmounting {}", e.target.display());
        let r = ctx
            .ops
            .run(&desc, || mounts::umount(&e.target).map_err(Error::Mount));
        if let Err(err) = r {
            // Left mounted, and never deleted.
            failed.push(format!("{desc}: {}", chain(&err)));
            first_path.get_or_insert_with(|| fs_path(e.index));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let mut f = Failure::new("unmounting filesystems").caused_by(Error::Several(failed));
    f.path = first_path;
    Err(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        assert_eq!(clean_abs("/var/lib/x"), PathBuf::from("/var/lib/x"));
        assert_eq!(clean_abs("/../../etc"), PathBuf::from("/etc"));
        assert_eq!(clean_abs("/a/./b/../c/"), PathBuf::from("/a/c"));
        assert_eq!(clean_abs("/"), PathBuf::from("/"));
        assert_eq!(depth(Path::new("/")), 0);
        assert_eq!(depth(Path::new("/var/lib")), 2);
    }
}
