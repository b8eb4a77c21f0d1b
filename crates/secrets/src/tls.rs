//! The box's TLS certificate, presented by mail, POP3 and the admin pages alike.
//!
//! Self-signed for the box's names, made on first start, named after the box (CN
//! `<hostname>.<domain>`, O officebox), valid for [`VALID_DAYS`] from the day before it
//! was made (what browsers accept of any certificate). It is made anew when fewer than
//! [`RENEW_DAYS`] remain or the box's names changed. It lives in `data_dir/tls/` (the key
//! readable by root only) beside `cert.info`, a note of its names and end that spares
//! parsing X.509; a certificate without one (made by an older officebox, valid from 1975
//! to 4096) is replaced.
//!
//! Every acceptor resolves the certificate through [`BoxCertificate`], which looks once an
//! hour whether it must be renewed (or was, by another service), so a box that runs for
//! years keeps a valid certificate without a restart.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use officebox_config::Config;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a new certificate is valid.
pub const VALID_DAYS: u64 = 397;
/// A certificate with fewer days left than this is made anew.
pub const RENEW_DAYS: u64 = 30;
/// How often a running acceptor looks at its certificate.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
const DAY: u64 = 86_400;

/// Services start together: one makes the certificate, the others then load it (two
/// making it at once could leave one's key beside the other's certificate).
static MAKING: Mutex<()> = Mutex::new(());

/// What the box's certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    dir: PathBuf,
    /// The box's own name, first; then the other names it answers for.
    names: Vec<String>,
}

impl Identity {
    fn of(config: &Config) -> Identity {
        let n = &config.network;
        let names = [
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
        Identity {
            dir: config.data_dir.join("tls"),
            names,
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn info_path(&self) -> PathBuf {
        self.dir.join("cert.info")
    }
}

/// What `cert.info` says of the certificate beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Info {
    names: Vec<String>,
    /// Unix seconds.
    not_after: u64,
}

impl Info {
    fn read(path: &Path) -> Option<Info> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut names = None;
        let mut not_after = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("names", v)) => names = Some(v.split(',').map(str::to_string).collect()),
                Some(("not_after", v)) => not_after = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Info {
            names: names?,
            not_after: not_after?,
        })
    }

    fn text(&self) -> String {
        format!(
            "# The certificate beside this file (officebox makes it anew before it ends).\nnames={}\nnot_after={}\n",
            self.names.join(","),
            self.not_after
        )
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why the certificate must be made (anew), if it must.
fn renewal_due(id: &Identity, now: SystemTime) -> Option<&'static str> {
    if !id.cert_path().exists() || !id.key_path().exists() {
        return Some("there is none yet");
    }
    let Some(info) = Info::read(&id.info_path()) else {
        return Some("it was not made by this version of officebox");
    };
    if info.names != id.names {
        return Some("the box's names changed");
    }
    if info.not_after.saturating_sub(unix(now)) < RENEW_DAYS * DAY {
        return Some("it ends soon");
    }
    None
}

/// The certificate for `id`, valid from the day before `now` for [`VALID_DAYS`].
fn make(id: &Identity, now: SystemTime) -> io::Result<()> {
    let date = |t: SystemTime| {
        let (y, m, d) = officebox_store::date::civil(t);
        rcgen::date_time_ymd(i32::try_from(y).unwrap_or(2000), m, d)
    };
    let from = now - Duration::from_secs(DAY);
    let until = from + Duration::from_secs(VALID_DAYS * DAY);
    let mut params = rcgen::CertificateParams::new(id.names.clone()).map_err(io::Error::other)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        id.names.first().cloned().unwrap_or_default(),
    );
    dn.push(rcgen::DnType::OrganizationName, "officebox");
    params.distinguished_name = dn;
    params.not_before = date(from);
    params.not_after = date(until);
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let cert = params.self_signed(&key).map_err(io::Error::other)?;
    std::fs::create_dir_all(&id.dir)?;
    officebox_store::write_atomic(&id.key_path(), key.serialize_pem().as_bytes(), 0o600)
        .map_err(io::Error::other)?;
    officebox_store::write_atomic(&id.cert_path(), cert.pem().as_bytes(), 0o644)
        .map_err(io::Error::other)?;
    let info = Info {
        names: id.names.clone(),
        // The end as the certificate has it: midnight UTC of its last day.
        not_after: unix(until) / DAY * DAY,
    };
    officebox_store::write_atomic(&id.info_path(), info.text().as_bytes(), 0o644)
        .map_err(io::Error::other)?;
    Ok(())
}

/// Makes the certificate when it is due, under the lock that keeps services from making
/// it at once.
fn ensure(id: &Identity, now: SystemTime) -> io::Result<()> {
    let _one = MAKING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(why) = renewal_due(id, now) {
        make(id, now)?;
        tracing::info!(
            message = "tls: made a self-signed certificate for this box",
            name = id.names.first().map_or("", String::as_str),
            valid_days = VALID_DAYS,
            why,
            dir = %id.dir.display()
        );
    }
    Ok(())
}

