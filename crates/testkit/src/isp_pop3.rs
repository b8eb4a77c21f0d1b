//! POP3 on both sides of officebox: a private dovecot playing an ISP's POP3 server (for
//! officebox's fetcher), and real POP3 clients, fetchmail and mpop, run once against a
//! POP3 server (for officebox's own).
//!
//! [`IspDovecot`] is a private dovecot 2.3 instance (`dovecot -F -c FILE`, Debian package
//! dovecot-pop3d) whose config, runtime and state directories, log, self-signed certificate,
//! password file and Maildirs all live in one scratch directory. It listens only on the
//! address it is given, on two free ports: plain POP3 offering STLS, and implicit TLS
//! (995-style). Mail is owned by `nobody`, whom dovecot serves as; [`IspDovecot::put`]
//! drops messages into a user's Maildir the way a delivery agent would.
//!
//! [`fetchmail_once`] and [`mpop_once`] run one poll of a real client with private files
//! in a directory the test gives (config, UIDL state, pid file); both deliver through the
//! same small MDA script, which writes each message to `DIR/out/NNNNNN.eml`, so
//! [`delivered`] counts what arrived whichever client fetched it. Neither client reads
//! the invoking user's own files (`~/.fetchmailrc`, `~/.mpoprc`, `~/.netrc`): `HOME` is
//! the private directory.
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use officebox_testkit::{
//!     IspDovecot, PopMode, PopTls, delivered, fetchmail_once, require_program, require_root,
//!     scratch_dir,
//! };
//!
//! # fn main() -> std::io::Result<()> {
//! require_root();
//! require_program("dovecot", "dovecot-pop3d");
//! require_program("fetchmail", "fetchmail");
//! let isp = IspDovecot::start(IpAddr::V4(Ipv4Addr::LOCALHOST), &[("alice", "pw")])?;
//! isp.put("alice", b"Subject: hi\r\n\r\nhello\r\n")?;
//! let dir = scratch_dir("fetchmail")?;
//! let mode = PopMode::keep(PopTls::StartTls);
//! let out = fetchmail_once(dir.path(), "127.0.0.1", isp.pop3_port(), "alice", "pw", mode)?;
//! assert_eq!(out.status.code(), Some(0)); // fetchmail: 0 = mail delivered, 1 = none new
//! assert_eq!(delivered(dir.path())?.len(), 1);
//! assert_eq!(isp.count("alice")?, 1); // kept on the server
//! # Ok(())
//! # }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread::{panicking, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cmd::{describe, next_id, run_checked, sanitize, send_signal};
use crate::{Peer, TempDir, scratch_dir};

const POLL: Duration = Duration::from_millis(20);
/// A clean `PATH` for the programs started here (they get no other environment).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How long dovecot may take to listen on both ports.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long dovecot may take to stop after SIGTERM before its group is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Start attempts when another process took a port between choosing and binding it.
const START_ATTEMPTS: u32 = 3;
/// A client run longer than this is killed (its whole process group) and is an error.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The clients' own network timeout, in seconds.
const CLIENT_NET_TIMEOUT: u32 = 20;
const TAIL_LINES: usize = 40;

/// A private dovecot POP3 server playing the ISP's, with one Maildir per user.
///
/// Dropping it stops dovecot (SIGTERM to the master it started, then SIGKILL to that
/// master's process group after a grace period) and removes its directory. If the test is
/// panicking, the tail of dovecot's log is printed first.
#[derive(Debug)]
pub struct IspDovecot {
    peer: Option<Peer>,
    addr: IpAddr,
    pop3_port: u16,
    pop3s_port: u16,
    conf: PathBuf,
    log_path: PathBuf,
    cert: PathBuf,
    users: Vec<String>,
    /// uid and gid of `nobody`, whom dovecot serves mail as.
    owner: (u32, u32),
    /// Declared last: removed after dovecot has stopped (see `Drop`).
    dir: TempDir,
}

impl IspDovecot {
    /// Starts dovecot on `addr` (a local address, usually 127.0.0.1) with `users`
    /// (`(login, password)` pairs, plain passwords) on two free ports: plain POP3 with STLS
    /// ([`IspDovecot::pop3_port`]) and implicit TLS ([`IspDovecot::pop3s_port`]), both with
    /// a self-signed certificate ([`IspDovecot::cert_path`]). Clear-text logins are allowed
    /// with and without TLS. Returns once both ports accept connections.
    ///
    /// Needs root (dovecot's master starts as root and serves mail as `nobody`) and
    /// dovecot 2.3 (2.4 changed the config syntax), and `openssl` for the certificate.
    /// Logins may use letters, digits and `.-_@`; passwords any printable characters but
    /// `:`.
    pub fn start(addr: IpAddr, users: &[(&str, &str)]) -> io::Result<IspDovecot> {
        check_dovecot_version()?;
        for (login, password) in users {
            check_login(login)?;
            if password.is_empty()
                || password.contains(':')
                || password.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "IspDovecot: password of {login:?} must be non-empty, without ':' or control characters"
                )));
            }
        }
        let owner = nobody()?;
        let dir = scratch_dir("isp-dovecot")?;
        let root = dir.path().to_path_buf();
        // dovecot's mail processes run as nobody below this directory.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
        for sub in ["run", "state"] {
            fs::create_dir(root.join(sub))?;
        }
        for sub in ["mail", "home"] {
            mkdir_owned(&root.join(sub), owner)?;
        }
        for (login, _) in users {
            let maildir = root.join("mail").join(login);
            mkdir_owned(&maildir, owner)?;
            for sub in ["new", "cur", "tmp"] {
                mkdir_owned(&maildir.join(sub), owner)?;
            }
            mkdir_owned(&root.join("home").join(login), owner)?;
        }

        let cert = root.join("cert.pem");
        let key = root.join("key.pem");
        self_signed_cert(addr, &cert, &key)?;

        // Plain passwords; dovecot's auth process (user dovecot) must read the file.
        let passwd = root.join("passwd");
        let mut text = String::new();
        for (login, password) in users {
            text.push_str(&format!("{login}:{{PLAIN}}{password}\n"));
        }
        fs::write(&passwd, text)?;
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644))?;

        let conf = root.join("dovecot.conf");
        let log_path = root.join("dovecot.log");
        let instance = format!("obx-isp-{}-{}", std::process::id(), next_id());
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let pop3_port = free_port(addr)?;
            let mut pop3s_port = free_port(addr)?;
            while pop3s_port == pop3_port {
                pop3s_port = free_port(addr)?;
            }
            let settings = DovecotSettings {
                root: &root,
                addr,
                pop3_port,
                pop3s_port,
                instance: &instance,
                owner,
                cert: &cert,
                key: &key,
                passwd: &passwd,
                log: &log_path,
            };
            fs::write(&conf, settings.render())?;
            let mut cmd = Command::new("dovecot");
            cmd.arg("-F")
                .arg("-c")
                .arg(&conf)
                .env_clear()
                .env("PATH", PATH)
                .current_dir(&root);
            let peer = Peer::spawn_in("dovecot-stderr", cmd, &root)?;
            match wait_listening(
                &peer,
                &log_path,
                [
                    SocketAddr::new(addr, pop3_port),
                    SocketAddr::new(addr, pop3s_port),
                ],
            ) {
                Ok(()) => {
                    return Ok(IspDovecot {
                        peer: Some(peer),
                        addr,
                        pop3_port,
                        pop3s_port,
                        conf,
                        log_path,
                        cert,
                        users: users.iter().map(|(l, _)| (*l).to_owned()).collect(),
                        owner,
                        dir,
                    });
                }
                Err(StartError::PortTaken(e)) => {
                    // Someone took a port we picked: pick others.
                    drop(peer);
                    last_err = Some(e);
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("IspDovecot: could not start")))
    }

    /// The address dovecot listens on.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The plain POP3 port (STLS offered, clear-text logins allowed).
    pub fn pop3_port(&self) -> u16 {
        self.pop3_port
    }

    /// The implicit-TLS POP3 port (995-style).
    pub fn pop3s_port(&self) -> u16 {
        self.pop3s_port
    }

    /// The self-signed certificate dovecot presents (PEM), for clients that verify it.
    /// Its subject alternative names are the listen address and `localhost`.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The private dovecot config file.
    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    /// The dovecot master's pid.
    pub fn pid(&self) -> Option<u32> {
        self.peer.as_ref().map(Peer::pid)
    }

    /// `login`'s Maildir (with `new/`, `cur/` and `tmp/`).
    pub fn maildir(&self, login: &str) -> PathBuf {
        self.dir.path().join("mail").join(login)
    }

    /// Drops `message` (raw RFC 5322 bytes; CRLF or LF line ends) into `login`'s Maildir
    /// as a new message: written under `tmp/`, then renamed into `new/`, with a unique
    /// Maildir name carrying its size (`,S=`), mode 0600 and owned by `nobody`, as a
    /// delivery agent would. dovecot sees it at the next login.
    pub fn put(&self, login: &str, message: &[u8]) -> io::Result<()> {
        if !self.users.iter().any(|u| u == login) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("IspDovecot: no user {login:?}"),
            ));
        }
        let maildir = self.maildir(login);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(io::Error::other)?;
        let name = format!(
            "{}.M{}P{}Q{}.obx-testkit,S={}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            next_id(),
            message.len()
        );
        let tmp = maildir.join("tmp").join(&name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(message)?;
        file.sync_all()?;
        drop(file);
        chown(&tmp, Some(self.owner.0), Some(self.owner.1))?;
        fs::rename(&tmp, maildir.join("new").join(&name))
    }

    /// How many messages `login` still has on the server (files in `new/` and `cur/`).
    pub fn count(&self, login: &str) -> io::Result<usize> {
        let maildir = self.maildir(login);
        let mut n = 0;
        for sub in ["new", "cur"] {
            let entries = match fs::read_dir(maildir.join(sub)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                if !entry?.file_name().to_string_lossy().starts_with('.') {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// dovecot's log so far: what it printed on stderr (startup errors), then its log file
    /// (logins, sessions, `del=`/`retr=` counts).
    pub fn log(&self) -> String {
        let mut log = self.peer.as_ref().map(Peer::log).unwrap_or_default();
        log.push_str(&String::from_utf8_lossy(
            &fs::read(&self.log_path).unwrap_or_default(),
        ));
        log
    }

    /// Stops dovecot: SIGTERM to its master, then, after a grace period, SIGKILL to the
    /// master's process group. Returns the master's exit status.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        match self.peer.take() {
            Some(peer) => peer.stop(STOP_GRACE),
            None => Err(io::Error::other("IspDovecot: already stopped")),
        }
    }
}

impl Drop for IspDovecot {
    fn drop(&mut self) {
        if panicking() {
            eprintln!(
                "--- testkit: ISP dovecot, last lines of {} ---\n{}\n---",
                self.log_path.display(),
                tail(&self.log(), TAIL_LINES)
            );
        }
        if let Some(peer) = self.peer.take() {
            let pid = peer.pid();
            if let Err(e) = peer.stop(STOP_GRACE) {
                eprintln!("testkit: stopping ISP dovecot (pid {pid}): {e}");
            }
        }
    }
}

struct DovecotSettings<'a> {
    root: &'a Path,
    addr: IpAddr,
    pop3_port: u16,
    pop3s_port: u16,
    instance: &'a str,
    owner: (u32, u32),
    cert: &'a Path,
    key: &'a Path,
    passwd: &'a Path,
    log: &'a Path,
}

