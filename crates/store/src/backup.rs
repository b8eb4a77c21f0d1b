//! One archive of a box: its config, its state database, its Maildirs (voicemail and
//! faxes with them), greetings, keys and certificates, and the config history.
//!
//! The archive is a gzipped tar, read and written as a stream, laid out as
//!
//! - `officebox-backup.toml`, first: the archive's format, the officebox version and
//!   schema that wrote it, when, and on which host, so that a restore can refuse an
//!   archive from a newer officebox before it unpacks anything;
//! - `config.toml`: the config file as it was;
//! - `data/...`: the data directory. Its `state.db` is a copy made with SQLite's online
//!   backup (one read transaction: consistent while the box writes on), not the live
//!   file; the Maildirs' `tmp/` (deliveries not yet acknowledged) and the lock file are
//!   left out;
//! - `SHA256SUMS`, last: the SHA-256 of every file before it, the manifest included.
//!   An archive without it (cut short) or with a file that does not match it, a file
//!   missing or one it does not list, is refused.
//!
//! With a passphrase the whole gzipped tar is encrypted with age (scrypt recipient,
//! ChaCha20-Poly1305 in 64 KiB chunks, each authenticated): `age -d` opens it too, and a
//! changed byte anywhere is found before any file is used.
//!
//! Written while everything runs: a message is a file that never changes once
//! delivered, only renamed (new/ to cur/, or its flags); one renamed between the listing
//! and its reading is found again by its unique name. A mail acknowledged before the
//! backup began is in it. The archive is written under a temporary name, fsynced and
//! then renamed, so a backup cut off midway never leaves a file that looks whole.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Component, Path, PathBuf};

use crate::StoreError;

/// The layout of the archive this code writes and reads.
pub const FORMAT: u32 = 1;

const MANIFEST: &str = "officebox-backup.toml";
const CONFIG: &str = "config.toml";
const DATA: &str = "data";
const SUMS: &str = "SHA256SUMS";

/// Files of the data directory never archived: the live database (a consistent copy
/// is), its journals, and the lock of the running officebox.
const NOT_ARCHIVED: [&str; 5] = [
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "state.db-journal",
    crate::LOCK_FILE,
];

/// Why a backup could not be made or an archive cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not an officebox backup (or not one this version can read).
    #[error("{} is not an officebox backup: {why}", path.display())]
    NotABackup { path: PathBuf, why: String },
    /// The archive is cut short or was changed after it was written.
    #[error("{} is damaged: {why}; nothing was restored", path.display())]
    Damaged { path: PathBuf, why: String },
    /// The archive is encrypted and no passphrase, or not its passphrase, was given.
    #[error("{} is encrypted: {why}; nothing was restored", path.display())]
    Locked { path: PathBuf, why: String },
    /// The archive is whole but this officebox will not restore it.
    #[error("{} cannot be restored here: {why}; nothing was restored", path.display())]
    Refused { path: PathBuf, why: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupError + use<'a> {
    move |source| BackupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What an archive says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    /// The officebox version that wrote it (`0.1.0`).
    pub version: String,
    /// Its state database's schema version.
    pub schema: u32,
    /// Unix seconds.
    pub created: i64,
    pub host: String,
}

impl Manifest {
    fn to_text(&self) -> String {
        format!(
            "# An officebox backup: restore it with `officebox restore`.\n\
             format = {}\nversion = \"{}\"\nschema = {}\ncreated = {}\nhost = \"{}\"\n",
            self.format,
            quoted(&self.version),
            self.schema,
            self.created,
            quoted(&self.host)
        )
    }

