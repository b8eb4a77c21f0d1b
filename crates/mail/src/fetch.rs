//! The POP3 fetcher: brings the mail waiting in external mailboxes (a user's own at the
//! ISP, or the office's one shared ISP mailbox) into the local ones.
//!
//! Each account is polled on its schedule (or at once after `officebox mail fetch now`).
//! A message is delivered, fsynced, and only then recorded as fetched (by its UIDL, or a
//! hash of its headers when the server has no UIDL) and, if the account does not keep
//! mail on the server, deleted there. A poll cut short (`kill -9`, a lost connection)
//! between the delivery and the record would fetch the message again; the delivery's name
//! carries a tag made of the account and the UID, so the second delivery sees the first
//! and is skipped. Nothing is lost and nothing arrives twice.
//!
//! The shared mailbox (`[mail.catch_all]`) is sorted by each message's envelope recipients
//! as the ISP recorded them (Delivered-To, X-Original-To, X-Envelope-To, `for` in
//! Received), then To and Cc, through the aliases; what matches nobody goes to the admin.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mail_parser::{HeaderName, HeaderValue, MessageParser};
use officebox_config::{Config, Pop3Account, Pop3Tls};
use officebox_store::{FetchStatus, Maildir, NewRecipient, StoreError};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::conn::Conn;
use crate::deliver::{Delivery, Envelope, Store};
use crate::resolve::Resolver;
use crate::route::{Destination, resolve};
use crate::tls::{opportunistic_connector, server_name, verifying_connector};
use officebox_store::date::rfc5322_date;

/// Accounts polled at once.
const MAX_POLLS: usize = 4;
/// How often the runner looks at the schedule (and so how soon it sees `fetch now`).
const TICK: Duration = Duration::from_secs(1);
/// Timeouts for the server.
const CONNECT: Duration = Duration::from_secs(30);
const RESPONSE: Duration = Duration::from_secs(120);
/// A status line longer than this is not POP3.
const MAX_LINE: usize = 8192;
/// A message longer than this is left on the server (and reported).
const MAX_MESSAGE: usize = 64 << 20;
/// The longest wait between polls after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Whose mailbox an account feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(String),
    /// The shared ISP mailbox, sorted out to everybody.
    CatchAll,
}

/// One external mailbox to fetch.
#[derive(Debug, Clone)]
pub struct Account {
    /// Stable name in the state database and in `mail fetch status`.
    pub key: String,
    pub owner: Owner,
    pub pop3: Pop3Account,
}

impl Account {
    /// Where this account's mail goes, in words.
    pub fn describe_target(&self) -> String {
        match &self.owner {
            Owner::User(login) => format!("{login}'s mailbox"),
            Owner::CatchAll => "everybody (catch-all; unmatched mail to the admin)".into(),
        }
    }
}

/// Every external mailbox in the config.
pub fn accounts(config: &Config) -> Vec<Account> {
    let name = |a: &Pop3Account| format!("{}@{}:{}", a.login, a.server, a.port);
    let mut out: Vec<Account> = config
        .users
        .iter()
        .flat_map(|u| {
            u.pop3.iter().map(|a| Account {
                key: format!("{}:{}", u.login, name(a)),
                owner: Owner::User(u.login.clone()),
                pop3: a.clone(),
            })
        })
        .collect();
    if let Some(a) = &config.mail.catch_all {
        out.push(Account {
            key: format!("catch-all:{}", name(a)),
            owner: Owner::CatchAll,
            pop3: a.clone(),
        });
    }
    out
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("TLS with {server}: {error}")]
    Tls { server: String, error: String },
    #[error("{server} refused the login: {reply}")]
    Login { server: String, reply: String },
    #[error("{server}: {what}")]
    Protocol { server: String, what: String },
    #[error("{server}: {error}")]
    Io { server: String, error: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

use officebox_store::unix_now as now_unix;

/// Runs the fetcher until `shutdown`.
pub async fn run(
    mut config_rx: watch::Receiver<Arc<Config>>,
    store: Arc<Store>,
    shutdown: CancellationToken,
) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(MAX_POLLS));
    let mut tasks = JoinSet::new();
    loop {
        let config = Arc::clone(&config_rx.borrow_and_update());
        let now = now_unix();
        for account in accounts(&config) {
            if busy
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&account.key)
            {
                continue;
            }
            let key = account.key.clone();
            let s = Arc::clone(&store);
            // Read the schedule and, when the account is due, claim it in one go, so
            // that a `fetch now` made from here on is kept for the next poll.
            let due = tokio::task::spawn_blocking(move || {
                s.with_db(|db| {
                    let status = db.fetch_status(&key)?;
                    if status.next_poll_at > now {
                        return Ok::<_, StoreError>(None);
                    }
                    db.claim_fetch(&key)?;
                    Ok(Some(status))
                })
            })
            .await;
            let Ok(Ok(Some(status))) = due else {
                continue;
            };
            busy.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(account.key.clone());
            let (config, store, busy, slots) = (
                Arc::clone(&config),
                Arc::clone(&store),
                Arc::clone(&busy),
                Arc::clone(&slots),
            );
            tasks.spawn(async move {
                if let Ok(_permit) = slots.acquire_owned().await {
                    poll_and_record(&config, &store, &account, status).await;
                }
                busy.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&account.key);
            });
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = config_rx.changed() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
    // A poll cut off here is safe: see the module documentation.
    tasks.shutdown().await;
}

