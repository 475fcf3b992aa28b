//! The engine: runs one stage the way Ignition's engine does.
//!
//! Every invocation:
//! 1. loads the state file (an unreadable state is [`Error::State`], exit 3);
//! 2. builds the base config from `base.d/*` then `base.platform.d/<platform>/*` in the system
//!    config directories (parsed, not rendered; a bad file is logged and skipped);
//! 3. gets the user config:
//!    - fetch-offline and fetch acquire it: the kernel command line, then the first
//!      `user.ign`, then the platform provider; "no config" is an empty config. The config is
//!      rendered (`ignition.config.replace` / `merge`, recursively, each fetch done with a
//!      fetcher configured from the config merged so far), its CA bundles are inlined as
//!      `data:` URLs, it is validated, and written to the config cache (mode 0600);
//!    - the other stages read the cache;
//! 4. merges: `full = merge(empty, merge(base, user))`;
//! 5. runs the stage's body with a fetcher configured from the config's timeouts, CA bundles
//!    and proxy;
//! 6. on success appends `{"kind":"base","source":"system"}` to the state and saves it; then
//!    tells the provider how the stage went. Every run, passed or failed, is also appended to
//!    Ember's status file (`/run/ember/status.json`) with its operations and their durations.
//!
//! In fetch-offline the fetcher is offline. When the provider, a referenced config, a CA bundle
//! or (in the stage body) any resource, tang server without advertisement or custom clevis pin
//! needs the network, the `-neednet` file is created and the stage succeeds ([`Outcome::NeedNet`]);
//! the cache is still written when the config itself could be obtained offline.
//!
//! [`apply`] is `ignition-apply`: the stages' bodies on a directory tree, from a config given
//! on the command line.
//!
//! Nothing here logs or reports config contents: sources are shown redacted
//! ([`cmdline::redact_url`]), entries by JSON path.

use crate::logging::chain;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use super::report::Report;
use super::state::{self, FetchedConfig, State};
use super::webhook::{self, Webhook};
use super::{
    disks, fetch_resource, files, kargs, mount, Context, Failure, Mode, OpLog, Settings, Stage,
};
use crate::config::model::Resource as ConfigResource;
use crate::config::{self, merge::merge, Config, JsonPath, ParseError};
use crate::fetch;
use crate::providers::cmdline::{self, redact_url};
use crate::providers::system::{self, SystemDirs};
use crate::providers::{self, Endpoints, Provider};

pub const DEFAULT_CONFIG_CACHE: &str = "/run/ignition.json";
pub const DEFAULT_STATE_FILE: &str = "/run/ignition/state";
pub const DEFAULT_NEEDNET: &str = "/run/ignition/neednet";
/// Ember's status file: one entry per stage run, with its operations and their durations.
pub const DEFAULT_STATUS_FILE: &str = "/run/ember/status.json";
/// Ignition's `-fetch-timeout` default: the overall time allowed for fetching the provider's
/// config (`httpTotal` until the config's own value applies).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(120);
pub use crate::config::MAX_CONFIG_SIZE;
/// Largest CA bundle.
const MAX_CA_SIZE: u64 = 16 << 20;
/// Depth of nested `replace`/`merge` references followed before giving up (a config that
/// references itself would otherwise loop forever).
pub const MAX_RENDER_DEPTH: usize = 32;
/// Referenced (merged or replacing) configs fetched in one render, at most: 30 merges per
/// config nested four deep would otherwise be 810,000 fetches (Ignition has no bound).
pub const MAX_REFERENCED_CONFIGS: usize = 1000;

/// What an invocation runs, and where its files are.
#[derive(Clone, Debug)]
pub struct Options {
    pub stage: Stage,
    /// The target root (`/sysroot` at boot).
    pub root: PathBuf,
    pub config_cache: PathBuf,
    pub state_file: PathBuf,
    pub neednet: PathBuf,
    /// `httpTotal` while fetching the provider's config.
    pub fetch_timeout: Duration,
    pub settings: Settings,
    pub dirs: SystemDirs,
    pub cmdline: cmdline::Source,
    pub endpoints: Endpoints,
    /// Ember's machine-readable status file (`/run/ember/status.json`, `EMBER_STATUS_FILE`
    /// to move it, empty to disable).
    pub status_file: Option<PathBuf>,
}

impl Options {
    /// Ignition's defaults, with the environment's overrides (`IGNITION_CONFIG_FILE`,
    /// `IGNITION_KERNEL_CMDLINE_PATH`, `IGNITION_SYSTEM_*_CONFIG_DIR`, `EMBER_KARGS_HELPER`).
    pub fn new(stage: Stage, settings: Settings) -> Options {
        let mut settings = settings;
        if let Some(h) = std::env::var_os("EMBER_KARGS_HELPER").filter(|v| !v.is_empty()) {
            settings.kargs_helper = PathBuf::from(h);
        }
        let dhcp_server = settings.dhcp_server.clone();
        Options {
            stage,
            root: PathBuf::from("/"),
            config_cache: PathBuf::from(DEFAULT_CONFIG_CACHE),
            state_file: PathBuf::from(DEFAULT_STATE_FILE),
            neednet: PathBuf::from(DEFAULT_NEEDNET),
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            settings,
            dirs: SystemDirs::from_env(),
            cmdline: cmdline::Source::default(),
            endpoints: {
                let mut e = Endpoints {
                    dhcp_server,
                    ..Endpoints::default()
                };
                // An empty IGNITION_CONFIG_FILE means the default, as in Ignition.
                if e.config_file.as_os_str().is_empty() {
                    e.config_file = PathBuf::from("config.ign");
                }
                e
            },
            status_file: match std::env::var_os("EMBER_STATUS_FILE") {
                Some(v) if v.is_empty() => None,
                Some(v) => Some(PathBuf::from(v)),
                None => Some(PathBuf::from(DEFAULT_STATUS_FILE)),
            },
        }
    }
}

impl Options {
    /// The status webhook named on the kernel command line (`ember.status_url=`), queueing
    /// next to the status file.
    pub fn webhook(&self) -> Option<Webhook> {
        let mut w = Webhook::from_cmdline(&self.cmdline.cmdline_path)?;
        w.queue = Some(match &self.status_file {
            Some(p) => p.with_file_name("webhook-queue.json"),
            None => PathBuf::from(webhook::DEFAULT_QUEUE),
        });
        Some(w)
    }
}

/// How a successful invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// fetch-offline found that the network is needed and created the `-neednet` file.
    NeedNet,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the state")]
    State(#[source] state::Error),
    #[error("creating the fetcher")]
    Fetcher(#[source] fetch::Error),
    #[error("the {stage} stage failed")]
    Stage {
        stage: Stage,
        #[source]
        failure: Failure,
    },
    #[error("saving the state")]
    StateSave(#[source] state::Error),
}

impl Error {
    /// Ignition's exit codes: 3 for state-load and fetcher errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::State(_) | Error::Fetcher(_) => 3,
            Error::Stage { .. } | Error::StateSave(_) => 1,
        }
    }

    /// The error and its causes on one line (for the log).
    pub fn chain(&self) -> String {
        chain(self)
    }

    /// The console report: what failed, the root cause first, where in the config, and a
    /// hint (see [`super::report`]). Never config contents.
    pub fn report(&self) -> String {
        self.to_report().render(None)
    }

    /// The failure as a [`Report`], to render with a `next` line (PID 1) or as JSON.
    pub fn to_report(&self) -> Report {
        match self {
            Error::Stage { stage, failure } => Report::from_failure(stage.name(), failure),
            other => Report::from_error(other.to_string(), other),
        }
    }
}

