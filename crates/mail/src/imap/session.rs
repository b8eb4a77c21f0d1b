//! One IMAP connection: greeting, login (in clear only inside TLS or from the LAN, and
//! limited like every password check), then the user's folders.
//!
//! This first server speaks IMAP4rev1 with LITERAL+, SASL-IR, ID, ENABLE, UNSELECT,
//! NAMESPACE, UIDPLUS's UID EXPUNGE and SPECIAL-USE folders; it does not announce
//! IMAP4rev2 until every part of it is here. Each command that looks at a folder first
//! brings its index in line with the Maildir (`mailbox::sync`), so what POP3, delivery
//! and the voicemail menu did is seen at once, as untagged EXISTS, EXPUNGE and FETCH.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone};
use officebox_store::{Db, ImapMessage};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::command::{self, Body, FetchItem, SectionText, SequenceSet, StatusItem};
use super::frame::{Framer, Limits, Step};
use super::mailbox::{self, Snapshot};
use crate::conn::Conn;
use crate::smtp::Shared;
use crate::tls::{Auth, authenticate};

/// The ports IMAP is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 143: STARTTLS offered.
    Imap,
    /// 993: TLS from the first byte.
    Imaps,
}

/// How long a client may be silent before logging in, and after (RFC 9051: at least 30
/// minutes once authenticated).
const LOGIN_IDLE: Duration = Duration::from_secs(60);
const IDLE: Duration = Duration::from_secs(31 * 60);

/// The mail store IMAP sessions share with SMTP and POP3: the mailboxes, and the one
/// state database handle that holds the index.
#[derive(Debug)]
pub struct Index {
    store: Arc<crate::deliver::Store>,
}

impl Index {
    pub fn new(store: Arc<crate::deliver::Store>) -> Index {
        Index { store }
    }

    fn with<R>(&self, f: impl FnOnce(&Db) -> R) -> R {
        self.store.with_db(f)
    }

    fn mailbox(&self, login: &str) -> PathBuf {
        self.store.mailbox(login)
    }
}

/// The folder a session has selected.
struct Selected {
    name: String,
    read_only: bool,
    snap: Snapshot,
    /// UIDs that arrived while this session watched (\Recent to it).
    recent: HashSet<u32>,
}

