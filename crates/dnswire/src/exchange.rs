//! One question to one DNS server, the way every part of officebox that asks one does it:
//! the LAN resolver's forwarder (officebox-dns) and the mail queue's MX lookups
//! (officebox-mail). Over UDP first, then over TCP (RFC 7766, length-prefixed) when the
//! answer comes back truncated.
//!
//! The defences against forged answers (RFC 5452) are all here, so no caller can leave one
//! out: a random ID, a source port chosen by the OS for each question, a connected socket
//! (the kernel drops datagrams from any other address or port), and an answer counted only
//! when it has the question's ID, is a response, and repeats the very same question,
//! letter case included (so 0x20 mixed case, where asked for, is checked too). Datagrams
//! that fail the check are passed over while the wait goes on; a TCP answer that fails it
//! is an error.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{Builder, HEADER_LEN, Header, QR, RD, TC, opt_record, skip_name};

/// The largest UDP answer read (more than the payload size we advertise).
const UDP_BUFFER: usize = 4096;

/// What is asked: a name in wire form, a type and a class.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
}

/// How a question is put to a server.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// How long the UDP answer may take.
    pub udp_timeout: Duration,
    /// How long the TCP retry may take, connecting included.
    pub tcp_timeout: Duration,
    /// Whether the query carries our OPT record (EDNS, RFC 6891), so that answers up to
    /// [`crate::OUR_UDP_PAYLOAD`] bytes come over UDP.
    pub edns: bool,
    /// Whether the name's letters are sent in random case (0x20, draft-vixie-dnsext-dns0x20),
    /// which the answer must repeat exactly.
    pub mixed_case: bool,
}

/// Why a server gave no answer to the question.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer over {0} in time")]
    Timeout(&'static str),
    #[error("the answer over TCP does not match the question")]
    Mismatch,
}

/// Asks `server` one question and returns its answer, checked against the question: over
/// UDP from a fresh port chosen by the OS, then over TCP if that answer was truncated.
pub async fn exchange(
    server: SocketAddr,
    question: &Question<'_>,
    ask: &Ask,
) -> Result<Vec<u8>, ExchangeError> {
    let name = if ask.mixed_case {
        mixed_case(question.name)
    } else {
        question.name.to_vec()
    };
    let query = query_message(
        rand::random(),
        &name,
        question.qtype,
        question.qclass,
        ask.edns,
    );
    let answer = tokio::time::timeout(ask.udp_timeout, over_udp(server, &query))
        .await
        .map_err(|_| ExchangeError::Timeout("UDP"))??;
    let truncated = Header::parse(&answer).is_ok_and(|h| h.flags & TC != 0);
    if !truncated {
        return Ok(answer);
    }
    let answer = tokio::time::timeout(ask.tcp_timeout, over_tcp(server, &query))
        .await
        .map_err(|_| ExchangeError::Timeout("TCP"))??;
    if answers(&query, &answer) {
        Ok(answer)
    } else {
        Err(ExchangeError::Mismatch)
    }
}

/// Sends `query` from a fresh port and waits for the datagram that answers it.
async fn over_udp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address or port.
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let len = socket.recv(&mut buf).await?;
        if let Some(packet) = buf.get(..len)
            && answers(query, packet)
        {
            return Ok(packet.to_vec());
        }
        tracing::debug!(message = "dns client: dropped a datagram that does not answer the question", %server);
    }
}

/// Sends `query` over TCP with its two-byte length first and reads the answer alike.
async fn over_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long for TCP"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    let mut stream = TcpStream::connect(server).await?;
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// A recursive query for one question with ID `id`, with our OPT record when `edns`.
pub fn query_message(id: u16, name: &[u8], qtype: u16, qclass: u16, edns: bool) -> Vec<u8> {
    let mut b = Builder::with_question(name, qtype, qclass);
    if edns {
        b.buf.extend_from_slice(&opt_record(0));
    }
    Header {
        id,
        flags: RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: u16::from(edns),
    }
    .write(&mut b.buf);
    b.buf
}