impl DovecotSettings<'_> {
    /// A dovecot 2.3 config: defaults except paths, the listeners and clear-text logins.
    fn render(&self) -> String {
        let root = self.root.display();
        let (uid, gid) = self.owner;
        format!(
            "# Private dovecot for one officebox test (crates/testkit isp_pop3.rs).
protocols = pop3
listen = {addr}
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {log}
auth_verbose = yes
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
",
            addr = self.addr,
            instance = self.instance,
            log = self.log.display(),
            cert = self.cert.display(),
            key = self.key.display(),
            passwd = self.passwd.display(),
            pop3 = self.pop3_port,
            pop3s = self.pop3s_port,
        )
    }
}

enum StartError {
    /// dovecot could not bind a port we picked (someone took it meanwhile).
    PortTaken(io::Error),
    Other(io::Error),
}

/// Waits until dovecot has logged that it started (it binds its listeners before that)
/// and both `addrs` are listening sockets, or dovecot exits, or time runs out. Looks at
/// `/proc/net/tcp*` rather than connecting, so dovecot's log shows only the test's own
/// sessions.
fn wait_listening(peer: &Peer, log_path: &Path, addrs: [SocketAddr; 2]) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let log = || {
        let mut log = peer.log();
        log.push_str(&String::from_utf8_lossy(
            &fs::read(log_path).unwrap_or_default(),
        ));
        log
    };
    loop {
        let exited = match peer.try_wait() {
            Ok(status) => status,
            Err(e) => return Err(StartError::Other(e)),
        };
        if let Some(status) = exited {
            let log = log();
            let err = io::Error::other(format!(
                "IspDovecot: dovecot exited ({status}) before listening on {} and {}; its log:\n{}",
                addrs[0],
                addrs[1],
                tail(&log, TAIL_LINES)
            ));
            return Err(if log.contains("Address already in use") {
                StartError::PortTaken(err)
            } else {
                StartError::Other(err)
            });
        }
        if log().contains("starting up") {
            let listening = listening_ports().map_err(StartError::Other)?;
            if addrs.iter().all(|a| listening.contains(&a.port())) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(StartError::Other(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "IspDovecot: dovecot (pid {}) did not listen on {} and {} within {START_TIMEOUT:?}; its log:\n{}",
                    peer.pid(),
                    addrs[0],
                    addrs[1],
                    tail(&log(), TAIL_LINES)
                ),
            )));
        }
        sleep(POLL);
    }
}

