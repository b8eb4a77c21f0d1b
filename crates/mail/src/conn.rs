//! A client connection as the line protocols (SMTP, POP3) see it: buffered lines with a
//! bound on their length and an idle timeout, replies gathered and sent when the client's
//! input runs dry (so pipelined commands get their answers in one write), and the switch
//! to TLS in the middle of a session.

use std::io;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Any byte stream: TCP, then TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// How much output may wait while pipelined input is read first.
const PIPELINED_OUTPUT: usize = 256 * 1024;

pub(crate) struct Conn {
    stream: Box<dyn Io>,
    /// Received and not yet consumed.
    pub(crate) buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(stream: impl Io + 'static) -> Conn {
        Conn {
            stream: Box::new(stream),
            buf: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The next line including its LF, or `Ok(None)` at end of stream. A line longer than
    /// `max` is an error of kind InvalidData; a client silent for `wait`, TimedOut.
    pub(crate) async fn line(&mut self, max: usize, wait: Duration) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(pos + 1);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.buf.len() > max {
                self.buf.clear();
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            // Nothing complete left: answers for pipelined commands go out now.
            self.flush().await?;
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(wait, self.stream.read(&mut chunk))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client idle"))??;
            if n == 0 {
                return Ok(None);
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Sends what is queued, then waits up to `wait` for more bytes from the client and
    /// adds them to `buf`; `Ok(false)` at end of stream, TimedOut when it stays silent.
    pub(crate) async fn fill(&mut self, wait: Duration) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        // Pipelined commands already waiting are read before the answers so far are
        // written: their answers then go out together, in one write, not one each.
        if !self.out.is_empty()
            && self.out.len() < PIPELINED_OUTPUT
            && let Ok(read) =
                tokio::time::timeout(Duration::ZERO, self.stream.read(&mut chunk)).await
        {
            let n = read?;
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
            return Ok(n > 0);
        }
        self.flush().await?;
        let n = tokio::time::timeout(wait, self.stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client idle"))??;
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    /// Queues one reply line (CRLF added).
    pub(crate) fn say(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Queues raw bytes.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Continues over TLS (implicit TLS, STARTTLS, STLS), within a time bound.
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::empty()));
        let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(plain))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Box::new(tls);
        Ok(())
    }

    /// Continues over TLS as the client (STARTTLS to another server, STLS to the ISP).
    pub(crate) async fn start_tls_client(
        &mut self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::empty()));
        let tls = tokio::time::timeout(HANDSHAKE, connector.connect(name, plain))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Box::new(tls);
        Ok(())
    }
}
