//! A small rtnetlink client: list links, set a link up or down and its MTU, add and delete
//! IPv4 addresses, add IPv4 routes.  Just what a DHCP-configured initramfs needs; every
//! request is acknowledged by the kernel, and a negative acknowledgement is the error.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};

/// A network interface as rtnetlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `ARPHRD_*` type (1 is Ethernet).
    pub kind: u16,
    pub mac: Option<[u8; 6]>,
    /// `IFLA_CARRIER`, when the kernel reports it.
    pub carrier: Option<bool>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }
    pub fn is_loopback(&self) -> bool {
        self.flags & libc::IFF_LOOPBACK as u32 != 0
    }
    pub fn is_ethernet(&self) -> bool {
        self.kind == libc::ARPHRD_ETHER
    }
    /// The link has a carrier (cable, virtual link): `IFLA_CARRIER`, else `IFF_LOWER_UP`.
    pub fn has_carrier(&self) -> bool {
        self.carrier
            .unwrap_or(self.flags & libc::IFF_LOWER_UP as u32 != 0)
    }
}

const NLMSG_HDR: usize = 16;
const RECV_BUF: usize = 64 * 1024;

/// An rtnetlink socket.
pub struct Netlink {
    sock: File,
    seq: u32,
}

/// Appends an attribute (padded to 4 bytes).
fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// The attributes in `buf`: (type without flags, data).
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        let next = (len + 3) & !3;
        buf = &buf[next.min(buf.len())..];
    }
    out
}

/// Parses one `RTM_NEWLINK` payload (ifinfomsg + attributes).
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    if payload.len() < 16 {
        return None;
    }
    let kind = u16::from_ne_bytes([payload[2], payload[3]]);
    let index = i32::from_ne_bytes(payload[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(payload[8..12].try_into().ok()?);
    let mut link = Link {
        index: u32::try_from(index).ok()?,
        name: String::new(),
        flags,
        kind,
        mac: None,
        carrier: None,
    };
    for (t, d) in attrs(&payload[16..]) {
        match t {
            libc::IFLA_IFNAME => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                link.name = String::from_utf8_lossy(&d[..end]).into_owned();
            }
            libc::IFLA_ADDRESS if d.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(d);
                link.mac = Some(m);
            }
            libc::IFLA_CARRIER if !d.is_empty() => link.carrier = Some(d[0] != 0),
            _ => {}
        }
    }
    Some(link)
}

/// The broadcast address of the network `addr/prefix`.
pub fn broadcast(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = prefix_mask(prefix);
    Ipv4Addr::from(u32::from(addr) | !mask)
}