/// Local ports of listening TCP sockets in this network namespace.
fn listening_ports() -> io::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match fs::read_to_string(table) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // "  sl  local_address rem_address   st ...", addresses as HEXADDR:HEXPORT,
        // state 0A = LISTEN.
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_, local, _, "0A", ..] = fields.as_slice()
                && let Some((_, port)) = local.rsplit_once(':')
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                ports.push(port);
            }
        }
    }
    Ok(ports)
}

fn check_dovecot_version() -> io::Result<()> {
    let out = run_checked(
        Command::new("dovecot")
            .arg("--version")
            .env_clear()
            .env("PATH", PATH),
    )?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version.starts_with("2.3.") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("IspDovecot writes a dovecot 2.3 config; this is dovecot {version}"),
        ))
    }
}

fn check_login(login: &str) -> io::Result<()> {
    let ok = !login.is_empty()
        && !login.starts_with('.')
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "IspDovecot: login {login:?} must be letters, digits and .-_@ (not starting with .)"
        )))
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// uid and gid of `nobody` from /etc/passwd.
fn nobody() -> io::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["nobody", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no user nobody in /etc/passwd"))
}

fn mkdir_owned(path: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    chown(path, Some(uid), Some(gid))
}

/// A port on `addr` that was free a moment ago.
fn free_port(addr: IpAddr) -> io::Result<u16> {
    let listener = TcpListener::bind((addr, 0)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("IspDovecot: cannot bind a port on {addr}: {e}"),
        )
    })?;
    Ok(listener.local_addr()?.port())
}

