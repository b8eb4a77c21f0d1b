//! One DHCP message in, one decision out (RFC 2131 section 4.3): the reply, where it goes,
//! and the binding to make durable before it is sent. Pure over the pool and the clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use officebox_config::derive::DhcpOptions;
use officebox_config::values::{Ipv4Net, Mac};

use crate::pool::{Binding, ClientKey, Pool, Refusal, State};

/// What the server hands out, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Our LAN address: the server identifier.
    pub server_id: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub options: DhcpOptions,
    pub lease_secs: u32,
    /// The provisioning address of each assigned phone (its token's while unused), when
    /// provisioning is on; other clients get the plain one.
    pub phone_urls: HashMap<Mac, String>,
}

/// Where a reply goes (RFC 2131 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// 255.255.255.255:68 on the LAN.
    Broadcast,
    /// A client that has its address: UDP to it (port 68).
    Client(Ipv4Addr),
    /// A relay agent: UDP to it (port 67).
    Relay(Ipv4Addr),
    /// A client without an address that cannot take broadcasts: to its hardware address.
    Hardware { mac: Mac, ip: Ipv4Addr },
}

/// What to do with one message.
#[derive(Debug)]
pub enum Decision {
    /// Send `reply` to `dest`, after making `persist` durable (when there is one).
    Reply {
        reply: Box<Message>,
        dest: Dest,
        persist: Option<Binding>,
    },
    /// A DHCPOFFER. `fresh`: the address is new to this client, so with the ping check on
    /// it is probed before the offer goes out.
    Offer {
        reply: Box<Message>,
        dest: Dest,
        address: Ipv4Addr,
        fresh: bool,
    },
    /// Nothing to send; make `persist` durable (RELEASE, DECLINE).
    Record(Binding),
    /// Not for us, or not answerable: the reason, for the debug log.
    Ignore(&'static str),
}

/// Who sent the message.
pub fn client_key(msg: &Message) -> ClientKey {
    match msg.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => ClientKey(id.clone()),
        _ => {
            let mut k = vec![u8::from(msg.htype())];
            k.extend_from_slice(msg.chaddr());
            ClientKey(k)
        }
    }
}

/// The client's hardware address (Ethernet).
pub fn mac_of(msg: &Message) -> Option<Mac> {
    let c = msg.chaddr();
    let six: [u8; 6] = c.get(..6)?.try_into().ok()?;
    Some(Mac(six))
}

/// The host name the client gave: option 12, else the first label of option 81.
pub fn hostname_of(msg: &Message) -> Option<String> {
    let raw = match msg.opts().get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => h.clone(),
        _ => match msg.opts().get(OptionCode::ClientFQDN) {
            Some(DhcpOption::ClientFQDN(f)) => f.domain().to_string(),
            _ => return None,
        },
    };
    let label = raw
        .trim_end_matches('.')
        .split('.')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    (!label.is_empty()).then_some(label)
}

fn requested_ip(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
}

fn server_id_of(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// Decides what to do with `msg` at unix time `now`.
pub fn handle(pool: &mut Pool, s: &Settings, msg: &Message, now: i64) -> Decision {
    if msg.opcode() != Opcode::BootRequest {
        return Decision::Ignore("not a request");
    }
    let Some(kind) = msg.opts().msg_type() else {
        return Decision::Ignore("no message type (BOOTP is not served)");
    };
    let Some(mac) = mac_of(msg) else {
        return Decision::Ignore("no Ethernet hardware address");
    };
    // Relayed messages come from other networks; this pool is only the LAN's.
    if !msg.giaddr().is_unspecified() && !s.subnet.contains(msg.giaddr()) {
        return Decision::Ignore("relayed from another network");
    }
    let client = client_key(msg);
    match kind {
        MessageType::Discover => discover(pool, s, msg, &client, mac, now),
        MessageType::Request => request(pool, s, msg, &client, mac, now),
        MessageType::Release => {
            if server_id_of(msg).is_some_and(|id| id != s.server_id) {
                return Decision::Ignore("release for another server");
            }
            match pool.release(&client, mac, msg.ciaddr(), now) {
                Some(b) => Decision::Record(b.clone()),
                None => Decision::Ignore("release of an address the client does not hold"),
            }
        }
        MessageType::Decline => {
            let Some(addr) = requested_ip(msg) else {
                return Decision::Ignore("decline without the declined address");
            };
            match pool.decline(&client, mac, addr, now) {
                Some(b) => {
                    tracing::warn!(message = "dhcp: a client found its address in use; quarantined", address = %addr, %mac);
                    Decision::Record(b.clone())
                }
                None => Decision::Ignore("decline of an address the client was not given"),
            }
        }
        MessageType::Inform => {
            // The client has an address already; it only wants the options.
            let mut reply = base_reply(s, msg, MessageType::Ack);
            reply.set_yiaddr(Ipv4Addr::UNSPECIFIED);
            add_options(&mut reply, s, msg, None);
            let dest = if msg.ciaddr().is_unspecified() {
                Dest::Broadcast
            } else {
                Dest::Client(msg.ciaddr())
            };
            Decision::Reply {
                reply: Box::new(reply),
                dest,
                persist: None,
            }
        }
        _ => Decision::Ignore("not a client message"),
    }
}

fn discover(
    pool: &mut Pool,
    s: &Settings,
    msg: &Message,
    client: &ClientKey,
    mac: Mac,
    now: i64,
) -> Decision {
    let addr = match pool.choose(client, mac, requested_ip(msg), now) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(message = "dhcp: no address to offer", %mac, reason = %e);
            return Decision::Ignore("pool exhausted");
        }
    };
    let known = pool
        .of_client(client)
        .is_some_and(|b| b.address == addr && (b.state == State::Bound || b.reserved));
    let reserved = pool
        .binding(addr)
        .is_some_and(|b| b.reserved && b.client == *client);
    pool.offer(client, mac, addr, now);
    let mut reply = base_reply(s, msg, MessageType::Offer);
    reply.set_yiaddr(addr);
    add_options(&mut reply, s, msg, Some(s.lease_secs));
    Decision::Offer {
        reply: Box::new(reply),
        dest: destination(msg, addr, false),
        address: addr,
        fresh: !known && !reserved,
    }
}

