//! A minimal HTTP/1.1 GET over sockets the fetcher cannot open: a TCP connection from a chosen
//! (privileged) local port for scaleway, and an `AF_VSOCK` connection for applehv.
//!
//! One request per connection (`Connection: close`); the response is read by the fetcher's
//! own HTTP parsing (`fetch::http::get_over`). Every step is bounded: the connect by a timeout,
//! each read and write by a timeout, the whole exchange by a deadline
//! ([`Socket::with_deadline`]), the body by a size limit.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{Error, MAX_CONFIG_SIZE};

/// Longest one exchange (connect, request, whole response) may take when the per-operation
/// timeout is shorter: a peer that sends a byte now and then cannot hold the boot forever.
pub const EXCHANGE_LIMIT: Duration = Duration::from_secs(60);

/// A connected stream socket.
pub struct Socket {
    fd: OwnedFd,
    /// Bound on each read and write.
    timeout: Duration,
    /// No read or write runs past this.
    until: Option<Instant>,
    /// The socket timeout currently set.
    applied: Option<Duration>,
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
        let mut s = Socket {
            fd,
            timeout,
            until: None,
            applied: None,
        };
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
        let mut s = Socket {
            fd,
            timeout,
            until: None,
            applied: None,
        };
        s.set_timeouts(timeout)?;
        Ok(s)
    }

    /// Bounds every later read and write by `until` too: the whole exchange ends there, however
    /// the peer paces its bytes.
    pub fn with_deadline(mut self, until: Instant) -> Socket {
        self.until = Some(until);
        self
    }

    /// Sets the socket timeouts for the next operation: the per-operation timeout, or what is
    /// left before the deadline if that is shorter; TimedOut once the deadline has passed.
    fn arm(&mut self) -> io::Result<()> {
        let mut t = self.timeout;
        if let Some(until) = self.until {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            t = t.min(left);
        }
        if self.applied != Some(t) {
            self.set_timeouts(t).map_err(|e| match e {
                Error::Socket { source, .. } => source,
                e => io::Error::other(e.to_string()),
            })?;
        }
        Ok(())
    }

    fn set_timeouts(&mut self, timeout: Duration) -> Result<(), Error> {
        // A zero timeval means "no timeout": never set less than a microsecond.
        let timeout = timeout.max(Duration::from_micros(1));
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
        self.applied = Some(timeout);
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
            self.arm()?;
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
            self.arm()?;
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

/// Sends `GET <path>` with `Host: <host>` and `headers`, reads the whole response (at most
/// [`MAX_CONFIG_SIZE`] bytes of body). `target` names the request in errors.
pub fn get(
    stream: impl Read + Write + 'static,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    target: &str,
) -> Result<Response, Error> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        if [n, v]
            .iter()
            .any(|s| s.bytes().any(|b| b == b'\r' || b == b'\n'))
        {
            return Err(Error::Http {
                target: target.to_string(),
                reason: format!("invalid header {n:?}"),
            });
        }
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let (status, body) =
        crate::fetch::http::get_over(stream, req.as_bytes(), target, MAX_CONFIG_SIZE)?;
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::chain;
    use std::cell::RefCell;
    use std::net::TcpListener;
    use std::rc::Rc;

    /// A stream that hands out a canned response and records what was written.
    struct Canned {
        input: io::Cursor<Vec<u8>>,
        written: Rc<RefCell<Vec<u8>>>,
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
            self.written.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn canned(resp: &[u8]) -> Canned {
        Canned {
            input: io::Cursor::new(resp.to_vec()),
            written: Rc::default(),
        }
    }

    fn v4(l: &TcpListener) -> SocketAddrV4 {
        match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        }
    }

    /// Reads a request head from `s`, byte by byte.
    fn read_head(s: &mut std::net::TcpStream) {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
    }

    #[test]
    fn request_and_framings() {
        let c = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello trailing");
        let written = c.written.clone();
        let r = get(c, "d", "/", &[("Accept", "application/json")], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(
            String::from_utf8(written.take()).unwrap(),
            "GET / HTTP/1.1\r\nHost: d\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let c = canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(get(c, "d", "/", &[], "t").unwrap().body, b"abcde");
        let c = canned(b"HTTP/1.0 404 Not Found\r\n\r\nuntil eof");
        let r = get(c, "d", "/", &[], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"until eof"[..]));
        // Informational responses come before the real one.
        let c =
            canned(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        let r = get(c, "d", "/", &[], "t").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        // Chunked only counts as the last coding; otherwise the body runs to the end.
        let c = canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc");
        assert_eq!(get(c, "d", "/", &[], "t").unwrap().body, b"3\r\nabc");
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
            let err = get(canned(bad), "d", "/", &[], "the target").unwrap_err();
            assert!(chain(&err).contains("the target"), "{}", chain(&err));
        }
        assert!(get(canned(b""), "d", "/", &[("X", "a\r\nB: c")], "t").is_err());
    }

    #[test]
    fn a_large_chunked_body_is_read_in_linear_time() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = v4(&l);
        let chunk = vec![b'x'; 8192];
        let chunks = 32 * 1024 * 1024 / chunk.len();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            read_head(&mut s);
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for _ in 0..chunks {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .unwrap();
                s.write_all(&chunk).unwrap();
                s.write_all(b"\r\n").unwrap();
            }
            s.write_all(b"0\r\n\r\n").unwrap();
        });
        let start = Instant::now();
        let s = Socket::tcp_from_port(peer, 0, Duration::from_secs(5)).unwrap();
        let r = get(s, "h", "/", &[], "t").unwrap();
        assert_eq!(r.body.len(), 32 * 1024 * 1024);
        assert!(r.body.iter().all(|&b| b == b'x'));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        server.join().unwrap();
    }

    #[test]
    fn a_trickling_server_ends_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = v4(&l);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            read_head(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            // One byte every 50 ms: each read is well within its timeout.
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        let s = Socket::tcp_from_port(peer, 0, Duration::from_secs(2))
            .unwrap()
            .with_deadline(Instant::now() + Duration::from_millis(500));
        let err = get(s, "h", "/", &[], "t").unwrap_err();
        let took = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(chain(&err).contains("timed out"), "{}", chain(&err));
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(2),
            "{took:?}"
        );
        server.join().unwrap();
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
        let s = Socket::tcp_from_port(peer, port, Duration::from_secs(5)).unwrap();
        let r = get(s, "h", "/x", &[], "t").unwrap();
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
        let s = Socket::tcp_from_port(peer, 0, Duration::from_millis(200)).unwrap();
        let start = std::time::Instant::now();
        let err = get(s, "h", "/", &[], "t").unwrap_err();
        assert!(chain(&err).contains("timed out"), "{}", chain(&err));
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
