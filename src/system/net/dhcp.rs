//! A DHCPv4 client for the initramfs (RFC 2131/2132): DISCOVER, OFFER, REQUEST, ACK on one
//! interface, over a UDP socket bound to port 68 on that interface (`SO_BINDTODEVICE`) that
//! sends to 255.255.255.255 and asks the server to broadcast its answers (the interface has
//! no address yet).  The lease gives the address, the routers or classless static routes
//! (RFC 3442, which clouds use for /32 addresses), DNS servers, the domain and the MTU.
//!
//! Leases are never renewed: the initramfs lives for minutes, and the address is removed
//! before the switch to the new root.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Fixed part of a BOOTP message before the options.
const FIXED: usize = 236;
const FLAG_BROADCAST: u16 = 0x8000;

// Message types (option 53).
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

// Options.
const OPT_PAD: u8 = 0;
const OPT_SUBNET: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_DOMAIN: u8 = 15;
const OPT_MTU: u8 = 26;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_OVERLOAD: u8 = 52;
const OPT_MSG_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MAX_SIZE: u8 = 57;
const OPT_CLIENT_ID: u8 = 61;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_END: u8 = 255;

#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("a DHCP message of {0} bytes is too short")]
    Short(usize),
    #[error("the DHCP magic cookie is missing")]
    NoCookie,
    #[error("option {0} runs past the end of the message")]
    Truncated(u8),
    #[error("option {option} is malformed")]
    BadOption { option: u8 },
}

/// A BOOTP/DHCP message.  Options keep their order; repeated options are concatenated
/// (RFC 3396) when decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 1 request, 2 reply.
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Message {
    /// A client request with the broadcast flag set.
    pub fn request(xid: u32, mac: [u8; 6], msg_type: u8) -> Message {
        Message {
            op: 1,
            xid,
            secs: 0,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: mac,
            options: vec![(OPT_MSG_TYPE, vec![msg_type])],
        }
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn msg_type(&self) -> Option<u8> {
        self.option(OPT_MSG_TYPE).and_then(|v| v.first().copied())
    }

    /// The wire form (padded to the 300 bytes BOOTP relays expect).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(300);
        b.extend_from_slice(&[self.op, 1, 6, 0]);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&self.chaddr);
        b.resize(FIXED, 0); // chaddr padding, sname, file
        b.extend_from_slice(&MAGIC);
        for (code, value) in &self.options {
            // Values longer than 255 bytes are split (RFC 3396).
            for chunk in value.chunks(255) {
                b.push(*code);
                b.push(chunk.len() as u8);
                b.extend_from_slice(chunk);
            }
            if value.is_empty() {
                b.extend_from_slice(&[*code, 0]);
            }
        }
        b.push(OPT_END);
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }

    /// Parses a message, including options overloaded into `file` and `sname` (option 52).
    pub fn decode(b: &[u8]) -> Result<Message, PacketError> {
        if b.len() < FIXED + 4 {
            return Err(PacketError::Short(b.len()));
        }
        if b[FIXED..FIXED + 4] != MAGIC {
            return Err(PacketError::NoCookie);
        }
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&b[28..34]);
        let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
        parse_options(&b[FIXED + 4..], &mut options)?;
        let overload = options
            .iter()
            .find(|(c, _)| *c == OPT_OVERLOAD)
            .and_then(|(_, v)| v.first().copied())
            .unwrap_or(0);
        if overload & 1 != 0 {
            parse_options(&b[108..236], &mut options)?;
        }
        if overload & 2 != 0 {
            parse_options(&b[44..108], &mut options)?;
        }
        Ok(Message {
            op: b[0],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            chaddr,
            options,
        })
    }
}

/// Appends the options of `b` to `out`, concatenating repeated codes.
fn parse_options(mut b: &[u8], out: &mut Vec<(u8, Vec<u8>)>) -> Result<(), PacketError> {
    while let Some(&code) = b.first() {
        match code {
            OPT_PAD => b = &b[1..],
            OPT_END => break,
            _ => {
                let len = *b.get(1).ok_or(PacketError::Truncated(code))? as usize;
                let value = b.get(2..2 + len).ok_or(PacketError::Truncated(code))?;
                match out.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => v.extend_from_slice(value),
                    None => out.push((code, value.to_vec())),
                }
                b = &b[2 + len..];
            }
        }
    }
    Ok(())
}

