//! The media relay: for each call, two UDP ports on the box (one the caller sends to, one
//! the callee sends to), and a task copying packets across. Each side's address is where
//! its SDP said, until its first packet arrives from somewhere else: then that source is
//! used (symmetric RTP latching, for phones behind NAT). Packets from a third address
//! after latching are dropped, so nobody can inject audio into a call by guessing a port.
//!
//! The relay also hears the keys pressed on either side (RFC 4733 events, each told once
//! to the call, which looks for its feature codes), and records the call on demand:
//! both directions' G.711 mixed into one 8 kHz track, after a tone both sides hear.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::media::Law;

/// RTP ports in use, from the configured range.
#[derive(Debug)]
pub struct Ports {
    range: (u16, u16),
    used: Mutex<BTreeSet<u16>>,
    /// The DSCP mark the audio leaves with (0: none).
    dscp: u8,
}

/// A port taken from the range, given back on drop.
#[derive(Debug)]
pub struct Lease {
    pub socket: UdpSocket,
    pub port: u16,
    ports: Arc<Ports>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.ports
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.port);
    }
}

impl Ports {
    pub fn new(range: (u16, u16)) -> Arc<Ports> {
        Ports::marked(range, 0)
    }

    /// Ports whose sockets send with DSCP mark `dscp` (`phone.dscp_rtp`: voice first
    /// wherever the network looks at marks, the box's own WAN shaper included).
    pub fn marked(range: (u16, u16), dscp: u8) -> Arc<Ports> {
        Arc::new(Ports {
            range,
            used: Mutex::default(),
            dscp,
        })
    }

    /// An even port of the range on `ip` (RTP's convention; RTCP would be the odd one).
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> io::Result<Lease> {
        let (lo, hi) = self.range;
        let start = lo + (rand::random::<u16>() % ((hi - lo) / 2 + 1)) * 2;
        let candidates = (start..=hi).chain(lo..start).filter(|p| p % 2 == 0);
        for port in candidates {
            if !self
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(port)
            {
                continue;
            }
            match std::net::UdpSocket::bind((ip, port)).and_then(|s| {
                s.set_nonblocking(true)?;
                if self.dscp != 0 {
                    officebox_sockets::udp::set_dscp(&s, self.dscp)?;
                }
                UdpSocket::from_std(s)
            }) {
                Ok(socket) => {
                    return Ok(Lease {
                        socket,
                        port,
                        ports: Arc::clone(self),
                    });
                }
                Err(_) => {
                    self.used
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&port);
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free RTP port in {lo}-{hi}"),
        ))
    }
}

/// Where each side's audio goes now, as the call's signalling says (SDP offer/answer);
/// latching may override it with the side's real source. Also what the call wants of
/// the audio: each side's telephone-event payload type (its keys are told to the call)
/// and whether the call is being recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peers {
    pub a: Option<SocketAddr>,
    pub b: Option<SocketAddr>,
    pub events_a: Option<u8>,
    pub events_b: Option<u8>,
    pub record: bool,
}

/// A side of the relay: A the caller's, B the callee's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// What the relay tells the call.
#[derive(Debug)]
pub enum Heard {
    /// A key pressed on a side (once per press).
    Key(Side, char),
    /// Recording stopped: the call, mixed (8 kHz).
    Recorded(Vec<i16>),
}

/// The longest recording: then it stops by itself (and is handed over). Kept in memory
/// until then (28.8 MB at 8 kHz), so calls recorded at once are limited too
/// (`call::record`).
pub const MAX_RECORDING: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// The tone both sides hear when recording starts: 1 kHz for 400 ms (20 packets).
const TONE_FRAMES: u32 = 20;
/// A gap in a side's audio longer than this (hold, silence suppression) is kept as
/// silence in the recording; shorter ones (jitter) are closed up.
const GAP: usize = 800;

/// A call being recorded: the mix, where each side's audio goes next in it, when it
/// started, and the tone still to play each way.
#[derive(Debug)]
struct Recording {
    mix: Vec<i16>,
    next: [usize; 2],
    started: Instant,
    tone: [u32; 2],
}

impl Recording {
    fn new() -> Recording {
        Recording {
            mix: Vec::new(),
            next: [0, 0],
            started: Instant::now(),
            tone: [TONE_FRAMES; 2],
        }
    }

    /// A G.711 packet from side `from` (index 0: A): its audio into the mix, and, while
    /// the tone plays, its payload replaced by the tone (so both sides hear it).
    fn packet(&mut self, from: usize, packet: &mut [u8]) {
        let Some(law) = packet.get(1).and_then(|pt| match pt & 0x7f {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }) else {
            return;
        };
        let Some(payload) = packet.get_mut(12..) else {
            return;
        };
        let arrived = usize::try_from(self.started.elapsed().as_millis()).unwrap_or(usize::MAX) * 8;
        let Some(next) = self.next.get_mut(from) else {
            return;
        };
        if arrived > *next + GAP {
            *next = arrived;
        }
        let end = (*next + payload.len()).min(MAX_RECORDING.as_secs() as usize * 8000);
        if self.mix.len() < end {
            self.mix.resize(end, 0);
        }
        for (i, b) in payload.iter().enumerate() {
            if let Some(m) = self.mix.get_mut(*next + i) {
                *m = m.saturating_add(law.decode(*b));
            }
        }
        *next = end;
        if let Some(t) = self.tone.get_mut(from)
            && *t > 0
        {
            let frame = TONE_FRAMES - *t;
            *t -= 1;
            for (i, b) in payload.iter_mut().enumerate() {
                let n = frame as usize * 160 + i;
                let s = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin())
                    as i16;
                *b = law.encode(s);
            }
        }
    }

    fn is_full(&self) -> bool {
        self.mix.len() >= MAX_RECORDING.as_secs() as usize * 8000
    }
}

