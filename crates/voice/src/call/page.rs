//! Group paging: `*81` calls every other office user's phones at once, each asked to
//! answer by itself (as the intercom does), and what the pager says is heard on every
//! phone that answers; the phones are not heard (one-way).
//!
//! The box answers the pager at once and its endpoint joins a conference room of its own
//! ([`crate::conference`]) as the one member heard. Each paged phone is a fork of leg B
//! with a relay port of its own, offered the pager's law (send and receive: a phone
//! offered send-only may play nothing, as baresip 1.0 does; what the phones send is not
//! passed on); when it answers, an endpoint on that port joins the same room as a
//! listener. Many forks answer and
//! stay (not the first only); the pager hanging up hangs them all up, and a phone
//! hanging up leaves alone.

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::fork::{Asked, ForkState, routed};
use super::{Call, Callee, Incoming, Peer, branch, reach};
use crate::media::{self, Endpoint, Socket};
use crate::registrar::Binding;
use crate::sip::{Method, param, uri_of};

/// Phones paged at once at most.
const MAX_PAGED: usize = 50;

/// What a paged phone's fork holds besides the usual.
#[derive(Debug)]
pub(super) struct Paged {
    /// Its relay port, until it answers (then the endpoint's).
    lease: Option<crate::rtp::Lease>,
    /// Cancelled when the phone or the pager hangs up: it leaves the room.
    leave: CancellationToken,
}

impl Call {
    /// The room of this call's page.
    fn page_room(&self) -> String {
        format!("page:{}", self.a.invite.call_id())
    }

    /// Calls every phone of the page, each on a port of its own, offered the pager's law;
    /// then the box answers the pager (at the loop's next turn).
    pub(super) fn ring_page(&mut self, phones: &[(String, Binding)]) {
        let Some(n) = media::negotiate(&self.a.invite.body) else {
            self.fail_a(488, "Not Acceptable Here (G.711 only)");
            return;
        };
        let ip = self.media.ip_b;
        for (login, b) in phones.iter().take(MAX_PAGED) {
            let Ok(lease) = self.setup.ports.take(ip) else {
                break;
            };
            let offer = media::answer(ip, lease.port, &n);
            let peer = Peer {
                addr: reach(b),
                transport: b.transport,
            };
            let how = Asked {
                login: Some(login.clone()),
                ..Asked::default()
            };
            self.invite_b_with(&b.contact, peer, 1, how, Some(offer));
            if let Some(f) = self.forks.last_mut() {
                f.page = Some(Box::new(Paged {
                    lease: Some(lease),
                    leave: CancellationToken::new(),
                }));
            }
        }
        info!(message = "phone: paging", caller = %self.setup.parties.caller_ext, phones = self.forks.len());
        self.state = super::State::ToVoicemail;
    }

    /// A paged phone answered: ACKed, and its endpoint joins the room as a listener.
    pub(super) fn page_answered(&mut self, i: usize, m: &Incoming) {
        let msg = &m.msg;
        let to_tag = msg
            .header("to")
            .and_then(|t| param(t, "tag"))
            .map(str::to_string);
        let remote_uri = msg.header("contact").and_then(uri_of).map(str::to_string);
        let mut route: Vec<String> = msg.values("record-route").map(str::to_string).collect();
        route.reverse();
        let Some(f) = self.forks.get(i) else {
            return;
        };
        let uri = remote_uri.clone().unwrap_or_else(|| f.uri.clone());
        let mut ack = self.b_request(
            Method::Ack,
            &uri,
            f.cseq,
            &branch(),
            to_tag.as_deref(),
            None,
        );
        routed(&mut ack, &route);
        let from = Peer {
            addr: m.source,
            transport: m.transport,
        };
        self.send(ack.to_bytes(), from);
        let (Callee::Page(_), Some(mut n)) = (&self.setup.callee, media::negotiate(&msg.body))
        else {
            return;
        };
        n.remote = crate::sdp::audio(&msg.body).map(|a| a.addr);
        let room = self.page_room();
        let rooms = self.setup.rooms.clone();
        let Some(f) = self.forks.get_mut(i) else {
            return;
        };
        if f.state == ForkState::Answered {
            return;
        }
        f.state = ForkState::Answered;
        f.to_tag = to_tag;
        f.remote_uri = remote_uri;
        f.peer.addr = from.addr;
        f.route = route;
        let Some(page) = f.page.as_mut() else {
            return;
        };
        let (Some(lease), Some(rooms)) = (page.lease.take(), rooms) else {
            return;
        };
        let ep = Endpoint::new(
            Socket::Leased(lease),
            n,
            tokio::sync::mpsc::unbounded_channel().1,
        );
        if rooms
            .join_as(&room, MAX_PAGED + 1, ep, false, page.leave.clone())
            .is_err()
        {
            debug!("phone: a paged phone could not join the page");
        }
    }

    /// A paged phone hung up (its BYE, from `tag`): it leaves the page alone.
    pub(super) fn page_phone_left(&mut self, m: &Incoming) -> bool {
        let tag = m.msg.header("from").and_then(|f| param(f, "tag"));
        let Some(f) = self
            .forks
            .iter_mut()
            .find(|f| f.page.is_some() && f.to_tag.as_deref() == tag && tag.is_some())
        else {
            return false;
        };
        f.state = ForkState::HungUp;
        if let Some(p) = &f.page {
            p.leave.cancel();
        }
        let our = self.b_from_tag.clone();
        self.reply(m, 200, "OK", &our);
        true
    }

    /// The page is over: every phone that answered is hung up, the others cancelled.
    pub(super) fn end_page(&mut self) {
        if !matches!(self.setup.callee, Callee::Page(_)) {
            return;
        }
        let answered: Vec<usize> = (0..self.forks.len())
            .filter(|&i| {
                self.forks
                    .get(i)
                    .is_some_and(|f| f.state == ForkState::Answered)
            })
            .collect();
        for i in answered {
            let Some(f) = self.forks.get_mut(i) else {
                continue;
            };
            f.state = ForkState::HungUp;
            if let Some(p) = &f.page {
                p.leave.cancel();
            }
            let (uri, to_tag, peer, route, cseq) = (
                f.dialog_uri(),
                f.to_tag.clone(),
                f.peer,
                f.route.clone(),
                f.cseq,
            );
            let mut bye = self.b_request(
                Method::Bye,
                &uri,
                cseq + 1,
                &branch(),
                to_tag.as_deref(),
                None,
            );
            routed(&mut bye, &route);
            self.send_b(peer, bye.to_bytes());
        }
        self.cancel_forks(None);
    }
}
