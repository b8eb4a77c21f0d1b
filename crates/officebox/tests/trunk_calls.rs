//! Calls over a SIP trunk, end to end with real phones and a real provider, all on
//! loopback: kamailio on 127.0.0.2 plays the telephone provider (registrar and proxy,
//! challenging every call on the trunk for the account's digest credentials, recording
//! its route, relaying calls to the office's numbers to where the trunk registered), a
//! baresip phone on 127.0.0.3 is registered there as an outside line, and baresip phones
//! 101 (alice) and 102 (bob) are registered with officebox.
//!
//! An office phone dials out (the route strips the 9, the provider sees the account's
//! number as caller ID) and the outside phone dials a DID that rings an extension; each
//! call carries speech both ways through officebox's relay, and the call log has both.
//! The guards: an international number and a user outside the route are refused, an
//! emergency number goes out whoever dials it, a dead trunk fails over to the next, and
//! a DID the office does not have is refused. Inbound routing: a hunt group and the
//! night schedule; the auto attendant (a greeting an administrator records from a phone,
//! a key chosen by RFC 4733 reaching its extension with speech both ways, dial by
//! extension, no key, a wrong key); the night code closing the office by hand, its BLF
//! lamp, and a kill -9 that keeps it closed; a ring group ringing a desk phone and a
//! mobile (a second outside phone) at once. (The WAN side, firewall and NAT, is in
//! tests/trunks.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use officebox_testkit::{
    Baresip, BaresipAccount, KamailioProvider, Officebox, ProviderOptions, READY_TIMEOUT,
    TestConfig, audio, free_udp_port, require_program, scratch_dir, wait_until,
};

const ACCOUNT: &str = "4930123456";
const TRUNK_PASSWORD: &str = "trunk-secret";
/// The outside phone's number at the provider.
const OUTSIDE: &str = "5551234";
const OUTSIDE_PASSWORD: &str = "outside-secret";
/// A second outside phone (a mobile a ring group forwards to).
const MOBILE: &str = "5551235";
/// The office's number that rings bob (the provider sends it in To).
const DID_BOB: &str = "4930123457";
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// A G.711 round trip through the relay scores about 0.99.
const SIMILAR: f64 = 0.8;

/// One test at a time: real-time audio through three phones.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The provider, officebox with a trunk to it, and where each is.
struct World {
    kam: KamailioProvider,
    provider: SocketAddr,
    /// Always there but while [`World::restart`] swaps it.
    running: Option<Officebox>,
    config: String,
    sip: SocketAddr,
}

impl World {
    /// kamailio on 127.0.0.2, and officebox (the demo) with trunk "main" to it, route
    /// `9.` (strip the 9) for alice, DID 4930123457 to extension 102, and `extra` config.
    fn start(extra: impl FnOnce(TestConfig) -> TestConfig) -> World {
        require_program("baresip", "baresip");
        require_program("kamailio", "kamailio");
        let provider = SocketAddr::from(([127, 0, 0, 2], free_udp_port().unwrap()));
        let mut options = ProviderOptions::new("127.0.0.2", ACCOUNT, TRUNK_PASSWORD);
        options.port = provider.port();
        options.phones = vec![
            (OUTSIDE.into(), OUTSIDE_PASSWORD.into()),
            (MOBILE.into(), OUTSIDE_PASSWORD.into()),
        ];
        options.did_prefix = Some("49301234".into());
        let kam = KamailioProvider::start_on_loopback(&options).expect("kamailio starts");
        let c = TestConfig::demo().free_ports().append(&format!(
            "[[phone.trunks]]\nname = \"main\"\nserver = \"{provider}\"\nusername = \"{ACCOUNT}\"\n\
             password = \"{TRUNK_PASSWORD}\"\n\n\
             [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"main\"]\n\
             users = [\"alice\"]\n\n\
             [[phone.inbound]]\nnumber = \"{DID_BOB}\"\ndestination = \"extension:102\"\n"
        ));
        let c = extra(c);
        let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
        ob.peer()
            .wait_for_log("phone: serving", READY_TIMEOUT)
            .expect("the phone server starts");
        let sip = SocketAddr::from((
            [127, 0, 0, 1],
            u16::try_from(c.int("phone.sip_port")).unwrap(),
        ));
        let world = World {
            kam,
            provider,
            running: Some(ob),
            config: c.text(),
            sip,
        };
        let registered = wait_until(Duration::from_secs(15), || {
            world
                .cli(&["phone", "trunks"])
                .lines()
                .any(|l| l.starts_with("main ") && l.contains("registered"))
        });
        assert!(
            registered,
            "the trunk did not register:\n{}\n{}",
            world.cli(&["phone", "trunks"]),
            world.kam.log()
        );
        world
    }

    fn ob(&self) -> &Officebox {
        self.running.as_ref().expect("officebox runs")
    }

    /// Kills officebox (-9) and starts it again on the same data; waits until its trunk
    /// is registered again.
    fn restart(&mut self) {
        let dir = self
            .running
            .take()
            .expect("officebox runs")
            .kill9()
            .unwrap();
        let ob = Officebox::start_in(bin(), &self.config, dir).expect("officebox starts again");
        self.running = Some(ob);
        let registered = wait_until(Duration::from_secs(15), || {
            self.cli(&["phone", "trunks"])
                .lines()
                .any(|l| l.starts_with("main ") && l.contains("registered"))
        });
        assert!(registered, "{}", self.ob().log());
    }

    fn cli(&self, args: &[&str]) -> String {
        run_cli(self.ob(), args)
    }

    /// An office phone: extension `ext`, logging in as `login`.
    fn office_phone(&self, name: &str, ext: &str, login: &str, plays: Option<&Path>) -> Baresip {
        self.office_phone_answering(name, ext, login, plays, true)
    }

