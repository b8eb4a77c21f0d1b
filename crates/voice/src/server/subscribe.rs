//! SUBSCRIBE to `message-summary` (RFC 3842): a phone is told, by NOTIFY, how many
//! messages wait in its own user's mailbox, again whenever that changes. SUBSCRIBE to
//! `dialog` (RFC 4235) on the night code: a BLF key's lamp, lit while the office hours
//! are forced by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use officebox_store::Db;

use super::auth::authenticate_owner;
use super::{Request, State};
use crate::call::Wire;
use crate::mwi::{self, Subscription, Told, Watch};
use crate::now_unix;
use crate::registrar::owner_of;
use crate::sip::{Message, StartLine, param, uri_of};
use crate::voicemail;

/// SUBSCRIBE to `message-summary` (RFC 3842): a phone's own user's mailbox only; or to
/// `dialog` on the night code (any office user's phone). The first NOTIFY goes out at
/// the next tick (within a second).
pub(super) fn subscribe(req: &Request) -> Message {
    let event = req.msg.header("event").unwrap_or("");
    let event = event.split(';').next().unwrap_or("").trim();
    let StartLine::Request { uri, .. } = &req.msg.start else {
        return req.msg.response(400, "Bad Request", req.tag.as_str());
    };
    let target = crate::sip::uri_user(uri);
    let night_key = target.as_deref() == Some(req.config.phone.night_code.as_str());
    // A BLF key on an extension: that user's line.
    let line = target.as_deref().and_then(|t| {
        req.config
            .users
            .iter()
            .find(|u| u.extension.as_deref() == Some(t) || u.login == t)
            .map(|u| u.extension.clone().unwrap_or_else(|| u.login.clone()))
    });
    let watch = if event.eq_ignore_ascii_case("message-summary") {
        Watch::Mailbox
    } else if event.eq_ignore_ascii_case("dialog") && night_key {
        Watch::NightKey
    } else if event.eq_ignore_ascii_case("dialog")
        && let Some(ext) = line
    {
        Watch::Line(ext)
    } else if event.eq_ignore_ascii_case("dialog") {
        return req.msg.response(404, "Not Found", req.tag.as_str());
    } else {
        let mut r = req.msg.response(489, "Bad Event", req.tag.as_str());
        r.push("Allow-Events", "message-summary, dialog");
        return r;
    };
    let user = if watch != Watch::Mailbox {
        match super::auth::authenticate(req, false) {
            Ok(u) => u,
            Err(challenge) => return challenge,
        }
    } else {
        let owner = owner_of(req.config, uri).or_else(|| {
            owner_of(
                req.config,
                uri_of(req.msg.header("to").unwrap_or("")).unwrap_or(""),
            )
        });
        match authenticate_owner(req, owner, "mailbox") {
            Ok(u) => u,
            Err(refusal) => return refusal,
        }
    };
    let expires = req
        .msg
        .header("expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(mwi::DEFAULT_EXPIRES);
    let expires = if expires == 0 {
        0
    } else {
        expires.clamp(mwi::MIN_EXPIRES, mwi::DEFAULT_EXPIRES)
    };
    let call_id = req.msg.call_id().to_string();
    let mut subs = req.state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
    let ours = subs.by_call.get(&call_id).map(|s| s.our_to.clone());
    let to_value = req.msg.header("to").unwrap_or("").to_string();
    let our_to = ours.unwrap_or_else(|| {
        if param(&to_value, "tag").is_some() {
            to_value.clone()
        } else {
            format!("{to_value};tag={}", req.tag)
        }
    });
    let ext = match &watch {
        Watch::Mailbox => user.extension.clone().unwrap_or_else(|| user.login.clone()),
        Watch::NightKey => req.config.phone.night_code.clone(),
        Watch::Line(ext) => ext.clone(),
    };
    let sub = Subscription {
        watch,
        login: user.login.clone(),
        account: format!("sip:{ext}@{}", req.config.network.domain),
        target: req
            .msg
            .header("contact")
            .and_then(uri_of)
            .unwrap_or(uri)
            .to_string(),
        dest: req.source,
        transport: req.transport,
        their_from: req.msg.header("from").unwrap_or("").to_string(),
        our_to,
        call_id: call_id.clone(),
        cseq: subs.by_call.get(&call_id).map_or(0, |s| s.cseq),
        expires_at: now_unix() + expires,
        // Told again at once: a (re-)SUBSCRIBE is answered with a NOTIFY (RFC 6665 4.2.1).
        told: None,
        pending: None,
    };
    subs.by_call.insert(call_id, sub);
    let mut r = req.msg.response(200, "OK", req.tag.as_str());
    r.push("Expires", expires.to_string());
    r.push("Contact", format!("<sip:mwi@{}>", req.state.wire.local));
    r
}

/// Tells each subscribed phone its mailbox's counts when they change, sends unanswered
/// NOTIFYs again, and ends expired subscriptions.
pub(super) async fn tick_mwi(state: &Arc<State>, db: &Arc<Mutex<Db>>, data_dir: &std::path::Path) {
    let now = now_unix();
    let lit = state
        .day_night
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_active(i64::try_from(now).unwrap_or(i64::MAX));
    let (logins, lines_watched): (Vec<String>, bool) = {
        let subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        if subs.by_call.is_empty() {
            return;
        }
        let lines = subs
            .by_call
            .values()
            .any(|s| matches!(s.watch, Watch::Line(_)));
        let mut l: Vec<String> = subs
            .by_call
            .values()
            .filter(|s| s.watch == Watch::Mailbox)
            .map(|s| s.login.clone())
            .collect();
        l.sort();
        l.dedup();
        (l, lines)
    };
    let lines = if lines_watched {
        line_states(state)
    } else {
        HashMap::new()
    };
    let (db2, dir) = (Arc::clone(db), data_dir.to_path_buf());
    let counts: HashMap<String, (usize, usize)> = if logins.is_empty() {
        HashMap::new()
    } else {
        tokio::task::spawn_blocking(move || {
            let db = db2.lock().unwrap_or_else(PoisonError::into_inner);
            logins
                .into_iter()
                .filter_map(|l| {
                    let (new, saved) = voicemail::mailbox(&db, &dir, &l).ok()?;
                    Some((l, (new.len(), saved.len())))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    };
    let local = state.wire.local;
    let mut out = Vec::new();
    {
        let mut subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        subs.by_call.retain(|_, s| {
            if s.expires_at <= now {
                out.push((s.notify(local, None, now), s.dest, s.transport));
                return false;
            }
            let now_told = match &s.watch {
                Watch::Mailbox => counts
                    .get(&s.login)
                    .map(|&(n, saved)| Told::Counts(n, saved)),
                Watch::NightKey => Some(Told::Lamp(lit)),
                Watch::Line(ext) => Some(Told::Line(
                    lines.get(ext).copied().unwrap_or(mwi::LineState::Idle),
                )),
            };
            if let Some(t) = now_told
                && s.told != Some(t)
            {
                out.push((s.notify(local, Some(t), now), s.dest, s.transport));
            } else if let Some(again) = s.resend() {
                out.push((again, s.dest, s.transport));
            }
            true
        });
    }
    for (bytes, dest, transport) in out {
        state.wire.send(bytes, dest, transport);
    }
}

/// What each extension's line is doing, from the live calls: ringing while a call to it
/// rings, busy while it is in one (either side).
fn line_states(state: &State) -> HashMap<String, mwi::LineState> {
    let calls = state.calls.lock().unwrap_or_else(PoisonError::into_inner);
    let mut lines: HashMap<String, mwi::LineState> = HashMap::new();
    for status in calls.status.values() {
        let s = status.borrow();
        if s.state == "ending" {
            continue;
        }
        let callee = if s.state == "ringing" {
            mwi::LineState::Ringing
        } else {
            mwi::LineState::Busy
        };
        for (ext, line) in [(&s.caller, mwi::LineState::Busy), (&s.callee, callee)] {
            let e = lines.entry(ext.clone()).or_insert(mwi::LineState::Idle);
            *e = (*e).max(line);
        }
    }
    lines
}
