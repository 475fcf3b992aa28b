//! `exoscale` (Exoscale): the instance user data, `GET <base>/1.0/user-data` from the link-local
//! metadata service. A 404 or an empty body means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Exoscale {
    url: String,
}

impl Exoscale {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        Exoscale {
            url: format!("{}/1.0/user-data", base.trim_end_matches('/')),
        }
    }
}

impl Provider for Exoscale {
    fn id(&self) -> &'static str {
        "exoscale"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Empty)
    }
}
