//! The auto attendant: the box answers a call from outside, plays the attendant's
//! greeting, and sends the call where the caller's key leads: a key `0`-`9`, `*` or `#`
//! to its destination, or (dial by extension) an office extension keyed in whole. No key
//! within the attendant's time goes to its no-input destination; a key that leads
//! nowhere says so and goes to its invalid destination. Keys come as RFC 4733 events in
//! the audio or as SIP INFO, and may interrupt the greeting.
//!
//! The greeting is a recording made for the attendant (by an administrator from a phone,
//! in the voicemail menu, or uploaded on the Phone Routing page: [`recorded_path`]),
//! else the config's: a WAV file (`greeting_file`, relative to the data directory; any
//! rate, converted to the phone's 8 kHz), or text spoken by espeak-ng. Speech is made
//! once per text, when the config is applied ([`prepare`]), and kept in
//! `attendants/speech/` under the data directory.
//! A day and a night greeting are two attendants, chosen by a schedule.
//!
//! What the choice leads to is the call's business ([`crate::call`]): this module only
//! decides.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use officebox_config::dialplan::{Attendant, Destination, Greeting};
use tracing::{info, warn};

use crate::media::{Endpoint, Stop};
use crate::voicemail::prompt;
use crate::wav;

/// How long the caller may pause between the digits of an extension.
pub const INTER_DIGIT: Duration = Duration::from_secs(3);

/// An extension is keyed in within this many digits.
const MAX_DIGITS: usize = 16;

/// One attendant as a call uses it.
#[derive(Debug, Clone)]
pub struct AttendantSetup {
    pub attendant: Attendant,
    /// The office's extensions, for dial by extension (empty when it is off).
    pub extensions: Vec<String>,
    pub data_dir: PathBuf,
    /// The fax machine (`[[phone.fax]]`, its name) a calling fax machine is sent to when
    /// its tone is heard; none: the attendant does not listen for one.
    pub fax: Option<String>,
}

/// Plays the greeting and returns where the caller's keys lead (a calling fax
/// machine's tone: to the fax machine, when the office has one).
pub async fn run(ep: &mut Endpoint, a: &AttendantSetup) -> Destination {
    let greeting = greeting(&a.data_dir, &a.attendant).await;
    if a.fax.is_some() {
        ep.listen_for_fax();
    }
    let first = match ep.play(&greeting, true).await {
        Stop::Digit(d) => Some(d),
        Stop::Done | Stop::Fax => ep.digit(a.attendant.timeout).await,
    };
    if let (true, Some(fax)) = (ep.fax_heard(), &a.fax) {
        info!(message = "phone: attendant: a fax machine calls", attendant = %a.attendant.name, fax = %fax);
        return Destination::Fax(fax.clone());
    }
    let Some(first) = first else {
        info!(message = "phone: attendant: no key pressed", attendant = %a.attendant.name);
        return a.attendant.no_input.clone();
    };
    let mut keyed = first.to_string();
    while wants_more(a, &keyed) {
        match ep.digit(INTER_DIGIT).await {
            Some('#') | None => break,
            Some(d) => keyed.push(d),
        }
    }
    match choose(a, &keyed) {
        Some(d) => {
            info!(message = "phone: attendant: key pressed", attendant = %a.attendant.name, keys = %keyed, destination = %d);
            ep.play(&prompt(crate::voicemail::prompts::PLEASE_HOLD), false)
                .await;
            d
        }
        None => {
            info!(message = "phone: attendant: invalid key", attendant = %a.attendant.name, keys = %keyed);
            ep.play(&prompt(crate::voicemail::prompts::INVALID_CHOICE), false)
                .await;
            a.attendant.invalid.clone()
        }
    }
}

/// Whether the caller may still be keying in an extension: some extension is longer and
/// starts with what was keyed.
pub fn wants_more(a: &AttendantSetup, keyed: &str) -> bool {
    keyed.len() < MAX_DIGITS
        && a.extensions
            .iter()
            .any(|e| e.len() > keyed.len() && e.starts_with(keyed))
}

