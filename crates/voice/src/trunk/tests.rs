//! The trunk client on tokio's paused clock, against a provider played by the test: the
//! digest answer, refreshes at 85% of what was granted, retransmissions and backoff,
//! refused passwords retried slowly, 423, un-REGISTER at the end, and the manager
//! following reloads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use officebox_config::model::{Trunk, TrunkKind, TrunkTransport};
use officebox_store::{TrunkState, TrunkStatus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::register::via_host;
use super::*;
use crate::digest::{self, Algorithm, Authenticator, Verdict, parse_credentials};
use crate::sip::Message;

/// Records what the client sends (with when), from the WAN address; keep-alives apart.
struct FakeWire {
    sent: mpsc::UnboundedSender<(Instant, Message, SocketAddr)>,
    keepalives: Arc<Mutex<Vec<Instant>>>,
}

impl TrunkWire for FakeWire {
    fn local_for(&self, _to: SocketAddr, _t: Transport) -> io::Result<SocketAddr> {
        Ok("198.51.100.2:5060".parse().unwrap())
    }

    fn send(
        &self,
        bytes: Vec<u8>,
        to: SocketAddr,
        _t: Transport,
        _tls: Option<super::TlsPeer>,
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        if bytes == b"\r\n\r\n" {
            self.keepalives.lock().unwrap().push(Instant::now());
            return Box::pin(async { Ok(()) });
        }
        let msg = Message::parse(&bytes).expect("the client sends what parses");
        let _ = self.sent.send((Instant::now(), msg, to));
        Box::pin(async { Ok(()) })
    }
}

#[derive(Default)]
struct Statuses(Mutex<Vec<TrunkStatus>>);

impl StatusSink for Statuses {
    fn report(&self, status: TrunkStatus) {
        self.0.lock().unwrap().push(status);
    }
    fn retain(&self, names: Vec<String>) {
        self.0.lock().unwrap().retain(|s| names.contains(&s.name));
    }
}

impl Statuses {
    fn last(&self, name: &str) -> TrunkStatus {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no status for {name}"))
    }
}

/// The provider's side of the test.
struct Provider {
    sent: mpsc::UnboundedReceiver<(Instant, Message, SocketAddr)>,
    inbox: Arc<Inbox>,
    status: Arc<Statuses>,
    auth: Authenticator,
    keepalives: Arc<Mutex<Vec<Instant>>>,
}

impl Provider {
    fn new() -> (Provider, Context) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = Arc::new(Inbox::default());
        let status = Arc::new(Statuses::default());
        let keepalives = Arc::new(Mutex::new(Vec::new()));
        let ctx = Context {
            wire: Arc::new(FakeWire {
                sent: tx,
                keepalives: Arc::clone(&keepalives),
            }),
            inbox: Arc::clone(&inbox),
            status: Arc::clone(&status) as Arc<dyn StatusSink>,
            providers: Arc::default(),
            dns: Arc::default(),
        };
        let provider = Provider {
            sent: rx,
            inbox,
            status,
            auth: Authenticator::new("provider.test"),
            keepalives,
        };
        (provider, ctx)
    }

    /// The next request the box sends, and when.
    async fn next(&mut self) -> (Instant, Message) {
        let (at, msg, to) = self.sent.recv().await.expect("the client sends");
        assert_eq!(to, "203.0.113.5:5060".parse().unwrap());
        (at, msg)
    }

    /// The next request that is not a retransmission of `prev`.
    async fn next_new(&mut self, prev: &Message) -> (Instant, Message) {
        loop {
            let (at, msg) = self.next().await;
            if msg.branch() != prev.branch() {
                return (at, msg);
            }
        }
    }

    fn answer(&self, req: &Message, code: u16, reason: &str, extra: &[(&str, String)]) {
        let mut r = req.response(code, reason, "prov");
        for (n, v) in extra {
            r.push(n, v.clone());
        }
        // As it arrives: parsed from the wire.
        let r = Message::parse(&r.to_bytes()).unwrap();
        assert!(self.inbox.deliver(&r), "the client waits for this response");
    }

    fn challenge(&self, req: &Message) {
        let extra: Vec<(&str, String)> = self
            .auth
            .challenges(false)
            .into_iter()
            .map(|c| ("WWW-Authenticate", c))
            .collect();
        self.answer(req, 401, "Unauthorized", &extra);
    }

    /// Whether `req`'s credentials are right for `password`, and with which algorithm.
    fn check(&self, req: &Message, password: &str) -> (Verdict, String) {
        let c =
            parse_credentials(req.header("authorization").expect("answers the challenge")).unwrap();
        let stored = |a: Algorithm| Some(digest::ha1(a, "4930123456", "provider.test", password));
        (self.auth.verify(&c, "REGISTER", stored), c.algorithm)
    }

    fn ok(&self, req: &Message, expires: u64) {
        let contact = req.header("contact").unwrap();
        let uri = crate::sip::uri_of(contact).unwrap();
        self.answer(
            req,
            200,
            "OK",
            &[("Contact", format!("<{uri}>;expires={expires}"))],
        );
    }
}