/// Why acquiring or rendering a config stopped.
enum Acq {
    /// The offline fetcher refused: what needed the network.
    NeedNet(String),
    Failed(Failure),
}

impl From<Failure> for Acq {
    fn from(f: Failure) -> Self {
        Acq::Failed(f)
    }
}

impl Acq {
    /// Names the config a failure is about, unless an inner step named one.
    fn in_config(self, desc: &str) -> Acq {
        match self {
            Acq::Failed(f) => Acq::Failed(f.or_in_config(|| desc.to_string())),
            other => other,
        }
    }
}

/// A referenced config that rendering fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Where it is referenced (`$.ignition.config.merge.0`) in the config that names it.
    pub at: JsonPath,
    /// Its URL without userinfo, query or fragment (`data:<redacted>` for data URLs).
    pub url: String,
    /// Nesting: 1 for a reference in the user config, 2 for one in a referenced config, ...
    pub depth: usize,
    /// Its size in bytes (as fetched, decompressed).
    pub size: usize,
}

/// Which configs a config was made from, for reports and `ember plan`.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The user config, e.g. "the user config from the file platform (/config.ign)".
    pub user: String,
    /// Referenced configs, in the order they were fetched (URL paths only for stages that read
    /// the cache: the state keeps no more).
    pub references: Vec<Reference>,
    /// Base config files merged under it.
    pub base: Vec<PathBuf>,
}

impl Origin {
    /// The merged config, described: which configs a JSON path of it can come from.
    pub fn describe(&self) -> String {
        let mut s = self.user.clone();
        if !self.references.is_empty() {
            let urls: Vec<&str> = self.references.iter().map(|r| r.url.as_str()).collect();
            s.push_str(&format!(
                " with its referenced config{} {}",
                if urls.len() == 1 { "" } else { "s" },
                urls.join(", ")
            ));
        }
        if !self.base.is_empty() {
            let files: Vec<String> = self.base.iter().map(|p| p.display().to_string()).collect();
            s.push_str(&format!(
                " over base config{} {}",
                if files.len() == 1 { "" } else { "s" },
                files.join(", ")
            ));
        }
        s
    }
}

/// The user config's source (`cmdline`, `system`, a platform id), described for a report.
fn describe_user(source: &str, opts: &Options, detail: Option<&str>) -> String {
    match (source, detail) {
        ("system", Some(d)) => format!("the user config {d}"),
        ("cmdline", _) => {
            let args = std::fs::read(&opts.cmdline.cmdline_path)
                .map(|b| cmdline::parse(&String::from_utf8_lossy(&b)))
                .unwrap_or_default();
            match (args.url, args.device, args.path) {
                (Some(u), _, _) => format!(
                    "the user config named on the kernel command line ({})",
                    redact_url(&u)
                ),
                (None, Some(d), Some(p)) => format!(
                    "the user config named on the kernel command line ({p} on the filesystem labelled {d:?})"
                ),
                _ => "the user config named on the kernel command line".into(),
            }
        }
        ("system", None) => "the user config user.ign of the system config directories".into(),
        ("file", _) => format!(
            "the user config from the file platform ({})",
            opts.endpoints.config_file.display()
        ),
        (id, _) => format!("the user config from the {id} platform"),
    }
}

/// The origin of the cached config, from what the state recorded.
fn cached_origin(opts: &Options, state: &State) -> Origin {
    let last = state
        .fetched_configs
        .iter()
        .rposition(|c| c.kind == "user" && !c.referenced);
    let Some(i) = last else {
        return Origin {
            user: "the cached user config".into(),
            ..Origin::default()
        };
    };
    // The referenced configs of the last fetch run (after the last non-referenced user entry).
    let references = state.fetched_configs[i + 1..]
        .iter()
        .filter(|c| c.kind == "user" && c.referenced)
        .map(|c| Reference {
            at: JsonPath::root(),
            url: if c.source.is_empty() {
                "data:<redacted>".into()
            } else {
                c.source.clone()
            },
            depth: 1,
            size: 0,
        })
        .collect();
    Origin {
        user: describe_user(&state.fetched_configs[i].source, opts, None),
        references,
        base: Vec::new(),
    }
}

/// The entry Ignition appends to the state on every stage run.
fn base_entry() -> FetchedConfig {
    FetchedConfig {
        kind: "base".into(),
        source: "system".into(),
        referenced: false,
    }
}

/// Runs one stage.
pub fn run(opts: &Options) -> Result<Outcome, Error> {
    let stage = opts.stage;
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    let hook = opts.webhook();
    let announce =
        |fetch_opts: &fetch::Options, result: Result<Outcome, &Report>, chain: Option<String>| {
            if let Some(h) = &hook {
                let mut h = h.clone();
                h.fetch_options = fetch::Options {
                    offline: false,
                    ..fetch_opts.clone()
                };
                let event = webhook::Event {
                    platform: &opts.settings.platform,
                    stage: stage.name(),
                    result: match result {
                        Ok(Outcome::Passed) => "passed",
                        Ok(Outcome::NeedNet) => "neednet",
                        Err(_) => "failed",
                    },
                    started_at: unix_secs(started),
                    duration: clock.elapsed(),
                    error: result.err(),
                    chain: chain.as_deref(),
                    boot_id: webhook::boot_id(&opts.settings.boot_id_path),
                };
                let network = if stage == Stage::FetchOffline {
                    webhook::Network::Offline
                } else {
                    webhook::Network::Online
                };
                h.notify(&event.to_json(), network);
            }
        };
    let early = |e: Error| {
        announce(
            &fetch::Options::default(),
            Err(&e.to_report()),
            Some(e.chain()),
        );
        e
    };

    let mut state = State::load(&opts.state_file).map_err(|e| early(Error::State(e)))?;
    let (provider, provider_err) = match providers::get(&opts.settings.platform, &opts.endpoints) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    let mut base_opts = fetch::Options {
        offline: stage == Stage::FetchOffline,
        ..fetch::Options::default()
    };
    if let Some(p) = &provider {
        p.configure_fetcher(&mut base_opts);
    }
    let fetcher = fetch::Fetcher::new(base_opts.clone()).map_err(|e| early(Error::Fetcher(e)))?;

    let ops = OpLog::new();
    let result = run_stage(
        opts,
        &mut state,
        provider.as_deref(),
        provider_err,
        &base_opts,
        fetcher,
        &ops,
    );
    crate::logging::set_prefix(None);
    let report = result
        .as_ref()
        .err()
        .map(|f| Report::from_failure(stage.name(), f));
    if let Some(path) = &opts.status_file {
        let entry = status_entry(
            stage,
            started,
            clock.elapsed(),
            &ops,
            &result,
            report.as_ref(),
        );
        if let Err(e) = append_status(path, entry) {
            log::warn!("writing the status file {}: {e}", path.display());
        }
    }
    match (&result, &report) {
        (Ok(o), _) => announce(&base_opts, Ok(*o), None),
        (Err(f), Some(r)) => announce(&base_opts, Err(r), Some(f.chain())),
        (Err(_), None) => {}
    }

    if let Some(p) = &provider {
        // Status reports go over the network: a fresh fetcher with the stage's base options
        // (offline in fetch-offline, where a report that needs the network is not sent).
        if let Ok(f) = fetch::Fetcher::new(base_opts.clone()) {
            let err = result
                .as_ref()
                .err()
                .map(|f| super::report::scrub(&f.chain()));
            p.status(stage.name(), err.as_deref(), &f);
        }
    }
    let outcome = result.map_err(|failure| Error::Stage { stage, failure })?;
    state.fetched_configs.push(base_entry());
    state.save(&opts.state_file).map_err(Error::StateSave)?;
    Ok(outcome)
}

fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run_stage(
    opts: &Options,
    state: &mut State,
    provider: Option<&dyn Provider>,
    provider_err: Option<providers::Error>,
    base_opts: &fetch::Options,
    fetcher: fetch::Fetcher,
    ops: &OpLog,
) -> Result<Outcome, Failure> {
    let stage = opts.stage;
    let (base, base_files) = load_base(&opts.dirs, &opts.settings.platform);

    let (user, fetcher, mut origin) = if stage.acquires_config() {
        let before = state.fetched_configs.len();
        match acquire(opts, state, provider, provider_err, base_opts) {
            Ok(x) => {
                for c in &state.fetched_configs[before..] {
                    journal_fetched(c);
                }
                x
            }
            Err(Acq::NeedNet(what)) if stage == Stage::FetchOffline => {
                log::info!("fetch-offline: {what} needs the network");
                signal_neednet(&opts.neednet)?;
                return Ok(Outcome::NeedNet);
            }
            Err(Acq::NeedNet(what)) => {
                return Err(Failure::new(format!("fetching {what}")).hint(
                    "the fetcher refused to use the network outside fetch-offline; this is a bug",
                ))
            }
            Err(Acq::Failed(f)) => return Err(f),
        }
    } else {
        let user = read_cache(&opts.config_cache)?;
        let origin = cached_origin(opts, state);
        (user, fetcher, origin)
    };
    origin.base = base_files;
    let described = origin.describe();

    let full = full_config(base, user).map_err(|f| f.or_in_config(|| described.clone()))?;
    let fetcher = if stage.acquires_config() {
        fetcher
    } else {
        match configured_fetcher(base_opts, &full, &fetcher) {
            Ok(f) => f,
            Err(Acq::Failed(f)) => return Err(f.or_in_config(|| described.clone())),
            Err(Acq::NeedNet(what)) => return Err(Failure::new(format!("fetching {what}"))),
        }
    };

    crate::logging::set_prefix(Some(stage.name()));
    let mut ctx = Context {
        stage,
        root: &opts.root,
        config: &full,
        state,
        fetcher: &fetcher,
        ops,
        settings: &opts.settings,
    };
    let body = match stage {
        Stage::FetchOffline => {
            if let Some(what) = needs_network(&full) {
                log::info!("{what} needs the network");
                signal_neednet(&opts.neednet)?;
                return Ok(Outcome::NeedNet);
            }
            Ok(())
        }
        Stage::Fetch => Ok(()),
        Stage::Kargs => kargs::run(&mut ctx),
        Stage::Disks => disks::run(&mut ctx),
        Stage::Mount => mount::run_mount(&mut ctx),
        Stage::Files => files::run(&mut ctx),
        Stage::Umount => mount::run_umount(&mut ctx),
    };
    // A path in a stage's failure is in the merged config.
    body.map_err(|f| f.in_merged_config(&described))?;
    log::info!("{stage} passed");
    Ok(Outcome::Passed)
}

/// One stage run for the status file.
fn status_entry(
    stage: Stage,
    started: std::time::SystemTime,
    took: Duration,
    ops: &OpLog,
    result: &Result<Outcome, Failure>,
    report: Option<&Report>,
) -> serde_json::Value {
    let ms = |d: Duration| d.as_millis() as u64;
    let records = ops.records();
    let count = records.len();
    let operations: Vec<serde_json::Value> = status_operations(records)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "number": r.number,
                "description": r.description,
                "durationMs": ms(r.duration),
                "error": r.error,
            })
        })
        .collect();
    let (outcome, error) = match result {
        Ok(Outcome::Passed) => ("passed", serde_json::Value::Null),
        Ok(Outcome::NeedNet) => ("neednet", serde_json::Value::Null),
        Err(f) => {
            let mut e = report.map(Report::to_json).unwrap_or_default();
            if let Some(o) = e.as_object_mut() {
                // The whole chain, always (the report leaves out what it repeats).
                o.insert("details".into(), super::report::scrub(&f.chain()).into());
            }
            ("failed", e)
        }
    };
    serde_json::json!({
        "stage": stage.name(),
        "result": outcome,
        "startedAt": unix_secs(started),
        "durationMs": ms(took),
        "operationCount": count,
        "operations": operations,
        "error": error,
    })
}

/// The operations a status entry lists: every failed one, then the slowest, at most
/// [`STATUS_MAX_OPERATIONS`] in all, in their original order (a 20,000-file config must not
/// make a 20,000-line status file that every later stage rewrites).
fn status_operations(records: Vec<super::oplog::OpRecord>) -> Vec<super::oplog::OpRecord> {
    if records.len() <= STATUS_MAX_OPERATIONS {
        return records;
    }
    let (mut keep, mut rest): (Vec<_>, Vec<_>) =
        records.into_iter().partition(|r| r.error.is_some());
    keep.truncate(STATUS_MAX_OPERATIONS);
    rest.sort_by_key(|r| std::cmp::Reverse(r.duration));
    rest.truncate(STATUS_MAX_OPERATIONS - keep.len());
    keep.extend(rest);
    keep.sort_by_key(|r| r.number);
    keep
}

/// Most operations listed per stage run in the status file.
pub const STATUS_MAX_OPERATIONS: usize = 100;
/// Most stage runs kept in the status file (the oldest are dropped).
pub const STATUS_MAX_RUNS: usize = 64;

