//! Numbered operation lines, in Ignition's style:
//!
//! ```text
//! op(1): [started]  writing file "/sysroot/etc/hostname"
//! op(1): [finished] writing file "/sysroot/etc/hostname"
//! op(2): [failed]   fetching "https://example.com/x": resource not found
//! ```
//!
//! Descriptions name things by path or JSON path, never by contents.

use std::fmt::Display;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A counter of operations, shared by a stage run.
#[derive(Debug, Default)]
pub struct OpLog {
    next: AtomicU32,
    /// Finished and failed operations with their durations, for the status file.
    done: std::sync::Mutex<Vec<OpRecord>>,
}

/// One finished or failed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    pub number: u32,
    pub description: String,
    pub duration: Duration,
    /// The error, for a failed operation.
    pub error: Option<String>,
}

/// An operation in progress: log its end with [`Op::finish`] or [`Op::fail`].
#[must_use = "an operation must be finished or failed"]
pub struct Op<'a> {
    log: &'a OpLog,
    number: u32,
    description: String,
    started: Instant,
}

impl OpLog {
    pub fn new() -> Self {
        OpLog::default()
    }

    /// Logs the start of an operation.
    pub fn start(&self, description: impl Display) -> Op<'_> {
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let description = description.to_string();
        log::info!("op({number:x}): [started]  {description}");
        Op {
            log: self,
            number,
            description,
            started: Instant::now(),
        }
    }

    /// Runs `f` as one operation, logging its start and end.
    pub fn run<T, E: Display>(
        &self,
        description: impl Display,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let op = self.start(description);
        match f() {
            Ok(v) => {
                op.finish();
                Ok(v)
            }
            Err(e) => {
                op.fail(&e);
                Err(e)
            }
        }
    }

    /// The operations that ended so far.
    pub fn records(&self) -> Vec<OpRecord> {
        self.done.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn record(&self, r: OpRecord) {
        if let Ok(mut v) = self.done.lock() {
            v.push(r);
        }
    }
}

impl Op<'_> {
    pub fn finish(self) {
        log::info!("op({:x}): [finished] {}", self.number, self.description);
        self.log.record(OpRecord {
            number: self.number,
            description: self.description,
            duration: self.started.elapsed(),
            error: None,
        });
    }

    pub fn fail(self, err: &dyn Display) {
        log::error!(
            "op({:x}): [failed]   {}: {err}",
            self.number,
            self.description
        );
        self.log.record(OpRecord {
            number: self.number,
            description: self.description,
            duration: self.started.elapsed(),
            error: Some(err.to_string()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_records() {
        let log = OpLog::new();
        log.start("a").finish();
        let r: Result<(), String> = log.run("b", || Err("boom".into()));
        assert!(r.is_err());
        let recs = log.records();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].number, recs[1].number), (1, 2));
        assert_eq!(recs[1].error.as_deref(), Some("boom"));
    }
}
