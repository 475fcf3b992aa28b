//! `aliyun` (Alibaba Cloud): the instance user data, `GET <base>/latest/user-data` from
//! `http://100.100.100.200` (its own address, [`super::Endpoints::aliyun`]). A 404 or an empty
//! body means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Aliyun {
    url: String,
}

impl Aliyun {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        Aliyun {
            url: format!("{}/latest/user-data", base.trim_end_matches('/')),
        }
    }
}

impl Provider for Aliyun {
    fn id(&self) -> &'static str {
        "aliyun"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(fetcher, self.url.clone(), &[], NotFound::Empty)
    }
}
