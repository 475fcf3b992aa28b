//! Filesystems: Ignition's reuse rules and its exact mkfs command lines.
//!
//! With `wipeFilesystem` false, an existing filesystem is kept when its type is the format
//! (`none` stands for "no filesystem"), and its label and UUID equal the configured ones where
//! those are given (UUIDs compared lower-case; vfat's `ABCD-1234` without the dash).  Any other
//! filesystem is an error.  Otherwise every signature is wiped (`wipefs -a`) and, unless the
//! format is `none`, mkfs runs with the user's options first, then Ignition's flags, then the
//! device:
//!
//! | format | command |
//! |---|---|
//! | btrfs | `mkfs.btrfs <options> --force [-U uuid] [-L label] <dev>` |
//! | ext4 | `mkfs.ext4 <options> -F [-U uuid] [-L label] <dev>` |
//! | xfs | `mkfs.xfs <options> -f [-m uuid=<uuid>] [-L label] <dev>` |
//! | swap | `mkswap <options> -f [-U uuid] [-L label] <dev>` |
//! | vfat | `mkfs.fat <options> [-i <volume id>] [-n label] <dev>` |

use std::path::Path;

use super::plan::{Found, FsAction};
use crate::system::command::Command;

/// Why a filesystem cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "filesystem is not of the correct type, label, or UUID (found {found}, wanted {wanted}) and \
     a filesystem wipe was not requested"
)]
pub struct BadFilesystem {
    pub found: Found,
    pub wanted: String,
}

/// The configured filesystem, as the decision needs it.
pub(crate) struct FsSpec<'a> {
    pub format: &'a str,
    pub label: Option<&'a str>,
    pub uuid: Option<&'a str>,
    pub wipe: bool,
}

/// Ignition's UUID comparison form.
pub(crate) fn canonical_uuid(format: &str, uuid: &str) -> String {
    let u = uuid.to_ascii_lowercase();
    if format == "vfat" {
        u.replace('-', "")
    } else {
        u
    }
}

/// Decides what to do given what a probe found on the device.
pub(crate) fn decide(spec: &FsSpec, found: Option<&Found>) -> Result<FsAction, BadFilesystem> {
    let want_type = if spec.format == "none" {
        ""
    } else {
        spec.format
    };
    if !spec.wipe {
        let (ty, label, uuid) = match found {
            Some(f) => (
                f.fs_type.as_str(),
                f.label.as_deref().unwrap_or(""),
                f.uuid.as_deref().unwrap_or(""),
            ),
            None => ("", "", ""),
        };
        let label_ok = spec.label.is_none_or(|l| l == label);
        let uuid_ok = spec
            .uuid
            .is_none_or(|u| canonical_uuid(ty, uuid) == canonical_uuid(spec.format, u));
        if ty == want_type && label_ok && uuid_ok {
            return Ok(match found {
                Some(f) => FsAction::Keep { found: f.clone() },
                None => FsAction::Nothing,
            });
        }
        if let Some(f) = found {
            let mut wanted = spec.format.to_string();
            if let Some(l) = spec.label {
                wanted.push_str(&format!(" label {l:?}"));
            }
            if let Some(u) = spec.uuid {
                wanted.push_str(&format!(" UUID {u}"));
            }
            return Err(BadFilesystem {
                found: f.clone(),
                wanted,
            });
        }
    }
    Ok(match (spec.format, found) {
        ("none", Some(f)) => FsAction::Wipe { found: f.clone() },
        ("none", None) => FsAction::Nothing,
        (_, f) => FsAction::Create { wipe: f.cloned() },
    })
}

/// The mkfs program for a format.
pub(crate) fn mkfs_program(format: &str) -> Option<&'static str> {
    Some(match format {
        "btrfs" => "mkfs.btrfs",
        "ext4" => "mkfs.ext4",
        "xfs" => "mkfs.xfs",
        "swap" => "mkswap",
        "vfat" => "mkfs.fat",
        _ => return None,
    })
}