/// A self-signed P-256 server certificate for `isp.test`, `localhost` and `addr`, with
/// `openssl req` (Debian package openssl).
pub(crate) fn self_signed_cert(addr: IpAddr, cert: &Path, key: &Path) -> io::Result<()> {
    run_checked(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "30", "-subj", "/CN=isp.test", "-addext"])
            .arg(format!(
                "subjectAltName=DNS:isp.test,DNS:localhost,IP:{addr}"
            ))
            // A server certificate, not a CA: clients that check certificates (webpki)
            // refuse a CA certificate presented by a server, even one they trust.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert)
            .env_clear()
            .env("PATH", PATH),
    )?;
    fs::set_permissions(key, fs::Permissions::from_mode(0o600))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------------ POP3 clients

/// How a POP3 client protects the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopTls {
    /// No TLS at all, even if the server offers STLS; USER/PASS in clear text.
    Plain,
    /// Plain connection upgraded with STLS, which is then required. Certificates are not
    /// checked.
    StartTls,
    /// TLS from the first byte (995-style). Certificates are not checked.
    Implicit,
}

impl PopTls {
    /// Every mode, for tests that try them all.
    pub const ALL: [PopTls; 3] = [PopTls::Plain, PopTls::StartTls, PopTls::Implicit];
}

