//! A three-way call made from a transfer: an office user with one call on hold and
//! another answered (as before an attended transfer) keys in the three-way code
//! ([`officebox_config::derive::THREE_WAY_CODE`]) instead of transferring, and all three
//! talk together.
//!
//! The call where the code was keyed (the consultation) asks the user's other calls over
//! their links ([`Link::ThreeWay`]), one held by the user first; the first that is an
//! answered call of theirs says yes. The two calls then meet in a conference room of
//! their own ([`crate::conference::Rooms::join_three_way`]), mixed by the box as the
//! meet-me conference is: the consultation's relay stops and both of its sides join the
//! room on their own ports; the other call's remaining party joins on its port (made leg
//! A, taken off hold if its phone was asked to hold), and the user's dialog there is hung
//! up by the box (as a replaced dialog is). No phone is asked anything new: each keeps
//! talking to the port it had.
//!
//! From then on each side that hangs up leaves the room alone (the other two go on
//! talking), and the last one left is hung up by the box ([`Mixed`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::refer::Transferor;
use super::{Call, Incoming, Link, State};
use crate::conference::Rooms;
use crate::media::{self, Endpoint, Negotiated, Socket};
use crate::rtp::{Lease, Side};
use crate::sip::Method;

/// How long the consultation waits for each of the user's other calls to answer.
const ASK_FOR: Duration = Duration::from_secs(2);

/// A call asking another to join a three-way call.
#[derive(Debug)]
pub struct ThreeWayAsk {
    /// The user who keyed the code: a party of the call asked.
    by: String,
    /// Only a call where that user holds the other party will do.
    held_only: bool,
    rooms: Arc<Rooms>,
    room: String,
    reply: oneshot::Sender<bool>,
}

/// A three-way call being made, carried out at the loop's next turn.
#[derive(Debug)]
pub(super) enum Step {
    /// The code was keyed by office user `by`: find their other call, then join.
    Ask { by: String },
    /// Another call asked: our side `departing` (its user's) is hung up, the other side
    /// joins `room`.
    Answer {
        departing: Side,
        rooms: Arc<Rooms>,
        room: String,
    },
}

/// The sides of this call in a three-way call's room, until each has left.
#[derive(Debug)]
pub(super) struct Mixed {
    /// By side (A, B): its way out of the room, and whether it hung up itself.
    members: [Option<Member>; 2],
    /// A side whose endpoint came back from the room.
    left: mpsc::UnboundedReceiver<Side>,
    left_tx: mpsc::UnboundedSender<Side>,
}

#[derive(Debug)]
struct Member {
    leave: CancellationToken,
    hung_up: bool,
}

impl Mixed {
    fn new() -> Mixed {
        let (left_tx, left) = mpsc::unbounded_channel();
        Mixed {
            members: [None, None],
            left,
            left_tx,
        }
    }

    /// The next side to come back from the room.
    pub(super) async fn next_left(&mut self) -> Option<Side> {
        self.left.recv().await
    }

    fn member(&mut self, side: Side) -> Option<&mut Member> {
        self.members
            .get_mut(usize::from(side == Side::B))
            .and_then(Option::as_mut)
    }

    /// `side`'s endpoint (`n`, on `lease`) joins `room`; `false`: it could not.
    fn enter(
        &mut self,
        side: Side,
        lease: Lease,
        n: Negotiated,
        rooms: &Arc<Rooms>,
        room: &str,
    ) -> bool {
        let ep = Endpoint::new(Socket::Leased(lease), n, mpsc::unbounded_channel().1);
        let leave = CancellationToken::new();
        let Ok(back) = rooms.join_three_way(room, ep, leave.clone()) else {
            return false;
        };
        let left = self.left_tx.clone();
        tokio::spawn(async move {
            // The endpoint (and its port) is let go here.
            let _ = back.await;
            let _ = left.send(side);
        });
        if let Some(slot) = self.members.get_mut(usize::from(side == Side::B)) {
            *slot = Some(Member {
                leave,
                hung_up: false,
            });
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.members.iter().all(Option::is_none)
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        for m in self.members.iter().flatten() {
            m.leave.cancel();
        }
    }
}

impl Call {
    /// The three-way code keyed on `side`: by an office user's phone in an answered call
    /// that has nothing else under way, their other call is looked for at the loop's
    /// next turn.
    pub(super) fn three_way_keyed(&mut self, side: Side) {
        let by = match side {
            Side::A => Some(self.setup.parties.caller_login.clone()).filter(|l| !l.is_empty()),
            Side::B => self.winner().and_then(|w| w.login.clone()),
        };
        let Some(by) = by else {
            return;
        };
        let free = self.reinvite.is_none()
            && self.transferor.is_none()
            && self.partner.is_none()
            && self.music.is_none()
            && self.winner().is_some()
            && media::negotiate(&self.b_answer).is_some();
        if !free {
            info!(message = "phone: three-way key ignored (the call is busy with something else)", by = %by);
            return;
        }
        self.state = State::Mixing(Box::new(Step::Ask { by }));
    }

