//! The optional ping check (`[dhcp] ping_check`): before an address is offered to a new
//! client, officebox sends it an ICMP echo; if anything answers within [`PROBE_WAIT`], a
//! device configured by hand is using it, so the address is kept out of the pool for a
//! while and the client gets another one when it asks again.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto,
    setsockopt, socket, sockopt,
};
use tokio::io::unix::AsyncFd;

use crate::raw::checksum;

/// How long an echo may take before the address counts as free.
pub const PROBE_WAIT: Duration = Duration::from_millis(500);

/// A raw ICMP socket on the LAN interface.
#[derive(Debug)]
pub struct Prober {
    fd: AsyncFd<OwnedFd>,
    ident: u16,
    seq: u16,
}

/// An ICMP echo request (type 8) with `ident` and `seq`.
pub fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"officebx");
    let c = checksum(&[&p]);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// The sender of an echo reply (type 0) with `ident` in an IPv4 packet read from a raw
/// socket, if that is what `packet` is.
pub fn echo_reply_from(packet: &[u8], ident: u16) -> Option<Ipv4Addr> {
    let ihl = usize::from(packet.first()? & 0x0F) * 4;
    let icmp = packet.get(ihl..)?;
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    (icmp.first() == Some(&0) && icmp.get(4..6)? == ident.to_be_bytes())
        .then(|| Ipv4Addr::from(src))
}

impl Prober {
    pub fn open(interface: Option<&str>) -> io::Result<Prober> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        )?;
        if let Some(ifname) = interface {
            setsockopt(
                &fd,
                sockopt::BindToDevice,
                &std::ffi::OsString::from(ifname),
            )?;
        }
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open and is the same
        // descriptor for the AsyncFd's whole life, which is all `register` asks.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Prober {
            fd,
            ident: rand::random(),
            seq: 0,
        })
    }

    /// Sends one echo request to `addr`.
    pub fn ping(&mut self, addr: Ipv4Addr) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let packet = echo_request(self.ident, self.seq);
        sendto(
            self.fd.get_ref().as_raw_fd(),
            &packet,
            &SockaddrIn::from(SocketAddrV4::new(addr, 0)),
            MsgFlags::empty(),
        )?;
        Ok(())
    }

    /// The next address that answered one of our echoes.
    pub async fn answered(&self) -> io::Result<Ipv4Addr> {
        let mut buf = [0u8; 1500];
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                recvfrom::<SockaddrIn>(fd.get_ref().as_raw_fd(), &mut buf).map_err(io::Error::from)
            }) {
                Ok(Ok((len, _))) => {
                    if let Some(addr) = buf.get(..len).and_then(|p| echo_reply_from(p, self.ident))
                    {
                        return Ok(addr);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_packets() {
        let req = echo_request(0x1234, 7);
        assert_eq!(
            checksum(&[&req]),
            0,
            "a packet with its checksum sums to zero"
        );
        // An echo reply as a raw socket sees it: IPv4 header, then ICMP type 0.
        let mut reply = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 192, 168, 1, 2, 192, 168, 1, 1,
        ];
        reply.extend_from_slice(&req);
        reply[20] = 0;
        assert_eq!(
            echo_reply_from(&reply, 0x1234),
            Some(Ipv4Addr::new(192, 168, 1, 2))
        );
        assert_eq!(echo_reply_from(&reply, 0x9999), None, "someone else's ping");
        assert_eq!(echo_reply_from(&reply[..22], 0x1234), None);
    }
}