fn load(id: &Identity, provider: &CryptoProvider) -> io::Result<Arc<CertifiedKey>> {
    let (cert_path, key_path) = (id.cert_path(), id.key_path());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))?;
    CertifiedKey::from_der(certs, key, provider)
        .map(Arc::new)
        .map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The certificate as loaded, and when it was last looked at.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The box's certificate for rustls: renewed when due, reloaded when another service
/// renewed it.
#[derive(Debug)]
pub struct BoxCertificate {
    id: Identity,
    provider: Arc<CryptoProvider>,
    loaded: RwLock<Loaded>,
}

impl BoxCertificate {
    /// Makes the certificate if it is due, and loads it.
    pub fn open(config: &Config) -> io::Result<BoxCertificate> {
        let id = Identity::of(config);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ensure(&id, SystemTime::now())?;
        let key = load(&id, &provider)?;
        Ok(BoxCertificate {
            loaded: RwLock::new(Loaded {
                key,
                modified: modified(&id.cert_path()),
                checked: Instant::now(),
            }),
            id,
            provider,
        })
    }

    /// Renews or reloads the certificate if it is due, as of `now`.
    fn refresh(&self, now: SystemTime) {
        if let Err(error) = ensure(&self.id, now) {
            tracing::warn!(message = "tls: could not renew the certificate", %error);
        }
        let on_disk = modified(&self.id.cert_path());
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        loaded.checked = Instant::now();
        if on_disk != loaded.modified {
            match load(&self.id, &self.provider) {
                Ok(key) => {
                    loaded.key = key;
                    loaded.modified = on_disk;
                }
                Err(error) => {
                    tracing::warn!(message = "tls: could not load the renewed certificate", %error);
                }
            }
        }
    }
}

impl ResolvesServerCert for BoxCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let due = self
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .checked
            .elapsed()
            >= CHECK_EVERY;
        if due {
            self.refresh(SystemTime::now());
        }
        Some(Arc::clone(
            &self
                .loaded
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .key,
        ))
    }
}

/// A TLS acceptor presenting the box's certificate (made first if missing or due).
pub fn acceptor(config: &Config) -> io::Result<TlsAcceptor> {
    let certificate = BoxCertificate::open(config)?;
    let provider = Arc::clone(&certificate.provider);
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificate));
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Where Debian keeps the trusted roots (package ca-certificates).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS that checks the server's certificate against the system's roots plus `extra_ca`
/// (a PEM file), for logging in to an ISP's mailbox: a password is sent.
pub fn verifying_connector(extra_ca: Option<&Path>) -> io::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let mut files: Vec<&Path> = Vec::new();
    if Path::new(SYSTEM_ROOTS).exists() {
        files.push(Path::new(SYSTEM_ROOTS));
    }
    files.extend(extra_ca);
    for file in files {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| io::Error::other(format!("{}: {e}", file.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| io::Error::other(format!("{}: {e}", file.display())))?;
            // One odd certificate in the system bundle must not stop the rest.
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name to present and check in a TLS handshake with `host`.
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(dir: &Path, hostname: &str) -> Config {
        let text = format!(
            "data_dir = \"{}\"\n[network]\nhostname = \"{hostname}\"\ndomain = \"office.test\"\nmanage = false\n[dns]\nuse_upstream = false\n[web]\nenabled = false\n",
            dir.display()
        );
        officebox_config::parse("t.toml", &text).unwrap()
    }

    #[test]
    fn made_named_after_the_box_renewed_before_it_ends_and_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "box1");
        let now = SystemTime::now();
        let cert = BoxCertificate::open(&c).unwrap();
        let id = Identity::of(&c);
        let info = Info::read(&id.info_path()).unwrap();
        assert_eq!(info.names[0], "box1.office.test");
        let days_left = (info.not_after - unix(now)) / DAY;
        assert!(
            (VALID_DAYS - 2..VALID_DAYS).contains(&days_left),
            "{days_left}"
        );
        assert_eq!(renewal_due(&id, now), None);
        let first = std::fs::read(id.cert_path()).unwrap();

        // A year on, with 29 days left: the next look renews it.
        let later = now + Duration::from_secs((VALID_DAYS - 30) * DAY);
        assert_eq!(renewal_due(&id, later), Some("it ends soon"));
        cert.refresh(later);
        assert_ne!(std::fs::read(id.cert_path()).unwrap(), first);
        let renewed = Info::read(&id.info_path()).unwrap();
        assert!(renewed.not_after > info.not_after);

        // Another name for the box: another certificate.
        let renamed = Identity::of(&config(dir.path(), "box2"));
        assert_eq!(renewal_due(&renamed, now), Some("the box's names changed"));

        // One made before cert.info existed is replaced.
        std::fs::remove_file(id.info_path()).unwrap();
        assert_eq!(
            renewal_due(&id, now),
            Some("it was not made by this version of officebox")
        );
    }
}
