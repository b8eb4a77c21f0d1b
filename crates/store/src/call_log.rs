//! The call log: one row per call, written when the call starts (so a crash leaves a
//! trace), updated when it is answered and when it ends. A row whose end was never
//! written (officebox was killed mid-call) is closed as [`Disposition::Unknown`] by
//! [`Db::close_unfinished_calls`] when the phone service starts again. Rows older than
//! the configured number of days are dropped by [`Db::prune_call_log`].
//!
//! Outside calls (trunks) fill `direction` (`in`, `out`) and `trunk`; internal calls
//! have [`Direction::Internal`] and no trunk.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};

use crate::date;
use crate::db::Db;
use crate::error::StoreError;

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Between two phones (or a phone and the box) of the office.
    Internal,
    /// From outside, through a trunk.
    In,
    /// To outside, through a trunk.
    Out,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Internal, Direction::In, Direction::Out];

    /// The spelling stored in the `direction` column (and used in filters).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Internal => "internal",
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown call direction {s:?}"))
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// A phone answered.
    Answered,
    /// Nobody answered (and no message was left).
    NoAnswer,
    /// The callee was busy or declined (and no message was left).
    Busy,
    /// Voicemail took the call and a message was left.
    Voicemail,
    /// The caller hung up before anybody answered.
    Cancelled,
    /// The call could not be made (4xx/5xx other than busy, no such extension).
    Failed,
    /// A session in the voicemail menu.
    Menu,
    /// The caller left at the auto attendant (hung up, or chose to).
    Attendant,
    /// A feature code (the night code, say), done and said by the box.
    Feature,
    /// The call's end was never recorded (officebox stopped during it).
    Unknown,
}

impl Disposition {
    pub const ALL: [Disposition; 10] = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Busy,
        Disposition::Voicemail,
        Disposition::Cancelled,
        Disposition::Failed,
        Disposition::Menu,
        Disposition::Attendant,
        Disposition::Feature,
        Disposition::Unknown,
    ];

    /// The spelling stored in the `disposition` column (and used in filters).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::NoAnswer => "no-answer",
            Disposition::Busy => "busy",
            Disposition::Voicemail => "voicemail",
            Disposition::Cancelled => "cancelled",
            Disposition::Failed => "failed",
            Disposition::Menu => "menu",
            Disposition::Attendant => "attendant",
            Disposition::Feature => "feature",
            Disposition::Unknown => "unknown",
        }
    }

    /// In words, for the pages.
    pub fn describe(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::NoAnswer => "no answer",
            Disposition::Busy => "busy",
            Disposition::Voicemail => "voicemail left",
            Disposition::Cancelled => "caller hung up",
            Disposition::Failed => "failed",
            Disposition::Menu => "voicemail menu",
            Disposition::Attendant => "left at the attendant",
            Disposition::Feature => "feature code",
            Disposition::Unknown => "ended unknown",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Disposition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown call disposition {s:?}"))
    }
}

/// A call as it starts: its row in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    /// A key of the call's own, unique across restarts (the phone service uses its leg
    /// B Call-ID).
    pub call_id: String,
    pub direction: Direction,
    /// The trunk of an outside call.
    pub trunk: Option<String>,
    /// The caller's extension (its login when it has none), or an outside number.
    pub caller: String,
    pub caller_login: Option<String>,
    pub caller_name: String,
    /// What was dialled: an extension, the voicemail extension, a number.
    pub callee: String,
    /// The user whose phones (or voicemail) the call went to.
    pub callee_login: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
}

/// What happens to a call, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Start(NewCall),
    /// Answered at `at`: by a phone of login `by`, or by the box itself (`None`:
    /// voicemail, the menu).
    Answered {
        call_id: String,
        at: i64,
        by: Option<String>,
    },
    Ended {
        call_id: String,
        at: i64,
        disposition: Disposition,
    },
    /// An outside call moved on to another trunk (the one before failed).
    Trunk {
        call_id: String,
        trunk: String,
    },
}

/// One row of the call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: i64,
    pub call_id: String,
    pub direction: Direction,
    pub trunk: Option<String>,
    pub caller: String,
    pub caller_login: Option<String>,
    pub caller_name: String,
    pub callee: String,
    pub callee_login: Option<String>,
    pub answered_by: Option<String>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// `None` while the call is in progress.
    pub disposition: Option<Disposition>,
}

