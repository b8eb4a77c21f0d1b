//! A Maildir (<https://cr.yp.to/proto/maildir.html>): the mailstore shared by mail
//! delivery, POP3 and voicemail.
//!
//! Delivery writes `tmp/<unique>`, fsyncs it, renames it to `new/<unique>,S=<size>`
//! and fsyncs `new/`. A rename is atomic, so a reader (or a crash) sees in `new/`
//! either nothing or the whole message; a crash can only leave debris in `tmp/`,
//! which [`Maildir::clean_tmp`] removes later.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::file::{sync_dir, write_synced};

/// The age after which the maildir spec says a file in `tmp/` is debris.
pub const TMP_STALE_AFTER: Duration = Duration::from_secs(36 * 60 * 60);

/// Process-wide part of unique names: two deliveries in one process never share it.
static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `data_dir/mail/<login>`: the Maildir of a user, shared by mail delivery, POP3 and
/// voicemail.
pub fn mailbox_path(data_dir: &Path, login: &str) -> PathBuf {
    data_dir.join("mail").join(login)
}

/// A Maildir on disk: `root/{tmp,new,cur}`.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

/// The file name a delivered message got in `new/`, e.g.
/// `1764312000.M123456P42Q7.box,S=5120`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageName(String);

impl MessageName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which folder a message is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// `new/`: delivered, not yet seen by a reader.
    New,
    /// `cur/`: seen by a reader; the name carries flags after `:2,`.
    Cur,
}

impl Folder {
    fn dir_name(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Cur => "cur",
        }
    }
}

/// A message found by [`Maildir::list`]. Only this crate makes entries, so an entry
/// always names a plain file inside its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    name: String,
    folder: Folder,
    size: u64,
}

impl Entry {
    /// The file name inside its folder, info part included.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder the file was in when listed.
    pub fn folder(&self) -> Folder {
        self.folder
    }

    /// The size in bytes (from `,S=` when the name has it, else from the file).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The flags after `:2,` as the name has them (empty for messages in `new/`); this
    /// crate names files with them in ASCII order.
    pub fn flags(&self) -> &str {
        match self.folder {
            Folder::New => "",
            Folder::Cur => flags_of(&self.name),
        }
    }

    /// The name without the info part: stable when the message moves from `new/` to
    /// `cur/` or its flags change, so usable as a POP3 UIDL.
    pub fn unique(&self) -> &str {
        base_name(&self.name)
    }

    /// When it arrived, as its name tells: see [`arrival_of`].
    pub fn arrival(&self) -> (i64, u32) {
        arrival_of(self.unique())
    }

    /// Where this file is, told against `flags`: the flags a reader keeps for it. Only a
    /// name [`Entry::at`] would make again is told as the usual one; any other listed
    /// name (flags that are not letters, nothing before the `:`) is kept whole.
    pub fn place(&self, flags: &str) -> Place {
        let unique = self.unique();
        let rest = self.name.strip_prefix(unique);
        let usual = plain_name(unique);
        Place(match self.folder {
            Folder::New if usual && rest == Some("") && flags.is_empty() => Where::New,
            Folder::Cur
                if usual
                    && letters_only(flags)
                    && rest.and_then(|r| r.strip_prefix(":2,")) == Some(flags) =>
            {
                Where::Cur
            }
            folder => Where::Named(folder, self.name.as_str().into()),
        })
    }

    /// The file at `place` (from [`Entry::place`]) of the message with this unique name,
    /// flags and size; `None` when the name or flags could not be a listed file's (a
    /// path, a hidden name, flags that are not letters).
    pub fn at(unique: &str, flags: &str, size: u64, place: &Place) -> Option<Entry> {
        let (name, folder) = match &place.0 {
            Where::New if plain_name(unique) => (unique.to_string(), Folder::New),
            Where::Cur if plain_name(unique) && letters_only(flags) => {
                (format!("{unique}:2,{flags}"), Folder::Cur)
            }
            Where::Named(folder, name) if plain_name(name) => (name.to_string(), *folder),
            _ => return None,
        };
        Some(Entry { name, folder, size })
    }
}

/// A name that can only be a file inside its folder: not empty, not hidden, no path.
fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\0'])
}

