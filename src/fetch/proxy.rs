//! Proxy selection with the semantics of Go's `golang.org/x/net/http/httpproxy`, which Ignition
//! uses: `http://` URLs go through `httpProxy`, `https://` URLs through `httpsProxy` (no fallback
//! from one to the other), `noProxy` lists IPs, CIDRs, domains (with their subdomains), `.domain`
//! (subdomains only), `*.domain`, `host:port`, or `*` for everything. `localhost` and loopback
//! addresses are never proxied. Only the config decides: the environment is not read.

use super::url::Url;
use super::Error;
use std::net::IpAddr;

/// Proxy settings, as in the config's `ignition.proxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Proxy for `http://` URLs (`http://host:port`, scheme optional; `https://` proxies work too).
    pub http_proxy: Option<String>,
    /// Proxy for `https://` URLs, reached with `CONNECT`.
    pub https_proxy: Option<String>,
    /// Hosts that are reached directly; entries may themselves be comma-separated lists.
    pub no_proxy: Vec<String>,
}

/// A parsed proxy address.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    pub url: Url,
    /// `Basic ...` credentials from the proxy URL's userinfo.
    pub authorization: Option<String>,
}

impl Proxy {
    fn parse(s: &str) -> Result<Option<Proxy>, Error> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let bad = |reason: &str| Error::Proxy {
            proxy: "(from config)".into(),
            reason: reason.into(),
        };
        let mut url = match Url::parse(s) {
            Ok(u) if u.has_authority && !u.host.is_empty() => u,
            _ => Url::parse(&format!("http://{s}")).map_err(|e| bad(e.0))?,
        };
        if url.host.is_empty() {
            return Err(bad("proxy url has no host"));
        }
        if url.scheme != "http" && url.scheme != "https" {
            return Err(Error::Proxy {
                proxy: url.redacted(),
                reason: format!("unsupported proxy scheme \"{}\"", url.scheme),
            });
        }
        let authorization = url.userinfo.take().map(|ui| super::url::basic_auth(&ui));
        url.path.clear();
        url.query = None;
        Ok(Some(Proxy { url, authorization }))
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    All,
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Domain {
        suffix: String,
        port: Option<u16>,
        exact_too: bool,
    },
}

/// The parsed proxy configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: Vec<Matcher>,
}

impl Proxies {
    pub fn new(cfg: &ProxyConfig) -> Result<Proxies, Error> {
        let http = match &cfg.http_proxy {
            Some(p) => Proxy::parse(p)?,
            None => None,
        };
        let https = match &cfg.https_proxy {
            Some(p) => Proxy::parse(p)?,
            None => None,
        };
        let mut no_proxy = Vec::new();
        for entry in cfg.no_proxy.iter().flat_map(|e| e.split(',')) {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                no_proxy = vec![Matcher::All];
                break;
            }
            if let Some(m) = parse_cidr(&entry) {
                no_proxy.push(m);
                continue;
            }
            let (host, port) = match split_host_port(&entry) {
                Some((h, p)) => {
                    if h.is_empty() {
                        continue;
                    }
                    (h, p.parse::<u16>().ok())
                }
                None => (entry.as_str(), None),
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                no_proxy.push(Matcher::Ip { ip, port });
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(host);
            if host.is_empty() {
                continue;
            }
            let (suffix, exact_too) = match host.strip_prefix('.') {
                Some(_) => (host.to_string(), false),
                None => (format!(".{host}"), true),
            };
            no_proxy.push(Matcher::Domain {
                suffix,
                port,
                exact_too,
            });
        }
        Ok(Proxies {
            http,
            https,
            no_proxy,
        })
    }

    /// The proxy to use for `url`, if any.
    pub fn for_url(&self, url: &Url) -> Option<&Proxy> {
        let proxy = match url.scheme.as_str() {
            "http" => self.http.as_ref()?,
            "https" => self.https.as_ref()?,
            _ => return None,
        };
        self.use_proxy(&url.host, url.port_or_default())
            .then_some(proxy)
    }

    fn use_proxy(&self, host: &str, port: u16) -> bool {
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        !self.no_proxy.iter().any(|m| match m {
            Matcher::All => true,
            Matcher::Cidr { net, prefix } => ip.is_some_and(|ip| cidr_contains(*net, *prefix, ip)),
            Matcher::Ip { ip: want, port: p } => ip == Some(*want) && p.is_none_or(|p| p == port),
            Matcher::Domain {
                suffix,
                port: p,
                exact_too,
            } => {
                (host.ends_with(suffix.as_str()) || (*exact_too && host == &suffix[1..]))
                    && p.is_none_or(|p| p == port)
            }
        })
    }
}

