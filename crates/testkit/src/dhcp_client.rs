//! Real DHCP clients (ISC dhclient, busybox udhcpc, dhcpcd) and a dnsmasq DHCP server,
//! run inside test namespaces.
//!
//! Every client gets a private scratch directory with its own hook script, config, lease
//! and pid files, and runs as a [`Peer`] inside a [`Netns`] the test created. The hook
//! script records each event's variables to a file (parsed into [`ClientEvent`]s and
//! [`ClientLease`]s) and, for dhclient and udhcpc, puts the leased address on the
//! interface with `ip addr` (dhcpcd configures the interface itself). Because the script
//! runs inside the namespace, that changes only the namespace. No client writes
//! `/etc/resolv.conf`, the host's routes or addresses, or a lease file under
//! `/var/lib/dhcp`.
//!
//! dhcpcd is the exception for its own state: it always keeps its pid file and control
//! sockets in `/run/dhcpcd/` and its lease in `/var/lib/dhcpcd/`, named after the
//! interface. Those files are removed on drop if they did not exist before the client
//! started (interface names from [`crate::Veth`] are unique, so they never did).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::thread::{panicking, sleep};
use std::time::{Duration, Instant};

use crate::{Netns, Peer, TempDir, scratch_dir};

const POLL: Duration = Duration::from_millis(20);
/// A clean `PATH` for the clients and their scripts (they get no other environment).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Where dhcpcd keeps per-interface state whatever it is told.
const DHCPCD_RUNDIR: &str = "/run/dhcpcd";
const DHCPCD_DBDIR: &str = "/var/lib/dhcpcd";

/// Which DHCP client program to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// ISC `dhclient` (Debian package isc-dhcp-client).
    Dhclient,
    /// busybox `udhcpc` (Debian package udhcpc).
    Udhcpc,
    /// `dhcpcd` (Debian package dhcpcd-base).
    Dhcpcd,
}

impl ClientKind {
    /// Every client, for tests that try them all.
    pub const ALL: [ClientKind; 3] = [ClientKind::Dhclient, ClientKind::Udhcpc, ClientKind::Dhcpcd];

    /// The program's name on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            ClientKind::Dhclient => "dhclient",
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhcpcd => "dhcpcd",
        }
    }

    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            ClientKind::Dhclient => "isc-dhcp-client",
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhcpcd => "dhcpcd-base",
        }
    }

    /// [`crate::require_program`] for this client.
    pub fn require(self) {
        crate::require_program(self.program(), self.package());
    }

    /// Whether a script event means "a lease is in place" (first bind or renewal).
    fn is_bound(self, event: &str) -> bool {
        match self {
            ClientKind::Dhclient | ClientKind::Dhcpcd => {
                matches!(event, "BOUND" | "RENEW" | "REBIND" | "REBOOT")
            }
            ClientKind::Udhcpc => matches!(event, "bound" | "renew"),
        }
    }

    /// Whether a script event means "the lease was given back".
    fn is_released(self, event: &str) -> bool {
        match self {
            ClientKind::Dhclient => event == "RELEASE",
            ClientKind::Dhcpcd => matches!(event, "RELEASE" | "STOP" | "STOPPED"),
            ClientKind::Udhcpc => event == "deconfig",
        }
    }
}

impl std::fmt::Display for ClientKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// One call of a client's hook script: the event (dhclient/dhcpcd `$reason`, udhcpc's
/// first argument) and the environment it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    pub name: String,
    pub vars: BTreeMap<String, String>,
}

/// What a client was handed, as its hook script saw it. Lists are in the server's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLease {
    pub address: Ipv4Addr,
    /// Option 1.
    pub netmask: Option<Ipv4Addr>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 42.
    pub ntp_servers: Vec<Ipv4Addr>,
    /// Option 51.
    pub lease_time: Option<Duration>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// The event that carried it (`BOUND`, `RENEW`, `bound`, ...).
    pub event: String,
    /// Every variable of that event, for options not parsed above.
    pub vars: BTreeMap<String, String>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn parse_one<T: FromStr>(key: &str, value: &str) -> io::Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{key}={value:?} does not parse")))
}

