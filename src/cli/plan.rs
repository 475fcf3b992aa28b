//! `ember plan [--platform P] [--root DIR] CONFIG|-`: everything the stages would do on this
//! machine, in order, without doing it. What a person reads before a disk is wiped.
//!
//! The config is parsed and validated (findings shown briefly), rendered (referenced configs
//! are fetched, nothing is cached), merged over the base configs, and each stage is planned with
//! the same checks it makes before writing: kargs (the helper and what the kernel command line
//! has now), disks (`stages::disks::plan`, with what is on each disk now), mount, files. Nothing
//! is written: no cache, no state, no status file, no device, no file in the root.
//!
//! Output (standard output), every line naming its JSON path:
//!
//! ```text
//! ember plan: the config config.ign, platform metal, root /sysroot; nothing was changed
//!
//! DESTRUCTIVE: 2 operations destroy data:
//!   DELETE partition 2 "data" of /dev/vdb (sectors 34816-67583, 16 MiB): ext4 label "data" found on it is lost  [$.storage.disks.0.partitions.1]
//!   FORMAT /dev/vdb1 as xfs: WIPES ext4 label "old" found on it  [$.storage.filesystems.0]
//!
//! config
//!   ...
//! disks
//!   ...
//!
//! The stages can carry out this plan.
//! ```
//!
//! Destructive operations are in capitals (`WIPE`, `DELETE`, `FORMAT`, `OVERWRITE`, ...) with
//! what was found that would be lost, and are listed again at the top. Exit codes: 0 the plan
//! can be carried out, 1 a step would fail (the failure report says which and why, on standard
//! error), 2 bad usage or an unreadable config.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::exit;
use super::ignition::{authorized_keys_fragment_from_env, config_name};
use crate::config::{self, report::PathElem, JsonPath};
use crate::fetch;
use crate::logging;
use crate::providers::cmdline;
use crate::stages::disks::partitions::{PartitionAction, Sectors};
use crate::stages::disks::plan::label_part;
use crate::stages::disks::{
    self, DiskPlan, FilesystemPlan, FsAction, KeySource, LuksAction, LuksPlan,
};
use crate::stages::report::Report;
use crate::stages::{
    engine, files, kargs, mount, Context, Failure, Mode, OpLog, Settings, Stage, State,
};

const HELP: &str = "\
Usage: ember plan [--platform P] [--root DIR] CONFIG|-

Shows everything the provisioning stages would do on this machine with CONFIG, in order,
without doing it: the config's findings, the referenced configs it merges, the kernel
arguments, what happens to each disk, partition, RAID array, LUKS volume and filesystem (with
what is on them now), what is mounted where, and the users, files, directories, links and
systemd units of the files stage. Destructive operations are in capitals (WIPE, DELETE,
FORMAT, OVERWRITE) with the data found that they destroy, and listed again at the top.

Nothing is written. Referenced configs (ignition.config.merge/replace) and LUKS key files are
fetched, since the plan depends on them; remote file contents are fetched and discarded, to
check that they can be fetched and match their verification.hash.

Options:
  --platform P   the platform whose base configs apply (base.platform.d/P); default: none
  --root DIR     the root the files stage would write to (default /; /sysroot at boot)
  -h, --help     show this help

Exit codes: 0 the plan can be carried out, 1 a step would fail (the report on standard error
says which and why), 2 bad usage or an unreadable config.
";

/// One line of the plan.
#[derive(Clone)]
struct Line {
    indent: usize,
    text: String,
    path: Option<String>,
    destructive: bool,
}

impl Line {
    fn new(indent: usize, text: impl Into<String>, path: Option<&JsonPath>) -> Line {
        Line {
            indent,
            text: text.into(),
            path: path.map(|p| p.to_string()),
            destructive: false,
        }
    }

    fn destructive(mut self) -> Line {
        self.destructive = true;
        self
    }

