//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of the `ember` binary built for this test run.
pub fn ember_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ember"))
}
