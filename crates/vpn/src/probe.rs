//! Whether another site's box answers through the tunnel: its DNS (a query for its
//! domain's SOA, when it has a domain) and its phone system (a SIP OPTIONS, when it has
//! extensions), each with two seconds to answer. The status says so beside the
//! handshake: a tunnel can be up while the box behind it is not.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::Duration;

use officebox_config::model::Site;
use officebox_dnswire::exchange::{Ask, Question};
use tokio::net::UdpSocket;

/// How long each service has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// A number no one can guess in advance (for a SIP branch and tag).
fn nonce() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Sends `request` to `to` and waits for a datagram that `answers` accepts.
async fn ask(to: SocketAddr, request: &[u8], answers: impl Fn(&[u8]) -> bool) -> bool {
    let Ok(socket) = UdpSocket::bind(("0.0.0.0", 0)).await else {
        return false;
    };
    if socket.connect(to).await.is_err() || socket.send(request).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 2048];
    tokio::time::timeout(ANSWER_WITHIN, async {
        loop {
            match socket.recv(&mut buf).await {
                Ok(n) if answers(buf.get(..n).unwrap_or_default()) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Whether `to` answers a question for `domain`'s SOA (asked the way every part of the
/// box asks a DNS server: `officebox_dnswire::exchange`).
async fn dns_answers(to: SocketAddr, domain: &str) -> bool {
    let name = officebox_dnswire::to_wire(domain);
    let question = Question {
        name: &name,
        qtype: officebox_dnswire::rtype::SOA,
        qclass: officebox_dnswire::CLASS_IN,
    };
    let ask = Ask {
        udp_timeout: ANSWER_WITHIN,
        tcp_timeout: ANSWER_WITHIN,
        edns: false,
        mixed_case: false,
    };
    officebox_dnswire::exchange::exchange(to, &question, &ask)
        .await
        .is_ok()
}

/// A SIP OPTIONS to `to`, and whether any SIP response comes back.
async fn sip_answers(to: SocketAddr) -> bool {
    let n = nonce();
    let request = format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK{n:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:officebox@invalid>;tag={n:x}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: probe-{n:x}@officebox\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ask(to, request.as_bytes(), |r| r.starts_with(b"SIP/2.0 ")).await
}

/// What of `site`'s box answers now, as the status shows it ("names answer, phones
/// answer"); `None` when there is nothing to ask (no address, or neither a domain nor
/// extensions).
pub(crate) async fn services(site: &Site) -> Option<String> {
    let address = site.address?;
    let mut said = Vec::new();
    if let Some(domain) = &site.domain {
        let ok = dns_answers(SocketAddr::from((address, 53)), domain).await;
        said.push(if ok { "names answer" } else { "names silent" });
    }
    if site.extensions.is_some() {
        let ok = sip_answers(SocketAddr::from((address, site.sip_port))).await;
        said.push(if ok { "phones answer" } else { "phones silent" });
    }
    (!said.is_empty()).then(|| said.join(", "))
}
