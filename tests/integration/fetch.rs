//! The fetcher against real servers on 127.0.0.1: HTTP, HTTPS with generated certificates,
//! proxies, S3 and GCS mocks, TFTP, failure modes (resets, stalls, trickles, redirect loops).

use crate::harness::{read_request, respond, Conn, HttpRequest, HttpServer, TempDir};
use ember::fetch::{
    AwsCredentials, Compression, Error, Fetcher, Hash, HashAlgorithm, Method, Options, ProxyConfig,
    Resource,
};
use sha2::{Digest, Sha256, Sha512};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Options for tests: no system roots, short deadline so a broken test cannot hang for long.
fn opts() -> Options {
    Options {
        system_ca_files: Some(Vec::new()),
        deadline: Some(Duration::from_secs(20)),
        ..Options::default()
    }
}

fn fetcher(o: Options) -> Fetcher {
    Fetcher::new(o).expect("building a fetcher")
}

fn sha512(data: &[u8]) -> Hash {
    Hash {
        algorithm: HashAlgorithm::Sha512,
        expected: Sha512::digest(data).to_vec(),
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn ok(body: &'static [u8]) -> impl Fn(&HttpRequest, &mut dyn Conn) + Send + Sync + 'static {
    move |_, w| respond(w, 200, &[], body)
}

/// Chain of an error's messages, as a user would see it.
fn chain(e: &Error) -> String {
    ember::logging::chain(e)
}

#[test]
fn http_get_sends_ignition_headers_and_returns_body() {
    let server = HttpServer::start(ok(b"hello"));
    let f = fetcher(opts());
    let body = f
        .fetch_bytes(&Resource::new(server.url("/config.ign")), 100)
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"hello"[..]));
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/config.ign");
    assert_eq!(req.header("user-agent"), Some("Ignition/2.27.0"));
    assert_eq!(
        req.header("accept"),
        Some("application/vnd.coreos.ignition+json;version=3.6.0, */*;q=0.1")
    );
    assert_eq!(req.header("accept-encoding"), Some("identity"));
    assert_eq!(req.header("host"), Some(server.addr.to_string().as_str()));
}

#[test]
fn configured_headers_replace_defaults_by_name() {
    let server = HttpServer::start(ok(b"x"));
    let f = fetcher(opts());
    let res = Resource {
        source: server.url("/"),
        headers: vec![
            ("user-AGENT".into(), Some("custom/1".into())),
            ("Accept".into(), None),
            ("X-Auth".into(), Some("token".into())),
        ],
        ..Resource::default()
    };
    f.fetch_bytes(&res, 100).unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.header("user-agent"), Some("custom/1"));
    assert_eq!(
        req.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
            .count(),
        1
    );
    assert_eq!(req.header("accept"), None);
    assert_eq!(req.header("x-auth"), Some("token"));
}

#[test]
fn ipv6_loopback_literal() {
    // Skipped where the sandbox has no IPv6 loopback.
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no ::1 here, skipping");
        return;
    };
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let req = read_request(&mut s).unwrap().unwrap();
            respond(
                &mut s,
                200,
                &[],
                req.header("host").unwrap_or("").as_bytes(),
            );
        }
    });
    let f = fetcher(opts());
    let body = f
        .fetch_bytes(
            &Resource::new(format!("http://[::1]:{}/", addr.port())),
            100,
        )
        .unwrap()
        .unwrap();
    assert_eq!(body, format!("[::1]:{}", addr.port()).into_bytes());
}

#[test]
fn credentials_in_the_url_become_basic_auth_and_are_never_shown() {
    let server = HttpServer::start(|_, w| respond(w, 401, &[], b""));
    let f = fetcher(opts());
    let url = format!("http://ember:s%40cret@{}/private?token=hidden", server.addr);
    let err = f.fetch_bytes(&Resource::new(url), 100).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("http://{}/private returned http status 401", server.addr)
    );
    let req = &server.requests()[0];
    // base64("ember:s@cret")
    assert_eq!(req.header("authorization"), Some("Basic ZW1iZXI6c0BjcmV0"));
    assert_eq!(req.target, "/private?token=hidden");
}

#[test]
fn user_agent_can_be_turned_off_and_put_sends_a_body() {
    let server = HttpServer::start(ok(b"tok"));
    let f = fetcher(Options {
        user_agent: None,
        ..opts()
    });
    let res = Resource {
        source: server.url("/latest/api/token"),
        method: Method::Put,
        body: b"payload".to_vec(),
        ..Resource::default()
    };
    assert_eq!(f.fetch_bytes(&res, 100).unwrap().unwrap(), b"tok");
    let req = &server.requests()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.body, b"payload");
    assert_eq!(req.header("user-agent"), None);
}