/// A route from option 121.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dest: Ipv4Addr,
    pub prefix: u8,
    /// `0.0.0.0` means on the link.
    pub gateway: Ipv4Addr,
}

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    /// Classless static routes; when present, `routers` is ignored (RFC 3442).
    pub routes: Vec<Route>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub lease_secs: Option<u32>,
}

fn addrs(v: &[u8], option: u8) -> Result<Vec<Ipv4Addr>, PacketError> {
    if v.len() % 4 != 0 {
        return Err(PacketError::BadOption { option });
    }
    Ok(v.chunks(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect())
}

/// Option 121: (prefix length, significant destination octets, gateway) triples.
pub fn parse_classless(mut v: &[u8]) -> Result<Vec<Route>, PacketError> {
    let bad = PacketError::BadOption {
        option: OPT_CLASSLESS_ROUTES,
    };
    let mut out = Vec::new();
    while let Some(&prefix) = v.first() {
        if prefix > 32 {
            return Err(bad);
        }
        let n = (prefix as usize).div_ceil(8);
        if v.len() < 1 + n + 4 {
            return Err(bad);
        }
        let mut d = [0u8; 4];
        d[..n].copy_from_slice(&v[1..1 + n]);
        let g = &v[1 + n..5 + n];
        out.push(Route {
            dest: Ipv4Addr::from(d),
            prefix,
            gateway: Ipv4Addr::new(g[0], g[1], g[2], g[3]),
        });
        v = &v[5 + n..];
    }
    Ok(out)
}

impl Lease {
    /// The lease an ACK grants.
    pub fn from_ack(m: &Message) -> Result<Lease, PacketError> {
        let prefix = match m.option(OPT_SUBNET) {
            Some(v) if v.len() == 4 => {
                let mask = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                if mask.leading_ones() + mask.trailing_zeros() != 32 {
                    return Err(PacketError::BadOption { option: OPT_SUBNET });
                }
                mask.leading_ones() as u8
            }
            Some(_) => return Err(PacketError::BadOption { option: OPT_SUBNET }),
            // The classful default.
            None => match m.yiaddr.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            },
        };
        let server = match m.option(OPT_SERVER_ID) {
            Some(v) => *addrs(v, OPT_SERVER_ID)?
                .first()
                .ok_or(PacketError::BadOption {
                    option: OPT_SERVER_ID,
                })?,
            None => m.siaddr,
        };
        let u32_opt = |code| {
            m.option(code)
                .filter(|v| v.len() == 4)
                .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        };
        Ok(Lease {
            address: m.yiaddr,
            prefix,
            server,
            routers: m
                .option(OPT_ROUTER)
                .map(|v| addrs(v, OPT_ROUTER))
                .transpose()?
                .unwrap_or_default(),
            routes: m
                .option(OPT_CLASSLESS_ROUTES)
                .map(parse_classless)
                .transpose()?
                .unwrap_or_default(),
            dns: m
                .option(OPT_DNS)
                .map(|v| addrs(v, OPT_DNS))
                .transpose()?
                .unwrap_or_default(),
            domain: m
                .option(OPT_DOMAIN)
                .map(|v| {
                    String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .filter(|d| !d.is_empty()),
            mtu: m
                .option(OPT_MTU)
                .filter(|v| v.len() == 2)
                .map(|v| u16::from_be_bytes([v[0], v[1]])),
            lease_secs: u32_opt(OPT_LEASE_TIME),
        })
    }
}

/// The options every request carries: client id, parameter list, maximum size.
fn add_common(m: &mut Message) {
    let mut id = vec![1u8];
    id.extend_from_slice(&m.chaddr);
    m.options.push((OPT_CLIENT_ID, id));
    m.options.push((
        OPT_PARAMS,
        vec![
            OPT_SUBNET,
            OPT_ROUTER,
            OPT_DNS,
            OPT_DOMAIN,
            OPT_MTU,
            OPT_LEASE_TIME,
            OPT_SERVER_ID,
            OPT_CLASSLESS_ROUTES,
        ],
    ));
    m.options
        .push((OPT_MAX_SIZE, 1500u16.to_be_bytes().to_vec()));
}

/// DISCOVER.
pub fn discover(xid: u32, mac: [u8; 6]) -> Message {
    let mut m = Message::request(xid, mac, DISCOVER);
    add_common(&mut m);
    m
}

/// REQUEST for an offered address (SELECTING state: requested IP and server id).
pub fn request_for(xid: u32, mac: [u8; 6], offer: &Message) -> Message {
    let mut m = Message::request(xid, mac, REQUEST);
    m.options
        .push((OPT_REQUESTED_IP, offer.yiaddr.octets().to_vec()));
    if let Some(id) = offer.option(OPT_SERVER_ID) {
        m.options.push((OPT_SERVER_ID, id.to_vec()));
    }
    add_common(&mut m);
    m
}

/// Why no lease was obtained on an interface.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("opening a DHCP socket on {iface}")]
    Socket {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending a DHCP {what} on {iface}")]
    Send {
        what: &'static str,
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no DHCP lease on {iface} within {secs} s ({detail})")]
    Timeout {
        iface: String,
        secs: u64,
        detail: String,
    },
    #[error("stopped")]
    Stopped,
}

/// A UDP socket on port 68 bound to `iface`, allowed to broadcast.
pub fn client_socket(iface: &str) -> std::io::Result<UdpSocket> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    super::setsockopt(&owned, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    super::setsockopt(&owned, libc::SOL_SOCKET, libc::SO_BROADCAST, &one)?;
    super::set_bind_device(&owned, iface)?;
    let sock = UdpSocket::from(owned);
    // std binds an existing socket only through its own constructors; bind(2) directly.
    super::bind_any(&sock, CLIENT_PORT)?;
    Ok(sock)
}

/// Runs DISCOVER/OFFER/REQUEST/ACK on `iface` until a lease, `deadline`, or `stop`.
/// Retransmits with exponential backoff (1, 2, 4, 4 … s), as RFC 2131 suggests.
pub fn obtain(
    iface: &str,
    mac: [u8; 6],
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Lease, ClientError> {
    let started = Instant::now();
    let sock = client_socket(iface).map_err(|source| ClientError::Socket {
        iface: iface.to_string(),
        source,
    })?;
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
    let send = |m: &mut Message, what: &'static str| {
        m.secs = started.elapsed().as_secs().min(u16::MAX as u64) as u16;
        sock.send_to(&m.encode(), to)
            .map(|_| ())
            .map_err(|source| ClientError::Send {
                what,
                iface: iface.to_string(),
                source,
            })
    };
    let xid = transaction_id(mac);
    let mut detail = "no offer".to_string();
    let mut backoff = Duration::from_secs(1);
    let mut buf = vec![0u8; 1500];
    'discover: loop {
        let mut d = discover(xid, mac);
        send(&mut d, "DISCOVER")?;
        log::debug!("dhcp: {iface}: DISCOVER sent (xid {xid:#010x})");
        let offer = match receive(&sock, &mut buf, xid, mac, &[OFFER], backoff, deadline, stop)? {
            Some(o) => o,
            None => {
                if Instant::now() >= deadline {
                    break 'discover;
                }
                backoff = (backoff * 2).min(Duration::from_secs(4));
                continue;
            }
        };
        log::debug!("dhcp: {iface}: OFFER of {} received", offer.yiaddr);
        let mut req = request_for(xid, mac, &offer);
        for _ in 0..3 {
            send(&mut req, "REQUEST")?;
            let answer = receive(
                &sock,
                &mut buf,
                xid,
                mac,
                &[ACK, NAK],
                Duration::from_secs(2),
                deadline,
                stop,
            )?;
            match answer {
                Some(a) if a.msg_type() == Some(ACK) => match Lease::from_ack(&a) {
                    Ok(l) => return Ok(l),
                    Err(e) => {
                        detail = format!("unusable ACK: {e}");
                        continue 'discover;
                    }
                },
                Some(_) => {
                    detail = format!("the server refused {} (NAK)", offer.yiaddr);
                    continue 'discover;
                }
                None if Instant::now() >= deadline => break 'discover,
                None => detail = format!("offer of {} but no ACK", offer.yiaddr),
            }
        }
    }
    Err(ClientError::Timeout {
        iface: iface.to_string(),
        secs: deadline.saturating_duration_since(started).as_secs(),
        detail,
    })
}

/// A transaction id.  It only has to differ between clients, so it must not wait for the
/// kernel's entropy pool (which takes seconds to fill in a fresh VM without a hardware RNG):
/// `GRND_INSECURE`, mixed with the clock and the MAC address.
fn transaction_id(mac: [u8; 6]) -> u32 {
    const GRND_INSECURE: libc::c_uint = 4;
    let mut b = [0u8; 4];
    // SAFETY: getrandom(2) writes at most 4 bytes into `b`, which we own.
    let _ = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), GRND_INSECURE) };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let m = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    u32::from_ne_bytes(b) ^ nanos ^ m.rotate_left(13)
}