/// Flags as this crate writes them: letters only.
fn letters_only(flags: &str) -> bool {
    flags.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Where a message's file is, told against its unique name and flags: what a reader that
/// keeps those already (IMAP's index) keeps per message instead of the whole name. A
/// file named the usual way costs the tag alone. Only [`Entry::place`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place(Where);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Where {
    /// `new/<unique>`, with no flags.
    New,
    /// `cur/<unique>:2,<flags>`.
    Cur,
    /// Any other name, kept whole.
    Named(Folder, Box<str>),
}

/// Where the files of a list of messages are, in the list's order: one byte a message
/// for the usual names (`new/<unique>`, `cur/<unique>:2,<flags>`, or gone), the whole
/// name only for the few that are not. What [`Place`]s cost in a `Vec`, 24 bytes a
/// message, made 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    tags: Vec<u8>,
    named: std::collections::BTreeMap<usize, (Folder, Box<str>)>,
}

const GONE: u8 = 0;
const NEW: u8 = 1;
const CUR: u8 = 2;
const NAMED: u8 = 3;

impl Places {
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The place of the file of message `i` (`None`: gone, or past the end).
    pub fn get(&self, i: usize) -> Option<Place> {
        match *self.tags.get(i)? {
            NEW => Some(Place(Where::New)),
            CUR => Some(Place(Where::Cur)),
            NAMED => self
                .named
                .get(&i)
                .map(|(folder, name)| Place(Where::Named(*folder, name.clone()))),
            _ => None,
        }
    }

    /// Message `i`'s file is now at `place`; nothing when `i` is past the end.
    pub fn set(&mut self, i: usize, place: Option<Place>) {
        let Some(tag) = self.tags.get_mut(i) else {
            return;
        };
        self.named.remove(&i);
        *tag = match place.map(|p| p.0) {
            None => GONE,
            Some(Where::New) => NEW,
            Some(Where::Cur) => CUR,
            Some(Where::Named(folder, name)) => {
                self.named.insert(i, (folder, name));
                NAMED
            }
        };
    }
}

impl FromIterator<Option<Place>> for Places {
    fn from_iter<I: IntoIterator<Item = Option<Place>>>(places: I) -> Places {
        let places = places.into_iter();
        let mut out = Places {
            tags: Vec::with_capacity(places.size_hint().0),
            named: std::collections::BTreeMap::new(),
        };
        for place in places {
            out.tags.push(GONE);
            out.set(out.tags.len() - 1, place);
        }
        out
    }
}

/// When a message arrived, from its unique name `<secs>.M<usec>P<pid>...` (the usual
/// Maildir name, which every deliverer here writes): seconds and microseconds, 0 for
/// what the name does not say. Sorted by this and then by name, messages are in arrival
/// order; by name alone they are not, as the microseconds are not zero-padded
/// ("M95000" arrived before "M150000").
pub fn arrival_of(unique: &str) -> (i64, u32) {
    let mut parts = unique.split('.');
    let secs = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|mid| mid.strip_prefix('M'))
        .map(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest.get(..digits).and_then(|d| d.parse().ok()).unwrap_or(0)
        })
        .unwrap_or(0);
    (secs, micros)
}

