//! Software RAID with mdadm, as Ignition creates arrays: no reuse check, one
//! `mdadm --create` per array, then a wait for `/dev/md/<name>`.

use std::path::{Path, PathBuf};

use crate::system::command::Command;
use crate::system::kmod;

/// The kernel module of an md level (what `modprobe` needs before the array can run).
pub(crate) fn level_module(level: &str) -> &'static str {
    match level {
        "linear" => "linear",
        "raid0" | "0" | "stripe" => "raid0",
        "raid1" | "1" | "mirror" => "raid1",
        "raid4" | "4" | "raid5" | "5" | "raid6" | "6" => "raid456",
        "raid10" | "10" => "raid10",
        _ => "md_mod",
    }
}

/// Makes sure the kernel can run md arrays of `level`: `/proc/mdstat` must exist, after
/// `modprobe md_mod` if needed; the level's module is loaded when possible (the kernel may
/// also have it built in, or load it itself).  Returns why not, otherwise.
pub(crate) fn ensure_md(level: &str) -> Result<(), String> {
    let mdstat = Path::new("/proc/mdstat");
    let why = kmod::ensure_md()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    if !mdstat.exists() {
        return Err(format!(
            "the kernel has no md (software RAID) support: /proc/mdstat does not exist{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" and {why}")
            }
        ));
    }
    let module = level_module(level);
    let personality = match module {
        "raid456" => "raid5",
        m => m,
    };
    let has = std::fs::read_to_string(mdstat)
        .map(|s| {
            s.lines()
                .next()
                .unwrap_or("")
                .contains(&format!("[{personality}]"))
        })
        .unwrap_or(false);
    if !has {
        if let Err(e) = kmod::modprobe(module) {
            // Built in, or loaded on demand: mdadm reports it if the level really is missing.
            log::debug!("{e}");
        }
    }
    Ok(())
}

/// `mdadm --create <array> --force --run --homehost any --level L --raid-devices N
/// [--spare-devices S] <options> <devices>` (devices: members, then spares).
///
/// `array` is the array's path ([`array_path`]), not its bare name: mdadm takes a bare name
/// for a path relative to its working directory when something there has that name (a name
/// of `root` in `/`, where `/root` exists, fails with "device root exists but is not an md
/// array").  `/dev/md/<name>` gives the array the same name.
pub(crate) fn mdadm_create(
    array: &Path,
    level: &str,
    devices: &[PathBuf],
    spares: u32,
    options: &[String],
) -> Command {
    let active = devices.len().saturating_sub(spares as usize);
    let mut cmd = Command::new("mdadm").arg("--create").arg(array).args([
        "--force",
        "--run",
        "--homehost",
        "any",
        "--level",
        level,
        "--raid-devices",
        &active.to_string(),
    ]);
    if spares > 0 {
        cmd = cmd.args(["--spare-devices".to_string(), spares.to_string()]);
    }
    cmd.args(options).args(devices)
}

/// The path the array appears at: `/dev/md/<name>`, or the name itself when it is a path under
/// `/dev` already.
pub(crate) fn array_path(dev_dir: &Path, name: &str) -> PathBuf {
    if name.starts_with("/dev") {
        PathBuf::from(name)
    } else {
        dev_dir.join("md").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdadm_command_line() {
        let devs = vec![
            PathBuf::from("/dev/vdb1"),
            PathBuf::from("/dev/vdc1"),
            PathBuf::from("/dev/vdd1"),
        ];
        let data = array_path(Path::new("/dev"), "data");
        let cmd = mdadm_create(&data, "raid1", &devs, 1, &["--metadata=1.2".to_string()]);
        assert_eq!(
            cmd.cmdline(),
            "mdadm --create /dev/md/data --force --run --homehost any --level raid1 --raid-devices 2 \
             --spare-devices 1 --metadata=1.2 /dev/vdb1 /dev/vdc1 /dev/vdd1"
        );
        let root = array_path(Path::new("/dev"), "root");
        let cmd = mdadm_create(&root, "mirror", &devs[..2], 0, &[]);
        assert_eq!(
            cmd.cmdline(),
            "mdadm --create /dev/md/root --force --run --homehost any --level mirror --raid-devices 2 \
             /dev/vdb1 /dev/vdc1"
        );
    }

    #[test]
    fn modules_and_paths() {
        assert_eq!(level_module("mirror"), "raid1");
        assert_eq!(level_module("6"), "raid456");
        assert_eq!(
            array_path(Path::new("/dev"), "data"),
            PathBuf::from("/dev/md/data")
        );
        assert_eq!(
            array_path(Path::new("/dev"), "/dev/md/x"),
            PathBuf::from("/dev/md/x")
        );
    }
}
