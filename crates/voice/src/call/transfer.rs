//! A call the box answered, sent on: the attendant's choice rings a user's phones or a
//! ring group (or another attendant answers). The caller, answered already, hears
//! ringback from the box's endpoint on its port while leg B rings; leg B is offered the
//! codec the caller and the box agreed on. When a phone answers, the ringback stops and
//! the relay joins the caller's port to leg B's (the caller's dialog needs no new
//! offer: its audio already goes to that port). Nobody answering leads to the
//! destination's voicemail on the same endpoint; no voicemail, or the caller refused
//! everywhere, is a BYE.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use officebox_config::dialplan::Destination;
use officebox_store::Disposition;

use super::handoff::Answering;
use super::{Call, Callee, Routed, State};
use crate::media::{self, Endpoint};
use crate::rtp::{Lease, Peers};
use crate::sip::Method;
use crate::voicemail;

/// Times an attendant answers one call at most (its own no-input or invalid destination,
/// or a key, leading back to it).
const MAX_ATTENDANT_PASSES: u32 = 4;

/// The caller on hold with ringback, and leg B's port, while leg B rings.
#[derive(Debug)]
pub(super) struct Held {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Endpoint>,
    lease_b: Lease,
}

impl Held {
    /// Stops the ringback; the endpoint and both ports are given back as its task ends.
    pub(super) fn abandon(self) {
        self.stop.cancel();
    }

    /// Stops the ringback: the caller's endpoint back (leg B's port is given up).
    pub(super) async fn release(self) -> Option<Endpoint> {
        self.stop.cancel();
        self.task.await.ok()
    }
}

impl Call {
    /// The attendant chose `to`: ring it, answer with another attendant, or say goodbye.
    pub(super) async fn send_on(&mut self, ep: Endpoint, to: &Destination) {
        let routed = match &self.setup.router {
            Some(router) => router.route(to),
            None => Routed::Refused(500),
        };
        self.ring_on(ep, routed).await;
    }

    /// Rings where `routed` leads for the caller the box holds on `ep` (the attendant's
    /// choice, a transfer's target), or answers with another attendant, or says goodbye.
    pub(super) async fn ring_on(&mut self, mut ep: Endpoint, routed: Routed) {
        let (callee, login, ext, voicemail) = match routed {
            Routed::Ring(ring) => {
                let super::Ring {
                    callee,
                    login,
                    ext,
                    voicemail,
                    forwards,
                    held,
                    fallback,
                } = *ring;
                self.setup.forwards = forwards;
                self.setup.fallback = fallback;
                self.setup.held.extend(held);
                (callee, login, ext, voicemail)
            }
            Routed::Refused(code) => {
                info!(message = "phone: the call leads nowhere", caller = %self.setup.parties.caller_ext, code);
                self.transfer_done(&super::refer::status_line(code));
                ep.play(&voicemail::prompt(voicemail::prompts::GOODBYE), false)
                    .await;
                self.disposition = super::refused(code);
                self.hang_up_boxed();
                return;
            }
        };
        if let Callee::Park(park) = callee {
            self.setup.parties.callee_login = login;
            // Boxed: parking may ring the parker again, through here.
            Box::pin(self.park(ep, *park)).await;
            return;
        }
        self.setup.parties.callee_login = login;
        self.setup.parties.callee_ext.clone_from(&ext);
        self.setup.voicemail = voicemail;
        self.b_to = format!("<sip:{ext}@{}>", self.setup.parties.domain);
        if let Callee::Attendant(a) = callee {
            if self.attendant_passes >= MAX_ATTENDANT_PASSES {
                info!(message = "phone: the attendant gives up on a caller who chooses nothing", caller = %self.setup.parties.caller_ext);
                ep.play(&voicemail::prompt(voicemail::prompts::GOODBYE), false)
                    .await;
                self.hang_up_boxed();
                return;
            }
            self.setup.callee = Callee::Attendant(a.clone());
            self.transfer_done("200 OK");
            self.status("attendant");
            self.play_to_a(ep, Answering::Attendant(a));
            return;
        }
        // A fax machine of the box's (a fax heard by the attendant): answered at once.
        if let Callee::Fax(f) = callee {
            self.setup.callee = Callee::Fax(f.clone());
            self.transfer_done("200 OK");
            self.status("fax");
            self.play_to_a(ep, Answering::Fax(f));
            return;
        }
        let ip_b = self.setup.wire.local().ip();
        // Outside numbers among those rung: the port answers on every address.
        let bind_b = match &callee {
            Callee::Group(stages) if stages.iter().any(|s| !s.outside.is_empty()) => {
                std::net::IpAddr::from([0, 0, 0, 0])
            }
            _ => ip_b,
        };
        let Ok(lease_b) = self.setup.ports.take(bind_b) else {
            warn!("phone: no RTP port left to send the call on");
            self.hang_up_boxed();
            return;
        };
        info!(message = "phone: the call rings on", caller = %self.setup.parties.caller_ext, to = %ext);
        let (shown_caller, shown_callee) = (self.setup.parties.caller_ext.clone(), ext.clone());
        self.setup.status.send_modify(|s| {
            s.caller = shown_caller;
            s.callee = shown_callee;
        });
        self.setup.callee = callee;
        self.media.ip_b = ip_b;
        self.media.port_b = lease_b.port;
        let stop = CancellationToken::new();
        let ringing = stop.clone();
        let task = tokio::spawn(async move {
            ep.play_until(media::ringback(), &ringing).await;
            ep
        });
        self.held = Some(Held {
            stop,
            task,
            lease_b,
        });
        self.forks.clear();
        self.stage = 0;
        // The caller is answered: nothing of leg B's ringing reaches it.
        self.state = State::Ringing { rang: true };
        self.disposition = Disposition::NoAnswer;
        self.ring_until = tokio::time::Instant::now() + self.setup.no_answer;
        self.status("ringing");
        self.ring_callee();
    }

    /// A phone answered the call the box is holding: the ringback stops and the relay
    /// joins the two ports.
    pub(super) async fn join(&mut self) {
        let Some(held) = self.held.take() else {
            self.bye_b();
            self.hang_up_boxed();
            return;
        };
        held.stop.cancel();
        let lease_b = held.lease_b;
        let Ok(ep) = held.task.await else {
            self.bye_b();
            self.hang_up_boxed();
            return;
        };
        // Where the caller last said its audio goes, else where it came from.
        let a = self.a_moved.or(ep.remote());
        let Some(lease_a) = ep.into_lease() else {
            self.bye_b();
            self.hang_up_boxed();
            return;
        };
        let before = *self.media.peers.borrow();
        let peers = Peers {
            a,
            events_a: self.boxed.and_then(|n| n.events),
            ..before
        };
        self.start_relay(lease_a, lease_b, peers);
        self.state = State::Talking;
        self.transfer_done("200 OK");
    }

    /// Ends a call the box had answered: BYE to the caller (the ringback, if any, stops
    /// and gives its port back).
    pub(super) fn hang_up_boxed(&mut self) {
        if let Some(held) = self.held.take() {
            held.stop.cancel();
        }
        let bye = self.a_request(Method::Bye, None);
        self.send_to_a_reliably(bye.to_bytes());
        self.ending();
    }
}
