//! The status webhook: after each stage, a small JSON document POSTed to a URL given on the
//! kernel command line, so that whoever provisions a fleet learns how each machine's boot went,
//! even when no config could be fetched.
//!
//! `ember.status_url=<http or https URL>` on the kernel command line (`/proc/cmdline`, or
//! `IGNITION_KERNEL_CMDLINE_PATH`; the last occurrence wins) turns it on. After every stage run,
//! passed or failed, Ember POSTs (`Content-Type: application/json`):
//!
//! ```json
//! {"ember":"0.1.0","bootId":"3f1c…","platform":"qemu","stage":"disks","result":"failed",
//!  "startedAt":1714550400,"durationMs":5120,
//!  "error":{"operation":"planning the partitions of /dev/vda","rootCause":"partition 2 does not fit: …",
//!           "path":"$.storage.disks.0.partitions.1","config":"the user config from …",
//!           "hint":"…","chain":"planning the partitions of /dev/vda: /dev/vda: partition 2 …"}}
//! ```
//!
//! `result` is `passed`, `neednet` or `failed`; `error` is `null` unless the stage failed. The
//! document holds no config contents: texts come from errors (paths, JSON paths, redacted URLs),
//! and every URL in them is redacted again ([`super::report::scrub`]).
//!
//! Delivery goes through the fetcher (retries with backoff on 5xx and transport errors), bounded
//! by [`Webhook::timeout`] in all (10 s, `EMBER_STATUS_TIMEOUT` in seconds). Failures are logged
//! as warnings and never fail a stage. Offline stages never wait for it: in fetch-offline, and
//! whenever the webhook's host has no route (the network is not up yet), the document is queued
//! in a file (mode 0600, next to the status file) and sent, oldest first, by the next stage that
//! has a route.

use crate::logging::chain;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config;
use crate::fetch;
use crate::providers::cmdline::redact_url;

/// The kernel argument that names the webhook.
pub const CMDLINE_KEY: &str = "ember.status_url";
/// The overall time one stage spends on the webhook (all documents, all attempts).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable overriding [`DEFAULT_TIMEOUT`] (seconds, fractions allowed).
pub const TIMEOUT_ENV: &str = "EMBER_STATUS_TIMEOUT";
/// Most documents kept in the queue (the oldest are dropped).
pub const MAX_QUEUED: usize = 64;
/// Where queued documents wait when there is no status file to put them next to.
pub const DEFAULT_QUEUE: &str = "/run/ember/webhook-queue.json";

/// Whether the stage may use the network for the webhook now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// fetch-offline, or a boot that has not brought the network up: queue.
    Offline,
    /// Try to send, if the host has a route; queue otherwise.
    Online,
}

/// A configured webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The URL as given (it may carry a token: only shown redacted).
    url: String,
    pub timeout: Duration,
    /// Where documents wait while offline; `None` drops them instead.
    pub queue: Option<PathBuf>,
    /// Fetcher options (the platform's adjustments); timeouts are set from `timeout`.
    pub fetch_options: fetch::Options,
}

/// Why a `ember.status_url` value is not used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{CMDLINE_KEY} must be an http or https URL, not {0}")]
    NotHttp(String),
    #[error("sending the status to {url}")]
    Send {
        url: String,
        #[source]
        source: fetch::Error,
    },
    #[error("the status webhook {url} has no route (the network is not up)")]
    NoRoute { url: String },
}

