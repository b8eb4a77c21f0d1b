//! The state database: one SQLite file in WAL mode with versioned migrations.
//!
//! The schema version lives in `PRAGMA user_version`. Each pending migration runs in
//! its own `BEGIN IMMEDIATE` transaction together with the version bump, so a crash
//! in the middle of an upgrade leaves the database at the previous version, never
//! half-migrated; two processes opening the same file at once do not both migrate.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::StoreError;

/// How long a writer waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One step of the schema. Versions start at 1 and are consecutive; a released
/// migration is never edited, only followed by a new one.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `user_version` the database has after this migration.
    pub version: u32,
    /// A short name for logs and error messages.
    pub name: &'static str,
    /// The SQL, run with `execute_batch` inside the migration's transaction.
    pub sql: &'static str,
}

/// Every migration this officebox knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "meta and DHCP leases",
        sql: "
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE leases (
            address    TEXT PRIMARY KEY,
            client_id  BLOB NOT NULL,
            mac        TEXT NOT NULL,
            hostname   TEXT,
            expires_at INTEGER NOT NULL,
            state      TEXT NOT NULL
                       CHECK (state IN ('offered', 'bound', 'released', 'declined')),
            reserved   INTEGER NOT NULL DEFAULT 0,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX leases_client_id ON leases (client_id);
        CREATE INDEX leases_hostname ON leases (hostname);
    ",
    },
    Migration {
        version: 2,
        name: "outbound mail queue",
        sql: "
        CREATE TABLE queue_messages (
            id          INTEGER PRIMARY KEY,
            sender      TEXT NOT NULL,
            path        TEXT NOT NULL,
            size        INTEGER NOT NULL,
            received_at INTEGER NOT NULL
        );
        CREATE TABLE queue_recipients (
            message_id      INTEGER NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
            recipient       TEXT NOT NULL,
            state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            last_error      TEXT,
            PRIMARY KEY (message_id, recipient)
        );
        CREATE INDEX queue_due ON queue_recipients (state, next_attempt_at);
    ",
    },
    Migration {
        version: 3,
        name: "delivery status notifications and the POP3 fetcher",
        sql: "
        ALTER TABLE queue_messages ADD COLUMN envid TEXT;
        ALTER TABLE queue_messages ADD COLUMN ret TEXT;
        ALTER TABLE queue_recipients ADD COLUMN notify INTEGER;
        ALTER TABLE queue_recipients ADD COLUMN orcpt TEXT;
        ALTER TABLE queue_recipients ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE queue_recipients ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE queue_recipients ADD COLUMN remote TEXT;
        CREATE TABLE fetch_seen (
            account    TEXT NOT NULL,
            uid        TEXT NOT NULL,
            fetched_at INTEGER NOT NULL,
            PRIMARY KEY (account, uid)
        ) WITHOUT ROWID;
        CREATE TABLE fetch_status (
            account         TEXT PRIMARY KEY,
            last_attempt_at INTEGER,
            last_success_at INTEGER,
            last_error      TEXT,
            failures        INTEGER NOT NULL DEFAULT 0,
            fetched         INTEGER NOT NULL DEFAULT 0,
            next_poll_at    INTEGER NOT NULL DEFAULT 0
        );
    ",
    },
    Migration {
        version: 4,
        name: "phone registrations",
        sql: "
        CREATE TABLE sip_bindings (
            login      TEXT NOT NULL,
            contact    TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            call_id    TEXT NOT NULL,
            cseq       INTEGER NOT NULL,
            source     TEXT NOT NULL,
            transport  TEXT NOT NULL,
            user_agent TEXT NOT NULL,
            PRIMARY KEY (login, contact)
        );
    ",
    },
    Migration {
        version: 5,
        name: "live calls",
        sql: "
        CREATE TABLE sip_calls (
            id          INTEGER PRIMARY KEY,
            caller      TEXT NOT NULL,
            callee      TEXT NOT NULL,
            state       TEXT NOT NULL,
            started_at  INTEGER NOT NULL,
            answered_at INTEGER
        );
    ",
    },
    Migration {
        version: 6,
        name: "voicemail index",
        sql: "
        CREATE TABLE voicemail (
            login       TEXT NOT NULL,
            name        TEXT NOT NULL,
            caller      TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (login, name)
        ) WITHOUT ROWID;
    ",
    },
    Migration {
        version: 7,
        name: "the DNS zone as served, as rows",
        sql: "
        CREATE TABLE dns_served (
            seq    INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            name   TEXT NOT NULL,
            ttl    INTEGER NOT NULL,
            rtype  TEXT NOT NULL,
            value  TEXT NOT NULL
        );
        DELETE FROM meta WHERE key = 'dns.served';
    ",
    },
    Migration {
        version: 8,
        name: "call log",
        sql: "
        CREATE TABLE call_log (
            id           INTEGER PRIMARY KEY,
            call_id      TEXT NOT NULL UNIQUE,
            direction    TEXT NOT NULL CHECK (direction IN ('internal', 'in', 'out')),
            trunk        TEXT,
            caller       TEXT NOT NULL,
            caller_login TEXT,
            caller_name  TEXT NOT NULL,
            callee       TEXT NOT NULL,
            callee_login TEXT,
            answered_by  TEXT,
            started_at   INTEGER NOT NULL,
            answered_at  INTEGER,
            ended_at     INTEGER,
            disposition  TEXT CHECK (disposition IN ('answered', 'no-answer', 'busy',
                         'voicemail', 'cancelled', 'failed', 'menu', 'unknown'))
        );
        CREATE INDEX call_log_started ON call_log (started_at);
    ",
    },
    Migration {
        version: 9,
        name: "SIP trunk status",
        sql: "
        CREATE TABLE trunk_status (
            name             TEXT PRIMARY KEY,
            kind             TEXT NOT NULL,
            server           TEXT NOT NULL,
            state            TEXT NOT NULL
                             CHECK (state IN ('registering', 'registered', 'failing', 'disabled', 'ip', 'stopped')),
            registered_until INTEGER,
            last_code        INTEGER,
            last_reason      TEXT,
            next_try_at      INTEGER,
            detail           TEXT NOT NULL DEFAULT '',
            updated_at       INTEGER NOT NULL
        );
    ",
    },
    Migration {
        version: 10,
        name: "call log: attendant and feature-code calls",
        // SQLite cannot change a CHECK: the table is made again, rows and all.
        sql: "
        CREATE TABLE call_log_new (
            id           INTEGER PRIMARY KEY,
            call_id      TEXT NOT NULL UNIQUE,
            direction    TEXT NOT NULL CHECK (direction IN ('internal', 'in', 'out')),
            trunk        TEXT,
            caller       TEXT NOT NULL,
            caller_login TEXT,
            caller_name  TEXT NOT NULL,
            callee       TEXT NOT NULL,
            callee_login TEXT,
            answered_by  TEXT,
            started_at   INTEGER NOT NULL,
            answered_at  INTEGER,
            ended_at     INTEGER,
            disposition  TEXT CHECK (disposition IN ('answered', 'no-answer', 'busy',
                         'voicemail', 'cancelled', 'failed', 'menu', 'attendant',
                         'feature', 'unknown'))
        );
        INSERT INTO call_log_new SELECT * FROM call_log;
        DROP TABLE call_log;
        ALTER TABLE call_log_new RENAME TO call_log;
        CREATE INDEX call_log_started ON call_log (started_at);
    ",
    },
    Migration {
        version: 11,
        name: "call forwarding and do-not-disturb",
        sql: "
        CREATE TABLE phone_forwarding (
            login      TEXT PRIMARY KEY,
            dnd        INTEGER NOT NULL DEFAULT 0,
            always     TEXT,
            busy       TEXT,
            no_answer  TEXT,
            updated_at INTEGER NOT NULL
        );
    ",
    },
    Migration {
        version: 12,
        name: "provisioned phones",
        sql: "
        CREATE TABLE phone_devices (
            mac          TEXT PRIMARY KEY,
            secret       TEXT NOT NULL,
            token        TEXT UNIQUE,
            made_at      INTEGER NOT NULL,
            fetched_at   INTEGER,
            fetched_from TEXT,
            user_agent   TEXT
        );
    ",
    },
    Migration {
        version: 13,
        name: "the tunnels to other sites",
        sql: "
        CREATE TABLE vpn_status (
            site         TEXT PRIMARY KEY,
            endpoint     TEXT,
            handshake_at INTEGER,
            sent         INTEGER NOT NULL,
            received     INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL
        );
    ",
    },
    Migration {
        version: 14,
        name: "whether the other sites' services answer",
        sql: "ALTER TABLE vpn_status ADD COLUMN services TEXT;",
    },
    Migration {
        version: 15,
        name: "fax log",
        sql: "CREATE TABLE fax_log (
                at INTEGER NOT NULL,
                caller TEXT NOT NULL,
                station TEXT NOT NULL,
                number TEXT NOT NULL,
                login TEXT NOT NULL,
                pages INTEGER NOT NULL,
                complete INTEGER NOT NULL,
                code INTEGER,
                reason TEXT NOT NULL,
                seconds INTEGER NOT NULL
              );
              CREATE INDEX fax_log_at ON fax_log (at);",
    },
    Migration {
        version: 16,
        name: "faxes to send, and which way a logged fax went",
        sql: "CREATE TABLE fax_out (
                id INTEGER PRIMARY KEY,
                login TEXT NOT NULL,
                sender TEXT NOT NULL,
                number TEXT NOT NULL,
                file TEXT NOT NULL,
                preview TEXT,
                pages INTEGER NOT NULL,
                subject TEXT NOT NULL,
                created INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at INTEGER NOT NULL,
                last_result TEXT NOT NULL DEFAULT ''
              );
              CREATE INDEX fax_out_next ON fax_out (next_at);
              ALTER TABLE fax_log ADD COLUMN outgoing INTEGER NOT NULL DEFAULT 0;",
    },
    Migration {
        version: 17,
        name: "the IMAP index: folders, UIDs, keywords, modification sequences",
        sql: "CREATE TABLE imap_folders (
                id INTEGER PRIMARY KEY,
                login TEXT NOT NULL,
                name TEXT NOT NULL,
                uidvalidity INTEGER NOT NULL,
                uidnext INTEGER NOT NULL DEFAULT 1,
                modseq INTEGER NOT NULL DEFAULT 1,
                subscribed INTEGER NOT NULL DEFAULT 1,
                UNIQUE (login, name)
              );
              CREATE TABLE imap_messages (
                folder INTEGER NOT NULL REFERENCES imap_folders (id) ON DELETE CASCADE,
                uid INTEGER NOT NULL,
                unique_name TEXT NOT NULL,
                size INTEGER NOT NULL,
                received INTEGER NOT NULL,
                flags TEXT NOT NULL DEFAULT '',
                keywords TEXT NOT NULL DEFAULT '',
                modseq INTEGER NOT NULL,
                PRIMARY KEY (folder, uid)
              ) WITHOUT ROWID;
              CREATE UNIQUE INDEX imap_messages_unique ON imap_messages (folder, unique_name);
              CREATE TABLE imap_expunged (
                folder INTEGER NOT NULL REFERENCES imap_folders (id) ON DELETE CASCADE,
                uid INTEGER NOT NULL,
                modseq INTEGER NOT NULL,
                PRIMARY KEY (folder, uid)
              ) WITHOUT ROWID;",
    },
    Migration {
        version: 18,
        name: "the domain's DKIM keys",
        sql: "CREATE TABLE dkim_keys (
                selector TEXT PRIMARY KEY,
                algorithm TEXT NOT NULL,
                private BLOB NOT NULL,
                public BLOB NOT NULL,
                created INTEGER NOT NULL,
                retired INTEGER
              );",
    },
    Migration {
        version: 19,
        name: "greylisting",
        sql: "CREATE TABLE greylist (
                network TEXT NOT NULL,
                sender TEXT NOT NULL,
                recipient TEXT NOT NULL,
                first_seen INTEGER NOT NULL,
                last_seen INTEGER NOT NULL,
                passed INTEGER NOT NULL,
                PRIMARY KEY (network, sender, recipient)
              ) WITHOUT ROWID;",
    },
    Migration {
        version: 20,
        name: "out-of-office replies",
        sql: "CREATE TABLE vacation (
                login TEXT PRIMARY KEY,
                subject TEXT NOT NULL,
                body TEXT NOT NULL,
                until INTEGER
              );
              CREATE TABLE vacation_replied (
                login TEXT NOT NULL,
                sender TEXT NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (login, sender)
              ) WITHOUT ROWID;",
    },
];

