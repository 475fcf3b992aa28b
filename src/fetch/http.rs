//! A small blocking HTTP/1.1 client over std sockets and rustls.
//!
//! One connection per request (`Connection: close`), so there is no pool to go stale between
//! boot stages. What it does that the crates we measured did not do all at once:
//! - per-phase deadlines (connect, TLS handshake, response headers, body stalls, a hard total),
//!   enforced on every socket read and write, also inside the TLS layer;
//! - `http://` through a proxy in absolute form (`GET http://host/path HTTP/1.1`), `https://`
//!   through `CONNECT`, as Go (and so Ignition) does;
//! - redirects with a limit and a header policy we choose (see `Client::request`);
//! - a streaming body (`Content-Length`, chunked or read-to-close) with bounded memory.

use super::proxy::{Proxies, Proxy};
use super::url::Url;
use super::Error;
use rustls::pki_types::ServerName;
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Go's dialer timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's TLS handshake timeout.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed before giving up (Go's default policy; Ignition has none).
pub(crate) const MAX_REDIRECTS: usize = 10;
const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 4096;
const BODY_BUFFER: usize = 16 * 1024;

/// Time limits for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Nothing may run past this (Ignition's `httpTotal`).
    pub hard: Option<Instant>,
    /// Connecting and waiting for headers stop here (the hard limit or Ember's deadline).
    pub retry: Option<Instant>,
    /// Wait for response headers after the request is sent (`httpResponseHeaders`).
    pub headers: Option<Duration>,
    /// Longest silence allowed while reading a body.
    pub idle: Option<Duration>,
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fired {
    Idle,
    Until,
}

/// The limits currently applied to a connection's socket, shared by all its layers.
#[derive(Default)]
struct Timer {
    idle: Cell<Option<Duration>>,
    until: Cell<Option<Instant>>,
    /// Which limit the socket timeout of the current operation comes from.
    binding: Cell<Option<Fired>>,
    fired: Cell<Option<Fired>>,
}

impl Timer {
    fn set(&self, idle: Option<Duration>, until: Option<Instant>) {
        self.idle.set(idle);
        self.until.set(until);
        self.fired.set(None);
    }

    /// The socket timeout for the next operation, or TimedOut if the deadline has passed.
    fn next_timeout(&self) -> io::Result<Option<Duration>> {
        let mut timeout = self.idle.get();
        let mut binding = timeout.map(|_| Fired::Idle);
        if let Some(until) = self.until.get() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fired.set(Some(Fired::Until));
                return Err(io::ErrorKind::TimedOut.into());
            }
            if timeout.is_none_or(|t| left <= t) {
                timeout = Some(left);
                binding = Some(Fired::Until);
            }
        }
        self.binding.set(binding);
        Ok(timeout)
    }

    fn timed_out(&self) -> io::Error {
        self.fired
            .set(Some(self.binding.get().unwrap_or(Fired::Idle)));
        io::ErrorKind::TimedOut.into()
    }
}

/// The TCP socket, applying the timer's limits to every read and write.
struct TimedSocket {
    sock: TcpStream,
    timer: Rc<Timer>,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for TimedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = self.timer.next_timeout()?;
        if self.read_timeout != Some(t) {
            self.sock.set_read_timeout(t)?;
            self.read_timeout = Some(t);
        }
        match self.sock.read(buf) {
            Err(e) if is_timeout(&e) => Err(self.timer.timed_out()),
            r => r,
        }
    }
}

impl Write for TimedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = self.timer.next_timeout()?;
        if self.write_timeout != Some(t) {
            self.sock.set_write_timeout(t)?;
            self.write_timeout = Some(t);
        }
        match self.sock.write(buf) {
            Err(e) if is_timeout(&e) => Err(self.timer.timed_out()),
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A response whose body has not been read yet.
pub(crate) struct Response {
    pub status: u16,
    headers: Vec<(String, Vec<u8>)>,
    pub body: Body,
}

impl Response {
    /// The first header with this name (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }
}

/// A request to send.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub url: &'a Url,
    /// Sent on every hop.
    pub base_headers: &'a [(String, String)],
    /// Configured and credential headers: name, value (None removes a base header). Kept only
    /// while a redirect stays on the original origin.
    pub extra_headers: &'a [(String, Option<String>)],
    pub body: &'a [u8],
    pub follow_redirects: bool,
}

