//! Ember's own command lines for provisioning: `ember stage`, `ember run` and `ember apply`.
//!
//! They run the same engine as the `ignition` personality with double-dash flags, and log to
//! standard output (Ignition's layout) unless `--syslog` is given.

use std::ffi::OsString;
use std::path::PathBuf;

use super::exit;
use super::ignition::{authorized_keys_fragment_from_env, config_name, finish, parse_go_duration};
use crate::logging;
use crate::providers;
use crate::stages::engine::{self, Outcome};
use crate::stages::{Mode, Settings, Stage};

const STAGE_HELP: &str = "\
Usage: ember stage NAME --platform P [options]

Runs one provisioning stage, as the `ignition` command does at boot. Stages, in boot order:
fetch-offline, fetch, kargs, disks, mount, files, umount.

Options:
  --platform P          the platform (required): file, metal, qemu, aws, ...
  --root DIR            the root being provisioned (default /)
  --config-cache FILE   the rendered config cache (default /run/ignition.json)
  --state-file FILE     state kept between stages (default /run/ignition/state)
  --neednet FILE        created by fetch-offline when the network is needed
                        (default /run/ignition/neednet)
  --fetch-timeout D     time allowed for fetching the platform's config, as a Go duration
                        such as 2m0s, 30s, 500ms (default 2m0s)
  --syslog              log to the system log instead of standard output
  -h, --help            show this help

Exit codes: 0 success (also when fetch-offline found that the network is needed), 1 the stage
failed, 2 bad usage, 3 the state file or the fetcher could not be set up.
";

const RUN_HELP: &str = "\
Usage: ember run --platform P [options]

Runs every provisioning stage in boot order in one process: fetch-offline, fetch (only when
fetch-offline found that the network is needed), kargs, disks, mount, files and umount.
umount also runs when the mount stage or a stage after it fails (it unmounts whatever
mount had mounted before failing).

Options: as `ember stage` (--platform, --root, --config-cache, --state-file, --neednet,
--fetch-timeout, --syslog).

Exit codes: as `ember stage`.
";

const APPLY_HELP: &str = "\
Usage: ember apply --root DIR [--ignore-unsupported] [--offline] CONFIG|-

Applies a config to a directory tree (an image build, a container): renders its merge and
replace references, then writes files, directories, links and systemd units under DIR.
Disks, RAID, LUKS, filesystems, kernel arguments, users and groups need a real boot: a config
that has any is refused, naming the entries, unless --ignore-unsupported skips them.

Options:
  --root DIR             the tree to apply to (required)
  --ignore-unsupported   skip what cannot be done on a tree instead of failing
  --offline              fail instead of using the network
  -h, --help             show this help

Exit codes: 0 applied, 1 failed, 2 bad usage or unreadable config.
";

struct Common {
    platform: Option<String>,
    root: Option<PathBuf>,
    config_cache: Option<PathBuf>,
    state_file: Option<PathBuf>,
    neednet: Option<PathBuf>,
    fetch_timeout: Option<std::time::Duration>,
    syslog: bool,
    positional: Vec<String>,
}

/// Parses the options `stage` and `run` share; `Err(code)` after printing a message.
fn parse_common(cmd: &str, help: &str, args: Vec<OsString>) -> Result<Common, i32> {
    let mut c = Common {
        platform: None,
        root: None,
        config_cache: None,
        state_file: None,
        neednet: None,
        fetch_timeout: None,
        syslog: false,
        positional: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    let usage_err = |m: String| {
        eprintln!("ember {cmd}: {m}\n\n{help}");
        exit::USAGE
    };
    loop {
        use lexopt::Arg::*;
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(usage_err(e.to_string())),
        };
        let value = |p: &mut lexopt::Parser| -> Result<String, i32> {
            p.value()
                .map(|v| v.to_string_lossy().into_owned())
                .map_err(|e| usage_err(e.to_string()))
        };
        match arg {
            Long("platform") => c.platform = Some(value(&mut parser)?),
            Long("root") => c.root = Some(value(&mut parser)?.into()),
            Long("config-cache") => c.config_cache = Some(value(&mut parser)?.into()),
            Long("state-file") => c.state_file = Some(value(&mut parser)?.into()),
            Long("neednet") => c.neednet = Some(value(&mut parser)?.into()),
            Long("fetch-timeout") => {
                let v = value(&mut parser)?;
                match parse_go_duration(&v) {
                    Some(d) => c.fetch_timeout = Some(d),
                    None => {
                        return Err(usage_err(format!(
                            "--fetch-timeout {v:?} is not a duration such as 2m0s, 30s or 500ms"
                        )))
                    }
                }
            }
            Long("syslog") => c.syslog = true,
            Long("help") | Short('h') => {
                print!("{help}");
                return Err(exit::OK);
            }
            Value(v) => c.positional.push(v.to_string_lossy().into_owned()),
            other => return Err(usage_err(other.unexpected().to_string())),
        }
    }
    match &c.platform {
        None => return Err(usage_err("--platform is required".into())),
        Some(p) if !providers::PLATFORMS.contains(&p.as_str()) => {
            return Err(usage_err(format!(
                "unknown platform {p:?}; platforms: {}",
                providers::PLATFORMS.join(", ")
            )))
        }
        Some(_) => {}
    }
    Ok(c)
}

