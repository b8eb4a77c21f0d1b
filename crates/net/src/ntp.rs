//! The LAN's time server: NTPv4 server mode (RFC 5905, section 9; SNTP clients per RFC
//! 4330) answering from the system clock. DHCP hands our LAN address out as the NTP server.
//!
//! officebox does not discipline the clock itself, so it answers as a local clock source:
//! stratum 10, reference "LOCL" — the convention of NTP servers that serve an undisciplined
//! local clock, which clients accept while preferring any better source.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use officebox_config::Config;
use officebox_config::derive::bind_addresses;
use officebox_config::model::Service;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Seconds from the NTP era (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const PACKET_LEN: usize = 48;
const STRATUM: u8 = 10;

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Drop {
    #[error("shorter than an NTP header")]
    TooShort,
    #[error("NTP version {0} is not supported")]
    Version(u8),
    #[error("mode {0} is not a client request")]
    NotAClient(u8),
}

/// An NTP timestamp: seconds since 1900 and a binary fraction.
fn ntp_timestamp(t: SystemTime) -> [u8; 8] {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = (since.as_secs() + NTP_UNIX_OFFSET) as u32;
    let frac = ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&secs.to_be_bytes());
    out[4..].copy_from_slice(&frac.to_be_bytes());
    out
}

/// Builds the reply to one client request received at `received`; the transmit time is
/// taken when the reply is built.
pub fn answer(request: &[u8], received: SystemTime) -> Result<[u8; PACKET_LEN], Drop> {
    let Some(&first) = request.first() else {
        return Err(Drop::TooShort);
    };
    if request.len() < PACKET_LEN {
        return Err(Drop::TooShort);
    }
    let version = (first >> 3) & 0x7;
    let mode = first & 0x7;
    if !(1..=4).contains(&version) {
        return Err(Drop::Version(version));
    }
    if mode != 3 {
        return Err(Drop::NotAClient(mode));
    }
    let mut reply = [0u8; PACKET_LEN];
    // LI = 0 (no warning), the client's version, mode 4 (server).
    reply[0] = (version << 3) | 4;
    reply[1] = STRATUM;
    reply[2] = request[2]; // poll: echo the client's
    reply[3] = (-20i8) as u8; // precision: about a microsecond
    // Root delay 0; root dispersion about 10 ms (in 16.16 seconds).
    reply[8..12].copy_from_slice(&(655u32).to_be_bytes());
    reply[12..16].copy_from_slice(b"LOCL");
    let now = SystemTime::now();
    reply[16..24].copy_from_slice(&ntp_timestamp(now)); // reference time
    reply[24..32].copy_from_slice(&request[40..48]); // origin = client's transmit time
    reply[32..40].copy_from_slice(&ntp_timestamp(received));
    reply[40..48].copy_from_slice(&ntp_timestamp(SystemTime::now()));
    Ok(reply)
}

/// Where the server listens for a config.
fn endpoints(config: &Config) -> Vec<SocketAddr> {
    if !config.ntp.enabled {
        return Vec::new();
    }
    bind_addresses(config, Service::Ntp)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, config.ntp.port))
        .collect()
}

/// Runs the time server until `shutdown` is cancelled, rebinding when the config moves it.
pub async fn serve(
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    loop {
        let wanted = endpoints(&config.borrow_and_update());
        let mut sockets = Vec::new();
        for addr in &wanted {
            let socket = officebox_sockets::udp::bind(*addr)
                .await
                .and_then(UdpSocket::from_std)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("ntp: cannot listen on udp {addr}: {e}"))
                })?;
            info!(message = "ntp: serving", %addr);
            sockets.push(Arc::new(socket));
        }
        let tasks = CancellationToken::new();
        let mut handles = Vec::new();
        for socket in sockets {
            handles.push(tokio::spawn(serve_socket(socket, tasks.clone())));
        }
        let rebind = officebox_sockets::wait_for_new_endpoints(
            &mut config,
            &shutdown,
            &wanted,
            |c: &Arc<Config>| endpoints(c),
        )
        .await;
        if rebind {
            info!("ntp: listening addresses changed, rebinding");
        }
        tasks.cancel();
        for h in handles {
            let _ = h.await;
        }
        if !rebind {
            return Ok(());
        }
    }
}

async fn serve_socket(socket: Arc<UdpSocket>, stop: CancellationToken) {
    use officebox_sockets::udp;
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut buf = [0u8; 1024];
    let mut cmsg = udp::cmsg_buffer();
    loop {
        let got = tokio::select! {
            () = stop.cancelled() => return,
            r = socket.async_io(tokio::io::Interest::READABLE, || udp::recv(fd, &mut buf, &mut cmsg)) => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "ntp: receive failed", %error);
                    continue;
                }
            },
        };
        let received = SystemTime::now();
        let peer = got.from;
        match answer(&buf[..got.len], received) {
            Ok(reply) => {
                // From the address the client asked, whichever of the box's it was.
                if let Err(error) = udp::send(fd, &reply, peer, got.to) {
                    debug!(message = "ntp: reply not sent", %peer, %error);
                }
            }
            Err(why) => debug!(message = "ntp: request dropped", %peer, %why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(first: u8) -> [u8; 48] {
        let mut r = [0u8; 48];
        r[0] = first;
        r[2] = 6;
        r[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        r
    }

    #[test]
    fn answers_a_client() {
        let received = SystemTime::now();
        let reply = answer(&request(0x23), received).unwrap(); // v4, mode 3
        assert_eq!(reply[0], 0x24); // v4, mode 4, LI 0
        assert_eq!(reply[1], STRATUM);
        assert_eq!(reply[2], 6);
        assert_eq!(&reply[12..16], b"LOCL");
        assert_eq!(&reply[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&reply[32..40], &ntp_timestamp(received));
        let secs = u32::from_be_bytes([reply[40], reply[41], reply[42], reply[43]]);
        let unix = u64::from(secs) - NTP_UNIX_OFFSET;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(unix.abs_diff(now) <= 1);
    }

    #[test]
    fn drops_what_is_not_a_request() {
        assert_eq!(answer(&[], SystemTime::now()), Err(Drop::TooShort));
        assert_eq!(answer(&[0x23; 20], SystemTime::now()), Err(Drop::TooShort));
        assert_eq!(
            answer(&request(0x24), SystemTime::now()),
            Err(Drop::NotAClient(4))
        );
        assert_eq!(
            answer(&request(0x03), SystemTime::now()),
            Err(Drop::Version(0))
        );
        // SNTPv3 clients are answered in their own version.
        assert_eq!(answer(&request(0x1b), SystemTime::now()).unwrap()[0], 0x1c);
    }
}
