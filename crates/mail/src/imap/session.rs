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
use officebox_config::derive::{ClientZone, client_zone, quota_of};
use officebox_store::{Db, ImapMessage};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::command::{self, Body, FetchItem, SectionText, SequenceSet, StatusItem};
use super::frame::{Framer, Limits, Step};
use super::mailbox::{self, Snapshot};
use super::structure::{self, header_end};
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
/// How often an idling session looks at its folder for changes.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long a session trusts the index's word that its folder is unchanged.
const INDEX_RECHECK: Duration = Duration::from_millis(100);
/// How many bytes of messages a FETCH reads before it sends what it has.
const FETCH_BATCH_BYTES: u64 = 8 << 20;
/// A FETCH of at most this many messages and bytes is answered on the async thread
/// itself, not in the blocking pool.
const INLINE_FETCH_MESSAGES: usize = 16;
/// How many messages a FETCH answers at most in one batch (when no files are read).
const FETCH_BATCH_MESSAGES: usize = 4096;
const INLINE_FETCH_BYTES: u64 = 256 << 10;

/// The mail store IMAP sessions share with SMTP and POP3: the mailboxes, and the one
/// state database handle that holds the index.
#[derive(Debug)]
pub struct Index {
    store: Arc<crate::deliver::Store>,
    /// The folders read most recently, as read: reading one again that has not changed
    /// since takes it as it is (no directory listing, no index rows), and sessions on one
    /// folder share one copy of its list.
    read: std::sync::Mutex<Vec<Read>>,
}

/// A folder as it was read, and its directory times then.
#[derive(Debug)]
struct Read {
    login: String,
    name: String,
    stamp: (Stamp, std::time::SystemTime),
    snap: Snapshot,
}

/// How many folders the index keeps as read.
const READ_FOLDERS: usize = 8;

