//! A user's IMAP folders on disk and in the index. INBOX is the user's Maildir itself
//! (where SMTP, POP3, voicemail and the fetcher put mail); every other folder is a
//! Maildir++ subfolder, `.<name>` beside `new/`, `cur/` and `tmp/`, as dovecot and
//! Courier lay them out, with `/` (the hierarchy delimiter clients see) written as `.`
//! and `.`, `%` and `/` inside a name written `%2E`, `%25`, `%2F`.
//!
//! [`sync`] lists a folder's files and brings its index in line (store's
//! `Db::imap_sync`): the one way the index learns what changed on disk.

use std::path::{Path, PathBuf};

use officebox_store::{Db, Entry, ImapFolder, ImapMessage, Maildir, Places, StoreError, Synced};

/// The hierarchy delimiter clients see.
pub const DELIMITER: char = '/';

/// The folders every mailbox has, with their special use (RFC 6154).
pub const SPECIAL: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// Why a folder name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a folder name cannot be empty, nor have an empty part")]
    Empty,
    #[error("a folder name cannot have control characters")]
    Control,
    #[error("a folder name is at most 255 bytes")]
    TooLong,
    #[error("a folder name cannot have a part that is . or ..")]
    Dots,
}

/// Checks a folder name (UTF-8, as the client gave it once decoded): its canonical
/// form (`INBOX` in any case is INBOX, also as the first part of a path).
pub fn canonical(name: &str) -> Result<String, NameError> {
    if name.len() > 255 {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    let mut parts: Vec<&str> = name.split(DELIMITER).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(NameError::Empty);
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(NameError::Dots);
    }
    if let Some(first) = parts.first_mut()
        && first.eq_ignore_ascii_case("INBOX")
    {
        *first = "INBOX";
    }
    Ok(parts.join("/"))
}

/// The directory of folder `name` (canonical) in the Maildir at `root`.
pub fn dir_of(root: &Path, name: &str) -> PathBuf {
    if name == "INBOX" {
        return root.to_path_buf();
    }
    let encoded: Vec<String> = name
        .split(DELIMITER)
        .map(|part| {
            part.replace('%', "%25")
                .replace('.', "%2E")
                .replace('/', "%2F")
        })
        .collect();
    root.join(format!(".{}", encoded.join(".")))
}

/// The folder a Maildir++ directory name (`.Sent`, `.Work.2026`) stands for.
pub fn name_of(dir_name: &str) -> Option<String> {
    let rest = dir_name.strip_prefix('.')?;
    if rest.is_empty() || rest == "." {
        return None;
    }
    let parts: Vec<String> = rest
        .split('.')
        .map(|p| {
            p.replace("%2E", ".")
                .replace("%2F", "/")
                .replace("%25", "%")
        })
        .collect();
    if parts.iter().any(String::is_empty) {
        return None;
    }
    Some(parts.join("/"))
}

/// The folders on disk: INBOX, then every Maildir++ subfolder, by name.
pub fn folders(root: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = vec!["INBOX".to_string()];
    let read = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(StoreError::io("list", root, e)),
    };
    for item in read {
        let item = item.map_err(|e| StoreError::io("list", root, e))?;
        let Ok(dir) = item.file_name().into_string() else {
            continue;
        };
        if let Some(name) = name_of(&dir)
            && item.path().join("cur").is_dir()
        {
            names.push(name);
        }
    }
    names.get_mut(1..).unwrap_or_default().sort();
    Ok(names)
}

/// Makes the special folders a mailbox lacks (a new user's first login).
pub fn make_special(root: &Path) -> Result<(), StoreError> {
    for (name, _) in SPECIAL {
        Maildir::open(&dir_of(root, name))?;
    }
    Ok(())
}