/// What a client run does: how it connects, and whether it leaves mail on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PopMode {
    /// How the session is protected.
    pub tls: PopTls,
    /// `true`: leave every message on the server and download only messages this client
    /// (this directory) has not downloaded before, tracked by UIDL. `false`: download
    /// every message on the server, even ones an earlier keep run downloaded, and delete
    /// each after delivering it.
    pub keep: bool,
}

impl PopMode {
    /// Keep mail on the server; fetch only new messages (UIDL tracking).
    pub fn keep(tls: PopTls) -> PopMode {
        PopMode { tls, keep: true }
    }

    /// Fetch every message and delete it from the server.
    pub fn delete(tls: PopTls) -> PopMode {
        PopMode { tls, keep: false }
    }
}

/// Runs one fetchmail poll (Debian package fetchmail) of `user`'s mailbox on
/// `host:port` and delivers each message to `dir/out/NNNNNN.eml`.
///
/// Private files in `dir/fetchmail/`: the rcfile (`fetchmailrc`, mode 0600, which holds
/// the password; fetchmail takes it from nowhere else), the UIDL file `fetchids`
/// (`--idfile`) and the pid file. Runs with `--nodetach --nosyslog -v`, `uidl`, `timeout
/// 20`, no bounce mail, and the TLS settings of `mode.tls`: `sslproto ''` (no STLS),
/// `sslproto tls1.2+` (STLS required) or `ssl` (implicit TLS), always `no sslcertck`.
/// Keep mode is `keep` + UIDL; delete mode is `no keep fetchall`. Note that in keep mode
/// fetchmail downloads with `TOP n 99999999`, not `RETR`.
///
/// Returns fetchmail's output whatever its exit status: 0 = mail delivered, 1 = no new
/// mail, 2 = connection error, 3 = authentication failed, 4 = protocol error; see
/// fetchmail(1). Only a failure to run it, or a run over 60 s (then its process group is
/// killed), is an `Err`.
pub fn fetchmail_once(
    dir: &Path,
    host: &str,
    port: u16,
    user: &str,
    pass: &str,
    mode: PopMode,
) -> io::Result<Output> {
    for (what, value) in [("host", host), ("user", user), ("password", pass)] {
        check_client_value("fetchmail", what, value)?;
    }
    let dir = &std::path::absolute(dir)?;
    let mda = prepare_delivery(dir)?;
    let own = dir.join("fetchmail");
    fs::create_dir_all(&own)?;
    let tls = match mode.tls {
        PopTls::Plain => "sslproto ''",
        PopTls::StartTls => "sslproto 'tls1.2+' no sslcertck",
        PopTls::Implicit => "ssl sslproto 'tls1.2+' no sslcertck",
    };
    let keep = if mode.keep {
        "keep"
    } else {
        "no keep fetchall"
    };
    let rc = format!(
        "# fetchmail_once (crates/testkit isp_pop3.rs)
set no syslog
set no bouncemail
poll \"{host}\" protocol pop3 port {port} timeout {CLIENT_NET_TIMEOUT} uidl
  user \"{user}\" password \"{pass}\"
  {tls}
  {keep}
  mda \"{mda}\"
"
    );
    let rcfile = own.join("fetchmailrc");
    write_private(&rcfile, &rc)?;
    let mut cmd = Command::new("fetchmail");
    cmd.arg("-f")
        .arg(&rcfile)
        .arg("--idfile")
        .arg(own.join("fetchids"))
        .arg("--pidfile")
        .arg(own.join("fetchmail.pid"))
        .args(["--nodetach", "--nosyslog", "-v"])
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", &own)
        .env("FETCHMAILHOME", &own)
        .env("LC_ALL", "C")
        .current_dir(&own);
    run_bounded(cmd, &own, "fetchmail")
}