/// Appends a stage run to the status file (`{"stages": [...]}`), atomically, mode 0600.
fn append_status(path: &Path, entry: serde_json::Value) -> std::io::Result<()> {
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|_| serde_json::json!({})),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e),
    };
    if !doc.is_object() {
        doc = serde_json::json!({});
    }
    let stages = doc
        .as_object_mut()
        .map(|o| o.entry("stages").or_insert_with(|| serde_json::json!([])));
    match stages {
        Some(serde_json::Value::Array(a)) => {
            a.push(entry);
            if a.len() > STATUS_MAX_RUNS {
                let extra = a.len() - STATUS_MAX_RUNS;
                a.drain(..extra);
            }
        }
        Some(other) => *other = serde_json::json!([entry]),
        None => {}
    }
    let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    state::write_private_atomic(path, &bytes)
}

/// Ignition's journal entry for a fetched config (tools look it up by `MESSAGE_ID`).
pub const FETCHED_CONFIG_MESSAGE_ID: &str = "57124006b5c94805b77ce473e92a8aeb";

fn journal_fetched(c: &FetchedConfig) {
    let referenced = if c.referenced { "referenced " } else { "" };
    let message = format!("fetched {referenced}{} config from {:?}", c.kind, c.source);
    crate::logging::journal_send(
        log::Level::Info,
        &message,
        &[
            ("MESSAGE_ID", FETCHED_CONFIG_MESSAGE_ID),
            ("IGNITION_CONFIG_TYPE", &c.kind),
            ("IGNITION_CONFIG_SRC", &c.source),
            (
                "IGNITION_CONFIG_REFERENCED",
                if c.referenced { "true" } else { "false" },
            ),
        ],
    );
}

/// Creates the `-neednet` flag file (and its directory).
fn signal_neednet(path: &Path) -> Result<(), Failure> {
    let op = format!("creating the neednet flag file {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::new(op.clone()).caused_by(e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(|_| ())
        .map_err(|e| Failure::new(op).caused_by(e))
}

/// Logs what Ignition would report about a config (its errors and warnings).
fn log_report(what: &str, report: &config::Report) {
    for e in report.ignition_entries() {
        match e.severity {
            config::Severity::Error => log::error!("{what}: {}", e.ignition_line()),
            config::Severity::Warning => log::warn!("{what}: {}", e.ignition_line()),
            config::Severity::Info => log::info!("{what}: {}", e.ignition_line()),
        }
    }
}

/// Why a parsed config is unusable, as an error with the first error's location.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvalidConfig {
    message: String,
}

fn invalid(
    parsed_error: &ParseError,
    report: &config::Report,
) -> (InvalidConfig, Option<JsonPath>, Option<String>) {
    let first = report
        .ignition_entries()
        .find(|e| e.severity == config::Severity::Error);
    let message = match first {
        Some(e) => e.ignition_line(),
        None => parsed_error.to_string(),
    };
    (
        InvalidConfig { message },
        first.and_then(|e| e.path.clone()),
        first.and_then(|e| e.hint.clone()),
    )
}

/// Parses a config; `Ok(None)` for an empty input.
fn parse_config(bytes: &[u8], what: &str) -> Result<Option<Config>, Failure> {
    config_of(config::parse(bytes), what)
}

/// A parsed config's model, or the failure its parse error makes; `Ok(None)` for an empty input.
fn config_of(parsed: config::Parsed, what: &str) -> Result<Option<Config>, Failure> {
    log_report(what, &parsed.report);
    match (parsed.config, parsed.error) {
        (Some(c), None) => Ok(Some(c)),
        (_, Some(ParseError::Empty)) => Ok(None),
        (_, err) => {
            let err = err.unwrap_or(ParseError::Invalid);
            let (e, path, hint) = invalid(&err, &parsed.report);
            let mut f = Failure::new(format!("parsing {what}")).caused_by(e);
            if let Some(p) = path {
                f = f.at(p);
            }
            Err(f.hint(hint.unwrap_or_else(|| {
                "check it with `ember validate`, which shows every problem with its line and column".into()
            })))
        }
    }
}

/// The base config: `base.d` then `base.platform.d/<platform>`; `None` when there is none.
/// Also the files that took part.
pub fn load_base(dirs: &SystemDirs, platform: &str) -> (Option<Config>, Vec<PathBuf>) {
    let (found, errors) = system::base_configs(dirs, platform);
    for e in errors {
        log::warn!("reading base configs: {}", chain(&e));
    }
    let mut base: Option<Config> = None;
    let mut used = Vec::new();
    for f in found {
        let what = format!("base config {}", f.path.display());
        match parse_config(&f.bytes, &what) {
            Ok(Some(c)) => {
                log::info!("using {what}");
                used.push(f.path.clone());
                base = Some(match base {
                    None => c,
                    Some(b) => merge(&b, &c),
                });
            }
            Ok(None) => log::info!("{what} is empty"),
            Err(fail) => log::warn!("ignoring {what}: {}", fail.chain()),
        }
    }
    (base, used)
}

/// `merge(empty, merge(base, user))`, validated when a base config took part.
pub fn full_config(base: Option<Config>, user: Config) -> Result<Config, Failure> {
    let Some(base) = base else {
        return Ok(user);
    };
    let full = merge(&Config::empty(), &merge(&base, &user));
    check_valid(&full, "merging the base config and the user config")?;
    Ok(full)
}

fn check_valid(cfg: &Config, op: &str) -> Result<(), Failure> {
    let report = config::validate_runtime(cfg);
    log_report("merged config", &report);
    if report.ignition_has_errors() {
        let (e, path, hint) = invalid(&ParseError::Invalid, &report);
        let mut f = Failure::new(format!("{op} resulted in an invalid config")).caused_by(e);
        if let Some(p) = path {
            f = f.at(p);
        }
        if let Some(h) = hint {
            f = f.hint(h);
        }
        return Err(f);
    }
    Ok(())
}

/// Reads the config cache written by the fetch stages.
fn read_cache(path: &Path) -> Result<Config, Failure> {
    let op = format!("reading the config cache {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| {
        let missing = e.kind() == std::io::ErrorKind::NotFound;
        let f = Failure::new(op.clone()).caused_by(e);
        if missing {
            f.hint("the fetch-offline (or fetch) stage writes it; run that stage first, with the same -config-cache")
        } else {
            f
        }
    })?;
    match parse_config(&bytes, "the cached config")? {
        Some(c) => Ok(c),
        None => Err(Failure::new(op).hint("the cache is empty; run the fetch-offline stage again")),
    }
}

/// Writes the config cache atomically, mode 0600 (it holds secrets).
fn write_cache(path: &Path, cfg: &Config) -> Result<(), Failure> {
    let json = config::marshal::to_json(cfg);
    state::write_private_atomic(path, json.as_bytes()).map_err(|e| {
        Failure::new(format!("writing the config cache {}", path.display())).caused_by(e)
    })
}

/// Fetch errors: "needs network" stays distinguishable, everything else fails.
fn fetch_failure(e: fetch::Error, what: String, path: Option<JsonPath>) -> Acq {
    if matches!(e, fetch::Error::NeedsNetwork { .. }) {
        return Acq::NeedNet(what);
    }
    let hint = e.hint();
    let mut f = Failure::new(format!("fetching {what}")).caused_by(e);
    if let Some(h) = hint {
        f = f.hint(h);
    }
    if let Some(p) = path {
        f = f.at(p);
    }
    Acq::Failed(f)
}

