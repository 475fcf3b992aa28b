//! The personalities that stand in for Ignition's own binary: `ignition` (one stage per
//! invocation, Go-style single-dash flags), `ignition-apply` (pflag-style double-dash flags,
//! only inside a container) and `ignition-rmcfg`.
//!
//! `ignition`:
//! * flags as Go's `flag` package parses them (see [`super::goflag`]): `-platform`, `-stage`,
//!   `-root` (`/`), `-config-cache` (`/run/ignition.json`), `-fetch-timeout` (`2m0s`, a Go
//!   duration), `-neednet` (`/run/ignition/neednet`), `-state-file` (`/run/ignition/state`),
//!   `-log-to-stdout`, `-version`;
//! * a missing `-platform` or `-stage` prints `'--platform' must be provided` (or `'--stage'`)
//!   and exits 2; a bad value prints Go's `invalid value "x" for flag -platform: …` and the
//!   usage, exit 2;
//! * exit codes: 0 success (also when fetch-offline signalled that the network is needed),
//!   1 stage failure, 2 usage, 3 state-load or fetcher error.
//!
//! On failure a short report goes to standard error: the stage, the root cause, the operation,
//! the JSON path and a hint. Unlike Ignition, the config itself is never printed (it holds
//! password hashes and file contents).

use std::path::PathBuf;
use std::time::Duration;

use super::goflag::{self, FlagError, Kind};
use super::{IGNITION_COMPAT_VERSION, VERSION};
use crate::logging;
use crate::providers;
use crate::stages::engine::{self, Outcome};
use crate::stages::{Mode, Settings, Stage};

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), optionally signed;
/// `0` needs no unit. Negative durations are returned as zero (no limit).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let value: f64 = format!(
            "{}.{}",
            if int_part.is_empty() { "0" } else { int_part },
            if frac_part.is_empty() { "0" } else { frac_part }
        )
        .parse()
        .ok()?;
        total += value * nanos_per;
        rest = after;
    }
    // Go limits durations to about 292 years.
    if total > i64::MAX as f64 {
        return None;
    }
    if neg {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(total.round() as u64))
}

const FLAGS: &[(&str, Kind)] = &[
    ("config-cache", Kind::Value),
    ("fetch-timeout", Kind::Value),
    ("log-to-stdout", Kind::Bool),
    ("neednet", Kind::Value),
    ("platform", Kind::Value),
    ("root", Kind::Value),
    ("stage", Kind::Value),
    ("state-file", Kind::Value),
    ("version", Kind::Bool),
];

fn stage_names() -> String {
    let mut v: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    v.sort_unstable();
    v.join(", ")
}

