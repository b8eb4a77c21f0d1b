//! One registration trunk's client (RFC 3261 section 10.2): REGISTER the account at the
//! provider, answer its digest challenge, keep the registration fresh, back off after
//! failures, honour 423 Interval Too Brief, and un-REGISTER when the trunk stops.
//!
//! Each REGISTER is a non-INVITE client transaction (RFC 3261 section 17.1.2): over UDP
//! it is sent again at T1 = 500 ms doubling to T2 = 4 s until a final answer, and given up
//! after 32 s (Timer F); over TCP it is sent once. The registration keeps one Call-ID and
//! counts its CSeq up, and answers later requests with the challenge it last saw (the
//! nonce count going up), so a refresh usually takes one round trip.

use std::net::SocketAddr;
use std::time::Duration;

use officebox_config::model::Trunk;
use officebox_store::{TrunkState, TrunkStatus};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::auth::{self, Answer, Challenge};
use super::timing::{self, FailureKind};
use super::{Context, Ending, UNREGISTER_WITHIN};
use crate::now_unix;
use crate::sip::{Message, Method, StartLine, Transport, param, uri_of};

/// RFC 3261's timers for a non-INVITE transaction.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMER_F: Duration = Duration::from_secs(32);
/// Requests in one attempt at most (challenges and 423s each take one more).
const MAX_ROUNDS: usize = 5;
/// A registration over UDP sends a keep-alive this often (below the 30 s a connection
/// tracker keeps a UDP flow that has seen one answer).
pub(super) const KEEPALIVE: Duration = Duration::from_secs(25);
/// What the box calls itself.
const USER_AGENT: &str = "officebox";
/// What the box's Contact may be sent (told to the provider in each REGISTER).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY";

/// How a registration attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// The provider's status, when it answered.
    pub code: Option<u16>,
    /// Its reason phrase, or what happened instead (no answer, no route).
    pub reason: String,
    pub kind: FailureKind,
    /// The provider's Retry-After.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// No answer, or the network in the way.
    fn network(reason: String) -> Failure {
        Failure {
            code: None,
            reason,
            kind: FailureKind::Transient,
            retry_after: None,
        }
    }
}

/// A challenge answered before, reused for the next requests (the nonce count going up).
#[derive(Debug, Clone)]
struct Cached {
    challenge: Challenge,
    /// Times its nonce has been answered.
    count: u32,
}

/// One trunk's registration.
pub(super) struct Client {
    trunk: Trunk,
    ctx: Context,
    call_id: String,
    tag: String,
    cseq: u32,
    /// The period asked for: the config's, or more when the provider said 423.
    expires: Duration,
    /// The registrar's challenge (401) and a proxy's (407), last seen.
    www: Option<Cached>,
    proxy: Option<Cached>,
    /// Until when (our clock) the provider holds the registration, and what was
    /// registered (to un-REGISTER it).
    registered: Option<Registered>,
    failures: u32,
}

