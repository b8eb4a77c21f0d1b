//! Peer programs started by a test, stopped and reaped whatever happens.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{panicking, sleep};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cmd::{describe, sanitize, send_signal};

const POLL: Duration = Duration::from_millis(20);
const TAIL_LINES: usize = 40;

/// A running peer program.
///
/// Its stdout and stderr both go to one log file, `{name}.log`, in a private
/// temporary directory (or a directory you pass to [`Peer::spawn_in`]); stdin is
/// `/dev/null`. It runs in its own process group. Dropping a `Peer` that has not been
/// reaped SIGKILLs that group (the program and any children it left in it) and reaps
/// it; if the test is panicking, the log's tail is printed to stderr first.
///
/// Only the process the harness spawned, or its process group while the program is
/// not yet reaped (so its pid cannot have been reused), is ever signalled.
#[derive(Debug)]
pub struct Peer {
    name: String,
    pid: u32,
    inner: Mutex<Inner>,
    log_path: PathBuf,
    _dir: Option<TempDir>,
}

#[derive(Debug)]
struct Inner {
    child: Child,
    /// Set once the child has been reaped; after that its pid may belong to someone
    /// else and nothing may be signalled any more.
    status: Option<ExitStatus>,
}

impl Inner {
    /// SIGKILLs the whole process group and reaps the program. Safe because the
    /// program is not reaped yet, so its pid (the group id) is still ours.
    fn kill_group_and_reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pid = self.child.id();
        if send_signal("KILL", &format!("-{pid}")).is_err() {
            // No group (the program left it with setsid): kill the program itself.
            self.child.kill()?;
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }
}

/// Whether our unreaped child `pid` has exited (is a zombie), without reaping it.
pub(crate) fn exited_unreaped(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Peer {
    /// Starts `cmd` with its output logged into a fresh temporary directory that is
    /// removed when the `Peer` drops.
    pub fn spawn(name: &str, cmd: Command) -> io::Result<Peer> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("obx-peer-{}-", sanitize(name)))
            .tempdir()?;
        let mut peer = Peer::spawn_in(name, cmd, dir.path())?;
        peer._dir = Some(dir);
        Ok(peer)
    }

    /// Starts `cmd` with its output logged to `dir/{name}.log` (truncated first);
    /// the directory is left in place.
    pub fn spawn_in(name: &str, mut cmd: Command, dir: &Path) -> io::Result<Peer> {
        let log_path = dir.join(format!("{}.log", sanitize(name)));
        let log = File::create(&log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("starting peer {name} (`{}`): {e}", describe(&cmd)),
            )
        })?;
        Ok(Peer {
            name: name.to_owned(),
            pid: child.id(),
            inner: Mutex::new(Inner {
                child,
                status: None,
            }),
            log_path,
            _dir: None,
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program's pid (with `Netns::command`, `ip netns exec` execs the program,
    /// so this is the program itself).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the combined stdout+stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log so far (invalid UTF-8 replaced; empty if it cannot be read).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Polls the log until it contains `needle`. Fails with `TimedOut` after
    /// `timeout`, or at once if the program exits first; either error quotes the
    /// log's tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> io::Result<()> {
        let start = Instant::now();
        loop {
            // Check for exit before reading, so output written just before exiting
            // is seen.
            let exited = {
                let inner = self.inner();
                inner.status.is_some() || exited_unreaped(self.pid)
            };
            let log = self.log();
            if log.contains(needle) {
                return Ok(());
            }
            let what = if exited {
                let status = self.try_wait()?;
                let status = status.map_or("unknown status".to_owned(), |s| s.to_string());
                Some((
                    io::ErrorKind::Other,
                    format!("exited ({status}) before logging {needle:?}"),
                ))
            } else if start.elapsed() >= timeout {
                Some((
                    io::ErrorKind::TimedOut,
                    format!("did not log {needle:?} within {timeout:?}"),
                ))
            } else {
                None
            };
            if let Some((kind, what)) = what {
                return Err(io::Error::new(
                    kind,
                    format!(
                        "peer {} (pid {}) {what}; last lines of {}:\n{}",
                        self.name,
                        self.pid,
                        self.log_path.display(),
                        tail(&log, TAIL_LINES)
                    ),
                ));
            }
            sleep(POLL);
        }
    }

    /// Sends signal `sig` (`TERM`, `HUP`, `USR1`, `9`, ...) to the program with
    /// `kill -s SIG PID`. Refuses once the program has been reaped.
    pub fn signal(&self, sig: &str) -> io::Result<()> {
        // Hold the lock so nobody reaps the child between the check and the kill:
        // an exited but unreaped child keeps its pid.
        let mut inner = self.inner();
        if let Some(status) = inner.try_wait()? {
            return Err(io::Error::other(format!(
                "peer {} (pid {}) already exited ({status}); not sending SIG{sig}",
                self.name, self.pid
            )));
        }
        send_signal(sig, &self.pid.to_string())
    }

    /// Stops the program (SIGSTOP) and returns once every one of its threads has stopped:
    /// `kill` returns when the signal is sent, and a thread busy on another CPU may go on
    /// for a moment (and take a datagram) before it does.
    pub fn freeze(&self) -> io::Result<()> {
        self.signal("STOP")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(self.pid) {
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "peer {} (pid {}) did not stop within 5 s of SIGSTOP",
                    self.name, self.pid
                )));
            }
            sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Lets a program stopped by [`Peer::freeze`] go on (SIGCONT).
    pub fn thaw(&self) -> io::Result<()> {
        self.signal("CONT")
    }

    /// Sends SIGTERM, waits up to `grace` for the program to exit, then SIGKILLs its
    /// process group (also any children it left behind) and reaps it.
    pub fn stop(self, grace: Duration) -> io::Result<ExitStatus> {
        let mut inner = self.inner();
        if inner.status.is_none() && !exited_unreaped(self.pid) {
            send_signal("TERM", &self.pid.to_string())?;
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !exited_unreaped(self.pid) {
                sleep(POLL);
            }
        }
        inner.kill_group_and_reap()
    }

    /// SIGKILLs the program's process group and reaps it; returns its exit status.
    pub fn kill9(&self) -> io::Result<ExitStatus> {
        self.inner().kill_group_and_reap()
    }

    /// The exit status if the program has exited (reaping it), else `None`. After
    /// this returns `Some`, children the program left behind are no longer killed
    /// on drop (its namespace's teardown still kills them).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.inner().try_wait()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if panicking() {
            eprintln!(
                "--- testkit: peer {} (pid {}), last lines of {} ---\n{}\n---",
                self.name,
                self.pid,
                self.log_path.display(),
                self.log_tail(TAIL_LINES)
            );
        }
        if let Err(e) = self.inner().kill_group_and_reap() {
            eprintln!(
                "testkit: stopping peer {} (pid {}): {e}",
                self.name, self.pid
            );
        }
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in /proc): false when
/// /proc cannot say.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // "pid (comm) S ...": the state follows the last ')' (a name may hold one).
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state != Some("T") {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
