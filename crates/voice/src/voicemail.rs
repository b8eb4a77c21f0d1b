//! Voicemail: when nobody answers, the box answers, plays the callee's greeting (their
//! own recording, or a spoken default) and a tone, records until the caller presses #,
//! hangs up or reaches `max_message_length`, and delivers the recording into the callee's
//! mailbox as an email with a WAV attachment, the same Maildir POP3 serves. The message
//! is fsynced there (and indexed for the phone menu) before the caller is released.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use officebox_store::{Db, Entry, Folder, Maildir, Voicemail, mailbox_path};
use tokio_util::sync::CancellationToken;

use crate::media::{Endpoint, RATE, Stop};
use crate::wav::{read_wav, write_wav};

/// Recordings shorter than this are not kept (a hang-up at the tone).
pub const MIN_LENGTH: Duration = Duration::from_secs(1);

/// The spoken prompts, built into the binary (assets/prompts, made by
/// scripts/make-prompts).
pub mod prompts {
    pub const GREETING_DEFAULT: &[u8] =
        include_bytes!("../../../assets/prompts/greeting-default.wav");
    pub const GREETING_EXT_PREFIX: &[u8] =
        include_bytes!("../../../assets/prompts/greeting-ext-prefix.wav");
    pub const GREETING_EXT_SUFFIX: &[u8] =
        include_bytes!("../../../assets/prompts/greeting-ext-suffix.wav");
    pub const BEEP: &[u8] = include_bytes!("../../../assets/prompts/beep.wav");
    pub const MESSAGE_SAVED: &[u8] = include_bytes!("../../../assets/prompts/message-saved.wav");
    pub const MESSAGE_TOO_SHORT: &[u8] =
        include_bytes!("../../../assets/prompts/message-too-short.wav");
    pub const PLEASE_HOLD: &[u8] = include_bytes!("../../../assets/prompts/please-hold.wav");
    pub const INVALID_CHOICE: &[u8] = include_bytes!("../../../assets/prompts/invalid-choice.wav");
    pub const OFFICE_OPEN: &[u8] = include_bytes!("../../../assets/prompts/office-open.wav");
    pub const OFFICE_CLOSED: &[u8] = include_bytes!("../../../assets/prompts/office-closed.wav");
    pub const GOODBYE: &[u8] = include_bytes!("../../../assets/prompts/goodbye.wav");
    pub const FORWARD_ON: &[u8] = include_bytes!("../../../assets/prompts/forward-on.wav");
    pub const FORWARD_OFF: &[u8] = include_bytes!("../../../assets/prompts/forward-off.wav");
    pub const FORWARD_REFUSED: &[u8] =
        include_bytes!("../../../assets/prompts/forward-refused.wav");
    pub const DND_ON: &[u8] = include_bytes!("../../../assets/prompts/dnd-on.wav");
    pub const DND_OFF: &[u8] = include_bytes!("../../../assets/prompts/dnd-off.wav");
    pub const PARKED_ON: &[u8] = include_bytes!("../../../assets/prompts/parked-on.wav");
    pub const PARK_EMPTY: &[u8] = include_bytes!("../../../assets/prompts/park-empty.wav");
    pub const PARK_FULL: &[u8] = include_bytes!("../../../assets/prompts/park-full.wav");
    pub const PICKUP_NONE: &[u8] = include_bytes!("../../../assets/prompts/pickup-none.wav");
    pub const CONFERENCE_FULL: &[u8] =
        include_bytes!("../../../assets/prompts/conference-full.wav");
    pub const DIGITS: [&[u8]; 10] = [
        include_bytes!("../../../assets/prompts/digit-0.wav"),
        include_bytes!("../../../assets/prompts/digit-1.wav"),
        include_bytes!("../../../assets/prompts/digit-2.wav"),
        include_bytes!("../../../assets/prompts/digit-3.wav"),
        include_bytes!("../../../assets/prompts/digit-4.wav"),
        include_bytes!("../../../assets/prompts/digit-5.wav"),
        include_bytes!("../../../assets/prompts/digit-6.wav"),
        include_bytes!("../../../assets/prompts/digit-7.wav"),
        include_bytes!("../../../assets/prompts/digit-8.wav"),
        include_bytes!("../../../assets/prompts/digit-9.wav"),
    ];
}