fn trunk() -> Trunk {
    Trunk {
        name: "main".into(),
        kind: TrunkKind::Register,
        enabled: true,
        server: "203.0.113.5".into(),
        username: Some("4930123456".into()),
        password: Some("right".into()),
        auth_username: None,
        outbound_proxy: None,
        transport: TrunkTransport::Udp,
        expires: Duration::from_secs(3600),
        addresses: Vec::new(),
        max_calls: 0,
        codecs: vec!["PCMU".into()],
        identity: officebox_config::model::TrunkIdentity::Pai,
        ca_file: None,
        t38: officebox_config::model::T38Mode::On,
    }
}

fn start(t: Trunk, ctx: Context) -> (watch::Sender<Option<Ending>>, tokio::task::JoinHandle<()>) {
    let (stop, stop_rx) = watch::channel(None);
    (stop, tokio::spawn(register::run(t, ctx, stop_rx)))
}

/// Lets the client's task run until it waits again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn registers_with_sha256_and_refreshes_at_85_percent_of_the_granted_time() {
    let (mut p, ctx) = Provider::new();
    let (_stop, _task) = start(trunk(), ctx);
    let (t0, first) = p.next().await;
    assert_eq!(p.status.last("main").state, TrunkState::Registering);
    assert!(first.header("authorization").is_none());
    assert_eq!(first.header("expires"), Some("3600"));
    assert_eq!(
        first.start,
        StartLine::Request {
            method: crate::sip::Method::Register,
            uri: "sip:203.0.113.5".into()
        }
    );
    assert_eq!(first.header("to"), Some("<sip:4930123456@203.0.113.5>"));
    assert_eq!(
        first.header("contact"),
        Some("<sip:4930123456@198.51.100.2:5060>;expires=3600")
    );
    assert_eq!(via_host(&first), "198.51.100.2:5060");
    p.challenge(&first);
    let (_, second) = p.next_new(&first).await;
    assert_eq!(second.call_id(), first.call_id(), "one Call-ID");
    assert_eq!(second.cseq().unwrap().0, first.cseq().unwrap().0 + 1);
    let (verdict, algorithm) = p.check(&second, "right");
    assert_eq!(verdict, Verdict::Ok);
    assert_eq!(algorithm, "SHA-256", "SHA-256 chosen over MD5");
    // The provider grants less than asked: the client goes by the grant.
    p.ok(&second, 60);
    settle().await;
    let s = p.status.last("main");
    assert_eq!(s.state, TrunkState::Registered);
    assert_eq!(s.detail, "sip:4930123456@198.51.100.2:5060");
    let (t1, refresh) = p.next_new(&second).await;
    assert_eq!(t1 - t0, Duration::from_secs(51), "85% of 60 s");
    // Meanwhile the flow is kept open with a keep-alive every 25 s.
    let keepalives: Vec<u64> = p
        .keepalives
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - t0).as_secs())
        .collect();
    assert_eq!(keepalives, [25, 50]);
    // The refresh answers the challenge it has (nonce count 2): one round trip.
    assert!(
        refresh
            .header("authorization")
            .unwrap()
            .contains("nc=00000002"),
        "{refresh:?}"
    );
    assert_eq!(p.check(&refresh, "right").0, Verdict::Ok);
    p.ok(&refresh, 60);
    let (t2, _) = p.next_new(&refresh).await;
    assert_eq!(t2 - t1, Duration::from_secs(51));
}

