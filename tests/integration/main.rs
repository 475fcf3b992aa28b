//! Ember's integration tests: one binary, one module per area.
mod harness;
mod passwd;
mod rootfs;
