//! `azurestack` (Microsoft Azure Stack Hub): the custom data on the OVF provisioning disc only
//! (udf or iso9660, with `ovf-env.xml`; the config is `CustomData.bin`, missing means no
//! config). The wait is bounded by [`super::Endpoints::drive_wait`] (Ignition: forever).
//! Works offline.

use super::configdrive::Search;
use super::{azure, util, Error, Provider};
use crate::fetch::Fetcher;

pub struct AzureStack {
    drives: Search,
}

impl AzureStack {
    pub fn new(drives: Search) -> Self {
        AzureStack { drives }
    }
}

impl Provider for AzureStack {
    fn id(&self) -> &'static str {
        "azurestack"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Ok(
            azure::read_ovf_custom_data(&self.drives, &["udf", "iso9660"])?
                .and_then(util::non_empty),
        )
    }
}