/// The key of an RFC 4733 event packet that ends a press (once: its retransmissions carry
/// the timestamp `last` remembers), if `packet` is one with payload type `events`.
fn key_of(packet: &[u8], events: Option<u8>, last: &mut Option<u32>) -> Option<char> {
    let pt = packet.get(1)? & 0x7f;
    if Some(pt) != events {
        return None;
    }
    let ts = u32::from_be_bytes(packet.get(4..8)?.try_into().ok()?);
    let (event, flags) = (*packet.get(12)?, *packet.get(13)?);
    if flags & 0x80 == 0 || *last == Some(ts) {
        return None;
    }
    *last = Some(ts);
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        _ => None,
    }
}

/// What a relay hands back when stopped: its ports (voicemail answers on the caller's)
/// and the packets it carried each way.
#[derive(Debug)]
pub struct Stopped {
    pub a: Lease,
    pub b: Lease,
    pub a_to_b: u64,
    pub b_to_a: u64,
    /// Packets dropped on each side for coming from another source than the latched one.
    pub strangers_a: u64,
    pub strangers_b: u64,
    /// The recording still being made when the relay stopped.
    pub recorded: Option<Vec<i16>>,
}

/// Copies packets between `a` (the port the caller sends to) and `b` (the callee's) until
/// `stop`; keys pressed and recordings made go to `heard`.
pub async fn relay(
    a: Lease,
    b: Lease,
    mut peers: watch::Receiver<Peers>,
    stop: CancellationToken,
    heard: Option<mpsc::UnboundedSender<Heard>>,
) -> Stopped {
    let mut buf_a = vec![0u8; 2048];
    let mut buf_b = vec![0u8; 2048];
    let (mut latched_a, mut latched_b): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    let (mut a_to_b, mut b_to_a) = (0u64, 0u64);
    let (mut strangers_a, mut strangers_b) = (0u64, 0u64);
    let mut current = *peers.borrow_and_update();
    let mut keys: [Option<u32>; 2] = [None, None];
    let mut recording: Option<Recording> = current.record.then(Recording::new);
    let tell = |h: Heard| {
        if let Some(tx) = &heard {
            let _ = tx.send(h);
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            changed = peers.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = *peers.borrow_and_update();
                // A new offer or answer (re-INVITE) may move a side: latch again.
                if new.a != current.a {
                    latched_a = None;
                }
                if new.b != current.b {
                    latched_b = None;
                }
                match (new.record, recording.take()) {
                    // Only a change to "record" starts one (not a new address while the
                    // flag is still up after a recording ended at its limit).
                    (true, None) if !current.record => recording = Some(Recording::new()),
                    (true, None) => {}
                    (true, Some(r)) => recording = Some(r),
                    (false, Some(r)) => tell(Heard::Recorded(r.mix)),
                    (false, None) => {}
                }
                current = new;
            }
            r = a.socket.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if !accept(&mut latched_a, current.a, from) {
                    strangers_a += 1;
                    continue;
                }
                let packet = buf_a.get_mut(..n).unwrap_or_default();
                if let Some(k) = key_of(packet, current.events_a, &mut keys[0]) {
                    tell(Heard::Key(Side::A, k));
                }
                if let Some(r) = recording.as_mut() {
                    r.packet(0, packet);
                }
                if let Some(to) = latched_b.or(current.b).filter(|t| !t.ip().is_unspecified())
                    && b.socket.send_to(packet, to).await.is_ok()
                {
                    a_to_b += 1;
                }
            }
            r = b.socket.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if !accept(&mut latched_b, current.b, from) {
                    strangers_b += 1;
                    continue;
                }
                let packet = buf_b.get_mut(..n).unwrap_or_default();
                if let Some(k) = key_of(packet, current.events_b, &mut keys[1]) {
                    tell(Heard::Key(Side::B, k));
                }
                if let Some(r) = recording.as_mut() {
                    r.packet(1, packet);
                }
                if let Some(to) = latched_a.or(current.a).filter(|t| !t.ip().is_unspecified())
                    && a.socket.send_to(packet, to).await.is_ok()
                {
                    b_to_a += 1;
                }
            }
        }
        if recording.as_ref().is_some_and(Recording::is_full)
            && let Some(r) = recording.take()
        {
            tell(Heard::Recorded(r.mix));
        }
    }
    Stopped {
        a,
        b,
        a_to_b,
        b_to_a,
        strangers_a,
        strangers_b,
        recorded: recording.map(|r| r.mix),
    }
}

