//! One message in: to the call it belongs to (by Call-ID), from the replay cache when it
//! is a retransmission, or to the handler of its method; the answer gets `received` and
//! `rport` (RFC 3581) and is remembered for retransmissions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use officebox_config::Config;
use std::sync::PoisonError;
use tracing::debug;

use super::invite::invite;
use super::register::register;
use super::subscribe::subscribe;
use super::{REPLAY_FOR, Request, State};
use crate::call::Incoming;
use crate::digest::Algorithm;
use crate::sip::{self, Message, Method, ParseError, StartLine, Transport, param, split_list};

/// What the server answers OPTIONS with and allows.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, INFO, SUBSCRIBE, NOTIFY, UPDATE, REFER";
/// Responses remembered for retransmissions at most (then the old ones are dropped).
const MAX_REPLAY: usize = 50_000;

/// Handles one message; the bytes to send back, if any.
pub(super) fn datagram(
    config: &Arc<Config>,
    state: &Arc<State>,
    bytes: &[u8],
    source: SocketAddr,
    transport: Transport,
) -> Option<Vec<u8>> {
    if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
        return None; // keep-alive
    }
    if state.limiter.locked(source.ip()) {
        return None;
    }
    let msg = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            debug!(message = "phone: unparsable message", %source, error = %e);
            return bad_request(bytes, &e);
        }
    };
    // Everything of a call's two legs goes to that call.
    let route = state
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .routes
        .get(msg.call_id())
        .cloned();
    if let Some(route) = route {
        let _ = route.sip.try_send(Incoming {
            msg,
            source,
            transport,
        });
        return None;
    }
    let StartLine::Request { method, .. } = &msg.start else {
        // A response to a trunk's REGISTER (by its Via branch), to one of our NOTIFYs, or
        // to nothing we still wait for.
        if state.trunks.deliver(&msg) {
            return None;
        }
        if let (StartLine::Response { code, .. }, Some((cseq, m))) = (&msg.start, msg.cseq())
            && m == Method::Notify
        {
            state
                .mwi
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .answered(msg.call_id(), cseq, *code);
        }
        return None;
    };
    if *method == Method::Ack {
        return None;
    }
    let branch = msg.branch();
    let key = (format!("{branch}|{method}"), source);
    if !branch.is_empty()
        && let Some((at, reply)) = state
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        && at.elapsed() < REPLAY_FOR
    {
        return Some(reply.clone());
    }
    let req = Request {
        config,
        state,
        msg: &msg,
        source,
        transport,
        tag: to_tag(&msg),
    };
    let mut reply = request(&req)?;
    fix_via(&mut reply, source);
    let bytes = reply.to_bytes();
    if !branch.is_empty() {
        let mut replay = state.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if replay.len() >= MAX_REPLAY {
            replay.retain(|_, (at, _)| at.elapsed() < REPLAY_FOR);
            if replay.len() >= MAX_REPLAY {
                replay.clear();
            }
        }
        replay.insert(key, (Instant::now(), bytes.clone()));
    }
    Some(bytes)
}

/// A request outside any call: checked (URI scheme, required extensions), then
/// answered by its method's handler; `None` when a call task answers instead.
fn request(req: &Request) -> Option<Message> {
    let (msg, tag) = (req.msg, &req.tag);
    let method = msg.method()?;
    // RFC 3261 8.2.2: the Request-URI's scheme, then extensions the phone insists on.
    if let StartLine::Request { uri, .. } = &msg.start {
        let scheme = uri.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            let mut r = msg.response(416, "Unsupported URI Scheme", tag);
            r.push("Server", "officebox");
            return Some(r);
        }
    }
    let required: Vec<&str> = msg.values("require").collect();
    if !required.is_empty() && *method != Method::Cancel {
        let mut r = msg.response(420, "Bad Extension", tag);
        r.push("Unsupported", required.join(", "));
        r.push("Server", "officebox");
        return Some(r);
    }
    let mut reply = match method {
        Method::Register => register(req),
        Method::Options => {
            let mut r = msg.response(200, "OK", tag);
            r.push("Allow", ALLOW);
            r.push("Accept", "application/sdp");
            r
        }
        Method::Invite if msg.header("to").and_then(|t| param(t, "tag")).is_some() => {
            msg.response(481, "Call/Transaction Does Not Exist", tag)
        }
        Method::Invite => invite(req)?,
        Method::Subscribe => subscribe(req),
        Method::Bye
            if req
                .state
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ended
                .get(msg.call_id())
                .is_some_and(|at| at.elapsed() < REPLAY_FOR) =>
        {
            msg.response(200, "OK", tag)
        }
        Method::Bye | Method::Cancel | Method::Prack | Method::Update | Method::Info => {
            msg.response(481, "Call/Transaction Does Not Exist", tag)
        }
        // A transfer in a call that is over (or never was).
        Method::Other(o) if o == "REFER" => {
            msg.response(481, "Call/Transaction Does Not Exist", tag)
        }
        _ => msg.response(501, "Not Implemented", tag),
    };
    reply.push("Server", "officebox");
    Some(reply)
}

