//! `officebox backup` and `officebox restore`: the archive itself is store's
//! (`officebox_store::backup`); here are the config, the lock a running box holds on its
//! data directory, and the swap that makes a restore all or nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use officebox_config::{Config, LoadError};
use officebox_store::backup::{self, ARCHIVE_PREFIX, Unpacked, archive_name};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a restore brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Everything: config and data.
    All,
    /// The config file only.
    Settings,
    /// One user's mailbox only (the box may be running).
    Mailbox(String),
}

/// Takes the lock of `data_dir` for the life of the returned file: one officebox per
/// data directory, and no restore under a running one.
pub fn lock_data_dir(data_dir: &Path) -> Result<File> {
    let path = data_dir.join(officebox_store::LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another officebox is running on {} (its lock {} is held); stop it first",
            data_dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether an officebox is running on `data_dir` now.
fn running_on(data_dir: &Path) -> bool {
    let path = data_dir.join(officebox_store::LOCK_FILE);
    File::open(&path)
        .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
}

fn load(path: &Path) -> Result<Config> {
    match officebox_config::load(path) {
        Ok(c) => Ok(c),
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}");
            bail!("{} has {} problem(s)", path.display(), diags.0.len())
        }
        Err(e) => Err(e.into()),
    }
}

/// Where a passphrase comes from on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passphrase {
    /// None given.
    None,
    /// The first line of this file.
    File(PathBuf),
    /// The first line of standard input.
    Stdin,
}

impl Passphrase {
    fn read(&self) -> Result<Option<String>> {
        let text = match self {
            Passphrase::None => return Ok(None),
            Passphrase::File(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the passphrase from {}", p.display()))?,
            Passphrase::Stdin => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the passphrase from standard input")?;
                line
            }
        };
        let line = text.lines().next().unwrap_or_default().to_string();
        if line.is_empty() {
            bail!("the passphrase given is empty");
        }
        Ok(Some(line))
    }
}

