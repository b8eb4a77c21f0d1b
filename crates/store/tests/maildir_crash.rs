//! "kill -9 in the middle of a Maildir delivery leaves no partial message in new/".
//!
//! The test binary re-executes itself: with `OFFICEBOX_MAILDIR_WRITER=<dir>` set, the
//! `writer_child` test becomes a child process that delivers self-checking messages
//! (64 KiB to 4 MiB) into the maildir at `<dir>` forever, marking some seen. The parent
//! SIGKILLs it at a random moment, then checks that every file in `new/` and `cur/` is
//! a complete message whose size matches its name, and that debris is only in `tmp/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use officebox_store::{Folder, Maildir};

const WRITER_ENV: &str = "OFFICEBOX_MAILDIR_WRITER";
const MIN_SIZE: u64 = 64 * 1024;
const MAX_SIZE: u64 = 4 * 1024 * 1024;
const ROUNDS: usize = 20;
/// Stop starting new rounds after this long, whatever the machine's disk speed.
const TIME_BUDGET: Duration = Duration::from_secs(20);
const MIN_ROUNDS: usize = 3;
/// How many different messages each writer cycles through.
const POOL: u64 = 6;

/// xorshift64*: enough randomness for sizes, contents and kill moments.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const TRAILER_LEN: usize = "X-Checksum: ".len() + 16 + 1;

/// A message of exactly `size` bytes: a header stating its length, a body, and a
/// trailer with the checksum of everything before it.
fn make_message(seq: u64, size: usize, rng: &mut Rng) -> Vec<u8> {
    let mut msg = format!("X-Crash-Test: seq={seq:012} len={size:012}\r\n\r\n").into_bytes();
    let body_len = size - msg.len() - TRAILER_LEN;
    msg.reserve(size);
    while msg.len() < size - TRAILER_LEN {
        let r = rng.next().to_le_bytes();
        for b in r {
            msg.push(b'!' + b % 90);
        }
    }
    msg.truncate(size - TRAILER_LEN);
    // Line breaks keep it looking like mail; the last body byte stays a newline.
    for i in (76..body_len).step_by(78) {
        msg[size - TRAILER_LEN - body_len + i] = b'\n';
    }
    msg[size - TRAILER_LEN - 1] = b'\n';
    let sum = fnv1a(&msg);
    msg.extend_from_slice(format!("X-Checksum: {sum:016x}\n").as_bytes());
    assert_eq!(msg.len(), size);
    msg
}

/// Checks a message written by `make_message`; returns why it is not valid.
fn check_message(msg: &[u8]) -> Result<(), String> {
    let header_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header")?;
    let header = std::str::from_utf8(&msg[..header_end]).map_err(|e| e.to_string())?;
    let len: usize = header
        .rsplit("len=")
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad header {header:?}"))?;
    if len != msg.len() {
        return Err(format!("header says {len} bytes, file has {}", msg.len()));
    }
    if msg.len() < TRAILER_LEN {
        return Err("too short".into());
    }
    let (content, trailer) = msg.split_at(msg.len() - TRAILER_LEN);
    let expected = format!("X-Checksum: {:016x}\n", fnv1a(content));
    if trailer != expected.as_bytes() {
        return Err(format!(
            "bad trailer {:?}, expected {expected:?}",
            String::from_utf8_lossy(trailer)
        ));
    }
    Ok(())
}

/// The child: deliver forever. Returns at once in a normal test run.
///
/// The messages are made up front, so that nearly all of the child's time is spent
/// inside `deliver` and `mark_seen`, where the kill should land.
#[test]
fn writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let md = Maildir::open(Path::new(&dir)).unwrap();
    let mut rng = Rng::seeded();
    let pool: Vec<Vec<u8>> = (0..POOL)
        .map(|seq| {
            let size = MIN_SIZE + rng.below(MAX_SIZE - MIN_SIZE + 1);
            make_message(seq, size as usize, &mut rng)
        })
        .collect();
    for (n, msg) in pool.iter().cycle().enumerate() {
        let name = md.deliver(msg).unwrap();
        if n % 3 == 2 {
            let entry = md
                .list()
                .unwrap()
                .into_iter()
                .find(|e| e.name() == name.as_str())
                .unwrap();
            md.mark_seen(&entry).unwrap();
        }
    }
}

