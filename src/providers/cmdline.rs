//! The kernel command line as a config source, tried before anything else in the fetch stages:
//!
//! - `ignition.config.url=URL`: the config is fetched from URL (no hash to check);
//! - `ignition.config.device=LABEL` with `ignition.config.path=PATH`: the filesystem labelled
//!   LABEL is waited for (at most 30 s), mounted read-only (nodev, nosuid, noexec) with the
//!   config drives' code ([`super::configdrive`]), and PATH read from it; a missing PATH is
//!   an error.
//!
//! Arguments are split on whitespace and the last occurrence of a key wins. A URL takes
//! precedence over a device (with a warning). A device without a path, or a path without a
//! device, is an error. `Ok(None)` from [`fetch`] means the command line names no config, and
//! the engine tries the next source.
//!
//! This is not a [`super::Provider`]: "nothing here" means "try the next source", not "no
//! config".

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::configdrive;
use crate::fetch;

pub const URL_KEY: &str = "ignition.config.url";
pub const DEVICE_KEY: &str = "ignition.config.device";
pub const PATH_KEY: &str = "ignition.config.path";
/// How long to wait for the labelled device.
pub const DEVICE_WAIT: Duration = Duration::from_secs(30);
use crate::config::MAX_CONFIG_SIZE as MAX_CONFIG;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the kernel command line {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{DEVICE_KEY} is set but {PATH_KEY} is not")]
    DeviceWithoutPath,
    #[error("{PATH_KEY} is set but {DEVICE_KEY} is not")]
    PathWithoutDevice,
    #[error("{DEVICE_KEY}={label:?} must be a single path component")]
    BadLabel { label: String },
    #[error("fetching the config from {url}")]
    Fetch {
        /// Redacted (no userinfo, query or data payload).
        url: String,
        #[source]
        source: fetch::Error,
    },
    #[error("the config at {url} does not exist")]
    NotFound { url: String },
    #[error("no filesystem labelled {label:?} appeared within {secs} s")]
    DeviceTimeout { label: String, secs: u64 },
    #[error("reading {path} from the filesystem labelled {label:?}")]
    ReadConfig {
        label: String,
        path: String,
        #[source]
        source: Box<super::Error>,
    },
    #[error("{path} does not exist on the filesystem labelled {label:?}")]
    MissingPath { label: String, path: String },
}

impl Error {
    /// Whether the fetcher refused because it is offline (fetch-offline).
    pub fn needs_network(&self) -> bool {
        matches!(
            self,
            Error::Fetch {
                source: fetch::Error::NeedsNetwork { .. },
                ..
            }
        )
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub url: Option<String>,
    pub device: Option<String>,
    pub path: Option<String>,
}

/// Reads the config-related arguments; the last occurrence of each key wins, and an empty
/// value counts as absent.
pub fn parse(cmdline: &str) -> Args {
    let mut a = Args::default();
    for field in cmdline.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let slot = match key {
            URL_KEY => &mut a.url,
            DEVICE_KEY => &mut a.device,
            PATH_KEY => &mut a.path,
            _ => continue,
        };
        *slot = Some(value.to_string());
    }
    for v in [&mut a.url, &mut a.device, &mut a.path] {
        if v.as_deref() == Some("") {
            *v = None;
        }
    }
    a
}

/// Where to look: the command line file and `/dev`.
#[derive(Clone, Debug)]
pub struct Source {
    /// `/proc/cmdline`, or `IGNITION_KERNEL_CMDLINE_PATH`.
    pub cmdline_path: PathBuf,
    pub dev_dir: PathBuf,
    pub device_wait: Duration,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            cmdline_path: std::env::var_os("IGNITION_KERNEL_CMDLINE_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/proc/cmdline")),
            dev_dir: PathBuf::from("/dev"),
            device_wait: DEVICE_WAIT,
        }
    }
}

/// A URL as logs and errors may show it: no userinfo, no query, no fragment, and no payload of
/// a `data:` URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once(':') else {
        return "<unparseable url>".into();
    };
    if scheme.eq_ignore_ascii_case("data") {
        return "data:<redacted>".into();
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    match rest.strip_prefix("//") {
        Some(auth_path) => {
            let (auth, path) = match auth_path.find('/') {
                Some(i) => auth_path.split_at(i),
                None => (auth_path, ""),
            };
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => format!("{scheme}:{rest}"),
    }
}

/// The config named on the kernel command line, if any.
pub fn fetch(src: &Source, fetcher: &fetch::Fetcher) -> Result<Option<Vec<u8>>, Error> {
    let text = match std::fs::read(&src.cmdline_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(source) => {
            return Err(Error::Read {
                path: src.cmdline_path.clone(),
                source,
            })
        }
    };
    let args = parse(&text);
    if let Some(url) = &args.url {
        if args.device.is_some() || args.path.is_some() {
            log::warn!("{URL_KEY} takes precedence over {DEVICE_KEY} and {PATH_KEY}");
        }
        let shown = redact_url(url);
        log::info!("fetching the config named on the kernel command line: {shown}");
        return match fetcher.fetch_bytes(&fetch::Resource::new(url.clone()), MAX_CONFIG) {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => Err(Error::NotFound { url: shown }),
            Err(source) => Err(Error::Fetch { url: shown, source }),
        };
    }
    match (&args.device, &args.path) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::DeviceWithoutPath),
        (None, Some(_)) => Err(Error::PathWithoutDevice),
        (Some(label), Some(path)) => read_from_device(src, label, path).map(Some),
    }
}

