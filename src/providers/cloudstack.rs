//! `cloudstack` (Apache CloudStack): the user data from a config drive or the virtual router's
//! metadata service, whichever answers first.
//!
//! In parallel:
//! - config drives labelled `config-2` and `CONFIG-2`: `cloudstack/userdata/user_data.txt`
//!   (a missing file means no config);
//! - the metadata service on the DHCP server: the server of the lease Ember took itself when
//!   it brought the network up, else `SERVER_ADDRESS` from systemd-networkd's lease file
//!   `/run/systemd/netif/leases/<ifindex>` of the first non-loopback interface that has one,
//!   then `GET http://<server>/latest/user-data` (404 means no config).
//!
//! First answer wins; when every source fails there is no config. The waits for drives and
//! for a lease are bounded by [`super::Endpoints::drive_wait`]. Offline: needs the network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::configdrive::{self, Search};
use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::fetch::Fetcher;

const DRIVE_PATH: &str = "cloudstack/userdata/user_data.txt";

pub struct CloudStack {
    drives: Search,
    leases_dir: PathBuf,
    sys_dir: PathBuf,
    port: u16,
    dhcp_server: Option<String>,
}

impl CloudStack {
    /// `leases_dir` holds networkd's leases, `sys_dir` is `/sys` (for the interfaces), `port`
    /// is the metadata service's port (80).
    pub fn new(drives: Search, leases_dir: PathBuf, sys_dir: PathBuf, port: u16) -> Self {
        CloudStack {
            drives,
            leases_dir,
            sys_dir,
            port,
            dhcp_server: None,
        }
    }

    /// The DHCP server of a lease already known (Ember's own DHCP at boot): used before the
    /// lease files, without waiting.
    pub fn with_dhcp_server(mut self, server: Option<String>) -> Self {
        self.dhcp_server = server.filter(|s| !s.is_empty() && s != "0.0.0.0");
        self
    }
}

/// `SERVER_ADDRESS` of a networkd lease file.
pub fn lease_server_address(lease: &str) -> Option<String> {
    lease
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SERVER_ADDRESS="))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// `(ifindex, name)` of the non-loopback interfaces in `<sys>/class/net`, by index.
pub fn interfaces(sys_dir: &Path) -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir(sys_dir.join("class/net")) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let dir = e.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            let index: u32 = read("ifindex")?.trim().parse().ok()?;
            let flags = read("flags")
                .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            if flags & libc::IFF_LOOPBACK as u32 != 0 {
                return None;
            }
            Some((index, e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    out.sort();
    out
}

/// The DHCP server of the first interface with a lease that names one.
fn dhcp_server(sys_dir: &Path, leases_dir: &Path) -> Option<String> {
    interfaces(sys_dir).into_iter().find_map(|(index, name)| {
        let lease = std::fs::read_to_string(leases_dir.join(index.to_string())).ok()?;
        let addr = lease_server_address(&lease)?;
        log::info!("cloudstack: DHCP server of {name} is {addr}");
        Some(addr)
    })
}

impl Provider for CloudStack {
    fn id(&self) -> &'static str {
        "cloudstack"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        if fetcher.options().offline {
            return Err(Error::NeedsNetwork);
        }
        let mut sources = configdrive::race_sources(&self.drives, DRIVE_PATH);
        let f = Arc::new(Fetcher::new(fetcher.options().clone())?);
        let (drives, sys, leases, port, known) = (
            self.drives.clone(),
            self.sys_dir.clone(),
            self.leases_dir.clone(),
            self.port,
            self.dhcp_server.clone(),
        );
        sources.push((
            "metadata service".into(),
            Box::new(move |cancel| {
                let server = match known {
                    Some(s) => {
                        log::info!("cloudstack: DHCP server of Ember's lease is {s}");
                        s
                    }
                    None => drives.poll_until("a DHCP lease naming a server", cancel, || {
                        dhcp_server(&sys, &leases)
                    })?,
                };
                let host = if server.contains(':') {
                    format!("[{server}]")
                } else {
                    server
                };
                let authority = if port == 80 {
                    host
                } else {
                    format!("{host}:{port}")
                };
                let url = format!("http://{authority}/latest/user-data");
                util::fetch(&f, &util::request(url, &[]), NotFound::Empty)
            }),
        ));
        Ok(util::race_or_no_config(sources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_parsing() {
        let lease = "# This is private data. Do not parse.\nADDRESS=10.1.1.5\n\
                     SERVER_ADDRESS=10.1.1.1\nROUTER=10.1.1.1\n";
        assert_eq!(lease_server_address(lease).as_deref(), Some("10.1.1.1"));
        assert_eq!(lease_server_address("ADDRESS=1.2.3.4\n"), None);
        assert_eq!(lease_server_address("SERVER_ADDRESS=\n"), None);
    }

    #[test]
    fn interfaces_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("ember-cs-sys-{}", std::process::id()));
        for (name, index, flags) in [
            ("lo", "1", "0x9"),
            ("eth1", "3", "0x1003"),
            ("eth0", "2", "0x1003"),
        ] {
            let d = dir.join("class/net").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
            std::fs::write(d.join("flags"), format!("{flags}\n")).unwrap();
        }
        assert_eq!(
            interfaces(&dir),
            [(2, "eth0".to_string()), (3, "eth1".to_string())]
        );
        let leases = dir.join("leases");
        std::fs::create_dir_all(&leases).unwrap();
        assert_eq!(dhcp_server(&dir, &leases), None);
        std::fs::write(leases.join("3"), "SERVER_ADDRESS=192.0.2.9\n").unwrap();
        assert_eq!(dhcp_server(&dir, &leases).as_deref(), Some("192.0.2.9"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
