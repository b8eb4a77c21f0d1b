//! Faxes from email, sent: the mail service queues each fax (`fax_out` in the state
//! database, its pages already a TIFF file) and this sends it.
//!
//! The box's fax machine calls like any fax machine on an ATA would: it is a SIP
//! endpoint of the box's own phone system, on 127.0.0.1, calling the number as the user
//! who mailed the fax. So the call takes the same way as that user's phone calls: the
//! dial plan (routes, the international and premium guards), the user's outside-call
//! limits, the trunks in order with their credentials and caller ID, the call log. The
//! server knows the machine by the loopback address and port it calls from
//! ([`Dialers`]), which only this process holds, and takes it as that user without a
//! password.
//!
//! The pages go over G.711 audio, and over T.38 when the far end switches (its
//! re-INVITE, carried across by the call) or, with the trunk's `t38 = "offered"`, when
//! the box asks and the far end agrees. Busy, no answer or a fax that failed before its
//! first page are tried again (`phone.fax_attempts` in all, `phone.fax_retry_after`
//! apart); a number
//! the dial plan refuses is not. The sender gets a report either way, with the first
//! page small, and the fax is in the fax log.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use officebox_config::Config;
use officebox_config::dialplan::Outbound;
use officebox_config::model::T38Mode;
use officebox_fax::Outcome;
use officebox_fax::udptl::MAX_DATAGRAM;
use officebox_store::{Db, FaxEntry, FaxOut, Maildir, mailbox_path};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::fax::{FaxLink, T38Far};
use crate::media::{Endpoint, Socket};
use crate::sdp;
use crate::sip::{Message, Method, StartLine, uri_of};

/// Faxes sent at once at most (each holds an outside line).
const AT_ONCE: usize = 4;
/// How often the queue is looked at.
const POLL: Duration = Duration::from_secs(2);
/// How long the far end may ring before the fax counts as not answered.
const RING: Duration = Duration::from_secs(90);
/// SIP's T1: the first retransmission interval over UDP.
const T1: Duration = Duration::from_millis(500);

/// The box's fax machines calling now: the address each calls from, and as whom.
#[derive(Debug, Default)]
pub struct Dialers {
    by_source: Mutex<HashMap<SocketAddr, String>>,
}

impl Dialers {
    /// The user a call from `source` is made for, if it is one of the box's fax machines
    /// (only ever a loopback address, which nothing outside can send from).
    pub fn login_of(&self, source: SocketAddr) -> Option<String> {
        if !source.ip().is_loopback() {
            return None;
        }
        self.by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&source)
            .cloned()
    }

    fn add(&self, source: SocketAddr, login: &str) {
        self.by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source, login.to_string());
    }

    fn remove(&self, source: SocketAddr) {
        self.by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&source);
    }
}

/// What the fax service needs of the phone service.
#[derive(Debug, Clone)]
pub struct Context {
    pub db: Arc<Mutex<Db>>,
    /// Where the SIP server listens (a loopback address when it listens on all).
    pub server: SocketAddr,
    pub dialers: Arc<Dialers>,
}

/// Sends the queued faxes until `shutdown`.
pub async fn run(
    config_rx: watch::Receiver<Arc<Config>>,
    ctx: Context,
    shutdown: CancellationToken,
) {
    let mut running: HashSet<i64> = HashSet::new();
    let mut tasks: JoinSet<i64> = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = tasks.join_next() => {
                if let Ok(id) = done {
                    running.remove(&id);
                }
                continue;
            }
            () = tokio::time::sleep(POLL) => {}
        }
        if running.len() >= AT_ONCE {
            continue;
        }
        let db = Arc::clone(&ctx.db);
        let now = officebox_store::unix_now();
        let due = tokio::task::spawn_blocking(move || {
            db.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .due_faxes(now)
        })
        .await;
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(error)) => {
                warn!(message = "fax: cannot read the queue", %error);
                continue;
            }
            Err(_) => continue,
        };
        for job in due {
            if running.len() >= AT_ONCE {
                break;
            }
            if !running.insert(job.id) {
                continue;
            }
            let config = Arc::clone(&config_rx.borrow());
            let (ctx, stop) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move {
                let id = job.id;
                attempt(&config, &ctx, job, stop).await;
                id
            });
        }
    }
    // A fax cut off by the shutdown is tried again at the next start.
    tasks.shutdown().await;
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// The call was answered and the machines did what they could.
    Faxed(Outcome),
    /// The call was not answered: the code and words of the answer (0: no answer in
    /// time, or the box's own failure).
    NotAnswered(u16, String),
}