async fn poll_and_record(
    config: &Config,
    store: &Arc<Store>,
    account: &Account,
    mut status: FetchStatus,
) {
    let started = now_unix();
    let result = poll(config, store, account).await;
    let now = now_unix();
    status.account = account.key.clone();
    status.last_attempt_at = Some(started);
    let interval = account.pop3.poll_interval;
    match result {
        Ok(n) => {
            if n > 0 {
                info!(message = "fetch: messages fetched", account = %account.key, count = n);
            }
            status.last_success_at = Some(now);
            status.last_error = None;
            status.failures = 0;
            status.fetched += i64::try_from(n).unwrap_or(0);
            status.next_poll_at = now + i64::try_from(interval.as_secs()).unwrap_or(300);
        }
        Err((n, error)) => {
            warn!(message = "fetch: poll failed", account = %account.key, %error);
            status.last_error = Some(error.to_string());
            status.failures += 1;
            status.fetched += i64::try_from(n).unwrap_or(0);
            // Back off: the interval, doubled per failure in a row, up to an hour (or
            // the interval itself when that is longer).
            let shift = u32::try_from(status.failures.clamp(1, 8) - 1).unwrap_or(0);
            let wait = interval
                .saturating_mul(1 << shift)
                .min(MAX_BACKOFF.max(interval));
            status.next_poll_at = now + i64::try_from(wait.as_secs()).unwrap_or(3600);
        }
    }
    let s = Arc::clone(store);
    let _ = tokio::task::spawn_blocking(move || s.with_db(|db| db.record_fetch(&status))).await;
}

/// A POP3 client connection.
struct Pop {
    conn: Conn,
    server: String,
}

impl Pop {
    fn io(&self, error: io::Error) -> FetchError {
        FetchError::Io {
            server: self.server.clone(),
            error,
        }
    }

    fn protocol(&self, what: impl Into<String>) -> FetchError {
        FetchError::Protocol {
            server: self.server.clone(),
            what: what.into(),
        }
    }

    /// One status line: `Ok(text)` for +OK, `Err(text)` for -ERR.
    async fn status(&mut self) -> Result<Result<String, String>, FetchError> {
        let line = match self.conn.line(MAX_LINE, RESPONSE).await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(self.protocol("connection closed")),
            Err(e) => return Err(self.io(e)),
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(rest) = text.strip_prefix("+OK") {
            Ok(Ok(rest.trim().to_string()))
        } else if let Some(rest) = text.strip_prefix("-ERR") {
            Ok(Err(rest.trim().to_string()))
        } else {
            Err(self.protocol(format!("not POP3: {text:.80}")))
        }
    }

    async fn command(&mut self, line: &str) -> Result<Result<String, String>, FetchError> {
        self.conn.say(line);
        if let Err(e) = self.conn.flush().await {
            return Err(self.io(e));
        }
        self.status().await
    }

    /// A command that must succeed.
    async fn require(&mut self, line: &str, what: &str) -> Result<String, FetchError> {
        match self.command(line).await? {
            Ok(t) => Ok(t),
            Err(t) => Err(self.protocol(format!("{what}: -ERR {t}"))),
        }
    }

