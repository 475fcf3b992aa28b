//! `applehv` (Apple Virtualization framework): an HTTP `GET http://d/` with
//! `Accept: application/json` over vsock to the host (CID 2) on port 1024. One attempt, no
//! retries, as in Ignition; a status other than 200 is an error, an empty body means no
//! config. `modprobe vsock` runs first when `/sys/devices/virtual/misc/vsock` is missing.
//! Works offline (vsock is not the network).
//!
//! Waits are the fetcher's response-headers timeout (10 s when it is zero) for the connect and
//! for each read, and [`rawhttp::EXCHANGE_LIMIT`] (or that timeout if longer) for the whole
//! exchange.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::rawhttp::{self, Socket};
use super::{util, Error, Provider};
use crate::fetch::Fetcher;

/// The host's vsock CID.
pub const HOST_CID: u32 = 2;
/// The port the host serves the config on.
pub const PORT: u32 = 1024;

pub struct AppleHv {
    cid: u32,
    port: u32,
    sys_dir: PathBuf,
    modprobe: PathBuf,
}

impl AppleHv {
    pub fn new(cid: u32, port: u32, sys_dir: PathBuf, modprobe: PathBuf) -> Self {
        AppleHv {
            cid,
            port,
            sys_dir,
            modprobe,
        }
    }
}

/// GET `http://d/` over `stream`: `Ok(None)` for an empty body.
pub fn fetch_over(
    stream: impl std::io::Read + std::io::Write + 'static,
    target: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let r = rawhttp::get(stream, "d", "/", &[("Accept", "application/json")], target)?;
    if r.status != 200 {
        return Err(Error::Http {
            target: target.into(),
            reason: format!("http status {}", r.status),
        });
    }
    Ok(util::non_empty(r.body))
}

impl Provider for AppleHv {
    fn id(&self) -> &'static str {
        "applehv"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        if !self.sys_dir.join("devices/virtual/misc/vsock").exists() {
            util::modprobe(&self.modprobe, "vsock")?;
        }
        let t = fetcher.options().response_headers_timeout;
        let timeout = if t.is_zero() {
            Duration::from_secs(10)
        } else {
            t
        };
        let target = format!("http://d/ over vsock {}:{}", self.cid, self.port);
        log::info!("fetching {target}");
        let until = Instant::now() + rawhttp::EXCHANGE_LIMIT.max(timeout);
        let sock = Socket::vsock(self.cid, self.port, timeout)?.with_deadline(until);
        fetch_over(sock, &target)
    }
}