#[test]
fn chunked_bodies_and_204() {
    let server = HttpServer::start(|req, w| {
        if req.path() == "/empty" {
            let _ = w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            return;
        }
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
        );
    });
    let f = fetcher(opts());
    let body = f
        .fetch_bytes(&Resource::new(server.url("/c")), 100)
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"hello, world"[..]));
    let body = f
        .fetch_bytes(&Resource::new(server.url("/empty")), 100)
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b""[..]));
}

#[test]
fn not_found_is_distinct() {
    let server = HttpServer::start(|_, w| respond(w, 404, &[], b"nope"));
    let f = fetcher(opts());
    let res = Resource::new(server.url("/missing"));
    assert_eq!(f.fetch_bytes(&res, 100).unwrap(), None);
    let mut out = Vec::new();
    let err = f.fetch_to(&res, &mut out).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(out.is_empty());
    assert_eq!(server.requests().len(), 2, "404 is not retried");
}

#[test]
fn server_errors_are_retried_until_success() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = HttpServer::start(move |_, w| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            respond(w, 503, &[], b"busy");
        } else {
            respond(w, 200, &[], b"finally");
        }
    });
    let f = fetcher(opts());
    let body = f.fetch_bytes(&Resource::new(server.url("/")), 100).unwrap();
    assert_eq!(body.as_deref(), Some(&b"finally"[..]));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn other_statuses_fail_at_once() {
    let server = HttpServer::start(|_, w| respond(w, 403, &[], b"no"));
    let f = fetcher(opts());
    let err = f
        .fetch_bytes(&Resource::new(server.url("/x")), 100)
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 403, .. }),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn provider_retry_statuses_are_retried() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = HttpServer::start(move |_, w| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            respond(w, 404, &[], b"");
        } else {
            respond(w, 200, &[], b"userdata");
        }
    });
    let f = fetcher(opts());
    let res = Resource {
        source: server.url("/metadata"),
        retry_statuses: vec![404, 410, 429],
        ..Resource::default()
    };
    assert_eq!(f.fetch_bytes(&res, 100).unwrap().unwrap(), b"userdata");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn retrying_stops_at_the_total_timeout() {
    let server = HttpServer::start(|_, w| respond(w, 500, &[], b"broken"));
    let f = fetcher(Options {
        total_timeout: Duration::from_secs(2),
        deadline: None,
        ..opts()
    });
    let start = Instant::now();
    let res = Resource::new(server.url("/x?X-Amz-Signature=secretsig"));
    let err = f.fetch_bytes(&res, 100).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let text = chain(&err);
    assert!(text.contains("unable to fetch"), "{text}");
    assert!(text.contains("http status 500"), "{text}");
    assert!(
        !text.contains("secretsig"),
        "query strings never appear: {text}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // 200 ms, 400 ms, 800 ms (with jitter) fit in 2 s: 3 to 5 attempts.
    let n = server.requests().len();
    assert!((2..=6).contains(&n), "{n} attempts");
}

#[test]
fn embers_deadline_bounds_retries_when_total_timeout_is_zero() {
    // Nothing listens on this port: connection refused, again and again.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = fetcher(Options {
        total_timeout: Duration::ZERO,
        deadline: Some(Duration::from_millis(1500)),
        ..opts()
    });
    let start = Instant::now();
    let err = f
        .fetch_bytes(&Resource::new(format!("http://127.0.0.1:{port}/")), 100)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        chain(&err).contains("connecting to 127.0.0.1"),
        "{}",
        chain(&err)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A raw server: `f(connection number, stream)` for each connection.
fn raw_server(f: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let f = Arc::new(f);
    std::thread::spawn(move || {
        for (i, s) in listener.incoming().enumerate() {
            let Ok(s) = s else { continue };
            let f = f.clone();
            std::thread::spawn(move || f(i, s));
        }
    });
    addr
}

/// Closes with RST instead of FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the duration of the call and `linger` is a valid, correctly
    // sized `struct linger` that outlives it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

/// Serves `body` whole, except on the first connection: 1 MiB of it, then a reset.
fn reset_once_server(body: &[u8]) -> SocketAddr {
    let b = body.to_vec();
    raw_server(move |i, mut s| {
        let _ = read_request(&mut s);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len());
        let _ = s.write_all(head.as_bytes());
        if i == 0 {
            let _ = s.write_all(&b[..1 << 20]);
            std::thread::sleep(Duration::from_millis(300));
            reset(s);
        } else {
            let _ = s.write_all(&b);
        }
    })
}

