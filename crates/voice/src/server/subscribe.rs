//! SUBSCRIBE to `message-summary` (RFC 3842): a phone is told, by NOTIFY, how many
//! messages wait in its own user's mailbox, again whenever that changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use officebox_store::Db;

use super::auth::authenticate_owner;
use super::{Request, State};
use crate::call::Wire;
use crate::mwi::{self, Subscription};
use crate::now_unix;
use crate::registrar::owner_of;
use crate::sip::{Message, StartLine, param, uri_of};
use crate::voicemail;

/// SUBSCRIBE to `message-summary` (RFC 3842): a phone's own user's mailbox only. The
/// first NOTIFY goes out at the next tick (within a second).
pub(super) fn subscribe(req: &Request) -> Message {
    let event = req.msg.header("event").unwrap_or("");
    if !event
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("message-summary")
    {
        let mut r = req.msg.response(489, "Bad Event", req.tag.as_str());
        r.push("Allow-Events", "message-summary");
        return r;
    }
    let StartLine::Request { uri, .. } = &req.msg.start else {
        return req.msg.response(400, "Bad Request", req.tag.as_str());
    };
    let owner = owner_of(req.config, uri).or_else(|| {
        owner_of(
            req.config,
            uri_of(req.msg.header("to").unwrap_or("")).unwrap_or(""),
        )
    });
    let user = match authenticate_owner(req, owner, "mailbox") {
        Ok(u) => u,
        Err(refusal) => return refusal,
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
    let ext = user.extension.clone().unwrap_or_else(|| user.login.clone());
    let sub = Subscription {
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
    let logins: Vec<String> = {
        let subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        let mut l: Vec<String> = subs.by_call.values().map(|s| s.login.clone()).collect();
        l.sort();
        l.dedup();
        l
    };
    if logins.is_empty() {
        return;
    }
    let (db2, dir) = (Arc::clone(db), data_dir.to_path_buf());
    let counts: HashMap<String, (usize, usize)> = tokio::task::spawn_blocking(move || {
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
    .unwrap_or_default();
    let local = state.wire.local;
    let mut out = Vec::new();
    {
        let mut subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        subs.by_call.retain(|_, s| {
            if s.expires_at <= now {
                out.push((s.notify(local, None, now), s.dest, s.transport));
                return false;
            }
            if let Some(&c) = counts.get(&s.login)
                && s.told != Some(c)
            {
                out.push((s.notify(local, Some(c), now), s.dest, s.transport));
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