/// Acquires, renders, validates and caches the user config (fetch stages).
fn acquire(
    opts: &Options,
    state: &mut State,
    provider: Option<&dyn Provider>,
    provider_err: Option<providers::Error>,
    base_opts: &fetch::Options,
) -> Result<(Config, fetch::Fetcher, Origin), Acq> {
    // Until the config says otherwise, the whole provider fetch gets -fetch-timeout.
    let initial = fetch::Options {
        total_timeout: opts.fetch_timeout,
        ..base_opts.clone()
    };
    let fetcher = fetch::Fetcher::new(initial)
        .map_err(|e| Failure::new("creating the fetcher").caused_by(e))?;

    let mut detail = None;
    let (raw, source) = match cmdline::fetch(&opts.cmdline, &fetcher) {
        Ok(Some(b)) => (Some(b), "cmdline".to_string()),
        Err(e) if e.needs_network() => {
            return Err(Acq::NeedNet(
                "the config named on the kernel command line".into(),
            ))
        }
        Err(e) => {
            return Err(Acq::Failed(
                Failure::new("fetching the config named on the kernel command line")
                    .in_config(describe_user("cmdline", opts, None))
                    .caused_by(e)
                    .hint(format!(
                        "check {}, {} and {} in {}",
                        cmdline::URL_KEY,
                        cmdline::DEVICE_KEY,
                        cmdline::PATH_KEY,
                        opts.cmdline.cmdline_path.display()
                    )),
            ))
        }
        Ok(None) => match system::user_config(&opts.dirs) {
            Ok(Some(found)) => {
                log::info!("using the user config {}", found.path.display());
                detail = Some(found.path.display().to_string());
                (Some(found.bytes), "system".to_string())
            }
            Err(e) => {
                return Err(Acq::Failed(
                    Failure::new("reading the system user config").caused_by(e),
                ))
            }
            Ok(None) => {
                let platform = &opts.settings.platform;
                let Some(p) = provider else {
                    let mut f = Failure::new(format!("fetching the config of platform {platform}"));
                    if let Some(e) = provider_err {
                        f = f.caused_by(e);
                    }
                    return Err(Acq::Failed(f.hint(
                        "this build of Ember cannot fetch configs on that platform; \
                         put the config in user.ign or name it on the kernel command line",
                    )));
                };
                match p.fetch_config(&fetcher) {
                    Ok(b) => (b, p.id().to_string()),
                    Err(e) if e.needs_network() => {
                        return Err(Acq::NeedNet(format!("the config of platform {platform}")))
                    }
                    Err(e) => {
                        let hint = match &e {
                            providers::Error::Fetch(fe) => fe.hint(),
                            _ => None,
                        };
                        let mut f =
                            Failure::new(format!("fetching the config of platform {platform}"))
                                .caused_by(e);
                        if let Some(h) = hint {
                            f = f.hint(h);
                        }
                        return Err(Acq::Failed(f));
                    }
                }
            }
        },
    };

    let user_desc = describe_user(&source, opts, detail.as_deref());
    let cfg = match raw {
        None => {
            log::info!("no config from {source}: using an empty config");
            Config::empty()
        }
        Some(b) => match parse_config(&b, &format!("the user config from {source}"))
            .map_err(|f| f.in_config(user_desc.clone()))?
        {
            Some(c) => {
                log::info!("fetched user config from {source:?}");
                c
            }
            None => {
                log::info!("the config from {source} is empty: using an empty config");
                Config::empty()
            }
        },
    };
    state.fetched_configs.push(FetchedConfig {
        kind: "user".into(),
        source,
        referenced: false,
    });

    let mut origin = Origin {
        user: user_desc,
        ..Origin::default()
    };
    let (cfg, fetcher) = render_all(cfg, &fetcher, base_opts, state, &mut origin)?;
    write_cache(&opts.config_cache, &cfg)?;
    log::info!("wrote the config cache {}", opts.config_cache.display());
    Ok((cfg, fetcher, origin))
}

/// Renders a user config: its fetcher (timeouts, proxy, CAs), `replace`/`merge` followed,
/// CA bundles inlined, the result validated. Failures name the config they are about.
fn render_all(
    cfg: Config,
    fetcher: &fetch::Fetcher,
    base_opts: &fetch::Options,
    state: &mut State,
    origin: &mut Origin,
) -> Result<(Config, fetch::Fetcher), Acq> {
    let user = origin.user.clone();
    let fetcher = configured_fetcher(base_opts, &cfg, fetcher).map_err(|a| a.in_config(&user))?;
    let mut r = Render {
        base_opts,
        state,
        references: Vec::new(),
    };
    let rendered = r.render(cfg, fetcher, 0, &user);
    origin.references = r.references;
    let (mut cfg, fetcher) = rendered?;
    let merged = origin.describe();
    inline_cas(&mut cfg, &fetcher).map_err(|a| a.in_config(&merged))?;
    check_valid(&cfg, "merging configs").map_err(|f| f.in_config(merged))?;
    Ok((cfg, fetcher))
}

/// A user config parsed and rendered from bytes given on the command line (`ember apply`,
/// `ember plan`): nothing is written; referenced configs are fetched with `base_opts`.
pub fn prepare(
    raw: &[u8],
    base_opts: &fetch::Options,
    user: &str,
) -> Result<(Config, fetch::Fetcher, Origin), Failure> {
    prepare_parsed(config::parse(raw), base_opts, user)
}

/// [`prepare`] for a config already parsed (its findings shown by the caller).
fn prepare_parsed(
    parsed: config::Parsed,
    base_opts: &fetch::Options,
    user: &str,
) -> Result<(Config, fetch::Fetcher, Origin), Failure> {
    let acq = |a: Acq| match a {
        Acq::Failed(f) => f,
        Acq::NeedNet(what) => Failure::new(format!("fetching {what}"))
            .hint("the config needs the network, and --offline was given"),
    };
    let fetcher = fetch::Fetcher::new(base_opts.clone())
        .map_err(|e| Failure::new("creating the fetcher").caused_by(e))?;
    let cfg = match config_of(parsed, "the config").map_err(|f| f.in_config(user))? {
        Some(c) => c,
        None => {
            return Err(Failure::new("parsing the config")
                .hint("the config is empty")
                .in_config(user))
        }
    };
    let mut origin = Origin {
        user: user.to_string(),
        ..Origin::default()
    };
    let mut state = State::default();
    let (cfg, fetcher) =
        render_all(cfg, &fetcher, base_opts, &mut state, &mut origin).map_err(acq)?;
    Ok((cfg, fetcher, origin))
}