    fn render(&self) -> String {
        let mut s = format!("{}{}", "  ".repeat(self.indent), self.text);
        if let Some(p) = &self.path {
            let _ = write!(s, "  [{p}]");
        }
        s
    }
}

/// The plan as it is built, section by section.
#[derive(Default)]
struct Out {
    sections: Vec<(&'static str, Vec<Line>)>,
}

impl Out {
    fn section(&mut self, title: &'static str, lines: Vec<Line>) {
        self.sections.push((title, lines));
    }

    fn text(&self, header: &str, footer: &str) -> String {
        let mut s = format!("{header}\n\n");
        let destructive: Vec<&Line> = self
            .sections
            .iter()
            .flat_map(|(_, l)| l.iter())
            .filter(|l| l.destructive)
            .collect();
        if destructive.is_empty() {
            s.push_str("No destructive operations.\n\n");
        } else {
            let n = destructive.len();
            let _ = writeln!(
                s,
                "DESTRUCTIVE: {n} operation{} destroy{} data:",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" }
            );
            for l in destructive {
                let _ = writeln!(
                    s,
                    "  {}",
                    Line {
                        indent: 0,
                        ..l.clone()
                    }
                    .render()
                );
            }
            s.push('\n');
        }
        for (title, lines) in &self.sections {
            let _ = writeln!(s, "{title}");
            if lines.is_empty() {
                s.push_str("  nothing to do\n");
            }
            for l in lines {
                let _ = writeln!(s, "{}", l.render());
            }
            s.push('\n');
        }
        s.push_str(footer);
        s.push('\n');
        s
    }
}

struct Args {
    platform: Option<String>,
    root: PathBuf,
    config: String,
}

fn parse_args(args: Vec<OsString>) -> Result<Args, i32> {
    let mut platform = None;
    let mut root = PathBuf::from("/");
    let mut configs = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    let usage_err = |m: String| {
        eprintln!("ember plan: {m}\n\n{HELP}");
        exit::USAGE
    };
    loop {
        use lexopt::Arg::*;
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(usage_err(e.to_string())),
        };
        match arg {
            Long("platform") => match parser.value() {
                Ok(v) => platform = Some(v.to_string_lossy().into_owned()),
                Err(e) => return Err(usage_err(e.to_string())),
            },
            Long("root") => match parser.value() {
                Ok(v) => root = PathBuf::from(v),
                Err(e) => return Err(usage_err(e.to_string())),
            },
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Err(exit::OK);
            }
            Value(v) => configs.push(v.to_string_lossy().into_owned()),
            other => return Err(usage_err(other.unexpected().to_string())),
        }
    }
    if let Some(p) = &platform {
        if let Err(list) = super::check_platform(p) {
            return Err(usage_err(format!(
                "unknown platform {p:?}; platforms: {list}"
            )));
        }
    }
    let [config] = configs.as_slice() else {
        return Err(usage_err(
            "give exactly one config (a file, or - for standard input)".into(),
        ));
    };
    if !root.is_dir() {
        eprintln!("ember plan: --root {} is not a directory", root.display());
        return Err(exit::USAGE);
    }
    Ok(Args {
        platform,
        root,
        config: config.clone(),
    })
}

