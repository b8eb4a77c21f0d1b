//! Faxes sent by mail (the white paper's unified messaging, the other way): a user mails
//! a document to `<number>@fax.<domain>`; the document is made into fax pages here, as
//! the message is accepted, and queued in the state database for the phone service,
//! which dials the number through the dial plan, sends the pages and mails the sender a
//! report.
//!
//! Only the office's own users send faxes: authenticated, or on the LAN (or this
//! machine) with their own address as the sender. What cannot be sent (no document,
//! not a PDF, too many pages, a number the dial plan does not let the user call) is
//! reported at once, by a mail into the sender's mailbox: the message is accepted
//! either way, so a client never keeps trying to send what will never go.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_parser::{MessageParser, MimeHeaders as _};
use officebox_config::Config;
use officebox_config::dialplan::{Outbound, Refusal};
use officebox_config::model::User;
use officebox_fax::render::{self, RenderError, TiffDocument};
use officebox_fax::tiff::Bitmap;
use officebox_store::{Maildir, NewFaxOut, StoreError};
use tracing::{info, warn};

use crate::deliver::Store;

/// The subdomain fax addresses are under: `<number>@fax.<domain>`.
pub const SUBDOMAIN: &str = "fax";

/// The digits of a fax address's local part (`+49 30 1234` may be written
/// `+49-30-1234` or `0049.30.1234`); `None` when it is no telephone number.
pub fn number(local: &str) -> Option<String> {
    let (plus, rest) = match local.strip_prefix('+') {
        Some(r) => ("+", r),
        None => ("", local),
    };
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '.')
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (2..=20)
        .contains(&digits.len())
        .then(|| format!("{plus}{digits}"))
}

/// Whether `domain` is the fax subdomain of ours.
pub fn is_fax_domain(config: &Config, domain: &str) -> bool {
    domain
        .strip_prefix(SUBDOMAIN)
        .and_then(|d| d.strip_prefix('.'))
        .is_some_and(|d| d == config.network.domain)
}

/// A fax to queue: who sent it and where it goes.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub login: &'a str,
    pub number: &'a str,
}

/// A document that cannot be faxed, or a number that may not be dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    NoDocument,
    Document { name: String, why: RenderError },
    Number(&'static str),
}

impl Refused {
    fn words(&self) -> String {
        match self {
            Refused::NoDocument => "the mail has no document to fax: attach a PDF, a TIFF or a \
                                    text file, or write the text in the mail itself"
                .to_string(),
            Refused::Document { name, why } => format!("{name}: {why}"),
            Refused::Number(why) => (*why).to_string(),
        }
    }
}

/// The pages to send: drawn here (PDF, text), or a TIFF sent as it came (a fax
/// program's own file) and how many pages it has.
enum Pages {
    Drawn(Vec<Bitmap>),
    Tiff(Vec<u8>, TiffDocument),
}

/// A mailed TIFF read through as the sending machine will read it (from a scratch copy
/// in the fax spool, removed again), so a file it cannot send is reported now, not
/// found out on the line; its pages, and page 1 drawn.
fn checked_tiff(bytes: &[u8], data_dir: &Path) -> Result<TiffDocument, RenderError> {
    let (scratch, _) = spool(data_dir);
    let written = scratch
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&scratch, bytes));
    let checked = match written {
        Ok(()) => render::tiff(&scratch),
        Err(e) => Err(RenderError::BadTiff(format!(
            "it could not be spooled: {e}"
        ))),
    };
    // Best effort: a scratch copy left behind is only a file in the spool.
    let _ = std::fs::remove_file(&scratch);
    checked
}