pub(crate) struct Client<'a> {
    pub tls: &'a Arc<rustls::ClientConfig>,
    pub proxies: &'a Proxies,
    pub hosts: &'a [(String, IpAddr)],
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Base headers with the extra ones applied: same name (any case) replaces, None removes.
pub(crate) fn merge_headers(
    base: &[(String, String)],
    extra: &[(String, Option<String>)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = base.to_vec();
    for (name, value) in extra {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            out.push((name.clone(), v.clone()));
        }
    }
    out
}

impl Client<'_> {
    /// Sends a request and follows redirects (at most `MAX_REDIRECTS`).
    ///
    /// Redirect policy: Ignition drops every header on every redirect. Ember keeps its own
    /// default headers (User-Agent, Accept, Accept-Encoding) on every hop, keeps the configured
    /// headers while the redirect stays on the original origin (scheme, host, port), and drops
    /// them, including any `Authorization`, as soon as it leaves it. A server that worked with
    /// Ignition cannot tell the difference on another origin; on the same origin it only sees
    /// headers it was already sent, which is what Go's default client and curl do.
    pub fn request(&self, req: &Request, limits: &Limits) -> Result<(Url, Response), Error> {
        let origin = req.url.origin();
        let mut url = req.url.clone();
        let mut method = req.method;
        let mut body = req.body;
        for hop in 0..=MAX_REDIRECTS {
            let extra: &[(String, Option<String>)] = if url.origin() == origin {
                req.extra_headers
            } else {
                &[]
            };
            let headers = merge_headers(req.base_headers, extra);
            let resp = self.send(method, &url, &headers, body, limits)?;
            if !req.follow_redirects || !is_redirect(resp.status) {
                return Ok((url, resp));
            }
            let Some(location) = resp.header("location") else {
                return Ok((url, resp));
            };
            if hop == MAX_REDIRECTS {
                return Err(Error::TooManyRedirects {
                    url: req.url.redacted(),
                });
            }
            let next = url.join(location).map_err(|e| Error::BadRedirect {
                url: url.redacted(),
                reason: e.0.into(),
            })?;
            if next.scheme != "http" && next.scheme != "https" {
                return Err(Error::BadRedirect {
                    url: url.redacted(),
                    reason: format!("redirect to unsupported scheme \"{}\"", next.scheme),
                });
            }
            if matches!(resp.status, 301..=303) && method != "GET" && method != "HEAD" {
                method = "GET";
                body = &[];
            }
            log::info!(
                "{} redirected ({}) to {}",
                url.redacted(),
                resp.status,
                next.redacted()
            );
            url = next;
        }
        Err(Error::TooManyRedirects {
            url: req.url.redacted(),
        })
    }

    fn connect(&self, host: &str, port: u16, until: Option<Instant>) -> Result<TcpStream, Error> {
        let addrs = resolve(self.hosts, host, port)?;
        let mut last = io::Error::new(io::ErrorKind::TimedOut, "connect deadline passed");
        for addr in addrs {
            let mut timeout = CONNECT_TIMEOUT;
            if let Some(until) = until {
                timeout = timeout.min(until.saturating_duration_since(Instant::now()));
            }
            if timeout.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(sock) => {
                    // Latency matters more than packet count for our small requests.
                    let _ = sock.set_nodelay(true);
                    return Ok(sock);
                }
                Err(e) => last = e,
            }
        }
        Err(Error::Connect {
            addr: format!("{}:{port}", bracket(host)),
            source: last,
        })
    }

    fn tls_wrap(
        &self,
        io: Box<dyn Stream>,
        host: &str,
        timer: &Timer,
        until: Option<Instant>,
    ) -> Result<Box<dyn Stream>, Error> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| Error::Tls {
            host: host.into(),
            reason: "invalid server name".into(),
        })?;
        let conn =
            rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| Error::Tls {
                host: host.into(),
                reason: e.to_string(),
            })?;
        let mut stream = rustls::StreamOwned::new(conn, io);
        timer.set(
            None,
            earliest(until, Some(Instant::now() + TLS_HANDSHAKE_TIMEOUT)),
        );
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                if timer.fired.get().is_some() {
                    return Err(Error::Tls {
                        host: host.into(),
                        reason: "handshake timed out".into(),
                    });
                }
                return Err(super::tls::classify(host, &e));
            }
        }
        Ok(Box::new(stream))
    }

    /// Opens a tunnel through an HTTP proxy with CONNECT.
    fn tunnel(
        &self,
        mut io: Box<dyn Stream>,
        url: &Url,
        proxy: &Proxy,
        timer: &Timer,
        limits: &Limits,
    ) -> Result<Box<dyn Stream>, Error> {
        let authority = url.authority_with_port();
        let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = &proxy.authorization {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        let proxy_err = |reason: String| Error::Proxy {
            proxy: proxy.url.redacted(),
            reason,
        };
        timer.set(None, header_deadline(limits));
        io.write_all(head.as_bytes())
            .and_then(|_| io.flush())
            .map_err(|e| proxy_err(format!("sending CONNECT: {e}")))?;
        let mut buf = Vec::new();
        let (status, _, used) = read_head(&mut *io, &mut buf, timer)
            .map_err(|e| proxy_err(format!("reading CONNECT response: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(proxy_err(format!(
                "CONNECT to {authority} failed with http status {status}"
            )));
        }
        if used != buf.len() {
            return Err(proxy_err("unexpected data after CONNECT response".into()));
        }
        Ok(io)
    }

    fn send(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
        limits: &Limits,
    ) -> Result<Response, Error> {
        let proxy = self.proxies.for_url(url);
        let (host, port) = match proxy {
            Some(p) => (p.url.host.as_str(), p.url.port_or_default()),
            None => (url.host.as_str(), url.port_or_default()),
        };
        let sock = self.connect(host, port, limits.retry)?;
        let timer = Rc::new(Timer::default());
        let mut io: Box<dyn Stream> = Box::new(TimedSocket {
            sock,
            timer: timer.clone(),
            read_timeout: None,
            write_timeout: None,
        });
        let mut absolute_form = None;
        if let Some(p) = proxy {
            if p.url.scheme == "https" {
                io = self
                    .tls_wrap(io, &p.url.host, &timer, limits.retry)
                    .map_err(|e| Error::Proxy {
                        proxy: p.url.redacted(),
                        reason: format!("{e}"),
                    })?;
            }
            if url.scheme == "https" {
                io = self.tunnel(io, url, p, &timer, limits)?;
            } else {
                absolute_form = Some(p);
            }
        }
        if url.scheme == "https" {
            io = self.tls_wrap(io, &url.host, &timer, limits.retry)?;
        }

        let target = match absolute_form {
            Some(_) => url.absolute_target(),
            None => url.request_target(),
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\n",
            url.host_header()
        );
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        if let Some(auth) = absolute_form.and_then(|p| p.authorization.as_ref()) {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        if !body.is_empty() || method == "PUT" || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");

        let write_until = earliest(limits.retry, Some(Instant::now() + CONNECT_TIMEOUT));
        timer.set(None, write_until);
        let sent = io
            .write_all(head.as_bytes())
            .and_then(|_| io.write_all(body))
            .and_then(|_| io.flush());
        if let Err(source) = sent {
            return Err(Error::Send {
                url: url.redacted(),
                source,
            });
        }

        timer.set(None, header_deadline(limits));
        let display = url.redacted();
        let body_limits = (limits.idle, limits.hard);
        receive(
            io,
            timer,
            method,
            display,
            body_limits,
            url.scheme == "https",
        )
    }
}

