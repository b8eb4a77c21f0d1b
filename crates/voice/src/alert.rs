//! Toll-fraud alerts: the administrators hear by mail, in their own mailboxes (delivered
//! here, like voicemail), when a user's outside calls run into a limit (calls at once,
//! calls a day) or an address is locked out after repeated wrong phone passwords. One
//! mail per subject an hour at most, so an attack does not become a mail flood too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use officebox_config::Config;
use officebox_store::{Maildir, mailbox_path};
use tracing::{info, warn};

/// The same subject is mailed again after this at the soonest.
const QUIET_FOR: Duration = Duration::from_secs(3600);
/// Subjects remembered at most (a flood of distinct ones is forgotten, not kept).
const MAX_KEPT: usize = 10_000;

/// When each subject was last mailed.
#[derive(Debug, Default)]
pub struct Alerts {
    sent: Mutex<HashMap<String, Instant>>,
}

impl Alerts {
    /// Mails every administrator `subject` and `text` (in the background), unless
    /// `key` was mailed within the hour.
    pub fn raise(&self, config: &Config, key: &str, subject: &str, text: &str) {
        {
            let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            if sent.get(key).is_some_and(|at| at.elapsed() < QUIET_FOR) {
                return;
            }
            if sent.len() >= MAX_KEPT {
                sent.retain(|_, at| at.elapsed() < QUIET_FOR);
            }
            sent.insert(key.to_string(), Instant::now());
        }
        let domain = &config.network.domain;
        let host = format!("{}.{domain}", config.network.hostname);
        let admins: Vec<(String, String, PathBuf)> = config
            .users
            .iter()
            .filter(|u| u.admin)
            .map(|u| {
                (
                    u.name.clone(),
                    format!("{}@{domain}", u.login),
                    mailbox_path(&config.data_dir, &u.login),
                )
            })
            .collect();
        let from = format!("postmaster@{domain}");
        let (subject, text) = (subject.to_string(), text.to_string());
        tokio::task::spawn_blocking(move || {
            for (name, address, mailbox) in admins {
                let message = email(&host, &from, (&name, &address), &subject, &text);
                match Maildir::open(&mailbox).and_then(|m| m.deliver(&message)) {
                    Ok(_) => {
                        info!(message = "phone: alert mailed", to = %address, subject = %subject)
                    }
                    Err(error) => {
                        warn!(message = "phone: cannot mail an alert", to = %address, %error);
                    }
                }
            }
        });
    }
}

/// The alert as an email.
fn email(host: &str, from: &str, to: (&str, &str), subject: &str, text: &str) -> Vec<u8> {
    let now = SystemTime::now();
    let stamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(Some("officebox"), from.to_string()))
        .to(Address::new_address(
            Some(to.0.to_string()),
            to.1.to_string(),
        ))
        .subject(subject.to_string())
        .header("Date", Raw::new(officebox_store::date::rfc5322_date(now)))
        .message_id(format!("alert.{stamp:x}@{host}"))
        .text_body(format!("{text}\r\n\r\n-- \r\nofficebox at {host}\r\n"))
        .serialize(&mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_a_plain_mail_from_the_postmaster() {
        let m = email(
            "box.office.test",
            "postmaster@office.test",
            ("Office Administrator", "admin@office.test"),
            "Outside calls: alice reached her limit",
            "Alice Example (101) made 100 outside calls today.",
        );
        let parsed = mail_parser::MessageParser::default().parse(&m).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Outside calls: alice reached her limit")
        );
        assert!(parsed.body_text(0).unwrap().contains("100 outside calls"));
        assert!(
            String::from_utf8_lossy(&m).contains("From: \"officebox\" <postmaster@office.test>")
        );
    }
}
