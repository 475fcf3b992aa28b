//! Bringing the network up in the initramfs, only when a config needs it: every Ethernet
//! link is set up, DHCP runs on each one as soon as it has a carrier, and the first lease
//! wins.  Its address, routes and MTU are set with rtnetlink ([`netlink`]); the caller writes
//! `/etc/resolv.conf` from it ([`resolv_conf`]).  [`tear_down`] undoes it all before the
//! switch to the new root, so that the system's own network manager starts from clean links.

pub mod dhcp;
pub mod netlink;

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use dhcp::Lease;
use netlink::{Link, Netlink};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no Ethernet interface{}", match .wanted { Some(w) => format!(" named {w}"), None => String::new() })]
    NoInterface { wanted: Option<String> },
    #[error("no carrier on {interfaces} within {secs} s (is a cable or virtual NIC connected?)")]
    NoCarrier { interfaces: String, secs: u64 },
    #[error("no DHCP lease within {secs} s: {reasons}")]
    NoLease { secs: u64, reasons: String },
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only this interface (`ember.netif=`); every Ethernet interface when `None`.
    pub interface: Option<String>,
    /// Overall time for carrier and DHCP.
    pub timeout: Duration,
}

/// The network as [`bring_up`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub interface: String,
    pub index: u32,
    pub lease: Lease,
    /// Every link [`bring_up`] set up (to set down again).
    pub raised: Vec<u32>,
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