#[test]
fn reset_mid_body_fails_a_writer_and_is_retried_into_a_buffer() {
    let body = pattern(2 << 20);
    let addr = reset_once_server(&body);
    let url = format!("http://{addr}/big");
    let f = fetcher(opts());
    // A writer that has received bytes cannot be rewound: the error is returned.
    let mut out = Vec::new();
    let err = f.fetch_to(&Resource::new(&url), &mut out).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{}", chain(&err));
    assert!(chain(&err).contains("reset"), "{}", chain(&err));
    assert!(!out.is_empty() && out.len() < body.len());
    // A buffer can: the second connection succeeds.
    let got = f
        .fetch_bytes(&Resource::new(&url), 4 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(got, body);
}

/// `fetch_to_file` starts a file over: what it held before and what a failed attempt wrote
/// are both gone from the result.
#[test]
fn fetch_to_file_replaces_old_content_and_a_failed_attempt() {
    let body = pattern(2 << 20);
    let addr = reset_once_server(&body);
    let dir = TempDir::new("fetch-to-file");
    let path = dir.path().join("out");
    std::fs::write(&path, vec![b'x'; 3 << 20]).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let f = fetcher(opts());
    let res = Resource {
        hash: Some(sha512(&body)),
        ..Resource::new(format!("http://{addr}/big"))
    };
    let outcome = f.fetch_to_file(&res, &mut file).unwrap();
    drop(file);
    assert_eq!(outcome.size, body.len() as u64);
    assert!(
        std::fs::read(&path).unwrap() == body,
        "file differs from the body"
    );
}

#[test]
fn truncated_body_is_an_error() {
    let addr = raw_server(|_, mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    });
    let f = fetcher(opts());
    let mut out = Vec::new();
    let err = f
        .fetch_to(&Resource::new(format!("http://{addr}/")), &mut out)
        .unwrap_err();
    assert!(
        chain(&err).contains("connection closed before the end of the body"),
        "{}",
        chain(&err)
    );
}

#[test]
fn body_stalling_after_headers_fails_in_bounded_time() {
    let addr = raw_server(|i, mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
        if i == 0 {
            // Enough for the writer to have received data: no retry is possible.
            let _ = s.write_all(&pattern(1 << 20));
        }
        std::thread::sleep(Duration::from_secs(15));
    });
    let f = fetcher(Options {
        response_headers_timeout: Duration::from_secs(1),
        deadline: Some(Duration::from_secs(3)),
        ..opts()
    });
    let url = format!("http://{addr}/");
    let start = Instant::now();
    let mut out = Vec::new();
    let err = f.fetch_to(&Resource::new(&url), &mut out).unwrap_err();
    assert!(matches!(err, Error::Stalled { .. }), "{}", chain(&err));
    assert_eq!(err.to_string(), format!("no data from {url} for 1 s"));
    assert!(start.elapsed() < Duration::from_secs(4));

    // Stalling before anything reached the writer: retried, until Ember's deadline.
    let start = Instant::now();
    let err = f
        .fetch_to(&Resource::new(&url), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{}", chain(&err));
    assert!(chain(&err).contains("no data from"), "{}", chain(&err));
    assert!(start.elapsed() < Duration::from_secs(6));
}