fn request(
    pool: &mut Pool,
    s: &Settings,
    msg: &Message,
    client: &ClientKey,
    mac: Mac,
    now: i64,
) -> Decision {
    let ciaddr = msg.ciaddr();
    let (addr, state) = match (server_id_of(msg), requested_ip(msg)) {
        // SELECTING: the answer to an offer, ours or another server's.
        (Some(id), _) if id != s.server_id => {
            pool.forget_offer(client);
            return Decision::Ignore("the client chose another server");
        }
        (Some(_), Some(req)) => (req, "selecting"),
        (Some(_), None) => return Decision::Ignore("selecting without a requested address"),
        // INIT-REBOOT: a client that remembers an address.
        (None, Some(req)) if ciaddr.is_unspecified() => (req, "init-reboot"),
        // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the address.
        (None, _) if !ciaddr.is_unspecified() => (ciaddr, "renewing"),
        (None, _) => return Decision::Ignore("request without an address"),
    };
    if !s.subnet.is_host(addr) {
        return nak(s, msg, "the address is not on this network");
    }
    // A client that holds a live lease on another address asks for one it may not have
    // (RFC 2131 4.3.2: the requested address is incorrect): it starts over.
    if pool
        .of_client(client)
        .is_some_and(|b| b.state == State::Bound && b.until > now && b.address != addr)
    {
        return nak(s, msg, "the client holds another address");
    }
    let hostname = hostname_of(msg).or_else(|| {
        pool.of_client(client)
            .filter(|b| b.address == addr)
            .and_then(|b| b.hostname.clone())
    });
    match pool.bind(client, mac, addr, hostname, i64::from(s.lease_secs), now) {
        Ok(b) => {
            let persist = b.clone();
            debug_assert_eq!(persist.state, State::Bound);
            let mut reply = base_reply(s, msg, MessageType::Ack);
            reply.set_yiaddr(addr);
            add_options(&mut reply, s, msg, Some(s.lease_secs));
            Decision::Reply {
                reply: Box::new(reply),
                dest: destination(msg, addr, false),
                persist: Some(persist),
            }
        }
        Err(Refusal::Taken | Refusal::NotOurs | Refusal::Exhausted) => {
            tracing::debug!(message = "dhcp: request refused", %mac, address = %addr, state);
            nak(s, msg, "the address is not available to this client")
        }
    }
}

fn nak(s: &Settings, msg: &Message, why: &str) -> Decision {
    let mut reply = base_reply(s, msg, MessageType::Nak);
    reply.set_yiaddr(Ipv4Addr::UNSPECIFIED);
    // RFC 2131 4.3.2: a NAK through a relay asks it to broadcast to the client.
    if !msg.giaddr().is_unspecified() {
        reply.set_flags(Flags::default().set_broadcast());
    }
    reply
        .opts_mut()
        .insert(DhcpOption::Message(why.to_string()));
    Decision::Reply {
        reply: Box::new(reply),
        dest: destination(msg, Ipv4Addr::UNSPECIFIED, true),
        persist: None,
    }
}