/// The mkfs command line for a filesystem on `device`, as Ignition builds it.
pub(crate) fn mkfs_command(
    format: &str,
    label: Option<&str>,
    uuid: Option<&str>,
    options: &[String],
    device: &Path,
) -> Option<Command> {
    let program = mkfs_program(format)?;
    let mut args: Vec<String> = options.to_vec();
    let uuid = uuid.map(|u| canonical_uuid(format, u));
    match format {
        "btrfs" => {
            args.push("--force".into());
            if let Some(u) = uuid {
                args.extend(["-U".into(), u]);
            }
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
        }
        "ext4" | "swap" => {
            args.push(if format == "ext4" { "-F" } else { "-f" }.into());
            if let Some(u) = uuid {
                args.extend(["-U".into(), u]);
            }
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
        }
        "xfs" => {
            args.push("-f".into());
            if let Some(u) = uuid {
                args.extend(["-m".into(), format!("uuid={u}")]);
            }
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
        }
        "vfat" => {
            if let Some(u) = uuid {
                args.extend(["-i".into(), u]);
            }
            if let Some(l) = label {
                args.extend(["-n".into(), l.into()]);
            }
        }
        _ => return None,
    }
    Some(Command::new(program).args(args).arg(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ty: &str, label: Option<&str>, uuid: Option<&str>) -> Found {
        Found {
            fs_type: ty.into(),
            label: label.map(Into::into),
            uuid: uuid.map(Into::into),
        }
    }

    fn spec<'a>(format: &'a str, label: Option<&'a str>, uuid: Option<&'a str>) -> FsSpec<'a> {
        FsSpec {
            format,
            label,
            uuid,
            wipe: false,
        }
    }

    #[test]
    fn reuse_rules() {
        let ext4 = found(
            "ext4",
            Some("root"),
            Some("0a1b2c3d-0000-4000-8000-000000000001"),
        );
        // Same type, label and UUID unspecified: keep.
        assert!(matches!(
            decide(&spec("ext4", None, None), Some(&ext4)),
            Ok(FsAction::Keep { .. })
        ));
        // UUID compared case-insensitively.
        assert!(matches!(
            decide(
                &spec(
                    "ext4",
                    Some("root"),
                    Some("0A1B2C3D-0000-4000-8000-000000000001")
                ),
                Some(&ext4)
            ),
            Ok(FsAction::Keep { .. })
        ));
        // Wrong label, wrong type: errors that say what was found.
        let e = decide(&spec("ext4", Some("var"), None), Some(&ext4)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "filesystem is not of the correct type, label, or UUID (found ext4 label \"root\" \
             UUID 0a1b2c3d-0000-4000-8000-000000000001, wanted ext4 label \"var\") and a \
             filesystem wipe was not requested"
        );
        assert!(decide(&spec("xfs", None, None), Some(&ext4)).is_err());
        // Nothing there: create.
        assert_eq!(
            decide(&spec("xfs", None, None), None),
            Ok(FsAction::Create { wipe: None })
        );
        // Wipe requested: whatever is there goes.
        let mut s = spec("xfs", None, None);
        s.wipe = true;
        assert_eq!(
            decide(&s, Some(&ext4)),
            Ok(FsAction::Create {
                wipe: Some(ext4.clone())
            })
        );
    }

    #[test]
    fn format_none() {
        let ext4 = found("ext4", None, None);
        assert_eq!(
            decide(&spec("none", None, None), None),
            Ok(FsAction::Nothing)
        );
        assert!(decide(&spec("none", None, None), Some(&ext4)).is_err());
        let mut s = spec("none", None, None);
        s.wipe = true;
        assert_eq!(
            decide(&s, Some(&ext4)),
            Ok(FsAction::Wipe {
                found: ext4.clone()
            })
        );
    }

    #[test]
    fn vfat_volume_ids() {
        let fat = found("vfat", Some("EFI"), Some("ABCD-1234"));
        assert!(matches!(
            decide(&spec("vfat", Some("EFI"), Some("abcd1234")), Some(&fat)),
            Ok(FsAction::Keep { .. })
        ));
        assert!(matches!(
            decide(&spec("vfat", None, Some("ABCD-1234")), Some(&fat)),
            Ok(FsAction::Keep { .. })
        ));
    }

    #[test]
    fn mkfs_command_lines() {
        let dev = Path::new("/dev/vda4");
        let opts = vec!["-E".to_string(), "lazy_itable_init=0".to_string()];
        let line = |f, l, u, o: &[String]| mkfs_command(f, l, u, o, dev).unwrap().cmdline();
        assert_eq!(
            line("ext4", Some("root"), Some("0A1B2C3D-0000-4000-8000-000000000001"), &opts),
            "mkfs.ext4 -E lazy_itable_init=0 -F -U 0a1b2c3d-0000-4000-8000-000000000001 -L root /dev/vda4"
        );
        assert_eq!(
            line("btrfs", Some("data"), None, &[]),
            "mkfs.btrfs --force -L data /dev/vda4"
        );
        assert_eq!(
            line(
                "xfs",
                None,
                Some("0a1b2c3d-0000-4000-8000-000000000001"),
                &[]
            ),
            "mkfs.xfs -f -m uuid=0a1b2c3d-0000-4000-8000-000000000001 /dev/vda4"
        );
        assert_eq!(
            line("swap", Some("sw"), None, &[]),
            "mkswap -f -L sw /dev/vda4"
        );
        assert_eq!(
            line("vfat", Some("EFI"), Some("ABCD-1234"), &[]),
            "mkfs.fat -i abcd1234 -n EFI /dev/vda4"
        );
        assert!(mkfs_command("none", None, None, &[], dev).is_none());
    }
}
