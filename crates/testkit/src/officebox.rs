//! Running the real `officebox` binary in a test: a private directory with its config and
//! state, the process as a [`Peer`], and reloads that wait for officebox's verdict.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use toml_edit::{DocumentMut, Item, Value};

use crate::{Peer, TempDir, scratch_dir, wait_until};

/// The demo config shipped in `examples/demo.toml`.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/demo.toml");

/// How long officebox may take to start or to reload.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A config to start officebox with: the demo's, edited.
#[derive(Debug, Clone)]
pub struct TestConfig {
    doc: DocumentMut,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::demo()
    }
}

impl TestConfig {
    /// The demo config, unchanged (fixed ports: use [`TestConfig::free_ports`] in tests).
    pub fn demo() -> Self {
        let doc = DEMO_CONFIG
            .parse::<DocumentMut>()
            .unwrap_or_else(|e| panic!("examples/demo.toml is not TOML: {e}"));
        TestConfig { doc }
    }

    /// Sets a dotted path (`"ntp.port"`, `"dns.use_upstream"`) to `value`, creating tables
    /// on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let mut parts: Vec<&str> = path.split('.').collect();
        let Some(last) = parts.pop() else { return self };
        let mut table = self.doc.as_table_mut();
        for part in parts {
            let item = table
                .entry(part)
                .or_insert_with(|| Item::Table(toml_edit::Table::new()));
            table = item
                .as_table_mut()
                .unwrap_or_else(|| panic!("{path}: {part} is not a table"));
        }
        table.insert(last, Item::Value(value.into()));
        self
    }

    /// Sets `key` of the `[[users]]` table whose login is `login`.
    pub fn set_user(mut self, login: &str, key: &str, value: impl Into<Value>) -> Self {
        let user = self
            .doc
            .get_mut("users")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|users| {
                users
                    .iter_mut()
                    .find(|u| u.get("login").and_then(Item::as_str) == Some(login))
            })
            .unwrap_or_else(|| panic!("no [[users]] with login {login}"));
        user.insert(key, Item::Value(value.into()));
        self
    }

    /// Removes a dotted path's setting (absent tables are fine).
    pub fn remove(mut self, path: &str) -> Self {
        let mut parts: Vec<&str> = path.split('.').collect();
        let Some(last) = parts.pop() else { return self };
        let mut table = self.doc.as_table_mut();
        for part in parts {
            match table.get_mut(part).and_then(Item::as_table_mut) {
                Some(t) => table = t,
                None => return self,
            }
        }
        table.remove(last);
        self
    }

    /// Appends TOML text (for `[[...]]` entries that [`TestConfig::set`] cannot add).
    pub fn append(self, toml: &str) -> Self {
        let text = format!("{}\n{toml}\n", self.doc);
        let doc = text
            .parse::<DocumentMut>()
            .unwrap_or_else(|e| panic!("appended text makes the test config invalid TOML: {e}"));
        TestConfig { doc }
    }

    /// Moves every listening port to a free one, so tests can run side by side.
    pub fn free_ports(self) -> Self {
        // Every socket stays open until all ports are chosen, so no port comes twice (DNS
        // and SIP need the same number free for both UDP and TCP).
        let mut held: Vec<(std::net::UdpSocket, std::net::TcpListener)> = Vec::new();
        let mut next = || -> i64 {
            loop {
                let udp = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                    .unwrap_or_else(|e| panic!("no free port: {e}"));
                let port = udp.local_addr().map(|a| a.port()).unwrap_or(0);
                if let Ok(tcp) = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
                {
                    held.push((udp, tcp));
                    return i64::from(port);
                }
            }
        };
        let mut c = self;
        for key in [
            "dns.port",
            "mail.smtp_port",
            "mail.submission_port",
            "mail.smtps_port",
            "mail.pop3_port",
            "mail.pop3s_port",
            "mail.imap_port",
            "mail.imaps_port",
            "phone.sip_port",
            "phone.provisioning_port",
            "phone.provisioning_tls_port",
            "web.admin_port",
            "web.site_port",
            "ntp.port",
        ] {
            c = c.set(key, next());
        }
        c
    }

    /// An integer setting (panics if absent: tests ask for what they set).
    pub fn int(&self, path: &str) -> i64 {
        let mut item = self.doc.as_item();
        for part in path.split('.') {
            item = &item[part];
        }
        item.as_integer()
            .unwrap_or_else(|| panic!("{path} is not an integer in the test config"))
    }

    /// The config text.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }
}

