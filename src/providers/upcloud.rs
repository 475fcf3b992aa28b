//! `upcloud` (UpCloud): the instance user data, `GET <base>/metadata/v1/user_data` from the
//! link-local metadata service (which must be enabled for custom images). A 404 or an empty body
//! means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct UpCloud {
    url: String,
}

impl UpCloud {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        UpCloud {
            url: format!("{}/metadata/v1/user_data", base.trim_end_matches('/')),
        }
    }
}

impl Provider for UpCloud {
    fn id(&self) -> &'static str {
        "upcloud"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Empty)
    }
}
