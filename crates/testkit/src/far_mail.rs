//! The far side of outbound mail: a private postfix instance that plays a mail server
//! on the Internet ([`FarPostfix`]), and dnsmasq as a tiny authoritative-only DNS server
//! with the MX and address records that lead to it ([`TestDns`]). Both run inside a
//! [`Netns`] the test created, so officebox's SMTP client can look up an MX, connect to
//! port 25, use STARTTLS, meet 4xx and 5xx replies, and find the far server gone for a
//! while, without any traffic leaving the test's namespaces.
//!
//! ```no_run
//! use std::net::{Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//! use officebox_testkit::{require_program, require_root, DnsRecord, FarPostfix, Netns, TestDns};
//!
//! # fn main() -> std::io::Result<()> {
//! require_root();
//! require_program("postfix", "postfix");
//! require_program("dnsmasq", "dnsmasq-base");
//! let ns = Netns::new("far")?;
//! let _dns = TestDns::start(
//!     &ns,
//!     SocketAddr::from(([127, 0, 0, 3], 53)),
//!     &[
//!         DnsRecord::mx("far.test", 10, "mx.far.test"),
//!         DnsRecord::a("mx.far.test", Ipv4Addr::new(127, 0, 0, 2)),
//!     ],
//! )?;
//! let far = FarPostfix::start(&ns, Ipv4Addr::new(127, 0, 0, 2).into(), &["far.test"])?;
//! // ... officebox, in `ns`, using 127.0.0.3 as its resolver, sends to bob@far.test ...
//! let mail = far.wait_for_messages("bob@far.test", 1, Duration::from_secs(30))?;
//! assert!(mail[0].starts_with(b"Return-Path: "));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::{panicking, sleep};
use std::time::{Duration, Instant, SystemTime};

use crate::cmd::{describe, run_checked, send_signal};
use crate::{Netns, Peer, TempDir, scratch_dir};

const POLL: Duration = Duration::from_millis(20);
/// A clean `PATH` for postfix and its helper scripts (they get no other environment).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How long the master and its children get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const TAIL_LINES: usize = 40;

/// Local part that [`FarPostfix`] refuses permanently in every domain it serves
/// (`550 5.1.1` at RCPT TO), for bounce tests.
pub const REJECT_LOCAL_PART: &str = "reject";
/// Local part that [`FarPostfix`] refuses temporarily in every domain it serves
/// (`450 4.2.1` at RCPT TO), for retry tests.
pub const TEMPFAIL_LOCAL_PART: &str = "tempfail";

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A DNS name (or an address's domain): letters, digits, `-`, `_` and `.`, no empty
/// label, at most 253 characters. Keeps names safe inside main.cf, postfix maps and
/// dnsmasq options.
fn check_name(what: &str, name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "{what} {name:?}: use dot-separated labels of letters, digits, '-', '_'"
        )))
    }
}

/// Splits `local@domain` (at the last `@`), lowercased. The local part must be one
/// word of printable characters (it becomes a key in a postfix map); the domain is
/// checked with [`check_name`].
fn split_address(address: &str) -> io::Result<(String, String)> {
    let (local, domain) = address
        .trim()
        .rsplit_once('@')
        .ok_or_else(|| invalid_input(format!("{address:?} is not local@domain")))?;
    if local.is_empty()
        || local.len() > 64
        || local.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(invalid_input(format!(
            "local part of {address:?}: one word of printable characters, no '#'"
        )));
    }
    check_name("domain of address", domain)?;
    Ok((local.to_ascii_lowercase(), domain.to_ascii_lowercase()))
}