impl Maildir {
    /// Opens the maildir at `root`, creating `root`, `tmp/`, `new/` and `cur/`
    /// (mode 0700) if missing. When this returns, the directories exist on disk.
    pub fn open(root: &Path) -> Result<Maildir, StoreError> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        let mut created = false;
        for sub in ["tmp", "new", "cur"] {
            let dir = root.join(sub);
            if !dir.is_dir() {
                builder
                    .create(&dir)
                    .map_err(|e| StoreError::io("create directory", &dir, e))?;
                created = true;
            }
        }
        if created {
            sync_dir(root)?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Delivers `message` into `new/`. When this returns `Ok`, the message and its
    /// directory entry are on disk. On error nothing is left in `new/` (best effort
    /// if even unlinking fails) and the temporary file is removed.
    pub fn deliver(&self, message: &[u8]) -> Result<MessageName, StoreError> {
        self.deliver_as(unique_name(), message)
    }

    /// Delivers like [`Maildir::deliver`], with `tag` (ASCII letters and digits) in the
    /// name, so that a caller that may deliver the same message twice (a fetch that was
    /// cut short before it could record what it took) can see with [`Maildir::tags`]
    /// that it already did.
    pub fn deliver_tagged(&self, message: &[u8], tag: &str) -> Result<MessageName, StoreError> {
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::InvalidName {
                root: self.root.clone(),
                name: format!("delivery tag {tag:?}"),
            });
        }
        let base = unique_name();
        let unique = match base.split_once('.').and_then(|(secs, rest)| {
            rest.split_once('.')
                .map(|(mid, host)| format!("{secs}.{mid}T{tag}.{host}"))
        }) {
            Some(u) => u,
            None => base,
        };
        self.deliver_as(unique, message)
    }

    /// The tags of the messages delivered with [`Maildir::deliver_tagged`] that are still
    /// here (in `new/` or `cur/`).
    pub fn tags(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(self
            .list()?
            .iter()
            .filter_map(|e| {
                let mid = e.unique().split('.').nth(1)?;
                let (_, tag) = mid.split_once('T')?;
                Some(tag.to_string())
            })
            .collect())
    }

    fn deliver_as(&self, unique: String, message: &[u8]) -> Result<MessageName, StoreError> {
        self.place(unique, message, None)
    }

    /// Stores `message` straight into `cur/` with `flags` (Maildir letters, e.g. `S`):
    /// a message a reader puts here itself (IMAP's APPEND, a copy), already seen by
    /// one. On disk when this returns `Ok`, like [`Maildir::deliver`]. `arrived` (seconds
    /// since 1970) is the arrival time its name records, which readers show as its date
    /// (IMAP's internal date): a copy keeps the original's; `None` is now.
    pub fn store(
        &self,
        message: &[u8],
        flags: &str,
        arrived: Option<i64>,
    ) -> Result<Entry, StoreError> {
        let flags = sorted_flags(flags);
        let name = self.place(unique_arrived(arrived), message, Some(&flags))?;
        Ok(Entry {
            name: name.0,
            folder: Folder::Cur,
            size: message.len() as u64,
        })
    }

    /// Writes `tmp/<unique>`, fsynced, then renames it into `new/` (no flags) or `cur/`
    /// with `flags`, and fsyncs that directory.
    fn place(
        &self,
        unique: String,
        message: &[u8],
        flags: Option<&str>,
    ) -> Result<MessageName, StoreError> {
        let tmp = self.root.join("tmp").join(&unique);
        if let Err(e) = write_synced(&tmp, message, 0o600) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let (name, new_dir, op) = match flags {
            None => (
                format!("{unique},S={}", message.len()),
                self.root.join("new"),
                "move into new/",
            ),
            Some(f) => (
                format!("{unique},S={}:2,{f}", message.len()),
                self.root.join("cur"),
                "move into cur/",
            ),
        };
        let dest = new_dir.join(&name);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(op, &dest, e));
        }
        if let Err(e) = sync_dir(&new_dir) {
            // The caller will not acknowledge the message, so do not keep it either
            // (the sender retrying would otherwise produce a duplicate).
            let _ = fs::remove_file(&dest);
            let _ = sync_dir(&new_dir);
            return Err(e);
        }
        tracing::debug!(maildir = %self.root.display(), %name, "delivered");
        Ok(MessageName(name))
    }

    /// Every message in `new/` and `cur/`, ordered by folder (new first) then name.
    /// Dot files and anything that is not a regular file are skipped.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for folder in [Folder::New, Folder::Cur] {
            let dir = self.root.join(folder.dir_name());
            let read = fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
            // Each folder's files straight into the one list, then sorted where they lie
            // (a second list per folder would be a second copy of a large folder's).
            let start = entries.len();
            for item in read {
                let item = item.map_err(|e| StoreError::io("list", &dir, e))?;
                let Ok(name) = item.file_name().into_string() else {
                    continue; // Not a name we ever write.
                };
                if name.starts_with('.') {
                    continue;
                }
                let size = match size_from_name(&name) {
                    Some(size) => size,
                    None => match item.metadata() {
                        Ok(meta) if meta.is_file() => meta.len(),
                        Ok(_) => continue,
                        // Moved or deleted by another reader since read_dir.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("stat", item.path(), e)),
                    },
                };
                entries.push(Entry { name, folder, size });
            }
            entries[start..].sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(entries)
    }

    /// The bytes of mail kept in the mailbox at `root`: its `new/` and `cur/` and those of
    /// each Maildir++ folder (`.Sent`, `.Junk`, ...) beside them; what a quota counts.
    /// A mailbox not made yet holds nothing.
    pub fn usage(root: &Path) -> Result<u64, StoreError> {
        let mut dirs = vec![root.to_path_buf()];
        match fs::read_dir(root) {
            Ok(read) => {
                for item in read.flatten() {
                    let name = item.file_name();
                    let folder = name
                        .to_str()
                        .is_some_and(|n| n.starts_with('.') && n.len() > 1);
                    if folder && item.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(item.path());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io("list", root, e)),
        }
        let mut total = 0u64;
        for dir in dirs {
            let entries = match (Maildir { root: dir }).list() {
                Ok(e) => e,
                // A folder half made, or removed meanwhile, holds nothing to count.
                Err(StoreError::Io { .. }) => continue,
                Err(e) => return Err(e),
            };
            total = total.saturating_add(entries.iter().map(Entry::size).sum());
        }
        Ok(total)
    }

    /// The whole message.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(entry)?;
        fs::read(&path).map_err(|e| StoreError::io("read", path, e))
    }

    /// Removes the message. When this returns `Ok`, the removal is on disk.
    /// Removing a message that is already gone is not an error.
    pub fn delete(&self, entry: &Entry) -> Result<(), StoreError> {
        let path = self.path_of(entry)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("delete", path, e)),
        }
        sync_dir(&self.root.join(entry.folder.dir_name()))
    }

    /// Marks the message seen: moves it from `new/` to `cur/` with `:2,S`, or adds
    /// `S` to the flags of a message in `cur/`. Returns the entry as it now is; the
    /// move is on disk when this returns.
    pub fn mark_seen(&self, entry: &Entry) -> Result<Entry, StoreError> {
        let seen = self.move_seen(entry)?;
        sync_dir(&self.root.join("cur"))?;
        if entry.folder == Folder::New {
            sync_dir(&self.root.join("new"))?;
        }
        Ok(seen)
    }

    /// Marks several messages seen, with one fsync of `new/` and `cur/` at the end (a
    /// POP3 session's QUIT after reading thousands). Returns how many were moved; one
    /// that cannot be moved (gone meanwhile) is skipped.
    pub fn mark_seen_all(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        let mut moved = 0;
        for e in entries {
            if self.move_seen(e).is_ok() {
                moved += 1;
            }
        }
        if moved > 0 {
            sync_dir(&self.root.join("cur"))?;
            sync_dir(&self.root.join("new"))?;
        }
        Ok(moved)
    }

    /// Gives the message exactly `flags` (Maildir letters: D draft, F flagged, P
    /// passed, R replied, S seen, T trashed): renamed into `cur/` with them, on disk
    /// when this returns. The entry as it now is.
    pub fn set_flags(&self, entry: &Entry, flags: &str) -> Result<Entry, StoreError> {
        let flags = sorted_flags(flags);
        if entry.folder == Folder::Cur && entry.flags() == flags {
            return Ok(entry.clone());
        }
        let moved = self.rename_flagged(entry, flags)?;
        sync_dir(&self.root.join("cur"))?;
        if entry.folder == Folder::New {
            sync_dir(&self.root.join("new"))?;
        }
        Ok(moved)
    }

    /// Moves the message into the folder `dest` (another folder of the same mailbox, or
    /// this one) under a new unique name that keeps `arrived` as its arrival time, with
    /// `flags`: one rename, so a crash leaves it in one folder or the other, never both or
    /// neither. On disk when this returns. The entry in `dest`.
    pub fn move_into(
        &self,
        entry: &Entry,
        dest: &Maildir,
        flags: &str,
        arrived: Option<i64>,
    ) -> Result<Entry, StoreError> {
        let from = self.path_of(entry)?;
        let flags = sorted_flags(flags);
        let name = format!("{},S={}:2,{flags}", unique_arrived(arrived), entry.size);
        let to = dest.root.join("cur").join(&name);
        fs::rename(&from, &to).map_err(|e| StoreError::io("move into cur/", &to, e))?;
        sync_dir(&dest.root.join("cur"))?;
        sync_dir(&self.root.join(entry.folder.dir_name()))?;
        Ok(Entry {
            name,
            folder: Folder::Cur,
            size: entry.size,
        })
    }

    /// Gives each message its flags like [`Maildir::set_flags`], with one fsync of `cur/`
    /// and `new/` at the end (a STORE on thousands of messages). Each entry as it now is,
    /// or why it could not be renamed (gone meanwhile); all renames are on disk when this
    /// returns `Ok`.
    pub fn set_flags_many(
        &self,
        changes: &[(Entry, String)],
    ) -> Result<Vec<Result<Entry, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(changes.len());
        let (mut cur, mut new) = (false, false);
        for (entry, flags) in changes {
            let flags = sorted_flags(flags);
            if entry.folder == Folder::Cur && entry.flags() == flags {
                out.push(Ok(entry.clone()));
                continue;
            }
            let moved = self.rename_flagged(entry, flags);
            if moved.is_ok() {
                cur = true;
                new |= entry.folder == Folder::New;
            }
            out.push(moved);
        }
        if cur {
            sync_dir(&self.root.join("cur"))?;
        }
        if new {
            sync_dir(&self.root.join("new"))?;
        }
        Ok(out)
    }

    /// The rename to `cur/` with the S flag, without fsync.
    fn move_seen(&self, entry: &Entry) -> Result<Entry, StoreError> {
        if entry.folder == Folder::Cur && entry.flags().contains('S') {
            return Ok(entry.clone());
        }
        self.rename_flagged(entry, sorted_flags(&format!("{}S", entry.flags())))
    }

    /// The rename to `cur/<unique>:2,<flags>`, without fsync.
    fn rename_flagged(&self, entry: &Entry, flags: String) -> Result<Entry, StoreError> {
        let from = self.path_of(entry)?;
        let name = format!("{}:2,{flags}", base_name(&entry.name));
        let to = self.root.join("cur").join(&name);
        fs::rename(&from, &to).map_err(|e| StoreError::io("move into cur/", &to, e))?;
        Ok(Entry {
            name,
            folder: Folder::Cur,
            size: entry.size,
        })
    }

    /// Removes files in `tmp/` last modified more than `older_than` ago (the spec
    /// suggests [`TMP_STALE_AFTER`]). Returns how many were removed.
    pub fn clean_tmp(&self, older_than: Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("tmp");
        let now = SystemTime::now();
        let mut removed = 0;
        let read = fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        for item in read {
            let item = item.map_err(|e| StoreError::io("list", &dir, e))?;
            let meta = match item.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("stat", item.path(), e)),
            };
            if !meta.is_file() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            if age < older_than {
                continue;
            }
            match fs::remove_file(item.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("delete", item.path(), e)),
            }
        }
        if removed > 0 {
            sync_dir(&dir)?;
            tracing::info!(maildir = %self.root.display(), removed, "removed stale tmp files");
        }
        Ok(removed)
    }

    fn path_of(&self, entry: &Entry) -> Result<PathBuf, StoreError> {
        let name = &entry.name;
        if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
            return Err(StoreError::InvalidName {
                root: self.root.clone(),
                name: name.clone(),
            });
        }
        Ok(self.root.join(entry.folder.dir_name()).join(name))
    }
}