/// The mask of a prefix length (`24` → `255.255.255.0` as a number).
pub fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket (5 s receive timeout: the kernel answers at once).
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        super::setsockopt(&owned, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        Ok(Netlink {
            sock: File::from(owned),
            seq: 0,
        })
    }

    /// Sends a request and collects the payloads of the answers, until the kernel's
    /// acknowledgement (or the end of a dump).
    fn request(&mut self, msg_type: u16, flags: u16, body: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = Vec::with_capacity(NLMSG_HDR + body.len());
        msg.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&msg_type.to_ne_bytes());
        let f = flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16;
        msg.extend_from_slice(&f.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        self.sock.write_all(&msg)?;

        let mut out = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.sock.read(&mut buf)?;
            let mut data = &buf[..n];
            while data.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let rseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                if len < NLMSG_HDR || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let payload = &data[NLMSG_HDR..len];
                data = &data[((len + 3) & !3).min(data.len())..];
                if rseq != seq {
                    continue;
                }
                match kind as i32 {
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EIO);
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    _ => out.push(payload.to_vec()),
                }
            }
        }
    }

    /// Every network interface.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let body = [0u8; 16]; // ifinfomsg, AF_UNSPEC
        let answers = self.request(libc::RTM_GETLINK, libc::NLM_F_DUMP as u16, &body)?;
        Ok(answers.iter().filter_map(|p| parse_link(p)).collect())
    }

    fn ifinfo(index: u32, flags: u32, change: u32) -> Vec<u8> {
        let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
        b.extend_from_slice(&(index as i32).to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&change.to_ne_bytes());
        b
    }

    /// Sets the link up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        let iff_up = libc::IFF_UP as u32;
        let body = Self::ifinfo(index, if up { iff_up } else { 0 }, iff_up);
        self.request(libc::RTM_NEWLINK, 0, &body).map(|_| ())
    }

    /// Sets the link's MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut body = Self::ifinfo(index, 0, 0);
        attr(&mut body, libc::IFLA_MTU, &mtu.to_ne_bytes());
        self.request(libc::RTM_NEWLINK, 0, &body).map(|_| ())
    }

    fn ifaddr(index: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE];
        b.extend_from_slice(&index.to_ne_bytes());
        attr(&mut b, libc::IFA_LOCAL, &addr.octets());
        attr(&mut b, libc::IFA_ADDRESS, &addr.octets());
        b
    }

    /// Adds `addr/prefix` to the link (with its broadcast address).
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut body = Self::ifaddr(index, addr, prefix);
        if prefix < 31 {
            attr(
                &mut body,
                libc::IFA_BROADCAST,
                &broadcast(addr, prefix).octets(),
            );
        }
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
        self.request(libc::RTM_NEWADDR, flags, &body).map(|_| ())
    }

    /// Removes `addr/prefix` from the link (the kernel drops the routes through it).
    pub fn del_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let body = Self::ifaddr(index, addr, prefix);
        self.request(libc::RTM_DELADDR, 0, &body).map(|_| ())
    }

    /// Adds a route to `dest/prefix` out of the link: through `gateway`, or on the link
    /// itself when there is none.
    pub fn add_route(
        &mut self,
        index: u32,
        dest: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let scope = if gateway.is_some() {
            libc::RT_SCOPE_UNIVERSE
        } else {
            libc::RT_SCOPE_LINK
        };
        let mut body = vec![
            libc::AF_INET as u8,
            prefix,
            0,
            0,
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            scope,
            libc::RTN_UNICAST,
        ];
        body.extend_from_slice(&0u32.to_ne_bytes());
        if prefix > 0 {
            attr(&mut body, libc::RTA_DST, &dest.octets());
        }
        if let Some(gw) = gateway {
            attr(&mut body, libc::RTA_GATEWAY, &gw.octets());
        }
        attr(&mut body, libc::RTA_OIF, &index.to_ne_bytes());
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
        self.request(libc::RTM_NEWROUTE, flags, &body).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        attr(&mut b, 3, b"eth0\0");
        attr(&mut b, 1, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(b.len(), 12 + 12);
        let a = attrs(&b);
        assert_eq!(a, vec![(3, &b"eth0\0"[..]), (1, &[1u8, 2, 3, 4, 5, 6][..])]);
        // Garbage ends the list instead of panicking.
        assert!(attrs(&[200, 0, 1, 0]).is_empty());
        assert!(attrs(&[1, 0]).is_empty());
    }

    #[test]
    fn link_messages() {
        let mut p = vec![0u8, 0];
        p.extend_from_slice(&1u16.to_ne_bytes());
        p.extend_from_slice(&7i32.to_ne_bytes());
        p.extend_from_slice(&((libc::IFF_UP | libc::IFF_LOWER_UP) as u32).to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut p, libc::IFLA_IFNAME, b"ens3\0");
        attr(
            &mut p,
            libc::IFLA_ADDRESS,
            &[0x52, 0x54, 0, 0x12, 0x34, 0x56],
        );
        let l = parse_link(&p).unwrap();
        assert_eq!(l.index, 7);
        assert_eq!(l.name, "ens3");
        assert!(l.is_up() && l.is_ethernet() && l.has_carrier() && !l.is_loopback());
        assert_eq!(l.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        attr(&mut p, libc::IFLA_CARRIER, &[0]);
        assert!(!parse_link(&p).unwrap().has_carrier());
        assert!(parse_link(&p[..10]).is_none());
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(24), 0xffff_ff00);
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(32), u32::MAX);
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 0, 2, 15), 24),
            Ipv4Addr::new(10, 0, 2, 255)
        );
    }

    #[test]
    fn lists_the_loopback_link() {
        let mut nl = Netlink::open().unwrap();
        let links = nl.links().unwrap();
        assert!(
            links.iter().any(|l| l.is_loopback() && l.name == "lo"),
            "{links:?}"
        );
    }
}
