//! The box's TLS certificate: made on first boot (rcgen, self-signed for the box's names)
//! and kept in `data_dir/tls/` (key readable by root only). Mail, POP3 and the admin pages
//! present the same one.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use officebox_config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Services start together: one makes the certificate, the others then load it (two
/// making it at once could leave one's key beside the other's certificate).
static MAKING: Mutex<()> = Mutex::new(());

/// A TLS acceptor from `data_dir/tls/{cert,key}.pem`, made first if missing.
pub fn acceptor(config: &Config) -> io::Result<TlsAcceptor> {
    let dir = config.data_dir.join("tls");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    {
        let _one = MAKING.lock().unwrap_or_else(PoisonError::into_inner);
        if !cert_path.exists() || !key_path.exists() {
            make_certificate(config, &dir)?;
        }
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn make_certificate(config: &Config, dir: &Path) -> io::Result<()> {
    let n = &config.network;
    let names: Vec<String> = [
        n.hostname.as_str(),
        "smtp",
        "pop",
        "mail",
        "www",
        "corp",
        "admin",
    ]
    .iter()
    .map(|h| format!("{h}.{}", n.domain))
    .chain(std::iter::once(n.domain.clone()))
    .collect();
    let cert = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    officebox_store::write_atomic(
        &dir.join("key.pem"),
        cert.signing_key.serialize_pem().as_bytes(),
        0o600,
    )
    .map_err(io::Error::other)?;
    officebox_store::write_atomic(&dir.join("cert.pem"), cert.cert.pem().as_bytes(), 0o644)
        .map_err(io::Error::other)?;
    tracing::info!(message = "tls: made a self-signed certificate for this box", dir = %dir.display());
    Ok(())
}