/// For `ember plan`: the config and fetcher the stages after fetch would work with, built as
/// [`run`] builds them (the user config rendered with the platform's fetcher options, merged
/// over the base configs, the fetcher rebuilt from the merged config's timeouts, proxy and
/// CAs), writing nothing. `origin` gets the references and base configs as far as it got; a
/// failure comes with the stage that would report it.
pub fn plan_config(
    opts: &Options,
    parsed: config::Parsed,
    user: &str,
    origin: &mut Origin,
) -> Result<(Config, fetch::Fetcher), (Stage, Failure)> {
    let mut base_opts = fetch::Options::default();
    if let Ok(p) = providers::get(&opts.settings.platform, &opts.endpoints) {
        p.configure_fetcher(&mut base_opts);
    }
    let (user_cfg, fetcher, rendered) =
        prepare_parsed(parsed, &base_opts, user).map_err(|f| (Stage::Fetch, f))?;
    *origin = rendered;
    let (base, base_files) = load_base(&opts.dirs, &opts.settings.platform);
    origin.base = base_files;
    let described = origin.describe();
    let full = full_config(base, user_cfg)
        .map_err(|f| (Stage::Fetch, f.or_in_config(|| described.clone())))?;
    // The first stage that builds this fetcher is kargs.
    let fetcher = match configured_fetcher(&base_opts, &full, &fetcher) {
        Ok(f) => f,
        Err(Acq::Failed(f)) => return Err((Stage::Kargs, f.or_in_config(|| described))),
        Err(Acq::NeedNet(what)) => {
            return Err((Stage::Kargs, Failure::new(format!("fetching {what}"))))
        }
    };
    Ok((full, fetcher))
}

/// Rendering's context: what every level needs, and what was fetched.
struct Render<'a> {
    base_opts: &'a fetch::Options,
    state: &'a mut State,
    references: Vec<Reference>,
}

impl Render<'_> {
    /// Follows `ignition.config.replace` and `merge`, depth first, as Ignition does. `me`
    /// names `cfg` in reports.
    fn render(
        &mut self,
        cfg: Config,
        fetcher: fetch::Fetcher,
        depth: usize,
        me: &str,
    ) -> Result<(Config, fetch::Fetcher), Acq> {
        if depth > MAX_RENDER_DEPTH {
            return Err(Acq::Failed(
                Failure::new("rendering referenced configs")
                    .at(JsonPath::root().key("ignition").key("config"))
                    .in_config(me)
                    .hint(format!(
                        "configs reference each other more than {MAX_RENDER_DEPTH} levels deep; a config probably replaces or merges itself"
                    )),
            ));
        }
        let cfg_path = JsonPath::root().key("ignition").key("config");
        if cfg.ignition.config.replace.source_str().is_some() {
            let (child, name) = self.fetch_child(
                &cfg.ignition.config.replace,
                &fetcher,
                cfg_path.key("replace"),
                depth,
                me,
            )?;
            let fetcher = configured_fetcher(self.base_opts, &child, &fetcher)
                .map_err(|a| a.in_config(&name))?;
            return self.render(child, fetcher, depth + 1, &name);
        }
        if cfg.ignition.config.merge.is_empty() {
            return Ok((cfg, fetcher));
        }
        let mut fetcher = fetcher;
        let mut acc = cfg.clone();
        for (i, r) in cfg.ignition.config.merge.iter().enumerate() {
            let (child, name) =
                self.fetch_child(r, &fetcher, cfg_path.key("merge").index(i), depth, me)?;
            // The child's timeouts and CAs apply to everything fetched from here on.
            fetcher = configured_fetcher(self.base_opts, &merge(&acc, &child), &fetcher)
                .map_err(|a| a.in_config(&name))?;
            let (child, f) = self.render(child, fetcher, depth + 1, &name)?;
            fetcher = f;
            acc = merge(&acc, &child);
        }
        Ok((acc, fetcher))
    }

    /// Fetches and parses a referenced config. Failures to fetch it, and parse failures
    /// without a JSON path of their own (a syntax error, an empty config), are about the
    /// reference in `parent`; parse failures with a path are about the child itself.
    fn fetch_child(
        &mut self,
        r: &ConfigResource,
        fetcher: &fetch::Fetcher,
        at: JsonPath,
        depth: usize,
        parent: &str,
    ) -> Result<(Config, String), Acq> {
        let url = redact_url(r.source.as_deref().unwrap_or(""));
        let name = format!("the referenced config {url}");
        let what = format!("the config {url} referenced at {at}");
        // Only this render's references count: the state also holds earlier stages' fetches.
        if self.references.len() >= MAX_REFERENCED_CONFIGS {
            return Err(Acq::Failed(
                Failure::new(format!("fetching {what}"))
                    .at(at)
                    .hint(format!(
                        "the configs reference more than {MAX_REFERENCED_CONFIGS} configs in all; flatten the merge tree"
                    ))
                    .in_config(parent),
            ));
        }
        let bytes = fetch_referenced(r, fetcher, self.state, &what, at.clone())
            .map_err(|a| a.in_config(parent))?;
        let child = match parse_config(&bytes, &what) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(Acq::Failed(
                    Failure::new(format!("parsing {what}"))
                        .caused_by(InvalidConfig {
                            message: "the referenced config is empty".into(),
                        })
                        .at(at)
                        .in_config(parent),
                ))
            }
            Err(f) if f.path.is_some() => return Err(Acq::Failed(f.or_in_config(|| name.clone()))),
            Err(f) => return Err(Acq::Failed(f.at(at).in_config(parent))),
        };
        self.references.push(Reference {
            at,
            url,
            depth: depth + 1,
            size: bytes.len(),
        });
        Ok((child, name))
    }
}

/// Fetches a referenced config (`what` names it), checking its hash over the decompressed
/// bytes, and records it in the state with only its URL path.
fn fetch_referenced(
    r: &ConfigResource,
    fetcher: &fetch::Fetcher,
    state: &mut State,
    what: &str,
    path: JsonPath,
) -> Result<Vec<u8>, Acq> {
    let source = r.source.clone().unwrap_or_default();
    let Some(res) = fetch_resource(r) else {
        return Err(Acq::Failed(
            Failure::new(format!("fetching {what}")).at(path),
        ));
    };
    let bytes = fetcher
        .fetch_limited(&res, MAX_CONFIG_SIZE)
        .map_err(|e| fetch_failure(e, what.to_string(), Some(path)))?;
    let url_path = config::url::parse(&source)
        .map(|u| u.path)
        .unwrap_or_default();
    state.fetched_configs.push(FetchedConfig {
        kind: "user".into(),
        source: url_path,
        referenced: true,
    });
    log::info!(
        "fetched referenced user config from {}",
        redact_url(&source)
    );
    Ok(bytes)
}

/// Fetches a CA bundle (decompressed, hash checked).
fn fetch_ca(ca: &ConfigResource, i: usize, fetcher: &fetch::Fetcher) -> Result<Vec<u8>, Acq> {
    let path = JsonPath::root()
        .key("ignition")
        .key("security")
        .key("tls")
        .key("certificateAuthorities")
        .index(i);
    let what = format!(
        "the certificate authority bundle {}",
        redact_url(ca.source.as_deref().unwrap_or(""))
    );
    let Some(res) = fetch_resource(ca) else {
        return Err(Acq::Failed(
            Failure::new(format!("fetching {what}")).at(path),
        ));
    };
    fetcher
        .fetch_limited(&res, MAX_CA_SIZE)
        .map_err(|e| fetch_failure(e, what, Some(path)))
}

