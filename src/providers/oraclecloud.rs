//! `oraclecloud` (Oracle Cloud Infrastructure): `GET /opc/v2/instance/metadata/user_data` with
//! `Authorization: Bearer Oracle`, 429 retried like 5xx; the body is base64. A 404 or empty
//! user data means no config.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct OracleCloud {
    url: String,
}

impl OracleCloud {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        OracleCloud {
            url: format!(
                "{}/opc/v2/instance/metadata/user_data",
                base.trim_end_matches('/')
            ),
        }
    }
}

impl Provider for OracleCloud {
    fn id(&self) -> &'static str {
        "oraclecloud"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let mut res = util::request(self.url.clone(), &[("Authorization", "Bearer Oracle")]);
        res.retry_statuses = vec![429];
        match util::fetch(fetcher, &res, NotFound::Empty)? {
            Some(data) => Ok(util::non_empty(util::decode_base64(&data)?)),
            None => Ok(None),
        }
    }
}
