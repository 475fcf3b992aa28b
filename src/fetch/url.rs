//! A small URL parser: enough for the schemes Ember fetches, without the `url` crate's size.
//!
//! It splits `scheme:[//[userinfo@]host[:port]]path[?query][#fragment]` and keeps the path and
//! query as written (still percent-encoded). Hosts are lowercased; IPv6 literals lose their
//! brackets. `Url::redacted` is the only form that goes into logs and errors.

use std::fmt::Write as _;

/// A parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Lowercased scheme, without the colon.
    pub scheme: String,
    /// Raw user information (before `@`), never shown in logs.
    pub userinfo: Option<String>,
    /// Lowercased host; IPv6 literals without brackets. Empty for URLs with no authority.
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// Whether the URL had an authority (`scheme://...`).
    pub has_authority: bool,
    /// Path as written (percent-encoded). For URLs without authority this is the opaque part.
    pub path: String,
    /// Query as written, without the `?`.
    pub query: Option<String>,
}

/// Why a URL did not parse. Never contains the URL itself (it may hold credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError(pub &'static str);

impl Url {
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(UrlError("control character in url"));
        }
        let colon = s.find(':').ok_or(UrlError("missing scheme"))?;
        let scheme = &s[..colon];
        let valid_scheme = scheme.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+-.".contains(&b)))
        });
        if scheme.is_empty() || !valid_scheme {
            return Err(UrlError("invalid scheme"));
        }
        let mut rest = &s[colon + 1..];
        if let Some(hash) = rest.find('#') {
            rest = &rest[..hash];
        }
        let query = rest.find('?').map(|q| {
            let query = rest[q + 1..].to_string();
            rest = &rest[..q];
            query
        });
        let mut url = Url {
            scheme: scheme.to_ascii_lowercase(),
            userinfo: None,
            host: String::new(),
            port: None,
            has_authority: false,
            path: String::new(),
            query,
        };
        if let Some(after) = rest.strip_prefix("//") {
            url.has_authority = true;
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            url.path = path.to_string();
            url.set_authority(authority)?;
        } else {
            url.path = rest.to_string();
        }
        Ok(url)
    }

    fn set_authority(&mut self, authority: &str) -> Result<(), UrlError> {
        let hostport = match authority.rfind('@') {
            Some(at) => {
                self.userinfo = Some(authority[..at].to_string());
                &authority[at + 1..]
            }
            None => authority,
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let close = v6.find(']').ok_or(UrlError("unterminated ipv6 address"))?;
            let literal = &v6[..close];
            // An RFC 6874 zone (`fe80::1%25eth0`) is kept as `fe80::1%eth0`, case intact.
            let (addr, zone) = match literal.split_once('%') {
                Some((a, z)) => {
                    let z = percent_decode(&format!("%{z}"))
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .map(|z| z.trim_start_matches('%').to_string())
                        .filter(|z| !z.is_empty() && z.bytes().all(|b| b.is_ascii_graphic()))
                        .ok_or(UrlError("invalid ipv6 zone"))?;
                    (a, Some(z))
                }
                None => (literal, None),
            };
            let addr: std::net::Ipv6Addr =
                addr.parse().map_err(|_| UrlError("invalid ipv6 address"))?;
            let after = &v6[close + 1..];
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError("invalid port"))?),
            };
            self.host = match zone {
                Some(z) => format!("{addr}%{z}"),
                None => addr.to_string(),
            };
            (None, port)
        } else {
            let (host, port) = match hostport.rfind(':') {
                Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
                None => (hostport, None),
            };
            (Some(host), port)
        };
        if let Some(host) = host {
            if host
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b)))
            {
                return Err(UrlError("invalid character in host"));
            }
            self.host = host.to_ascii_lowercase();
        }
        self.port = match port {
            None | Some("") => None,
            Some(p) => {
                if !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(UrlError("invalid port"));
                }
                Some(p.parse::<u16>().map_err(|_| UrlError("invalid port"))?)
            }
        };
        Ok(())
    }

    /// The port to connect to: the explicit one or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.scheme.as_str() {
            "https" => 443,
            "tftp" => 69,
            _ => 80,
        })
    }

    /// The host as it appears in a URL or a `Host` header (IPv6 in brackets).
    pub fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host.replace('%', "%25"))
        } else {
            self.host.clone()
        }
    }

    /// `host[:port]` with the port omitted when it is the scheme's default, as in `Host:`.
    /// An IPv6 zone is local to this machine and is left out (RFC 6874, as Go does).
    pub fn host_header(&self) -> String {
        let host = match self.host.split_once('%') {
            Some((addr, _)) => format!("[{addr}]"),
            None => self.host_for_url(),
        };
        match self.port {
            Some(p) if p != default_port(&self.scheme) => format!("{host}:{p}"),
            _ => host,
        }
    }

    /// `host:port` with the port always present, as in `CONNECT`.
    pub fn authority_with_port(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port_or_default())
    }

    /// Origin-form request target: escaped path (at least `/`) plus the query.
    pub fn request_target(&self) -> String {
        let mut t = escape_target(if self.path.is_empty() {
            "/"
        } else {
            &self.path
        });
        if let Some(q) = &self.query {
            t.push('?');
            t.push_str(&escape_target(q));
        }
        t
    }

    /// Absolute-form request target for a request through an HTTP proxy.
    pub fn absolute_target(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            self.host_header(),
            self.request_target()
        )
    }

    /// (scheme, host, port): two URLs with the same origin may share credentials.
    pub fn origin(&self) -> (String, String, u16) {
        (
            self.scheme.clone(),
            self.host.clone(),
            self.port_or_default(),
        )
    }

    /// What logs and errors show: `scheme://host[:port]/path`, never userinfo or query.
    pub fn redacted(&self) -> String {
        if self.has_authority {
            let port = match self.port {
                Some(p) => format!(":{p}"),
                None => String::new(),
            };
            format!(
                "{}://{}{}{}",
                self.scheme,
                self.host_for_url(),
                port,
                self.path
            )
        } else {
            format!("{}:{}", self.scheme, self.path)
        }
    }

    /// Resolves a `Location` header value against this URL (RFC 3986 section 5.2, simplified).
    pub fn join(&self, reference: &str) -> Result<Url, UrlError> {
        let reference = reference.trim();
        let has_scheme = reference
            .find(':')
            .map(|c| {
                let s = &reference[..c];
                !s.is_empty()
                    && !s.contains('/')
                    && !s.contains('?')
                    && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            })
            .unwrap_or(false);
        if has_scheme {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            return Url::parse(&format!("{}:{reference}", self.scheme));
        }
        let mut base = format!("{}://", self.scheme);
        if let Some(u) = &self.userinfo {
            base.push_str(u);
            base.push('@');
        }
        base.push_str(&self.host_for_url());
        if let Some(p) = self.port {
            let _ = write!(base, ":{p}");
        }
        let joined = if reference.starts_with('/') {
            format!("{base}{reference}")
        } else if reference.is_empty() {
            return Ok(self.clone());
        } else if reference.starts_with('?') {
            format!("{base}{}{reference}", self.path)
        } else {
            let dir = match self.path.rfind('/') {
                Some(i) => &self.path[..=i],
                None => "/",
            };
            format!(
                "{base}{}",
                remove_dot_segments(&format!("{dir}{reference}"))
            )
        };
        Url::parse(&joined)
    }
}

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "https" => 443,
        "tftp" => 69,
        _ => 80,
    }
}

