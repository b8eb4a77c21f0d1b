//! The box's own end of a call, for voicemail and its menu: G.711 (ITU-T G.711 mu-law and
//! A-law) to and from 16-bit samples, and an RTP endpoint that plays samples
//! in 20 ms packets, records what arrives, and hears DTMF as RFC 4733 telephone-events
//! (SIP INFO digits come from the call task through the same channel).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Samples per 20 ms packet at 8 kHz.
pub const FRAME: usize = 160;
pub const RATE: u32 = officebox_store::wav::RATE;

/// One cycle of ringback, as the caller hears a phone ring: 440 + 480 Hz for 2 s, then
/// 4 s of silence (the North American cadence, ITU-T E.180). Made once (a transfer or an
/// attendant's send-on plays it; making it is 32,000 sines).
pub fn ringback() -> &'static [i16] {
    static RINGBACK: std::sync::OnceLock<Vec<i16>> = std::sync::OnceLock::new();
    RINGBACK.get_or_init(make_ringback)
}

fn make_ringback() -> Vec<i16> {
    let rate = f64::from(RATE);
    let mut out: Vec<i16> = (0..2 * RATE)
        .map(|i| {
            let t = f64::from(i) / rate;
            let tau = 2.0 * std::f64::consts::PI;
            (4000.0 * ((tau * 440.0 * t).sin() + (tau * 480.0 * t).sin())) as i16
        })
        .collect();
    out.resize(6 * RATE as usize, 0);
    out
}

/// Which G.711 law a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// Payload type 0.
    Mu,
    /// Payload type 8.
    A,
}

impl Law {
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn encode(self, s: i16) -> u8 {
        match self {
            Law::Mu => mu_encode(s),
            Law::A => a_encode(s),
        }
    }

    pub fn decode(self, b: u8) -> i16 {
        match self {
            Law::Mu => mu_decode(b),
            Law::A => a_decode(b),
        }
    }
}

// The classic G.711 conversions (as in Sun's reference g711.c): mu-law on 14-bit and
// A-law on 13-bit magnitudes, eight segments of sixteen steps each.

const MU_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const A_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| value <= e).unwrap_or(8)
}

fn mu_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + (0x84 >> 2);
    let seg = segment(v, &MU_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
    (u as u8) ^ mask
}