/// A line for a postfix map or a reply: no line breaks or control characters.
fn check_line(what: &str, text: &str) -> io::Result<()> {
    if text.trim().is_empty() || text.chars().any(char::is_control) {
        Err(invalid_input(format!(
            "{what} {text:?}: one line of printable text"
        )))
    } else {
        Ok(())
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes a postfix config file or map and dates it a minute back. Postfix re-reads a
/// file modified in the last second or two every 300 ms until it stops changing (it
/// might be mid-edit): a fresh main.cf costs every postfix command about 2 s.
fn write_config(path: &Path, contents: &str) -> io::Result<()> {
    fs::write(path, contents)?;
    let past = SystemTime::now()
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(past)
}

/// `id -u NAME` or `id -g NAME`.
fn id_of(flag: &str, name: &str) -> io::Result<u32> {
    let out = run_checked(Command::new("id").args([flag, name]))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("`id {flag} {name}` printed no number")))
}

/// What /proc/PID/stat says about a process.
#[derive(Debug)]
struct ProcStat {
    comm: String,
    state: char,
    pgrp: u32,
}

impl ProcStat {
    fn read(pid: u32) -> Option<ProcStat> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let _ppid = fields.next()?;
        let pgrp = fields.next()?.parse().ok()?;
        Some(ProcStat { comm, state, pgrp })
    }

    fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Processes of group `pgrp` that have not exited (zombies do not count: an orphaned
/// postfix process is reaped by init, which may be slow or never do it in a container).
fn live_group_members(pgrp: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ProcStat::read(pid).is_some_and(|s| s.pgrp == pgrp && s.alive()))
        .collect()
}

/// (device, inode) of a network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
fn netns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A private postfix instance playing a mail server on the Internet: it listens on
/// `addr` port 25 inside a test [`Netns`], offers STARTTLS with a self-signed
/// certificate, and accepts mail for every `local@domain` of its domains, delivering
/// it with virtual(8) into one Maildir per domain (`mail/DOMAIN/` in its directory;
/// [`FarPostfix::messages`] picks a recipient's messages by their `Delivered-To:`).
///
/// Nothing can leave it: every non-local transport is `error:`, it relays for nobody
/// (`reject_unauth_destination` for every client, loopback too), it does no DNS
/// lookups, and its master.cf has no SMTP or LMTP client. Its config, queue, data, log
/// and Maildirs live in a private directory (`postfix -c DIR`), so the system's postfix,
/// if any, is neither used nor disturbed.
///
/// Replies: `reject@DOMAIN` gets `550 5.1.1` and `tempfail@DOMAIN` gets `450 4.2.1` at
/// RCPT TO ([`REJECT_LOCAL_PART`], [`TEMPFAIL_LOCAL_PART`]); [`FarPostfix::set_reply`]
/// changes any address's reply. Other domains get `554 5.7.1 Relay access denied`.
///
/// Dropping it stops the instance (SIGTERM to the master it started, which ends its
/// children; SIGKILL to that master's process group if that does not work), prints the
/// log's tail if the test is panicking, and removes the directory. Declare it after its
/// [`Netns`] so it drops first.
#[derive(Debug)]
pub struct FarPostfix {
    netns: String,
    /// (dev, ino) of the namespace, to tell that a pid is still our master.
    netns_id: Option<(u64, u64)>,
    addr: IpAddr,
    hostname: String,
    domains: Vec<String>,
    /// Lowercased address → access(5) action, as written to `etc/replies`.
    replies: BTreeMap<String, String>,
    cert_pem: String,
    /// The running master's pid (it is also its process group).
    master: Option<u32>,
    // Last: the directory goes after the instance is stopped.
    dir: TempDir,
}

impl FarPostfix {
    /// Writes a private postfix configuration for `domains` (at least one) and starts
    /// it inside `ns`, listening on `addr:25` (`addr` must be local in `ns`: on an
    /// interface there, or in 127.0.0.0/8 for loopback). Returns once the master has
    /// initialized and listens. Its host name (banner, HELO, certificate) is
    /// `mx.{first domain}`; the certificate also names every domain and `addr`.
    pub fn start(ns: &Netns, addr: IpAddr, domains: &[&str]) -> io::Result<FarPostfix> {
        Self::start_with(ns, addr, domains, None)
    }

