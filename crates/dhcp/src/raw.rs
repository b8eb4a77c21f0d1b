//! Replies to a client's hardware address (RFC 2131 section 4.1): a client without an
//! address that did not ask for broadcasts cannot receive ordinary UDP (the kernel would
//! need its MAC from ARP, which it cannot answer yet). A packet socket sends the IPv4/UDP
//! datagram straight to its MAC.
//!
//! The two system calls here are the crate's only `unsafe`; everything else is safe code
//! building the headers.

#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use officebox_config::values::Mac;

/// A packet socket on one interface.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    ifindex: i32,
}

const ETH_P_IP: u16 = 0x0800;

impl RawSender {
    pub fn open(interface: &str) -> io::Result<RawSender> {
        let ifindex = nix::net::if_::if_nametoindex(interface)
            .map_err(|e| io::Error::other(format!("dhcp: no interface {interface}: {e}")))?;
        let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
        // SAFETY: socket() takes no pointers; a negative result is an error, otherwise the
        // descriptor is new and owned by nobody else, so OwnedFd may take it.
        let fd = unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_IP.to_be()),
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        Ok(RawSender { fd, ifindex })
    }

    /// Sends `payload` as UDP from `src` to `dst` at the hardware address `mac`.
    pub fn send(
        &self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        mac: Mac,
        payload: &[u8],
    ) -> io::Result<()> {
        let packet = ipv4_udp(src, dst, payload)?;
        let mut addr: libc::sockaddr_ll = libc_sockaddr_ll();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_IP.to_be();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac.0);
        // SAFETY: the buffer and the address are valid for the lengths given and outlive
        // the call; the kernel only reads them.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

fn libc_sockaddr_ll() -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: 0,
        sll_protocol: 0,
        sll_ifindex: 0,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

/// The Internet checksum: one's-complement sum of 16-bit words (RFC 1071) over `parts`.
pub(crate) fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let (words, rest) = part.as_chunks::<2>();
        for w in words {
            sum += u32::from(u16::from_be_bytes(*w));
        }
        if let [last] = rest {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header and a UDP header (with checksum) around `payload`.
pub fn ipv4_udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> io::Result<Vec<u8>> {
    let udp_len =
        u16::try_from(8 + payload.len()).map_err(|_| io::Error::other("datagram too large"))?;
    let total = udp_len
        .checked_add(20)
        .ok_or_else(|| io::Error::other("datagram too large"))?;
    let mut ip = [0u8; 20];
    ip[0] = 0x45; // version 4, 5 words of header
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());

    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.0.octets());
    pseudo[4..8].copy_from_slice(&dst.0.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let c = match checksum(&[&pseudo, &udp, payload]) {
        0 => 0xFFFF, // zero means "no checksum" in UDP over IPv4
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());

    let mut out = Vec::with_capacity(usize::from(total));
    out.extend_from_slice(&ip);
    out.extend_from_slice(&udp);
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_check_out() {
        let p = ipv4_udp(
            (Ipv4Addr::new(192, 168, 1, 1), 67),
            (Ipv4Addr::new(192, 168, 1, 2), 68),
            b"hello",
        )
        .unwrap();
        assert_eq!(p.len(), 20 + 8 + 5);
        // A header with its checksum sums to zero (all ones before complement).
        assert_eq!(checksum(&[&p[..20]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&p[12..16]);
        pseudo[4..8].copy_from_slice(&p[16..20]);
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&p[24..26]);
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0);
    }
}
