//! Just enough SDP (RFC 4566) for a media relay: where a side wants its audio sent, and
//! the same description rewritten so that audio flows through the box instead.

use std::net::{IpAddr, SocketAddr};

/// The audio destination an offer or answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    /// Address and port of `m=audio`; the address is unspecified (0.0.0.0) for the old
    /// style of hold (RFC 3264 section 8.4).
    pub addr: SocketAddr,
}

/// The session's audio address: `c=` (session or the audio media's) and `m=audio` port.
pub fn audio(body: &[u8]) -> Option<Media> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_c: Option<IpAddr> = None;
    let mut media_c: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if seen_audio {
                in_audio = false;
                continue;
            }
            let mut w = m.split(' ');
            in_audio = w.next() == Some("audio");
            if in_audio {
                seen_audio = true;
                port = w.next().and_then(|p| p.split('/').next()?.parse().ok());
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = connection_ip(c);
            if in_audio {
                media_c = ip;
            } else if !seen_audio {
                session_c = ip;
            }
        }
    }
    let ip = media_c.or(session_c)?;
    Some(Media {
        addr: SocketAddr::new(ip, port?),
    })
}

/// The address of a `c=` line's value (`IN IP4 192.0.2.1`, a multicast TTL cut off).
fn connection_ip(c: &str) -> Option<IpAddr> {
    c.split(' ')
        .nth(2)
        .and_then(|a| a.split('/').next()?.parse().ok())
}

/// A T.38 fax stream an offer or answer names (`m=image PORT udptl t38`, RFC 3362 and
/// T.38 Annex D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct T38 {
    pub addr: SocketAddr,
    /// The largest UDPTL datagram the end takes (`T38FaxMaxDatagram`, else
    /// `T38FaxMaxBuffer`), if it said.
    pub max_datagram: Option<usize>,
}

/// The T.38 stream of an offer or answer (a refused one, port 0, is none).
pub fn t38(body: &[u8]) -> Option<T38> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_c: Option<IpAddr> = None;
    let mut media_c: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let (mut in_image, mut seen_media) = (false, false);
    let (mut datagram, mut buffer) = (None, None);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            seen_media = true;
            if port.is_some() {
                break;
            }
            let w: Vec<&str> = m.split(' ').collect();
            in_image = matches!(w.as_slice(), ["image", _, proto, fmt, ..]
                if proto.eq_ignore_ascii_case("udptl") && fmt.eq_ignore_ascii_case("t38"));
            if in_image {
                port = w.get(1).and_then(|p| p.parse().ok()).filter(|p| *p != 0);
                in_image = port.is_some();
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = connection_ip(c);
            if in_image {
                media_c = ip;
            } else if !seen_media {
                session_c = ip;
            }
        } else if in_image && let Some(a) = line.strip_prefix("a=") {
            let (k, v) = a.split_once(':').unwrap_or((a, ""));
            let n = v.trim().parse::<usize>().ok();
            if k.eq_ignore_ascii_case("T38FaxMaxDatagram") {
                datagram = n;
            } else if k.eq_ignore_ascii_case("T38FaxMaxBuffer") {
                buffer = n;
            }
        }
    }
    let ip = media_c.or(session_c)?;
    Some(T38 {
        addr: SocketAddr::new(ip, port?),
        max_datagram: datagram.or(buffer),
    })
}

