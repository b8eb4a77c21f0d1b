//! Out-of-office replies (RFC 3834): when a message reaches a user whose reply is on,
//! its sender hears the reply, at most once every [`EVERY`] (4 days), and never when the message
//! says it must not be answered: mail from the null sender or from a list's or a
//! robot's address, marked Auto-Submitted, Precedence bulk, list or junk, carrying
//! list headers, or not addressed to the user in To or Cc (a Bcc or a list copy). The
//! reply itself goes from the null sender with `Auto-Submitted: auto-replied`, so it is
//! never answered in turn.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_parser::{HeaderValue, MessageParser};
use officebox_config::Config;
use officebox_store::{NewRecipient, StoreError, Vacation};
use tracing::{info, warn};

use crate::deliver::{Delivery, Envelope, Store};
use crate::route::{Destination, resolve};

pub use officebox_store::VACATION_EVERY as EVERY;

/// Local parts of addresses that robots and lists send from.
const ROBOTS: [&str; 9] = [
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "listserv",
    "majordomo",
    "bounce",
];

/// What the reply refers to, when the message may be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answerable {
    pub subject: String,
    pub message_id: Option<String>,
}

/// Whether `message`, from envelope `sender`, may be answered automatically on behalf
/// of the user with `addresses` (lowercase).
pub fn answerable(sender: &str, message: &[u8], addresses: &[String]) -> Option<Answerable> {
    let (local, _) = sender.rsplit_once('@')?;
    let local = local.to_ascii_lowercase();
    if ROBOTS.contains(&local.as_str())
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-owner")
        || local.ends_with("-bounces")
        || addresses.contains(&sender.to_ascii_lowercase())
    {
        return None;
    }
    let msg = MessageParser::default().parse_headers(message)?;
    let text = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if text("Auto-Submitted").is_some_and(|v| !v.starts_with("no"))
        || text("Precedence").is_some_and(|v| ["bulk", "list", "junk"].contains(&v.as_str()))
        || text("X-Auto-Response-Suppress").is_some_and(|v| v.contains("oof") || v.contains("all"))
        || ["List-Id", "List-Unsubscribe", "List-Post", "List-Help"]
            .iter()
            .any(|h| msg.header_raw(*h).is_some())
    {
        return None;
    }
    let named = [msg.to(), msg.cc()].into_iter().flatten().any(|a| {
        a.iter().any(|addr| {
            addr.address()
                .is_some_and(|x| addresses.contains(&x.to_ascii_lowercase()))
        })
    });
    if !named {
        return None;
    }
    let message_id = match msg.header("Message-ID") {
        Some(HeaderValue::Text(id)) => Some(id.to_string()),
        _ => None,
    };
    Some(Answerable {
        subject: msg.subject().unwrap_or("").to_string(),
        message_id,
    })
}

/// Line breaks and control characters out of one header value.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The reply to `to` for `original`, from the user `login`.
pub fn compose(
    config: &Config,
    login: &str,
    v: &Vacation,
    to: &str,
    original: &Answerable,
    now: i64,
) -> Vec<u8> {
    let domain = &config.network.domain;
    let name = config
        .users
        .iter()
        .find(|u| u.login == login)
        .map_or(login, |u| u.name.as_str());
    let subject = if v.subject.trim().is_empty() {
        format!("Auto: {}", one_line(&original.subject))
    } else {
        one_line(&v.subject)
    };
    let body = v.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let date = officebox_store::date::rfc5322_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)),
    );
    let mut b = MessageBuilder::new()
        .from(Address::new_address(
            Some(one_line(name)),
            format!("{login}@{domain}"),
        ))
        .to(Address::new_address(None::<&str>, to.to_string()))
        .subject(subject)
        .header("Date", Raw::new(date))
        .message_id(format!(
            "vacation.{now}.{login}.{:x}@{domain}",
            rand::random::<u32>()
        ))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .text_body(body + "\r\n");
    if let Some(id) = &original.message_id {
        let id = one_line(id);
        b = b
            .header("In-Reply-To", Raw::new(format!("<{id}>")))
            .header("References", Raw::new(format!("<{id}>")));
    }
    b.write_to_vec().unwrap_or_default()
}

