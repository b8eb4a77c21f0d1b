//! Calls over the trunks: an office phone calling an outside number (the dial plan picks
//! the route and its trunks, the toll-fraud guards have their say), and a provider
//! calling one of the office's numbers (a DID, routed by `[[phone.inbound]]`).
//!
//! A call from outside is known by where it comes from (the trunk's listed addresses, or
//! its provider's); anything else from the WAN is a stranger, challenged like any phone,
//! and never reaches a trunk: only an authenticated office user's call goes out.

use std::sync::{Arc, PoisonError};

use officebox_config::derive::{ClientZone, client_zone};
use officebox_config::dialplan::{Destination, Outbound, Refusal};
use officebox_config::model::{Trunk, User};
use officebox_store::{Direction, NewCall, unix_now};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Request;
use super::invite::{failed_call, launch, log_failed, overloaded, voicemail_for};
use crate::call::{self, Callee, Credentials, OutsideLine, Parties, Setup, Status, Wire};
use crate::sip::{Message, StartLine, display_name, uri_of, uri_user};
use crate::{now_unix, trunk};

/// How long an outside call may ring before the box gives up (RFC 3261's Timer C is
/// over three minutes; the called party's own voicemail usually answers well before).
const OUTSIDE_RING: std::time::Duration = std::time::Duration::from_secs(180);

/// An office user's call to `dialled`, which is no extension: the dial plan decides
/// (emergency numbers go out whoever dials them), the user's limits are checked, and
/// the call goes out on the route's trunks in order.
pub(super) fn call_out(req: &Request, caller: &User, dialled: &str) -> Option<Message> {
    let tag = req.tag.as_str();
    let plan = &req.config.phone.dial_plan;
    let refuse = |code: u16, reason: &str| {
        log_failed(req.state, failed_call(caller, dialled, Direction::Out));
        Some(req.msg.response(code, reason, tag))
    };
    let (number, trunks, caller_id, emergency) = match plan.outbound(&caller.login, dialled) {
        Outbound::Emergency { number, trunks } => (number, trunks, None, true),
        Outbound::Route { route, number } => (
            number,
            route.trunks.iter().map(String::as_str).collect(),
            route.caller_id.clone(),
            false,
        ),
        Outbound::Refused(why) => {
            warn!(message = "phone: outside call refused", caller = %caller.login, number = %dialled, why = ?why);
            let reason = match why {
                Refusal::NotAllowed => "Forbidden (no route for this user)",
                Refusal::International => "Forbidden (international calls are not allowed)",
                Refusal::Premium => "Forbidden (premium-rate calls are not allowed)",
            };
            return refuse(403, reason);
        }
        Outbound::NoRoute => {
            // No such extension, and no route takes it.
            log_failed(req.state, failed_call(caller, dialled, Direction::Internal));
            return Some(req.msg.response(404, "Not Found", tag));
        }
    };
    let mut held = Vec::new();
    // Toll-fraud guards (not for an emergency call).
    if !emergency {
        if client_zone(&req.config.network, req.source.ip()) == ClientZone::Wan
            && !caller.outside.from_remote_phones
        {
            warn!(message = "phone: outside call from a remote phone refused", caller = %caller.login, source = %req.source);
            return refuse(403, "Forbidden (no outside calls from remote phones)");
        }
        // 0: no outside calls at all (the slots' 0 would mean no limit).
        let limit = caller.outside.at_once;
        let slot = (limit > 0)
            .then(|| {
                req.state
                    .slots
                    .take(&format!("user:{}", caller.login), limit)
            })
            .flatten();
        let Some(slot) = slot else {
            warn!(message = "phone: too many outside calls at once", caller = %caller.login, limit);
            return refuse(403, "Forbidden (too many outside calls at once)");
        };
        held.push(slot);
    }
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let lines: Vec<(Trunk, OutsideLine)> = trunks
        .iter()
        .filter_map(|name| {
            req.config
                .phone
                .trunks
                .iter()
                .find(|t| t.name == *name && t.enabled)
        })
        .map(|t| (t.clone(), line(t, &number, caller, caller_id.as_deref())))
        .collect();
    let Some((first, _)) = lines.first() else {
        return refuse(503, "Service Unavailable (no trunk is enabled)");
    };
    let caller_ext = caller
        .extension
        .clone()
        .unwrap_or_else(|| caller.login.clone());
    let parties = Parties {
        caller_login: caller.login.clone(),
        caller_ext: caller_ext.clone(),
        caller_name: caller.name.clone(),
        callee_login: String::new(),
        callee_ext: number.clone(),
        domain: req.config.network.domain.clone(),
    };
    let b_call_id = format!("{}@officebox", call::token());
    let log = NewCall {
        call_id: b_call_id.clone(),
        direction: Direction::Out,
        trunk: Some(first.name.clone()),
        caller: caller_ext,
        caller_login: Some(caller.login.clone()),
        caller_name: caller.name.clone(),
        callee: number,
        callee_login: None,
        started_at: unix_now(),
    };
    let (setup, status_rx) = setup(req, parties, Callee::Outside(Vec::new()), b_call_id, log);
    let mut setup = Setup {
        held,
        no_answer: OUTSIDE_RING,
        ..setup
    };
    launch(req, status_rx, async move {
        // Each trunk's provider is looked up now (a host name); one that cannot be found
        // is passed over like one that failed.
        let mut found = Vec::new();
        for (t, mut line) in lines {
            match trunk::address(&t).await {
                Ok(addr) => {
                    line.peer = addr;
                    found.push(line);
                }
                Err(why) => {
                    warn!(message = "phone: trunk unreachable", trunk = %t.name, why = %why)
                }
            }
        }
        setup.callee = Callee::Outside(found);
        Some(setup)
    });
    None
}

