//! Helpers shared by providers: decodings (base64 as Go decodes it, gzip sniffed like Go's
//! `http.DetectContentType`), metadata requests through the fetcher with a provider's own
//! not-found rule, and the "first source to answer wins" race of openstack, cloudstack and
//! kubevirt.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use base64::Engine as _;

use super::{Error, MAX_CONFIG_SIZE};
use crate::fetch::{self, Fetcher, Method, Resource};

/// Decodes standard padded base64 the way Go's `base64.StdEncoding` does: `\r` and `\n`
/// anywhere are ignored, anything else that is not base64 is an error.
pub fn decode_base64(data: &[u8]) -> Result<Vec<u8>, Error> {
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| Error::Malformed {
            what: format!("decoding base64 data: {e}"),
        })
}

/// Whether `data` starts like a gzip stream (the three bytes Go's content sniffer checks).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b, 0x08])
}

/// Decompresses a whole gzip stream (concatenated members included), bounded by
/// [`MAX_CONFIG_SIZE`].
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Malformed {
            what: format!("decompressing gzip data: {e}"),
        })?;
    if out.len() as u64 > MAX_CONFIG_SIZE {
        return Err(Error::Malformed {
            what: format!("decompressed config is larger than {MAX_CONFIG_SIZE} bytes"),
        });
    }
    Ok(out)
}

/// Decompresses `data` if it is gzip, else returns it unchanged (Ignition's `TryUnzip`).
pub fn try_gunzip(data: Vec<u8>) -> Result<Vec<u8>, Error> {
    if is_gzip(&data) {
        gunzip(&data)
    } else {
        Ok(data)
    }
}

/// Removes trailing NUL bytes (device and firmware buffers are NUL padded).
pub fn trim_trailing_nuls(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

/// Removes NUL bytes at both ends.
pub fn trim_nuls(data: &[u8]) -> Vec<u8> {
    let start = data.iter().position(|b| *b != 0).unwrap_or(data.len());
    let end = data.iter().rposition(|b| *b != 0).map_or(start, |e| e + 1);
    data[start..end].to_vec()
}

/// `None` for empty data: Ignition treats an empty body as "no config".
pub fn non_empty(data: Vec<u8>) -> Option<Vec<u8>> {
    (!data.is_empty()).then_some(data)
}

/// What a 404 means for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// No config (most platforms).
    Empty,
    /// An error (digitalocean, packet, akamai).
    Error,
}

/// A metadata request: GET by default, with the provider's headers (which replace the
/// fetcher's defaults of the same name).
pub fn request(url: impl Into<String>, headers: &[(&str, &str)]) -> Resource {
    Resource {
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), Some(v.to_string())))
            .collect(),
        ..Resource::new(url)
    }
}

/// Fetches a metadata resource: `Ok(None)` on 404 when `not_found` is [`NotFound::Empty`].
/// Offline fetchers answer "needs network" ([`Error::needs_network`]) before anything is
/// sent. Errors name the URL the way the fetcher does (no userinfo or query).
pub fn fetch(
    fetcher: &Fetcher,
    res: &Resource,
    not_found: NotFound,
) -> Result<Option<Vec<u8>>, Error> {
    Ok(match not_found {
        NotFound::Empty => fetcher.fetch_bytes(res, MAX_CONFIG_SIZE)?,
        NotFound::Error => Some(fetcher.fetch_limited(res, MAX_CONFIG_SIZE)?),
    })
}

/// A platform whose config is one GET of its metadata service: the user data at `url`, a 404
/// per `not_found`, an empty body meaning no config (aliyun, digitalocean, exoscale, hetzner,
/// upcloud, vultr; see docs/providers.md).
pub struct UserData {
    pub id: &'static str,
    pub url: String,
    pub not_found: NotFound,
}

impl super::Provider for UserData {
    fn id(&self) -> &'static str {
        self.id
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        fetch_user_data(fetcher, self.url.clone(), &[], self.not_found)
    }
}

/// The common case: GET `url` with `headers`; 404 per `not_found`; an empty body is no config.
pub fn fetch_user_data(
    fetcher: &Fetcher,
    url: String,
    headers: &[(&str, &str)],
    not_found: NotFound,
) -> Result<Option<Vec<u8>>, Error> {
    Ok(fetch(fetcher, &request(url, headers), not_found)?.and_then(non_empty))
}

/// A PUT with an empty body (metadata token requests).
pub fn put(url: impl Into<String>, headers: &[(&str, &str)]) -> Resource {
    Resource {
        method: Method::Put,
        ..request(url, headers)
    }
}

/// A fetcher like `base` but bounded by `timeout` overall (for auxiliary lookups).
pub fn bounded_fetcher(
    base: &fetch::Options,
    timeout: std::time::Duration,
) -> Result<Fetcher, Error> {
    let mut opts = base.clone();
    opts.total_timeout = timeout;
    opts.deadline = Some(timeout);
    if opts.response_headers_timeout.is_zero() || opts.response_headers_timeout > timeout {
        opts.response_headers_timeout = timeout;
    }
    Ok(Fetcher::new(opts)?)
}

/// One source of a [`race`]: it should give up when the flag becomes true.
pub type Source = Box<dyn FnOnce(&AtomicBool) -> Result<Option<Vec<u8>>, Error> + Send>;

/// [`race`] where every source failing means no config, as in Ignition (openstack, brightbox,
/// cloudstack); an empty answer is no config too.
pub fn race_or_no_config(sources: Vec<(String, Source)>) -> Option<Vec<u8>> {
    match race(sources) {
        Ok(data) => data.and_then(non_empty),
        Err(_) => {
            log::warn!("no config source answered; using no config");
            None
        }
    }
}