    fn parse(text: &str) -> Result<Manifest, String> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("its manifest has a line without `=`: {line}"))?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            fields.insert(key.trim().to_string(), value.to_string());
        }
        let field = |k: &str| {
            fields
                .get(k)
                .cloned()
                .ok_or_else(|| format!("its manifest has no `{k}`"))
        };
        let number = |k: &str| {
            field(k)?
                .parse::<i64>()
                .map_err(|_| format!("its manifest's `{k}` is not a number"))
        };
        Ok(Manifest {
            format: u32::try_from(number("format")?).map_err(|_| "bad format".to_string())?,
            version: field("version")?,
            schema: u32::try_from(number("schema")?).map_err(|_| "bad schema".to_string())?,
            created: number("created")?,
            host: field("host")?,
        })
    }
}

/// A host name or version as written in the manifest: nothing that could end its line
/// or its quotes.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect()
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Files in the archive (the manifest and the sums not counted).
    pub files: usize,
    /// Their bytes, before compression.
    pub bytes: u64,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    digest: ring::digest::Context,
    read: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            read: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex(self.digest.finish().as_ref()), self.read)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        self.digest.update(got);
        self.read += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Where the gzipped tar goes: the file, or age's encryption in front of it.
enum Sink {
    Plain(BufWriter<File>),
    Sealed(age::stream::StreamWriter<BufWriter<File>>),
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

impl Sink {
    fn open(path: &Path, passphrase: Option<&str>) -> io::Result<Sink> {
        let file = BufWriter::new(File::create(path)?);
        Ok(match passphrase {
            None => Sink::Plain(file),
            Some(p) => {
                let secret = age::secrecy::SecretString::from(p.to_string());
                Sink::Sealed(age::Encryptor::with_user_passphrase(secret).wrap_output(file)?)
            }
        })
    }

    /// Ends the stream (age's last chunk) and hands back the file.
    fn close(self) -> io::Result<File> {
        let buffered = match self {
            Sink::Plain(w) => w,
            Sink::Sealed(w) => w.finish()?,
        };
        buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

/// The archive being written, and the sums of what is in it so far.
struct Archive {
    tar: tar::Builder<flate2::write::GzEncoder<Sink>>,
    sums: Vec<(String, String)>,
    written: Written,
    path: PathBuf,
}

impl Archive {
    /// A new archive at `path`, encrypted with `passphrase` when one is given.
    fn create(path: &Path, passphrase: Option<&str>) -> Result<Archive, BackupError> {
        let sink = Sink::open(path, passphrase).map_err(io_err("create", path))?;
        Ok(Archive {
            tar: tar::Builder::new(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::fast(),
            )),
            sums: Vec::new(),
            written: Written { files: 0, bytes: 0 },
            path: path.to_path_buf(),
        })
    }

    fn header(size: u64, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let mut h = Self::header(bytes.len() as u64, 0o600, now_secs().max(0).unsigned_abs());
        self.tar
            .append_data(&mut h, name, bytes)
            .map_err(io_err("write", &self.path))?;
        self.sums.push((name.to_string(), sha256(bytes)));
        Ok(())
    }

    fn add_dir(&mut self, name: &str, mode: u32) -> Result<(), BackupError> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(mode);
        h.set_mtime(now_secs().max(0).unsigned_abs());
        h.set_entry_type(tar::EntryType::Directory);
        self.tar
            .append_data(&mut h, format!("{name}/"), io::empty())
            .map_err(io_err("write", &self.path))
    }

