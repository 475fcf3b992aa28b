//! Ember's integration tests: one binary, one module per area.
mod blockdev;
mod fetch;
mod files_stage;
mod harness;
mod passwd;
mod rootfs;