    /// An office phone that answers by itself (`auto`) or not at all.
    fn office_phone_answering(
        &self,
        name: &str,
        ext: &str,
        login: &str,
        plays: Option<&Path>,
        auto: bool,
    ) -> Baresip {
        let mut account = BaresipAccount::new(ext, self.sip)
            .domain("office.test")
            .auth(login, &format!("demo-{login}"))
            .auto_answer(auto)
            .max_call(Duration::from_secs(60));
        if let Some(p) = plays {
            account = account.play(p);
        }
        let phone = Baresip::start(name, &account).unwrap();
        self.registered(&phone);
        phone
    }

    /// The outside phone, registered at the provider from 127.0.0.3.
    fn outside_phone(&self, plays: &Path) -> Baresip {
        self.outside_phone_as("carol", OUTSIDE, [127, 0, 0, 3], plays)
    }

    /// An outside phone `name` for `number`, registered at the provider from `ip`.
    fn outside_phone_as(&self, name: &str, number: &str, ip: [u8; 4], plays: &Path) -> Baresip {
        let account = BaresipAccount::new(number, self.provider)
            .auth(number, OUTSIDE_PASSWORD)
            .local_ip(std::net::Ipv4Addr::from(ip))
            .auto_answer(true)
            .max_call(Duration::from_secs(60))
            .play(plays);
        let phone = Baresip::start(name, &account).unwrap();
        self.registered(&phone);
        phone
    }

    fn registered(&self, phone: &Baresip) {
        if let Err(e) = phone.wait_registered(EVENT_TIMEOUT) {
            self.fail(&format!("{} did not register", phone.name()), e);
        }
    }

    fn event(&self, phone: &Baresip, mark: usize, kind: &str) -> officebox_testkit::BaresipEvent {
        phone
            .wait_for_event_after(mark, kind, EVENT_TIMEOUT)
            .unwrap_or_else(|e| self.fail(&format!("{}: no {kind}", phone.name()), e))
    }

    fn fail(&self, what: &str, error: impl std::fmt::Display) -> ! {
        panic!(
            "{what}: {error}\n--- officebox ---\n{}\n--- kamailio ---\n{}",
            self.ob().log(),
            self.kam.log()
        )
    }

    /// `caller` dials `number`; once both phones have talked for `seconds`, `caller`
    /// hangs up. What `caller` and `callee` heard, and the callee's view of the caller.
    fn talk(&self, caller: &Baresip, callee: &Baresip, number: &str, seconds: f64) -> String {
        let (mark_a, mark_b) = (caller.mark(), callee.mark());
        caller.dial(number).unwrap();
        let established = self.event(caller, mark_a, "CALL_ESTABLISHED");
        let incoming = self.event(callee, mark_b, "CALL_ESTABLISHED");
        let until = established.received + Duration::from_secs_f64(seconds + 1.0);
        sleep(until.saturating_duration_since(Instant::now()));
        let mark = caller.mark();
        caller.hangup().unwrap();
        self.event(caller, mark, "CALL_CLOSED");
        self.event(callee, mark_b, "CALL_CLOSED");
        incoming.peer_uri
    }

    /// `phone` dials `number` and the call is refused: the reason it was given.
    fn refused(&self, phone: &Baresip, number: &str) -> String {
        let mark = phone.mark();
        phone.dial(number).unwrap();
        self.event(phone, mark, "CALL_CLOSED").param
    }
}

