//! The POP3 server (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034) over the
//! users' Maildirs, the same ones SMTP and voicemail deliver into.
//!
//! A mailbox is listed once at login from file names (sizes are in the names, so a large
//! mailbox opens without reading its messages); UIDLs are the Maildir unique names, stable
//! forever; DELE takes effect at QUIT; one session per mailbox at a time ([IN-USE]);
//! passwords in clear are refused from the WAN unless the session is TLS; failed logins
//! are limited per client like SMTP's.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone};
use officebox_store::{Entry, Maildir};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::conn::Conn;
use crate::deliver::mailbox_path;
use crate::smtp::Shared;
use crate::tls::{Auth, authenticate, base64_decode};

const MAX_LINE: usize = 1024;
/// RFC 1939 section 3: at least 10 minutes of inactivity before closing.
const IDLE: Duration = Duration::from_secs(600);
/// Before a login, a client waits this long at most (it holds a connection slot).
const LOGIN_IDLE: Duration = Duration::from_secs(30);

/// Which port a connection came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 110: STLS offered.
    Pop3,
    /// 995: TLS from the first byte.
    Pop3s,
}

/// Mailboxes open in a session right now.
#[derive(Debug, Default)]
pub struct Locks {
    open: Mutex<HashSet<String>>,
    /// Woken whenever a mailbox is closed.
    released: tokio::sync::Notify,
}

/// How long a login waits for another session of the same mailbox to end (a phone's mail
/// app and a PC's checking at once, or a burst of logins) before it is refused IN-USE.
const LOCK_WAIT: Duration = Duration::from_secs(10);

impl Locks {
    /// Takes `login`'s mailbox, waiting up to [`LOCK_WAIT`] for a session that has it.
    async fn take(&self, login: &str) -> bool {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before trying, so a release in between is not missed.
            released.as_mut().enable();
            if self
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(login.to_string())
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    fn release(&self, login: &str) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(login);
        self.released.notify_waiters();
    }
}

/// The next command line, without its line end.
async fn next_line(conn: &mut Conn, idle: Duration) -> io::Result<Option<String>> {
    Ok(conn.line(MAX_LINE, idle).await?.map(|l| {
        String::from_utf8_lossy(&l)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }))
}

/// A multi-line body, byte-stuffed (RFC 1939 section 3), ended by ".".
fn body(conn: &mut Conn, data: &[u8]) {
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            conn.raw(b".");
        }
        conn.raw(line);
    }
    if !data.is_empty() && !data.ends_with(b"\n") {
        conn.raw(b"\r\n");
    }
    conn.raw(b".\r\n");
}

/// Holds a mailbox's lock; released when the session ends in any way (QUIT, a dropped
/// connection, shutdown).
struct Held {
    locks: Arc<Locks>,
    login: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.locks.release(&self.login);
    }
}

/// The messages of a session, as listed at login.
struct Mailbox {
    _held: Held,
    maildir: Maildir,
    messages: Vec<Message>,
}

/// One message of a session.
struct Message {
    entry: Entry,
    /// DELE'd: deleted at QUIT.
    deleted: bool,
    /// Retrieved whole (RETR) in this session: marked seen at QUIT, so the phone's
    /// message-waiting lamp goes out once a voicemail has been read by mail.
    read: bool,
}