    /// Adds the open file `file` (`meta` its metadata) as `name`, hashed as it goes.
    fn add_file(&mut self, name: &str, file: File, meta: &fs::Metadata) -> Result<(), BackupError> {
        use std::os::unix::fs::PermissionsExt;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let size = meta.len();
        let mut h = Self::header(size, meta.permissions().mode() & 0o777, mtime);
        let mut reader = Hashing::new(BufReader::new(file).take(size));
        self.tar
            .append_data(&mut h, name, &mut reader)
            .map_err(io_err("write", &self.path))?;
        let (sum, read) = reader.finish();
        if read != size {
            // tar has already refused a short file; this is for the record.
            return Err(BackupError::Io {
                op: "read all of",
                path: PathBuf::from(name),
                source: io::Error::from(io::ErrorKind::UnexpectedEof),
            });
        }
        self.sums.push((name.to_string(), sum));
        self.written.files += 1;
        self.written.bytes += size;
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Writes a backup of the config file `config` and the data directory `data_dir` to
/// `out` (replaced only once the new archive is whole and on disk), encrypted with
/// `passphrase` when one is given.
pub fn write(
    config: &Path,
    data_dir: &Path,
    out: &Path,
    manifest: &Manifest,
    passphrase: Option<&str>,
) -> Result<Written, BackupError> {
    let partial = with_suffix(out, ".partial");
    let state_copy = with_suffix(out, ".state-db");
    let result = (|| {
        let mut archive = Archive::create(&partial, passphrase)?;
        archive.add_bytes(MANIFEST, manifest.to_text().as_bytes())?;
        let text = fs::read(config).map_err(io_err("read", config))?;
        archive.add_bytes(CONFIG, &text)?;
        archive.written.files += 1;
        archive.written.bytes += text.len() as u64;

        archive.add_dir(DATA, 0o700)?;
        let live = crate::state_db(data_dir);
        if live.exists() {
            crate::Db::backup_to(&live, &state_copy)?;
            let file = File::open(&state_copy).map_err(io_err("open", &state_copy))?;
            let meta = file.metadata().map_err(io_err("read", &state_copy))?;
            archive.add_file(&format!("{DATA}/state.db"), file, &meta)?;
            let _ = fs::remove_file(&state_copy);
        }
        let skip: HashSet<PathBuf> = [out, &partial, &state_copy]
            .iter()
            .filter_map(|p| p.canonicalize().ok().or_else(|| Some(p.to_path_buf())))
            .collect();
        add_tree(&mut archive, data_dir, DATA, &skip, true)?;

        let sums: String = archive
            .sums
            .iter()
            .map(|(name, sum)| format!("{sum}  {name}\n"))
            .collect();
        let mut h = Archive::header(sums.len() as u64, 0o600, now_secs().max(0).unsigned_abs());
        archive
            .tar
            .append_data(&mut h, SUMS, sums.as_bytes())
            .map_err(io_err("write", &partial))?;
        let written = archive.written;
        let gz = archive
            .tar
            .into_inner()
            .map_err(io_err("write", &partial))?;
        let sink = gz.finish().map_err(io_err("write", &partial))?;
        let file = sink.close().map_err(io_err("write", &partial))?;
        file.sync_all().map_err(io_err("fsync", &partial))?;
        drop(file);
        fs::rename(&partial, out).map_err(io_err("rename into place", out))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::file::sync_dir(dir)?;
        }
        Ok(written)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(&state_copy);
    }
    result
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Adds the directory `dir` as `name` and everything below it, in name order.
fn add_tree(
    archive: &mut Archive,
    dir: &Path,
    name: &str,
    skip: &HashSet<PathBuf>,
    top: bool,
) -> Result<(), BackupError> {
    let mut items: Vec<(String, fs::FileType)> = match fs::read_dir(dir) {
        Ok(read) => read
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.file_type().ok()?)))
            .collect(),
        // Gone since it was listed (a folder deleted meanwhile): nothing to add.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    items.sort_by(|a, b| a.0.cmp(&b.0));
    // A Maildir (cur/ and new/ side by side): its tmp/ holds deliveries not yet
    // acknowledged, left out; the directory itself is kept, empty.
    let maildir = items.iter().any(|(n, t)| n == "cur" && t.is_dir())
        && items.iter().any(|(n, t)| n == "new" && t.is_dir());
    for (item, kind) in items {
        let path = dir.join(&item);
        let entry = format!("{name}/{item}");
        // A file being replaced (`write_atomic`'s `.<name>.tmp.<pid>`): its old
        // version is what counts, and is archived under its own name.
        let half_written = item.starts_with('.') && item.contains(".tmp.");
        if (top && NOT_ARCHIVED.contains(&item.as_str()))
            || (half_written && kind.is_file())
            || skip.contains(&path.canonicalize().unwrap_or_else(|_| path.clone()))
        {
            continue;
        }
        if kind.is_dir() {
            archive.add_dir(&entry, 0o700)?;
            if !(maildir && item == "tmp") {
                add_tree(archive, &path, &entry, skip, false)?;
            }
        } else if kind.is_file() {
            match File::open(&path) {
                Ok(file) => {
                    let meta = file.metadata().map_err(io_err("read", &path))?;
                    archive.add_file(&entry, file, &meta)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if maildir_message_moved(archive, dir, name, &item)? {
                        continue;
                    }
                    // Deleted since the listing (an expunge, a sent queue file): it is
                    // not part of the box any more.
                }
                Err(e) => return Err(io_err("open", &path)(e)),
            }
        }
        // Sockets, pipes and links are not the box's state.
    }
    Ok(())
}

/// A message file renamed after its folder was listed (read, flagged, or moved from
/// new/ to cur/): found again by its unique name in new/ or cur/ and added as it is now.
fn maildir_message_moved(
    archive: &mut Archive,
    dir: &Path,
    name: &str,
    item: &str,
) -> Result<bool, BackupError> {
    let (Some(parent), Some(sub)) = (dir.parent(), dir.file_name().and_then(|s| s.to_str())) else {
        return Ok(false);
    };
    if sub != "new" && sub != "cur" {
        return Ok(false);
    }
    let unique = item.split(':').next().unwrap_or(item);
    let parent_name = name.rsplit_once('/').map_or(name, |(p, _)| p);
    for place in ["cur", "new"] {
        let Ok(read) = fs::read_dir(parent.join(place)) else {
            continue;
        };
        for e in read.filter_map(Result::ok) {
            let Ok(found) = e.file_name().into_string() else {
                continue;
            };
            if found.split(':').next() != Some(unique) {
                continue;
            }
            let path = e.path();
            let already = format!("{parent_name}/{place}/{found}");
            if archive.sums.iter().any(|(n, _)| *n == already) {
                return Ok(true);
            }
            if let Ok(file) = File::open(&path) {
                let meta = file.metadata().map_err(io_err("read", &path))?;
                archive.add_file(&already, file, &meta)?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// An archive unpacked and checked, in a directory of its own.
#[derive(Debug)]
pub struct Unpacked {
    pub manifest: Manifest,
    /// The config file as it was backed up.
    pub config: PathBuf,
    /// The data directory as it was backed up.
    pub data: PathBuf,
    pub files: usize,
}

/// Whether an entry name is a plain relative path (no `..`, not absolute).
fn plain(name: &Path) -> bool {
    name.components().all(|c| matches!(c, Component::Normal(_)))
        && name.components().next().is_some()
}

/// Unpacks `archive` into `into` (made here; it must not exist), checking every file
/// against the archive's sums and the manifest with `accept` before anything else is
/// unpacked. On any error `into` is removed again.
pub fn unpack(
    archive: &Path,
    into: &Path,
    passphrase: Option<&str>,
    accept: &dyn Fn(&Manifest) -> Result<(), String>,
) -> Result<Unpacked, BackupError> {
    fs::create_dir(into).map_err(io_err("create", into))?;
    let result = unpack_into(archive, into, passphrase, accept);
    if result.is_err() {
        let _ = fs::remove_dir_all(into);
    }
    result
}

/// How every age file begins.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// Whether the file at `path` is encrypted with age.
pub fn is_encrypted(path: &Path) -> Result<bool, BackupError> {
    let mut head = [0u8; AGE_MAGIC.len()];
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let mut got = 0;
    while let Some(rest) = head.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read(rest).map_err(io_err("read", path))? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == head.len() && head == AGE_MAGIC)
}

/// The archive's gzipped tar: the file itself, or what age decrypts of it.
fn open_stream(archive: &Path, passphrase: Option<&str>) -> Result<Box<dyn Read>, BackupError> {
    let locked = |why: &str| BackupError::Locked {
        path: archive.to_path_buf(),
        why: why.to_string(),
    };
    let sealed = is_encrypted(archive)?;
    let file = BufReader::new(File::open(archive).map_err(io_err("open", archive))?);
    if !sealed {
        return Ok(Box::new(file));
    }
    let Some(passphrase) = passphrase else {
        return Err(locked("give its passphrase to restore it"));
    };
    let decryptor = age::Decryptor::new(file).map_err(|e| BackupError::Damaged {
        path: archive.to_path_buf(),
        why: format!("its encryption header cannot be read ({e})"),
    })?;
    if !decryptor.is_scrypt() {
        return Err(locked("it is encrypted to a key, not with a passphrase"));
    }
    let identity =
        age::scrypt::Identity::new(age::secrecy::SecretString::from(passphrase.to_string()));
    decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map(|r| Box::new(r) as Box<dyn Read>)
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                locked("the passphrase given does not open it")
            }
            e => locked(&format!("it cannot be opened ({e})")),
        })
}

fn unpack_into(
    archive: &Path,
    into: &Path,
    passphrase: Option<&str>,
    accept: &dyn Fn(&Manifest) -> Result<(), String>,
) -> Result<Unpacked, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let not_a_backup = |why: String| BackupError::NotABackup {
        path: archive.to_path_buf(),
        why,
    };
    let damaged = |why: String| BackupError::Damaged {
        path: archive.to_path_buf(),
        why,
    };
    let stream = open_stream(archive, passphrase)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(stream));
    let entries = tar
        .entries()
        .map_err(|e| not_a_backup(format!("it cannot be read as a gzipped tar ({e})")))?;
    let mut manifest: Option<Manifest> = None;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut sums: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| match manifest {
            None => not_a_backup(format!("it cannot be read as a gzipped tar ({e})")),
            Some(_) => damaged(format!("it is cut short or corrupt ({e})")),
        })?;
        let name = entry
            .path()
            .map_err(|e| damaged(format!("an entry has a bad name ({e})")))?
            .into_owned();
        let text_name = name.to_string_lossy().into_owned();
        if sums.is_some() {
            return Err(damaged(format!("{text_name} comes after the sums")));
        }
        let Some(manifest_now) = &manifest else {
            if text_name != MANIFEST {
                return Err(not_a_backup(format!("it does not start with {MANIFEST}")));
            }
            let mut text = String::new();
            (&mut entry)
                .take(64 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| not_a_backup(format!("its manifest cannot be read ({e})")))?;
            let m = Manifest::parse(&text).map_err(not_a_backup)?;
            if m.format != FORMAT {
                return Err(BackupError::Refused {
                    path: archive.to_path_buf(),
                    why: format!(
                        "it is in archive format {}, this officebox reads format {FORMAT}",
                        m.format
                    ),
                });
            }
            if m.schema > crate::known_schema_version() {
                return Err(BackupError::Refused {
                    path: archive.to_path_buf(),
                    why: format!(
                        "it was written by officebox {} (state schema {}), newer than this one \
                         (schema {}): upgrade officebox first",
                        m.version,
                        m.schema,
                        crate::known_schema_version()
                    ),
                });
            }
            accept(&m).map_err(|why| BackupError::Refused {
                path: archive.to_path_buf(),
                why,
            })?;
            seen.insert(MANIFEST.into(), sha256(text.as_bytes()));
            manifest = Some(m);
            continue;
        };
        let _ = manifest_now;
        if text_name == SUMS {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| damaged(format!("its sums cannot be read ({e})")))?;
            sums = Some(text);
            continue;
        }
        let kind = entry.header().entry_type();
        let under_data = name.starts_with(DATA);
        if !plain(&name) || !(under_data || text_name == CONFIG) {
            return Err(damaged(format!(
                "it holds {text_name}, which no backup has"
            )));
        }
        let target = into.join(&name);
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(io_err("create", &target))?;
            let mode = entry.header().mode().unwrap_or(0o700) & 0o777;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o700))
                .map_err(io_err("set permissions of", &target))?;
            continue;
        }
        if !kind.is_file() {
            return Err(damaged(format!("{text_name} is not a plain file")));
        }
        if seen.contains_key(&text_name) {
            return Err(damaged(format!("{text_name} is in it twice")));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        let mode = entry.header().mode().unwrap_or(0o600) & 0o777;
        let mtime = entry.header().mtime().unwrap_or(0);
        let mut out = File::create(&target).map_err(io_err("create", &target))?;
        let mut reader = Hashing::new(&mut entry);
        io::copy(&mut reader, &mut out)
            .map_err(|e| damaged(format!("{text_name} is cut short ({e})")))?;
        let (sum, _) = reader.finish();
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("set permissions of", &target))?;
        let _ = out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
        seen.insert(text_name, sum);
    }
    let Some(manifest) = manifest else {
        return Err(not_a_backup("it is empty".into()));
    };
    let Some(sums) = sums else {
        return Err(damaged(format!("it ends before its {SUMS} (cut short)")));
    };
    let mut listed = BTreeMap::new();
    for line in sums.lines().filter(|l| !l.is_empty()) {
        let (sum, name) = line
            .split_once("  ")
            .ok_or_else(|| damaged(format!("its {SUMS} has a bad line")))?;
        listed.insert(name.to_string(), sum.to_string());
    }
    for (name, sum) in &seen {
        match listed.get(name) {
            Some(s) if s == sum => {}
            Some(_) => return Err(damaged(format!("{name} does not match its checksum"))),
            None => return Err(damaged(format!("{name} is not in its {SUMS}"))),
        }
    }
    if let Some(name) = listed.keys().find(|n| !seen.contains_key(*n)) {
        return Err(damaged(format!("{name} is missing")));
    }
    let config = into.join(CONFIG);
    if !config.is_file() {
        return Err(damaged(format!("it has no {CONFIG}")));
    }
    let data = into.join(DATA);
    fs::create_dir_all(&data).map_err(io_err("create", &data))?;
    sync_tree(into)?;
    Ok(Unpacked {
        manifest,
        config,
        data,
        files: seen.len().saturating_sub(1),
    })
}