/// `officebox ARGS --config ...` of `ob` (its output).
fn run_cli(ob: &Officebox, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(ob.config_path())
        .current_dir(ob.dir())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Speech for `who`, half a second of silence first (a phone's first packets may go
/// while the other side still sets up its audio).
fn sentence(dir: &Path, who: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    sentence_after(dir, who, text, 0.5)
}

/// Speech for `who` after `silence` seconds (what it says and the file it plays).
fn sentence_after(
    dir: &Path,
    who: &str,
    text: &str,
    silence: f64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let says = dir.join(format!("{who}-says.wav"));
    audio::speak_wav(&says, text).unwrap();
    let plays = dir.join(format!("{who}.wav"));
    let wav = audio::read_wav(&says).unwrap();
    let mut samples = vec![0i16; (f64::from(wav.rate) * silence) as usize];
    samples.extend_from_slice(&wav.samples);
    audio::write_wav(&plays, wav.rate, &samples).unwrap();
    (says, plays)
}

/// Whether `phone`'s last call's recording is `said`.
fn heard(world: &World, phone: &Baresip, said: &Path) {
    let rec = phone.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let m = audio::compare(said, &rec).unwrap();
    assert!(
        m.score > SIMILAR,
        "{} did not hear {}: {m:?} ({})\n{}",
        phone.name(),
        said.display(),
        rec.display(),
        world.ob().log()
    );
}

#[test]
fn office_phones_call_out_and_are_called_in_over_the_trunk_with_speech_both_ways() {
    require_program("espeak-ng", "espeak-ng");
    let _serial = serial();
    let dir = scratch_dir("trunk-talk").unwrap();
    let (alice_says, alice_plays) = sentence(
        dir.path(),
        "alice",
        "Alice calls the outside world through the trunk.",
    );
    let (bob_says, bob_plays) = sentence(dir.path(), "bob", "Bob answers a call from outside.");
    let (carol_says, carol_plays) = sentence(
        dir.path(),
        "carol",
        "Carol speaks from a phone at the provider.",
    );
    let world = World::start(|c| c);
    let alice = world.office_phone("alice", "101", "alice", Some(&alice_plays));
    let bob = world.office_phone("bob", "102", "bob", Some(&bob_plays));
    let carol = world.outside_phone(&carol_plays);
    let longest = [&alice_plays, &bob_plays, &carol_plays]
        .iter()
        .map(|p| audio::read_wav(p).unwrap().seconds())
        .fold(0.0, f64::max);

    // Out: 9 + the number; the provider asks for the account's credentials, and carol
    // sees the account's number as the caller.
    let seen = world.talk(&alice, &carol, &format!("9{OUTSIDE}"), longest);
    assert!(seen.starts_with(&format!("sip:{ACCOUNT}@")), "{seen}");
    heard(&world, &carol, &alice_says);
    heard(&world, &alice, &carol_says);
    let kam = world.kam.log();
    assert!(
        kam.contains(&format!("provider: call on the trunk to {OUTSIDE}"))
            && kam.contains(&format!(
                "pai=[\"Alice Example\" <sip:{ACCOUNT}@127.0.0.2>]"
            )),
        "{kam}"
    );

    // In: carol dials bob's DID; the provider relays it to the trunk's registration.
    let seen = world.talk(&carol, &bob, DID_BOB, longest);
    assert!(seen.starts_with(&format!("sip:{OUTSIDE}@")), "{seen}");
    heard(&world, &bob, &carol_says);
    heard(&world, &carol, &bob_says);

    // The call log is written when each call's task has finished its hang-up, which
    // can be a moment after the phones saw the BYE.
    let finished = |log: &str| !log.contains("in-progress");
    let _ = wait_until(Duration::from_secs(5), || {
        finished(&world.cli(&["phone", "log"]))
    });
    let log = world.cli(&["phone", "log"]);
    let out = log.lines().find(|l| l.ends_with("(out via main)"));
    let inbound = log.lines().find(|l| l.ends_with("(in via main)"));
    assert!(
        out.is_some_and(|l| l.contains("101 (Alice Example)")
            && l.contains("(the number)")
            && l.contains("answered")),
        "{log}"
    );
    assert!(
        inbound
            .is_some_and(|l| l.contains(OUTSIDE) && l.contains(" bob ") && l.contains("answered")),
        "{log}"
    );
    assert!(
        !world.ob().log().contains("panicked"),
        "{}",
        world.ob().log()
    );
}

#[test]
fn the_dial_plan_guards_outside_calls_and_a_dead_trunk_fails_over() {
    let _serial = serial();
    let dead = SocketAddr::from(([127, 0, 0, 9], free_udp_port().unwrap()));
    let mut world = World::start(|c| {
        c.set_user("alice", "outside_calls_per_day", 1)
            .set_user("bob", "caller_id", "4930123457")
            .append(&format!(
                "[[phone.trunks]]\nname = \"dead\"\nkind = \"ip\"\nserver = \"{dead}\"\n\
             addresses = [\"127.0.0.9\"]\n\n\
             [[phone.routes]]\nname = \"failover\"\npattern = \"8.\"\nstrip = 1\n\
             trunks = [\"dead\", \"main\"]\n"
            ))
    });
    let dir = scratch_dir("trunk-guards").unwrap();
    let (_, quiet) = sentence(dir.path(), "quiet", "Hello.");
    let alice = world.office_phone("alice", "101", "alice", None);
    let bob = world.office_phone("bob", "102", "bob", None);
    let carol = world.outside_phone(&quiet);

    // International numbers are refused by default; bob may not use the route.
    let why = world.refused(&alice, "90044207946000");
    assert!(
        why.contains("403") && why.contains("international"),
        "{why}"
    );
    let why = world.refused(&bob, &format!("9{OUTSIDE}"));
    assert!(why.contains("403"), "{why}");
    // An emergency number goes out whoever dials it (the provider has no such phone),
    // showing bob's own number.
    let why = world.refused(&bob, "112");
    assert!(why.contains("404"), "{why}");
    let kam = world.kam.log();
    assert!(
        kam.contains("provider: call on the trunk to 112")
            && kam.contains("<sip:4930123457@127.0.0.2>]"),
        "{kam}"
    );
    // A DID the office does not have (and no operator).
    let why = world.refused(&carol, "4930123499");
    assert!(why.contains("404"), "{why}");

    // The first trunk's provider says nothing: 5 s on, the call goes out on the next.
    let started = Instant::now();
    let seen = world.talk(&alice, &carol, &format!("8{OUTSIDE}"), 0.5);
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(seen.starts_with(&format!("sip:{ACCOUNT}@")), "{seen}");
    let answered = |log: &str| {
        log.lines()
            .any(|l| l.contains(" answered ") && l.ends_with("(out via main)"))
    };
    let ok = wait_until(Duration::from_secs(5), || {
        answered(&world.cli(&["phone", "log"]))
    });
    let log = world.cli(&["phone", "log"]);
    assert!(
        ok,
        "the answered call names the trunk it went out on: {log}"
    );
    // The refused calls are there too.
    assert_eq!(
        log.lines().filter(|l| l.ends_with(" failed")).count(),
        2,
        "{log}"
    );
    let ob_log = world.ob().log();
    assert!(
        ob_log.contains("phone: trunk failed a call; trying the next")
            && ob_log.contains("trunk=dead"),
        "{ob_log}"
    );
    // alice may make one outside call a day: that was it (the refused ones did not count),
    // and a restart (kill -9) does not give her another: the count starts from the log.
    let why = world.refused(&alice, &format!("9{OUTSIDE}"));
    assert!(why.contains("403") && why.contains("used up"), "{why}");
    // The administrator hears of it by mail, once (not for every refused call).
    let admin_new = world.ob().dir().join("demo-data/mail/admin/new");
    let alerts = || -> Vec<String> {
        std::fs::read_dir(&admin_new)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter(|m| m.contains("Subject: Outside calls: Alice Example (101)"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(wait_until(Duration::from_secs(5), || !alerts().is_empty()));
    world.restart();
    let why = world.refused(&alice, &format!("9{OUTSIDE}"));
    assert!(why.contains("403") && why.contains("used up"), "{why}");
    // One alert before the restart and one after (the hour's quiet is kept in memory).
    assert!(wait_until(Duration::from_secs(5), || alerts().len() == 2));
    let mails = alerts();
    assert!(
        mails.len() == 2
            && mails
                .iter()
                .all(|m| m.contains("reached the limit of 1 outside")),
        "{mails:?}"
    );
    // Two calls went out on the trunk (112, then the failover); the provider challenged
    // only the first: the second answered its nonce up front.
    let kam = world.kam.log();
    assert_eq!(
        kam.matches("provider: challenge INVITE").count(),
        1,
        "{kam}"
    );
    assert_eq!(
        kam.matches("provider: call on the trunk to").count(),
        2,
        "{kam}"
    );
}

/// A day in UTC as YYYY-MM-DD, `offset` days from today.
fn utc_day(offset: i32) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("{offset} days"), "+%F"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_did_rings_a_hunt_group_and_at_night_the_schedule_sends_it_to_voicemail() {
    let _serial = serial();
    // Open all week, but closed today (a holiday either side of midnight too).
    let holidays: Vec<String> = (-1..=1).map(|d| format!("\"{}\"", utc_day(d))).collect();
    let world = World::start(|c| {
        c.set("phone.timezone", "UTC").append(&format!(
            "[[phone.inbound]]\nnumber = \"4930123458\"\ndestination = \"group:front\"\n\n\
             [[phone.inbound]]\nnumber = \"4930123459\"\ndestination = \"schedule:office\"\n\n\
             [[phone.ring_groups]]\nname = \"front\"\nstrategy = \"hunt\"\n\
             members = [\"102\", \"101\"]\nring_time = \"5s\"\nno_answer = \"voicemail:bob\"\n\n\
             [[phone.schedules]]\nname = \"office\"\nopen = [\"mon-sun 00:00-24:00\"]\n\
             holidays = [{}]\nwhen_open = \"extension:101\"\nwhen_closed = \"voicemail:alice\"\n",
            holidays.join(", ")
        ))
    });
    let dir = scratch_dir("trunk-group").unwrap();
    let (_, hello) = sentence(dir.path(), "carol", "Hello, please call me back.");
    let alice = world.office_phone("alice", "101", "alice", None);
    let bob = world.office_phone_answering("bob", "102", "bob", None, false);
    let carol = world.outside_phone(&hello);

    // Hunt: bob (first) rings and does not answer; 5 s on, alice's phone rings and answers.
    let (mark_a, mark_b, mark_c) = (alice.mark(), bob.mark(), carol.mark());
    let started = Instant::now();
    carol.dial("4930123458").unwrap();
    world.event(&bob, mark_b, "CALL_INCOMING");
    world.event(&alice, mark_a, "CALL_ESTABLISHED");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "alice rang before bob's turn ended"
    );
    world.event(&carol, mark_c, "CALL_ESTABLISHED");
    world.event(&bob, mark_b, "CALL_CLOSED");
    let mark = carol.mark();
    carol.hangup().unwrap();
    world.event(&carol, mark, "CALL_CLOSED");

    // At night (a holiday): the schedule sends the call to alice's voicemail.
    let mark = carol.mark();
    carol.dial("4930123459").unwrap();
    world.event(&carol, mark, "CALL_ESTABLISHED");
    sleep(Duration::from_secs(4));
    carol.hangup().unwrap();
    world.event(&carol, mark, "CALL_CLOSED");

    let lines = |log: &str| {
        let group = log.lines().any(|l| {
            l.contains("front") && l.contains(" alice ") && l.contains("answered (in via main)")
        });
        // alice's voicemail answered (whether a message was left is voicemail's business).
        let night = log.lines().any(|l| {
            l.contains(" 101 ") && l.contains(" (voicemail) ") && l.ends_with("(in via main)")
        });
        group && night
    };
    let ok = wait_until(Duration::from_secs(5), || {
        lines(&world.cli(&["phone", "log"]))
    });
    assert!(ok, "{}\n{}", world.cli(&["phone", "log"]), world.ob().log());
}

#[test]
fn the_auto_attendant_sends_a_key_or_an_extension_on_and_handles_no_and_wrong_keys() {
    require_program("espeak-ng", "espeak-ng");
    let _serial = serial();
    let world = World::start(|c| {
        c.set_user("alice", "admin", true).append(
            "[[phone.inbound]]\nnumber = \"4930123458\"\ndestination = \"attendant:main\"\n\n\
             [[phone.attendants]]\nname = \"main\"\n\
             greeting = \"Thank you for calling. For support, press 1.\"\n\
             keys = [\"1=extension:102\", \"9=attendant:main\"]\ntimeout = \"2s\"\n\
             no_input = \"voicemail:alice\"\ninvalid = \"hangup\"\n",
        )
    });
    let dir = scratch_dir("trunk-attendant").unwrap();
    // Carol speaks once the attendant has sent her on (the greeting, her key, "please
    // hold" and bob's answer take about three seconds).
    let (carol_says, carol_plays) =
        sentence_after(dir.path(), "carol", "Carol asks for support.", 6.0);
    let (bob_says, bob_plays) = sentence(dir.path(), "bob", "Bob from support speaking.");
    // alice's words come once she is at the menu's tone (her PIN, 5, "record after the
    // tone" take about eight seconds).
    let (alice_says, alice_plays) = sentence_after(
        dir.path(),
        "alice",
        "Welcome to Example Office. For support, press one.",
        10.0,
    );
    let alice = world.office_phone("alice", "101", "alice", Some(&alice_plays));
    let bob = world.office_phone("bob", "102", "bob", Some(&bob_plays));
    let carol = world.outside_phone(&carol_plays);
    let press_on = |phone: &Baresip, keys: &str| {
        for k in keys.chars() {
            phone
                .command("sndcode", Some(&k.to_string()))
                .unwrap_or_else(|e| world.fail("a phone could not press a key", e));
            sleep(Duration::from_millis(400));
        }
    };
    let press = |keys: &str| press_on(&carol, keys);

    // alice, an administrator, records the greeting from her phone: the voicemail menu,
    // her PIN, 5, her words, #. It wins over the attendant's text from then on.
    let mark_a = alice.mark();
    alice.dial("*97").unwrap();
    let at_menu = world.event(&alice, mark_a, "CALL_ESTABLISHED");
    sleep(Duration::from_secs(1));
    press_on(&alice, "1111#");
    sleep(Duration::from_millis(1500));
    press_on(&alice, "5");
    let spoken = 10.0 + audio::read_wav(&alice_says).unwrap().seconds() + 0.8;
    let until = at_menu.received + Duration::from_secs_f64(spoken);
    sleep(until.saturating_duration_since(Instant::now()));
    press_on(&alice, "#");
    let recorded = world
        .ob()
        .dir()
        .join("demo-data/attendants/recorded/main.wav");
    let kept = wait_until(Duration::from_secs(10), || recorded.exists());
    assert!(kept, "no greeting was recorded\n{}", world.ob().log());
    let mark = alice.mark();
    alice.hangup().unwrap();
    world.event(&alice, mark, "CALL_CLOSED");

    // 1, during the greeting: bob's phone rings and answers; speech both ways.
    let (mark_b, mark_c) = (bob.mark(), carol.mark());
    carol.dial("4930123458").unwrap();
    world.event(&carol, mark_c, "CALL_ESTABLISHED");
    sleep(Duration::from_secs(1));
    press("1");
    let answered = world.event(&bob, mark_b, "CALL_ESTABLISHED");
    let bob_seconds = audio::read_wav(&bob_plays).unwrap().seconds();
    let carol_seconds = audio::read_wav(&carol_plays).unwrap().seconds();
    sleep(Duration::from_secs_f64(
        bob_seconds.max(carol_seconds) - 2.0,
    ));
    let mark = carol.mark();
    carol.hangup().unwrap();
    world.event(&carol, mark, "CALL_CLOSED");
    world.event(&bob, mark_b, "CALL_CLOSED");
    assert!(answered.received.elapsed() > Duration::from_secs(3));
    heard(&world, &carol, &bob_says);
    heard(&world, &bob, &carol_says);

    // 1 0 1: dial by extension wins over key 1 when more digits follow.
    let (mark_a, mark_c) = (alice.mark(), carol.mark());
    carol.dial("4930123458").unwrap();
    world.event(&carol, mark_c, "CALL_ESTABLISHED");
    press("101");
    world.event(&alice, mark_a, "CALL_ESTABLISHED");
    let mark = carol.mark();
    carol.hangup().unwrap();
    world.event(&carol, mark, "CALL_CLOSED");
    world.event(&alice, mark_a, "CALL_CLOSED");

    // 9 is the same attendant again, then 7 is no key: "not a valid choice", hung up.
    let mark_c = carol.mark();
    carol.dial("4930123458").unwrap();
    world.event(&carol, mark_c, "CALL_ESTABLISHED");
    press("9");
    sleep(Duration::from_secs(1));
    press("7");
    let closed = world.event(&carol, mark_c, "CALL_CLOSED");
    assert!(
        closed.received.elapsed() < Duration::from_secs(30),
        "{closed:?}"
    );

    // No key: after the greeting and the attendant's 2 s, alice's voicemail answers.
    let mark_c = carol.mark();
    carol.dial("4930123458").unwrap();
    world.event(&carol, mark_c, "CALL_ESTABLISHED");
    let voicemail = wait_until(Duration::from_secs(30), || {
        world
            .cli(&["phone", "calls"])
            .lines()
            .any(|l| l.contains(": voicemail"))
    });
    assert!(voicemail, "{}", world.ob().log());
    let mark = carol.mark();
    carol.hangup().unwrap();
    world.event(&carol, mark, "CALL_CLOSED");
    // What carol heard first was alice's recorded greeting.
    heard(&world, &carol, &alice_says);

    // The call log, each to the attendant: answered by bob, then by alice; hung up at
    // the invalid key; alice's voicemail (no message).
    let expected = |log: &str| {
        let rows: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" main ") && l.ends_with("(in via main)"))
            .collect();
        rows.len() == 4
            && rows
                .iter()
                .any(|l| l.contains(" bob ") && l.contains("answered"))
            && rows
                .iter()
                .any(|l| l.contains(" alice ") && l.contains("answered"))
            && rows.iter().any(|l| l.contains("busy"))
            && rows.iter().any(|l| l.contains("no-answer"))
    };
    let ok = wait_until(Duration::from_secs(5), || {
        expected(&world.cli(&["phone", "log"]))
    });
    assert!(ok, "{}\n{}", world.cli(&["phone", "log"]), world.ob().log());
}

#[test]
fn the_night_code_closes_the_office_by_hand_lights_its_blf_key_and_survives_a_restart() {
    require_program("sipp", "sip-tester");
    let _serial = serial();
    let mut world = World::start(|c| {
        c.append(
            "[[phone.inbound]]\nnumber = \"4930123459\"\ndestination = \"schedule:office\"\n\n\
             [[phone.schedules]]\nname = \"office\"\nopen = [\"mon-sun 00:00-24:00\"]\n\
             when_open = \"extension:101\"\nwhen_closed = \"voicemail:bob\"\n",
        )
    });
    // The night code is among the feature codes (there are office hours to change).
    let codes = world.cli(&["phone", "codes"]);
    assert!(
        codes
            .lines()
            .any(|l| l.starts_with("*30 ") && l.contains("close the office")),
        "{codes}"
    );
    let dir = scratch_dir("trunk-night").unwrap();
    let (_, hello) = sentence(dir.path(), "carol", "Is anybody there?");
    let alice = world.office_phone("alice", "101", "alice", None);
    let carol = world.outside_phone(&hello);
    // bob's BLF key on *30: off, lit, off.
    let mut cmd = Command::new("sipp");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/sipp"))
        .args(["-sf", "subscribe_blf.xml", "-inf", "callee.csv"])
        .args(["-key", "domain", "office.test", "-auth_uri", "office.test"])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &free_udp_port().unwrap().to_string(),
        ])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-trace_err",
            "-error_file",
            "/dev/stderr",
        ])
        .arg(world.sip.to_string());
    let lamp = officebox_testkit::Peer::spawn("bob-blf", cmd).unwrap();
    sleep(Duration::from_secs(2));

    // The night code: the box answers, says so, and hangs up.
    let night = |world: &World, phone: &Baresip| {
        let mark = phone.mark();
        phone.dial("*30").unwrap();
        world.event(phone, mark, "CALL_ESTABLISHED");
        world.event(phone, mark, "CALL_CLOSED");
    };
    // Where carol's call to the office's number is taken: alice's phone, or voicemail.
    let reaches_alice = |world: &World, carol: &Baresip| {
        let (mark_a, mark_c) = (alice.mark(), carol.mark());
        carol.dial("4930123459").unwrap();
        world.event(carol, mark_c, "CALL_ESTABLISHED");
        let alice_answered = || {
            alice
                .events()
                .iter()
                .skip(mark_a)
                .any(|e| e.kind == "CALL_ESTABLISHED")
        };
        let voicemail = || {
            world
                .cli(&["phone", "calls"])
                .lines()
                .any(|l| l.contains(": voicemail"))
        };
        let taken = wait_until(Duration::from_secs(10), || alice_answered() || voicemail());
        assert!(taken, "{}", world.ob().log());
        let answered = alice_answered();
        let mark = carol.mark();
        carol.hangup().unwrap();
        world.event(carol, mark, "CALL_CLOSED");
        answered
    };

    assert!(reaches_alice(&world, &carol), "open around the clock");
    night(&world, &alice);
    assert!(!reaches_alice(&world, &carol), "closed by hand");
    night(&world, &alice);
    assert!(reaches_alice(&world, &carol), "the hours are back");
    lamp.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| world.fail("the BLF lamp did not go on and off", e));

    // Closed by hand, then killed: it stays closed when it comes back.
    night(&world, &alice);
    world.restart();
    assert!(
        !reaches_alice(&world, &carol),
        "still closed after a restart"
    );
    night(&world, &alice);
    assert!(reaches_alice(&world, &carol));
    // Four night codes in the log: done by the box (the one killed at its very end may
    // be "unknown").
    let logged = |log: &str| {
        let rows: Vec<&str> = log.lines().filter(|l| l.contains(" *30 ")).collect();
        rows.len() == 4 && rows.iter().filter(|l| l.ends_with("feature")).count() >= 3
    };
    let ok = wait_until(Duration::from_secs(5), || {
        logged(&world.cli(&["phone", "log"]))
    });
    assert!(ok, "{}", world.cli(&["phone", "log"]));
}