fn parse_list(key: &str, value: Option<&String>) -> io::Result<Vec<Ipv4Addr>> {
    value
        .map(|v| v.split_whitespace().map(|a| parse_one(key, a)).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

impl ClientLease {
    /// Reads a bound event of `kind`'s script (dhclient and dhcpcd name variables
    /// `new_*`, udhcpc uses short names).
    fn from_event(kind: ClientKind, event: &ClientEvent) -> io::Result<ClientLease> {
        let names: [&str; 8] = match kind {
            ClientKind::Dhclient | ClientKind::Dhcpcd => [
                "new_ip_address",
                "new_subnet_mask",
                "new_routers",
                "new_domain_name_servers",
                "new_domain_name",
                "new_ntp_servers",
                "new_dhcp_lease_time",
                "new_dhcp_server_identifier",
            ],
            ClientKind::Udhcpc => [
                "ip", "subnet", "router", "dns", "domain", "ntpsrv", "lease", "serverid",
            ],
        };
        let [ip, mask, routers, dns, domain, ntp, lease, server] = names;
        let get = |k: &str| event.vars.get(k);
        let opt = |k: &str| -> io::Result<Option<Ipv4Addr>> {
            get(k).map(|v| parse_one(k, v)).transpose()
        };
        let address = opt(ip)?.ok_or_else(|| {
            invalid(format!(
                "{kind} event {} has no {ip}: {:?}",
                event.name, event.vars
            ))
        })?;
        Ok(ClientLease {
            address,
            netmask: opt(mask)?,
            routers: parse_list(routers, get(routers))?,
            dns_servers: parse_list(dns, get(dns))?,
            domain: get(domain).map(|d| d.trim().to_owned()),
            ntp_servers: parse_list(ntp, get(ntp))?,
            lease_time: get(lease)
                .map(|v| parse_one::<u64>(lease, v))
                .transpose()?
                .map(Duration::from_secs),
            server_id: opt(server)?,
            event: event.name.clone(),
            vars: event.vars.clone(),
        })
    }

    /// The prefix length of [`ClientLease::netmask`], if it has one and it is contiguous.
    pub fn prefix_len(&self) -> Option<u32> {
        let bits = u32::from(self.netmask?);
        (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones())
    }
}

/// Parses the events file the hook script appends to: `=== NAME`, then `KEY=VALUE`
/// lines, then `=== end`. A line without `=` continues the previous value. The last block
/// counts only once its `=== end` is there: before that, the script is still writing it.
fn parse_events(text: &str) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    let mut current: Option<ClientEvent> = None;
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            if name == "end" {
                events.extend(current.take());
            } else {
                // A block cut short (the script killed mid-write) still counts.
                events.extend(current.take());
                current = Some(ClientEvent {
                    name: name.to_owned(),
                    vars: BTreeMap::new(),
                });
            }
            last_key = None;
            continue;
        }
        let Some(ev) = current.as_mut() else { continue };
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(' ') => {
                ev.vars.insert(k.to_owned(), v.to_owned());
                last_key = Some(k.to_owned());
            }
            _ => {
                if let Some(v) = last_key.as_ref().and_then(|k| ev.vars.get_mut(k)) {
                    v.push('\n');
                    v.push_str(line);
                }
            }
        }
    }
    // `current` is a block without its `=== end`: not complete yet.
    drop(current);
    events
}

/// The hook script for `kind`. It records the event (`$reason` or `$1`) with its sorted
/// environment, then configures the address for dhclient and udhcpc, only ever with
/// `ip addr` on `$interface` (inside the client's namespace).
fn hook_script(kind: ClientKind) -> String {
    let record = r#"#!/bin/sh
# officebox-testkit DHCP client hook. It runs inside the test's network namespace:
# `ip addr` here changes only that namespace. It never writes /etc/resolv.conf.
dir="$(dirname "$0")"
event="${reason:-$1}"
{ echo "=== $event"; env | LC_ALL=C sort; echo "=== end"; } >>"$dir/events"
"#;
    let configure = match kind {
        ClientKind::Dhclient => {
            r#"case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    ;;
RELEASE|EXPIRE|FAIL|STOP)
    if [ -n "$old_ip_address" ]; then
        ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ;;
esac
"#
        }
        ClientKind::Udhcpc => {
            r#"case "$1" in
bound|renew)
    if [ -f "$dir/address" ] && [ "$(cat "$dir/address")" != "$ip/$mask" ]; then
        ip addr del "$(cat "$dir/address")" dev "$interface" 2>/dev/null
    fi
    ip addr replace "$ip/$mask" dev "$interface" && echo "$ip/$mask" >"$dir/address"
    ;;
deconfig)
    if [ -f "$dir/address" ]; then
        ip addr del "$(cat "$dir/address")" dev "$interface" 2>/dev/null
        rm -f "$dir/address"
    fi
    ;;