    /// Carries out the three-way step the call is in.
    pub(super) async fn three_way_step(&mut self) {
        let State::Mixing(step) = std::mem::replace(&mut self.state, State::Talking) else {
            return;
        };
        match *step {
            Step::Ask { by } => self.gather(by).await,
            Step::Answer {
                departing,
                rooms,
                room,
            } => self.join_room(Some(departing), &rooms, &room).await,
        }
    }

    /// Asks `by`'s other calls to join, one held by them first; then both sides of this
    /// call join the room.
    async fn gather(&mut self, by: String) {
        let (Some(inbox), Some(rooms)) = (self.setup.inbox.clone(), self.setup.rooms.clone())
        else {
            return;
        };
        let room = format!("three-way:{}", self.a.invite.call_id());
        let others = inbox.others();
        let mut joined = false;
        'ask: for held_only in [true, false] {
            for other in &others {
                let (reply, answer) = oneshot::channel();
                let ask = ThreeWayAsk {
                    by: by.clone(),
                    held_only,
                    rooms: Arc::clone(&rooms),
                    room: room.clone(),
                    reply,
                };
                if other.try_send(Link::ThreeWay(Box::new(ask))).is_err() {
                    continue;
                }
                if matches!(tokio::time::timeout(ASK_FOR, answer).await, Ok(Ok(true))) {
                    joined = true;
                    break 'ask;
                }
            }
        }
        if !joined {
            info!(message = "phone: three-way key, but no other answered call of theirs", by = %by);
            return;
        }
        info!(message = "phone: three-way call", by = %by, caller = %self.setup.parties.caller_ext, callee = %self.setup.parties.callee_ext);
        self.join_room(None, &rooms, &room).await;
    }

    /// Another call asks this one to join a three-way call: it must be answered, with
    /// nothing else under way, and the asking user one of its parties (holding the other
    /// when the asker wants that).
    pub(super) fn asked_three_way(&mut self, ask: ThreeWayAsk) {
        let free = matches!(self.state, State::Talking)
            && self.reinvite.is_none()
            && self.transferor.is_none()
            && self.partner.is_none()
            && media::negotiate(&self.b_answer).is_some();
        let winner_login = self.winner().and_then(|w| w.login.clone());
        let side = if self.setup.parties.caller_login == ask.by {
            Some(Side::A)
        } else if winner_login.as_deref() == Some(ask.by.as_str()) {
            Some(Side::B)
        } else {
            None
        };
        let Some(side) = side.filter(|_| free) else {
            let _ = ask.reply.send(false);
            return;
        };
        let holds = self.music.as_ref().is_some_and(|m| m.holder == side)
            || match side {
                Side::A => self.a_held_b,
                Side::B => self.b_held_a,
            };
        if ask.held_only && !holds {
            let _ = ask.reply.send(false);
            return;
        }
        if ask.reply.send(true).is_ok() {
            self.state = State::Mixing(Box::new(Step::Answer {
                departing: side,
                rooms: ask.rooms,
                room: ask.room,
            }));
        }
    }

