//! Ember's own command lines for provisioning: `ember stage`, `ember run` and `ember apply`.
//!
//! They run the same engine as the `ignition` personality with double-dash flags, and log to
//! standard output (Ignition's layout) unless `--syslog` is given.

use std::ffi::OsString;

use super::exit;
use super::ignition::{
    apply_command, authorized_keys_fragment_from_env, finish, parse_go_duration, stage_options,
    ApplyCommand, StagePaths,
};
use crate::logging;
use crate::stages::engine::{self, Outcome};
use crate::stages::Stage;

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
    paths: StagePaths,
    syslog: bool,
    positional: Vec<String>,
}

/// Parses the options `stage` and `run` share; `Err(code)` after printing a message.
fn parse_common(cmd: &str, help: &str, args: Vec<OsString>) -> Result<Common, i32> {
    let mut c = Common {
        platform: None,
        paths: StagePaths::default(),
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
            Long("root") => c.paths.root = Some(value(&mut parser)?.into()),
            Long("config-cache") => c.paths.config_cache = Some(value(&mut parser)?.into()),
            Long("state-file") => c.paths.state_file = Some(value(&mut parser)?.into()),
            Long("neednet") => c.paths.neednet = Some(value(&mut parser)?.into()),
            Long("fetch-timeout") => {
                let v = value(&mut parser)?;
                match parse_go_duration(&v) {
                    Some(d) => c.paths.fetch_timeout = Some(d),
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
        Some(p) => {
            if let Err(list) = super::check_platform(p) {
                return Err(usage_err(format!(
                    "unknown platform {p:?}; platforms: {list}"
                )));
            }
        }
    }
    Ok(c)
}

fn options(cmd: &str, c: &Common, stage: Stage) -> Result<engine::Options, i32> {
    let fragment = authorized_keys_fragment_from_env().map_err(|m| {
        eprintln!("ember {cmd}: {m}");
        exit::USAGE
    })?;
    let platform = c.platform.as_deref().unwrap_or_default();
    Ok(stage_options(stage, platform, fragment, &c.paths))
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
    let cmd = ApplyCommand {
        prefix: "ember apply",
        help: APPLY_HELP,
        usage: |m| format!("ember apply: {m}\n\n{APPLY_HELP}"),
        one_config: "give exactly one config (a file, or - for standard input)",
        default_root: None,
        bad_input: exit::USAGE,
        container_only: false,
    };
    apply_command(&cmd, args)
}