struct Session {
    config: Arc<Config>,
    shared: Arc<Shared>,
    index: Arc<Index>,
    peer: SocketAddr,
    tls: bool,
    user: Option<String>,
    selected: Option<Selected>,
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `07-Dec-2026 10:00:00 +0000`.
fn internal_date(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let (y, m, d) = officebox_store::date::civil(at);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(usize::from(m.max(1)) - 1).unwrap_or(&"Jan");
    format!(
        "{d:02}-{month}-{y:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Where the header ends (after its blank line).
fn header_end(data: &[u8]) -> usize {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| data.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(data.len())
}

/// The header fields of `header` named (or not named) in `names`, and the blank line.
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut take = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line
                .split(|&b| b == b':')
                .next()
                .map(|n| String::from_utf8_lossy(n).trim().to_ascii_lowercase())
                .unwrap_or_default();
            take = names.contains(&name) == keep;
        }
        if take {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Serves one IMAP connection.
pub async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    shared: Arc<Shared>,
    index: Arc<Index>,
    port: Port,
) -> io::Result<()> {
    let mut conn = Conn::new(stream);
    let mut s = Session {
        config,
        shared,
        index,
        peer,
        tls: false,
        user: None,
        selected: None,
    };
    if port == Port::Imaps {
        let Some(acceptor) = s.shared.tls.clone() else {
            return Ok(());
        };
        conn.start_tls(&acceptor).await?;
        s.tls = true;
    }
    conn.say(&format!(
        "* OK [CAPABILITY {}] officebox IMAP ready",
        s.capabilities()
    ));
    let limits = Limits {
        literal: usize::try_from(s.config.mail.max_message_size).unwrap_or(usize::MAX),
        command: usize::try_from(s.config.mail.max_message_size)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024),
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    let result = async {
        loop {
            match framer.step() {
                Step::NeedMore => {
                    let wait = if s.user.is_some() { IDLE } else { LOGIN_IDLE };
                    match conn.fill(wait).await {
                        Ok(true) => {
                            let bytes = std::mem::take(&mut conn.buf);
                            framer.push(&bytes);
                        }
                        Ok(false) => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            conn.say("* BYE idle for too long");
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                Step::GoAhead => conn.say("+ Ready"),
                Step::LiteralTooLarge { tag, size } => {
                    conn.say(&format!(
                        "{} NO [TOOBIG] a literal of {size} bytes is too large",
                        tag.as_deref().unwrap_or("*")
                    ));
                }
                Step::Overflow { tag } => {
                    if let Some(t) = tag {
                        conn.say(&format!("{t} BAD command too long"));
                    }
                    conn.say("* BYE command too long");
                    return Ok(());
                }
                Step::Command(bytes) => match command::parse(&bytes) {
                    Err(e) => {
                        conn.say(&format!(
                            "{} BAD {}",
                            e.tag.as_deref().unwrap_or("*"),
                            e.message
                        ));
                    }
                    Ok(c) => match s.run(&mut conn, &mut framer, c).await? {
                        Flow::Go => {}
                        Flow::Stop => return Ok(()),
                    },
                },
            }
        }
    }
    .await;
    conn.flush().await?;
    result
}

enum Flow {
    Go,
    Stop,
}

impl Session {
    fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "UNSELECT",
            "NAMESPACE",
            "UIDPLUS",
            "SPECIAL-USE",
        ];
        if self.user.is_none() {
            if !self.tls && self.shared.tls.is_some() {
                caps.push("STARTTLS");
            }
            if self.plaintext_ok() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        }
        caps.join(" ")
    }

    /// Passwords in clear: only inside TLS, or from the LAN or this machine.
    fn plaintext_ok(&self) -> bool {
        self.tls || client_zone(&self.config.network, self.peer.ip()) != ClientZone::Wan
    }

    fn root(&self) -> Option<PathBuf> {
        self.user.as_ref().map(|u| self.index.mailbox(u))
    }

    async fn run(
        &mut self,
        conn: &mut Conn,
        framer: &mut Framer,
        c: command::Command,
    ) -> io::Result<Flow> {
        let tag = c.tag;
        let logged_in = self.user.is_some();
        match c.body {
            Body::Capability => {
                conn.say(&format!("* CAPABILITY {}", self.capabilities()));
                conn.say(&format!("{tag} OK CAPABILITY done"));
            }
            Body::Noop | Body::Check => {
                self.report_changes(conn).await;
                conn.say(&format!("{tag} OK done"));
            }
            Body::Logout => {
                conn.say("* BYE logging out");
                conn.say(&format!("{tag} OK LOGOUT done"));
                return Ok(Flow::Stop);
            }
            Body::Id(_) => {
                conn.say("* ID (\"name\" \"officebox\")");
                conn.say(&format!("{tag} OK ID done"));
            }
            Body::StartTls if !logged_in && !self.tls => {
                let Some(acceptor) = self.shared.tls.clone() else {
                    conn.say(&format!("{tag} NO TLS is not available"));
                    return Ok(Flow::Go);
                };
                // Anything sent after STARTTLS in the clear is thrown away (a man in
                // the middle could have put it there).
                if framer.held() > 0 {
                    conn.say(&format!(
                        "{tag} BAD nothing may follow STARTTLS in the clear"
                    ));
                    return Ok(Flow::Stop);
                }
                conn.say(&format!("{tag} OK begin TLS now"));
                conn.flush().await?;
                conn.start_tls(&acceptor).await?;
                self.tls = true;
            }
            Body::Login { user, password } if !logged_in => {
                let reply = self.login(&user, &password).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Authenticate { mechanism, initial } if !logged_in => {
                if mechanism != "PLAIN" {
                    conn.say(&format!("{tag} NO only AUTHENTICATE PLAIN is offered"));
                    return Ok(Flow::Go);
                }
                let response = match initial {
                    Some(r) => r,
                    None => {
                        conn.say("+ ");
                        let Some(line) = self.read_line(conn, framer).await? else {
                            return Ok(Flow::Stop);
                        };
                        line
                    }
                };
                let trimmed: Vec<u8> = response
                    .into_iter()
                    .filter(|b| !b" \r\n".contains(b))
                    .collect();
                if trimmed == b"*" {
                    conn.say(&format!("{tag} BAD authentication cancelled"));
                    return Ok(Flow::Go);
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(&trimmed)
                    .unwrap_or_default();
                let mut parts = decoded.split(|&b| b == 0);
                let (_authz, user, password) = (parts.next(), parts.next(), parts.next());
                let reply = match (user, password) {
                    (Some(u), Some(p)) => self.login(u, p).await,
                    _ => "BAD that is not a PLAIN response".to_string(),
                };
                conn.say(&format!("{tag} {reply}"));
            }
            Body::StartTls | Body::Login { .. } | Body::Authenticate { .. } => {
                conn.say(&format!("{tag} BAD not now"));
            }
            _ if !logged_in => {
                conn.say(&format!("{tag} NO log in first"));
            }
            Body::Enable(_) => {
                // Nothing this server speaks needs enabling yet.
                conn.say("* ENABLED");
                conn.say(&format!("{tag} OK ENABLE done"));
            }
            Body::Namespace => {
                conn.say("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                conn.say(&format!("{tag} OK NAMESPACE done"));
            }
            Body::List { patterns, lsub, .. } => {
                self.list(conn, &patterns, lsub).await;
                conn.say(&format!(
                    "{tag} OK {} done",
                    if lsub { "LSUB" } else { "LIST" }
                ));
            }
            Body::Create { mailbox, .. } => {
                let reply = self.create(&mailbox).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Subscribe(_) | Body::Unsubscribe(_) => {
                conn.say(&format!("{tag} OK done"));
            }
            Body::Select {
                mailbox, read_only, ..
            } => {
                let reply = self.select(conn, &mailbox, read_only).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Status { mailbox, items } => {
                let reply = self.status(conn, &mailbox, &items).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Unselect | Body::Close => {
                if matches!(c.body, Body::Close) {
                    self.expunge(conn, None, false).await;
                }
                self.selected = None;
                conn.say(&format!("{tag} OK done"));
            }
            _ if self.selected.is_none() => {
                conn.say(&format!("{tag} NO select a folder first"));
            }
            Body::Fetch {
                uid, set, items, ..
            } => {
                self.report_changes(conn).await;
                self.fetch(conn, uid, &set, &items).await;
                conn.say(&format!("{tag} OK FETCH done"));
            }
            Body::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                ..
            } => {
                let reply = self.store(conn, uid, &set, mode, silent, &flags).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Expunge(uids) => {
                self.expunge(conn, uids.as_ref(), true).await;
                conn.say(&format!("{tag} OK EXPUNGE done"));
            }
            _ => {
                conn.say(&format!("{tag} NO not supported yet"));
            }
        }
        Ok(Flow::Go)
    }

    /// One raw line from the client (an AUTHENTICATE response).
    async fn read_line(&self, conn: &mut Conn, framer: &mut Framer) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = framer.take_raw_line() {
                return Ok(Some(line));
            }
            if framer.held() > 16 * 1024 {
                return Ok(None);
            }
            if !conn.fill(LOGIN_IDLE).await? {
                return Ok(None);
            }
            let bytes = std::mem::take(&mut conn.buf);
            framer.push(&bytes);
        }
    }

    async fn login(&mut self, user: &[u8], password: &[u8]) -> String {
        if !self.plaintext_ok() {
            return "NO [PRIVACYREQUIRED] log in over TLS (STARTTLS or port 993)".into();
        }
        let (user, password) = (
            String::from_utf8_lossy(user).into_owned(),
            String::from_utf8_lossy(password).into_owned(),
        );
        let Ok(attempt) = self.shared.limiter.begin(self.peer.ip()).await else {
            return "NO [UNAVAILABLE] too many failed logins; try again later".into();
        };
        match authenticate(&self.config, &user, &password).await {
            Auth::Ok(login) => {
                attempt.succeeded();
                info!(message = "imap: logged in", client = %self.peer, user = %login);
                let root = self.index.mailbox(&login);
                let made = tokio::task::spawn_blocking(move || {
                    officebox_store::Maildir::open(&root).and_then(|_| mailbox::make_special(&root))
                })
                .await;
                if !matches!(made, Ok(Ok(()))) {
                    warn!(message = "imap: the mailbox cannot be opened", user = %login);
                    return "NO [UNAVAILABLE] the mailbox cannot be opened".into();
                }
                self.user = Some(login);
                format!("OK [CAPABILITY {}] logged in", self.capabilities())
            }
            Auth::Busy => {
                attempt.withdrawn();
                "NO [UNAVAILABLE] too busy to check passwords now; try again later".into()
            }
            Auth::Wrong => {
                attempt.failed();
                warn!(message = "imap: login failed", client = %self.peer);
                tokio::time::sleep(Duration::from_secs(1)).await;
                "NO [AUTHENTICATIONFAILED] invalid user name or password".into()
            }
        }
    }

    async fn list(&self, conn: &mut Conn, patterns: &[Vec<u8>], _lsub: bool) {
        let Some(root) = self.root() else { return };
        let names = tokio::task::spawn_blocking(move || mailbox::folders(&root))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        for pattern in patterns {
            let pattern = String::from_utf8_lossy(pattern);
            if pattern.is_empty() {
                conn.say("* LIST (\\Noselect) \"/\" \"\"");
                continue;
            }
            for name in &names {
                if !matches_pattern(&pattern, name) {
                    continue;
                }
                let mut attrs = vec!["\\HasNoChildren".to_string()];
                if let Some((_, special)) = mailbox::SPECIAL.iter().find(|(n, _)| n == name) {
                    attrs.push((*special).to_string());
                }
                conn.say(&format!(
                    "* LIST ({}) \"/\" {}",
                    attrs.join(" "),
                    quote(name)
                ));
            }
        }
    }

    async fn create(&self, name: &[u8]) -> String {
        let Some(root) = self.root() else {
            return "NO log in first".into();
        };
        let name = match mailbox::canonical(&String::from_utf8_lossy(name)) {
            Ok(n) if n == "INBOX" => return "NO INBOX exists already".into(),
            Ok(n) => n,
            Err(e) => return format!("NO {e}"),
        };
        let dir = mailbox::dir_of(&root, &name);
        if dir.join("cur").is_dir() {
            return "NO [ALREADYEXISTS] that folder exists".into();
        }
        match tokio::task::spawn_blocking(move || officebox_store::Maildir::open(&dir)).await {
            Ok(Ok(_)) => "OK CREATE done".into(),
            _ => "NO [SERVERBUG] the folder cannot be made".into(),
        }
    }

    /// The folder `name` synced now (`None`: no such folder).
    async fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let root = self.root()?;
        if !mailbox::dir_of(&root, name).join("cur").is_dir() && name != "INBOX" {
            return None;
        }
        let (index, login, name) = (
            Arc::clone(&self.index),
            self.user.clone()?,
            name.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            index.with(|db| mailbox::sync(db, &login, &root, &name))
        })
        .await
        .ok()?
        .map_err(|error| warn!(message = "imap: a folder cannot be read", %error))
        .ok()
    }

    async fn select(&mut self, conn: &mut Conn, name: &[u8], read_only: bool) -> String {
        self.selected = None;
        let Ok(name) = mailbox::canonical(&String::from_utf8_lossy(name)) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let Some(snap) = self.snapshot(&name).await else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let recent: HashSet<u32> = HashSet::new();
        conn.say(&format!("* {} EXISTS", snap.messages.len()));
        conn.say("* 0 RECENT");
        conn.say(&format!("* FLAGS ({})", super::flags::defined().join(" ")));
        conn.say(&format!(
            "* OK [PERMANENTFLAGS ({} \\*)] flags and new keywords kept",
            super::flags::defined().join(" ")
        ));
        if let Some(first) = snap.messages.iter().position(|m| !m.flags.contains('S')) {
            conn.say(&format!("* OK [UNSEEN {}] first unseen", first + 1));
        }
        conn.say(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid",
            snap.folder.uidvalidity
        ));
        conn.say(&format!(
            "* OK [UIDNEXT {}] predicted next UID",
            snap.folder.uidnext
        ));
        conn.say(&format!(
            "* OK [HIGHESTMODSEQ {}] modseq",
            snap.folder.modseq
        ));
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        self.selected = Some(Selected {
            name,
            read_only,
            snap,
            recent,
        });
        format!("OK [{mode}] selected")
    }

    async fn status(&self, conn: &mut Conn, name: &[u8], items: &[StatusItem]) -> String {
        let Ok(name) = mailbox::canonical(&String::from_utf8_lossy(name)) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let Some(snap) = self.snapshot(&name).await else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let mut out = Vec::new();
        for item in items {
            let (word, value) = match item {
                StatusItem::Messages => ("MESSAGES", snap.messages.len() as u64),
                StatusItem::Recent => ("RECENT", 0),
                StatusItem::UidNext => ("UIDNEXT", u64::from(snap.folder.uidnext)),
                StatusItem::UidValidity => ("UIDVALIDITY", u64::from(snap.folder.uidvalidity)),
                StatusItem::Unseen => (
                    "UNSEEN",
                    snap.messages
                        .iter()
                        .filter(|m| !m.flags.contains('S'))
                        .count() as u64,
                ),
                StatusItem::Deleted => (
                    "DELETED",
                    snap.messages
                        .iter()
                        .filter(|m| m.flags.contains('T'))
                        .count() as u64,
                ),
                StatusItem::Size => ("SIZE", snap.messages.iter().map(|m| m.size).sum()),
                StatusItem::HighestModseq => ("HIGHESTMODSEQ", snap.folder.modseq),
            };
            out.push(format!("{word} {value}"));
        }
        conn.say(&format!("* STATUS {} ({})", quote(&name), out.join(" ")));
        "OK STATUS done".into()
    }

    /// Brings the selected folder up to date and tells the client what changed.
    async fn report_changes(&mut self, conn: &mut Conn) {
        let Some(name) = self.selected.as_ref().map(|s| s.name.clone()) else {
            return;
        };
        let Some(snap) = self.snapshot(&name).await else {
            return;
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        // Expunged, highest sequence number first so the numbers stay right.
        let gone: HashSet<u32> = snap.changes.expunged.iter().copied().collect();
        let old: Vec<u32> = sel.snap.messages.iter().map(|m| m.uid).collect();
        for (i, uid) in old.iter().enumerate().rev() {
            if gone.contains(uid) {
                conn.say(&format!("* {} EXPUNGE", i + 1));
            }
        }
        if !snap.changes.added.is_empty() || !gone.is_empty() {
            conn.say(&format!("* {} EXISTS", snap.messages.len()));
        }
        sel.recent.extend(snap.changes.added.iter().copied());
        for uid in &snap.changes.flagged {
            if let Some((i, m)) = snap
                .messages
                .iter()
                .enumerate()
                .find(|(_, m)| m.uid == *uid)
            {
                conn.say(&format!(
                    "* {} FETCH (UID {} FLAGS ({}))",
                    i + 1,
                    m.uid,
                    super::flags::shown(&m.flags, &m.keywords, false).join(" ")
                ));
            }
        }
        sel.snap = snap;
    }

    /// The selected messages: (sequence number, message) in order.
    fn chosen(&self, uid: bool, set: &SequenceSet) -> Vec<(usize, ImapMessage)> {
        let Some(sel) = &self.selected else {
            return Vec::new();
        };
        let msgs = &sel.snap.messages;
        let last_uid = msgs.last().map_or(0, |m| m.uid);
        let count = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
        msgs.iter()
            .enumerate()
            .filter(|(i, m)| {
                if uid {
                    set.contains(m.uid, last_uid)
                } else {
                    set.contains(u32::try_from(i + 1).unwrap_or(u32::MAX), count)
                }
            })
            .map(|(i, m)| (i + 1, m.clone()))
            .collect()
    }

    async fn fetch(&mut self, conn: &mut Conn, uid: bool, set: &SequenceSet, items: &[FetchItem]) {
        let chosen = self.chosen(uid, set);
        let Some(sel) = &self.selected else { return };
        let needs_body = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::Rfc822
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Section { .. }
            )
        });
        let marks_seen = !sel.read_only
            && items.iter().any(|i| {
                matches!(i, FetchItem::Rfc822 | FetchItem::Rfc822Text)
                    || matches!(i, FetchItem::Section { peek: false, .. })
            });
        let mut seen_now = Vec::new();
        for (seq, m) in chosen {
            let data = if needs_body {
                let Some(entry) = sel.snap.files.get(&m.unique) else {
                    continue;
                };
                let (maildir, entry) = (sel.snap.maildir.clone(), entry.clone());
                match tokio::task::spawn_blocking(move || maildir.read(&entry)).await {
                    Ok(Ok(d)) => d,
                    _ => continue,
                }
            } else {
                Vec::new()
            };
            let mut out: Vec<u8> = format!("* {seq} FETCH (").into_bytes();
            let mut parts: Vec<Vec<u8>> = Vec::new();
            if uid && !items.contains(&FetchItem::Uid) {
                parts.push(format!("UID {}", m.uid).into_bytes());
            }
            let mut flags_shown = false;
            for item in items {
                match item {
                    FetchItem::Uid => parts.push(format!("UID {}", m.uid).into_bytes()),
                    FetchItem::Flags => {
                        flags_shown = true;
                        let mut letters = m.flags.clone();
                        if marks_seen && !letters.contains('S') {
                            letters.push('S');
                        }
                        let recent = sel.recent.contains(&m.uid);
                        parts.push(
                            format!(
                                "FLAGS ({})",
                                super::flags::shown(&letters, &m.keywords, recent).join(" ")
                            )
                            .into_bytes(),
                        );
                    }
                    FetchItem::Rfc822Size => {
                        parts.push(format!("RFC822.SIZE {}", m.size).into_bytes())
                    }
                    FetchItem::InternalDate => parts.push(
                        format!("INTERNALDATE \"{}\"", internal_date(m.received)).into_bytes(),
                    ),
                    FetchItem::Modseq => parts.push(format!("MODSEQ ({})", m.modseq).into_bytes()),
                    FetchItem::Rfc822 => parts.push(literal("RFC822", &data)),
                    FetchItem::Rfc822Header => {
                        parts.push(literal(
                            "RFC822.HEADER",
                            data.get(..header_end(&data)).unwrap_or_default(),
                        ));
                    }
                    FetchItem::Rfc822Text => {
                        parts.push(literal(
                            "RFC822.TEXT",
                            data.get(header_end(&data)..).unwrap_or_default(),
                        ));
                    }
                    FetchItem::Section {
                        section,
                        partial,
                        binary,
                        ..
                    } if section.part.is_empty() && !binary => {
                        let h = header_end(&data);
                        let (label, bytes): (&str, Vec<u8>) = match &section.text {
                            SectionText::All => ("", data.clone()),
                            SectionText::Header => {
                                ("HEADER", data.get(..h).unwrap_or_default().to_vec())
                            }
                            SectionText::Text => {
                                ("TEXT", data.get(h..).unwrap_or_default().to_vec())
                            }
                            SectionText::HeaderFields(names) => (
                                "HEADER.FIELDS",
                                header_fields(data.get(..h).unwrap_or_default(), names, true),
                            ),
                            SectionText::HeaderFieldsNot(names) => (
                                "HEADER.FIELDS.NOT",
                                header_fields(data.get(..h).unwrap_or_default(), names, false),
                            ),
                            SectionText::Mime => ("MIME", Vec::new()),
                        };
                        let label = match &section.text {
                            SectionText::HeaderFields(n) | SectionText::HeaderFieldsNot(n) => {
                                format!(
                                    "{label} ({})",
                                    n.iter()
                                        .map(|x| x.to_ascii_uppercase())
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                )
                            }
                            _ => label.to_string(),
                        };
                        let (name, bytes) = match partial {
                            Some((offset, length)) => {
                                let start = usize::try_from(*offset)
                                    .unwrap_or(usize::MAX)
                                    .min(bytes.len());
                                let end = start
                                    .saturating_add(usize::try_from(*length).unwrap_or(usize::MAX))
                                    .min(bytes.len());
                                (
                                    format!("BODY[{label}]<{offset}>"),
                                    bytes.get(start..end).unwrap_or_default().to_vec(),
                                )
                            }
                            None => (format!("BODY[{label}]"), bytes),
                        };
                        parts.push(literal(&name, &bytes));
                    }
                    // Parts of a multipart message, BODYSTRUCTURE and ENVELOPE come next.
                    _ => {}
                }
            }
            if marks_seen && !m.flags.contains('S') {
                seen_now.push(m.uid);
                if !flags_shown {
                    let mut letters = m.flags.clone();
                    letters.push('S');
                    parts.push(
                        format!(
                            "FLAGS ({})",
                            super::flags::shown(&letters, &m.keywords, false).join(" ")
                        )
                        .into_bytes(),
                    );
                }
            }
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(p);
            }
            out.extend_from_slice(b")\r\n");
            conn.raw(&out);
        }
        if !seen_now.is_empty() {
            let set = SequenceSet::Ranges(
                seen_now
                    .iter()
                    .map(|&u| (command::Seq::Number(u), command::Seq::Number(u)))
                    .collect(),
            );
            let flags = [command::Flag("\\Seen".into())];
            self.change_flags(true, &set, command::StoreMode::Add, &flags)
                .await;
        }
    }

