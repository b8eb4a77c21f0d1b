//! Meet-me conferences: a call to the conference extension is answered by the box (a PIN
//! asked first when there is one) and its endpoint joins the room. A room is one task
//! that, every 20 ms, takes in what each member sent since (decoded to 16-bit samples, at
//! most a few frames kept per member so a late one cannot fall behind for ever), adds
//! them up, and sends each member the sum less its own voice, in its own G.711 law. A
//! short rising tone says someone joined, a falling one that someone left. A room holds
//! at most the configured number of members; it starts with its first member and ends
//! with its last.
//!
//! The members' endpoints are the calls' own (on the relay's port of each caller): a
//! member leaves when its call's token is cancelled (the caller hung up), and its
//! endpoint goes back to the call.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::media::{Endpoint, FRAME, RATE};

/// Frames of a member's audio kept waiting at most (60 ms): more, and the oldest go.
const MAX_QUEUED: usize = 3 * FRAME;

/// What a conference call needs.
#[derive(Debug, Clone)]
pub struct ConferenceSetup {
    pub rooms: Arc<Rooms>,
    pub room: String,
    /// Asked first, when set.
    pub pin: Option<String>,
    /// Members at most.
    pub max: usize,
}

/// The rooms running, by name: how to reach each, and how many are in it.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
}

/// A room running: where its members join, and how many are in it.
type Room = (mpsc::Sender<Member>, Arc<AtomicUsize>);

/// A call's endpoint in a room.
#[derive(Debug)]
struct Member {
    ep: Endpoint,
    /// Cancelled when the caller hangs up.
    leave: CancellationToken,
    /// Where the endpoint goes back to once it has left.
    back: oneshot::Sender<Endpoint>,
    /// Its samples not yet mixed.
    queue: VecDeque<i16>,
    /// Whether the others hear it (a page's listeners are not heard).
    talks: bool,
    /// A three-way call's member: sent back once nobody else is left to talk to.
    alone_leaves: bool,
}

/// How long a three-way room waits for its second member before its first is let go.
const THREE_WAY_GATHER: Duration = Duration::from_secs(5);

impl Rooms {
    /// `ep` joins room `name` (started if it is not running) until `leave` is cancelled;
    /// the endpoint comes back through the receiver then. `Err`: the room is full.
    pub fn join(
        self: &Arc<Self>,
        name: &str,
        max: usize,
        ep: Endpoint,
        leave: CancellationToken,
    ) -> Result<oneshot::Receiver<Endpoint>, Box<Endpoint>> {
        self.join_as(name, max, ep, true, leave)
    }

    /// [`Rooms::join`], heard by the others or not (`talks`).
    pub fn join_as(
        self: &Arc<Self>,
        name: &str,
        max: usize,
        ep: Endpoint,
        talks: bool,
        leave: CancellationToken,
    ) -> Result<oneshot::Receiver<Endpoint>, Box<Endpoint>> {
        self.enter(name, max, ep, talks, false, leave)
    }

    /// [`Rooms::join`] for a three-way call (at most three): the endpoint also comes back
    /// when it is the last one left, or still alone a few seconds after it came.
    pub fn join_three_way(
        self: &Arc<Self>,
        name: &str,
        ep: Endpoint,
        leave: CancellationToken,
    ) -> Result<oneshot::Receiver<Endpoint>, Box<Endpoint>> {
        self.enter(name, 3, ep, true, true, leave)
    }

    fn enter(
        self: &Arc<Self>,
        name: &str,
        max: usize,
        ep: Endpoint,
        talks: bool,
        alone_leaves: bool,
        leave: CancellationToken,
    ) -> Result<oneshot::Receiver<Endpoint>, Box<Endpoint>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let running = rooms.get(name).filter(|(tx, _)| !tx.is_closed()).cloned();
        let (tx, count) = match running {
            Some(r) => r,
            None => {
                let (tx, rx) = mpsc::channel(64);
                let count = Arc::new(AtomicUsize::new(0));
                tokio::spawn(run(
                    name.to_string(),
                    Arc::clone(self),
                    rx,
                    Arc::clone(&count),
                ));
                rooms.insert(name.to_string(), (tx.clone(), Arc::clone(&count)));
                (tx, count)
            }
        };
        if count.load(Ordering::Relaxed) >= max {
            return Err(Box::new(ep));
        }
        let (back, back_rx) = oneshot::channel();
        let member = Member {
            ep,
            leave,
            back,
            queue: VecDeque::new(),
            talks,
            alone_leaves,
        };
        match tx.try_send(member) {
            Ok(()) => {
                count.fetch_add(1, Ordering::Relaxed);
                Ok(back_rx)
            }
            Err(e) => Err(Box::new(e.into_inner().ep)),
        }
    }

    /// How many are in room `name`.
    pub fn members(&self, name: &str) -> usize {
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map_or(0, |(_, c)| c.load(Ordering::Relaxed))
    }

    /// Forgets room `name` if nobody is in it (`false`: someone joined meanwhile).
    fn end(&self, name: &str, count: &AtomicUsize) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if count.load(Ordering::Relaxed) > 0 {
            return false;
        }
        rooms.remove(name);
        true
    }
}

