//! Call forwarding and do-not-disturb, per user: set from the phone by feature codes
//! (`*72` + number forwards every call, `*90` + number when busy, `*92` + number when
//! nobody answers, `*73` turns forwarding off, `*78` toggles do-not-disturb) or on the
//! Users page. The state database has them (`phone_forwarding`); the server keeps a copy
//! in memory, changed at once by the codes and read again from the database every
//! second (for the page's changes). Calls follow them in `outside::ring_user` and the
//! call's busy and no-answer fallbacks ([`crate::call::Forwards`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use officebox_config::derive::{
    DND_CODE, FORWARD_ALWAYS_CODE, FORWARD_BUSY_CODE, FORWARD_NO_ANSWER_CODE, FORWARD_OFF_CODE,
    forward_reachable,
};
use officebox_config::model::User;
use officebox_store::{Db, Forwarding};
use tracing::{info, warn};

use super::{Request, State};
use crate::voicemail::{prompt, prompts};

/// Every user's forwarding that is not off, by login.
pub(super) type Table = Mutex<HashMap<String, Forwarding>>;

/// `login`'s forwarding now (all off when none is set).
pub(super) fn of(state: &State, login: &str) -> Forwarding {
    state
        .forwarding
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(login)
        .cloned()
        .unwrap_or_else(|| Forwarding {
            login: login.to_string(),
            ..Forwarding::default()
        })
}

/// Reads the table again from the database (the Users page may have changed it).
pub(super) async fn reload(state: &Arc<State>, db: &Arc<Mutex<Db>>) {
    let db = Arc::clone(db);
    let read = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forwardings()
    })
    .await;
    match read {
        Ok(Ok(rows)) => {
            let table = rows.into_iter().map(|f| (f.login.clone(), f)).collect();
            *state
                .forwarding
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = table;
        }
        Ok(Err(error)) => warn!(message = "phone: cannot read the call forwarding", %error),
        Err(_) => {}
    }
}

/// A forwarding feature code dialled by `caller`: `None` when `dialled` is none.
pub(super) fn feature(
    req: &Request,
    caller: &User,
    dialled: &str,
) -> Option<Option<crate::sip::Message>> {
    let mut f = of(req.state, &caller.login);
    let target = |code: &str| dialled.strip_prefix(code).map(str::to_string);
    let say = if dialled == DND_CODE {
        f.dnd = !f.dnd;
        if f.dnd {
            prompts::DND_ON
        } else {
            prompts::DND_OFF
        }
    } else if dialled == FORWARD_OFF_CODE {
        f.always = None;
        f.busy = None;
        f.no_answer = None;
        prompts::FORWARD_OFF
    } else if let Some((slot, to)) = target(FORWARD_ALWAYS_CODE)
        .map(|t| (0, t))
        .or_else(|| target(FORWARD_BUSY_CODE).map(|t| (1, t)))
        .or_else(|| target(FORWARD_NO_ANSWER_CODE).map(|t| (2, t)))
    {
        if !forward_reachable(req.config, caller, &to) {
            info!(message = "phone: call forwarding refused", user = %caller.login, to = %to);
            return Some(super::feature::announce(
                req,
                caller,
                dialled,
                prompt(prompts::FORWARD_REFUSED),
                || true,
            ));
        }
        match slot {
            0 => f.always = Some(to),
            1 => f.busy = Some(to),
            _ => f.no_answer = Some(to),
        }
        prompts::FORWARD_ON
    } else {
        return None;
    };
    info!(message = "phone: call forwarding changed", user = %caller.login, dnd = f.dnd, always = ?f.always, busy = ?f.busy, no_answer = ?f.no_answer);
    set(req.state, f.clone());
    let db = Arc::clone(&req.state.db);
    Some(super::feature::announce(
        req,
        caller,
        dialled,
        prompt(say),
        move || {
            db.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_forwarding(&f)
                .is_ok()
        },
    ))
}

/// Keeps `f` in the server's copy.
fn set(state: &State, f: Forwarding) {
    let mut table = state
        .forwarding
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if f.is_off() {
        table.remove(&f.login);
    } else {
        table.insert(f.login.clone(), f);
    }
}