/// fsyncs every file and directory below `dir` (a restore is on disk before it is used).
fn sync_tree(dir: &Path) -> Result<(), BackupError> {
    for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        let path = e.path();
        if e.file_type().map_err(io_err("read", &path))?.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("fsync", &path))?;
        }
    }
    crate::file::sync_dir(dir)?;
    Ok(())
}

/// How every archive's file name begins: `officebox-<host>-<time>.tar.gz[.age]`.
pub const ARCHIVE_PREFIX: &str = "officebox-";

/// Now as `YYYYMMDD-HHMMSS` (UTC), for file names.
pub fn stamp_now() -> String {
    crate::date::datetime(crate::unix_now())
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | ':' => None,
            c => Some(c),
        })
        .collect()
}

/// The file name of an archive of `host` made now (`.age` when encrypted).
pub fn archive_name(host: &str, encrypted: bool) -> String {
    let age = if encrypted { ".age" } else { "" };
    format!("{ARCHIVE_PREFIX}{host}-{}.tar.gz{age}", stamp_now())
}

/// The manifest of the officebox running this code, for a backup made now.
pub fn manifest_now(version: &str, host: &str) -> Manifest {
    Manifest {
        format: FORMAT,
        version: version.to_string(),
        schema: crate::known_schema_version(),
        created: now_secs(),
        host: host.to_string(),
    }
}

