//! An outside call's lines: the route's trunks tried in order, the provider's digest
//! challenge answered once, and the next trunk when one fails, is full, or says nothing.

use std::net::SocketAddr;

use officebox_store::CallEvent;
use tracing::{debug, warn};

use super::{Call, Callee, Credentials, Peer, token};
use crate::sip::Message;
use crate::trunk::auth::{self, Answer, Challenge};

impl Call {
    /// An outside call tries its lines from `first` on: the first whose trunk has room
    /// gets the INVITE. When none is left the caller hears why the last one failed
    /// (`last`), or 503 when every trunk was full.
    pub(super) fn try_line(&mut self, first: usize, last: Option<(u16, String)>) {
        let Callee::Outside(lines) = &self.setup.callee else {
            return;
        };
        let mut next = None;
        for (i, line) in lines.iter().enumerate().skip(first) {
            if let Some(slot) = self
                .setup
                .slots
                .take(&format!("trunk:{}", line.trunk), line.max_calls)
            {
                next = Some((i, line.clone(), slot));
                break;
            }
            warn!(message = "phone: trunk full; trying the next", trunk = %line.trunk, max_calls = line.max_calls);
        }
        let Some((i, line, slot)) = next else {
            if self.fall_back() {
                return;
            }
            let (code, reason) =
                last.unwrap_or((503, "Service Unavailable (every trunk is busy)".into()));
            self.fail_a(code, &reason);
            return;
        };
        // A failover, or a call that had no trunk (a transfer out, a forward): the call
        // log says which trunk carried it.
        if i > 0 || self.setup.log.trunk.as_deref() != Some(line.trunk.as_str()) {
            self.log(CallEvent::Trunk {
                call_id: self.setup.log.call_id.clone(),
                trunk: line.trunk.clone(),
            });
        }
        self.line = i;
        self.line_slot = Some(slot);
        self.b_from.clone_from(&line.from);
        self.b_to.clone_from(&line.to);
        self.b_contact_user.clone_from(&line.contact_user);
        self.b_local = SocketAddr::new(self.setup.wire.local_for(line.peer), self.b_local.port());
        let peer = Peer {
            addr: line.peer,
            transport: line.transport,
        };
        self.b_cseq += 1;
        // The trunk's last challenge, answered up front (a 407 for it is answered anew).
        let early = line.credentials.as_ref().and_then(|creds| {
            let (challenge, header, answered) = self.setup.nonces.next(&line.trunk)?;
            Some((
                header,
                invite_answer(creds, &challenge, &line.uri, answered),
            ))
        });
        let how = super::fork::Asked {
            authorization: early,
            ..super::fork::Asked::default()
        };
        self.invite_b(&line.uri, peer, self.b_cseq, how);
        debug!(
            message = "phone: calling out",
            caller = %self.setup.parties.caller_ext,
            number = %self.setup.parties.callee_ext,
            trunk = %line.trunk
        );
    }

    /// An outside line refused with a challenge: the INVITE goes again with the trunk
    /// account's answer (once); `false` when it cannot be answered.
    pub(super) fn answer_challenge(&mut self, code: u16, msg: &Message, fork: usize) -> bool {
        // A ring group's outside number has its own line; an outside call, the one tried.
        let group_line = self.forks.get(fork).and_then(|f| f.line.clone());
        let line = match (&group_line, &self.setup.callee) {
            (Some(l), _) => l.as_ref(),
            (None, Callee::Outside(lines)) => match lines.get(self.line) {
                Some(l) => l,
                None => return false,
            },
            (None, _) => return false,
        };
        let Some(creds) = line.credentials.clone() else {
            return false;
        };
        let (ask, answer) = if code == 401 {
            ("www-authenticate", "Authorization")
        } else {
            ("proxy-authenticate", "Proxy-Authorization")
        };
        let challenge = match auth::choose(msg.values(ask)) {
            Ok(c) => c,
            Err(why) => {
                warn!(message = "phone: cannot answer the provider's challenge", trunk = %line.trunk, why = %why);
                return false;
            }
        };
        let (uri, peer) = (
            line.uri.clone(),
            Peer {
                addr: line.peer,
                transport: line.transport,
            },
        );
        let value = invite_answer(&creds, &challenge, &uri, 0);
        let cseq = self.forks.get(fork).map_or(self.b_cseq, |f| f.cseq) + 1;
        self.setup.nonces.keep(&line.trunk, challenge, answer);
        match group_line {
            Some(l) => {
                // The trunk slot goes with the line to the new INVITE.
                let slot = self.forks.get_mut(fork).and_then(|f| f.slot.take());
                self.invite_line(l, cseq, Some((answer, value)), true);
                if let Some(f) = self.forks.last_mut() {
                    f.slot = slot;
                }
            }
            None => {
                let how = super::fork::Asked {
                    authorization: Some((answer, value)),
                    answers_challenge: true,
                    ..super::fork::Asked::default()
                };
                self.invite_b(&uri, peer, cseq, how);
            }
        }
        true
    }

    /// An outside line failed with `code`: the next trunk is tried when another might do
    /// better (no answer, a server error, refused credentials); otherwise the caller
    /// hears the provider's answer (busy, no such number, ...).
    pub(super) fn line_failed(&mut self, code: u16, reason: &str) {
        self.line_slot = None;
        let (code, reason) = match code {
            401 | 403 | 407 => (
                503,
                "Service Unavailable (the provider refused the trunk)".to_string(),
            ),
            _ => (code, reason.to_string()),
        };
        if matches!(code, 408 | 500..=599) {
            if let Callee::Outside(lines) = &self.setup.callee
                && let Some(line) = lines.get(self.line)
            {
                warn!(message = "phone: trunk failed a call; trying the next", trunk = %line.trunk, code, reason = %reason);
            }
            self.try_line(self.line + 1, Some((code, reason)));
        } else {
            self.fail_a(code, &reason);
        }
    }
}

/// The trunk account's answer to `challenge` for an INVITE to `uri`, whose nonce was
/// answered `count` times before.
fn invite_answer(creds: &Credentials, challenge: &Challenge, uri: &str, count: u32) -> String {
    auth::authorization(
        challenge,
        &Answer {
            username: &creds.username,
            password: &creds.password,
            method: "INVITE",
            uri,
            count,
            cnonce: &token(),
        },
    )
}