/// The box's T.38 description on `ip:port`, taking datagrams of `max_datagram` bytes:
/// as an offer, or answering `offer` (its other streams refused, in their places, as
/// RFC 3264 asks).
pub fn t38_description(
    ip: IpAddr,
    port: u16,
    max_datagram: usize,
    offer: Option<&[u8]>,
) -> Vec<u8> {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let session = rand::random::<u32>();
    let mut s = format!(
        "v=0\r\no=officebox {session} {session} IN {family} {ip}\r\ns=officebox\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
    let image = format!(
        "m=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n\
         a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxBuffer:{max_datagram}\r\n\
         a=T38FaxMaxDatagram:{max_datagram}\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"
    );
    let lines = offer
        .and_then(|o| std::str::from_utf8(o).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix("m="))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut answered = false;
    for m in &lines {
        let w: Vec<&str> = m.split(' ').collect();
        let is_t38 = matches!(w.as_slice(), ["image", p, proto, fmt, ..]
            if *p != "0" && proto.eq_ignore_ascii_case("udptl") && fmt.eq_ignore_ascii_case("t38"));
        if is_t38 && !answered {
            s.push_str(&image);
            answered = true;
        } else {
            // Refused, in its place: the same media and transport, port 0.
            let kind = w.first().copied().unwrap_or("audio");
            let proto = w.get(2).copied().unwrap_or("RTP/AVP");
            let fmt = w.get(3).copied().unwrap_or("0");
            s.push_str(&format!("m={kind} 0 {proto} {fmt}\r\n"));
        }
    }
    if !answered {
        s.push_str(&image);
    }
    s.into_bytes()
}

/// The direction that answers an offer (RFC 3264 section 6.1): sendonly is answered
/// recvonly, recvonly sendonly, inactive inactive; the old hold's 0.0.0.0 recvonly.
pub fn answering_direction(offer: &[u8]) -> &'static str {
    let text = std::str::from_utf8(offer).unwrap_or("");
    let has = |a: &str| text.lines().any(|l| l.trim_end_matches('\r') == a);
    if has("a=sendonly") {
        "recvonly"
    } else if has("a=recvonly") {
        "sendonly"
    } else if has("a=inactive") {
        "inactive"
    } else if audio(offer).is_some_and(|m| m.addr.ip().is_unspecified()) {
        "recvonly"
    } else {
        "sendrecv"
    }
}

/// Whether an offer puts the other side on hold: `a=sendonly` or `a=inactive`, or the
/// old style's unspecified address (RFC 3264 section 8.4).
pub fn is_hold(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let attribute = text.lines().any(|l| {
        let l = l.trim_end_matches('\r');
        l == "a=sendonly" || l == "a=inactive"
    });
    attribute || audio(body).is_some_and(|m| m.addr.ip().is_unspecified())
}

/// The description with its media pointed at `ip:port`: every `c=` line and the `o=`
/// address become `ip` (unless the side is holding with 0.0.0.0), the port of the first
/// live `m=audio` or `m=image` (T.38) line becomes `port`. Other lines are kept as they
/// are.
pub fn rewrite(body: &[u8], ip: IpAddr, port: u16) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 32);
    let mut audio_done = false;
    for line in text.split_inclusive('\n') {
        let (content, end) = match line.strip_suffix("\r\n") {
            Some(c) => (c, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(c) => (c, "\n"),
                None => (line, ""),
            },
        };
        if let Some(c) = content.strip_prefix("c=") {
            let holding = c
                .split(' ')
                .nth(2)
                .is_some_and(|a| a.starts_with("0.0.0.0"));
            if holding {
                out.push_str(content);
            } else {
                out.push_str(&format!("c=IN {family} {ip}"));
            }
        } else if let Some(o) = content.strip_prefix("o=") {
            let parts: Vec<&str> = o.split(' ').collect();
            if let [user, session, version, net, _, _] = parts.as_slice() {
                out.push_str(&format!("o={user} {session} {version} {net} {family} {ip}"));
            } else {
                out.push_str(content);
            }
        } else if let Some((kind, m)) = content
            .strip_prefix("m=audio ")
            .map(|m| ("audio", m))
            .or_else(|| content.strip_prefix("m=image ").map(|m| ("image", m)))
            && !audio_done
            // A refused stream (port 0) stays refused: the next one is the live one
            // (T.38 replacing audio is `m=audio 0` then `m=image`).
            && !m.starts_with("0 ")
        {
            audio_done = true;
            let rest = m.split_once(' ').map_or("", |(_, r)| r);
            out.push_str(&format!("m={kind} {port} {rest}"));
        } else {
            out.push_str(content);
        }
        out.push_str(end);
    }
    out.into_bytes()
}

/// The encoding name of a static payload type (RFC 3551), when the SDP gives no rtpmap.
fn static_name(pt: &str) -> Option<&'static str> {
    match pt {
        "0" => Some("PCMU"),
        "3" => Some("GSM"),
        "8" => Some("PCMA"),
        "9" => Some("G722"),
        "18" => Some("G729"),
        _ => None,
    }
}

