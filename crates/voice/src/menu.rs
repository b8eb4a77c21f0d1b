//! The voicemail menu, at the voicemail extension (`*97`): the PIN, how many new and saved
//! messages there are, each played newest first with replay (1), delete (7), save (9)
//! and next (#), and recording one's greeting (3). Every prompt can be interrupted by a
//! key, which counts as the answer.
//!
//! The mailbox is the Maildir that POP3 reads: a voicemail is a message there that the
//! voicemail index knows. Deleting here deletes the message; a message deleted by POP3
//! is no longer offered (its index row is dropped when the menu sees it gone). "New"
//! means not yet seen (Maildir `new/`, or no S flag); saving marks it seen.

use std::path::PathBuf;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders as _};
use officebox_store::{Db, Entry, Maildir, mailbox_path};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::media::{Endpoint, Stop};
use crate::voicemail::{self, prompt};
use crate::wav::read_wav;

/// Waiting for a key after a prompt.
const KEY_WAIT: Duration = Duration::from_secs(8);
/// PIN tries per call.
const PIN_TRIES: usize = 3;
/// The longest greeting.
const MAX_GREETING: Duration = Duration::from_secs(60);

macro_rules! wav {
    ($name:literal) => {
        include_bytes!(concat!("../../../assets/prompts/", $name, ".wav"))
    };
}

/// Whose menu it is.
#[derive(Debug, Clone)]
pub struct MenuSetup {
    pub data_dir: PathBuf,
    /// The phone service's one handle on the state database (the voicemail index).
    pub db: std::sync::Arc<std::sync::Mutex<Db>>,
    pub login: String,
    /// argon2 hash of the voicemail PIN; without one the menu cannot be opened.
    pub pin_hash: Option<String>,
    /// The auto attendants whose greeting this user may record (an administrator's: all
    /// of them, in the config's order; 5 in the menu).
    pub attendants: Vec<String>,
}

/// One voicemail in the mailbox.
#[derive(Debug, Clone)]
struct Message {
    entry: Entry,
    caller_ext: String,
}

/// Runs the menu until the caller leaves (`false`: hung up) or it says goodbye (`true`).
pub async fn run(mut ep: Endpoint, m: MenuSetup, hangup: CancellationToken) -> bool {
    tokio::select! {
        () = hangup.cancelled() => false,
        () = session(&mut ep, &m) => true,
    }
}

async fn session(ep: &mut Endpoint, m: &MenuSetup) {
    if !pin(ep, m).await {
        say(ep, &[wav!("goodbye")]).await;
        return;
    }
    loop {
        let (new, saved) = messages(m).await.unwrap_or_default();
        let mut intro: Vec<&[u8]> = vec![wav!("you-have")];
        count(
            &mut intro,
            new.len(),
            wav!("new-message"),
            wav!("new-messages"),
        );
        intro.push(wav!("and"));
        count(
            &mut intro,
            saved.len(),
            wav!("saved-message"),
            wav!("saved-messages"),
        );
        intro.push(wav!("menu-main"));
        if !m.attendants.is_empty() {
            intro.push(wav!("menu-admin"));
        }
        let key = match say(ep, &intro).await {
            Some(k) => Some(k),
            None => ep.digit(KEY_WAIT).await,
        };
        info!(message = "phone: voicemail menu", user = %m.login, new = new.len(), saved = saved.len(), ?key);
        match key {
            Some('1') => {
                let all: Vec<Message> = new.into_iter().chain(saved).collect();
                if play_messages(ep, m, all).await.is_none() {
                    return;
                }
            }
            Some('3') => record_greeting(ep, m).await,
            Some('5') if !m.attendants.is_empty() => record_attendant_greeting(ep, m).await,
            Some('*') | None => {
                say(ep, &[wav!("goodbye")]).await;
                return;
            }
            Some(_) => {}
        }
    }
}

/// Plays the pieces one after another; a key interrupts and is returned.
async fn say(ep: &mut Endpoint, pieces: &[&[u8]]) -> Option<char> {
    for p in pieces {
        if let Stop::Digit(d) = ep.play(&prompt(p), true).await {
            return Some(d);
        }
    }
    None
}

/// "no new messages", "one new message", "12 new messages", "134 ..." (digit by digit).
fn count<'a>(out: &mut Vec<&'a [u8]>, n: usize, one: &'a [u8], many: &'a [u8]) {
    const NUMBERS: [&[u8]; 11] = [
        wav!("number-10"),
        wav!("number-11"),
        wav!("number-12"),
        wav!("number-13"),
        wav!("number-14"),
        wav!("number-15"),
        wav!("number-16"),
        wav!("number-17"),
        wav!("number-18"),
        wav!("number-19"),
        wav!("number-20"),
    ];
    match n {
        0 => out.push(wav!("no")),
        1..=9 => out.extend(voicemail::prompts::DIGITS.get(n).copied()),
        10..=20 => out.extend(n.checked_sub(10).and_then(|i| NUMBERS.get(i)).copied()),
        _ => out.extend(
            n.to_string()
                .bytes()
                .filter_map(|b| voicemail::prompts::DIGITS.get(usize::from(b.wrapping_sub(b'0')))),
        ),
    }
    out.push(if n == 1 { one } else { many });
}

