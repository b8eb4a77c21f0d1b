//! The IMAP index of each user's Maildir folders: what IMAP needs that a Maildir does
//! not keep. A message's UID (stable across restarts and re-indexing, unique in its
//! folder for the folder's UIDVALIDITY), its keywords, its modification sequence
//! (CONDSTORE), and the UIDs expunged since a given modification (QRESYNC).
//!
//! The Maildir stays the truth about which messages exist and their system flags (POP3,
//! voicemail and delivery change it without asking IMAP): [`Db::imap_sync`] brings the
//! index in line with the files found, in one transaction, giving new files the next
//! UIDs and remembering the files gone as expunged. A crash between a file's move and
//! the index's update is mended by the next sync: nothing is lost or given two UIDs.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use crate::{Db, StoreError};

/// A folder of a user's mailbox, as IMAP sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapFolder {
    pub id: i64,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// The highest modification sequence given in the folder (HIGHESTMODSEQ).
    pub modseq: u64,
    pub subscribed: bool,
}

/// An indexed message. Its texts are shared (`Arc<str>`): a folder's list made again
/// from an earlier one ([`Db::imap_messages_after`]) copies each message's row, not its
/// name, and the few different flag sets of a folder are one string each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapMessage {
    pub uid: u32,
    /// The Maildir unique name (the file name before `:2,`).
    pub unique: Arc<str>,
    pub size: u64,
    /// Unix seconds it arrived (INTERNALDATE).
    pub received: i64,
    /// The Maildir flags as last seen (`FRS`...), and the keywords.
    pub flags: Arc<str>,
    pub keywords: Vec<String>,
    pub modseq: u64,
}

/// The flag sets of many messages (the rows read in one go, the messages one STORE
/// changes), each kept once: a folder has a handful (`""`, `"S"`, `"FS"`...) across all
/// its messages.
#[derive(Debug, Default)]
pub struct FlagSets(Vec<Arc<str>>);

impl FlagSets {
    /// `flags` as a shared string: the one made before for the same letters.
    pub fn of(&mut self, flags: &str) -> Arc<str> {
        if let Some(f) = self.0.iter().find(|f| ***f == *flags) {
            return Arc::clone(f);
        }
        let f: Arc<str> = Arc::from(flags);
        // A folder with an unusual spread of flags stays correct, only less shared.
        if self.0.len() < 64 {
            self.0.push(Arc::clone(&f));
        }
        f
    }
}

/// A message file found in the folder now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    pub unique: &'a str,
    pub size: u64,
    pub received: i64,
    pub flags: &'a str,
}

/// A message file as the index needs to know it: a [`Found`], or the Maildir's own
/// listing ([`crate::Entry`]) handed over as it is, with no second list made of it.
pub trait FoundFile {
    fn unique(&self) -> &str;
    fn size(&self) -> u64;
    /// Unix seconds it arrived.
    fn received(&self) -> i64;
    fn flags(&self) -> &str;
}

impl FoundFile for Found<'_> {
    fn unique(&self) -> &str {
        self.unique
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn received(&self) -> i64 {
        self.received
    }
    fn flags(&self) -> &str {
        self.flags
    }
}

impl FoundFile for crate::Entry {
    fn unique(&self) -> &str {
        crate::Entry::unique(self)
    }
    fn size(&self) -> u64 {
        crate::Entry::size(self)
    }
    fn received(&self) -> i64 {
        self.arrival().0
    }
    fn flags(&self) -> &str {
        crate::Entry::flags(self)
    }
}

/// The index's rows a sync holds the files against: (name, UID, flags) by position,
/// from a sync's own earlier result or read from the database.
enum Rows<'a> {
    Known(&'a [ImapMessage]),
    Read(Vec<(String, u32, String)>),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Rows::Known(rows) => rows.len(),
            Rows::Read(rows) => rows.len(),
        }
    }

    /// The row at `i` (a position below [`Rows::len`]; another is an empty row).
    fn get(&self, i: u32) -> (&str, u32, &str) {
        let i = i as usize;
        match self {
            Rows::Known(rows) => rows.get(i).map(|m| (&*m.unique, m.uid, &*m.flags)),
            Rows::Read(rows) => rows
                .get(i)
                .map(|(u, uid, f)| (u.as_str(), *uid, f.as_str())),
        }
        .unwrap_or(("", 0, ""))
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// UIDs given to files new to the index.
    pub added: Vec<u32>,
    /// UIDs whose files are gone.
    pub expunged: Vec<u32>,
    /// UIDs whose flags changed outside IMAP.
    pub flagged: Vec<u32>,
}

