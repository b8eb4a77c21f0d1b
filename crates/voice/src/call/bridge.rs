//! Attended transfer (REFER with Replaces, RFC 3891, as RFC 5589 section 7 describes it):
//! the transferor is in two calls, with the transferee (this call, where the REFER
//! comes) and with the target (another call, the dialog the Replaces names). Each call
//! is a task of its own, so the two join by their relays: each call keeps its remaining
//! party as leg A and points leg B's side of its relay at a fresh port of the other
//! call's relay. Audio goes party, relay, relay, party; both parties already use the
//! codec the transferor's phone agreed with each (the same law, or the transfer is
//! refused), so nothing is transcoded and neither party needs a new offer.
//!
//! The calls talk over their links ([`Link`]): the call that got the REFER asks the
//! other to join (naming the transferor's dialog there, which must be the same user's),
//! the other checks, re-points its relay and answers with its port; both then hang up
//! the transferor's dialogs (the REFER's side with a final NOTIFY first), and from then
//! on either party hanging up hangs up the other ([`Link::HungUp`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::refer::{Dialog, Transferor};
use super::{Call, Incoming, State};
use crate::media::{self, Law};
use crate::rtp::{Lease, Peers, Side};
use crate::sip::{Method, param, unescape};

/// How long the call that got the REFER waits for the other call's answer.
const ASK_FOR: Duration = Duration::from_secs(2);

/// What one call tells another.
#[derive(Debug)]
pub enum Link {
    /// Join us: the dialog named is the transferor's in your call; your other party
    /// is to be put through to ours.
    Join(Box<JoinAsk>),
    /// The partner call's party hung up.
    HungUp,
    /// Give us your party (a park place dialled, a pickup): [`super::park`].
    Retrieve(Box<super::park::Retrieve>),
    /// Join a three-way call of the user's, if this call is theirs: [`super::threeway`].
    ThreeWay(Box<super::threeway::ThreeWayAsk>),
}

/// A call asking another to join it (an attended transfer).
#[derive(Debug)]
pub struct JoinAsk {
    replaces: Replaces,
    /// The transferor's login: the dialog named must be theirs.
    by: String,
    /// The asking call's relay port for this call's audio, and the law its party uses.
    media: SocketAddr,
    law: Law,
    /// The asking call's links (to hear that its party hung up).
    partner: mpsc::Sender<Link>,
    reply: oneshot::Sender<Result<SocketAddr, u16>>,
}

/// A dialog named by a Replaces (RFC 3891): its Call-ID, and the tags as the transferor
/// sees them (`to_tag` the far end's, ours; `from_tag` its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replaces {
    pub(super) call_id: String,
    to_tag: String,
    from_tag: String,
}

impl Replaces {
    /// From a Refer-To URI's `Replaces` header, escaped as it is there
    /// (`abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2`).
    pub(super) fn parse(escaped: &str) -> Option<Replaces> {
        let text = unescape(escaped);
        let mut parts = text.split(';');
        let call_id = parts.next()?.trim().to_string();
        let (mut to_tag, mut from_tag) = (None, None);
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "to-tag" => to_tag = Some(v.trim().to_string()),
                "from-tag" => from_tag = Some(v.trim().to_string()),
                _ => {}
            }
        }
        (!call_id.is_empty()).then_some(Replaces {
            call_id,
            to_tag: to_tag.filter(|t| !t.is_empty())?,
            from_tag: from_tag.filter(|t| !t.is_empty())?,
        })
    }
}

/// A bridge under way, carried out at the loop's next turn (boxed in the call's state,
/// made once per transfer: its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// This call got the REFER: ask the partner call, then answer the REFER.
    Ask {
        departing: Side,
        refer: Incoming,
        tag: String,
        replaces: Replaces,
        by: String,
        partner: mpsc::Sender<Link>,
    },
    /// Another call asked: the transferor's side here is `departing`.
    Answer { departing: Side, ask: Box<JoinAsk> },
}

impl Call {
    /// A REFER with Replaces from `side` (checked as a blind one is, up to where it
    /// leads): the call named must be another live call; the rest is asked of it at the
    /// loop's next turn.
    pub(super) fn refer_replacing(
        &mut self,
        m: Incoming,
        side: Side,
        tag: String,
        by: String,
        escaped: &str,
    ) {
        let Some(replaces) = Replaces::parse(escaped) else {
            self.reply(&m, 400, "Bad Request (Replaces)", &tag);
            return;
        };
        if replaces.call_id == self.a.invite.call_id() || replaces.call_id == self.setup.b_call_id {
            self.reply(&m, 403, "Forbidden (a call cannot replace itself)", &tag);
            return;
        }
        let partner = self
            .setup
            .inbox
            .as_ref()
            .and_then(|i| i.find(&replaces.call_id));
        let Some(partner) = partner else {
            self.reply(&m, 481, "Call/Transaction Does Not Exist", &tag);
            return;
        };
        self.state = State::Bridging(Box::new(Step::Ask {
            departing: side,
            refer: m,
            tag,
            replaces,
            by,
            partner,
        }));
    }