/// `body` offering only the audio codecs in `codecs` (encoding names, in that order of
/// preference), and telephone-event (DTMF goes across whatever the codec). An offer none
/// of whose codecs is in the list is left as it is: the box does not transcode, so the
/// provider is better asked with what the caller has than with nothing.
pub fn only_codecs(body: &[u8], codecs: &[String]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    if codecs.is_empty() {
        return body.to_vec();
    }
    // Each payload type's encoding name, from its rtpmap or the static table.
    let mut names: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(map) = line.trim_end().strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = map.split_once(' ')
        {
            let name = enc.split('/').next().unwrap_or("").to_ascii_uppercase();
            names.push((pt.to_string(), name));
        }
    }
    let name_of = |pt: &str| {
        names
            .iter()
            .find(|(p, _)| p == pt)
            .map(|(_, n)| n.clone())
            .or_else(|| static_name(pt).map(str::to_string))
    };
    let Some(m_line) = text.lines().find(|l| l.starts_with("m=audio ")) else {
        return body.to_vec();
    };
    let fields: Vec<&str> = m_line.trim_end().split(' ').collect();
    let (head, offered) = fields.split_at(fields.len().min(3));
    let mut kept: Vec<&str> = Vec::new();
    for wanted in codecs {
        for pt in offered {
            if name_of(pt).is_some_and(|n| n.eq_ignore_ascii_case(wanted)) && !kept.contains(pt) {
                kept.push(pt);
            }
        }
    }
    if kept.is_empty() {
        return body.to_vec();
    }
    for pt in offered {
        if name_of(pt).is_some_and(|n| n == "TELEPHONE-EVENT") && !kept.contains(pt) {
            kept.push(pt);
        }
    }
    let dropped: Vec<&str> = offered
        .iter()
        .filter(|p| !kept.contains(p))
        .copied()
        .collect();
    let new_m = format!("{} {}", head.join(" "), kept.join(" "));
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let end = line.get(content.len()..).unwrap_or("");
        let about = content
            .strip_prefix("a=rtpmap:")
            .or_else(|| content.strip_prefix("a=fmtp:"))
            .and_then(|r| r.split(' ').next());
        if content == m_line.trim_end() {
            out.push_str(&new_m);
            out.push_str(end);
        } else if about.is_some_and(|pt| dropped.contains(&pt)) {
            continue;
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_sendonly_inactive_or_the_unspecified_address() {
        let offer = |extra: &str, ip: &str| {
            format!("v=0\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{extra}")
        };
        assert!(is_hold(offer("a=sendonly\r\n", "10.0.0.5").as_bytes()));
        assert!(is_hold(offer("a=inactive\r\n", "10.0.0.5").as_bytes()));
        assert!(is_hold(offer("", "0.0.0.0").as_bytes()));
        assert!(!is_hold(offer("a=sendrecv\r\n", "10.0.0.5").as_bytes()));
        assert!(!is_hold(offer("a=recvonly\r\n", "10.0.0.5").as_bytes()));
    }

    #[test]
    fn an_offer_to_a_trunk_keeps_its_codecs_in_their_order_and_dtmf() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 0 8 101\r\n\
            a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
        let only = |codecs: &[&str]| {
            let codecs: Vec<String> = codecs.iter().map(|c| c.to_string()).collect();
            String::from_utf8(only_codecs(offer.as_bytes(), &codecs)).unwrap()
        };
        let out = only(&["pcma", "PCMU"]);
        assert!(out.contains("m=audio 4000 RTP/AVP 8 0 101\r\n"), "{out}");
        assert!(
            !out.contains("G722") && out.contains("a=fmtp:101 0-15\r\n"),
            "{out}"
        );
        assert!(out.ends_with("a=sendrecv\r\n"));
        // Nothing in common: the offer as it was. No list: the same.
        assert_eq!(only(&["G729"]), offer);
        assert_eq!(only(&[]), offer);
        // Static payload types without an rtpmap are known by number.
        let bare = "v=0\r\nm=audio 4000 RTP/AVP 0 8\r\n";
        let out = only_codecs(bare.as_bytes(), &["PCMA".to_string()]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "v=0\r\nm=audio 4000 RTP/AVP 8\r\n"
        );
    }

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\ns=-\r\n\
        c=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    #[test]
    fn the_audio_address_is_read_and_rewritten() {
        let m = audio(OFFER.as_bytes()).unwrap();
        assert_eq!(m.addr, "10.0.0.5:49170".parse().unwrap());
        let out = rewrite(OFFER.as_bytes(), "192.168.1.1".parse().unwrap(), 10002);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("c=IN IP4 192.168.1.1\r\n"));
        assert!(text.contains("o=alice 2890844526 2890844526 IN IP4 192.168.1.1\r\n"));
        assert!(text.contains("m=audio 10002 RTP/AVP 0 8 101\r\n"));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert_eq!(
            audio(text.as_bytes()).unwrap().addr,
            "192.168.1.1:10002".parse().unwrap()
        );
    }

    #[test]
    fn a_t38_offer_carried_across_points_its_image_stream_at_the_box() {
        let offer = "v=0\r\no=gw 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 0 RTP/AVP 8\r\nm=image 49172 udptl t38\r\na=T38FaxMaxDatagram:320\r\n";
        let text = String::from_utf8(rewrite(
            offer.as_bytes(),
            "192.168.1.1".parse().unwrap(),
            10002,
        ))
        .unwrap();
        assert!(text.contains("m=audio 0 RTP/AVP 8\r\n"), "{text}");
        assert!(text.contains("m=image 10002 udptl t38\r\n"), "{text}");
        let far = t38(text.as_bytes()).unwrap();
        assert_eq!(far.addr, "192.168.1.1:10002".parse().unwrap());
        assert_eq!(far.max_datagram, Some(320));
    }

    #[test]
    fn old_style_hold_keeps_its_zero_address_and_media_level_c_wins() {
        let hold = OFFER.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0");
        let text = String::from_utf8(rewrite(
            hold.as_bytes(),
            "192.168.1.1".parse().unwrap(),
            10002,
        ))
        .unwrap();
        assert!(text.contains("c=IN IP4 0.0.0.0\r\n"));
        let media_c = OFFER.replace("a=sendrecv\r\n", "c=IN IP4 10.0.0.9\r\n");
        assert_eq!(
            audio(media_c.as_bytes()).unwrap().addr.ip().to_string(),
            "10.0.0.9"
        );
        assert!(audio(b"v=0\r\n").is_none());
        assert!(audio(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn a_t38_offer_is_read_and_answered_in_its_place() {
        // Asterisk's way: the audio refused, the image stream beside it.
        let offer = b"v=0\r\no=- 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 0 RTP/AVP 0\r\nm=image 4002 udptl t38\r\nc=IN IP4 10.0.0.6\r\n\
            a=T38FaxVersion:0\r\na=T38FaxMaxBuffer:1800\r\na=T38FaxMaxDatagram:272\r\n";
        let t = t38(offer).unwrap();
        assert_eq!(t.addr, "10.0.0.6:4002".parse().unwrap());
        assert_eq!(t.max_datagram, Some(272));
        let a = String::from_utf8(t38_description(
            "192.168.1.1".parse().unwrap(),
            20000,
            400,
            Some(offer),
        ))
        .unwrap();
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, ["m=audio 0 RTP/AVP 0", "m=image 20000 udptl t38"]);
        assert!(a.contains("a=T38FaxMaxDatagram:400\r\n"));
        assert!(a.contains("a=T38FaxUdpEC:t38UDPRedundancy\r\n"));
        // A refused image stream, or none, is no T.38; neither is another image format.
        assert!(t38(b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=image 0 udptl t38\r\n").is_none());
        assert!(t38(b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n").is_none());
        assert!(t38(b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=image 4000 tcp t38\r\n").is_none());
        let o = String::from_utf8(t38_description("::1".parse().unwrap(), 5, 400, None)).unwrap();
        assert!(o.contains("c=IN IP6 ::1\r\n") && o.contains("m=image 5 udptl t38\r\n"));
    }
}