/// The file in the data directory a running officebox holds locked, so that a second
/// one (or a restore) cannot work on the same data at once.
pub const LOCK_FILE: &str = "officebox.lock";

/// The state database of `data_dir`: every service opens this one file.
pub fn state_db(data_dir: &Path) -> PathBuf {
    data_dir.join("state.db")
}

/// One record of the zone as the DNS service serves it, for the pages that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRecord {
    /// Where it comes from: `zone`, `built-in`, `static`, `reservation` or `dhcp`.
    pub source: String,
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub value: String,
}

/// The meta key of the WAN address the WAN DHCP client holds.
const WAN_ADDRESS: &str = "wan.address";

/// The schema version this binary creates and understands.
pub fn known_schema_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The state of a DHCP lease row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Offered in a DHCPOFFER, not yet requested.
    Offered,
    /// Acknowledged: the client holds the address until `expires_at`.
    Bound,
    /// Given back by the client (DHCPRELEASE).
    Released,
    /// Refused by the client as already in use (DHCPDECLINE).
    Declined,
}

impl LeaseState {
    /// The spelling stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeaseState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "offered" => Ok(LeaseState::Offered),
            "bound" => Ok(LeaseState::Bound),
            "released" => Ok(LeaseState::Released),
            "declined" => Ok(LeaseState::Declined),
            other => Err(format!("unknown lease state {other:?}")),
        }
    }
}

