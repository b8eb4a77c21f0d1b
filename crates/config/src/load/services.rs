//! `[phone]`, `[web]` and `[ntp]`.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn phone(&mut self, sec: Option<Section>, users: &[Spanned<User>]) -> Phone {
        let mut phone = Phone {
            enabled: schema::PHONE_ENABLED.bool(),
            sip_port: schema::SIP_PORT.port(),
            voicemail_extension: schema::VOICEMAIL_EXTENSION.text().into(),
            night_code: schema::NIGHT_CODE.text().into(),
            record_code: schema::RECORD_CODE.text().into(),
            music_on_hold: MusicOnHold::BuiltIn,
            park_extension: schema::PARK_EXTENSION.text().into(),
            conference_extension: schema::CONFERENCE_EXTENSION.text().into(),
            conference_pin: String::new(),
            conference_size: u32::try_from(schema::CONFERENCE_SIZE.int()).unwrap_or(10),
            no_answer_timeout: schema::NO_ANSWER_TIMEOUT.duration(),
            fax_attempts: u32::try_from(schema::FAX_ATTEMPTS.int()).unwrap_or(3),
            fax_retry_after: schema::FAX_RETRY_AFTER.duration(),
            max_message_length: schema::MAX_MESSAGE_LENGTH.duration(),
            rtp_ports: (10_000, 10_999),
            dscp_sip: parse_dscp(schema::DSCP_SIP.text()).unwrap_or(24),
            dscp_rtp: parse_dscp(schema::DSCP_RTP.text()).unwrap_or(46),
            call_log_days: u32::try_from(schema::CALL_LOG_DAYS.int()).unwrap_or(90),
            timezone: None,
            dial_plan: super::dialplan::default_dial_plan(),
            trunks: Vec::new(),
            provisioning: schema::PROVISIONING.bool(),
            provisioning_port: schema::PROVISIONING_PORT.port(),
            provisioning_tls_port: schema::PROVISIONING_TLS_PORT.port(),
            devices: Vec::new(),
        };
        let mut sec = sec;
        phone.sip_port = self.port_setting(sec.as_mut(), &schema::SIP_PORT, Service::Sip);
        phone.provisioning_port = self.port_setting(
            sec.as_mut(),
            &schema::PROVISIONING_PORT,
            Service::Provisioning,
        );
        phone.provisioning_tls_port = self.port_setting(
            sec.as_mut(),
            &schema::PROVISIONING_TLS_PORT,
            Service::ProvisioningTls,
        );
        if let Some(mut sec) = sec {
            phone.enabled = sec.flag(self.sink, &schema::PHONE_ENABLED);
            phone.provisioning = sec.flag(self.sink, &schema::PROVISIONING);
            let devices = sec.tables(self.sink, "devices");
            phone.devices = self.devices(devices, users);
            if let Some(v) = self.feature_code(&mut sec, "voicemail_extension", "*97", users) {
                phone.voicemail_extension = v.value;
            }
            if let Some(v) = self.feature_code(&mut sec, "night_code", "*30", users) {
                if v.value == phone.voicemail_extension {
                    self.sink.error(
                        &v.span,
                        "phone.night_code",
                        format!("{} is the voicemail extension", v.value),
                        "pick another code, e.g. \"*30\"",
                    );
                }
                phone.night_code = v.value;
            }
            // Keyed in during a call: no extension to collide with; empty turns it off.
            if let Some(v) = sec.string(self.sink, "record_code") {
                let three_way = crate::derive::THREE_WAY_CODE;
                match dialable_code(&v.value) {
                    _ if v.value.is_empty() => phone.record_code = String::new(),
                    Ok(code) if code.ends_with(three_way) || three_way.ends_with(&code) => {
                        self.sink.error(
                            &v.span,
                            "phone.record_code",
                            format!("{code} is keyed as (or at the end of) the three-way key {three_way}"),
                            "another code, e.g. \"*1\"",
                        )
                    }
                    Ok(code) => phone.record_code = code,
                    Err(e) => self.sink.error(
                        &v.span,
                        "phone.record_code",
                        e,
                        "digits, optionally starting with * or #, e.g. \"*1\" (\"\" turns it off)",
                    ),
                }
            }
            if let Some(v) = sec.parsed(
                self.sink,
                "music_on_hold",
                "\"builtin\", \"off\", or a WAV file, e.g. \"music/hold.wav\"",
                |s| match s {
                    "builtin" => Ok(MusicOnHold::BuiltIn),
                    "off" => Ok(MusicOnHold::Off),
                    f if f.to_ascii_lowercase().ends_with(".wav") => {
                        Ok(MusicOnHold::File(std::path::PathBuf::from(f)))
                    }
                    other => Err(format!("`{other}` is not a WAV file")),
                },
            ) {
                phone.music_on_hold = v.value;
            }
            if let Some(v) = sec.string(self.sink, "park_extension") {
                let digits = v.value.len() <= 5 && v.value.bytes().all(|b| b.is_ascii_digit());
                let places = if digits && !v.value.is_empty() {
                    crate::derive::park_places_of(&v.value)
                } else {
                    Vec::new()
                };
                let taken = users.iter().find(|u| {
                    u.value
                        .extension
                        .as_deref()
                        .is_some_and(|e| e == v.value || places.iter().any(|p| p == e))
                });
                if !v.value.is_empty() && !digits {
                    self.sink.error(
                        &v.span,
                        "phone.park_extension",
                        format!("`{}` is not an extension", v.value),
                        "digits, e.g. \"700\" (\"\" turns parking off)",
                    );
                } else if let Some(u) = taken {
                    self.sink.error(
                        &v.span,
                        "phone.park_extension",
                        format!(
                            "{} or its park places ({}-{}) hold {}'s extension",
                            v.value,
                            places.first().map_or("", String::as_str),
                            places.last().map_or("", String::as_str),
                            u.value.login
                        ),
                        "pick a number whose next 20 are no user's extension, e.g. \"700\"",
                    );
                } else {
                    phone.park_extension = v.value;
                }
            }
            if let Some(v) = sec.string(self.sink, "conference_extension") {
                let taken = users
                    .iter()
                    .find(|u| u.value.extension.as_deref() == Some(v.value.as_str()));
                match dialable_code(&v.value) {
                    _ if v.value.is_empty() => phone.conference_extension = String::new(),
                    Ok(_) if taken.is_some() => self.sink.error(
                        &v.span,
                        "phone.conference_extension",
                        format!(
                            "{} is {}'s extension",
                            v.value,
                            taken.map_or("", |u| u.value.login.as_str())
                        ),
                        "pick a number no user has as extension, e.g. \"800\"",
                    ),
                    Ok(code) => phone.conference_extension = code,
                    Err(e) => self.sink.error(
                        &v.span,
                        "phone.conference_extension",
                        e,
                        "digits, e.g. \"800\" (\"\" turns the conference off)",
                    ),
                }
            }
            if let Some(v) = sec.string(self.sink, "conference_pin") {
                if v.value.bytes().all(|b| b.is_ascii_digit()) && v.value.len() <= 12 {
                    phone.conference_pin = v.value;
                } else {
                    self.sink.error(
                        &v.span,
                        "phone.conference_pin",
                        format!("`{}` is not a PIN", v.value),
                        "up to 12 digits, e.g. \"4321\" (\"\" for none)",
                    );
                }
            }
            let size = &schema::CONFERENCE_SIZE;
            if let Some(n) = sec.int(self.sink, size.key(), size.range()) {
                phone.conference_size = u32::try_from(n.value).unwrap_or(phone.conference_size);
            }
            phone.no_answer_timeout = self.duration(&mut sec, &schema::NO_ANSWER_TIMEOUT);
            let attempts = &schema::FAX_ATTEMPTS;
            if let Some(n) = sec.int(self.sink, attempts.key(), attempts.range()) {
                phone.fax_attempts = u32::try_from(n.value).unwrap_or(phone.fax_attempts);
            }
            phone.fax_retry_after = self.duration(&mut sec, &schema::FAX_RETRY_AFTER);
            phone.max_message_length = self.duration(&mut sec, &schema::MAX_MESSAGE_LENGTH);
            if let Some(r) = sec.parsed(
                self.sink,
                "rtp_ports",
                "write \"FIRST-LAST\" with at least 4 ports, e.g. \"10000-10999\"",
                |s| {
                    let (a, b) = s
                        .split_once('-')
                        .ok_or_else(|| format!("`{s}` is not a port range"))?;
                    let (a, b): (u16, u16) = (
                        a.trim()
                            .parse()
                            .map_err(|_| format!("`{a}` is not a port"))?,
                        b.trim()
                            .parse()
                            .map_err(|_| format!("`{b}` is not a port"))?,
                    );
                    if a < 1024 || b < a.saturating_add(3) {
                        return Err(format!("`{s}` is not a usable range of unprivileged ports"));
                    }
                    Ok((a, b))
                },
            ) {
                phone.rtp_ports = r.value;
            }
            for (setting, slot) in [
                (&schema::DSCP_SIP, &mut phone.dscp_sip),
                (&schema::DSCP_RTP, &mut phone.dscp_rtp),
            ] {
                if let Some(d) = sec.parsed(
                    self.sink,
                    setting.key(),
                    "write a DSCP name (ef, cs0-cs7, af11-af43) or a number from 0 to 63",
                    parse_dscp,
                ) {
                    *slot = d.value;
                }
            }
            let days = &schema::CALL_LOG_DAYS;
            if let Some(d) = sec.int(self.sink, days.key(), days.range()) {
                phone.call_log_days = u32::try_from(d.value).unwrap_or(phone.call_log_days);
            }
            if let Some(tz) = sec.parsed(
                self.sink,
                "timezone",
                "an IANA time zone name, e.g. \"Europe/Berlin\" or \"America/New_York\"",
                |s| match jiff::tz::TimeZone::get(s) {
                    Ok(_) => Ok(s.to_string()),
                    Err(_) => Err(format!("`{s}` is not a time zone")),
                },
            ) {
                phone.timezone = Some(tz.value);
            }
            let trunks = sec.tables(self.sink, "trunks");
            phone.trunks = self.trunks(trunks);
            phone.dial_plan = self.dial_plan(&mut sec, users, &phone.trunks);
            sec.finish(self.sink);
        }
        phone
    }

    /// A code phones dial for a feature of the box (`key` in `[phone]`): digits, maybe
    /// after `*` or `#`, and no user's extension.
    fn feature_code(
        &mut self,
        sec: &mut Section,
        key: &'static str,
        example: &str,
        users: &[Spanned<User>],
    ) -> Option<Spanned<String>> {
        let v = sec.parsed(
            self.sink,
            key,
            &format!("digits, optionally starting with * or #, e.g. \"{example}\""),
            dialable_code,
        )?;
        if let Some(u) = users
            .iter()
            .find(|u| u.value.extension.as_deref() == Some(v.value.as_str()))
        {
            self.sink.error(
                &v.span,
                format!("phone.{key}"),
                format!("{} is {}'s extension", v.value, u.value.login),
                format!("pick a code no user has as extension, e.g. \"{example}\""),
            );
        }
        Some(v)
    }

    pub(super) fn web(&mut self, sec: Option<Section>) -> Web {
        let mut web = Web {
            enabled: schema::WEB_ENABLED.bool(),
            admin_port: schema::ADMIN_PORT.port(),
            site_port: schema::SITE_PORT.port(),
            https: schema::HTTPS.bool(),
            session_timeout: schema::SESSION_TIMEOUT.duration(),
            confirm_timeout: schema::CONFIRM_TIMEOUT.duration(),
        };
        let mut sec = sec;
        web.admin_port = self.port_setting(sec.as_mut(), &schema::ADMIN_PORT, Service::Admin);
        web.site_port = self.port_setting(sec.as_mut(), &schema::SITE_PORT, Service::Www);
        if let Some(mut sec) = sec {
            web.enabled = sec.flag(self.sink, &schema::WEB_ENABLED);
            web.https = sec.flag(self.sink, &schema::HTTPS);
            web.session_timeout = self.duration(&mut sec, &schema::SESSION_TIMEOUT);
            web.confirm_timeout = self.duration(&mut sec, &schema::CONFIRM_TIMEOUT);
            sec.finish(self.sink);
        }
        web
    }

    pub(super) fn ntp(&mut self, sec: Option<Section>) -> Ntp {
        let mut sec = sec;
        let port = self.port_setting(sec.as_mut(), &schema::NTP_PORT, Service::Ntp);
        let mut ntp = Ntp {
            enabled: schema::NTP_ENABLED.bool(),
            port,
        };
        if let Some(mut sec) = sec {
            ntp.enabled = sec.flag(self.sink, &schema::NTP_ENABLED);
            sec.finish(self.sink);
        }
        ntp
    }
}