/// A registration the provider holds.
#[derive(Debug, Clone)]
struct Registered {
    until: Instant,
    contact: String,
    dest: SocketAddr,
    local: SocketAddr,
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Client {
    pub(super) fn new(trunk: Trunk, ctx: Context) -> Client {
        Client {
            expires: trunk.expires,
            trunk,
            ctx,
            call_id: format!("{}@officebox", token()),
            tag: token(),
            cseq: 0,
            www: None,
            proxy: None,
            registered: None,
            failures: 0,
        }
    }

    fn transport(&self) -> Transport {
        super::transport(&self.trunk)
    }

    /// The account (user part of From, To and Contact).
    fn user(&self) -> &str {
        self.trunk.username.as_deref().unwrap_or_default()
    }

    fn domain(&self) -> String {
        super::domain(&self.trunk)
    }

    /// Where requests go (see [`super::address`]); the server learns where the provider
    /// is, to know its calls.
    async fn destination(&self) -> Result<SocketAddr, Failure> {
        let dns = self
            .ctx
            .dns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let to = super::address(&self.trunk, &dns)
            .await
            .map_err(Failure::network)?;
        self.ctx.providers.found(&self.trunk.name, to.ip());
        Ok(to)
    }

    /// The REGISTER of one round.
    fn request(
        &mut self,
        local: SocketAddr,
        contact: &str,
        expires: Duration,
        branch: &str,
    ) -> Message {
        self.cseq = self.cseq.wrapping_add(1);
        let uri = format!("sip:{}", self.trunk.server);
        let aor = format!("<sip:{}@{}>", self.user(), self.domain());
        let transport = self.transport().via_name();
        let secs = expires.as_secs();
        let mut headers: Vec<(String, String)> = vec![
            (
                "via".into(),
                format!("SIP/2.0/{transport} {local};branch={branch};rport"),
            ),
            ("max-forwards".into(), "70".into()),
            ("from".into(), format!("{aor};tag={}", self.tag)),
            ("to".into(), aor),
            ("call-id".into(), self.call_id.clone()),
            ("cseq".into(), format!("{} REGISTER", self.cseq)),
            ("contact".into(), format!("<{contact}>;expires={secs}")),
            ("expires".into(), secs.to_string()),
        ];
        if let Some(proxy) = &self.trunk.outbound_proxy {
            headers.push(("route".into(), format!("<sip:{proxy};lr>")));
        }
        let username = self
            .trunk
            .auth_username
            .as_deref()
            .or(self.trunk.username.as_deref())
            .unwrap_or_default()
            .to_string();
        let password = self.trunk.password.clone().unwrap_or_default();
        for (slot, header) in [
            (&mut self.www, "authorization"),
            (&mut self.proxy, "proxy-authorization"),
        ] {
            if let Some(cached) = slot {
                let cnonce = token();
                let value = auth::authorization(
                    &cached.challenge,
                    &Answer {
                        username: &username,
                        password: &password,
                        method: "REGISTER",
                        uri: &uri,
                        count: cached.count,
                        cnonce: &cnonce,
                    },
                );
                cached.count = cached.count.saturating_add(1);
                headers.push((header.into(), value));
            }
        }
        headers.push(("allow".into(), ALLOW.into()));
        headers.push(("user-agent".into(), USER_AGENT.into()));
        Message {
            start: StartLine::Request {
                method: Method::Register,
                uri,
            },
            headers,
            body: Vec::new(),
        }
    }

    /// One non-INVITE transaction: `req` sent (again over UDP until answered), its final
    /// response; `None` when none came within Timer F.
    async fn transaction(
        &self,
        req: &Message,
        dest: SocketAddr,
    ) -> Result<Option<Message>, Failure> {
        let transport = self.transport();
        let branch = req.branch().to_string();
        let cseq = req.cseq().map(|(n, _)| n);
        let mut expected = self.ctx.inbox.expect(&branch);
        let bytes = req.to_bytes();
        let send = |bytes: Vec<u8>| async move {
            self.ctx
                .wire
                .send(bytes, dest, transport, super::tls_peer(&self.trunk))
                .await
                .map_err(|e| Failure::network(format!("cannot reach {dest} over {transport}: {e}")))
        };
        send(bytes.clone()).await?;
        let deadline = Instant::now() + TIMER_F;
        let mut interval = T1;
        let mut next = Instant::now() + T1;
        loop {
            let wake = if transport.is_unreliable() {
                next.min(deadline)
            } else {
                deadline
            };
            tokio::select! {
                got = expected.rx.recv() => {
                    let Some(msg) = got else { return Ok(None) };
                    let StartLine::Response { code, .. } = msg.start else { continue };
                    if msg.cseq().map(|(n, _)| n) != cseq {
                        continue;
                    }
                    if code >= 200 {
                        return Ok(Some(msg));
                    }
                    // Provisional: keep sending at T2 until the final answer.
                    interval = T2;
                }
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    send(bytes.clone()).await?;
                    interval = (interval * 2).min(T2);
                    next = Instant::now() + interval;
                }
            }
        }
    }