/// Whether the dial plan lets `user` call `number`; why not, in words.
fn dial_plan_allows(config: &Config, user: &User, number: &str) -> Result<(), &'static str> {
    if config
        .phone
        .dial_plan
        .emergency_numbers
        .iter()
        .any(|n| n == number)
    {
        return Err("a fax cannot go to an emergency number");
    }
    match config.phone.dial_plan.outbound(&user.login, number) {
        Outbound::Route { .. } if user.outside.at_once == 0 => {
            Err("you may not make outside calls, so you may not send faxes outside")
        }
        Outbound::Route { .. } | Outbound::Emergency { .. } => Ok(()),
        Outbound::Refused(Refusal::NotAllowed) => {
            Err("the dial plan does not let you call this number")
        }
        Outbound::Refused(Refusal::International) => {
            Err("the dial plan does not allow international numbers on this route")
        }
        Outbound::Refused(Refusal::Premium) => {
            Err("the dial plan does not allow premium-rate numbers")
        }
        Outbound::NoRoute => Err("no route of the dial plan takes this number"),
    }
}

/// The document(s) of `message` as pages: every PDF, text and TIFF attachment in order
/// (a TIFF only alone), else the mail's own text.
fn pages_of(message: &[u8], data_dir: &Path) -> Result<Pages, Refused> {
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or(Refused::NoDocument)?;
    let mut pages: Vec<Bitmap> = Vec::new();
    let mut tiff = None;
    let mut documents = 0usize;
    for part in parsed.attachments() {
        let name = part
            .attachment_name()
            .unwrap_or("the attachment")
            .to_string();
        let lower = name.to_ascii_lowercase();
        let kind = part
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase()
                )
            })
            .unwrap_or_default();
        let drawn = if kind == "application/pdf" || lower.ends_with(".pdf") {
            render::pdf(part.contents())
        } else if kind == "image/tiff" || lower.ends_with(".tif") || lower.ends_with(".tiff") {
            documents += 1;
            tiff = Some(part.contents().to_vec());
            continue;
        } else if kind == "text/plain" {
            render::text(&String::from_utf8_lossy(part.contents()))
        } else {
            // A logo in a signature, a calendar card: not the document.
            continue;
        };
        documents += 1;
        let more = drawn.map_err(|why| Refused::Document {
            name: name.clone(),
            why,
        })?;
        pages.extend(more);
        if pages.len() > render::MAX_PAGES {
            return Err(Refused::Document {
                name,
                why: RenderError::TooManyPages(pages.len()),
            });
        }
    }
    if let Some(t) = tiff {
        if documents > 1 {
            return Err(Refused::Document {
                name: "the TIFF".to_string(),
                why: RenderError::BadTiff(
                    "a TIFF is sent alone, not with other documents".to_string(),
                ),
            });
        }
        let read = checked_tiff(&t, data_dir).map_err(|why| Refused::Document {
            name: "the TIFF".to_string(),
            why,
        })?;
        return Ok(Pages::Tiff(t, read));
    }
    if documents == 0 {
        let body = parsed.body_text(0).unwrap_or_default();
        if body.trim().is_empty() {
            return Err(Refused::NoDocument);
        }
        pages = render::text(&body).map_err(|why| Refused::Document {
            name: "the mail's text".to_string(),
            why,
        })?;
    }
    if pages.is_empty() {
        return Err(Refused::NoDocument);
    }
    Ok(Pages::Drawn(pages))
}

/// Where a queued fax's pages and preview are kept: `data_dir/fax/out/`, named by a
/// token of the box's.
fn spool(data_dir: &Path) -> (PathBuf, PathBuf) {
    let token = format!(
        "{}-{:016x}",
        officebox_store::unix_now(),
        rand::random::<u64>()
    );
    let dir = data_dir.join("fax").join("out");
    (
        dir.join(format!("{token}.tif")),
        dir.join(format!("{token}.png")),
    )
}

