//! `aws` (Amazon EC2): the instance user data from IMDS.
//!
//! - Config: an IMDSv2 session token (`PUT /latest/api/token` with
//!   `X-aws-ec2-metadata-token-ttl-seconds: 21600`; a 404 there means IMDSv1, so no token),
//!   then `GET /2019-10-01/user-data` with `X-aws-ec2-metadata-token`. A 404 or an empty body
//!   means no config.
//! - [`Provider::configure_fetcher`]: the region (`/latest/meta-data/placement/region`, bounded
//!   like Ignition's 15 s lookup) becomes the S3 region hint; S3 requests are signed with the
//!   instance role's credentials (`/latest/meta-data/iam/security-credentials/<role>`), fetched
//!   when first needed and cached until shortly before they expire. No role, or any failure
//!   getting its credentials, means anonymous requests, as in Ignition.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::{self, AwsCredentials, Fetcher};

const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Credentials are refreshed this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

pub struct Aws {
    base: String,
    lookup_timeout: Duration,
}

impl Aws {
    /// `base` is the IMDS base URL; `lookup_timeout` bounds the region and credential lookups.
    pub fn new(base: &str, lookup_timeout: Duration) -> Self {
        Aws {
            base: base.trim_end_matches('/').to_string(),
            lookup_timeout,
        }
    }
}

/// The IMDSv2 token header, or none when IMDS answers the token request with 404 (IMDSv1).
fn token_headers(fetcher: &Fetcher, base: &str) -> Result<Vec<(&'static str, String)>, Error> {
    let res = util::put(
        format!("{base}/latest/api/token"),
        &[(TOKEN_TTL_HEADER, "21600")],
    );
    match util::fetch(fetcher, &res, NotFound::Empty)? {
        None => {
            log::info!("IMDSv2 is not available; using IMDSv1");
            Ok(Vec::new())
        }
        Some(token) => {
            let token = String::from_utf8(token).map_err(|_| Error::Malformed {
                what: "the IMDSv2 token is not text".into(),
            })?;
            Ok(vec![(TOKEN_HEADER, token.trim().to_string())])
        }
    }
}

fn get(
    fetcher: &Fetcher,
    base: &str,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<Option<Vec<u8>>, Error> {
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    util::fetch(
        fetcher,
        &util::request(format!("{base}{path}"), &h),
        NotFound::Empty,
    )
}

fn region(fetcher: &Fetcher, base: &str) -> Result<Option<String>, Error> {
    let headers = token_headers(fetcher, base)?;
    Ok(get(
        fetcher,
        base,
        "/latest/meta-data/placement/region",
        &headers,
    )?
    .and_then(|r| String::from_utf8(r).ok())
    .map(|r| r.trim().to_string())
    .filter(|r| !r.is_empty()))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// The instance role's credentials and when they expire; `None` when there is no role.
fn role_credentials(
    fetcher: &Fetcher,
    base: &str,
) -> Result<Option<(AwsCredentials, Option<SystemTime>)>, Error> {
    let headers = token_headers(fetcher, base)?;
    let dir = "/latest/meta-data/iam/security-credentials/";
    let Some(roles) = get(fetcher, base, dir, &headers)? else {
        return Ok(None);
    };
    let roles = String::from_utf8_lossy(&roles);
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let path = format!("{dir}{role}");
    let Some(body) = get(fetcher, base, &path, &headers)? else {
        return Ok(None);
    };
    let c: RoleCredentials = serde_json::from_slice(&body).map_err(|_| Error::Malformed {
        what: "the instance role's credentials are not valid JSON".into(),
    })?;
    let expires = match c.expiration.as_deref() {
        None => None,
        Some(e) => Some(parse_rfc3339_utc(e).ok_or_else(|| {
            Error::Malformed {
                what: "the instance role's credentials have an Expiration that is not a UTC time \
                   YYYY-MM-DDTHH:MM:SSZ with a year from 1 to 9999"
                    .into(),
            }
        })?),
    };
    Ok(Some((
        AwsCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.token.filter(|t| !t.is_empty()),
        },
        expires,
    )))
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (IMDS's format; fractional seconds allowed). Years outside
/// 1..=9999 are refused, which also keeps the day arithmetic below far from overflowing.
fn parse_rfc3339_utc(s: &str) -> Option<SystemTime> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

type Cached = Option<(AwsCredentials, Option<SystemTime>)>;

impl Provider for Aws {
    fn id(&self) -> &'static str {
        "aws"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let headers = token_headers(fetcher, &self.base)?;
        Ok(get(fetcher, &self.base, "/2019-10-01/user-data", &headers)?.and_then(util::non_empty))
    }

    fn configure_fetcher(&self, opts: &mut fetch::Options) {
        if opts.offline {
            return;
        }
        let lookup = match util::bounded_fetcher(opts, self.lookup_timeout) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                log::warn!("aws: {}", util::chain(&e));
                return;
            }
        };
        match region(&lookup, &self.base) {
            Ok(Some(r)) => {
                log::info!("aws: region {r}");
                opts.aws_region_hint = Some(r);
            }
            Ok(None) => log::warn!("aws: IMDS has no region; S3 defaults to us-east-1"),
            Err(e) => log::warn!(
                "aws: getting the region: {}; S3 defaults to us-east-1",
                util::chain(&e)
            ),
        }
        let base = self.base.clone();
        let cache: Arc<Mutex<Cached>> = Arc::new(Mutex::new(None));
        opts.aws_credentials = Some(Arc::new(move || {
            let now = SystemTime::now();
            if let Ok(c) = cache.lock() {
                if let Some((creds, expires)) = c.as_ref() {
                    if expires.is_none_or(|e| now + CREDENTIALS_MARGIN < e) {
                        return Some(creds.clone());
                    }
                }
            }
            match role_credentials(&lookup, &base) {
                Ok(Some(found)) => {
                    let creds = found.0.clone();
                    if let Ok(mut c) = cache.lock() {
                        *c = Some(found);
                    }
                    Some(creds)
                }
                Ok(None) => {
                    log::info!("aws: no instance role; S3 requests are anonymous");
                    None
                }
                Err(e) => {
                    log::warn!(
                        "aws: instance role credentials: {}; S3 requests are anonymous",
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
    fn rfc3339() {
        let t = parse_rfc3339_utc("2024-03-01T12:34:56Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_709_296_496
        );
        let t = parse_rfc3339_utc("1970-01-01T00:00:01.5Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1);
        assert!(parse_rfc3339_utc("2024-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("2024-03-01 12:34:56").is_none());
        assert!(parse_rfc3339_utc("").is_none());
        assert!(parse_rfc3339_utc("99999999999999999-01-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("10000-01-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("0-01-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("-1-01-01T00:00:00Z").is_none());
        let t = parse_rfc3339_utc("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            253_402_300_799
        );
    }
}