/// How `number` is asked for over trunk `t`: at the provider's domain, from the route's
/// caller ID, else the account's number, else the caller's extension.
fn line(t: &Trunk, number: &str, caller: &User, caller_id: Option<&str>) -> OutsideLine {
    let domain = trunk::domain(t);
    let shown = caller_id
        .or(t.username.as_deref())
        .or(caller.extension.as_deref())
        .unwrap_or(&caller.login)
        .to_string();
    let name = caller.name.replace(['"', '\\'], "");
    OutsideLine {
        trunk: t.name.clone(),
        uri: format!("sip:{number}@{}", t.server),
        from: format!("\"{name}\" <sip:{shown}@{domain}>"),
        to: format!("<sip:{number}@{domain}>"),
        identity: Some(format!("\"{name}\" <sip:{shown}@{domain}>")),
        contact_user: t.username.clone().unwrap_or_else(|| shown.clone()),
        // Filled in once the provider is looked up.
        peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        transport: trunk::transport(t),
        credentials: t.password.as_ref().map(|password| Credentials {
            username: t
                .auth_username
                .clone()
                .or_else(|| t.username.clone())
                .unwrap_or_default(),
            password: password.clone(),
        }),
        max_calls: t.max_calls,
    }
}

/// The number a provider's INVITE calls: the Request-URI's user, unless that is the
/// trunk's own account (a registration trunk is reached at its contact), when the number
/// dialled is in To.
fn called_number(msg: &Message, t: &Trunk) -> Option<String> {
    let StartLine::Request { uri, .. } = &msg.start else {
        return None;
    };
    let in_uri = uri_user(uri);
    let in_to = msg.header("to").and_then(uri_of).and_then(uri_user);
    match in_uri {
        Some(u) if Some(u.as_str()) != t.username.as_deref() => Some(u),
        other => in_to.or(other),
    }
}