/// A running officebox with its own directory (config file and `demo-data/` state).
#[derive(Debug)]
pub struct Officebox {
    peer: Peer,
    config_path: PathBuf,
    // Last: the directory goes after the process is stopped.
    dir: TempDir,
}

impl Officebox {
    /// Writes `config` into a fresh directory and starts `bin run --config` there; returns
    /// once officebox logs that it runs.
    pub fn start(bin: &Path, config: &str) -> io::Result<Officebox> {
        let dir = scratch_dir("officebox")?;
        Self::start_in(bin, config, dir)
    }

    /// Like [`Officebox::start`], with these environment variables set for officebox
    /// (systemd's `NOTIFY_SOCKET`, say).
    pub fn start_with_env(bin: &Path, config: &str, env: &[(&str, &str)]) -> io::Result<Officebox> {
        let dir = scratch_dir("officebox")?;
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().copied());
        Self::launch(cmd, config, dir)
    }

    /// Like [`Officebox::start`], in a directory the caller made (for restarts on the
    /// same state).
    pub fn start_in(bin: &Path, config: &str, dir: TempDir) -> io::Result<Officebox> {
        Self::launch(Command::new(bin), config, dir)
    }

    /// Like [`Officebox::start`], inside the network namespace `ns` (for tests that need
    /// LAN and WAN clients with their own addresses).
    pub fn start_in_netns(bin: &Path, config: &str, ns: &crate::Netns) -> io::Result<Officebox> {
        let dir = scratch_dir("officebox")?;
        Self::launch(ns.command(bin), config, dir)
    }

    /// Like [`Officebox::start_in_netns`], in a directory the caller made (a restart on the
    /// same state, e.g. after [`Officebox::kill9`]).
    pub fn restart_in_netns(
        bin: &Path,
        config: &str,
        ns: &crate::Netns,
        dir: TempDir,
    ) -> io::Result<Officebox> {
        Self::launch(ns.command(bin), config, dir)
    }

    fn launch(mut cmd: Command, config: &str, dir: TempDir) -> io::Result<Officebox> {
        let config_path = dir.path().join("officebox.toml");
        std::fs::write(&config_path, config)?;
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("OFFICEBOX_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let peer = Peer::spawn_in("officebox", cmd, dir.path())?;
        peer.wait_for_log("officebox running", READY_TIMEOUT)?;
        Ok(Officebox {
            peer,
            config_path,
            dir,
        })
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn log(&self) -> String {
        self.peer.log()
    }

    /// Runs `bin ARGS --config FILE` (a command of the officebox binary `bin`, such as
    /// `mail queue`) on this instance's config, in its directory; its standard output.
    pub fn cli(&self, bin: &Path, args: &[&str]) -> io::Result<String> {
        let out = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Replaces the config file (officebox reads it at the next reload).
    pub fn write_config(&self, text: &str) -> io::Result<()> {
        std::fs::write(&self.config_path, text)
    }

    /// Sends SIGHUP and waits for officebox to apply or refuse the file. Returns `true`
    /// when it was applied.
    pub fn reload(&self) -> io::Result<bool> {
        let count = |needle: &str| self.log().matches(needle).count();
        let (applied, refused) = (count("reload applied"), count("reload refused"));
        self.peer.signal("HUP")?;
        let done = wait_until(READY_TIMEOUT, || {
            count("reload applied") > applied || count("reload refused") > refused
        });
        if !done {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "officebox did not finish a reload; log:\n{}",
                    self.peer.log_tail(30)
                ),
            ));
        }
        Ok(count("reload applied") > applied)
    }

    /// Stops officebox with `signal` and returns its exit status, or fails if it takes
    /// longer than `deadline`.
    pub fn stop_with(
        self,
        signal: &str,
        deadline: Duration,
    ) -> io::Result<(std::process::ExitStatus, String, TempDir)> {
        self.peer.signal(signal)?;
        let mut status = None;
        let exited = wait_until(deadline, || {
            status = self.peer.try_wait().ok().flatten();
            status.is_some()
        });
        let log = self.peer.log();
        match status {
            Some(s) if exited => Ok((s, log, self.dir)),
            _ => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "officebox did not exit within {deadline:?} of SIG{signal}; log:\n{}",
                    self.peer.log_tail(30)
                ),
            )),
        }
    }

    /// SIGKILLs officebox and hands back its directory, for a restart on the same state.
    pub fn kill9(self) -> io::Result<TempDir> {
        self.peer.kill9()?;
        Ok(self.dir)
    }
}
