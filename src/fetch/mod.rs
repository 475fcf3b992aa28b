//! Ember's one fetcher: every resource a config can name (configs, CA bundles, file contents,
//! appends, LUKS key files) and the providers' metadata requests go through [`Fetcher`].
//!
//! Schemes: `http`, `https`, `tftp`, `data`, `s3`, `arn` (S3 ARNs and access points), `gs`, and
//! the empty source (empty content). Anything else is [`Error::UnsupportedScheme`].
//!
//! # Streaming and the writer contract
//! [`Fetcher::fetch_to`] streams: bytes reach the writer as they arrive, gzip is decompressed on
//! the fly, and the hash is computed over the decompressed bytes. The hash can only be checked
//! at the end, so **the writer has already received every byte when a hash mismatch is
//! reported**. Callers therefore write into a temporary file and rename it into place only when
//! `fetch_to` returns `Ok`; [`Fetcher::fetch_to_file_atomic`] does exactly that, so no partial or
//! unverified file ever appears under the destination name.
//!
//! # Retries and time limits
//! Like Ignition: 200 and 204 succeed, 404 is [`Error::NotFound`], 5xx and transport errors are
//! retried (backoff from 200 ms, doubling, capped at 5 s; Ember adds ±25 % jitter so machines
//! booted together do not retry in lockstep), any other status fails at once.
//! - `response_headers_timeout` (Ignition's `httpResponseHeaders`, default 10 s, zero = none)
//!   bounds the wait for response headers, and Ember also uses it as the longest silence
//!   allowed inside a body (60 s when it is zero), so a stalled body fails in bounded time.
//! - `total_timeout` (Ignition's `httpTotal`, zero = none) bounds everything: all attempts and
//!   the body. A body trickling in past it fails with [`Error::Timeout`].
//! - `deadline` is Ember's: Ignition retries forever when `httpTotal` is zero; Ember stops
//!   starting new attempts after [`DEFAULT_DEADLINE`] (5 minutes) unless told otherwise
//!   (`None` restores Ignition's behaviour). It does not cut a body that is flowing.
//!
//! Ember improvements over Ignition, all compatible with configs that work there: a failed body
//! (connection reset, stall) is retried when the destination can be rewound (buffers and files,
//! or a writer that has received nothing yet); certificate errors fail at once instead of being
//! retried until the timeout; redirects are limited to 10, and configured headers survive a
//! redirect on the same origin but never one to another origin (see `http.rs`).

pub(crate) mod http;
mod proxy;
mod s3;
mod tftp;
mod tls;
mod url;

pub(crate) use http::resolve;

pub use proxy::ProxyConfig;
pub use s3::AwsCredentials;
pub use tls::SYSTEM_CA_FILES;

use crate::config::dataurl::{self, DataUrlError};
use crate::logging::chain;
use http::{Client, Limits, Request};
use sha2::Digest as _;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// The `User-Agent` Ignition sends; some servers look for it.
pub const DEFAULT_USER_AGENT: &str = "Ignition/2.27.0";
/// The `Accept` header Ignition sends on every HTTP fetch.
pub const ACCEPT: &str = "application/vnd.coreos.ignition+json;version=3.6.0, */*;q=0.1";
/// Ignition's default `httpResponseHeaders`.
pub const DEFAULT_RESPONSE_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Ember's default bound on retrying one fetch.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// Longest silence inside a body when `response_headers_timeout` is zero.
pub const STALL_TIMEOUT_WITHOUT_HEADERS_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of downloads [`Fetcher::fetch_many`] runs at once.
pub const DEFAULT_PARALLELISM: usize = 4;

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const COPY_BUFFER: usize = 256 * 1024;
/// Buffers in flight between the reader and the hashing thread.
const HASH_BUFFERS: usize = 4;

/// Errors from fetching. Messages never contain header values, userinfo or query strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("resource not found: {url}")]
    NotFound { url: String },
    #[error("resource requires networking: {url}")]
    NeedsNetwork { url: String },
    #[error("unsupported source scheme \"{scheme}\"")]
    UnsupportedScheme { scheme: String },
    #[error("unable to parse url: {reason}")]
    InvalidUrl { reason: String },
    #[error("invalid data url")]
    DataUrl {
        #[source]
        source: DataUrlError,
    },
    #[error("compression is not supported with that scheme")]
    CompressionUnsupported,
    #[error("invalid http header {name:?}")]
    InvalidHeader { name: String },
    #[error("hash verification failed (calculated {calculated} but expected {expected})")]
    HashMismatch {
        calculated: String,
        expected: String,
    },
    #[error("unable to fetch {url} in time")]
    Timeout {
        url: String,
        #[source]
        last: Option<Box<Error>>,
    },
    #[error("{url} returned http status {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("too many redirects fetching {url}")]
    TooManyRedirects { url: String },
    #[error("invalid redirect from {url}: {reason}")]
    BadRedirect { url: String, reason: String },
    #[error("resolving {host}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("tls connection to {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("tls certificate of {host} rejected: {reason}")]
    Certificate { host: String, reason: String },
    #[error("proxy {proxy}: {reason}")]
    Proxy { proxy: String, reason: String },
    #[error("sending request to {url}")]
    Send {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("timed out waiting for response headers from {url}")]
    HeadersTimeout { url: String },
    #[error("reading response from {url}")]
    Read {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("no data from {url} for {secs} s")]
    Stalled { url: String, secs: f64 },
    #[error("invalid http response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("tftp transfer of {url} failed: {reason}")]
    Tftp { url: String, reason: String },
    #[error("s3 source {url}: {reason}")]
    S3 { url: String, reason: String },
    #[error("gs source {url}: {reason}")]
    Gs { url: String, reason: String },
    #[error("certificate authority bundle #{index} is invalid: {reason}")]
    CaBundle { index: usize, reason: String },
    #[error("decompressing gzip data")]
    Decompress {
        #[source]
        source: io::Error,
    },
    #[error("content is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("writing fetched data")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("creating a temporary file in {dir}")]
    TempFile {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("renaming the fetched file into {path}")]
    Rename {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("hashing thread failed")]
    HashThread,
}

