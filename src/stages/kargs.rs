//! The kargs stage (placeholder until its implementation lands).

use super::{Context, Failure};

/// Hands the config's kernel argument changes to the distribution's helper.
pub fn run(ctx: &mut Context) -> Result<(), Failure> {
    let _ = ctx;
    Ok(())
}
