//! system (see docs/architecture.md).
pub mod rootfs;