    /// Changes the flags of the chosen messages, on disk and in the index; the messages
    /// as they now are.
    async fn change_flags(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: command::StoreMode,
        flags: &[command::Flag],
    ) -> Vec<(usize, ImapMessage)> {
        let chosen = self.chosen(uid, set);
        let Some(sel) = self.selected.as_mut() else {
            return Vec::new();
        };
        let (index, maildir, folder) = (
            Arc::clone(&self.index),
            sel.snap.maildir.clone(),
            sel.snap.folder.id,
        );
        let work: Vec<(usize, ImapMessage, Option<officebox_store::Entry>)> = chosen
            .into_iter()
            .map(|(seq, m)| {
                let e = sel.snap.files.get(&m.unique).cloned();
                (seq, m, e)
            })
            .collect();
        let flags = flags.to_vec();
        let done = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (seq, mut m, entry) in work {
                let Some(entry) = entry else { continue };
                let (letters, keywords) =
                    super::flags::apply(mode, (&m.flags, &m.keywords), &flags);
                let Ok(moved) = maildir.set_flags(&entry, &letters) else {
                    continue;
                };
                if let Ok(modseq) =
                    index.with(|db| db.imap_set_flags(folder, m.uid, &letters, &keywords))
                {
                    m.modseq = modseq;
                }
                m.flags = letters;
                m.keywords = keywords;
                out.push((seq, m, moved));
            }
            out
        })
        .await
        .unwrap_or_default();
        let mut result = Vec::new();
        for (seq, m, moved) in done {
            sel.snap.files.insert(m.unique.clone(), moved);
            if let Some(slot) = sel.snap.messages.get_mut(seq - 1) {
                *slot = m.clone();
            }
            result.push((seq, m));
        }
        result
    }

    async fn store(
        &mut self,
        conn: &mut Conn,
        uid: bool,
        set: &SequenceSet,
        mode: command::StoreMode,
        silent: bool,
        flags: &[command::Flag],
    ) -> String {
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return "NO the folder is read-only".into();
        }
        let changed = self.change_flags(uid, set, mode, flags).await;
        if !silent {
            for (seq, m) in changed {
                let uid_part = if uid {
                    format!("UID {} ", m.uid)
                } else {
                    String::new()
                };
                conn.say(&format!(
                    "* {seq} FETCH ({uid_part}FLAGS ({}))",
                    super::flags::shown(&m.flags, &m.keywords, false).join(" ")
                ));
            }
        }
        "OK STORE done".into()
    }

    /// Removes the messages marked \Deleted (those in `uids` only, with UID EXPUNGE).
    async fn expunge(&mut self, conn: &mut Conn, uids: Option<&SequenceSet>, tell: bool) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        if sel.read_only {
            return;
        }
        let last = sel.snap.messages.last().map_or(0, |m| m.uid);
        let doomed: Vec<(usize, u32, Option<officebox_store::Entry>)> = sel
            .snap
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.flags.contains('T') && uids.is_none_or(|s| s.contains(m.uid, last)))
            .map(|(i, m)| (i + 1, m.uid, sel.snap.files.get(&m.unique).cloned()))
            .collect();
        let maildir = sel.snap.maildir.clone();
        let files: Vec<officebox_store::Entry> =
            doomed.iter().filter_map(|(_, _, e)| e.clone()).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for e in files {
                let _ = maildir.delete(&e);
            }
        })
        .await;
        if tell {
            for (seq, _, _) in doomed.iter().rev() {
                conn.say(&format!("* {seq} EXPUNGE"));
            }
        }
        // The index learns it at the sync; the session's view is brought in line now.
        let name = sel.name.clone();
        if let Some(snap) = self.snapshot(&name).await
            && let Some(sel) = self.selected.as_mut()
        {
            sel.snap = snap;
        }
    }
}