/// Fetcher options for a config: its timeouts, proxy and CA bundles (fetched with `current`).
fn configured_fetcher(
    base: &fetch::Options,
    cfg: &Config,
    current: &fetch::Fetcher,
) -> Result<fetch::Fetcher, Acq> {
    let mut o = base.clone();
    let t = &cfg.ignition.timeouts;
    o.response_headers_timeout = t
        .http_response_headers
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(fetch::DEFAULT_RESPONSE_HEADERS_TIMEOUT);
    o.total_timeout = Duration::from_secs(t.http_total.unwrap_or(0).max(0) as u64);
    let p = &cfg.ignition.proxy;
    o.proxy = fetch::ProxyConfig {
        http_proxy: p.http_proxy.clone().filter(|s| !s.is_empty()),
        https_proxy: p.https_proxy.clone().filter(|s| !s.is_empty()),
        no_proxy: p.no_proxy.clone(),
    };
    let cas = &cfg.ignition.security.tls.certificate_authorities;
    o.ca_bundles = Vec::with_capacity(cas.len());
    for (i, ca) in cas.iter().enumerate() {
        o.ca_bundles.push(fetch_ca(ca, i, current)?);
    }
    fetch::Fetcher::new(o).map_err(|e| {
        Acq::Failed(
            Failure::new("configuring the fetcher from ignition.security and ignition.proxy")
                .caused_by(e)
                .at(JsonPath::root().key("ignition")),
        )
    })
}