/// One row of the `leases` table: the meeting point of DHCP (writer) and DNS (reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address; the primary key.
    pub address: Ipv4Addr,
    /// The client identifier (option 61), or the hardware address when absent.
    pub client_id: Vec<u8>,
    /// The hardware address, as text (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
    /// The host name the client gave, if any.
    pub hostname: Option<String>,
    /// When the lease ends, in unix seconds.
    pub expires_at: i64,
    /// Where the lease is in its life.
    pub state: LeaseState,
    /// A fixed reservation from the config rather than a dynamic lease.
    pub reserved: bool,
}

/// An open state database.
#[derive(Debug)]
pub struct Db {
    pub(crate) conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// date. The parent directory is created (mode 0700) when missing.
    ///
    /// Refuses, with [`StoreError::TooNew`], a database written by a newer officebox.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StoreError::io("create directory", parent, e))?;
        }
        let conn = Connection::open(path).map_err(|e| sqlite_err("open", path, e))?;
        Self::setup(conn, path.to_path_buf())
    }

    /// Copies the live database at `from` to `to` with SQLite's online backup: one read
    /// transaction, so the copy is the database as it was at one moment while the
    /// services go on writing (WAL: they are not held up). `to` is replaced, fsynced.
    /// The live file is opened read-only, its schema left as it is.
    pub fn backup_to(from: &Path, to: &Path) -> Result<(), StoreError> {
        use rusqlite::OpenFlags;
        let source = Connection::open_with_flags(
            from,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite_err("open for a backup", from, e))?;
        source
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sqlite_err("set busy timeout", from, e))?;
        let _ = std::fs::remove_file(to);
        let mut copy = Connection::open(to).map_err(|e| sqlite_err("open", to, e))?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut copy)
                .map_err(|e| sqlite_err("start the backup", from, e))?;
            // Every page in one step: one read transaction, one moment.
            backup.step(-1).map_err(|e| sqlite_err("copy", from, e))?;
        }
        // The copy stands alone: no WAL beside it.
        copy.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| sqlite_err("set journal_mode=DELETE", to, e))?;
        drop(copy);
        std::fs::File::open(to)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io("fsync", to, e))
    }

    /// An in-memory database with the same schema, for tests.
    pub fn open_in_memory() -> Result<Db, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| sqlite_err("open", &path, e))?;
        Self::setup(conn, path)
    }

    fn setup(conn: Connection, path: PathBuf) -> Result<Db, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sqlite_err("set busy timeout", &path, e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| sqlite_err("set journal_mode=WAL", &path, e))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            tracing::warn!(path = %path.display(), %mode, "SQLite refused WAL journal mode");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sqlite_err("set synchronous=FULL", &path, e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| sqlite_err("set foreign_keys=ON", &path, e))?;
        let mut db = Db { conn, path };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = known_schema_version();
        let found = self.schema_version()?;
        if found > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > found) {
            let fail = |source| StoreError::Migration {
                path: self.path.clone(),
                version: m.version,
                name: m.name,
                source,
            };
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            // Another process may have migrated while we waited for the lock.
            let now: u32 = tx
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(fail)?;
            if now >= m.version {
                if now > known {
                    return Err(StoreError::TooNew {
                        path: self.path.clone(),
                        found: now,
                        known,
                    });
                }
                continue;
            }
            tx.execute_batch(m.sql).map_err(fail)?;
            tx.pragma_update(None, "user_version", m.version)
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
            tracing::info!(
                path = %self.path.display(),
                version = m.version,
                name = m.name,
                "migrated state database"
            );
        }
        Ok(())
    }

    /// The path this database was opened from (`:memory:` for in-memory ones).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives back the memory this connection holds for pages it read (SQLite's page
    /// cache, up to 2 MB), after a large read that is not about to be repeated.
    pub fn shrink_memory(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .map_err(|e| self.err("shrink the page cache", e))
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.err("read schema version", e))
    }

    /// The raw connection, for service crates that add their own tables.
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The value stored under `key` in the `meta` table.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.err("read meta", e))
    }

    /// Stores `value` under `key` in the `meta` table, replacing any previous value.
    /// Committed (and on disk) when this returns.
    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
            .map_err(|e| self.err("write meta", e))
    }

    /// Removes `key` from the `meta` table (nothing when it is not there).
    pub fn meta_delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map(drop)
            .map_err(|e| self.err("write meta", e))
    }

    /// The WAN address the WAN DHCP client last recorded (`None` when it holds none).
    pub fn wan_address(&self) -> Result<Option<Ipv4Addr>, StoreError> {
        Ok(self.meta_get(WAN_ADDRESS)?.and_then(|a| a.parse().ok()))
    }

    /// Records the WAN address the WAN DHCP client holds (`None`: none).
    pub fn set_wan_address(&self, address: Option<Ipv4Addr>) -> Result<(), StoreError> {
        self.meta_set(
            WAN_ADDRESS,
            &address.map(|a| a.to_string()).unwrap_or_default(),
        )
    }

    /// The zone as the DNS service last published it, in its order.
    pub fn served_zone(&self) -> Result<Vec<ServedRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT source, name, ttl, rtype, value FROM dns_served ORDER BY seq")
            .map_err(|e| self.err("read the served zone", e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(ServedRecord {
                    source: row.get(0)?,
                    name: row.get(1)?,
                    ttl: row.get(2)?,
                    rtype: row.get(3)?,
                    value: row.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("read the served zone", e))?;
        Ok(rows)
    }

    /// Publishes the zone as served, replacing the previous one in one transaction;
    /// nothing is written when it is unchanged. Whether it changed.
    pub fn set_served_zone(&self, records: &[ServedRecord]) -> Result<bool, StoreError> {
        if self.served_zone()? == records {
            return Ok(false);
        }
        let write_err = |e| self.err("publish the served zone", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        tx.execute("DELETE FROM dns_served", [])
            .map_err(write_err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO dns_served (source, name, ttl, rtype, value)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(write_err)?;
            for r in records {
                insert
                    .execute(params![r.source, r.name, r.ttl, r.rtype, r.value])
                    .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)?;
        Ok(true)
    }

    /// A number that changes whenever another connection (another service, another
    /// process) commits a change to the database: a cheap way to notice new leases.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| self.err("read data_version", e))
    }

    /// Inserts the lease, or replaces the row for the same address.
    /// Committed (and on disk) when this returns.
    pub fn upsert_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.upsert_leases(std::slice::from_ref(lease))
    }

    /// Writes several leases in one transaction, so one fsync makes all of them durable
    /// (the DHCP server groups the leases of concurrent clients this way). All or none are
    /// on disk when this returns.
    pub fn upsert_leases(&self, leases: &[Lease]) -> Result<(), StoreError> {
        let write_err = |e| self.err("write lease", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO leases
                        (address, client_id, mac, hostname, expires_at, state, reserved, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (address) DO UPDATE SET
                        client_id = excluded.client_id,
                        mac = excluded.mac,
                        hostname = excluded.hostname,
                        expires_at = excluded.expires_at,
                        state = excluded.state,
                        reserved = excluded.reserved,
                        updated_at = excluded.updated_at",
                )
                .map_err(write_err)?;
            let now = unix_now();
            for lease in leases {
                stmt.execute(params![
                    lease.address.to_string(),
                    lease.client_id,
                    lease.mac,
                    lease.hostname,
                    lease.expires_at,
                    lease.state.as_str(),
                    lease.reserved,
                    now,
                ])
                .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }

    /// Every lease row, ordered by address.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let mut leases = self.query_leases("SELECT {} FROM leases", [])?;
        leases.sort_by_key(|l| l.address);
        Ok(leases)
    }

    /// The leases DNS should publish at `now` (unix seconds): bound, not expired,
    /// with a non-empty host name. Ordered by host name, then address.
    pub fn active_named_leases(&self, now: i64) -> Result<Vec<Lease>, StoreError> {
        let mut leases = self.query_leases(
            "SELECT {} FROM leases
             WHERE state = 'bound' AND expires_at > ?1
               AND hostname IS NOT NULL AND hostname <> ''",
            [now],
        )?;
        leases.sort_by(|a, b| (&a.hostname, a.address).cmp(&(&b.hostname, b.address)));
        Ok(leases)
    }

    fn query_leases<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<Lease>, StoreError> {
        const COLUMNS: &str = "address, client_id, mac, hostname, expires_at, state, reserved";
        let sql = sql.replacen("{}", COLUMNS, 1);
        let read_err = |e| self.err("read leases", e);
        let mut stmt = self.conn.prepare(&sql).map_err(read_err)?;
        let rows = stmt
            .query_map(params, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, bool>(6)?,
                ))
            })
            .map_err(read_err)?;
        let mut leases = Vec::new();
        for row in rows {
            let (address, client_id, mac, hostname, expires_at, state, reserved) =
                row.map_err(read_err)?;
            let address = address.parse().map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("lease address {address:?} is not an IPv4 address"),
            })?;
            let state = state.parse().map_err(|what| StoreError::Corrupt {
                path: self.path.clone(),
                what,
            })?;
            leases.push(Lease {
                address,
                client_id,
                mac,
                hostname,
                expires_at,
                state,
                reserved,
            });
        }
        Ok(leases)
    }

    pub(crate) fn err(&self, op: &'static str, source: rusqlite::Error) -> StoreError {
        sqlite_err(op, &self.path, source)
    }

    /// A row of this database holds what the code cannot understand.
    pub(crate) fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }
}

