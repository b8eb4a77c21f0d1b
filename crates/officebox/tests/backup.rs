//! Backup and restore end to end: `officebox backup` of a running box while Python's
//! smtplib keeps delivering, then `officebox restore` onto a fresh directory, and every
//! mail that got its 250 before the backup began is there, read back by poplib from the
//! restored box. A spoiled or cut archive is refused and leaves nothing; a second
//! officebox, or a whole restore, is refused on a data directory a running one holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use officebox_testkit::{
    Officebox, READY_TIMEOUT, TestConfig, require_program, scratch_dir, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// Runs the officebox binary with `args` in `dir`.
fn officebox(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The demo on free ports, started, its POP3 server listening.
fn demo_box() -> (TestConfig, Officebox) {
    let c = TestConfig::demo().free_ports();
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("pop3: serving", READY_TIMEOUT)
        .unwrap();
    (c, ob)
}

/// `officebox backup` of the box in `dir` into `dir/box.tar.gz`, which must succeed.
fn back_up(dir: &Path) -> String {
    let made = officebox(
        dir,
        &[
            "backup",
            "--config",
            "officebox.toml",
            "--out",
            "box.tar.gz",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    text(&made)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The numbers in the subjects of alice's mail, read by poplib.
fn subjects(pop: i64) -> BTreeSet<u32> {
    let code = format!(
        "import poplib, re\np = poplib.POP3('127.0.0.1', {pop})\np.user('alice'); p.pass_('demo-alice')\n\
         for i in range(1, p.stat()[0] + 1):\n    for l in p.top(i, 0)[1]:\n        m = re.match(rb'Subject: load (\\d+)', l)\n        if m: print(int(m.group(1)))\n\
         p.quit()\n"
    );
    let out = Command::new("python3")
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_backup_under_smtp_load_restores_every_acknowledged_mail_and_a_spoiled_one_is_refused() {
    require_program("python3", "python3");
    let (c, ob) = demo_box();
    let (smtp, pop) = (c.int("mail.smtp_port"), c.int("mail.pop3_port"));

    // A careless second start on the same data is refused at once.
    let second = officebox(ob.dir(), &["run", "--config", "officebox.toml"]);
    assert!(!second.status.success());
    assert!(
        text(&second).contains("another officebox is running"),
        "{}",
        text(&second)
    );

    // Mail keeps arriving: each number printed once its 250 is in.
    let load = format!(
        "import smtplib, sys\ns = smtplib.SMTP('127.0.0.1', {smtp})\n\
         for i in range(100000):\n    s.sendmail('x@example.net', ['alice@office.test'], \
         f'Subject: load {{i}}\\r\\n\\r\\nmessage {{i}}\\r\\n')\n    print(i, flush=True)\n"
    );
    let mut sender = Command::new("python3")
        .args(["-c", &load])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let reader = {
        let acked = Arc::clone(&acked);
        let out = sender.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse::<u32>() {
                    acked.lock().unwrap().insert(n);
                }
            }
        })
    };
    assert!(wait_until(Duration::from_secs(20), || acked
        .lock()
        .unwrap()
        .len()
        >= 40));
    let before: BTreeSet<u32> = acked.lock().unwrap().clone();
    let archive = ob.dir().join("box.tar.gz");
    let made = back_up(ob.dir());
    assert!(made.contains("backup written"), "{made}");
    let during = acked.lock().unwrap().len() - before.len();
    let _ = sender.kill();
    let _ = sender.wait();
    let _ = reader.join();

    // A whole restore is refused while the box runs on that data.
    let refused = officebox(
        ob.dir(),
        &["restore", "--config", "officebox.toml", "box.tar.gz"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("officebox is running"),
        "{}",
        text(&refused)
    );

    // Onto a fresh box: only its config from `init`-time, no data.
    let fresh = scratch_dir("restored").unwrap();
    std::fs::write(fresh.path().join("officebox.toml"), c.text()).unwrap();
    std::fs::copy(&archive, fresh.path().join("box.tar.gz")).unwrap();

    // Spoiled: one byte changed in the middle, and cut short. Each is refused and
    // leaves neither data nor a staging directory behind.
    let bytes = std::fs::read(&archive).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    for (name, spoiled) in [
        ("flipped.tar.gz", flipped),
        ("cut.tar.gz", bytes[..bytes.len() * 2 / 3].to_vec()),
    ] {
        std::fs::write(fresh.path().join(name), spoiled).unwrap();
        let out = officebox(
            fresh.path(),
            &["restore", "--config", "officebox.toml", name],
        );
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("damaged") || text(&out).contains("not an officebox backup"),
            "{name}: {}",
            text(&out)
        );
        let left: Vec<_> = std::fs::read_dir(fresh.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tar.gz") && n != "officebox.toml")
            .collect();
        assert!(left.is_empty(), "{name} left {left:?}");
    }

    let restored = officebox(
        fresh.path(),
        &["restore", "--config", "officebox.toml", "box.tar.gz"],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("restored a backup"),
        "{}",
        text(&restored)
    );

    let (_, _, _old) = ob.stop_with("TERM", Duration::from_secs(10)).unwrap();
    let again = Officebox::start_in(bin(), &c.text(), fresh).unwrap();
    again
        .peer()
        .wait_for_log("pop3: serving", READY_TIMEOUT)
        .unwrap();
    let found = subjects(pop);
    let lost: Vec<_> = before.difference(&found).collect();
    assert!(
        lost.is_empty(),
        "acknowledged before the backup began and not restored: {lost:?} ({} acknowledged before, {during} during, {} restored)",
        before.len(),
        found.len()
    );
}

#[test]
fn settings_or_one_mailbox_come_back_alone() {
    require_program("swaks", "swaks");
    require_program("python3", "python3");
    let (c, ob) = demo_box();
    let (smtp, pop) = (c.int("mail.smtp_port"), c.int("mail.pop3_port"));
    let send = |n: u32| {
        let out = Command::new("swaks")
            .args([
                "--server",
                &format!("127.0.0.1:{smtp}"),
                "--from",
                "x@example.net",
            ])
            .args([
                "--to",
                "alice@office.test",
                "--header",
                &format!("Subject: load {n}"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    send(1);
    send(2);
    back_up(ob.dir());

    // Alice's mail is lost (read and deleted by a careless client), and the settings
    // changed; her mailbox comes back while the box runs, the rest untouched.
    let gone = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import poplib\np = poplib.POP3('127.0.0.1', {pop})\np.user('alice'); p.pass_('demo-alice')\n\
                 [p.dele(i) for i in range(1, p.stat()[0] + 1)]\np.quit()\n"
            ),
        ])
        .output()
        .unwrap();
    assert!(gone.status.success(), "{}", text(&gone));
    assert!(subjects(pop).is_empty());
    send(3);
    let mailbox = officebox(
        ob.dir(),
        &[
            "restore",
            "--config",
            "officebox.toml",
            "--mailbox",
            "alice",
            "box.tar.gz",
        ],
    );
    assert!(mailbox.status.success(), "{}", text(&mailbox));
    assert!(
        wait_until(Duration::from_secs(5), || subjects(pop)
            == BTreeSet::from([1, 2])),
        "{:?}",
        subjects(pop)
    );
    let nobody = officebox(
        ob.dir(),
        &[
            "restore",
            "--config",
            "officebox.toml",
            "--mailbox",
            "nobody",
            "box.tar.gz",
        ],
    );
    assert!(!nobody.status.success());
    assert!(
        text(&nobody).contains("no mailbox for nobody"),
        "{}",
        text(&nobody)
    );

    let config = ob.config_path().to_path_buf();
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{original}\n# changed after the backup\n")).unwrap();
    let settings = officebox(
        ob.dir(),
        &[
            "restore",
            "--config",
            "officebox.toml",
            "--settings",
            "box.tar.gz",
        ],
    );
    assert!(settings.status.success(), "{}", text(&settings));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    let kept: Vec<_> = std::fs::read_dir(ob.dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("officebox.toml.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced settings are kept");
}

#[test]
fn the_nightly_archive_is_encrypted_the_oldest_go_and_it_restores_with_its_passphrase() {
    require_program("python3", "python3");
    let folder = scratch_dir("nightly").unwrap();
    // Archives of three earlier nights, and a file that is somebody else's.
    for night in ["20261201-023000", "20261202-023000", "20261203-023000"] {
        let name = format!("officebox-officebox-{night}.tar.gz.age");
        std::fs::write(folder.path().join(name), b"an earlier night").unwrap();
    }
    std::fs::write(folder.path().join("notes.txt"), b"not an archive").unwrap();
    // And what a night cut off left.
    let cut = "officebox-officebox-20261204-023000.tar.gz.age.partial";
    std::fs::write(folder.path().join(cut), b"half an archive").unwrap();
    // The night falls a few seconds from now, on the box's clock.
    let soon = Command::new("date")
        .args(["-d", "+8 seconds", "+%H:%M:%S"])
        .output()
        .unwrap();
    let at = String::from_utf8_lossy(&soon.stdout).trim().to_string();
    let phrase = "correct horse battery staple";
    let c = TestConfig::demo().free_ports().append(&format!(
        "[backup]\nenabled = true\npath = \"{}\"\nat = \"{at}\"\nkeep = 2\npassphrase = \"{phrase}\"\n",
        folder.path().display()
    ));
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("backup: nightly archive written", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mut names: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "two archives kept and the notes: {names:?}");
    assert_eq!(names[0], "notes.txt");
    assert_eq!(names[1], "officebox-officebox-20261203-023000.tar.gz.age");
    let newest = folder.path().join(&names[2]);
    assert!(names[2].ends_with(".tar.gz.age"), "{names:?}");
    let head = std::fs::read(&newest).unwrap();
    assert!(
        head.starts_with(b"age-encryption.org/v1"),
        "encrypted with age"
    );

    // Onto a fresh box: without the passphrase, or with a wrong one, nothing happens.
    let fresh = scratch_dir("nightly-restored").unwrap();
    std::fs::write(fresh.path().join("officebox.toml"), c.text()).unwrap();
    let restore = |stdin: Option<&str>| {
        let mut cmd = Command::new(bin());
        cmd.args(["restore", "--config", "officebox.toml"])
            .arg(&newest)
            .current_dir(fresh.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.arg("--passphrase-stdin").stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(format!("{text}\n").as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let none = restore(None);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("is encrypted") && text(&none).contains("--passphrase"),
        "{}",
        text(&none)
    );
    let wrong = restore(Some("wrong horse battery staple"));
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("does not open it"),
        "{}",
        text(&wrong)
    );
    assert!(!fresh.path().join("demo-data").exists());
    let right = restore(Some(phrase));
    assert!(right.status.success(), "{}", text(&right));
    assert!(fresh.path().join("demo-data/state.db").is_file());
}
