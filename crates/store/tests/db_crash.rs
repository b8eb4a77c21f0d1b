//! kill -9 while writing leases: every write that returned `Ok` is there after reopen.
//!
//! The test binary re-executes itself: with `OFFICEBOX_DB_WRITER=<file>` set, the
//! `db_writer_child` test becomes a child that upserts leases forever, printing
//! `committed <n>` after each `upsert_lease` returns. The parent SIGKILLs it at a
//! random moment, reopens the database and checks every reported lease is present.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use officebox_store::{Db, Lease, LeaseState};

const WRITER_ENV: &str = "OFFICEBOX_DB_WRITER";
const ROUNDS: usize = 10;

fn lease(n: u32) -> Lease {
    Lease {
        address: Ipv4Addr::from(0x0a00_0000 | n),
        client_id: n.to_be_bytes().to_vec(),
        mac: format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            n >> 24,
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        ),
        hostname: Some(format!("host{n}")),
        expires_at: 4_000_000_000,
        state: LeaseState::Bound,
        reserved: n.is_multiple_of(2),
    }
}

/// The child: write leases forever. Returns at once in a normal test run.
#[test]
fn db_writer_child() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let db = Db::open(Path::new(&path)).unwrap();
    let first = u32::try_from(db.leases().unwrap().len()).unwrap() + 1;
    let mut out = std::io::stdout().lock();
    for n in first.. {
        db.upsert_lease(&lease(n)).unwrap();
        writeln!(out, "committed {n}").unwrap();
        out.flush().unwrap();
    }
}

struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_during_lease_writes_keeps_committed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/officebox.db");
    let exe = std::env::current_exe().unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let start = Instant::now();
    let mut reported = 0u32;

    for round in 0..ROUNDS {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "db_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = Killer(child);
        let stdout = child.0.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();

        // Let it commit a varying number of rows, then kill it mid-stream.
        let target = 20 + (nanos.rotate_left(round as u32 * 7) % 100);
        let mut seen_this_round = 0;
        let deadline = Instant::now() + Duration::from_secs(15);
        while seen_this_round < target {
            assert!(Instant::now() < deadline, "writer too slow");
            let line = lines.next().expect("writer exited early").unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                reported = n.parse().unwrap();
                seen_this_round += 1;
            }
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        // Lines the child wrote before it died are still in the pipe.
        for line in lines {
            if let Some(n) = line.unwrap().strip_prefix("committed ") {
                reported = n.parse().unwrap();
            }
        }

        let mut db = Db::open(&path).unwrap();
        let ok: String = db
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let leases = db.leases().unwrap();
        let count = u32::try_from(leases.len()).unwrap();
        // Everything acknowledged is there; at most one more (committed, not yet printed).
        assert!(
            count == reported || count == reported + 1,
            "round {round}: {reported} acknowledged, {count} in the database"
        );
        for (i, l) in leases.iter().enumerate() {
            assert_eq!(*l, lease(i as u32 + 1));
        }
        assert_eq!(db.active_named_leases(0).unwrap().len(), leases.len());
    }
    eprintln!(
        "{ROUNDS} kills in {:.1?}, {reported} leases acknowledged and found",
        start.elapsed()
    );
}