/// A folder as it is now: its index row, what changed since the last look, its
/// messages in UID order, and their files in the same order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub folder: ImapFolder,
    pub changes: Synced,
    /// Shared: sessions on one folder (and the index's cache of it) hold one copy.
    pub messages: std::sync::Arc<Vec<ImapMessage>>,
    pub maildir: Maildir,
    /// `files.get(i)` is where the file of `messages[i]` is (`None`: gone since the
    /// index row was read), told against its unique name and flags: a byte a message.
    pub files: std::sync::Arc<Places>,
}

impl Snapshot {
    /// The file of the message at index `i` (sequence number `i + 1`).
    pub fn file(&self, i: usize) -> Option<Entry> {
        file_of(&self.messages, &self.files, i)
    }
}

/// The file of `messages[i]`, from `files` (a snapshot's lists).
pub fn file_of(messages: &[ImapMessage], files: &Places, i: usize) -> Option<Entry> {
    let m = messages.get(i)?;
    Entry::at(&m.unique, &m.flags, m.size, &files.get(i)?)
}

/// Where the files of `messages` are, in their order, found in `entries` (a sorted list
/// and a binary search, not a map of every name).
fn aligned(mut entries: Vec<Entry>, messages: &[ImapMessage]) -> Places {
    entries.sort_unstable_by(|a, b| a.unique().cmp(b.unique()));
    messages
        .iter()
        .map(|m| {
            let i = entries
                .binary_search_by(|e| e.unique().cmp(&m.unique))
                .ok()?;
            entries.get(i).map(|e| e.place(&m.flags))
        })
        .collect()
}

/// Lists `login`'s folder `name` in the Maildir at `root` and brings the index in line;
/// the folder as it now is. Blocking.
pub fn sync(db: &Db, login: &str, root: &Path, name: &str) -> Result<Snapshot, StoreError> {
    sync_from(db, login, root, name, None)
}

/// A folder this large has its listing's freed memory given back to the system after a
/// sync (see [`officebox_store::memory::release_free_memory`]).
const LARGE_FOLDER: usize = 10_000;