/// `name` BODY[..] {n}\r\n bytes.
fn literal(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{name} {{{}}}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

/// LIST wildcards: `*` matches anything, `%` anything but the delimiter.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, n.get(i..).unwrap_or_default())),
            Some((b'%', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n.get(i - 1) != Some(&b'/'))
                .any(|i| go(rest, n.get(i..).unwrap_or_default())),
            Some((c, rest)) => n
                .split_first()
                .is_some_and(|(d, nrest)| c.eq_ignore_ascii_case(d) && go(rest, nrest)),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_and_list_patterns() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_796_641_128), "07-Dec-2026 10:58:48 +0000");
        assert!(matches_pattern("*", "Work/2026"));
        assert!(matches_pattern("%", "Sent"));
        assert!(!matches_pattern("%", "Work/2026"));
        assert!(matches_pattern("Work/%", "Work/2026"));
        assert!(matches_pattern("inbox", "INBOX"));
        assert!(!matches_pattern("Sent", "Sent Items"));
    }

    #[test]
    fn header_fields_are_picked_with_their_continuations() {
        let h = b"From: a@b\r\nSubject: one\r\n two\r\nTo: c@d\r\n\r\n";
        assert_eq!(
            header_fields(h, &["subject".into()], true),
            b"Subject: one\r\n two\r\n\r\n".to_vec()
        );
        assert_eq!(
            header_fields(h, &["subject".into()], false),
            b"From: a@b\r\nTo: c@d\r\n\r\n".to_vec()
        );
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
    }
}