fn keywords_of(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

impl Db {
    fn imap_err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| self.err(op, e)
    }

    /// `login`'s folder `name`, made when missing: its UIDVALIDITY is one no earlier
    /// folder of that name had (the clock's seconds, or one more than the last).
    pub fn imap_folder(&self, login: &str, name: &str) -> Result<ImapFolder, StoreError> {
        if let Some(f) = self.imap_folder_if_any(login, name)? {
            return Ok(f);
        }
        let last: Option<u32> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [format!("imap.uidvalidity.{login}")],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(self.imap_err("read a UIDVALIDITY"))?
            .and_then(|v| v.parse().ok());
        let now = u32::try_from(crate::unix_now().max(1)).unwrap_or(u32::MAX);
        let uidvalidity = match last {
            Some(l) if l >= now => l.saturating_add(1),
            _ => now,
        };
        self.conn
            .execute(
                "INSERT INTO imap_folders (login, name, uidvalidity) VALUES (?1, ?2, ?3)",
                params![login, name, uidvalidity],
            )
            .map_err(self.imap_err("make an IMAP folder"))?;
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![format!("imap.uidvalidity.{login}"), uidvalidity.to_string()],
            )
            .map_err(self.imap_err("keep a UIDVALIDITY"))?;
        self.imap_folder_if_any(login, name)?
            .ok_or_else(|| self.err("make an IMAP folder", rusqlite::Error::QueryReturnedNoRows))
    }

    /// `login`'s folder `name`, if indexed.
    pub fn imap_folder_if_any(
        &self,
        login: &str,
        name: &str,
    ) -> Result<Option<ImapFolder>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, name, uidvalidity, uidnext, modseq, subscribed FROM imap_folders
                 WHERE login = ?1 AND name = ?2",
                params![login, name],
                folder_row,
            )
            .optional()
            .map_err(self.imap_err("read an IMAP folder"))
    }

    /// `login`'s indexed folders, by name.
    pub fn imap_folders(&self, login: &str) -> Result<Vec<ImapFolder>, StoreError> {
        let read = self.imap_err("read the IMAP folders");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, name, uidvalidity, uidnext, modseq, subscribed FROM imap_folders
                 WHERE login = ?1 ORDER BY name",
            )
            .map_err(&read)?;
        let rows = stmt.query_map([login], folder_row).map_err(&read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read)
    }

    /// The folder's messages in UID order.
    pub fn imap_messages(&self, folder: i64) -> Result<Vec<ImapMessage>, StoreError> {
        let read = self.imap_err("read an IMAP folder's messages");
        // Counted first so the list is made at its size: grown by doubling, a folder of
        // 50,000 would hold room for 65,536.
        let count: usize = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM imap_messages WHERE folder = ?1")
            .and_then(|mut s| s.query_row([folder], |r| r.get(0)))
            .map_err(&read)?;
        let mut out = Vec::with_capacity(count);
        self.imap_rows(folder, 0, &[], &mut |m| out.push(m))?;
        Ok(out)
    }

    /// Every row of the folder changed after modification `since` (added or flagged), in
    /// UID order, handed to `each`.
    /// The folder's rows changed after modification `since`, in UID order, each given
    /// to `each`; a row of a UID in `known` (in UID order) shares its unique name.
    fn imap_rows(
        &self,
        folder: i64,
        since: u64,
        known: &[ImapMessage],
        each: &mut dyn FnMut(ImapMessage),
    ) -> Result<(), StoreError> {
        let read = self.imap_err("read an IMAP folder's messages");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid, unique_name, size, received, flags, keywords, modseq
                 FROM imap_messages WHERE folder = ?1 AND modseq > ?2 ORDER BY uid",
            )
            .map_err(&read)?;
        let mut rows = stmt.query(params![folder, since]).map_err(&read)?;
        let mut sets = FlagSets::default();
        while let Some(r) = rows.next().map_err(&read)? {
            let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
            let m = (|| {
                let uid = r.get(0)?;
                let name = text(1)?;
                // A message keeps its name for life: a flag change re-reads its row, and
                // the name is the one already held, not another copy.
                let unique = match known.binary_search_by_key(&uid, |m| m.uid) {
                    Ok(i) if *known[i].unique == *name => Arc::clone(&known[i].unique),
                    _ => Arc::from(name),
                };
                Ok::<_, rusqlite::Error>(ImapMessage {
                    uid,
                    unique,
                    size: r.get(2)?,
                    received: r.get(3)?,
                    flags: sets.of(text(4)?),
                    keywords: keywords_of(text(5)?),
                    modseq: r.get(6)?,
                })
            })()
            .map_err(&read)?;
            each(m);
        }
        Ok(())
    }

    /// The folder's messages in UID order, made from `known`: its messages as this index
    /// held them at modification `known_at`. Only what changed since is read (rows added
    /// or flagged after it, and the UIDs expunged after it); the rest are `known`'s rows,
    /// their names shared, not read again.
    pub fn imap_messages_after(
        &self,
        folder: i64,
        known_at: u64,
        known: &[ImapMessage],
    ) -> Result<Vec<ImapMessage>, StoreError> {
        // In UID order, as read.
        let gone = self.imap_expunged_since(folder, known_at)?;
        let kept = |m: &&ImapMessage| gone.binary_search(&m.uid).is_err();
        // Both in UID order: merged as the changed rows are read (not gathered first: a
        // flag change on every message would hold two folders' worth of rows), a changed
        // row standing for the known one of its UID.
        let mut out = Vec::with_capacity(known.len());
        let mut rest = known.iter().peekable();
        self.imap_rows(folder, known_at, known, &mut |c| {
            while let Some(m) = rest.next_if(|m| m.uid < c.uid) {
                if kept(&m) {
                    out.push(m.clone());
                }
            }
            rest.next_if(|m| m.uid == c.uid);
            out.push(c);
        })?;
        out.extend(rest.filter(kept).cloned());
        // Grown by doubling when rows were added (a first sync adds them all): the room
        // beyond them is given back.
        out.shrink_to_fit();
        Ok(out)
    }

    /// Brings the folder's index in line with the files `found` in it now, in one
    /// transaction; files new to it get their UIDs in arrival order (`arrival_of`, then
    /// the name), whatever order they are found in.
    pub fn imap_sync(&self, folder: i64, found: &[impl FoundFile]) -> Result<Synced, StoreError> {
        self.imap_sync_known(folder, found, None)
    }

    /// Like [`Db::imap_sync`], with `known`: the folder's messages as this index held
    /// them at modification sequence `known.0` (a sync's own result). When the folder is
    /// still at that sequence (no row has changed since), they stand in for reading every
    /// row again; otherwise the rows are read.
    pub fn imap_sync_known(
        &self,
        folder: i64,
        found: &[impl FoundFile],
        known: Option<(u64, &[ImapMessage])>,
    ) -> Result<Synced, StoreError> {
        let fail = self.imap_err("index an IMAP folder");
        let tx = self.conn.unchecked_transaction().map_err(&fail)?;
        let (mut uidnext, mut modseq): (u32, u64) = tx
            .query_row(
                "SELECT uidnext, modseq FROM imap_folders WHERE id = ?1",
                [folder],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&fail)?;
        let rows = match known {
            Some((at, rows)) if at == modseq => Rows::Known(rows),
            _ => {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT unique_name, uid, flags FROM imap_messages WHERE folder = ?1",
                    )
                    .map_err(&fail)?;
                let read = stmt
                    .query_map([folder], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(&fail)?
                    .collect::<Result<_, _>>()
                    .map_err(&fail)?;
                Rows::Read(read)
            }
        };
        // The rows' positions in name order, and which of them a file was found for: a
        // sorted list of positions and a flag each, not a map of every name.
        let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        let mut by_name: Vec<u32> = (0..count).collect();
        by_name.sort_unstable_by(|&a, &b| rows.get(a).0.cmp(rows.get(b).0));
        let mut seen = vec![false; by_name.len()];
        let mut synced = Synced::default();
        let mut next_modseq = || {
            modseq += 1;
            modseq
        };
        let mut fresh = Vec::new();
        for f in found {
            let row = by_name
                .binary_search_by(|&i| rows.get(i).0.cmp(f.unique()))
                .ok()
                .and_then(|p| by_name.get(p).copied());
            let Some(i) = row else {
                fresh.push(f);
                continue;
            };
            // A second file of a name already found (a copy another program left in
            // new/ and cur/ both) is the same message, not another one.
            if std::mem::replace(&mut seen[i as usize], true) {
                continue;
            }
            let (_, uid, flags) = rows.get(i);
            if flags != f.flags() {
                let m = next_modseq();
                tx.execute(
                    "UPDATE imap_messages SET flags = ?3, modseq = ?4 WHERE folder = ?1 AND uid = ?2",
                    params![folder, uid, f.flags(), m],
                )
                .map_err(&fail)?;
                synced.flagged.push(uid);
            }
        }
        // New files get their UIDs in the order they arrived (only they are sorted: a
        // folder's files need no order of their own).
        fresh.sort_by_cached_key(|f| (crate::maildir::arrival_of(f.unique()), f.unique()));
        // And a new name found twice is one new message (the index keeps a name once).
        fresh.dedup_by(|a, b| a.unique() == b.unique());
        for f in fresh {
            let uid = uidnext;
            uidnext = uidnext.saturating_add(1);
            let m = next_modseq();
            tx.execute(
                "INSERT INTO imap_messages (folder, uid, unique_name, size, received, flags, modseq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![folder, uid, f.unique(), f.size(), f.received(), f.flags(), m],
            )
            .map_err(&fail)?;
            synced.added.push(uid);
        }
        for i in (0..count).filter(|&i| !seen[i as usize]) {
            let uid = rows.get(i).1;
            let m = next_modseq();
            tx.execute(
                "DELETE FROM imap_messages WHERE folder = ?1 AND uid = ?2",
                params![folder, uid],
            )
            .map_err(&fail)?;
            tx.execute(
                "INSERT OR REPLACE INTO imap_expunged (folder, uid, modseq) VALUES (?1, ?2, ?3)",
                params![folder, uid, m],
            )
            .map_err(&fail)?;
            synced.expunged.push(uid);
        }
        synced.expunged.sort_unstable();
        tx.execute(
            "UPDATE imap_folders SET uidnext = ?2, modseq = ?3 WHERE id = ?1",
            params![folder, uidnext, modseq],
        )
        .map_err(&fail)?;
        tx.commit().map_err(fail)?;
        Ok(synced)
    }

    /// A client changed a message's flags (its file renamed already) or keywords: a new
    /// modification sequence, returned.
    pub fn imap_set_flags(
        &self,
        folder: i64,
        uid: u32,
        flags: &str,
        keywords: &[String],
    ) -> Result<u64, StoreError> {
        self.imap_set_flags_many(folder, &[(uid, flags, keywords)])
    }

    /// Like [`Db::imap_set_flags`] for many messages, in one transaction: one command's
    /// changes share one modification sequence (RFC 7162 3.1 allows it), returned.
    pub fn imap_set_flags_many(
        &self,
        folder: i64,
        changes: &[(u32, &str, &[String])],
    ) -> Result<u64, StoreError> {
        let fail = self.imap_err("store IMAP flags");
        let tx = self.conn.unchecked_transaction().map_err(&fail)?;
        let modseq: u64 = tx
            .query_row(
                "UPDATE imap_folders SET modseq = modseq + 1 WHERE id = ?1 RETURNING modseq",
                [folder],
                |r| r.get(0),
            )
            .map_err(&fail)?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE imap_messages SET flags = ?3, keywords = ?4, modseq = ?5
                     WHERE folder = ?1 AND uid = ?2",
                )
                .map_err(&fail)?;
            for (uid, flags, keywords) in changes {
                set.execute(params![folder, uid, flags, keywords.join(" "), modseq])
                    .map_err(&fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(modseq)
    }

    /// UIDs expunged from the folder after modification `since` (QRESYNC's VANISHED).
    pub fn imap_expunged_since(&self, folder: i64, since: u64) -> Result<Vec<u32>, StoreError> {
        let read = self.imap_err("read the expunged UIDs");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid FROM imap_expunged WHERE folder = ?1 AND modseq > ?2 ORDER BY uid",
            )
            .map_err(&read)?;
        let rows = stmt
            .query_map(params![folder, since], |r| r.get(0))
            .map_err(&read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read)
    }

    /// Forgets a folder and its index (the next one of the name gets a new UIDVALIDITY).
    pub fn imap_drop_folder(&self, folder: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM imap_folders WHERE id = ?1", [folder])
            .map(|_| ())
            .map_err(self.imap_err("forget an IMAP folder"))
    }

    /// Renames a folder in the index (its UIDs stay valid: the files moved with it).
    pub fn imap_rename_folder(&self, folder: i64, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE imap_folders SET name = ?2 WHERE id = ?1",
                params![folder, name],
            )
            .map(|_| ())
            .map_err(self.imap_err("rename an IMAP folder"))
    }

    /// Subscribes to a folder, or not.
    pub fn imap_subscribe(&self, folder: i64, on: bool) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE imap_folders SET subscribed = ?2 WHERE id = ?1",
                params![folder, on],
            )
            .map(|_| ())
            .map_err(self.imap_err("subscribe to an IMAP folder"))
    }
}