    /// The relay (or the music) stops and this call's sides join `room`, but
    /// `departing`'s: that dialog is hung up, and the other side is made leg A.
    async fn join_room(&mut self, departing: Option<Side>, rooms: &Arc<Rooms>, room: &str) {
        let Some(base) = media::negotiate(&self.b_answer) else {
            return;
        };
        let was_held = match departing {
            Some(Side::A) => self.a_held_b,
            Some(Side::B) => self.b_held_a,
            None => false,
        };
        let dialog = match departing {
            Some(Side::A) => Some(self.dialog_of_a()),
            Some(Side::B) => self.dialog_of_winner(),
            None => None,
        };
        let Some((lease_a, lease_b)) = self.stop_media().await else {
            return;
        };
        let peers = *self.media.peers.borrow();
        let side_a = (lease_a, self.a_moved.or(peers.a), peers.events_a);
        let side_b = (lease_b, peers.b, peers.events_b);
        let sides = match departing {
            None => vec![(Side::A, side_a), (Side::B, side_b)],
            Some(Side::B) => vec![(Side::A, side_a)],
            Some(Side::A) => {
                // The remaining party becomes leg A (its dialog is the fork's).
                self.swap_legs();
                self.forks.clear();
                vec![(Side::A, side_b)]
            }
        };
        if let Some(dialog) = dialog {
            self.transferor = Some(Transferor::replaced(dialog));
            if departing == Some(Side::B) {
                self.forks.clear();
            }
        }
        self.a_moved = None;
        self.a_held_b = false;
        self.b_held_a = false;
        let mut mixed = Mixed::new();
        for (side, (lease, remote, events)) in sides {
            let n = Negotiated {
                remote,
                events,
                ..base
            };
            if side == Side::A {
                self.media.port_a = lease.port;
            }
            if !mixed.enter(side, lease, n, rooms, room) {
                warn!(message = "phone: a three-way call's room is full", %room);
            }
        }
        if mixed.is_empty() {
            self.hang_up_both();
            return;
        }
        self.mixed = Some(Box::new(mixed));
        self.state = State::Mixed;
        self.status("conference");
        if was_held {
            // Asked to hold while the user spoke to the third party: taken off hold.
            let offer = media::answer(self.media.ip_a, self.media.port_a, &base);
            let re = self.a_request(Method::Invite, Some(&offer));
            self.send_to_a_reliably(re.to_bytes());
        }
        debug!(message = "phone: in a three-way call", caller = %self.setup.parties.caller_ext, %room);
    }

    /// A request in either dialog while the call's sides are in a three-way room: a BYE
    /// takes that side out of the room (the others stay); the box answers the rest.
    pub(super) fn mixed_request(&mut self, m: Incoming, side: Side) {
        let Some(method) = m.msg.method().cloned() else {
            return;
        };
        let tag = match side {
            Side::A => self.a.tag.clone(),
            Side::B => self.b_tag(),
        };
        match method {
            Method::Ack => {
                if side == Side::A {
                    self.stop_retransmitting(&super::timers::Key::FinalToCaller);
                }
            }
            Method::Bye => {
                self.reply(&m, 200, "OK", &tag);
                if let Some(member) = self.mixed.as_mut().and_then(|x| x.member(side)) {
                    member.hung_up = true;
                    member.leave.cancel();
                }
            }
            Method::Invite | Method::Update if !m.msg.body.is_empty() => {
                self.answer_hold(&m.msg, side);
            }
            _ => self.reply(&m, 200, "OK", &tag),
        }
    }

    /// `side` came back from the room: hung up by the box unless it hung up itself; the
    /// call ends with its last side.
    pub(super) fn mixed_left(&mut self, side: Side) {
        let Some(mixed) = self.mixed.as_mut() else {
            return;
        };
        let gone = mixed
            .members
            .get_mut(usize::from(side == Side::B))
            .and_then(Option::take);
        let empty = mixed.is_empty();
        if gone.is_some_and(|m| !m.hung_up) {
            match side {
                Side::A => {
                    let bye = self.a_request(Method::Bye, None);
                    self.send_to_a_reliably(bye.to_bytes());
                }
                Side::B => self.bye_b(),
            }
        }
        if empty {
            self.mixed = None;
            self.ending();
        }
    }

    /// Nothing could join: both sides are hung up.
    fn hang_up_both(&mut self) {
        let bye = self.a_request(Method::Bye, None);
        self.send_to_a_reliably(bye.to_bytes());
        self.bye_b();
        self.ending();
    }
}