esac
"#
        }
        // dhcpcd adds the address and routes itself.
        ClientKind::Dhcpcd => "",
    };
    format!("{record}{configure}exit 0\n")
}

fn check_word(what: &str, value: &str) -> io::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {value:?}: use letters, digits, '-', '.', '_' (at most 63)"),
        ))
    }
}

/// Seconds for the clients' own give-up timers: at least 1.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs().max(1) + u64::from(d.subsec_nanos() > 0)
}

/// A DHCP client running in a test namespace. Dropping it kills the client (without a
/// release) and removes its files.
#[derive(Debug)]
pub struct DhcpClient {
    kind: ClientKind,
    netns: String,
    iface: String,
    peer: Option<Peer>,
    lease: Option<ClientLease>,
    /// Bound events already handed out by `wait_bound`.
    bound_seen: usize,
    /// dhcpcd state files that did not exist before we started (ours to delete).
    dhcpcd_files: Vec<PathBuf>,
    release_log: Option<PathBuf>,
    // Last: the directory goes after the client is stopped.
    dir: TempDir,
}

impl DhcpClient {
    /// Starts `kind` on `iface` inside `ns` and waits up to `timeout` for a lease. With
    /// `hostname`, the client sends it (option 12). Fails with the client's log if it
    /// exits or gets no lease in time.
    pub fn lease(
        kind: ClientKind,
        ns: &Netns,
        iface: &str,
        hostname: Option<&str>,
        timeout: Duration,
    ) -> io::Result<DhcpClient> {
        let mut client = DhcpClient::start(kind, ns, iface, hostname, timeout)?;
        client.wait_bound(timeout)?;
        Ok(client)
    }

    /// Starts `kind` on `iface` inside `ns` without waiting; `give_up` is how long the
    /// client itself keeps trying before it exits. See [`DhcpClient::wait_bound`].
    pub fn start(
        kind: ClientKind,
        ns: &Netns,
        iface: &str,
        hostname: Option<&str>,
        give_up: Duration,
    ) -> io::Result<DhcpClient> {
        check_word("interface name", iface)?;
        if let Some(h) = hostname {
            check_word("hostname", h)?;
        }
        let dir = scratch_dir(&format!("dhcp-{kind}"))?;
        let d = dir.path();
        let script = d.join("hook.sh");
        fs::write(&script, hook_script(kind))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
        let secs = whole_secs(give_up);

        let mut cmd = ns.command(kind.program());
        cmd.env_clear().env("PATH", PATH).env("LC_ALL", "C");
        let mut dhcpcd_files = Vec::new();
        match kind {
            ClientKind::Dhclient => {
                let mut conf = format!(
                    "# officebox-testkit dhclient config\n\
                     request subnet-mask, broadcast-address, routers, domain-name-servers,\n    \
                     domain-name, ntp-servers;\n\
                     timeout {secs};\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\n"
                );
                if let Some(h) = hostname {
                    let _ = writeln!(conf, "send host-name \"{h}\";");
                }
                fs::write(d.join("dhclient.conf"), conf)?;
                cmd.args(["-d", "-1", "-v"]);
                cmd.args(dhclient_files(d));
                cmd.arg(iface);
            }
            ClientKind::Udhcpc => {
                // No -q: the client stays, so that it can release (SIGUSR2) and renew
                // (SIGUSR1). -n: exit if no lease after `secs` one-second tries.
                cmd.args(["-f", "-n", "-i", iface, "-s"])
                    .arg(&script)
                    .args(["-t", &secs.to_string(), "-T", "1", "-A", "1"])
                    .args(["-O", "ntpsrv"]);
                if let Some(h) = hostname {
                    cmd.args(["-x", &format!("hostname:{h}")]);
                }
            }
            ClientKind::Dhcpcd => {
                let mut conf = format!(
                    "# officebox-testkit dhcpcd config: IPv4 DHCP only, no system hooks\n\
                     ipv4only\nnoipv4ll\nnoipv6rs\nnoarp\nnodelay\nnodev\n\
                     nohook resolv.conf\nnohook hostname\nnohook ntp.conf\n\
                     option subnet_mask, routers, domain_name_servers, domain_name, ntp_servers\n\
                     timeout {secs}\n"
                );
                if let Some(h) = hostname {
                    let _ = writeln!(conf, "hostname {h}");
                }
                let conf_path = d.join("dhcpcd.conf");
                fs::write(&conf_path, conf)?;
                for (dir, name) in [
                    (DHCPCD_RUNDIR, format!("{iface}.pid")),
                    (DHCPCD_RUNDIR, format!("{iface}.sock")),
                    (DHCPCD_RUNDIR, format!("{iface}.unpriv.sock")),
                    (DHCPCD_RUNDIR, format!("{iface}-4.pid")),
                    (DHCPCD_RUNDIR, format!("{iface}-4.sock")),
                    (DHCPCD_RUNDIR, format!("{iface}-4.unpriv.sock")),
                    (DHCPCD_DBDIR, format!("{iface}.lease")),
                ] {
                    let path = Path::new(dir).join(name);
                    if !path.exists() {
                        dhcpcd_files.push(path);
                    }
                }
                cmd.arg("-f")
                    .arg(&conf_path)
                    .arg("-c")
                    .arg(&script)
                    .args(["-B", "-d", iface]);
            }
        }
        let peer = Peer::spawn_in(kind.program(), cmd, d)?;
        Ok(DhcpClient {
            kind,
            netns: ns.name().to_owned(),
            iface: iface.to_owned(),
            peer: Some(peer),
            lease: None,
            bound_seen: 0,
            dhcpcd_files,
            release_log: None,
            dir,
        })
    }

    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The scratch directory with the client's config, script, events and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client process, while it runs.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// The latest lease [`DhcpClient::wait_bound`] returned.
    pub fn current(&self) -> Option<&ClientLease> {
        self.lease.as_ref()
    }