/// A prompt's samples (an unreadable one is silence rather than a failed call).
pub fn prompt(wav: &[u8]) -> Vec<i16> {
    read_wav(wav).unwrap_or_default()
}

/// Where a user's recorded greeting lives.
pub fn greeting_path(data_dir: &Path, login: &str) -> PathBuf {
    data_dir.join("voicemail").join(login).join("greeting.wav")
}

/// The greeting for `login`: their own recording, or "the person at extension N is not
/// available, please leave a message...".
pub fn greeting(data_dir: &Path, login: &str, extension: &str) -> Vec<i16> {
    if let Ok(own) = std::fs::read(greeting_path(data_dir, login))
        && let Ok(samples) = read_wav(&own)
        && !samples.is_empty()
    {
        return samples;
    }
    if extension.is_empty() || !extension.bytes().all(|b| b.is_ascii_digit()) {
        return prompt(prompts::GREETING_DEFAULT);
    }
    let mut out = prompt(prompts::GREETING_EXT_PREFIX);
    for d in extension.bytes() {
        if let Some(digit) = prompts::DIGITS.get(usize::from(d - b'0')) {
            out.extend(prompt(digit));
        }
    }
    out.extend(prompt(prompts::GREETING_EXT_SUFFIX));
    out
}

/// What the deposit came to.
#[derive(Debug)]
pub struct Deposit {
    /// The recording (empty if the caller hung up during the greeting).
    pub samples: Vec<i16>,
    /// The caller is still on the line (ended with # or the length limit).
    pub caller_present: bool,
    /// The endpoint, for a last prompt.
    pub endpoint: Endpoint,
    /// A fax machine called (its tone was heard): the box should answer as one.
    pub fax: bool,
}

/// Plays the greeting and the tone, then records. `hangup` is cancelled when the caller
/// sends BYE; what was recorded until then is kept. A calling fax machine's tone, heard
/// at any point, ends it (`fax`): the box answers as a fax machine instead.
pub async fn record(
    mut ep: Endpoint,
    greeting: Vec<i16>,
    max: Duration,
    hangup: CancellationToken,
) -> Deposit {
    ep.listen_for_fax();
    let over = |endpoint, samples, caller_present, fax| Deposit {
        samples,
        caller_present,
        endpoint,
        fax,
    };
    // # during the greeting skips it (a caller who knows the drill).
    let played = tokio::select! {
        () = hangup.cancelled() => None,
        s = ep.play(&greeting, true) => Some(s),
    };
    match played {
        None => return over(ep, Vec::new(), false, false),
        Some(Stop::Fax) => return over(ep, Vec::new(), true, true),
        Some(_) => {}
    }
    let beep = prompt(prompts::BEEP);
    let beeped = tokio::select! {
        () = hangup.cancelled() => None,
        s = ep.play(&beep, false) => Some(s),
    };
    let mut samples = Vec::new();
    match beeped {
        None => return over(ep, samples, false, false),
        Some(Stop::Fax) => return over(ep, samples, true, true),
        Some(_) => {}
    }
    let stopped = {
        let rec = ep.record(max, &['#'], &mut samples);
        tokio::pin!(rec);
        tokio::select! {
            () = hangup.cancelled() => None,
            stop = &mut rec => Some(stop),
        }
    };
    match stopped {
        Some(Stop::Fax) => over(ep, Vec::new(), true, true),
        Some(_) => over(ep, samples, true, false),
        None => over(ep, samples, false, false),
    }
}

/// Who left the message, and for whom.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// A voicemail, or a call recorded on demand.
    pub kind: Kind,
    pub caller_name: String,
    pub caller_ext: String,
    pub caller_address: String,
    pub callee_login: String,
    pub callee_name: String,
    pub callee_address: String,
    pub host: String,
}

/// What a message in the mailbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// A message left for the user.
    #[default]
    Voicemail,
    /// A call the user recorded (the record code); "caller" is the other party.
    Recording,
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '<' && *c != '>')
        .take(100)
        .collect()
}