impl Loader<'_, '_> {
    pub(super) fn backup(&mut self, sec: Option<Section>) -> Backup {
        let mut backup = Backup {
            enabled: schema::BACKUP_ENABLED.bool(),
            path: None,
            at: parse_time_of_day(schema::BACKUP_AT.text()).unwrap_or((2, 30, 0)),
            keep: u32::try_from(schema::BACKUP_KEEP.int()).unwrap_or(7),
            passphrase: None,
        };
        let Some(mut sec) = sec else {
            return backup;
        };
        backup.enabled = sec.flag(self.sink, &schema::BACKUP_ENABLED);
        let path = sec.parsed(
            self.sink,
            schema::BACKUP_PATH.key(),
            "a folder's full path, e.g. \"/media/backup/officebox\"",
            |s| {
                let p = std::path::PathBuf::from(s);
                if p.is_absolute() {
                    Ok(p)
                } else {
                    Err(format!("`{s}` is not a full path (it must start with /)"))
                }
            },
        );
        if backup.enabled && path.is_none() && !sec.has(schema::BACKUP_PATH.key()) {
            sec.missing(
                self.sink,
                schema::BACKUP_PATH.key(),
                "name the folder the nightly archives go to, e.g. path = \"/media/backup/officebox\"",
            );
        }
        backup.path = path.map(|p| p.value);
        if let Some(at) = sec.parsed(
            self.sink,
            schema::BACKUP_AT.key(),
            "a time of day as HH:MM, e.g. \"02:30\"",
            parse_time_of_day,
        ) {
            backup.at = at.value;
        }
        let keep = &schema::BACKUP_KEEP;
        if let Some(k) = sec.int(self.sink, keep.key(), keep.range()) {
            backup.keep = u32::try_from(k.value).unwrap_or(backup.keep);
        }
        if let Some(p) = sec.parsed(
            self.sink,
            schema::BACKUP_PASSPHRASE.key(),
            "a passphrase of at least 12 characters",
            |s| {
                if s.chars().count() >= 12 {
                    Ok(s.to_string())
                } else {
                    Err("the passphrase is too short to protect the box's mail and keys".into())
                }
            },
        ) {
            backup.passphrase = Some(p.value);
        }
        sec.finish(self.sink);
        backup
    }
}

