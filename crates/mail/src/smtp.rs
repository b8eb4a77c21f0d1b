//! The SMTP server side (RFC 5321): one task per connection, commands parsed with
//! smtp-proto, pipelining (RFC 2920), SIZE (RFC 1870), 8BITMIME, ENHANCEDSTATUSCODES.
//!
//! A message is answered `250` only once every local copy is in its Maildir and every
//! external recipient is on the outbound queue, all fsynced. STARTTLS (RFC 3207) on port
//! 25 and submission; implicit TLS on the smtps port (RFC 8314); AUTH PLAIN and LOGIN
//! (RFC 4954) only over TLS, with failed logins rate-limited per client. Relaying is for
//! the LAN, loopback and authenticated users (and the WAN when `relay_from_wan` is on);
//! the submission ports require AUTH.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone, quota_of};
use officebox_store::{NewRecipient, Ret};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, Error as ParseError, MAIL_RET_FULL, MAIL_RET_HDRS, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, Request,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::conn::Conn;
use crate::deliver::{Delivery, Envelope, Store};
use crate::route::{Destination, may_relay, resolve};
use crate::tls::{Auth, authenticate, base64_decode};

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets; we allow a little more.
const MAX_COMMAND: usize = 2048;
/// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
const MAX_RECIPIENTS: usize = 100;
/// RFC 5321 4.5.3.2: the server should wait 5 minutes for a command; idle clients that
/// hold a connection (slowloris) are cut off earlier.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Until a client has said EHLO/HELO or authenticated, it waits this long at most: an
/// address holding connections open without a word cannot keep others out for long.
const GREETING_TIMEOUT: Duration = Duration::from_secs(30);
const DATA_TIMEOUT: Duration = Duration::from_secs(300);
/// Errors before a client is disconnected.
const MAX_ERRORS: u32 = 20;

/// Which of the three SMTP ports a connection came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 25: mail from anywhere, STARTTLS offered.
    Smtp,
    /// 587: users sending, AUTH required, STARTTLS offered.
    Submission,
    /// 465: users sending over TLS from the first byte, AUTH required.
    Smtps,
}

/// What every session shares.
pub struct Shared {
    pub tls: Option<TlsAcceptor>,
    /// Failed logins per address, SMTP AUTH and POP3 together.
    pub limiter: Arc<officebox_secrets::login::Limiter>,
    /// SPF, DKIM, DMARC and ARC for mail from the WAN.
    pub checker: crate::checks::Checker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

struct Session<'a> {
    config: &'a Config,
    store: &'a Arc<Store>,
    peer: SocketAddr,
    helo: Option<String>,
    from: Option<Envelope>,
    to: Vec<Rcpt>,
    errors: u32,
    tls: bool,
    user: Option<String>,
}

/// One accepted recipient with its RFC 3461 parameters.
struct Rcpt {
    address: String,
    dest: Destination,
    notify: Option<u8>,
    orcpt: Option<String>,
}

/// RFC 3461 NOTIFY bits as the queue stores them.
fn notify_bits(flags: u64) -> Option<u8> {
    let mut n = 0;
    for (flag, bit) in [
        (RCPT_NOTIFY_SUCCESS, officebox_store::notify::SUCCESS),
        (RCPT_NOTIFY_FAILURE, officebox_store::notify::FAILURE),
        (RCPT_NOTIFY_DELAY, officebox_store::notify::DELAY),
        (RCPT_NOTIFY_NEVER, officebox_store::notify::NEVER),
    ] {
        if flags & flag != 0 {
            n |= bit;
        }
    }
    (n != 0).then_some(n)
}