    /// The body of a multi-line response, dot-unstuffed, CRLF line ends.
    async fn multiline(&mut self, max: usize) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        loop {
            let line = match self.conn.line(MAX_LINE.max(1 << 20), RESPONSE).await {
                Ok(Some(l)) => l,
                Ok(None) => return Err(self.protocol("connection closed in a listing")),
                Err(e) => return Err(self.io(e)),
            };
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content == b"." {
                return Ok(out);
            }
            let content = content.strip_prefix(b".").unwrap_or(content);
            if out.len() + content.len() + 2 > max {
                return Err(self.protocol("message too large"));
            }
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Connects, logs in and returns the session.
async fn connect(config: &Config, a: &Pop3Account) -> Result<Pop, FetchError> {
    let resolver = Resolver::for_config(config);
    let addrs = resolver
        .addresses(&a.server)
        .await
        .map_err(|e| FetchError::Connect(format!("{}: {e}", a.server)))?;
    let mut last = format!("{}: no address", a.server);
    let mut stream = None;
    for ip in addrs {
        let addr = SocketAddr::new(ip, a.port);
        match tokio::time::timeout(CONNECT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    let stream = stream.ok_or(FetchError::Connect(last))?;
    let server = format!("{}:{}", a.server, a.port);
    let mut pop = Pop {
        conn: Conn::new(stream),
        server: server.clone(),
    };
    let tls_error = |error: io::Error| FetchError::Tls {
        server: server.clone(),
        error: error.to_string(),
    };
    let connector = if a.tls == Pop3Tls::None {
        None
    } else if a.verify_certificate {
        Some(verifying_connector(a.ca_file.as_deref()).map_err(tls_error)?)
    } else {
        Some(opportunistic_connector().map_err(tls_error)?)
    };
    let name = server_name(&a.server).map_err(tls_error)?;
    if a.tls == Pop3Tls::Implicit
        && let Some(c) = &connector
    {
        pop.conn
            .start_tls_client(c, name.clone())
            .await
            .map_err(tls_error)?;
    }
    if let Err(t) = pop.status().await? {
        return Err(pop.protocol(format!("greeting: -ERR {t}")));
    }
    if a.tls == Pop3Tls::Starttls
        && let Some(c) = &connector
    {
        // No falling back to plain text: the password would go in clear.
        pop.require("STLS", "STLS").await?;
        pop.conn
            .start_tls_client(c, name)
            .await
            .map_err(tls_error)?;
    }
    let login_failed = |reply: String| FetchError::Login {
        server: server.clone(),
        reply,
    };
    if let Err(t) = pop.command(&format!("USER {}", a.login)).await? {
        return Err(login_failed(t));
    }
    if let Err(t) = pop.command(&format!("PASS {}", a.password)).await? {
        return Err(login_failed(t));
    }
    Ok(pop)
}

/// The server's messages as (number, UID): UIDL, or a hash of each message's headers
/// when the server has no UIDL.
async fn listing(pop: &mut Pop) -> Result<Vec<(u32, String)>, FetchError> {
    if pop.command("UIDL").await?.is_ok() {
        let body = pop.multiline(usize::MAX).await?;
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut w = line.split_ascii_whitespace();
            if let (Some(n), Some(uid)) = (w.next().and_then(|n| n.parse().ok()), w.next()) {
                out.push((n, format!("u:{uid}")));
            }
        }
        return Ok(out);
    }
    pop.require("LIST", "LIST").await?;
    let body = pop.multiline(usize::MAX).await?;
    let numbers: Vec<u32> = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.split_ascii_whitespace().next()?.parse().ok())
        .collect();
    let mut out = Vec::with_capacity(numbers.len());
    for n in numbers {
        pop.require(&format!("TOP {n} 0"), "TOP").await?;
        let headers = pop.multiline(MAX_MESSAGE).await?;
        out.push((n, format!("h:{}", hex(&digest(&headers)))));
    }
    Ok(out)
}

fn digest(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The delivery tag for a message of an account: the same on every attempt.
fn tag(key: &str, uid: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(uid.as_bytes());
    hex(&digest(&input)[..10])
}

/// One poll. `Ok(n)`: n messages fetched. On error, how many were fetched before it.
async fn poll(
    config: &Config,
    store: &Arc<Store>,
    account: &Account,
) -> Result<usize, (usize, FetchError)> {
    let mut fetched = 0;
    let r = poll_inner(config, store, account, &mut fetched).await;
    r.map(|()| fetched).map_err(|e| (fetched, e))
}

async fn poll_inner(
    config: &Config,
    store: &Arc<Store>,
    account: &Account,
    fetched: &mut usize,
) -> Result<(), FetchError> {
    let a = &account.pop3;
    let mut pop = connect(config, a).await?;
    let list = listing(&mut pop).await?;
    let key = account.key.clone();
    let present: HashSet<String> = list.iter().map(|(_, u)| u.clone()).collect();
    let seen = {
        let (s, key) = (Arc::clone(store), key.clone());
        tokio::task::spawn_blocking(move || {
            s.with_db(|db| {
                db.forget_fetched_except(&key, &present)?;
                db.fetched_uids(&key)
            })
        })
        .await
        .map_err(|e| pop.io(io::Error::other(e)))??
    };
    let host = format!("{}.{}", config.network.hostname, config.network.domain);
    // Tags already in each target mailbox, read once per poll.
    let mut tags: HashMap<String, HashSet<String>> = HashMap::new();
    // (Message-ID, login) delivered in this poll: a message the shared mailbox holds
    // twice (once per envelope recipient) reaches each person once.
    let mut delivered_ids: HashSet<(String, String)> = HashSet::new();
    for (n, uid) in &list {
        if seen.contains(uid) {
            if !a.keep_on_server {
                // Taken before, not deleted then (a poll cut short): delete now.
                pop.require(&format!("DELE {n}"), "DELE").await?;
            }
            continue;
        }
        pop.require(&format!("RETR {n}"), "RETR").await?;
        let message = pop.multiline(MAX_MESSAGE).await?;
        let header = Header::read(&message);
        let (mailboxes, external) = match &account.owner {
            Owner::User(login) => ([login.clone()].into(), BTreeSet::new()),
            Owner::CatchAll => route_shared(config, &header),
        };
        if mailboxes.is_empty() && external.is_empty() {
            // Cannot happen with a valid config (it has an admin); never drop mail anyway.
            return Err(pop.protocol("a fetched message matches no one and there is no admin"));
        }
        let message_id = header.message_id.clone();
        let t = tag(&key, uid);
        let mut stamped = format!(
            "Received: from {} by {host} (officebox) with POP3;\r\n\t{}\r\n",
            a.server,
            rfc5322_date(SystemTime::now())
        )
        .into_bytes();
        stamped.extend_from_slice(&message);
        let owners: Vec<String> = mailboxes
            .into_iter()
            .filter(|login| {
                message_id
                    .as_ref()
                    .is_none_or(|id| delivered_ids.insert((id.clone(), login.clone())))
            })
            .collect();
        let store2 = Arc::clone(store);
        // (login, tags known in its mailbox, whether they still need reading)
        let known: Vec<(String, HashSet<String>, bool)> = owners
            .iter()
            .map(|l| match tags.remove(l) {
                Some(set) => (l.clone(), set, false),
                None => (l.clone(), HashSet::new(), true),
            })
            .collect();
        let (key2, uid2, t2) = (key.clone(), uid.clone(), t.clone());
        let sender = header.return_path.clone().unwrap_or_default();
        let result = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut known = known;
            for (login, set, unread) in &mut known {
                let maildir = Maildir::open(&store2.mailbox(login))?;
                if *unread {
                    *set = maildir.tags()?;
                }
                if set.insert(t2.clone()) {
                    maildir.deliver_tagged(&stamped, &t2)?;
                }
            }
            if !external.is_empty() {
                let delivery = Delivery {
                    mailboxes: BTreeSet::new(),
                    external: external.into_iter().map(NewRecipient::plain).collect(),
                    junk: false,
                };
                let envelope = Envelope {
                    from: sender,
                    ..Envelope::default()
                };
                store2.deliver(&envelope, &stamped, &delivery, now_unix())?;
            }
            store2.with_db(|db| db.mark_fetched(&key2, &[uid2.as_str()], now_unix()))?;
            Ok(known)
        })
        .await
        .map_err(|e| pop.io(io::Error::other(e)))??;
        for (login, set, _) in result {
            tags.insert(login, set);
        }
        *fetched += 1;
        if !a.keep_on_server {
            pop.require(&format!("DELE {n}"), "DELE").await?;
        }
    }
    // QUIT makes the deletions happen (RFC 1939 section 6).
    pop.require("QUIT", "QUIT").await?;
    Ok(())
}

/// What the fetcher needs of a fetched message's header, read by mail-parser (folded
/// lines, comments, quoted names, groups and encoded words are its business).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Message-ID, without its angle brackets.
    pub message_id: Option<String>,
    /// The address in Return-Path (empty for the null sender `<>`).
    pub return_path: Option<String>,
    /// The envelope recipients the ISP recorded: Delivered-To, X-Original-To,
    /// X-Envelope-To and the `for` clause of Received, in order, lowercase.
    pub envelope: Vec<String>,
    /// The addresses in To and Cc, in order, lowercase.
    pub visible: Vec<String>,
}

