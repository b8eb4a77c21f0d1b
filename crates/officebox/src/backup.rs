//! `officebox backup` and `officebox restore`: the archive itself is store's
//! (`officebox_store::backup`); here are the config, the lock a running box holds on its
//! data directory, and the swap that makes a restore all or nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use officebox_config::{Config, LoadError};
use officebox_store::backup::{self, Unpacked};

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

/// Now as `YYYYMMDD-HHMMSS` (UTC), for file names.
fn stamp() -> String {
    officebox_store::date::datetime(officebox_store::unix_now())
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | ':' => None,
            c => Some(c),
        })
        .collect()
}

/// `officebox backup`: one archive of the running (or stopped) box.
pub fn backup(config_path: &Path, out: Option<&Path>) -> Result<ExitCode> {
    let config = load(config_path)?;
    let out = out.map_or_else(
        || {
            PathBuf::from(format!(
                "officebox-{}-{}.tar.gz",
                config.network.hostname,
                stamp()
            ))
        },
        Path::to_path_buf,
    );
    let manifest = backup::manifest_now(env!("CARGO_PKG_VERSION"), &config.network.hostname);
    let written =
        backup::write(config_path, &config.data_dir, &out, &manifest).with_context(|| {
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
pub fn restore(config_path: &Path, archive: &Path, part: &Part) -> Result<ExitCode> {
    // Where this box keeps its data now (a fresh install has a config from `init`), or
    // else beside the config file.
    let current = officebox_config::load(config_path).ok();
    let near = current
        .as_ref()
        .map_or_else(|| config_path.to_path_buf(), |c| c.data_dir.clone());
    let staging = staging_beside(&near);
    let _ = std::fs::remove_dir_all(&staging);
    let ours = env!("CARGO_PKG_VERSION");
    let unpacked = backup::unpack(archive, &staging, &|m| newer_version(&m.version, ours))?;
    let result = swap_in(config_path, current.as_ref(), &unpacked, part);
    let _ = std::fs::remove_dir_all(&staging);
    result
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
    let when = stamp();
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
