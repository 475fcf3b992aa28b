//! `openstack`: the user data from a config drive or the metadata service, whichever answers
//! first (brightbox uses the same sources).
//!
//! In parallel:
//! - config drives labelled `config-2` and `CONFIG-2`: `openstack/latest/user_data` (a
//!   missing file means no config);
//! - the metadata service, `GET <base>/openstack/latest/user_data` (404 means no config);
//! - for every up, non-loopback interface with an IPv6 address, the same path on the
//!   link-local service `http://[fe80::a9fe:a9fe%<interface>]`.
//!
//! The first source to answer (a config, or "no config") wins and the others are stopped.
//! When every source fails, there is no config (Ignition's rule). Ignition waits for the
//! drives until another source answers; Ember also stops them after
//! [`super::Endpoints::drive_wait`].
//!
//! Offline (fetch-offline), a config drive that is already attached is read, so that a
//! machine with one boots without bringing up the network; without one the network is
//! needed.  Ignition needs the network here in every case.

use std::ffi::CStr;
use std::sync::Arc;

use super::configdrive::{self, Search};
use super::util::{self, NotFound};
use super::{Endpoints, Error, Provider};
use crate::fetch::Fetcher;

const DRIVE_PATH: &str = "openstack/latest/user_data";
/// The config drives' labels (udev's links match them exactly: two sources).
const LABELS: [&str; 2] = ["config-2", "CONFIG-2"];
const METADATA_PATH: &str = "/openstack/latest/user_data";

/// Where openstack and brightbox look.
#[derive(Debug, Clone)]
pub struct Sources {
    pub drives: Search,
    /// Metadata service base URL.
    pub metadata: String,
    /// Link-local IPv6 address tried on each interface; `None` to skip.
    pub link_local_v6: Option<String>,
}

impl Sources {
    pub fn new(ep: &Endpoints) -> Self {
        Sources {
            drives: ep.drives(ep.drive_wait),
            metadata: ep.metadata.trim_end_matches('/').to_string(),
            link_local_v6: ep.link_local_v6.clone(),
        }
    }

    /// fetch-offline: a config drive attached now, else "needs network" (also when the
    /// drive cannot be read: the race may still get the config).
    fn fetch_offline(&self) -> Result<Option<Vec<u8>>, Error> {
        for label in LABELS {
            let Some(drive) = self.drives.find_label(label) else {
                continue;
            };
            match configdrive::read_file(&drive, DRIVE_PATH) {
                Ok(data) => {
                    log::info!(
                        "config drive {label} ({}) answered without the network",
                        drive.device.display()
                    );
                    return Ok(data.and_then(util::non_empty));
                }
                Err(e) => log::warn!(
                    "config drive {label}: {}; asking for the network",
                    util::chain(&e)
                ),
            }
        }
        Err(Error::NeedsNetwork)
    }

    /// The metadata URLs: the base one, then one per IPv6 interface.
    pub fn metadata_urls(&self, interfaces: &[String]) -> Vec<String> {
        let mut urls = vec![format!("{}{METADATA_PATH}", self.metadata)];
        if let Some(ll) = &self.link_local_v6 {
            for i in interfaces {
                urls.push(format!("http://[{ll}%25{i}]{METADATA_PATH}"));
            }
        }
        urls
    }

    /// Runs the race (see the module docs).
    pub fn fetch(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        if fetcher.options().offline {
            return self.fetch_offline();
        }
        let mut sources = configdrive::race_sources(&self.drives, DRIVE_PATH);
        let shared = Arc::new(Fetcher::new(fetcher.options().clone())?);
        let interfaces = if self.link_local_v6.is_some() {
            ipv6_interfaces()
        } else {
            Vec::new()
        };
        for url in self.metadata_urls(&interfaces) {
            let f = shared.clone();
            sources.push((
                format!("metadata service {url}"),
                Box::new(move |_| util::fetch(&f, &util::request(url, &[]), NotFound::Empty)),
            ));
        }
        Ok(util::race_or_no_config(sources))
    }
}

/// Names of the up, non-loopback interfaces that have an IPv6 address, sorted.
pub fn ipv6_interfaces() -> Vec<String> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifap` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        let flags = ifa.ifa_flags;
        let up = flags & libc::IFF_UP as libc::c_uint != 0;
        let lo = flags & libc::IFF_LOOPBACK as libc::c_uint != 0;
        // SAFETY: a non-null ifa_addr points to a sockaddr at least as large as its header.
        let v6 = !ifa.ifa_addr.is_null()
            && unsafe { (*ifa.ifa_addr).sa_family } == libc::AF_INET6 as libc::sa_family_t;
        if up && !lo && v6 && !ifa.ifa_name.is_null() {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            if !out.contains(&name) {
                out.push(name);
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `ifap` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifap) };
    out.sort();
    out
}

pub struct OpenStack {
    sources: Sources,
}

impl OpenStack {
    pub fn new(sources: Sources) -> Self {
        OpenStack { sources }
    }
}

impl Provider for OpenStack {
    fn id(&self) -> &'static str {
        "openstack"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        self.sources.fetch(fetcher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_urls_per_interface() {
        let mut s = Sources::new(&Endpoints::default());
        let urls = s.metadata_urls(&["eth0".into(), "enP1s0".into()]);
        assert_eq!(
            urls,
            [
                "http://169.254.169.254/openstack/latest/user_data",
                "http://[fe80::a9fe:a9fe%25eth0]/openstack/latest/user_data",
                "http://[fe80::a9fe:a9fe%25enP1s0]/openstack/latest/user_data",
            ]
        );
        s.link_local_v6 = None;
        assert_eq!(s.metadata_urls(&["eth0".into()]).len(), 1);
    }

    #[test]
    fn interfaces_exclude_loopback() {
        let i = ipv6_interfaces();
        assert!(!i.iter().any(|n| n == "lo"), "{i:?}");
        let mut sorted = i.clone();
        sorted.dedup();
        assert_eq!(sorted, i);
    }
}