impl Error {
    /// Whether another attempt may succeed (transport trouble, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Proxy { .. }
            | Error::Send { .. }
            | Error::HeadersTimeout { .. }
            | Error::Read { .. }
            | Error::Stalled { .. }
            | Error::Protocol { .. } => true,
            Error::HttpStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether the resource does not exist (HTTP 404, TFTP "file not found").
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// What to do about the failure, where the error tells (for failure reports).
    pub fn hint(&self) -> Option<&'static str> {
        use Error as E;
        Some(match self {
            E::HashMismatch { .. } => {
                "the fetched data does not match verification.hash: fix the hash or the source (the hash is of the uncompressed data)"
            }
            E::Timeout { .. } | E::HeadersTimeout { .. } | E::Stalled { .. } => {
                "the server did not answer in time: check that it is up and reachable from this machine, or raise ignition.timeouts (httpResponseHeaders, httpTotal)"
            }
            E::Resolve { .. } | E::Connect { .. } | E::Proxy { .. } => {
                "the server cannot be reached: check the URL, the network and ignition.proxy"
            }
            E::Tls { .. } | E::Certificate { .. } | E::CaBundle { .. } => {
                "check the server's certificate and ignition.security.tls.certificateAuthorities"
            }
            E::NotFound { .. } => "check the URL: the server has nothing there",
            E::HttpStatus { .. } => {
                "the server refused the request: check the URL and the httpHeaders it needs"
            }
            E::Decompress { .. } => "the data is not valid gzip: remove \"compression\" or fix the source",
            _ => return None,
        })
    }
}

/// Compression of a resource's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// Hash algorithms a config can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha512,
}

/// An expected hash of the (decompressed) content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    pub algorithm: HashAlgorithm,
    pub expected: Vec<u8>,
}

impl Hash {
    /// Parses a config's `verification.hash` (`sha512-<hex>` or `sha256-<hex>`, any case).
    pub fn parse(s: &str) -> Option<Hash> {
        let (algo, hex) = s.split_once('-')?;
        let algorithm = match algo {
            "sha512" => HashAlgorithm::Sha512,
            "sha256" => HashAlgorithm::Sha256,
            _ => return None,
        };
        let want = match algorithm {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        };
        if hex.len() != want * 2 {
            return None;
        }
        let expected = (0..want)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Hash {
            algorithm,
            expected,
        })
    }
}

/// HTTP method of a request (configs always GET; providers sometimes PUT or POST).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    #[default]
    Get,
    Head,
    Put,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// The URL; empty means empty content.
    pub source: String,
    pub compression: Compression,
    /// HTTP(S) only: replace Ember's default header of the same name (any case); `None`
    /// removes it. Never logged.
    pub headers: Vec<(String, Option<String>)>,
    /// Checked over the decompressed bytes.
    pub hash: Option<Hash>,
    /// HTTP(S) only.
    pub method: Method,
    /// HTTP(S) only: request body.
    pub body: Vec<u8>,
    /// HTTP(S) only: statuses to retry besides 5xx (providers' `RetryCodes`).
    pub retry_statuses: Vec<u16>,
}

impl Resource {
    pub fn new(source: impl Into<String>) -> Resource {
        Resource {
            source: source.into(),
            ..Resource::default()
        }
    }
}

