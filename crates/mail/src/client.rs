//! The SMTP client: hands one message to the mail hosts of one domain (RFC 5321 section
//! 5.1: MX hosts by preference, each address in turn), with STARTTLS whenever the far side
//! offers it (falling back to plain text if the handshake fails, RFC 7435), PIPELINING,
//! SIZE and DSN (RFC 3461) when offered. Each recipient gets its own verdict.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use officebox_store::{Ret, notify};
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_START_TLS, EhloResponse,
    Error as ParseError,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::conn::Conn;
use crate::resolve::Resolver;
use crate::tls::server_name;

/// RFC 5321 section 4.5.3.2 timeouts, a little shortened where the RFC allows.
const CONNECT: Duration = Duration::from_secs(30);
const GREETING: Duration = Duration::from_secs(300);
const COMMAND: Duration = Duration::from_secs(300);
const DATA_END: Duration = Duration::from_secs(600);
/// A reply line longer than this is not SMTP.
const MAX_REPLY_LINE: usize = 4096;
/// Reply lines per reply.
const MAX_REPLY_LINES: usize = 100;
/// Hosts tried per delivery (RFC 5321 section 4.5.4.1 suggests a limit).
const MAX_HOSTS: usize = 5;

/// The message and its envelope, as one delivery attempt sends them.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub sender: &'a str,
    pub recipients: &'a [Recipient],
    pub envid: Option<&'a str>,
    pub ret: Option<Ret>,
    pub message: &'a [u8],
}

/// One recipient with its RFC 3461 parameters.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: String,
    pub notify: Option<u8>,
    pub orcpt: Option<String>,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Taken by `remote`; its reply; whether the DSN parameters went along.
    Delivered {
        remote: String,
        reply: String,
        dsn: bool,
    },
    /// Try again later.
    Temporary(String),
    /// Refused for good.
    Permanent(String),
}

/// An SMTP reply as smtp-proto's reply parser read it.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    /// The enhanced status code (RFC 3463), if the reply had one.
    status: Option<[u8; 3]>,
    /// The text of the last line, after the codes: what the reply says in the end.
    text: String,
    /// The reply as received, for the EHLO parser.
    raw: Vec<u8>,
}

impl Reply {
    fn class(&self) -> u16 {
        self.code / 100
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some([class, subject, detail]) = self.status {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        write!(f, " {}", self.text)
    }
}

/// How one attempt with one host ended before recipients had verdicts.
#[derive(Debug)]
enum HostError {
    /// Try the next address or host.
    Next(String),
    /// The TLS handshake failed: this host again, in plain text.
    Tls(String),
}

/// The client's fixed settings.
#[derive(Clone)]
pub struct Client {
    pub resolver: Resolver,
    /// Our name in EHLO.
    pub helo: String,
    pub tls: Option<TlsConnector>,
    /// The port mail hosts listen on (25).
    pub port: u16,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("helo", &self.helo)
            .field("port", &self.port)
            .finish()
    }
}

impl Client {
    /// Delivers `out` to the mail hosts of `domain`: one verdict per recipient, in order.
    pub async fn deliver(&self, domain: &str, out: &Outgoing<'_>) -> Vec<Verdict> {
        let all = |v: Verdict| vec![v; out.recipients.len()];
        let hosts = match self.resolver.mail_hosts(domain).await {
            Ok(h) => h,
            Err(e) if e.is_permanent() => return all(Verdict::Permanent(format!("5.1.2 {e}"))),
            Err(e) => return all(Verdict::Temporary(format!("4.4.3 {e}"))),
        };
        let mut last = format!("4.4.1 no mail host of {domain} answered");
        let mut permanent_lookup = true;
        for host in hosts.iter().take(MAX_HOSTS) {
            let addresses = match self.resolver.addresses(host).await {
                Ok(a) => {
                    permanent_lookup = false;
                    a
                }
                Err(e) => {
                    permanent_lookup &= e.is_permanent();
                    last = format!("4.4.3 {e}");
                    continue;
                }
            };
            for ip in addresses {
                let addr = SocketAddr::new(ip, self.port);
                let mut tls = self.tls.as_ref();
                loop {
                    match self.session(host, addr, tls, out).await {
                        Ok(verdicts) => return verdicts,
                        Err(HostError::Tls(e)) if tls.is_some() => {
                            debug!(message = "smtp out: TLS failed; again in plain text", %addr, error = %e);
                            tls = None;
                        }
                        Err(HostError::Tls(e) | HostError::Next(e)) => {
                            debug!(message = "smtp out: host failed", %host, %addr, error = %e);
                            last = format!("4.4.1 {host} [{addr}]: {e}");
                            break;
                        }
                    }
                }
            }
        }
        if permanent_lookup && !hosts.is_empty() {
            return all(Verdict::Permanent(format!(
                "5.4.4 no mail host of {domain} has an address"
            )));
        }
        all(Verdict::Temporary(last))
    }

