//! INVITE outside any call: a new call. The caller is authenticated, the callee looked
//! up, and a call task ([`crate::call`]) started with both legs' Call-IDs routed to it.
//! Also the table of live calls.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::auth::authenticate;
use super::{REPLAY_FOR, Request};
use crate::call::{self, Callee, Incoming, Parties, Setup, Status, VoicemailSetup, Wire};
use crate::menu::MenuSetup;
use crate::now_unix;
use crate::sip::{Message, StartLine, uri_user};
use crate::voicemail;

use officebox_config::model::User;
use officebox_store::{CallEvent, Direction, Disposition, NewCall, unix_now};

/// Calls ringing at once beyond which new ones get 503 (the box is overloaded: no small
/// office has this many phones ringing).
pub(super) const MAX_RINGING: usize = 200;

/// Calls by Call-ID (both legs), and their status for `officebox phone calls`.
#[derive(Default)]
pub(super) struct Calls {
    /// Each call's inbox and links, by the Call-ID of either leg.
    pub(super) routes: HashMap<String, Route>,
    /// Where each call is, by a number of its own.
    pub(super) status: HashMap<u64, watch::Receiver<Status>>,
    next_id: u64,
    /// Calls ringing an office user's phones now (for pickup): the call's number, the
    /// user, since when, and the call's links.
    pub(super) ringing_users: Vec<(u64, String, Instant, mpsc::Sender<call::Link>)>,
    /// Calls that ended in the last 32 s, by Call-ID: a retransmitted BYE (our 200 was
    /// lost) is answered 200 again, not 481 (RFC 3261 section 17.2.2).
    pub(super) ended: HashMap<String, Instant>,
    /// The same Call-IDs oldest first, so forgetting them costs nothing per call (at
    /// thousands of calls a second, scanning the whole map each time did).
    ended_order: VecDeque<(Instant, String)>,
}

/// Where a call's messages go: its inbox (SIP), and its links (other calls).
#[derive(Clone)]
pub(super) struct Route {
    pub(super) sip: mpsc::Sender<Incoming>,
    link: mpsc::Sender<call::Link>,
}

impl Calls {
    /// Remembers that the call with these Call-IDs ended now; forgets those older than
    /// `REPLAY_FOR`.
    fn ended(&mut self, call_ids: Vec<String>) {
        let now = Instant::now();
        while let Some((at, _)) = self.ended_order.front()
            && now.duration_since(*at) >= REPLAY_FOR
        {
            if let Some((at, id)) = self.ended_order.pop_front()
                && self.ended.get(&id) == Some(&at)
            {
                self.ended.remove(&id);
            }
        }
        for id in call_ids.into_iter().filter(|id| !id.is_empty()) {
            self.ended.insert(id.clone(), now);
            self.ended_order.push_back((now, id));
        }
    }
}