/// A copy of `archive` at `out` with each entry passed through `change` (dropped when
/// it answers false): how the tests spoil one.
#[cfg(test)]
fn spoil(archive: &Path, out: &Path, change: &dyn Fn(&str, &mut Vec<u8>) -> bool) {
    #![allow(clippy::unwrap_used)]
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(archive).unwrap()));
    let gz = flate2::write::GzEncoder::new(File::create(out).unwrap(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if !change(&name, &mut bytes) {
            continue;
        }
        let mut h = entry.header().clone();
        h.set_size(bytes.len() as u64);
        h.set_cksum();
        builder
            .append_data(&mut h, &name, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn box_dir(root: &Path) -> (PathBuf, PathBuf) {
        let config = root.join("officebox.toml");
        fs::write(&config, "[general]\nhostname = \"box\"\n").unwrap();
        let data = root.join("data");
        let db = crate::Db::open(&crate::state_db(&data)).unwrap();
        db.imap_folder("alice", "INBOX").unwrap();
        let md = crate::Maildir::open(&data.join("mail/alice")).unwrap();
        md.deliver(b"Subject: one\r\n\r\nhello\r\n").unwrap();
        md.deliver(b"Subject: two\r\n\r\nworld\r\n").unwrap();
        fs::write(
            data.join("mail/alice/tmp/123.half"),
            b"not yet acknowledged",
        )
        .unwrap();
        fs::create_dir_all(data.join("tls")).unwrap();
        fs::write(data.join("tls/key.pem"), b"secret").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(data.join("tls/key.pem"), fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        fs::write(data.join(crate::LOCK_FILE), b"").unwrap();
        fs::write(data.join("tls/.key.pem.tmp.77"), b"half a new key").unwrap();
        (config, data)
    }

    fn manifest() -> Manifest {
        manifest_now("0.1.0", "box")
    }

    fn accept_all(_: &Manifest) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_backup_unpacks_to_the_same_files_and_database() {
        let dir = tempfile::tempdir().unwrap();
        let (config, data) = box_dir(dir.path());
        let out = dir.path().join("box.tar.gz");
        let written = write(&config, &data, &out, &manifest(), None).unwrap();
        assert!(written.files >= 5, "{written:?}");
        assert!(!with_suffix(&out, ".partial").exists());
        let un = unpack(&out, &dir.path().join("restore"), None, &accept_all).unwrap();
        assert_eq!(
            (un.manifest.version.as_str(), un.manifest.host.as_str()),
            ("0.1.0", "box")
        );
        assert_eq!(fs::read(&un.config).unwrap(), fs::read(&config).unwrap());
        let md = crate::Maildir::open(&un.data.join("mail/alice")).unwrap();
        assert_eq!(md.list().unwrap().len(), 2);
        // Deliveries not acknowledged and the lock are not in it.
        assert!(!un.data.join("mail/alice/tmp/123.half").exists());
        assert!(un.data.join("mail/alice/tmp").is_dir());
        assert!(!un.data.join(crate::LOCK_FILE).exists());
        assert!(!un.data.join("tls/.key.pem.tmp.77").exists());
        // The key keeps its mode; the database is a working copy.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(un.data.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let db = crate::Db::open(&crate::state_db(&un.data)).unwrap();
        assert!(db.imap_folder_if_any("alice", "INBOX").unwrap().is_some());
    }

    #[test]
    fn a_cut_changed_or_foreign_archive_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (config, data) = box_dir(dir.path());
        let out = dir.path().join("box.tar.gz");
        write(&config, &data, &out, &manifest(), None).unwrap();
        let into = dir.path().join("restore");
        let refused = |archive: &Path| {
            let e = unpack(archive, &into, None, &accept_all).unwrap_err();
            assert!(!into.exists(), "nothing is left behind: {e}");
            e.to_string()
        };

        // Cut short: anywhere.
        let bytes = fs::read(&out).unwrap();
        for keep in [bytes.len() / 3, bytes.len() - 40] {
            let cut = dir.path().join("cut.tar.gz");
            fs::write(&cut, &bytes[..keep]).unwrap();
            let e = refused(&cut);
            assert!(
                e.contains("damaged") || e.contains("not an officebox backup"),
                "{e}"
            );
        }
        // One message changed.
        let changed = dir.path().join("changed.tar.gz");
        spoil(&out, &changed, &|name, b| {
            if name.contains("mail/alice/new/") && b.ends_with(b"world\r\n") {
                b.extend_from_slice(b"P.S. transfer the money\r\n");
            }
            true
        });
        let e = refused(&changed);
        assert!(e.contains("does not match its checksum"), "{e}");
        // One file taken out.
        let missing = dir.path().join("missing.tar.gz");
        spoil(&out, &missing, &|name, _| !name.ends_with("key.pem"));
        assert!(refused(&missing).contains("data/tls/key.pem is missing"));
        // Not a backup at all.
        let other = dir.path().join("other.tar.gz");
        fs::write(&other, b"hello").unwrap();
        assert!(refused(&other).contains("not an officebox backup"));
        // From a newer officebox.
        let newer = dir.path().join("newer.tar.gz");
        spoil(&out, &newer, &|name, b| {
            if name == MANIFEST {
                let m = Manifest {
                    schema: crate::known_schema_version() + 1,
                    version: "9.0.0".into(),
                    ..manifest()
                };
                *b = m.to_text().into_bytes();
            }
            true
        });
        let e = refused(&newer);
        assert!(
            e.contains("newer than this one") && e.contains("9.0.0"),
            "{e}"
        );
        // Refused by the caller's own rule.
        let e = unpack(&out, &into, None, &|_| Err("for another reason".into())).unwrap_err();
        assert!(e.to_string().contains("for another reason"), "{e}");
        assert!(!into.exists());
    }

    #[test]
    fn an_encrypted_backup_opens_with_its_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let (config, data) = box_dir(dir.path());
        let out = dir.path().join("box.tar.gz.age");
        let phrase = Some("correct horse battery");
        write(&config, &data, &out, &manifest(), phrase).unwrap();
        assert!(is_encrypted(&out).unwrap());
        let raw = fs::read(&out).unwrap();
        assert!(
            !raw.windows(6).any(|w| w == b"secret"),
            "the key is not readable"
        );
        let into = dir.path().join("restore");
        for (given, says) in [
            (None, "give its passphrase"),
            (Some("wrong horse battery"), "does not open it"),
        ] {
            let e = unpack(&out, &into, given, &accept_all)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
            assert!(!into.exists());
        }
        // One byte changed: its chunk's tag fails, and nothing is left.
        let mut spoiled = raw.clone();
        let at = spoiled.len() - 100;
        spoiled[at] ^= 1;
        let bad = dir.path().join("bad.age");
        fs::write(&bad, &spoiled).unwrap();
        let e = unpack(&bad, &into, phrase, &accept_all).unwrap_err();
        assert!(!into.exists(), "{e}");
        let un = unpack(&out, &into, phrase, &accept_all).unwrap();
        assert_eq!(fs::read(un.data.join("tls/key.pem")).unwrap(), b"secret");
    }

    #[test]
    fn a_message_moved_while_the_backup_runs_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let (_, data) = box_dir(dir.path());
        let md = crate::Maildir::open(&data.join("mail/alice")).unwrap();
        let first = md.list().unwrap().into_iter().next().unwrap();
        let out = dir.path().join("box.tar.gz");
        let partial = with_suffix(&out, ".partial");
        let mut archive = Archive::create(&partial, None).unwrap();
        // Listed in new/, then read (moved to cur/ with \Seen) before it was opened.
        let new_dir = data.join("mail/alice/new");
        let listed = first.name().to_string();
        md.set_flags(&first, "S").unwrap();
        assert!(!new_dir.join(&listed).exists());
        assert!(
            maildir_message_moved(&mut archive, &new_dir, "data/mail/alice/new", &listed).unwrap()
        );
        assert!(
            archive.sums[0].0.starts_with("data/mail/alice/cur/"),
            "{:?}",
            archive.sums
        );
        assert!(archive.sums[0].0.ends_with(":2,S"));
    }
}
