//! `metal`: no platform source. Configs come from the kernel command line or user.ign, which
//! the engine tries before any provider.

use super::{Error, Provider};
use crate::fetch;

pub struct Metal;

impl Provider for Metal {
    fn id(&self) -> &'static str {
        "metal"
    }

    fn fetch_config(&self, _fetcher: &fetch::Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}