#[test]
fn server_that_never_answers_hits_the_headers_timeout_then_the_deadline() {
    let addr = raw_server(|_, mut s| {
        let _ = read_request(&mut s);
        std::thread::sleep(Duration::from_secs(15));
    });
    let f = fetcher(Options {
        response_headers_timeout: Duration::from_millis(500),
        deadline: Some(Duration::from_secs(2)),
        ..opts()
    });
    let start = Instant::now();
    let err = f
        .fetch_bytes(&Resource::new(format!("http://{addr}/")), 10)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{}", chain(&err));
    assert!(
        chain(&err).contains("timed out waiting for response headers"),
        "{}",
        chain(&err)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn trickling_body_ends_at_the_total_timeout() {
    let addr = raw_server(|_, mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        for _ in 0..100 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let f = fetcher(Options {
        total_timeout: Duration::from_secs(3),
        response_headers_timeout: Duration::from_secs(2),
        ..opts()
    });
    let start = Instant::now();
    let mut out = Vec::new();
    let err = f
        .fetch_to(&Resource::new(format!("http://{addr}/slow")), &mut out)
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{}", chain(&err));
    assert_eq!(
        err.to_string(),
        format!("unable to fetch http://{addr}/slow in time")
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn redirect_loops_stop_after_ten_hops() {
    let server = HttpServer::start(|_, w| respond(w, 302, &[("Location", "/loop")], b""));
    let f = fetcher(opts());
    let err = f
        .fetch_bytes(&Resource::new(server.url("/loop")), 10)
        .unwrap_err();
    assert!(matches!(err, Error::TooManyRedirects { .. }), "{err}");
    assert_eq!(server.requests().len(), 11);
}

#[test]
fn redirects_keep_headers_on_the_origin_and_drop_them_elsewhere() {
    let other = HttpServer::start(ok(b"from the other origin"));
    let target = other.url("/final");
    let origin = HttpServer::start(move |req, w| match req.path() {
        "/start" => respond(w, 301, &[("Location", "/same")], b""),
        "/same" => respond(w, 307, &[("Location", &target)], b""),
        _ => respond(w, 500, &[], b""),
    });
    let f = fetcher(opts());
    let res = Resource {
        source: origin.url("/start"),
        headers: vec![
            ("Authorization".into(), Some("Bearer secret".into())),
            ("X-Custom".into(), Some("1".into())),
        ],
        ..Resource::default()
    };
    let body = f.fetch_bytes(&res, 100).unwrap().unwrap();
    assert_eq!(body, b"from the other origin");
    let first = origin.requests();
    assert_eq!(first.len(), 2);
    for req in &first {
        assert_eq!(
            req.header("authorization"),
            Some("Bearer secret"),
            "{}",
            req.target
        );
        assert_eq!(req.header("x-custom"), Some("1"));
    }
    let moved = &other.requests()[0];
    assert_eq!(moved.header("authorization"), None);
    assert_eq!(moved.header("x-custom"), None);
    assert_eq!(moved.header("user-agent"), Some("Ignition/2.27.0"));
}

#[test]
fn gzip_is_decompressed_and_hashed_after_decompression() {
    use flate2::write::GzEncoder;
    let plain = pattern(300_000);
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    let gz: &'static [u8] = Box::leak(enc.finish().unwrap().into_boxed_slice());
    let server = HttpServer::start(ok(gz));
    let f = fetcher(opts());
    let res = Resource {
        source: server.url("/c.gz"),
        compression: Compression::Gzip,
        hash: Some(sha512(&plain)),
        ..Resource::default()
    };
    let mut out = Vec::new();
    let outcome = f.fetch_to(&res, &mut out).unwrap();
    assert_eq!(outcome.size, plain.len() as u64);
    assert_eq!(out, plain);
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn wrong_hash_on_a_long_body_leaves_no_file() {
    let body: &'static [u8] = Box::leak(pattern(8 << 20).into_boxed_slice());
    let server = HttpServer::start(ok(body));
    let f = fetcher(opts());
    let tmp = TempDir::new("fetch-atomic");
    let dir = tmp.path().to_path_buf();
    let dest = dir.join("image.raw");
    let mut wrong = sha512(body);
    wrong.expected[0] ^= 1;
    let res = Resource {
        source: server.url("/image"),
        hash: Some(wrong),
        ..Resource::default()
    };
    let err = f.fetch_to_file_atomic(&res, &dest, 0o640).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("hash verification failed (calculated "),
        "{err}"
    );
    assert!(
        dir_entries(&dir).is_empty(),
        "left behind: {:?}",
        dir_entries(&dir)
    );

    let res = Resource {
        hash: Some(sha512(body)),
        ..res
    };
    let outcome = f.fetch_to_file_atomic(&res, &dest, 0o640).unwrap();
    assert_eq!(outcome.size, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(dir_entries(&dir), vec!["image.raw".to_string()]);
}

// --- TLS -------------------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

fn pki(name: &str) -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca,
    }
}

type Chain = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn leaf(pki: &Pki, names: &[&str], expired: bool) -> Chain {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let cert = params.signed_by(&key, &pki.ca).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    (vec![cert.der().clone()], key.into())
}

fn tls_server(
    chain: Chain,
    handler: impl Fn(&HttpRequest, &mut dyn Conn) + Send + Sync + 'static,
) -> HttpServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain.0, chain.1)
            .unwrap(),
    );
    HttpServer::start_with(
        move |tcp| {
            let conn = rustls::ServerConnection::new(config.clone()).ok()?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock).ok()?;
            }
            Some(Box::new(s))
        },
        handler,
    )
}

fn tls_opts(ca: Option<&Pki>) -> Options {
    Options {
        ca_bundles: ca
            .map(|p| vec![p.ca_pem.clone().into_bytes()])
            .unwrap_or_default(),
        hosts: vec![
            ("good.test".into(), localhost()),
            ("bad.test".into(), localhost()),
        ],
        ..opts()
    }
}

#[test]
fn https_with_a_private_ca_from_the_options() {
    let pki = pki("Ember Test CA");
    let server = tls_server(
        leaf(&pki, &["good.test", "127.0.0.1"], false),
        ok(b"secure"),
    );
    let f = fetcher(tls_opts(Some(&pki)));
    for host in ["good.test", "127.0.0.1"] {
        let url = format!("https://{host}:{}/c.ign", server.port());
        let body = f.fetch_bytes(&Resource::new(url), 100).unwrap();
        assert_eq!(body.as_deref(), Some(&b"secure"[..]), "{host}");
    }
    // Several certificates in one bundle are all trusted.
    let other = self::pki("Other CA");
    let both = format!("{}{}", other.ca_pem, pki.ca_pem);
    let f = fetcher(Options {
        ca_bundles: vec![both.into_bytes()],
        ..tls_opts(None)
    });
    let url = format!("https://good.test:{}/", server.port());
    assert!(f.fetch_bytes(&Resource::new(url), 100).unwrap().is_some());
}