/// `m:ss`.
pub fn duration_text(samples: usize) -> String {
    let secs = samples / RATE as usize;
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// The email, built with mail-builder: a short text part and the recording as a WAV
/// attachment (base64).
pub fn email(env: &Envelope, samples: &[i16], now: SystemTime) -> Vec<u8> {
    let stamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let length = duration_text(samples.len());
    let who = format!("{} ({})", clean(&env.caller_name), clean(&env.caller_ext));
    let date = officebox_store::date::rfc5322_date(now);
    let (prefix, text, subject) = match env.kind {
        Kind::Voicemail => (
            "voicemail",
            format!(
                "{who} left you a voicemail of {length} on {date}.\r\n\
                 The recording is attached; it plays in any mail program, and from your phone\r\n\
                 at the voicemail extension.\r\n"
            ),
            format!("Voicemail from {who} ({length})"),
        ),
        Kind::Recording => (
            "call",
            format!(
                "Your call with {who}, recorded at your request: {length}, ending {date}.\r\n\
                 The recording is attached; it plays in any mail program, and from your phone\r\n\
                 at the voicemail extension.\r\n"
            ),
            format!("Recorded call with {who} ({length})"),
        ),
    };
    let file = format!(
        "{prefix}-{}-{}.wav",
        now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        clean(&env.caller_ext)
    );
    let recording = MimePart::new(
        ContentType::new("audio/wav").attribute("name", file.clone()),
        write_wav(samples),
    )
    .attachment(file);
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some(who.clone()),
            clean(&env.caller_address),
        ))
        .to(Address::new_address(
            Some(clean(&env.callee_name)),
            clean(&env.callee_address),
        ))
        .subject(subject)
        // The project's one date format, the same as in the text.
        .header("Date", Raw::new(date))
        .message_id(format!("vm.{stamp:x}@{}", clean(&env.host)))
        .header(
            "X-Officebox-Voicemail",
            Raw::new(format!(
                "caller={}; length={length}",
                clean(&env.caller_ext)
            )),
        )
        .body(MimePart::new(
            "multipart/mixed",
            vec![MimePart::new("text/plain", text), recording],
        ))
        .serialize(&mut out);
    out
}

