//! Call park and pickup.
//!
//! Park: a blind transfer to the park extension (700: the first free place, whose number
//! the transferor hears before it is let go) or to a place (701 ... 720) parks the
//! transferee: the box plays it the music on hold, and the place is taken in the
//! server's [`Parking`] by this call's links. Any phone dialling the place (or the park
//! extension: the longest parked call) retrieves it; nobody doing so within
//! [`PARK_FOR`] rings the parker's phones again.
//!
//! Pickup: `*8` + an extension answers a call ringing there from another phone (`*8`
//! alone: the call ringing longest at any office phone). The ringing call's forks are
//! cancelled and the box answers its caller.
//!
//! Both join two calls the way an attended transfer does ([`super::bridge`]): the call
//! of the phone that dialled (the taker: [`Callee::Retrieve`]) asks the other (the giver)
//! over its links ([`Link::Retrieve`]) with its relay port and the laws its phone
//! offered; the giver points its relay at that port and answers with its own and the
//! law, and the taker answers its phone in that law. From then on either hanging up
//! ends both.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Call, Callee, Link, Routed, State};
use crate::media::{self, Endpoint, Law};
use crate::rtp::Peers;
use crate::voicemail::{prompt, prompts};

/// How long a call stays parked before it rings the parker again.
pub const PARK_FOR: Duration = Duration::from_secs(120);
/// How long the taker waits for the giver's answer.
const ASK_FOR: Duration = Duration::from_secs(2);

/// The park places taken now, by number: the parked call's links, who parked it, and
/// since when.
#[derive(Debug, Default)]
pub struct Parking {
    places: Mutex<BTreeMap<String, Place>>,
}

/// A park place taken: the parked call's links, who parked it, since when.
type Place = (mpsc::Sender<Link>, String, Instant);

impl Parking {
    /// Takes `wanted`, or the first free of `all`, for the call with `links`.
    fn take(
        &self,
        all: &[String],
        wanted: Option<&str>,
        links: mpsc::Sender<Link>,
        parker: &str,
    ) -> Option<String> {
        let mut places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
        let place = match wanted {
            Some(w) => Some(w.to_string()).filter(|w| !places.contains_key(w))?,
            None => all.iter().find(|p| !places.contains_key(*p))?.clone(),
        };
        places.insert(place.clone(), (links, parker.to_string(), Instant::now()));
        Some(place)
    }

    /// Gives `place` back.
    fn release(&self, place: &str) {
        self.places
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(place);
    }

    /// Whether `place` is taken.
    pub fn is_taken(&self, place: &str) -> bool {
        self.places
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(place)
    }

    /// The links of the call parked at `place` (`None`: the longest parked).
    pub fn find(&self, place: Option<&str>) -> Option<mpsc::Sender<Link>> {
        let places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
        match place {
            Some(p) => places.get(p).map(|(l, ..)| l.clone()),
            None => places
                .values()
                .min_by_key(|(_, _, since)| *since)
                .map(|(l, ..)| l.clone()),
        }
    }
}

/// Where a transfer parks its transferee.
#[derive(Debug, Clone)]
pub struct ParkSetup {
    pub parking: Arc<Parking>,
    /// Every place, in order.
    pub places: Vec<String>,
    /// The place asked for (`None`: the first free).
    pub place: Option<String>,
    /// The parker's extension: rung again when nobody takes the call in time.
    pub parker: String,
}

/// The call being parked: the music playing to it, and its place.
#[derive(Debug)]
pub(super) struct Parked {
    place: String,
    parking: Arc<Parking>,
    parker: String,
    stop: CancellationToken,
    /// The music's task (taken when the endpoint is wanted back).
    task: Option<tokio::task::JoinHandle<Endpoint>>,
    pub(super) until: Instant,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.stop.cancel();
        self.parking.release(&self.place);
    }
}

/// Another call's request for this one's party (a park place dialled, a pickup).
#[derive(Debug)]
pub struct Retrieve {
    /// The taker's relay port for our audio, and the laws its phone offered.
    media: SocketAddr,
    laws: Vec<Law>,
    /// Who takes it (the call log's "answered by").
    by: String,
    partner: mpsc::Sender<Link>,
    reply: oneshot::Sender<Result<(SocketAddr, Law), u16>>,
}