/// A new call: the caller proves who they are (407 challenge), the callee must exist and
/// have a phone registered; then a call task takes over (`None`: it answers).
pub(super) fn invite(req: &Request) -> Option<Message> {
    // A provider's call to one of the office's numbers: known by where it comes from.
    if let Some(trunk) = crate::trunk::trunk_of(req.config, &req.state.providers, req.source.ip()) {
        return super::outside::from_trunk(req, trunk);
    }
    // Another site's box, through its tunnel.
    if let Some(site) = super::site::site_of(req.config, req.source.ip()) {
        return super::site::from_site(req, site);
    }
    // The box's own fax machine (a fax from email), calling as the user who sent it.
    let dialer = req.state.fax_dialers.login_of(req.source);
    let internal = dialer.and_then(|login| req.config.users.iter().find(|u| u.login == login));
    let caller = match internal {
        Some(u) => u,
        None => match authenticate(req, true) {
            Ok(u) => u,
            Err(challenge) => return Some(challenge),
        },
    };
    let StartLine::Request { uri, .. } = &req.msg.start else {
        return None;
    };
    let Some(dialled) = uri_user(uri) else {
        log_failed(req.state, failed_call(caller, "", Direction::Internal));
        return Some(req.msg.response(404, "Not Found", req.tag.as_str()));
    };
    if dialled == req.config.phone.night_code {
        return super::feature::night_code(req, caller);
    }
    if let Some(answer) = super::forward::feature(req, caller, &dialled) {
        return answer;
    }
    // Paging (*81) and intercom (*80 + extension) before pickup (*8 + extension), whose
    // code begins theirs.
    if dialled == officebox_config::derive::PAGE_CODE {
        return page(req, caller, "");
    }
    // A group: the code, `*`, its number (digits alone would be a pickup of `*8` + an
    // extension starting with 1).
    if let Some(group) = dialled
        .strip_prefix(officebox_config::derive::PAGE_CODE)
        .and_then(|g| g.strip_prefix('*'))
        .filter(|g| !g.is_empty())
    {
        return page(req, caller, group);
    }
    if let Some(ext) = dialled.strip_prefix(officebox_config::derive::INTERCOM_CODE)
        && !ext.is_empty()
    {
        return intercom(req, caller, ext);
    }
    if let Some(answer) = super::park::dialled(req, caller, &dialled) {
        return answer;
    }
    if let Some(answer) = super::park::conference(req, caller, &dialled) {
        return answer;
    }
    if let Some(answer) = super::fax::dialled(req, caller, &dialled) {
        return answer;
    }
    // The voicemail extension: the caller's own mailbox, through the menu.
    let menu_call = dialled == req.config.phone.voicemail_extension;
    let callee = if menu_call {
        Some(caller)
    } else {
        req.config
            .users
            .iter()
            .find(|u| u.extension.as_deref() == Some(dialled.as_str()) || u.login == dialled)
    };
    // An extension always wins over a route; anything else may be an outside number.
    let Some(callee) = callee else {
        if let Some(site) = officebox_config::derive::site_for_extension(req.config, &dialled) {
            return super::site::call_site(req, caller, site, &dialled);
        }
        return super::outside::call_out(req, caller, &dialled);
    };
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    // The callee's phones, as their forwarding says (the menu: the box answers).
    let caller_number = caller.extension.as_deref().unwrap_or(&caller.login);
    let ring = if menu_call {
        call::Ring {
            callee: Callee::Phones(Vec::new()),
            login: callee.login.clone(),
            ext: number_of(callee),
            voicemail: None,
            forwards: None,
            held: Vec::new(),
            fallback: None,
        }
    } else {
        let who = super::outside::Caller {
            name: caller.name.clone(),
            number: caller_number.to_string(),
            address: format!("{}@{}", caller.login, req.config.network.domain),
            from_site: false,
            t38: officebox_config::model::T38Mode::On,
        };
        match super::outside::ring_user(req.config, req.state, &who, callee, 0) {
            call::Routed::Ring(ring) => *ring,
            call::Routed::Refused(code) => {
                log_failed(
                    req.state,
                    failed_call(caller, &dialled, Direction::Internal),
                );
                return Some(req.msg.response(code, "Forbidden", req.tag.as_str()));
            }
        }
    };
    let parties = from_user(req, caller, &ring.login, &ring.ext);
    let shown = if menu_call {
        req.config.phone.voicemail_extension.clone()
    } else {
        number_of(callee)
    };
    let log = internal_call(caller, &parties, &shown, Some(&callee.login));
    let b_call_id = log.call_id.clone();
    let (setup, status_rx) = new_setup(req, parties, ring.callee, b_call_id, log);
    let setup = Setup {
        menu: menu_call.then(|| MenuSetup {
            data_dir: req.config.data_dir.clone(),
            db: Arc::clone(&req.state.db),
            login: caller.login.clone(),
            pin_hash: caller.voicemail_pin_hash.clone(),
            attendants: if caller.admin {
                req.config
                    .phone
                    .dial_plan
                    .attendants
                    .iter()
                    .map(|a| a.name.clone())
                    .collect()
            } else {
                Vec::new()
            },
        }),
        voicemail: ring.voicemail,
        forwards: ring.forwards,
        held: ring.held,
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// A page by `caller`: every other office user's registered phones (not those in
/// do-not-disturb), or with `group` (the digits after `*81*`) those of the extensions in
/// that ring group (the first on the Phone Routing page is 1), each asked to answer by
/// itself; no such group: 404; no phone: 480.
fn page(req: &Request, caller: &User, group: &str) -> Option<Message> {
    let dialled = if group.is_empty() {
        officebox_config::derive::PAGE_CODE.to_string()
    } else {
        format!("{}*{group}", officebox_config::derive::PAGE_CODE)
    };
    let code = dialled.as_str();
    let members: Option<Vec<&str>> = if group.is_empty() {
        None
    } else {
        let found = group
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| req.config.phone.dial_plan.ring_groups.get(i));
        let Some(found) = found else {
            log_failed(req.state, failed_call(caller, code, Direction::Internal));
            return Some(
                req.msg
                    .response(404, "Not Found (no such group)", req.tag.as_str()),
            );
        };
        Some(
            found
                .members
                .iter()
                .filter_map(|m| match m {
                    officebox_config::dialplan::Member::Extension(e) => Some(e.as_str()),
                    officebox_config::dialplan::Member::Number(_) => None,
                })
                .collect(),
        )
    };
    let phones: Vec<(String, crate::registrar::Binding)> = {
        let registrar = req
            .state
            .registrar
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        req.config
            .users
            .iter()
            .filter(|u| u.login != caller.login && !super::forward::of(req.state, &u.login).dnd)
            .filter(|u| {
                members
                    .as_ref()
                    .is_none_or(|m| u.extension.as_deref().is_some_and(|e| m.contains(&e)))
            })
            .flat_map(|u| {
                registrar
                    .contacts(&u.login, now_unix())
                    .into_iter()
                    .map(|b| (u.login.clone(), b))
            })
            .collect()
    };
    if phones.is_empty() {
        log_failed(req.state, failed_call(caller, code, Direction::Internal));
        return Some(req.msg.response(
            480,
            "Temporarily Unavailable (no phone to page)",
            req.tag.as_str(),
        ));
    }
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let parties = from_user(req, caller, "", code);
    let log = internal_call(caller, &parties, code, None);
    let b_call_id = log.call_id.clone();
    let (setup, status_rx) = new_setup(req, parties, Callee::Page(phones), b_call_id, log);
    let setup = Setup {
        auto_answer: true,
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// An intercom call from `caller` to extension `ext`: its user's phones, each asked to
/// answer by itself; nobody else's (no forwarding, no voicemail), and not through
/// do-not-disturb (486).
fn intercom(req: &Request, caller: &User, ext: &str) -> Option<Message> {
    let callee = req
        .config
        .users
        .iter()
        .find(|u| u.extension.as_deref() == Some(ext) && u.login != caller.login);
    let Some(callee) = callee else {
        log_failed(req.state, failed_call(caller, ext, Direction::Internal));
        return Some(req.msg.response(404, "Not Found", req.tag.as_str()));
    };
    if super::forward::of(req.state, &callee.login).dnd {
        log_failed(req.state, failed_call(caller, ext, Direction::Internal));
        return Some(
            req.msg
                .response(486, "Busy Here (do not disturb)", req.tag.as_str()),
        );
    }
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let phones = req
        .state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contacts(&callee.login, now_unix());
    let parties = from_user(req, caller, &callee.login, ext);
    let log = internal_call(caller, &parties, ext, Some(&callee.login));
    let b_call_id = log.call_id.clone();
    let (setup, status_rx) = new_setup(req, parties, Callee::Phones(phones), b_call_id, log);
    let setup = Setup {
        auto_answer: true,
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// Starts the call task for the INVITE of `req`, once `setup` is ready (an outside call
/// looks up its trunks first): both legs' Call-IDs are routed to it, and it is listed
/// among the live calls until it ends. `None` from `setup`: the caller was answered.
pub(super) fn launch(
    req: &Request,
    status_rx: watch::Receiver<Status>,
    setup: impl Future<Output = Option<Setup>> + Send + 'static,
) {
    let incoming = Incoming {
        msg: req.msg.clone(),
        source: req.source,
        transport: req.transport,
    };
    let a_call_id = req.msg.call_id().to_string();
    let (tx, rx) = mpsc::channel(64);
    let (link, links) = mpsc::channel(8);
    let route = Route { sip: tx, link };
    let calls = Arc::clone(&req.state.calls);
    // Routed now (before any await), so a retransmitted INVITE finds the call.
    let id = {
        let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.routes.insert(a_call_id.clone(), route.clone());
        calls.next_id += 1;
        let id = calls.next_id;
        calls.status.insert(id, status_rx);
        id
    };
    tokio::spawn(async move {
        let inbox = Arc::new(CallInbox {
            calls: Arc::clone(&calls),
            id,
            route,
            ids: std::sync::Mutex::new(vec![a_call_id]),
        });
        if let Some(mut setup) = setup.await {
            call::Inbox::route(&*inbox, &setup.b_call_id);
            setup.inbox = Some(Arc::clone(&inbox) as Arc<dyn call::Inbox>);
            setup.links = Some(links);
            call::run(setup, incoming, rx).await;
        }
        let ids = std::mem::take(&mut *inbox.ids.lock().unwrap_or_else(PoisonError::into_inner));
        let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
        for id in &ids {
            calls.routes.remove(id);
        }
        calls.status.remove(&id);
        calls.ringing_users.retain(|(call, ..)| *call != id);
        calls.ended(ids);
    });
}

/// One call's entry in the routes by Call-ID: every Call-ID it is known by (both legs',
/// and those of legs it starts later), taken out of the routes when it ends.
struct CallInbox {
    calls: Arc<std::sync::Mutex<Calls>>,
    /// The call's number in the list of calls.
    id: u64,
    route: Route,
    ids: std::sync::Mutex<Vec<String>>,
}

impl call::Inbox for CallInbox {
    fn route(&self, call_id: &str) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .routes
            .insert(call_id.to_string(), self.route.clone());
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call_id.to_string());
    }

    fn find(&self, call_id: &str) -> Option<mpsc::Sender<call::Link>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .routes
            .get(call_id)
            .map(|r| r.link.clone())
    }

    fn links(&self) -> mpsc::Sender<call::Link> {
        self.route.link.clone()
    }

    fn others(&self) -> Vec<mpsc::Sender<call::Link>> {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let mut others: Vec<mpsc::Sender<call::Link>> = Vec::new();
        for r in calls.routes.values() {
            if !r.link.same_channel(&self.route.link)
                && !others.iter().any(|o| o.same_channel(&r.link))
            {
                others.push(r.link.clone());
            }
        }
        others
    }

    fn ringing(&self, login: Option<&str>) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let listed = calls.ringing_users.iter().position(|(c, ..)| *c == self.id);
        match (login, listed) {
            (Some(l), None) => {
                calls.ringing_users.push((
                    self.id,
                    l.to_string(),
                    Instant::now(),
                    self.route.link.clone(),
                ));
            }
            (None, Some(i)) => {
                calls.ringing_users.swap_remove(i);
            }
            _ => {}
        }
    }
}

/// Where the music on hold comes from (`None`: off).
fn music_source(config: &officebox_config::Config) -> Option<Arc<crate::music::Source>> {
    use officebox_config::model::MusicOnHold;
    let file = match &config.phone.music_on_hold {
        MusicOnHold::Off => return None,
        MusicOnHold::BuiltIn => None,
        MusicOnHold::File(f) => Some(f.clone()),
    };
    Some(Arc::new(crate::music::Source {
        data_dir: config.data_dir.clone(),
        file,
    }))
}

/// Overload: more calls setting up at once than a small office has phones means the box
/// is behind. New calls are turned away at once (cheap, 503) so the ones under way
/// finish, instead of every call timing out in a storm of retransmissions.
pub(super) fn overloaded(req: &Request) -> Option<Message> {
    if req.state.ringing.load(std::sync::atomic::Ordering::Relaxed) < MAX_RINGING {
        return None;
    }
    let mut busy = req
        .msg
        .response(503, "Service Unavailable", req.tag.as_str());
    busy.push("Retry-After", "5");
    Some(busy)
}

/// Where a message for `callee` is left, what its email says of the caller, and
/// whether a fax machine calling it may switch to T.38 (the caller's trunk says).
pub(super) fn voicemail_for(
    (config, state): (&officebox_config::Config, &super::State),
    callee: &User,
    caller: &super::outside::Caller,
) -> VoicemailSetup {
    let domain = &config.network.domain;
    VoicemailSetup {
        data_dir: config.data_dir.clone(),
        db: Arc::clone(&state.db),
        envelope: voicemail::Envelope {
            kind: voicemail::Kind::Voicemail,
            caller_name: caller.name.clone(),
            caller_ext: caller.number.clone(),
            caller_address: caller.address.clone(),
            callee_login: callee.login.clone(),
            callee_name: callee.name.clone(),
            callee_address: format!("{}@{domain}", callee.login),
            host: format!("{}.{domain}", config.network.hostname),
        },
        max: config.phone.max_message_length,
        targets: crate::mailbox::Targets::of(config, &callee.login),
        t38: caller.t38,
    }
}

/// A call that never rang (to an extension nobody has, say): in the call log as failed.
pub(super) fn log_failed(state: &super::State, call: NewCall) {
    let (call_id, at) = (call.call_id.clone(), call.started_at);
    let _ = state.call_log.send(CallEvent::Start(call));
    let _ = state.call_log.send(CallEvent::Ended {
        call_id,
        at,
        disposition: Disposition::Failed,
    });
}

/// The call log's row for `caller`'s call to `dialled` that went nowhere.
pub(super) fn failed_call(caller: &User, dialled: &str, direction: Direction) -> NewCall {
    NewCall {
        call_id: format!("{}@officebox", call::token()),
        direction,
        trunk: None,
        caller: number_of(caller),
        caller_login: Some(caller.login.clone()),
        caller_name: caller.name.clone(),
        callee: dialled.to_string(),
        callee_login: None,
        started_at: unix_now(),
    }
}

/// The call log's row of `caller`'s call to `callee` inside the office (whose login is
/// `callee_login`, if a user's), under a new Call-ID (leg B's).
pub(super) fn internal_call(
    caller: &User,
    parties: &Parties,
    callee: &str,
    callee_login: Option<&str>,
) -> NewCall {
    NewCall {
        call_id: format!("{}@officebox", call::token()),
        direction: Direction::Internal,
        trunk: None,
        caller: parties.caller_ext.clone(),
        caller_login: Some(caller.login.clone()),
        caller_name: caller.name.clone(),
        callee: callee.to_string(),
        callee_login: callee_login.map(str::to_string),
        started_at: unix_now(),
    }
}

/// What an office user is known by in calls: their extension, else their login.
pub(super) fn number_of(u: &User) -> String {
    u.extension.clone().unwrap_or_else(|| u.login.clone())
}

/// The parties of a call office user `caller` makes to `callee_ext` (whose login is
/// `callee_login`, empty for no user).
pub(super) fn from_user(
    req: &Request,
    caller: &User,
    callee_login: &str,
    callee_ext: &str,
) -> Parties {
    Parties {
        caller_login: caller.login.clone(),
        caller_ext: number_of(caller),
        caller_name: caller.name.clone(),
        callee_login: callee_login.to_string(),
        callee_ext: callee_ext.to_string(),
        domain: req.config.network.domain.clone(),
    }
}

/// What every call starts from: the parties, whom leg B calls, leg B's Call-ID, its row
/// in the call log, and its entry in the list of live calls (no voicemail, no menu).
pub(super) fn new_setup(
    req: &Request,
    parties: Parties,
    callee: Callee,
    b_call_id: String,
    log: NewCall,
) -> (Setup, watch::Receiver<Status>) {
    let router = super::outside::router_for(req, &parties);
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
        nonces: Arc::clone(&req.state.nonces),
        no_answer: req.config.phone.no_answer_timeout,
        b_call_id,
        status: status_tx,
        ringing: call::Ringing::start(&req.state.ringing),
        log,
        log_events: req.state.call_log.clone(),
        menu: None,
        voicemail: None,
        forwards: None,
        fallback: None,
        router: Some(router),
        inbox: None,
        links: None,
        music: music_source(req.config),
        auto_answer: false,
        rooms: Some(Arc::clone(&req.state.rooms)),
        record: (!req.config.phone.record_code.is_empty()).then(|| call::RecordSetup {
            code: req.config.phone.record_code.clone(),
            data_dir: req.config.data_dir.clone(),
            db: Arc::clone(&req.state.db),
            host: format!(
                "{}.{}",
                req.config.network.hostname, req.config.network.domain
            ),
        }),
    };
    (setup, status_rx)
}
