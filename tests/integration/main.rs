//! Ember's integration tests: one binary, one module per area.
mod blockdev;
mod fetch;
mod harness;
mod passwd;
mod rootfs;
mod runner;