fn tls_failure(cert: Chain, trusted: Option<&Pki>, host: &str) -> (String, usize) {
    let server = tls_server(cert, ok(b"should not be read"));
    let f = fetcher(tls_opts(trusted));
    let start = Instant::now();
    let url = format!("https://{host}:{}/", server.port());
    let err = f.fetch_bytes(&Resource::new(url), 100).unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{}", chain(&err));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "certificate errors are not retried"
    );
    assert!(server.requests().is_empty());
    (err.to_string(), server.connections())
}

#[test]
fn https_unknown_ca_fails_clearly() {
    let pki = pki("Ember Test CA");
    let (msg, conns) = tls_failure(leaf(&pki, &["good.test"], false), None, "good.test");
    assert!(msg.contains("unknown authority"), "{msg}");
    assert_eq!(conns, 1);
}

#[test]
fn https_expired_certificate_fails_clearly() {
    let pki = pki("Ember Test CA");
    let (msg, _) = tls_failure(leaf(&pki, &["good.test"], true), Some(&pki), "good.test");
    assert!(msg.contains("expired"), "{msg}");
}

#[test]
fn https_wrong_host_name_fails_clearly() {
    let pki = pki("Ember Test CA");
    let (msg, _) = tls_failure(leaf(&pki, &["good.test"], false), Some(&pki), "bad.test");
    assert!(msg.contains("not valid for host \"bad.test\""), "{msg}");
}

#[test]
fn invalid_ca_bundle_is_an_error() {
    let err = Fetcher::new(Options {
        ca_bundles: vec![
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
        ],
        ..opts()
    })
    .unwrap_err();
    assert!(matches!(err, Error::CaBundle { index: 0, .. }), "{err}");
}

// --- Proxies ---------------------------------------------------------------------------------

/// A forward proxy: answers absolute-form requests itself, and tunnels CONNECT to the address
/// `routes` gives for the requested authority. Records every request line it sees.
struct TestProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HttpRequest>>>,
}

fn test_proxy(routes: HashMap<String, SocketAddr>) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { continue };
            let (seen, routes) = (s2.clone(), routes.clone());
            std::thread::spawn(move || {
                let Ok(Some(req)) = read_request(&mut client) else {
                    return;
                };
                seen.lock().unwrap().push(req.clone());
                if req.method != "CONNECT" {
                    let body = format!("proxied {}", req.target);
                    respond(&mut client, 200, &[], body.as_bytes());
                    return;
                }
                let Some(upstream) = routes
                    .get(&req.target)
                    .and_then(|a| TcpStream::connect(a).ok())
                else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let mut upstream = upstream;
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    TestProxy { addr, seen }
}

#[test]
fn http_through_a_proxy_uses_the_absolute_form() {
    let proxy = test_proxy(HashMap::new());
    let f = fetcher(Options {
        proxy: ProxyConfig {
            http_proxy: Some(format!("http://user:pa%3Ass@{}", proxy.addr)),
            ..ProxyConfig::default()
        },
        ..opts()
    });
    let body = f
        .fetch_bytes(&Resource::new("http://origin.test:8080/conf.ign?x=1"), 100)
        .unwrap()
        .unwrap();
    assert_eq!(body, b"proxied http://origin.test:8080/conf.ign?x=1");
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "http://origin.test:8080/conf.ign?x=1");
    assert_eq!(seen[0].header("host"), Some("origin.test:8080"));
    // base64("user:pa:ss")
    assert_eq!(
        seen[0].header("proxy-authorization"),
        Some("Basic dXNlcjpwYTpzcw==")
    );
}

#[test]
fn https_through_a_proxy_uses_connect() {
    let pki = pki("Ember Test CA");
    let server = tls_server(leaf(&pki, &["secure.test"], false), ok(b"tunnelled"));
    let routes = HashMap::from([("secure.test:443".to_string(), server.addr)]);
    let proxy = test_proxy(routes);
    let f = fetcher(Options {
        ca_bundles: vec![pki.ca_pem.clone().into_bytes()],
        proxy: ProxyConfig {
            // Plain http:// URLs would go elsewhere: httpsProxy alone covers https.
            https_proxy: Some(proxy.addr.to_string()),
            ..ProxyConfig::default()
        },
        ..opts()
    });
    let body = f
        .fetch_bytes(&Resource::new("https://secure.test/c.ign"), 100)
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"tunnelled"[..]));
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, "secure.test:443");
    assert_eq!(server.requests()[0].target, "/c.ign");
}

