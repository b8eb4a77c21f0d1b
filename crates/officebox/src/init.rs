//! `officebox init`: a complete, commented default config with a random admin password.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::passwords;

/// The machine's own host name as a config's `network.hostname`: its first label, when
/// it is one the config takes; else `officebox`.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| {
            let first = h.trim().split('.').next()?.to_ascii_lowercase();
            officebox_config::values::parse_label(&first).ok()
        })
        .unwrap_or_else(|| "officebox".into())
}

pub fn init(path: &Path, hostname: Option<&str>, domain: &str) -> Result<ExitCode> {
    if path.exists() {
        bail!("{} already exists; not overwriting it", path.display());
    }
    let domain = officebox_config::values::parse_domain(domain)
        .map_err(|e| anyhow::anyhow!("--domain: {e}"))?;
    let hostname = match hostname {
        Some(h) => officebox_config::values::parse_label(h)
            .map_err(|e| anyhow::anyhow!("--hostname: {e}"))?,
        None => machine_hostname(),
    };
    let password = passwords::generate();
    let text = officebox_config::template::default_config(
        &hostname,
        &domain,
        &passwords::hash(&password)?,
    );
    let text = crate::users::with_sip_secret(&text, "admin", &password)?;
    // The template must always be a valid config: check before writing.
    officebox_config::parse(&path.display().to_string(), &text)
        .map_err(|d| anyhow::anyhow!("internal error: the default config is invalid:\n{d}"))?;
    officebox_store::write_atomic(path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("admin login: admin");
    println!(
        "admin password: {password}   (shown once; change it with `officebox user passwd admin`)"
    );
    Ok(ExitCode::SUCCESS)
}
