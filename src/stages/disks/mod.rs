//! The disks stage (placeholder until its implementation lands).

use super::{Context, Failure};

/// Runs the disks stage.
pub fn run(ctx: &mut Context) -> Result<(), Failure> {
    let _ = ctx;
    Ok(())
}
