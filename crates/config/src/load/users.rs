//! `[[users]]`: logins, password and phone secrets, extensions, their ISP mailboxes.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn users(&mut self, secs: Vec<Section>) -> Vec<Spanned<User>> {
        let mut out: Vec<Spanned<User>> = Vec::new();
        let mut extensions: HashMap<String, String> = HashMap::new();
        for mut u in secs {
            let login = u.parsed(
                self.sink,
                "login",
                "lowercase letters, digits, '.', '-' or '_', e.g. \"alice\"",
                parse_login,
            );
            let name = u.string(self.sink, "name").map(|s| s.value);
            let password = u.parsed(
                self.sink,
                "password",
                "set it with `officebox user passwd LOGIN`, which stores an argon2 hash",
                parse_argon2,
            );
            let extension = self.extension(&mut u);
            let pin = u.parsed(
                self.sink,
                "voicemail_pin",
                "set it with `officebox user passwd LOGIN --pin`, which stores an argon2 hash",
                parse_argon2,
            );
            let sip_help = "set it with `officebox user passwd LOGIN`, which stores the phone \
                            password's digest hashes";
            let sip_ha1_md5 = u.parsed(self.sink, "sip_ha1_md5", sip_help, |s| hex_of(s, 32));
            let sip_ha1_sha256 = u.parsed(self.sink, "sip_ha1_sha256", sip_help, |s| hex_of(s, 64));
            let sip_ext_secret = u.parsed(self.sink, "sip_ext_secret", sip_help, parse_ext_secret);
            let admin = u.flag(self.sink, &schema::USER_ADMIN);
            let fax = u.flag(self.sink, &schema::USER_FAX);
            let quota = u.parsed(
                self.sink,
                "quota",
                "a size like \"5G\", or 0 for no limit",
                parse_size,
            );
            let count = |this: &mut Self, u: &mut Section, s: &Setting| {
                let n = u
                    .int(this.sink, s.key(), s.range())
                    .map_or(s.int(), |n| n.value);
                u32::try_from(n).unwrap_or(0)
            };
            let outside = OutsideCalls {
                at_once: count(self, &mut u, &schema::USER_OUTSIDE_AT_ONCE),
                per_day: count(self, &mut u, &schema::USER_OUTSIDE_PER_DAY),
                from_remote_phones: u.flag(self.sink, &schema::USER_REMOTE_OUTSIDE),
            };
            let caller_id = u.parsed(
                self.sink,
                "caller_id",
                "a phone number: digits, maybe after +, e.g. \"+4930123458\"",
                |s| {
                    if crate::dialplan::is_dialable(s) {
                        Ok(s.to_string())
                    } else {
                        Err(format!("`{s}` is not a phone number"))
                    }
                },
            );
            self.saw_admin |= admin;
            let pop3 = u
                .tables(self.sink, "pop3")
                .into_iter()
                .filter_map(|p| self.pop3_account(p))
                .collect();
            for (key, v) in [("login", login.is_some()), ("password", password.is_some())] {
                if !v && !u.has(key) {
                    u.missing(self.sink, key, "add users with `officebox user add LOGIN`");
                }
            }
            let path = u.path.clone();
            let span = u.span.clone();
            u.finish(self.sink);
            let Some(login) = login else { continue };
            if out.iter().any(|o| o.value.login == login.value) {
                self.sink.error(
                    &login.span,
                    format!("{path}.login"),
                    format!("there is already a user `{}`", login.value),
                    "each login must be unique",
                );
                continue;
            }
            if let Some(ext) = &extension {
                if let Some(owner) = extensions.get(&ext.value) {
                    self.sink.error(
                        &ext.span,
                        format!("{path}.extension"),
                        format!("extension {} is already {owner}'s", ext.value),
                        "give each user a different extension",
                    );
                } else {
                    extensions.insert(ext.value.clone(), login.value.clone());
                }
            }
            out.push(Spanned {
                span,
                value: User {
                    name: name.unwrap_or_else(|| login.value.clone()),
                    login: login.value,
                    password_hash: password.map(|p| p.value).unwrap_or_default(),
                    extension: extension.map(|e| e.value),
                    voicemail_pin_hash: pin.map(|p| p.value),
                    sip_ha1_md5: sip_ha1_md5.map(|h| h.value),
                    sip_ha1_sha256: sip_ha1_sha256.map(|h| h.value),
                    sip_ext_secret: sip_ext_secret.map(|h| h.value),
                    admin,
                    pop3,
                    outside,
                    caller_id: caller_id.map(|c| c.value),
                    fax,
                    quota: quota.map(|q| q.value),
                },
            });
        }
        out
    }

    /// An extension, written as 101 or "101".
    pub(super) fn extension(&mut self, u: &mut Section) -> Option<Spanned<String>> {
        let help = "an extension is 2 to 6 digits, e.g. extension = 101";
        let path = u.path_of("extension");
        let text = if u.has("extension") && u.is_string("extension") {
            u.parsed(self.sink, "extension", help, |s| Ok(s.trim().to_string()))?
        } else {
            let n = u.int(self.sink, "extension", 0..=999_999)?;
            Spanned {
                value: n.value.to_string(),
                span: n.span,
            }
        };
        if !(2..=6).contains(&text.value.len()) || !text.value.bytes().all(|b| b.is_ascii_digit()) {
            self.sink.error(
                &text.span,
                path,
                format!("extension {} is not 2 to 6 digits", text.value),
                help,
            );
            return None;
        }
        Some(text)
    }

    pub(super) fn pop3_account(&mut self, mut p: Section) -> Option<Pop3Account> {
        let server = p.parsed(
            self.sink,
            "server",
            "the ISP's POP3 server name, e.g. \"pop.isp.example\"",
            |s| {
                parse_ip(s)
                    .map(|ip| ip.to_string())
                    .or_else(|_| parse_domain(s))
            },
        );
        let tls = p.parsed(
            self.sink,
            "tls",
            "use \"implicit\" (port 995), \"starttls\" or \"none\"",
            |s| match s {
                "implicit" => Ok(Pop3Tls::Implicit),
                "starttls" => Ok(Pop3Tls::Starttls),
                "none" => Ok(Pop3Tls::None),
                _ => Err(format!("unknown TLS mode `{s}`")),
            },
        );
        let tls = tls.map_or(Pop3Tls::Implicit, |t| t.value);
        let port = p
            .port(self.sink, "port")
            .map_or(if tls == Pop3Tls::Implicit { 995 } else { 110 }, |p| {
                p.value
            });
        let login = p.string(self.sink, "login");
        let password = p.string(self.sink, "password");
        let poll_interval = self.duration(&mut p, &schema::POP3_POLL_INTERVAL);
        let keep_on_server = p.flag(self.sink, &schema::POP3_KEEP_ON_SERVER);
        let verify_certificate = p.flag(self.sink, &schema::POP3_VERIFY_CERTIFICATE);
        let ca_file = p
            .string(self.sink, "ca_file")
            .map(|s| std::path::PathBuf::from(s.value));
        for (key, v) in [
            ("server", server.is_some()),
            ("login", login.is_some()),
            ("password", password.is_some()),
        ] {
            if !v && !p.has(key) {
                p.missing(
                    self.sink,
                    key,
                    "an external mailbox needs server, login and password",
                );
            }
        }
        p.finish(self.sink);
        Some(Pop3Account {
            server: server?.value,
            port,
            tls,
            login: login?.value,
            password: password?.value,
            poll_interval,
            keep_on_server,
            verify_certificate,
            ca_file,
        })
    }
}