impl Attempt {
    /// Whether another attempt may do better (busy, no answer, a fax that failed
    /// before its first page).
    fn worth_again(&self) -> bool {
        match self {
            Attempt::Faxed(o) => !o.success() && o.pages_sent == 0,
            Attempt::NotAnswered(code, _) => {
                matches!(code, 0 | 408 | 480 | 486 | 487 | 500 | 503 | 600 | 603)
            }
        }
    }

    fn words(&self) -> String {
        match self {
            Attempt::Faxed(o) if o.success() => "sent".to_string(),
            Attempt::Faxed(o) => format!("the fax failed: {}", o.reason),
            Attempt::NotAnswered(486 | 600, _) => "the line was busy".to_string(),
            Attempt::NotAnswered(0 | 408 | 480 | 487, _) => "no answer".to_string(),
            Attempt::NotAnswered(403, why) => format!("the call was not allowed ({why})"),
            Attempt::NotAnswered(404 | 484 | 604, _) => "no such number".to_string(),
            Attempt::NotAnswered(code, why) => format!("the call failed ({code} {why})"),
        }
    }
}

/// One attempt at `job`: the call, then the report and the queue's note.
async fn attempt(config: &Config, ctx: &Context, job: FaxOut, stop: CancellationToken) {
    let user = config.users.iter().find(|u| u.login == job.login);
    let result = match user {
        None => Attempt::NotAnswered(403, "the sender is no longer a user here".to_string()),
        Some(_) => {
            let ident = config
                .phone
                .dial_plan
                .faxes
                .iter()
                .find(|f| f.to == job.login)
                .map(|f| f.ident.clone())
                .unwrap_or_default();
            let mode = t38_mode(config, &job.login, &job.number);
            info!(message = "fax: dialling", from = %job.login, to = %job.number, attempt = job.attempts + 1);
            call(config, ctx, &job, &ident, mode, stop.clone()).await
        }
    };
    if stop.is_cancelled() {
        return;
    }
    let attempts = job.attempts + 1;
    let again = result.worth_again() && attempts < config.phone.fax_attempts && user.is_some();
    let retry_after = config.phone.fax_retry_after;
    let words = result.words();
    info!(message = "fax: attempt over", from = %job.login, to = %job.number, attempt = attempts, result = %words, again);
    let (config, db) = (config.clone(), Arc::clone(&ctx.db));
    let _ = tokio::task::spawn_blocking(move || {
        let db = db.lock().unwrap_or_else(PoisonError::into_inner);
        if let Attempt::Faxed(o) = &result {
            log(&db, &job, o);
        }
        if again {
            let next =
                officebox_store::unix_now() + i64::try_from(retry_after.as_secs()).unwrap_or(300);
            if let Err(error) = db.fax_attempted(job.id, next, &words) {
                warn!(message = "fax: cannot note the attempt", %error);
            }
            return;
        }
        // The report first: a fax is out of the queue only once its sender can know.
        match report(&config, &job, &result, attempts) {
            Ok(()) => {
                if let Err(error) = db.fax_finished(job.id) {
                    warn!(message = "fax: cannot take it out of the queue", %error);
                }
                let _ = std::fs::remove_file(&job.file);
                if let Some(p) = &job.preview {
                    let _ = std::fs::remove_file(p);
                }
            }
            Err(error) => warn!(message = "fax: the report is not delivered; kept", %error),
        }
    })
    .await;
}

/// Whether the call may go over to T.38: the setting of the trunk the dial plan would
/// use first (`On` for a call that stays inside).
fn t38_mode(config: &Config, login: &str, number: &str) -> T38Mode {
    let first = match config.phone.dial_plan.outbound(login, number) {
        Outbound::Route { route, .. } => route.trunks.first().cloned(),
        _ => None,
    };
    first
        .and_then(|name| config.phone.trunks.iter().find(|t| t.name == name))
        .map_or(T38Mode::On, |t| t.t38)
}