impl CallRecord {
    /// Seconds from answer to end (talk time, or the time voicemail had the caller);
    /// `None` when never answered or the end is unknown.
    pub fn talk_secs(&self) -> Option<i64> {
        Some((self.ended_at? - self.answered_at?).max(0))
    }

    /// Seconds from start to end; `None` when the end is unknown.
    pub fn total_secs(&self) -> Option<i64> {
        Some((self.ended_at? - self.started_at).max(0))
    }

    /// How it ended, in words (`in progress` while it is not over).
    pub fn outcome(&self) -> &'static str {
        self.disposition
            .map_or("in progress", Disposition::describe)
    }
}

/// Which rows to read: every filter is optional; newest first, `limit` from `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallQuery {
    /// Started at or after (unix seconds).
    pub since: Option<i64>,
    /// Started before (unix seconds).
    pub until: Option<i64>,
    /// An extension or login that called, was called or answered.
    pub party: Option<String>,
    pub disposition: Option<Disposition>,
    pub direction: Option<Direction>,
    /// At most this many rows (0: no limit).
    pub limit: u32,
    pub offset: u32,
}

const COLUMNS: &str = "id, call_id, direction, trunk, caller, caller_login, caller_name, callee,
    callee_login, answered_by, started_at, answered_at, ended_at, disposition";

const FILTER: &str = "(?1 IS NULL OR started_at >= ?1)
    AND (?2 IS NULL OR started_at < ?2)
    AND (?3 IS NULL OR caller = ?3 OR callee = ?3 OR caller_login = ?3 OR callee_login = ?3
         OR answered_by = ?3)
    AND (?4 IS NULL OR disposition = ?4)
    AND (?5 IS NULL OR direction = ?5)";

impl Db {
    /// Records a call as it starts (one transaction).
    pub fn start_call(&self, call: &NewCall) -> Result<(), StoreError> {
        self.record_calls(&[CallEvent::Start(call.clone())])
    }

    /// Records who answered a call and when.
    pub fn answer_call(&self, call_id: &str, at: i64, by: Option<&str>) -> Result<(), StoreError> {
        self.record_calls(&[CallEvent::Answered {
            call_id: call_id.to_string(),
            at,
            by: by.map(str::to_string),
        }])
    }

    /// Records how and when a call ended.
    pub fn end_call(
        &self,
        call_id: &str,
        at: i64,
        disposition: Disposition,
    ) -> Result<(), StoreError> {
        self.record_calls(&[CallEvent::Ended {
            call_id: call_id.to_string(),
            at,
            disposition,
        }])
    }

    /// Writes `events` in order, in one transaction (one fsync for a batch of calls).
    /// A start for a call already logged changes nothing; an answer or end for a call
    /// never started is dropped (its start was lost).
    pub fn record_calls(&self, events: &[CallEvent]) -> Result<(), StoreError> {
        let write_err = |e| self.err("write the call log", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut start = tx
                .prepare_cached(
                    "INSERT INTO call_log (call_id, direction, trunk, caller, caller_login,
                        caller_name, callee, callee_login, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (call_id) DO NOTHING",
                )
                .map_err(write_err)?;
            let mut answer = tx
                .prepare_cached(
                    // The first answer counts; but a phone answering a call the box
                    // had answered (the auto attendant sent it on) is who answered.
                    "UPDATE call_log SET answered_at = ?2, answered_by = ?3
                     WHERE call_id = ?1
                       AND (answered_at IS NULL OR (answered_by IS NULL AND ?3 IS NOT NULL))",
                )
                .map_err(write_err)?;
            let mut end = tx
                .prepare_cached(
                    "UPDATE call_log SET ended_at = ?2, disposition = ?3
                     WHERE call_id = ?1 AND disposition IS NULL",
                )
                .map_err(write_err)?;
            let mut trunk = tx
                .prepare_cached(
                    "UPDATE call_log SET trunk = ?2 WHERE call_id = ?1 AND disposition IS NULL",
                )
                .map_err(write_err)?;
            for e in events {
                match e {
                    CallEvent::Start(c) => start.execute(params![
                        c.call_id,
                        c.direction.as_str(),
                        c.trunk,
                        c.caller,
                        c.caller_login,
                        c.caller_name,
                        c.callee,
                        c.callee_login,
                        c.started_at
                    ]),
                    CallEvent::Answered { call_id, at, by } => {
                        answer.execute(params![call_id, at, by])
                    }
                    CallEvent::Ended {
                        call_id,
                        at,
                        disposition,
                    } => end.execute(params![call_id, at, disposition.as_str()]),
                    CallEvent::Trunk {
                        call_id,
                        trunk: name,
                    } => trunk.execute(params![call_id, name]),
                }
                .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }

    /// Closes every call whose end was never written (officebox stopped during it) as
    /// [`Disposition::Unknown`]; how many. For the phone service's start, when no call
    /// of its own is under way yet.
    pub fn close_unfinished_calls(&self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE call_log SET disposition = 'unknown' WHERE disposition IS NULL",
                [],
            )
            .map_err(|e| self.err("close unfinished calls", e))
    }

    /// Drops the finished calls that started before `before` (unix seconds); how many.
    pub fn prune_call_log(&self, before: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM call_log WHERE started_at < ?1 AND disposition IS NOT NULL",
                [before],
            )
            .map_err(|e| self.err("prune the call log", e))
    }