/// RFC 2131 4.1: relays get it back; NAKs and clients asking for it are broadcast; clients
/// with an address get unicast; the rest get it at their hardware address.
fn destination(msg: &Message, yiaddr: Ipv4Addr, is_nak: bool) -> Dest {
    if !msg.giaddr().is_unspecified() {
        return Dest::Relay(msg.giaddr());
    }
    if is_nak {
        return Dest::Broadcast;
    }
    if !msg.ciaddr().is_unspecified() {
        return Dest::Client(msg.ciaddr());
    }
    if msg.flags().broadcast() {
        return Dest::Broadcast;
    }
    match mac_of(msg) {
        Some(mac) => Dest::Hardware { mac, ip: yiaddr },
        None => Dest::Broadcast,
    }
}

fn base_reply(s: &Settings, msg: &Message, kind: MessageType) -> Message {
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_htype(msg.htype())
        .set_xid(msg.xid())
        .set_flags(if msg.flags().broadcast() {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        })
        .set_giaddr(msg.giaddr())
        .set_chaddr(msg.chaddr())
        .set_siaddr(Ipv4Addr::UNSPECIFIED);
    if matches!(kind, MessageType::Ack) {
        reply.set_ciaddr(msg.ciaddr());
    }
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(s.server_id));
    // RFC 6842: the client identifier comes back.
    if let Some(DhcpOption::ClientIdentifier(id)) = msg.opts().get(OptionCode::ClientIdentifier) {
        opts.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    reply
}