/// `HH:MM` (or `HH:MM:SS`) as (hour, minute, second).
fn parse_time_of_day(s: &str) -> Result<(u8, u8, u8), String> {
    let bad = || format!("`{s}` is not a time of day");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let num = |i: usize, max: u8| -> Result<u8, String> {
        match parts.get(i) {
            None => Ok(0),
            Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(bad),
        }
    };
    Ok((num(0, 23)?, num(1, 59)?, num(2, 59)?))
}

/// A code a phone dials for a feature: digits (up to six), maybe after `*` or `#`.
fn dialable_code(s: &str) -> Result<String, String> {
    let body = s.trim_start_matches(['*', '#']);
    if !body.is_empty() && body.len() <= 6 && body.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not something a phone can dial"))
    }
}

/// A DSCP mark: its name (`ef`, `cs0`-`cs7`, `af11`-`af43`) or its number (0-63).
pub fn parse_dscp(s: &str) -> Result<u8, String> {
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<u8>() {
        return if n < 64 {
            Ok(n)
        } else {
            Err(format!("{n} is past 63, the last DSCP value"))
        };
    }
    let bad = || format!("`{s}` is no DSCP mark");
    if t == "ef" {
        return Ok(46);
    }
    if let Some(n) = t.strip_prefix("cs") {
        let n: u8 = n.parse().map_err(|_| bad())?;
        return if n <= 7 { Ok(n * 8) } else { Err(bad()) };
    }
    if let Some(n) = t.strip_prefix("af") {
        let (class, drop) = match n.as_bytes() {
            [c @ b'1'..=b'4', d @ b'1'..=b'3'] => (c - b'0', d - b'0'),
            _ => return Err(bad()),
        };
        return Ok(class * 8 + drop * 2);
    }
    Err(bad())
}
