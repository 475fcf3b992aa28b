//! `akamai` (Akamai Connected Cloud, formerly Linode): a metadata token
//! (`PUT /v1/token` with `Accept: text/plain` and `Metadata-Token-Expiry-Seconds: 300`), then
//! `GET /v1/user-data` with `Accept: */*` and `Metadata-Token`. The user data is base64, and
//! gzip-compressed when it starts like gzip. A 404 or an empty token is an error; an empty
//! body means no config. Offline: needs the network.

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Akamai {
    base: String,
}

impl Akamai {
    /// `base` is the metadata service's base URL.
    pub fn new(base: &str) -> Self {
        Akamai {
            base: base.trim_end_matches('/').to_string(),
        }
    }
}

impl Provider for Akamai {
    fn id(&self) -> &'static str {
        "akamai"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let res = util::put(
            format!("{}/v1/token", self.base),
            &[
                ("Accept", "text/plain"),
                ("Metadata-Token-Expiry-Seconds", "300"),
            ],
        );
        let token = util::fetch(fetcher, &res, NotFound::Error)?.unwrap_or_default();
        let token = String::from_utf8(token).map_err(|_| Error::Malformed {
            what: "the metadata token is not text".into(),
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Malformed {
                what: "the metadata service returned an empty token".into(),
            });
        }
        let res = util::request(
            format!("{}/v1/user-data", self.base),
            &[("Accept", "*/*"), ("Metadata-Token", token)],
        );
        let Some(data) = util::fetch(fetcher, &res, NotFound::Error)?.and_then(util::non_empty)
        else {
            return Ok(None);
        };
        let decoded = util::decode_base64(&data)?;
        Ok(util::non_empty(util::try_gunzip(decoded)?))
    }
}