/// `{secs}.M{micros}P{pid}Q{counter}.{host}`: never contains '/', ':' or ','.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let q = DELIVERY_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        q,
        hostname()
    )
}

/// A new unique name whose leading seconds are `arrived` (when given) instead of now.
fn unique_arrived(arrived: Option<i64>) -> String {
    let mut unique = unique_name();
    if let Some(secs) = arrived.filter(|s| *s >= 0)
        && let Some(dot) = unique.find('.')
    {
        unique.replace_range(..dot, &secs.to_string());
    }
    unique
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        escape_host(raw.trim())
    })
}

/// The spec's escaping ('/' as `\057`, ':' as `\072`), extended to every byte that is
/// not a letter, digit, '-', '.' or '_' (so also ',' which starts `,S=`, and '\').
fn escape_host(raw: &str) -> String {
    if raw.is_empty() {
        return "localhost".to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// The name without its info part (`:2,...`).
fn base_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(base, _)| base)
}

/// Maildir flag letters as a name carries them: ASCII order, each once, letters only.
fn sorted_flags(flags: &str) -> String {
    let mut f: Vec<char> = flags.chars().filter(char::is_ascii_alphabetic).collect();
    f.sort_unstable();
    f.dedup();
    f.into_iter().collect()
}

/// The flags of a `cur/` name (`...:2,FLAGS`), empty when there is no info part.
fn flags_of(name: &str) -> &str {
    name.split_once(":2,").map_or("", |(_, flags)| flags)
}

