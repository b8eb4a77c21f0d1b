//! A TUN device: the kernel hands the box each IP packet routed to the interface, and
//! takes each packet the box writes as one that arrived on it. The WireGuard tunnels use
//! one (`IFF_TUN | IFF_NO_PI`: bare IP packets, no extra header).
//!
//! Opening it is one ioctl (`TUNSETIFF`) on `/dev/net/tun`; the interface lives as long
//! as the descriptor (it goes away with the process, routes and addresses with it).

#![allow(unsafe_code)] // the one ioctl that names the interface

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An open TUN interface.
#[derive(Debug)]
pub struct Tun {
    fd: AsyncFd<File>,
    name: String,
}

impl Tun {
    /// Creates (or attaches to) the TUN interface `name` in this network namespace. The
    /// interface is down and has no address: the caller sets those by netlink.
    pub fn open(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` cannot name an interface"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: ifreq is plain old data; all zeroes is a valid value of it.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads (and may write back) one ifreq, which lives until the
        // call returns; the descriptor is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create the TUN interface {name}: {e}"),
            ));
        }
        // SAFETY: the AsyncFd owns the file, so the descriptor stays open (and is the
        // same one) for as long as it is registered.
        let fd = unsafe {
            AsyncFd::register_with_interest(file, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(Tun {
            fd,
            name: name.to_string(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next packet routed to the interface, into `buf`; its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|f| (&mut f.get_ref()).read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// The next packet if one is waiting now, else `WouldBlock` (a burst is read without
    /// waiting for readiness each time).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut self.fd.get_ref()).read(buf)
    }

    /// Hands `packet` to the kernel as arrived on the interface.
    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            let mut ready = self.fd.writable().await?;
            match ready.try_io(|f| (&mut f.get_ref()).write(packet)) {
                Ok(r) => return r.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}
