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
mod initramfs;
mod lint_cli;
mod lint_support;
mod passwd;
mod plan;
mod providers;
mod rootfs;
mod runner;
mod secrets;
mod status;
// The QEMU boot tests live in qemu-tests/ (their harness, scenarios, kernel script and test
// init); they are part of this one test binary.
#[path = "../../qemu-tests/harness.rs"]
mod qemu_harness;
#[path = "../../qemu-tests/netsupport.rs"]
mod qemu_netsupport;
#[path = "../../qemu-tests/scenarios.rs"]
mod qemu_scenarios;
#[path = "../../qemu-tests/scenarios_disk.rs"]
mod qemu_scenarios_disk;
#[path = "../../qemu-tests/scenarios_net.rs"]
mod qemu_scenarios_net;