fn sqlite_err(op: &'static str, path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Now, in Unix seconds: the time every table of the state database is written in.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod meeting_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_wan_address_and_the_served_zone_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&state_db(dir.path())).unwrap();
        assert_eq!(db.wan_address().unwrap(), None);
        db.set_wan_address(Some("198.51.100.2".parse().unwrap()))
            .unwrap();
        assert_eq!(
            db.wan_address().unwrap(),
            Some("198.51.100.2".parse().unwrap())
        );
        db.set_wan_address(None).unwrap();
        assert_eq!(db.wan_address().unwrap(), None);

        let record = |name: &str| ServedRecord {
            source: "dhcp".into(),
            name: name.into(),
            ttl: 300,
            rtype: "A".into(),
            value: "192.168.1.7\twith a tab".into(),
        };
        let zone = vec![record("b.office.test"), record("a.office.test")];
        assert!(db.set_served_zone(&zone).unwrap());
        assert!(
            !db.set_served_zone(&zone).unwrap(),
            "unchanged: nothing written"
        );
        assert_eq!(
            db.served_zone().unwrap(),
            zone,
            "rows in order, values whole"
        );
        assert!(db.set_served_zone(&zone[..1]).unwrap());
        assert_eq!(db.served_zone().unwrap(), zone[..1]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn lease(
        address: [u8; 4],
        hostname: Option<&str>,
        expires_at: i64,
        state: LeaseState,
    ) -> Lease {
        Lease {
            address: Ipv4Addr::from(address),
            client_id: vec![1, address[3]],
            mac: format!("02:00:00:00:00:{:02x}", address[3]),
            hostname: hostname.map(str::to_owned),
            expires_at,
            state,
            reserved: false,
        }
    }

    #[test]
    fn migrations_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {:?}", m.name);
            assert!(!m.name.is_empty());
        }
        assert_eq!(known_schema_version() as usize, MIGRATIONS.len());
    }

    #[test]
    fn in_memory_is_at_latest_version() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.schema_version().unwrap(), known_schema_version());
    }

    #[test]
    fn open_creates_parent_and_reopen_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.db");
        {
            let db = Db::open(&path).unwrap();
            db.meta_set("k", "v1").unwrap();
            let mode: String = db
                .conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = db
                .conn
                .pragma_query_value(None, "foreign_keys", |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
            let sync: i64 = db
                .conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(sync, 2, "FULL");
        }
        for _ in 0..2 {
            let db = Db::open(&path).unwrap();
            assert_eq!(db.schema_version().unwrap(), known_schema_version());
            assert_eq!(db.meta_get("k").unwrap().as_deref(), Some("v1"));
        }
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Db::open(&path).unwrap());
        let future = known_schema_version() + 2;
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", future).unwrap();
        }
        let err = Db::open(&path).unwrap_err();
        match &err {
            StoreError::TooNew { found, known, .. } => {
                assert_eq!(*found, future);
                assert_eq!(*known, known_schema_version());
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "is at schema version {future} but this officebox knows only up to {}",
                known_schema_version()
            )),
            "{msg}"
        );
        assert!(msg.contains("newer officebox"), "{msg}");
    }

    #[test]
    fn old_database_is_migrated_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE unrelated (x INTEGER);")
                .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), known_schema_version());
        assert!(db.leases().unwrap().is_empty());
    }

    #[test]
    fn failed_migration_leaves_version_unchanged() {
        // A pre-existing `meta` table makes migration 1 fail; nothing of it may stick.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE meta (x INTEGER);")
                .unwrap();
        }
        let err = Db::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("stays at version 0"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
        let leases: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'leases'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leases, 0, "the leases table must have been rolled back");
    }

    #[test]
    fn meta_get_set() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.meta_get("missing").unwrap(), None);
        db.meta_set("a", "1").unwrap();
        db.meta_set("a", "2").unwrap();
        assert_eq!(db.meta_get("a").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn lease_roundtrip_and_upsert() {
        let db = Db::open_in_memory().unwrap();
        let mut a = lease([192, 168, 1, 10], Some("pc1"), 1000, LeaseState::Offered);
        a.reserved = true;
        a.client_id = vec![0, 1, 2, 255];
        let b = lease([192, 168, 1, 9], None, 2000, LeaseState::Bound);
        db.upsert_lease(&a).unwrap();
        db.upsert_lease(&b).unwrap();
        // Ordered numerically by address, not as text ("10" < "9").
        assert_eq!(db.leases().unwrap(), vec![b.clone(), a.clone()]);
        a.state = LeaseState::Bound;
        a.hostname = None;
        a.expires_at = 5000;
        db.upsert_lease(&a).unwrap();
        assert_eq!(db.leases().unwrap(), vec![b, a]);
    }

    #[test]
    fn active_named_leases_filters() {
        let db = Db::open_in_memory().unwrap();
        let now = 1_000;
        let rows = [
            lease([10, 0, 0, 1], Some("zeta"), now + 10, LeaseState::Bound),
            lease([10, 0, 0, 2], Some("alpha"), now + 10, LeaseState::Bound),
            lease([10, 0, 0, 3], Some("expired"), now, LeaseState::Bound),
            lease(
                [10, 0, 0, 4],
                Some("offered"),
                now + 10,
                LeaseState::Offered,
            ),
            lease(
                [10, 0, 0, 5],
                Some("released"),
                now + 10,
                LeaseState::Released,
            ),
            lease(
                [10, 0, 0, 6],
                Some("declined"),
                now + 10,
                LeaseState::Declined,
            ),
            lease([10, 0, 0, 7], None, now + 10, LeaseState::Bound),
            lease([10, 0, 0, 8], Some(""), now + 10, LeaseState::Bound),
        ];
        for l in &rows {
            db.upsert_lease(l).unwrap();
        }
        let names: Vec<_> = db
            .active_named_leases(now)
            .unwrap()
            .into_iter()
            .map(|l| l.hostname.unwrap_or_default())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    #[test]
    fn bad_state_is_rejected_by_schema_and_corrupt_address_reported() {
        let mut db = Db::open_in_memory().unwrap();
        let bad_state = db.conn().execute(
            "INSERT INTO leases (address, client_id, mac, expires_at, state, updated_at)
             VALUES ('10.0.0.1', x'01', 'm', 0, 'bogus', 0)",
            [],
        );
        assert!(bad_state.is_err());
        db.conn()
            .execute(
                "INSERT INTO leases (address, client_id, mac, expires_at, state, updated_at)
                 VALUES ('not-an-ip', x'01', 'm', 0, 'bound', 0)",
                [],
            )
            .unwrap();
        let err = db.leases().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("not-an-ip"), "{err}");
    }

    #[test]
    fn lease_state_text_roundtrip() {
        for s in [
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Declined,
        ] {
            assert_eq!(s.as_str().parse::<LeaseState>(), Ok(s));
        }
        assert!("BOUND".parse::<LeaseState>().is_err());
    }
}