/// Fields besides Delivered-To (which mail-parser knows) that carry the envelope
/// recipient, as ISPs write them.
const ENVELOPE_FIELDS: [&str; 2] = ["X-Original-To", "X-Envelope-To"];

impl Header {
    pub fn read(message: &[u8]) -> Header {
        let mut parser = MessageParser::new()
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_address(HeaderName::DeliveredTo)
            .header_received(HeaderName::Received)
            .header_id(HeaderName::MessageId)
            .header_id(HeaderName::ReturnPath)
            .default_header_ignore();
        for name in ENVELOPE_FIELDS {
            parser = parser.header_address(HeaderName::Other(name.into()));
        }
        let mut out = Header::default();
        let Some(parsed) = parser.parse_headers(message) else {
            return out;
        };
        for field in parsed.headers() {
            let value = &field.value;
            match &field.name {
                HeaderName::To | HeaderName::Cc => out.visible.extend(addresses(value)),
                HeaderName::DeliveredTo => out.envelope.extend(addresses(value)),
                HeaderName::Other(name)
                    if ENVELOPE_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) =>
                {
                    out.envelope.extend(addresses(value));
                }
                HeaderName::Received => {
                    if let Some(received) = value.as_received()
                        && let Some(address) = received.for_.as_deref().and_then(address)
                    {
                        out.envelope.push(address);
                    }
                }
                HeaderName::MessageId if out.message_id.is_none() => {
                    out.message_id = value.as_text().map(str::to_string);
                }
                HeaderName::ReturnPath if out.return_path.is_none() => {
                    out.return_path = Some(value.as_text().unwrap_or_default().to_string());
                }
                _ => {}
            }
        }
        out
    }
}