fn mu_decode(b: u8) -> i16 {
    let u = !b;
    let mut t = (i32::from(u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn a_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &A_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (a as u8) ^ mask
}

fn a_decode(b: u8) -> i16 {
    let a = b ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    match (a & 0x70) >> 4 {
        0 => t += 8,
        1 => t += 0x108,
        seg => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// What the far end negotiated: its audio address, the law, and the telephone-event
/// payload type if it offered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub remote: Option<SocketAddr>,
    pub law: Law,
    pub events: Option<u8>,
}

/// Picks G.711 (mu-law first) and telephone-event from an SDP offer.
pub fn negotiate(offer: &[u8]) -> Option<Negotiated> {
    let text = std::str::from_utf8(offer).ok()?;
    let m = text.lines().find(|l| l.starts_with("m=audio "))?;
    let pts: Vec<u8> = m
        .split(' ')
        .skip(3)
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let law = if pts.contains(&0) {
        Law::Mu
    } else if pts.contains(&8) {
        Law::A
    } else {
        return None;
    };
    let events = text.lines().find_map(|l| {
        let rest = l.strip_prefix("a=rtpmap:")?;
        let (pt, name) = rest.split_once(' ')?;
        name.to_ascii_lowercase()
            .starts_with("telephone-event/8000")
            .then(|| pt.trim().parse().ok())
            .flatten()
    });
    Some(Negotiated {
        remote: crate::sdp::audio(offer).map(|m| m.addr),
        law,
        events,
    })
}

/// As [`negotiate`], but in `law` only (`None` when the offer does not have it).
pub fn negotiate_in(offer: &[u8], law: Law) -> Option<Negotiated> {
    let text = std::str::from_utf8(offer).ok()?;
    let m = text.lines().find(|l| l.starts_with("m=audio "))?;
    let pt = law.payload_type().to_string();
    if !m.split_whitespace().skip(3).any(|p| p == pt) {
        return None;
    }
    negotiate(offer).map(|n| Negotiated { law, ..n })
}

/// The G.711 laws an offer has, in its order of preference.
pub fn laws(offer: &[u8]) -> Vec<Law> {
    let text = std::str::from_utf8(offer).unwrap_or("");
    let Some(m) = text.lines().find(|l| l.starts_with("m=audio ")) else {
        return Vec::new();
    };
    m.split_whitespace()
        .skip(3)
        .filter_map(|p| match p {
            "0" => Some(Law::Mu),
            "8" => Some(Law::A),
            _ => None,
        })
        .collect()
}

/// Our SDP answer: G.711 in `law`, telephone-event when the offer had it.
pub fn answer(ip: std::net::IpAddr, port: u16, n: &Negotiated) -> Vec<u8> {
    answer_with(ip, port, n, "sendrecv")
}

/// [`answer`] in `direction` (`sendrecv`, `recvonly`, `sendonly` or `inactive`).
pub fn answer_with(ip: std::net::IpAddr, port: u16, n: &Negotiated, direction: &str) -> Vec<u8> {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pt = n.law.payload_type();
    let name = match n.law {
        Law::Mu => "PCMU",
        Law::A => "PCMA",
    };
    let session = rand::random::<u32>();
    let mut s = format!(
        "v=0\r\no=officebox {session} {session} IN {family} {ip}\r\ns=officebox\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
    match n.events {
        Some(ev) => s.push_str(&format!(
            "m=audio {port} RTP/AVP {pt} {ev}\r\na=rtpmap:{pt} {name}/8000\r\n\
             a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-15\r\n"
        )),
        None => s.push_str(&format!(
            "m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\n"
        )),
    }
    s.push_str(&format!("a=ptime:20\r\na={direction}\r\n"));
    s.into_bytes()
}

/// The socket an endpoint uses: one of the relay's ports (given back when the endpoint
/// is dropped), or any socket (tests).
#[derive(Debug)]
pub enum Socket {
    Leased(crate::rtp::Lease),
    Plain(UdpSocket),
}

impl Socket {
    fn get(&self) -> &UdpSocket {
        match self {
            Socket::Leased(l) => &l.socket,
            Socket::Plain(s) => s,
        }
    }
}

/// An RTP endpoint on one of the relay's ports.
#[derive(Debug)]
pub struct Endpoint {
    socket: Socket,
    n: Negotiated,
    /// Latched to the source of the far end's first packet.
    remote: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    /// Digits from SIP INFO (the call task) arrive here, until its sender is gone.
    info_digits: mpsc::UnboundedReceiver<char>,
    digits_gone: bool,
    /// The telephone-event in progress (its timestamp), and the last one that ended:
    /// one digit per key press, whatever the retransmissions.
    event: Option<u32>,
    ended: Option<u32>,
    /// Listening for a calling fax machine ([`Endpoint::listen_for_fax`]), and whether
    /// one was heard.
    tones: Option<Box<officebox_fax::CngDetector>>,
    fax_heard: bool,
}

/// Why playing or recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Played or recorded to the end (or the length limit).
    Done,
    Digit(char),
    /// A calling fax machine's tone was heard ([`Endpoint::listen_for_fax`]).
    Fax,
}

impl Endpoint {
    pub fn new(
        socket: Socket,
        n: Negotiated,
        info_digits: mpsc::UnboundedReceiver<char>,
    ) -> Endpoint {
        Endpoint {
            socket,
            remote: n.remote,
            n,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            info_digits,
            digits_gone: false,
            event: None,
            ended: None,
            tones: None,
            fax_heard: false,
        }
    }

    /// Whether a calling fax machine's tone was heard (while listening for one).
    pub fn fax_heard(&self) -> bool {
        self.fax_heard
    }

    /// From now on a calling fax machine's tone (CNG) in the far end's audio stops
    /// playing and recording with [`Stop::Fax`].
    pub fn listen_for_fax(&mut self) {
        if self.tones.is_none() {
            self.tones = officebox_fax::CngDetector::new().map(Box::new);
        }
    }

    /// Where the far end's audio comes from (latched), else where its SDP said.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The address of the endpoint's socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// The codec the far end and the box agreed on.
    pub fn negotiated(&self) -> Negotiated {
        self.n
    }

    /// The relay's port this endpoint used, given back for the relay (`None` for a
    /// plain socket).
    pub fn into_lease(self) -> Option<crate::rtp::Lease> {
        match self.socket {
            Socket::Leased(l) => Some(l),
            Socket::Plain(_) => None,
        }
    }

    /// Plays `samples` again and again until `stop` (ringback while the call rings on).
    pub async fn play_until(&mut self, samples: &[i16], stop: &CancellationToken) {
        while !stop.is_cancelled() {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = self.play(samples, false) => {}
            }
        }
    }

    /// Plays `samples`; with `interruptible`, a digit stops it and is returned.
    /// Incoming audio is discarded meanwhile.
    pub async fn play(&mut self, samples: &[i16], interruptible: bool) -> Stop {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut buf = vec![0u8; 2048];
        let mut frames = samples.chunks(FRAME);
        let mut first = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Some(frame) = frames.next() else { return Stop::Done };
                    self.send_frame(frame, first).await;
                    first = false;
                }
                r = self.socket.get().recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        let digit = self.packet(buf.get(..n).unwrap_or_default(), from, &mut Vec::new());
                        if self.fax_heard {
                            return Stop::Fax;
                        }
                        if let Some(d) = digit && interruptible {
                            return Stop::Digit(d);
                        }
                    }
                }
                d = self.info_digits.recv(), if !self.digits_gone => {
                    match d {
                        Some(d) if interruptible => return Stop::Digit(d),
                        Some(_) => {}
                        // Nobody sends SIP INFO digits any more: not asked again (a closed
                        // channel answers at once, for ever).
                        None => self.digits_gone = true,
                    }
                }
            }
        }
    }

    /// Records until a digit of `stop_on`, `max` of audio, or `silence_limit` without
    /// any packet (the far end went away). The digit (if any) is returned.
    pub async fn record(&mut self, max: Duration, stop_on: &[char], out: &mut Vec<i16>) -> Stop {
        let deadline = Instant::now() + max;
        let max_samples = usize::try_from(max.as_millis()).unwrap_or(usize::MAX) * 8;
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Stop::Done,
                r = self.socket.get().recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        let digit = self.packet(buf.get(..n).unwrap_or_default(), from, out);
                        if self.fax_heard {
                            return Stop::Fax;
                        }
                        if let Some(d) = digit && stop_on.contains(&d) {
                            return Stop::Digit(d);
                        }
                    }
                    if out.len() >= max_samples {
                        out.truncate(max_samples);
                        return Stop::Done;
                    }
                }
                d = self.info_digits.recv(), if !self.digits_gone => {
                    match d {
                        Some(d) if stop_on.contains(&d) => return Stop::Digit(d),
                        Some(_) => {}
                        None => self.digits_gone = true,
                    }
                }
            }
        }
    }

    /// Waits for one digit (or `timeout`).
    pub async fn digit(&mut self, timeout: Duration) -> Option<char> {
        let mut ignore = Vec::new();
        match self.record(timeout, &DIGITS, &mut ignore).await {
            Stop::Digit(d) => Some(d),
            Stop::Done | Stop::Fax => None,
        }
    }

    /// Takes in every packet waiting (without waiting for more): the audio appended to
    /// `out`, keys pressed meanwhile to `keys` (a conference's mixer does this once a
    /// frame).
    pub fn drain(&mut self, out: &mut Vec<i16>, keys: &mut Vec<char>) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.get().try_recv_from(&mut buf) {
            if let Some(d) = self.packet(buf.get(..n).unwrap_or_default(), from, out) {
                keys.push(d);
            }
        }
    }

    /// The next datagram waiting on the endpoint's port (not RTP's business: T.38's,
    /// once a call has switched to it), with where it came from; `None` when none waits.
    pub fn try_recv_datagram(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        self.socket.get().try_recv_from(buf).ok()
    }

    /// Sends a datagram from the endpoint's port now (dropped if the socket is full).
    pub fn send_datagram(&self, bytes: &[u8], to: SocketAddr) {
        let _ = self.socket.get().try_send_to(bytes, to);
    }

    /// Sends one frame of audio now, without waiting (dropped if the socket is full).
    pub fn send_now(&mut self, frame: &[i16]) {
        let Some(to) = self.remote else { return };
        let p = self.rtp(frame, false);
        let _ = self.socket.get().try_send_to(&p, to);
    }

    /// The RTP packet of one frame (the next sequence number and timestamp).
    fn rtp(&mut self, frame: &[i16], marker: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + FRAME);
        p.push(0x80);
        p.push(self.n.law.payload_type() | if marker { 0x80 } else { 0 });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend(frame.iter().take(FRAME).map(|&s| self.n.law.encode(s)));
        // A short last frame is padded with silence.
        p.extend(std::iter::repeat_n(
            self.n.law.encode(0),
            FRAME.saturating_sub(frame.len()),
        ));
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
        p
    }

    async fn send_frame(&mut self, frame: &[i16], marker: bool) {
        let Some(to) = self.remote else { return };
        let p = self.rtp(frame, marker);
        let _ = self.socket.get().send_to(&p, to).await;
    }

    /// One packet in: audio appended to `out`, or a digit when a telephone-event starts.
    fn packet(&mut self, p: &[u8], from: SocketAddr, out: &mut Vec<i16>) -> Option<char> {
        // The fixed header: version 2, flags, payload type, and the timestamp.
        let [first, second, _, _, t0, t1, t2, t3, ..] = *p else {
            return None;
        };
        if p.len() < 12 || first >> 6 != 2 {
            return None;
        }
        // Latch to the far end's real address (symmetric RTP).
        match self.remote {
            Some(r) if r == from => {}
            _ if self.latched_from_elsewhere(from) => return None,
            _ => self.remote = Some(from),
        }
        let cc = usize::from(first & 0x0F);
        let mut start = 12 + 4 * cc;
        if first & 0x10 != 0 {
            let len = usize::from(u16::from_be_bytes([*p.get(start + 2)?, *p.get(start + 3)?]));
            start += 4 + 4 * len;
        }
        let mut end = p.len();
        if first & 0x20 != 0 {
            end = end.checked_sub(usize::from(*p.last()?))?;
        }
        let payload = p.get(start..end)?;
        let pt = second & 0x7F;
        if Some(pt) == self.n.events {
            let ts = u32::from_be_bytes([t0, t1, t2, t3]);
            let end = payload.get(1).is_some_and(|b| b & 0x80 != 0);
            let digit = DIGITS.get(usize::from(*payload.first()?)).copied();
            if end {
                // The end of the press in progress, or of one whose start was lost.
                let new = self.event != Some(ts) && self.ended != Some(ts);
                self.event = None;
                self.ended = Some(ts);
                return if new { digit } else { None };
            }
            if self.event == Some(ts) {
                return None;
            }
            // A new press (a phone may reuse a timestamp for the next press of a key).
            self.event = Some(ts);
            return digit;
        }
        if pt == self.n.law.payload_type() {
            let from = out.len();
            out.extend(payload.iter().map(|&b| self.n.law.decode(b)));
            if let (Some(tones), Some(audio)) = (self.tones.as_mut(), out.get(from..))
                && tones.heard(audio)
            {
                self.fax_heard = true;
            }
        }
        None
    }

    fn latched_from_elsewhere(&self, from: SocketAddr) -> bool {
        // Before any packet, only the signalled host may latch (NAT may change the port).
        match self.n.remote {
            Some(sig) if self.remote == Some(sig) => {
                sig.ip() != from.ip() && !(sig.ip().is_loopback() && from.ip().is_loopback())
            }
            _ => self.remote.is_some(),
        }
    }
}