/// Delivers the message like a mail to the callee (`targets`: their own Maildir, and
/// where their alias sends copies; every copy fsynced or queued), and indexes their own
/// copy in `db` for the phone menu. Blocking. Its name: the own copy's, else "sent on".
pub fn deliver(
    db: &std::sync::Mutex<Db>,
    data_dir: &Path,
    env: &Envelope,
    targets: &crate::mailbox::Targets,
    samples: &[i16],
) -> io::Result<String> {
    let now = SystemTime::now();
    let message = email(env, samples, now);
    let Some(name) = crate::mailbox::deliver(db, data_dir, &env.callee_login, targets, &message)?
    else {
        return Ok("sent on".to_string());
    };
    // In new/ the name has no flags yet: it is what `Entry::unique` gives later.
    let unique = name;
    // The index is a convenience for the menu: the Maildir is the truth (a message
    // deleted by POP3 is gone whatever the index says).
    let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    db.add_voicemail(&Voicemail {
        login: env.callee_login.clone(),
        name: unique.clone(),
        caller: format!("{} ({})", env.caller_name, env.caller_ext),
        duration_ms: i64::try_from(samples.len() / 8).unwrap_or(i64::MAX),
        received_at: i64::try_from(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            .unwrap_or(0),
    })
    .map_err(io::Error::other)?;
    Ok(unique)
}

/// A voicemail as it is now in the mailbox.
#[derive(Debug, Clone)]
pub struct Stored {
    pub entry: Entry,
    pub index: Voicemail,
}

impl Stored {
    /// The caller's extension, from `Name (101)`.
    pub fn caller_ext(&self) -> String {
        self.index
            .caller
            .rsplit_once('(')
            .map(|(_, e)| e.trim_end_matches(')').to_string())
            .unwrap_or_default()
    }
}

/// The voicemails in `login`'s mailbox, new (not yet seen) and saved, each newest first.
/// The Maildir decides: index rows whose message is gone (deleted by POP3) are dropped.
/// Blocking.
pub fn mailbox(db: &Db, data_dir: &Path, login: &str) -> io::Result<(Vec<Stored>, Vec<Stored>)> {
    let maildir = Maildir::open(&mailbox_path(data_dir, login)).map_err(io::Error::other)?;
    let entries = maildir.list().map_err(io::Error::other)?;
    let mut new = Vec::new();
    let mut saved = Vec::new();
    for v in db.voicemails(login).map_err(io::Error::other)? {
        let Some(entry) = entries.iter().find(|e| e.unique() == v.name) else {
            let _ = db.remove_voicemail(login, &v.name);
            continue;
        };
        let stored = Stored {
            entry: entry.clone(),
            index: v,
        };
        if entry.folder() == Folder::New || !entry.flags().contains('S') {
            new.push(stored);
        } else {
            saved.push(stored);
        }
    }
    Ok((new, saved))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use mail_parser::MimeHeaders as _;

    use super::*;

    #[test]
    fn every_prompt_is_readable_8_khz_audio() {
        for p in [
            prompts::GREETING_DEFAULT,
            prompts::GREETING_EXT_PREFIX,
            prompts::GREETING_EXT_SUFFIX,
            prompts::BEEP,
            prompts::MESSAGE_SAVED,
            prompts::MESSAGE_TOO_SHORT,
        ]
        .into_iter()
        .chain(prompts::DIGITS)
        {
            let s = read_wav(p).unwrap();
            assert!(s.len() > 1000, "a prompt of {} samples", s.len());
        }
    }

    #[test]
    fn the_email_carries_the_recording_as_a_wav_attachment() {
        let env = Envelope {
            kind: Kind::Voicemail,
            caller_name: "Alice Example".into(),
            caller_ext: "101".into(),
            caller_address: "alice@office.test".into(),
            callee_login: "bob".into(),
            callee_name: "Bob Example".into(),
            callee_address: "bob@office.test".into(),
            host: "officebox.office.test".into(),
        };
        let samples: Vec<i16> = (0..8000 * 12).map(|i| (i % 100) as i16).collect();
        let raw = email(&env, &samples, SystemTime::now());
        let m = String::from_utf8(raw.clone()).unwrap();
        assert!(m.contains("From: \"Alice Example (101)\" <alice@office.test>\r\n"));
        assert!(m.contains("Subject: Voicemail from Alice Example (101) (0:12)\r\n"));
        assert!(m.contains("Content-Type: audio/wav; name=\"voicemail-"));
        assert!(m.lines().all(|l| l.len() <= 998));
        // Read back as a mail program would.
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Voicemail from Alice Example (101) (0:12)")
        );
        assert_eq!(
            parsed
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            Some("bob@office.test")
        );
        assert!(
            parsed
                .body_text(0)
                .unwrap()
                .contains("left you a voicemail of 0:12")
        );
        let wav = parsed.attachment(0).unwrap();
        assert!(wav.attachment_name().unwrap().starts_with("voicemail-"));
        assert_eq!(read_wav(wav.contents()).unwrap(), samples);
    }

    #[test]
    fn names_that_are_not_ascii_are_encoded_words() {
        let env = Envelope {
            kind: Kind::Voicemail,
            caller_name: "J\u{f6}rg M\u{fc}ller".into(),
            caller_ext: "103".into(),
            caller_address: "joerg@office.test".into(),
            callee_login: "bob".into(),
            callee_name: "Bob".into(),
            callee_address: "bob@office.test".into(),
            host: "officebox.office.test".into(),
        };
        let raw = email(&env, &[0; 8000], SystemTime::now());
        assert!(raw.is_ascii(), "header and body are 7-bit");
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Voicemail from J\u{f6}rg M\u{fc}ller (103) (0:01)")
        );
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name(), Some("J\u{f6}rg M\u{fc}ller (103)"));
    }

    #[test]
    fn the_default_greeting_says_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let g = greeting(dir.path(), "bob", "102");
        let expected = prompt(prompts::GREETING_EXT_PREFIX).len()
            + prompt(prompts::DIGITS[1]).len()
            + prompt(prompts::DIGITS[0]).len()
            + prompt(prompts::DIGITS[2]).len()
            + prompt(prompts::GREETING_EXT_SUFFIX).len();
        assert_eq!(g.len(), expected);
        let own = greeting_path(dir.path(), "bob");
        std::fs::create_dir_all(own.parent().unwrap()).unwrap();
        std::fs::write(&own, write_wav(&[1, 2, 3])).unwrap();
        assert_eq!(greeting(dir.path(), "bob", "102"), vec![1, 2, 3]);
    }
}