#[test]
fn a_ring_group_rings_an_office_phone_and_a_mobile_at_once_and_the_mobile_answers() {
    require_program("espeak-ng", "espeak-ng");
    let _serial = serial();
    let world = World::start(|c| {
        c.append(&format!(
            "[[phone.inbound]]\nnumber = \"4930123460\"\ndestination = \"group:mobile\"\n\n\
             [[phone.ring_groups]]\nname = \"mobile\"\nstrategy = \"all\"\n\
             members = [\"102\", \"number:9{MOBILE}\"]\nring_time = \"20s\"\nno_answer = \"voicemail:bob\"\n"
        ))
    });
    let dir = scratch_dir("trunk-mobile").unwrap();
    let (carol_says, carol_plays) = sentence(dir.path(), "carol", "Carol calls the office.");
    let (dave_says, dave_plays) = sentence(dir.path(), "dave", "Dave answers on his mobile.");
    let bob = world.office_phone_answering("bob", "102", "bob", None, false);
    let carol = world.outside_phone(&carol_plays);
    let dave = world.outside_phone_as("dave", MOBILE, [127, 0, 0, 4], &dave_plays);
    let longest = [&carol_plays, &dave_plays]
        .iter()
        .map(|p| audio::read_wav(p).unwrap().seconds())
        .fold(0.0, f64::max);

    // Both ring; dave's mobile answers (through the trunk, from the account's number),
    // and bob's phone stops ringing.
    let mark_b = bob.mark();
    let seen = world.talk(&carol, &dave, "4930123460", longest);
    assert!(seen.starts_with(&format!("sip:{ACCOUNT}@")), "{seen}");
    world.event(&bob, mark_b, "CALL_INCOMING");
    world.event(&bob, mark_b, "CALL_CLOSED");
    heard(&world, &dave, &carol_says);
    heard(&world, &carol, &dave_says);
    let kam = world.kam.log();
    assert!(
        kam.contains(&format!("provider: call on the trunk to {MOBILE}")),
        "{kam}"
    );
    // In the log: carol's call to the group, answered (by the number: no office user).
    let ok = wait_until(Duration::from_secs(5), || {
        world
            .cli(&["phone", "log"])
            .lines()
            .any(|l| l.contains(" mobile ") && l.contains("answered (in via main)"))
    });
    assert!(ok, "{}", world.cli(&["phone", "log"]));
}

