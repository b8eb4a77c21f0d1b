//! Message waiting (RFC 3842, over RFC 6665 subscriptions): a phone subscribes to its
//! user's `message-summary` and is told, by NOTIFY, how many voicemails are new and how
//! many saved, so its lamp lights when one arrives and goes out when it has been heard,
//! whether by phone or by mail. The server looks at the subscribed mailboxes every
//! second and notifies when the counts change (a deletion by POP3 included).
//!
//! A BLF key on the night code is the same kind of subscription, to the `dialog` event
//! package (RFC 4235): its lamp is a dialog, "confirmed" while the office hours are
//! forced by hand ([`crate::daynight`]) and "terminated" otherwise. A BLF key on an
//! extension shows that user's line: no dialog (idle), an "early" one (ringing: the key
//! picks it up with the pickup code) or a "confirmed" one (in a call), from the live
//! calls, looked at every second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::{Message, Method, StartLine, Transport};

/// Subscription lifetimes.
pub const DEFAULT_EXPIRES: u64 = 3600;
pub const MIN_EXPIRES: u64 = 60;
/// NOTIFYs are sent again until answered, this often, this many times.
const RESEND_AFTER: Duration = Duration::from_secs(1);
const MAX_SENDS: u32 = 4;

/// What a subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The user's mailbox (`message-summary`).
    Mailbox,
    /// The night code's lamp (`dialog`).
    NightKey,
    /// An extension's line (`dialog`): idle, ringing or busy.
    Line(String),
}

/// What an extension's line is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LineState {
    Idle,
    /// A call rings there.
    Ringing,
    /// In a call (making or taking one).
    Busy,
}

/// What a NOTIFY told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// Voicemails new and saved.
    Counts(usize, usize),
    /// The lamp lit or not.
    Lamp(bool),
    /// An extension's line.
    Line(LineState),
}

/// One phone's subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub watch: Watch,
    pub login: String,
    /// `sip:101@office.test` (the night key's: `sip:*30@office.test`).
    pub account: String,
    /// Where NOTIFYs go: the subscriber's Contact, reached at `dest`.
    pub target: String,
    pub dest: SocketAddr,
    pub transport: Transport,
    /// Their From (with their tag) and our To (with ours).
    pub their_from: String,
    pub our_to: String,
    pub call_id: String,
    pub cseq: u32,
    /// Unix seconds.
    pub expires_at: u64,
    /// What was last told.
    pub told: Option<Told>,
    /// The last NOTIFY until it is answered: bytes, CSeq, last sent, sends.
    pub pending: Option<(Vec<u8>, u32, Instant, u32)>,
}

/// The body of a message-summary NOTIFY.
pub fn summary(account: &str, new: usize, saved: usize) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{saved} (0/0)\r\n",
        if new > 0 { "yes" } else { "no" }
    )
}

/// The body of a dialog NOTIFY for a lamp: one dialog, confirmed while `lit`.
pub fn lamp(entity: &str, version: u32, lit: bool) -> String {
    let state = if lit { "confirmed" } else { "terminated" };
    format!(
        "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
         version=\"{version}\" state=\"full\" entity=\"{entity}\">\r\n\
         <dialog id=\"night\" direction=\"recipient\"><state>{state}</state></dialog>\r\n\
         </dialog-info>\r\n"
    )
}

/// The body of a dialog NOTIFY for an extension's line (RFC 4235): no dialog when idle,
/// else one, "early" (ringing, for us the recipient) or "confirmed".
pub fn line(entity: &str, version: u32, state: LineState) -> String {
    let dialog = match state {
        LineState::Idle => String::new(),
        LineState::Ringing => {
            "<dialog id=\"line\" direction=\"recipient\"><state>early</state></dialog>\r\n"
                .to_string()
        }
        LineState::Busy => "<dialog id=\"line\"><state>confirmed</state></dialog>\r\n".to_string(),
    };
    format!(
        "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
         version=\"{version}\" state=\"full\" entity=\"{entity}\">\r\n{dialog}</dialog-info>\r\n"
    )
}

