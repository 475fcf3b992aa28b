//! `digitalocean` (DigitalOcean): the instance user data, `GET <base>/metadata/v1/user-data` from
//! the link-local metadata service. A 404 is an error, as in Ignition; an empty body means no
//! config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct DigitalOcean {
    url: String,
}

impl DigitalOcean {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        DigitalOcean {
            url: format!("{}/metadata/v1/user-data", base.trim_end_matches('/')),
        }
    }
}

impl Provider for DigitalOcean {
    fn id(&self) -> &'static str {
        "digitalocean"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Error)
    }
}