/// Reads a response head (skipping informational responses) and returns the response with its
/// body still to read, which is then bounded by `body_limits` (idle time, deadline).
fn receive(
    mut io: Box<dyn Stream>,
    timer: Rc<Timer>,
    method: &str,
    display: String,
    body_limits: (Option<Duration>, Option<Instant>),
    tls: bool,
) -> Result<Response, Error> {
    let mut buf = Vec::with_capacity(BODY_BUFFER);
    let (status, headers, used) = loop {
        let head = read_head(&mut *io, &mut buf, &timer).map_err(|e| match e {
            HeadError::TimedOut => Error::HeadersTimeout {
                url: display.clone(),
            },
            HeadError::Io(source) => Error::Read {
                url: display.clone(),
                source,
            },
            HeadError::Malformed(reason) => Error::Protocol {
                url: display.clone(),
                reason,
            },
        })?;
        // Skip informational responses (100 Continue, 103 Early Hints).
        if (100..200).contains(&head.0) && head.0 != 101 {
            buf.drain(..head.2);
            continue;
        }
        break head;
    };
    buf.drain(..used);
    let framing = framing(method, status, &headers).map_err(|reason| Error::Protocol {
        url: display.clone(),
        reason,
    })?;
    timer.set(body_limits.0, body_limits.1);
    let end = buf.len();
    buf.resize(BODY_BUFFER.max(end), 0);
    Ok(Response {
        status,
        headers,
        body: Body {
            io,
            timer,
            buf,
            pos: 0,
            end,
            framing,
            url: display,
            idle: body_limits.0,
            tls,
        },
    })
}