/// Whether `response` answers `query`: same ID, a response, and the very same single
/// question, letter case included.
pub fn answers(query: &[u8], response: &[u8]) -> bool {
    let (Ok(q), Ok(r)) = (Header::parse(query), Header::parse(response)) else {
        return false;
    };
    if r.id != q.id || r.flags & QR == 0 || r.qdcount != 1 {
        return false;
    }
    let Ok(question_end) = skip_name(query, HEADER_LEN).map(|e| e + 4) else {
        return false;
    };
    let asked = query.get(HEADER_LEN..question_end);
    asked.is_some() && response.get(HEADER_LEN..question_end) == asked
}

/// The name (wire form) with its letters' case randomized (0x20).
pub fn mixed_case(name: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    let mut bits: u64 = rand::random();
    let mut at = 0;
    while let Some(&len) = out.get(at) {
        let len = usize::from(len);
        if len == 0 {
            break;
        }
        for b in out.iter_mut().skip(at + 1).take(len) {
            if b.is_ascii_alphabetic() {
                if bits & 1 == 1 {
                    b.make_ascii_uppercase();
                }
                bits = bits.rotate_right(1);
            }
        }
        at += 1 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CLASS_IN, RData, rtype, to_wire};
    use tokio::net::TcpListener;

    #[test]
    fn mixed_case_keeps_the_name() {
        let name = to_wire("www.example-long-name.com");
        for _ in 0..20 {
            let m = mixed_case(&name);
            assert_eq!(m.len(), name.len());
            assert_eq!(m.to_ascii_lowercase(), name);
        }
        let varied = (0..20)
            .map(|_| mixed_case(&name))
            .collect::<std::collections::HashSet<_>>();
        assert!(varied.len() > 1, "case is randomized");
    }

    #[test]
    fn answers_must_match_id_and_exact_question() {
        let q = query_message(
            42,
            &mixed_case(&to_wire("www.example.com")),
            rtype::A,
            1,
            true,
        );
        let mut r = q.clone();
        r[2] |= 0x80;
        assert!(answers(&q, &r));
        let mut wrong_id = r.clone();
        wrong_id[1] ^= 1;
        assert!(!answers(&q, &wrong_id));
        let mut wrong_case = r.clone();
        wrong_case[13] ^= 0x20;
        assert!(
            !answers(&q, &wrong_case),
            "0x20: the letter case must come back unchanged"
        );
        assert!(!answers(&q, &q), "a query is not a response");
        assert!(!answers(&q, &r[..HEADER_LEN + 3]), "a cut question");
    }

    #[test]
    fn queries_carry_opt_only_with_edns() {
        let name = to_wire("a.test");
        let plain = query_message(7, &name, rtype::MX, CLASS_IN, false);
        let with = query_message(7, &name, rtype::MX, CLASS_IN, true);
        assert_eq!(Header::parse(&plain).unwrap().arcount, 0);
        assert_eq!(Header::parse(&with).unwrap().arcount, 1);
        assert_eq!(with.len(), plain.len() + 11);
        assert_eq!(
            crate::parse_request(&with).unwrap().edns.unwrap().version,
            0
        );
    }

    /// The answer to `query`: its question, `flags` added, and one A record 192.0.2.`last`.
    fn reply(query: &[u8], flags: u16, last: u8) -> Vec<u8> {
        let req = crate::parse_request(query).unwrap();
        let mut b = Builder::plain();
        b.buf.extend_from_slice(&query[..req.question.end]);
        b.record(
            req.qname.as_bytes(),
            rtype::A,
            60,
            &RData::Bytes(vec![192, 0, 2, last]),
        );
        Header {
            id: req.header.id,
            flags: QR | RD | flags,
            qdcount: 1,
            ancount: 1,
            nscount: 0,
            arcount: 0,
        }
        .write(&mut b.buf);
        b.buf
    }

    /// A UDP socket and a TCP listener on the same loopback port.
    async fn responder() -> (UdpSocket, TcpListener) {
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                return (udp, tcp);
            }
        }
        panic!("no loopback port free for both UDP and TCP");
    }

    fn ask() -> Ask {
        Ask {
            udp_timeout: Duration::from_millis(500),
            tcp_timeout: Duration::from_millis(500),
            edns: true,
            mixed_case: true,
        }
    }

    fn last_octet(answer: &[u8]) -> u8 {
        *answer.last().unwrap()
    }

    /// Answers the first datagram truncated (A 192.0.2.1), then the same query over TCP
    /// (A 192.0.2.2), through `tamper`. Returns whether the TCP query was the UDP one.
    async fn truncate_then_answer_over_tcp(
        udp: UdpSocket,
        tcp: TcpListener,
        tamper: fn(&mut Vec<u8>),
    ) -> bool {
        let mut buf = [0u8; 512];
        let (n, from) = udp.recv_from(&mut buf).await.unwrap();
        udp.send_to(&reply(&buf[..n], TC, 1), from).await.unwrap();
        let (mut s, _) = tcp.accept().await.unwrap();
        let len = s.read_u16().await.unwrap();
        let mut q = vec![0u8; usize::from(len)];
        s.read_exact(&mut q).await.unwrap();
        let mut r = reply(&q, 0, 2);
        tamper(&mut r);
        s.write_all(&u16::try_from(r.len()).unwrap().to_be_bytes())
            .await
            .unwrap();
        s.write_all(&r).await.unwrap();
        q == buf[..n]
    }

    fn question(name: &[u8]) -> Question<'_> {
        Question {
            name,
            qtype: rtype::A,
            qclass: CLASS_IN,
        }
    }

    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp() {
        let (udp, tcp) = responder().await;
        let server = udp.local_addr().unwrap();
        let name = to_wire("big.example.test");
        let far = tokio::spawn(truncate_then_answer_over_tcp(udp, tcp, |_| {}));
        let answer = exchange(server, &question(&name), &ask()).await.unwrap();
        assert_eq!(last_octet(&answer), 2, "the answer came over TCP");
        assert_eq!(Header::parse(&answer).unwrap().flags & TC, 0);
        assert!(
            far.await.unwrap(),
            "the same query over TCP, ID and case included"
        );
    }

    #[tokio::test]
    async fn datagrams_that_do_not_answer_are_passed_over() {
        let (udp, _tcp) = responder().await;
        let server = udp.local_addr().unwrap();
        let name = to_wire("www.example.test");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            let q = &buf[..n];
            let mut wrong_id = reply(q, 0, 1);
            wrong_id[1] ^= 1;
            udp.send_to(&wrong_id, from).await.unwrap();
            let mut wrong_name = reply(q, 0, 2);
            wrong_name[HEADER_LEN + 1] ^= b'w' ^ b'x';
            udp.send_to(&wrong_name, from).await.unwrap();
            udp.send_to(&reply(q, 0, 3), from).await.unwrap();
        });
        let answer = exchange(server, &question(&name), &ask()).await.unwrap();
        assert_eq!(last_octet(&answer), 3, "only the matching answer counts");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (udp, _tcp) = responder().await;
        let server = udp.local_addr().unwrap();
        let name = to_wire("quiet.example.test");
        let how = Ask {
            udp_timeout: Duration::from_millis(200),
            ..ask()
        };
        let started = std::time::Instant::now();
        let error = exchange(server, &question(&name), &how).await.unwrap_err();
        assert!(matches!(error, ExchangeError::Timeout("UDP")), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(udp);
    }

    #[tokio::test]
    async fn a_tcp_answer_to_another_question_is_an_error() {
        let (udp, tcp) = responder().await;
        let server = udp.local_addr().unwrap();
        let name = to_wire("big.example.test");
        tokio::spawn(truncate_then_answer_over_tcp(udp, tcp, |r| r[0] ^= 0xFF));
        let error = exchange(server, &question(&name), &ask())
            .await
            .unwrap_err();
        assert!(matches!(error, ExchangeError::Mismatch), "{error}");
    }
}