/// Makes `message` into a fax to each of `numbers` from `login` (queued, or refused
/// with a report in the sender's mailbox). Blocking; everything is on disk when it
/// returns `Ok`.
pub fn queue(
    config: &Config,
    store: &Store,
    login: &str,
    numbers: &[String],
    message: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    let Some(user) = config.users.iter().find(|u| u.login == login) else {
        return Ok(());
    };
    let subject = MessageParser::default()
        .parse_headers(message)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    let subject: String = subject
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let address = format!("{login}@{}", config.network.domain);
    let mut rendered: Option<Result<Pages, Refused>> = None;
    for number in numbers {
        let pages = match dial_plan_allows(config, user, number) {
            Err(why) => Err(Refused::Number(why)),
            Ok(()) => rendered
                .get_or_insert_with(|| pages_of(message, &config.data_dir))
                .as_ref()
                .map_err(Clone::clone),
        };
        let pages = match pages {
            Ok(p) => p,
            Err(refused) => {
                warn!(message = "fax: not sent", from = %login, to = %number, why = %refused.words());
                refusal(config, store, user, number, &subject, &refused)?;
                continue;
            }
        };
        let (file, preview) = spool(&config.data_dir);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        }
        let (count, preview) = match pages {
            Pages::Drawn(p) => {
                officebox_store::write_atomic(&file, &officebox_fax::tiff::bilevel(p), 0o600)?;
                let png = p.first().map(render::thumbnail).unwrap_or_default();
                officebox_store::write_atomic(&preview, &png, 0o600)?;
                (u32::try_from(p.len()).unwrap_or(u32::MAX), Some(preview))
            }
            Pages::Tiff(t, read) => {
                officebox_store::write_atomic(&file, t, 0o600)?;
                let preview = match &read.first {
                    Some(page) => {
                        officebox_store::write_atomic(&preview, &render::thumbnail(page), 0o600)?;
                        Some(preview)
                    }
                    None => None,
                };
                (u32::try_from(read.pages).unwrap_or(u32::MAX), preview)
            }
        };
        let id = store.with_db(|db| {
            db.queue_fax(
                &NewFaxOut {
                    login,
                    sender: &address,
                    number,
                    file: &file,
                    preview: preview.as_deref(),
                    pages: count,
                    subject: &subject,
                },
                now,
            )
        })?;
        info!(message = "fax: queued", from = %login, to = %number, pages = count, id);
    }
    Ok(())
}

/// The report of a fax that will not be sent, into the sender's own mailbox.
fn refusal(
    config: &Config,
    store: &Store,
    user: &User,
    number: &str,
    subject: &str,
    refused: &Refused,
) -> Result<(), StoreError> {
    let domain = &config.network.domain;
    let about = if subject.is_empty() {
        String::new()
    } else {
        format!(" (\"{subject}\")")
    };
    let text = format!(
        "Your fax to {number}{about} was not sent: {}.\r\n\r\nNothing was dialled. \
         Correct it and send the mail again.\r\n",
        refused.words()
    );
    let mail = MessageBuilder::new()
        .from(Address::new_address(
            Some("Fax"),
            format!("postmaster@{domain}"),
        ))
        .to(Address::new_address(
            Some(user.name.as_str()),
            format!("{}@{domain}", user.login),
        ))
        .subject(format!("Fax to {number} not sent"))
        .header(
            "Date",
            Raw::new(officebox_store::date::rfc5322_date(SystemTime::now())),
        )
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
        .map_err(|e| StoreError::io("write a fax report", store.mailbox(&user.login), e))?;
    Maildir::open(&store.mailbox(&user.login))?.deliver(&mail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fax_numbers_are_digits_with_separators_and_an_optional_plus() {
        assert_eq!(number("5551234").as_deref(), Some("5551234"));
        assert_eq!(number("+49-30-1234567").as_deref(), Some("+49301234567"));
        assert_eq!(number("0049.30.1234").as_deref(), Some("0049301234"));
        for bad in [
            "",
            "+",
            "alice",
            "12a4",
            "1",
            "++1234",
            "123456789012345678901",
            "*81",
        ] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }
}
