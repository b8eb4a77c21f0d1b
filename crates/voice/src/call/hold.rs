//! Hold with music: a phone that puts the other side on hold (a re-INVITE with
//! `a=sendonly`, `a=inactive` or the old 0.0.0.0) is answered by the box itself, in the
//! direction it asked for, and the other side hears music from the box on its own relay
//! port instead of silence ([`crate::music`]). The held phone is never asked anything:
//! its dialog and its audio address stay as they were. The holder's re-INVITE taking the
//! call off hold is answered the same way, the music stops and the relay starts again.
//! A re-INVITE from the held side meanwhile (a session refresh) is answered by the box.
//!
//! The relay's two ports are the call's throughout: while the music plays, the held
//! side's port is the music's endpoint and the holder's port waits ([`Music`]);
//! [`Call::stop_media`] gives both back to whatever needs them next (the relay again, a
//! transfer, the end of the call).

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Call, State};
use crate::media::{self, Endpoint, Socket};
use crate::rtp::{self, Lease, Peers, Side};
use crate::sdp;
use crate::sip::Message;

/// The held side hearing music, and the holder's port waiting.
#[derive(Debug)]
pub(super) struct Music {
    pub(super) holder: Side,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Endpoint>,
    idle: Lease,
}

/// A change of the call's audio, made at the loop's next turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldStep {
    /// `Side` put the other on hold: music to the other.
    Start(Side),
    /// The holder took the call off hold: the relay again.
    Resume,
}

impl Call {
    /// A re-INVITE from `from` that the box answers itself, if it does: one putting the
    /// other side on hold (when the box has music and plays in the call's codec), or any
    /// while the music plays. `false`: carry it across as usual.
    pub(super) fn hold_reinvite(&mut self, req: &Message, from: Side) -> bool {
        let holding = !req.body.is_empty() && sdp::is_hold(&req.body);
        if let Some(m) = &self.music {
            let resume = from == m.holder && !req.body.is_empty() && !holding;
            self.answer_hold(req, from);
            if resume {
                self.state = State::Hold(HoldStep::Resume);
            }
            return true;
        }
        let can = holding
            && self.setup.music.is_some()
            && matches!(self.state, State::Talking)
            && self.partner.is_none()
            && self.winner().is_some()
            && media::negotiate(&self.b_answer).is_some();
        if !can {
            return false;
        }
        self.answer_hold(req, from);
        self.state = State::Hold(HoldStep::Start(from));
        true
    }

    /// Answers a re-INVITE from `from` with the box's own SDP on that side's port, in
    /// the call's codec, in the direction that answers the offer; its new address (not
    /// the old hold's 0.0.0.0) is kept for when the relay starts again.
    pub(super) fn answer_hold(&mut self, req: &Message, from: Side) {
        let Some(mut n) = media::negotiate(&self.b_answer) else {
            return;
        };
        if let Some(offered) = media::negotiate(&req.body) {
            n.events = offered.events;
        }
        let (ip, port, tag, local) = match from {
            Side::A => (
                self.media.ip_a,
                self.media.port_a,
                self.a.tag.clone(),
                self.a_local,
            ),
            Side::B => (
                self.media.ip_b,
                self.media.port_b,
                self.b_tag(),
                self.b_local,
            ),
        };
        if let Some(at) = sdp::audio(&req.body).map(|m| m.addr)
            && !at.ip().is_unspecified()
        {
            self.media.peers.send_modify(|p| match from {
                Side::A => p.a = Some(at),
                Side::B => p.b = Some(at),
            });
        }
        let mut r = req.response(200, "OK", &tag);
        r.push(
            "Contact",
            format!("<sip:{}@{local}>", self.setup.parties.callee_ext),
        );
        r.push("Content-Type", "application/sdp");
        r.body = media::answer_with(ip, port, &n, sdp::answering_direction(&req.body));
        let to = match from {
            Side::A => Some(self.a.peer),
            Side::B => self.winner().map(|w| w.peer),
        };
        if let Some(to) = to {
            self.send(r.to_bytes(), to);
        }
    }

    /// Carries out a hold step.
    pub(super) async fn hold_step(&mut self) {
        let State::Hold(step) = std::mem::replace(&mut self.state, State::Talking) else {
            return;
        };
        match step {
            HoldStep::Start(holder) => self.start_music(holder).await,
            HoldStep::Resume => {
                if let Some((a, b)) = self.stop_media().await {
                    let peers = *self.media.peers.borrow();
                    self.start_relay(a, b, peers);
                    debug!(message = "phone: off hold", caller = %self.setup.parties.caller_ext);
                }
            }
        }
    }

    /// The relay stops; the side `holder` put on hold hears the music on its port.
    async fn start_music(&mut self, holder: Side) {
        let Some(source) = self.setup.music.clone() else {
            return;
        };
        let Some((a, b)) = self.stop_media().await else {
            return;
        };
        let peers = *self.media.peers.borrow();
        let (held, idle, remote, events) = match holder {
            Side::A => (b, a, peers.b, peers.events_b),
            Side::B => (a, b, peers.a, peers.events_a),
        };
        let Some(mut n) = media::negotiate(&self.b_answer) else {
            return;
        };
        n.remote = remote;
        n.events = events;
        let samples = match tokio::task::spawn_blocking(move || source.samples()).await {
            Ok(s) => s,
            Err(_) => crate::music::tune(),
        };
        let mut ep = Endpoint::new(Socket::Leased(held), n, mpsc::unbounded_channel().1);
        let stop = CancellationToken::new();
        let playing = stop.clone();
        let task = tokio::spawn(async move {
            ep.play_until(&samples, &playing).await;
            ep
        });
        self.music = Some(Music {
            holder,
            stop,
            task,
            idle,
        });
        debug!(message = "phone: on hold with music", caller = %self.setup.parties.caller_ext);
    }

    /// Stops whatever plays on the relay's ports (the relay, delivering a recording it
    /// was making, or the music) and gives both back: (leg A's, leg B's). `None`: the
    /// ports are gone (the call is ending).
    pub(super) async fn stop_media(&mut self) -> Option<(Lease, Lease)> {
        if let Some(m) = self.music.take() {
            m.stop.cancel();
            let held = m.task.await.ok().and_then(Endpoint::into_lease);
            let Some(held) = held else {
                warn!("phone: the music's port was lost");
                return None;
            };
            return Some(match m.holder {
                Side::A => (m.idle, held),
                Side::B => (held, m.idle),
            });
        }
        self.media.relay_stop.cancel();
        let relay = self.media.relay.take()?;
        let mut stopped = relay.await.ok()?;
        if let Some(samples) = stopped.recorded.take() {
            self.deliver_recording(samples).await;
        }
        Some((stopped.a, stopped.b))
    }

    /// Starts a new relay between `a` and `b`, with `peers`.
    pub(super) fn start_relay(&mut self, a: Lease, b: Lease, peers: Peers) {
        let (peers_tx, peers_rx) = watch::channel(peers);
        let relay_stop = CancellationToken::new();
        let (heard_tx, heard) = mpsc::unbounded_channel();
        self.media.relay = Some(tokio::spawn(rtp::relay(
            a,
            b,
            peers_rx,
            relay_stop.clone(),
            Some(heard_tx),
        )));
        self.media.heard = Some(heard);
        self.media.peers = peers_tx;
        self.media.relay_stop = relay_stop;
    }

    /// The music stops with the call.
    pub(super) async fn end_music(&mut self) {
        if let Some(m) = self.music.take() {
            m.stop.cancel();
            let _ = m.task.await;
        }
    }
}
