//! Ember's integration tests: one binary, one module per area.
mod blockdev;
mod disks_stage;
mod fetch;
mod harness;
mod passwd;
mod rootfs;
