//! Runs the files stage on a directory, for benchmarks (`benches/files-stage.sh`):
//!
//! ```text
//! cargo run --release --example files_stage -- CONFIG ROOT
//! ```
//!
//! Reads and parses CONFIG (`config::parse`), then runs the files stage into ROOT as at boot
//! (users, files, units, result file). Prints the time of each phase on stderr. Set
//! `EMBER_LOG=1` (or `debug`) to see the stage's log lines, `EMBER_LOG=timing` for the time
//! spent planning and writing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ember::config;
use ember::fetch;
use ember::stages::{self, Context, Mode, OpLog, Settings, Stage, State};

struct StderrLog;

/// `EMBER_LOG=timing`: only the stage's own timing line.
static ONLY_TIMING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let msg = r.args().to_string();
        if ONLY_TIMING.load(std::sync::atomic::Ordering::Relaxed)
            && !msg.starts_with("files stage:")
        {
            return;
        }
        eprintln!("{}: {msg}", r.level());
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: files_stage CONFIG ROOT");
        return ExitCode::from(2);
    }
    if std::env::var_os("EMBER_LOG").is_some() {
        static LOGGER: StderrLog = StderrLog;
        let _ = log::set_logger(&LOGGER);
        let level = std::env::var("EMBER_LOG").unwrap_or_default();
        ONLY_TIMING.store(level == "timing", std::sync::atomic::Ordering::Relaxed);
        log::set_max_level(if level == "debug" || level == "timing" {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
    let t0 = Instant::now();
    let raw = match std::fs::read(&args[1]) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("reading {}: {e}", args[1]);
            return ExitCode::FAILURE;
        }
    };
    let parsed = config::parse(&raw);
    drop(raw);
    let Some(cfg) = parsed.config else {
        eprintln!("config is not valid: {:?}", parsed.error);
        return ExitCode::FAILURE;
    };
    drop(parsed.report);
    let t1 = Instant::now();

    let fetcher = match fetch::Fetcher::new(fetch::Options::default()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fetcher: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut state = State::default();
    state.fetched_configs.push(stages::state::FetchedConfig {
        kind: "user".into(),
        source: "file".into(),
        referenced: false,
    });
    let ops = OpLog::new();
    let settings = Settings::new("file", Mode::Boot);
    let root = PathBuf::from(&args[2]);
    let mut ctx = Context {
        stage: Stage::Files,
        root: &root,
        config: &cfg,
        state: &mut state,
        fetcher: &fetcher,
        ops: &ops,
        settings: &settings,
    };
    let r = stages::files::run(&mut ctx);
    let t2 = Instant::now();
    eprintln!(
        "parse {:.3} s, files stage {:.3} s, total {:.3} s, {} operations",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t2 - t0).as_secs_f64(),
        ops.records().len()
    );
    if std::env::var_os("EMBER_OPS").is_some() {
        // Time per kind of operation (the description up to its first quote).
        let mut by_kind: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
        for rec in ops.records() {
            let kind = rec
                .description
                .split('"')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let e = by_kind.entry(kind).or_default();
            e.0 += 1;
            e.1 += rec.duration.as_secs_f64();
        }
        for (k, (n, t)) in by_kind {
            eprintln!("{t:8.3} s {n:6} x {k}");
        }
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("files stage failed: {}", f.chain());
            if let Some(p) = &f.path {
                eprintln!("  at {p}");
            }
            if let Some(h) = &f.hint {
                eprintln!("  hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}