fn remove_dot_segments(path: &str) -> String {
    let (path, rest) = match path.find(['?', '#']) {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut joined = out.join("/");
    if !joined.starts_with('/') {
        joined.insert(0, '/');
    }
    joined + rest
}

/// Percent-encodes bytes that may not appear in a request target; keeps existing escapes.
fn escape_target(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `Basic ...` credentials from a URL's raw userinfo (`user:password`, percent-encoded).
pub(crate) fn basic_auth(userinfo: &str) -> String {
    use base64::Engine as _;
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |s: &str| {
        percent_decode(s)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| s.to_string())
    };
    let creds = format!("{}:{}", decode(user), decode(pass));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// Decodes `%XX` escapes. Invalid escapes are an error, like Go's `url.PathUnescape`.
pub(crate) fn percent_decode(s: &str) -> Result<Vec<u8>, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(UrlError("invalid percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encodes every byte except RFC 3986 unreserved characters and those in `keep`.
pub(crate) fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Returns the value of the first `name=value` pair in a query string, percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<Result<String, UrlError>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            percent_decode(&v)
                .and_then(|b| String::from_utf8(b).map_err(|_| UrlError("query is not utf-8")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let u = Url::parse("HTTPS://user:pw@Example.COM:8443/a/b%20c?x=1&y=2#frag").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.userinfo.as_deref(), Some("user:pw"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.path, "/a/b%20c");
        assert_eq!(u.query.as_deref(), Some("x=1&y=2"));
        assert_eq!(u.redacted(), "https://example.com:8443/a/b%20c");
        assert_eq!(u.request_target(), "/a/b%20c?x=1&y=2");
        assert_eq!(u.host_header(), "example.com:8443");
    }

    #[test]
    fn parses_ipv6_and_defaults() {
        let u = Url::parse("http://[::1]/x").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port_or_default(), 80);
        assert_eq!(u.host_header(), "[::1]");
        assert_eq!(u.authority_with_port(), "[::1]:80");
        let u = Url::parse("http://h:80").unwrap();
        assert_eq!(u.host_header(), "h");
        assert_eq!(u.request_target(), "/");
        assert_eq!(u.absolute_target(), "http://h/");
    }

    #[test]
    fn parses_opaque_urls() {
        let u = Url::parse("arn:aws:s3:::bucket/key?versionId=3").unwrap();
        assert_eq!(u.scheme, "arn");
        assert!(!u.has_authority);
        assert_eq!(u.path, "aws:s3:::bucket/key");
        assert_eq!(u.query.as_deref(), Some("versionId=3"));
        assert_eq!(u.redacted(), "arn:aws:s3:::bucket/key");
    }

    #[test]
    fn parses_ipv6_zones() {
        let u = Url::parse("http://[fe80::a9fe:a9fe%25enP1s0]/openstack/latest/user_data").unwrap();
        assert_eq!(u.host, "fe80::a9fe:a9fe%enP1s0");
        assert_eq!(u.host_for_url(), "[fe80::a9fe:a9fe%25enP1s0]");
        assert_eq!(u.host_header(), "[fe80::a9fe:a9fe]");
        assert!(Url::parse("http://[fe80::1%25]/").is_err());
        assert!(Url::parse("http://[nothex%25eth0]/").is_err());
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(Url::parse("no-scheme").is_err());
        assert!(Url::parse("1http://x").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
        assert!(Url::parse("http://h:8x/").is_err());
        assert!(Url::parse("http://[::1/").is_err());
        assert!(Url::parse("http://a b/").is_err());
        assert!(Url::parse("http://h/\r\nX: y").is_err());
    }

    #[test]
    fn escapes_unsafe_target_bytes() {
        let u = Url::parse("http://h/a b\"c").unwrap();
        assert_eq!(u.request_target(), "/a%20b%22c");
    }

    #[test]
    fn joins_references() {
        let base = Url::parse("http://h:81/a/b/c?q").unwrap();
        let j = |r| base.join(r).unwrap().redacted();
        assert_eq!(j("/x"), "http://h:81/x");
        assert_eq!(j("d"), "http://h:81/a/b/d");
        assert_eq!(j("../d"), "http://h:81/a/d");
        assert_eq!(j("./"), "http://h:81/a/b/");
        assert_eq!(j("//other/p"), "http://other/p");
        assert_eq!(j("https://o:9/p"), "https://o:9/p");
        assert_eq!(base.join("?z").unwrap().query.as_deref(), Some("z"));
        assert_eq!(j("d?k=v"), "http://h:81/a/b/d");
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("a%2Fb%20").unwrap(), b"a/b ");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%2").is_err());
        assert_eq!(percent_encode(b"a/b c~", b"/"), "a/b%20c~");
        assert_eq!(
            query_param("a=1&versionId=x%2By", "versionId")
                .unwrap()
                .unwrap(),
            "x+y"
        );
        assert!(query_param("a=1", "versionId").is_none());
    }
}