    /// Every hook script call so far, oldest first.
    pub fn events(&self) -> Vec<ClientEvent> {
        parse_events(&fs::read_to_string(self.dir().join("events")).unwrap_or_default())
    }

    /// The client's output, the release command's output (if any) and the recorded
    /// script events, for failure messages.
    pub fn log(&self) -> String {
        let mut out = String::new();
        let read = |p: &Path| {
            fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let client_log = self.dir().join(format!("{}.log", self.kind.program()));
        let _ = writeln!(out, "--- {} log ---\n{}", self.kind, read(&client_log));
        if let Some(p) = &self.release_log {
            let _ = writeln!(out, "--- release command log ---\n{}", read(p));
        }
        let _ = writeln!(
            out,
            "--- script events ---\n{}",
            read(&self.dir().join("events"))
        );
        out
    }

    fn error(&self, kind: io::ErrorKind, what: &str) -> io::Error {
        io::Error::new(
            kind,
            format!(
                "{} on {} in {}: {what}\n{}",
                self.kind,
                self.iface,
                self.netns,
                self.log()
            ),
        )
    }

    fn bound_events(&self) -> Vec<ClientEvent> {
        self.events()
            .into_iter()
            .filter(|e| self.kind.is_bound(&e.name))
            .collect()
    }

    fn exited(&self) -> io::Result<Option<std::process::ExitStatus>> {
        match &self.peer {
            Some(p) => p.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits for the next bound (or renewed) event the script records and returns its
    /// lease. Fails with the client's log if the client exits first or `timeout` passes.
    pub fn wait_bound(&mut self, timeout: Duration) -> io::Result<ClientLease> {
        let deadline = Instant::now() + timeout;
        loop {
            // Check for exit first, so an event written just before exiting is seen.
            let exited = self.exited()?;
            let bound = self.bound_events();
            if let Some(event) = bound.get(self.bound_seen) {
                let lease = ClientLease::from_event(self.kind, event)
                    .map_err(|e| self.error(io::ErrorKind::InvalidData, &e.to_string()))?;
                self.bound_seen += 1;
                self.lease = Some(lease.clone());
                return Ok(lease);
            }
            if let Some(status) = exited {
                return Err(self.error(
                    io::ErrorKind::Other,
                    &format!("exited ({status}) without a lease"),
                ));
            }
            if Instant::now() >= deadline {
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    &format!("no lease within {timeout:?}"),
                ));
            }
            sleep(POLL);
        }
    }

    /// Asks the running client to renew now (udhcpc and dhcpcd: SIGUSR1) and waits for
    /// the renewed lease. dhclient has no such signal: `Unsupported`.
    pub fn renew(&mut self, timeout: Duration) -> io::Result<ClientLease> {
        if self.kind == ClientKind::Dhclient {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "dhclient cannot be told to renew; use a short lease time instead",
            ));
        }
        // Skip bound events not yet handed out: wait for one after the signal.
        self.bound_seen = self.bound_events().len();
        self.running_peer()?.signal("USR1")?;
        self.wait_bound(timeout)
    }

    fn running_peer(&self) -> io::Result<&Peer> {
        self.peer
            .as_ref()
            .ok_or_else(|| self.error(io::ErrorKind::NotConnected, "the client is stopped"))
    }

    /// Releases the lease (the client sends DHCPRELEASE) and stops the client: dhclient
    /// with `dhclient -r` (same script, lease, pid and config files), udhcpc with SIGUSR2,
    /// dhcpcd with SIGALRM (what `dhcpcd -k` sends). Waits up to `timeout` for the
    /// script's release event and the client's exit.
    pub fn release(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let released_before = self.released_count();
        match self.kind {
            ClientKind::Dhclient => {
                self.running_peer()?;
                // dhclient runs its script's BOUND before it writes the lease file; a
                // `dhclient -r` in between kills it and finds no lease to release.
                let leases = self.dir().join("dhclient.leases");
                while !std::fs::read_to_string(&leases).is_ok_and(|t| t.contains("lease {")) {
                    if Instant::now() >= deadline {
                        break;
                    }
                    sleep(POLL);
                }
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &self.netns, "dhclient", "-r", "-v"])
                    .args(dhclient_files(self.dir()))
                    .arg(&self.iface)
                    .env_clear()
                    .env("PATH", PATH);
                let releaser = Peer::spawn_in("dhclient-release", cmd, self.dir())?;
                self.release_log = Some(releaser.log_path().to_owned());
                let status = self.wait_exit(&releaser, deadline)?;
                if !status.success() {
                    return Err(self.error(
                        io::ErrorKind::Other,
                        &format!("dhclient -r failed ({status})"),
                    ));
                }
            }
            ClientKind::Udhcpc => self.running_peer()?.signal("USR2")?,
            ClientKind::Dhcpcd => self.running_peer()?.signal("ALRM")?,
        }
        while self.released_count() <= released_before {
            if Instant::now() >= deadline {
                return Err(self.error(io::ErrorKind::TimedOut, "no release event from the script"));
            }
            sleep(POLL);
        }
        if let Some(peer) = self.peer.take() {
            match self.kind {
                // udhcpc stays in its released state until stopped; without -R, SIGTERM
                // sends nothing more.
                ClientKind::Udhcpc => {
                    peer.stop(Duration::from_secs(2))?;
                }
                // dhclient -r killed it; dhcpcd exits after releasing.
                ClientKind::Dhclient | ClientKind::Dhcpcd => {
                    let status = self.wait_exit(&peer, deadline);
                    let _ = peer.kill9();
                    status?;
                }
            }
        }
        self.lease = None;
        Ok(())
    }

    fn released_count(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| self.kind.is_released(&e.name))
            .count()
    }

    fn wait_exit(&self, peer: &Peer, deadline: Instant) -> io::Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = peer.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    &format!("{} did not exit", peer.name()),
                ));
            }
            sleep(POLL);
        }
    }
}

