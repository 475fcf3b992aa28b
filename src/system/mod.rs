//! system (see docs/architecture.md).
pub mod passwd;
pub mod rootfs;