    /// [`FarPostfix::start`], as a sending server too: mail it takes for other domains
    /// (from clients in `clients`, a network of its namespace, or loopback) goes, from
    /// `addr`, to `relay` and nowhere else (postfix's SMTP client with `[ip]:port` as the
    /// only next hop, no DNS), retried after a second or two when refused for now.
    pub fn start_relaying(
        ns: &Netns,
        addr: IpAddr,
        domains: &[&str],
        relay: SocketAddr,
        clients: &str,
    ) -> io::Result<FarPostfix> {
        check_line("client network", clients)?;
        Self::start_with(ns, addr, domains, Some((relay, clients)))
    }

    fn start_with(
        ns: &Netns,
        addr: IpAddr,
        domains: &[&str],
        relay: Option<(SocketAddr, &str)>,
    ) -> io::Result<FarPostfix> {
        if domains.is_empty() {
            return Err(invalid_input("FarPostfix needs at least one domain".into()));
        }
        let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        for d in &domains {
            check_name("mail domain", d)?;
        }
        let hostname = format!("mx.{}", domains[0]);
        let dir = scratch_dir("far-postfix")?;
        let d = dir.path();
        // virtual(8) delivers as nobody below it; postfix daemons run as postfix.
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        let postfix_uid = id_of("-u", "postfix")?;
        let nobody_uid = id_of("-u", "nobody")?;
        let nobody_gid = id_of("-g", "nobody")?;
        for sub in ["etc", "queue", "data", "mail"] {
            fs::create_dir(d.join(sub))?;
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o755))?;
        }
        std::os::unix::fs::chown(d.join("data"), Some(postfix_uid), None)?;
        std::os::unix::fs::chown(d.join("mail"), Some(nobody_uid), Some(nobody_gid))?;

        let mut names = vec![hostname.clone()];
        names.extend(domains.iter().cloned());
        names.push(addr.to_string());
        let cert = rcgen::generate_simple_self_signed(names).map_err(|e| {
            io::Error::other(format!("making FarPostfix's self-signed certificate: {e}"))
        })?;
        let cert_pem = cert.cert.pem();
        let etc = d.join("etc");
        fs::write(etc.join("cert.pem"), &cert_pem)?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(etc.join("key.pem"))?
            .write_all(cert.signing_key.serialize_pem().as_bytes())?;

        write_config(&etc.join("vmailbox"), &vmailbox_map(&domains))?;
        let mut main = main_cf(d, addr, &hostname, &domains, nobody_uid, nobody_gid);
        let mut master = master_cf(addr);
        if let Some((relay, clients)) = relay {
            main = overridden(&main, &relay_cf(addr, relay, clients));
            master.push_str("smtp       unix  - - n -  - smtp\n");
        }
        write_config(&etc.join("main.cf"), &main)?;
        write_config(&etc.join("master.cf"), &master)?;

        let mut replies = BTreeMap::new();
        for domain in &domains {
            replies.insert(
                format!("{REJECT_LOCAL_PART}@{domain}"),
                "550 5.1.1 mailbox unavailable (testkit FarPostfix)".to_owned(),
            );
            replies.insert(
                format!("{TEMPFAIL_LOCAL_PART}@{domain}"),
                "450 4.2.1 try again later (testkit FarPostfix)".to_owned(),
            );
        }
        let mut far = FarPostfix {
            netns: ns.name().to_owned(),
            netns_id: netns_id(&Path::new("/run/netns").join(ns.name())),
            addr,
            hostname,
            domains,
            replies,
            cert_pem,
            master: None,
            dir,
        };
        far.write_replies()?;
        far.start_master()?;
        Ok(far)
    }

    /// The address it listens on (port 25).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// `addr:25`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, 25)
    }

    /// Its host name (`mx.{first domain}`): banner, certificate.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The domains it accepts mail for (lowercased).
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Its private directory: `etc/` (main.cf, master.cf, maps, cert.pem, key.pem),
    /// `queue/`, `data/`, `mail/` and `maillog`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The self-signed certificate it offers with STARTTLS, in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Path of that certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.dir().join("etc/cert.pem")
    }

    /// The master's pid while it runs.
    pub fn master_pid(&self) -> Option<u32> {
        self.master.filter(|&pid| self.is_our_master(pid))
    }

    /// Whether the instance is running.
    pub fn is_running(&self) -> bool {
        self.master_pid().is_some()
    }

    /// The Maildir that gets every message for `domain` (one of its domains):
    /// `mail/DOMAIN/`.
    pub fn maildir(&self, domain: &str) -> io::Result<PathBuf> {
        check_name("domain", domain)?;
        Ok(self.dir().join("mail").join(domain.to_ascii_lowercase()))
    }

    /// The raw messages delivered for `address` (its domain's Maildir's `new/` and
    /// `cur/`, the files whose first `Delivered-To:` header is `address`, compared
    /// without regard to case), oldest first. Each starts with the headers virtual(8)
    /// adds (`Return-Path:` with the envelope sender, `Delivered-To:`) and postfix's
    /// `Received:` header, which says `(using TLSv1.3 with cipher ...)` when the client
    /// used STARTTLS. A message for several recipients is one file per recipient.
    /// Empty if nothing was delivered or the address is invalid.
    pub fn messages(&self, address: &str) -> Vec<Vec<u8>> {
        let Ok((_, domain)) = split_address(address) else {
            return Vec::new();
        };
        let Ok(maildir) = self.maildir(&domain) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), path));
                }
            }
        }
        // Maildir names start with the delivery time in seconds; mtime orders within.
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| fs::read(path).ok())
            .filter(|m| delivered_to(m).is_some_and(|to| to.eq_ignore_ascii_case(address.trim())))
            .collect()
    }

    /// Waits until at least `count` messages were delivered for `address` and returns
    /// them all. Fails with `TimedOut` and the maillog's tail after `timeout`.
    pub fn wait_for_messages(
        &self,
        address: &str,
        count: usize,
        timeout: Duration,
    ) -> io::Result<Vec<Vec<u8>>> {
        split_address(address)?;
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages(address);
            if messages.len() >= count {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    &format!(
                        "{} of {count} messages for {address} within {timeout:?}",
                        messages.len()
                    ),
                ));
            }
            sleep(POLL);
        }
    }

    /// Its maillog so far (every line postfix logged; empty if there is none yet).
    pub fn log(&self) -> String {
        read_lossy(&self.dir().join("maillog"))
    }

    /// The last `lines` lines of its maillog.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Makes RCPT TO `address` get `reply` from now on, an access(5) action such as
    /// `"450 4.2.2 mailbox full"` or `"550 5.1.1 no such user"`; `None` accepts the
    /// address again. A running instance is restarted (stop, start) so that no smtpd
    /// process with the old map is left; while it restarts, connections are refused.
    pub fn set_reply(&mut self, address: &str, reply: Option<&str>) -> io::Result<()> {
        let (local, domain) = split_address(address)?;
        let key = format!("{local}@{domain}");
        match reply {
            Some(r) => {
                check_line("reply", r)?;
                self.replies.insert(key, r.trim().to_owned());
            }
            None => {
                self.replies.remove(&key);
            }
        }
        self.write_replies()?;
        if self.master.is_some() {
            self.stop()?;
            self.start_again()?;
        }
        Ok(())
    }

    fn write_replies(&self) -> io::Result<()> {
        let mut map = String::from("# officebox-testkit FarPostfix: RCPT TO replies\n");
        for (address, reply) in &self.replies {
            let _ = writeln!(map, "{address} {reply}");
        }
        write_config(&self.dir().join("etc/replies"), &map)
    }

    /// Stops the instance: SIGTERM to the master (which ends its children), then waits
    /// until none of its processes is left, so port 25 is closed when this returns. If
    /// they have not exited after 10 s, SIGKILLs the master's process group. Does
    /// nothing if it is not running.
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(pid) = self.master else {
            return Ok(());
        };
        if self.is_our_master(pid) {
            send_signal("TERM", &pid.to_string())?;
        }
        if !self.wait_group_gone(pid, STOP_GRACE) {
            if self.is_our_master(pid) {
                // The group's leader is our live master: the group is ours.
                let _ = send_signal("KILL", &format!("-{pid}"));
            } else {
                // The master is gone; what is left of its group are its children.
                for member in live_group_members(pid) {
                    let _ = send_signal("KILL", &member.to_string());
                }
            }
            if !self.wait_group_gone(pid, Duration::from_secs(2)) {
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    &format!(
                        "processes {:?} of master {pid} would not exit",
                        live_group_members(pid)
                    ),
                ));
            }
        }
        self.master = None;
        Ok(())
    }

    /// Starts the instance again after [`FarPostfix::stop`] (same config, queue and
    /// Maildirs; mail left in its queue is delivered). Does nothing if it is running.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.start_master()
    }

    fn wait_group_gone(&self, pgrp: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if live_group_members(pgrp).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(POLL);
        }
    }

    /// Whether `pid` is still the master we started: a live process named `master`
    /// that leads its own process group inside our namespace.
    fn is_our_master(&self, pid: u32) -> bool {
        let Some(stat) = ProcStat::read(pid) else {
            return false;
        };
        stat.alive()
            && stat.comm == "master"
            && stat.pgrp == pid
            && self.netns_id.is_some()
            && netns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == self.netns_id
    }

    /// `postfix -c ETC start` inside the namespace; it returns once the master has
    /// initialized (`master -w`). Then reads and checks the master's pid.
    fn start_master(&mut self) -> io::Result<()> {
        let etc = self.dir().join("etc");
        if self.dir().join("queue/pid").is_dir() {
            // Started before, so its queue and permissions are in place: skip the
            // integrity checks (seconds) the way `postfix quick-stop` does.
            fs::write(self.dir().join("queue/quick-start"), "")?;
        }
        let log_path = self.dir().join("postfix-start.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "postfix", "-c"])
            .arg(&etc)
            .arg("start")
            .env_clear()
            .env("PATH", PATH)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            // A file, not a pipe: the master daemon may keep its parent's stdio open.
            .stdout(log.try_clone()?)
            .stderr(log);
        let line = describe(&cmd);
        let status = cmd
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("could not run `{line}`: {e}")))?;
        if !status.success() {
            let mut what = format!("`{line}` failed ({status})");
            let output = read_lossy(&log_path);
            if !output.trim().is_empty() {
                let _ = write!(what, "; its output:\n{}", output.trim());
            }
            let check = self.check_on_a_terminal();
            if !check.is_empty() {
                let _ = write!(what, "\n`postfix check` on a terminal says:\n{check}");
            }
            return Err(self.error(io::ErrorKind::Other, &what));
        }
        let pid_file = self.dir().join("queue/pid/master.pid");
        let pid: u32 = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                self.error(
                    io::ErrorKind::Other,
                    &format!("no pid in {} after `{line}`", pid_file.display()),
                )
            })?;
        if !self.is_our_master(pid) {
            return Err(self.error(
                io::ErrorKind::Other,
                &format!(
                    "pid {pid} from {} is not a postfix master in {}",
                    pid_file.display(),
                    self.netns
                ),
            ));
        }
        self.master = Some(pid);
        Ok(())
    }

    /// `postfix -c ETC check` under script(1): postfix(1) prints its errors only when
    /// stderr is a terminal, and logs them nowhere while its postlogd is not running.
    fn check_on_a_terminal(&self) -> String {
        let etc = self.dir().join("etc");
        let etc = etc.display().to_string();
        if etc.contains('\'') {
            return String::new();
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "script", "-q", "-e", "-c"])
            .arg(format!("postfix -c '{etc}' check"))
            .arg("/dev/null")
            .env_clear()
            .env("PATH", PATH)
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null());
        match cmd.output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("(could not run `{}`: {e})", describe(&cmd)),
        }
    }

    fn error(&self, kind: io::ErrorKind, what: &str) -> io::Error {
        io::Error::new(
            kind,
            format!(
                "FarPostfix {} on {} in {}: {what}; last lines of {}:\n{}",
                self.hostname,
                self.addr,
                self.netns,
                self.dir().join("maillog").display(),
                self.log_tail(TAIL_LINES)
            ),
        )
    }
}