/// `ember plan ...`
pub fn main(args: Vec<OsString>) -> i32 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let fragment = match authorized_keys_fragment_from_env() {
        Ok(f) => f,
        Err(m) => {
            eprintln!("ember plan: {m}");
            return exit::USAGE;
        }
    };
    let raw = match super::read_input(&a.config) {
        Ok(r) => r,
        Err(m) => {
            eprintln!("ember plan: {m}");
            return exit::USAGE;
        }
    };
    // The plan is the output (findings included) and a failure has its report: the log, on
    // standard error, is off unless EMBER_LOG asks for it.
    logging::init_with_default(logging::Target::Stderr, log::LevelFilter::Off);

    let name = config_name(&a.config);
    let platform = a.platform.clone().unwrap_or_default();
    let header = format!(
        "ember plan: {name}, platform {}, root {}; nothing was changed",
        a.platform.as_deref().unwrap_or("(none)"),
        a.root.display()
    );
    let mut settings = Settings::new(platform, Mode::Boot);
    settings.write_authorized_keys_fragment = fragment;
    let mut opts = engine::Options::new(Stage::Kargs, settings);
    opts.root = a.root.clone();
    let mut out = Out::default();
    match plan(&opts, &raw, &name, &mut out) {
        Ok(()) => {
            print!(
                "{}",
                out.text(&header, "The stages can carry out this plan.")
            );
            exit::OK
        }
        Err((stage, f)) => {
            let report = Report::with_title(format!("the {stage} stage would fail"), &f);
            print!(
                "{}",
                out.text(
                    &header,
                    &format!(
                        "The {stage} stage would fail: {}",
                        crate::stages::report::scrub(&report.root_cause)
                    )
                )
            );
            eprint!("{}", report.render(None));
            exit::FAILURE
        }
    }
}

type Fail = (Stage, Failure);

fn plan(opts: &engine::Options, raw: &[u8], name: &str, out: &mut Out) -> Result<(), Fail> {
    // ---- config: findings, references, base configs.
    let parsed = config::parse(raw);
    let mut lines = Vec::new();
    let spec = parsed
        .spec
        .map(|s| format!(", spec {s}"))
        .unwrap_or_default();
    lines.push(Line::new(
        1,
        format!("user config: {name} ({} bytes{spec})", raw.len()),
        None,
    ));
    let entries = &parsed.report.entries;
    let count = |sev| entries.iter().filter(|e| e.severity == sev).count();
    let (errors, warnings) = (
        count(config::Severity::Error),
        count(config::Severity::Warning),
    );
    if !entries.is_empty() {
        lines.push(Line::new(
            1,
            format!(
                "findings: {errors} error{}, {warnings} warning{} (`ember validate` shows each with its line)",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
            ),
            None,
        ));
        const SHOWN: usize = 10;
        for e in entries.iter().take(SHOWN) {
            let mut text = e.ignition_line();
            if e.ember_only {
                text.push_str(" (ember)");
            }
            lines.push(Line::new(2, text, None));
        }
        if entries.len() > SHOWN {
            lines.push(Line::new(
                2,
                format!("… and {} more", entries.len() - SHOWN),
                None,
            ));
        }
    }

    let mut origin = engine::Origin::default();
    let planned = engine::plan_config(opts, parsed, name, &mut origin);
    for r in &origin.references {
        let kind = if r.at.0.last() == Some(&PathElem::Key("replace".into())) {
            "replace with"
        } else {
            "merge"
        };
        lines.push(Line::new(
            r.depth,
            format!("{kind} {} ({} bytes, fetched)", r.url, r.size),
            Some(&r.at),
        ));
    }
    for f in &origin.base {
        lines.push(Line::new(1, format!("base config {}", f.display()), None));
    }
    let (full, fetcher) = match planned {
        Ok(x) => x,
        Err(fail) => {
            out.section("config", lines);
            return Err(fail);
        }
    };
    match engine::needs_network(&full) {
        Some(what) => lines.push(Line::new(
            1,
            format!("needs the network ({what}): fetch-offline asks for it and fetch runs"),
            None,
        )),
        None => lines.push(Line::new(
            1,
            "needs no network: fetch-offline does everything",
            None,
        )),
    }
    out.section("config", lines);
    let described = origin.describe();
    let described = described.as_str();
    let attribute = |stage: Stage| move |f: Failure| (stage, f.in_merged_config(described));

    let mut state = State::default();
    let ops = OpLog::new();
    let mut ctx = Context {
        stage: Stage::Kargs,
        root: &opts.root,
        config: &full,
        state: &mut state,
        fetcher: &fetcher,
        ops: &ops,
        settings: &opts.settings,
    };

    // ---- kargs
    out.section("kargs", kargs_lines(&ctx).map_err(attribute(Stage::Kargs))?);

    // ---- disks
    ctx.stage = Stage::Disks;
    let dp = disks::plan(&ctx, &disks::Options::from_env()).map_err(attribute(Stage::Disks))?;
    out.section("disks", disks_lines(&dp));

    // ---- mount
    ctx.stage = Stage::Mount;
    let mounts = mount::plan(&full, &opts.root).map_err(attribute(Stage::Mount))?;
    out.section("mount", mount_lines(&mounts, &dp));

    // ---- files
    ctx.stage = Stage::Files;
    let fl = files::plan(&ctx).map_err(attribute(Stage::Files))?;
    let mut lines: Vec<Line> = fl
        .into_iter()
        .map(|l| {
            let line = Line::new(1, l.action, l.path.as_ref());
            if l.destructive {
                line.destructive()
            } else {
                line
            }
        })
        .collect();
    let fetched = remote_lines(&full, &fetcher);
    match fetched {
        Ok(l) => lines.extend(l),
        Err(f) => {
            out.section("files", lines);
            return Err(attribute(Stage::Files)(f));
        }
    }
    out.section("files", lines);
    Ok(())
}