/// Runs one mpop session (Debian package mpop) for `user`'s mailbox on `host:port` and
/// delivers each message to `dir/out/NNNNNN.eml` (mpop adds a `Received:` header).
///
/// Private files in `dir/mpop/`: the config (`mpoprc`, mode 0600, with the password) and
/// the UIDL file `uidls`. Settings: `timeout 20`, `tls on|off`, `tls_starttls on|off`,
/// `tls_certcheck off`; in [`PopTls::Plain`] `auth user` (mpop otherwise refuses clear-text
/// passwords without TLS), else `auth on` (mpop picks: SASL PLAIN if offered, else
/// USER/PASS). Keep mode is `keep on` + `only_new on`; delete mode is `keep off` +
/// `only_new off`. Runs with `--half-quiet`.
///
/// Returns mpop's output whatever its exit status: 0 = success (also with no new mail),
/// otherwise a sysexits code (69 service unavailable, 77 authentication failed, ...).
/// Only a failure to run it, or a run over 60 s (then its process group is killed), is an
/// `Err`.
pub fn mpop_once(
    dir: &Path,
    host: &str,
    port: u16,
    user: &str,
    pass: &str,
    mode: PopMode,
) -> io::Result<Output> {
    for (what, value) in [("host", host), ("user", user), ("password", pass)] {
        check_client_value("mpop", what, value)?;
    }
    let dir = &std::path::absolute(dir)?;
    let mda = prepare_delivery(dir)?;
    let own = dir.join("mpop");
    fs::create_dir_all(&own)?;
    let on = |b: bool| if b { "on" } else { "off" };
    let (tls, starttls, auth) = match mode.tls {
        PopTls::Plain => (false, false, "user"),
        PopTls::StartTls => (true, true, "on"),
        PopTls::Implicit => (true, false, "on"),
    };
    let config = format!(
        "# mpop_once (crates/testkit isp_pop3.rs)
defaults
timeout {CLIENT_NET_TIMEOUT}
uidls_file \"{uidls}\"

account default
host \"{host}\"
port {port}
user \"{user}\"
password \"{pass}\"
auth {auth}
tls {tls}
tls_starttls {starttls}
tls_certcheck off
keep {keep}
only_new {keep}
delivery mda \"{mda}\"
",
        uidls = own.join("uidls").display(),
        tls = on(tls),
        starttls = on(starttls),
        keep = on(mode.keep),
    );
    let conf = own.join("mpoprc");
    write_private(&conf, &config)?;
    let mut cmd = Command::new("mpop");
    cmd.arg("-C")
        .arg(&conf)
        .arg("--half-quiet")
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", &own)
        .env("TMPDIR", &own)
        .env("LC_ALL", "C")
        .current_dir(&own);
    run_bounded(cmd, &own, "mpop")
}