/// A call from trunk `t`'s provider: to the destination of the number it calls (its DID),
/// else the operator's; the extension's phones ring, with voicemail behind them.
pub(super) fn from_trunk(req: &Request, t: &Trunk) -> Option<Message> {
    let tag = req.tag.as_str();
    let called = called_number(req.msg, t).unwrap_or_default();
    let from = req.msg.header("from").unwrap_or_default();
    let number = uri_of(from)
        .and_then(uri_user)
        .unwrap_or_else(|| "anonymous".to_string());
    let name = display_name(from).unwrap_or_else(|| number.clone());
    let plan = &req.config.phone.dial_plan;
    let mut destination = plan.inbound(&called);
    if destination == Some(&Destination::Operator) {
        destination = plan.operator.as_ref();
    }
    let log_refused = |callee: &str| {
        log_failed(
            req.state,
            NewCall {
                call_id: format!("{}@officebox", call::token()),
                direction: Direction::In,
                trunk: Some(t.name.clone()),
                caller: number.clone(),
                caller_login: None,
                caller_name: name.clone(),
                callee: callee.to_string(),
                callee_login: None,
                started_at: unix_now(),
            },
        );
    };
    let find = |f: &dyn Fn(&User) -> bool| req.config.users.iter().find(|u| f(u));
    // The user whose phones ring (and whether they ring: voicemail straight away).
    let (callee, ring) = match destination {
        Some(Destination::Extension(ext)) => (
            find(&|u| u.extension.as_deref() == Some(ext.as_str()) || u.login == *ext),
            true,
        ),
        Some(Destination::Voicemail(login)) => (find(&|u| u.login == *login), false),
        Some(Destination::Hangup) => {
            log_refused(&called);
            return Some(req.msg.response(486, "Busy Here", tag));
        }
        Some(other) => {
            warn!(message = "phone: this destination does not take calls from outside yet", did = %called, destination = %other);
            log_refused(&called);
            return Some(req.msg.response(480, "Temporarily Unavailable", tag));
        }
        None => (None, true),
    };
    let Some(callee) = callee else {
        info!(message = "phone: a call from outside to a number the office does not have", trunk = %t.name, number = %called);
        log_refused(&called);
        return Some(req.msg.response(404, "Not Found", tag));
    };
    let Some(slot) = req
        .state
        .slots
        .take(&format!("trunk:{}", t.name), t.max_calls)
    else {
        log_refused(&called);
        return Some(req.msg.response(486, "Busy Here (the trunk is full)", tag));
    };
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let bindings = if ring {
        req.state
            .registrar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contacts(&callee.login, now_unix())
    } else {
        Vec::new()
    };
    let callee_ext = callee
        .extension
        .clone()
        .unwrap_or_else(|| callee.login.clone());
    let parties = Parties {
        caller_login: String::new(),
        caller_ext: number.clone(),
        caller_name: name.clone(),
        callee_login: callee.login.clone(),
        callee_ext: callee_ext.clone(),
        domain: req.config.network.domain.clone(),
    };
    let b_call_id = format!("{}@officebox", call::token());
    let log = NewCall {
        call_id: b_call_id.clone(),
        direction: Direction::In,
        trunk: Some(t.name.clone()),
        caller: number.clone(),
        caller_login: None,
        caller_name: name.clone(),
        callee: callee_ext,
        callee_login: Some(callee.login.clone()),
        started_at: unix_now(),
    };
    info!(message = "phone: call from outside", trunk = %t.name, from = %number, did = %called, to = %callee.login);
    let (setup, status_rx) = setup(req, parties, Callee::Phones(bindings), b_call_id, log);
    let setup = Setup {
        held: vec![slot],
        voicemail: Some(voicemail_for(
            req,
            callee,
            &name,
            &number,
            &format!("{number}@{}", trunk::domain(t)),
        )),
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// What every call over a trunk starts from: the parties, leg B's Call-ID, its row in
/// the call log, and its entry in the list of live calls.
fn setup(
    req: &Request,
    parties: Parties,
    callee: Callee,
    b_call_id: String,
    log: NewCall,
) -> (Setup, watch::Receiver<Status>) {
    let (status_tx, status_rx) = watch::channel(Status {
        caller: parties.caller_ext.clone(),
        callee: parties.callee_ext.clone(),
        state: "ringing",
        started_at: now_unix(),
        answered_at: None,
    });
    let setup = Setup {
        wire: Arc::clone(&req.state.wire) as Arc<dyn Wire>,
        ports: Arc::clone(&req.state.ports),
        parties,
        callee,
        slots: Arc::clone(&req.state.slots),
        held: Vec::new(),
        no_answer: req.config.phone.no_answer_timeout,
        b_call_id,
        status: status_tx,
        ringing: call::Ringing::start(&req.state.ringing),
        log,
        log_events: req.state.call_log.clone(),
        menu: None,
        voicemail: None,
    };
    (setup, status_rx)
}