/// A tone of two notes, 120 ms each, quiet (someone joined: rising; left: falling).
fn tone(first: f64, second: f64) -> Vec<i16> {
    let rate = f64::from(RATE);
    let per = RATE as usize * 12 / 100;
    [first, second]
        .iter()
        .flat_map(|&f| {
            (0..per).map(move |i| {
                let t = i as f64 / rate;
                (3000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
            })
        })
        .collect()
}

/// A caller the box answered for the conference: the PIN (three tries), then the room
/// until `leave` (the caller hung up). Whether the caller is still there (to be said
/// goodbye to) when it ends otherwise.
pub async fn attend(mut ep: Endpoint, c: ConferenceSetup, leave: CancellationToken) -> bool {
    if let Some(pin) = &c.pin {
        let mut right = false;
        for _ in 0..3 {
            let entered = tokio::select! {
                () = leave.cancelled() => return false,
                e = crate::menu::read_pin(&mut ep) => e,
            };
            if same(entered.as_bytes(), pin.as_bytes()) {
                right = true;
                break;
            }
            crate::menu::wrong_pin(&mut ep).await;
        }
        if !right {
            info!(message = "phone: conference PIN wrong three times", room = %c.room);
            return true;
        }
    }
    match c.rooms.join(&c.room, c.max, ep, leave) {
        Ok(back) => {
            let _ = back.await;
            false
        }
        Err(mut ep) => {
            info!(message = "phone: conference full", room = %c.room, max = c.max);
            ep.play(
                &crate::voicemail::prompt(crate::voicemail::prompts::CONFERENCE_FULL),
                false,
            )
            .await;
            true
        }
    }
}

/// Whether two PINs are the same, in a time that does not tell how much of one is right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One room: mixes every 20 ms until its last member has left.
async fn run(
    name: String,
    rooms: Arc<Rooms>,
    mut joins: mpsc::Receiver<Member>,
    count: Arc<AtomicUsize>,
) {
    info!(message = "phone: conference opened", room = %name);
    let mut members: Vec<Member> = Vec::new();
    let mut tones: VecDeque<i16> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (joined, left) = (tone(440.0, 660.0), tone(660.0, 440.0));
    let mut incoming = Vec::with_capacity(4 * FRAME);
    let mut keys = Vec::new();
    // The most members it has had, and since when it runs (a three-way call's first
    // member is let go when nobody else came, or everybody else left).
    let (mut most, opened) = (0, tokio::time::Instant::now());
    loop {
        tokio::select! {
            m = joins.recv() => match m {
                Some(m) => {
                    tones.extend(&joined);
                    members.push(m);
                    most = most.max(members.len());
                    debug!(message = "phone: conference member joined", room = %name, members = members.len());
                }
                None => break,
            },
            _ = tick.tick() => {
                let mut i = 0;
                while i < members.len() {
                    if members.get(i).is_some_and(|m| m.leave.is_cancelled()) {
                        let m = members.swap_remove(i);
                        let _ = m.back.send(m.ep);
                        count.fetch_sub(1, Ordering::Relaxed);
                        tones.extend(&left);
                    } else {
                        i += 1;
                    }
                }
                let alone = members.len() == 1
                    && joins.is_empty()
                    && members.first().is_some_and(|m| m.alone_leaves)
                    && (most > 1 || opened.elapsed() > THREE_WAY_GATHER);
                if alone && let Some(m) = members.pop() {
                    debug!(message = "phone: the last of a three-way call is let go", room = %name);
                    let _ = m.back.send(m.ep);
                    count.fetch_sub(1, Ordering::Relaxed);
                }
                if members.is_empty() && joins.is_empty() && rooms.end(&name, &count) {
                    break;
                }
                mix(&mut members, &mut tones, &mut incoming, &mut keys);
            }
        }
    }
    info!(message = "phone: conference closed", room = %name);
}

/// One 20 ms frame: each member's next frame in, the sum less its own out.
fn mix(
    members: &mut [Member],
    tones: &mut VecDeque<i16>,
    incoming: &mut Vec<i16>,
    keys: &mut Vec<char>,
) {
    let mut own = vec![[0i32; FRAME]; members.len()];
    let mut total = [0i32; FRAME];
    for (m, own) in members.iter_mut().zip(own.iter_mut()) {
        incoming.clear();
        keys.clear();
        m.ep.drain(incoming, keys);
        m.queue.extend(incoming.iter());
        while m.queue.len() > MAX_QUEUED {
            m.queue.pop_front();
        }
        if !m.talks {
            m.queue.clear();
        }
        if m.queue.len() >= FRAME {
            for (o, s) in own.iter_mut().zip(m.queue.drain(..FRAME)) {
                *o = i32::from(s);
            }
            for (t, o) in total.iter_mut().zip(own.iter()) {
                *t += *o;
            }
        }
    }
    for t in total.iter_mut() {
        *t += i32::from(tones.pop_front().unwrap_or(0));
    }
    let mut frame = [0i16; FRAME];
    for (m, own) in members.iter_mut().zip(own.iter()) {
        for ((f, t), o) in frame.iter_mut().zip(total.iter()).zip(own.iter()) {
            *f = (t - o).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        m.ep.send_now(&frame);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::media::{Law, Negotiated, Socket};
    use tokio::net::UdpSocket;

    /// A member's endpoint on a fresh socket, whose far end is `phone`.
    async fn endpoint(phone: &UdpSocket) -> Endpoint {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let n = Negotiated {
            remote: Some(phone.local_addr().unwrap()),
            law: Law::Mu,
            events: None,
        };
        Endpoint::new(Socket::Plain(socket), n, mpsc::unbounded_channel().1)
    }

    #[tokio::test]
    async fn each_member_hears_the_others_but_not_itself_and_a_full_room_says_no() {
        let rooms = Arc::new(Rooms::default());
        let phones = [
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        ];
        let mut eps = Vec::new();
        for p in &phones {
            eps.push(endpoint(p).await);
        }
        let ports: Vec<_> = eps.iter().map(|e| e.local_addr().unwrap()).collect();
        let leave = CancellationToken::new();
        let mut backs = Vec::new();
        for ep in eps.drain(..2) {
            backs.push(rooms.join("800", 2, ep, leave.clone()).unwrap());
        }
        assert!(rooms.join("800", 2, eps.remove(0), leave.clone()).is_err());
        assert_eq!(rooms.members("800"), 2);
        // Phone 0 speaks loudly (mu-law 0x80 is about +8000); phone 1 is silent.
        let packet = |seq: u16, byte: u8| {
            let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p.extend(std::iter::repeat_n(byte, FRAME));
            p
        };
        let mut loud_at_1 = 0;
        let mut loud_at_0 = 0;
        let mut buf = [0u8; 2048];
        for seq in 0..40u16 {
            phones[0]
                .send_to(&packet(seq, 0x80), ports[0])
                .await
                .unwrap();
            phones[1]
                .send_to(&packet(seq, 0xFF), ports[1])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (i, phone) in phones.iter().take(2).enumerate() {
                while let Ok((n, _)) = phone.try_recv_from(&mut buf) {
                    let loud = buf[12..n]
                        .iter()
                        .filter(|&&b| Law::Mu.decode(b).abs() > 4000)
                        .count();
                    if loud == FRAME {
                        if i == 1 {
                            loud_at_1 += 1
                        } else {
                            loud_at_0 += 1
                        }
                    }
                }
            }
        }
        assert!(loud_at_1 > 20, "phone 1 hears phone 0: {loud_at_1}");
        assert_eq!(loud_at_0, 0, "phone 0 hears itself");
        // Both leave: the endpoints come back and the room closes.
        leave.cancel();
        for b in backs {
            tokio::time::timeout(Duration::from_secs(1), b)
                .await
                .unwrap()
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(rooms.members("800"), 0);
        assert!(rooms.rooms.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_three_way_rooms_last_member_is_let_go_and_so_is_one_nobody_joins() {
        let rooms = Arc::new(Rooms::default());
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (stay, go) = (CancellationToken::new(), CancellationToken::new());
        let mut staying = rooms
            .join_three_way("3", endpoint(&phone).await, stay.clone())
            .unwrap();
        let going = rooms
            .join_three_way("3", endpoint(&phone).await, go.clone())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rooms.members("3"), 2);
        assert!(
            staying.try_recv().is_err(),
            "let go with someone to talk to"
        );
        go.cancel();
        tokio::time::timeout(Duration::from_secs(1), going)
            .await
            .unwrap()
            .unwrap();
        // Alone now: let go without leaving.
        tokio::time::timeout(Duration::from_secs(1), staying)
            .await
            .unwrap()
            .unwrap();
        assert!(!stay.is_cancelled());

        // A first member whom nobody joins is let go after the wait.
        let lonely = rooms
            .join_three_way("4", endpoint(&phone).await, CancellationToken::new())
            .unwrap();
        let waited = tokio::time::Instant::now();
        tokio::time::timeout(THREE_WAY_GATHER + Duration::from_secs(1), lonely)
            .await
            .unwrap()
            .unwrap();
        assert!(waited.elapsed() >= THREE_WAY_GATHER - Duration::from_millis(100));
    }
}