/// Where `keyed` leads: an extension keyed in whole, else a single key's destination.
pub fn choose(a: &AttendantSetup, keyed: &str) -> Option<Destination> {
    let keyed = keyed.trim_end_matches('#');
    if a.extensions.iter().any(|e| e == keyed) {
        return Some(Destination::Extension(keyed.to_string()));
    }
    let mut chars = keyed.chars();
    match (chars.next(), chars.next()) {
        (Some(k), None) => a
            .attendant
            .keys
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, d)| d.clone()),
        // A lone # (the end key) is a key of its own when the attendant has it.
        (None, None) => a
            .attendant
            .keys
            .iter()
            .find(|(key, _)| *key == '#')
            .map(|(_, d)| d.clone()),
        _ => None,
    }
}

/// Where the speech for a text greeting is kept: one file per attendant and text.
fn speech_path(data_dir: &Path, attendant: &str, text: &str) -> PathBuf {
    speech_dir(data_dir).join(format!("{attendant}-{:016x}.wav", fnv1a(text.as_bytes())))
}

/// Where speech is kept (nothing else is: [`prepare`] removes what is no longer said).
fn speech_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("attendants").join("speech")
}

/// FNV-1a: a stable name for a text (the same on every build, unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The greeting's samples: the WAV file, or the text's speech (made now if it was not
/// yet). When neither can be had the caller hears "please hold" rather than silence.
async fn greeting(data_dir: &Path, a: &Attendant) -> Vec<i16> {
    let (dir, a2) = (data_dir.to_path_buf(), a.clone());
    let loaded = tokio::task::spawn_blocking(move || load(&dir, &a2)).await;
    match loaded {
        Ok(Ok(samples)) if !samples.is_empty() => samples,
        Ok(Err(error)) => {
            warn!(message = "phone: attendant greeting unavailable", attendant = %a.name, %error);
            prompt(crate::voicemail::prompts::PLEASE_HOLD)
        }
        _ => prompt(crate::voicemail::prompts::PLEASE_HOLD),
    }
}

/// Where the greeting recorded for attendant `name` is kept (it wins over the config's).
pub use officebox_store::attendant_greeting_path as recorded_path;

/// Reads (or makes) an attendant's greeting, blocking.
fn load(data_dir: &Path, a: &Attendant) -> io::Result<Vec<i16>> {
    if let Ok(bytes) = std::fs::read(recorded_path(data_dir, &a.name)) {
        match wav::read_any_wav(&bytes) {
            Ok(samples) if !samples.is_empty() => return Ok(samples),
            Ok(_) => {}
            Err(error) => {
                warn!(message = "phone: the attendant's recorded greeting is unreadable", attendant = %a.name, %error);
            }
        }
    }
    match &a.greeting {
        Greeting::File(path) => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                data_dir.join(path)
            };
            let bytes = std::fs::read(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            wav::read_any_wav(&bytes)
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
        }
        Greeting::Text(text) => {
            let path = speech_path(data_dir, &a.name, text);
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(samples) = wav::read_wav(&bytes)
            {
                return Ok(samples);
            }
            let samples = speak(text)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            officebox_store::write_atomic(&path, &wav::write_wav(&samples), 0o644)
                .map_err(io::Error::other)?;
            Ok(samples)
        }
    }
}

