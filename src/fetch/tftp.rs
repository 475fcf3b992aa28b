//! A TFTP client (RFC 1350, octet mode; RFC 2347/2348 `blksize` when asked for), read as a
//! stream: each `read` returns the next block, so memory stays bounded whatever the file size.
//!
//! Like the Go library Ignition uses: port 69 by default, 5 s per packet, 5 retransmissions.

use super::url::Url;
use super::Error;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub(crate) const PACKET_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const RETRIES: u32 = 5;

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

pub(crate) struct Tftp {
    sock: UdpSocket,
    server: SocketAddr,
    /// The server's transfer port, learnt from its first reply.
    peer: Option<SocketAddr>,
    /// What to send again when a reply does not come.
    last_sent: Vec<u8>,
    blksize: usize,
    /// Number of the block held in `packet`.
    block: u16,
    packet: Vec<u8>,
    pos: usize,
    len: usize,
    finished: bool,
    url: String,
    until: Option<Instant>,
}

impl Tftp {
    pub fn open(
        url: &Url,
        hosts: &[(String, std::net::IpAddr)],
        blksize: Option<u16>,
        until: Option<Instant>,
    ) -> Result<Tftp, Error> {
        let port = url.port_or_default();
        // `resolve` returns at least one address or an error.
        let server = super::http::resolve(hosts, &url.host, port)?[0];
        let bind: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let tftp_err = |reason: String| Error::Tftp {
            url: url.redacted(),
            reason,
        };
        let sock = UdpSocket::bind(bind).map_err(|e| tftp_err(format!("binding a socket: {e}")))?;
        let path = super::url::percent_decode(&url.path).map_err(|e| tftp_err(e.0.into()))?;
        let file = path.strip_prefix(b"/").unwrap_or(&path);
        if file.is_empty() || file.contains(&0) {
            return Err(tftp_err("invalid file name".into()));
        }
        let mut rrq = Vec::with_capacity(file.len() + 32);
        rrq.extend_from_slice(&RRQ.to_be_bytes());
        rrq.extend_from_slice(file);
        rrq.extend_from_slice(b"\0octet\0");
        if let Some(size) = blksize {
            rrq.extend_from_slice(format!("blksize\0{}\0", size.clamp(8, 65464)).as_bytes());
        }
        let mut t = Tftp {
            sock,
            server,
            peer: None,
            last_sent: rrq,
            blksize: 512,
            block: 0,
            packet: vec![0; 4 + 65464],
            pos: 0,
            len: 0,
            finished: false,
            url: url.redacted(),
            until,
        };
        t.send_last()?;
        t.next_block()?;
        Ok(t)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Tftp {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    fn send_last(&mut self) -> Result<(), Error> {
        let to = self.peer.unwrap_or(self.server);
        self.sock
            .send_to(&self.last_sent, to)
            .map_err(|e| self.err(format!("sending: {e}")))?;
        Ok(())
    }

    fn ack(&mut self, block: u16) -> Result<(), Error> {
        self.last_sent.clear();
        self.last_sent.extend_from_slice(&ACK.to_be_bytes());
        self.last_sent.extend_from_slice(&block.to_be_bytes());
        self.send_last()
    }

    /// Waits for the block after `self.block`, acknowledging as it goes.
    fn next_block(&mut self) -> Result<(), Error> {
        let want = self.block.wrapping_add(1);
        let mut tries = 0;
        loop {
            let mut timeout = PACKET_TIMEOUT;
            if let Some(until) = self.until {
                timeout = timeout.min(until.saturating_duration_since(Instant::now()));
                if timeout.is_zero() {
                    return Err(Error::Timeout {
                        url: self.url.clone(),
                        last: None,
                    });
                }
            }
            self.sock
                .set_read_timeout(Some(timeout))
                .map_err(|e| self.err(format!("setting a timeout: {e}")))?;
            let (n, from) = match self.sock.recv_from(&mut self.packet) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    tries += 1;
                    if tries > RETRIES {
                        return Err(self.err(format!("no reply after {} attempts", RETRIES + 1)));
                    }
                    log::debug!("{}: no reply, retransmitting", self.url);
                    self.send_last()?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(format!("receiving: {e}"))),
            };
            match self.peer {
                Some(peer) if peer != from => {
                    // Another transfer's packet: tell its sender, keep waiting (RFC 1350 sec 4).
                    let mut e = ERROR.to_be_bytes().to_vec();
                    e.extend_from_slice(&5u16.to_be_bytes());
                    e.extend_from_slice(b"unknown transfer id\0");
                    let _ = self.sock.send_to(&e, from);
                    continue;
                }
                None if from.ip() != self.server.ip() => continue,
                _ => {}
            }
            if n < 4 {
                return Err(self.err("short packet"));
            }
            let opcode = u16::from_be_bytes([self.packet[0], self.packet[1]]);
            let number = u16::from_be_bytes([self.packet[2], self.packet[3]]);
            match opcode {
                DATA if number == want => {
                    self.peer = Some(from);
                    self.block = number;
                    self.pos = 4;
                    self.len = n;
                    if n - 4 > self.blksize {
                        return Err(self.err("block larger than the block size"));
                    }
                    if n - 4 < self.blksize {
                        self.finished = true;
                        // Acknowledge the last block now: nothing more will be read.
                        self.ack(number)?;
                    }
                    return Ok(());
                }
                DATA => {
                    // A duplicate of a block we have: our ACK was lost, send it again.
                    if self.peer.is_some() {
                        self.send_last()?;
                    }
                }
                OACK if self.peer.is_none() => {
                    self.peer = Some(from);
                    self.blksize = parse_oack(&self.packet[2..n])
                        .ok_or_else(|| self.err("invalid option acknowledgement"))?;
                    self.ack(0)?;
                    tries = 0;
                }
                ERROR => {
                    let msg: String = self.packet[4..n]
                        .iter()
                        .take_while(|&&b| b != 0)
                        .map(|&b| {
                            if b.is_ascii_graphic() || b == b' ' {
                                b as char
                            } else {
                                '?'
                            }
                        })
                        .collect();
                    if number == 1 {
                        return Err(Error::NotFound {
                            url: self.url.clone(),
                        });
                    }
                    return Err(self.err(format!("server error {number}: {msg}")));
                }
                _ => return Err(self.err(format!("unexpected packet type {opcode}"))),
            }
        }
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if self.pos < self.len {
                let n = out.len().min(self.len - self.pos);
                out[..n].copy_from_slice(&self.packet[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            let block = self.block;
            self.ack(block)?;
            self.next_block()?;
        }
    }
}

/// Returns the block size from an OACK's options (512 when the server did not set it).
fn parse_oack(options: &[u8]) -> Option<usize> {
    let mut fields = options.split(|&b| b == 0);
    let mut blksize = 512;
    while let Some(name) = fields.next() {
        if name.is_empty() {
            break;
        }
        let value = fields.next()?;
        if name.eq_ignore_ascii_case(b"blksize") {
            blksize = std::str::from_utf8(value).ok()?.parse().ok()?;
            if !(8..=65464).contains(&blksize) {
                return None;
            }
        }
    }
    Some(blksize)
}

impl Read for Tftp {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_inner(out)
            .map_err(|e| io::Error::other(super::http::Carried(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oack_parsing() {
        assert_eq!(parse_oack(b"blksize\x001468\0"), Some(1468));
        assert_eq!(parse_oack(b"BLKSIZE\x001024\0tsize\x00100\0"), Some(1024));
        assert_eq!(parse_oack(b""), Some(512));
        assert_eq!(parse_oack(b"blksize\0huge\0"), None);
        assert_eq!(parse_oack(b"blksize\x007\0"), None);
    }
}