impl Subscription {
    /// A NOTIFY telling `what` (`None`: the final one, the subscription ends).
    pub fn notify(&mut self, local: SocketAddr, what: Option<Told>, now: u64) -> Vec<u8> {
        self.cseq += 1;
        let mut m = Message {
            start: StartLine::Request {
                method: Method::Notify,
                uri: self.target.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push(
            "Via",
            format!(
                "SIP/2.0/UDP {local};branch=z9hG4bK{};rport",
                crate::call::token()
            ),
        );
        m.push("Max-Forwards", "70");
        m.push("From", self.our_to.clone());
        m.push("To", self.their_from.clone());
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} NOTIFY", self.cseq));
        m.push("Contact", format!("<sip:mwi@{local}>"));
        m.push(
            "Event",
            match self.watch {
                Watch::Mailbox => "message-summary",
                Watch::NightKey | Watch::Line(_) => "dialog",
            },
        );
        match what {
            Some(told) => {
                m.push(
                    "Subscription-State",
                    format!("active;expires={}", self.expires_at.saturating_sub(now)),
                );
                let (kind, body) = match told {
                    Told::Counts(new, saved) => (
                        "application/simple-message-summary",
                        summary(&self.account, new, saved),
                    ),
                    Told::Lamp(lit) => (
                        "application/dialog-info+xml",
                        lamp(&self.account, self.cseq, lit),
                    ),
                    Told::Line(state) => (
                        "application/dialog-info+xml",
                        line(&self.account, self.cseq, state),
                    ),
                };
                m.push("Content-Type", kind);
                m.body = body.into_bytes();
                self.told = Some(told);
            }
            None => m.push("Subscription-State", "terminated;reason=timeout"),
        }
        let bytes = m.to_bytes();
        self.pending = Some((bytes.clone(), self.cseq, Instant::now(), 1));
        bytes
    }

    /// The pending NOTIFY to send again, if it is time.
    pub fn resend(&mut self) -> Option<Vec<u8>> {
        let (bytes, _, at, sends) = self.pending.as_mut()?;
        if at.elapsed() < RESEND_AFTER {
            return None;
        }
        if *sends >= MAX_SENDS {
            self.pending = None;
            return None;
        }
        *sends += 1;
        *at = Instant::now();
        Some(bytes.clone())
    }
}

/// All subscriptions, by Call-ID.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub by_call: HashMap<String, Subscription>,
}

impl Subscriptions {
    /// A response to one of our NOTIFYs: answered (or the phone forgot the subscription).
    pub fn answered(&mut self, call_id: &str, cseq: u32, code: u16) {
        let Some(sub) = self.by_call.get_mut(call_id) else {
            return;
        };
        if code >= 200 && sub.pending.as_ref().is_some_and(|p| p.1 == cseq) {
            sub.pending = None;
        }
        if code == 481 {
            self.by_call.remove(call_id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_carries_the_summary_in_the_subscription_dialog() {
        let mut s = Subscription {
            watch: Watch::Mailbox,
            login: "bob".into(),
            account: "sip:102@office.test".into(),
            target: "sip:102@10.0.0.6:5060".into(),
            dest: "10.0.0.6:5060".parse().unwrap(),
            transport: Transport::Udp,
            their_from: "<sip:102@office.test>;tag=abc".into(),
            our_to: "<sip:102@office.test>;tag=xyz".into(),
            call_id: "sub-1".into(),
            cseq: 0,
            expires_at: 4600,
            told: None,
            pending: None,
        };
        let bytes = s.notify(
            "192.168.1.1:5060".parse().unwrap(),
            Some(Told::Counts(2, 1)),
            1000,
        );
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.method(), Some(&Method::Notify));
        assert_eq!(m.header("to"), Some("<sip:102@office.test>;tag=abc"));
        assert_eq!(m.header("subscription-state"), Some("active;expires=3600"));
        let body = String::from_utf8(m.body).unwrap();
        assert!(
            body.contains("Messages-Waiting: yes\r\n") && body.contains("Voice-Message: 2/1 (0/0)")
        );
        assert_eq!(s.told, Some(Told::Counts(2, 1)));
        // The night key's lamp: a dialog, confirmed while lit.
        let mut key = Subscription {
            watch: Watch::NightKey,
            account: "sip:*30@office.test".into(),
            ..s.clone()
        };
        let m = Message::parse(&key.notify(
            "192.168.1.1:5060".parse().unwrap(),
            Some(Told::Lamp(true)),
            1000,
        ))
        .unwrap();
        assert_eq!(m.header("event"), Some("dialog"));
        assert_eq!(
            m.header("content-type"),
            Some("application/dialog-info+xml")
        );
        let body = String::from_utf8(m.body).unwrap();
        assert!(
            body.contains("entity=\"sip:*30@office.test\"")
                && body.contains("<state>confirmed</state>"),
            "{body}"
        );
        // An extension's line: no dialog idle, early ringing, confirmed busy.
        let idle = line("sip:102@office.test", 1, LineState::Idle);
        assert!(idle.contains("entity=\"sip:102@office.test\"") && !idle.contains("<dialog "));
        assert!(line("x", 2, LineState::Ringing).contains("<state>early</state>"));
        assert!(line("x", 3, LineState::Busy).contains("<state>confirmed</state>"));
        assert!(LineState::Busy > LineState::Ringing && LineState::Ringing > LineState::Idle);
        assert!(s.resend().is_none(), "not yet");
        let mut subs = Subscriptions::default();
        subs.by_call.insert("sub-1".into(), s);
        subs.answered("sub-1", 1, 200);
        assert!(subs.by_call["sub-1"].pending.is_none());
        subs.answered("sub-1", 1, 481);
        assert!(subs.by_call.is_empty());
    }
}