/// A To tag that is the same for retransmissions of one request.
fn to_tag(msg: &Message) -> String {
    let seed = format!(
        "{}|{}",
        msg.call_id(),
        msg.header("from")
            .and_then(|f| param(f, "tag"))
            .unwrap_or("")
    );
    Algorithm::Md5.hex(&seed).chars().take(12).collect()
}

/// Adds `received` (and fills in `rport`) on the top Via of a response (RFC 3581).
fn fix_via(reply: &mut Message, source: SocketAddr) {
    let Some((_, value)) = reply.headers.iter_mut().find(|(n, _)| n == "via") else {
        return;
    };
    let parts = split_list(value);
    let Some((top, rest)) = parts.split_first() else {
        return;
    };
    let mut new_top = String::new();
    let mut has_received = false;
    for (i, p) in top.split(';').enumerate() {
        if i > 0 {
            new_top.push(';');
        }
        let key = p.split('=').next().unwrap_or("").trim();
        if key.eq_ignore_ascii_case("rport") {
            new_top.push_str(&format!("rport={}", source.port()));
        } else {
            has_received |= key.eq_ignore_ascii_case("received");
            new_top.push_str(p);
        }
    }
    if !has_received {
        new_top.push_str(&format!(";received={}", source.ip()));
    }
    *value = std::iter::once(new_top.as_str())
        .chain(rest.iter().copied())
        .collect::<Vec<_>>()
        .join(", ");
}

/// A best-effort `400` for a request that did not parse: its Via, From, To, Call-ID and
/// CSeq lines as they were, so the phone can match it. `None` for responses and for bytes
/// without a Via.
pub(super) fn bad_request(bytes: &[u8], error: &ParseError) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes.get(..sip::MAX_MESSAGE).unwrap_or(bytes));
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") || text.is_empty() {
        return None;
    }
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = Vec::new();
    for line in head.lines().skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) && !line.contains(['\r', '\0'])
        {
            lines.push(line.trim_end());
        }
    }
    if !lines.iter().any(|l| {
        let n = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        n == "via" || n == "v"
    }) {
        return None;
    }
    let (code, reason) = error.status();
    let mut out = format!("SIP/2.0 {code} {reason} ({error})\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Server: officebox\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn via_gets_received_and_rport() {
        let req = Message::parse(
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport, SIP/2.0/UDP p;branch=z9hG4bKb\r\n\
              To: <sip:x@y>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap();
        let mut r = req.response(200, "OK", "t");
        fix_via(&mut r, "192.0.2.7:40000".parse().unwrap());
        let via = r.header("via").unwrap();
        assert_eq!(
            via,
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport=40000;received=192.0.2.7, SIP/2.0/UDP p;branch=z9hG4bKb"
        );
    }

    #[test]
    fn unparsable_requests_get_a_400_that_the_phone_can_match() {
        let bad = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@y>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        let e = Message::parse(bad).unwrap_err();
        let r = String::from_utf8(bad_request(bad, &e).unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 400 Bad Request"), "{r}");
        assert!(r.contains("Call-ID: c\r\n") && r.contains("CSeq: 1 BYE\r\n"));
        assert!(bad_request(b"SIP/2.0 200 OK\r\n\r\n", &e).is_none());
    }
}
