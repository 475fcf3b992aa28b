//! The result file, `/etc/.ignition-result.json`: when and on which boot the machine was
//! provisioned, whether a user config was given, and the previous report if this is not the
//! first run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{failure, Error};
use crate::stages::{Failure, OpLog, Settings, State};
use crate::system::command::Command;
use crate::system::rootfs::Root;

/// The report, in Ignition's layout (field order and names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultReport {
    #[serde(rename = "provisioningBootID")]
    pub provisioning_boot_id: String,
    #[serde(rename = "provisioningDate")]
    pub provisioning_date: String,
    #[serde(rename = "userConfigProvided")]
    pub user_config_provided: bool,
    #[serde(
        rename = "previousReport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_report: Option<Box<ResultReport>>,
}

/// Formats seconds since the epoch as RFC 3339 in UTC (`2024-05-01T12:00:00Z`), like Go's
/// `time.RFC3339` on a machine whose time zone is UTC (the initramfs).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// What will be written.
#[derive(Debug)]
pub struct Plan {
    path: PathBuf,
    report: ResultReport,
}

impl Plan {
    pub fn log(&self) {
        log::info!("plan: {}", self.line().action);
    }

    /// The plan's one line.
    pub fn line(&self) -> super::PlanLine {
        let mut what = format!("write the result file {}", self.path.display());
        if self.report.previous_report.is_some() {
            what.push_str(" (one exists: this system was provisioned before)");
        }
        super::PlanLine::new(what, None)
    }
}

/// Whether this is a live system (`is-live-image` exits 0); a missing program means no.
fn is_live_image() -> bool {
    Command::new("is-live-image").run().is_ok()
}

/// Reads the boot id and any previous report.
pub fn plan(root: &Root, path: &Path, settings: &Settings, state: &State) -> Result<Plan, Failure> {
    let op = "preparing the result file";
    let boot_id = std::fs::read_to_string(&settings.boot_id_path).map_err(|source| {
        failure(
            op,
            None,
            Error::BootId {
                path: settings.boot_id_path.display().to_string(),
                source,
            },
        )
    })?;
    let previous = match root.lstat(path) {
        Ok(Some(_)) => {
            log::warn!(
                "the result file {} exists: Ignition or Ember has already run on this system; \
                 running more than once per system is not supported and may behave unexpectedly",
                path.display()
            );
            if is_live_image() {
                None
            } else {
                match root.read_file(path) {
                    Ok(b) => match serde_json::from_slice::<ResultReport>(&b) {
                        Ok(r) => Some(Box::new(r)),
                        Err(e) => {
                            log::warn!("ignoring the previous result file: it does not parse: {e}");
                            None
                        }
                    },
                    Err(e) => {
                        log::warn!("ignoring the previous result file: {e}");
                        None
                    }
                }
            }
        }
        Ok(None) => None,
        Err(e) => return Err(failure(op, None, Error::Fs(e))),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Plan {
        path: path.to_path_buf(),
        report: ResultReport {
            provisioning_boot_id: boot_id.trim().to_string(),
            provisioning_date: format_rfc3339(now),
            user_config_provided: state.fetched_configs.iter().any(|c| c.kind == "user"),
            previous_report: previous,
        },
    })
}

/// Writes the result file, 0600 root:root, replacing any previous one.
pub fn apply(root: &Root, plan: Plan, ops: &OpLog) -> Result<(), Failure> {
    let desc = format!("writing the result file \"{}\"", plan.path.display());
    ops.run(&desc, || -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(&plan.report).map_err(Error::ResultEncode)?;
        if let Some(parent) = plan.path.parent() {
            root.mkdir_all(parent)?;
        }
        if let Some(st) = root.lstat(&plan.path)? {
            if st.is_dir() {
                root.remove_all(&plan.path)?;
            }
        }
        root.write_file_atomic(&plan.path, json.as_slice(), 0o600, 0, 0)?;
        Ok(())
    })
    .map_err(|e| failure(&desc, None, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn layout_is_ignitions() {
        let r = ResultReport {
            provisioning_boot_id: "b".into(),
            provisioning_date: "d".into(),
            user_config_provided: true,
            previous_report: Some(Box::new(ResultReport {
                provisioning_boot_id: "a".into(),
                provisioning_date: "c".into(),
                user_config_provided: false,
                previous_report: None,
            })),
        };
        let s = String::from_utf8(serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\n  \"provisioningBootID\": \"b\",\n  \"provisioningDate\": \"d\",\n  \"userConfigProvided\": true,\n  \"previousReport\": {\n    \"provisioningBootID\": \"a\",\n    \"provisioningDate\": \"c\",\n    \"userConfigProvided\": false\n  }\n}"
        );
    }
}