    /// The calls `q` selects, newest first.
    pub fn call_log(&self, q: &CallQuery) -> Result<Vec<CallRecord>, StoreError> {
        let read_err = |e| self.err("read the call log", e);
        let sql = format!(
            "SELECT {COLUMNS} FROM call_log WHERE {FILTER}
             ORDER BY started_at DESC, id DESC LIMIT ?6 OFFSET ?7"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(read_err)?;
        let limit = if q.limit == 0 { -1 } else { i64::from(q.limit) };
        let rows = stmt
            .query_map(
                params![
                    q.since,
                    q.until,
                    q.party,
                    q.disposition.map(Disposition::as_str),
                    q.direction.map(Direction::as_str),
                    limit,
                    i64::from(q.offset)
                ],
                raw_record,
            )
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        rows.into_iter().map(|r| self.typed(r)).collect()
    }

    /// How many calls `q` selects (its limit and offset aside).
    pub fn count_calls(&self, q: &CallQuery) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM call_log WHERE {FILTER}");
        let n: i64 = self
            .conn
            .query_row(
                &sql,
                params![
                    q.since,
                    q.until,
                    q.party,
                    q.disposition.map(Disposition::as_str),
                    q.direction.map(Direction::as_str),
                ],
                |row| row.get(0),
            )
            .map_err(|e| self.err("count the call log", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One call by its key.
    pub fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let read_err = |e| self.err("read the call log", e);
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM call_log WHERE call_id = ?1"),
                [call_id],
                raw_record,
            )
            .optional()
            .map_err(read_err)?;
        raw.map(|r| self.typed(r)).transpose()
    }

    fn typed(&self, r: RawRecord) -> Result<CallRecord, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            what,
        };
        Ok(CallRecord {
            id: r.id,
            call_id: r.call_id,
            direction: r.direction.parse().map_err(corrupt)?,
            trunk: r.trunk,
            caller: r.caller,
            caller_login: r.caller_login,
            caller_name: r.caller_name,
            callee: r.callee,
            callee_login: r.callee_login,
            answered_by: r.answered_by,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            disposition: r
                .disposition
                .map(|d| d.parse())
                .transpose()
                .map_err(corrupt)?,
        })
    }
}

/// A row as SQLite has it, before its words are checked.
struct RawRecord {
    id: i64,
    call_id: String,
    direction: String,
    trunk: Option<String>,
    caller: String,
    caller_login: Option<String>,
    caller_name: String,
    callee: String,
    callee_login: Option<String>,
    answered_by: Option<String>,
    started_at: i64,
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    disposition: Option<String>,
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        id: row.get(0)?,
        call_id: row.get(1)?,
        direction: row.get(2)?,
        trunk: row.get(3)?,
        caller: row.get(4)?,
        caller_login: row.get(5)?,
        caller_name: row.get(6)?,
        callee: row.get(7)?,
        callee_login: row.get(8)?,
        answered_by: row.get(9)?,
        started_at: row.get(10)?,
        answered_at: row.get(11)?,
        ended_at: row.get(12)?,
        disposition: row.get(13)?,
    })
}

