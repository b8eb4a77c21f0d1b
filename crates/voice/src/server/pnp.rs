//! SIP plug-and-play (the `ua-profile` event, RFC 6080 as the phones do it): a phone
//! that knows no provisioning server sends a SUBSCRIBE to the multicast group
//! 224.0.1.75, port 5060, with its MAC in the request URI (`sip:MAC%3A805EC0123456@...`).
//! The box answers 200 and then a NOTIFY to the phone whose body is the address to
//! fetch its files from: under its one-time token when it is assigned and the token is
//! unused, the HTTPS address when it has its credentials, else the secret-free plain one.
//!
//! Only phones on the office network are answered, only while provisioning is on.
//! The group is joined on the LAN interface: on the SIP socket itself when that is bound
//! to every address at port 5060, else on a socket of its own bound to the group.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, PoisonError};

use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone, provisioning_urls, token_url_at};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info};

use super::State;
use crate::sip::{Message, Method, StartLine, uri_of};

/// The plug-and-play multicast group and port.
pub(super) const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 75);
pub(super) const PORT: u16 = 5060;

/// Whether a datagram sent to `to` is for plug-and-play.
pub(super) fn is_pnp(to: Option<IpAddr>) -> bool {
    to == Some(IpAddr::V4(GROUP))
}

/// Joins the group on the LAN for the SIP sockets: on one bound to every address at the
/// plug-and-play port, or with a socket of its own (answered through the socket on the
/// LAN address). Nothing when services bind to chosen addresses (the demo) or there is
/// no socket to answer from. The LAN address may not be on the interface yet (the
/// network service puts it there as officebox starts): the join is tried again every
/// second until it works.
pub(super) fn join(
    config: &Config,
    sockets: &[(SocketAddr, Arc<UdpSocket>)],
    state: &Arc<State>,
    config_rx: &watch::Receiver<Arc<Config>>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.network.listen.is_empty() {
        return None;
    }
    let lan = config.network.lan.net.address;
    if let Some((_, s)) = sockets
        .iter()
        .find(|(a, _)| a.ip().is_unspecified() && a.port() == PORT)
    {
        let s = Arc::clone(s);
        return Some(tokio::spawn(async move {
            loop {
                match s.join_multicast_v4(GROUP, lan) {
                    Ok(()) => {
                        info!(message = "phone: answering plug-and-play requests", group = %GROUP);
                        return;
                    }
                    Err(error) => {
                        debug!(message = "phone: cannot join the plug-and-play group yet", %error)
                    }
                }
                tokio::time::sleep(RETRY).await;
            }
        }));
    }
    let (_, answer_from) = sockets.iter().find(|(a, _)| a.ip() == IpAddr::V4(lan))?;
    let (state, rx, out) = (
        Arc::clone(state),
        config_rx.clone(),
        Arc::clone(answer_from),
    );
    Some(tokio::spawn(async move {
        let socket = loop {
            match own_socket(lan) {
                Ok(s) => break s,
                Err(error) => {
                    debug!(message = "phone: cannot join the plug-and-play group yet", %error)
                }
            }
            tokio::time::sleep(RETRY).await;
        };
        info!(message = "phone: answering plug-and-play requests", group = %GROUP);
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, source)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let config = Arc::clone(&rx.borrow());
            let bytes = buf.get(..n).unwrap_or_default().to_vec();
            tokio::spawn(answer(
                config,
                Arc::clone(&state),
                bytes,
                source,
                Arc::clone(&out),
            ));
        }
    }))
}

/// How often a failed join is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

fn own_socket(lan: Ipv4Addr) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = sock::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    sock::setsockopt(&fd, sock::sockopt::ReuseAddr, &true)?;
    sock::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(GROUP, PORT)),
    )?;
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(fd))?;
    socket.join_multicast_v4(GROUP, lan)?;
    Ok(socket)
}

