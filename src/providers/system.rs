//! Configs the distribution or the image puts on the machine itself: `user.ign` (a user config
//! baked into the image) and the base configs under `base.d/` and
//! `base.platform.d/<platform>/`.
//!
//! Three directories are searched, highest priority first: `/run/ignition` (runtime),
//! `/etc/ignition` (local) and `/usr/lib/ignition` (system), each overridable through
//! `IGNITION_SYSTEM_RUNTIME_CONFIG_DIR`, `IGNITION_SYSTEM_LOCAL_CONFIG_DIR` and
//! `IGNITION_SYSTEM_CONFIG_DIR`.
//!
//! This is not a [`super::Provider`]: a missing `user.ign` means "try the platform", not "no
//! config".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Error;

/// The three system config directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemDirs {
    /// `/run/ignition`: highest priority.
    pub runtime: PathBuf,
    /// `/etc/ignition`.
    pub local: PathBuf,
    /// `/usr/lib/ignition`: lowest priority.
    pub system: PathBuf,
}

impl Default for SystemDirs {
    fn default() -> Self {
        SystemDirs {
            runtime: PathBuf::from("/run/ignition"),
            local: PathBuf::from("/etc/ignition"),
            system: PathBuf::from("/usr/lib/ignition"),
        }
    }
}

impl SystemDirs {
    /// The defaults with the `IGNITION_SYSTEM_*_CONFIG_DIR` overrides applied (empty values
    /// are ignored, as in Ignition).
    pub fn from_env() -> Self {
        let var = |name: &str, default: PathBuf| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or(default)
        };
        let d = SystemDirs::default();
        SystemDirs {
            runtime: var("IGNITION_SYSTEM_RUNTIME_CONFIG_DIR", d.runtime),
            local: var("IGNITION_SYSTEM_LOCAL_CONFIG_DIR", d.local),
            system: var("IGNITION_SYSTEM_CONFIG_DIR", d.system),
        }
    }

    /// Highest priority first.
    pub fn in_priority_order(&self) -> [&Path; 3] {
        [&self.runtime, &self.local, &self.system]
    }
}

/// A config file found in a system directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The first `user.ign` in priority order; `Ok(None)` when there is none.
pub fn user_config(dirs: &SystemDirs) -> Result<Option<Found>, Error> {
    for dir in dirs.in_priority_order() {
        let path = dir.join("user.ign");
        if let Some(bytes) = read(&path)? {
            return Ok(Some(Found { path, bytes }));
        }
    }
    Ok(None)
}

/// The files of one base directory (`base.d` or `base.platform.d/<platform>`) over the three
/// system directories: a file name in a higher-priority directory hides the same name below
/// it; the result is in byte order of the file names (Go's `sort.Strings`).
///
/// Entries that are not regular files (directories, broken links) are skipped. A read error
/// on one file is returned with the files that could be read, so the caller can log it.
pub fn config_fragments(dirs: &SystemDirs, sub: &Path) -> (Vec<Found>, Vec<Error>) {
    let mut by_name: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    let mut errors = Vec::new();
    // Lowest priority first, so that higher-priority directories overwrite names.
    for dir in dirs.in_priority_order().into_iter().rev() {
        let d = dir.join(sub);
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                errors.push(Error::Io { path: d, source });
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            use std::os::unix::ffi::OsStrExt;
            by_name.insert(entry.file_name().as_bytes().to_vec(), path);
        }
    }
    let mut out = Vec::with_capacity(by_name.len());
    for (_, path) in by_name {
        match read(&path) {
            Ok(Some(bytes)) => out.push(Found { path, bytes }),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// `base.d/*`, then `base.platform.d/<platform>/*`, in merge order.
pub fn base_configs(dirs: &SystemDirs, platform: &str) -> (Vec<Found>, Vec<Error>) {
    let (mut found, mut errors) = config_fragments(dirs, Path::new("base.d"));
    // A platform name is one path component (the CLI checks it against the platform list);
    // refuse anything else rather than walking out of the directory.
    if !platform.is_empty() && !platform.contains('/') && platform != "." && platform != ".." {
        let (f, e) = config_fragments(dirs, &Path::new("base.platform.d").join(platform));
        found.extend(f);
        errors.extend(e);
    }
    (found, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> SystemDirs {
        SystemDirs {
            runtime: root.join("run"),
            local: root.join("etc"),
            system: root.join("usr"),
        }
    }

    fn put(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn precedence_and_order() {
        let root = std::env::temp_dir().join(format!("ember-sysdirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = dirs(&root);
        assert_eq!(user_config(&d).unwrap(), None);
        put(&root.join("usr/user.ign"), "usr");
        put(&root.join("etc/user.ign"), "etc");
        assert_eq!(user_config(&d).unwrap().unwrap().bytes, b"etc");
        put(&root.join("run/user.ign"), "run");
        assert_eq!(user_config(&d).unwrap().unwrap().bytes, b"run");

        put(&root.join("usr/base.d/20-b"), "usr-b");
        put(&root.join("usr/base.d/10-a"), "usr-a");
        put(&root.join("etc/base.d/10-a"), "etc-a");
        put(&root.join("run/base.d/30-c"), "run-c");
        put(&root.join("usr/base.platform.d/qemu/00-p"), "usr-p");
        put(&root.join("run/base.platform.d/qemu/00-p"), "run-p");
        put(&root.join("run/base.platform.d/aws/00-x"), "aws");
        std::fs::create_dir_all(root.join("run/base.d/40-dir")).unwrap();
        let (found, errors) = base_configs(&d, "qemu");
        assert!(errors.is_empty());
        let got: Vec<&[u8]> = found.iter().map(|f| f.bytes.as_slice()).collect();
        assert_eq!(
            got,
            [&b"etc-a"[..], &b"usr-b"[..], &b"run-c"[..], &b"run-p"[..]]
        );
        let (found, _) = base_configs(&d, "../..");
        assert_eq!(found.len(), 3);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