fn log(db: &Db, job: &FaxOut, o: &Outcome) {
    let entry = FaxEntry {
        at: officebox_store::unix_now(),
        outgoing: true,
        caller: job.sender.clone(),
        station: o.remote_ident.clone(),
        number: job.number.clone(),
        login: job.login.clone(),
        pages: o.pages_sent,
        complete: o.pages_sent,
        code: o.code,
        reason: o.reason.clone(),
        seconds: u32::try_from(o.duration.as_secs()).unwrap_or(u32::MAX),
    };
    if let Err(error) = db.add_fax(&entry) {
        warn!(message = "fax: not logged", %error);
    }
}

/// The report to the sender, into their own mailbox: sent or not, and why; the first
/// page small.
fn report(config: &Config, job: &FaxOut, result: &Attempt, attempts: u32) -> std::io::Result<()> {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(200).collect() };
    let about = if job.subject.is_empty() {
        String::new()
    } else {
        format!(" (\"{}\")", clean(&job.subject))
    };
    let tries = format!("{attempts} attempt{}", if attempts == 1 { "" } else { "s" });
    let (subject, mut text) = match result {
        Attempt::Faxed(o) if o.success() => (
            format!("Fax to {} sent", job.number),
            format!(
                "Your fax to {}{about} was sent: {} page{}, received by {}.\r\n\r\n\
                 Speed:        {} bit/s{}\r\n\
                 Call time:    {}:{:02}\r\n\
                 Attempts:     {attempts}\r\n",
                job.number,
                o.pages_sent,
                if o.pages_sent == 1 { "" } else { "s" },
                if o.remote_ident.trim().is_empty() {
                    "the far machine".to_string()
                } else {
                    format!("\"{}\"", clean(o.remote_ident.trim()))
                },
                o.bit_rate,
                if o.ecm { ", error correction on" } else { "" },
                o.duration.as_secs() / 60,
                o.duration.as_secs() % 60,
            ),
        ),
        Attempt::Faxed(o) => (
            format!("Fax to {} NOT sent", job.number),
            format!(
                "Your fax to {}{about} was not sent after {tries}: {}.\r\n\r\n\
                 Pages the far machine took: {} of {}\r\n\
                 T.30 result:  {} ({})\r\n",
                job.number,
                result.words(),
                o.pages_sent,
                job.pages,
                o.code.map_or_else(|| "-".to_string(), |c| c.to_string()),
                clean(&o.reason),
            ),
        ),
        Attempt::NotAnswered(..) => (
            format!("Fax to {} NOT sent", job.number),
            format!(
                "Your fax to {}{about} was not sent after {tries}: {}.\r\n",
                job.number,
                result.words()
            ),
        ),
    };
    let preview = job
        .preview
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .filter(|b| !b.is_empty());
    if preview.is_some() {
        text.push_str("\r\nThe first page is attached, small.\r\n");
    }
    let domain = &config.network.domain;
    let mut mail = MessageBuilder::new()
        .from(Address::new_address(
            Some("Fax"),
            format!("postmaster@{domain}"),
        ))
        .to(Address::new_address(None::<&str>, job.sender.clone()))
        .subject(subject)
        .header(
            "Date",
            Raw::new(officebox_store::date::rfc5322_date(SystemTime::now())),
        )
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(text);
    if let Some(png) = preview {
        mail = mail.attachment("image/png", "page-1.png", png);
    }
    let bytes = mail.write_to_vec()?;
    Maildir::open(&mailbox_path(&config.data_dir, &job.login))
        .and_then(|m| m.deliver(&bytes))
        .map(|_| ())
        .map_err(std::io::Error::other)
}

/// The call: dialled through the box's own SIP server as the user, the pages sent once
/// it is answered.
async fn call(
    config: &Config,
    ctx: &Context,
    job: &FaxOut,
    ident: &str,
    mode: T38Mode,
    stop: CancellationToken,
) -> Attempt {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (sip, rtp) = match (
        UdpSocket::bind((loopback, 0)).await,
        UdpSocket::bind((loopback, 0)).await,
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => return Attempt::NotAnswered(0, format!("no socket: {e}")),
    };
    let (Ok(local), Ok(media)) = (sip.local_addr(), rtp.local_addr()) else {
        return Attempt::NotAnswered(0, "no socket address".to_string());
    };
    ctx.dialers.add(local, &job.login);
    let mut ua = Ua {
        sip,
        server: ctx.server,
        local,
        call_id: format!("{}@officebox-fax", crate::call::token()),
        from: format!(
            "<sip:{}@{}>;tag={}",
            job.login,
            config.network.domain,
            crate::call::token()
        ),
        to: format!("<sip:{}@{}>", job.number, config.network.domain),
        target: format!("sip:{}@{}", job.number, ctx.server),
        cseq: 1,
        route: Vec::new(),
    };
    let result = ua.fax(job, ident, mode, rtp, media, stop).await;
    ctx.dialers.remove(local);
    result
}

