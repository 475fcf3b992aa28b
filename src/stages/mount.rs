//! The mount and umount stages (placeholder until their implementation lands).

use super::{Context, Failure};

/// Mounts the config's filesystems under the root.
pub fn run_mount(ctx: &mut Context) -> Result<(), Failure> {
    let _ = ctx;
    Ok(())
}

/// Unmounts what the mount stage mounted, in reverse order.
pub fn run_umount(ctx: &mut Context) -> Result<(), Failure> {
    let _ = ctx;
    Ok(())
}