/// The value of the last `ember.status_url=` on a kernel command line; an empty value is
/// absent.
pub fn url_from_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .filter_map(|f| f.strip_prefix(CMDLINE_KEY)?.strip_prefix('='))
        .next_back()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The overall time from `EMBER_STATUS_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Duration {
    super::secs_from_env(TIMEOUT_ENV).unwrap_or(DEFAULT_TIMEOUT)
}

impl Webhook {
    /// A webhook for `url` (must be http or https).
    pub fn new(url: impl Into<String>) -> Result<Webhook, Error> {
        let url = url.into();
        let scheme = config::url::scheme_of(&url).unwrap_or_default();
        let host_ok = config::url::parse(&url).is_ok_and(|u| !u.hostname().is_empty());
        if !matches!(scheme.as_str(), "http" | "https") || !host_ok {
            return Err(Error::NotHttp(redact_url(&url)));
        }
        Ok(Webhook {
            url,
            timeout: timeout_from_env(),
            queue: Some(PathBuf::from(DEFAULT_QUEUE)),
            fetch_options: fetch::Options::default(),
        })
    }

    /// The webhook named on the kernel command line at `cmdline_path`, if any. A value that is
    /// not an http(s) URL is logged and ignored.
    pub fn from_cmdline(cmdline_path: &Path) -> Option<Webhook> {
        let text = std::fs::read(cmdline_path).ok()?;
        let url = url_from_cmdline(&String::from_utf8_lossy(&text))?;
        match Webhook::new(url) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("ignoring the status webhook: {e}");
                None
            }
        }
    }

    /// The URL as logs show it (no userinfo, query or fragment).
    pub fn shown_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Delivers `doc` (and, first, whatever is queued) when the network allows, else queues it.
    /// Never fails: problems are logged as warnings.
    pub fn notify(&self, doc: &serde_json::Value, network: Network) {
        let mut pending = self.take_queue();
        pending.push(doc.clone());
        // The route check (a name lookup) counts against the timeout too.
        let started = Instant::now();
        let route = network == Network::Online && self.has_route(self.timeout);
        if !route {
            log::info!(
                "status webhook {}: no network yet; queued the status of this stage",
                self.shown_url()
            );
            self.keep_queue(&pending);
            return;
        }
        let mut left = Vec::new();
        for (i, d) in pending.iter().enumerate() {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                left.extend(pending[i..].iter().cloned());
                log::warn!(
                    "status webhook {}: out of time ({:?}); {} status documents stay queued",
                    self.shown_url(),
                    self.timeout,
                    left.len()
                );
                break;
            }
            match self.send(d, remaining) {
                Ok(()) => log::debug!("status webhook {}: delivered", self.shown_url()),
                Err(e) => {
                    log::warn!("status webhook: {}", super::report::scrub(&chain(&e)));
                    // Keep the rest for the next stage; the current one too.
                    left.extend(pending[i..].iter().cloned());
                    break;
                }
            }
        }
        self.keep_queue(&left);
    }

    /// One POST with retries, bounded by `within`.
    pub fn send(&self, doc: &serde_json::Value, within: Duration) -> Result<(), Error> {
        let mut o = self.fetch_options.clone();
        o.offline = false;
        o.total_timeout = within;
        o.deadline = Some(within);
        o.response_headers_timeout = within.min(fetch::DEFAULT_RESPONSE_HEADERS_TIMEOUT);
        let shown = self.shown_url();
        let fetcher = fetch::Fetcher::new(o).map_err(|source| Error::Send {
            url: shown.clone(),
            source,
        })?;
        let mut res = fetch::Resource::new(self.url.clone());
        res.method = fetch::Method::Post;
        res.body = serde_json::to_vec(doc).unwrap_or_default();
        res.headers = vec![(
            "Content-Type".to_string(),
            Some("application/json".to_string()),
        )];
        // The answer's body is not ours to keep (nor to limit): a 2xx means delivered.
        fetcher
            .fetch_to(&res, &mut std::io::sink())
            .map(|_| ())
            .map_err(|source| Error::Send { url: shown, source })
    }

    /// Whether the kernel has a route to the webhook's host (a UDP "connect" sends nothing),
    /// decided within `within`. A host name is resolved first, as the fetcher does (static
    /// hosts, then the system resolver), on a helper thread so that a slow DNS server cannot
    /// hold the stage longer; a name that does not resolve in time counts as no route.
    pub fn has_route(&self, within: Duration) -> bool {
        let Ok(u) = config::url::parse(&self.url) else {
            return false;
        };
        let port: u16 = u.port().parse().unwrap_or(match u.scheme.as_str() {
            "https" => 443,
            _ => 80,
        });
        let host = u.hostname().to_string();
        let hosts = self.fetch_options.hosts.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(fetch::resolve(&hosts, &host, port));
        });
        let Ok(Ok(addrs)) = rx.recv_timeout(within) else {
            return false;
        };
        addrs.iter().any(|a| {
            let any: SocketAddr = match a {
                SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            UdpSocket::bind(any).and_then(|s| s.connect(a)).is_ok()
        })
    }

    fn take_queue(&self) -> Vec<serde_json::Value> {
        let Some(q) = &self.queue else {
            return Vec::new();
        };
        match std::fs::read(q) {
            Ok(b) => match serde_json::from_slice::<Vec<serde_json::Value>>(&b) {
                Ok(v) => v,
                Err(_) => {
                    log::warn!(
                        "status webhook: ignoring the unreadable queue {}",
                        q.display()
                    );
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        }
    }

    fn keep_queue(&self, docs: &[serde_json::Value]) {
        let Some(q) = &self.queue else {
            return;
        };
        if docs.is_empty() {
            match std::fs::remove_file(q) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("status webhook: removing the queue {}: {e}", q.display()),
            }
            return;
        }
        let docs = &docs[docs.len().saturating_sub(MAX_QUEUED)..];
        let bytes = serde_json::to_vec(docs).unwrap_or_default();
        if let Err(e) = super::state::write_private_atomic(q, &bytes) {
            log::warn!("status webhook: writing the queue {}: {e}", q.display());
        }
    }
}

/// The document for one stage run.
pub struct Event<'a> {
    pub platform: &'a str,
    pub stage: &'a str,
    /// `passed`, `neednet` or `failed`.
    pub result: &'a str,
    /// Unix seconds.
    pub started_at: u64,
    pub duration: Duration,
    /// The failure, when the stage failed.
    pub error: Option<&'a super::report::Report>,
    /// The failure's whole chain.
    pub chain: Option<&'a str>,
    pub boot_id: Option<String>,
}

impl Event<'_> {
    pub fn to_json(&self) -> serde_json::Value {
        let error = self.error.map(|r| {
            let mut v = r.to_json();
            if let Some(o) = v.as_object_mut() {
                o.remove("details");
                o.insert(
                    "chain".into(),
                    self.chain
                        .map(|c| super::report::scrub(c).into())
                        .unwrap_or(serde_json::Value::Null),
                );
            }
            v
        });
        serde_json::json!({
            "ember": crate::cli::VERSION,
            "bootId": self.boot_id,
            "platform": self.platform,
            "stage": self.stage,
            "result": self.result,
            "startedAt": self.started_at,
            "durationMs": self.duration.as_millis() as u64,
            "error": error,
        })
    }
}

/// The boot id (`/proc/sys/kernel/random/boot_id`), trimmed.
pub fn boot_id(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_key() {
        assert_eq!(url_from_cmdline("quiet root=/dev/vda"), None);
        assert_eq!(
            url_from_cmdline("a ember.status_url=http://h/x ember.status_url=https://h/y?t=1 b")
                .as_deref(),
            Some("https://h/y?t=1")
        );
        assert_eq!(url_from_cmdline("ember.status_url="), None);
        assert_eq!(url_from_cmdline("ember.status_urlx=http://h/"), None);
        assert!(Webhook::new("http://127.0.0.1:1/s").is_ok());
        let e = Webhook::new("file:///etc/passwd?x=secret").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ember.status_url must be an http or https URL, not file:///etc/passwd"
        );
        assert!(Webhook::new("http:///nohost").is_err());
    }

    #[test]
    fn offline_documents_are_queued_then_sent_in_order() {
        let dir = std::env::temp_dir().join(format!("ember-webhook-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = Webhook::new("http://127.0.0.1:9/status").unwrap();
        w.queue = Some(dir.join("q.json"));
        w.timeout = Duration::from_millis(300);
        for i in 0..3 {
            w.notify(&serde_json::json!({ "n": i }), Network::Offline);
        }
        let q: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.join("q.json")).unwrap()).unwrap();
        assert_eq!(q.len(), 3);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("q.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Port 9 refuses: the documents stay queued, with the new one last.
        w.notify(&serde_json::json!({ "n": 3 }), Network::Online);
        let q: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.join("q.json")).unwrap()).unwrap();
        assert_eq!(
            q.iter()
                .map(|d| d["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