/// The fax machine's side of its SIP dialog with the box's server.
struct Ua {
    sip: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    call_id: String,
    /// Our From (with our tag), and To (with the far end's once answered).
    from: String,
    to: String,
    /// The Request-URI of requests in the dialog (the far end's Contact once answered).
    target: String,
    cseq: u32,
    route: Vec<String>,
}

impl Ua {
    fn request(&self, method: &Method, cseq: u32, branch: &str, body: Option<&[u8]>) -> Message {
        let mut m = Message {
            start: StartLine::Request {
                method: method.clone(),
                uri: self.target.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push(
            "Via",
            format!("SIP/2.0/UDP {};branch={branch};rport", self.local),
        );
        m.push("Max-Forwards", "70");
        for r in &self.route {
            m.push("Route", r.clone());
        }
        m.push("From", self.from.clone());
        m.push("To", self.to.clone());
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{cseq} {method}"));
        m.push("Contact", format!("<sip:fax@{}>", self.local));
        m.push("User-Agent", "officebox fax");
        if let Some(b) = body {
            m.push("Content-Type", "application/sdp");
            m.body = b.to_vec();
        }
        m
    }

    async fn send(&self, m: &Message) {
        let _ = self.sip.send_to(&m.to_bytes(), self.server).await;
    }

    /// The next message from the server, until `by`.
    async fn next(&self, by: tokio::time::Instant) -> Option<Message> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let r = tokio::time::timeout_at(by, self.sip.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = r else {
                return None;
            };
            if from.ip() != self.server.ip() {
                continue;
            }
            if let Ok(m) = Message::parse(buf.get(..n).unwrap_or_default())
                && m.call_id() == self.call_id
            {
                return Some(m);
            }
        }
    }

    /// Answers a request of the server's with `code` (and `body`).
    async fn answer(&self, req: &Message, code: u16, reason: &str, body: Option<Vec<u8>>) {
        let mut r = req.response(code, reason, "");
        if let Some(b) = body {
            r.push("Contact", format!("<sip:fax@{}>", self.local));
            r.push("Content-Type", "application/sdp");
            r.body = b;
        }
        self.send(&r).await;
    }

    /// The call and the fax.
    async fn fax(
        &mut self,
        job: &FaxOut,
        ident: &str,
        mode: T38Mode,
        rtp: UdpSocket,
        media: SocketAddr,
        stop: CancellationToken,
    ) -> Attempt {
        let offer = offer(media);
        let branch = crate::call::branch();
        let invite = self.request(&Method::Invite, 1, &branch, Some(&offer));
        self.send(&invite).await;
        let ring_until = tokio::time::Instant::now() + RING;
        let mut resend = tokio::time::Instant::now() + T1;
        let mut provisional = false;
        let answer = loop {
            let by = if provisional {
                ring_until
            } else {
                resend.min(ring_until)
            };
            let got = tokio::select! {
                () = stop.cancelled() => None,
                m = self.next(by) => m,
            };
            let Some(m) = got else {
                if stop.is_cancelled() || tokio::time::Instant::now() >= ring_until {
                    self.cancel(&branch).await;
                    return Attempt::NotAnswered(0, "no answer".to_string());
                }
                self.send(&invite).await;
                resend += T1;
                continue;
            };
            let StartLine::Response { code, reason } = &m.start else {
                continue;
            };
            if m.cseq().is_none_or(|(_, method)| method != Method::Invite) {
                continue;
            }
            match *code {
                100..=199 => provisional = true,
                200..=299 => break m,
                code => {
                    // A final refusal is acknowledged in the same transaction.
                    self.to = m.header("to").unwrap_or(&self.to).to_string();
                    let ack = self.request(&Method::Ack, 1, &branch, None);
                    self.send(&ack).await;
                    return Attempt::NotAnswered(code, reason.clone());
                }
            }
        };
        self.to = answer.header("to").unwrap_or(&self.to).to_string();
        if let Some(contact) = answer.header("contact").and_then(uri_of) {
            self.target = contact.to_string();
        }
        self.route = answer.values("record-route").map(str::to_string).collect();
        self.route.reverse();
        let ack = self.request(&Method::Ack, 1, &crate::call::branch(), None);
        self.send(&ack).await;
        let Some(negotiated) = crate::media::negotiate(&answer.body) else {
            self.bye().await;
            return Attempt::NotAnswered(488, "no G.711 audio in the answer".to_string());
        };
        let ep = Endpoint::new(Socket::Plain(rtp), negotiated, mpsc::unbounded_channel().1);
        let link = Arc::new(FaxLink::default());
        let hangup = CancellationToken::new();
        let machine = {
            let (file, ident, link, hangup) = (
                job.file.clone(),
                ident.to_string(),
                Arc::clone(&link),
                hangup.clone(),
            );
            let who = job.login.clone();
            tokio::spawn(async move {
                crate::fax::send(ep, &file, &ident, hangup, &link, &who)
                    .await
                    .0
            })
        };
        if mode == T38Mode::Offered {
            self.cseq += 1;
            let re = self.request(
                &Method::Invite,
                self.cseq,
                &crate::call::branch(),
                Some(&sdp::t38_description(
                    media.ip(),
                    media.port(),
                    MAX_DATAGRAM,
                    None,
                )),
            );
            self.send(&re).await;
        }
        let far_hung_up = self
            .during(&machine, &link, &hangup, mode, media, &answer, &stop)
            .await;
        hangup.cancel();
        let outcome = machine.await;
        if !far_hung_up {
            self.bye().await;
        }
        match outcome {
            Ok(Ok(o)) => Attempt::Faxed(o),
            Ok(Err(e)) => Attempt::NotAnswered(0, format!("the fax machine: {e}")),
            Err(_) => Attempt::NotAnswered(0, "the fax machine stopped".to_string()),
        }
    }

    /// The dialog while the machines talk: the far end's re-INVITE to T.38 (taken unless
    /// the trunk keeps faxes on audio), the answer to ours, its BYE. `true`: the far end
    /// hung up.
    #[allow(clippy::too_many_arguments)]
    async fn during(
        &mut self,
        machine: &tokio::task::JoinHandle<Result<Outcome, officebox_fax::FaxError>>,
        link: &FaxLink,
        hangup: &CancellationToken,
        mode: T38Mode,
        media: SocketAddr,
        answer: &Message,
        stop: &CancellationToken,
    ) -> bool {
        let forever = tokio::time::Instant::now() + crate::fax::MAX_CALL;
        loop {
            if machine.is_finished() {
                return false;
            }
            let by = tokio::time::Instant::now() + Duration::from_millis(200);
            let got = tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep_until(forever) => return false,
                m = self.next(by) => m,
            };
            let Some(m) = got else { continue };
            match &m.start {
                StartLine::Request { method, .. } => match method {
                    Method::Bye => {
                        self.answer(&m, 200, "OK", None).await;
                        hangup.cancel();
                        return true;
                    }
                    Method::Invite => {
                        let far = sdp::t38(&m.body).map(|t| T38Far {
                            addr: t.addr,
                            max_datagram: t.max_datagram.unwrap_or(MAX_DATAGRAM),
                        });
                        let taken = far.is_some_and(|f| mode != T38Mode::Off && link.switch(f));
                        if taken {
                            let ours = sdp::t38_description(
                                media.ip(),
                                media.port(),
                                MAX_DATAGRAM,
                                Some(&m.body),
                            );
                            self.answer(&m, 200, "OK", Some(ours)).await;
                        } else if far.is_some() {
                            self.answer(&m, 488, "Not Acceptable Here", None).await;
                        } else {
                            // Not T.38 (a refresh): the same audio as before.
                            let n = crate::media::negotiate(&answer.body);
                            let body =
                                n.map(|n| crate::media::answer(media.ip(), media.port(), &n));
                            self.answer(&m, 200, "OK", body).await;
                        }
                    }
                    Method::Ack => {}
                    _ => self.answer(&m, 200, "OK", None).await,
                },
                StartLine::Response { code, .. } => {
                    let Some((cseq, Method::Invite)) = m.cseq() else {
                        continue;
                    };
                    // Our INVITE's 200 again (our ACK lost), or the answer to our offer
                    // of T.38: acknowledged either way.
                    if *code >= 200 {
                        let ack = self.request(&Method::Ack, cseq, &crate::call::branch(), None);
                        self.send(&ack).await;
                    }
                    if cseq > 1
                        && (200..300).contains(code)
                        && let Some(t) = sdp::t38(&m.body)
                    {
                        link.switch(T38Far {
                            addr: t.addr,
                            max_datagram: t.max_datagram.unwrap_or(MAX_DATAGRAM),
                        });
                    }
                }
            }
        }
    }