#[test]
fn no_proxy_and_loopback_go_direct() {
    let proxy = test_proxy(HashMap::new());
    let direct = HttpServer::start(ok(b"direct"));
    let f = fetcher(Options {
        proxy: ProxyConfig {
            http_proxy: Some(format!("http://{}", proxy.addr)),
            https_proxy: Some(format!("http://{}", proxy.addr)),
            no_proxy: vec!["example.org, .direct.test".into()],
        },
        hosts: vec![("a.direct.test".into(), localhost())],
        ..opts()
    });
    let url = format!("http://a.direct.test:{}/", direct.port());
    assert_eq!(
        f.fetch_bytes(&Resource::new(url), 100).unwrap().unwrap(),
        b"direct"
    );
    assert_eq!(
        f.fetch_bytes(&Resource::new(direct.url("/")), 100)
            .unwrap()
            .unwrap(),
        b"direct"
    );
    assert!(proxy.seen.lock().unwrap().is_empty());
    assert_eq!(direct.requests().len(), 2);
    // A host not in noProxy does go through the proxy.
    let body = f
        .fetch_bytes(&Resource::new("http://elsewhere.test/"), 100)
        .unwrap()
        .unwrap();
    assert_eq!(body, b"proxied http://elsewhere.test/");
}

// --- S3 --------------------------------------------------------------------------------------

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a request's SigV4 signature the way S3 would, independently of Ember's signer.
fn verify_sigv4(req: &HttpRequest, secret: &str, region: &str) -> Result<(), String> {
    let auth = req.header("authorization").ok_or("no authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("wrong algorithm")?;
    let mut fields = HashMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').ok_or("bad field")?;
        fields.insert(k, v);
    }
    let credential = fields.get("Credential").ok_or("no credential")?;
    let scope_parts: Vec<&str> = credential.splitn(2, '/').collect();
    let scope = scope_parts.get(1).ok_or("bad credential")?;
    let date = scope.split('/').next().unwrap_or_default();
    if *scope != format!("{date}/{region}/s3/aws4_request") {
        return Err(format!("wrong scope {scope}"));
    }
    let signed = fields.get("SignedHeaders").ok_or("no signed headers")?;
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        req.method,
        req.path(),
        req.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    );
    for name in signed.split(';') {
        let v = req
            .header(name)
            .ok_or(format!("signed header {name} missing"))?;
        canonical.push_str(&format!("{name}:{}\n", v.trim()));
    }
    let payload = req
        .header("x-amz-content-sha256")
        .ok_or("no payload hash")?;
    canonical.push_str(&format!("\n{signed}\n{payload}"));
    let amz_date = req.header("x-amz-date").ok_or("no date")?;
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hexs(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let want = hexs(&hmac(&key, sts.as_bytes()));
    if fields.get("Signature") != Some(&want.as_str()) {
        return Err("signature mismatch".into());
    }
    Ok(())
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn s3_mock() -> HttpServer {
    HttpServer::start(|req, w| {
        if req.method == "HEAD" && req.path() == "/my-bucket" {
            return respond(w, 200, &[("x-amz-bucket-region", "eu-west-3")], b"");
        }
        let region = if req.path().starts_with("/myap-123456789012/") {
            "us-west-2"
        } else {
            "eu-west-3"
        };
        if req.header("authorization").is_some() {
            if let Err(why) = verify_sigv4(req, SECRET, region) {
                return respond(w, 403, &[], why.as_bytes());
            }
        }
        match req.target.as_str() {
            "/my-bucket/dir/config%20file.ign?versionId=v7" => {
                respond(w, 200, &[], b"s3 object v7")
            }
            "/my-bucket/dir/config%20file.ign" => respond(w, 200, &[], b"s3 object"),
            "/myap-123456789012/k.ign" => respond(w, 200, &[], b"via access point"),
            _ => respond(w, 404, &[], b"NoSuchKey"),
        }
    })
}

#[test]
fn s3_anonymous_with_region_probe_and_version() {
    let mock = s3_mock();
    let f = fetcher(Options {
        s3_endpoint: Some(mock.url("")),
        ..opts()
    });
    let res = Resource::new("s3://my-bucket/dir/config%20file.ign?versionId=v7");
    assert_eq!(f.fetch_bytes(&res, 100).unwrap().unwrap(), b"s3 object v7");
    let res = Resource::new("arn:aws:s3:::my-bucket/dir/config%20file.ign");
    assert_eq!(f.fetch_bytes(&res, 100).unwrap().unwrap(), b"s3 object");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3, "the region is probed once: {reqs:?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("HEAD", "/my-bucket")
    );
    assert!(reqs.iter().all(|r| r.header("authorization").is_none()));
    let missing = Resource::new("s3://my-bucket/nope");
    assert_eq!(f.fetch_bytes(&missing, 100).unwrap(), None);
}