#[test]
fn a_provider_that_plays_early_media_then_holds_and_resumes_the_call_is_carried_through() {
    require_program("sipp", "sip-tester");
    require_program("baresip", "baresip");
    let _serial = serial();
    // The provider: sipp on 127.0.0.5, an IP trunk's far end.
    let port = free_udp_port().unwrap();
    let media = free_udp_port().unwrap();
    // Without music on hold, so that the hold is carried to the phone (with it, the box
    // answers the hold itself: tests/phone_baresip.rs).
    let c = TestConfig::demo()
        .free_ports()
        .set("phone.music_on_hold", "off")
        .append(&format!(
            "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"127.0.0.5:{port}\"\n\
             addresses = [\"127.0.0.5\"]\n\n\
             [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"isp\"]\n"
        ));
    let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .expect("the phone server starts");
    let sip = SocketAddr::from((
        [127, 0, 0, 1],
        u16::try_from(c.int("phone.sip_port")).unwrap(),
    ));
    let dir = scratch_dir("trunk-early-hold").unwrap();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/sipp"))
        .args(["-sf", "provider_early_hold.xml", "-i", "127.0.0.5"])
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-m", "1", "-nostdin", "-recv_timeout", "20s", "-trace_msg"])
        .arg("-message_file")
        .arg(dir.path().join("provider.msg"));
    let provider = officebox_testkit::Peer::spawn("provider", cmd).unwrap();
    let account = BaresipAccount::new("101", sip)
        .domain("office.test")
        .auth("alice", "demo-alice")
        .max_call(Duration::from_secs(60));
    let alice = Baresip::start("alice", &account).unwrap();
    alice.wait_registered(EVENT_TIMEOUT).unwrap();

    alice.dial("95551234").unwrap();
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!(
            "{what}: {e}\n--- provider ---\n{}\n--- officebox ---\n{}",
            provider.log_tail(40),
            ob.log()
        )
    };
    alice
        .wait_for_event("CALL_PROGRESS", EVENT_TIMEOUT)
        .unwrap_or_else(|e| fail("no early media reached alice", &e));
    let established = alice
        .wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| fail("the call was not answered", &e));
    // The provider holds, resumes, moves its media by UPDATE (answered by the box) and
    // hangs up; each of its re-INVITEs reached alice's
    // phone as an offer and was answered.
    let closed = alice
        .wait_for_event("CALL_CLOSED", Duration::from_secs(30))
        .unwrap_or_else(|e| fail("the provider's BYE did not end the call", &e));
    let offers = alice
        .events()
        .iter()
        .filter(|e| {
            e.kind == "CALL_REMOTE_SDP" && e.param == "offer" && e.received > established.received
        })
        .count();
    assert_eq!(
        offers,
        2,
        "hold and resume reach the phone:\n{:?}",
        alice.events()
    );
    assert!(closed.received > established.received);
    let done = wait_until(Duration::from_secs(10), || {
        provider.try_wait().ok().flatten().is_some()
    });
    assert!(done, "{}", provider.log_tail(40));
    assert_eq!(
        provider.try_wait().ok().flatten().and_then(|s| s.code()),
        Some(0),
        "every request the provider sent was answered:\n{}\n{}",
        provider.log_tail(40),
        ob.log()
    );
    // Early media and the call's audio came through the relay to the phone.
    let ended = wait_until(Duration::from_secs(5), || {
        ob.log().contains("phone: call ended")
    });
    assert!(
        ended && ob.log().contains("disposition=\"answered\""),
        "{}",
        ob.log()
    );
    let b_to_a = ob
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("phone: call ended"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("b_to_a=")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(b_to_a > 50, "{}", ob.log());
}