/// Fetches every remote file content and append the files stage would fetch, and discards the
/// data: the plan then knows that each can be fetched and matches its `verification.hash`
/// (a failure there would come after the disks were partitioned). One line each, with the
/// size; a failure is the files stage's, as it would report it.
fn remote_lines(cfg: &config::Config, fetcher: &fetch::Fetcher) -> Result<Vec<Line>, Failure> {
    let mut lines = Vec::new();
    let files = JsonPath::root().key("storage").key("files");
    for (i, f) in cfg.storage.files.iter().enumerate() {
        let jp = files.index(i);
        let resources = std::iter::once((jp.key("contents"), &f.contents)).chain(
            f.append
                .iter()
                .enumerate()
                .map(|(j, a)| (jp.key("append").index(j), a)),
        );
        for (at, r) in resources {
            let remote = r.source_str().is_some_and(|s| {
                !s.is_empty() && !s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:"))
            });
            let Some(res) = remote.then(|| crate::stages::fetch_resource(r)).flatten() else {
                continue;
            };
            let shown = cmdline::redact_url(&res.source);
            match fetcher.fetch_to(&res, &mut std::io::sink()) {
                Ok(o) => {
                    let check = if res.hash.is_some() {
                        "matches verification.hash"
                    } else {
                        "no hash to check"
                    };
                    lines.push(Line::new(
                        1,
                        format!(
                            "fetched {shown} for {}: {} bytes, {check} (the data is not kept)",
                            f.path, o.size
                        ),
                        Some(&at),
                    ));
                }
                Err(e) => {
                    let hint = e.hint();
                    let mut fail = Failure::new(format!("writing file {:?}", f.path))
                        .caused_by(e)
                        .at(at);
                    if let Some(h) = hint {
                        fail = fail.hint(h);
                    }
                    return Err(fail);
                }
            }
        }
    }
    Ok(lines)
}

// ------------------------------------------------------------------------------------------
// kargs

