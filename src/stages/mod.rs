//! The stages: the only code that changes a machine (through `system::`).
//!
//! Ignition's stages run one per invocation, in this order at boot:
//! `fetch-offline` → `fetch` → `kargs` → `disks` → `mount` → `files`, and `umount` before the
//! switch to the new root. [`engine`] acquires and caches the config and runs one stage;
//! each stage module exposes `run(&mut Context) -> Result<(), Failure>`.
//!
//! Every stage plans before it writes and logs one numbered started/finished/failed line per
//! operation ([`oplog`]). A failure names the operation, the JSON path of the config entry it
//! came from, the root cause and a hint ([`Failure`]); it never carries config contents.

pub mod disks;
pub mod engine;
pub mod files;
pub mod kargs;
pub mod mount;
pub mod oplog;
pub mod report;
pub mod state;
pub mod webhook;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::config::model::Resource as ConfigResource;
use crate::config::{Config, JsonPath};
use crate::fetch;

pub use oplog::OpLog;
pub use state::State;

/// A stage of Ignition's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    FetchOffline,
    Fetch,
    Kargs,
    Disks,
    Mount,
    Files,
    Umount,
}

impl Stage {
    /// In boot order.
    pub const ALL: [Stage; 7] = [
        Stage::FetchOffline,
        Stage::Fetch,
        Stage::Kargs,
        Stage::Disks,
        Stage::Mount,
        Stage::Files,
        Stage::Umount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::FetchOffline => "fetch-offline",
            Stage::Fetch => "fetch",
            Stage::Kargs => "kargs",
            Stage::Disks => "disks",
            Stage::Mount => "mount",
            Stage::Files => "files",
            Stage::Umount => "umount",
        }
    }

    pub fn from_name(s: &str) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|st| st.name() == s)
    }

    /// The fetch stages acquire the config; the others read the cache.
    pub fn acquires_config(self) -> bool {
        matches!(self, Stage::FetchOffline | Stage::Fetch)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the stages are being run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// At boot, on the machine being provisioned (the `ignition` personality, `ember stage`,
    /// `ember run`).
    Boot,
    /// On a directory tree for an image build (`ember apply`, `ignition-apply`): disks, mounts,
    /// kernel arguments (and, like `ignition-apply`, users and groups) are refused unless
    /// `ignore_unsupported`; no crypttab, no result file.
    Apply { ignore_unsupported: bool },
}

/// Settings that come from the command line and environment, not from the config.
#[derive(Clone, Debug)]
pub struct Settings {
    pub platform: String,
    pub mode: Mode,
    /// `IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT`: write `~/.ssh/authorized_keys.d/ignition`
    /// (true, the default) or `~/.ssh/authorized_keys`.
    pub write_authorized_keys_fragment: bool,
    /// The distribution's kernel-argument helper (Ignition's `ignition-kargs-helper`).
    pub kargs_helper: PathBuf,
    /// Where the result file goes inside the root (`/etc/.ignition-result.json`); `None`
    /// disables it.
    pub result_file: Option<PathBuf>,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id_path: PathBuf,
    /// Where device nodes are (`/dev`); tests point this elsewhere.
    pub dev_dir: PathBuf,
    /// The DHCP server of the lease Ember took when it brought the network up (cloudstack).
    pub dhcp_server: Option<String>,
}

/// The result file inside the root, written last on a first boot (the boot's stamp).
pub const RESULT_FILE: &str = "/etc/.ignition-result.json";

impl Settings {
    pub fn new(platform: impl Into<String>, mode: Mode) -> Self {
        Settings {
            platform: platform.into(),
            mode,
            write_authorized_keys_fragment: true,
            kargs_helper: PathBuf::from("/usr/sbin/ignition-kargs-helper"),
            result_file: Some(PathBuf::from(RESULT_FILE)),
            boot_id_path: PathBuf::from("/proc/sys/kernel/random/boot_id"),
            dev_dir: PathBuf::from("/dev"),
            dhcp_server: None,
        }
    }
}

/// Everything a stage works with.
pub struct Context<'a> {
    pub stage: Stage,
    /// The target root (`/sysroot` at boot).
    pub root: &'a Path,
    /// The rendered and merged config, in the internal model.
    pub config: &'a Config,
    /// State carried between stage invocations.
    pub state: &'a mut State,
    /// Fetches file contents, appends and key files, configured from the config's timeouts,
    /// proxies and CA bundles.
    pub fetcher: &'a fetch::Fetcher,
    pub ops: &'a OpLog,
    pub settings: &'a Settings,
}