/// `officebox backup`: one archive of the running (or stopped) box, encrypted with the
/// passphrase given, else with `[backup] passphrase` when the config has one.
pub fn backup(config_path: &Path, out: Option<&Path>, passphrase: &Passphrase) -> Result<ExitCode> {
    let config = load(config_path)?;
    let passphrase = passphrase
        .read()?
        .or_else(|| config.backup.passphrase.clone());
    let out = out.map_or_else(
        || PathBuf::from(archive_name(&config.network.hostname, passphrase.is_some())),
        Path::to_path_buf,
    );
    let manifest = backup::manifest_now(env!("CARGO_PKG_VERSION"), &config.network.hostname);
    let written = backup::write(
        config_path,
        &config.data_dir,
        &out,
        &manifest,
        passphrase.as_deref(),
    )
    .with_context(|| {
        format!(
            "the backup to {} failed; nothing was written",
            out.display()
        )
    })?;
    println!(
        "backup written: {} ({} files, {:.1} MB before compression)",
        out.display(),
        written.files,
        written.bytes as f64 / 1e6
    );
    println!(
        "restore it with: officebox restore --config {} {}",
        config_path.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A directory beside `near` for unpacking into (same filesystem, so the swap is a
/// rename).
fn staging_beside(near: &Path) -> PathBuf {
    let parent = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = near
        .file_name()
        .map_or_else(|| "officebox".into(), |n| n.to_string_lossy().into_owned());
    parent.join(format!(".{name}.restoring-{}", std::process::id()))
}

/// `officebox restore`: the archive is unpacked and checked whole before anything of the
/// box is touched; then the data directory and the config are swapped in, the ones they
/// replace kept beside them.
pub fn restore(
    config_path: &Path,
    archive: &Path,
    part: &Part,
    passphrase: &Passphrase,
) -> Result<ExitCode> {
    let passphrase = passphrase.read()?;
    // Where this box keeps its data now (a fresh install has a config from `init`), or
    // else beside the config file.
    let current = officebox_config::load(config_path).ok();
    let near = current
        .as_ref()
        .map_or_else(|| config_path.to_path_buf(), |c| c.data_dir.clone());
    let staging = staging_beside(&near);
    let _ = std::fs::remove_dir_all(&staging);
    let ours = env!("CARGO_PKG_VERSION");
    let unpacked = backup::unpack(archive, &staging, passphrase.as_deref(), &|m| {
        newer_version(&m.version, ours)
    })
    .map_err(|e| match e {
        backup::BackupError::Locked { .. } => anyhow::Error::new(e)
            .context("give the passphrase with --passphrase-file FILE or --passphrase-stdin"),
        e => e.into(),
    })?;
    let result = swap_in(config_path, current.as_ref(), &unpacked, part);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// The nightly backup while `[backup] enabled`: at `backup.at` in the office's time zone
/// (`phone.timezone`, else the box's), an archive of the box into `backup.path`, the
/// oldest beyond `backup.keep` deleted. A failure is logged and tried again the next
/// night; it never stops the box.
pub async fn nightly(
    mut config: watch::Receiver<Arc<Config>>,
    config_path: PathBuf,
    stop: CancellationToken,
) -> Result<()> {
    loop {
        let c = Arc::clone(&config.borrow_and_update());
        let next = officebox_config::dialplan::LocalTime::next_at(
            c.phone.timezone.as_deref(),
            c.backup.at,
            officebox_store::unix_now(),
        );
        info!(
            message = "backup: the next nightly archive",
            at = %officebox_store::date::datetime(next),
            folder = %c.backup.path.as_deref().unwrap_or(Path::new("")).display()
        );
        // Checked against the wall clock each minute: a clock set at boot, or a change
        // of summer time, moves the night's moment, not a timer set before it.
        let mut changed = false;
        loop {
            let left = next - officebox_store::unix_now();
            if left <= 0 {
                break;
            }
            let nap = Duration::from_secs(u64::try_from(left.min(60)).unwrap_or(60));
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                seen = config.changed() => {
                    if seen.is_err() {
                        return Ok(());
                    }
                    changed = true;
                    break;
                }
                () = tokio::time::sleep(nap) => {}
            }
        }
        if changed {
            continue; // the time is worked out again from the new config
        }
        let (c, path) = (Arc::clone(&config.borrow()), config_path.clone());
        match tokio::task::spawn_blocking(move || nightly_once(&c, &path)).await {
            Ok(Ok((out, written, removed))) => info!(
                message = "backup: nightly archive written",
                path = %out.display(),
                files = written.files,
                bytes = written.bytes,
                removed
            ),
            Ok(Err(error)) => {
                warn!(message = "backup: the nightly archive failed", error = %format!("{error:#}"));
            }
            Err(error) => warn!(message = "backup: the nightly archive failed", %error),
        }
    }
}

/// One nightly archive: written, then the oldest beyond `keep` deleted (only files
/// named as this box's archives are).
fn nightly_once(config: &Config, config_path: &Path) -> Result<(PathBuf, backup::Written, usize)> {
    let dir = config
        .backup
        .path
        .as_deref()
        .context("no backup folder is set")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let host = &config.network.hostname;
    let prefix = format!("{ARCHIVE_PREFIX}{host}-");
    // What a night cut off left (officebox stopped mid-archive): never a whole archive.
    for e in std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && (name.ends_with(".partial") || name.ends_with(".state-db"))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let passphrase = config.backup.passphrase.as_deref();
    let out = dir.join(archive_name(host, passphrase.is_some()));
    let manifest = backup::manifest_now(env!("CARGO_PKG_VERSION"), host);
    let written = backup::write(config_path, &config.data_dir, &out, &manifest, passphrase)
        .with_context(|| format!("writing {}", out.display()))?;
    let mut ours: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(&prefix) && (n.ends_with(".tar.gz") || n.ends_with(".tar.gz.age"))
        })
        .collect();
    // Their names hold the time they were made: newest last.
    ours.sort();
    let keep = usize::try_from(config.backup.keep).unwrap_or(usize::MAX);
    let mut removed = 0;
    for old in ours.iter().take(ours.len().saturating_sub(keep)) {
        match std::fs::remove_file(dir.join(old)) {
            Ok(()) => removed += 1,
            Err(error) => {
                warn!(message = "backup: an old archive cannot be deleted", file = %old, %error);
            }
        }
    }
    Ok((out, written, removed))
}

/// Refuses a version newer than `ours` (`major.minor.patch`).
fn newer_version(theirs: &str, ours: &str) -> std::result::Result<(), String> {
    let parse = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    if parse(theirs) > parse(ours) {
        Err(format!(
            "it was written by officebox {theirs}, newer than this one ({ours}): upgrade officebox first"
        ))
    } else {
        Ok(())
    }
}

fn swap_in(
    config_path: &Path,
    current: Option<&Config>,
    unpacked: &Unpacked,
    part: &Part,
) -> Result<ExitCode> {
    // The archived config must load here, as it will be run.
    let restored = load(&unpacked.config)
        .context("the backup's config is not one this officebox can run; nothing was restored")?;
    let text = std::fs::read(&unpacked.config)
        .with_context(|| format!("cannot read {}", unpacked.config.display()))?;
    let when = backup::stamp_now();
    match part {
        Part::Settings => {
            let kept = replace_config(config_path, &text, &when)?;
            println!(
                "restored the settings from a backup of {}",
                unpacked.manifest.host
            );
            if let Some(kept) = kept {
                println!("the settings they replace are in {}", kept.display());
            }
            println!("apply them with `systemctl reload officebox` (or SIGHUP)");
        }
        Part::Mailbox(login) => {
            let data_dir = current.map_or(&restored.data_dir, |c| &c.data_dir);
            let from = officebox_store::mailbox_path(&unpacked.data, login);
            if !from.is_dir() {
                bail!("the backup has no mailbox for {login}; nothing was restored");
            }
            let to = officebox_store::mailbox_path(data_dir, login);
            let kept = data_dir
                .join(format!("mail-before-restore-{when}"))
                .join(login);
            if to.exists() {
                std::fs::create_dir_all(kept.parent().unwrap_or(data_dir))
                    .context("cannot make a place for the mailbox it replaces")?;
                std::fs::rename(&to, &kept)
                    .with_context(|| format!("cannot move {} aside", to.display()))?;
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            if let Err(e) = std::fs::rename(&from, &to) {
                if kept.exists() {
                    let _ = std::fs::rename(&kept, &to);
                }
                return Err(e)
                    .with_context(|| format!("cannot put the mailbox in {}", to.display()));
            }
            println!("restored the mailbox of {login} into {}", to.display());
            if kept.exists() {
                println!("the mailbox it replaces is in {}", kept.display());
            }
        }
        Part::All => {
            let data_dir = &restored.data_dir;
            if running_on(data_dir) {
                bail!(
                    "officebox is running on {}: stop it first (systemctl stop officebox); nothing was restored",
                    data_dir.display()
                );
            }
            let kept_data = PathBuf::from(format!("{}.before-restore-{when}", data_dir.display()));
            let had_data = data_dir.exists();
            if had_data {
                std::fs::rename(data_dir, &kept_data)
                    .with_context(|| format!("cannot move {} aside", data_dir.display()))?;
            }
            if let Err(e) = std::fs::rename(&unpacked.data, data_dir) {
                if had_data {
                    let _ = std::fs::rename(&kept_data, data_dir);
                }
                return Err(e).with_context(|| {
                    format!(
                        "cannot put the restored data in {} (it must be on the same filesystem as {}); nothing was restored",
                        data_dir.display(),
                        unpacked.data.display()
                    )
                });
            }
            let kept_config = match replace_config(config_path, &text, &when) {
                Ok(k) => k,
                Err(e) => {
                    // All or nothing: the data goes back as it was.
                    let _ = std::fs::rename(data_dir, &unpacked.data);
                    if had_data {
                        let _ = std::fs::rename(&kept_data, data_dir);
                    }
                    return Err(e.context("nothing was restored"));
                }
            };
            println!(
                "restored a backup of {} made by officebox {} ({} files) into {} and {}",
                unpacked.manifest.host,
                unpacked.manifest.version,
                unpacked.files,
                data_dir.display(),
                config_path.display()
            );
            if had_data {
                println!("the data it replaces is in {}", kept_data.display());
            }
            if let Some(kept) = kept_config {
                println!("the config it replaces is in {}", kept.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the restored config over `path` atomically; the file it replaces is kept as
/// `<path>.before-restore-<when>` (returned).
fn replace_config(path: &Path, text: &[u8], when: &str) -> Result<Option<PathBuf>> {
    let kept = PathBuf::from(format!("{}.before-restore-{when}", path.display()));
    let had = path.exists();
    if had {
        std::fs::copy(path, &kept)
            .with_context(|| format!("cannot keep a copy of {}", path.display()))?;
    }
    officebox_store::write_atomic(path, text, 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(had.then_some(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_version_is_refused() {
        assert!(newer_version("0.1.0", "0.1.0").is_ok());
        assert!(newer_version("0.0.9", "0.1.0").is_ok());
        assert!(newer_version("0.2.0", "0.1.0").is_err());
        assert!(newer_version("0.1.1", "0.1.0").is_err());
        assert!(newer_version("1.0.0-rc1", "0.9.9").is_err());
    }
}