/// Go's `net.SplitHostPort`, returning None where it would fail.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let port = rest[close + 1..].strip_prefix(':')?;
        return Some((&rest[..close], port));
    }
    let colon = s.rfind(':')?;
    if s[..colon].contains(':') {
        return None;
    }
    Some((&s[..colon], &s[colon + 1..]))
}

fn parse_cidr(s: &str) -> Option<Matcher> {
    let (addr, len) = s.split_once('/')?;
    let net: IpAddr = addr.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = len.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some(Matcher::Cidr { net, prefix })
}

fn cidr_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    // An IPv4-mapped IPv6 address matches IPv4 networks, as in Go.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(no_proxy: &[&str]) -> Proxies {
        Proxies::new(&ProxyConfig {
            http_proxy: Some("proxy.example:3128".into()),
            https_proxy: Some("http://user:p%40ss@sproxy.example:3129".into()),
            no_proxy: no_proxy.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn proxied(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(&Url::parse(url).unwrap())
            .map(|p| p.url.authority_with_port())
    }

    #[test]
    fn scheme_selects_proxy_without_fallback() {
        let p = proxies(&[]);
        assert_eq!(
            proxied(&p, "http://a.test/").as_deref(),
            Some("proxy.example:3128")
        );
        assert_eq!(
            proxied(&p, "https://a.test/").as_deref(),
            Some("sproxy.example:3129")
        );
        let only_http = Proxies::new(&ProxyConfig {
            http_proxy: Some("http://p:1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(proxied(&only_http, "https://a.test/"), None);
    }

    #[test]
    fn proxy_credentials_become_basic_auth() {
        let p = proxies(&[]);
        let https = p.for_url(&Url::parse("https://x/").unwrap()).unwrap();
        // base64("user:p@ss")
        assert_eq!(https.authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));
        assert_eq!(https.url.redacted(), "http://sproxy.example:3129");
    }

    #[test]
    fn loopback_and_localhost_never_proxied() {
        let p = proxies(&[]);
        assert_eq!(proxied(&p, "http://localhost:8080/"), None);
        assert_eq!(proxied(&p, "http://127.0.0.1/"), None);
        assert_eq!(proxied(&p, "http://127.9.9.9/"), None);
        assert_eq!(proxied(&p, "http://[::1]:80/"), None);
        assert!(proxied(&p, "http://10.0.0.1/").is_some());
    }

    #[test]
    fn no_proxy_domains() {
        let p = proxies(&["example.com", ".sub.test", "*.star.test,other.test:8080"]);
        assert_eq!(proxied(&p, "http://example.com/"), None);
        assert_eq!(proxied(&p, "http://a.example.com/"), None);
        assert_eq!(proxied(&p, "http://example.com./"), None);
        assert!(proxied(&p, "http://notexample.com/").is_some());
        assert!(proxied(&p, "http://sub.test/").is_some());
        assert_eq!(proxied(&p, "http://a.sub.test/"), None);
        assert!(proxied(&p, "http://star.test/").is_some());
        assert_eq!(proxied(&p, "http://x.star.test/"), None);
        assert_eq!(proxied(&p, "http://other.test:8080/"), None);
        assert!(proxied(&p, "http://other.test/").is_some());
        assert_eq!(proxied(&p, "http://EXAMPLE.com/"), None);
    }

    #[test]
    fn no_proxy_ips_and_cidrs() {
        let p = proxies(&[
            "10.0.0.0/8",
            "192.168.1.1",
            "[fd00::1]:443",
            "2001:db8::/32",
        ]);
        assert_eq!(proxied(&p, "http://10.1.2.3/"), None);
        assert!(proxied(&p, "http://11.0.0.1/").is_some());
        assert_eq!(proxied(&p, "http://192.168.1.1:8080/"), None);
        assert!(proxied(&p, "http://192.168.1.2/").is_some());
        assert_eq!(proxied(&p, "https://[fd00::1]/"), None);
        assert!(proxied(&p, "http://[fd00::1]/").is_some());
        assert_eq!(proxied(&p, "http://[2001:db8::5]/"), None);
    }

    #[test]
    fn no_proxy_star_disables_everything() {
        let p = proxies(&["foo", "*"]);
        assert_eq!(proxied(&p, "http://anything.test/"), None);
        assert_eq!(proxied(&p, "https://10.0.0.1/"), None);
    }

    #[test]
    fn bad_proxies_are_errors() {
        let cfg = ProxyConfig {
            http_proxy: Some("socks5://p:1080".into()),
            ..Default::default()
        };
        assert!(Proxies::new(&cfg).is_err());
        let cfg = ProxyConfig {
            http_proxy: Some(String::new()),
            ..Default::default()
        };
        assert!(Proxies::new(&cfg).unwrap().http.is_none());
    }
}