fn usage(argv0: &str) -> String {
    format!(
        "Usage of {argv0}:
  -config-cache string
    \twhere the fetch stages cache the rendered config (default \"{cache}\")
  -fetch-timeout duration
    \toverall time allowed for fetching the platform's config (default 2m0s)
  -log-to-stdout
    \twrite the log to standard output instead of the system log
  -neednet string
    \tfile fetch-offline creates when the config needs the network (default \"{neednet}\")
  -platform value
    \tthe platform to run on, one of: {platforms}
  -root string
    \tthe root of the system being provisioned (default \"/\")
  -stage value
    \tthe stage to run, one of: {stages}
  -state-file string
    \twhere state is kept between stages (default \"{state}\")
  -version
    \tprint the version and exit
",
        cache = engine::DEFAULT_CONFIG_CACHE,
        neednet = engine::DEFAULT_NEEDNET,
        state = engine::DEFAULT_STATE_FILE,
        platforms = providers::PLATFORMS.join(", "),
        stages = stage_names(),
    )
}

/// `IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT` (unset or empty: true).
pub fn authorized_keys_fragment_from_env() -> Result<bool, String> {
    match std::env::var("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT") {
        Ok(v) if !v.is_empty() => engine::parse_env_bool(&v).ok_or_else(|| {
            format!(
                "IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT must be true, 1, false or 0, not {v:?}"
            )
        }),
        _ => Ok(true),
    }
}

/// Logs the outcome, prints the failure report and returns the exit code.
pub fn finish(result: Result<Outcome, engine::Error>) -> i32 {
    match result {
        Ok(_) => {
            log::info!("Ignition finished successfully");
            0
        }
        Err(e) => {
            log::error!("Ignition failed: {}", e.chain());
            eprint!("{}", e.report());
            e.exit_code()
        }
    }
}

/// Where a stage works, as a command line gives it (`None`: [`engine::Options::new`]'s default).
#[derive(Debug, Default)]
pub struct StagePaths {
    pub root: Option<PathBuf>,
    pub config_cache: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub neednet: Option<PathBuf>,
    pub fetch_timeout: Option<Duration>,
}

/// A boot stage's options: `platform`, the authorized_keys fragment switch (already read from
/// the environment) and `paths` over [`engine::Options::new`]'s defaults.
pub fn stage_options(
    stage: Stage,
    platform: &str,
    fragment: bool,
    paths: &StagePaths,
) -> engine::Options {
    let mut settings = Settings::new(platform, Mode::Boot);
    settings.write_authorized_keys_fragment = fragment;
    let mut o = engine::Options::new(stage, settings);
    if let Some(v) = &paths.root {
        o.root = v.clone();
    }
    if let Some(v) = &paths.config_cache {
        o.config_cache = v.clone();
    }
    if let Some(v) = &paths.state_file {
        o.state_file = v.clone();
    }
    if let Some(v) = &paths.neednet {
        o.neednet = v.clone();
    }
    if let Some(v) = paths.fetch_timeout {
        o.fetch_timeout = v;
    }
    o
}

pub fn main(argv0: &str, args: &[String]) -> i32 {
    let parsed = match goflag::parse(args, FLAGS) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            eprint!("{}", usage(argv0));
            return 0;
        }
        Err(FlagError::Message(m)) => {
            eprintln!("{m}");
            eprint!("{}", usage(argv0));
            return 2;
        }
    };
    let bad_value = |flag: &str, value: &str, why: String| {
        eprintln!("invalid value {value:?} for flag -{flag}: {why}");
        eprint!("{}", usage(argv0));
        2
    };
    let platform = parsed.get("platform");
    if let Some(p) = platform {
        if let Err(list) = super::check_platform(p) {
            return bad_value(
                "platform",
                p,
                format!("invalid platform; valid platforms: {list}"),
            );
        }
    }
    let stage = match parsed.get("stage") {
        Some(s) => match Stage::from_name(s) {
            Some(st) => Some(st),
            None => {
                return bad_value(
                    "stage",
                    s,
                    format!("invalid stage; valid stages: {}", stage_names()),
                )
            }
        },
        None => None,
    };
    let fetch_timeout = match parsed.get("fetch-timeout") {
        Some(v) => match parse_go_duration(v) {
            Some(d) => Some(d),
            None => return bad_value("fetch-timeout", v, "parse error".into()),
        },
        None => None,
    };
    if parsed.flag("version") {
        println!("Ignition v{IGNITION_COMPAT_VERSION}");
        return 0;
    }
    let Some(platform) = platform else {
        eprintln!("'--platform' must be provided");
        return 2;
    };
    let Some(stage) = stage else {
        eprintln!("'--stage' must be provided");
        return 2;
    };
    let fragment = match authorized_keys_fragment_from_env() {
        Ok(b) => b,
        Err(m) => {
            eprintln!("{argv0}: {m}");
            return 2;
        }
    };

    logging::init(if parsed.flag("log-to-stdout") {
        logging::Target::Stdout
    } else {
        logging::Target::Syslog
    });
    let path = |flag: &str| parsed.get(flag).map(PathBuf::from);
    let paths = StagePaths {
        root: path("root"),
        config_cache: path("config-cache"),
        state_file: path("state-file"),
        neednet: path("neednet"),
        fetch_timeout,
    };
    let opts = stage_options(stage, platform, fragment, &paths);
    log::info!("Ignition v{IGNITION_COMPAT_VERSION} (ember {VERSION})");
    log::info!("Stage: {stage}");
    finish(engine::run(&opts))
}

// ------------------------------------------------------------------------------------------

/// Whether this process runs in a container, as `ignition-apply` checks it.
pub fn in_container() -> bool {
    std::env::var_os("container").is_some_and(|v| !v.is_empty())
        || std::path::Path::new("/run/.containerenv").exists()
        || std::path::Path::new("/.dockerenv").exists()
}

const APPLY_USAGE: &str = "\
Usage: ignition-apply [options] CONFIG|-

Applies a config to the running system, inside a container image build.

Options:
      --root DIR             the root to apply to (default \"/\")
      --ignore-unsupported   skip what cannot be done here (disks, filesystems, mounts,
                             kernel arguments, users and groups) instead of failing
      --offline              fail instead of using the network
  -h, --help                 show this help
";

/// A config argument as reports name it.
pub fn config_name(arg: &str) -> String {
    if arg == "-" {
        "the config from standard input".into()
    } else {
        format!("the config {arg}")
    }
}

pub fn apply_main(argv0: &str, args: Vec<std::ffi::OsString>) -> i32 {
    let cmd = ApplyCommand {
        prefix: argv0,
        help: APPLY_USAGE,
        usage: |m| format!("Error: {m}\n{APPLY_USAGE}"),
        one_config: "expected exactly one config argument",
        default_root: Some("/"),
        bad_input: 1,
        container_only: true,
    };
    apply_command(&cmd, args)
}

/// How `ember apply` and `ignition-apply` differ; [`apply_command`] is the rest.
pub struct ApplyCommand<'a> {
    /// Starts messages: `ember apply`, or the name `ignition-apply` was invoked as.
    pub prefix: &'a str,
    /// Printed for `--help`.
    pub help: &'a str,
    /// A usage error's text, from its message.
    pub usage: fn(&str) -> String,
    /// The usage error when not exactly one config is given.
    pub one_config: &'a str,
    /// `None`: `--root` is required.
    pub default_root: Option<&'a str>,
    /// The exit code of bad usage and of a config that cannot be read.
    pub bad_input: i32,
    /// Refuses to run outside a container (`ignition-apply`).
    pub container_only: bool,
}

/// `ember apply` and `ignition-apply`: `[--root DIR] [--ignore-unsupported] [--offline]
/// CONFIG|-`, then [`engine::apply`]. Exit codes: 0 applied, 1 failed, `bad_input`.
pub fn apply_command(cmd: &ApplyCommand, args: Vec<std::ffi::OsString>) -> i32 {
    let mut root = cmd.default_root.map(PathBuf::from);
    let mut ignore = false;
    let mut offline = false;
    let mut configs: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    let usage_err = |m: &str| {
        eprintln!("{}", (cmd.usage)(m));
        cmd.bad_input
    };
    let prefixed = |m: &str| {
        eprintln!("{}: {m}", cmd.prefix);
        cmd.bad_input
    };
    loop {
        use lexopt::Arg::*;
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage_err(&e.to_string()),
        };
        match arg {
            Long("root") => match parser.value() {
                Ok(v) => root = Some(PathBuf::from(v)),
                Err(e) => return usage_err(&e.to_string()),
            },
            Long("ignore-unsupported") => ignore = true,
            Long("offline") => offline = true,
            Long("help") | Short('h') => {
                print!("{}", cmd.help);
                return 0;
            }
            Value(v) => configs.push(v.to_string_lossy().into_owned()),
            other => return usage_err(&other.unexpected().to_string()),
        }
    }
    let Some(root) = root else {
        return usage_err("--root is required");
    };
    let [config] = configs.as_slice() else {
        return usage_err(cmd.one_config);
    };
    if cmd.container_only && !in_container() {
        return prefixed(
            "refusing to run outside a container (no $container, /run/.containerenv or /.dockerenv); \
             `ember apply --root DIR CONFIG` applies a config to a directory tree anywhere",
        );
    }
    if !root.is_dir() {
        return prefixed(&format!("--root {} is not a directory", root.display()));
    }
    let fragment = match authorized_keys_fragment_from_env() {
        Ok(b) => b,
        Err(m) => return prefixed(&m),
    };
    let raw = match super::read_input(config) {
        Ok(r) => r,
        Err(m) => return prefixed(&m),
    };
    logging::init(logging::Target::Stdout);
    let mut opts = engine::ApplyOptions::new(root, ignore, offline);
    opts.settings.write_authorized_keys_fragment = fragment;
    opts.config_name = config_name(config);
    match engine::apply(&opts, &raw) {
        Ok(()) => {
            log::info!("applied the config");
            0
        }
        Err(e) => {
            log::error!("failed to apply: {}", e.chain());
            eprint!("{}", e.report());
            1
        }
    }
}

// ------------------------------------------------------------------------------------------

/// `ignition-rmcfg --platform P [--log-to-stdout]`: deletes the config from the platform
/// (only platforms whose provider supports it).
pub fn rmcfg_main(argv0: &str, args: &[String]) -> i32 {
    let parsed = match goflag::parse(
        args,
        &[("platform", Kind::Value), ("log-to-stdout", Kind::Bool)],
    ) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            eprintln!("Usage of {argv0}:\n  -log-to-stdout\n    \twrite the log to standard output\n  -platform string\n    \tthe platform whose config to delete");
            return 0;
        }
        Err(FlagError::Message(m)) => {
            eprintln!("{m}");
            return 2;
        }
    };
    let Some(platform) = parsed.get("platform") else {
        eprintln!("'--platform' must be provided");
        return 2;
    };
    if super::check_platform(platform).is_err() {
        eprintln!("invalid value {platform:?} for flag -platform: invalid platform");
        return 2;
    }
    logging::init(if parsed.flag("log-to-stdout") {
        logging::Target::Stdout
    } else {
        logging::Target::Syslog
    });
    let result =
        providers::get(platform, &providers::Endpoints::default()).and_then(|p| p.delete_config());
    match result {
        Ok(()) => {
            log::info!("deleted the config from platform {platform}");
            0
        }
        Err(e) => {
            log::error!("cannot delete config on this platform: {e}");
            eprintln!("{argv0}: cannot delete config on platform {platform}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("2m0s"), Some(Duration::from_secs(120)));
        assert_eq!(d("30s"), Some(Duration::from_secs(30)));
        assert_eq!(d("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(d("1h2m3s4ms"), Some(Duration::from_millis(3_723_004)));
        assert_eq!(d("10us"), Some(Duration::from_micros(10)));
        assert_eq!(d("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(d("-5s"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "1x", "1.s.", "--1s", "1 s", ".s", "1e3s"] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn usage_lists_every_flag() {
        let u = usage("ignition");
        for (name, _) in FLAGS {
            assert!(u.contains(&format!("  -{name}")), "{name}");
        }
        assert!(u.starts_with("Usage of ignition:\n"));
    }
}