    async fn session(
        &self,
        host: &str,
        addr: SocketAddr,
        tls: Option<&TlsConnector>,
        out: &Outgoing<'_>,
    ) -> Result<Vec<Verdict>, HostError> {
        let next = |e: io::Error| HostError::Next(e.to_string());
        let stream = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
            .await
            .map_err(|_| HostError::Next("connection timed out".into()))?
            .map_err(next)?;
        let mut conn = Conn::new(stream);
        let greeting = reply(&mut conn, GREETING).await.map_err(next)?;
        if greeting.class() != 2 {
            return Err(HostError::Next(format!("greeting: {greeting}")));
        }
        let mut ext = self.hello(&mut conn).await?;
        if let Some(connector) = tls.filter(|_| ext.starttls) {
            let r = command(&mut conn, "STARTTLS", COMMAND)
                .await
                .map_err(next)?;
            if r.class() == 2 {
                let name = server_name(host).or_else(|_| server_name(&addr.ip().to_string()));
                let name = name.map_err(|e| HostError::Tls(e.to_string()))?;
                conn.start_tls_client(connector, name)
                    .await
                    .map_err(|e| HostError::Tls(e.to_string()))?;
                ext = self.hello(&mut conn).await?;
            }
        }
        let remote = format!("{host} [{}]", addr.ip());
        let verdicts = transaction(&mut conn, &ext, &remote, out).await;
        // QUIT is a courtesy; the verdicts stand whatever it says.
        conn.say("QUIT");
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.flush()).await;
        verdicts
    }

    /// EHLO (HELO when EHLO is refused); what the server offers.
    async fn hello(&self, conn: &mut Conn) -> Result<Extensions, HostError> {
        let next = |e: io::Error| HostError::Next(e.to_string());
        let r = command(conn, &format!("EHLO {}", self.helo), COMMAND)
            .await
            .map_err(next)?;
        if r.class() == 2 {
            return Ok(Extensions::parse(&r));
        }
        let r = command(conn, &format!("HELO {}", self.helo), COMMAND)
            .await
            .map_err(next)?;
        if r.class() == 2 {
            Ok(Extensions::default())
        } else {
            Err(HostError::Next(format!("HELO: {r}")))
        }
    }
}

/// What EHLO said the server can do.
#[derive(Debug, Default)]
struct Extensions {
    starttls: bool,
    pipelining: bool,
    dsn: bool,
    eightbit: bool,
    size: Option<u64>,
}

impl Extensions {
    /// What a `250` reply to EHLO offers, read by smtp-proto's EHLO parser. A reply it
    /// cannot read (an odd keyword's argument, say) is read line by line for the keywords
    /// the client uses, so a server's STARTTLS is not lost to a quirk elsewhere.
    fn parse(r: &Reply) -> Extensions {
        let ehlo = match EhloResponse::parse(&mut r.raw.iter()) {
            Ok(ehlo) => ehlo,
            Err(error) => {
                debug!(message = "smtp out: EHLO reply read by keyword", ?error);
                return Extensions::by_keyword(&r.raw);
            }
        };
        let has = |ext| ehlo.capabilities & ext != 0;
        Extensions {
            starttls: has(EXT_START_TLS),
            pipelining: has(EXT_PIPELINING),
            dsn: has(EXT_DSN),
            eightbit: has(EXT_8BIT_MIME),
            size: Some(ehlo.size as u64).filter(|&n| has(EXT_SIZE) && n > 0),
        }
    }
}

impl Extensions {
    /// The keywords of an EHLO reply, each line's text after its code.
    fn by_keyword(raw: &[u8]) -> Extensions {
        let mut e = Extensions::default();
        for line in String::from_utf8_lossy(raw).lines() {
            let Some(text) = line.get(4..) else { continue };
            let mut words = text.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => e.starttls = true,
                "PIPELINING" => e.pipelining = true,
                "DSN" => e.dsn = true,
                "8BITMIME" => e.eightbit = true,
                "SIZE" => e.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                _ => {}
            }
        }
        e
    }
}

