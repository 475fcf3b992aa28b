//! `azure` (Microsoft Azure): the instance's user data from IMDS, else the custom data on the
//! OVF provisioning CD-ROM.
//!
//! - IMDS: `GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text` with
//!   `Metadata: true`; 404, 410 and 429 are retried like 5xx (so a missing user data waits for
//!   the fetcher's deadline, as in Ignition); the body is base64.
//! - Empty user data: the OVF CD-ROM, a udf filesystem with `ovf-env.xml` at its root; the
//!   config is its `CustomData.bin` (missing means no config). Ignition looks for it every
//!   second forever; Ember stops after [`super::Endpoints::drive_wait`] with an error. A drive
//!   that is a CD-ROM must report a disc (`CDROM_DRIVE_STATUS` = `CDS_DISC_OK`); devices that
//!   are not CD-ROMs (the ioctl is not theirs) are accepted, so an image on a loop device works.
//!
//! Offline: needs the network.

use std::sync::atomic::AtomicBool;

use super::configdrive::{self, Drive, Search};
use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;
use crate::system::blockdev;

pub struct Azure {
    url: String,
    drives: Search,
}

impl Azure {
    /// `base` is the IMDS base URL; `drives` bounds the wait for the OVF CD-ROM.
    pub fn new(base: &str, drives: Search) -> Self {
        Azure {
            url: format!(
                "{}/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
                base.trim_end_matches('/')
            ),
            drives,
        }
    }
}

/// Looks for the OVF provisioning disc (a filesystem of one of `fs_types` with `ovf-env.xml`)
/// until `drives.wait` runs out, and returns its `CustomData.bin` (`None` when missing).
pub fn read_ovf_custom_data(drives: &Search, fs_types: &[&str]) -> Result<Option<Vec<u8>>, Error> {
    let never = AtomicBool::new(false);
    drives.poll_until("an OVF provisioning disc (ovf-env.xml)", &never, || {
        let candidates: Vec<Drive> = drives.scan(|s| fs_types.contains(&s.fs_type.as_str()));
        for d in candidates {
            if !blockdev::cdrom_disc_ready(&d.device) {
                continue;
            }
            let mut opened = match configdrive::open(&d) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("{}", util::chain(&e));
                    continue;
                }
            };
            if !opened.exists("ovf-env.xml") {
                log::debug!("{} has no ovf-env.xml", d.device.display());
                continue;
            }
            log::info!("reading CustomData.bin from {}", d.device.display());
            return Some(opened.read("CustomData.bin"));
        }
        None
    })?
}

impl Provider for Azure {
    fn id(&self) -> &'static str {
        "azure"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let mut res = util::request(self.url.clone(), &[("Metadata", "true")]);
        res.retry_statuses = vec![404, 410, 429];
        let data = util::fetch(fetcher, &res, NotFound::Empty)?.unwrap_or_default();
        let decoded = util::decode_base64(&data)?;
        if !decoded.is_empty() {
            return Ok(Some(decoded));
        }
        log::info!("azure: no user data in IMDS; looking for the OVF provisioning disc");
        Ok(read_ovf_custom_data(&self.drives, &["udf"])?.and_then(util::non_empty))
    }
}
