//! Readiness polling and free loopback ports.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::sleep;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` every 20 ms until it returns true (→ `true`) or `timeout` passes
/// (→ `false`, after one last try). Use as `assert!(wait_until(..), "what we waited for")`.
#[must_use = "a timed-out wait must fail the test"]
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
}

/// Waits until a TCP connection to `addr` succeeds (from the test's own namespace,
/// so use it for loopback listeners). The error names the address and the last
/// connection error.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = Duration::from_millis(250)
            .min(left)
            .max(Duration::from_millis(10));
        let err = match TcpStream::connect_timeout(&addr, attempt) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "nothing accepted TCP connections on {addr} within {timeout:?} (last error: {err})"
                ),
            ));
        }
        sleep(POLL);
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
pub fn free_tcp_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
pub fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_reports_success_and_timeout() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n >= 3
        }));
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(100), || false));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn wait_for_tcp_sees_listener_and_times_out_without_one() -> io::Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        wait_for_tcp(addr, Duration::from_secs(5))?;
        drop(listener);

        let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
        let err = wait_for_tcp(closed, Duration::from_millis(200))
            .err()
            .ok_or_else(|| io::Error::other("connected to a closed port"))?;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains(&closed.to_string()), "{err}");
        Ok(())
    }

    #[test]
    fn free_ports_are_bindable() -> io::Result<()> {
        let tcp = free_tcp_port()?;
        let udp = free_udp_port()?;
        assert!(tcp != 0 && udp != 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, tcp))?;
        UdpSocket::bind((Ipv4Addr::LOCALHOST, udp))?;
        Ok(())
    }
}