/// A DSN parameter value kept only if it is short printable ASCII (it is echoed into
/// notices and to the next server).
fn dsn_text(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| v.len() <= 500 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

use officebox_store::unix_now as now_unix;

/// The message body after DATA: dot-unstuffed, up to the CRLF "." CRLF that ends it.
/// A bare LF is not a line end (SMTP smuggling); a message carrying one is refused.
enum Body {
    Ok(Vec<u8>),
    TooBig,
    BareLf,
}

async fn read_body(conn: &mut Conn, limit: u64) -> io::Result<Option<Body>> {
    let mut body = Vec::new();
    let mut too_big = false;
    let mut bare_lf = false;
    loop {
        let Some(line) = conn.line(1 << 20, DATA_TIMEOUT).await? else {
            return Ok(None);
        };
        let crlf = line.ends_with(b"\r\n");
        if !crlf {
            bare_lf = true;
        }
        if line == b".\r\n" {
            break;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if (body.len() + content.len()) as u64 > limit {
            too_big = true;
            body.clear();
        }
        if !too_big {
            body.extend_from_slice(content);
        }
    }
    Ok(Some(if too_big {
        Body::TooBig
    } else if bare_lf {
        Body::BareLf
    } else {
        Body::Ok(body)
    }))
}

/// Serves one SMTP connection.
pub async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    store: Arc<Store>,
    shared: Arc<Shared>,
    port: Port,
) -> io::Result<()> {
    let host = format!("{}.{}", config.network.hostname, config.network.domain);
    let mut conn = Conn::new(stream);
    let mut tls = false;
    if port == Port::Smtps {
        let Some(acceptor) = &shared.tls else {
            return Ok(());
        };
        conn.start_tls(acceptor).await?;
        tls = true;
    }
    conn.say(&format!("220 {host} ESMTP officebox"));
    let mut s = Session {
        config: &config,
        store: &store,
        peer,
        helo: None,
        from: None,
        to: Vec::new(),
        errors: 0,
        tls,
        user: None,
    };
    loop {
        if s.errors >= MAX_ERRORS {
            conn.say("421 4.7.0 Too many errors, closing");
            break;
        }
        let wait = if s.helo.is_some() || s.user.is_some() {
            COMMAND_TIMEOUT
        } else {
            GREETING_TIMEOUT
        };
        let line = match conn.line(MAX_COMMAND, wait).await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                s.errors += 1;
                conn.say("500 5.5.2 Line too long");
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                conn.say("421 4.4.2 Idle too long, closing");
                break;
            }
            Err(e) => return Err(e),
        };
        if line.contains(&0) {
            s.errors += 1;
            conn.say("500 5.5.2 NUL in command");
            continue;
        }
        let request = Request::parse(&mut line.iter());
        match request {
            Ok(Request::Ehlo { host: client }) => {
                s.helo = Some(client.to_string());
                s.reset();
                let size = config.mail.max_message_size;
                conn.say(&format!("250-{host} greets {client}"));
                conn.say("250-PIPELINING");
                conn.say(&format!("250-SIZE {size}"));
                conn.say("250-8BITMIME");
                conn.say("250-DSN");
                if !s.tls && shared.tls.is_some() {
                    conn.say("250-STARTTLS");
                }
                if s.tls {
                    conn.say("250-AUTH PLAIN LOGIN");
                }
                conn.say("250 ENHANCEDSTATUSCODES");
            }
            Ok(Request::Helo { host: client }) => {
                s.helo = Some(client.to_string());
                s.reset();
                conn.say(&format!("250 {host}"));
            }
            Ok(Request::Mail { from }) => {
                if s.helo.is_none() {
                    s.errors += 1;
                    conn.say("503 5.5.1 Say EHLO first");
                } else if s.from.is_some() {
                    s.errors += 1;
                    conn.say("503 5.5.1 Sender already given");
                } else if port != Port::Smtp && s.user.is_none() {
                    s.errors += 1;
                    conn.say("530 5.7.0 Authentication required");
                } else if from.size as u64 > config.mail.max_message_size {
                    conn.say("552 5.3.4 Message too big for this server");
                } else {
                    s.from = Some(Envelope {
                        from: from.address.to_string(),
                        envid: dsn_text(from.env_id.as_deref()),
                        // The whole message goes back in a notice only to a sender we
                        // know: a stranger naming someone else as MAIL FROM would have
                        // the box mail them a copy (backscatter).
                        ret: if from.flags & MAIL_RET_FULL != 0 && s.trusted() {
                            Some(Ret::Full)
                        } else if from.flags & (MAIL_RET_FULL | MAIL_RET_HDRS) != 0 {
                            Some(Ret::Headers)
                        } else {
                            None
                        },
                    });
                    conn.say("250 2.1.0 Ok");
                }
            }
            Ok(Request::Rcpt { to }) => {
                let mut reply = s.recipient(&to.address, to.flags, to.orcpt.as_deref());
                if reply.starts_with("250") && !s.greylist_pass().await {
                    s.to.pop();
                    reply = "451 4.7.1 Greylisted: this server does not know you yet; please try again later".into();
                }
                if reply.starts_with("250")
                    && let Some(full) = s.full_mailbox().await
                {
                    s.to.pop();
                    info!(message = "smtp: mailbox full; the sender will retry", user = %full);
                    reply = format!(
                        "452 4.2.2 The mailbox of {} is full; try again later",
                        to.address
                    );
                }
                conn.say(&reply);
            }
            Ok(Request::Data) => {
                if s.from.is_none() || s.to.is_empty() {
                    s.errors += 1;
                    conn.say(if s.from.is_none() {
                        "503 5.5.1 Need MAIL first"
                    } else {
                        "554 5.5.1 No valid recipients"
                    });
                    continue;
                }
                conn.say("354 End data with <CR><LF>.<CR><LF>");
                conn.flush().await?;
                let Some(body) = read_body(&mut conn, config.mail.max_message_size).await? else {
                    break;
                };
                let reply = match body {
                    Body::TooBig => "552 5.3.4 Message too big for this server".to_string(),
                    Body::BareLf => {
                        "550 5.6.11 Bare LF is not allowed; lines end with CRLF".to_string()
                    }
                    Body::Ok(body) => s.accept(&host, body, &shared).await,
                };
                s.reset();
                conn.say(&reply);
            }
            Ok(Request::Rset) => {
                s.reset();
                conn.say("250 2.0.0 Ok");
            }
            Ok(Request::Noop { .. }) => conn.say("250 2.0.0 Ok"),
            Ok(Request::Quit) => {
                conn.say("221 2.0.0 Bye");
                break;
            }
            Ok(Request::Vrfy { .. } | Request::Expn { .. }) => {
                conn.say("252 2.5.2 Cannot verify; send some mail and see")
            }
            Ok(Request::StartTls) => {
                let Some(acceptor) = shared.tls.as_ref().filter(|_| !s.tls) else {
                    s.errors += 1;
                    conn.say(if s.tls {
                        "503 5.5.1 TLS already active"
                    } else {
                        "454 4.7.0 TLS not available"
                    });
                    continue;
                };
                conn.say("220 2.0.0 Ready to start TLS");
                conn.flush().await?;
                if !conn.buf.is_empty() {
                    // RFC 3207 section 5: plaintext pipelined after STARTTLS would be taken
                    // as if it came over TLS (a command injection). Refuse the connection.
                    warn!(message = "smtp: data pipelined after STARTTLS; closing", client = %peer);
                    return Ok(());
                }
                conn.start_tls(acceptor).await?;
                // Everything said before TLS is forgotten (RFC 3207 section 4.2).
                s.helo = None;
                s.user = None;
                s.reset();
                s.tls = true;
            }
            Ok(Request::Auth {
                mechanism,
                initial_response,
            }) => {
                let reply = s
                    .auth(&mut conn, &shared, mechanism, &initial_response)
                    .await?;
                conn.say(&reply);
            }
            Ok(_) => {
                s.errors += 1;
                conn.say("502 5.5.1 Command not implemented");
            }
            Err(ParseError::UnknownCommand) => {
                s.errors += 1;
                conn.say("500 5.5.2 Unknown command");
            }
            Err(ParseError::InvalidSenderAddress) => {
                s.errors += 1;
                conn.say("501 5.1.7 Bad sender address syntax");
            }
            Err(ParseError::InvalidRecipientAddress) => {
                s.errors += 1;
                conn.say("501 5.1.3 Bad recipient address syntax");
            }
            Err(ParseError::UnsupportedParameter { param }) => {
                s.errors += 1;
                conn.say(&format!(
                    "555 5.5.4 Unsupported parameter {}",
                    param
                        .chars()
                        .filter(char::is_ascii_graphic)
                        .take(40)
                        .collect::<String>()
                ));
            }
            Err(_) => {
                s.errors += 1;
                conn.say("501 5.5.4 Syntax error");
            }
        }
    }
    conn.flush().await?;
    Ok(())
}

