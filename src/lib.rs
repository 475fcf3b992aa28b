//! Ember: an early-boot provisioning engine that reads CoreOS Ignition configs.
//!
//! See `docs/architecture.md` for how the modules fit together.
pub mod boot;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod logging;
pub mod providers;
pub mod stages;
pub mod system;