/// Like [`sync`], starting from `known`: the folder as an earlier sync left it. When the
/// index has not changed since, its messages stand in for the index's rows (no second
/// copy of a large folder's rows is read), and when the files show no change either, the
/// new snapshot shares its list of messages.
pub fn sync_from(
    db: &Db,
    login: &str,
    root: &Path,
    name: &str,
    known: Option<&Snapshot>,
) -> Result<Snapshot, StoreError> {
    let maildir = Maildir::open(&dir_of(root, name))?;
    let entries = maildir.list()?;
    let folder = db.imap_folder(login, name)?;
    let known =
        known.filter(|k| k.folder.id == folder.id && k.folder.uidvalidity == folder.uidvalidity);
    // The rows as an earlier sync left them, or else as they are now, read once: the
    // sync below compares the files with these (when no row changed in between) rather
    // than read every row a second time, and what it changes is read on top of them.
    let (known_at, known_rows) = match known {
        Some(k) => (k.folder.modseq, std::sync::Arc::clone(&k.messages)),
        None => (
            folder.modseq,
            std::sync::Arc::new(db.imap_messages(folder.id)?),
        ),
    };
    // The listing as it is: the index gives files new to it their UIDs in arrival order.
    let changes = db.imap_sync_known(folder.id, &entries, Some((known_at, &known_rows)))?;
    let folder = db.imap_folder(login, name)?;
    // Every change to a folder's rows raises its modification sequence: the same one
    // means the same rows.
    let messages = if known_at == folder.modseq {
        known_rows
    } else {
        // Made from the earlier list and what changed since: a message added to a large
        // folder costs its row, not a second copy of every name.
        std::sync::Arc::new(db.imap_messages_after(folder.id, known_at, &known_rows)?)
    };
    let files = aligned(entries, &messages);
    let large = files.len() >= LARGE_FOLDER;
    // Nothing moved since the earlier sync: its list of places is shared as well.
    let files = match known {
        Some(k) if std::sync::Arc::ptr_eq(&k.messages, &messages) && *k.files == files => {
            std::sync::Arc::clone(&k.files)
        }
        _ => std::sync::Arc::new(files),
    };
    if large {
        // The listing of a large folder was tens of thousands of small blocks, just
        // freed, and the index's pages read for it are not needed again soon.
        // Best effort: the sync is done either way.
        if let Err(error) = db.shrink_memory() {
            tracing::warn!(message = "imap: the index's page cache was not given back", %error);
        }
        officebox_store::memory::release_free_memory();
    }
    Ok(Snapshot {
        folder,
        changes,
        messages,
        maildir,
        files,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use officebox_store::arrival_of;

    #[test]
    fn names_map_to_maildir_plus_plus_folders_and_back() {
        let root = Path::new("/m/alice");
        assert_eq!(dir_of(root, "INBOX"), root);
        assert_eq!(dir_of(root, "Sent"), root.join(".Sent"));
        assert_eq!(dir_of(root, "Work/2026"), root.join(".Work.2026"));
        assert_eq!(dir_of(root, "v1.2 50%"), root.join(".v1%2E2 50%25"));
        for name in ["Sent", "Work/2026", "v1.2 50%", "Entwürfe"] {
            let dir = dir_of(root, name);
            let back = name_of(dir.file_name().unwrap().to_str().unwrap());
            assert_eq!(back.as_deref(), Some(name));
        }
        assert_eq!(name_of("cur"), None);
        assert_eq!(name_of("."), None);
        assert_eq!(name_of(".."), None);
        assert_eq!(name_of(".a..b"), None);
        assert_eq!(canonical("inbox").unwrap(), "INBOX");
        assert_eq!(canonical("Inbox/Receipts").unwrap(), "INBOX/Receipts");
        assert_eq!(canonical("a//b"), Err(NameError::Empty));
        assert_eq!(canonical("/a"), Err(NameError::Empty));
        assert_eq!(canonical("a\nb"), Err(NameError::Control));
        assert_eq!(canonical("../bob"), Err(NameError::Dots));
        assert_eq!(canonical("a/./b"), Err(NameError::Dots));
        assert_eq!(canonical("v1.2").unwrap(), "v1.2");
    }

    #[test]
    fn uids_follow_arrival_even_when_the_microseconds_have_fewer_digits() {
        assert_eq!(
            arrival_of("1700000000.M95000P12Q3.host"),
            (1700000000, 95000)
        );
        assert_eq!(
            arrival_of("1700000000.M150000P12Q4.host"),
            (1700000000, 150000)
        );
        assert_eq!(arrival_of("1700000000.P12.host"), (1700000000, 0));
        assert_eq!(arrival_of("garbage"), (0, 0));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        let inbox = Maildir::open(&root).unwrap();
        for (name, subject) in [
            ("1700000000.M150000P12Q4.host", "second"),
            ("1700000000.M95000P12Q3.host", "first"),
            ("1699999999.M999999P12Q2.host", "zeroth"),
        ] {
            std::fs::write(
                root.join("new").join(name),
                format!("Subject: {subject}\r\n\r\n"),
            )
            .unwrap();
        }
        let db = Db::open_in_memory().unwrap();
        let s = sync(&db, "alice", &root, "INBOX").unwrap();
        let order: Vec<&str> = s.messages.iter().map(|m| &*m.unique).collect();
        assert_eq!(
            order,
            [
                "1699999999.M999999P12Q2.host",
                "1700000000.M95000P12Q3.host",
                "1700000000.M150000P12Q4.host"
            ]
        );
        assert_eq!(
            s.file(1).as_ref().map(Entry::unique),
            Some("1700000000.M95000P12Q3.host")
        );
        drop(inbox);
    }

    #[test]
    fn a_sync_from_an_earlier_one_reads_rows_only_when_the_index_moved() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        let inbox = Maildir::open(&root).unwrap();
        let db = Db::open_in_memory().unwrap();
        inbox.deliver(b"Subject: one\r\n\r\n1\r\n").unwrap();
        let s1 = sync(&db, "alice", &root, "INBOX").unwrap();
        // Nothing changed: the same list of messages, and of where their files are.
        let s2 = sync_from(&db, "alice", &root, "INBOX", Some(&s1)).unwrap();
        assert!(std::sync::Arc::ptr_eq(&s1.messages, &s2.messages));
        assert!(std::sync::Arc::ptr_eq(&s1.files, &s2.files));
        // A delivery: found from the earlier rows, and the new list has it.
        inbox.deliver(b"Subject: two\r\n\r\n2\r\n").unwrap();
        let s3 = sync_from(&db, "alice", &root, "INBOX", Some(&s2)).unwrap();
        assert_eq!(s3.changes.added, vec![2]);
        assert_eq!(s3.messages.len(), 2);
        assert!(s3.file(1).is_some());
        // The index changed behind the earlier snapshot's back (a keyword): its rows are
        // not trusted, and the keyword is there.
        db.imap_set_flags(s3.folder.id, 1, "", &["$work".to_string()])
            .unwrap();
        let s4 = sync_from(&db, "alice", &root, "INBOX", Some(&s3)).unwrap();
        assert_eq!(s4.messages[0].keywords, vec!["$work".to_string()]);
        assert!(s4.changes.added.is_empty() && s4.changes.expunged.is_empty());
        // The rest of the list is s3's rows, names shared.
        assert!(std::sync::Arc::ptr_eq(
            &s4.messages[1].unique,
            &s3.messages[1].unique
        ));
        // A file read as seen by POP3 behind the index's back: picked up, and the list
        // made from s4's matches one read whole.
        let seen = s4.file(1).unwrap();
        inbox.set_flags(&seen, "S").unwrap();
        let s6 = sync_from(&db, "alice", &root, "INBOX", Some(&s4)).unwrap();
        assert_eq!(s6.changes.flagged, vec![2]);
        assert_eq!(*s6.messages, db.imap_messages(s6.folder.id).unwrap());
        // A snapshot of another folder is not taken for this one's.
        let sent = sync(&db, "alice", &root, "Sent").unwrap();
        let s5 = sync_from(&db, "alice", &root, "INBOX", Some(&sent)).unwrap();
        assert_eq!(s5.messages.len(), 2);
    }

    #[test]
    fn a_sync_indexes_what_arrived_and_what_pop3_took() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("alice");
        let inbox = Maildir::open(&root).unwrap();
        make_special(&root).unwrap();
        assert_eq!(
            folders(&root).unwrap(),
            vec!["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
        );
        let db = Db::open_in_memory().unwrap();
        inbox.deliver(b"Subject: one\r\n\r\n1\r\n").unwrap();
        inbox.deliver(b"Subject: two\r\n\r\n2\r\n").unwrap();
        let s = sync(&db, "alice", &root, "INBOX").unwrap();
        assert_eq!(s.changes.added, vec![1, 2]);
        assert_eq!(s.messages.len(), 2);
        assert!(s.messages[0].received > 1_700_000_000);
        // POP3 reads the first (seen) and deletes the second.
        let entries = inbox.list().unwrap();
        inbox.mark_seen(&entries[0]).unwrap();
        inbox.delete(&entries[1]).unwrap();
        let s = sync(&db, "alice", &root, "INBOX").unwrap();
        assert_eq!(s.changes.expunged.len(), 1);
        assert_eq!(s.changes.flagged.len(), 1);
        assert_eq!(s.messages.len(), 1);
        assert_eq!(&*s.messages[0].flags, "S");
        let sent = sync(&db, "alice", &root, "Sent").unwrap();
        assert!(sent.messages.is_empty());
        assert_ne!(sent.folder.id, s.folder.id);
    }
}