/// Asks for the PIN (digits then #) up to three times.
async fn pin(ep: &mut Endpoint, m: &MenuSetup) -> bool {
    let Some(hash) = m.pin_hash.clone() else {
        return false;
    };
    for _ in 0..PIN_TRIES {
        let entered = read_pin(ep).await;
        let checked = officebox_secrets::login::check(Some(hash.clone()), entered).await;
        if checked == officebox_secrets::login::Checked::Right {
            info!(message = "phone: voicemail menu opened", user = %m.login);
            return true;
        }
        info!(message = "phone: voicemail menu: wrong PIN", user = %m.login);
        wrong_pin(ep).await;
    }
    false
}

/// "Please enter your pin, then press pound", and the digits keyed (without the #).
pub(crate) async fn read_pin(ep: &mut Endpoint) -> String {
    let mut entered = String::new();
    if let Some(d) = say(ep, &[wav!("enter-pin")]).await {
        entered.push(d);
    }
    while entered.len() <= 12 && !entered.ends_with('#') {
        match ep.digit(KEY_WAIT).await {
            Some(d) => entered.push(d),
            None => break,
        }
    }
    entered.trim_end_matches('#').to_string()
}

/// "That pin is not correct."
pub(crate) async fn wrong_pin(ep: &mut Endpoint) {
    say(ep, &[wav!("wrong-pin")]).await;
}

/// The user's voicemails, new and saved, each newest first.
async fn messages(m: &MenuSetup) -> Option<(Vec<Message>, Vec<Message>)> {
    let (dir, login, db) = (
        m.data_dir.clone(),
        m.login.clone(),
        std::sync::Arc::clone(&m.db),
    );
    let (new, saved) = tokio::task::spawn_blocking(move || {
        let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        voicemail::mailbox(&db, &dir, &login)
    })
    .await
    .ok()?
    .ok()?;
    let convert = |list: Vec<voicemail::Stored>| {
        list.into_iter()
            .map(|v| Message {
                caller_ext: v.caller_ext(),
                entry: v.entry,
            })
            .collect()
    };
    Some((convert(new), convert(saved)))
}

/// The recording inside a voicemail email: its audio/wav part, read by mail-parser.
fn recording_of(message: &[u8]) -> Option<Vec<i16>> {
    let parsed = MessageParser::default().parse(message)?;
    let part = parsed.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("audio")
                && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("wav"))
        })
    })?;
    read_wav(part.contents()).ok()
}

/// Plays each message with its options. `None` when the caller is gone (never here: a
/// hang-up ends the whole menu from outside), `Some(())` back to the main menu.
async fn play_messages(ep: &mut Endpoint, m: &MenuSetup, all: Vec<Message>) -> Option<()> {
    for msg in all {
        let maildir = Maildir::open(&mailbox_path(&m.data_dir, &m.login)).ok()?;
        let entry = msg.entry.clone();
        let read = {
            let (maildir, entry) = (maildir.clone(), entry.clone());
            tokio::task::spawn_blocking(move || maildir.read(&entry))
                .await
                .ok()?
        };
        let Ok(bytes) = read else {
            continue; // gone meanwhile (POP3)
        };
        let audio = recording_of(&bytes).unwrap_or_default();
        loop {
            let mut intro: Vec<&[u8]> = vec![wav!("message-from"), wav!("extension")];
            for b in msg.caller_ext.bytes().filter(u8::is_ascii_digit) {
                intro.extend(voicemail::prompts::DIGITS.get(usize::from(b - b'0')));
            }
            let mut key = say(ep, &intro).await;
            if key.is_none()
                && let Stop::Digit(d) = ep.play(&audio, true).await
            {
                key = Some(d);
            }
            if key.is_none() {
                key = match say(ep, &[wav!("menu-message")]).await {
                    Some(k) => Some(k),
                    None => ep.digit(KEY_WAIT).await,
                };
            }
            info!(message = "phone: voicemail message", user = %m.login, message = %entry.unique(), ?key);
            match key {
                Some('1') => continue,
                Some('7') => {
                    let (maildir, entry) = (maildir.clone(), entry.clone());
                    let (db, login, name) = (
                        std::sync::Arc::clone(&m.db),
                        m.login.clone(),
                        entry.unique().to_string(),
                    );
                    let _ = tokio::task::spawn_blocking(move || {
                        let _ = maildir.delete(&entry);
                        let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        let _ = db.remove_voicemail(&login, &name);
                    })
                    .await;
                    say(ep, &[wav!("deleted")]).await;
                    break;
                }
                Some('9') => {
                    let (maildir, entry) = (maildir.clone(), entry.clone());
                    let _ = tokio::task::spawn_blocking(move || maildir.mark_seen(&entry)).await;
                    say(ep, &[wav!("saved")]).await;
                    break;
                }
                Some('*') => return Some(()),
                _ => break, // '#' or no answer: the next message
            }
        }
    }
    say(ep, &[wav!("no-more-messages")]).await;
    Some(())
}