/// Sets the links up, runs DHCP, and configures the first lease.
pub fn bring_up(opts: &Options) -> Result<Configured, Error> {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let mut nl = Netlink::open().map_err(nl_err("opening a netlink socket"))?;
    let links = nl.links().map_err(nl_err("listing network interfaces"))?;
    if let Some(lo) = links.iter().find(|l| l.is_loopback()) {
        let _ = nl.set_up(lo.index, true);
    }
    let candidates: Vec<Link> = links
        .into_iter()
        .filter(|l| l.is_ethernet() && !l.is_loopback() && l.mac.is_some())
        .filter(|l| opts.interface.as_ref().is_none_or(|w| *w == l.name))
        .collect();
    if candidates.is_empty() {
        return Err(Error::NoInterface {
            wanted: opts.interface.clone(),
        });
    }
    let mut raised = Vec::new();
    for l in &candidates {
        if !l.is_up() {
            nl.set_up(l.index, true)
                .map_err(nl_err(format!("setting {} up", l.name)))?;
            raised.push(l.index);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(Link, Result<Lease, dhcp::ClientError>)>();
    let mut started_on: HashSet<u32> = HashSet::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut running = 0usize;
    let result = loop {
        // Start DHCP on every candidate that has a carrier now.
        if let Ok(now) = nl.links() {
            for l in now
                .iter()
                .filter(|l| candidates.iter().any(|c| c.index == l.index))
            {
                if l.has_carrier() && started_on.insert(l.index) {
                    log::info!("network: {} has a carrier; asking for a DHCP lease", l.name);
                    let (l, tx, stop) = (l.clone(), tx.clone(), stop.clone());
                    let mac = l.mac.unwrap_or_default();
                    running += 1;
                    std::thread::spawn(move || {
                        let r = dhcp::obtain(&l.name, mac, deadline, &stop);
                        let _ = tx.send((l, r));
                    });
                }
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((link, Ok(lease))) => break Ok((link, lease)),
            Ok((link, Err(e))) => {
                running -= 1;
                log::warn!("network: {}: {e}", link.name);
                reasons.push(e.to_string());
            }
            Err(_) => {}
        }
        let all_failed = running == 0 && started_on.len() == candidates.len();
        if running == 0 && (Instant::now() >= deadline || all_failed) {
            let secs = opts.timeout.as_secs();
            break Err(if started_on.is_empty() {
                Error::NoCarrier {
                    interfaces: candidates
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    secs,
                }
            } else {
                Error::NoLease {
                    secs,
                    reasons: reasons.join("; "),
                }
            });
        }
    };
    stop.store(true, Ordering::Relaxed);
    let (link, lease) = match result {
        Ok(x) => x,
        Err(e) => {
            for i in &raised {
                let _ = nl.set_up(*i, false);
            }
            return Err(e);
        }
    };
    let configured = Configured {
        interface: link.name.clone(),
        index: link.index,
        lease,
        raised,
    };
    configure(&mut nl, &configured)?;
    log::info!(
        "network: {} is {}/{} from DHCP server {} ({:.1} s)",
        configured.interface,
        configured.lease.address,
        configured.lease.prefix,
        configured.lease.server,
        started.elapsed().as_secs_f64()
    );
    Ok(configured)
}

/// Sets the lease's MTU, address and routes on the link.
fn configure(nl: &mut Netlink, c: &Configured) -> Result<(), Error> {
    let (i, l) = (c.index, &c.lease);
    let name = &c.interface;
    if let Some(mtu) = l.mtu.filter(|m| *m >= 576) {
        if let Err(e) = nl.set_mtu(i, mtu as u32) {
            log::warn!("network: setting the MTU of {name} to {mtu}: {e}");
        }
    }
    nl.add_address(i, l.address, l.prefix)
        .map_err(nl_err(format!(
            "adding {}/{} to {name}",
            l.address, l.prefix
        )))?;
    let route_err = |d: Ipv4Addr, p: u8| nl_err(format!("adding the route to {d}/{p} on {name}"));
    if !l.routes.is_empty() {
        for r in &l.routes {
            let gw = Some(r.gateway).filter(|g| !g.is_unspecified());
            nl.add_route(i, r.dest, r.prefix, gw)
                .map_err(route_err(r.dest, r.prefix))?;
        }
    } else if let Some(gw) = l.routers.first() {
        let mask = netlink::prefix_mask(l.prefix);
        if u32::from(*gw) & mask != u32::from(l.address) & mask {
            // A router outside the subnet is reached on the link.
            nl.add_route(i, *gw, 32, None).map_err(route_err(*gw, 32))?;
        }
        nl.add_route(i, Ipv4Addr::UNSPECIFIED, 0, Some(*gw))
            .map_err(route_err(Ipv4Addr::UNSPECIFIED, 0))?;
    }
    Ok(())
}

/// Removes the address (and with it the routes) and sets the links [`bring_up`] raised down.
pub fn tear_down(c: &Configured) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(nl_err("opening a netlink socket"))?;
    nl.del_address(c.index, c.lease.address, c.lease.prefix)
        .map_err(nl_err(format!(
            "removing {}/{} from {}",
            c.lease.address, c.lease.prefix, c.interface
        )))?;
    for i in &c.raised {
        nl.set_up(*i, false)
            .map_err(nl_err(format!("setting interface {i} down")))?;
    }
    Ok(())
}

/// `/etc/resolv.conf` for a lease.
pub fn resolv_conf(l: &Lease) -> String {
    let mut s = String::from("# written by ember from a DHCP lease\n");
    for d in &l.dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    if let Some(d) = &l.domain {
        if !d.contains(char::is_whitespace) {
            s.push_str(&format!("search {d}\n"));
        }
    }
    s
}

/// setsockopt(2) with a value of type `T`.
pub(crate) fn setsockopt<T>(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: `value` points to a live `T` of the given size for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `SO_BINDTODEVICE`: the socket sends and receives on `iface` only.
pub(crate) fn set_bind_device(fd: &impl AsFd, iface: &str) -> std::io::Result<()> {
    let name = iface.as_bytes();
    // SAFETY: the name's bytes are alive and their length is passed (the kernel copies at
    // most IFNAMSIZ bytes and does not need a terminator when the length is given).
    let r = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Binds a UDP socket to `0.0.0.0:port`.
pub(crate) fn bind_any(sock: &UdpSocket, port: u16) -> std::io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in and its size is passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let l = Lease {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            server: Ipv4Addr::new(10, 0, 2, 2),
            routers: vec![],
            routes: vec![],
            dns: vec![Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(1, 1, 1, 1)],
            domain: Some("example.internal".into()),
            mtu: None,
            lease_secs: None,
        };
        assert_eq!(
            resolv_conf(&l),
            "# written by ember from a DHCP lease\nnameserver 10.0.2.3\nnameserver 1.1.1.1\nsearch example.internal\n"
        );
    }
}
