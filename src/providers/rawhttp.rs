//! A minimal HTTP/1.1 GET over sockets the fetcher cannot open: a TCP connection from a chosen
//! (privileged) local port for scaleway, and an `AF_VSOCK` connection for applehv.
//!
//! One request per connection (`Connection: close`); the response body is framed by
//! `Content-Length`, chunked encoding, or the end of the connection. Every step is bounded:
//! the connect by a timeout, each read and write by a timeout, the body by a size limit.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{Error, MAX_CONFIG_SIZE};

/// A connected stream socket.
pub struct Socket {
    fd: OwnedFd,
}

fn last_err(what: impl Into<String>) -> Error {
    Error::Socket {
        what: what.into(),
        source: io::Error::last_os_error(),
    }
}

fn new_socket(domain: libc::c_int) -> Result<OwnedFd, Error> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(last_err("creating a socket"));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects the non-blocking `fd` to `addr`, waiting at most `timeout`, then makes it blocking.
///
/// # Safety
/// `addr` must point to a valid socket address of `len` bytes for the socket's family.
unsafe fn connect_timeout(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    timeout: Duration,
    peer: &str,
) -> Result<(), Error> {
    // SAFETY: the caller guarantees `addr`/`len`; `fd` is an open socket.
    let r = unsafe { libc::connect(fd, addr, len) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(Error::Socket {
                what: format!("connecting to {peer}"),
                source: e,
            });
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        loop {
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n < 0 {
                return Err(last_err(format!("connecting to {peer}")));
            }
            if n == 0 {
                return Err(Error::Socket {
                    what: format!("connecting to {peer}"),
                    source: io::Error::new(io::ErrorKind::TimedOut, "timed out"),
                });
            }
            break;
        }
        let mut err: libc::c_int = 0;
        let mut elen = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `elen` are valid for getsockopt's output.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut elen,
            )
        };
        if r < 0 {
            return Err(last_err(format!("connecting to {peer}")));
        }
        if err != 0 {
            return Err(Error::Socket {
                what: format!("connecting to {peer}"),
                source: io::Error::from_raw_os_error(err),
            });
        }
    }
    // SAFETY: fcntl on an open descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above; clearing O_NONBLOCK.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(last_err("configuring a socket"));
    }
    Ok(())
}

impl Socket {
    /// TCP to `peer` from local port `local_port` on any address. `EADDRINUSE` comes back as
    /// an `Error::Socket` whose source has kind `AddrInUse`.
    pub fn tcp_from_port(
        peer: SocketAddrV4,
        local_port: u16,
        timeout: Duration,
    ) -> Result<Socket, Error> {
        let fd = new_socket(libc::AF_INET)?;
        let sin = |a: &SocketAddrV4| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = sin(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local_port));
        // SAFETY: `local` is a valid sockaddr_in of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&local as *const libc::sockaddr_in).cast(),
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err(format!("binding local port {local_port}")));
        }
        let remote = sin(&peer);
        // SAFETY: `remote` is a valid sockaddr_in of the given size.
        unsafe {
            connect_timeout(
                fd.as_raw_fd(),
                (&remote as *const libc::sockaddr_in).cast(),
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                timeout,
                &peer.to_string(),
            )?;
        }
        let s = Socket { fd };
        s.set_timeouts(timeout)?;
        Ok(s)
    }

    /// `AF_VSOCK` to `cid`:`port`.
    pub fn vsock(cid: u32, port: u32, timeout: Duration) -> Result<Socket, Error> {
        let fd = new_socket(libc::AF_VSOCK)?;
        // SAFETY: sockaddr_vm is plain data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_vm = unsafe { mem::zeroed() };
        addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        addr.svm_cid = cid;
        addr.svm_port = port;
        // SAFETY: `addr` is a valid sockaddr_vm of the given size.
        unsafe {
            connect_timeout(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_vm).cast(),
                mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                timeout,
                &format!("vsock {cid}:{port}"),
            )?;
        }
        let s = Socket { fd };
        s.set_timeouts(timeout)?;
        Ok(s)
    }

    fn set_timeouts(&self, timeout: Duration) -> Result<(), Error> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
            // SAFETY: `tv` is a valid timeval for these options.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&tv as *const libc::timeval).cast(),
                    mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(last_err("setting socket timeouts"));
            }
        }
        Ok(())
    }
}

fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        e
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(timeout_kind(e));
            }
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes of reads; MSG_NOSIGNAL avoids SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(timeout_kind(e));
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A response: status and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `GET <path>` with `Host: <host>` and `headers`, reads the whole response.
/// `target` names the request in errors.
pub fn get(
    stream: &mut (impl Read + Write),
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    target: &str,
) -> Result<Response, Error> {
    let fail = |reason: String| Error::Http {
        target: target.to_string(),
        reason,
    };
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        if [n, v]
            .iter()
            .any(|s| s.bytes().any(|b| b == b'\r' || b == b'\n'))
        {
            return Err(fail(format!("invalid header {n:?}")));
        }
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| fail(format!("sending the request: {e}")))?;

    // The head.
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let (status, body_start, length, chunked) = loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| fail(format!("reading the response: {e}")))?;
        if n == 0 {
            return Err(fail("connection closed before the response headers".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let mut length = None;
                let mut chunked = false;
                for h in resp.headers.iter() {
                    let v = String::from_utf8_lossy(h.value);
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(
                            v.trim()
                                .parse::<u64>()
                                .map_err(|_| fail("invalid Content-Length".into()))?,
                        );
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = v.to_ascii_lowercase().contains("chunked");
                    }
                }
                break (status, len, length, chunked);
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => {}
            Ok(httparse::Status::Partial) => return Err(fail("response head too large".into())),
            Err(e) => return Err(fail(format!("invalid response: {e}"))),
        }
    };
    let mut raw = buf.split_off(body_start);
    let limit = MAX_CONFIG_SIZE;
    let done = |raw: &Vec<u8>| -> bool {
        if chunked {
            dechunk(raw).is_ok_and(|r| r.is_some())
        } else {
            length.is_some_and(|l| raw.len() as u64 >= l)
        }
    };
    while !done(&raw) {
        if raw.len() as u64 > limit + 64 * 1024 {
            return Err(fail(format!("body larger than {limit} bytes")));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| fail(format!("reading the body: {e}")))?;
        if n == 0 {
            if chunked || length.is_some() {
                return Err(fail("connection closed before the end of the body".into()));
            }
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let body = if chunked {
        dechunk(&raw)
            .map_err(fail)?
            .ok_or_else(|| fail("incomplete chunked body".into()))?
    } else {
        if let Some(l) = length {
            raw.truncate(l as usize);
        }
        raw
    };
    if body.len() as u64 > limit {
        return Err(fail(format!("body larger than {limit} bytes")));
    }
    Ok(Response { status, body })
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(mut raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("invalid chunk size {size_text:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if raw.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&raw[..size]);
        if &raw[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A stream that hands out a canned response and records what was written.
    struct Canned {
        input: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Two bytes at a time, to exercise partial reads.
            let n = buf.len().min(2);
            self.input.read(&mut buf[..n])
        }
    }
    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn canned(resp: &[u8]) -> Canned {
        Canned {
            input: io::Cursor::new(resp.to_vec()),
            written: Vec::new(),
        }
    }

    #[test]
    fn request_and_framings() {
        let mut c = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello trailing");
        let r = get(&mut c, "d", "/", &[("Accept", "application/json")], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(
            String::from_utf8(c.written).unwrap(),
            "GET / HTTP/1.1\r\nHost: d\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let mut c = canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(get(&mut c, "d", "/", &[], "t").unwrap().body, b"abcde");
        let mut c = canned(b"HTTP/1.0 404 Not Found\r\n\r\nuntil eof");
        let r = get(&mut c, "d", "/", &[], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"until eof"[..]));
    }

    #[test]
    fn broken_responses_are_errors() {
        for bad in [
            &b""[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        ] {
            let err = get(&mut canned(bad), "d", "/", &[], "the target").unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("http request to the target failed: "),
                "{err}"
            );
        }
        assert!(get(&mut canned(b""), "d", "/", &[("X", "a\r\nB: c")], "t").is_err());
    }

    #[test]
    fn tcp_from_a_chosen_port_with_timeouts() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        // A free unprivileged port: bind to 0 elsewhere to learn one.
        let probe = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let server = std::thread::spawn(move || {
            let (mut s, from) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).unwrap();
                head.push(b[0]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            from.port()
        });
        let mut s = Socket::tcp_from_port(peer, port, Duration::from_secs(5)).unwrap();
        let r = get(&mut s, "h", "/x", &[], "t").unwrap();
        assert_eq!(r.body, b"{}");
        assert_eq!(
            server.join().unwrap(),
            port,
            "the source port was the chosen one"
        );

        // A server that accepts and never answers: the read times out.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let mut s = Socket::tcp_from_port(peer, 0, Duration::from_millis(200)).unwrap();
        let start = std::time::Instant::now();
        let err = get(&mut s, "h", "/", &[], "t").unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(l);
    }

    #[test]
    fn vsock_without_a_peer_fails_in_bounded_time() {
        // CID 1 is this machine; nothing listens on this port (and without the loopback
        // transport the connect fails or times out). Never the host CID here.
        let start = std::time::Instant::now();
        match Socket::vsock(
            libc::VMADDR_CID_LOCAL,
            0x7eed_0001,
            Duration::from_millis(300),
        ) {
            Ok(_) => panic!("connected to nothing"),
            Err(e) => assert!(
                e.to_string().starts_with("connecting to vsock 1:")
                    || e.to_string() == "creating a socket",
                "{e}"
            ),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
