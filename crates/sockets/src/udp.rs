//! UDP server sockets that answer from the address they were asked.
//!
//! A socket bound to 0.0.0.0 receives datagrams sent to any of the box's addresses, but a
//! plain `sendto` picks the source by route: a LAN PC asking the box's WAN address would
//! get the answer from the LAN address and drop it. Every datagram's destination comes
//! with it here (IP_PKTINFO, IPV6_RECVPKTINFO), and the reply names it as its source.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self as sock, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    SockaddrStorage, setsockopt, sockopt,
};

/// Room for the control messages a datagram arrives with: its destination, and a
/// receive timestamp where the caller asked for one.
#[must_use]
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo, nix::sys::time::TimeSpec)
}

/// A UDP socket on `addr`, non-blocking, that reports each datagram's destination.
/// A specific address may be one the interface does not have yet (IP_FREEBIND). A port
/// whose old socket was closed a moment ago is tried again for a while (see
/// [`crate::retry_in_use`]).
pub async fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    crate::retry_in_use(|| bind_once(addr)).await
}

fn bind_once(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd: OwnedFd = sock::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    if addr.is_ipv4() {
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
    }
    if !addr.ip().is_unspecified() {
        setsockopt(&fd, sockopt::IpFreebind, &true)?;
    }
    sock::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::UdpSocket::from(fd))
}

/// One datagram taken from a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// The address it was sent to (the source for the reply), when the kernel said.
    pub to: Option<IpAddr>,
    /// When it arrived (since the epoch), where the socket has SO_TIMESTAMPNS on.
    pub stamp: Option<Duration>,
}

/// A socket address as the standard library has it.
#[must_use]
pub fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// The destination address among a datagram's control messages.
pub fn destination(cmsgs: impl IntoIterator<Item = ControlMessageOwned>) -> Option<IpAddr> {
    cmsgs.into_iter().find_map(|c| match c {
        ControlMessageOwned::Ipv4PacketInfo(info) => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from_be(info.ipi_addr.s_addr),
        ))),
        ControlMessageOwned::Ipv6PacketInfo(info) => {
            Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)))
        }
        _ => None,
    })
}

/// Takes one datagram without blocking (`WouldBlock` when there is none); `cmsg` is room
/// for its control messages ([`cmsg_buffer`]), kept by the caller from one to the next.
#[allow(clippy::ptr_arg)] // nix's recvmsg takes the Vec itself
pub fn recv(fd: RawFd, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = sock::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)?;
    let from = msg
        .address
        .as_ref()
        .and_then(socket_addr)
        .ok_or_else(|| io::Error::other("a datagram without a sender"))?;
    let (mut to, mut stamp) = (None, None);
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::ScmTimestampns(t) => stamp = Some(Duration::from(t)),
                other => to = to.or_else(|| destination([other])),
            }
        }
    }
    Ok(Received {
        len: msg.bytes,
        from,
        to,
        stamp,
    })
}

/// The source a reply to a datagram sent to `to` goes out from: that address, unless it
/// was a broadcast or multicast one (a reply never comes from those).
#[must_use]
pub fn reply_source(to: Option<IpAddr>) -> Option<IpAddr> {
    to.filter(|ip| match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    })
}

/// The control message that makes a datagram go out from `source`.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Source {
    /// The source for a datagram to `to`, when `from` is a usable one of the same family.
    #[must_use]
    pub fn new(from: Option<IpAddr>, to: SocketAddr) -> Option<Source> {
        match (reply_source(from)?, to) {
            (IpAddr::V4(ip), SocketAddr::V4(_)) => Some(Source::V4(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            })),
            (IpAddr::V6(ip), SocketAddr::V6(_)) => Some(Source::V6(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: 0,
            })),
            _ => None,
        }
    }

    /// The control message to hand to `sendmsg`/`sendmmsg`.
    #[must_use]
    pub fn cmsg(&self) -> ControlMessage<'_> {
        match self {
            Source::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Source::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        }
    }
}