/// Makes the speech of every attendant's text greeting that has none yet, and removes
/// speech no attendant says any more; run when a config is applied, so no caller waits
/// for espeak-ng.
pub fn prepare(data_dir: &Path, attendants: &[Attendant]) {
    let mut keep = Vec::new();
    for a in attendants {
        if let Greeting::Text(text) = &a.greeting {
            let path = speech_path(data_dir, &a.name, text);
            if !path.exists()
                && let Err(error) = load(data_dir, a)
            {
                warn!(message = "phone: attendant greeting not spoken", attendant = %a.name, %error);
            }
            keep.push(path);
        }
    }
    if let Ok(entries) = std::fs::read_dir(speech_dir(data_dir)) {
        for e in entries.flatten() {
            let path = e.path();
            let speech = path.extension().is_some_and(|x| x == "wav");
            if speech && !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// `text` spoken by espeak-ng (US English, 150 words a minute: the voice of the built-in
/// prompts), at the phone's rate. The text goes in on standard input, so it is never
/// taken for an option.
fn speak(text: &str) -> io::Result<Vec<i16>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "--stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("espeak-ng: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("espeak-ng: {}", out.status)));
    }
    wav::read_any_wav(&out.stdout).map_err(|e| io::Error::other(format!("espeak-ng: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn setup(extensions: &[&str], keys: &[(char, &str)]) -> AttendantSetup {
        AttendantSetup {
            attendant: Attendant {
                name: "main".into(),
                greeting: Greeting::Text("Hello".into()),
                keys: keys
                    .iter()
                    .map(|(k, d)| (*k, Destination::parse(d).unwrap()))
                    .collect(),
                dial_by_extension: !extensions.is_empty(),
                timeout: Duration::from_secs(5),
                no_input: Destination::Operator,
                invalid: Destination::Hangup,
            },
            extensions: extensions.iter().map(|s| s.to_string()).collect(),
            data_dir: PathBuf::new(),
            fax: None,
        }
    }

    #[test]
    fn keys_and_extensions_are_told_apart() {
        let a = setup(
            &["101", "102", "20"],
            &[
                ('1', "group:sales"),
                ('2', "voicemail:bob"),
                ('#', "hangup"),
            ],
        );
        // 1 may begin 101: the caller has a moment to go on; alone it is the key.
        assert!(wants_more(&a, "1"));
        assert!(wants_more(&a, "10"));
        assert!(!wants_more(&a, "101"), "a whole extension is not waited on");
        assert!(!wants_more(&a, "3"));
        assert_eq!(
            choose(&a, "1"),
            Some(Destination::Group("sales".into())),
            "the key"
        );
        assert_eq!(
            choose(&a, "101"),
            Some(Destination::Extension("101".into()))
        );
        assert_eq!(
            choose(&a, "20#"),
            Some(Destination::Extension("20".into())),
            "# ends the digits"
        );
        assert_eq!(choose(&a, "#"), Some(Destination::Hangup));
        assert_eq!(choose(&a, "10"), None, "no such extension");
        assert_eq!(choose(&a, "7"), None, "no such key");
        // Dial by extension off: only the keys.
        let keys_only = setup(&[], &[('1', "group:sales")]);
        assert!(!wants_more(&keys_only, "1"));
        assert_eq!(choose(&keys_only, "101"), None);
    }

    #[test]
    fn a_text_greeting_is_spoken_once_and_old_speech_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = setup(&[], &[]).attendant;
        prepare(dir.path(), std::slice::from_ref(&a));
        let spoken = speech_path(dir.path(), "main", "Hello");
        let samples = wav::read_wav(&std::fs::read(&spoken).unwrap()).unwrap();
        assert!(samples.len() > 2000, "a word at 8 kHz: {}", samples.len());
        // A new text: new speech, the old file gone.
        let b = Attendant {
            greeting: Greeting::Text("Good evening".into()),
            ..a
        };
        prepare(dir.path(), std::slice::from_ref(&b));
        assert!(!spoken.exists());
        assert!(speech_path(dir.path(), "main", "Good evening").exists());
        assert_eq!(
            load(dir.path(), &b).unwrap().len(),
            wav::read_wav(&std::fs::read(speech_path(dir.path(), "main", "Good evening")).unwrap())
                .unwrap()
                .len()
        );
    }
}