/// RFC 3461 xtext: `+XX` for '+', '=' and anything outside printable ASCII.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// MAIL, RCPT for each recipient, DATA: the verdicts, or an error that means another
/// host should be tried.
async fn transaction(
    conn: &mut Conn,
    ext: &Extensions,
    remote: &str,
    out: &Outgoing<'_>,
) -> Result<Vec<Verdict>, HostError> {
    let next = |e: io::Error| HostError::Next(e.to_string());
    let n = out.recipients.len();
    let size = out.message.len() as u64;
    if let Some(max) = ext.size.filter(|&max| size > max) {
        return Ok(vec![
            Verdict::Permanent(format!(
                "5.3.4 {remote} takes messages up to {max} bytes; this one is {size}"
            ));
            n
        ]);
    }
    let mut mail = format!("MAIL FROM:<{}>", out.sender);
    if ext.size.is_some() {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if ext.eightbit && out.message.iter().any(|&b| b >= 0x80) {
        mail.push_str(" BODY=8BITMIME");
    }
    if ext.dsn {
        match out.ret {
            Some(Ret::Full) => mail.push_str(" RET=FULL"),
            Some(Ret::Headers) => mail.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(id) = out.envid {
            mail.push_str(&format!(" ENVID={}", xtext(id)));
        }
    }
    let rcpt_lines: Vec<String> = out
        .recipients
        .iter()
        .map(|r| {
            let mut line = format!("RCPT TO:<{}>", r.address);
            if ext.dsn {
                if let Some(bits) = r.notify {
                    let words: Vec<&str> = [
                        (notify::SUCCESS, "SUCCESS"),
                        (notify::FAILURE, "FAILURE"),
                        (notify::DELAY, "DELAY"),
                    ]
                    .iter()
                    .filter(|(b, _)| bits & b != 0)
                    .map(|(_, w)| *w)
                    .collect();
                    let value = if bits & notify::NEVER != 0 || words.is_empty() {
                        "NEVER".to_string()
                    } else {
                        words.join(",")
                    };
                    line.push_str(&format!(" NOTIFY={value}"));
                }
                if let Some(o) = &r.orcpt {
                    // Stored as given: `addr-type;xtext`.
                    line.push_str(&format!(" ORCPT={o}"));
                }
            }
            line
        })
        .collect();

    // MAIL and RCPT: all at once when pipelining, else one by one.
    let mut replies = Vec::with_capacity(n + 1);
    if ext.pipelining {
        conn.say(&mail);
        for l in &rcpt_lines {
            conn.say(l);
        }
        conn.flush().await.map_err(next)?;
        for _ in 0..=n {
            replies.push(reply(conn, COMMAND).await.map_err(next)?);
        }
    } else {
        let r = command(conn, &mail, COMMAND).await.map_err(next)?;
        let ok = r.class() == 2;
        replies.push(r);
        if ok {
            for l in &rcpt_lines {
                replies.push(command(conn, l, COMMAND).await.map_err(next)?);
            }
        }
    }
    let Some((mail_reply, rcpt_replies)) = replies.split_first() else {
        return Err(HostError::Next("no reply to MAIL".into()));
    };
    match mail_reply.class() {
        2 => {}
        5 => {
            return Ok(vec![
                Verdict::Permanent(format!(
                    "{remote} said: {mail_reply}"
                ));
                n
            ]);
        }
        _ => return Err(HostError::Next(format!("MAIL: {mail_reply}"))),
    }
    // A recipient's verdict so far: None while it is accepted (and waits for DATA).
    let mut verdicts: Vec<Option<Verdict>> = vec![None; n];
    for (verdict, r) in verdicts.iter_mut().zip(rcpt_replies) {
        *verdict = match r.class() {
            2 => None,
            5 => Some(Verdict::Permanent(format!("{remote} said: {r}"))),
            _ => Some(Verdict::Temporary(format!("{remote} said: {r}"))),
        };
    }
    // Every accepted recipient shares what becomes of the message.
    let settle = |verdicts: &mut Vec<Option<Verdict>>, v: Verdict| {
        for verdict in verdicts.iter_mut().filter(|v| v.is_none()) {
            *verdict = Some(v.clone());
        }
    };
    if verdicts.iter().all(Option::is_some) {
        conn.say("RSET");
        return Ok(verdicts.into_iter().flatten().collect());
    }
    let r = command(conn, "DATA", COMMAND).await.map_err(next)?;
    if r.code != 354 {
        let v = if r.class() == 5 {
            Verdict::Permanent(format!("{remote} said: {r}"))
        } else {
            Verdict::Temporary(format!("{remote} said: {r}"))
        };
        settle(&mut verdicts, v);
        return Ok(verdicts.into_iter().flatten().collect());
    }
    send_body(conn, out.message).await.map_err(next)?;
    // After the final dot the far side may have taken the message: from here on a lost
    // connection is a temporary failure of these recipients, not of the host.
    let v = match reply(conn, DATA_END).await {
        Ok(r) if r.class() == 2 => Verdict::Delivered {
            remote: remote.to_string(),
            reply: r.to_string(),
            dsn: ext.dsn,
        },
        Ok(r) if r.class() == 5 => Verdict::Permanent(format!("{remote} said: {r}")),
        Ok(r) => Verdict::Temporary(format!("{remote} said: {r}")),
        Err(e) => Verdict::Temporary(format!("{remote}: no answer after the message: {e}")),
    };
    settle(&mut verdicts, v);
    Ok(verdicts.into_iter().flatten().collect())
}

/// The message, dot-stuffed, ending in CRLF "." CRLF.
async fn send_body(conn: &mut Conn, message: &[u8]) -> io::Result<()> {
    let mut at_line_start = true;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for &b in message {
        if at_line_start && b == b'.' {
            chunk.push(b'.');
        }
        chunk.push(b);
        at_line_start = b == b'\n';
        if chunk.len() >= 60 * 1024 {
            conn.raw(&chunk);
            conn.flush().await?;
            chunk.clear();
        }
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        chunk.extend_from_slice(b"\r\n");
    }
    chunk.extend_from_slice(b".\r\n");
    conn.raw(&chunk);
    conn.flush().await
}

async fn command(conn: &mut Conn, line: &str, wait: Duration) -> io::Result<Reply> {
    conn.say(line);
    conn.flush().await?;
    reply(conn, wait).await
}

/// Reads one (possibly multi-line) reply, parsed by smtp-proto.
async fn reply(conn: &mut Conn, wait: Duration) -> io::Result<Reply> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut receiver = ResponseReceiver::default();
    let mut raw = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let line = conn
            .line(MAX_REPLY_LINE, wait)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
        raw.extend_from_slice(&line);
        match receiver.parse(&mut line.iter()) {
            Ok(r) if (200..600).contains(&r.code) => {
                let status = (r.esc != [0, 0, 0]).then_some(r.esc);
                let text = r
                    .message
                    .rsplit('\n')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                return Ok(Reply {
                    code: r.code,
                    status,
                    text,
                    raw,
                });
            }
            Err(ParseError::NeedsMoreData { .. }) => {}
            Err(ParseError::ResponseTooLong) => return Err(invalid("reply too long".into())),
            Ok(_) | Err(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                return Err(invalid(format!("not SMTP: {text:.80}")));
            }
        }
    }
    Err(invalid("reply too long".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_controls() {
        assert_eq!(xtext("abc+d=e f"), "abc+2Bd+3De+20f");
    }

    /// The reply the far side sends in `bytes`, read as the client reads it.
    async fn read(bytes: &[u8]) -> io::Result<Reply> {
        let mut conn = Conn::new(std::io::Cursor::new(bytes.to_vec()));
        reply(&mut conn, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn replies_keep_their_code_status_and_last_line() {
        let r = read(b"550 5.1.1 <nobody@far.test>: User unknown\r\n")
            .await
            .unwrap();
        assert_eq!((r.code, r.class()), (550, 5));
        assert_eq!(r.to_string(), "550 5.1.1 <nobody@far.test>: User unknown");
        let r = read(b"451-4.7.1 first line\r\n451-4.7.1 second\r\n451 4.7.1 try later\r\n")
            .await
            .unwrap();
        assert_eq!(r.to_string(), "451 4.7.1 try later");
        let r = read(b"220 mx.far.test ESMTP\r\n").await.unwrap();
        assert_eq!(r.to_string(), "220 mx.far.test ESMTP");
        let r = read(b"354\r\n").await.unwrap();
        assert_eq!(r.code, 354);
        for bad in [&b"hello\r\n"[..], b"250x\r\n", b"999 no\r\n", b"\r\n"] {
            let e = read(bad).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        let e = read(b"250-more to come\r\n").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn extensions_from_an_ehlo_reply() {
        let r = read(
            b"250-mx.far.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-starttls\r\n\
              250-AUTH=LOGIN PLAIN\r\n250-X-ODD-THING=1\r\n250 DSN\r\n",
        )
        .await
        .unwrap();
        let e = Extensions::parse(&r);
        assert!(e.starttls && e.pipelining && e.dsn && !e.eightbit);
        assert_eq!(e.size, Some(10_240_000));
        let r = read(b"250-mx.far.test\r\n250-SIZE\r\n250 8BITMIME\r\n")
            .await
            .unwrap();
        let e = Extensions::parse(&r);
        assert!(e.eightbit && !e.starttls && !e.pipelining);
        assert_eq!(e.size, None, "SIZE without a number sets no limit");
        // A quirk smtp-proto refuses (a bad FUTURERELEASE argument) loses no STARTTLS.
        let r =
            read(b"250-mx.far.test\r\n250-FUTURERELEASE x y\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
                .await
                .unwrap();
        let e = Extensions::parse(&r);
        assert!(e.starttls);
        assert_eq!(e.size, Some(1000));
        let e = Extensions::by_keyword(b"250-mx\r\n250-starttls\r\n250 SIZE 5\r\n");
        assert!(e.starttls && !e.dsn);
        assert_eq!(e.size, Some(5));
    }
}