/// The `S=` field of the name (`unique,S=123,W=130:2,S`), if any.
fn size_from_name(name: &str) -> Option<u64> {
    base_name(name)
        .split(',')
        .skip(1)
        .find_map(|field| field.strip_prefix("S="))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_place_told_against_the_flags_gives_the_same_entry_back() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        md.deliver(b"Subject: a\r\n\r\n").unwrap();
        let stored = md.store(b"Subject: b\r\n\r\n", "FS", None).unwrap();
        // Flags in another order in cur/, and an info part in new/ (another program's
        // doing): told against their own flags, the first is the usual name, the second
        // is kept whole.
        let unusual = |flags: &str, to: &str| {
            let name = md.deliver(b"Subject: c\r\n\r\n").unwrap();
            let odd = format!("{}:2,{flags}", name.as_str());
            fs::rename(
                dir.path().join("new").join(name.as_str()),
                dir.path().join(to).join(&odd),
            )
            .unwrap();
            odd
        };
        unusual("SF", "cur");
        let odd = unusual("S", "new");
        // Names another program may write that are not the usual form: a flag that is
        // not a letter, nothing before the colon. Listed, so reachable.
        unusual("S1", "cur");
        fs::write(dir.path().join("cur").join(":2,S"), b"Subject: d\r\n\r\n").unwrap();
        let mut places = Vec::new();
        for e in md.list().unwrap() {
            let place = e.place(e.flags());
            let back = Entry::at(e.unique(), e.flags(), e.size(), &place).unwrap();
            assert_eq!(back, e);
            assert_eq!(md.read(&back).unwrap(), md.read(&e).unwrap());
            places.push(place);
        }
        assert!(places.contains(&Place(Where::New)), "{places:?}");
        assert!(places.contains(&Place(Where::Cur)), "{places:?}");
        let named = Place(Where::Named(Folder::New, odd.as_str().into()));
        assert!(places.contains(&named), "{places:?}");
        let whole = places
            .iter()
            .filter(|p| matches!(p.0, Where::Named(..)))
            .count();
        assert_eq!(whole, 3, "{places:?}");
        // Kept a byte each (the unusual ones whole), with gaps for files gone: the same
        // places back, and one changed in place.
        let mut kept: Places = places.iter().cloned().map(Some).chain([None]).collect();
        assert_eq!(kept.len(), places.len() + 1);
        for (i, p) in places.iter().enumerate() {
            assert_eq!(kept.get(i).as_ref(), Some(p));
        }
        assert_eq!(kept.get(places.len()), None);
        kept.set(0, Some(named.clone()));
        kept.set(1, None);
        assert_eq!(kept.get(0), Some(named.clone()));
        assert_eq!(kept.get(1), None);
        kept.set(99, Some(named.clone()));
        assert_eq!(kept.len(), places.len() + 1);
        assert_eq!(stored.flags(), "FS");
        // Told against other flags than the name's, the whole name is kept.
        let e = md
            .list()
            .unwrap()
            .into_iter()
            .find(|e| e.flags() == "FS")
            .unwrap();
        assert!(matches!(e.place("S").0, Where::Named(Folder::Cur, _)));
        // Nothing outside the folder is ever named.
        assert!(Entry::at("../x", "", 1, &Place(Where::New)).is_none());
        assert!(Entry::at(".hidden", "", 1, &Place(Where::New)).is_none());
        assert!(Entry::at("a", "S/..", 1, &Place(Where::Cur)).is_none());
        let bad = Place(Where::Named(Folder::Cur, "../../x".into()));
        assert!(Entry::at("a", "", 1, &bad).is_none());
    }
    use std::os::unix::fs::PermissionsExt;

    fn tmp_count(md: &Maildir) -> usize {
        fs::read_dir(md.root().join("tmp")).unwrap().count()
    }

    #[test]
    fn a_reader_stores_with_flags_and_changes_them() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        let stored = md
            .store(b"Subject: draft\r\n\r\nx\r\n", "SD", None)
            .unwrap();
        assert_eq!((stored.folder(), stored.flags()), (Folder::Cur, "DS"));
        let dated = md
            .store(b"Subject: old\r\n\r\nz\r\n", "", Some(1_000_000_000))
            .unwrap();
        assert!(
            dated.unique().starts_with("1000000000.M"),
            "{}",
            dated.unique()
        );
        let other = Maildir::open(&dir.path().join(".Archive")).unwrap();
        let moved = md
            .move_into(&dated, &other, "S", Some(1_000_000_000))
            .unwrap();
        assert!(moved.unique().starts_with("1000000000.M"));
        assert_ne!(moved.unique(), dated.unique());
        assert_eq!(other.read(&moved).unwrap(), b"Subject: old\r\n\r\nz\r\n");
        assert_eq!(other.list().unwrap(), vec![moved]);
        assert_eq!(md.read(&dated).ok(), None);
        let delivered = md.deliver(b"Subject: new\r\n\r\ny\r\n").unwrap();
        let list = md.list().unwrap();
        assert_eq!(list.len(), 2);
        let new = list
            .iter()
            .find(|e| e.name() == delivered.as_str())
            .unwrap();
        assert_eq!(new.folder(), Folder::New);
        // Flagged and replied: out of new/, the unique part (POP3's UIDL) unchanged.
        let flagged = md.set_flags(new, "RF").unwrap();
        assert_eq!((flagged.folder(), flagged.flags()), (Folder::Cur, "FR"));
        assert_eq!(flagged.unique(), new.unique());
        let cleared = md.set_flags(&flagged, "").unwrap();
        assert_eq!(cleared.flags(), "");
        let again = md.list().unwrap();
        let found = again.iter().find(|e| e.unique() == new.unique()).unwrap();
        assert_eq!((found.folder(), found.flags()), (Folder::Cur, ""));
        assert_eq!(md.read(found).unwrap(), b"Subject: new\r\n\r\ny\r\n");
        // A message gone meanwhile is an error, not a panic.
        md.delete(found).unwrap();
        assert!(md.set_flags(found, "S").is_err());
    }

    #[test]
    fn open_creates_dirs_0700_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("users/alice/Maildir");
        let md = Maildir::open(&root).unwrap();
        for sub in ["tmp", "new", "cur"] {
            let meta = fs::metadata(root.join(sub)).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{sub}");
        }
        md.deliver(b"hello").unwrap();
        let again = Maildir::open(&root).unwrap();
        assert_eq!(again.list().unwrap().len(), 1);
    }

    #[test]
    fn deliver_list_read_delete_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        let bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
            (0..70_000u32).map(|i| (i % 251) as u8).collect(),
        ];
        let mut names = Vec::new();
        for body in &bodies {
            let name = md.deliver(body).unwrap();
            assert!(
                name.as_str().ends_with(&format!(",S={}", body.len())),
                "{name}"
            );
            assert!(md.root().join("new").join(name.as_str()).is_file());
            names.push(name);
        }
        assert_eq!(tmp_count(&md), 0, "tmp/ must be empty after deliveries");

        let entries = md.list().unwrap();
        assert_eq!(entries.len(), bodies.len());
        for entry in &entries {
            assert_eq!(entry.folder(), Folder::New);
            assert_eq!(entry.flags(), "");
            let i = names
                .iter()
                .position(|n| n.as_str() == entry.name())
                .unwrap();
            assert_eq!(entry.size(), bodies[i].len() as u64);
            let meta = fs::metadata(md.root().join("new").join(entry.name())).unwrap();
            assert_eq!(meta.len(), entry.size());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            assert_eq!(md.read(entry).unwrap(), bodies[i]);
        }
        for entry in &entries {
            md.delete(entry).unwrap();
            md.delete(entry).unwrap(); // already gone: still fine
        }
        assert!(md.list().unwrap().is_empty());
    }

    #[test]
    fn tagged_deliveries_are_found_again_by_their_tag() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        md.deliver(b"plain\r\n").unwrap();
        let name = md.deliver_tagged(b"fetched\r\n", "abc123").unwrap();
        assert!(md.tags().unwrap().contains("abc123"));
        assert_eq!(md.tags().unwrap().len(), 1);
        let entry = md
            .list()
            .unwrap()
            .into_iter()
            .find(|e| e.name() == name.as_str())
            .unwrap();
        md.mark_seen(&entry).unwrap();
        assert!(md.tags().unwrap().contains("abc123"), "still found in cur/");
        assert!(md.deliver_tagged(b"x", "a/b").is_err());
    }

    #[test]
    fn names_unique_across_1000_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        let mut seen = HashSet::new();
        for i in 0..1000u32 {
            let name = md.deliver(&i.to_be_bytes()).unwrap();
            let unique = base_name(name.as_str()).split(',').next().unwrap();
            assert!(!unique.contains('/') && !unique.contains(':'), "{name}");
            assert!(seen.insert(name), "duplicate name");
        }
        assert_eq!(md.list().unwrap().len(), 1000);
        assert_eq!(tmp_count(&md), 0);
    }

    #[test]
    fn mark_seen_moves_to_cur_and_keeps_unique() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        md.deliver(b"0123456789").unwrap();
        let entry = md.list().unwrap().remove(0);
        let seen = md.mark_seen(&entry).unwrap();
        assert_eq!(seen.folder(), Folder::Cur);
        assert_eq!(seen.flags(), "S");
        assert_eq!(seen.unique(), entry.unique());
        assert_eq!(seen.name(), format!("{}:2,S", entry.name()));
        assert_eq!(md.mark_seen(&seen).unwrap(), seen);

        let listed = md.list().unwrap();
        assert_eq!(listed, vec![seen.clone()]);
        assert_eq!(md.read(&seen).unwrap(), b"0123456789");
        assert!(
            fs::read_dir(md.root().join("new"))
                .unwrap()
                .next()
                .is_none()
        );
        md.delete(&seen).unwrap();
        assert!(md.list().unwrap().is_empty());
    }

    #[test]
    fn mark_seen_keeps_other_flags_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        fs::write(md.root().join("cur/123.foreign.host:2,RT"), b"abc").unwrap();
        let entry = md.list().unwrap().remove(0);
        assert_eq!(entry.size(), 3, "size from metadata when no S=");
        assert_eq!(entry.flags(), "RT");
        let seen = md.mark_seen(&entry).unwrap();
        assert_eq!(seen.name(), "123.foreign.host:2,RST");
        assert_eq!(md.list().unwrap(), vec![seen]);
    }

    #[test]
    fn list_skips_dot_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        fs::write(md.root().join("new/.hidden"), b"x").unwrap();
        fs::create_dir(md.root().join("cur/subdir")).unwrap();
        md.deliver(b"x").unwrap();
        assert_eq!(md.list().unwrap().len(), 1);
    }

    #[test]
    fn forged_entry_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        for name in ["../../etc/passwd", "", ".", ".."] {
            let entry = Entry {
                name: name.to_owned(),
                folder: Folder::New,
                size: 0,
            };
            assert!(matches!(
                md.read(&entry),
                Err(StoreError::InvalidName { .. })
            ));
            assert!(matches!(
                md.delete(&entry),
                Err(StoreError::InvalidName { .. })
            ));
        }
    }

    #[test]
    fn clean_tmp_removes_only_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        fs::write(md.root().join("tmp/debris"), b"half a message").unwrap();
        assert_eq!(md.clean_tmp(TMP_STALE_AFTER).unwrap(), 0);
        assert_eq!(tmp_count(&md), 1);
        assert_eq!(md.clean_tmp(Duration::ZERO).unwrap(), 1);
        assert_eq!(tmp_count(&md), 0);
    }

    #[test]
    fn failed_delivery_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        // new/ replaced by a file: the rename fails after tmp was written.
        fs::remove_dir(md.root().join("new")).unwrap();
        fs::write(md.root().join("new"), b"").unwrap();
        assert!(md.deliver(b"lost").is_err());
        assert_eq!(tmp_count(&md), 0);
    }

    #[test]
    fn host_escaping() {
        assert_eq!(escape_host(""), "localhost");
        assert_eq!(escape_host("box.example-1"), "box.example-1");
        assert_eq!(escape_host("a/b:c,d\\e"), "a\\057b\\072c\\054d\\134e");
    }

    #[test]
    fn size_parsing() {
        assert_eq!(size_from_name("1.M2P3Q4.h,S=120"), Some(120));
        assert_eq!(size_from_name("1.M2P3Q4.h,S=120,W=124:2,S"), Some(120));
        assert_eq!(size_from_name("1.M2P3Q4.h:2,S"), None);
        assert_eq!(size_from_name("1.M2P3Q4.h,S=x"), None);
        assert_eq!(flags_of("1.h,S=1:2,FS"), "FS");
        assert_eq!(flags_of("1.h,S=1"), "");
    }
}