/// A mailbox name / login: lowercase letters, digits, `.`, `-`, `_`; 1-32 long.
pub fn parse_login(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && !s.starts_with('.')
        && !s.ends_with('.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a valid login"))
    }
}

/// Accepts an argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
pub(super) fn parse_argon2(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('$').collect();
    let ok = parts.len() == 6
        && parts[0].is_empty()
        && matches!(parts[1], "argon2id" | "argon2i" | "argon2d")
        && parts[2].starts_with("v=")
        && parts[3].contains("m=")
        && !parts[4].is_empty()
        && !parts[5].is_empty();
    if ok {
        Ok(s.to_string())
    } else {
        Err("this is not an argon2 password hash (passwords are never stored in clear)".into())
    }
}

/// `n` lowercase hex digits (a digest hash).
/// `EXTENSION:MD5:SHA256` (see [`crate::model::ExtSecret`]).
pub(super) fn parse_ext_secret(s: &str) -> Result<crate::model::ExtSecret, String> {
    let mut parts = s.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ext), Some(md5), Some(sha256), None)
            if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(crate::model::ExtSecret {
                extension: ext.to_string(),
                md5: hex_of(md5, 32)?,
                sha256: hex_of(sha256, 64)?,
            })
        }
        _ => Err("expected EXTENSION:MD5:SHA256 (digits, 32 and 64 hex digits)".into()),
    }
}

pub(super) fn hex_of(s: &str, n: usize) -> Result<String, String> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("expected {n} hex digits"))
    }
}
