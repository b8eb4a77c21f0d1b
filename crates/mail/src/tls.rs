//! TLS for SMTP and POP3: the box's certificate (made and kept by officebox-secrets), the
//! client side towards other servers, and user authentication against the users' argon2
//! hashes.

use std::io;
use std::sync::Arc;

use base64::Engine as _;
use officebox_config::Config;
use officebox_secrets::login::Checked;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The server's TLS acceptor: the box's certificate (see `officebox_secrets::tls`).
pub fn acceptor(config: &Config) -> io::Result<TlsAcceptor> {
    officebox_secrets::tls::acceptor(config)
}

/// TLS to other mail servers over STARTTLS: encrypted whenever they offer it, whatever
/// their certificate says (opportunistic TLS, RFC 7435; most servers on port 25 have
/// certificates no one could check, and refusing them would only mean sending in clear).
pub fn opportunistic_connector() -> io::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TLS that checks the server's certificate (see `officebox_secrets::tls`).
pub use officebox_secrets::tls::{server_name, verifying_connector};

/// Accepts any certificate, still checking the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a login came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The password is right: the login, lowercased.
    Ok(String),
    Wrong,
    /// The password checks are all busy; nothing was decided.
    Busy,
}

/// Checks a login (`alice` or `alice@domain`) and password, in turn with the other
/// password checks. A user that does not exist takes as long as a wrong password.
pub async fn authenticate(config: &Config, user: &str, password: &str) -> Auth {
    let login = user.split_once('@').map_or(user, |(l, d)| {
        if d.eq_ignore_ascii_case(&config.network.domain) {
            l
        } else {
            ""
        }
    });
    let login = login.to_ascii_lowercase();
    let hash = config
        .users
        .iter()
        .find(|u| u.login == login)
        .map(|u| u.password_hash.clone());
    match officebox_secrets::login::check(hash, password.to_string()).await {
        Checked::Right => Auth::Ok(login),
        Checked::Wrong => Auth::Wrong,
        Checked::Busy => Auth::Busy,
    }
}

/// SASL's base64 (RFC 4648 section 4, RFC 4954) as clients send it: padding may be left
/// out and stray low bits are ignored, as officebox always accepted (and as dovecot and
/// postfix do); anything outside the alphabet is refused.
const SASL_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes a SASL response: `None` for anything that is not base64. Surrounding white
/// space is ignored.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    SASL_BASE64.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn sasl_base64_as_clients_send_it() {
        for s in ["", "a", "ab", "abc", "\0alice\0secret", "Username:"] {
            assert_eq!(
                base64_decode(&STANDARD.encode(s.as_bytes())).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(
            base64_decode(" VXNlcm5hbWU6\r\n").as_deref(),
            Some(&b"Username:"[..])
        );
        assert_eq!(
            base64_decode("AGFsaWNlAHNlY3JldA==").as_deref(),
            Some(&b"\0alice\0secret"[..])
        );
        assert!(base64_decode("not base64!").is_none());
        // Padding may be left out, and stray low bits do not refuse a login.
        assert_eq!(
            base64_decode("AGFsaWNlAHNlY3JldA").as_deref(),
            Some(&b"\0alice\0secret"[..])
        );
        assert_eq!(base64_decode("YR==").as_deref(), Some(&b"a"[..]));
        assert!(base64_decode("YQ=a").is_none());
    }
}