#[test]
fn s3_signed_requests_verify() {
    let mock = s3_mock();
    let creds = AwsCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: SECRET.into(),
        session_token: Some("session-token".into()),
    };
    let f = fetcher(Options {
        s3_endpoint: Some(mock.url("/")),
        aws_credentials: Some(Arc::new(move || Some(creds.clone()))),
        ..opts()
    });
    let res = Resource::new("s3://my-bucket/dir/config%20file.ign?versionId=v7");
    assert_eq!(f.fetch_bytes(&res, 100).unwrap().unwrap(), b"s3 object v7");
    let res = Resource::new("arn:aws:s3:us-west-2:123456789012:accesspoint/myap/object/k.ign");
    assert_eq!(
        f.fetch_bytes(&res, 100).unwrap().unwrap(),
        b"via access point"
    );
    let reqs = mock.requests();
    // HEAD probe (anonymous), signed GET, and no probe for the access point.
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert!(reqs[0].header("authorization").is_none());
    for r in &reqs[1..] {
        assert!(verify_sigv4(
            r,
            SECRET,
            if r.target.starts_with("/myap") {
                "us-west-2"
            } else {
                "eu-west-3"
            }
        )
        .is_ok());
        assert_eq!(r.header("x-amz-security-token"), Some("session-token"));
    }
    // A wrong secret is refused by the mock (so the check above can fail).
    let bad = AwsCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: "wrong".into(),
        session_token: None,
    };
    let f = fetcher(Options {
        s3_endpoint: Some(mock.url("")),
        aws_credentials: Some(Arc::new(move || Some(bad.clone()))),
        ..opts()
    });
    let err = f
        .fetch_bytes(&Resource::new("s3://my-bucket/dir/config%20file.ign"), 100)
        .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 403, .. }),
        "{err}"
    );
    assert!(!chain(&err).contains("wrong"));
}

// --- GCS -------------------------------------------------------------------------------------

#[test]
fn gs_with_a_bearer_token() {
    let server = HttpServer::start(|req, w| {
        if req.target == "/storage/v1/b/bkt/o/dir%2Fa%20b.ign?alt=media"
            && req.header("authorization") == Some("Bearer ya29.token")
        {
            respond(w, 200, &[], b"gcs object");
        } else {
            respond(w, 403, &[], b"");
        }
    });
    let f = fetcher(Options {
        gcs_endpoint: Some(server.url("")),
        gcp_token: Some(Arc::new(|| Some("ya29.token".to_string()))),
        ..opts()
    });
    let body = f
        .fetch_bytes(&Resource::new("gs://bkt/dir/a%20b.ign"), 100)
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"gcs object"[..]));
    // Anonymous without a token.
    let f = fetcher(Options {
        gcs_endpoint: Some(server.url("")),
        ..opts()
    });
    let err = f
        .fetch_bytes(&Resource::new("gs://bkt/dir/a%20b.ign"), 100)
        .unwrap_err();
    assert!(matches!(err, Error::HttpStatus { status: 403, .. }));
    assert!(server.requests()[1].header("authorization").is_none());
}

// --- TFTP ------------------------------------------------------------------------------------

/// A TFTP server (RFC 1350 + blksize) for tests. With `duplicate`, every DATA is sent twice.
fn tftp_server(files: HashMap<String, Vec<u8>>, duplicate: bool) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, client)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let pkt = buf[..n].to_vec();
            let files = files.clone();
            std::thread::spawn(move || tftp_transfer(&pkt, client, &files, duplicate));
        }
    });
    addr
}