impl Drop for FarPostfix {
    fn drop(&mut self) {
        if panicking() {
            eprintln!(
                "--- testkit: FarPostfix {} on {}, last lines of its maillog ---\n{}\n---",
                self.hostname,
                self.addr,
                self.log_tail(TAIL_LINES)
            );
        }
        if let Err(e) = self.stop() {
            eprintln!("testkit: stopping FarPostfix: {e}");
        }
    }
}

/// virtual_mailbox_maps: a catch-all Maildir per domain, `DOMAIN/`. (A Maildir per
/// address would need `$1` from a regexp map, which virtual(8) refuses: "regular
/// expression substitution is not allowed", after smtpd has accepted the mail.)
fn vmailbox_map(domains: &[String]) -> String {
    let mut map = String::from("# officebox-testkit FarPostfix: a Maildir per domain\n");
    for domain in domains {
        let _ = writeln!(map, "@{domain} {domain}/");
    }
    map
}

/// The value of the first `Delivered-To:` header of a message (the one virtual(8)
/// prepended), trimmed.
fn delivered_to(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    for line in text.lines() {
        if line.is_empty() {
            return None; // end of the header
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("Delivered-To")
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

/// main.cf: defaults except paths, addresses, name lookups, TLS and where mail goes
/// (the recipe of bench/smtp.sh, plus STARTTLS and RCPT TO replies).
fn main_cf(
    dir: &Path,
    addr: IpAddr,
    hostname: &str,
    domains: &[String],
    uid: u32,
    gid: u32,
) -> String {
    let d = dir.display();
    let protocols = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
    let never = "error:testkit FarPostfix: nothing leaves this instance";
    format!(
        "# officebox-testkit FarPostfix: a private instance (postfix -c {d}/etc)
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
shlib_directory = /usr/lib/postfix
# inet_interfaces must name interface addresses (127.0.0.2 is none); master.cf binds.
inet_interfaces = all
inet_protocols = {protocols}
myhostname = {hostname}
mydomain = {first}
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = {never}
relay_transport = {never}
local_transport = {never}
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = {domain_list}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_banner = $myhostname ESMTP testkit FarPostfix
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:{d}/etc/replies
smtpd_error_sleep_time = 0s
smtpd_tls_security_level = may
smtpd_tls_chain_files = {d}/etc/key.pem, {d}/etc/cert.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
notify_classes =
biff = no
",
        first = domains[0],
        domain_list = domains.join(", "),
    )
}

/// `main` with each `key = value` of `extra` in place of the same key's line, or added
/// at the end: postfix warns of a key set twice, in every daemon, and its log daemon
/// then waits on itself for good.
fn overridden(main: &str, extra: &str) -> String {
    let key = |line: &str| line.split_once(" = ").map(|(k, _)| k.trim().to_owned());
    let extra_lines: Vec<&str> = extra.lines().filter(|l| key(l).is_some()).collect();
    let mut out = String::new();
    for line in main.lines() {
        let replaced =
            key(line).and_then(|k| extra_lines.iter().find(|e| key(e).as_ref() == Some(&k)));
        out.push_str(replaced.copied().unwrap_or(line));
        out.push('\n');
    }
    for e in extra.lines() {
        if !main.lines().any(|l| key(l).is_some() && key(l) == key(e)) {
            out.push_str(e);
            out.push('\n');
        }
    }
    out
}

/// main.cf's settings for [`FarPostfix::start_relaying`] ([`overridden`] puts them in).
fn relay_cf(addr: IpAddr, relay: SocketAddr, clients: &str) -> String {
    let next = match relay.ip() {
        IpAddr::V4(a) => format!("[{a}]:{}", relay.port()),
        IpAddr::V6(a) => format!("[ipv6:{a}]:{}", relay.port()),
    };
    format!(
        "# FarPostfix::start_relaying: a sending server, to {next} only
mynetworks = 127.0.0.0/8 {clients}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
default_transport = smtp:{next}
relay_transport = smtp:{next}
smtp_bind_address = {addr}
smtp_tls_security_level = may
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"
    )
}

/// master.cf: Debian's without its public smtp listener, SMTP/LMTP clients and pipe(8)
/// examples, chroot off; one smtpd on `addr:25`, and tlsmgr for STARTTLS.
fn master_cf(addr: IpAddr) -> String {
    let listen = match addr {
        IpAddr::V4(a) => format!("{a}:25"),
        IpAddr::V6(a) => format!("[{a}]:25"),
    };
    format!(
        "# officebox-testkit FarPostfix
{listen} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
virtual    unix  - n n -  - virtual
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
"
    )
}

/// One record [`TestDns`] answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRecord {
    /// `domain MX preference host` (`--mx-host`).
    Mx {
        domain: String,
        preference: u16,
        host: String,
    },
    /// `host A addr` or `host AAAA addr` (`--host-record`; also answers the reverse
    /// lookup).
    Addr { host: String, addr: IpAddr },
    /// `name TXT "text"` (`--txt-record`), e.g. an SPF record.
    Txt { name: String, text: String },
}

impl DnsRecord {
    /// `domain MX preference host`.
    pub fn mx(domain: &str, preference: u16, host: &str) -> DnsRecord {
        DnsRecord::Mx {
            domain: domain.to_owned(),
            preference,
            host: host.to_owned(),
        }
    }

    /// `host A addr` (or AAAA for an IPv6 address).
    pub fn a(host: &str, addr: impl Into<IpAddr>) -> DnsRecord {
        DnsRecord::Addr {
            host: host.to_owned(),
            addr: addr.into(),
        }
    }

    /// `name TXT "text"`.
    pub fn txt(name: &str, text: &str) -> DnsRecord {
        DnsRecord::Txt {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    /// The dnsmasq option for this record, after checking its names and text.
    fn dnsmasq_arg(&self) -> io::Result<String> {
        match self {
            DnsRecord::Mx {
                domain,
                preference,
                host,
            } => {
                check_name("MX domain", domain)?;
                check_name("MX host", host)?;
                Ok(format!("--mx-host={domain},{host},{preference}"))
            }
            DnsRecord::Addr { host, addr } => {
                check_name("host", host)?;
                Ok(format!("--host-record={host},{addr}"))
            }
            DnsRecord::Txt { name, text } => {
                check_name("TXT name", name)?;
                check_line("TXT text", text)?;
                if text.contains(['"', '\\', ',']) {
                    return Err(invalid_input(format!(
                        "TXT text {text:?}: no quotes, backslashes or commas"
                    )));
                }
                // Quotes are only parsed in config files; a comma would split the text.
                Ok(format!("--txt-record={name},{text}"))
            }
        }
    }
}

/// dnsmasq as a tiny authoritative-only DNS server inside a test [`Netns`]: it answers
/// its [`DnsRecord`]s and NXDOMAIN for every other name (`--local=/#/`), never forwards
/// (`--no-resolv`, no servers), never reads /etc/hosts, and listens only on one address
/// and port. Every query is logged ([`TestDns::log`]). Dropping it kills dnsmasq.
#[derive(Debug)]
pub struct TestDns {
    peer: Peer,
    listen: SocketAddr,
    _dir: TempDir,
}

impl TestDns {
    /// Starts dnsmasq in `ns` on `listen` (UDP and TCP; the address must be local in
    /// `ns`, 127.0.0.0/8 is) with `records`, and waits until it is ready.
    pub fn start(ns: &Netns, listen: SocketAddr, records: &[DnsRecord]) -> io::Result<TestDns> {
        let args = records
            .iter()
            .map(DnsRecord::dnsmasq_arg)
            .collect::<io::Result<Vec<_>>>()?;
        let dir = scratch_dir("test-dns")?;
        let mut cmd = ns.command("dnsmasq");
        cmd.env_clear().env("PATH", PATH).args([
            "--keep-in-foreground",
            "--log-facility=-",
            "--log-queries",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--local=/#/",
            "--bind-interfaces",
        ]);
        cmd.arg(format!("--listen-address={}", listen.ip()))
            .arg(format!("--port={}", listen.port()))
            .args(args);
        let peer = Peer::spawn_in("dnsmasq-dns", cmd, dir.path())?;
        peer.wait_for_log("started, version", Duration::from_secs(5))?;
        Ok(TestDns {
            peer,
            listen,
            _dir: dir,
        })
    }

    /// The address and port it answers on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// dnsmasq's output so far, with one line per query and answer.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_checked() {
        assert!(check_name("d", "far.test").is_ok());
        assert!(check_name("d", "mx-1.far_x.test").is_ok());
        for bad in [
            "",
            ".far.test",
            "far..test",
            "far.test.",
            "a b",
            "a,b",
            "a/b",
            "a\nb",
        ] {
            assert!(check_name("d", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            split_address("Bob.Smith+x@Far.Test").ok(),
            Some(("bob.smith+x".to_owned(), "far.test".to_owned()))
        );
        for bad in [
            "bob",
            "@far.test",
            "bob@",
            "a b@far.test",
            "a\nb@far.test",
            "x@../far",
        ] {
            assert!(split_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn maps_and_config_name_every_domain() {
        let domains = vec!["far.test".to_owned(), "other.test".to_owned()];
        let map = vmailbox_map(&domains);
        assert!(map.contains("\n@far.test far.test/\n"), "{map}");
        assert!(map.contains("\n@other.test other.test/\n"), "{map}");
        let addr = IpAddr::from([127, 0, 0, 2]);
        let main = main_cf(Path::new("/x"), addr, "mx.far.test", &domains, 1, 2);
        assert!(main.contains("virtual_mailbox_domains = far.test, other.test\n"));
        assert!(main.contains("default_transport = error:"));
        assert!(main.contains("relay_transport = error:"));
        assert!(master_cf(addr).contains("\n127.0.0.2:25 inet n - n - - smtpd\n"));
        let v6 = master_cf(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(v6.contains("\n[::1]:25 inet "), "{v6}");
        assert!(!master_cf(addr).contains(" smtp\n") && !master_cf(addr).contains("lmtp"));
        let relaying = overridden(
            &main,
            &relay_cf(addr, SocketAddr::new(addr, 2525), "198.51.100.0/24"),
        );
        assert_eq!(relaying.matches("\nmynetworks = ").count(), 1, "{relaying}");
        assert!(relaying.contains("\ndefault_transport = smtp:[127.0.0.2]:2525\n"));
        assert!(relaying.contains("\nsmtp_bind_address = 127.0.0.2\n"));
    }

    #[test]
    fn dns_records_become_dnsmasq_options() {
        let args: Vec<String> = [
            DnsRecord::mx("far.test", 10, "mx.far.test"),
            DnsRecord::a("mx.far.test", IpAddr::from([127, 0, 0, 2])),
            DnsRecord::txt("far.test", "v=spf1 -all"),
        ]
        .iter()
        .filter_map(|r| r.dnsmasq_arg().ok())
        .collect();
        assert_eq!(
            args,
            [
                "--mx-host=far.test,mx.far.test,10",
                "--host-record=mx.far.test,127.0.0.2",
                "--txt-record=far.test,v=spf1 -all",
            ]
        );
        assert!(DnsRecord::mx("far.test,x", 1, "h").dnsmasq_arg().is_err());
        assert!(DnsRecord::txt("t", "a\"b").dnsmasq_arg().is_err());
    }

    #[test]
    fn proc_stat_parses_our_own_process() {
        let stat = ProcStat::read(std::process::id());
        assert!(stat.is_some_and(|s| s.alive() && !s.comm.is_empty()));
    }
}
