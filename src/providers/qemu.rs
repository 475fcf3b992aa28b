//! `qemu`: the fw_cfg entry `opt/com.coreos/config`, read from sysfs
//! (`/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/{size,raw}`).
//!
//! When `/sys/firmware/qemu_fw_cfg` is missing, `modprobe qemu_fw_cfg` is run first (and its
//! failure is an error). No `size` file means no config. Exactly `size` bytes are read from
//! `raw` in large reads (each read is a slow firmware transfer); a shorter `raw` is an error,
//! and so is a longer one ("missing EOF"). Works offline.
//!
//! Only the x86/arm fw_cfg variant exists here; s390x and ppc64le (a virtio disk) are not
//! targets of this build.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use super::{Error, Provider, MAX_CONFIG_SIZE};
use crate::fetch::Fetcher;

/// The fw_cfg key QEMU users set: `-fw_cfg name=opt/com.coreos/config,file=<path>`.
pub const KEY: &str = "opt/com.coreos/config";

pub struct Qemu {
    sys_dir: PathBuf,
    modprobe: PathBuf,
}

impl Qemu {
    pub fn new(sys_dir: PathBuf, modprobe: PathBuf) -> Self {
        Qemu { sys_dir, modprobe }
    }
}

impl Provider for Qemu {
    fn id(&self) -> &'static str {
        "qemu"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let fw_cfg = self.sys_dir.join("firmware/qemu_fw_cfg");
        if !fw_cfg.exists() {
            super::util::modprobe(&self.modprobe, "qemu_fw_cfg")?;
        }
        let entry = fw_cfg.join("by_name").join(KEY);
        let size_path = entry.join("size");
        let size_text = match std::fs::read_to_string(&size_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::info!("qemu: no fw_cfg entry {KEY}; no config");
                return Ok(None);
            }
            Err(source) => {
                return Err(Error::Io {
                    path: size_path,
                    source,
                })
            }
        };
        let size: u64 = size_text.trim().parse().map_err(|_| Error::Malformed {
            what: format!("{} is not a size", size_path.display()),
        })?;
        if size == 0 {
            return Ok(None);
        }
        if size > MAX_CONFIG_SIZE {
            return Err(Error::Malformed {
                what: format!("the fw_cfg config is larger than {MAX_CONFIG_SIZE} bytes"),
            });
        }
        let raw_path = entry.join("raw");
        let io_err = |source| Error::Io {
            path: raw_path.clone(),
            source,
        };
        let mut raw = File::open(&raw_path).map_err(io_err)?;
        let mut data = vec![0u8; size as usize];
        raw.read_exact(&mut data).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Malformed {
                    what: format!("the fw_cfg config is shorter than its size ({size} bytes)"),
                }
            } else {
                io_err(e)
            }
        })?;
        let mut extra = [0u8; 1];
        if raw.read(&mut extra).map_err(io_err)? != 0 {
            return Err(Error::Malformed {
                what: "the fw_cfg config has missing EOF: it is longer than its size".into(),
            });
        }
        Ok(Some(data))
    }
}
