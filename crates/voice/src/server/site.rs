//! Calls between the company's sites (`[[vpn.sites]]`): an office user dialling one of
//! another site's extensions is put through to that site's box over the WireGuard
//! tunnel, and a call from a site's box rings one of this office's users.
//!
//! The tunnel is the authentication: the other box is known by its LAN address, which
//! only its tunnel can carry here (WireGuard drops a packet whose source its peer may
//! not use, and the firewall drops one with a site's address arriving on the WAN: the
//! reverse-path check, as the route to it is the tunnel). So a site's INVITE is not
//! challenged, and its caller ID (the caller's extension and name, in From) is shown
//! as it comes. A call from a site reaches only this office's users (and where they
//! forward their calls themselves): never another site or a trunk, so no two sites can
//! bounce a call between them, and nobody can call out on this office's lines through
//! another's box. A site that does not answer (its box or its tunnel down: 5 s of
//! silence, or a 408 or 5xx) sends the call to its `fallback`.

use officebox_config::model::{Site, User};
use officebox_store::{Direction, NewCall, unix_now};
use tracing::info;

use super::Request;
use super::invite::{from_user, launch, log_failed, new_setup, overloaded};
use super::outside::{Caller, ring_user};
use crate::call::{self, Callee, OutsideLine, Parties, Routed, Setup};
use crate::sip::{Message, StartLine, Transport, display_name, uri_of, uri_user};

/// The site whose box sent a message from `source`: an enabled site's box address, while
/// the tunnels run.
pub(super) fn site_of(
    config: &officebox_config::Config,
    source: std::net::IpAddr,
) -> Option<&Site> {
    if !config.vpn.enabled {
        return None;
    }
    config
        .vpn
        .sites
        .iter()
        .find(|s| s.enabled && s.address.map(std::net::IpAddr::V4) == Some(source))
}

/// How the call log and the logs name a site's line.
fn line_name(site: &Site) -> String {
    format!("site:{}", site.name)
}

/// The line to `site`'s box (at `address`) for `dialled`, showing the caller as `name`
/// at extension `ext` of this office's `domain`.
fn line(
    site: &Site,
    address: std::net::Ipv4Addr,
    dialled: &str,
    name: &str,
    ext: &str,
    domain: &str,
) -> OutsideLine {
    let name = name.replace(['"', '\\'], "");
    let peer = std::net::SocketAddr::from((address, site.sip_port));
    OutsideLine {
        trunk: line_name(site),
        uri: format!("sip:{dialled}@{peer}"),
        from: format!("\"{name}\" <sip:{ext}@{domain}>"),
        to: format!(
            "<sip:{dialled}@{}>",
            site.domain.clone().unwrap_or_else(|| address.to_string())
        ),
        identity: None,
        contact_user: ext.to_string(),
        peer,
        transport: Transport::Udp,
        credentials: None,
        max_calls: 0,
        codecs: Vec::new(),
    }
}

/// Someone else's call put through to `dialled`, one of another site's extensions (a
/// transfer, a forward): over that site's line, showing `name` at `number` (the party
/// put through), with `fallback` behind it as for a call dialled there; `None` when no
/// site has the extension.
pub(super) fn put_through(
    config: &officebox_config::Config,
    dialled: &str,
    name: &str,
    number: &str,
) -> Option<Routed> {
    let site = officebox_config::derive::site_for_extension(config, dialled)?;
    let address = site.address?;
    let line = line(site, address, dialled, name, number, &config.network.domain);
    Some(Routed::Ring(Box::new(call::Ring {
        callee: Callee::Outside(vec![line]),
        login: String::new(),
        ext: dialled.to_string(),
        voicemail: None,
        forwards: None,
        held: Vec::new(),
        fallback: site.fallback.clone(),
    })))
}