/// Runs every source on its own thread; the first to answer `Ok` (config or no config) wins,
/// and the others are told to stop (their threads are not waited for: a metadata request
/// that keeps retrying must not hold up a config found on a drive). When every source fails,
/// their errors are returned, each with the source's name.
pub fn race(sources: Vec<(String, Source)>) -> Result<Option<Vec<u8>>, Vec<(String, Error)>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let count = sources.len();
    for (name, source) in sources {
        let (thread_tx, cancel) = (tx.clone(), cancel.clone());
        let spawned = std::thread::Builder::new()
            .name(format!(
                "provider-{}",
                name.chars().take(8).collect::<String>()
            ))
            .spawn({
                let name = name.clone();
                move || {
                    let r = source(&cancel);
                    let _ = thread_tx.send((name, r));
                }
            });
        if let Err(e) = spawned {
            let _ = tx.send((
                name,
                Err(Error::Socket {
                    what: "starting a thread".into(),
                    source: e,
                }),
            ));
        }
    }
    drop(tx);
    let mut errors = Vec::new();
    for _ in 0..count {
        let Ok((name, r)) = rx.recv() else { break };
        match r {
            Ok(data) => {
                log::info!(
                    "config source {name}: {}",
                    if data.is_some() {
                        "found a config"
                    } else {
                        "no config"
                    }
                );
                cancel.store(true, Ordering::SeqCst);
                return Ok(data);
            }
            Err(e) => {
                log::warn!("config source {name}: {}", chain(&e));
                errors.push((name, e));
            }
        }
    }
    Err(errors)
}

/// Loads a kernel module with `modprobe` (the program is configurable for tests).
pub use crate::system::kmod::modprobe_with as modprobe;

pub use crate::logging::chain;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(decode_base64(b"e30K").unwrap(), b"{}\n");
        assert_eq!(decode_base64(b"e3\r\n0K\n").unwrap(), b"{}\n");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert!(decode_base64(b"e30").is_err(), "padding is required");
        assert!(decode_base64(b"e3 0K").is_err());
        let err = decode_base64(b"!!!!").unwrap_err();
        assert!(err.to_string().starts_with("decoding base64 data"), "{err}");
    }

    #[test]
    fn gzip_sniffing() {
        let plain = b"{\"ignition\":{\"version\":\"3.4.0\"}}".to_vec();
        assert_eq!(try_gunzip(gz(&plain)).unwrap(), plain);
        assert_eq!(try_gunzip(plain.clone()).unwrap(), plain);
        // Two gzip members decode as one stream.
        let mut two = gz(b"ab");
        two.extend(gz(b"cd"));
        assert_eq!(gunzip(&two).unwrap(), b"abcd");
        // Looks like gzip, is not.
        let err = try_gunzip(vec![0x1f, 0x8b, 0x08, 0, 1, 2, 3]).unwrap_err();
        assert!(
            err.to_string().starts_with("decompressing gzip data"),
            "{err}"
        );
        let mut cut = gz(&plain);
        cut.truncate(cut.len() - 6);
        assert!(gunzip(&cut).is_err());
    }

    #[test]
    fn nul_trimming() {
        assert_eq!(trim_trailing_nuls(b"ab\0\0".to_vec()), b"ab");
        assert_eq!(trim_nuls(b"\0\0ab\0c\0"), b"ab\0c");
        assert_eq!(trim_nuls(b"\0\0"), b"");
        assert_eq!(trim_nuls(b""), b"");
    }

    #[test]
    fn race_first_ok_wins_and_errors_are_collected() {
        let slow: Source = Box::new(|cancel| {
            for _ in 0..200 {
                if cancel.load(Ordering::SeqCst) {
                    return Err(Error::Malformed {
                        what: "cancelled".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(Some(b"slow".to_vec()))
        });
        let fails: Source = Box::new(|_| {
            Err(Error::Malformed {
                what: "broken".into(),
            })
        });
        let fast: Source = Box::new(|_| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(Some(b"fast".to_vec()))
        });
        let r = race(vec![
            ("slow".into(), slow),
            ("fails".into(), fails),
            ("fast".into(), fast),
        ]);
        assert_eq!(r.unwrap(), Some(b"fast".to_vec()));

        let a: Source = Box::new(|_| Err(Error::NeedsNetwork));
        let b: Source = Box::new(|_| Err(Error::Malformed { what: "bad".into() }));
        let errs = race(vec![("a".into(), a), ("b".into(), b)]).unwrap_err();
        let mut names: Vec<_> = errs.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_missing_resource_is_named_without_secrets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                std::io::Read::read_exact(&mut s, &mut b).unwrap();
                head.push(b[0]);
            }
            std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
        });
        let fetcher = Fetcher::new(fetch::Options {
            system_ca_files: Some(Vec::new()),
            ..fetch::Options::default()
        })
        .unwrap();
        let res = request(format!("http://user:hunter2@{addr}/data?token=s3cret"), &[]);
        let err = fetch(&fetcher, &res, NotFound::Error).unwrap_err();
        server.join().unwrap();
        let shown = chain(&err);
        assert!(
            matches!(err, Error::Fetch(fetch::Error::NotFound { .. })),
            "{shown}"
        );
        assert!(shown.contains("/data"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );

        let offline = Fetcher::new(fetch::Options {
            offline: true,
            system_ca_files: Some(Vec::new()),
            ..fetch::Options::default()
        })
        .unwrap();
        for nf in [NotFound::Empty, NotFound::Error] {
            assert!(fetch(&offline, &res, nf).unwrap_err().needs_network());
        }
    }
}