/// Records a new greeting (after the tone, until #).
async fn record_greeting(ep: &mut Endpoint, m: &MenuSetup) {
    record_to(ep, voicemail::greeting_path(&m.data_dir, &m.login)).await;
}

/// An administrator records an auto attendant's greeting (which one, by its number in
/// the config, when there are several).
async fn record_attendant_greeting(ep: &mut Endpoint, m: &MenuSetup) {
    let name = if let [only] = m.attendants.as_slice() {
        only.clone()
    } else {
        let key = match say(ep, &[wav!("which-attendant")]).await {
            Some(k) => Some(k),
            None => ep.digit(KEY_WAIT).await,
        };
        let chosen = key
            .and_then(|k| k.to_digit(10))
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| m.attendants.get(i));
        match chosen {
            Some(n) => n.clone(),
            None => {
                say(ep, &[voicemail::prompts::INVALID_CHOICE]).await;
                return;
            }
        }
    };
    info!(message = "phone: recording an attendant's greeting", user = %m.login, attendant = %name);
    record_to(ep, crate::attendant::recorded_path(&m.data_dir, &name)).await;
}

/// "Record after the tone", the tone, then what is said until # (or a minute) goes to
/// `path` (a WAV), and "recorded" is said; too short, nothing is kept.
async fn record_to(ep: &mut Endpoint, path: PathBuf) {
    say(ep, &[wav!("record-greeting")]).await;
    ep.play(&prompt(voicemail::prompts::BEEP), false).await;
    let mut samples = Vec::new();
    ep.record(MAX_GREETING, &['#'], &mut samples).await;
    if samples.len() < voicemail::MIN_LENGTH.as_millis() as usize * 8 {
        return;
    }
    let written = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        officebox_store::write_atomic(&path, &crate::wav::write_wav(&samples), 0o600)
            .map_err(std::io::Error::other)
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        say(ep, &[wav!("greeting-recorded")]).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_spoken_with_the_right_words() {
        let mut v = Vec::new();
        count(&mut v, 0, b"one", b"many");
        assert_eq!(v, vec![wav!("no") as &[u8], b"many"]);
        let mut v = Vec::new();
        count(&mut v, 1, b"one", b"many");
        assert_eq!(v.last().copied(), Some(&b"one"[..]));
        let mut v = Vec::new();
        count(&mut v, 134, b"one", b"many");
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn the_recording_is_found_in_a_voicemail_email() {
        let env = voicemail::Envelope {
            kind: voicemail::Kind::Voicemail,
            caller_name: "A".into(),
            caller_ext: "101".into(),
            caller_address: "a@x".into(),
            callee_login: "b".into(),
            callee_name: "B".into(),
            callee_address: "b@x".into(),
            host: "h".into(),
        };
        let samples: Vec<i16> = (0..1600).map(|i| i as i16).collect();
        let mail = voicemail::email(&env, &samples, std::time::SystemTime::now());
        assert_eq!(recording_of(&mail).unwrap(), samples);
        assert!(recording_of(b"Subject: hi\r\n\r\nno audio").is_none());
        assert!(recording_of(b"").is_none());
    }

    #[test]
    fn the_recording_is_found_however_the_mail_is_written() {
        // As another program might write it: other boundaries and header case, the
        // type in upper case with a parameter, folded fields, the base64 in long lines.
        let samples: Vec<i16> = (0..800).map(|i| (i * 7) as i16).collect();
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(crate::wav::write_wav(&samples))
        };
        let mail = format!(
            "From: a@x\r\nSubject: vm\r\nMIME-Version: 1.0\r\n\
             content-type: multipart/mixed;\r\n\tboundary=\"XyZ\"\r\n\r\n\
             preamble\r\n--XyZ\r\ncontent-type: text/plain\r\n\r\n\
             Content-Type: audio/wav in the text is not the recording\r\n\
             --XyZ\r\nContent-Type: AUDIO/WAV;\r\n name=\"m.wav\"\r\n\
             content-transfer-encoding: BASE64\r\n\r\n{b64}\r\n--XyZ--\r\n"
        );
        assert_eq!(recording_of(mail.as_bytes()).unwrap(), samples);
    }
}