impl Call {
    /// Parks the transferee the box holds on `ep` (a transfer to the park extension or
    /// a place): music, a place, and its number said to the transferor.
    pub(super) async fn park(&mut self, ep: Endpoint, setup: ParkSetup) {
        let links = self.setup.inbox.as_ref().map(|i| i.links());
        let place = links.and_then(|l| {
            setup
                .parking
                .take(&setup.places, setup.place.as_deref(), l, &setup.parker)
        });
        let Some(place) = place else {
            // Taken meanwhile: back to the parker.
            warn!(message = "phone: no park place free", parker = %setup.parker);
            self.transfer_done("486 Busy Here");
            self.ring_parker(ep, &setup.parker).await;
            return;
        };
        info!(message = "phone: call parked", place = %place, by = %setup.parker, caller = %self.setup.parties.caller_ext);
        let samples = match self.setup.music.clone() {
            Some(m) => tokio::task::spawn_blocking(move || m.samples())
                .await
                .unwrap_or_else(|_| crate::music::tune()),
            None => crate::music::tune(),
        };
        let stop = CancellationToken::new();
        let playing = stop.clone();
        let mut ep = ep;
        let task = tokio::spawn(async move {
            ep.play_until(&samples, &playing).await;
            ep
        });
        self.parked = Some(Parked {
            place: place.clone(),
            parking: setup.parking,
            parker: setup.parker,
            stop,
            task: Some(task),
            until: Instant::now() + PARK_FOR,
        });
        self.setup.parties.callee_ext.clone_from(&place);
        let shown = place.clone();
        self.setup.status.send_modify(|s| s.callee = shown);
        self.status("parked");
        // The transferor hears where, then is let go.
        let mut say = prompt(prompts::PARKED_ON);
        for d in place.bytes().filter(u8::is_ascii_digit) {
            if let Some(digit) = prompts::DIGITS.get(usize::from(d - b'0')) {
                say.extend(prompt(digit));
            }
        }
        self.tell_transferor(say).await;
    }

    /// Nobody took the parked call in time: it rings the parker's phones again.
    pub(super) async fn unpark(&mut self) {
        let Some(mut p) = self.parked.take() else {
            return;
        };
        p.stop.cancel();
        let parker = p.parker.clone();
        let task = p.task.take();
        drop(p);
        let Some(Ok(ep)) = (match task {
            Some(t) => Some(t.await),
            None => None,
        }) else {
            self.hang_up_boxed();
            return;
        };
        info!(message = "phone: a parked call rings its parker again", parker = %parker);
        self.ring_parker(ep, &parker).await;
    }

    /// Rings `parker`'s phones for the caller the box holds on `ep`.
    async fn ring_parker(&mut self, ep: Endpoint, parker: &str) {
        let routed = match &self.setup.router {
            Some(router) => router.route(&officebox_config::dialplan::Destination::Extension(
                parker.to_string(),
            )),
            None => Routed::Refused(404),
        };
        self.state = State::Talking;
        self.ring_on(ep, routed).await;
    }

    /// A call whose phone dialled a park place or a pickup code: ask the call holding the
    /// party (`target`) for it, then answer our phone in the law agreed.
    pub(super) async fn take(&mut self, target: mpsc::Sender<Link>) {
        let laws = media::laws(&self.a.invite.body);
        let (Some(own), false) = (
            self.setup.inbox.as_ref().map(|i| i.links()),
            laws.is_empty(),
        ) else {
            self.fail_a(488, "Not Acceptable Here (G.711 only)");
            return;
        };
        let (reply, answer) = oneshot::channel();
        let ask = Retrieve {
            media: SocketAddr::new(self.media.ip_b, self.media.port_b),
            laws,
            by: self.setup.parties.caller_login.clone(),
            partner: own,
            reply,
        };
        let given = match target.try_send(Link::Retrieve(Box::new(ask))) {
            Ok(()) => match tokio::time::timeout(ASK_FOR, answer).await {
                Ok(Ok(r)) => r,
                _ => Err(480),
            },
            Err(_) => Err(480),
        };
        let (at, law) = match given {
            Ok(g) => g,
            Err(code) => {
                self.fail_a(code, "Temporarily Unavailable (nothing to take there)");
                return;
            }
        };
        let Some(n) = media::negotiate_in(&self.a.invite.body, law) else {
            self.fail_a(488, "Not Acceptable Here");
            return;
        };
        self.media.peers.send_modify(|p| p.b = Some(at));
        let mut r = self.a.invite.response(200, "OK", &self.a.tag);
        r.push("Allow", super::ALLOW);
        r.push("Content-Type", "application/sdp");
        r.body = media::answer(self.media.ip_a, self.media.port_a, &n);
        self.respond_a(r);
        self.boxed = Some(n);
        self.partner = Some(target);
        self.disposition = officebox_store::Disposition::Answered;
        self.state = State::Talking;
        self.status("talking");
        self.log_answer(None);
    }

