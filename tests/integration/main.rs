//! Ember's integration tests: one binary, one module per area.
mod blockdev;
mod config_rules;
mod config_schema;
mod config_versions;
mod disks_stage;
mod failure_report;
mod fetch;
mod files_stage;
mod harness;
mod lint_cli;
mod lint_support;
mod passwd;
mod plan;
mod providers;
mod rootfs;
mod runner;
mod status;