/// Sends `buf` to `to` from `from` (when given) without blocking. Should the source not be
/// usable (the address went away), the datagram goes out from the route's address.
pub fn send(fd: RawFd, buf: &[u8], to: SocketAddr, from: Option<IpAddr>) -> io::Result<usize> {
    let iov = [IoSlice::new(buf)];
    let dest = SockaddrStorage::from(to);
    let plain = || {
        sock::sendmsg(fd, &iov, &[], MsgFlags::MSG_DONTWAIT, Some(&dest)).map_err(io::Error::from)
    };
    let Some(source) = Source::new(from, to) else {
        return plain();
    };
    match sock::sendmsg(
        fd,
        &iov,
        &[source.cmsg()],
        MsgFlags::MSG_DONTWAIT,
        Some(&dest),
    ) {
        Err(Errno::EINVAL | Errno::EADDRNOTAVAIL) => plain(),
        other => other.map_err(io::Error::from),
    }
}

/// Marks what `fd` sends with DSCP `dscp` (0: unmarked): the IPv4 TOS byte's upper six
/// bits, and IPv6's traffic class where the socket is IPv6. Sockets accepted from a
/// marked listener are marked too.
pub fn set_dscp(fd: &impl std::os::fd::AsFd, dscp: u8) -> io::Result<()> {
    let tos = i32::from(dscp & 0x3f) << 2;
    setsockopt(fd, sockopt::Ipv4Tos, &tos).map_err(io::Error::from)?;
    // An IPv4 socket has no IPv6 traffic class: that refusal is no error.
    match setsockopt(fd, sockopt::Ipv6TClass, &tos) {
        Ok(()) | Err(Errno::ENOPROTOOPT | Errno::EINVAL | Errno::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends `buf` to `to` on `socket` with TOS byte `tos` for this datagram alone (a
/// tunnel's outer packet keeping its inner packet's mark); 0 sends it as the socket
/// would.
pub async fn send_marked(
    socket: &tokio::net::UdpSocket,
    buf: &[u8],
    to: SocketAddr,
    tos: u8,
) -> io::Result<usize> {
    if tos == 0 || !to.is_ipv4() {
        return socket.send_to(buf, to).await;
    }
    let dest = SockaddrStorage::from(to);
    let fd = socket.as_raw_fd();
    socket
        .async_io(tokio::io::Interest::WRITABLE, || {
            let iov = [IoSlice::new(buf)];
            sock::sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4Tos(&tos)],
                MsgFlags::MSG_DONTWAIT,
                Some(&dest),
            )
            .map_err(io::Error::from)
        })
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_comes_from_the_address_asked() {
        // 127.0.0.2 is the box's "other address" here: the socket listens on 0.0.0.0,
        // and a client asking 127.0.0.2 gets its answer from 127.0.0.2.
        let server = bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for asked in ["127.0.0.2", "127.0.0.1"] {
            let asked: Ipv4Addr = asked.parse().unwrap();
            client.send_to(b"ping", (asked, port)).unwrap();
            let mut buf = [0u8; 16];
            let mut cmsg = cmsg_buffer();
            let got = loop {
                match recv(server.as_raw_fd(), &mut buf, &mut cmsg) {
                    Ok(r) => break r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(got.to, Some(IpAddr::V4(asked)));
            assert_eq!(&buf[..got.len], b"ping");
            send(server.as_raw_fd(), b"pong", got.from, got.to).unwrap();
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"pong");
            assert_eq!(from.ip(), IpAddr::V4(asked));
        }
    }

    #[test]
    fn broadcast_and_multicast_are_never_a_source() {
        assert_eq!(reply_source(Some("255.255.255.255".parse().unwrap())), None);
        assert_eq!(reply_source(Some("224.0.0.1".parse().unwrap())), None);
        assert_eq!(reply_source(Some("0.0.0.0".parse().unwrap())), None);
        assert_eq!(reply_source(None), None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(reply_source(Some(ip)), Some(ip));
        assert!(Source::new(Some(ip), "[::1]:53".parse().unwrap()).is_none());
    }
}
