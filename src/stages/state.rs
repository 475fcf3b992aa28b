//! State kept between stage invocations (`-state-file`, default `/run/ignition/state`), in
//! Ignition's JSON layout so the two can be swapped mid-boot.
//!
//! Saved only when a stage succeeds, atomically, mode 0600 in a 0700 directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A config that was fetched: the user config, a referenced (merged or replacing) one, or the
/// base config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedConfig {
    /// "user" or "base".
    pub kind: String,
    /// Where from: a provider name, a URL path for referenced configs, "system" for base.
    pub source: String,
    pub referenced: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "fetchedConfigs", default)]
    pub fetched_configs: Vec<FetchedConfig>,
    /// LUKS volume name → key as a data URL, from the disks stage to the files stage.
    #[serde(rename = "luksPersistKeyFiles", default)]
    pub luks_persist_key_files: BTreeMap<String, String>,
    /// Directories the mount stage created (their ownership is fixed for home directories).
    #[serde(rename = "notatedDirectories", default)]
    pub notated_directories: Vec<String>,
    /// Files a provider asks the files stage to write (Hyper-V's KVP pools).
    #[serde(rename = "providerOutputFiles", default)]
    pub provider_output_files: Vec<serde_json::Value>,
    #[serde(rename = "luksPersistVolumeKeyFiles", default)]
    pub luks_persist_volume_key_files: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading state file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing state file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl State {
    /// Loads the state; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, Error> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::Parse {
                path: path.into(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::Read {
                path: path.into(),
                source,
            }),
        }
    }

    /// Saves the state atomically (0600 file in a 0700 directory).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let err = |source| Error::Write {
            path: path.into(),
            source,
        };
        let bytes = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        write_private_atomic(path, &bytes).map_err(err)
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory, mode 0600, creating
/// missing parent directories with mode 0700; fsyncs, then renames.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_in_ignitions_layout() {
        let dir = std::env::temp_dir().join(format!("ember-state-{}", std::process::id()));
        let path = dir.join("sub/state");
        let mut s = State::load(&path).unwrap();
        assert_eq!(s, State::default());
        s.fetched_configs.push(FetchedConfig {
            kind: "user".into(),
            source: "file".into(),
            referenced: false,
        });
        s.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"fetchedConfigs":[{"kind":"user","source":"file","referenced":false}],"luksPersistKeyFiles":{}"#), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(State::load(&path).unwrap(), s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