    /// Gives up ringing: CANCEL, then the 487's ACK.
    async fn cancel(&mut self, branch: &str) {
        let mut cancel = self.request(&Method::Cancel, 1, branch, None);
        cancel
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("contact"));
        self.send(&cancel).await;
        let by = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Some(m) = self.next(by).await {
            if let (StartLine::Response { code, .. }, Some((_, Method::Invite))) =
                (&m.start, m.cseq())
                && *code >= 200
            {
                self.to = m.header("to").unwrap_or(&self.to).to_string();
                let method = if *code < 300 {
                    Method::Bye
                } else {
                    Method::Ack
                };
                if method == Method::Bye {
                    // Answered as we gave up: acknowledged, then hung up.
                    let ack = self.request(&Method::Ack, 1, &crate::call::branch(), None);
                    self.send(&ack).await;
                    self.bye().await;
                } else {
                    let ack = self.request(&Method::Ack, 1, branch, None);
                    self.send(&ack).await;
                }
                return;
            }
        }
    }

    /// Hangs up, waiting a little for the answer (sent again as UDP wants).
    async fn bye(&mut self) {
        self.cseq += 1;
        let bye = self.request(&Method::Bye, self.cseq, &crate::call::branch(), None);
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        let mut wait = T1;
        while tokio::time::Instant::now() < until {
            self.send(&bye).await;
            let by = tokio::time::Instant::now() + wait;
            while let Some(m) = self.next(by).await {
                if let (StartLine::Response { code, .. }, Some((_, Method::Bye))) =
                    (&m.start, m.cseq())
                    && *code >= 200
                {
                    return;
                }
            }
            wait *= 2;
        }
    }
}

