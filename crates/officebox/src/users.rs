//! `officebox user add|passwd|del|list`: edits users in the config file, keeping its
//! comments and layout. Every edit is validated as a whole file before it is written,
//! and written atomically; a running officebox picks it up on SIGHUP.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use officebox_config::edit::{self, NewUser};

use crate::passwords;

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user; prints a generated password unless --password-stdin is given.
    Add {
        login: String,
        /// Full name, e.g. "Alice Example".
        #[arg(long)]
        name: Option<String>,
        /// Phone extension (2-6 digits).
        #[arg(long)]
        extension: Option<String>,
        /// May log in to the admin pages.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (or, with --pin, voicemail PIN).
    Passwd {
        login: String,
        /// Set the voicemail PIN instead of the password.
        #[arg(long)]
        pin: bool,
        /// Read the new secret from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Del { login: String },
    /// List the users.
    List,
}

pub fn user(path: &Path, action: UserAction) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match action {
        UserAction::List => {
            let config = officebox_config::parse(&path.display().to_string(), &text)
                .map_err(|d| anyhow!("{d}"))?;
            println!(
                "{:<16} {:<24} {:<9} {:<5} external",
                "login", "name", "extension", "admin"
            );
            for u in &config.users {
                println!(
                    "{:<16} {:<24} {:<9} {:<5} {}",
                    u.login,
                    u.name,
                    u.extension.as_deref().unwrap_or("-"),
                    if u.admin { "yes" } else { "no" },
                    u.pop3.len()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        UserAction::Add {
            login,
            name,
            extension,
            admin,
            password_stdin,
        } => {
            officebox_config::parse_login(&login)
                .map_err(|e| anyhow!("{e}: use lowercase letters, digits, '.', '-' or '_'"))?;
            let (password, shown) = secret(password_stdin, passwords::generate)?;
            let hash = passwords::hash(&password)?;
            let new = edit::add_user(
                &text,
                &NewUser {
                    login: &login,
                    name: name.as_deref().unwrap_or(&login),
                    password_hash: &hash,
                    extension: extension.as_deref(),
                    admin,
                },
            )?;
            let new = with_sip_secret(&new, &login, &password)?;
            save(path, &new)?;
            println!("added user {login}");
            if shown {
                println!("password: {password}   (shown once)");
            }
        }
        UserAction::Passwd {
            login,
            pin,
            password_stdin,
        } => {
            let generate = if pin {
                generate_pin
            } else {
                passwords::generate
            };
            let (secret, shown) = secret(password_stdin, generate)?;
            if pin
                && !(4..=10).contains(&secret.len()) | !secret.bytes().all(|b| b.is_ascii_digit())
            {
                bail!("a voicemail PIN is 4 to 10 digits");
            }
            let hash = passwords::hash(&secret)?;
            let new = if pin {
                edit::set_pin(&text, &login, &hash)?
            } else {
                let new = edit::set_password(&text, &login, &hash)?;
                with_sip_secret(&new, &login, &secret)?
            };
            save(path, &new)?;
            let what = if pin { "voicemail PIN" } else { "password" };
            println!("changed the {what} of {login}");
            if shown {
                println!("{what}: {secret}   (shown once)");
            }
        }
        UserAction::Del { login } => {
            let new = edit::remove_user(&text, &login)?;
            save(path, &new)?;
            println!("removed user {login}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stores the phone's digest hashes for `password` (realm: the config's domain), so
/// phones can register with the same password; the password itself is not stored.
pub fn with_sip_secret(text: &str, login: &str, password: &str) -> Result<String> {
    Ok(officebox_secrets::with_sip_secret(text, login, password)?)
}

/// The secret from stdin, or a generated one (then the caller shows it).
fn secret(from_stdin: bool, generate: fn() -> String) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        bail!("the secret read from standard input is empty");
    }
    Ok((secret, false))
}

fn generate_pin() -> String {
    let digits: String = passwords::generate()
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(6)
        .collect();
    digits
}

/// Validates the whole new file, then writes it atomically; an invalid result is refused
/// and the file stays as it was.
fn save(path: &Path, text: &str) -> Result<()> {
    if let Err(diags) = officebox_config::parse(&path.display().to_string(), text) {
        bail!("the change would make the config invalid, so nothing was written:\n{diags}");
    }
    officebox_store::write_atomic(path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}
