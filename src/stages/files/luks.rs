//! LUKS volumes in the files stage: the key files the disks stage handed over (for volumes
//! without clevis) go to `/etc/luks/<name>`, and one line per volume is appended to
//! `/etc/crypttab`, so that the real root opens the volumes at boot.

use std::path::{Path, PathBuf};

use super::units::{append_lines, safe_name};
use super::{entry_path, failure, Error};
use crate::config::Config;
use crate::fetch::{self, Fetcher};
use crate::stages::disks::luks::{has_clevis, needs_network};
use crate::stages::{Failure, OpLog, Settings, State};
use crate::system::command::Command;
use crate::system::devnames::DevNames;
use crate::system::rootfs::Root;

/// Where key files go in the target (Ignition's `luksRealRootKeyFilePath`).
pub const KEY_DIR: &str = "/etc/luks";
pub const CRYPTTAB: &str = "/etc/crypttab";

/// One `/etc/crypttab` line (with its newline): `<name> UUID=<uuid> <keyfile|none>
/// luks,[_netdev,]x-initrd.attach`.
pub fn crypttab_line(name: &str, uuid: &str, key_file: Option<&str>, netdev: bool) -> String {
    format!(
        "{name} UUID={uuid} {} luks,{}x-initrd.attach\n",
        key_file.unwrap_or("none"),
        if netdev { "_netdev," } else { "" }
    )
}

/// What will be written, for the log.
#[derive(Debug, Default)]
pub struct Plan {
    volumes: Vec<super::PlanLine>,
}

impl Plan {
    pub fn log(&self) {
        for v in &self.volumes {
            match &v.path {
                Some(p) => log::info!("plan: {} ({p})", v.action),
                None => log::info!("plan: {}", v.action),
            }
        }
    }

    /// The plan, one line per action.
    pub fn lines(self) -> Vec<super::PlanLine> {
        self.volumes
    }
}

/// Checks names, devices and that the disks stage left a key for each volume that needs one.
pub fn plan(cfg: &Config, state: &State) -> Result<Plan, Failure> {
    plan_with(cfg, Some(state))
}

/// [`plan`]; without a state (`ember plan`, before the disks stage made any key) the keys are
/// not looked for.
pub fn plan_with(cfg: &Config, state: Option<&State>) -> Result<Plan, Failure> {
    let mut plan = Plan::default();
    for (i, l) in cfg.storage.luks.iter().enumerate() {
        let jp = entry_path("storage", "luks", i);
        let op = format!("checking LUKS volume {:?}", l.name);
        if !safe_name(&l.name) {
            return Err(failure(
                &op,
                Some(jp.key("name")),
                Error::InvalidLuksName(l.name.clone()),
            ));
        }
        if l.device.as_deref().is_none_or(str::is_empty) {
            return Err(failure(
                &op,
                Some(jp.key("device")),
                Error::MissingLuksDevice(l.name.clone()),
            ));
        }
        if !has_clevis(&l.clevis) {
            if state.is_some_and(|s| !s.luks_persist_key_files.contains_key(&l.name)) {
                return Err(failure(
                    &op,
                    Some(jp),
                    Error::MissingLuksKey(l.name.clone()),
                ));
            }
            plan.volumes.push(super::PlanLine::new(
                format!("write key file {KEY_DIR}/{}", l.name),
                Some(jp.clone()),
            ));
        }
        plan.volumes.push(super::PlanLine::new(
            format!("append the line of {:?} to {CRYPTTAB}", l.name),
            Some(jp),
        ));
    }
    Ok(plan)
}

/// The device to ask cryptsetup about: the kernel node behind a `/dev/disk/by-*` name when
/// it can be found (there may be no udev to make the link), else the name as configured.
fn device_node(settings: &Settings, device: &str) -> PathBuf {
    let names = DevNames {
        dev: settings.dev_dir.clone(),
    };
    names
        .resolve(Path::new(device))
        .unwrap_or_else(|_| PathBuf::from(device))
}