fn kargs_lines(ctx: &Context) -> Result<Vec<Line>, Failure> {
    let Some((helper, args)) = kargs::plan(ctx)? else {
        return Ok(Vec::new());
    };
    let ka = &ctx.config.kernel_arguments;
    let now = std::fs::read(cmdline::Source::default().cmdline_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok();
    let present = |a: &str| now.as_deref().map(|c| c.split_whitespace().any(|w| w == a));
    let base = JsonPath::root().key("kernelArguments");
    let mut lines = Vec::new();
    for (i, a) in ka.should_exist.iter().enumerate() {
        let text = match present(a) {
            Some(true) => format!("ensure {a:?}: present now, nothing to change"),
            Some(false) => format!("ADD {a:?}: absent now"),
            None => format!("ensure {a:?}"),
        };
        lines.push(Line::new(1, text, Some(&base.key("shouldExist").index(i))));
    }
    for (i, a) in ka.should_not_exist.iter().enumerate() {
        let text = match present(a) {
            Some(true) => format!("REMOVE {a:?}: present now"),
            Some(false) => format!("ensure {a:?} is absent: absent now, nothing to change"),
            None => format!("ensure {a:?} is absent"),
        };
        lines.push(Line::new(
            1,
            text,
            Some(&base.key("shouldNotExist").index(i)),
        ));
    }
    lines.push(Line::new(
        1,
        format!(
            "run {} {} (it reboots the machine when it changes anything)",
            helper.display(),
            args.join(" ")
        ),
        None,
    ));
    Ok(lines)
}

// ------------------------------------------------------------------------------------------
// disks

fn sectors(n: u64, ss: u64) -> String {
    Sectors {
        count: n,
        sector_size: ss,
    }
    .to_string()
}

fn disks_lines(p: &disks::Plan) -> Vec<Line> {
    let mut lines = Vec::new();
    for d in &p.disks {
        disk_lines(d, &mut lines);
    }
    for r in &p.raids {
        let members: Vec<String> = r.devices.iter().map(|(_, t)| t.to_string()).collect();
        let mut text = format!(
            "CREATE {} array {:?} from {}: OVERWRITES what is on them",
            r.level,
            r.name,
            members.join(", ")
        );
        if r.spares > 0 {
            let _ = write!(text, " ({} spare)", r.spares);
        }
        if !r.options.is_empty() {
            let _ = write!(text, ", mdadm options {}", r.options.join(" "));
        }
        lines.push(Line::new(1, text, Some(&r.path)).destructive());
    }
    for l in &p.luks {
        lines.push(luks_line(l));
    }
    for f in &p.filesystems {
        lines.push(fs_line(f));
    }
    lines
}

fn disk_lines(d: &DiskPlan, lines: &mut Vec<Line>) {
    let ss = d.sector_size;
    lines.push(Line::new(
        1,
        format!(
            "disk {} ({}): {}, {}",
            d.device,
            d.node.display(),
            d.found,
            sectors(d.disk_sectors, ss)
        ),
        Some(&d.path),
    ));
    // What is there now: each partition and what is on it.
    let layout = disks::current_layout(&d.node).ok();
    let found_on = |number: u32| -> Option<String> {
        layout.as_ref().and_then(|l| {
            l.partitions
                .iter()
                .find(|(p, _)| p.number == number)
                .and_then(|(_, f)| f.as_ref().map(|f| f.to_string()))
        })
    };
    if let Some(l) = &layout {
        for (part, found) in &l.partitions {
            lines.push(Line::new(
                2,
                format!(
                    "now: partition {}{}: sectors {}-{}, {}, {}",
                    part.number,
                    label_part(&part.name),
                    part.start,
                    part.end,
                    sectors(part.size(), ss),
                    found
                        .as_ref()
                        .map(|f| format!("holds {f}"))
                        .unwrap_or_else(|| "no filesystem found".into())
                ),
                None,
            ));
        }
    }
    for (n, u) in &d.active {
        lines.push(Line::new(2, format!("partition {n} is in use ({u})"), None));
    }
    let parts = d.path.key("partitions");
    if d.wipe_table {
        lines.push(
            Line::new(
                2,
                format!("WIPE the partition table of {} ({})", d.device, d.found),
                Some(&d.path.key("wipeTable")),
            )
            .destructive(),
        );
        // Partitions that do not come back at the same place are gone with the table.
        if let Some(l) = &layout {
            for (part, found) in &l.partitions {
                let back = d.after.as_ref().is_some_and(|t| {
                    t.partitions()
                        .any(|q| q.start == part.start && q.end == part.end)
                });
                if !back {
                    let what = found
                        .as_ref()
                        .map(|f| format!("{f} found on it is lost"))
                        .unwrap_or_else(|| "its contents are lost".into());
                    lines.push(
                        Line::new(
                            3,
                            format!(
                                "DELETE partition {}{} of {} ({}) with the table: {what}",
                                part.number,
                                label_part(&part.name),
                                d.device,
                                sectors(part.size(), ss)
                            ),
                            Some(&d.path.key("wipeTable")),
                        )
                        .destructive(),
                    );
                }
            }
        }
    }
    for (i, a) in &d.actions {
        let jp = parts.index(*i);
        let line = match a {
            PartitionAction::Keep { existing, .. } => Line::new(
                2,
                format!(
                    "keep partition {}{}: matches (sectors {}-{}, {})",
                    existing.number,
                    label_part(&existing.name),
                    existing.start,
                    existing.end,
                    sectors(existing.size(), ss)
                ),
                Some(&jp),
            ),
            PartitionAction::Absent { number } => Line::new(
                2,
                format!("partition {number}: absent as required, nothing to do"),
                Some(&jp),
            ),
            PartitionAction::Create { new } => Line::new(
                2,
                format!(
                    "create partition {}{} at sector {}, {}, type {}",
                    new.number,
                    label_part(&new.name),
                    new.start,
                    sectors(new.size(), ss),
                    new.type_guid
                ),
                Some(&jp),
            ),
            PartitionAction::Delete { existing } => Line::new(
                2,
                format!(
                    "DELETE partition {}{} of {} (sectors {}-{}, {}): {}",
                    existing.number,
                    label_part(&existing.name),
                    d.device,
                    existing.start,
                    existing.end,
                    sectors(existing.size(), ss),
                    found_on(existing.number)
                        .map(|f| format!("{f} found on it is lost"))
                        .unwrap_or_else(|| "its contents are lost".into())
                ),
                Some(&jp),
            )
            .destructive(),
            PartitionAction::Resize { existing, new } if new.size() < existing.size() => Line::new(
                2,
                format!(
                    "SHRINK partition {}{} from {} to {} (start {} kept): data past the new end is lost",
                    existing.number,
                    label_part(&existing.name),
                    sectors(existing.size(), ss),
                    sectors(new.size(), ss),
                    existing.start
                ),
                Some(&jp),
            )
            .destructive(),
            PartitionAction::Resize { existing, new } => Line::new(
                2,
                format!(
                    "grow partition {}{} from {} to {} (start {} kept)",
                    existing.number,
                    label_part(&existing.name),
                    sectors(existing.size(), ss),
                    sectors(new.size(), ss),
                    existing.start
                ),
                Some(&jp),
            ),
            PartitionAction::Recreate {
                existing,
                new,
                reason,
            } => Line::new(
                2,
                format!(
                    "DELETE and RECREATE partition {}{} as{} at sector {}, {} ({reason}): {}",
                    existing.number,
                    label_part(&existing.name),
                    label_part(&new.name),
                    new.start,
                    sectors(new.size(), ss),
                    found_on(existing.number)
                        .map(|f| format!("{f} found on it is lost unless it stays in place"))
                        .unwrap_or_else(|| "its contents are lost unless they stay in place".into())
                ),
                Some(&jp),
            )
            .destructive(),
        };
        lines.push(line);
    }
    if d.table.is_some() {
        let ops: Vec<String> = d.ops.iter().map(|o| o.to_string()).collect();
        lines.push(Line::new(
            2,
            format!("write the partition table (as sgdisk {})", ops.join(" ")),
            Some(&d.path),
        ));
    } else {
        lines.push(Line::new(2, "partition table unchanged", Some(&d.path)));
    }
}

fn luks_line(l: &LuksPlan) -> Line {
    let mut what = String::new();
    let destructive = match &l.action {
        LuksAction::Format { wipe } => {
            match wipe {
                Some(w) => {
                    let _ = write!(
                        what,
                        "WIPE {w} found on {} ({}), then FORMAT LUKS2",
                        l.device, l.target
                    );
                }
                None => {
                    let _ = write!(
                        what,
                        "FORMAT {} ({}) as LUKS2 (nothing recognisable found on it)",
                        l.device, l.target
                    );
                }
            }
            true
        }
        LuksAction::Reuse { found, key_checked } => {
            let _ = write!(
                what,
                "reuse the LUKS2 volume {found} on {} ({})",
                l.device, l.target
            );
            if !key_checked {
                what.push_str(", key checked when opening");
            }
            false
        }
        LuksAction::Decide => {
            let _ = write!(
                what,
                "FORMAT {} ({}) as LUKS2 unless a matching volume is found once it exists",
                l.device, l.target
            );
            true
        }
    };
    if let Some(lb) = &l.label {
        let _ = write!(what, ", label {lb:?}");
    }
    let _ = write!(what, ", open as /dev/mapper/{}", l.name);
    match &l.key {
        KeySource::Generated => what.push_str(", generated key"),
        KeySource::Resource(p) => {
            let _ = write!(what, ", key from {p}.keyFile");
        }
        KeySource::Cex => what.push_str(", CEX key"),
    }
    if let Some((pin, _)) = &l.clevis {
        let _ = write!(what, ", clevis {pin} binding");
    }
    let line = Line::new(1, what, Some(&l.path));
    if destructive {
        line.destructive()
    } else {
        line
    }
}

fn fs_line(f: &FilesystemPlan) -> Line {
    let mut kind = f.format.clone();
    if let Some(l) = &f.label {
        let _ = write!(kind, " label {l:?}");
    }
    if let Some(u) = &f.uuid {
        let _ = write!(kind, " UUID {u}");
    }
    if !f.options.is_empty() {
        let _ = write!(kind, " (options {})", f.options.join(" "));
    }
    let dev = format!("{} ({})", f.device, f.target);
    let (text, destructive) = match &f.action {
        FsAction::Keep { found } => (format!("keep the existing {found} on {dev}"), false),
        FsAction::Nothing => (
            format!("nothing to do on {dev} (format none, nothing found)"),
            false,
        ),
        FsAction::Wipe { found } => (
            format!("WIPE {found} on {dev} (format none): its data is lost"),
            true,
        ),
        FsAction::Create { wipe: Some(w) } => (
            format!("FORMAT {dev} as {kind}: WIPES {w} found on it"),
            true,
        ),
        FsAction::Create { wipe: None } => (
            format!("FORMAT {dev} as {kind} (nothing recognisable found on it)"),
            true,
        ),
        FsAction::Decide => (
            format!("FORMAT {dev} as {kind} unless a matching filesystem is found once it exists"),
            true,
        ),
    };
    let line = Line::new(1, text, Some(&f.path));
    if destructive {
        line.destructive()
    } else {
        line
    }
}

// ------------------------------------------------------------------------------------------
// mount

fn mount_lines(mounts: &[mount::PlannedMount], dp: &disks::Plan) -> Vec<Line> {
    let mut lines = Vec::new();
    for m in mounts {
        let mut text = format!(
            "mount {} ({}) at {}",
            m.device,
            m.format,
            m.target.display()
        );
        if !m.options.is_empty() {
            let _ = write!(text, " with options {}", m.options.join(","));
        }
        if !m.create_dirs.is_empty() {
            let _ = write!(text, ", creating {}", m.create_dirs.join(", "));
        }
        match m.mounted_now {
            Some(true) => text.push_str(" (mounted there already: left as it is)"),
            Some(false) => text.push_str(" (something else is mounted there now)"),
            None => {}
        }
        let fresh = dp
            .filesystems
            .iter()
            .any(|f| f.path == m.path && f.action.writes());
        lines.push(Line::new(1, text, Some(&m.path)));
        if fresh {
            lines.push(Line::new(
                2,
                format!(
                    "the files stage checks entries below {} against the directory as it is now; \
                     they are written into the new filesystem",
                    m.target.display()
                ),
                None,
            ));
        }
    }
    lines
}