/// RFC 4733 event codes 0-15.
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for law in [Law::Mu, Law::A] {
            for s in [
                -32768i16, -20000, -1000, -100, -1, 0, 1, 50, 100, 1000, 8000, 32767,
            ] {
                let back = law.decode(law.encode(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                let allowed = (i32::from(s).abs() / 16).max(16);
                assert!(err <= allowed, "{law:?} {s} -> {back}");
            }
            // Every code decodes to a value that encodes back to the same code.
            for b in 0..=255u8 {
                let s = law.decode(b);
                let again = law.encode(s);
                assert_eq!(law.decode(again), s, "{law:?} code {b:#x}");
            }
        }
        assert_eq!(Law::Mu.encode(0), 0xFF);
        assert_eq!(Law::A.encode(0), 0xD5);
    }

    #[test]
    fn an_offer_negotiates_the_law_and_events() {
        let offer = b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let n = negotiate(offer).unwrap();
        assert_eq!((n.law, n.events), (Law::Mu, Some(101)));
        assert_eq!(n.remote, Some("10.0.0.5:4000".parse().unwrap()));
        let a = String::from_utf8(answer("192.168.1.1".parse().unwrap(), 20000, &n)).unwrap();
        assert!(a.contains("m=audio 20000 RTP/AVP 0 101\r\n"));
        assert!(
            negotiate(b"v=0\r\nm=audio 4000 RTP/AVP 9\r\n").is_none(),
            "G.722 only"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_whose_digit_channel_is_gone_still_plays_in_time() {
        // A closed channel answers at once, for ever: polled again, the play would spin
        // (and with the clock paused, never end).
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let n = Negotiated {
            remote: Some("127.0.0.1:9".parse().unwrap()),
            law: Law::Mu,
            events: None,
        };
        let mut ep = Endpoint::new(Socket::Plain(socket), n, mpsc::unbounded_channel().1);
        let start = Instant::now();
        let done = ep.play(&[0; 8000], true).await;
        assert_eq!(done, Stop::Done);
        assert!(start.elapsed() >= Duration::from_millis(980));
    }

    #[test]
    fn an_offer_names_its_laws_in_order_and_one_can_be_insisted_on() {
        let offer = b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 8 9 0 101\r\n";
        assert_eq!(laws(offer), [Law::A, Law::Mu]);
        assert_eq!(negotiate_in(offer, Law::A).map(|n| n.law), Some(Law::A));
        assert!(negotiate_in(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n", Law::A).is_none());
    }

    #[tokio::test]
    async fn the_endpoint_plays_records_and_hears_rfc_4733_digits() {
        let ours = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ours_addr = ours.local_addr().unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let n = Negotiated {
            remote: Some(phone.local_addr().unwrap()),
            law: Law::A,
            events: Some(101),
        };
        let (_tx, rx) = mpsc::unbounded_channel();
        let mut ep = Endpoint::new(Socket::Plain(ours), n, rx);
        // Play two frames; the phone receives two RTP packets of PCMA.
        let tone: Vec<i16> = (0..320).map(|i| ((i % 40) * 500 - 10000) as i16).collect();
        assert_eq!(ep.play(&tone, false).await, Stop::Done);
        let mut buf = [0u8; 512];
        let (n1, _) = phone.recv_from(&mut buf).await.unwrap();
        assert_eq!((n1, buf[1] & 0x7F), (12 + FRAME, 8));
        // The phone speaks a frame, then presses # (three packets of one event).
        let rtp = |pt: u8, ts: u32, payload: &[u8]| {
            let mut p = vec![0x80, pt, 0, 1];
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 9]);
            p.extend_from_slice(payload);
            p
        };
        phone
            .send_to(&rtp(8, 100, &[0xD5; FRAME]), ours_addr)
            .await
            .unwrap();
        for _ in 0..3 {
            phone
                .send_to(&rtp(101, 260, &[11, 0x0A, 0, 160]), ours_addr)
                .await
                .unwrap();
        }
        let mut rec = Vec::new();
        let stop = ep.record(Duration::from_secs(5), &['#'], &mut rec).await;
        assert_eq!(stop, Stop::Digit('#'));
        assert_eq!(rec.len(), FRAME);
        assert!(
            ep.digit(Duration::from_millis(100)).await.is_none(),
            "one digit per event"
        );
    }
}