/// Waits for the filesystem labelled `label` and reads `path` from it (mounted read-only,
/// nodev, nosuid, noexec; see [`configdrive`]).
fn read_from_device(src: &Source, label: &str, path: &str) -> Result<Vec<u8>, Error> {
    let mut comps = Path::new(label).components();
    if !matches!(
        (comps.next(), comps.next()),
        (Some(Component::Normal(_)), None)
    ) {
        return Err(Error::BadLabel {
            label: label.into(),
        });
    }
    let search = configdrive::Search {
        dev_dir: src.dev_dir.clone(),
        wait: src.device_wait,
        poll: Duration::from_millis(250),
    };
    let read_failed = |e: super::Error| Error::ReadConfig {
        label: label.into(),
        path: path.into(),
        source: Box::new(e),
    };
    let drive = match search.wait_for_label(label, &AtomicBool::new(false)) {
        Ok(d) => d,
        Err(super::Error::Timeout { .. }) => {
            return Err(Error::DeviceTimeout {
                label: label.into(),
                secs: src.device_wait.as_secs(),
            })
        }
        Err(e) => return Err(read_failed(e)),
    };
    configdrive::read_file(&drive, path)
        .map_err(read_failed)?
        .ok_or_else(|| Error::MissingPath {
            label: label.into(),
            path: path.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_occurrence_wins() {
        let a = parse(
            "root=/dev/vda ignition.config.url=http://a/1 quiet ignition.config.url=http://b/2\n",
        );
        assert_eq!(a.url.as_deref(), Some("http://b/2"));
        let a =
            parse("ignition.config.device=CFG ignition.config.path=/x.ign ignition.config.url=");
        assert_eq!(a.url, None);
        assert_eq!(a.device.as_deref(), Some("CFG"));
        assert_eq!(a.path.as_deref(), Some("/x.ign"));
        assert_eq!(
            parse("ignition.config.url ignition.firstboot"),
            Args::default()
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://user:pw@example.com:8443/c.ign?sig=secret#f"),
            "https://example.com:8443/c.ign"
        );
        assert_eq!(redact_url("data:,secret"), "data:<redacted>");
        assert_eq!(
            redact_url("DATA:text/plain;base64,c2VjcmV0"),
            "data:<redacted>"
        );
        assert_eq!(redact_url("s3://bucket/key?versionId=1"), "s3://bucket/key");
        assert_eq!(redact_url("arn:aws:s3:::b/k"), "arn:aws:s3:::b/k");
        assert_eq!(redact_url("nothing"), "<unparseable url>");
    }

    fn source(dir: &Path, text: &str) -> Source {
        let p = dir.join("cmdline");
        std::fs::write(&p, text).unwrap();
        Source {
            cmdline_path: p,
            dev_dir: dir.join("dev"),
            device_wait: Duration::from_millis(300),
        }
    }

    #[test]
    fn sources() {
        let dir = std::env::temp_dir().join(format!("ember-cmdline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = fetch::Fetcher::new(fetch::Options {
            offline: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(fetch(&source(&dir, "quiet"), &f).unwrap(), None);
        let got = fetch(
            &source(
                &dir,
                "ignition.config.url=data:,%7B%7D ignition.config.device=X",
            ),
            &f,
        )
        .unwrap();
        assert_eq!(got.as_deref(), Some(&b"{}"[..]));
        let e = fetch(&source(&dir, "ignition.config.url=http://127.0.0.1/x"), &f).unwrap_err();
        assert!(e.needs_network(), "{e}");
        assert!(matches!(
            fetch(&source(&dir, "ignition.config.device=X"), &f),
            Err(Error::DeviceWithoutPath)
        ));
        assert!(matches!(
            fetch(&source(&dir, "ignition.config.path=/x"), &f),
            Err(Error::PathWithoutDevice)
        ));
        assert!(matches!(
            fetch(
                &source(&dir, "ignition.config.device=a/b ignition.config.path=/x"),
                &f
            ),
            Err(Error::BadLabel { .. })
        ));
        assert!(matches!(
            fetch(
                &source(
                    &dir,
                    "ignition.config.device=NO-SUCH-LABEL-EMBER ignition.config.path=/x"
                ),
                &f
            ),
            Err(Error::DeviceTimeout { .. })
        ));
        let missing = Source {
            cmdline_path: dir.join("missing"),
            ..source(&dir, "")
        };
        assert!(matches!(fetch(&missing, &f), Err(Error::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