/// Supplies AWS credentials for S3 (e.g. from the EC2 instance role); `None` = anonymous.
pub type AwsCredentialsSource = Arc<dyn Fn() -> Option<AwsCredentials> + Send + Sync>;
/// Supplies a bearer token for `gs://` (e.g. from the GCE metadata server); `None` = anonymous.
pub type TokenSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// How the fetcher behaves. The caller maps the config (`ignition.timeouts`, `.security.tls`,
/// `.proxy`) and the platform onto this.
#[derive(Clone)]
pub struct Options {
    /// Refuse every source that needs the network (all but `data:` and the empty source).
    pub offline: bool,
    /// Wait for response headers; zero = none. Also the longest silence inside a body.
    pub response_headers_timeout: Duration,
    /// Bound on the whole fetch (attempts and body); zero = none.
    pub total_timeout: Duration,
    /// Ember's bound on retrying; `None` = retry until `total_timeout` (forever if zero).
    pub deadline: Option<Duration>,
    /// PEM bundles trusted in addition to the system roots; each must hold only certificates.
    pub ca_bundles: Vec<Vec<u8>>,
    /// Files to look for the system root bundle in (the first that exists is used);
    /// `None` = [`SYSTEM_CA_FILES`], an empty list = no system roots.
    pub system_ca_files: Option<Vec<PathBuf>>,
    pub proxy: ProxyConfig,
    /// `None` sends no User-Agent.
    pub user_agent: Option<String>,
    pub aws_credentials: Option<AwsCredentialsSource>,
    /// Region hint for `s3://` buckets (the aws provider's region); else us-east-1.
    pub aws_region_hint: Option<String>,
    /// S3 endpoint base URL (`http://127.0.0.1:9000`); path-style requests go there.
    pub s3_endpoint: Option<String>,
    pub gcp_token: Option<TokenSource>,
    /// Google Cloud Storage base URL; default `https://storage.googleapis.com`.
    pub gcs_endpoint: Option<String>,
    /// Static name to address entries consulted before DNS, like curl's `--resolve`.
    pub hosts: Vec<(String, IpAddr)>,
    /// Downloads [`Fetcher::fetch_many`] runs at once.
    pub parallelism: usize,
    /// TFTP block size to negotiate (RFC 2348); `None` = plain 512-byte blocks.
    pub tftp_blksize: Option<u16>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            offline: false,
            response_headers_timeout: DEFAULT_RESPONSE_HEADERS_TIMEOUT,
            total_timeout: Duration::ZERO,
            deadline: Some(DEFAULT_DEADLINE),
            ca_bundles: Vec::new(),
            system_ca_files: None,
            proxy: ProxyConfig::default(),
            user_agent: Some(DEFAULT_USER_AGENT.to_string()),
            aws_credentials: None,
            aws_region_hint: None,
            s3_endpoint: None,
            gcp_token: None,
            gcs_endpoint: None,
            hosts: Vec::new(),
            parallelism: DEFAULT_PARALLELISM,
            tftp_blksize: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("offline", &self.offline)
            .field("response_headers_timeout", &self.response_headers_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("deadline", &self.deadline)
            .field("ca_bundles", &self.ca_bundles.len())
            .field("system_ca_files", &self.system_ca_files)
            .field(
                "proxy",
                &(self.proxy.http_proxy.is_some() || self.proxy.https_proxy.is_some()),
            )
            .field("aws_credentials", &self.aws_credentials.is_some())
            .field("aws_region_hint", &self.aws_region_hint)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("gcp_token", &self.gcp_token.is_some())
            .field("gcs_endpoint", &self.gcs_endpoint)
            .field("parallelism", &self.parallelism)
            .finish_non_exhaustive()
    }
}

/// What a successful fetch produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes written (after decompression).
    pub size: u64,
}

/// Where fetched bytes go, and whether a failed attempt can start over.
trait Sink {
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
    /// Drops what was written so far; false when that is impossible.
    fn restart(&mut self) -> Result<bool, Error>;
    /// The source announced `len` bytes (before any is written): a sink with a size limit
    /// refuses at once instead of after downloading up to it.
    fn announced(&mut self, _len: u64) -> Result<(), Error> {
        Ok(())
    }
}

struct WriterSink<'a> {
    w: &'a mut dyn Write,
    written: u64,
}

impl Sink for WriterSink<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.written += data.len() as u64;
        self.w
            .write_all(data)
            .map_err(|source| Error::Write { source })
    }
    fn restart(&mut self) -> Result<bool, Error> {
        Ok(self.written == 0)
    }
}

struct VecSink {
    buf: Vec<u8>,
    max: u64,
}

impl Sink for VecSink {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.buf.len() as u64 + data.len() as u64 > self.max {
            return Err(Error::TooLarge { limit: self.max });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
    fn restart(&mut self) -> Result<bool, Error> {
        self.buf.clear();
        Ok(true)
    }
    fn announced(&mut self, len: u64) -> Result<(), Error> {
        if len > self.max {
            return Err(Error::TooLarge { limit: self.max });
        }
        Ok(())
    }
}

struct FileSink<'a> {
    file: &'a mut File,
    /// Whether the file may hold bytes (from before the fetch or from a failed attempt).
    dirty: bool,
}

impl Sink for FileSink<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.dirty = true;
        self.file
            .write_all(data)
            .map_err(|source| Error::Write { source })
    }
    fn restart(&mut self) -> Result<bool, Error> {
        // Only a file that holds something is truncated: on ext4 (auto_da_alloc) a truncate to
        // zero makes the later close write the whole file back synchronously, which costs a
        // quarter of a second per GiB on the fetching thread for nothing when the file is new.
        if self.dirty {
            self.file
                .set_len(0)
                .and_then(|_| self.file.rewind())
                .map_err(|source| Error::Write { source })?;
            self.dirty = false;
        }
        Ok(true)
    }
}

struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
    fn restart(&mut self) -> Result<bool, Error> {
        Ok(true)
    }
}

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: HashAlgorithm) -> Hasher {
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Hashes on its own thread, so that hashing overlaps reading and writing: with the data
/// arriving on one core and being hashed on another, a download runs at hashing speed.
struct HashThread {
    to: Option<mpsc::SyncSender<(Vec<u8>, usize)>>,
    back: mpsc::Receiver<Vec<u8>>,
    handle: Option<std::thread::JoinHandle<Vec<u8>>>,
    allocated: usize,
}

impl HashThread {
    fn start(mut hasher: Hasher) -> HashThread {
        let (to, rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(HASH_BUFFERS);
        let (back_tx, back) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for (buf, n) in rx {
                hasher.update(&buf[..n]);
                if back_tx.send(buf).is_err() {
                    break;
                }
            }
            hasher.finish()
        });
        HashThread {
            to: Some(to),
            back,
            handle: Some(handle),
            allocated: 1,
        }
    }

    /// Hands `buf` over and returns a free buffer for the next read.
    fn hash(&mut self, buf: Vec<u8>, n: usize) -> Result<Vec<u8>, Error> {
        let to = self.to.as_ref().ok_or(Error::HashThread)?;
        to.send((buf, n)).map_err(|_| Error::HashThread)?;
        if let Ok(free) = self.back.try_recv() {
            return Ok(free);
        }
        if self.allocated < HASH_BUFFERS {
            self.allocated += 1;
            return Ok(vec![0; COPY_BUFFER]);
        }
        self.back.recv().map_err(|_| Error::HashThread)
    }

    fn finish(mut self) -> Result<Vec<u8>, Error> {
        drop(self.to.take());
        self.handle
            .take()
            .ok_or(Error::HashThread)?
            .join()
            .map_err(|_| Error::HashThread)
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        drop(self.to.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    s3::hex(bytes)
}

/// Reads until `buf` is full or the reader ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decompresses, hashes and writes `reader`'s bytes; checks the hash at the end.
fn copy_verified(
    reader: &mut dyn Read,
    res: &Resource,
    sink: &mut dyn Sink,
    display: &str,
    threaded: bool,
) -> Result<u64, Error> {
    let mut gz;
    let reader: &mut dyn Read = match res.compression {
        Compression::None => reader,
        Compression::Gzip => {
            gz = flate2::read::MultiGzDecoder::new(reader);
            &mut gz
        }
    };
    let map_read = |e: io::Error| match http::uncarry(e) {
        Ok(err) => err,
        Err(source) if res.compression == Compression::Gzip => Error::Decompress { source },
        Err(source) => Error::Read {
            url: display.to_string(),
            source,
        },
    };
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
    let digest = match (&res.hash, threaded) {
        (None, _) => {
            loop {
                let n = read_full(reader, &mut buf).map_err(map_read)?;
                if n == 0 {
                    break;
                }
                sink.write(&buf[..n])?;
                size += n as u64;
            }
            return Ok(size);
        }
        (Some(hash), false) => {
            let mut hasher = Hasher::new(hash.algorithm);
            loop {
                let n = read_full(reader, &mut buf).map_err(map_read)?;
                if n == 0 {
                    break;
                }
                sink.write(&buf[..n])?;
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            hasher.finish()
        }
        (Some(hash), true) => {
            let mut thread = HashThread::start(Hasher::new(hash.algorithm));
            loop {
                let n = read_full(reader, &mut buf).map_err(map_read)?;
                if n == 0 {
                    break;
                }
                sink.write(&buf[..n])?;
                size += n as u64;
                buf = thread.hash(buf, n)?;
            }
            thread.finish()?
        }
    };
    if let Some(hash) = &res.hash {
        if digest != hash.expected {
            return Err(Error::HashMismatch {
                calculated: hex(&digest),
                expected: hex(&hash.expected),
            });
        }
    }
    Ok(size)
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers Ember writes itself; a configured one would corrupt the framing.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

fn configured_headers(res: &Resource) -> Result<Vec<(String, Option<String>)>, Error> {
    let mut out = Vec::with_capacity(res.headers.len());
    for (name, value) in &res.headers {
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let bad_value = value
            .as_deref()
            .is_some_and(|v| v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
        if !is_token(name) || bad_value {
            return Err(Error::InvalidHeader { name: shown });
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            log::warn!("ignoring configured http header {shown:?}: Ember sets it itself");
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

/// `d` give or take a quarter, so machines that fail together do not retry in step.
pub(crate) fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let r = h.finish() % 1000; // 0..999
    d.mul_f64(0.75 + r as f64 / 2000.0)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Go's `url.PathEscape`: escapes everything but unreserved characters and `$&+:=@`.
fn path_escape(bytes: &[u8]) -> String {
    url::percent_encode(bytes, b"$&+:=@")
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Fetches resources. Cheap to share between threads (`&Fetcher` is `Sync`).
pub struct Fetcher {
    opts: Options,
    tls: Arc<rustls::ClientConfig>,
    proxies: proxy::Proxies,
    base_headers: Vec<(String, String)>,
    /// Bucket name to region, from `GetBucketRegion` probes.
    regions: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds a fetcher; fails on a CA bundle or proxy address that does not parse.
    pub fn new(opts: Options) -> Result<Fetcher, Error> {
        let tls = tls::client_config(opts.system_ca_files.as_deref(), &opts.ca_bundles)?;
        let proxies = proxy::Proxies::new(&opts.proxy)?;
        let mut base_headers = Vec::new();
        if let Some(ua) = &opts.user_agent {
            if ua.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(Error::InvalidHeader {
                    name: "User-Agent".into(),
                });
            }
            base_headers.push(("User-Agent".to_string(), ua.clone()));
        }
        base_headers.push(("Accept".to_string(), ACCEPT.to_string()));
        base_headers.push(("Accept-Encoding".to_string(), "identity".to_string()));
        Ok(Fetcher {
            opts,
            tls,
            proxies,
            base_headers,
            regions: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Streams the resource into `w` (see the module docs for the writer contract: on a hash
    /// mismatch `w` has received everything; write to a temporary file and rename on `Ok`).
    /// A failure before anything was written is retried; after that it is returned.
    pub fn fetch_to(&self, res: &Resource, w: &mut dyn Write) -> Result<Outcome, Error> {
        let mut sink = WriterSink { w, written: 0 };
        let size = self.fetch_into(res, &mut sink)?;
        Ok(Outcome { size })
    }

    /// Fetches into `file` from its start, truncating it when an attempt has to start over.
    /// The file must be open for writing and hold nothing of value.
    pub fn fetch_to_file(&self, res: &Resource, file: &mut File) -> Result<Outcome, Error> {
        let dirty = file
            .metadata()
            .and_then(|m| Ok(m.len() > 0 || file.stream_position()? > 0))
            .map_err(|source| Error::Write { source })?;
        let mut sink = FileSink { file, dirty };
        sink.restart()?;
        let size = self.fetch_into(res, &mut sink)?;
        Ok(Outcome { size })
    }

    /// Fetches into a temporary file next to `dest` (created with `mode`, umask not applied)
    /// and renames it to `dest` only once the content is complete and verified. On any error
    /// the temporary file is removed and `dest` is untouched. The file is not fsynced: callers
    /// sync the filesystem once at the end of their stage.
    pub fn fetch_to_file_atomic(
        &self,
        res: &Resource,
        dest: &Path,
        mode: u32,
    ) -> Result<Outcome, Error> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = dest
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(100).collect::<String>())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{base}.ember-{}-{n}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|source| Error::TempFile {
                dir: dir.clone(),
                source,
            })?;
        let result = file
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|source| Error::Write { source })
            .and_then(|_| self.fetch_to_file(res, &mut file));
        drop(file);
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(source) = std::fs::rename(&tmp, dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Rename {
                path: dest.to_path_buf(),
                source,
            });
        }
        Ok(outcome)
    }

    /// Fetches a whole resource into memory (configs, CA bundles, key files).
    /// `Ok(None)` when it does not exist (404); [`Error::TooLarge`] past `max_len` bytes.
    pub fn fetch_bytes(&self, res: &Resource, max_len: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.fetch_limited(res, max_len) {
            Ok(data) => Ok(Some(data)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Fetcher::fetch_bytes`] for a resource that must exist: a 404 is an error too.
    pub fn fetch_limited(&self, res: &Resource, max_len: u64) -> Result<Vec<u8>, Error> {
        let mut sink = VecSink {
            buf: Vec::new(),
            max: max_len,
        };
        self.fetch_into(res, &mut sink).map(|_| sink.buf)
    }

    /// Runs `f` over `items` on up to `options.parallelism` threads; results keep the order of
    /// `items`. Typical use: `fetcher.fetch_many(files, |f, (res, path, mode)|
    /// f.fetch_to_file_atomic(&res, &path, mode))`.
    pub fn fetch_many<T, R, F>(&self, items: Vec<T>, f: F) -> Vec<R>
    where
        T: Send,
        R: Send,
        F: Fn(&Fetcher, T) -> R + Sync,
    {
        let count = items.len();
        let workers = self.opts.parallelism.clamp(1, count.max(1));
        let queue = Mutex::new(items.into_iter().enumerate());
        let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.next(),
                        Err(_) => None,
                    };
                    let Some((i, item)) = next else { break };
                    let r = f(self, item);
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(r);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect()
    }

    fn limits(&self, start: Instant) -> Limits {
        let hard = nonzero(self.opts.total_timeout).map(|t| start + t);
        let ember = self.opts.deadline.map(|d| start + d);
        let retry = match (hard, ember) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let headers = nonzero(self.opts.response_headers_timeout);
        Limits {
            hard,
            retry,
            headers,
            idle: Some(headers.unwrap_or(STALL_TIMEOUT_WITHOUT_HEADERS_TIMEOUT)),
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            tls: &self.tls,
            proxies: &self.proxies,
            hosts: &self.opts.hosts,
        }
    }

    fn fetch_into(&self, res: &Resource, sink: &mut dyn Sink) -> Result<u64, Error> {
        let start = Instant::now();
        if res.source.is_empty() {
            // Nothing to fetch, so nothing to decompress; a hash still has to match "".
            let plain = Resource {
                compression: Compression::None,
                ..res.clone()
            };
            return copy_verified(&mut io::empty(), &plain, sink, "empty source", false);
        }
        let url = Url::parse(&res.source).map_err(|e| Error::InvalidUrl { reason: e.0.into() })?;
        match url.scheme.as_str() {
            "data" => {
                let decoded =
                    dataurl::decode(&res.source).map_err(|source| Error::DataUrl { source })?;
                return copy_verified(&mut &decoded.data[..], res, sink, "data url", false);
            }
            "s3" | "arn" if res.compression != Compression::None => {
                return Err(Error::CompressionUnsupported)
            }
            "http" | "https" | "tftp" | "s3" | "arn" | "gs" => {}
            other => {
                return Err(Error::UnsupportedScheme {
                    scheme: other.into(),
                })
            }
        }
        if self.opts.offline {
            return Err(Error::NeedsNetwork {
                url: url.redacted(),
            });
        }
        let limits = self.limits(start);
        match url.scheme.as_str() {
            "http" | "https" => {
                if url.host.is_empty() {
                    return Err(Error::InvalidUrl {
                        reason: "missing host".into(),
                    });
                }
                let mut extra = configured_headers(res)?;
                // Like Go's client: credentials in the URL become basic auth, unless the config
                // sets an Authorization header itself.
                if let Some(userinfo) = &url.userinfo {
                    if !extra
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                    {
                        extra.insert(0, ("Authorization".into(), Some(url::basic_auth(userinfo))));
                    }
                }
                self.fetch_http(res, sink, &limits, &url.redacted(), &|| {
                    Ok((url.clone(), extra.clone()))
                })
            }
            "gs" => {
                let gs_url = self.gs_url(&url)?;
                let token = self.opts.gcp_token.clone();
                self.fetch_http(res, sink, &limits, &url.redacted(), &|| {
                    let auth = token
                        .as_ref()
                        .and_then(|t| t())
                        .map(|t| ("Authorization".to_string(), Some(format!("Bearer {t}"))));
                    Ok((gs_url.clone(), auth.into_iter().collect()))
                })
            }
            "s3" | "arn" => {
                let obj = s3::S3Object::parse(&url)?;
                let region = self.s3_region(&obj, &limits)?;
                let endpoint = self.opts.s3_endpoint.as_deref();
                let obj_url = obj.object_url(endpoint, &region)?;
                log::debug!("{} is {} in {region}", obj.display, obj_url.redacted());
                self.fetch_http(res, sink, &limits, &obj.display, &|| {
                    let creds = self.opts.aws_credentials.as_ref().and_then(|c| c());
                    let headers = match creds {
                        Some(creds) => {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default()
                                .as_secs();
                            s3::sign_get(&obj_url, &creds, &region, &s3::amz_date(now))
                        }
                        None => Vec::new(),
                    };
                    Ok((obj_url.clone(), headers))
                })
            }
            "tftp" => {
                let display = url.redacted();
                self.retrying(&display, &limits, &[], sink, |sink| {
                    let mut t = tftp::Tftp::open(
                        &url,
                        &self.opts.hosts,
                        self.opts.tftp_blksize,
                        limits.hard,
                    )?;
                    copy_verified(&mut t, res, sink, &display, true)
                })
            }
            _ => Err(Error::UnsupportedScheme {
                scheme: url.scheme.clone(),
            }),
        }
    }

    fn gs_url(&self, url: &Url) -> Result<Url, Error> {
        let bad = |reason: &str| Error::Gs {
            url: url.redacted(),
            reason: reason.into(),
        };
        if url.host.is_empty() {
            return Err(bad("missing bucket name"));
        }
        let object = url::percent_decode(url.path.strip_prefix('/').unwrap_or(&url.path))
            .map_err(|e| bad(e.0))?;
        if object.is_empty() {
            return Err(bad("missing object name"));
        }
        let base = self
            .opts
            .gcs_endpoint
            .as_deref()
            .unwrap_or("https://storage.googleapis.com")
            .trim_end_matches('/');
        let s = format!(
            "{base}/storage/v1/b/{}/o/{}?alt=media",
            url.host,
            path_escape(&object)
        );
        Url::parse(&s).map_err(|e| bad(e.0))
    }

    /// The bucket's region: from the access point, the cache, or a `GetBucketRegion`-style
    /// `HEAD` (anonymous) that reads `x-amz-bucket-region`.
    fn s3_region(&self, obj: &s3::S3Object, limits: &Limits) -> Result<String, Error> {
        let bucket = match &obj.bucket {
            s3::Bucket::AccessPoint { region, .. } => return Ok(region.clone()),
            s3::Bucket::Named(b) => b,
        };
        if let Some(r) = self
            .regions
            .lock()
            .ok()
            .and_then(|m| m.get(bucket).cloned())
        {
            return Ok(r);
        }
        let hint = obj
            .partition_default_region()
            .map(str::to_string)
            .or_else(|| self.opts.aws_region_hint.clone())
            .unwrap_or_else(|| "us-east-1".to_string());
        let Some(probe) = obj.probe_url(self.opts.s3_endpoint.as_deref(), &hint)? else {
            return Ok(hint);
        };
        let client = self.client();
        let found = self.retrying(&probe.redacted(), limits, &[], &mut NullSink, |_| {
            let req = Request {
                method: "HEAD",
                url: &probe,
                base_headers: &self.base_headers,
                extra_headers: &[],
                body: &[],
                follow_redirects: false,
            };
            let (_, resp) = client.request(&req, limits)?;
            if resp.status >= 500 {
                return Err(Error::HttpStatus {
                    url: probe.redacted(),
                    status: resp.status,
                });
            }
            Ok(resp.header("x-amz-bucket-region").map(str::to_string))
        })?;
        let region = match found {
            Some(r) if !r.is_empty() => r,
            _ => {
                log::warn!(
                    "{}: no bucket region in the reply; using {hint}",
                    obj.display
                );
                hint
            }
        };
        if let Ok(mut m) = self.regions.lock() {
            m.insert(bucket.clone(), region.clone());
        }
        Ok(region)
    }

    #[allow(clippy::type_complexity)]
    fn fetch_http(
        &self,
        res: &Resource,
        sink: &mut dyn Sink,
        limits: &Limits,
        display: &str,
        target: &dyn Fn() -> Result<(Url, Vec<(String, Option<String>)>), Error>,
    ) -> Result<u64, Error> {
        let client = self.client();
        self.retrying(display, limits, &res.retry_statuses, sink, |sink| {
            let (url, extra) = target()?;
            let req = Request {
                method: res.method.as_str(),
                url: &url,
                base_headers: &self.base_headers,
                extra_headers: &extra,
                body: &res.body,
                follow_redirects: true,
            };
            let (final_url, mut resp) = client.request(&req, limits)?;
            let status = resp.status;
            let retry_this = res.retry_statuses.contains(&status);
            if let (200, Compression::None, Some(n)) =
                (status, res.compression, resp.body.announced_len())
            {
                if !retry_this {
                    sink.announced(n)?;
                }
            }
            match status {
                200 | 204 if !retry_this => copy_verified(
                    &mut resp.body,
                    res,
                    sink,
                    &final_url.redacted(),
                    res.hash.is_some(),
                ),
                404 if !retry_this => Err(Error::NotFound {
                    url: final_url.redacted(),
                }),
                _ => Err(Error::HttpStatus {
                    url: final_url.redacted(),
                    status,
                }),
            }
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry deadline passes.
    fn retrying<T>(
        &self,
        display: &str,
        limits: &Limits,
        retry_statuses: &[u16],
        sink: &mut dyn Sink,
        mut attempt: impl FnMut(&mut dyn Sink) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut backoff = INITIAL_BACKOFF;
        let mut n = 0u64;
        loop {
            n += 1;
            log::info!("fetching {display}: attempt #{n}");
            let err = match attempt(sink) {
                Ok(v) => {
                    log::debug!("fetching {display}: done");
                    return Ok(v);
                }
                Err(e) => e,
            };
            let retryable = err.is_retryable()
                || matches!(&err, Error::HttpStatus { status, .. } if retry_statuses.contains(status));
            if !retryable || !sink.restart()? {
                return Err(err);
            }
            let delay = jitter(backoff);
            if limits.retry.is_some_and(|r| Instant::now() + delay >= r) {
                return Err(Error::Timeout {
                    url: display.to_string(),
                    last: Some(Box::new(err)),
                });
            }
            log::warn!(
                "fetching {display}: {}; retrying in {} ms",
                chain(&err),
                delay.as_millis()
            );
            std::thread::sleep(delay);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(opts: Options) -> Fetcher {
        Fetcher::new(Options {
            system_ca_files: Some(Vec::new()),
            ..opts
        })
        .unwrap()
    }

    fn sha512(data: &[u8]) -> Hash {
        Hash {
            algorithm: HashAlgorithm::Sha512,
            expected: sha2::Sha512::digest(data).to_vec(),
        }
    }

    #[test]
    fn hash_parsing() {
        let h = Hash::parse(&format!("sha256-{}", "aB".repeat(32))).unwrap();
        assert_eq!(h.algorithm, HashAlgorithm::Sha256);
        assert_eq!(h.expected, vec![0xab; 32]);
        assert!(Hash::parse("sha256-abc").is_none());
        assert!(Hash::parse(&format!("md5-{}", "00".repeat(16))).is_none());
        assert!(Hash::parse(&format!("sha512-{}", "zz".repeat(64))).is_none());
    }

    #[test]
    fn empty_and_data_sources() {
        let f = fetcher(Options::default());
        assert_eq!(f.fetch_bytes(&Resource::new(""), 10).unwrap().unwrap(), b"");
        let res = Resource::new("data:,hello");
        assert_eq!(f.fetch_bytes(&res, 10).unwrap().unwrap(), b"hello");
        let err = f.fetch_bytes(&res, 3).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 3 }), "{err}");
        let err = f
            .fetch_bytes(&Resource::new("data:nocomma"), 10)
            .unwrap_err();
        assert!(matches!(err, Error::DataUrl { .. }), "{err}");
    }

    #[test]
    fn gzip_and_hash_over_decompressed_bytes() {
        use flate2::write::GzEncoder;
        let plain = b"hello gzip world\n".repeat(1000);
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        use base64::Engine as _;
        let src = format!(
            "data:;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&gz)
        );
        let f = fetcher(Options::default());
        let mut res = Resource {
            source: src,
            compression: Compression::Gzip,
            hash: Some(sha512(&plain)),
            ..Resource::default()
        };
        assert_eq!(f.fetch_bytes(&res, u64::MAX).unwrap().unwrap(), plain);
        // The hash of the compressed bytes is not what is checked.
        res.hash = Some(sha512(&gz));
        let err = f.fetch_bytes(&res, u64::MAX).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("hash verification failed (calculated "),
            "{err}"
        );
        // Not gzip at all.
        res.source = "data:,plain".into();
        res.hash = None;
        let err = f.fetch_bytes(&res, u64::MAX).unwrap_err();
        assert!(matches!(err, Error::Decompress { .. }), "{err}");
    }

    #[test]
    fn empty_source_ignores_compression_but_not_the_hash() {
        let f = fetcher(Options::default());
        let mut res = Resource {
            compression: Compression::Gzip,
            ..Resource::default()
        };
        assert_eq!(f.fetch_bytes(&res, 0).unwrap().unwrap(), b"");
        res.hash = Some(sha512(b"not empty"));
        assert!(matches!(
            f.fetch_bytes(&res, 0),
            Err(Error::HashMismatch { .. })
        ));
    }

    #[test]
    fn hash_mismatch_message() {
        let f = fetcher(Options::default());
        let res = Resource {
            source: "data:,abc".into(),
            hash: Some(Hash {
                algorithm: HashAlgorithm::Sha256,
                expected: vec![0; 32],
            }),
            ..Resource::default()
        };
        let err = f.fetch_bytes(&res, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hash verification failed (calculated \
                 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad but expected {})",
                "0".repeat(64)
            )
        );
    }

    #[test]
    fn scheme_errors_and_offline() {
        let f = fetcher(Options {
            offline: true,
            ..Options::default()
        });
        let err = f.fetch_bytes(&Resource::new("ftp://x/y"), 10).unwrap_err();
        assert_eq!(err.to_string(), "unsupported source scheme \"ftp\"");
        for src in [
            "http://h/x?secret=1",
            "https://h/x",
            "tftp://h/x",
            "s3://b/k",
            "gs://b/o",
            "arn:aws:s3:::b/k",
        ] {
            let err = f.fetch_bytes(&Resource::new(src), 10).unwrap_err();
            assert!(matches!(err, Error::NeedsNetwork { .. }), "{src}: {err}");
            assert!(!err.to_string().contains("secret"));
        }
        assert_eq!(
            f.fetch_bytes(&Resource::new("data:,x"), 10)
                .unwrap()
                .unwrap(),
            b"x"
        );
        let res = Resource {
            source: "s3://b/k".into(),
            compression: Compression::Gzip,
            ..Resource::default()
        };
        assert_eq!(
            f.fetch_bytes(&res, 10).unwrap_err().to_string(),
            "compression is not supported with that scheme"
        );
    }

    #[test]
    fn bad_headers_are_rejected_without_their_value() {
        let f = fetcher(Options::default());
        let res = Resource {
            source: "http://127.0.0.1:1/".into(),
            headers: vec![("X-Token".into(), Some("secret\r\nInjected: 1".into()))],
            ..Resource::default()
        };
        let err = f.fetch_bytes(&res, 10).unwrap_err();
        assert_eq!(err.to_string(), "invalid http header \"X-Token\"");
        let res = Resource {
            source: "http://127.0.0.1:1/".into(),
            headers: vec![("Bad Name".into(), Some("v".into()))],
            ..Resource::default()
        };
        assert!(matches!(
            f.fetch_bytes(&res, 10),
            Err(Error::InvalidHeader { .. })
        ));
    }

    #[test]
    fn gs_urls_escape_the_object() {
        let f = fetcher(Options::default());
        let u = f
            .gs_url(&Url::parse("gs://bucket/dir/a b+c.ign").unwrap())
            .unwrap();
        assert_eq!(
            u.absolute_target(),
            "https://storage.googleapis.com/storage/v1/b/bucket/o/dir%2Fa%20b+c.ign?alt=media"
        );
        assert!(f.gs_url(&Url::parse("gs://bucket/").unwrap()).is_err());
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(750) && d < Duration::from_millis(1250));
        }
    }

    #[test]
    fn limits_follow_options() {
        let f = fetcher(Options {
            response_headers_timeout: Duration::ZERO,
            total_timeout: Duration::from_secs(2),
            deadline: Some(Duration::from_secs(60)),
            ..Options::default()
        });
        let now = Instant::now();
        let l = f.limits(now);
        assert_eq!(l.hard, Some(now + Duration::from_secs(2)));
        assert_eq!(l.retry, l.hard);
        assert_eq!(l.headers, None);
        assert_eq!(l.idle, Some(STALL_TIMEOUT_WITHOUT_HEADERS_TIMEOUT));
        let f = fetcher(Options {
            deadline: None,
            ..Options::default()
        });
        let l = f.limits(now);
        assert_eq!((l.hard, l.retry), (None, None));
    }

    #[test]
    fn fetch_many_keeps_order() {
        let f = fetcher(Options {
            parallelism: 3,
            ..Options::default()
        });
        let items: Vec<String> = (0..10).map(|i| format!("data:,{i}")).collect();
        let out = f.fetch_many(items, |f, src| f.fetch_bytes(&Resource::new(src), 10));
        let got: Vec<Vec<u8>> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
        let want: Vec<Vec<u8>> = (0..10).map(|i| i.to_string().into_bytes()).collect();
        assert_eq!(got, want);
    }
}