/// dhclient's private files: `-sf SCRIPT -lf LEASES -pf PID -cf CONF`.
fn dhclient_files(d: &Path) -> Vec<PathBuf> {
    let mut args = Vec::new();
    for (flag, name) in [
        ("-sf", "hook.sh"),
        ("-lf", "dhclient.leases"),
        ("-pf", "dhclient.pid"),
        ("-cf", "dhclient.conf"),
    ] {
        args.push(PathBuf::from(flag));
        args.push(d.join(name));
    }
    args
}

impl Drop for DhcpClient {
    fn drop(&mut self) {
        if panicking() {
            let events = fs::read_to_string(self.dir().join("events")).unwrap_or_default();
            let tail: Vec<&str> = events.lines().collect();
            eprintln!(
                "--- testkit: {} on {} script events (last lines) ---\n{}\n---",
                self.kind,
                self.iface,
                tail[tail.len().saturating_sub(60)..].join("\n")
            );
        }
        // Stop the client (its group) before removing its files.
        drop(self.peer.take());
        for path in &self.dhcpcd_files {
            let _ = fs::remove_file(path);
        }
    }
}

/// What a [`DnsmasqDhcp`] server hands out besides an address.
#[derive(Debug, Clone, Default)]
pub struct DnsmasqOptions {
    /// Lease time; one hour when `None`.
    pub lease_time: Option<Duration>,
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub ntp_servers: Vec<Ipv4Addr>,
    /// More dnsmasq arguments, passed as they are.
    pub extra_args: Vec<String>,
}

