//! Two boxes' tunnels on loopback, each with a channel standing in for its TUN device:
//! a packet for the other site's subnet comes out there, and the answer comes back; a
//! stranger's handshake gets no answer; a packet whose source is not the peer's is not
//! delivered; a peer that moves is followed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use officebox_vpn::{Packets, PeerConfig, Subnet, Tunnel};
use tokio::net::UdpSocket;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// A TUN device's stand-in: what the test feeds in, and what the tunnel delivers.
struct Pipe {
    into_tunnel: Mutex<mpsc::Receiver<Vec<u8>>>,
    out_of_tunnel: mpsc::Sender<Vec<u8>>,
}

impl Packets for Pipe {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let p = self
            .into_tunnel
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::other("closed"))?;
        buf[..p.len()].copy_from_slice(&p);
        Ok(p.len())
    }

    async fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.out_of_tunnel
            .send(packet.to_vec())
            .await
            .map_err(|_| io::Error::other("closed"))
    }
}

/// A running box: feed packets with `feed`, see what came out on `delivered`.
struct Side {
    feed: mpsc::Sender<Vec<u8>>,
    delivered: mpsc::Receiver<Vec<u8>>,
    addr: SocketAddr,
    status: tokio::sync::watch::Receiver<Vec<officebox_vpn::PeerStatus>>,
}

fn key(n: u8) -> [u8; 32] {
    let mut k = [n; 32];
    k[0] = n.wrapping_mul(7);
    k
}

fn public(secret: [u8; 32]) -> [u8; 32] {
    *PublicKey::from(&StaticSecret::from(secret)).as_bytes()
}

fn subnet(s: &str) -> Subnet {
    let (a, p) = s.split_once('/').unwrap();
    Subnet {
        network: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
    }
}

async fn start(
    socket: UdpSocket,
    secret: [u8; 32],
    peers: Vec<PeerConfig>,
    stop: &CancellationToken,
) -> Side {
    let (feed, rx) = mpsc::channel(16);
    let (tx, delivered) = mpsc::channel(16);
    let tunnel = Tunnel::new(secret, peers);
    let status = tunnel.status();
    let addr = socket.local_addr().unwrap();
    let pipe = Pipe {
        into_tunnel: Mutex::new(rx),
        out_of_tunnel: tx,
    };
    let stop = stop.clone();
    tokio::spawn(async move { tunnel.run(&pipe, &socket, stop).await });
    Side {
        feed,
        delivered,
        addr,
        status,
    }
}

/// An IPv4/UDP packet from `src` to `dst` carrying `payload` (checksums are not looked at).
fn packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    p.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

async fn next(rx: &mut mpsc::Receiver<Vec<u8>>) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Head office (10.1.0.0/24) and branch (10.2.0.0/24), each knowing the other.
async fn two_sites(stop: &CancellationToken) -> (Side, Side, [u8; 32], [u8; 32]) {
    let (a_key, b_key) = (key(1), key(2));
    let a_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (a_addr, b_addr) = (a_sock.local_addr().unwrap(), b_sock.local_addr().unwrap());
    let a = start(
        a_sock,
        a_key,
        vec![PeerConfig {
            name: "branch".into(),
            public_key: public(b_key),
            endpoint: Some(b_addr),
            allowed: vec![subnet("10.2.0.0/24")],
            keepalive: None,
        }],
        stop,
    )
    .await;
    let b = start(
        b_sock,
        b_key,
        vec![PeerConfig {
            name: "head".into(),
            public_key: public(a_key),
            endpoint: Some(a_addr),
            allowed: vec![subnet("10.1.0.0/24")],
            keepalive: None,
        }],
        stop,
    )
    .await;
    (a, b, a_key, b_key)
}

#[tokio::test]
async fn a_packet_for_the_other_site_comes_out_there_and_the_answer_comes_back() {
    let stop = CancellationToken::new();
    let (mut a, mut b, ..) = two_sites(&stop).await;
    let (pc_a, pc_b) = ("10.1.0.10".parse().unwrap(), "10.2.0.20".parse().unwrap());
    let hello = packet(pc_a, pc_b, b"hello branch");
    a.feed.send(hello.clone()).await.unwrap();
    assert_eq!(next(&mut b.delivered).await.as_deref(), Some(&hello[..]));
    let reply = packet(pc_b, pc_a, b"hello head office");
    b.feed.send(reply.clone()).await.unwrap();
    assert_eq!(next(&mut a.delivered).await.as_deref(), Some(&reply[..]));
    // A destination no peer has goes nowhere.
    a.feed
        .send(packet(pc_a, "10.9.0.1".parse().unwrap(), b"lost"))
        .await
        .unwrap();
    assert_eq!(next(&mut b.delivered).await, None);
    // The status shows the handshake and the bytes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = a.status.borrow().clone();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, "branch");
    assert!(status[0].last_handshake.is_some(), "{status:?}");
    assert!(status[0].sent > 0 && status[0].received > 0, "{status:?}");
    assert_eq!(status[0].endpoint, Some(b.addr));
    stop.cancel();
}

