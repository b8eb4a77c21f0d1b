//! Telling systemd how officebox is doing (sd_notify(3), for a unit of `Type=notify`):
//! `READY=1` once the services are started, `RELOADING=1` and `READY=1` around a reload,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` from the supervisor's own loop every half
//! of `WatchdogSec`, so a supervisor that stops turning is restarted by systemd. Outside
//! systemd (`NOTIFY_SOCKET` unset) all of it is nothing.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket `NOTIFY_SOCKET` names
//! (a leading `@`: Linux's abstract namespace); no library needed.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::debug;

/// systemd's notification socket, when officebox runs under it.
#[derive(Debug)]
pub struct Systemd {
    socket: UnixDatagram,
    to: SocketAddr,
    /// How often to say `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the unit has a
    /// watchdog for this process.
    pub watchdog: Option<Duration>,
}

impl Systemd {
    /// From the environment systemd gives a service; `None` outside systemd.
    pub fn from_env() -> Option<Systemd> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let to = address(&name)?;
        let socket = UnixDatagram::unbound().ok()?;
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Some(Systemd {
            socket,
            to,
            watchdog,
        })
    }

    /// Sends `state` (lines of `KEY=VALUE`). A failure is only logged: systemd's view of
    /// the box is never a reason to stop serving.
    pub fn tell(&self, state: &str) {
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            debug!(message = "systemd: a notification was not sent", %error);
        }
    }

    /// `RELOADING=1` with the time it began, as systemd wants it.
    pub fn reloading(&self) {
        self.tell(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }
}

/// The socket `NOTIFY_SOCKET` names: a path, or `@name` in the abstract namespace.
fn address(name: &OsStr) -> Option<SocketAddr> {
    match name.as_bytes().strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name).ok(),
        None => SocketAddr::from_pathname(name).ok(),
    }
}

/// CLOCK_MONOTONIC in microseconds (the clock systemd compares `MONOTONIC_USEC` with).
fn monotonic_usec() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the valid pointer it is given.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut t) } == 0;
    if !ok {
        return 0;
    }
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_and_an_abstract_name_are_both_addresses() {
        let path = address(OsStr::new("/run/systemd/notify")).unwrap_or_else(|| panic!("path"));
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = address(OsStr::new("@officebox/notify")).unwrap_or_else(|| panic!("abstract"));
        assert_eq!(abs.as_abstract_name(), Some(&b"officebox/notify"[..]));
        assert!(monotonic_usec() > 0);
    }
}