/// Kills the child if the parent test panics.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, Iterator::count)
}

struct RoundResult {
    complete: usize,
    debris: usize,
}

/// Everything in new/ and cur/ must be complete; tmp/ may hold anything.
fn verify(root: &Path) -> RoundResult {
    let mut top: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["cur", "new", "tmp"],
        "unexpected files in the maildir root"
    );

    let mut complete = 0;
    for folder in ["new", "cur"] {
        for item in fs::read_dir(root.join(folder)).unwrap() {
            let item = item.unwrap();
            let name = item.file_name().into_string().unwrap();
            let data = fs::read(item.path()).unwrap();
            let base = name.split(':').next().unwrap();
            let named_size: usize = base
                .rsplit_once(",S=")
                .and_then(|(_, s)| s.parse().ok())
                .unwrap_or_else(|| panic!("{folder}/{name} has no ,S= size"));
            assert_eq!(
                named_size,
                data.len(),
                "{folder}/{name}: size in name vs file"
            );
            if let Err(why) = check_message(&data) {
                panic!("{folder}/{name} is not a complete message: {why}");
            }
            if folder == "cur" {
                assert!(name.ends_with(":2,S"), "{name}");
            } else {
                assert!(!name.contains(':'), "{name}");
            }
            complete += 1;
        }
    }

    // The library's own view agrees with the raw directory listing.
    let md = Maildir::open(root).unwrap();
    let entries = md.list().unwrap();
    assert_eq!(entries.len(), complete);
    for entry in &entries {
        let data = md.read(entry).unwrap();
        assert_eq!(entry.size(), data.len() as u64);
        assert_eq!(entry.flags().is_empty(), entry.folder() == Folder::New);
    }

    let debris = count_files(&root.join("tmp"));
    assert!(
        debris <= 1,
        "one writer can leave at most one tmp file, found {debris}"
    );
    assert_eq!(md.clean_tmp(Duration::ZERO).unwrap(), debris);
    assert_eq!(count_files(&root.join("tmp")), 0);
    RoundResult { complete, debris }
}

fn spawn_writer(dir: &Path) -> Killer {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Killer(child)
}

#[test]
fn kill_9_during_delivery_leaves_no_partial_message() {
    let base = tempfile::tempdir().unwrap();
    let mut rng = Rng::seeded();
    let start = Instant::now();
    let (mut rounds, mut complete, mut debris_rounds) = (0, 0, 0);

    while rounds < ROUNDS && (rounds < MIN_ROUNDS || start.elapsed() < TIME_BUDGET) {
        let root = base.path().join(format!("round-{rounds}"));
        let mut child = spawn_writer(&root);

        // Wait for a couple of complete deliveries, so the kill lands in steady state.
        let wait_until = Instant::now() + Duration::from_secs(15);
        loop {
            if count_files(&root.join("new")) + count_files(&root.join("cur")) >= 2 {
                break;
            }
            if let Some(status) = child.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut stderr) = child.0.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("writer exited early with {status}: {err}");
            }
            assert!(
                Instant::now() < wait_until,
                "writer made no progress in 15 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        assert!(
            !status.success(),
            "writer must have been killed, got {status}"
        );

        let result = verify(&root);
        complete += result.complete;
        debris_rounds += usize::from(result.debris > 0);
        rounds += 1;
        drop(child);
        fs::remove_dir_all(&root).unwrap();
    }

    eprintln!(
        "{rounds} rounds in {:.1?}: {complete} complete messages checked, \
         {debris_rounds} kills caught a delivery in tmp/",
        start.elapsed()
    );
    assert!(rounds >= MIN_ROUNDS);
    assert!(complete >= 2 * rounds);
    // With the writer spending nearly all its time in `deliver`, most kills land
    // mid-delivery; none at all would mean this test no longer tests anything.
    assert!(debris_rounds > 0, "no kill landed during a delivery");
}