/// Office user `caller` dialled `dialled`, one of `site`'s extensions: the call goes to
/// its box through the tunnel, showing the caller's extension and name.
pub(super) fn call_site(
    req: &Request,
    caller: &User,
    site: &Site,
    dialled: &str,
) -> Option<Message> {
    let Some(address) = site.address else {
        return Some(req.msg.response(404, "Not Found", req.tag.as_str()));
    };
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let parties = from_user(req, caller, "", dialled);
    let line = line(
        site,
        address,
        dialled,
        &caller.name,
        &parties.caller_ext,
        &req.config.network.domain,
    );
    let b_call_id = format!("{}@officebox", call::token());
    let log = NewCall {
        call_id: b_call_id.clone(),
        direction: Direction::Internal,
        trunk: Some(line_name(site)),
        caller: parties.caller_ext.clone(),
        caller_login: Some(caller.login.clone()),
        caller_name: caller.name.clone(),
        callee: dialled.to_string(),
        callee_login: None,
        started_at: unix_now(),
    };
    info!(message = "phone: calling another site", site = %site.name, caller = %parties.caller_ext, number = %dialled);
    let (setup, status_rx) = new_setup(req, parties, Callee::Outside(vec![line]), b_call_id, log);
    let setup = Setup {
        fallback: site.fallback.clone(),
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}

/// A call from `site`'s box: to the user whose extension its Request-URI names, with
/// their voicemail and forwarding behind it; anything else is 404.
pub(super) fn from_site(req: &Request, site: &Site) -> Option<Message> {
    let tag = req.tag.as_str();
    let StartLine::Request { uri, .. } = &req.msg.start else {
        return None;
    };
    let called = uri_user(uri).unwrap_or_default();
    let from = req.msg.header("from").unwrap_or_default();
    let number = uri_of(from)
        .and_then(uri_user)
        .unwrap_or_else(|| "anonymous".to_string());
    let name = display_name(from).unwrap_or_else(|| number.clone());
    let caller = Caller {
        address: format!(
            "{number}@{}",
            site.domain.clone().unwrap_or_else(|| site.name.clone())
        ),
        name: name.clone(),
        number: number.clone(),
        from_site: true,
        t38: officebox_config::model::T38Mode::On,
    };
    let log = |callee: &str, callee_login: Option<String>| NewCall {
        call_id: format!("{}@officebox", call::token()),
        direction: Direction::Internal,
        trunk: Some(line_name(site)),
        caller: number.clone(),
        caller_login: None,
        caller_name: name.clone(),
        callee: callee.to_string(),
        callee_login,
        started_at: unix_now(),
    };
    let user = req
        .config
        .users
        .iter()
        .find(|u| u.extension.as_deref() == Some(called.as_str()));
    let ring = match user.map(|u| ring_user(req.config, req.state, &caller, u, 0)) {
        Some(Routed::Ring(ring)) => *ring,
        refused => {
            let code = match refused {
                Some(Routed::Refused(code)) => code,
                _ => 404,
            };
            info!(message = "phone: a call from another site refused", site = %site.name, number = %called, code);
            log_failed(req.state, log(&called, None));
            let reason = if code == 404 {
                "Not Found"
            } else {
                "Forbidden"
            };
            return Some(req.msg.response(code, reason, tag));
        }
    };
    if let Some(busy) = overloaded(req) {
        return Some(busy);
    }
    let parties = Parties {
        caller_login: String::new(),
        caller_ext: number.clone(),
        caller_name: name.clone(),
        callee_login: ring.login.clone(),
        callee_ext: ring.ext.clone(),
        domain: req.config.network.domain.clone(),
    };
    let row = log(&ring.ext, Some(ring.login.clone()));
    let b_call_id = row.call_id.clone();
    info!(message = "phone: call from another site", site = %site.name, from = %number, to = %ring.ext);
    let (setup, status_rx) = new_setup(req, parties, ring.callee, b_call_id, row);
    let setup = Setup {
        router: Some(super::outside::router_with(req, caller)),
        voicemail: ring.voicemail,
        forwards: ring.forwards,
        held: ring.held,
        ..setup
    };
    launch(req, status_rx, async move { Some(setup) });
    None
}