/// One line of dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqLease {
    /// Unix time the lease ends (0: infinite).
    pub expires: u64,
    pub mac: String,
    pub address: Ipv4Addr,
    /// The client's name, `None` for `*`.
    pub hostname: Option<String>,
    /// The client identifier, `None` for `*`.
    pub client_id: Option<String>,
}

/// dnsmasq as a DHCP server only (`--port=0`), bound to one interface in a test
/// namespace, with its lease file in a scratch directory.
#[derive(Debug)]
pub struct DnsmasqDhcp {
    peer: Peer,
    lease_file: PathBuf,
    _dir: TempDir,
}

/// [`DnsmasqDhcp::start`] with default options (1 h leases, no extra options).
pub fn dnsmasq_dhcp_server(
    ns: &Netns,
    iface: &str,
    first: Ipv4Addr,
    last: Ipv4Addr,
) -> io::Result<DnsmasqDhcp> {
    DnsmasqDhcp::start(ns, iface, first, last, &DnsmasqOptions::default())
}

impl DnsmasqDhcp {
    /// Starts dnsmasq in `ns` serving `first..=last` on `iface` (which needs an address
    /// in that subnet) and waits until it is ready. `--no-ping` (no 3 s ping check per
    /// offer), `--dhcp-authoritative`, no config file, no DNS, no pid file.
    pub fn start(
        ns: &Netns,
        iface: &str,
        first: Ipv4Addr,
        last: Ipv4Addr,
        opts: &DnsmasqOptions,
    ) -> io::Result<DnsmasqDhcp> {
        check_word("interface name", iface)?;
        let dir = scratch_dir("dnsmasq-dhcp")?;
        // dnsmasq drops root; let it reach its lease file.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let lease_file = dir.path().join("dnsmasq.leases");
        fs::write(&lease_file, "")?;
        let lease_secs = opts.lease_time.map_or(3600, |d| d.as_secs().max(120));
        let list = |v: &[Ipv4Addr]| {
            v.iter()
                .map(Ipv4Addr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--log-facility=-",
            "--log-dhcp",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--port=0",
            "--bind-interfaces",
            "--no-ping",
            "--dhcp-authoritative",
        ])
        .arg(format!("--interface={iface}"))
        .arg(format!("--dhcp-range={first},{last},{lease_secs}"))
        .arg(format!("--dhcp-leasefile={}", lease_file.display()));
        if let Some(r) = opts.router {
            cmd.arg(format!("--dhcp-option=option:router,{r}"));
        }
        if !opts.dns_servers.is_empty() {
            cmd.arg(format!(
                "--dhcp-option=option:dns-server,{}",
                list(&opts.dns_servers)
            ));
        }
        if let Some(d) = &opts.domain {
            check_word("domain", d)?;
            cmd.arg(format!("--dhcp-option=option:domain-name,{d}"));
        }
        if !opts.ntp_servers.is_empty() {
            cmd.arg(format!(
                "--dhcp-option=option:ntp-server,{}",
                list(&opts.ntp_servers)
            ));
        }
        cmd.args(&opts.extra_args);
        let peer = Peer::spawn_in("dnsmasq-dhcp", cmd, dir.path())?;
        peer.wait_for_log("DHCP, sockets bound exclusively", Duration::from_secs(5))?;
        Ok(DnsmasqDhcp {
            peer,
            lease_file,
            _dir: dir,
        })
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn lease_file(&self) -> &Path {
        &self.lease_file
    }

    /// The leases in dnsmasq's lease file now.
    pub fn leases(&self) -> io::Result<Vec<DnsmasqLease>> {
        let text = fs::read_to_string(&self.lease_file)?;
        let star = |s: &str| (s != "*").then(|| s.to_owned());
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("duid "))
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 5 {
                    return Err(invalid(format!("dnsmasq lease line {line:?}")));
                }
                Ok(DnsmasqLease {
                    expires: parse_one("expiry", f[0])?,
                    mac: f[1].to_owned(),
                    address: parse_one("address", f[2])?,
                    hostname: star(f[3]),
                    client_id: star(f[4]),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn events_file_parses_blocks_and_continuations() {
        let text = "=== PREINIT\ninterface=ox1b\nreason=PREINIT\n=== end\n\
                    === bound\nip=10.0.0.5\nmulti=a\nb\n=== end\n=== cut\nx=1\n=== next\n";
        let ev = parse_events(text);
        assert_eq!(
            ev.len(),
            3,
            "the block still being written is not an event yet"
        );
        assert_eq!(ev[0].name, "PREINIT");
        assert_eq!(ev[1].vars["multi"], "a\nb");
        assert_eq!(
            ev[2].name, "cut",
            "a block cut short by the next one still counts"
        );
        assert_eq!(ev[2].vars["x"], "1");
    }

    #[test]
    fn leases_read_from_each_clients_variables() {
        let dhclient = ClientEvent {
            name: "BOUND".into(),
            vars: vars(&[
                ("new_ip_address", "10.1.0.5"),
                ("new_subnet_mask", "255.255.255.0"),
                ("new_routers", "10.1.0.1"),
                ("new_domain_name_servers", "10.1.0.2 10.1.0.3"),
                ("new_domain_name", "office.test"),
                ("new_ntp_servers", "10.1.0.4"),
                ("new_dhcp_lease_time", "3600"),
                ("new_dhcp_server_identifier", "10.1.0.1"),
            ]),
        };
        let udhcpc = ClientEvent {
            name: "bound".into(),
            vars: vars(&[
                ("ip", "10.1.0.5"),
                ("subnet", "255.255.255.0"),
                ("router", "10.1.0.1"),
                ("dns", "10.1.0.2 10.1.0.3"),
                ("domain", "office.test"),
                ("ntpsrv", "10.1.0.4"),
                ("lease", "3600"),
                ("serverid", "10.1.0.1"),
            ]),
        };
        let a = ClientLease::from_event(ClientKind::Dhclient, &dhclient).unwrap_or_else(|e| {
            panic!("{e}");
        });
        let b = ClientLease::from_event(ClientKind::Udhcpc, &udhcpc).unwrap_or_else(|e| {
            panic!("{e}");
        });
        for l in [&a, &b] {
            assert_eq!(l.address, Ipv4Addr::new(10, 1, 0, 5));
            assert_eq!(l.prefix_len(), Some(24));
            assert_eq!(l.routers, [Ipv4Addr::new(10, 1, 0, 1)]);
            assert_eq!(
                l.dns_servers,
                [Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3)]
            );
            assert_eq!(l.domain.as_deref(), Some("office.test"));
            assert_eq!(l.ntp_servers, [Ipv4Addr::new(10, 1, 0, 4)]);
            assert_eq!(l.lease_time, Some(Duration::from_secs(3600)));
            assert_eq!(l.server_id, Some(Ipv4Addr::new(10, 1, 0, 1)));
        }
        let empty = ClientEvent {
            name: "BOUND".into(),
            vars: BTreeMap::new(),
        };
        assert!(ClientLease::from_event(ClientKind::Dhcpcd, &empty).is_err());
    }

    #[test]
    fn names_with_shell_or_config_syntax_are_refused() {
        assert!(check_word("hostname", "pc-1.office").is_ok());
        for bad in ["", "a b", "a\"b", "a;b", "a\nb"] {
            assert!(check_word("hostname", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hook_scripts_record_before_configuring() {
        for kind in ClientKind::ALL {
            let s = hook_script(kind);
            assert!(s.starts_with("#!/bin/sh\n"));
            assert!(s.contains(">>\"$dir/events\""));
            assert!(!s.contains("resolv.conf") || s.contains("never writes /etc/resolv.conf"));
        }
    }
}
