//! Calls over the trunks: an office phone calling an outside number (the dial plan picks
//! the route and its trunks, the toll-fraud guards have their say), and a provider
//! calling one of the office's numbers (a DID, routed by `[[phone.inbound]]`).
//!
//! A call from outside is known by where it comes from (the trunk's listed addresses, or
//! its provider's); anything else from the WAN is a stranger, challenged like any phone,
//! and never reaches a trunk: only an authenticated office user's call goes out.

use std::sync::{Arc, PoisonError};

use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone};
use officebox_config::dialplan::{
    Attendant, Destination, LocalTime, Member, Outbound, Refusal, RingGroup, Strategy,
};
use officebox_config::model::{Trunk, TrunkIdentity, User};
use officebox_store::{Direction, NewCall, unix_now};
use tracing::{info, warn};

use super::invite::{
    failed_call, from_user, launch, log_failed, new_setup as setup, number_of, overloaded,
    voicemail_for,
};
use super::{Request, State};
use crate::attendant::AttendantSetup;
use crate::call::{self, Callee, Credentials, OutsideLine, Parties, Routed, Router, Setup, Stage};
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
            alert_limit(
                req,
                caller,
                &format!("{limit} outside calls at once"),
                dialled,
            );
            return refuse(403, "Forbidden (too many outside calls at once)");
        };
        held.push(slot);
        if !take_one_of_today(req.config, req.state, caller) {
            warn!(message = "phone: the day's outside calls are used up", caller = %caller.login, per_day = caller.outside.per_day);
            let limit = format!("{} outside calls a day", caller.outside.per_day);
            alert_limit(req, caller, &limit, dialled);
            return refuse(403, "Forbidden (the day's outside calls are used up)");
        }
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
    let parties = from_user(req, caller, "", &number);
    let caller_ext = parties.caller_ext.clone();
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
    let dns = officebox_config::derive::own_resolvers(req.config);
    launch(req, status_rx, async move {
        // Each trunk's provider is looked up now (a domain: RFC 3263); one that cannot be
        // found is passed over like one that failed.
        let mut found = Vec::new();
        for (t, mut line) in lines {
            match trunk::address(&t, &dns).await {
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

/// Mails the administrators that `caller` ran into `limit` (at most hourly per user):
/// the costliest thing a phone system can get wrong is a hijacked phone calling abroad
/// all night.
fn alert_limit(req: &Request, caller: &User, limit: &str, dialled: &str) {
    let who = format!(
        "{} ({})",
        caller.name,
        caller.extension.as_deref().unwrap_or(&caller.login)
    );
    req.state.alerts.raise(
        req.config,
        &format!("outside:{}", caller.login),
        &format!("Outside calls: {who} reached the limit of {limit}"),
        &format!(
            "{who} dialled {dialled} from {} and was refused: the limit is {limit}.\r\n\
             If that was not them, their phone or password may be in someone else's hands:\r\n\
             change the password, and look at the call log on the admin pages.",
            req.source.ip()
        ),
    );
}

/// Counts one outside call of `caller`'s today, unless the day's are used up (then
/// `false`). The count starts from the call log at the first call of the day (the box
/// may have restarted), and goes on in memory.
fn take_one_of_today(config: &Config, state: &State, caller: &User) -> bool {
    let midnight = LocalTime::midnight(config.phone.timezone.as_deref());
    let mut today = state
        .outside_today
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let entry = today.entry(caller.login.clone()).or_insert((i64::MIN, 0));
    if entry.0 != midnight {
        *entry = (midnight, made_since(state, &caller.login, midnight));
    }
    if entry.1 >= caller.outside.per_day {
        return false;
    }
    entry.1 += 1;
    true
}

/// Outside calls `login` made since `since` (Unix seconds) over a trunk, by the call log.
fn made_since(state: &State, login: &str, since: i64) -> u32 {
    let query = officebox_store::CallQuery {
        since: Some(since),
        party: Some(login.to_string()),
        direction: Some(Direction::Out),
        ..Default::default()
    };
    let db = state.db.lock().unwrap_or_else(PoisonError::into_inner);
    match db.call_log(&query) {
        Ok(calls) => {
            let made = calls
                .iter()
                .filter(|c| c.trunk.is_some() && c.caller_login.as_deref() == Some(login))
                .count();
            u32::try_from(made).unwrap_or(u32::MAX)
        }
        Err(error) => {
            warn!(message = "phone: cannot count today's outside calls", %login, %error);
            0
        }
    }
}

/// How `number` is asked for over trunk `t`: at the provider's domain, showing the
/// user's own caller ID, else the route's, else the account's number, else the
/// caller's extension.
fn line(t: &Trunk, number: &str, caller: &User, caller_id: Option<&str>) -> OutsideLine {
    let shown = caller
        .caller_id
        .as_deref()
        .or(caller_id)
        .or(t.username.as_deref())
        .or(caller.extension.as_deref())
        .unwrap_or(&caller.login);
    line_as(t, number, &caller.name, shown)
}

/// Trunk `t`'s line to `number`, showing the caller as `name` at `shown`, in From and
/// P-Asserted-Identity as the trunk's caller ID style says.
fn line_as(t: &Trunk, number: &str, name: &str, shown: &str) -> OutsideLine {
    let domain = trunk::domain(t);
    let shown = shown.to_string();
    let name = name.replace(['"', '\\'], "");
    let caller = format!("\"{name}\" <sip:{shown}@{domain}>");
    let account = t.username.as_deref().unwrap_or(&shown);
    let (from, identity) = match t.identity {
        TrunkIdentity::Pai => (caller.clone(), Some(caller)),
        TrunkIdentity::From => (caller, None),
        TrunkIdentity::Account => (format!("<sip:{account}@{domain}>"), Some(caller)),
    };
    OutsideLine {
        trunk: t.name.clone(),
        uri: format!("sip:{number}@{}", t.server),
        from,
        to: format!("<sip:{number}@{domain}>"),
        identity,
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
        codecs: t.codecs.clone(),
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

/// Where a call from outside ends up, once schedules and the operator are followed.
enum Target<'c> {
    /// A user's phones ring (`ring`), or their voicemail answers at once.
    User {
        user: &'c User,
        ring: bool,
    },
    Group(&'c RingGroup),
    Attendant(&'c Attendant),
    /// A fax machine of the box's.
    Fax(&'c officebox_config::dialplan::FaxLine),
    /// An outside number (call forwarding: over the route the dial plan picks).
    Number(&'c str),
    /// Refused with this answer.
    Refused(u16),
}

/// Follows `destination` (a DID's, else the operator's): a schedule picks by the
/// office's local time now, the operator is its destination.
fn follow<'c>(
    config: &'c Config,
    state: &State,
    destination: Option<&'c Destination>,
) -> Target<'c> {
    let plan = &config.phone.dial_plan;
    let find = |f: &dyn Fn(&User) -> bool| config.users.iter().find(|u| f(u));
    let mut d = destination;
    // The config refuses a schedule leading to a schedule; the bound only makes sure.
    for _ in 0..4 {
        d = match d {
            Some(Destination::Schedule(name)) => {
                let now = LocalTime::now(config.phone.timezone.as_deref());
                let forced = state
                    .day_night
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .forced(name, unix_now());
                plan.schedules
                    .iter()
                    .find(|s| s.name == *name)
                    .map(|s| match forced {
                        Some(open) => s.destination_when(open),
                        None => s.destination(now),
                    })
            }
            Some(Destination::Operator) => plan.operator.as_ref(),
            _ => break,
        };
    }
    let user = |u: Option<&'c User>, ring| match u {
        Some(user) => Target::User { user, ring },
        None => Target::Refused(404),
    };
    match d {
        Some(Destination::Extension(ext)) => user(
            find(&|u| u.extension.as_deref() == Some(ext.as_str()) || u.login == *ext),
            true,
        ),
        Some(Destination::Voicemail(login)) => user(find(&|u| u.login == *login), false),
        Some(Destination::Group(name)) => match plan.ring_groups.iter().find(|g| g.name == *name) {
            Some(g) => Target::Group(g),
            None => Target::Refused(404),
        },
        Some(Destination::Attendant(name)) => {
            match plan.attendants.iter().find(|a| a.name == *name) {
                Some(a) => Target::Attendant(a),
                None => Target::Refused(404),
            }
        }
        Some(Destination::Fax(name)) => match plan.faxes.iter().find(|f| f.name == *name) {
            Some(f) => Target::Fax(f),
            None => Target::Refused(404),
        },
        Some(Destination::Number(n)) => Target::Number(n),
        Some(Destination::Hangup) => Target::Refused(486),
        // The schedules and the operator are followed above (a loop the config refuses).
        Some(Destination::Schedule(_) | Destination::Operator) | None => Target::Refused(404),
    }
}

/// Who calls from outside, as voicemail tells it.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) name: String,
    pub(super) number: String,
    /// `number@provider`, the voicemail email's From.
    pub(super) address: String,
    /// A call from another site's box: it is never put through to a site (no two sites
    /// bounce a call between them).
    pub(super) from_site: bool,
    /// Whether its fax may go over T.38 (the trunk's setting; `On` for a call from
    /// inside).
    pub(super) t38: officebox_config::model::T38Mode,
}

/// What ringing `target` means now: whom leg B calls, who that is (login, and the
/// extension or name shown), and the voicemail behind it.
fn routed(config: &Config, state: &State, caller: &Caller, target: Target) -> Routed {
    let phones_of = |login: &str| {
        state
            .registrar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contacts(login, now_unix())
    };
    let voicemail_of = |user: &User| voicemail_for((config, state), user, caller);
    match target {
        Target::User { user, ring: true } => ring_user(config, state, caller, user, 0),
        Target::User { user, ring: false } => Routed::ring(
            Callee::Phones(Vec::new()),
            user.login.clone(),
            number_of(user),
            Some(voicemail_of(user)),
        ),
        Target::Group(g) => Routed::ring(
            Callee::Group(group_stages(config, state, g, phones_of, &caller.name)),
            String::new(),
            g.name.clone(),
            match follow(config, state, Some(&g.no_answer)) {
                Target::User { user, .. } => Some(voicemail_of(user)),
                _ => None,
            },
        ),
        Target::Attendant(a) => Routed::ring(
            Callee::Attendant(Box::new(AttendantSetup {
                attendant: a.clone(),
                extensions: if a.dial_by_extension {
                    config
                        .users
                        .iter()
                        .filter_map(|u| u.extension.clone())
                        .collect()
                } else {
                    Vec::new()
                },
                data_dir: config.data_dir.clone(),
                fax: config.phone.dial_plan.faxes.first().map(|f| f.name.clone()),
            })),
            String::new(),
            a.name.clone(),
            None,
        ),
        Target::Fax(line) => match super::fax::setup_for(config, state, line) {
            Some(setup) => Routed::ring(
                Callee::Fax(Box::new(crate::fax::FaxSetup {
                    t38: caller.t38,
                    ..setup
                })),
                String::new(),
                line.name.clone(),
                None,
            ),
            None => Routed::Refused(404),
        },
        Target::Number(n) => match forwarded_lines(config, state, n, &caller.name) {
            Some(lines) if !lines.is_empty() => {
                Routed::ring(outside_stage(lines), String::new(), n.to_string(), None)
            }
            _ => Routed::Refused(503),
        },
        Target::Refused(code) => Routed::Refused(code),
    }
}

/// A ring group of one outside number, on its lines.
fn outside_stage(lines: Vec<OutsideLine>) -> Callee {
    Callee::Group(vec![Stage {
        phones: Vec::new(),
        outside: vec![lines],
        ring: OUTSIDE_RING,
    }])
}

/// How far forwarding is followed (alice to bob to carol ...): a loop ends there, ringing
/// the last user's own phones.
const MAX_FORWARDS: u8 = 3;

/// Ringing office user `user` for `caller`: their phones, with their voicemail behind, as
/// their forwarding says. Do-not-disturb: voicemail at once. Forward always: where it
/// leads (another user, followed the same way; a number as an outside call of theirs,
/// with their voicemail behind it); a target gone meanwhile rings them as usual. Busy
/// and no answer go with the call ([`call::Forwards`]).
pub(super) fn ring_user(
    config: &Config,
    state: &State,
    caller: &Caller,
    user: &User,
    depth: u8,
) -> Routed {
    let fw = super::forward::of(state, &user.login);
    let voicemail = Some(voicemail_for((config, state), user, caller));
    let ext = number_of(user);
    if fw.dnd {
        return Routed::ring(
            Callee::Phones(Vec::new()),
            user.login.clone(),
            ext,
            voicemail,
        );
    }
    // A call from a site is never put through to a site (nor, for that, out on a trunk
    // by the number of one): such a forward is passed over.
    let to_site = |to: &str| officebox_config::derive::site_for_extension(config, to).is_some();
    if let Some(to) = fw
        .always
        .as_ref()
        .filter(|t| !(caller.from_site && to_site(t)))
        && depth < MAX_FORWARDS
    {
        let target = config
            .users
            .iter()
            .find(|u| u.extension.as_deref() == Some(to.as_str()) || u.login == *to);
        let forwarded = match target {
            Some(t) => ring_user(config, state, caller, t, depth + 1),
            None => super::site::put_through(config, to, &caller.name, &caller.number)
                .unwrap_or_else(|| outside_for(config, state, user, to, &caller.name)),
        };
        if let Routed::Ring(mut r) = forwarded {
            info!(message = "phone: call forwarded", user = %user.login, to = %to);
            if r.voicemail.is_none() {
                r.voicemail = voicemail;
            }
            return Routed::Ring(r);
        }
    }
    let phones = state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contacts(&user.login, now_unix());
    let forwards = (fw.busy.is_some() || fw.no_answer.is_some()).then(|| call::Forwards {
        by: user.login.clone(),
        busy: fw.busy.clone(),
        no_answer: fw.no_answer.clone(),
    });
    Routed::Ring(Box::new(call::Ring {
        callee: Callee::Phones(phones),
        login: user.login.clone(),
        ext,
        voicemail,
        forwards,
        held: Vec::new(),
        fallback: None,
    }))
}

/// `dialled` called as an outside call of `user`'s for someone else's call (a transfer,
/// call forwarding): their routes, the international and premium guards, their calls at
/// once (the slot goes with the call) and a day; no emergency numbers.
fn outside_for(
    config: &Config,
    state: &State,
    user: &User,
    dialled: &str,
    caller_name: &str,
) -> Routed {
    let plan = &config.phone.dial_plan;
    match plan.outbound(&user.login, dialled) {
        Outbound::Route { .. } => {}
        Outbound::NoRoute => return Routed::Refused(404),
        Outbound::Emergency { .. } | Outbound::Refused(_) => {
            warn!(message = "phone: an outside number refused for someone else's call", by = %user.login, number = %dialled);
            return Routed::Refused(403);
        }
    }
    let limit = user.outside.at_once;
    let slot = (limit > 0)
        .then(|| state.slots.take(&format!("user:{}", user.login), limit))
        .flatten();
    let Some(slot) = slot else {
        warn!(message = "phone: too many outside calls at once", by = %user.login, limit);
        return Routed::Refused(403);
    };
    if !take_one_of_today(config, state, user) {
        warn!(message = "phone: the day's outside calls are used up", by = %user.login);
        return Routed::Refused(403);
    }
    let shown = user.caller_id.as_deref();
    match lines_now(
        config,
        state,
        plan.outbound(&user.login, dialled),
        caller_name,
        shown,
    ) {
        Some(lines) if !lines.is_empty() => Routed::Ring(Box::new(call::Ring {
            callee: outside_stage(lines),
            login: String::new(),
            ext: dialled.to_string(),
            voicemail: None,
            forwards: None,
            held: vec![slot],
            fallback: None,
        })),
        _ => Routed::Refused(503),
    }
}

/// Where an attendant's choice or a transfer leads, for one caller: followed in the
/// config of the call's start, with the phones registered now.
struct ServerRouter {
    config: Arc<Config>,
    state: Arc<State>,
    caller: Caller,
}

/// The router of a call between `parties` (an office user's call: the caller's
/// voicemail address is their own).
pub(super) fn router_for(req: &Request, parties: &Parties) -> Arc<dyn Router> {
    let login = if parties.caller_login.is_empty() {
        &parties.caller_ext
    } else {
        &parties.caller_login
    };
    Arc::new(ServerRouter {
        config: Arc::clone(req.config),
        state: Arc::clone(req.state),
        caller: Caller {
            name: parties.caller_name.clone(),
            number: parties.caller_ext.clone(),
            address: format!("{login}@{}", req.config.network.domain),
            from_site: false,
            t38: officebox_config::model::T38Mode::On,
        },
    })
}

/// The router of a call from `caller` (as it came: a site's call is known as one).
pub(super) fn router_with(req: &Request, caller: Caller) -> Arc<dyn Router> {
    Arc::new(ServerRouter {
        config: Arc::clone(req.config),
        state: Arc::clone(req.state),
        caller,
    })
}

impl Router for ServerRouter {
    fn route(&self, to: &Destination) -> Routed {
        routed(
            &self.config,
            &self.state,
            &self.caller,
            follow(&self.config, &self.state, Some(to)),
        )
    }

    fn transfer(
        &self,
        by: &str,
        source: std::net::IpAddr,
        dialled: &str,
        transferee: &call::Transferee,
    ) -> Routed {
        let (config, state) = (&*self.config, &*self.state);
        let caller = Caller {
            name: transferee.name.clone(),
            number: transferee.number.clone(),
            address: format!("{}@{}", transferee.number, config.network.domain),
            from_site: self.caller.from_site,
            t38: self.caller.t38,
        };
        let Some(user) = config.users.iter().find(|u| u.login == by) else {
            return Routed::Refused(403);
        };
        // The park extension, or a place: the call is parked.
        let places = officebox_config::derive::park_places(config);
        let park = &config.phone.park_extension;
        if !park.is_empty() && (dialled == park || places.iter().any(|p| p == dialled)) {
            let place = (dialled != park).then(|| dialled.to_string());
            if place.as_deref().is_some_and(|p| state.parking.is_taken(p)) {
                return Routed::Refused(486);
            }
            return Routed::ring(
                Callee::Park(Box::new(call::park::ParkSetup {
                    parking: Arc::clone(&state.parking),
                    places,
                    place,
                    parker: number_of(user),
                })),
                user.login.clone(),
                dialled.to_string(),
                None,
            );
        }
        // An extension wins over a route, as when it is dialled.
        if config
            .users
            .iter()
            .any(|u| u.extension.as_deref() == Some(dialled) || u.login == dialled)
        {
            let to = Destination::Extension(dialled.to_string());
            return routed(config, state, &caller, follow(config, state, Some(&to)));
        }
        // Another site's extension: over its line, as when it is dialled (never for a
        // call that came from a site).
        if officebox_config::derive::site_for_extension(config, dialled).is_some() {
            if self.caller.from_site {
                return Routed::Refused(403);
            }
            if let Some(routed) =
                super::site::put_through(config, dialled, &transferee.name, &transferee.number)
            {
                return routed;
            }
        }
        if client_zone(&config.network, source) == ClientZone::Wan
            && !user.outside.from_remote_phones
        {
            return Routed::Refused(403);
        }
        outside_for(config, state, user, dialled, &transferee.name)
    }
}

/// A call from trunk `t`'s provider: to the destination of the number it calls (its DID),
/// else the operator's. A user's phones ring with voicemail behind them; a ring group
/// rings its members, then its no-answer destination's voicemail; an attendant answers.
pub(super) fn from_trunk(req: &Request, t: &Trunk) -> Option<Message> {
    let tag = req.tag.as_str();
    let called = called_number(req.msg, t).unwrap_or_default();
    let from = req.msg.header("from").unwrap_or_default();
    let number = uri_of(from)
        .and_then(uri_user)
        .unwrap_or_else(|| "anonymous".to_string());
    let name = display_name(from).unwrap_or_else(|| number.clone());
    let caller = Caller {
        address: format!("{number}@{}", trunk::domain(t)),
        name: name.clone(),
        number: number.clone(),
        from_site: false,
        t38: t.t38,
    };
    let log_refused = || {
        log_failed(
            req.state,
            NewCall {
                call_id: format!("{}@officebox", call::token()),
                direction: Direction::In,
                trunk: Some(t.name.clone()),
                caller: number.clone(),
                caller_login: None,
                caller_name: name.clone(),
                callee: called.clone(),
                callee_login: None,
                started_at: unix_now(),
            },
        );
    };
    let plan = &req.config.phone.dial_plan;
    let target = follow(req.config, req.state, plan.inbound(&called));
    let ring = match routed(req.config, req.state, &caller, target) {
        Routed::Ring(ring) => *ring,
        Routed::Refused(code) => {
            info!(message = "phone: a call from outside refused", trunk = %t.name, number = %called, code);
            log_refused();
            let reason = match code {
                404 => "Not Found",
                486 => "Busy Here",
                _ => "Temporarily Unavailable",
            };
            return Some(req.msg.response(code, reason, tag));
        }
    };
    let Some(slot) = req
        .state
        .slots
        .take(&format!("trunk:{}", t.name), t.max_calls)
    else {
        log_refused();
        return Some(req.msg.response(486, "Busy Here (the trunk is full)", tag));
    };
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let router = Some(Arc::new(ServerRouter {
        config: Arc::clone(req.config),
        state: Arc::clone(req.state),
        caller: caller.clone(),
    }) as Arc<dyn Router>);
    let call::Ring {
        callee,
        login: callee_login,
        ext: callee_ext,
        voicemail,
        forwards,
        held,
        fallback: _,
    } = ring;
    let parties = Parties {
        caller_login: String::new(),
        caller_ext: number.clone(),
        caller_name: name.clone(),
        callee_login: callee_login.clone(),
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
        callee: callee_ext.clone(),
        callee_login: (!callee_login.is_empty()).then_some(callee_login),
        started_at: unix_now(),
    };
    info!(message = "phone: call from outside", trunk = %t.name, from = %number, did = %called, to = %callee_ext);
    let (setup, status_rx) = setup(req, parties, callee, b_call_id, log);
    let mut setup = Setup {
        held,
        voicemail,
        forwards,
        router,
        ..setup
    };
    setup.held.push(slot);
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// A ring group's stages: all its members together, or (hunt) each member in turn, each
/// for the group's ring time. A member is an extension (its user's phones) or an outside
/// number, called through the dial plan's route for it (as the box: any route, the
/// guards still apply) on its trunks whose provider's address is known.
fn group_stages(
    config: &Config,
    state: &State,
    g: &RingGroup,
    phones_of: impl Fn(&str) -> Vec<crate::registrar::Binding>,
    caller_name: &str,
) -> Vec<Stage> {
    let members: Vec<Stage> = g
        .members
        .iter()
        .map(|m| match m {
            Member::Extension(ext) => Stage {
                phones: config
                    .users
                    .iter()
                    .find(|u| u.extension.as_deref() == Some(ext.as_str()) || u.login == *ext)
                    .map(|u| {
                        phones_of(&u.login)
                            .into_iter()
                            .map(|b| (u.login.clone(), b))
                            .collect()
                    })
                    .unwrap_or_default(),
                outside: Vec::new(),
                ring: g.ring_time,
            },
            Member::Number(n) => Stage {
                phones: Vec::new(),
                outside: forwarded_lines(config, state, n, caller_name)
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .collect(),
                ring: g.ring_time,
            },
        })
        .collect();
    match g.strategy {
        Strategy::All => vec![members.into_iter().fold(
            Stage {
                phones: Vec::new(),
                outside: Vec::new(),
                ring: g.ring_time,
            },
            |mut all, m| {
                all.phones.extend(m.phones);
                all.outside.extend(m.outside);
                all
            },
        )],
        Strategy::Hunt => members,
    }
}

/// The lines an outside number the box calls for the office goes out on (a ring group's
/// member): its route's enabled trunks whose provider's address is known now, in order
/// (one set; none when the dial plan refuses the number).
fn forwarded_lines(
    config: &Config,
    state: &State,
    dialled: &str,
    caller_name: &str,
) -> Option<Vec<OutsideLine>> {
    let decision = config.phone.dial_plan.forward(dialled);
    lines_now(config, state, decision, caller_name, None)
}

/// The lines the dial plan's `decision` goes out on: its route's enabled trunks whose
/// provider's address is known now, in order, showing `caller_name` at `shown`, else
/// the route's caller ID, else the account's number (none when the plan refuses).
fn lines_now(
    config: &Config,
    state: &State,
    decision: Outbound<'_>,
    caller_name: &str,
    shown: Option<&str>,
) -> Option<Vec<OutsideLine>> {
    let (number, trunks, caller_id) = match decision {
        Outbound::Route { route, number } => (
            number,
            route.trunks.iter().map(String::as_str).collect::<Vec<_>>(),
            route.caller_id.clone(),
        ),
        Outbound::Emergency { number, trunks } => (number, trunks, None),
        Outbound::Refused(why) => {
            warn!(message = "phone: an outside number the box calls is refused by the dial plan", why = ?why);
            return None;
        }
        Outbound::NoRoute => {
            warn!("phone: no route for an outside number the box calls");
            return None;
        }
    };
    let lines = trunks
        .iter()
        .filter_map(|name| {
            config
                .phone
                .trunks
                .iter()
                .find(|t| t.name == *name && t.enabled)
        })
        .filter_map(|t| {
            let peer = trunk::address_now(t, &state.providers)?;
            let shown = shown
                .or(caller_id.as_deref())
                .or(t.username.as_deref())
                .unwrap_or("anonymous");
            Some(OutsideLine {
                peer,
                ..line_as(t, &number, caller_name, shown)
            })
        })
        .collect();
    Some(lines)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use officebox_config::model::{TrunkKind, TrunkTransport};

    fn trunk(identity: TrunkIdentity) -> Trunk {
        Trunk {
            name: "main".into(),
            kind: TrunkKind::Register,
            enabled: true,
            server: "sip.provider.example".into(),
            username: Some("4930123456".into()),
            password: Some("secret".into()),
            auth_username: None,
            outbound_proxy: None,
            transport: TrunkTransport::Udp,
            expires: std::time::Duration::from_secs(3600),
            addresses: Vec::new(),
            max_calls: 0,
            codecs: vec!["PCMA".into()],
            identity,
            ca_file: None,
            t38: officebox_config::model::T38Mode::On,
        }
    }

    #[test]
    fn the_caller_id_goes_where_the_trunks_style_says() {
        let caller = "\"Alice\" <sip:4930123458@sip.provider.example>";
        let pai = line_as(&trunk(TrunkIdentity::Pai), "5551234", "Alice", "4930123458");
        assert_eq!(
            (pai.from.as_str(), pai.identity.as_deref()),
            (caller, Some(caller))
        );
        let from = line_as(
            &trunk(TrunkIdentity::From),
            "5551234",
            "Alice",
            "4930123458",
        );
        assert_eq!((from.from.as_str(), from.identity), (caller, None));
        let account = line_as(
            &trunk(TrunkIdentity::Account),
            "5551234",
            "Al\"ice",
            "4930123458",
        );
        assert_eq!(account.from, "<sip:4930123456@sip.provider.example>");
        assert_eq!(
            account.identity.as_deref(),
            Some(caller),
            "a quote in a name is dropped"
        );
        assert_eq!(account.uri, "sip:5551234@sip.provider.example");
        assert_eq!(account.codecs, ["PCMA"]);
    }
}