    /// A message from another call.
    pub(super) fn link(&mut self, link: Link) {
        match link {
            Link::Join(ask) => self.asked_to_join(ask),
            Link::Retrieve(ask) => self.asked_to_give(ask),
            Link::ThreeWay(ask) => self.asked_three_way(*ask),
            Link::HungUp => {
                self.partner = None;
                if matches!(self.state, State::Talking) {
                    let bye = self.a_request(Method::Bye, None);
                    self.send_to_a_reliably(bye.to_bytes());
                    self.ending();
                }
            }
        }
    }

    /// Another call asks to join: the dialog it names must be an answered one of ours,
    /// the transferor's own, its party's law ours; then the join is done at the loop's
    /// next turn.
    fn asked_to_join(&mut self, ask: Box<JoinAsk>) {
        let refuse = |ask: Box<JoinAsk>, code: u16| {
            let _ = ask.reply.send(Err(code));
        };
        if !matches!(self.state, State::Talking)
            || self.reinvite.is_some()
            || self.transferor.is_some()
            || self.partner.is_some()
        {
            return refuse(ask, 491);
        }
        let Some(w) = self.winner() else {
            return refuse(ask, 481);
        };
        let r = &ask.replaces;
        let a_tag = self.a.invite.header("from").and_then(|f| param(f, "tag"));
        let (departing, ours, theirs, login) = if r.call_id == self.a.invite.call_id() {
            (
                Side::A,
                self.a.tag.as_str(),
                a_tag,
                Some(self.setup.parties.caller_login.as_str()),
            )
        } else if r.call_id == self.setup.b_call_id {
            (
                Side::B,
                self.b_from_tag.as_str(),
                w.to_tag.as_deref(),
                w.login.as_deref(),
            )
        } else {
            return refuse(ask, 481);
        };
        if r.to_tag != ours || Some(r.from_tag.as_str()) != theirs {
            return refuse(ask, 481);
        }
        if login != Some(ask.by.as_str()) {
            warn!(message = "phone: a transfer named another user's call", by = %ask.by);
            return refuse(ask, 403);
        }
        if media::negotiate(&self.b_answer).map(|n| n.law) != Some(ask.law) {
            return refuse(ask, 488);
        }
        self.state = State::Bridging(Box::new(Step::Answer { departing, ask }));
    }

    /// Carries out the bridge step the call is in.
    pub(super) async fn bridge(&mut self) {
        let State::Bridging(step) = std::mem::replace(&mut self.state, State::Talking) else {
            return;
        };
        match *step {
            Step::Ask {
                departing,
                refer,
                tag,
                replaces,
                by,
                partner,
            } => {
                self.ask_partner(departing, refer, &tag, replaces, by, partner)
                    .await;
            }
            Step::Answer { departing, ask } => self.answer_partner(departing, *ask).await,
        }
    }

    /// Asks the partner call to join, and answers the REFER by what it says.
    async fn ask_partner(
        &mut self,
        departing: Side,
        refer: Incoming,
        tag: &str,
        replaces: Replaces,
        by: String,
        partner: mpsc::Sender<Link>,
    ) {
        let ip = self.setup.wire.local().ip();
        let (Some(n), Ok(lease), Some(own)) = (
            media::negotiate(&self.b_answer),
            self.setup.ports.take(ip),
            self.setup.inbox.as_ref().map(|i| i.links()),
        ) else {
            self.reply(&refer, 503, "Service Unavailable", tag);
            return;
        };
        let (reply, answer) = oneshot::channel();
        let ask = JoinAsk {
            replaces,
            by: by.clone(),
            media: SocketAddr::new(ip, lease.port),
            law: n.law,
            partner: own,
            reply,
        };
        let joined = match partner.try_send(Link::Join(Box::new(ask))) {
            Ok(()) => match tokio::time::timeout(ASK_FOR, answer).await {
                Ok(Ok(r)) => r,
                _ => Err(481),
            },
            Err(_) => Err(481),
        };
        let partner_media = match joined {
            Ok(at) => at,
            Err(code) => {
                info!(message = "phone: attended transfer refused", by = %by, code);
                let reason = match code {
                    403 => "Forbidden (not your call)",
                    488 => "Not Acceptable Here (the calls use different codecs)",
                    491 => "Request Pending",
                    _ => "Call/Transaction Does Not Exist",
                };
                self.reply(&refer, code, reason, tag);
                return;
            }
        };
        let dialog = match departing {
            Side::A => Some(self.dialog_of_a()),
            Side::B => self.dialog_of_winner(),
        };
        if let Some(dialog) = dialog {
            self.transferor = Some(Transferor::new(dialog, &refer));
        }
        let mut accepted = refer.msg.response(202, "Accepted", tag);
        if self.transferor.as_ref().is_some_and(|t| !t.notify) {
            accepted.push("Refer-Sub", "false");
        }
        self.setup
            .wire
            .send(accepted.to_bytes(), refer.source, refer.transport);
        self.partner = Some(partner);
        self.join_relays(departing, lease, partner_media).await;
        info!(message = "phone: attended transfer", by = %by, caller = %self.setup.parties.caller_ext);
        self.transfer_done("200 OK");
    }