/// The header row of [`csv`].
pub const CSV_HEADER: &[&str] = &[
    "start (UTC)",
    "from",
    "from name",
    "to",
    "answered by",
    "answered (UTC)",
    "end (UTC)",
    "talk seconds",
    "disposition",
    "direction",
    "trunk",
];

/// The calls as CSV (RFC 4180: CRLF line ends, fields quoted when they hold a comma,
/// a quote or a line break, quotes doubled), with a header row. A field that a
/// spreadsheet would take for a formula (`=`, `@`, `-`, `+` not followed by digits
/// only) is written with a leading `'`: a caller's display name comes from outside.
pub fn csv(records: &[CallRecord]) -> String {
    let mut out = String::new();
    csv_row(&mut out, CSV_HEADER.iter().copied());
    for r in records {
        let time = |t: Option<i64>| t.map(date::datetime).unwrap_or_default();
        let fields = [
            date::datetime(r.started_at),
            r.caller.clone(),
            r.caller_name.clone(),
            r.callee.clone(),
            r.answered_by.clone().unwrap_or_default(),
            time(r.answered_at),
            time(r.ended_at),
            r.talk_secs().map(|s| s.to_string()).unwrap_or_default(),
            r.disposition
                .map(|d| d.as_str().to_string())
                .unwrap_or_else(|| "in-progress".into()),
            r.direction.as_str().to_string(),
            r.trunk.clone().unwrap_or_default(),
        ];
        csv_row(&mut out, fields.iter().map(String::as_str));
    }
    out
}

fn csv_row<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