fn options(cmd: &str, c: &Common, stage: Stage) -> Result<engine::Options, i32> {
    let fragment = authorized_keys_fragment_from_env().map_err(|m| {
        eprintln!("ember {cmd}: {m}");
        exit::USAGE
    })?;
    let mut settings = Settings::new(c.platform.clone().unwrap_or_default(), Mode::Boot);
    settings.write_authorized_keys_fragment = fragment;
    let mut o = engine::Options::new(stage, settings);
    if let Some(v) = &c.root {
        o.root = v.clone();
    }
    if let Some(v) = &c.config_cache {
        o.config_cache = v.clone();
    }
    if let Some(v) = &c.state_file {
        o.state_file = v.clone();
    }
    if let Some(v) = &c.neednet {
        o.neednet = v.clone();
    }
    if let Some(v) = c.fetch_timeout {
        o.fetch_timeout = v;
    }
    Ok(o)
}

fn init_log(c: &Common) {
    logging::init(if c.syslog {
        logging::Target::Syslog
    } else {
        logging::Target::Stdout
    });
}

/// `ember stage NAME ...`
pub fn stage_main(args: Vec<OsString>) -> i32 {
    let c = match parse_common("stage", STAGE_HELP, args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stage = match c.positional.as_slice() {
        [name] => match Stage::from_name(name) {
            Some(s) => s,
            None => {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                eprintln!(
                    "ember stage: unknown stage {name:?}; stages: {}",
                    names.join(", ")
                );
                return exit::USAGE;
            }
        },
        _ => {
            eprintln!("ember stage: give exactly one stage name\n\n{STAGE_HELP}");
            return exit::USAGE;
        }
    };
    let opts = match options("stage", &c, stage) {
        Ok(o) => o,
        Err(code) => return code,
    };
    init_log(&c);
    log::info!("ember {} stage {stage}", super::VERSION);
    finish(engine::run(&opts))
}

/// `ember run ...`: every stage in boot order.
pub fn run_main(args: Vec<OsString>) -> i32 {
    let c = match parse_common("run", RUN_HELP, args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !c.positional.is_empty() {
        eprintln!(
            "ember run: unexpected argument {:?}\n\n{RUN_HELP}",
            c.positional[0]
        );
        return exit::USAGE;
    }
    let base = match options("run", &c, Stage::FetchOffline) {
        Ok(o) => o,
        Err(code) => return code,
    };
    init_log(&c);
    log::info!("ember {}: running every stage", super::VERSION);
    let mut neednet = false;
    let mut mounted = false;
    for stage in Stage::ALL {
        if stage == Stage::Fetch && !neednet {
            continue;
        }
        let opts = engine::Options {
            stage,
            ..base.clone()
        };
        log::info!("Stage: {stage}");
        // A failing mount stage leaves what it mounted before the failure mounted: umount
        // runs once mount was tried (it skips what is not mounted).
        if stage == Stage::Mount {
            mounted = true;
        }
        match engine::run(&opts) {
            Ok(Outcome::NeedNet) => neednet = true,
            Ok(Outcome::Passed) => {}
            Err(e) => {
                let code = finish(Err(e));
                if mounted && stage != Stage::Umount {
                    log::info!("unmounting after the failure");
                    let opts = engine::Options {
                        stage: Stage::Umount,
                        ..base.clone()
                    };
                    if let Err(e) = engine::run(&opts) {
                        log::error!("umount after the failure: {}", e.chain());
                    }
                }
                return code;
            }
        }
    }
    finish(Ok(Outcome::Passed))
}

/// `ember apply --root DIR ...`
pub fn apply_main(args: Vec<OsString>) -> i32 {
    let mut root: Option<PathBuf> = None;
    let mut ignore = false;
    let mut offline = false;
    let mut configs: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    let usage_err = |m: String| {
        eprintln!("ember apply: {m}\n\n{APPLY_HELP}");
        exit::USAGE
    };
    loop {
        use lexopt::Arg::*;
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage_err(e.to_string()),
        };
        match arg {
            Long("root") => match parser.value() {
                Ok(v) => root = Some(PathBuf::from(v)),
                Err(e) => return usage_err(e.to_string()),
            },
            Long("ignore-unsupported") => ignore = true,
            Long("offline") => offline = true,
            Long("help") | Short('h') => {
                print!("{APPLY_HELP}");
                return exit::OK;
            }
            Value(v) => configs.push(v.to_string_lossy().into_owned()),
            other => return usage_err(other.unexpected().to_string()),
        }
    }
    let Some(root) = root else {
        return usage_err("--root is required".into());
    };
    let [config] = configs.as_slice() else {
        return usage_err("give exactly one config (a file, or - for standard input)".into());
    };
    if !root.is_dir() {
        eprintln!("ember apply: --root {} is not a directory", root.display());
        return exit::USAGE;
    }
    if let Err(m) = authorized_keys_fragment_from_env() {
        eprintln!("ember apply: {m}");
        return exit::USAGE;
    }
    let raw = match super::read_input(config) {
        Ok(r) => r,
        Err(m) => {
            eprintln!("ember apply: {m}");
            return exit::USAGE;
        }
    };
    logging::init(logging::Target::Stdout);
    let mut opts = engine::ApplyOptions::new(root, ignore, offline);
    opts.config_name = config_name(config);
    match engine::apply(&opts, &raw) {
        Ok(()) => {
            log::info!("applied the config");
            exit::OK
        }
        Err(e) => {
            log::error!("failed to apply: {}", e.chain());
            eprint!("{}", e.report());
            exit::FAILURE
        }
    }
}