#[tokio::test]
async fn a_strangers_handshake_gets_no_answer() {
    let stop = CancellationToken::new();
    let (a, _b, a_key, _) = two_sites(&stop).await;
    // A stranger who knows the box's public key (it is public) but is no peer of it.
    let mut stranger = Tunn::new(
        StaticSecret::from(key(9)),
        PublicKey::from(public(a_key)),
        None,
        None,
        7,
        None,
    );
    let mut buf = vec![0u8; 2048];
    let init = match stranger.encapsulate(
        &packet([10, 2, 0, 5].into(), [10, 1, 0, 10].into(), b"x"),
        &mut buf,
    ) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        other => panic!("no handshake initiation: {other:?}"),
    };
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..3 {
        sock.send_to(&init, a.addr).await.unwrap();
        // Garbage too.
        sock.send_to(b"\x01\x00\x00\x00garbage", a.addr)
            .await
            .unwrap();
    }
    let mut reply = [0u8; 512];
    let got = tokio::time::timeout(Duration::from_millis(700), sock.recv_from(&mut reply)).await;
    assert!(got.is_err(), "the box answered a stranger");
    stop.cancel();
}

#[tokio::test]
async fn a_packet_whose_source_is_not_the_peers_is_not_delivered() {
    let stop = CancellationToken::new();
    let (mut a, b, ..) = two_sites(&stop).await;
    // The branch sends with a head-office source (spoofing a LAN address).
    let pc_a: Ipv4Addr = "10.1.0.10".parse().unwrap();
    b.feed
        .send(packet("10.1.0.99".parse().unwrap(), pc_a, b"spoofed"))
        .await
        .unwrap();
    assert_eq!(next(&mut a.delivered).await, None);
    // Its own source gets through (the session is up: nothing else was wrong).
    let real = packet("10.2.0.20".parse().unwrap(), pc_a, b"real");
    b.feed.send(real.clone()).await.unwrap();
    assert_eq!(next(&mut a.delivered).await.as_deref(), Some(&real[..]));
    stop.cancel();
}

#[tokio::test]
async fn a_peer_that_moves_is_followed() {
    let stop = CancellationToken::new();
    let (a_key, b_key) = (key(1), key(2));
    let a_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a_addr = a_sock.local_addr().unwrap();
    // The head office knows no endpoint for the laptop: it learns it.
    let mut a = start(
        a_sock,
        a_key,
        vec![PeerConfig {
            name: "laptop".into(),
            public_key: public(b_key),
            endpoint: None,
            allowed: vec![subnet("10.99.0.2/32")],
            keepalive: None,
        }],
        &stop,
    )
    .await;
    let laptop_peer = vec![PeerConfig {
        name: "head".into(),
        public_key: public(a_key),
        endpoint: Some(a_addr),
        allowed: vec![subnet("10.1.0.0/24")],
        keepalive: None,
    }];
    let (pc, laptop_ip) = ("10.1.0.10".parse().unwrap(), "10.99.0.2".parse().unwrap());
    for round in 0..2 {
        // The laptop on a new address each time (home, then a café).
        let first_stop = CancellationToken::new();
        let mut laptop = start(
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            b_key,
            laptop_peer.clone(),
            &first_stop,
        )
        .await;
        let up = packet(laptop_ip, pc, format!("round {round}").as_bytes());
        laptop.feed.send(up.clone()).await.unwrap();
        assert_eq!(next(&mut a.delivered).await.as_deref(), Some(&up[..]));
        let down = packet(pc, laptop_ip, b"answer");
        a.feed.send(down.clone()).await.unwrap();
        assert_eq!(
            next(&mut laptop.delivered).await.as_deref(),
            Some(&down[..]),
            "round {round}"
        );
        first_stop.cancel();
    }
    stop.cancel();
}
