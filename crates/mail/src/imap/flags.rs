//! IMAP flags and where they live: the system flags in the Maildir file name (so POP3,
//! the voicemail menu and any Maildir reader agree on `\Seen`), keywords in the index.
//! `$Forwarded` is Maildir's `P` (passed), as dovecot has it.

use super::command::{Flag, StoreMode};

/// Maildir letters and the IMAP flag each stands for.
const LETTERS: [(char, &str); 6] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// A message's flags as IMAP shows them: the system flags its Maildir letters say,
/// then its keywords (`\Recent` first when it is recent to this session).
pub fn shown(letters: &str, keywords: &[String], recent: bool) -> Vec<String> {
    let mut out = Vec::new();
    if recent {
        out.push("\\Recent".to_string());
    }
    for (letter, flag) in LETTERS {
        if letters.contains(letter) {
            out.push(flag.to_string());
        }
    }
    for k in keywords {
        if !out.iter().any(|f| f.eq_ignore_ascii_case(k)) {
            out.push(k.clone());
        }
    }
    out
}

/// Flags as stored: Maildir letters, and keywords (each once, as first written).
/// `\Recent` and unknown system flags are not stored (a client cannot set them).
pub fn stored(flags: &[Flag]) -> (String, Vec<String>) {
    let mut letters = String::new();
    let mut keywords: Vec<String> = Vec::new();
    for Flag(f) in flags {
        if let Some((letter, _)) = LETTERS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(f))
        {
            if !letters.contains(*letter) {
                letters.push(*letter);
            }
        } else if !f.starts_with('\\') && !keywords.iter().any(|k| k.eq_ignore_ascii_case(f)) {
            keywords.push(f.clone());
        }
    }
    let mut sorted: Vec<char> = letters.chars().collect();
    sorted.sort_unstable();
    (sorted.into_iter().collect(), keywords)
}

/// The flags after STORE `mode` `given` on a message with `letters` and `keywords`.
pub fn apply(
    mode: StoreMode,
    (letters, keywords): (&str, &[String]),
    given: &[Flag],
) -> (String, Vec<String>) {
    let (g_letters, g_keywords) = stored(given);
    match mode {
        StoreMode::Replace => (g_letters, g_keywords),
        StoreMode::Add => {
            let mut l: Vec<char> = letters.chars().chain(g_letters.chars()).collect();
            l.sort_unstable();
            l.dedup();
            let mut k = keywords.to_vec();
            for g in g_keywords {
                if !k.iter().any(|x| x.eq_ignore_ascii_case(&g)) {
                    k.push(g);
                }
            }
            (l.into_iter().collect(), k)
        }
        StoreMode::Remove => (
            letters
                .chars()
                .filter(|c| !g_letters.contains(*c))
                .collect(),
            keywords
                .iter()
                .filter(|k| !g_keywords.iter().any(|g| g.eq_ignore_ascii_case(k)))
                .cloned()
                .collect(),
        ),
    }
}

/// The flags a folder lists as possible (FLAGS), and those a client may set
/// (PERMANENTFLAGS, with `\*`: new keywords too).
pub fn defined() -> Vec<String> {
    LETTERS.iter().map(|(_, f)| (*f).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> Vec<Flag> {
        list.iter().map(|f| Flag((*f).to_string())).collect()
    }

    #[test]
    fn system_flags_are_maildir_letters_and_keywords_stay_keywords() {
        let (l, k) = stored(&flags(&[
            "\\Seen",
            "\\Deleted",
            "$Forwarded",
            "$Work",
            "\\Recent",
            "$work",
        ]));
        assert_eq!(l, "PST");
        assert_eq!(k, vec!["$Work"]);
        assert_eq!(
            shown(&l, &k, true),
            vec!["\\Recent", "$Forwarded", "\\Seen", "\\Deleted", "$Work"]
        );
        assert_eq!(shown("", &[], false), Vec::<String>::new());
    }

    #[test]
    fn store_adds_removes_and_replaces() {
        let now = ("FS", &["$Work".to_string()][..]);
        assert_eq!(
            apply(StoreMode::Add, now, &flags(&["\\Answered", "$Later"])),
            (
                "FRS".to_string(),
                vec!["$Work".to_string(), "$Later".to_string()]
            )
        );
        assert_eq!(
            apply(StoreMode::Remove, now, &flags(&["\\Seen", "$WORK"])),
            ("F".to_string(), vec![])
        );
        assert_eq!(
            apply(StoreMode::Replace, now, &flags(&["\\Draft"])),
            ("D".to_string(), vec![])
        );
    }
}
