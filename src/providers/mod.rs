//! providers (see docs/architecture.md).