/// Whether a packet from `from` belongs to this side; the first one latches it. Before
/// latching, only the side's signalled host (any port, for NAT) or any address when it
/// signalled none is accepted.
fn accept(
    latched: &mut Option<SocketAddr>,
    signalled: Option<SocketAddr>,
    from: SocketAddr,
) -> bool {
    match latched {
        Some(l) => *l == from,
        None => {
            let ok = signalled.is_none_or(|s| s.ip() == from.ip() || s.ip().is_unspecified())
                || signalled.is_some_and(|s| s.ip().is_loopback() && from.ip().is_loopback());
            if ok {
                *latched = Some(from);
            }
            ok
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_cross_and_sides_latch_to_their_real_source() {
        let ports = Ports::new((47000, 47998));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, b) = (ports.take(ip).unwrap(), ports.take(ip).unwrap());
        assert_ne!(a.port, b.port);
        assert_eq!(a.port % 2, 0);
        let (pa, pb) = (a.port, b.port);
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The SDP named other ports than the phones really use: latching fixes that.
        let (tx, rx) = watch::channel(Peers {
            a: Some("127.0.0.1:9".parse().unwrap()),
            b: Some("127.0.0.1:11".parse().unwrap()),
            ..Peers::default()
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay(a, b, rx, stop.clone(), None));
        let mut buf = [0u8; 64];
        phone_b.send_to(b"from b", ("127.0.0.1", pb)).await.unwrap(); // latches b
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        phone_a.send_to(b"from a", ("127.0.0.1", pa)).await.unwrap();
        let (n, _) = phone_b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from a");
        phone_b
            .send_to(b"again b", ("127.0.0.1", pb))
            .await
            .unwrap();
        let (n, from) = phone_a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"again b"[..], pa));
        // A stranger cannot speak into the call.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stranger.send_to(b"evil", ("127.0.0.1", pa)).await.unwrap();
        stop.cancel();
        let stopped = task.await.unwrap();
        // b's first packet went where a's SDP said (nothing had come from a yet).
        assert_eq!((stopped.a_to_b, stopped.b_to_a), (1, 2));
        drop((tx, stopped));
        assert!(ports.used.lock().unwrap().is_empty(), "ports given back");
    }

    /// An RTP packet: payload type `pt`, timestamp `ts`, and `payload`.
    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_key_is_heard_once_per_press_of_the_sides_event_type() {
        let mut last = None;
        // 101: telephone-event; `*` (10), not yet ended, then ended three times.
        assert_eq!(
            key_of(&rtp(101, 1, 500, &[10, 0x0a, 0, 160]), Some(101), &mut last),
            None
        );
        let end = rtp(101, 2, 500, &[10, 0x8a, 1, 64]);
        assert_eq!(key_of(&end, Some(101), &mut last), Some('*'));
        assert_eq!(
            key_of(&end, Some(101), &mut last),
            None,
            "a retransmitted end"
        );
        assert_eq!(
            key_of(&rtp(101, 4, 900, &[1, 0x8a, 1, 64]), Some(101), &mut last),
            Some('1')
        );
        // Another side's type, audio, or a short packet: no key.
        assert_eq!(
            key_of(&rtp(96, 5, 1300, &[2, 0x8a, 1, 64]), Some(101), &mut last),
            None
        );
        assert_eq!(
            key_of(&rtp(0, 6, 1700, &[2, 0x8a, 1, 64]), None, &mut last),
            None
        );
        assert_eq!(key_of(&[0x80, 101, 0], Some(101), &mut last), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recording_mixes_both_sides_and_both_hear_the_tone_first() {
        let mut r = Recording::new();
        let quiet = Law::Mu.encode(0);
        // 25 packets each way, 20 ms apart: the first 20 carry the tone instead.
        for i in 0..25u16 {
            let mut from_a = rtp(0, i, u32::from(i) * 160, &[Law::Mu.encode(1000); 160]);
            let mut from_b = rtp(0, i, u32::from(i) * 160, &[Law::Mu.encode(-300); 160]);
            r.packet(0, &mut from_a);
            r.packet(1, &mut from_b);
            let toned = from_a[12..].iter().any(|&b| b != Law::Mu.encode(1000));
            assert_eq!(toned, i < 20, "packet {i}");
            assert!(from_b[12..].iter().any(|&b| b != quiet));
            tokio::time::advance(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(r.mix.len(), 25 * 160);
        // Both voices are in the mix (1000 - 300, give or take G.711).
        let last = r.mix[24 * 160];
        assert!((650..=750).contains(&last), "{last}");
        // A pause (hold) is kept as a pause: the next packet lands after it.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        r.packet(0, &mut rtp(0, 30, 0, &[Law::Mu.encode(1000); 160]));
        assert_eq!(r.mix.len(), 8000 + 25 * 160 + 160);
        // Not G.711 (an event, comfort noise): not in the mix.
        r.packet(1, &mut rtp(101, 31, 0, &[1, 0x8a, 0, 160]));
        assert_eq!(r.mix.len(), 8000 + 25 * 160 + 160);
    }
}
