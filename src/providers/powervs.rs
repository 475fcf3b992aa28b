//! `powervs` (IBM Power Systems Virtual Server): `openstack/latest/user_data` on the config drive
//! labelled `config-2` (a missing file means no config). Ignition waits for the drive forever;
//! Ember stops after [`super::Endpoints::drive_wait`] with an error. Works offline.

use std::sync::atomic::AtomicBool;

use super::configdrive::{self, Search};
use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub struct PowerVs {
    drives: Search,
}

impl PowerVs {
    pub fn new(drives: Search) -> Self {
        PowerVs { drives }
    }
}

impl Provider for PowerVs {
    fn id(&self) -> &'static str {
        "powervs"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let never = AtomicBool::new(false);
        Ok(configdrive::read_from_label(
            &self.drives,
            "config-2",
            "openstack/latest/user_data",
            &never,
        )?
        .and_then(util::non_empty))
    }
}