/// The messages delivered into `dir/out/` by [`fetchmail_once`] and [`mpop_once`], in
/// delivery order (empty if none yet).
pub fn delivered(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir.join("out")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Rejects values the clients' config files could not carry safely.
fn check_client_value(client: &str, what: &str, value: &str) -> io::Result<()> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | '\''))
    {
        return Err(invalid(format!(
            "{client}: {what} {value:?} must be non-empty, without quotes, backslashes or control characters"
        )));
    }
    Ok(())
}

/// Creates `dir/out/` and the MDA script `dir/mda.sh`; returns the shell command that runs
/// it (both clients run their MDA with `sh -c`).
fn prepare_delivery(dir: &Path) -> io::Result<String> {
    let out = dir.join("out");
    fs::create_dir_all(&out)?;
    let out = out.to_string_lossy().into_owned();
    let script = dir.join("mda.sh");
    let script_str = script.to_string_lossy().into_owned();
    // Single-quoted in shell; `%` would be expanded by fetchmail, `"` ends its string.
    for path in [&out, &script_str] {
        if path.contains(['\'', '"', '%', '\\', '\n']) {
            return Err(invalid(format!(
                "POP3 client directory {path:?} must not contain quotes, %, backslashes or newlines"
            )));
        }
    }
    let text = format!(
        "#!/bin/sh
# Delivers the message on stdin to {out}/NNNNNN.eml, the next free number
# (written by crates/testkit isp_pop3.rs for fetchmail_once and mpop_once).
set -eu
out='{out}'
tmp=\"$out/.incoming.$$\"
cat >\"$tmp\"
n=$(ls \"$out\" | wc -l)
until ln \"$tmp\" \"$out/$(printf %06d $((n + 1))).eml\" 2>/dev/null; do
    n=$((n + 1))
done
rm -f \"$tmp\"
"
    );
    fs::write(&script, text)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(format!("'{script_str}'"))
}

/// Writes `text` to `path` with mode 0600 (also if it existed with another mode).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Runs `cmd` in its own process group with stdout and stderr captured in files in `dir`;
/// after [`CLIENT_TIMEOUT`] SIGKILLs the group and fails.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str) -> io::Result<Output> {
    let name = sanitize(name);
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .process_group(0);
    let line = describe(&cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run `{line}`: {e}")))?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        let done = match child.try_wait() {
            Ok(done) => done,
            Err(e) => {
                // Not reaped, so the pid is still ours.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        if let Some(status) = done {
            break status;
        }
        if Instant::now() >= deadline {
            // Not reaped yet, so its pid, which is its process group's id, is still ours.
            if send_signal("KILL", &format!("-{}", child.id())).is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
            let stderr =
                String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "`{line}` did not finish within {CLIENT_TIMEOUT:?} (killed); last lines of stderr:\n{}",
                    tail(&stderr, TAIL_LINES)
                ),
            ));
        }
        sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: fs::read(&out_path)?,
        stderr: fs::read(&err_path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_checked() {
        assert!(check_login("alice").is_ok());
        assert!(check_login("a.b-c_d@isp.test").is_ok());
        assert!(check_login("").is_err());
        assert!(check_login(".hidden").is_err());
        assert!(check_login("a/b").is_err());
        assert!(check_login("a:b").is_err());
    }

    #[test]
    fn client_values_are_checked() {
        assert!(check_client_value("x", "user", "alice").is_ok());
        assert!(check_client_value("x", "password", "p w!").is_ok());
        assert!(check_client_value("x", "password", "a\"b").is_err());
        assert!(check_client_value("x", "password", "a\nb").is_err());
        assert!(check_client_value("x", "user", "").is_err());
    }

    #[test]
    fn modes_say_what_they_do() {
        assert_eq!(
            PopMode::keep(PopTls::Plain),
            PopMode {
                tls: PopTls::Plain,
                keep: true
            }
        );
        assert!(!PopMode::delete(PopTls::Implicit).keep);
    }
}