/// Writes the key files and the crypttab lines, then forgets the keys.
pub fn apply(
    root: &Root,
    cfg: &Config,
    _plan: &Plan,
    fetcher: &Fetcher,
    ops: &OpLog,
    settings: &Settings,
    state: &mut State,
) -> Result<(), Failure> {
    if cfg.storage.luks.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for (i, l) in cfg.storage.luks.iter().enumerate() {
        let jp = entry_path("storage", "luks", i);
        let device = l.device.as_deref().unwrap_or("");
        let desc = format!("reading the UUID of LUKS volume {:?}", l.name);
        let uuid = ops
            .run(&desc, || -> Result<String, Error> {
                let node = device_node(settings, device);
                let out = Command::new("cryptsetup")
                    .arg("luksUUID")
                    .arg(&node)
                    .run()?;
                let uuid = out.stdout_str().trim().to_string();
                if uuid.is_empty() {
                    return Err(Error::EmptyLuksUuid(l.name.clone()));
                }
                Ok(uuid)
            })
            .map_err(|e| failure(&desc, Some(jp.key("device")), e))?;
        let key_file = if has_clevis(&l.clevis) {
            None
        } else {
            let path = format!("{KEY_DIR}/{}", l.name);
            let desc = format!("writing key file of LUKS volume {:?} at \"{path}\"", l.name);
            let url = state
                .luks_persist_key_files
                .get(&l.name)
                .cloned()
                .unwrap_or_default();
            ops.run(&desc, || write_key(root, &path, &url, fetcher))
                .map_err(|e| failure(&desc, Some(jp.key("keyFile")), e))?;
            Some(path)
        };
        lines.push(
            crypttab_line(
                &l.name,
                &uuid,
                key_file.as_deref(),
                needs_network(&l.clevis),
            )
            .trim_end()
            .to_string(),
        );
    }
    let desc = format!("writing \"{CRYPTTAB}\"");
    ops.run(&desc, || append_lines(root, CRYPTTAB, &lines, 0o600))
        .map_err(|e| {
            failure(
                &desc,
                Some(crate::config::JsonPath::root().key("storage").key("luks")),
                e,
            )
        })?;
    // Ignition's crypttab entry is mode 0600 whether the file was new or not.
    root.chmod(CRYPTTAB, 0o600)
        .map_err(|e| failure(&desc, None, Error::Fs(e)))?;
    state.luks_persist_key_files.clear();
    Ok(())
}

/// Writes a key (a data URL from the state) to `path`, 0600 root:root, in a 0700 directory.
fn write_key(root: &Root, path: &str, url: &str, fetcher: &Fetcher) -> Result<(), Error> {
    match root.lstat(KEY_DIR)? {
        Some(_) => {}
        None => {
            root.mkdir_all("/etc")?;
            root.create_dir(KEY_DIR, 0o700)?;
        }
    }
    let res = fetch::Resource::new(url);
    root.write_file_atomic_with(path, 0o600, 0, 0, true, |file| {
        fetcher
            .fetch_to_file(&res, file)
            .map(|o| o.size)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Clevis, ClevisCustom, Luks, Tang};

    #[test]
    fn line_format() {
        assert_eq!(
            crypttab_line("data", "1234-abcd", Some("/etc/luks/data"), false),
            "data UUID=1234-abcd /etc/luks/data luks,x-initrd.attach\n"
        );
        assert_eq!(
            crypttab_line("root", "u", None, true),
            "root UUID=u none luks,_netdev,x-initrd.attach\n"
        );
    }

    #[test]
    fn clevis_and_network() {
        let mut l = Luks {
            name: "x".into(),
            ..Luks::default()
        };
        assert!(!has_clevis(&l.clevis) && !needs_network(&l.clevis));
        l.clevis = Clevis {
            tpm2: Some(true),
            ..Clevis::default()
        };
        assert!(has_clevis(&l.clevis) && !needs_network(&l.clevis));
        l.clevis = Clevis {
            tang: vec![Tang {
                url: "http://t".into(),
                ..Tang::default()
            }],
            ..Clevis::default()
        };
        assert!(has_clevis(&l.clevis) && needs_network(&l.clevis));
        l.clevis = Clevis {
            custom: ClevisCustom {
                pin: Some("sss".into()),
                needs_network: Some(true),
                config: Some("{}".into()),
            },
            ..Clevis::default()
        };
        assert!(has_clevis(&l.clevis) && needs_network(&l.clevis));
    }

    #[test]
    fn plan_requires_keys_for_volumes_without_clevis() {
        let mut cfg = Config::empty();
        cfg.storage.luks.push(Luks {
            name: "data".into(),
            device: Some("/dev/vdb".into()),
            ..Luks::default()
        });
        let mut state = State::default();
        let f = plan(&cfg, &state).unwrap_err();
        assert_eq!(f.path.unwrap().to_string(), "$.storage.luks.0");
        state
            .luks_persist_key_files
            .insert("data".into(), "data:,k".into());
        plan(&cfg, &state).unwrap();
        cfg.storage.luks[0].name = "a/b".into();
        assert!(plan(&cfg, &state).is_err());
    }
}