fn add_options(reply: &mut Message, s: &Settings, msg: &Message, lease: Option<u32>) {
    let o = &s.options;
    let opts = reply.opts_mut();
    if let Some(secs) = lease {
        opts.insert(DhcpOption::AddressLeaseTime(secs));
        opts.insert(DhcpOption::Renewal(secs / 2));
        opts.insert(DhcpOption::Rebinding(secs / 8 * 7));
    }
    opts.insert(DhcpOption::SubnetMask(o.netmask));
    if let Some(r) = o.router {
        opts.insert(DhcpOption::Router(vec![r]));
    }
    if !o.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(o.dns.clone()));
    }
    opts.insert(DhcpOption::DomainName(o.domain.clone()));
    if let Some(ntp) = o.ntp {
        opts.insert(DhcpOption::NtpServers(vec![ntp]));
    }
    // Phones: sent whether or not the client asked (many phones do not).
    if let Some(p) = &o.provisioning {
        let url = mac_of(msg)
            .and_then(|m| s.phone_urls.get(&m))
            .unwrap_or(&p.url);
        opts.insert(DhcpOption::TFTPServerName(url.as_bytes().to_vec()));
        opts.insert(DhcpOption::TFTPServerAddress(p.server));
        // Option 43 as Snom reads it: sub-option 66 holding the address; others skip
        // sub-options they do not know.
        if let Ok(len) = u8::try_from(url.len()) {
            let mut v = vec![66, len];
            v.extend_from_slice(url.as_bytes());
            opts.insert(DhcpOption::VendorExtensions(v));
        }
        // Not option 160, which some phones read for this: RFC 7710 made it the captive
        // portal's address, and PCs would take the office for a hotel's Wi-Fi.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::HType;

    fn settings() -> Settings {
        Settings {
            server_id: "192.168.1.1".parse().unwrap(),
            subnet: Ipv4Net {
                address: "192.168.1.1".parse().unwrap(),
                prefix: 24,
            },
            options: DhcpOptions {
                netmask: "255.255.255.0".parse().unwrap(),
                router: Some("192.168.1.1".parse().unwrap()),
                dns: vec!["192.168.1.1".parse().unwrap()],
                domain: "office.test".into(),
                ntp: Some("192.168.1.1".parse().unwrap()),
                provisioning: Some(officebox_config::derive::ProvisioningOptions {
                    url: "http://192.168.1.1:8081/".into(),
                    https: "https://192.168.1.1:8443/".into(),
                    server: "192.168.1.1".parse().unwrap(),
                }),
            },
            lease_secs: 3600,
            phone_urls: HashMap::new(),
        }
    }

    fn pool() -> Pool {
        Pool::new(
            "192.168.1.1".parse().unwrap(),
            "192.168.1.100".parse().unwrap(),
            &["192.168.1.1".parse().unwrap()],
            [],
        )
    }

    fn msg(kind: MessageType, mac: u8, opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_xid(7)
            .set_chaddr(&[2, 0, 0, 0, 0, mac]);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    fn reply_of(d: Decision) -> (Message, Dest, Option<Binding>) {
        match d {
            Decision::Reply {
                reply,
                dest,
                persist,
            } => (*reply, dest, persist),
            Decision::Offer { reply, dest, .. } => (*reply, dest, None),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn phones_are_told_the_provisioning_server_unasked() {
        let (mut s, mut p) = (settings(), pool());
        s.phone_urls.insert(
            Mac([2, 0, 0, 0, 0, 9]),
            "https://192.168.1.1:8443/t/tok/".into(),
        );
        let (offer, _, _) = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 1, vec![]),
            0,
        ));
        let o = offer.opts();
        assert_eq!(
            o.get(OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(
                b"http://192.168.1.1:8081/".to_vec()
            ))
        );
        assert_eq!(
            o.get(OptionCode::TFTPServerAddress),
            Some(&DhcpOption::TFTPServerAddress(
                "192.168.1.1".parse().unwrap()
            ))
        );
        let mut snom = vec![66, 24];
        snom.extend_from_slice(b"http://192.168.1.1:8081/");
        assert_eq!(
            o.get(OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(snom))
        );
        assert!(
            o.get(OptionCode::Unknown(160)).is_none(),
            "160 is a captive portal"
        );
        // An assigned phone is given its own address.
        let (offer, _, _) = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 9, vec![]),
            0,
        ));
        assert_eq!(
            offer.opts().get(OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(
                b"https://192.168.1.1:8443/t/tok/".to_vec()
            ))
        );
        // And the options survive the wire.
        let bytes = dhcproto::Encodable::to_vec(&offer).unwrap();
        let back = crate::decode(&bytes).unwrap();
        assert!(back.opts().get(OptionCode::VendorExtensions).is_some());
    }

    #[test]
    fn discover_offer_request_ack() {
        let (s, mut p) = (settings(), pool());
        let (offer, dest, persist) = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 1, vec![]),
            0,
        ));
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        let addr = offer.yiaddr();
        assert_eq!(addr.to_string(), "192.168.1.2");
        assert_eq!(
            dest,
            Dest::Hardware {
                mac: Mac([2, 0, 0, 0, 0, 1]),
                ip: addr
            }
        );
        assert!(persist.is_none(), "offers are not written");
        for code in [
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
            OptionCode::NtpServers,
            OptionCode::AddressLeaseTime,
            OptionCode::ServerIdentifier,
        ] {
            assert!(offer.opts().get(code).is_some(), "{code:?}");
        }
        let req = msg(
            MessageType::Request,
            1,
            vec![
                DhcpOption::ServerIdentifier(s.server_id),
                DhcpOption::RequestedIpAddress(addr),
                DhcpOption::Hostname("Laptop-7".into()),
            ],
        );
        let (ack, _, persist) = reply_of(handle(&mut p, &s, &req, 1));
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(ack.yiaddr(), addr);
        let b = persist.expect("an ACK is made durable first");
        assert_eq!(
            (b.state, b.hostname.as_deref(), b.until),
            (State::Bound, Some("Laptop-7"), 3601)
        );
    }

    #[test]
    fn broadcast_flag_relay_and_renewal_destinations() {
        let (s, mut p) = (settings(), pool());
        let mut d = msg(MessageType::Discover, 1, vec![]);
        d.set_flags(Flags::default().set_broadcast());
        assert_eq!(reply_of(handle(&mut p, &s, &d, 0)).1, Dest::Broadcast);
        let mut relayed = msg(MessageType::Discover, 2, vec![]);
        relayed.set_giaddr(Ipv4Addr::new(192, 168, 1, 254));
        assert_eq!(
            reply_of(handle(&mut p, &s, &relayed, 0)).1,
            Dest::Relay(Ipv4Addr::new(192, 168, 1, 254))
        );
        // Bind, then renew by unicast from the address.
        let addr = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 3, vec![]),
            0,
        ))
        .0
        .yiaddr();
        reply_of(handle(
            &mut p,
            &s,
            &msg(
                MessageType::Request,
                3,
                vec![
                    DhcpOption::ServerIdentifier(s.server_id),
                    DhcpOption::RequestedIpAddress(addr),
                ],
            ),
            0,
        ));
        let mut renew = msg(MessageType::Request, 3, vec![]);
        renew.set_ciaddr(addr);
        let (ack, dest, persist) = reply_of(handle(&mut p, &s, &renew, 100));
        assert_eq!(
            (ack.opts().msg_type(), dest),
            (Some(MessageType::Ack), Dest::Client(addr))
        );
        assert_eq!(persist.unwrap().until, 3700, "renewal extends the lease");
    }

    #[test]
    fn naks_and_silence() {
        let (s, mut p) = (settings(), pool());
        // INIT-REBOOT with an address from another network: NAK, broadcast.
        let wrong = msg(
            MessageType::Request,
            1,
            vec![DhcpOption::RequestedIpAddress("10.0.0.5".parse().unwrap())],
        );
        let (nak, dest, _) = reply_of(handle(&mut p, &s, &wrong, 0));
        assert_eq!(
            (nak.opts().msg_type(), dest),
            (Some(MessageType::Nak), Dest::Broadcast)
        );
        // Someone else's address: NAK.
        let addr = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 2, vec![]),
            0,
        ))
        .0
        .yiaddr();
        reply_of(handle(
            &mut p,
            &s,
            &msg(
                MessageType::Request,
                2,
                vec![
                    DhcpOption::ServerIdentifier(s.server_id),
                    DhcpOption::RequestedIpAddress(addr),
                ],
            ),
            0,
        ));
        let steal = msg(
            MessageType::Request,
            3,
            vec![DhcpOption::RequestedIpAddress(addr)],
        );
        assert_eq!(
            reply_of(handle(&mut p, &s, &steal, 1)).0.opts().msg_type(),
            Some(MessageType::Nak)
        );
        // A request for another server's offer: silence, and our offer is let go.
        let other = msg(
            MessageType::Request,
            4,
            vec![
                DhcpOption::ServerIdentifier("192.168.1.254".parse().unwrap()),
                DhcpOption::RequestedIpAddress(addr),
            ],
        );
        assert!(matches!(handle(&mut p, &s, &other, 1), Decision::Ignore(_)));
    }

    #[test]
    fn client_identifier_comes_first_and_comes_back() {
        let (s, mut p) = (settings(), pool());
        let id = DhcpOption::ClientIdentifier(vec![0xff, 1, 2, 3]);
        let first = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 1, vec![id.clone()]),
            0,
        ))
        .0;
        assert_eq!(first.opts().get(OptionCode::ClientIdentifier), Some(&id));
        let addr = first.yiaddr();
        reply_of(handle(
            &mut p,
            &s,
            &msg(
                MessageType::Request,
                1,
                vec![
                    id.clone(),
                    DhcpOption::ServerIdentifier(s.server_id),
                    DhcpOption::RequestedIpAddress(addr),
                ],
            ),
            0,
        ));
        // Same identifier from another NIC: the same address.
        let again = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 9, vec![id]),
            5,
        ))
        .0;
        assert_eq!(again.yiaddr(), addr);
    }

    #[test]
    fn release_decline_inform() {
        let (s, mut p) = (settings(), pool());
        let addr = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 1, vec![]),
            0,
        ))
        .0
        .yiaddr();
        reply_of(handle(
            &mut p,
            &s,
            &msg(
                MessageType::Request,
                1,
                vec![
                    DhcpOption::ServerIdentifier(s.server_id),
                    DhcpOption::RequestedIpAddress(addr),
                ],
            ),
            0,
        ));
        let mut rel = msg(
            MessageType::Release,
            1,
            vec![DhcpOption::ServerIdentifier(s.server_id)],
        );
        rel.set_ciaddr(addr);
        assert!(
            matches!(handle(&mut p, &s, &rel, 10), Decision::Record(b) if b.state == State::Released)
        );
        let addr2 = reply_of(handle(
            &mut p,
            &s,
            &msg(MessageType::Discover, 2, vec![]),
            20,
        ))
        .0
        .yiaddr();
        reply_of(handle(
            &mut p,
            &s,
            &msg(
                MessageType::Request,
                2,
                vec![
                    DhcpOption::ServerIdentifier(s.server_id),
                    DhcpOption::RequestedIpAddress(addr2),
                ],
            ),
            20,
        ));
        let dec = msg(
            MessageType::Decline,
            2,
            vec![
                DhcpOption::ServerIdentifier(s.server_id),
                DhcpOption::RequestedIpAddress(addr2),
            ],
        );
        assert!(
            matches!(handle(&mut p, &s, &dec, 30), Decision::Record(b) if b.state == State::Declined)
        );
        let mut inform = msg(MessageType::Inform, 5, vec![]);
        inform.set_ciaddr("192.168.1.77".parse::<Ipv4Addr>().unwrap());
        let (ack, dest, persist) = reply_of(handle(&mut p, &s, &inform, 40));
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert!(
            ack.opts().get(OptionCode::AddressLeaseTime).is_none(),
            "INFORM: no lease"
        );
        assert_eq!(
            (dest, persist),
            (Dest::Client("192.168.1.77".parse().unwrap()), None)
        );
    }
}