/// One GET over a stream the caller has already connected (the providers' privileged source
/// port and vsock): sends `head`, a complete GET request head, then reads the response like
/// any other (informational responses skipped, RFC 9112 framing, chunked decoding) and its
/// whole body, at most `limit` bytes. The stream's own timeouts bound every read and write;
/// `name` names the request in errors. Returns the status and the body.
pub(crate) fn get_over(
    io: impl Read + Write + 'static,
    head: &[u8],
    name: &str,
    limit: u64,
) -> Result<(u16, Vec<u8>), Error> {
    let mut io: Box<dyn Stream> = Box::new(io);
    if let Err(source) = io.write_all(head).and_then(|_| io.flush()) {
        return Err(Error::Send {
            url: name.into(),
            source,
        });
    }
    let mut resp = receive(io, Rc::default(), "GET", name.into(), (None, None), false)?;
    let mut body = Vec::new();
    (&mut resp.body)
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| {
            uncarry(e).unwrap_or_else(|source| Error::Read {
                url: name.into(),
                source,
            })
        })?;
    if body.len() as u64 > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok((resp.status, body))
}

/// Name to addresses: static `hosts` entries first, then literals (IPv6 zones included), then
/// the system resolver (glibc's `files` and `dns`, which work in a static binary).
pub(crate) fn resolve(
    hosts: &[(String, IpAddr)],
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Error> {
    if let Some((_, ip)) = hosts.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)) {
        return Ok(vec![SocketAddr::new(*ip, port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some((addr, zone)) = host.split_once('%') {
        if let Ok(addr) = addr.parse::<std::net::Ipv6Addr>() {
            let scope = zone.parse::<u32>().ok().or_else(|| {
                std::fs::read_to_string(format!("/sys/class/net/{zone}/ifindex"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            });
            let Some(scope) = scope.filter(|_| !zone.contains('/')) else {
                return Err(Error::Resolve {
                    host: host.into(),
                    source: io::Error::new(io::ErrorKind::NotFound, "unknown network interface"),
                });
            };
            return Ok(vec![SocketAddr::V6(std::net::SocketAddrV6::new(
                addr, port, 0, scope,
            ))]);
        }
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| Error::Resolve {
            host: host.into(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Resolve {
            host: host.into(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(addrs)
}

fn header_deadline(limits: &Limits) -> Option<Instant> {
    earliest(limits.retry, limits.headers.map(|h| Instant::now() + h))
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

enum HeadError {
    TimedOut,
    Io(io::Error),
    Malformed(String),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::TimedOut => f.write_str("timed out"),
            HeadError::Io(e) => write!(f, "{e}"),
            HeadError::Malformed(r) => f.write_str(r),
        }
    }
}

type Head = (u16, Vec<(String, Vec<u8>)>, usize);

/// Reads until `buf` holds a complete response head; returns it and the bytes it used.
fn read_head(io: &mut dyn Stream, buf: &mut Vec<u8>, timer: &Timer) -> Result<Head, HeadError> {
    loop {
        if !buf.is_empty() {
            let mut slots = [httparse::EMPTY_HEADER; 100];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = resp.code.unwrap_or(0);
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), h.value.to_vec()))
                        .collect();
                    return Ok((status, headers, used));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HeadError::Malformed(format!("malformed response: {e}"))),
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::Malformed("response head too large".into()));
        }
        let old = buf.len();
        buf.resize(old + 4096, 0);
        let n = loop {
            match io.read(&mut buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if timer.fired.get().is_some() => return Err(HeadError::TimedOut),
                Err(e) => {
                    buf.truncate(old);
                    return Err(HeadError::Io(e));
                }
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return Err(HeadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response headers",
            )));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Done,
    Length(u64),
    Eof,
    /// Chunked: bytes left in the current chunk, or None when a size line comes next.
    Chunked(Option<u64>),
}

fn framing(method: &str, status: u16, headers: &[(String, Vec<u8>)]) -> Result<Framing, String> {
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Framing::Done);
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    if let Some(te) = values("transfer-encoding").next_back() {
        return if te.rsplit(',').next().map(str::trim) == Some("chunked") {
            Ok(Framing::Chunked(None))
        } else {
            // Not chunked last: the body runs to the end of the connection (RFC 9112 6.3).
            Ok(Framing::Eof)
        };
    }
    let mut length = None;
    for v in values("content-length") {
        for part in v.split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| "invalid content-length".to_string())?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::Eof,
    })
}

/// Carries a fetch error through `io::Read` so the gzip decoder passes it on unchanged.
#[derive(Debug)]
pub(crate) struct Carried(pub Error);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

/// Recovers a fetch error carried through `io::Read`, if the io error holds one.
pub(crate) fn uncarry(e: io::Error) -> Result<Error, io::Error> {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(carried) = inner.downcast::<Carried>() {
                return Ok(carried.0);
            }
        }
        // Unreachable: checked with `is` above.
        return Err(io::Error::other("lost carried error"));
    }
    Err(e)
}