/// The mail addresses in an address field's value.
fn addresses(value: &HeaderValue<'_>) -> Vec<String> {
    value
        .as_address()
        .map(|list| {
            list.iter()
                .filter_map(|a| a.address.as_deref().and_then(address))
                .collect()
        })
        .unwrap_or_default()
}

/// An address worth looking up: one with an `@` and no white space, lowercase.
fn address(a: &str) -> Option<String> {
    let a = a.trim();
    (a.contains('@') && !a.contains(char::is_whitespace)).then(|| a.to_ascii_lowercase())
}

/// Where a message from the shared mailbox goes: local mailboxes and addresses
/// elsewhere (alias members). The envelope recipients the ISP recorded decide; without
/// them, To and Cc; without any local match, the admin.
pub fn route_shared(config: &Config, header: &Header) -> (BTreeSet<String>, BTreeSet<String>) {
    let local_targets = |addresses: &[String]| {
        let mut mailboxes = BTreeSet::new();
        let mut forward = BTreeSet::new();
        for a in addresses {
            if let Destination::Local {
                mailboxes: m,
                forward: f,
            } = resolve(config, a)
            {
                mailboxes.extend(m);
                forward.extend(f);
            }
        }
        (mailboxes, forward)
    };
    let (m, f) = local_targets(&header.envelope);
    if !m.is_empty() || !f.is_empty() {
        return (m, f);
    }
    let (m, f) = local_targets(&header.visible);
    if !m.is_empty() || !f.is_empty() {
        return (m, f);
    }
    let admin = config
        .users
        .iter()
        .find(|u| u.admin)
        .map(|u| u.login.clone());
    (admin.into_iter().collect(), BTreeSet::new())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo() -> Config {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.toml");
        let mut c = officebox_config::load(std::path::Path::new(demo)).unwrap();
        c.mail.aliases.push(officebox_config::Alias {
            name: "sales".into(),
            members: vec![
                officebox_config::AliasMember::Local("alice".into()),
                officebox_config::AliasMember::Local("bob".into()),
            ],
        });
        c
    }

    fn route(message: &str) -> Vec<String> {
        let h = Header::read(message.replace('\n', "\r\n").as_bytes());
        route_shared(&demo(), &h).0.into_iter().collect()
    }

    #[test]
    fn address_lists_skip_display_names_and_comments() {
        let h = Header::read(
            b"To: \"Smith, John (x@y)\" <John@Office.test>, bob@office.test (Bob, <z@z>)\r\n\
              Cc: undisclosed-recipients:;\r\n\r\nbody\r\n",
        );
        assert_eq!(h.visible, vec!["john@office.test", "bob@office.test"]);
        let h = Header::read(
            b"Received: from a by b with ESMTP id 1\r\n for <Bob@office.test>; Sat, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
        );
        assert_eq!(h.envelope, vec!["bob@office.test"]);
    }

    #[test]
    fn a_fetched_header_is_read_unfolded_and_decoded() {
        let h = Header::read(
            b"Return-Path: <Sender@Elsewhere.example>\r\n\
              Delivered-To: alice@office.test\r\n\
              X-Envelope-To: <carol@office.test>\r\n\
              Message-ID:\r\n <folded.1@elsewhere.example>\r\n\
              To: =?utf-8?q?S=C3=A9verine_Dupont?= <sev@office.test>,\r\n\
              \t=?iso-8859-1?q?J=F6rg?= <joerg@office.test>\r\n\
              Cc: team: a@office.test, B@office.test;\r\n\
              Subject: =?utf-8?b?w6l0w6k=?=\r\n\
              \r\n\
              To: not-a-header@office.test\r\n",
        );
        assert_eq!(
            h,
            Header {
                message_id: Some("folded.1@elsewhere.example".into()),
                return_path: Some("Sender@Elsewhere.example".into()),
                envelope: vec!["alice@office.test".into(), "carol@office.test".into()],
                visible: vec![
                    "sev@office.test".into(),
                    "joerg@office.test".into(),
                    "a@office.test".into(),
                    "b@office.test".into(),
                ],
            }
        );
        let null = Header::read(b"Return-Path: <>\r\n\r\n");
        assert_eq!(null.return_path.as_deref(), Some(""));
        assert_eq!(Header::read(b""), Header::default());
    }

    #[test]
    fn shared_mailbox_sorting() {
        assert_eq!(
            route("Delivered-To: alice@office.test\nTo: bob@office.test\n\nx"),
            vec!["alice"],
            "the envelope wins over To"
        );
        assert_eq!(
            route("To: Sales <sales@office.test>\n\nx"),
            vec!["alice", "bob"]
        );
        assert_eq!(
            route(
                "Received: from x\n\tby mx.isp (Postfix) with ESMTP id 9\n\tfor <bob@office.test>; Sat\nTo: list@lists.example\n\nx"
            ),
            vec!["bob"]
        );
        assert_eq!(
            route("To: someone@elsewhere.example\nCc: nobody@office.test\n\nx"),
            vec!["admin"]
        );
        assert_eq!(
            route("X-Original-To: office@isp.example\nCc: bob@office.test\n\nx"),
            vec!["bob"],
            "an envelope address that is not ours falls through to To/Cc"
        );
    }

    #[test]
    fn tags_are_stable_and_differ_per_account_and_uid() {
        assert_eq!(tag("a", "u:1"), tag("a", "u:1"));
        assert_ne!(tag("a", "u:1"), tag("b", "u:1"));
        assert_ne!(tag("a", "u:1"), tag("a", "u:2"));
        assert_eq!(tag("a", "u:1").len(), 20);
    }
}