/// Answers one plug-and-play SUBSCRIBE from `source`: 200, then the NOTIFY with the
/// address, both sent from the box's LAN address through `out`.
pub(super) async fn answer(
    config: Arc<Config>,
    state: Arc<State>,
    bytes: Vec<u8>,
    source: SocketAddr,
    out: Arc<UdpSocket>,
) {
    let Some(urls) = provisioning_urls(&config) else {
        return;
    };
    if client_zone(&config.network, source.ip()) == ClientZone::Wan {
        return;
    }
    let Ok(msg) = Message::parse(&bytes) else {
        return;
    };
    let StartLine::Request {
        method: Method::Subscribe,
        uri,
    } = &msg.start
    else {
        return;
    };
    let event = msg.header("event").unwrap_or("");
    if !event
        .split(';')
        .next()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("ua-profile"))
    {
        return;
    }
    let mac = mac_in(uri);
    let assigned = mac
        .as_ref()
        .filter(|m| config.phone.devices.iter().any(|d| &d.name() == *m));
    let url = match assigned {
        Some(m) => {
            let (m, db) = (m.clone(), Arc::clone(&state.db));
            let token = tokio::task::spawn_blocking(move || {
                db.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .provisioned_phone(&m)
                    .ok()
                    .flatten()
                    .and_then(|r| r.token)
            })
            .await
            .ok()
            .flatten();
            match token {
                Some(t) => token_url_at(&urls.https, &t),
                None => urls.https.clone(),
            }
        }
        None => urls.http.clone(),
    };
    let local = SocketAddr::new(
        IpAddr::V4(config.network.lan.net.address),
        config.phone.sip_port,
    );
    let tag = crate::call::token();
    let mut ok = msg.response(200, "OK", &tag);
    ok.push("Expires", "0");
    send(&out, &ok.to_bytes(), source, local.ip());
    // The NOTIFY goes to the phone's Contact (its address as it sees it), else back to
    // where the SUBSCRIBE came from.
    let target = msg
        .header("contact")
        .and_then(uri_of)
        .map_or_else(|| format!("sip:{source}"), str::to_string);
    let dest = crate::sip::uri_host(&target)
        .and_then(|h| {
            h.parse::<SocketAddr>()
                .ok()
                .or_else(|| h.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 5060)))
        })
        .filter(|d| d.ip() == source.ip())
        .unwrap_or(source);
    let to = msg.header("from").unwrap_or("").to_string();
    let from = format!("{};tag={tag}", msg.header("to").unwrap_or(""));
    let mut n = Message {
        start: StartLine::Request {
            method: Method::Notify,
            uri: target,
        },
        headers: Vec::new(),
        body: url.clone().into_bytes(),
    };
    n.push(
        "Via",
        format!("SIP/2.0/UDP {local};branch=z9hG4bK{}", crate::call::token()),
    );
    n.push("Max-Forwards", "70");
    n.push("From", from);
    n.push("To", to);
    n.push("Call-ID", msg.call_id().to_string());
    n.push("CSeq", "1 NOTIFY");
    n.push("Event", event.to_string());
    n.push("Subscription-State", "terminated;reason=timeout");
    n.push("Content-Type", "application/url");
    send(&out, &n.to_bytes(), dest, local.ip());
    info!(
        message = "phone: plug-and-play answered",
        mac = mac.as_deref().unwrap_or("?"),
        %source,
        assigned = assigned.is_some(),
        with_token = url.contains("/t/")
    );
}

fn send(out: &UdpSocket, bytes: &[u8], to: SocketAddr, from: IpAddr) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(out);
    if let Err(error) = officebox_sockets::udp::send(fd, bytes, to, Some(from)) {
        debug!(message = "phone: plug-and-play answer not sent", %to, %error);
    }
}

/// The MAC in a plug-and-play request URI (`sip:MAC%3A805EC0123456@224.0.1.75`, also
/// written `MAC:...` or without the prefix): 12 lowercase hex digits.
fn mac_in(uri: &str) -> Option<String> {
    let user = uri.strip_prefix("sip:")?.split('@').next()?;
    let user = crate::sip::unescape(user);
    let hex = user
        .strip_prefix("MAC:")
        .or_else(|| user.strip_prefix("mac:"))
        .unwrap_or(&user)
        .replace([':', '-'], "");
    (hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_request_uris() {
        for uri in [
            "sip:MAC%3A805EC0123456@224.0.1.75",
            "sip:MAC%3a805ec0123456@224.0.1.75",
            "sip:MAC:805EC0123456@224.0.1.75",
            "sip:805ec0123456@224.0.1.75",
        ] {
            assert_eq!(mac_in(uri).as_deref(), Some("805ec0123456"), "{uri}");
        }
        assert_eq!(mac_in("sip:MAC%3A805EC01234@224.0.1.75"), None);
        assert_eq!(mac_in("sip:alice@224.0.1.75"), None);
    }
}