impl Session<'_> {
    /// AUTH PLAIN and LOGIN (RFC 4954, RFC 4616), over TLS only.
    async fn auth(
        &mut self,
        conn: &mut Conn,
        shared: &Shared,
        mechanism: u64,
        initial: &str,
    ) -> io::Result<String> {
        if !self.tls {
            self.errors += 1;
            return Ok(
                "538 5.7.11 Encryption required for requested authentication mechanism".into(),
            );
        }
        if self.user.is_some() {
            self.errors += 1;
            return Ok("503 5.5.1 Already authenticated".into());
        }
        if shared.limiter.locked(self.peer.ip()) {
            return Ok("454 4.7.0 Too many failed logins; try again later".into());
        }
        let ask = async |conn: &mut Conn, prompt: &str| -> io::Result<Option<String>> {
            conn.say(&format!("334 {prompt}"));
            let Some(line) = conn.line(MAX_COMMAND, COMMAND_TIMEOUT).await? else {
                return Ok(None);
            };
            let text = String::from_utf8_lossy(&line).trim().to_string();
            Ok((text != "*").then_some(text))
        };
        let (user, password) = match mechanism {
            AUTH_PLAIN => {
                let response = if initial.is_empty() {
                    match ask(conn, "").await? {
                        Some(r) => r,
                        None => return Ok("501 5.7.0 Authentication cancelled".into()),
                    }
                } else {
                    initial.to_string()
                };
                let Some(decoded) = base64_decode(&response) else {
                    return Ok("501 5.5.2 Bad base64".into());
                };
                let mut parts = decoded
                    .split(|&b| b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                let (_authz, user, password) = (parts.next(), parts.next(), parts.next());
                match (user, password) {
                    (Some(u), Some(p)) => (u, p),
                    _ => return Ok("501 5.5.2 Malformed PLAIN response".into()),
                }
            }
            AUTH_LOGIN => {
                let user = if initial.is_empty() {
                    match ask(conn, "VXNlcm5hbWU6").await? {
                        Some(u) => u,
                        None => return Ok("501 5.7.0 Authentication cancelled".into()),
                    }
                } else {
                    initial.to_string()
                };
                let Some(password) = ask(conn, "UGFzc3dvcmQ6").await? else {
                    return Ok("501 5.7.0 Authentication cancelled".into());
                };
                let decode =
                    |t: &str| base64_decode(t).map(|b| String::from_utf8_lossy(&b).into_owned());
                match (decode(&user), decode(&password)) {
                    (Some(u), Some(p)) => (u, p),
                    _ => return Ok("501 5.5.2 Bad base64".into()),
                }
            }
            _ => return Ok("504 5.5.4 Unrecognized authentication mechanism".into()),
        };
        // The attempt counts from now, when its password is here: whatever was checked
        // when AUTH began, guesses sent in parallel are limited as if sent in turn.
        let Ok(attempt) = shared.limiter.begin(self.peer.ip()).await else {
            return Ok("454 4.7.0 Too many failed logins; try again later".into());
        };
        match authenticate(self.config, &user, &password).await {
            Auth::Ok(login) => {
                attempt.succeeded();
                info!(message = "smtp: authenticated", client = %self.peer, user = %login);
                self.user = Some(login);
                Ok("235 2.7.0 Authentication successful".into())
            }
            Auth::Busy => {
                attempt.withdrawn();
                Ok("454 4.3.0 Too busy to check passwords now; try again later".into())
            }
            Auth::Wrong => {
                attempt.failed();
                warn!(message = "smtp: authentication failed", client = %self.peer);
                // A pause before the answer slows password guessing further.
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok("535 5.7.8 Authentication credentials invalid".into())
            }
        }
    }

    /// Whether the sender is one of ours (authenticated, or on the LAN or this machine),
    /// whose delivery notices may go where its MAIL FROM says.
    fn trusted(&self) -> bool {
        self.user.is_some() || client_zone(&self.config.network, self.peer.ip()) != ClientZone::Wan
    }

    /// Who sends a fax: the user logged in, else (from the LAN or this machine) the user
    /// whose own address is the sender; `None` for anyone else.
    fn fax_sender(&self) -> Option<String> {
        if let Some(login) = &self.user {
            return Some(login.clone());
        }
        if client_zone(&self.config.network, self.peer.ip()) == ClientZone::Wan {
            return None;
        }
        let (local, domain) = crate::route::split(&self.from.as_ref()?.from)?;
        if !crate::route::is_our_domain(self.config, &domain) {
            return None;
        }
        self.config
            .users
            .iter()
            .find(|u| u.login == local)
            .map(|u| u.login.clone())
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn recipient(&mut self, address: &str, flags: u64, orcpt: Option<&str>) -> String {
        if self.from.is_none() {
            self.errors += 1;
            return "503 5.5.1 Need MAIL first".into();
        }
        if self.to.len() >= MAX_RECIPIENTS {
            return "452 4.5.3 Too many recipients".into();
        }
        let dest = resolve(self.config, address);
        match &dest {
            Destination::Unknown => {
                self.errors += 1;
                return "550 5.1.1 No such user here".into();
            }
            Destination::Foreign(_) => {
                let zone = client_zone(&self.config.network, self.peer.ip());
                if !may_relay(self.config, zone, self.user.is_some()) {
                    self.errors += 1;
                    info!(message = "smtp: relay refused", client = %self.peer, recipient = address);
                    return "554 5.7.1 Relay access denied".into();
                }
            }
            Destination::Fax(number) => {
                if self.fax_sender().is_none() {
                    self.errors += 1;
                    info!(message = "smtp: fax refused to a stranger", client = %self.peer, number = %number);
                    return "550 5.7.1 Only the office's users may send faxes: log in first".into();
                }
            }
            Destination::Local { .. } => {}
        }
        let mut notify = notify_bits(flags);
        if !self.trusted() {
            // A success notice goes to the MAIL FROM address, which a stranger names at
            // will: only failures are reported to it (a sender that asked for success
            // notices alone hears nothing).
            notify = notify.map(|n| match n & !officebox_store::notify::SUCCESS {
                0 => officebox_store::notify::NEVER,
                rest => rest,
            });
        }
        self.to.push(Rcpt {
            address: address.to_string(),
            dest,
            notify,
            orcpt: dsn_text(orcpt),
        });
        "250 2.1.5 Ok".into()
    }

    /// A mailbox of the recipient just accepted that is at its quota (the sender is told
    /// to try again later: the mail waits at their server, and nothing is lost here).
    async fn full_mailbox(&self) -> Option<String> {
        let Destination::Local { mailboxes, .. } = &self.to.last()?.dest else {
            return None;
        };
        let limited: Vec<(String, u64)> = mailboxes
            .iter()
            .filter_map(|l| Some((l.clone(), quota_of(self.config, l)?)))
            .collect();
        if limited.is_empty() {
            return None;
        }
        let store = Arc::clone(self.store);
        tokio::task::spawn_blocking(move || {
            limited
                .into_iter()
                .find(|(l, quota)| store.usage(l).is_ok_and(|used| used >= *quota))
                .map(|(l, _)| l)
        })
        .await
        .ok()
        .flatten()
    }

    /// Whether the recipient just accepted may be delivered to now, under greylisting
    /// (`mail.greylisting`): always for the office's own senders, for mail to other
    /// domains (which strangers cannot send) and when greylisting is off; else once the
    /// (client network, sender, recipient) came back after `mail.greylist_delay`. A
    /// database that cannot be read lets the mail through.
    async fn greylist_pass(&self) -> bool {
        if !self.config.mail.greylisting || self.trusted() {
            return true;
        }
        let Some(rcpt) = self.to.last() else {
            return true;
        };
        if !matches!(rcpt.dest, Destination::Local { .. } | Destination::Fax(_)) {
            return true;
        }
        let network = match self.peer.ip() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        let sender = self
            .from
            .as_ref()
            .map(|e| e.from.to_ascii_lowercase())
            .unwrap_or_default();
        let recipient = rcpt.address.to_ascii_lowercase();
        let delay = i64::try_from(self.config.mail.greylist_delay.as_secs()).unwrap_or(i64::MAX);
        let store = Arc::clone(self.store);
        let peer = self.peer;
        let pass = tokio::task::spawn_blocking(move || {
            store.with_db(|db| db.greylist_pass(&network, &sender, &recipient, now_unix(), delay))
        })
        .await;
        match pass {
            Ok(Ok(pass)) => {
                if !pass {
                    info!(message = "smtp: greylisted", client = %peer);
                }
                pass
            }
            Ok(Err(error)) => {
                warn!(message = "smtp: greylisting cannot read its table; letting the mail through", %error);
                true
            }
            Err(_) => true,
        }
    }

    /// Stores the message everywhere it goes; the reply says whether all of it is safe.
    /// Mail from the WAN is checked first (`checks`): refused under its domain's DMARC
    /// reject, else stored with the outcome above it (in Junk when that is asked for).
    async fn accept(&self, host: &str, body: Vec<u8>, shared: &Shared) -> String {
        let envelope = self.from.clone().unwrap_or_default();
        let (body, judgement) = if self.trusted() {
            (body, None)
        } else {
            let body = crate::checks::strip_forged_results(&body, host);
            let helo = self.helo.as_deref().unwrap_or("");
            let j = shared
                .checker
                .judge(
                    self.config,
                    host,
                    self.peer.ip(),
                    helo,
                    &envelope.from,
                    &body,
                )
                .await;
            if let Some(refusal) = j.refuse {
                return refusal;
            }
            (body, Some(j))
        };
        let stamp = officebox_store::date::rfc5322_date(SystemTime::now());
        let received = format!(
            "Received: from {} ({})\r\n\tby {host} (officebox) with ESMTP;\r\n\t{stamp}\r\n",
            self.helo
                .as_deref()
                .unwrap_or("unknown")
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(100)
                .collect::<String>(),
            self.peer.ip(),
        );
        let mut message = Vec::with_capacity(received.len() + body.len() + 512);
        if let Some(j) = &judgement {
            message.extend_from_slice(j.header.as_bytes());
        }
        message.extend_from_slice(received.as_bytes());
        message.extend_from_slice(&body);
        let mut delivery = Delivery {
            junk: self.config.mail.junk_failed_checks
                && judgement.as_ref().is_some_and(|j| j.failed),
            ..Delivery::default()
        };
        let mut faxes: Vec<String> = Vec::new();
        for rcpt in &self.to {
            match &rcpt.dest {
                Destination::Local { mailboxes, forward } => {
                    delivery.mailboxes.extend(mailboxes.iter().cloned());
                    for f in forward {
                        // Expanded from an alias: the original recipient is the alias.
                        delivery.forward(NewRecipient {
                            address: f.clone(),
                            notify: rcpt.notify,
                            orcpt: rcpt
                                .orcpt
                                .clone()
                                .or_else(|| Some(format!("rfc822;{}", rcpt.address))),
                        });
                    }
                }
                Destination::Foreign(a) => delivery.forward(NewRecipient {
                    address: a.clone(),
                    notify: rcpt.notify,
                    orcpt: rcpt.orcpt.clone(),
                }),
                Destination::Fax(number) => {
                    if !faxes.contains(number) {
                        faxes.push(number.clone());
                    }
                }
                Destination::Unknown => {
                    debug!(
                        message = "smtp: unknown recipient kept out",
                        address = rcpt.address
                    )
                }
            }
        }
        // Local recipients that asked to hear of their delivery (RFC 3461).
        let success: Vec<(String, Option<String>)> = self
            .to
            .iter()
            .filter(|r| {
                matches!(r.dest, Destination::Local { ref mailboxes, .. } if !mailboxes.is_empty())
                    && r.notify.is_some_and(|n| {
                        officebox_store::wants(Some(n), officebox_store::notify::SUCCESS)
                    })
            })
            .map(|r| (r.address.clone(), r.orcpt.clone()))
            .collect();
        let store = Arc::clone(self.store);
        let config = self.config.clone();
        let fax_from = self.fax_sender();
        // No automatic reply to mail that failed its checks: its sender is likely forged,
        // and the reply would go to someone who never wrote (backscatter).
        let may_answer = !judgement.as_ref().is_some_and(|j| j.failed);
        let result = tokio::task::spawn_blocking(move || {
            let now = now_unix();
            let mut id = store.deliver(&envelope, &message, &delivery, now)?;
            if let Err(error) =
                store.after_delivery(&config, &delivery.mailboxes, message.len() as u64, now)
            {
                warn!(message = "smtp: could not count the mailboxes' size", %error);
            }
            if may_answer
                && let Err(error) = crate::vacation::answer(
                    &config,
                    &store,
                    &envelope.from,
                    &message,
                    &delivery.mailboxes,
                    now,
                )
            {
                warn!(message = "smtp: could not look up out-of-office replies", %error);
            }
            if let Some(login) = fax_from.filter(|_| !faxes.is_empty()) {
                crate::fax::queue(&config, &store, &login, &faxes, &message, now)?;
                if id.is_empty() {
                    id = "fax queued".to_string();
                }
            }
            if let Err(error) = crate::queue::local_success_notice(
                &config, &store, &envelope, &success, &message, now,
            ) {
                warn!(message = "smtp: could not send a success notice", %error);
            }
            Ok::<_, officebox_store::StoreError>(id)
        })
        .await;
        match result {
            Ok(Ok(id)) => format!("250 2.0.0 Ok: {id}"),
            Ok(Err(error)) => {
                warn!(message = "smtp: message not stored; the sender will retry", %error);
                "451 4.3.0 Cannot store the message now; try again later".into()
            }
            Err(error) => {
                warn!(message = "smtp: delivery task failed", %error);
                "451 4.3.0 Cannot store the message now; try again later".into()
            }
        }
    }
}