    /// Joins the asking call: our relay's far side goes to its port, and the
    /// transferor's dialog here is hung up (RFC 3891: the replaced dialog ends).
    async fn answer_partner(&mut self, departing: Side, ask: JoinAsk) {
        let ip = self.setup.wire.local().ip();
        let Ok(lease) = self.setup.ports.take(ip) else {
            let _ = ask.reply.send(Err(503));
            return;
        };
        let dialog: Option<Dialog> = match departing {
            Side::A => Some(self.dialog_of_a()),
            Side::B => self.dialog_of_winner(),
        };
        let at = SocketAddr::new(ip, lease.port);
        self.join_relays(departing, lease, ask.media).await;
        if ask.reply.send(Ok(at)).is_err() {
            // The asking call gave up meanwhile: nobody is on the other side.
            warn!("phone: an attended transfer's other call went away");
            let bye = self.a_request(Method::Bye, None);
            self.send_to_a_reliably(bye.to_bytes());
            self.ending();
        } else {
            self.partner = Some(ask.partner);
        }
        if let Some(dialog) = dialog {
            self.transferor = Some(Transferor::replaced(dialog));
        }
    }

    /// The relay joins the remaining party (made leg A) to `partner` (another call's
    /// relay) on `lease`, a fresh port; the departing side's port is given up.
    async fn join_relays(&mut self, departing: Side, lease: Lease, partner: SocketAddr) {
        let Some((lease_a, lease_b)) = self.stop_media().await else {
            return;
        };
        let peers = *self.media.peers.borrow();
        let was_held = match departing {
            Side::B => self.b_held_a,
            Side::A => self.a_held_b,
        };
        let (keep, remote, events) = match departing {
            Side::B => {
                drop(lease_b);
                (lease_a, self.a_moved.or(peers.a), peers.events_a)
            }
            Side::A => {
                drop(lease_a);
                self.swap_legs();
                (lease_b, peers.b, peers.events_b)
            }
        };
        let mut n = media::negotiate(&self.b_answer);
        if let Some(n) = n.as_mut() {
            n.remote = remote;
            n.events = events;
        }
        self.boxed = n;
        self.forks.clear();
        self.a_moved = None;
        self.a_held_b = false;
        self.b_held_a = false;
        self.media.ip_b = partner.ip();
        self.media.port_b = lease.port;
        self.start_relay(
            keep,
            lease,
            Peers {
                a: remote,
                b: Some(partner),
                events_a: events,
                events_b: events,
                record: false,
            },
        );
        self.state = State::Talking;
        if was_held && let Some(n) = n {
            // On hold while the transferor spoke to the other party: taken off it.
            let offer = media::answer(self.media.ip_a, self.media.port_a, &n);
            let re = self.a_request(Method::Invite, Some(&offer));
            self.send_to_a_reliably(re.to_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaces_names_a_dialog_by_its_call_id_and_both_tags() {
        assert_eq!(
            Replaces::parse("abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2"),
            Some(Replaces {
                call_id: "abc@host".into(),
                to_tag: "1".into(),
                from_tag: "2".into(),
            })
        );
        assert_eq!(
            Replaces::parse("x;from-tag=b;early-only;to-tag=a").map(|r| (r.to_tag, r.from_tag)),
            Some(("a".into(), "b".into()))
        );
        for bad in [
            "",
            "abc%40host",
            "abc;to-tag=1",
            ";to-tag=1;from-tag=2",
            "a;to-tag=;from-tag=2",
        ] {
            assert_eq!(Replaces::parse(bad), None, "{bad}");
        }
    }
}