#[test]
fn a_trunk_named_by_its_domain_finds_its_provider_by_srv_in_the_boxs_own_dns() {
    require_program("kamailio", "kamailio");
    let _serial = serial();
    let port = free_udp_port().unwrap();
    let mut options = ProviderOptions::new("127.0.0.2", ACCOUNT, TRUNK_PASSWORD);
    options.port = port;
    let kam = KamailioProvider::start_on_loopback(&options).expect("kamailio starts");
    // The provider's domain is in the office's zone here (the box's DNS answers it with
    // no upstream): SRV to sip.provider on the provider's port, and its address.
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[dns.records]]\nname = \"_sip._udp.provider\"\ntype = \"SRV\"\n\
         value = \"10 5 {port} sip.provider\"\n\n\
         [[dns.records]]\nname = \"sip.provider\"\ntype = \"A\"\nvalue = \"127.0.0.2\"\n\n\
         [[phone.trunks]]\nname = \"main\"\nserver = \"provider.office.test\"\n\
         username = \"{ACCOUNT}\"\npassword = \"{TRUNK_PASSWORD}\"\n"
    ));
    let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
    let cli = || run_cli(&ob, &["phone", "trunks"]);
    let registered = wait_until(Duration::from_secs(15), || {
        cli()
            .lines()
            .any(|l| l.starts_with("main ") && l.contains("registered"))
    });
    assert!(registered, "{}\n{}\n{}", cli(), ob.log(), kam.log());
    // The provider was found where the SRV record says (its port, the target's address).
    let ok = wait_until(Duration::from_secs(5), || {
        ob.log().contains("phone: trunk registered")
    });
    let line = cli();
    eprintln!("{line}");
    assert!(
        ok && line.contains("provider.office.test"),
        "{line}\n{}",
        ob.log()
    );
}