/// The machine's offer: G.711 A-law and μ-law (a fax needs nothing else).
fn offer(media: SocketAddr) -> Vec<u8> {
    let ip = media.ip();
    let session = rand::random::<u32>();
    format!(
        "v=0\r\no=officebox {session} {session} IN IP4 {ip}\r\ns=officebox fax\r\n\
         c=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        media.port()
    )
    .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn outcome(pages_sent: u32, code: Option<i32>) -> Outcome {
        Outcome {
            role: officebox_fax::Role::Sender,
            code,
            reason: "x".into(),
            remote_ident: String::new(),
            pages: Vec::new(),
            pages_sent,
            bit_rate: 9600,
            ecm: true,
            duration: Duration::from_secs(30),
            file: std::path::PathBuf::new(),
        }
    }

    #[test]
    fn busy_no_answer_and_a_fax_failed_before_its_first_page_are_tried_again() {
        for code in [0, 408, 480, 486, 487, 503, 600] {
            assert!(
                Attempt::NotAnswered(code, String::new()).worth_again(),
                "{code}"
            );
        }
        for code in [403, 404, 484, 488, 604] {
            assert!(
                !Attempt::NotAnswered(code, String::new()).worth_again(),
                "{code}"
            );
        }
        assert!(Attempt::Faxed(outcome(0, Some(48))).worth_again());
        // A page went: sending it all again would send it twice.
        assert!(!Attempt::Faxed(outcome(1, Some(48))).worth_again());
        assert_eq!(
            Attempt::NotAnswered(486, "Busy Here".into()).words(),
            "the line was busy"
        );
    }

    #[test]
    fn only_a_loopback_address_the_box_holds_is_taken_as_its_fax_machine() {
        let d = Dialers::default();
        let ours: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let lan: SocketAddr = "192.168.1.50:40000".parse().unwrap();
        d.add(ours, "alice");
        d.add(lan, "bob");
        assert_eq!(d.login_of(ours).as_deref(), Some("alice"));
        assert_eq!(d.login_of("127.0.0.1:40001".parse().unwrap()), None);
        assert_eq!(d.login_of(lan), None);
        d.remove(ours);
        assert_eq!(d.login_of(ours), None);
    }
}