/// Why a stage failed: the operation, where in the config, the root cause and a hint.
#[derive(Debug)]
pub struct Failure {
    /// What Ember was doing, e.g. `writing file "/etc/hostname"`.
    pub operation: String,
    /// The config entry the operation came from, e.g. `$.storage.files.3`.
    pub path: Option<JsonPath>,
    /// How to fix it, where Ember knows.
    pub hint: Option<String>,
    /// Which config `path` is in (or which config was being handled): "the user config from
    /// …", a referenced config's redacted URL, a base config file. Set by the engine.
    pub config: Option<String>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Failure {
    pub fn new(operation: impl Into<String>) -> Self {
        Failure {
            operation: operation.into(),
            path: None,
            hint: None,
            config: None,
            source: None,
        }
    }

    pub fn caused_by(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    pub fn at(mut self, path: JsonPath) -> Self {
        self.path = Some(path);
        self
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    /// Names the config the failure is about (see [`Failure::config`]).
    pub fn in_config(mut self, c: impl Into<String>) -> Self {
        self.config = Some(c.into());
        self
    }

    /// Names the config unless one is named already (an inner step knew better).
    pub fn or_in_config(mut self, c: impl FnOnce() -> String) -> Self {
        if self.config.is_none() {
            self.config = Some(c());
        }
        self
    }

    /// A stage's failure: its JSON path (if any) is in the merged config, which `described`
    /// names, unless an inner step named a config already.
    pub fn in_merged_config(self, described: &str) -> Self {
        match self.path {
            Some(_) => self.or_in_config(|| described.to_string()),
            None => self,
        }
    }

    /// The innermost cause's message (the root cause first, as the failure report shows it).
    pub fn root_cause(&self) -> String {
        crate::logging::root_cause(self)
    }

    /// The whole chain: operation, then each cause.
    pub fn chain(&self) -> String {
        crate::logging::chain(self)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.operation)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Cleans a path lexically, as Go's `filepath.Join(root, p)` does: `.` and empty components
/// dropped, `..` removing the previous one (never above the root). Config paths become paths
/// inside the target root this way (files, directories, links, mount points).
pub(crate) fn clean_abs(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// A duration in seconds (fractions allowed) from the environment variable `name`; `None`
/// when it is unset, or (with a warning naming the variable and the value) when it is not a
/// number of seconds a [`Duration`] can hold.
pub(crate) fn secs_from_env(name: &str) -> Option<Duration> {
    secs_from_value(name, &std::env::var(name).ok()?)
}

fn secs_from_value(name: &str, value: &str) -> Option<Duration> {
    let secs = value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|t| Duration::try_from_secs_f64(t).ok());
    if secs.is_none() {
        log::warn!("ignoring {name}={value:?}: not a number of seconds (e.g. 30 or 2.5)");
    }
    secs
}

/// Maps a config resource to a fetch request. `None` when the resource has no source.
///
/// The hash is the config's `verification.hash` (checked over decompressed bytes); a header
/// without a value is dropped (in a merged config it only deletes the parent's header).
pub fn fetch_resource(r: &ConfigResource) -> Option<fetch::Resource> {
    let source = r.source.clone()?;
    let mut out = fetch::Resource::new(source);
    if r.compression.as_deref() == Some("gzip") {
        out.compression = fetch::Compression::Gzip;
    }
    out.headers = r
        .http_headers
        .iter()
        .filter(|h| h.value.is_some())
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    out.hash = r.verification.hash.as_deref().and_then(fetch::Hash::parse);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_a_value() {
        assert_eq!(secs_from_value("T", "30"), Some(Duration::from_secs(30)));
        assert_eq!(
            secs_from_value("T", " 2.5\n"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(secs_from_value("T", "0"), Some(Duration::ZERO));
    }

    #[test]
    fn bad_seconds_are_rejected_without_panic() {
        for bad in ["1e20", "30s", "", "-1", "NaN", "inf", "1e400"] {
            assert_eq!(secs_from_value("T", bad), None, "{bad}");
        }
    }
}