fn tftp_transfer(
    rrq: &[u8],
    client: SocketAddr,
    files: &HashMap<String, Vec<u8>>,
    duplicate: bool,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    if rrq.get(..2) != Some(&[0, 1]) {
        return;
    }
    let fields: Vec<&[u8]> = rrq[2..].split(|&b| b == 0).collect();
    let name = String::from_utf8_lossy(fields[0]).into_owned();
    assert_eq!(fields[1], b"octet");
    let mut blksize = 512;
    if fields.get(2) == Some(&&b"blksize"[..]) {
        blksize = String::from_utf8_lossy(fields[3]).parse().unwrap();
        let oack = [&[0u8, 6][..], b"blksize\0", fields[3], b"\0"].concat();
        sock.send_to(&oack, client).unwrap();
        let mut ack = [0u8; 4];
        if sock.recv_from(&mut ack).is_err() || ack != [0, 4, 0, 0] {
            return;
        }
    }
    let Some(data) = files.get(&name) else {
        let err = [&[0u8, 5, 0, 1][..], b"File not found\0"].concat();
        sock.send_to(&err, client).unwrap();
        return;
    };
    let mut block: u16 = 1;
    let mut offset = 0;
    loop {
        let end = (offset + blksize).min(data.len());
        let pkt = [&[0u8, 3][..], &block.to_be_bytes(), &data[offset..end]].concat();
        let mut acked = false;
        for _ in 0..5 {
            sock.send_to(&pkt, client).unwrap();
            if duplicate {
                sock.send_to(&pkt, client).unwrap();
            }
            let mut ack = [0u8; 4];
            // Wait for this block's ACK, ignoring duplicates of older ones.
            loop {
                match sock.recv_from(&mut ack) {
                    Ok((4, _)) if ack[..2] == [0, 4] && ack[2..] == block.to_be_bytes() => {
                        acked = true;
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
            if acked {
                break;
            }
        }
        if !acked || end - offset < blksize {
            return;
        }
        offset = end;
        block = block.wrapping_add(1);
    }
}

#[test]
fn tftp_downloads_in_blocks() {
    let multi = pattern(512 * 3 + 100);
    let exact = pattern(1024);
    let files = HashMap::from([
        ("boot/config.ign".to_string(), multi.clone()),
        ("exact".to_string(), exact.clone()),
        ("empty".to_string(), Vec::new()),
    ]);
    let addr = tftp_server(files.clone(), false);
    let f = fetcher(opts());
    let url = |p: &str| format!("tftp://127.0.0.1:{}/{p}", addr.port());
    let res = Resource {
        source: url("boot/config.ign"),
        hash: Some(sha512(&multi)),
        ..Resource::default()
    };
    assert_eq!(f.fetch_bytes(&res, 1 << 20).unwrap().unwrap(), multi);
    assert_eq!(
        f.fetch_bytes(&Resource::new(url("exact")), 1 << 20)
            .unwrap()
            .unwrap(),
        exact
    );
    assert_eq!(
        f.fetch_bytes(&Resource::new(url("empty")), 10)
            .unwrap()
            .unwrap(),
        b""
    );
    assert_eq!(
        f.fetch_bytes(&Resource::new(url("missing")), 10).unwrap(),
        None
    );

    // Negotiated block size, and a server that sends every packet twice.
    let addr = tftp_server(files, true);
    let f = fetcher(Options {
        tftp_blksize: Some(1024),
        ..opts()
    });
    let url = format!("tftp://127.0.0.1:{}/boot/config.ign", addr.port());
    assert_eq!(
        f.fetch_bytes(&Resource::new(url), 1 << 20)
            .unwrap()
            .unwrap(),
        multi
    );
}

#[test]
fn tftp_silent_server_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let f = fetcher(Options {
        total_timeout: Duration::from_secs(1),
        ..opts()
    });
    let start = Instant::now();
    let url = format!("tftp://127.0.0.1:{}/x", silent.local_addr().unwrap().port());
    let err = f.fetch_bytes(&Resource::new(url), 10).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

// --- Offline, parallel -----------------------------------------------------------------------

#[test]
fn offline_mode_never_touches_the_network() {
    let server = HttpServer::start(ok(b"x"));
    let f = fetcher(Options {
        offline: true,
        ..opts()
    });
    let err = f
        .fetch_bytes(&Resource::new(server.url("/")), 10)
        .unwrap_err();
    assert!(matches!(err, Error::NeedsNetwork { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("resource requires networking: {}", server.url("/"))
    );
    assert_eq!(
        f.fetch_bytes(&Resource::new("data:,inline"), 10)
            .unwrap()
            .unwrap(),
        b"inline"
    );
    assert_eq!(f.fetch_bytes(&Resource::new(""), 10).unwrap().unwrap(), b"");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0);
}

#[test]
fn fetch_many_downloads_files_in_parallel() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (i2, p2) = (in_flight.clone(), peak.clone());
    let server = HttpServer::start(move |req, w| {
        let now = i2.fetch_add(1, Ordering::SeqCst) + 1;
        p2.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        i2.fetch_sub(1, Ordering::SeqCst);
        respond(w, 200, &[], req.path().as_bytes());
    });
    let f = fetcher(Options {
        parallelism: 4,
        ..opts()
    });
    let tmp = TempDir::new("fetch-many");
    let dir = tmp.path();
    let jobs: Vec<(Resource, std::path::PathBuf)> = (0..8)
        .map(|i| {
            (
                Resource::new(server.url(&format!("/f{i}"))),
                dir.join(format!("f{i}")),
            )
        })
        .collect();
    let results = f.fetch_many(jobs, |f, (res, path)| {
        f.fetch_to_file_atomic(&res, &path, 0o644)
    });
    assert_eq!(results.len(), 8);
    for (i, r) in results.into_iter().enumerate() {
        r.unwrap();
        assert_eq!(
            std::fs::read(dir.join(format!("f{i}"))).unwrap(),
            format!("/f{i}").into_bytes()
        );
    }
    // Never more than the bound; more than one at once (4 unless the machine is very busy).
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak {peak}");
}