/// Rewrites every CA bundle as a `data:` URL (headers and compression cleared), so later
/// stages need no network to build their fetcher.
fn inline_cas(cfg: &mut Config, fetcher: &fetch::Fetcher) -> Result<(), Acq> {
    let mut cas = std::mem::take(&mut cfg.ignition.security.tls.certificate_authorities);
    let mut result = Ok(());
    for (i, ca) in cas.iter_mut().enumerate() {
        match fetch_ca(ca, i, fetcher) {
            Ok(bytes) => {
                ca.source = Some(format!(
                    "data:;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                ));
                ca.http_headers.clear();
                ca.compression = None;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    cfg.ignition.security.tls.certificate_authorities = cas;
    result
}

/// The first thing in the config (outside the `ignition` section, which is fetched already)
/// that needs the network, by JSON path: a resource with a source other than `data:`, a tang
/// server without an advertisement, a custom clevis pin that says it needs the network.
pub fn needs_network(cfg: &Config) -> Option<String> {
    let storage = JsonPath::root().key("storage");
    for (i, f) in cfg.storage.files.iter().enumerate() {
        let p = storage.key("files").index(i);
        if f.contents.is_remote() {
            return Some(format!("{}", p.key("contents")));
        }
        for (j, a) in f.append.iter().enumerate() {
            if a.is_remote() {
                return Some(format!("{}", p.key("append").index(j)));
            }
        }
    }
    for (i, l) in cfg.storage.luks.iter().enumerate() {
        let p = storage.key("luks").index(i);
        if l.key_file.is_remote() {
            return Some(format!("{}", p.key("keyFile")));
        }
        for (j, t) in l.clevis.tang.iter().enumerate() {
            if t.advertisement.as_deref().unwrap_or("").is_empty() {
                return Some(format!("{}", p.key("clevis").key("tang").index(j)));
            }
        }
        if l.clevis.custom.needs_network == Some(true) {
            return Some(format!("{}", p.key("clevis").key("custom")));
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// ignition-apply

/// What `ember apply` / `ignition-apply` runs on.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub root: PathBuf,
    pub ignore_unsupported: bool,
    /// Fail instead of using the network.
    pub offline: bool,
    pub settings: Settings,
    /// The config as reports name it ("the config /path/config.ign").
    pub config_name: String,
}

impl ApplyOptions {
    pub fn new(root: PathBuf, ignore_unsupported: bool, offline: bool) -> Self {
        let mut settings = Settings::new("file", Mode::Apply { ignore_unsupported });
        settings.result_file = None;
        ApplyOptions {
            root,
            ignore_unsupported,
            offline,
            settings,
            config_name: "the config given on the command line".into(),
        }
    }
}

/// `IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT`'s values: `true`/`1`, `false`/`0`.
pub fn parse_env_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The sections of a config `apply` cannot carry out on a directory tree, by JSON path.
pub fn unsupported_in_apply(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let ka = &cfg.kernel_arguments;
    if !ka.should_exist.is_empty() || !ka.should_not_exist.is_empty() {
        out.push("$.kernelArguments (kernel arguments)".to_string());
    }
    let s = &cfg.storage;
    for (i, d) in s.disks.iter().enumerate() {
        out.push(format!("$.storage.disks.{i} (disk {:?})", d.device));
    }
    for (i, r) in s.raid.iter().enumerate() {
        out.push(format!("$.storage.raid.{i} (RAID array {:?})", r.name));
    }
    for (i, l) in s.luks.iter().enumerate() {
        out.push(format!("$.storage.luks.{i} (LUKS volume {:?})", l.name));
    }
    for (i, f) in s.filesystems.iter().enumerate() {
        out.push(format!(
            "$.storage.filesystems.{i} (filesystem on {:?})",
            f.device
        ));
    }
    for (i, u) in cfg.passwd.users.iter().enumerate() {
        out.push(format!("$.passwd.users.{i} (user {:?})", u.name));
    }
    for (i, g) in cfg.passwd.groups.iter().enumerate() {
        out.push(format!("$.passwd.groups.{i} (group {:?})", g.name));
    }
    out
}

fn strip_unsupported(cfg: &mut Config) {
    cfg.kernel_arguments = Default::default();
    cfg.storage.disks.clear();
    cfg.storage.raid.clear();
    cfg.storage.luks.clear();
    cfg.storage.filesystems.clear();
    cfg.passwd = Default::default();
}

/// Applies a config to a directory tree: renders `merge`/`replace`, refuses (or, with
/// `ignore_unsupported`, drops) what cannot be done on a tree, then runs every stage's body in
/// boot order with [`Mode::Apply`].
pub fn apply(opts: &ApplyOptions, raw: &[u8]) -> Result<(), Error> {
    let stage_err = |stage: Stage, failure: Failure| Error::Stage { stage, failure };
    let base_opts = fetch::Options {
        offline: opts.offline,
        ..fetch::Options::default()
    };
    let mut state = State::default();
    let (mut cfg, fetcher, origin) =
        prepare(raw, &base_opts, &opts.config_name).map_err(|f| stage_err(Stage::Fetch, f))?;
    let described = origin.describe();

    let unsupported = unsupported_in_apply(&cfg);
    if !unsupported.is_empty() {
        if !opts.ignore_unsupported {
            return Err(stage_err(
                Stage::Disks,
                Failure::new(format!(
                    "applying the config to a directory tree: it asks for what only a boot can do: {}",
                    unsupported.join(", ")
                ))
                .hint("remove those entries, or pass --ignore-unsupported to skip them")
                .in_config(described),
            ));
        }
        for u in &unsupported {
            log::warn!("ignoring {u}: not supported when applying to a directory tree");
        }
        strip_unsupported(&mut cfg);
    }

    let ops = OpLog::new();
    for stage in Stage::ALL {
        crate::logging::set_prefix(Some(stage.name()));
        let mut ctx = Context {
            stage,
            root: &opts.root,
            config: &cfg,
            state: &mut state,
            fetcher: &fetcher,
            ops: &ops,
            settings: &opts.settings,
        };
        let r = match stage {
            Stage::FetchOffline => match needs_network(&cfg) {
                Some(what) if opts.offline => Err(Failure::new(format!("fetching {what}"))
                    .hint("the config needs the network, and --offline was given")),
                _ => Ok(()),
            },
            Stage::Fetch => Ok(()),
            Stage::Kargs => kargs::run(&mut ctx),
            Stage::Disks => disks::run(&mut ctx),
            Stage::Mount => mount::run_mount(&mut ctx),
            Stage::Files => files::run(&mut ctx),
            Stage::Umount => mount::run_umount(&mut ctx),
        };
        crate::logging::set_prefix(None);
        r.map_err(|f| stage_err(stage, f.in_merged_config(&described)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        config::parse(json.as_bytes()).config.expect("valid config")
    }

    #[test]
    fn network_needs() {
        assert_eq!(needs_network(&Config::empty()), None);
        let c = cfg(r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[
            {"path":"/a","contents":{"source":"data:,x"}},
            {"path":"/b","append":[{"source":"data:,y"},{"source":"https://example.com/z"}]}]}}"#);
        assert_eq!(
            needs_network(&c).as_deref(),
            Some("$.storage.files.1.append.1")
        );
        let c = cfg(r#"{"ignition":{"version":"3.5.0"},"storage":{"luks":[
            {"name":"a","device":"/dev/vda","clevis":{"tang":[{"url":"http://t","thumbprint":"x","advertisement":"{}"}]}},
            {"name":"b","device":"/dev/vdb","clevis":{"custom":{"pin":"sss","config":"{}","needsNetwork":true}}}]}}"#);
        assert_eq!(
            needs_network(&c).as_deref(),
            Some("$.storage.luks.1.clevis.custom")
        );
        let c = cfg(r#"{"ignition":{"version":"3.5.0"},"storage":{"luks":[
            {"name":"a","device":"/dev/vda","clevis":{"tang":[{"url":"http://t","thumbprint":"x"}]}}]}}"#);
        assert_eq!(
            needs_network(&c).as_deref(),
            Some("$.storage.luks.0.clevis.tang.0")
        );
    }

    #[test]
    fn apply_refusals_name_entries() {
        let c = cfg(
            r#"{"ignition":{"version":"3.4.0"},"kernelArguments":{"shouldExist":["a"]},
            "storage":{"disks":[{"device":"/dev/vda"}],"filesystems":[{"device":"/dev/vda1","format":"ext4"}]},
            "passwd":{"users":[{"name":"core"}]}}"#,
        );
        let u = unsupported_in_apply(&c);
        assert_eq!(
            u,
            [
                "$.kernelArguments (kernel arguments)",
                "$.storage.disks.0 (disk \"/dev/vda\")",
                "$.storage.filesystems.0 (filesystem on \"/dev/vda1\")",
                "$.passwd.users.0 (user \"core\")"
            ]
        );
        let mut c = c;
        strip_unsupported(&mut c);
        assert!(unsupported_in_apply(&c).is_empty());
    }

    #[test]
    fn inlined_cas_are_data_urls_the_config_accepts() {
        let f = fetch::Fetcher::new(fetch::Options {
            offline: true,
            ..Default::default()
        })
        .unwrap();
        let mut c = cfg(
            r#"{"ignition":{"version":"3.4.0","security":{"tls":{"certificateAuthorities":[
            {"source":"data:,-----BEGIN%20CERTIFICATE-----"}]}}}}"#,
        );
        c.ignition.security.tls.certificate_authorities[0]
            .http_headers
            .push(crate::config::model::HttpHeader {
                name: "a".into(),
                value: Some("b".into()),
            });
        assert!(inline_cas(&mut c, &f).is_ok());
        let ca = &c.ignition.security.tls.certificate_authorities[0];
        assert!(ca.source.as_deref().unwrap().starts_with("data:;base64,"));
        assert!(ca.http_headers.is_empty());
        let json = config::marshal::to_json(&c);
        let back = config::parse(json.as_bytes());
        assert!(back.error.is_none(), "{json}");
        let got = crate::config::dataurl::decode(
            back.config
                .unwrap()
                .ignition
                .security
                .tls
                .certificate_authorities[0]
                .source
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(got.data, b"-----BEGIN CERTIFICATE-----");
    }

    #[test]
    fn unit_text_quoted_by_the_parser_is_not_shown() {
        let parsed = config::parse(
            br#"{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a.service","contents":"[Unit]hunter2\n"}]}}"#,
        );
        let e = parsed
            .report
            .ignition_entries()
            .find(|e| e.code == "unit-content")
            .expect("a unit-content finding");
        let shown = e.ignition_line();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.ends_with("invalid unit content: found garbage after section name : <redacted>"),
            "{shown}"
        );
        let err = parse_config(
            br#"{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a.service","contents":"[Unit]hunter2\n"}]}}"#,
            "the config",
        )
        .unwrap_err();
        assert!(!err.chain().contains("hunter2"), "{}", err.chain());
    }

    #[test]
    fn status_lists_failures_and_the_slowest_operations() {
        use super::super::oplog::OpRecord;
        let recs: Vec<OpRecord> = (1..=1000u32)
            .map(|n| OpRecord {
                number: n,
                description: format!("op {n}"),
                duration: Duration::from_micros(u64::from(n % 500)),
                error: (n == 3 || n == 700).then(|| "boom".to_string()),
            })
            .collect();
        let kept = status_operations(recs);
        assert_eq!(kept.len(), STATUS_MAX_OPERATIONS);
        assert!(kept.windows(2).all(|w| w[0].number < w[1].number));
        assert!(kept.iter().any(|r| r.number == 3) && kept.iter().any(|r| r.number == 700));
        // The slowest (n % 500 close to 499) are there, the fastest are not.
        assert!(kept.iter().any(|r| r.number == 499) && kept.iter().any(|r| r.number == 999));
        assert!(!kept.iter().any(|r| r.number == 500 || r.number == 1));

        let dir = std::env::temp_dir().join(format!("ember-status-{}", std::process::id()));
        let path = dir.join("status.json");
        for i in 0..STATUS_MAX_RUNS + 3 {
            append_status(&path, serde_json::json!({ "n": i })).unwrap();
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let runs = doc["stages"].as_array().unwrap();
        assert_eq!(runs.len(), STATUS_MAX_RUNS);
        assert_eq!(runs[0]["n"], 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
