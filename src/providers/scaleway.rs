//! `scaleway`: `GET http://169.254.42.42/user_data/cloud-init`, which the metadata service
//! only answers for requests from a privileged source port, so each attempt binds a random
//! local port in 1–1022 (needs root or `CAP_NET_BIND_SERVICE`) and uses Ember's own small
//! HTTP client ([`super::rawhttp`]). A 404 or an empty body means no config.
//!
//! Retries follow the fetcher's rules: transport errors and 5xx are retried with backoff from
//! 200 ms doubling to 5 s (give or take the fetcher's jitter), until the fetcher's total
//! timeout or retry deadline; a port that is taken is replaced by another at once. The
//! connect and each read of an attempt are bounded by the fetcher's response-headers timeout
//! (10 s if it is zero), the whole attempt by [`rawhttp::EXCHANGE_LIMIT`] (or that timeout if
//! longer) and the overall limit. Offline: needs the network.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::rawhttp::{self, Socket};
use super::{util, Error, Provider};
use crate::fetch::{self, Fetcher};

const PATH: &str = "/user_data/cloud-init";
const MAX_PORT_TRIES: usize = 32;

pub struct Scaleway {
    base: String,
}

impl Scaleway {
    /// `base` is `http://<ipv4>[:port]`.
    pub fn new(base: &str) -> Self {
        Scaleway {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn peer(&self) -> Result<SocketAddrV4, Error> {
        let bad = || Error::Malformed {
            what: format!(
                "scaleway metadata address {:?} is not http://<ipv4>[:port]",
                self.base
            ),
        };
        let hostport = self.base.strip_prefix("http://").ok_or_else(bad)?;
        if let Ok(a) = hostport.parse::<SocketAddrV4>() {
            return Ok(a);
        }
        let ip = hostport.parse().map_err(|_| bad())?;
        Ok(SocketAddrV4::new(ip, 80))
    }
}

/// A random port in 1..=1022.
fn random_privileged_port() -> u16 {
    let mut b = [0u8; 2];
    crate::system::random_bytes(&mut b);
    1 + u16::from_le_bytes(b) % 1022
}

/// One attempt: `Ok(Some(status, body))`, or `Ok(None)` when the port was taken.
fn attempt(
    peer: SocketAddrV4,
    timeout: Duration,
    until: Instant,
    headers: &[(&str, &str)],
) -> Result<Option<rawhttp::Response>, Error> {
    let port = random_privileged_port();
    let sock = match Socket::tcp_from_port(peer, port, timeout) {
        Ok(s) => s.with_deadline(until),
        Err(Error::Socket { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
            log::debug!("scaleway: local port {port} is taken");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    log::debug!("scaleway: requesting from local port {port}");
    let host = if peer.port() == 80 {
        peer.ip().to_string()
    } else {
        peer.to_string()
    };
    rawhttp::get(sock, &host, PATH, headers, &format!("http://{host}{PATH}")).map(Some)
}

fn retryable(e: &Error) -> bool {
    match e {
        Error::Socket { source, .. } => source.kind() != std::io::ErrorKind::PermissionDenied,
        Error::Http { .. } => true,
        Error::Fetch(e) => e.is_retryable(),
        _ => false,
    }
}

impl Provider for Scaleway {
    fn id(&self) -> &'static str {
        "scaleway"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let opts = fetcher.options();
        if opts.offline {
            return Err(Error::NeedsNetwork);
        }
        let peer = self.peer()?;
        let start = Instant::now();
        let limit = [
            (!opts.total_timeout.is_zero()).then_some(opts.total_timeout),
            opts.deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        let per_attempt = if opts.response_headers_timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            opts.response_headers_timeout
        };
        let mut headers = vec![("Accept", fetch::ACCEPT), ("Accept-Encoding", "identity")];
        if let Some(ua) = &opts.user_agent {
            headers.insert(0, ("User-Agent", ua.as_str()));
        }
        let mut backoff = Duration::from_millis(200);
        let mut port_tries = 0;
        let mut n = 0;
        loop {
            n += 1;
            log::info!("fetching http://{peer}{PATH} from a privileged port: attempt #{n}");
            let mut until = Instant::now() + rawhttp::EXCHANGE_LIMIT.max(per_attempt);
            if let Some(l) = limit {
                until = until.min(start + l);
            }
            let (err, retry) = match attempt(peer, per_attempt, until, &headers) {
                Ok(None) if port_tries < MAX_PORT_TRIES => {
                    port_tries += 1;
                    continue;
                }
                Ok(None) => (
                    Error::Http {
                        target: format!("http://{peer}{PATH}"),
                        reason: "no free privileged local port".into(),
                    },
                    false,
                ),
                Ok(Some(r)) => match r.status {
                    200 | 204 => return Ok(util::non_empty(r.body)),
                    404 => return Ok(None),
                    s => (
                        Error::Http {
                            target: format!("http://{peer}{PATH}"),
                            reason: format!("http status {s}"),
                        },
                        s >= 500,
                    ),
                },
                Err(e) => {
                    let r = retryable(&e);
                    (e, r)
                }
            };
            let delay = fetch::jitter(backoff);
            if !retry || limit.is_some_and(|l| start.elapsed() + delay >= l) {
                return Err(err);
            }
            log::warn!(
                "scaleway: {}; retrying in {} ms",
                util::chain(&err),
                delay.as_millis()
            );
            std::thread::sleep(delay);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_privileged() {
        for _ in 0..1000 {
            let p = random_privileged_port();
            assert!((1..=1022).contains(&p), "{p}");
        }
    }

    #[test]
    fn base_addresses() {
        assert_eq!(
            Scaleway::new("http://169.254.42.42").peer().unwrap(),
            "169.254.42.42:80".parse().unwrap()
        );
        assert_eq!(
            Scaleway::new("http://127.0.0.1:8080/").peer().unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(Scaleway::new("https://x").peer().is_err());
        assert!(Scaleway::new("http://name.example").peer().is_err());
    }
}