/// After `message` from `sender` reached `mailboxes`: each of those users whose reply is
/// on answers it, when RFC 3834 allows and the sender has not heard it lately. Blocking.
pub fn answer(
    config: &Config,
    store: &Store,
    sender: &str,
    message: &[u8],
    mailboxes: &std::collections::BTreeSet<String>,
    now: i64,
) -> Result<(), StoreError> {
    for login in mailboxes {
        let Some(v) = store.with_db(|db| db.vacation(login))? else {
            continue;
        };
        if v.until.is_some_and(|until| now > until) {
            continue;
        }
        let own = vec![format!("{login}@{}", config.network.domain).to_ascii_lowercase()];
        let Some(original) = answerable(sender, message, &own) else {
            continue;
        };
        let sender = sender.to_ascii_lowercase();
        if !store.with_db(|db| db.vacation_reply_due(login, &sender, now, EVERY))? {
            continue;
        }
        let reply = compose(config, login, &v, &sender, &original, now);
        let mut delivery = Delivery::default();
        match resolve(config, &sender) {
            Destination::Local { mailboxes, forward } => {
                delivery.mailboxes.extend(mailboxes);
                for f in forward {
                    delivery.forward(NewRecipient::plain(f));
                }
            }
            Destination::Foreign(a) => delivery.forward(NewRecipient::plain(a)),
            Destination::Fax(_) | Destination::Unknown => continue,
        }
        match store.deliver(&Envelope::default(), &reply, &delivery, now) {
            Ok(_) => info!(message = "mail: out-of-office reply sent", user = %login, to = %sender),
            Err(error) => {
                warn!(message = "mail: could not send an out-of-office reply", user = %login, %error)
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ask(sender: &str, headers: &str) -> Option<Answerable> {
        let m = format!("{headers}Subject: Lunch?\r\nMessage-ID: <m1@x.test>\r\n\r\nHi\r\n");
        answerable(sender, m.as_bytes(), &["alice@office.test".to_string()])
    }

    #[test]
    fn only_a_person_writing_to_the_user_is_answered() {
        let to = "To: Alice <Alice@office.test>\r\n";
        let a = ask("bob@x.test", to).unwrap();
        assert_eq!(a.subject, "Lunch?");
        assert_eq!(a.message_id.as_deref(), Some("m1@x.test"));
        assert!(
            ask(
                "bob@x.test",
                "To: team@office.test\r\nCc: alice@office.test\r\n"
            )
            .is_some()
        );
        assert!(
            ask(
                "bob@x.test",
                "Auto-Submitted: no\r\nTo: alice@office.test\r\n"
            )
            .is_some()
        );
        for (sender, headers) in [
            ("", to),
            ("MAILER-DAEMON@x.test", to),
            ("owner-list@x.test", to),
            ("list-request@x.test", to),
            ("news-bounces@x.test", to),
            ("alice@office.test", to),
            ("bob@x.test", "To: team@office.test\r\n"),
            (
                "bob@x.test",
                "Auto-Submitted: auto-replied\r\nTo: alice@office.test\r\n",
            ),
            (
                "bob@x.test",
                "Precedence: bulk\r\nTo: alice@office.test\r\n",
            ),
            (
                "bob@x.test",
                "Precedence: List\r\nTo: alice@office.test\r\n",
            ),
            (
                "bob@x.test",
                "List-Id: <l.x.test>\r\nTo: alice@office.test\r\n",
            ),
            (
                "bob@x.test",
                "List-Unsubscribe: <mailto:u@x.test>\r\nTo: alice@office.test\r\n",
            ),
            (
                "bob@x.test",
                "X-Auto-Response-Suppress: OOF\r\nTo: alice@office.test\r\n",
            ),
        ] {
            assert_eq!(ask(sender, headers), None, "{sender} {headers:?}");
        }
    }
}