fn csv_field(out: &mut String, f: &str) {
    let number = f
        .strip_prefix('+')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    let formula = f.starts_with(['=', '@', '-', '+', '\t', '\r']) && !number;
    let text = if formula {
        format!("'{f}")
    } else {
        f.to_string()
    };
    if text.contains([',', '"', '\r', '\n']) || text.starts_with(' ') || text.ends_with(' ') {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn call(id: &str, caller: &str, callee: &str, at: i64) -> NewCall {
        NewCall {
            call_id: id.into(),
            direction: Direction::Internal,
            trunk: None,
            caller: caller.into(),
            caller_login: Some(format!("login{caller}")),
            caller_name: format!("Name {caller}"),
            callee: callee.into(),
            callee_login: Some(format!("login{callee}")),
            started_at: at,
        }
    }

    fn ids(rows: &[CallRecord]) -> Vec<&str> {
        rows.iter().map(|r| r.call_id.as_str()).collect()
    }

    #[test]
    fn a_call_is_written_at_start_answer_and_end() {
        let db = Db::open_in_memory().unwrap();
        db.start_call(&call("a", "101", "102", 1000)).unwrap();
        let r = db.call_record("a").unwrap().unwrap();
        assert_eq!(r.disposition, None);
        assert_eq!(r.outcome(), "in progress");
        assert_eq!(
            (r.answered_at, r.ended_at, r.talk_secs()),
            (None, None, None)
        );
        db.answer_call("a", 1003, Some("bob")).unwrap();
        db.end_call("a", 1063, Disposition::Answered).unwrap();
        let r = db.call_record("a").unwrap().unwrap();
        assert_eq!(r.answered_by.as_deref(), Some("bob"));
        assert_eq!(r.disposition, Some(Disposition::Answered));
        assert_eq!((r.talk_secs(), r.total_secs()), (Some(60), Some(63)));
        assert_eq!(r.caller_login.as_deref(), Some("login101"));
        // Retransmitted or late events change nothing.
        db.record_calls(&[
            CallEvent::Start(call("a", "999", "998", 5)),
            CallEvent::Answered {
                call_id: "a".into(),
                at: 2000,
                by: None,
            },
            CallEvent::Ended {
                call_id: "a".into(),
                at: 2000,
                disposition: Disposition::Failed,
            },
            CallEvent::Ended {
                call_id: "never-started".into(),
                at: 2000,
                disposition: Disposition::Failed,
            },
        ])
        .unwrap();
        assert_eq!(db.call_record("a").unwrap().unwrap(), r);
        assert_eq!(db.count_calls(&CallQuery::default()).unwrap(), 1);
    }

    #[test]
    fn every_disposition_can_be_stored_and_a_phone_answering_after_the_box_counts() {
        let db = Db::open_in_memory().unwrap();
        for (i, d) in Disposition::ALL.into_iter().enumerate() {
            let id = format!("c{i}");
            db.start_call(&call(&id, "101", "102", 10)).unwrap();
            db.end_call(&id, 20, d).unwrap();
            assert_eq!(db.call_record(&id).unwrap().unwrap().disposition, Some(d));
        }
        // The attendant answers (the box), then bob's phone: bob answered, from then.
        db.start_call(&call("att", "5551234", "main", 100)).unwrap();
        db.answer_call("att", 101, None).unwrap();
        db.answer_call("att", 110, Some("bob")).unwrap();
        db.answer_call("att", 120, Some("alice")).unwrap();
        let r = db.call_record("att").unwrap().unwrap();
        assert_eq!(
            (r.answered_by.as_deref(), r.answered_at),
            (Some("bob"), Some(110))
        );
    }

    #[test]
    fn a_batch_is_applied_in_order() {
        let db = Db::open_in_memory().unwrap();
        db.record_calls(&[
            CallEvent::Start(call("b", "101", "*97", 10)),
            CallEvent::Answered {
                call_id: "b".into(),
                at: 11,
                by: None,
            },
            CallEvent::Ended {
                call_id: "b".into(),
                at: 40,
                disposition: Disposition::Menu,
            },
        ])
        .unwrap();
        let r = db.call_record("b").unwrap().unwrap();
        assert_eq!(
            (r.answered_by.clone(), r.talk_secs(), r.disposition),
            (None, Some(29), Some(Disposition::Menu))
        );
    }

    #[test]
    fn calls_cut_off_by_a_crash_are_closed_as_unknown_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::state_db(dir.path());
        {
            let db = Db::open(&path).unwrap();
            db.start_call(&call("done", "101", "102", 10)).unwrap();
            db.end_call("done", 20, Disposition::Busy).unwrap();
            db.start_call(&call("cut", "101", "102", 30)).unwrap();
            db.answer_call("cut", 32, Some("bob")).unwrap();
            // officebox is killed here: the end is never written.
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.close_unfinished_calls().unwrap(), 1);
        let cut = db.call_record("cut").unwrap().unwrap();
        assert_eq!(cut.disposition, Some(Disposition::Unknown));
        assert_eq!(cut.outcome(), "ended unknown");
        assert_eq!((cut.ended_at, cut.talk_secs()), (None, None));
        assert_eq!(
            db.call_record("done").unwrap().unwrap().disposition,
            Some(Disposition::Busy)
        );
        assert_eq!(db.close_unfinished_calls().unwrap(), 0);
        // A late end does not overwrite it.
        db.end_call("cut", 99, Disposition::Answered).unwrap();
        assert_eq!(db.call_record("cut").unwrap().unwrap(), cut);
    }

    #[test]
    fn queries_filter_and_page_newest_first() {
        let db = Db::open_in_memory().unwrap();
        let rows = [
            ("c1", "101", "102", 100, Disposition::Answered),
            ("c2", "102", "101", 200, Disposition::Busy),
            ("c3", "101", "103", 300, Disposition::Voicemail),
            ("c4", "103", "102", 400, Disposition::NoAnswer),
            ("c5", "101", "*97", 500, Disposition::Menu),
        ];
        for (id, from, to, at, d) in rows {
            db.start_call(&call(id, from, to, at)).unwrap();
            db.end_call(id, at + 5, d).unwrap();
        }
        let mut out = call("c6", "+4930123", "102", 600);
        out.direction = Direction::In;
        out.trunk = Some("provider".into());
        out.caller_login = None;
        db.start_call(&out).unwrap();
        db.answer_call("c6", 601, Some("login102")).unwrap();

        let q = |f: &dyn Fn(&mut CallQuery)| {
            let mut q = CallQuery::default();
            f(&mut q);
            let rows = db.call_log(&q).unwrap();
            let n = db.count_calls(&q).unwrap();
            (rows, n)
        };
        let (all, n) = q(&|_| {});
        assert_eq!(ids(&all), ["c6", "c5", "c4", "c3", "c2", "c1"]);
        assert_eq!(n, 6);
        let (r, _) = q(&|q| q.party = Some("101".into()));
        assert_eq!(ids(&r), ["c5", "c3", "c2", "c1"]);
        let (r, _) = q(&|q| q.party = Some("login102".into()));
        assert_eq!(
            ids(&r),
            ["c6", "c4", "c2", "c1"],
            "by login and answered by"
        );
        let (r, _) = q(&|q| q.disposition = Some(Disposition::Busy));
        assert_eq!(ids(&r), ["c2"]);
        let (r, _) = q(&|q| q.direction = Some(Direction::In));
        assert_eq!(ids(&r), ["c6"]);
        assert_eq!(r[0].trunk.as_deref(), Some("provider"));
        let (r, _) = q(&|q| {
            q.since = Some(200);
            q.until = Some(400);
        });
        assert_eq!(ids(&r), ["c3", "c2"], "since inclusive, until exclusive");
        let (r, n) = q(&|q| {
            q.limit = 2;
            q.offset = 2;
        });
        assert_eq!((ids(&r), n), (vec!["c4", "c3"], 6));
        let (r, n) = q(&|q| {
            q.party = Some("101".into());
            q.limit = 3;
            q.offset = 3;
        });
        assert_eq!((ids(&r), n), (vec!["c1"], 4));
    }

    #[test]
    fn old_finished_calls_are_pruned() {
        let db = Db::open_in_memory().unwrap();
        let day = 86_400;
        let now = 100 * day;
        for (id, age_days, finished) in [
            ("old", 91, true),
            ("older", 400, true),
            ("old-but-open", 95, false),
            ("recent", 89, true),
            ("today", 0, true),
        ] {
            db.start_call(&call(id, "101", "102", now - age_days * day))
                .unwrap();
            if finished {
                db.end_call(id, now - age_days * day + 5, Disposition::Answered)
                    .unwrap();
            }
        }
        assert_eq!(db.prune_call_log(now - 90 * day).unwrap(), 2);
        let left = db.call_log(&CallQuery::default()).unwrap();
        assert_eq!(ids(&left), ["today", "recent", "old-but-open"]);
        assert_eq!(db.prune_call_log(now - 90 * day).unwrap(), 0);
    }

    #[test]
    fn a_corrupt_word_is_reported_not_panicked_on() {
        let mut db = Db::open_in_memory().unwrap();
        assert!(
            db.conn()
                .execute(
                    "INSERT INTO call_log (call_id, direction, caller, caller_name, callee,
                     started_at, disposition) VALUES ('x', 'internal', '1', '', '2', 0, 'bogus')",
                    [],
                )
                .is_err(),
            "the schema refuses an unknown disposition"
        );
        for d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
        }
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
        }
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_quoting() {
        let r = CallRecord {
            id: 1,
            call_id: "x".into(),
            direction: Direction::Internal,
            trunk: None,
            caller: "101".into(),
            caller_login: Some("alice".into()),
            caller_name: "Example, \"Ali\"\nce".into(),
            callee: "+4930123".into(),
            callee_login: None,
            answered_by: Some("=HYPERLINK(\"x\")".into()),
            started_at: 1_795_854_600,
            answered_at: Some(1_795_854_602),
            ended_at: Some(1_795_854_660),
            disposition: Some(Disposition::NoAnswer),
        };
        let text = csv(&[r]);
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next().unwrap(),
            "start (UTC),from,from name,to,answered by,answered (UTC),end (UTC),talk seconds,disposition,direction,trunk"
        );
        assert_eq!(
            lines.collect::<Vec<_>>().join("|"),
            "2026-11-28 08:30:00,101,\"Example, \"\"Ali\"\"\nce\",+4930123,\"'=HYPERLINK(\"\"x\"\")\",\
             2026-11-28 08:30:02,2026-11-28 08:31:00,58,no-answer,internal,|"
        );
    }
}