impl Index {
    pub fn new(store: Arc<crate::deliver::Store>) -> Index {
        Index {
            store,
            read: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The folder as last read, with the directory times it was read at.
    fn read_before(
        &self,
        login: &str,
        name: &str,
    ) -> Option<((Stamp, std::time::SystemTime), Snapshot)> {
        let read = self.read.lock().ok()?;
        read.iter()
            .find(|r| r.login == login && r.name == name)
            .map(|r| (r.stamp, r.snap.clone()))
    }

    /// Keeps the folder as just read (the oldest kept one goes).
    fn remember(
        &self,
        login: &str,
        name: &str,
        stamp: (Stamp, std::time::SystemTime),
        snap: &Snapshot,
    ) {
        if let Ok(mut read) = self.read.lock() {
            read.retain(|r| !(r.login == login && r.name == name));
            if read.len() >= READ_FOLDERS {
                read.remove(0);
            }
            read.push(Read {
                login: login.to_string(),
                name: name.to_string(),
                stamp,
                snap: snap.clone(),
            });
        }
    }

    /// Forgets the folder as read (a session is about to change its own copy).
    fn forget(&self, login: &str, name: &str) {
        if let Ok(mut read) = self.read.lock() {
            read.retain(|r| !(r.login == login && r.name == name));
        }
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
    /// The UIDs the last `SEARCH RETURN (SAVE)` found: what `$` means (RFC 5182).
    saved: Vec<u32>,
    /// The folder's directory times when its view was last synced, and when they were
    /// read.
    stamp: Option<(Stamp, std::time::SystemTime)>,
    /// When the index last said the folder had not changed (other sessions' keywords
    /// show there only): asked again after [`INDEX_RECHECK`].
    index_checked: Option<std::time::Instant>,
}

/// When a folder's `new/` and `cur/` last changed: a delivery, a flag changed or a
/// message removed by anyone changes one of them.
type Stamp = (std::time::SystemTime, std::time::SystemTime);

fn stamp_of(root: &std::path::Path) -> Option<Stamp> {
    let m = |d: &str| {
        std::fs::metadata(root.join(d))
            .and_then(|m| m.modified())
            .ok()
    };
    Some((m("new")?, m("cur")?))
}

/// A folder's directory times now, and when they were read.
fn stamp_now(root: &std::path::Path) -> Option<(Stamp, std::time::SystemTime)> {
    let taken = std::time::SystemTime::now();
    stamp_of(root).map(|s| (s, taken))
}

/// Whether directory times read at `taken` would show any later change: a directory's
/// time only moves once per clock tick (a few milliseconds), so a change in the same tick
/// as the last one, after the times were read, would leave them as they were.
fn settled((stamp, taken): (Stamp, std::time::SystemTime)) -> bool {
    taken
        .duration_since(stamp.0.max(stamp.1))
        .is_ok_and(|age| age >= Duration::from_millis(50))
}

struct Session {
    config: Arc<Config>,
    shared: Arc<Shared>,
    index: Arc<Index>,
    peer: SocketAddr,
    tls: bool,
    user: Option<String>,
    selected: Option<Selected>,
    /// CONDSTORE is on (ENABLE, or a command that uses it): FETCH answers carry MODSEQ.
    condstore: bool,
    /// QRESYNC is enabled: expunges are told as VANISHED.
    qresync: bool,
    /// Folder names are UTF-8 (UTF8=ACCEPT or IMAP4rev2 enabled), not modified UTF-7.
    utf8: bool,
    /// IMAP4rev2 is enabled: no \Recent, SEARCH answered as ESEARCH.
    rev2: bool,
}

/// Tells the client that these messages (sequence number, UID; in order) are gone: one
/// VANISHED with their UIDs under QRESYNC, else an EXPUNGE each, highest number first so
/// the numbers stay right.
fn tell_expunged(conn: &mut Conn, qresync: bool, gone: &[(usize, u32)]) {
    if gone.is_empty() {
        return;
    }
    if qresync {
        let mut uids: Vec<u32> = gone.iter().map(|(_, u)| *u).collect();
        uids.sort_unstable();
        conn.say(&format!("* VANISHED {}", super::search::compact(&uids)));
    } else {
        for (seq, _) in gone.iter().rev() {
            conn.say(&format!("* {seq} EXPUNGE"));
        }
    }
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

/// Serves one IMAP connection.
pub async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    shared: Arc<Shared>,
    index: Arc<Index>,
    port: Port,
) -> io::Result<()> {
    // Answers are written whole, one per command: no reason to hold the last bytes back.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    let mut s = Session {
        config,
        shared,
        index,
        peer,
        tls: false,
        user: None,
        selected: None,
        condstore: false,
        qresync: false,
        utf8: false,
        rev2: false,
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

/// LIST's options (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154).
struct ListOptions {
    /// LSUB (IMAP4rev1): subscribed folders, answered as LSUB.
    lsub: bool,
    /// `(SUBSCRIBED)` selection: subscribed folders only.
    only_subscribed: bool,
    /// `(SPECIAL-USE)` selection: the special folders only.
    only_special: bool,
    /// `\Subscribed` shown.
    show_subscribed: bool,
    /// `RETURN (STATUS (...))`: a STATUS answer after each folder.
    status: Vec<StatusItem>,
}

enum Flow {
    Go,
    Stop,
}

impl Session {
    fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "UNSELECT",
            "NAMESPACE",
            "UIDPLUS",
            "SPECIAL-USE",
            "IDLE",
            "MOVE",
            "ESEARCH",
            "SEARCHRES",
            "CHILDREN",
            "CONDSTORE",
            "QRESYNC",
            "BINARY",
            "UTF8=ACCEPT",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "LITERAL-",
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
            Body::Enable(caps) => {
                let mut enabled = Vec::new();
                for cap in caps {
                    match cap.to_ascii_uppercase().as_str() {
                        "CONDSTORE" => {
                            self.condstore = true;
                            enabled.push("CONDSTORE");
                        }
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                            enabled.push("QRESYNC");
                        }
                        "UTF8=ACCEPT" => {
                            self.utf8 = true;
                            enabled.push("UTF8=ACCEPT");
                        }
                        "IMAP4REV2" => {
                            self.utf8 = true;
                            self.rev2 = true;
                            enabled.push("IMAP4rev2");
                        }
                        _ => {}
                    }
                }
                conn.say(format!("* ENABLED {}", enabled.join(" ")).trim_end());
                conn.say(&format!("{tag} OK ENABLE done"));
            }
            Body::GetQuotaRoot(name) => {
                let Some((name, _)) = self.existing(&name) else {
                    conn.say(&format!("{tag} NO no such folder"));
                    return Ok(Flow::Go);
                };
                let quoted = self.shown_name(&name);
                match self.quota().await {
                    Some(line) => {
                        conn.say(&format!("* QUOTAROOT {quoted} \"\""));
                        conn.say(&line);
                    }
                    None => conn.say(&format!("* QUOTAROOT {quoted}")),
                }
                conn.say(&format!("{tag} OK GETQUOTAROOT done"));
            }
            Body::GetQuota(root) => match self.quota().await {
                Some(line) if root.is_empty() => {
                    conn.say(&line);
                    conn.say(&format!("{tag} OK GETQUOTA done"));
                }
                _ => conn.say(&format!("{tag} NO no such quota root")),
            },
            Body::SetQuota => {
                conn.say(&format!(
                    "{tag} NO [NOPERM] mailbox sizes are set by the office's administrator"
                ));
            }
            Body::Namespace => {
                conn.say("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                conn.say(&format!("{tag} OK NAMESPACE done"));
            }
            Body::List {
                reference,
                patterns,
                lsub,
                returns,
                select,
                status,
            } => {
                // The reference names where the patterns start (RFC 9051 6.3.9): joined.
                let patterns: Vec<Vec<u8>> = patterns
                    .into_iter()
                    .map(|p| {
                        if p.is_empty() {
                            p
                        } else {
                            [reference.as_slice(), p.as_slice()].concat()
                        }
                    })
                    .collect();
                let has = |list: &[String], w: &str| list.iter().any(|r| r == w);
                let options = ListOptions {
                    lsub,
                    only_subscribed: has(&select, "SUBSCRIBED"),
                    only_special: has(&select, "SPECIAL-USE"),
                    show_subscribed: has(&returns, "SUBSCRIBED") || has(&select, "SUBSCRIBED"),
                    status,
                };
                self.list(conn, &patterns, &options).await;
                conn.say(&format!(
                    "{tag} OK {} done",
                    if lsub { "LSUB" } else { "LIST" }
                ));
            }
            Body::Create { mailbox, .. } => {
                let reply = self.create(&mailbox).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Subscribe(name) => {
                let reply = self.subscribe(&name, true).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Unsubscribe(name) => {
                let reply = self.subscribe(&name, false).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Delete(name) => {
                let reply = self.delete(&name).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Rename { from, to } => {
                let reply = self.rename(&from, &to).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let reply = self
                    .append(&mailbox, &flags, date.as_deref(), message)
                    .await;
                self.report_changes(conn).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Idle => {
                return self.idle(conn, framer, &tag).await;
            }
            Body::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                if qresync.is_some() && !self.qresync {
                    conn.say(&format!("{tag} BAD ENABLE QRESYNC first"));
                    return Ok(Flow::Go);
                }
                self.condstore |= condstore;
                let reply = self.select(conn, &mailbox, read_only).await;
                if reply.starts_with("OK")
                    && let Some(q) = qresync
                {
                    self.resync_client(conn, &q).await;
                }
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
                uid,
                set,
                mut items,
                changed_since,
                vanished,
            } => {
                if vanished && !(uid && self.qresync && changed_since.is_some()) {
                    conn.say(&format!(
                        "{tag} BAD VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC"
                    ));
                    return Ok(Flow::Go);
                }
                self.report_changes(conn).await;
                if changed_since.is_some() || items.contains(&FetchItem::Modseq) {
                    self.condstore = true;
                }
                if self.condstore && !items.contains(&FetchItem::Modseq) {
                    items.push(FetchItem::Modseq);
                }
                let set = match changed_since {
                    Some(since) => {
                        if vanished {
                            self.tell_vanished_since(conn, &set, since).await;
                        }
                        self.changed_since(uid, &set, since)
                    }
                    None => set,
                };
                if self.fetch(conn, uid, &set, &items).await {
                    conn.say(&format!("{tag} OK FETCH done"));
                } else {
                    conn.say(&format!(
                        "{tag} NO [UNKNOWN-CTE] a part's encoding cannot be undone"
                    ));
                }
            }
            Body::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => {
                // UNCHANGEDSINCE: a message changed since then is left alone and named in
                // MODIFIED (RFC 7162 3.1.3).
                let mut modified = Vec::new();
                let set = match unchanged_since {
                    Some(limit) => {
                        self.condstore = true;
                        let (keep, changed) = self.split_unchanged(uid, &set, limit);
                        modified = changed;
                        keep
                    }
                    None => set,
                };
                let reply = self.store(conn, uid, &set, mode, silent, &flags).await;
                if modified.is_empty() || !reply.starts_with("OK") {
                    conn.say(&format!("{tag} {reply}"));
                } else {
                    conn.say(&format!(
                        "{tag} OK [MODIFIED {}] changed meanwhile: not stored",
                        super::search::compact(&modified)
                    ));
                }
            }
            Body::Expunge(uids) => {
                if self.selected.as_ref().is_some_and(|s| s.read_only) {
                    conn.say(&format!("{tag} NO the folder is read-only"));
                    return Ok(Flow::Go);
                }
                self.expunge(conn, uids.as_ref(), true).await;
                conn.say(&format!("{tag} OK EXPUNGE done"));
            }
            Body::Search {
                uid,
                returns,
                esearch,
                charset,
                key,
            } => {
                if let Some(cs) = charset
                    && !cs.eq_ignore_ascii_case("UTF-8")
                    && !cs.eq_ignore_ascii_case("US-ASCII")
                {
                    conn.say(&format!(
                        "{tag} NO [BADCHARSET (UTF-8 US-ASCII)] search in UTF-8"
                    ));
                    return Ok(Flow::Go);
                }
                if uid {
                    self.report_changes(conn).await;
                }
                let esearch = esearch || self.rev2;
                self.search(conn, &tag, uid, &returns, esearch, &key).await;
                conn.say(&format!("{tag} OK SEARCH done"));
            }
            Body::Copy { uid, set, mailbox } => {
                let reply = self.copy(conn, uid, &set, &mailbox, false).await;
                conn.say(&format!("{tag} {reply}"));
            }
            Body::Move { uid, set, mailbox } => {
                let reply = self.copy(conn, uid, &set, &mailbox, true).await;
                conn.say(&format!("{tag} {reply}"));
            }
        }
        Ok(Flow::Go)
    }

    /// The folder `name` (as the client wrote it) in this user's mailbox: its canonical
    /// name and directory, when it exists.
    /// A folder name as the client wrote it, in UTF-8 (modified UTF-7 decoded for an
    /// IMAP4rev1 client; a name that is not valid modified UTF-7 is taken as it is).
    fn folder_name(&self, raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(raw).into_owned();
        if self.utf8 {
            text
        } else {
            super::utf7::decode(&text).unwrap_or(text)
        }
    }

    /// A folder name as this client reads them, quoted.
    fn shown_name(&self, name: &str) -> String {
        if self.utf8 {
            quote(name)
        } else {
            quote(&super::utf7::encode(name))
        }
    }

    fn existing(&self, name: &[u8]) -> Option<(String, PathBuf)> {
        let root = self.root()?;
        let name = mailbox::canonical(&self.folder_name(name)).ok()?;
        let dir = mailbox::dir_of(&root, &name);
        (name == "INBOX" || dir.join("cur").is_dir()).then_some((name, dir))
    }

    /// Runs `f` on the index, off the async threads.
    async fn on_index<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> R + Send + 'static,
    ) -> Option<R> {
        let index = Arc::clone(&self.index);
        tokio::task::spawn_blocking(move || index.with(f))
            .await
            .ok()
    }

    async fn subscribe(&self, name: &[u8], on: bool) -> String {
        let (Some(login), Some((name, _))) = (self.user.clone(), self.existing(name)) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let done = self
            .on_index(move |db| {
                let folder = db.imap_folder(&login, &name)?;
                db.imap_subscribe(folder.id, on)
            })
            .await;
        match done {
            Some(Ok(())) => "OK done".into(),
            _ => "NO [SERVERBUG] the subscription cannot be kept".into(),
        }
    }

    /// DELETE: the folder and its messages. INBOX cannot be deleted, nor a folder with
    /// folders inside it (delete those first).
    async fn delete(&mut self, name: &[u8]) -> String {
        let (Some(login), Some(root)) = (self.user.clone(), self.root()) else {
            return "NO log in first".into();
        };
        let Some((name, dir)) = self.existing(name) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        if name == "INBOX" {
            return "NO [CANNOT] INBOX cannot be deleted".into();
        }
        let inside = format!("{name}/");
        let folders = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || mailbox::folders(&root))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if folders.iter().any(|f| f.starts_with(&inside)) {
            return "NO [CANNOT] delete the folders inside it first".into();
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        let removed = tokio::task::spawn_blocking(move || remove_folder(&dir)).await;
        if !matches!(removed, Ok(Ok(()))) {
            warn!(message = "imap: a folder cannot be deleted", user = %login, folder = %name);
            return "NO [SERVERBUG] the folder cannot be deleted".into();
        }
        let _ = self
            .on_index(move |db| {
                if let Ok(Some(f)) = db.imap_folder_if_any(&login, &name) {
                    let _ = db.imap_drop_folder(f.id);
                }
            })
            .await;
        "OK DELETE done".into()
    }

    /// RENAME: the folder and the folders inside it, UIDs kept. Renaming INBOX moves its
    /// messages into a new folder and leaves INBOX empty (RFC 9051 6.3.6).
    async fn rename(&mut self, from: &[u8], to: &[u8]) -> String {
        let (Some(login), Some(root)) = (self.user.clone(), self.root()) else {
            return "NO log in first".into();
        };
        let Some((from, from_dir)) = self.existing(from) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let to = match mailbox::canonical(&self.folder_name(to)) {
            Ok(n) if n == "INBOX" => return "NO [ALREADYEXISTS] INBOX exists".into(),
            Ok(n) => n,
            Err(e) => return format!("NO {e}"),
        };
        if to.starts_with(&format!("{from}/")) {
            return "NO [CANNOT] a folder cannot go inside itself".into();
        }
        let to_dir = mailbox::dir_of(&root, &to);
        if to_dir.exists() {
            return "NO [ALREADYEXISTS] that folder exists".into();
        }
        if self.selected.as_ref().is_some_and(|s| s.name == from) {
            self.selected = None;
        }
        if from == "INBOX" {
            let Some(snap) = self.snapshot("INBOX").await else {
                return "NO [SERVERBUG] INBOX cannot be read".into();
            };
            let moved = tokio::task::spawn_blocking(move || {
                let dest = officebox_store::Maildir::open(&to_dir)?;
                for (i, m) in snap.messages.iter().enumerate() {
                    if let Some(e) = snap.file(i) {
                        snap.maildir
                            .move_into(&e, &dest, e.flags(), Some(m.received))?;
                    }
                }
                Ok::<_, officebox_store::StoreError>(())
            })
            .await;
            return match moved {
                Ok(Ok(())) => "OK RENAME done".into(),
                _ => "NO [SERVERBUG] the messages cannot all be moved".into(),
            };
        }
        // The folder, then every folder inside it, each directory renamed whole.
        let inside = format!("{from}/");
        let renamed = tokio::task::spawn_blocking(move || {
            let mut pairs = vec![(from.clone(), to.clone())];
            for f in mailbox::folders(&root)? {
                if let Some(rest) = f.strip_prefix(&inside) {
                    pairs.push((f.clone(), format!("{to}/{rest}")));
                }
            }
            for (old, new) in &pairs {
                let (a, b) = (mailbox::dir_of(&root, old), mailbox::dir_of(&root, new));
                std::fs::rename(&a, &b)
                    .map_err(|e| officebox_store::StoreError::io("rename folder", &b, e))?;
            }
            officebox_store::Maildir::open(&root)?;
            let _ = from_dir;
            Ok::<_, officebox_store::StoreError>(pairs)
        })
        .await;
        let Ok(Ok(pairs)) = renamed else {
            return "NO [SERVERBUG] the folder cannot be renamed".into();
        };
        let _ = self
            .on_index(move |db| {
                for (old, new) in pairs {
                    if let Ok(Some(f)) = db.imap_folder_if_any(&login, &old) {
                        let _ = db.imap_rename_folder(f.id, &new);
                    }
                }
            })
            .await;
        "OK RENAME done".into()
    }

    /// APPEND: the message stored in the folder with its flags and date; its UID told.
    async fn append(
        &mut self,
        name: &[u8],
        flags: &[command::Flag],
        date: Option<&str>,
        message: Vec<u8>,
    ) -> String {
        let Some(login) = self.user.clone() else {
            return "NO log in first".into();
        };
        let Some((name, dir)) = self.existing(name) else {
            return "NO [TRYCREATE] no such folder".into();
        };
        let arrived = match date {
            None => None,
            Some(d) => match command::date_time(d) {
                Some(t) => Some(t),
                None => return format!("BAD {d:?} is not a date-time"),
            },
        };
        if message.is_empty() {
            return "NO an empty message is not stored".into();
        }
        if let Some(quota) = quota_of(&self.config, &login) {
            let store = Arc::clone(&self.index.store);
            let who = login.clone();
            let used = tokio::task::spawn_blocking(move || store.usage(&who))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            if used.saturating_add(message.len() as u64) > quota {
                return "NO [OVERQUOTA] the mailbox is full: delete some mail first".into();
            }
        }
        let (letters, keywords) = super::flags::stored(flags);
        let (index, root) = (Arc::clone(&self.index), self.root().unwrap_or_default());
        let done = tokio::task::spawn_blocking(move || {
            let maildir = officebox_store::Maildir::open(&dir)?;
            let entry = maildir.store(&message, &letters, arrived)?;
            // The folder synced from how it was last read (its rows are not read twice),
            // and kept as now read for the sessions that look next.
            let known = index.read_before(&login, &name).map(|(_, snap)| snap);
            let stamp = stamp_now(&dir);
            let (snap, uid) = index.with(|db| {
                let snap = mailbox::sync_from(db, &login, &root, &name, known.as_ref())?;
                let m = snap.messages.iter().find(|m| *m.unique == *entry.unique());
                let uid = m.map_or(0, |m| m.uid);
                if !keywords.is_empty() && uid > 0 {
                    db.imap_set_flags(snap.folder.id, uid, &letters, &keywords)?;
                }
                Ok::<_, officebox_store::StoreError>((snap, uid))
            })?;
            if let Some(stamp) = stamp
                && keywords.is_empty()
            {
                index.remember(&login, &name, stamp, &snap);
            }
            Ok::<_, officebox_store::StoreError>((snap.folder.uidvalidity, uid))
        })
        .await;
        match done {
            Ok(Ok((validity, uid))) => format!("OK [APPENDUID {validity} {uid}] APPEND done"),
            Ok(Err(error)) => {
                warn!(message = "imap: a message cannot be stored", %error);
                "NO [SERVERBUG] the message cannot be stored".into()
            }
            Err(_) => "NO [SERVERBUG] the message cannot be stored".into(),
        }
    }

    /// The user's `* QUOTA "" (STORAGE used limit)` line (KiB, RFC 9208), when they have a
    /// limit.
    async fn quota(&self) -> Option<String> {
        let login = self.user.clone()?;
        let limit = quota_of(&self.config, &login)?;
        let store = Arc::clone(&self.index.store);
        let used = tokio::task::spawn_blocking(move || store.usage(&login))
            .await
            .ok()?
            .ok()?;
        Some(format!(
            "* QUOTA \"\" (STORAGE {} {})",
            used.div_ceil(1024),
            limit / 1024
        ))
    }

    /// COPY and MOVE: the chosen messages into another folder (flags, keywords and date
    /// kept), their new UIDs told; MOVE then expunges them here.
    async fn copy(
        &mut self,
        conn: &mut Conn,
        uid: bool,
        set: &SequenceSet,
        name: &[u8],
        moving: bool,
    ) -> String {
        let Some(login) = self.user.clone() else {
            return "NO log in first".into();
        };
        let Some((name, dir)) = self.existing(name) else {
            return "NO [TRYCREATE] no such folder".into();
        };
        if moving && self.selected.as_ref().is_some_and(|s| s.read_only) {
            return "NO the folder is read-only".into();
        }
        let chosen = self.chosen(uid, set);
        let Some(sel) = &self.selected else {
            return "NO select a folder first".into();
        };
        if chosen.is_empty() {
            return format!("OK {} done", if moving { "MOVE" } else { "COPY" });
        }
        let work: Vec<(ImapMessage, officebox_store::Entry)> = chosen
            .into_iter()
            .filter_map(|(seq, m)| sel.snap.file(seq - 1).map(|e| (m, e)))
            .collect();
        let (index, root, source) = (
            Arc::clone(&self.index),
            self.root().unwrap_or_default(),
            sel.snap.maildir.clone(),
        );
        let done = tokio::task::spawn_blocking(move || {
            let dest = officebox_store::Maildir::open(&dir)?;
            let mut placed = Vec::new();
            for (m, e) in &work {
                let new = if moving {
                    source.move_into(e, &dest, &m.flags, Some(m.received))
                } else {
                    source
                        .read(e)
                        .and_then(|data| dest.store(&data, &m.flags, Some(m.received)))
                };
                match new {
                    Ok(new) => placed.push((m, new)),
                    // Gone meanwhile (another client expunged it): nothing to copy.
                    Err(error) => warn!(message = "imap: a message cannot be copied", %error),
                }
            }
            index.with(|db| {
                let snap = mailbox::sync(db, &login, &root, &name)?;
                let mut pairs = Vec::new();
                for (m, new) in placed {
                    if let Some(n) = snap.messages.iter().find(|x| *x.unique == *new.unique()) {
                        if !m.keywords.is_empty() {
                            db.imap_set_flags(snap.folder.id, n.uid, &m.flags, &m.keywords)?;
                        }
                        pairs.push((m.uid, n.uid));
                    }
                }
                Ok::<_, officebox_store::StoreError>((snap.folder.uidvalidity, pairs))
            })
        })
        .await;
        let (validity, pairs) = match done {
            Ok(Ok(v)) => v,
            _ => return "NO [SERVERBUG] the messages cannot be copied".into(),
        };
        let code = if pairs.is_empty() {
            String::new()
        } else {
            let (from, to): (Vec<u32>, Vec<u32>) = pairs.iter().copied().unzip();
            format!(
                "[COPYUID {validity} {} {}] ",
                super::search::compact(&from),
                super::search::compact(&to)
            )
        };
        if !moving {
            return format!("OK {code}COPY done");
        }
        if !code.is_empty() {
            conn.say(&format!("* OK {code}moved"));
        }
        // What left this folder, as EXPUNGE (highest number first), and the view synced.
        let gone: HashSet<u32> = pairs.iter().map(|(from, _)| *from).collect();
        if let Some(sel) = &self.selected {
            let told: Vec<(usize, u32)> = sel
                .snap
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| gone.contains(&m.uid))
                .map(|(i, m)| (i + 1, m.uid))
                .collect();
            tell_expunged(conn, self.qresync, &told);
        }
        self.resync().await;
        "OK MOVE done".into()
    }

    /// The chosen messages whose modseq is above `since`, as a set in the same numbering
    /// (CHANGEDSINCE).
    fn changed_since(&self, uid: bool, set: &SequenceSet, since: u64) -> SequenceSet {
        let numbers: Vec<u32> = self
            .chosen(uid, set)
            .into_iter()
            .filter(|(_, m)| m.modseq > since)
            .map(|(seq, m)| if uid { m.uid } else { seq_u32(seq) })
            .collect();
        numbers_set(&numbers)
    }

    /// UNCHANGEDSINCE: the chosen messages not changed after `limit` (as a set), and the
    /// numbers of those that were.
    fn split_unchanged(&self, uid: bool, set: &SequenceSet, limit: u64) -> (SequenceSet, Vec<u32>) {
        let (mut keep, mut changed) = (Vec::new(), Vec::new());
        for (seq, m) in self.chosen(uid, set) {
            let n = if uid { m.uid } else { seq_u32(seq) };
            if m.modseq > limit {
                changed.push(n);
            } else {
                keep.push(n);
            }
        }
        (numbers_set(&keep), changed)
    }

    /// UID FETCH ... (CHANGEDSINCE n VANISHED): the UIDs in the set expunged after n.
    async fn tell_vanished_since(&self, conn: &mut Conn, set: &SequenceSet, since: u64) {
        let Some(sel) = &self.selected else { return };
        let (folder, last) = (
            sel.snap.folder.id,
            sel.snap.folder.uidnext.saturating_sub(1),
        );
        let gone = self
            .on_index(move |db| db.imap_expunged_since(folder, since))
            .await
            .and_then(Result::ok)
            .unwrap_or_default();
        let gone: Vec<u32> = gone
            .into_iter()
            .filter(|u| set.contains(*u, last))
            .collect();
        if !gone.is_empty() {
            conn.say(&format!(
                "* VANISHED (EARLIER) {}",
                super::search::compact(&gone)
            ));
        }
    }

    /// SELECT's QRESYNC: when the client's UIDVALIDITY is still good, what it missed since
    /// its modseq: the UIDs expunged (VANISHED (EARLIER)) and the messages changed.
    async fn resync_client(&mut self, conn: &mut Conn, q: &command::Qresync) {
        let Some(sel) = &self.selected else { return };
        if q.uidvalidity != sel.snap.folder.uidvalidity {
            return;
        }
        let (folder, last) = (
            sel.snap.folder.id,
            sel.snap.folder.uidnext.saturating_sub(1),
        );
        let since = q.modseq;
        let gone = self
            .on_index(move |db| db.imap_expunged_since(folder, since))
            .await
            .and_then(Result::ok)
            .unwrap_or_default();
        let gone: Vec<u32> = gone
            .into_iter()
            .filter(|u| q.known_uids.as_ref().is_none_or(|k| k.contains(*u, last)))
            .collect();
        if !gone.is_empty() {
            conn.say(&format!(
                "* VANISHED (EARLIER) {}",
                super::search::compact(&gone)
            ));
        }
        let Some(sel) = &self.selected else { return };
        for (i, m) in sel.snap.messages.iter().enumerate() {
            if m.modseq > since {
                conn.say(&format!(
                    "* {} FETCH (UID {} FLAGS ({}) MODSEQ ({}))",
                    i + 1,
                    m.uid,
                    super::flags::shown(&m.flags, &m.keywords, false).join(" "),
                    m.modseq
                ));
            }
        }
    }

    /// The selected folder's view replaced by a fresh sync, without telling the client
    /// (after this session told it itself).
    async fn resync(&mut self) {
        let Some(name) = self.selected.as_ref().map(|s| s.name.clone()) else {
            return;
        };
        if let Some(snap) = self.snapshot(&name).await
            && let Some(sel) = self.selected.as_mut()
        {
            sel.snap = snap;
        }
    }

    /// SEARCH, answered as SEARCH or (with RETURN) ESEARCH.
    async fn search(
        &mut self,
        conn: &mut Conn,
        tag: &str,
        uid: bool,
        returns: &[String],
        esearch: bool,
        key: &command::SearchKey,
    ) {
        let Some(sel) = &self.selected else { return };
        let (messages, files, maildir, recent, wanted) = (
            sel.snap.messages.clone(),
            sel.snap.files.clone(),
            sel.snap.maildir.clone(),
            sel.recent.clone(),
            key.clone(),
        );
        let saved = sel.saved.clone();
        let found = tokio::task::spawn_blocking(move || {
            let key = resolve_saved(wanted, &saved);
            let content = super::search::needs_content(&key);
            let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
            let last_uid = messages.last().map_or(0, |m| m.uid);
            let mut found: Vec<(u32, u32, u64)> = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let c = super::search::Candidate {
                    seq: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    count,
                    last_uid,
                    message: m,
                    recent: recent.contains(&m.uid),
                };
                let raw = if content {
                    mailbox::file_of(&messages, &files, i).and_then(|e| maildir.read(&e).ok())
                } else {
                    None
                };
                let parsed = raw.as_deref().and_then(super::search::parse);
                if super::search::matches(&key, &c, parsed.as_ref()) {
                    found.push((c.seq, m.uid, m.modseq));
                }
            }
            found
        })
        .await
        .unwrap_or_default();
        let numbers: Vec<u32> = found
            .iter()
            .map(|&(seq, u, _)| if uid { u } else { seq })
            .collect();
        let modseq = found.iter().map(|&(_, _, m)| m).max();
        let wants = |w: &str| returns.iter().any(|r| r == w);
        if wants("SAVE") {
            let only_ends = (wants("MIN") || wants("MAX")) && !wants("ALL") && !wants("COUNT");
            let mut uids: Vec<u32> = if only_ends {
                let min = found.first().filter(|_| wants("MIN"));
                let max = found.last().filter(|_| wants("MAX"));
                [min, max].into_iter().flatten().map(|f| f.1).collect()
            } else {
                found.iter().map(|f| f.1).collect()
            };
            uids.sort_unstable();
            uids.dedup();
            if let Some(sel) = self.selected.as_mut() {
                sel.saved = uids;
            }
        }
        let condstore = search_uses_modseq(key);
        if returns.is_empty() && !esearch {
            let mut line = String::from("* SEARCH");
            for n in &numbers {
                line.push_str(&format!(" {n}"));
            }
            if condstore && let Some(m) = modseq {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            conn.say(&line);
            return;
        }
        if returns.len() == 1 && wants("SAVE") {
            return;
        }
        let mut line = format!("* ESEARCH (TAG {})", quote(tag));
        if uid {
            line.push_str(" UID");
        }
        let all = esearch && returns.iter().all(|r| r == "SAVE") || wants("ALL");
        if wants("MIN")
            && let Some(n) = numbers.first()
        {
            line.push_str(&format!(" MIN {n}"));
        }
        if wants("MAX")
            && let Some(n) = numbers.last()
        {
            line.push_str(&format!(" MAX {n}"));
        }
        if all && !numbers.is_empty() {
            line.push_str(&format!(" ALL {}", super::search::compact(&numbers)));
        }
        if wants("COUNT") {
            line.push_str(&format!(" COUNT {}", numbers.len()));
        }
        if condstore && let Some(m) = modseq {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        conn.say(&line);
    }

    /// IDLE: what changes in the selected folder is told as it happens, until DONE.
    async fn idle(&mut self, conn: &mut Conn, framer: &mut Framer, tag: &str) -> io::Result<Flow> {
        conn.say("+ idling");
        // What happened since the last command first.
        self.report_changes(conn).await;
        conn.flush().await?;
        let deadline = tokio::time::Instant::now() + IDLE;
        loop {
            if let Some(line) = framer.take_raw_line() {
                let word = String::from_utf8_lossy(&line);
                if word.trim().eq_ignore_ascii_case("DONE") {
                    conn.say(&format!("{tag} OK IDLE done"));
                    return Ok(Flow::Go);
                }
                conn.say(&format!("{tag} BAD expected DONE"));
                return Ok(Flow::Go);
            }
            if framer.held() > 1024 {
                conn.say(&format!("{tag} BAD expected DONE"));
                return Ok(Flow::Stop);
            }
            conn.flush().await?;
            tokio::select! {
                got = conn.fill(IDLE_POLL) => match got {
                    Ok(true) => {
                        let bytes = std::mem::take(&mut conn.buf);
                        framer.push(&bytes);
                    }
                    Ok(false) => return Ok(Flow::Stop),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(e),
                },
                () = tokio::time::sleep_until(deadline) => {
                    conn.say("* BYE idle for too long");
                    return Ok(Flow::Stop);
                }
            }
            self.report_changes(conn).await;
        }
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

    async fn list(&self, conn: &mut Conn, patterns: &[Vec<u8>], o: &ListOptions) {
        let (lsub, subscribed) = (o.lsub, o.show_subscribed);
        let (Some(root), Some(login)) = (self.root(), self.user.clone()) else {
            return;
        };
        let names = tokio::task::spawn_blocking(move || mailbox::folders(&root))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        // Folders are subscribed until the client unsubscribes them.
        let unsubscribed: HashSet<String> = self
            .on_index(move |db| db.imap_folders(&login))
            .await
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| !f.subscribed)
            .map(|f| f.name)
            .collect();
        let verb = if lsub { "LSUB" } else { "LIST" };
        for pattern in patterns {
            let pattern = self.folder_name(pattern);
            if pattern.is_empty() {
                conn.say(&format!("* {verb} (\\Noselect) \"/\" \"\""));
                continue;
            }
            for name in &names {
                let special = mailbox::SPECIAL.iter().any(|(n, _)| n == name);
                if !matches_pattern(&pattern, name)
                    || ((lsub || o.only_subscribed) && unsubscribed.contains(name))
                    || (o.only_special && !special)
                {
                    continue;
                }
                let inside = format!("{name}/");
                let children = names.iter().any(|n| n.starts_with(&inside));
                let mut attrs = vec![if children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                }];
                if subscribed && !unsubscribed.contains(name) {
                    attrs.push("\\Subscribed");
                }
                if let Some((_, special)) = mailbox::SPECIAL.iter().find(|(n, _)| n == name) {
                    attrs.push(special);
                }
                conn.say(&format!(
                    "* {verb} ({}) \"/\" {}",
                    attrs.join(" "),
                    self.shown_name(name)
                ));
                if !o.status.is_empty() {
                    self.status_of(conn, name, &o.status).await;
                }
            }
        }
    }

    async fn create(&self, name: &[u8]) -> String {
        let Some(root) = self.root() else {
            return "NO log in first".into();
        };
        let name = match mailbox::canonical(&self.folder_name(name)) {
            Ok(n) if n == "INBOX" => return "NO INBOX exists already".into(),
            Ok(n) => n,
            Err(e) => return format!("NO {e}"),
        };
        let dir = mailbox::dir_of(&root, &name);
        if dir.join("cur").is_dir() {
            return "NO [ALREADYEXISTS] that folder exists".into();
        }
        // The folders it is inside are made too (RFC 9051 6.3.4): "Work/2026" makes "Work".
        let mut dirs: Vec<PathBuf> = name
            .match_indices('/')
            .map(|(i, _)| mailbox::dir_of(&root, name.get(..i).unwrap_or_default()))
            .collect();
        dirs.push(dir);
        let made = tokio::task::spawn_blocking(move || {
            dirs.iter()
                .try_for_each(|d| officebox_store::Maildir::open(d).map(drop))
        })
        .await;
        match made {
            Ok(Ok(())) => "OK CREATE done".into(),
            _ => "NO [SERVERBUG] the folder cannot be made".into(),
        }
    }

    /// The folder `name` as it is now (`None`: no such folder): as the index last read it
    /// when nothing moved since (its directories' times, settled, and its modseq), else
    /// synced.
    async fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let root = self.root()?;
        let dir = mailbox::dir_of(&root, name);
        if !dir.join("cur").is_dir() && name != "INBOX" {
            return None;
        }
        let login = self.user.clone()?;
        let stamp = stamp_now(&dir);
        let before = self.index.read_before(&login, name);
        if let (Some((now, _)), Some((then, snap))) = (stamp, before.clone())
            && now == then.0
            && settled(then)
        {
            let (wanted, folder) = (login.clone(), name.to_string());
            let indexed = self
                .on_index(move |db| db.imap_folder_if_any(&wanted, &folder))
                .await;
            if let Some(Ok(Some(f))) = indexed
                && f.modseq == snap.folder.modseq
            {
                return Some(Snapshot {
                    changes: Default::default(),
                    ..snap
                });
            }
        }
        let (index, owner, folder) = (Arc::clone(&self.index), login.clone(), name.to_string());
        let snap = tokio::task::spawn_blocking(move || {
            let known = before.map(|(_, snap)| snap);
            index.with(|db| mailbox::sync_from(db, &owner, &root, &folder, known.as_ref()))
        })
        .await
        .ok()?
        .map_err(|error| warn!(message = "imap: a folder cannot be read", %error))
        .ok()?;
        if let Some(stamp) = stamp {
            self.index.remember(&login, name, stamp, &snap);
        }
        Some(snap)
    }

    async fn select(&mut self, conn: &mut Conn, name: &[u8], read_only: bool) -> String {
        if self.selected.take().is_some() && (self.qresync || self.rev2) {
            conn.say("* OK [CLOSED] the previous folder is closed");
        }
        let Ok(name) = mailbox::canonical(&self.folder_name(name)) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let stamp = self
            .root()
            .and_then(|r| stamp_now(&mailbox::dir_of(&r, &name)));
        let Some(snap) = self.snapshot(&name).await else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        let recent: HashSet<u32> = HashSet::new();
        conn.say(&format!("* {} EXISTS", snap.messages.len()));
        if !self.rev2 {
            conn.say("* 0 RECENT");
        }
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
            saved: Vec::new(),
            stamp,
            index_checked: None,
        });
        format!("OK [{mode}] selected")
    }

    async fn status(&self, conn: &mut Conn, name: &[u8], items: &[StatusItem]) -> String {
        let Ok(name) = mailbox::canonical(&self.folder_name(name)) else {
            return "NO [NONEXISTENT] no such folder".into();
        };
        self.status_of(conn, &name, items).await
    }

    /// `* STATUS` of folder `name` (canonical).
    async fn status_of(&self, conn: &mut Conn, name: &str, items: &[StatusItem]) -> String {
        let Some(snap) = self.snapshot(name).await else {
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
        conn.say(&format!(
            "* STATUS {} ({})",
            self.shown_name(name),
            out.join(" ")
        ));
        "OK STATUS done".into()
    }

    /// Brings the selected folder up to date and tells the client what changed.
    async fn report_changes(&mut self, conn: &mut Conn) {
        let (Some(sel), Some(login)) = (self.selected.as_ref(), self.user.clone()) else {
            return;
        };
        let name = sel.name.clone();
        // Nothing to look at unless the directories moved, or the index did (another
        // session's keywords): a stat of two directories and one row, not a sync.
        let stamp = stamp_now(sel.snap.maildir.root());
        let known = sel.snap.folder.modseq;
        let same = match (stamp, sel.stamp) {
            (Some((now, _)), Some((then, taken))) => now == then && settled((then, taken)),
            _ => false,
        };
        if same {
            if sel
                .index_checked
                .is_some_and(|t| t.elapsed() < INDEX_RECHECK)
            {
                return;
            }
            let (folder, wanted) = (name.clone(), login);
            let indexed = self
                .on_index(move |db| db.imap_folder_if_any(&wanted, &folder))
                .await;
            if let Some(Ok(Some(f))) = indexed
                && f.modseq == known
            {
                if let Some(sel) = self.selected.as_mut() {
                    sel.index_checked = Some(std::time::Instant::now());
                }
                return;
            }
        }
        let Some(snap) = self.snapshot(&name).await else {
            return;
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        sel.stamp = stamp;
        // What changed is what differs from this session's own view (another session's
        // sync may have brought the shared index up to date already).
        let now: std::collections::HashMap<u32, u64> =
            snap.messages.iter().map(|m| (m.uid, m.modseq)).collect();
        let before: std::collections::HashMap<u32, u64> = sel
            .snap
            .messages
            .iter()
            .map(|m| (m.uid, m.modseq))
            .collect();
        let gone: Vec<(usize, u32)> = sel
            .snap
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !now.contains_key(&m.uid))
            .map(|(i, m)| (i + 1, m.uid))
            .collect();
        tell_expunged(conn, self.qresync, &gone);
        let added: Vec<u32> = snap
            .messages
            .iter()
            .map(|m| m.uid)
            .filter(|u| !before.contains_key(u))
            .collect();
        if !added.is_empty() {
            conn.say(&format!("* {} EXISTS", snap.messages.len()));
        }
        sel.recent.extend(added.iter().copied());
        for (i, m) in snap.messages.iter().enumerate() {
            if before.get(&m.uid).is_some_and(|&old| old != m.modseq) {
                let modseq = if self.condstore {
                    format!(" MODSEQ ({})", m.modseq)
                } else {
                    String::new()
                };
                conn.say(&format!(
                    "* {} FETCH (UID {} FLAGS ({}){modseq})",
                    i + 1,
                    m.uid,
                    super::flags::shown(
                        &m.flags,
                        &m.keywords,
                        !self.rev2 && sel.recent.contains(&m.uid)
                    )
                    .join(" ")
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
        self.chosen_at(uid, set)
            .into_iter()
            .filter_map(|i| sel.snap.messages.get(i).map(|m| (i + 1, m.clone())))
            .collect()
    }

    /// The indexes (sequence number - 1) of the selected messages, in order.
    fn chosen_at(&self, uid: bool, set: &SequenceSet) -> Vec<usize> {
        let Some(sel) = &self.selected else {
            return Vec::new();
        };
        let msgs = &sel.snap.messages;
        let ranges = match set {
            SequenceSet::Saved => {
                return sel
                    .saved
                    .iter()
                    .filter_map(|u| msgs.binary_search_by_key(u, |m| m.uid).ok())
                    .collect();
            }
            SequenceSet::Ranges(r) => r,
        };
        let last = if uid {
            msgs.last().map_or(0, |m| m.uid)
        } else {
            u32::try_from(msgs.len()).unwrap_or(u32::MAX)
        };
        // The ranges as index ranges, sorted and merged: the work is the number of
        // ranges and messages, however the client wrote them (10,000 times "1:*").
        let mut spans: Vec<(usize, usize)> = ranges
            .iter()
            .filter_map(|&(a, b)| {
                let value = |s: command::Seq| match s {
                    command::Seq::Number(v) => v,
                    command::Seq::Last => last,
                };
                let (a, b) = (value(a), value(b));
                let (lo, hi) = (a.min(b), a.max(b));
                let (start, end) = if uid {
                    (
                        msgs.partition_point(|m| m.uid < lo),
                        msgs.partition_point(|m| m.uid <= hi),
                    )
                } else {
                    (
                        usize::try_from(lo.max(1) - 1).unwrap_or(usize::MAX),
                        usize::try_from(hi).unwrap_or(usize::MAX).min(msgs.len()),
                    )
                };
                (start < end).then_some((start, end))
            })
            .collect();
        spans.sort_unstable();
        let mut out = Vec::new();
        let mut next = 0;
        for (start, end) in spans {
            out.extend(start.max(next)..end);
            next = next.max(end);
        }
        out
    }

    /// FETCH; `false` when a part could not be decoded for BINARY (the tagged answer is
    /// then NO [UNKNOWN-CTE]).
    async fn fetch(
        &mut self,
        conn: &mut Conn,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchItem],
    ) -> bool {
        let chosen = self.chosen_at(uid, set);
        let Some(sel) = &self.selected else {
            return true;
        };
        let needs_body = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::Rfc822
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Section { .. }
                    | FetchItem::Envelope
                    | FetchItem::Body
                    | FetchItem::BodyStructure
                    | FetchItem::BinarySize(_)
            )
        });
        let mut unknown_cte = false;
        let marks_seen = !sel.read_only
            && items.iter().any(|i| {
                matches!(i, FetchItem::Rfc822 | FetchItem::Rfc822Text)
                    || matches!(i, FetchItem::Section { peek: false, .. })
            });
        let mut seen_now = Vec::new();
        // The messages in batches of at most 8 MB of files (or 4,096 messages) read off the
        // async threads, each batch sent before the next is read: a FETCH of a whole large
        // folder never sits in memory at once. Each batch's messages are copied out of the
        // snapshot (with their files and whether they are \Recent; IMAP4rev2 has none)
        // only when its turn comes.
        let maildir = sel.snap.maildir.clone();
        let mut bounds = Vec::new();
        let (mut size, mut start) = (0u64, 0usize);
        for (n, &i) in chosen.iter().enumerate() {
            if n > start
                && (n - start >= FETCH_BATCH_MESSAGES || (needs_body && size >= FETCH_BATCH_BYTES))
            {
                bounds.push(start..n);
                (size, start) = (0, n);
            }
            size += sel.snap.messages.get(i).map_or(0, |m| m.size);
        }
        if start < chosen.len() {
            bounds.push(start..chosen.len());
        }
        let items: Arc<[FetchItem]> = items.into();
        let count = bounds.len();
        for (i, range) in bounds.into_iter().enumerate() {
            let batch: Vec<FetchEntry> = chosen
                .get(range)
                .unwrap_or_default()
                .iter()
                .filter_map(|&i| {
                    let m = sel.snap.messages.get(i)?.clone();
                    let recent = !self.rev2 && sel.recent.contains(&m.uid);
                    Some((i + 1, m, sel.snap.file(i), recent))
                })
                .collect();
            for (_, m, _, _) in &batch {
                if marks_seen && !m.flags.contains('S') {
                    seen_now.push(m.uid);
                }
            }
            // A small batch (one message per command, as mbsync asks) is read here: a
            // few kilobytes from the page cache cost less than the two thread wake-ups
            // of a hop to the blocking pool.
            let bytes: u64 = batch.iter().map(|(_, m, _, _)| m.size).sum();
            let built = if batch.len() <= INLINE_FETCH_MESSAGES
                && (!needs_body || bytes <= INLINE_FETCH_BYTES)
            {
                Ok(fetch_batch(
                    batch,
                    &maildir,
                    &items,
                    needs_body,
                    (uid, marks_seen),
                ))
            } else {
                let (maildir, items) = (maildir.clone(), Arc::clone(&items));
                tokio::task::spawn_blocking(move || {
                    fetch_batch(batch, &maildir, &items, needs_body, (uid, marks_seen))
                })
                .await
            };
            let Ok((out, unknown)) = built else { break };
            unknown_cte |= unknown;
            conn.raw(&out);
            // The last batch goes out with the tagged answer, in one write.
            if i + 1 < count && conn.flush().await.is_err() {
                break;
            }
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
        !unknown_cte
    }

    /// Changes the flags of the chosen messages, on disk and in the index; the sequence
    /// numbers of those it looked at (changed or already so), whose flags the snapshot
    /// now holds. A few thousand at a time: a STORE on a 50,000-message folder never
    /// copies all of it at once.
    async fn change_flags(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: command::StoreMode,
        flags: &[command::Flag],
    ) -> Vec<usize> {
        let chosen = self.chosen_at(uid, set);
        let login = self.user.clone();
        let index = Arc::clone(&self.index);
        let Some(sel) = self.selected.as_mut() else {
            return Vec::new();
        };
        // This session's copy changes now: the index's copy is no longer what is on disk.
        if let Some(login) = &login {
            index.forget(login, &sel.name);
        }
        let (maildir, folder) = (sel.snap.maildir.clone(), sel.snap.folder.id);
        let flags: Arc<[command::Flag]> = flags.into();
        let mut result = Vec::new();
        for part in chosen.chunks(FETCH_BATCH_MESSAGES) {
            let work: Vec<(usize, ImapMessage, officebox_store::Entry)> = part
                .iter()
                .filter_map(|&i| {
                    let m = sel.snap.messages.get(i)?.clone();
                    Some((i + 1, m, sel.snap.file(i)?))
                })
                .collect();
            let (index, maildir, flags) = (Arc::clone(&index), maildir.clone(), Arc::clone(&flags));
            let done = tokio::task::spawn_blocking(move || {
                set_flags_of(work, &maildir, &index, folder, mode, &flags)
            })
            .await
            .unwrap_or_default();
            if done.is_empty() {
                continue;
            }
            let files = Arc::make_mut(&mut sel.snap.files);
            let messages = Arc::make_mut(&mut sel.snap.messages);
            for (seq, m, moved) in done {
                files.set(seq - 1, Some(moved.place(&m.flags)));
                if let Some(slot) = messages.get_mut(seq - 1) {
                    *slot = m;
                }
                result.push(seq);
            }
        }
        // And the index keeps this copy for the next session that looks: its rows are
        // those of its (older) modification sequence or newer, so that session reads
        // only the rows changed since and shares this copy's names, where without it a
        // second session after a large STORE read every row and name again.
        if let Some(login) = &login
            && let Some(stamp) = stamp_now(sel.snap.maildir.root())
        {
            index.remember(login, &sel.name, stamp, &sel.snap);
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
        if !silent && let Some(sel) = &self.selected {
            for seq in changed {
                let Some(m) = sel.snap.messages.get(seq - 1) else {
                    continue;
                };
                let uid_part = if uid {
                    format!("UID {} ", m.uid)
                } else {
                    String::new()
                };
                let modseq = if self.condstore {
                    format!(" MODSEQ ({})", m.modseq)
                } else {
                    String::new()
                };
                conn.say(&format!(
                    "* {seq} FETCH ({uid_part}FLAGS ({}){modseq})",
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
            .map(|(i, m)| (i + 1, m.uid, sel.snap.file(i)))
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
        if let Some(login) = &self.user {
            self.index.store.forget_usage(login);
        }
        if tell {
            let told: Vec<(usize, u32)> = doomed.iter().map(|(seq, u, _)| (*seq, *u)).collect();
            tell_expunged(conn, self.qresync, &told);
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

/// One message's FETCH response (`data` is the message when an item needs it); whether a
/// part could not be decoded for BINARY.
/// Gives `work`'s messages (sequence number, message, file) their new flags: those that
/// change are renamed together (one fsync) and indexed together (one transaction). The
/// messages as they now are, with their files, in order. Blocking.
fn set_flags_of(
    work: Vec<(usize, ImapMessage, officebox_store::Entry)>,
    maildir: &officebox_store::Maildir,
    index: &Index,
    folder: i64,
    mode: command::StoreMode,
    flags: &[command::Flag],
) -> Vec<(usize, ImapMessage, officebox_store::Entry)> {
    let mut same = Vec::new();
    let mut changing = Vec::new();
    for (seq, m, entry) in work {
        let (letters, keywords) = super::flags::apply(mode, (&m.flags, &m.keywords), flags);
        if *letters == *m.flags && keywords == m.keywords {
            same.push((seq, m, entry));
        } else {
            changing.push((seq, m, entry, letters, keywords));
        }
    }
    let renames: Vec<(officebox_store::Entry, String)> = changing
        .iter()
        .map(|(_, _, e, letters, _)| (e.clone(), letters.clone()))
        .collect();
    let moved = maildir.set_flags_many(&renames).unwrap_or_default();
    drop(renames);
    let mut renamed = Vec::new();
    let mut sets = officebox_store::FlagSets::default();
    for ((seq, mut m, _, letters, keywords), moved) in changing.into_iter().zip(moved) {
        if let Ok(entry) = moved {
            m.flags = sets.of(&letters);
            m.keywords = keywords;
            renamed.push((seq, m, entry));
        }
    }
    let rows: Vec<(u32, &str, &[String])> = renamed
        .iter()
        .map(|(_, m, _)| (m.uid, &*m.flags, m.keywords.as_slice()))
        .collect();
    if !rows.is_empty()
        && let Ok(modseq) = index.with(|db| db.imap_set_flags_many(folder, &rows))
    {
        for (_, m, _) in renamed.iter_mut() {
            m.modseq = modseq;
        }
    }
    let mut out = same;
    out.extend(renamed);
    out.sort_by_key(|(seq, _, _)| *seq);
    out
}

/// One message of a FETCH batch: its sequence number, the message, its file and whether
/// it is \Recent.
type FetchEntry = (usize, ImapMessage, Option<officebox_store::Entry>, bool);

/// The FETCH answers for `batch`, and whether a part could not be decoded for BINARY.
/// `(uid, marks_seen)`: the command was UID FETCH; it sets \Seen.
fn fetch_batch(
    batch: Vec<FetchEntry>,
    maildir: &officebox_store::Maildir,
    items: &[FetchItem],
    needs_body: bool,
    (uid, marks_seen): (bool, bool),
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut unknown = false;
    for (seq, m, entry, recent) in batch {
        let data = if needs_body {
            match entry.map(|e| maildir.read(&e)) {
                Some(Ok(d)) => d,
                // Gone meanwhile: the next command reports its expunge.
                _ => continue,
            }
        } else {
            Vec::new()
        };
        let (response, cte) = fetch_one(seq, &m, &data, items, (uid, marks_seen, recent));
        out.extend_from_slice(&response);
        unknown |= cte;
    }
    (out, unknown)
}

fn fetch_one(
    seq: usize,
    m: &ImapMessage,
    data: &[u8],
    items: &[FetchItem],
    (uid, marks_seen, recent): (bool, bool, bool),
) -> (Vec<u8>, bool) {
    let mut unknown_cte = false;
    let mut tree: Option<structure::Part> = None;
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
                let mut letters = m.flags.to_string();
                if marks_seen && !letters.contains('S') {
                    letters.push('S');
                }
                parts.push(
                    format!(
                        "FLAGS ({})",
                        super::flags::shown(&letters, &m.keywords, recent).join(" ")
                    )
                    .into_bytes(),
                );
            }
            FetchItem::Rfc822Size => parts.push(format!("RFC822.SIZE {}", m.size).into_bytes()),
            FetchItem::InternalDate => {
                parts.push(format!("INTERNALDATE \"{}\"", internal_date(m.received)).into_bytes())
            }
            FetchItem::Modseq => parts.push(format!("MODSEQ ({})", m.modseq).into_bytes()),
            FetchItem::Rfc822 => parts.push(literal("RFC822", data)),
            FetchItem::Rfc822Header => {
                parts.push(literal(
                    "RFC822.HEADER",
                    data.get(..header_end(data)).unwrap_or_default(),
                ));
            }
            FetchItem::Rfc822Text => {
                parts.push(literal(
                    "RFC822.TEXT",
                    data.get(header_end(data)..).unwrap_or_default(),
                ));
            }
            FetchItem::Envelope => {
                let mut out = b"ENVELOPE ".to_vec();
                structure::envelope(&mut out, data.get(..header_end(data)).unwrap_or_default());
                parts.push(out);
            }
            FetchItem::Body | FetchItem::BodyStructure => {
                let extended = matches!(item, FetchItem::BodyStructure);
                let mut out = if extended {
                    b"BODYSTRUCTURE ".to_vec()
                } else {
                    b"BODY ".to_vec()
                };
                let top = tree.get_or_insert_with(|| structure::parse(data));
                structure::body_structure(&mut out, data, top, extended);
                parts.push(out);
            }
            FetchItem::BinarySize(part) => {
                let s = command::Section {
                    part: part.clone(),
                    text: SectionText::All,
                };
                let label = dotted(part);
                match structure::section(data, &mut tree, &s, true) {
                    Ok(bytes) => parts.push(
                        format!("BINARY.SIZE[{label}] {}", bytes.map_or(0, |b| b.len()))
                            .into_bytes(),
                    ),
                    Err(structure::UnknownEncoding) => unknown_cte = true,
                }
            }
            FetchItem::Section {
                section,
                partial,
                binary,
                ..
            } => {
                let bytes = match structure::section(data, &mut tree, section, *binary) {
                    Ok(b) => b.unwrap_or_default(),
                    Err(structure::UnknownEncoding) => {
                        unknown_cte = true;
                        continue;
                    }
                };
                let verb = if *binary { "BINARY" } else { "BODY" };
                let label = section_label(section);
                let (name, bytes) = match partial {
                    Some((offset, length)) => {
                        let start = usize::try_from(*offset)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len());
                        let end = start
                            .saturating_add(usize::try_from(*length).unwrap_or(usize::MAX))
                            .min(bytes.len());
                        (
                            format!("{verb}[{label}]<{offset}>"),
                            bytes.get(start..end).unwrap_or_default().to_vec(),
                        )
                    }
                    None => (format!("{verb}[{label}]"), bytes),
                };
                if *binary && bytes.contains(&0) {
                    // Binary content goes as a literal8 (RFC 3516).
                    let mut out = format!("{name} ~{{{}}}\r\n", bytes.len()).into_bytes();
                    out.extend_from_slice(&bytes);
                    parts.push(out);
                } else {
                    parts.push(literal(&name, &bytes));
                }
            }
        }
    }
    // A message this FETCH marks seen says so, even when FLAGS was not asked for.
    if marks_seen && !m.flags.contains('S') && !flags_shown {
        let mut letters = m.flags.to_string();
        letters.push('S');
        parts.push(
            format!(
                "FLAGS ({})",
                super::flags::shown(&letters, &m.keywords, false).join(" ")
            )
            .into_bytes(),
        );
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b")\r\n");
    (out, unknown_cte)
}

fn seq_u32(seq: usize) -> u32 {
    u32::try_from(seq).unwrap_or(u32::MAX)
}

/// A set of exactly these numbers (none: a set that matches nothing).
fn numbers_set(numbers: &[u32]) -> SequenceSet {
    SequenceSet::Ranges(
        numbers
            .iter()
            .map(|&n| (command::Seq::Number(n), command::Seq::Number(n)))
            .collect(),
    )
}

/// A search key with `$` (the saved result) replaced by the UIDs it stands for.
fn resolve_saved(key: command::SearchKey, saved: &[u32]) -> command::SearchKey {
    use command::SearchKey as K;
    let as_uids = || {
        K::Uid(SequenceSet::Ranges(
            saved
                .iter()
                .map(|&u| (command::Seq::Number(u), command::Seq::Number(u)))
                .collect(),
        ))
    };
    match key {
        K::Sequence(SequenceSet::Saved) | K::Uid(SequenceSet::Saved) => as_uids(),
        K::And(keys) => K::And(keys.into_iter().map(|k| resolve_saved(k, saved)).collect()),
        K::Or(a, b) => K::Or(
            Box::new(resolve_saved(*a, saved)),
            Box::new(resolve_saved(*b, saved)),
        ),
        K::Not(k) => K::Not(Box::new(resolve_saved(*k, saved))),
        other => other,
    }
}

/// Whether a search names MODSEQ (then CONDSTORE says the answer carries one).
fn search_uses_modseq(key: &command::SearchKey) -> bool {
    use command::SearchKey as K;
    match key {
        K::Modseq(_) => true,
        K::And(keys) => keys.iter().any(search_uses_modseq),
        K::Or(a, b) => search_uses_modseq(a) || search_uses_modseq(b),
        K::Not(k) => search_uses_modseq(k),
        _ => false,
    }
}

/// Removes a folder's directory and everything in it (its messages), the parent
/// directory fsynced. A folder's directory holds only its Maildir (folders inside it
/// are siblings in Maildir++).
fn remove_folder(dir: &std::path::Path) -> Result<(), officebox_store::StoreError> {
    std::fs::remove_dir_all(dir)
        .map_err(|e| officebox_store::StoreError::io("delete folder", dir, e))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(|e| officebox_store::StoreError::io("sync", parent, e))?;
    }
    Ok(())
}

/// `1.2` for a part path.
fn dotted(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// What goes between the brackets of BODY[...] in the answer: `1.2.HEADER.FIELDS (TO)`.
fn section_label(s: &command::Section) -> String {
    let text = match &s.text {
        SectionText::All => String::new(),
        SectionText::Header => "HEADER".into(),
        SectionText::Text => "TEXT".into(),
        SectionText::Mime => "MIME".into(),
        SectionText::HeaderFields(n) | SectionText::HeaderFieldsNot(n) => format!(
            "HEADER.FIELDS{} ({})",
            if matches!(s.text, SectionText::HeaderFieldsNot(_)) {
                ".NOT"
            } else {
                ""
            },
            n.iter()
                .map(|x| x.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    match (s.part.is_empty(), text.is_empty()) {
        (true, _) => text,
        (false, true) => dotted(&s.part),
        (false, false) => format!("{}.{text}", dotted(&s.part)),
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
    fn section_labels_are_written_back_as_asked() {
        let s = |part: Vec<u32>, text| command::Section { part, text };
        assert_eq!(section_label(&s(vec![], SectionText::All)), "");
        assert_eq!(section_label(&s(vec![1, 2], SectionText::All)), "1.2");
        assert_eq!(section_label(&s(vec![3], SectionText::Mime)), "3.MIME");
        assert_eq!(
            section_label(&s(vec![], SectionText::HeaderFieldsNot(vec!["to".into()]))),
            "HEADER.FIELDS.NOT (TO)"
        );
    }
}
