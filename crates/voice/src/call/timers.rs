//! The call's clocks: over UDP, requests and our final answer to the caller are sent
//! again until answered (RFC 3261 section 17.1.1.1: from T1, doubling up to T2, for at
//! most 32 s); what is never answered times out; and a call nobody answers stops
//! ringing after `no_answer_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Call, State};
use crate::sip::{Transport, param};

/// Retransmission timers (RFC 3261 section 17.1.1.1).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMEOUT: Duration = Duration::from_secs(32);

/// What ends a retransmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    /// A response with this branch (our requests).
    Branch(String),
    /// The caller's ACK (our final response to leg A's INVITE).
    FinalToCaller,
}

/// A message sent again until answered (UDP only).
#[derive(Debug)]
pub(super) struct Retransmit {
    pub(super) key: Key,
    bytes: Vec<u8>,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

impl Retransmit {
    /// `bytes` to `to`, first again after T1, doubling, for up to the transaction timeout.
    pub(super) fn new(key: Key, bytes: &[u8], to: SocketAddr) -> Retransmit {
        let now = Instant::now();
        Retransmit {
            key,
            bytes: bytes.to_vec(),
            to,
            next: now + T1,
            interval: T1,
            until: now + TIMEOUT,
        }
    }

    /// A request of ours, ended by a response with the branch of its top Via.
    pub(super) fn for_request(bytes: &[u8], to: SocketAddr) -> Retransmit {
        let key = Key::Branch(branch_of_bytes(bytes).unwrap_or_default());
        Retransmit::new(key, bytes, to)
    }
}

/// The branch of the top Via of a message we built.
fn branch_of_bytes(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let via = text.lines().find(|l| l.starts_with("Via:"))?;
    param(via.trim_start_matches("Via:").trim(), "branch").map(str::to_string)
}

impl Call {
    /// The message `key` names was answered: it is no longer sent again.
    pub(super) fn stop_retransmitting(&mut self, key: &Key) {
        self.retransmits.retain(|r| r.key != *key);
    }

    /// When [`Call::timers`] next has something to do (at the latest in a second).
    pub(super) fn next_timer(&self) -> Instant {
        let mut next = Instant::now() + Duration::from_secs(1);
        for r in &self.retransmits {
            next = next.min(r.next).min(r.until);
        }
        if self.state.is_ringing() {
            next = next.min(self.ring_until);
        }
        for f in &self.forks {
            if let Some(t) = f.silent_until {
                next = next.min(t);
            }
        }
        if let Some(t) = self.transferor_due() {
            next = next.min(t);
        }
        if let Some(p) = &self.parked {
            next = next.min(p.until);
        }
        next
    }

    /// Sends again what is due, gives up on what timed out, and stops ringing when
    /// nobody answered in time.
    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for r in &mut self.retransmits {
            if r.until <= now {
                expired.push(r.key.clone());
            } else if r.next <= now {
                self.setup.wire.send(r.bytes.clone(), r.to, Transport::Udp);
                r.interval = (r.interval * 2).min(T2);
                r.next = now + r.interval;
            }
        }
        self.retransmits.retain(|r| r.until > now);
        for key in expired {
            match key {
                Key::FinalToCaller => {
                    // Never ACKed: the caller is gone. (No new status: the list of calls
                    // shows the call as it was until it is over.)
                    match std::mem::replace(&mut self.state, State::Ending) {
                        State::Talking => self.bye_b(),
                        // The box's side stops; its task ends by itself, unheard.
                        State::Voicemail(rec) => rec.hangup.cancel(),
                        // Sent on by the attendant and ringing there.
                        State::Ringing { .. } => self.cancel_forks(None),
                        _ => {}
                    }
                }
                Key::Branch(branch) => {
                    if let Some(f) = self
                        .forks
                        .iter_mut()
                        .find(|f| f.branch == branch && f.is_pending())
                    {
                        f.state = super::fork::ForkState::Failed(408);
                        f.slot = None;
                        self.fork_failed(408, "Request Timeout");
                    }
                }
            }
        }
        // A provider that said nothing at all in time: the next trunk.
        let silent: Vec<String> = self
            .forks
            .iter()
            .filter(|f| f.silent_until.is_some_and(|t| t <= now) && f.is_pending())
            .map(|f| f.branch.clone())
            .collect();
        for branch in silent {
            self.stop_retransmitting(&Key::Branch(branch.clone()));
            if let Some(f) = self.forks.iter_mut().find(|f| f.branch == branch) {
                f.silent_until = None;
                f.state = super::fork::ForkState::Failed(408);
                f.slot = None;
            }
            self.fork_failed(408, "Request Timeout (the provider did not answer)");
        }
        if self.parked.as_ref().is_some_and(|p| p.until <= now)
            && matches!(self.state, State::Talking)
        {
            self.state = State::Unparking;
        }
        if self.transferor_due().is_some_and(|t| t <= now) {
            // Told the transfer is done, and still on the line.
            self.bye_transferor();
        }
        if self.state.is_ringing() && now >= self.ring_until {
            if self.has_next_stage() {
                // A ring group's member did not answer in time: the next.
                self.ring_stage(self.stage + 1);
            } else {
                self.cancel_forks(None);
                self.voicemail_or_fail(480, "Temporarily Unavailable (no answer)");
            }
        }
    }
}