#[test]
fn a_trunk_over_tls_checks_the_providers_certificate_registers_and_carries_a_call() {
    require_program("baresip", "baresip");
    require_program("kamailio", "kamailio");
    let _serial = serial();
    let mut options = ProviderOptions::new("127.0.0.2", ACCOUNT, TRUNK_PASSWORD);
    options.port = free_udp_port().unwrap();
    let tls = officebox_testkit::free_tcp_port().unwrap();
    options.tls_port = Some(tls);
    options.phones = vec![(OUTSIDE.into(), OUTSIDE_PASSWORD.into())];
    let kam = KamailioProvider::start_on_loopback(&options).expect("kamailio starts");
    let provider = SocketAddr::from(([127, 0, 0, 2], options.port));
    // The provider's certificate is its own (self-signed, for 127.0.0.2): trusted by the
    // trunk's CA file, and by nothing else.
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[phone.trunks]]\nname = \"secure\"\nserver = \"127.0.0.2:{tls}\"\ntransport = \"tls\"\n\
         ca_file = \"{}\"\nusername = \"{ACCOUNT}\"\npassword = \"{TRUNK_PASSWORD}\"\n\n\
         [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"secure\"]\n",
        kam.tls_cert().display()
    ));
    let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
    let trunks = || run_cli(&ob, &["phone", "trunks"]);
    let registered = wait_until(Duration::from_secs(15), || {
        trunks()
            .lines()
            .any(|l| l.starts_with("secure ") && l.contains("registered"))
    });
    assert!(registered, "{}\n{}\n{}", trunks(), ob.log(), kam.log());

    // alice calls the outside phone over the TLS trunk.
    let sip = SocketAddr::from((
        [127, 0, 0, 1],
        u16::try_from(c.int("phone.sip_port")).unwrap(),
    ));
    let alice = Baresip::start(
        "alice",
        &BaresipAccount::new("101", sip)
            .domain("office.test")
            .auth("alice", "demo-alice")
            .max_call(Duration::from_secs(30)),
    )
    .unwrap();
    alice.wait_registered(EVENT_TIMEOUT).unwrap();
    let carol = Baresip::start(
        "carol",
        &BaresipAccount::new(OUTSIDE, provider)
            .auth(OUTSIDE, OUTSIDE_PASSWORD)
            .local_ip(std::net::Ipv4Addr::new(127, 0, 0, 3))
            .auto_answer(true)
            .max_call(Duration::from_secs(30)),
    )
    .unwrap();
    carol.wait_registered(EVENT_TIMEOUT).unwrap();
    alice.dial(&format!("9{OUTSIDE}")).unwrap();
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!("{what}: {e}\n{}\n{}", ob.log(), kam.log())
    };
    alice
        .wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| fail("the call over TLS was not answered", &e));
    carol
        .wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| fail("carol's phone did not answer", &e));
    sleep(Duration::from_secs(1));
    alice.hangup().unwrap();
    carol
        .wait_for_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| fail("the hang-up did not reach carol", &e));
    assert!(
        kam.log()
            .contains(&format!("provider: call on the trunk to {OUTSIDE}")),
        "{}",
        kam.log()
    );

    // Without the CA file the certificate is nobody's the box trusts: no registration,
    // and the trunk says why.
    let untrusted = TestConfig::demo().free_ports().append(&format!(
        "[[phone.trunks]]\nname = \"secure\"\nserver = \"127.0.0.2:{tls}\"\ntransport = \"tls\"\n\
         username = \"{ACCOUNT}\"\npassword = \"{TRUNK_PASSWORD}\"\n"
    ));
    let other = Officebox::start(bin(), &untrusted.text()).expect("officebox starts");
    let status = || run_cli(&other, &["phone", "trunks"]);
    let refused = wait_until(Duration::from_secs(10), || {
        status()
            .lines()
            .any(|l| l.starts_with("secure ") && l.contains("failing") && l.contains("certificate"))
    });
    assert!(refused, "{}\n{}", status(), other.log());
}