/// Waits up to `wait` (and at most until `deadline`) for a reply of one of `types` to our
/// transaction.  `Ok(None)` on timeout.
#[allow(clippy::too_many_arguments)]
fn receive(
    sock: &UdpSocket,
    buf: &mut [u8],
    xid: u32,
    mac: [u8; 6],
    types: &[u8],
    wait: Duration,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Option<Message>, ClientError> {
    let until = (Instant::now() + wait).min(deadline);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(ClientError::Stopped);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        // Short slices so that `stop` is noticed quickly.
        let slice = (until - now).min(Duration::from_millis(200));
        let _ = sock.set_read_timeout(Some(slice.max(Duration::from_millis(1))));
        let n = match sock.recv_from(buf) {
            Ok((n, _)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                log::debug!("dhcp: receiving: {e}");
                continue;
            }
        };
        let Ok(m) = Message::decode(&buf[..n]) else {
            continue;
        };
        if m.op == 2 && m.xid == xid && m.chaddr == mac {
            if let Some(t) = m.msg_type() {
                if types.contains(&t) {
                    return Ok(Some(m));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn reply(msg_type: u8, options: Vec<(u8, Vec<u8>)>) -> Message {
        let mut m = Message::request(0xdead_beef, MAC, msg_type);
        m.op = 2;
        m.flags = 0;
        m.yiaddr = Ipv4Addr::new(10, 0, 2, 15);
        m.siaddr = Ipv4Addr::new(10, 0, 2, 2);
        m.options.extend(options);
        m
    }

    #[test]
    fn discover_on_the_wire() {
        let b = discover(0x0102_0304, MAC).encode();
        assert_eq!(b.len(), 300);
        assert_eq!(&b[..4], &[1, 1, 6, 0]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[10..12], &[0x80, 0]); // broadcast flag
        assert_eq!(&b[28..34], &MAC);
        assert!(b[34..236].iter().all(|&x| x == 0));
        assert_eq!(&b[236..240], &MAGIC);
        assert_eq!(&b[240..243], &[53, 1, DISCOVER]);
        assert_eq!(&b[243..251], &[61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34]);
        let m = Message::decode(&b).unwrap();
        assert_eq!(m.msg_type(), Some(DISCOVER));
        assert_eq!(m.option(OPT_MAX_SIZE), Some(&[5u8, 220][..]));
        assert!(m.option(OPT_PARAMS).unwrap().contains(&121));
    }

    #[test]
    fn request_names_the_offer() {
        let offer = reply(OFFER, vec![(OPT_SERVER_ID, vec![10, 0, 2, 2])]);
        let r = Message::decode(&request_for(7, MAC, &offer).encode()).unwrap();
        assert_eq!(r.msg_type(), Some(REQUEST));
        assert_eq!(r.option(OPT_REQUESTED_IP), Some(&[10u8, 0, 2, 15][..]));
        assert_eq!(r.option(OPT_SERVER_ID), Some(&[10u8, 0, 2, 2][..]));
        assert_eq!(r.xid, 7);
    }

    #[test]
    fn ack_from_qemu_user_networking() {
        let ack = reply(
            ACK,
            vec![
                (OPT_SUBNET, vec![255, 255, 255, 0]),
                (OPT_ROUTER, vec![10, 0, 2, 2]),
                (OPT_DNS, vec![10, 0, 2, 3]),
                (OPT_LEASE_TIME, 86400u32.to_be_bytes().to_vec()),
                (OPT_SERVER_ID, vec![10, 0, 2, 2]),
            ],
        );
        let m = Message::decode(&ack.encode()).unwrap();
        assert_eq!(m, ack);
        let l = Lease::from_ack(&m).unwrap();
        assert_eq!(l.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(l.prefix, 24);
        assert_eq!(l.routers, [Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(l.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(l.server, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(l.lease_secs, Some(86400));
        assert!(l.routes.is_empty() && l.domain.is_none() && l.mtu.is_none());
    }

    #[test]
    fn cloud_style_ack_with_classless_routes() {
        // A /32 address whose gateway is reached on the link (as GCP hands them out).
        let routes = vec![
            32, 10, 128, 0, 1, 0, 0, 0, 0, // 10.128.0.1/32 on link
            0, 10, 128, 0, 1, // default via 10.128.0.1
            24, 192, 168, 5, 10, 128, 0, 1, // 192.168.5.0/24 via 10.128.0.1
        ];
        let ack = reply(
            ACK,
            vec![
                (OPT_SUBNET, vec![255, 255, 255, 255]),
                (OPT_CLASSLESS_ROUTES, routes),
                (OPT_MTU, 1460u16.to_be_bytes().to_vec()),
                (OPT_DOMAIN, b"c.example.internal\0".to_vec()),
            ],
        );
        let l = Lease::from_ack(&Message::decode(&ack.encode()).unwrap()).unwrap();
        assert_eq!(l.prefix, 32);
        assert_eq!(l.mtu, Some(1460));
        assert_eq!(l.domain.as_deref(), Some("c.example.internal"));
        assert_eq!(
            l.routes,
            [
                Route {
                    dest: Ipv4Addr::new(10, 128, 0, 1),
                    prefix: 32,
                    gateway: Ipv4Addr::UNSPECIFIED
                },
                Route {
                    dest: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: Ipv4Addr::new(10, 128, 0, 1)
                },
                Route {
                    dest: Ipv4Addr::new(192, 168, 5, 0),
                    prefix: 24,
                    gateway: Ipv4Addr::new(10, 128, 0, 1)
                },
            ]
        );
    }

    #[test]
    fn long_and_repeated_options() {
        // RFC 3396: a long value is split on encoding and joined on decoding.
        let long: Vec<u8> = (0..=255u8).chain(0..100).collect();
        let mut m = reply(ACK, vec![(OPT_DOMAIN, long.clone())]);
        let b = m.encode();
        assert_eq!(
            Message::decode(&b).unwrap().option(OPT_DOMAIN),
            Some(&long[..])
        );
        // Overloaded `file` field.
        m.options = vec![(OPT_MSG_TYPE, vec![ACK]), (OPT_OVERLOAD, vec![1])];
        let mut b = m.encode();
        b[108..115].copy_from_slice(&[3, 4, 10, 0, 2, 2, 255]);
        let d = Message::decode(&b).unwrap();
        assert_eq!(d.option(OPT_ROUTER), Some(&[10u8, 0, 2, 2][..]));
    }

    #[test]
    fn bad_packets_are_errors() {
        assert!(matches!(
            Message::decode(&[0; 100]),
            Err(PacketError::Short(100))
        ));
        let mut b = discover(1, MAC).encode();
        b[236] = 0;
        assert!(matches!(Message::decode(&b), Err(PacketError::NoCookie)));
        let mut b = discover(1, MAC).encode();
        b.truncate(241);
        b.push(200); // length missing
        assert!(matches!(
            Message::decode(&b),
            Err(PacketError::Truncated(53))
        ));
        let bad = reply(ACK, vec![(OPT_SUBNET, vec![255, 0, 255, 0])]);
        assert!(Lease::from_ack(&bad).is_err());
        let bad = reply(ACK, vec![(OPT_ROUTER, vec![10, 0, 2])]);
        assert!(Lease::from_ack(&bad).is_err());
        assert!(parse_classless(&[33, 0, 0, 0, 0]).is_err());
        assert!(parse_classless(&[24, 10, 0]).is_err());
        // No subnet option: the classful default.
        let m = reply(ACK, vec![]);
        assert_eq!(Lease::from_ack(&m).unwrap().prefix, 8);
    }
}