    /// Registers for the period asked (`Duration::ZERO`: un-registers); the period granted.
    pub(super) async fn attempt(&mut self, unregister: bool) -> Result<Duration, Failure> {
        let (dest, local, contact) = match (&self.registered, unregister) {
            (Some(r), true) => (r.dest, r.local, r.contact.clone()),
            _ => {
                let dest = self.destination().await?;
                let local = self
                    .ctx
                    .wire
                    .local_for(dest, self.transport())
                    .map_err(|e| Failure {
                        kind: FailureKind::NoRoute,
                        ..Failure::network(format!("no way to {dest}: {e}"))
                    })?;
                let contact = match self.transport() {
                    Transport::Udp => format!("sip:{}@{local}", self.user()),
                    Transport::Tcp => format!("sip:{}@{local};transport=tcp", self.user()),
                    Transport::Tls => format!("sip:{}@{local};transport=tls", self.user()),
                };
                (dest, local, contact)
            }
        };
        // Whether the credentials we send answer a challenge to our previous request (a
        // second challenge then means they are wrong), for the registrar and a proxy.
        let (mut fresh_www, mut fresh_proxy) = (false, false);
        let mut last = Failure::network("too many challenges".into());
        for _ in 0..MAX_ROUNDS {
            let asked = if unregister {
                Duration::ZERO
            } else {
                self.expires
            };
            let branch = format!("z9hG4bK{}", token());
            let req = self.request(local, &contact, asked, &branch);
            let Some(resp) = self.transaction(&req, dest).await? else {
                return Err(Failure::network(format!(
                    "no answer from {dest} ({})",
                    self.transport()
                )));
            };
            let StartLine::Response { code, reason } = &resp.start else {
                continue;
            };
            let (code, reason) = (*code, reason.clone());
            let failure = |kind| Failure {
                code: Some(code),
                reason: reason.clone(),
                kind,
                retry_after: resp
                    .header("retry-after")
                    .and_then(|v| v.split([';', '(']).next())
                    .and_then(|v| v.trim().parse().ok())
                    .map(Duration::from_secs),
            };
            match code {
                200..=299 => {
                    if unregister {
                        self.registered = None;
                        return Ok(Duration::ZERO);
                    }
                    let granted = granted(&resp, &contact).unwrap_or(asked);
                    if granted.is_zero() {
                        return Err(Failure {
                            reason: format!("{reason} (but the provider granted no time)"),
                            ..failure(FailureKind::Transient)
                        });
                    }
                    self.registered = Some(Registered {
                        until: Instant::now() + granted,
                        contact,
                        dest,
                        local,
                    });
                    return Ok(granted);
                }
                401 | 407 => {
                    let (name, fresh, slot) = if code == 401 {
                        ("www-authenticate", &mut fresh_www, &mut self.www)
                    } else {
                        ("proxy-authenticate", &mut fresh_proxy, &mut self.proxy)
                    };
                    let challenge = match auth::choose(resp.values(name)) {
                        Ok(c) => c,
                        Err(why) => {
                            return Err(Failure {
                                reason: format!("{reason} ({why})"),
                                ..failure(FailureKind::Auth)
                            });
                        }
                    };
                    if *fresh && !challenge.stale {
                        *slot = None;
                        return Err(Failure {
                            reason: format!(
                                "{reason} (the provider refused the user name or password)"
                            ),
                            ..failure(FailureKind::Auth)
                        });
                    }
                    *slot = Some(Cached {
                        challenge,
                        count: 0,
                    });
                    *fresh = true;
                    last = failure(FailureKind::Auth);
                }
                423 if !unregister => {
                    let min = resp
                        .header("min-expires")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match min {
                        Some(m) if m > self.expires && m <= timing::MAX_PROVIDER_WAIT => {
                            info!(
                                message = "phone: trunk asks for longer registrations",
                                trunk = %self.trunk.name,
                                min_expires = m.as_secs()
                            );
                            self.expires = m;
                            last = failure(FailureKind::Transient);
                        }
                        _ => return Err(failure(FailureKind::Transient)),
                    }
                }
                403 => return Err(failure(FailureKind::Auth)),
                _ => return Err(failure(FailureKind::Transient)),
            }
        }
        Err(last)
    }

    /// Un-REGISTERs what is registered, if anything (within [`UNREGISTER_WITHIN`]).
    async fn unregister(&mut self) {
        if self
            .registered
            .as_ref()
            .is_none_or(|r| r.until <= Instant::now())
        {
            return;
        }
        match tokio::time::timeout(UNREGISTER_WITHIN, self.attempt(true)).await {
            Ok(Ok(_)) => {
                info!(message = "phone: trunk unregistered", trunk = %self.trunk.name);
            }
            Ok(Err(f)) => warn!(
                message = "phone: trunk could not unregister",
                trunk = %self.trunk.name,
                code = f.code.unwrap_or(0),
                reason = %f.reason
            ),
            Err(_) => warn!(
                message = "phone: trunk could not unregister in time",
                trunk = %self.trunk.name
            ),
        }
        self.registered = None;
    }

    fn report(&self, state: TrunkState, f: impl FnOnce(&mut TrunkStatus)) {
        let mut s = super::status(&self.trunk, state, String::new());
        f(&mut s);
        self.ctx.status.report(s);
    }
}