/// A response body, read with the body limits (idle time, hard deadline).
pub(crate) struct Body {
    io: Box<dyn Stream>,
    timer: Rc<Timer>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    framing: Framing,
    url: String,
    idle: Option<Duration>,
    tls: bool,
}

impl Body {
    /// The length the response announced (`Content-Length`), if it did.
    pub fn announced_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    fn io_error(&self, e: io::Error) -> Error {
        match self.timer.fired.take() {
            Some(Fired::Until) => Error::Timeout {
                url: self.url.clone(),
                last: None,
            },
            Some(Fired::Idle) => Error::Stalled {
                url: self.url.clone(),
                secs: self.idle.map(|d| d.as_secs_f64()).unwrap_or_default(),
            },
            None => Error::Read {
                url: self.url.clone(),
                source: e,
            },
        }
    }

    fn truncated(&self) -> Error {
        Error::Read {
            url: self.url.clone(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the body",
            ),
        }
    }

    /// Reads from the buffer, or straight from the connection when it is empty.
    fn raw(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.pos < self.end {
            let n = out.len().min(self.end - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        loop {
            match self.io.read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A TLS peer that closes without close_notify: fine when the framing is
                // explicit; for read-to-close bodies the hash (if any) guards against truncation.
                Err(e)
                    if self.tls
                        && self.framing == Framing::Eof
                        && e.kind() == io::ErrorKind::UnexpectedEof
                        && self.timer.fired.get().is_none() =>
                {
                    return Ok(0)
                }
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    fn read_line(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(i) = self.buf[self.pos..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let mut line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.end - self.pos >= MAX_LINE {
                return Err(Error::Protocol {
                    url: self.url.clone(),
                    reason: "chunk header line too long".into(),
                });
            }
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            let n = loop {
                match self.io.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io_error(e)),
                }
            };
            if n == 0 {
                return Err(self.truncated());
            }
            self.end += n;
        }
    }

    fn read_body(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::Eof => {
                    let n = self.raw(out)?;
                    if n == 0 {
                        self.framing = Framing::Done;
                    }
                    return Ok(n);
                }
                Framing::Length(left) => {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
                    let n = self.raw(&mut out[..want])?;
                    if n == 0 {
                        return Err(self.truncated());
                    }
                    let left = left - n as u64;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok(n);
                }
                Framing::Chunked(Some(0)) => {
                    // The CRLF after a chunk's data.
                    if !self.read_line()?.is_empty() {
                        return Err(self.bad_chunk());
                    }
                    self.framing = Framing::Chunked(None);
                }
                Framing::Chunked(None) => {
                    let line = self.read_line()?;
                    let size = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .map(str::trim)
                        .filter(|s| !s.is_empty() && s.len() <= 16)
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| self.bad_chunk())?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        while !self.read_line()?.is_empty() {}
                        self.framing = Framing::Done;
                        return Ok(0);
                    }
                    self.framing = Framing::Chunked(Some(size));
                    return self.read_chunk(out, size);
                }
                Framing::Chunked(Some(left)) => return self.read_chunk(out, left),
            }
        }
    }

    fn read_chunk(&mut self, out: &mut [u8], left: u64) -> Result<usize, Error> {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
        let n = self.raw(&mut out[..want])?;
        if n == 0 {
            return Err(self.truncated());
        }
        self.framing = Framing::Chunked(Some(left - n as u64));
        Ok(n)
    }

    fn bad_chunk(&self) -> Error {
        Error::Protocol {
            url: self.url.clone(),
            reason: "invalid chunked encoding".into(),
        }
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_body(out)
            .map_err(|e| io::Error::other(Carried(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            framing("HEAD", 200, &h(&[("Content-Length", "5")])),
            Ok(Framing::Done)
        );
        assert_eq!(framing("GET", 204, &[]), Ok(Framing::Done));
        assert_eq!(framing("GET", 200, &[]), Ok(Framing::Eof));
        assert_eq!(
            framing("GET", 200, &h(&[("content-length", "5")])),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing("GET", 200, &h(&[("Content-Length", "5, 5")])),
            Ok(Framing::Length(5))
        );
        assert!(framing(
            "GET",
            200,
            &h(&[("Content-Length", "5"), ("Content-Length", "6")])
        )
        .is_err());
        assert!(framing("GET", 200, &h(&[("Content-Length", "-1")])).is_err());
        assert_eq!(
            framing(
                "GET",
                200,
                &h(&[
                    ("Transfer-Encoding", "gzip, chunked"),
                    ("Content-Length", "3")
                ])
            ),
            Ok(Framing::Chunked(None))
        );
    }

    #[test]
    fn resolving_literals_zones_and_static_hosts() {
        let hosts = [("meta.test".to_string(), IpAddr::from([10, 0, 0, 1]))];
        assert_eq!(
            resolve(&hosts, "META.test", 80).unwrap(),
            vec![SocketAddr::from(([10, 0, 0, 1], 80))]
        );
        assert_eq!(
            resolve(&[], "::1", 8).unwrap(),
            vec!["[::1]:8".parse::<SocketAddr>().unwrap()]
        );
        match resolve(&[], "fe80::1%lo", 80).unwrap()[0] {
            SocketAddr::V6(a) => assert_eq!(a.scope_id(), 1, "lo is interface 1"),
            other => panic!("{other}"),
        }
        assert!(resolve(&[], "fe80::1%nosuchif0", 80).is_err());
        assert!(resolve(&[], "fe80::1%../x", 80).is_err());
    }

    #[test]
    fn merging_headers_replaces_case_insensitively() {
        let base = vec![
            ("User-Agent".to_string(), "Ignition/2.27.0".to_string()),
            ("Accept".to_string(), "*/*".to_string()),
        ];
        let extra = vec![
            ("user-agent".to_string(), Some("custom".to_string())),
            ("ACCEPT".to_string(), None),
            ("X-Foo".to_string(), Some("1".to_string())),
        ];
        let merged = merge_headers(&base, &extra);
        assert_eq!(
            merged,
            vec![
                ("user-agent".to_string(), "custom".to_string()),
                ("X-Foo".to_string(), "1".to_string())
            ]
        );
    }
}