    /// Another call asks for our party: a parked one (from the music) or a ringing one
    /// (picked up: its phones are cancelled and the box answers the caller).
    pub(super) fn asked_to_give(&mut self, ask: Box<Retrieve>) {
        let can = (self.parked.is_some() && matches!(self.state, State::Talking))
            || (self.state.is_ringing() && self.boxed.is_none() && self.held.is_none());
        if !can || self.partner.is_some() {
            let _ = ask.reply.send(Err(480));
            return;
        }
        self.state = State::Giving(ask);
    }

    /// Gives our party to the call that asked.
    pub(super) async fn give(&mut self) {
        let State::Giving(ask) = std::mem::replace(&mut self.state, State::Talking) else {
            return;
        };
        let ask = *ask;
        if let Some(mut p) = self.parked.take() {
            // Parked: the music stops, and the relay starts between the party's port and
            // a fresh one towards the taker.
            p.stop.cancel();
            let task = p.task.take();
            drop(p);
            let ep = match task {
                Some(t) => t.await.ok(),
                None => None,
            };
            let ip = self.setup.wire.local().ip();
            let n = ep.as_ref().map(Endpoint::negotiated);
            let remote = ep.as_ref().and_then(Endpoint::remote);
            let (Some(lease_a), Ok(lease_b), Some(n)) = (
                ep.and_then(Endpoint::into_lease),
                self.setup.ports.take(ip),
                n,
            ) else {
                let _ = ask.reply.send(Err(480));
                self.hang_up_boxed();
                return;
            };
            if !ask.laws.contains(&n.law) {
                let _ = ask.reply.send(Err(488));
                warn!("phone: a parked call's codec is not the taker's: it stays parked no more");
                self.hang_up_boxed();
                return;
            }
            let at = SocketAddr::new(ip, lease_b.port);
            self.media.port_b = lease_b.port;
            let a = self.a_moved.take().or(remote);
            self.start_relay(
                lease_a,
                lease_b,
                Peers {
                    a,
                    b: Some(ask.media),
                    events_a: n.events,
                    events_b: n.events,
                    record: false,
                },
            );
            if ask.reply.send(Ok((at, n.law))).is_err() {
                self.hang_up_boxed();
                return;
            }
            info!(message = "phone: parked call retrieved", by = %ask.by);
            self.partner = Some(ask.partner);
            self.state = State::Talking;
            self.status("talking");
            return;
        }
        // Ringing: picked up. The phones stop ringing and the box answers the caller in
        // a law both phones have.
        let law = media::laws(&self.a.invite.body)
            .into_iter()
            .find(|l| ask.laws.contains(l));
        let Some(n) = law.and_then(|l| media::negotiate_in(&self.a.invite.body, l)) else {
            let _ = ask.reply.send(Err(488));
            self.state = State::Ringing { rang: true };
            return;
        };
        self.cancel_forks(None);
        let at = SocketAddr::new(self.media.ip_b, self.media.port_b);
        if ask.reply.send(Ok((at, n.law))).is_err() {
            self.state = State::Ringing { rang: true };
            self.voicemail_or_fail(480, "Temporarily Unavailable");
            return;
        }
        self.media.peers.send_modify(|p| {
            p.b = Some(ask.media);
            p.events_b = n.events;
        });
        let mut r = self.a.invite.response(200, "OK", &self.a.tag);
        r.push("Allow", super::ALLOW);
        r.push("Content-Type", "application/sdp");
        r.body = media::answer(self.media.ip_a, self.media.port_a, &n);
        self.respond_a(r);
        self.boxed = Some(n);
        self.partner = Some(ask.partner);
        self.disposition = officebox_store::Disposition::Answered;
        self.status("talking");
        self.log_answer(Some(&ask.by));
        info!(message = "phone: call picked up", by = %ask.by, callee = %self.setup.parties.callee_ext);
    }
}

/// Whether a callee is a parking (a transfer's target).
pub(super) fn is_park(callee: &Callee) -> bool {
    matches!(callee, Callee::Park(_))
}