/// The period the provider granted our `contact`: its `expires` in the 2xx's Contact
/// (RFC 3261 section 10.2.4), else the Expires header.
fn granted(resp: &Message, contact: &str) -> Option<Duration> {
    let ours = normalize(contact);
    let from_contact = resp
        .values("contact")
        .find(|c| uri_of(c).is_some_and(|u| normalize(u) == ours))
        .and_then(|c| param(c, "expires"))
        .and_then(|e| e.trim().parse::<u64>().ok());
    let from_header = resp
        .header("expires")
        .and_then(|e| e.trim().parse::<u64>().ok());
    from_contact.or(from_header).map(Duration::from_secs)
}

/// A contact URI for comparison: without `sip:`, parameters and case.
fn normalize(uri: &str) -> String {
    let u = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let u = u.strip_prefix("sip:").unwrap_or(u);
    u.split(';').next().unwrap_or(u).to_ascii_lowercase()
}

/// Unix seconds `d` from now.
fn unix_in(d: Duration) -> i64 {
    i64::try_from(now_unix().saturating_add(d.as_secs_f64().round() as u64)).unwrap_or(i64::MAX)
}

/// Waits until the trunk is told to stop; why.
async fn stopped(stop: &mut watch::Receiver<Option<Ending>>) -> Ending {
    match stop.wait_for(Option::is_some).await {
        Ok(why) => why.unwrap_or(Ending::Shutdown),
        Err(_) => Ending::Shutdown,
    }
}

/// Runs one trunk's registration until told to stop.
pub(super) async fn run(trunk: Trunk, ctx: Context, mut stop: watch::Receiver<Option<Ending>>) {
    let mut client = Client::new(trunk, ctx);
    client.report(TrunkState::Registering, |_| {});
    let mut registered = false;
    let ending = 'run: loop {
        let outcome = tokio::select! {
            o = client.attempt(false) => o,
            why = stopped(&mut stop) => break why,
        };
        let wait = match outcome {
            Ok(granted) => {
                if !registered {
                    info!(
                        message = "phone: trunk registered",
                        trunk = %client.trunk.name,
                        expires = granted.as_secs()
                    );
                }
                client.failures = 0;
                registered = true;
                let refresh = timing::refresh_after(granted);
                let contact = client
                    .registered
                    .as_ref()
                    .map(|r| r.contact.clone())
                    .unwrap_or_default();
                client.report(TrunkState::Registered, |s| {
                    s.registered_until = Some(unix_in(granted));
                    s.next_try_at = Some(unix_in(refresh));
                    s.detail = contact;
                });
                refresh
            }
            Err(f) => {
                registered = false;
                if f.kind != FailureKind::NoRoute {
                    client.failures = client.failures.saturating_add(1);
                }
                let wait = timing::backoff(client.failures, f.kind, f.retry_after);
                warn!(
                    message = "phone: trunk registration failed",
                    trunk = %client.trunk.name,
                    code = f.code.unwrap_or(0),
                    reason = %f.reason,
                    retry_in = wait.as_secs()
                );
                client.report(TrunkState::Failing, |s| {
                    s.last_code = f.code.map(i64::from);
                    s.last_reason = Some(f.reason.clone());
                    s.next_try_at = Some(unix_in(wait));
                });
                wait
            }
        };
        // Until then, a registration over UDP is kept open in the firewalls and NATs on
        // the way (the box's own connection tracking forgets an idle UDP flow after 30 s
        // to 2 minutes, and the provider sends its calls along it).
        let until = Instant::now() + wait;
        let keepalive = client
            .registered
            .as_ref()
            .filter(|_| client.transport() == Transport::Udp)
            .map(|r| r.dest);
        loop {
            let next = match keepalive {
                Some(_) => (Instant::now() + KEEPALIVE).min(until),
                None => until,
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                why = stopped(&mut stop) => break 'run why,
            }
            if Instant::now() >= until {
                break;
            }
            if let Some(dest) = keepalive {
                // RFC 5626 section 4.4.1's keep-alive: a blank line, ignored by servers.
                let _ = client
                    .ctx
                    .wire
                    .send(b"\r\n\r\n".to_vec(), dest, Transport::Udp, None)
                    .await;
            }
        }
    };
    client.unregister().await;
    if ending == Ending::Shutdown {
        client.report(TrunkState::Stopped, |s| {
            s.detail = "officebox stopped".into();
        });
    }
}

/// The host part of a Via's sent-by, for the tests.
#[cfg(test)]
pub(super) fn via_host(msg: &Message) -> String {
    msg.top_via()
        .and_then(|v| v.split_whitespace().nth(1))
        .map(|s| s.split(';').next().unwrap_or(s).to_string())
        .unwrap_or_default()
}
