//! `ibmcloud` (IBM Cloud VPC): `user-data` on the drive labelled `cidata`, waited for up to
//! [`super::Endpoints::cidata_wait`] (Ignition: 30 s). No drive in time, or no file, means no
//! config. Works offline.

use std::sync::atomic::AtomicBool;

use super::configdrive::{self, Search};
use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub struct IbmCloud {
    drives: Search,
}

impl IbmCloud {
    pub fn new(drives: Search) -> Self {
        IbmCloud { drives }
    }
}

impl Provider for IbmCloud {
    fn id(&self) -> &'static str {
        "ibmcloud"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let never = AtomicBool::new(false);
        let read = configdrive::read_from_label(&self.drives, "cidata", "user-data", &never);
        Ok(configdrive::timeout_means_none(read)?
            .flatten()
            .and_then(util::non_empty))
    }
}
