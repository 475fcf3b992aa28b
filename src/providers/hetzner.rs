//! `hetzner` (Hetzner Cloud): the instance user data, `GET <base>/hetzner/v1/userdata` from the
//! link-local metadata service. A 404 or an empty body means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Hetzner {
    url: String,
}

impl Hetzner {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        Hetzner {
            url: format!("{}/hetzner/v1/userdata", base.trim_end_matches('/')),
        }
    }
}

impl Provider for Hetzner {
    fn id(&self) -> &'static str {
        "hetzner"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Empty)
    }
}
