//! `powervs` (IBM Power Systems Virtual Server): `openstack/latest/user_data` on the config drive
//! labelled `config-2` (a missing file means no config). Ignition waits for the drive forever;
//! Ember stops after [`super::Endpoints::drive_wait`] with an error. Works offline.

use super::configdrive::{self, Search};
use super::{Error, Provider};
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
        configdrive::openstack_user_data(&self.drives)
    }
}