#[tokio::test(start_paused = true)]
async fn no_answer_is_retransmitted_then_retried_with_a_doubling_backoff() {
    let (mut p, ctx) = Provider::new();
    let (_stop, _task) = start(trunk(), ctx);
    let (t0, first) = p.next().await;
    // Retransmissions at T1 doubling to T2 until Timer F (32 s).
    let mut at = Vec::new();
    let (next_at, next) = loop {
        let (t, m) = p.next().await;
        if m.branch() != first.branch() {
            break (t, m);
        }
        at.push((t - t0).as_millis());
    };
    assert_eq!(
        at,
        [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    let s = p.status.last("main");
    assert_eq!(s.state, TrunkState::Failing);
    assert_eq!(s.last_code, None);
    assert!(
        s.last_reason
            .unwrap()
            .contains("no answer from 203.0.113.5:5060")
    );
    assert_eq!(
        next_at - t0,
        Duration::from_secs(32 + 30),
        "first retry after 30 s"
    );
    let mut prev = next;
    let mut prev_at = next_at;
    for wait in [60, 120, 240, 480, 600, 600] {
        let (t, m) = p.next_new(&prev).await;
        assert_eq!(t - prev_at, Duration::from_secs(32 + wait));
        (prev, prev_at) = (m, t);
    }
    // A 503 with Retry-After: after that, and then the backoff starts again from 30 s.
    p.answer(
        &prev,
        503,
        "Service Unavailable",
        &[("Retry-After", "90".into())],
    );
    let (t, m) = p.next_new(&prev).await;
    assert_eq!(t - prev_at, Duration::from_secs(90));
    p.challenge(&m);
    let (_, m) = p.next_new(&m).await;
    p.ok(&m, 3600);
    settle().await;
    assert_eq!(p.status.last("main").state, TrunkState::Registered);
    assert_eq!(p.inbox.len(), 0, "no transaction left waiting");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_password_is_reported_and_retried_slowly() {
    let (mut p, ctx) = Provider::new();
    let mut t = trunk();
    t.password = Some("wrong".into());
    let (_stop, _task) = start(t, ctx);
    let (t0, first) = p.next().await;
    p.challenge(&first);
    let (_, second) = p.next_new(&first).await;
    assert_eq!(p.check(&second, "right").0, Verdict::Wrong);
    // A provider challenges wrong credentials again (kamailio) or says 403.
    p.challenge(&second);
    settle().await;
    let s = p.status.last("main");
    assert_eq!(s.state, TrunkState::Failing);
    assert_eq!(s.last_code, Some(401));
    assert_eq!(
        s.last_reason.as_deref(),
        Some("Unauthorized (the provider refused the user name or password)")
    );
    let (t1, third) = p.next_new(&second).await;
    assert_eq!(t1 - t0, Duration::from_secs(600), "not hammered");
    p.answer(&third, 403, "Forbidden", &[]);
    settle().await;
    let s = p.status.last("main");
    assert_eq!(
        (s.last_code, s.last_reason.as_deref()),
        (Some(403), Some("Forbidden"))
    );
    let (t2, _) = p.next_new(&third).await;
    assert_eq!(t2 - t1, Duration::from_secs(600));
}

#[tokio::test(start_paused = true)]
async fn interval_too_brief_is_answered_with_the_minimum_asked() {
    let (mut p, ctx) = Provider::new();
    let mut t = trunk();
    t.expires = Duration::from_secs(60);
    let (_stop, _task) = start(t, ctx);
    let (t0, first) = p.next().await;
    p.answer(
        &first,
        423,
        "Interval Too Brief",
        &[("Min-Expires", "300".into())],
    );
    let (t1, second) = p.next_new(&first).await;
    assert_eq!(t1, t0, "at once");
    assert_eq!(second.header("expires"), Some("300"));
    p.ok(&second, 300);
    let (t2, third) = p.next_new(&second).await;
    assert_eq!(t2 - t1, Duration::from_secs(255));
    assert_eq!(third.header("expires"), Some("300"), "kept for refreshes");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_trunk_unregisters() {
    let (mut p, ctx) = Provider::new();
    let (stop, task) = start(trunk(), ctx);
    let (_, first) = p.next().await;
    p.ok(&first, 3600);
    settle().await;
    stop.send(Some(Ending::Shutdown)).unwrap();
    let (_, bye) = p.next_new(&first).await;
    assert_eq!(bye.header("expires"), Some("0"));
    assert_eq!(
        bye.header("contact"),
        Some("<sip:4930123456@198.51.100.2:5060>;expires=0")
    );
    p.challenge(&bye);
    let (_, bye) = p.next_new(&bye).await;
    assert_eq!(p.check(&bye, "right").0, Verdict::Ok);
    p.answer(&bye, 200, "OK", &[]);
    task.await.unwrap();
    let s = p.status.last("main");
    assert_eq!(s.state, TrunkState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_unregister_ends_within_its_deadline() {
    let (mut p, ctx) = Provider::new();
    let (stop, task) = start(trunk(), ctx);
    let (_, first) = p.next().await;
    p.ok(&first, 3600);
    settle().await;
    let t0 = Instant::now();
    stop.send(Some(Ending::Shutdown)).unwrap();
    task.await.unwrap();
    assert!(Instant::now() - t0 <= UNREGISTER_WITHIN);
}

fn config(trunks: &str) -> Arc<officebox_config::Config> {
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
    let text = format!(
        "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
         [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n{trunks}"
    );
    Arc::new(officebox_config::parse("t.toml", &text).unwrap())
}

const MAIN: &str = "[[phone.trunks]]\nname = \"main\"\nserver = \"203.0.113.5\"\n\
                    username = \"4930123456\"\npassword = \"PASSWORD\"\n";
const IP: &str = "[[phone.trunks]]\nname = \"other\"\nkind = \"ip\"\nserver = \"203.0.113.9\"\n\
                  addresses = [\"203.0.113.9\", \"198.51.100.0/24\"]\n";

#[tokio::test(start_paused = true)]
async fn reloads_reregister_changed_trunks_and_unregister_removed_ones() {
    let (mut p, ctx) = Provider::new();
    let (tx, rx) = watch::channel(config(&format!(
        "{}{IP}",
        MAIN.replace("PASSWORD", "wrong")
    )));
    let stop = CancellationToken::new();
    let manager = tokio::spawn(run(rx, ctx, stop.clone()));
    let (_, first) = p.next().await;
    let s = p.status.last("other");
    assert_eq!(s.state, TrunkState::Ip);
    assert_eq!(s.detail, "accepts calls from: 203.0.113.9, 198.51.100.0/24");
    p.challenge(&first);
    let (_, second) = p.next_new(&first).await;
    p.challenge(&second);
    settle().await;
    assert_eq!(p.status.last("main").state, TrunkState::Failing);
    // The password fixed: a new registration at once (nothing to un-REGISTER).
    tx.send(config(&MAIN.replace("PASSWORD", "right"))).unwrap();
    let (_, fresh) = p.next_new(&second).await;
    assert_ne!(fresh.call_id(), first.call_id(), "a new registration");
    assert!(fresh.header("authorization").is_none());
    p.challenge(&fresh);
    let (_, fresh2) = p.next_new(&fresh).await;
    assert_eq!(p.check(&fresh2, "right").0, Verdict::Ok);
    p.ok(&fresh2, 3600);
    settle().await;
    assert_eq!(p.status.last("main").state, TrunkState::Registered);
    assert!(
        p.status.0.lock().unwrap().iter().all(|s| s.name != "other"),
        "the removed IP trunk is forgotten"
    );
    // The trunk removed: un-REGISTERed.
    tx.send(config("")).unwrap();
    let (_, bye) = p.next_new(&fresh2).await;
    assert_eq!(bye.header("expires"), Some("0"));
    assert!(
        bye.header("authorization").is_some(),
        "answers the known challenge"
    );
    p.answer(&bye, 200, "OK", &[]);
    settle().await;
    assert!(p.status.0.lock().unwrap().is_empty(), "nothing left");
    stop.cancel();
    manager.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_outbound_proxy_gets_the_requests_and_the_auth_username_signs_in() {
    let (mut p, ctx) = Provider::new();
    let mut t = trunk();
    t.server = "provider.test:5070".into();
    t.outbound_proxy = Some("203.0.113.5".into());
    t.auth_username = Some("auth-4930".into());
    let (_stop, _task) = start(t, ctx);
    // `next` checks that it goes to the proxy (203.0.113.5:5060), not to provider.test.
    let (_, first) = p.next().await;
    assert_eq!(
        first.start,
        StartLine::Request {
            method: crate::sip::Method::Register,
            uri: "sip:provider.test:5070".into()
        }
    );
    assert_eq!(first.header("to"), Some("<sip:4930123456@provider.test>"));
    assert_eq!(first.header("route"), Some("<sip:203.0.113.5;lr>"));
    p.challenge(&first);
    let (_, second) = p.next_new(&first).await;
    let c = parse_credentials(second.header("authorization").unwrap()).unwrap();
    assert_eq!(c.username, "auth-4930");
    assert_eq!(c.uri, "sip:provider.test:5070");
    let stored = |a: Algorithm| Some(digest::ha1(a, "auth-4930", "provider.test", "right"));
    assert_eq!(p.auth.verify(&c, "REGISTER", stored), Verdict::Ok);
}
