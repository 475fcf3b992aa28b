//! `vultr` (Vultr): the instance user data, `GET <base>/user-data/user-data` from the link-local
//! metadata service. A 404 or an empty body means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Vultr {
    url: String,
}

impl Vultr {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        Vultr {
            url: format!("{}/user-data/user-data", base.trim_end_matches('/')),
        }
    }
}

impl Provider for Vultr {
    fn id(&self) -> &'static str {
        "vultr"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Empty)
    }
}
