//! Network namespaces that delete themselves.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd::{ip, next_id, run_checked, sanitize, send_signal};

/// Longest namespace name we make (the brief is "under 32 characters").
const MAX_NAME: usize = 31;

/// A network namespace created for one test, named `obx-{tag}-{pid}-{n}`, with `lo`
/// up. Dropping it kills every process still inside it and deletes it, which also
/// removes the interfaces in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

fn netns_name(tag: &str, pid: u32, n: u32) -> String {
    let suffix = format!("-{pid}-{n}");
    let room = MAX_NAME.saturating_sub("obx-".len() + suffix.len());
    let tag: String = sanitize(tag).chars().take(room).collect();
    format!("obx-{tag}{suffix}")
}

impl Netns {
    /// Creates a uniquely named namespace and brings its loopback up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        let pid = std::process::id();
        let mut name = netns_name(tag, pid, next_id());
        // A namespace left behind by a killed earlier run with our pid: never touch
        // it, just pick another name.
        while Path::new("/run/netns").join(&name).exists() {
            name = netns_name(tag, pid, next_id());
        }
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        run_checked(ip(Some(&ns.name)).args(["link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// Makes `nameserver` the resolver of programs run by [`Netns::command`]:
    /// `ip netns exec` mounts `/etc/netns/NAME/resolv.conf` over `/etc/resolv.conf` for
    /// them (the host's own file is untouched). The directory goes with the namespace.
    pub fn set_resolver(&self, nameserver: std::net::IpAddr) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:2 attempts:1\n"),
        )
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace
    /// (`ip netns exec NAME program`); add arguments with `.arg`/`.args`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"]).arg(&self.name).arg(program);
        cmd
    }

    /// Runs `program args...` inside the namespace to completion. A non-zero exit is
    /// an error naming the program, its arguments, the exit status and its stderr.
    pub fn run<I, S>(&self, program: &str, args: I) -> io::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked(self.command(program).args(args))
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns. Sockets
    /// made there stay in the namespace when used from any thread afterwards (how the
    /// harness talks to a peer's control port inside it).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        enter(&self.name, f)
    }

    /// `dig @server name rtype +short` from inside the namespace: the answer's records,
    /// one per line (none when nothing answered).
    pub fn dig(&self, server: &str, name: &str, rtype: &str) -> io::Result<Vec<String>> {
        let at = format!("@{server}");
        let out = self
            .command("dig")
            .args([at.as_str(), name, rtype, "+short", "+time=2", "+tries=1"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// A TCP server inside the namespace on `port` that greets each client with
    /// `hello from NAME` and logs `peer ADDRESS` for each (python3; ready when returned).
    pub fn tcp_greeter(&self, dir: &Path, name: &str, port: u16) -> io::Result<crate::Peer> {
        let script = [
            "import socket".to_string(),
            "s = socket.socket()".into(),
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)".into(),
            format!("s.bind(('0.0.0.0', {port}))"),
            "s.listen(16)".into(),
            "print('listening', flush=True)".into(),
            "while True:".into(),
            "    c, a = s.accept()".into(),
            "    print('peer', a[0], flush=True)".into(),
            format!("    c.sendall(b'hello from {name}\\n')"),
            "    c.close()".into(),
        ]
        .join("\n");
        let mut cmd = self.command("python3");
        cmd.args(["-u", "-c", &script]);
        let peer = crate::Peer::spawn_in(name, cmd, dir)?;
        peer.wait_for_log("listening", Duration::from_secs(5))?;
        Ok(peer)
    }

    /// Connects from the namespace to `addr:port`: the server's greeting, or `None` when
    /// nothing answers within two seconds.
    pub fn tcp_greeting(&self, addr: &str, port: u16) -> Option<String> {
        let script = format!(
            "import socket, sys\ns = socket.create_connection(('{addr}', {port}), timeout=2)\nsys.stdout.write(s.recv(100).decode())\n"
        );
        let out = self
            .command("python3")
            .args(["-c", &script])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Pids of the processes inside the namespace (`ip netns pids NAME`).
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let out = run_checked(Command::new("ip").args(["netns", "pids", &self.name]))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    fn kill_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = match self.pids() {
                Ok(pids) => pids,
                Err(e) => {
                    eprintln!("testkit: listing processes in {}: {e}", self.name);
                    return;
                }
            };
            if pids.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("testkit: processes {pids:?} in {} would not die", self.name);
                return;
            }
            for pid in pids {
                // It may have exited meanwhile; that is fine.
                let _ = send_signal("KILL", &pid.to_string());
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let etc = Path::new("/etc/netns").join(&self.name);
        if etc.exists()
            && let Err(e) = std::fs::remove_dir_all(&etc)
        {
            eprintln!("testkit: cannot remove {}: {e}", etc.display());
        }
        if let Err(e) = run_checked(
            Command::new("ip")
                .args(["netns", "del", &self.name])
                .stdout(Stdio::null()),
        ) {
            eprintln!("testkit: {e}");
        }
    }
}

/// [`Netns::enter`] by the namespace's name.
pub(crate) fn enter<T: Send>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let file = std::fs::File::open(Path::new("/run/netns").join(name))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a thread in the namespace panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_short_and_keep_pid_and_counter() {
        let name = netns_name("a-very-long-tag-that-goes-on-and-on", 4_194_304, 123_456);
        assert!(name.len() <= MAX_NAME, "{name}");
        assert!(name.starts_with("obx-a-very"), "{name}");
        assert!(name.ends_with("-4194304-123456"), "{name}");
        assert_eq!(netns_name("dns", 42, 0), "obx-dns-42-0");
        assert_eq!(netns_name("a b/c", 1, 2), "obx-a_b_c-1-2");
    }
}
