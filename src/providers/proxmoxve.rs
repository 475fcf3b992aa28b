//! `proxmoxve` (Proxmox VE): the drive labelled `cidata`, waited for up to
//! [`super::Endpoints::cidata_wait`] (Ignition: 30 s). The config is `user-data`, else
//! `vendor-data`; a file that is empty or starts with `#cloud-config\n` (cloud-init's own
//! data, which Proxmox writes by default) is skipped. Nothing usable, or no drive in time,
//! means no config. Works offline.

use std::sync::atomic::AtomicBool;

use super::configdrive::{self, Search};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct ProxmoxVe {
    drives: Search,
}

impl ProxmoxVe {
    pub fn new(drives: Search) -> Self {
        ProxmoxVe { drives }
    }
}

/// Whether a file's content can be the config.
pub fn usable(data: &[u8]) -> bool {
    !data.is_empty() && !data.starts_with(b"#cloud-config\n")
}

impl Provider for ProxmoxVe {
    fn id(&self) -> &'static str {
        "proxmoxve"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let never = AtomicBool::new(false);
        let Some(drive) =
            configdrive::timeout_means_none(self.drives.wait_for_label("cidata", &never))?
        else {
            return Ok(None);
        };
        let mut opened = configdrive::open(&drive)?;
        for file in ["user-data", "vendor-data"] {
            match opened.read(file)? {
                Some(data) if usable(&data) => {
                    log::info!("proxmoxve: using {file}");
                    return Ok(Some(data));
                }
                Some(_) => log::info!("proxmoxve: {file} is empty or cloud-config; skipping it"),
                None => log::info!("proxmoxve: no {file}"),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_and_empty_files_are_skipped() {
        assert!(!usable(b""));
        assert!(!usable(b"#cloud-config\nusers: []\n"));
        assert!(usable(b"#cloud-config")); // no newline: not cloud-init's marker line
        assert!(usable(b"{\"ignition\":{\"version\":\"3.4.0\"}}"));
    }
}
