//! The kargs stage: hands the config's kernel-argument changes to the distribution's helper.
//!
//! Ember does not edit boot loader configs itself (they differ per distribution). When
//! `kernelArguments` has entries, it runs the helper (`/usr/sbin/ignition-kargs-helper` by
//! default, `EMBER_KARGS_HELPER` to override) as
//! `helper --should-exist A --should-exist B … --should-not-exist C …`: every `shouldExist`
//! entry first, then every `shouldNotExist` entry, each in config order. The helper must add
//! missing arguments, remove present ones (an absent one is not an error) and reboot when it
//! changed anything. With both lists empty nothing runs.
//!
//! When applying to a directory tree ([`Mode::Apply`]) kernel arguments cannot be changed: the
//! engine refuses such configs unless `--ignore-unsupported`, and this stage then does nothing.

use std::path::PathBuf;

use super::{Context, Failure, Mode};
use crate::config::JsonPath;
use crate::system::command::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the kernel argument helper {path} does not exist")]
    HelperMissing { path: PathBuf },
    #[error("kernel arguments cannot be changed when applying to a directory tree")]
    Unsupported,
}

/// The helper's command line for a config's kernel arguments.
pub fn helper_args(should_exist: &[String], should_not_exist: &[String]) -> Vec<String> {
    let mut args = Vec::with_capacity(2 * (should_exist.len() + should_not_exist.len()));
    for a in should_exist {
        args.push("--should-exist".to_string());
        args.push(a.clone());
    }
    for a in should_not_exist {
        args.push("--should-not-exist".to_string());
        args.push(a.clone());
    }
    args
}

/// What the stage would run: `None` when there is nothing to do (no kernel arguments, or
/// skipped in `ember apply --ignore-unsupported`), else the helper and its arguments. Checks
/// what [`run`] checks before running it (mode, the helper exists); runs nothing.
pub fn plan(ctx: &Context) -> Result<Option<(PathBuf, Vec<String>)>, Failure> {
    let ka = &ctx.config.kernel_arguments;
    if ka.should_exist.is_empty() && ka.should_not_exist.is_empty() {
        return Ok(None);
    }
    let path = JsonPath::root().key("kernelArguments");
    if let Mode::Apply { ignore_unsupported } = ctx.settings.mode {
        if ignore_unsupported {
            log::warn!("ignoring {path}: kernel arguments cannot be changed on a directory tree");
            return Ok(None);
        }
        return Err(Failure::new("changing kernel arguments")
            .caused_by(Error::Unsupported)
            .at(path)
            .hint("remove kernelArguments, or pass --ignore-unsupported to skip them"));
    }
    let helper = &ctx.settings.kargs_helper;
    if !helper.exists() {
        return Err(Failure::new(operation(ctx))
            .caused_by(Error::HelperMissing {
                path: helper.clone(),
            })
            .at(path)
            .hint(format!(
                "this distribution must install an executable at {} that is called as \
                 `--should-exist ARG… --should-not-exist ARG…`, adds missing arguments, removes present \
                 ones and reboots when it changed anything (set EMBER_KARGS_HELPER to use another path)",
                helper.display()
            )));
    }
    Ok(Some((
        helper.clone(),
        helper_args(&ka.should_exist, &ka.should_not_exist),
    )))
}

fn operation(ctx: &Context) -> String {
    let ka = &ctx.config.kernel_arguments;
    format!(
        "updating kernel arguments ({} to ensure, {} to remove)",
        ka.should_exist.len(),
        ka.should_not_exist.len()
    )
}

/// Runs the kargs stage.
pub fn run(ctx: &mut Context) -> Result<(), Failure> {
    let path = JsonPath::root().key("kernelArguments");
    let op = operation(ctx);
    let (helper, args) = match plan(ctx) {
        Ok(None) => return Ok(()),
        Ok(Some(planned)) => planned,
        Err(f) => {
            if f.source.as_deref().is_some_and(|e| e.is::<Error>())
                && matches!(ctx.settings.mode, Mode::Boot)
            {
                // The helper is missing: an operation that failed, for the log and status.
                let o = ctx.ops.start(&op);
                o.fail(&f.root_cause());
            }
            return Err(f);
        }
    };
    let cmd = Command::new(helper).args(args);
    ctx.ops.run(&op, || cmd.run()).map(|_| ()).map_err(|e| {
        Failure::new(op.clone())
            .caused_by(e)
            .at(path)
            .hint("the kernel argument helper failed; its error output is above")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_in_ignitions_order() {
        let a = helper_args(&["console=ttyS0".into(), "quiet".into()], &["rhgb".into()]);
        assert_eq!(
            a,
            [
                "--should-exist",
                "console=ttyS0",
                "--should-exist",
                "quiet",
                "--should-not-exist",
                "rhgb"
            ]
        );
        assert!(helper_args(&[], &[]).is_empty());
    }
}
