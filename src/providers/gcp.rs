//! `gcp` (Google Compute Engine): the instance attribute `user-data`,
//! `GET /computeMetadata/v1/instance/attributes/user-data` with `Metadata-Flavor: Google`.
//! A 404 or an empty body means no config.
//!
//! [`Provider::configure_fetcher`] gives `gs://` fetches a bearer token from the instance's
//! default service account (`instance/service-accounts/default/token`, scope
//! `devstorage.read_only`), fetched when first needed and cached until shortly before it
//! expires. No service account, or any failure getting a token, means anonymous requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::{self, Fetcher};

const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token\
?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdevstorage.read_only";
/// Tokens are refreshed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

pub struct Gcp {
    base: String,
    lookup_timeout: Duration,
}

impl Gcp {
    /// `base` is the metadata server's base URL; `lookup_timeout` bounds each token request.
    pub fn new(base: &str, lookup_timeout: Duration) -> Self {
        Gcp {
            base: base.trim_end_matches('/').to_string(),
            lookup_timeout,
        }
    }
}

#[derive(serde::Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn token(fetcher: &Fetcher, base: &str) -> Result<Option<(String, Option<Instant>)>, Error> {
    let res = util::request(format!("{base}{TOKEN_PATH}"), &[FLAVOR]);
    let Some(body) = util::fetch(fetcher, &res, NotFound::Empty)? else {
        return Ok(None);
    };
    let t: Token = serde_json::from_slice(&body).map_err(|_| Error::Malformed {
        what: "the metadata server's token is not valid JSON".into(),
    })?;
    if t.access_token.is_empty() {
        return Ok(None);
    }
    Ok(Some((t.access_token, expiry(Instant::now(), t.expires_in))))
}

/// When a token given at `now` for `expires_in` seconds expires; `None` (never) when there is
/// no lifetime or it is too far away for an [`Instant`].
fn expiry(now: Instant, expires_in: Option<u64>) -> Option<Instant> {
    expires_in.and_then(|s| now.checked_add(Duration::from_secs(s)))
}

type Cached = Option<(String, Option<Instant>)>;

impl Provider for Gcp {
    fn id(&self) -> &'static str {
        "gcp"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(
            fetcher,
            format!(
                "{}/computeMetadata/v1/instance/attributes/user-data",
                self.base
            ),
            &[FLAVOR],
            NotFound::Empty,
        )
    }

    fn configure_fetcher(&self, opts: &mut fetch::Options) {
        if opts.offline {
            return;
        }
        let lookup = match util::bounded_fetcher(opts, self.lookup_timeout) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("gcp: {}", util::chain(&e));
                return;
            }
        };
        let base = self.base.clone();
        let cache: Arc<Mutex<Cached>> = Arc::new(Mutex::new(None));
        opts.gcp_token = Some(Arc::new(move || {
            if let Ok(c) = cache.lock() {
                if let Some((tok, expires)) = c.as_ref() {
                    if expires.is_none_or(|e| Instant::now() + TOKEN_MARGIN < e) {
                        return Some(tok.clone());
                    }
                }
            }
            match token(&lookup, &base) {
                Ok(Some(found)) => {
                    let tok = found.0.clone();
                    if let Ok(mut c) = cache.lock() {
                        *c = Some(found);
                    }
                    Some(tok)
                }
                Ok(None) => {
                    log::info!("gcp: no service account token; gs:// requests are anonymous");
                    None
                }
                Err(e) => {
                    log::warn!(
                        "gcp: getting a service account token: {}; gs:// requests are anonymous",
                        util::chain(&e)
                    );
                    None
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes() {
        let now = Instant::now();
        assert_eq!(
            expiry(now, Some(3599)),
            Some(now + Duration::from_secs(3599))
        );
        assert_eq!(expiry(now, None), None);
        // Too far away to represent: treated as never expiring, not a panic.
        assert_eq!(expiry(now, Some(u64::MAX)), None);
    }
}