/// The message numbered by `arg` (1-based) if it exists and is not deleted: its index
/// and it.
fn message<'a>(
    messages: &'a mut [Message],
    arg: Option<&str>,
) -> Result<(usize, &'a mut Message), &'static str> {
    let n: usize = arg
        .and_then(|a| a.parse().ok())
        .ok_or("-ERR a message number is needed")?;
    let i = n.checked_sub(1).ok_or("-ERR no such message")?;
    match messages.get_mut(i) {
        Some(m) if !m.deleted => Ok((i, m)),
        _ => Err("-ERR no such message"),
    }
}

/// Serves one POP3 connection.
pub async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    shared: Arc<Shared>,
    locks: Arc<Locks>,
    port: Port,
) -> io::Result<()> {
    let mut conn = Conn::new(stream);
    let mut tls = false;
    if port == Port::Pop3s {
        let Some(acceptor) = &shared.tls else {
            return Ok(());
        };
        conn.start_tls(acceptor).await?;
        tls = true;
    }
    conn.say("+OK officebox POP3 ready");
    let mut user: Option<String> = None;
    let mut mailbox: Option<Mailbox> = None;
    let result = async {
        loop {
            let idle = if mailbox.is_some() { IDLE } else { LOGIN_IDLE };
            let Some(line) = next_line(&mut conn, idle).await? else { return Ok(()) };
            let mut words = line.splitn(3, ' ');
            let command = words.next().unwrap_or_default().to_ascii_uppercase();
            let (a1, a2) = (words.next(), words.next());
            match (command.as_str(), &mut mailbox) {
                ("CAPA", _) => {
                    conn.say("+OK capabilities");
                    for c in ["TOP", "UIDL", "USER", "SASL PLAIN", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "EXPIRE NEVER", "IMPLEMENTATION officebox"] {
                        conn.say(c);
                    }
                    if !tls && shared.tls.is_some() && mailbox.is_none() {
                        conn.say("STLS");
                    }
                    conn.say(".");
                }
                ("NOOP", Some(_)) => conn.say("+OK"),
                ("QUIT", None) => {
                    conn.say("+OK bye");
                    return Ok(());
                }
                ("QUIT", Some(mb)) => {
                    // DELE takes effect now, and only now (RFC 1939 section 6).
                    let mut failed = false;
                    let mut seen = Vec::new();
                    for m in &mb.messages {
                        if m.deleted {
                            failed |= mb.maildir.delete(&m.entry).is_err();
                        } else if m.read && !m.entry.flags().contains('S') {
                            seen.push(m.entry.clone());
                        }
                    }
                    // Best effort: a message not marked seen is only still "new".
                    let _ = mb.maildir.mark_seen_all(&seen);
                    conn.say(if failed { "-ERR [SYS/TEMP] some messages were not deleted" } else { "+OK bye" });
                    return Ok(());
                }
                ("STLS", None) if !tls => {
                    let Some(acceptor) = shared.tls.clone() else {
                        conn.say("-ERR TLS is not available");
                        continue;
                    };
                    conn.say("+OK begin TLS");
                    conn.flush().await?;
                    if !conn.buf.is_empty() {
                        // Plaintext pipelined behind STLS would ride into the TLS session.
                        warn!(message = "pop3: data pipelined after STLS; closing", client = %peer);
                        return Ok(());
                    }
                    conn.start_tls(&acceptor).await?;
                    tls = true;
                    user = None;
                }
                ("USER", None) => match a1 {
                    Some(name) if plaintext_ok(&config, peer, tls) => {
                        user = Some(name.to_string());
                        conn.say("+OK");
                    }
                    Some(_) => conn.say("-ERR [AUTH] passwords in clear are refused from the Internet; use TLS (STLS or port 995)"),
                    None => conn.say("-ERR a user name is needed"),
                },
                ("PASS", None) => {
                    let Some(name) = user.take() else {
                        conn.say("-ERR USER first");
                        continue;
                    };
                    let password = line.get(5..).unwrap_or_default().to_string();
                    match login(&config, &shared, &locks, peer, &name, &password).await {
                        Ok(mb) => {
                            conn.say(&format!("+OK {} messages", mb.messages.len()));
                            mailbox = Some(mb);
                        }
                        Err(reply) => conn.say(reply),
                    }
                }
                ("AUTH", None) => {
                    if !a1.is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")) {
                        conn.say("-ERR only PLAIN is supported");
                        continue;
                    }
                    if !plaintext_ok(&config, peer, tls) {
                        conn.say("-ERR [AUTH] passwords in clear are refused from the Internet; use TLS (STLS or port 995)");
                        continue;
                    }
                    let response = match a2 {
                        Some(r) => r.to_string(),
                        None => {
                            conn.say("+ ");
                            match next_line(&mut conn, LOGIN_IDLE).await? {
                                Some(r) => r,
                                None => return Ok(()),
                            }
                        }
                    };
                    let decoded = base64_decode(&response).unwrap_or_default();
                    let mut parts = decoded.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                    let (_, name, password) = (parts.next(), parts.next(), parts.next());
                    let (Some(name), Some(password)) = (name, password) else {
                        conn.say("-ERR malformed PLAIN response");
                        continue;
                    };
                    match login(&config, &shared, &locks, peer, &name, &password).await {
                        Ok(mb) => {
                            conn.say(&format!("+OK {} messages", mb.messages.len()));
                            mailbox = Some(mb);
                        }
                        Err(reply) => conn.say(reply),
                    }
                }
                ("STAT", Some(mb)) => {
                    let (n, size) = mb.messages.iter().filter(|m| !m.deleted).fold((0, 0), |(n, s), m| (n + 1, s + m.entry.size()));
                    conn.say(&format!("+OK {n} {size}"));
                }
                ("LIST" | "UIDL", Some(mb)) => {
                    let uidl = command == "UIDL";
                    let show = |i: usize, e: &Entry| if uidl { format!("{} {}", i + 1, e.unique()) } else { format!("{} {}", i + 1, e.size()) };
                    if a1.is_some() {
                        match message(&mut mb.messages, a1) {
                            Ok((i, m)) => conn.say(&format!("+OK {}", show(i, &m.entry))),
                            Err(e) => conn.say(e),
                        }
                    } else {
                        conn.say("+OK");
                        let lines: Vec<String> = mb.messages.iter().enumerate().filter(|(_, m)| !m.deleted).map(|(i, m)| show(i, &m.entry)).collect();
                        for l in lines {
                            conn.say(&l);
                        }
                        conn.say(".");
                    }
                }
                ("RETR" | "TOP", Some(mb)) => {
                    let m = match message(&mut mb.messages, a1) {
                        Ok((_, m)) => m,
                        Err(e) => {
                            conn.say(e);
                            continue;
                        }
                    };
                    let lines: Option<usize> = if command == "TOP" {
                        match a2.and_then(|n| n.parse().ok()) {
                            Some(n) => Some(n),
                            None => {
                                conn.say("-ERR TOP needs a line count");
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    match mb.maildir.read(&m.entry) {
                        Ok(data) => {
                            let data = match lines {
                                Some(n) => top(&data, n),
                                None => {
                                    m.read = true;
                                    data
                                }
                            };
                            conn.say(&format!("+OK {} octets", data.len()));
                            body(&mut conn, &data);
                        }
                        // Deleted meanwhile (by the phone menu, say).
                        Err(_) => conn.say("-ERR [SYS/TEMP] the message is gone"),
                    }
                }
                ("DELE", Some(mb)) => match message(&mut mb.messages, a1) {
                    Ok((_, m)) => {
                        m.deleted = true;
                        conn.say("+OK marked for deletion");
                    }
                    Err(e) => conn.say(e),
                },
                ("RSET", Some(mb)) => {
                    mb.messages.iter_mut().for_each(|m| m.deleted = false);
                    conn.say("+OK");
                }
                _ => conn.say("-ERR command not valid here"),
            }
        }
    }
    .await;
    drop(mailbox);
    conn.flush().await?;
    result
}

/// RFC 2595 section 3 and the appliance's own rule: clear-text logins only from the LAN
/// or loopback, or inside TLS.
fn plaintext_ok(config: &Config, peer: SocketAddr, tls: bool) -> bool {
    tls || client_zone(&config.network, peer.ip()) != ClientZone::Wan
}

async fn login(
    config: &Arc<Config>,
    shared: &Shared,
    locks: &Arc<Locks>,
    peer: SocketAddr,
    name: &str,
    password: &str,
) -> Result<Mailbox, &'static str> {
    // The attempt counts from now, when its password is here (see officebox_secrets::login).
    let Ok(attempt) = shared.limiter.begin(peer.ip()).await else {
        return Err("-ERR [AUTH] too many failed logins; try again later");
    };
    let login = match authenticate(config, name, password).await {
        Auth::Ok(login) => {
            attempt.succeeded();
            login
        }
        Auth::Busy => {
            attempt.withdrawn();
            return Err("-ERR [SYS/TEMP] too busy to check passwords now; try again later");
        }
        Auth::Wrong => {
            attempt.failed();
            warn!(message = "pop3: login failed", client = %peer);
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Err("-ERR [AUTH] invalid user name or password");
        }
    };
    if !locks.take(&login).await {
        return Err("-ERR [IN-USE] the mailbox is open in another session");
    }
    let held = Held {
        locks: Arc::clone(locks),
        login: login.clone(),
    };
    let path = mailbox_path(&config.data_dir, &login);
    let listed = tokio::task::spawn_blocking(move || {
        Maildir::open(&path).and_then(|m| m.list().map(|e| (m, e)))
    })
    .await;
    match listed {
        Ok(Ok((maildir, mut entries))) => {
            // Arrival order: message 1 is the oldest.
            entries.sort_by(|a, b| (a.arrival(), a.unique()).cmp(&(b.arrival(), b.unique())));
            info!(message = "pop3: mailbox opened", user = %login, messages = entries.len());
            let messages = entries
                .into_iter()
                .map(|entry| Message {
                    entry,
                    deleted: false,
                    read: false,
                })
                .collect();
            Ok(Mailbox {
                _held: held,
                maildir,
                messages,
            })
        }
        _ => Err("-ERR [SYS/TEMP] the mailbox cannot be opened"),
    }
}

/// The headers and the first `n` lines of the body (RFC 1939 TOP).
fn top(data: &[u8], n: usize) -> Vec<u8> {
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(data.len());
    let (head, body) = data.split_at_checked(split).unwrap_or((data, &[]));
    let mut out = head.to_vec();
    for line in body.split_inclusive(|&b| b == b'\n').take(n) {
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_takes_headers_and_lines() {
        let m = b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\nthree\r\n";
        assert_eq!(top(m, 0), b"Subject: x\r\nFrom: y\r\n\r\n");
        assert_eq!(top(m, 2), b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\n");
        assert_eq!(top(m, 99), m);
    }
}