fn folder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImapFolder> {
    Ok(ImapFolder {
        id: r.get(0)?,
        name: r.get(1)?,
        uidvalidity: r.get(2)?,
        uidnext: r.get(3)?,
        modseq: r.get(4)?,
        subscribed: r.get(5)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn found<'a>(unique: &'a str, flags: &'a str) -> Found<'a> {
        Found {
            unique,
            size: 100,
            received: 1_700_000_000,
            flags,
        }
    }

    #[test]
    fn new_files_get_the_next_uids_and_keep_them() {
        let db = Db::open_in_memory().unwrap();
        let inbox = db.imap_folder("alice", "INBOX").unwrap();
        assert_eq!((inbox.uidnext, inbox.modseq), (1, 1));
        assert_eq!(
            db.imap_folder("alice", "INBOX").unwrap(),
            inbox,
            "made once"
        );
        let s = db
            .imap_sync(inbox.id, &[found("a", ""), found("b", "S")])
            .unwrap();
        assert_eq!(s.added, vec![1, 2]);
        // Again with one more: the first two keep theirs, in any order found.
        let s = db
            .imap_sync(inbox.id, &[found("c", ""), found("b", "S"), found("a", "")])
            .unwrap();
        assert_eq!(
            s,
            Synced {
                added: vec![3],
                ..Synced::default()
            }
        );
        let m = db.imap_messages(inbox.id).unwrap();
        assert_eq!(
            m.iter().map(|m| (m.uid, &*m.unique)).collect::<Vec<_>>(),
            vec![(1, "a"), (2, "b"), (3, "c")]
        );
        let f = db.imap_folder("alice", "INBOX").unwrap();
        assert_eq!(f.uidnext, 4);
        assert_eq!(f.modseq, 4, "three additions");
    }

    #[test]
    fn gone_files_are_expunged_and_flag_changes_get_a_modseq() {
        let db = Db::open_in_memory().unwrap();
        let f = db.imap_folder("alice", "INBOX").unwrap();
        db.imap_sync(f.id, &[found("a", ""), found("b", ""), found("c", "")])
            .unwrap();
        let before = db.imap_folder("alice", "INBOX").unwrap().modseq;
        // POP3 deleted b; the voicemail menu marked c seen.
        let s = db
            .imap_sync(f.id, &[found("a", ""), found("c", "S")])
            .unwrap();
        assert_eq!(s.expunged, vec![2]);
        assert_eq!(s.flagged, vec![3]);
        assert_eq!(db.imap_expunged_since(f.id, before).unwrap(), vec![2]);
        assert_eq!(
            db.imap_expunged_since(f.id, before + 10).unwrap(),
            Vec::<u32>::new()
        );
        let m = db.imap_set_flags(f.id, 1, "F", &["$Work".into()]).unwrap();
        let a = &db.imap_messages(f.id).unwrap()[0];
        assert_eq!(
            (&*a.flags, a.keywords.clone(), a.modseq),
            ("F", vec!["$Work".to_string()], m)
        );
        // A file back under a UID it had is a new message (UIDs are never reused).
        let s = db
            .imap_sync(f.id, &[found("a", "F"), found("b", ""), found("c", "S")])
            .unwrap();
        assert_eq!(s.added, vec![4]);
    }

    #[test]
    fn a_name_found_twice_is_one_message() {
        let db = Db::open_in_memory().unwrap();
        let f = db.imap_folder("alice", "INBOX").unwrap();
        // A new file and its copy, then a known one and its copy: one row each, and the
        // copies do not stop the sync.
        let s = db
            .imap_sync(f.id, &[found("a", ""), found("a", "S")])
            .unwrap();
        assert_eq!(s.added, vec![1]);
        let s = db
            .imap_sync(f.id, &[found("a", ""), found("b", ""), found("a", "S")])
            .unwrap();
        assert_eq!((s.added, s.expunged), (vec![2], vec![]));
        assert_eq!(db.imap_messages(f.id).unwrap().len(), 2);
    }

    #[test]
    fn a_list_made_from_an_earlier_one_is_the_list_read_whole_and_shares_its_names() {
        let db = Db::open_in_memory().unwrap();
        let f = db.imap_folder("alice", "INBOX").unwrap();
        let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        let all: Vec<Found<'_>> = names.iter().map(|n| found(n, "")).collect();
        db.imap_sync(f.id, &all).unwrap();
        let at = db.imap_folder("alice", "INBOX").unwrap().modseq;
        let known = db.imap_messages(f.id).unwrap();
        // Unchanged since: the same list, every name shared.
        let same = db.imap_messages_after(f.id, at, &known).unwrap();
        assert_eq!(same, known);
        assert!(
            same.iter()
                .zip(&known)
                .all(|(a, b)| Arc::ptr_eq(&a.unique, &b.unique))
        );
        // Then m1 and m4 go, m2 is flagged by a file rename, m3 gets a keyword, and two
        // files arrive.
        let mut now: Vec<Found<'_>> = vec![found("m0", ""), found("m2", "F"), found("m3", "")];
        now.extend([found("m5", ""), found("n1", "S"), found("n2", "")]);
        db.imap_sync(f.id, &now).unwrap();
        db.imap_set_flags(f.id, 4, "", &["$Later".into()]).unwrap();
        let patched = db.imap_messages_after(f.id, at, &known).unwrap();
        let whole = db.imap_messages(f.id).unwrap();
        assert_eq!(patched, whole);
        assert_eq!(
            patched.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 3, 4, 6, 7, 8]
        );
        // The untouched rows kept their names, and so did the re-read ones (m2, m3); the
        // read ones share their flag sets.
        assert!(Arc::ptr_eq(&patched[0].unique, &known[0].unique));
        assert!(Arc::ptr_eq(&patched[1].unique, &known[2].unique));
        assert!(Arc::ptr_eq(&patched[2].unique, &known[3].unique));
        assert!(Arc::ptr_eq(&patched[3].unique, &known[5].unique));
        assert!(Arc::ptr_eq(&whole[0].flags, &whole[2].flags));
    }

    #[test]
    fn a_folder_made_again_has_a_new_uidvalidity() {
        let db = Db::open_in_memory().unwrap();
        let first = db.imap_folder("alice", "Work").unwrap();
        db.imap_drop_folder(first.id).unwrap();
        let second = db.imap_folder("alice", "Work").unwrap();
        assert!(second.uidvalidity > first.uidvalidity);
        db.imap_rename_folder(second.id, "Projects").unwrap();
        db.imap_subscribe(second.id, false).unwrap();
        let all = db.imap_folders("alice").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].name.as_str(), all[0].subscribed),
            ("Projects", false)
        );
        assert!(db.imap_folders("bob").unwrap().is_empty());
    }
}