#[test]
fn a_call_from_the_trunk_is_transferred_in_the_office_and_an_office_call_out_to_the_trunk() {
    let _serial = serial();
    let dir = scratch_dir("trunk-transfer").unwrap();
    let (alice_says, alice_plays) = sentence_after(
        dir.path(),
        "alice",
        "Alice takes the customer's order.",
        3.0,
    );
    let (bob_says, bob_plays) =
        sentence_after(dir.path(), "bob", "Bob asks about the delivery date.", 3.0);
    let (carol_says, carol_plays) = sentence_after(
        dir.path(),
        "carol",
        "Carol from outside wants twelve more chairs.",
        3.0,
    );
    let world = World::start(|c| c);
    let alice = world.office_phone("alice", "101", "alice", Some(&alice_plays));
    let bob = world.office_phone("bob", "102", "bob", Some(&bob_plays));
    let carol = world.outside_phone(&carol_plays);

    // From the trunk: carol dials bob's DID, bob puts her through to alice.
    let (c, b, a) = (carol.mark(), bob.mark(), alice.mark());
    carol.dial(DID_BOB).unwrap();
    let started = world.event(&carol, c, "CALL_ESTABLISHED").received;
    world.event(&bob, b, "CALL_ESTABLISHED");
    sleep(Duration::from_millis(500));
    bob.command("transfer", Some("101"))
        .unwrap_or_else(|e| world.fail("bob could not transfer", e));
    world.event(&alice, a, "CALL_ESTABLISHED");
    world.event(&bob, b, "CALL_CLOSED");
    let until = started + Duration::from_secs_f64(1.0 + 3.0 + 4.0);
    sleep(until.saturating_duration_since(Instant::now()));
    let (c, a) = (carol.mark(), alice.mark());
    carol.hangup().unwrap();
    world.event(&carol, c, "CALL_CLOSED");
    world.event(&alice, a, "CALL_CLOSED");
    heard(&world, &alice, &carol_says);
    heard(&world, &carol, &alice_says);

    // To the trunk: bob calls alice, alice puts him through to carol's number (an outside
    // call of hers: her route).
    let (c, b, a) = (carol.mark(), bob.mark(), alice.mark());
    bob.dial("101").unwrap();
    let started = world.event(&bob, b, "CALL_ESTABLISHED").received;
    world.event(&alice, a, "CALL_ESTABLISHED");
    sleep(Duration::from_millis(500));
    alice
        .command("transfer", Some(&format!("9{OUTSIDE}")))
        .unwrap_or_else(|e| world.fail("alice could not transfer", e));
    let seen = world.event(&carol, c, "CALL_ESTABLISHED").peer_uri;
    assert!(seen.starts_with(&format!("sip:{ACCOUNT}@")), "{seen}");
    world.event(&alice, a, "CALL_CLOSED");
    let until = started + Duration::from_secs_f64(1.0 + 3.0 + 4.0);
    sleep(until.saturating_duration_since(Instant::now()));
    let (c, b) = (carol.mark(), bob.mark());
    bob.hangup().unwrap();
    world.event(&bob, b, "CALL_CLOSED");
    world.event(&carol, c, "CALL_CLOSED");
    heard(&world, &carol, &bob_says);
    heard(&world, &bob, &carol_says);
    // The call log shows both on the trunk: carol's call in, and bob's call to alice
    // that she sent out.
    let log = world.cli(&["phone", "log"]);
    assert!(
        log.lines()
            .any(|l| l.contains("(in via main)") && l.contains(OUTSIDE))
            && log
                .lines()
                .any(|l| l.contains("102 (Bob Example)") && l.contains("via main)")),
        "{log}"
    );
}
