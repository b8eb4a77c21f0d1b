//! The queue runner: sends what waits on the outbound queue, one connection per message
//! and domain, and keeps at it on a backing-off schedule until the far side takes it or
//! the queue gives up. It tells senders what they asked to hear (RFC 3461): a bounce on
//! failure, a notice when a message is delayed, and success when asked; bounces go to the
//! null sender's never.
//!
//! Everything it decides is in the state database before it acts on it again: a restart
//! or `kill -9` resumes the queue where it was. The one unavoidable window (RFC 1047) is
//! between the far side's `250` after DATA and our record of it; it is kept to one
//! database commit.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use officebox_config::Config;
use officebox_store::{
    Job, Maildir, NewMessage, NewRecipient, Notice, Outcome, RecipientState, StoreError,
};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{Client, Outgoing, Recipient, Verdict};
use crate::deliver::{self, Envelope, Store};
use crate::dkim::Signer;
use crate::report::{self, Kind, Line, Report};
use crate::resolve::Resolver;
use crate::route::{Destination, resolve};

/// Connections to other servers at once.
const MAX_CONNECTIONS: usize = 20;
/// Recipients looked at per pass.
const BATCH: usize = 1000;
/// How often the runner looks at the queue when nothing wakes it (also how soon it
/// sees `officebox mail flush`).
const POLL: Duration = Duration::from_secs(1);
/// Queue files no row refers to, older than this, are debris of a crash before the
/// client heard `250`, and are removed.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

use officebox_store::unix_now as now_unix;

/// When to try again after `attempts` failed ones: `first_retry`, doubling up to
/// `max_retry_interval`, and never past the moment the queue gives up.
pub fn next_attempt(config: &Config, attempts: i64, received_at: i64, now: i64) -> i64 {
    let q = &config.mail.queue;
    let first = q.first_retry.as_secs().max(1);
    let shift = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    let delay = first
        .saturating_mul(1u64 << shift)
        .min(q.max_retry_interval.as_secs().max(first));
    let give_up = received_at.saturating_add(secs(q.give_up_after));
    now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
        .min(give_up.max(now))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Runs the queue until `shutdown`.
pub async fn run(
    mut config_rx: watch::Receiver<Arc<Config>>,
    store: Arc<Store>,
    shutdown: CancellationToken,
) {
    let tls = match crate::tls::opportunistic_connector() {
        Ok(c) => Some(c),
        Err(error) => {
            warn!(message = "smtp out: no TLS to other servers", %error);
            None
        }
    };
    let runner = Runner {
        store,
        in_flight: Arc::default(),
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        done: Arc::new(Notify::new()),
        signer: Mutex::new(None),
    };
    if let Err(error) = runner.sweep_orphans().await {
        warn!(message = "smtp out: could not tidy the queue directory", %error);
    }
    let mut tasks = JoinSet::new();
    loop {
        let config = Arc::clone(&config_rx.borrow_and_update());
        if let Err(error) = runner.pass(&config, tls.as_ref(), &mut tasks).await {
            warn!(message = "smtp out: queue pass failed", %error);
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = runner.store.queued.notified() => {}
            () = runner.done.notified() => {}
            _ = config_rx.changed() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
    // Deliveries in progress stop here; their recipients are still pending and are
    // tried again by the next runner.
    tasks.shutdown().await;
}

/// (message, recipient) pairs being delivered now, and those finished since the current
/// pass began. A pass reads the due rows, then skips both sets: a delivery that finishes
/// between the read and the check is in the second set, so its (stale) row is not sent
/// again.
#[derive(Debug, Default)]
struct InFlight {
    now: HashSet<(i64, String)>,
    finished: HashSet<(i64, String)>,
}

struct Runner {
    store: Arc<Store>,
    in_flight: Arc<Mutex<InFlight>>,
    slots: Arc<Semaphore>,
    done: Arc<Notify>,
    /// The DKIM keys as last read, and what they were read as (domain and selectors).
    signer: Mutex<Option<(String, Arc<Signer>)>>,
}

impl Runner {
    /// Runs a blocking database call off the async threads.
    async fn db<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, officebox_store::StoreError> + Send + 'static,
    ) -> io::Result<R> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }

    async fn pass(
        &self,
        config: &Arc<Config>,
        tls: Option<&TlsConnector>,
        tasks: &mut JoinSet<()>,
    ) -> io::Result<()> {
        let now = now_unix();
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finished
            .clear();
        let due = self.db(move |s| s.with_db(|db| db.due(now, BATCH))).await?;
        let mut groups: BTreeMap<(i64, String), Vec<Job>> = BTreeMap::new();
        {
            let in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for job in due {
                let key = (job.message_id, job.recipient.clone());
                if in_flight.now.contains(&key) || in_flight.finished.contains(&key) {
                    continue;
                }
                let domain = job
                    .recipient
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                groups
                    .entry((job.message_id, domain))
                    .or_default()
                    .push(job);
            }
        }
        let signer = if groups.is_empty() {
            None
        } else {
            self.signer(config).await
        };
        let client = Client {
            resolver: Resolver::for_config(config),
            helo: format!("{}.{}", config.network.hostname, config.network.domain),
            tls: tls.cloned(),
            port: 25,
        };
        for ((message_id, domain), jobs) in groups {
            // A group has a job by construction: it is made by pushing one.
            let Some(received_at) = jobs.first().map(|j| j.received_at) else {
                continue;
            };
            if now >= received_at.saturating_add(secs(config.mail.queue.give_up_after)) {
                let outcomes = jobs
                    .iter()
                    .map(|j| {
                        let last = j.last_error.as_deref().unwrap_or("no attempt succeeded");
                        let error = format!(
                            "4.4.7 gave up after {} days in the queue; the last error was: {last}",
                            config.mail.queue.give_up_after.as_secs() / 86_400
                        );
                        (j.recipient.clone(), Outcome::Failed { error })
                    })
                    .collect::<Vec<_>>();
                info!(message = "smtp out: gave up", id = message_id, %domain);
                self.db(move |s| s.with_db(|db| db.record(message_id, &outcomes, now)))
                    .await?;
                continue;
            }
            {
                let mut in_flight = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for j in &jobs {
                    in_flight.now.insert((message_id, j.recipient.clone()));
                }
            }
            let task = Attempt {
                store: Arc::clone(&self.store),
                in_flight: Arc::clone(&self.in_flight),
                slots: Arc::clone(&self.slots),
                done: Arc::clone(&self.done),
                client: client.clone(),
                config: Arc::clone(config),
                signer: signer.clone(),
                domain,
                message_id,
                jobs,
            };
            tasks.spawn(task.run());
        }
        self.notices(config, now).await?;
        self.tidy().await
    }

    /// The DKIM signer for this pass: the keys are read each pass (a few rows) and loaded
    /// again only when they or the domain changed. `None` when there are none to sign
    /// with (the mail service makes them when it starts) or they cannot be read.
    async fn signer(&self, config: &Config) -> Option<Arc<Signer>> {
        let keys = match self.db(|s| s.with_db(|db| db.dkim_keys())).await {
            Ok(k) => k,
            Err(error) => {
                warn!(message = "smtp out: cannot read the DKIM keys; sending unsigned", %error);
                return None;
            }
        };
        let mut seen = config.network.domain.to_ascii_lowercase();
        for k in keys.iter().filter(|k| k.retired.is_none()) {
            seen.push(' ');
            seen.push_str(&k.selector);
        }
        let mut cached = self.signer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((was, signer)) = cached.as_ref()
            && *was == seen
        {
            return Some(Arc::clone(signer));
        }
        let signer = Arc::new(Signer::new(&config.network.domain, &keys));
        info!(message = "smtp out: signing with DKIM", selectors = ?signer.selectors().collect::<Vec<_>>());
        *cached = Some((seen, Arc::clone(&signer)));
        Some(signer)
    }

    /// Sends the notices owed (bounces, delays, successes) and records them.
    async fn notices(&self, config: &Arc<Config>, now: i64) -> io::Result<()> {
        let delay_after = secs(config.mail.queue.delay_notice_after);
        let due = self
            .db(move |s| s.with_db(|db| db.notices_due(now, delay_after)))
            .await?;
        let mut by_message: BTreeMap<i64, Vec<Job>> = BTreeMap::new();
        for j in due {
            by_message.entry(j.message_id).or_default().push(j);
        }
        for (message_id, jobs) in by_message {
            for kind in [Kind::Failed, Kind::Relayed, Kind::Delayed] {
                let mine: Vec<&Job> = jobs
                    .iter()
                    .filter(|j| {
                        kind == match j.state {
                            RecipientState::Failed => Kind::Failed,
                            RecipientState::Delivered => Kind::Relayed,
                            RecipientState::Pending => Kind::Delayed,
                        }
                    })
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let config = Arc::clone(config);
                let store = Arc::clone(&self.store);
                let owned: Vec<Job> = mine.into_iter().cloned().collect();
                tokio::task::spawn_blocking(move || {
                    send_notice(&config, &store, message_id, kind, &owned, now)
                })
                .await
                .map_err(io::Error::other)??;
            }
        }
        Ok(())
    }

    /// Removes finished messages: the file first, then the rows.
    async fn tidy(&self) -> io::Result<()> {
        let finished = self.db(|s| s.with_db(|db| db.finished())).await?;
        for (id, path) in finished {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.db(move |s| s.with_db(|db| db.remove_message(id)))
                .await?;
        }
        Ok(())
    }

    /// Removes queue files that no row refers to (a crash between the file and its rows;
    /// the client never heard `250` for them).
    async fn sweep_orphans(&self) -> io::Result<()> {
        let known: HashSet<PathBuf> = self
            .db(|s| s.with_db(|db| db.queue_paths()))
            .await?
            .into_iter()
            .collect();
        let dir = self.store.queue_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ORPHAN_AGE);
            if old && !known.contains(&path) {
                info!(message = "smtp out: removing an orphaned queue file", path = %path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// One delivery: one message to the recipients of one domain.
struct Attempt {
    store: Arc<Store>,
    in_flight: Arc<Mutex<InFlight>>,
    slots: Arc<Semaphore>,
    done: Arc<Notify>,
    client: Client,
    config: Arc<Config>,
    signer: Option<Arc<Signer>>,
    domain: String,
    /// The message all `jobs` are of.
    message_id: i64,
    jobs: Vec<Job>,
}

impl Attempt {
    async fn run(self) {
        let message_id = self.message_id;
        let outcomes = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(_permit) => self.attempt().await,
            Err(_) => Vec::new(),
        };
        if !outcomes.is_empty() {
            let store = Arc::clone(&self.store);
            let now = now_unix();
            let r = tokio::task::spawn_blocking(move || {
                store.with_db(|db| db.record(message_id, &outcomes, now))
            })
            .await;
            if !matches!(r, Ok(Ok(()))) {
                warn!(
                    message =
                        "smtp out: could not record a delivery attempt; it will be made again",
                    id = message_id
                );
            }
        }
        {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for j in &self.jobs {
                let key = (message_id, j.recipient.clone());
                in_flight.now.remove(&key);
                in_flight.finished.insert(key);
            }
        }
        self.done.notify_one();
    }

    async fn attempt(&self) -> Vec<(String, Outcome)> {
        let Some(first) = self.jobs.first() else {
            return Vec::new();
        };
        let now = now_unix();
        let path = first.path.clone();
        let signer = self.signer.clone();
        let read = move || {
            std::fs::read(path).map(|m| match signer.and_then(|s| s.sign(&m)) {
                Some(signed) => signed,
                None => m,
            })
        };
        let message = match tokio::task::spawn_blocking(read).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                let error = "5.3.0 the queued message file is missing".to_string();
                return self.all(|_| Outcome::Failed {
                    error: error.clone(),
                });
            }
            other => {
                let error = match other {
                    Ok(Err(e)) => format!("4.3.0 cannot read the queued message: {e}"),
                    _ => "4.3.0 cannot read the queued message".into(),
                };
                return self.all(|j| Outcome::Retry {
                    at: next_attempt(&self.config, j.attempts, j.received_at, now),
                    error: error.clone(),
                });
            }
        };
        let recipients: Vec<Recipient> = self
            .jobs
            .iter()
            .map(|j| Recipient {
                address: j.recipient.clone(),
                notify: j.notify,
                orcpt: j.orcpt.clone(),
            })
            .collect();
        let out = Outgoing {
            sender: &first.sender,
            recipients: &recipients,
            envid: first.envid.as_deref(),
            ret: first.ret,
            message: &message,
        };
        let verdicts = self.client.deliver(&self.domain, &out).await;
        let now = now_unix();
        self.jobs
            .iter()
            .zip(verdicts)
            .map(|(j, v)| {
                let outcome = match v {
                    Verdict::Delivered { remote, reply, dsn } => {
                        info!(message = "smtp out: delivered", id = j.message_id, to = %j.recipient, %remote, %reply);
                        Outcome::Delivered {
                            remote,
                            dsn_passed_on: dsn,
                        }
                    }
                    Verdict::Temporary(error) => {
                        let at = next_attempt(&self.config, j.attempts, j.received_at, now);
                        info!(message = "smtp out: deferred", id = j.message_id, to = %j.recipient, %error, retry_in = at - now);
                        Outcome::Retry { at, error }
                    }
                    Verdict::Permanent(error) => {
                        info!(message = "smtp out: failed", id = j.message_id, to = %j.recipient, %error);
                        Outcome::Failed { error }
                    }
                };
                (j.recipient.clone(), outcome)
            })
            .collect()
    }

    fn all(&self, f: impl Fn(&Job) -> Outcome) -> Vec<(String, Outcome)> {
        self.jobs
            .iter()
            .map(|j| (j.recipient.clone(), f(j)))
            .collect()
    }
}

/// Builds one notice about `jobs` (all of one message and one kind), delivers it to the
/// sender (a local mailbox, or the queue with the null sender), and records it.
fn send_notice(
    config: &Config,
    store: &Store,
    message_id: i64,
    kind: Kind,
    jobs: &[Job],
    now: i64,
) -> io::Result<()> {
    let recipients: Vec<String> = jobs.iter().map(|j| j.recipient.clone()).collect();
    let mark = if kind == Kind::Delayed {
        Notice::Delay
    } else {
        Notice::Final
    };
    let record = |notice: Option<&NewMessage<'_>>| {
        store
            .with_db(|db| db.reported(message_id, &recipients, mark, notice, now))
            .map_err(io::Error::other)
    };
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    let sender = first.sender.as_str();
    // Never a notice about a notice, nor to nobody.
    if sender.is_empty() {
        return record(None);
    }
    let original = std::fs::read(&first.path).ok();
    let notice = compose(config, kind, first, jobs, original.as_deref());
    let Some((mailboxes, external)) = notice_route(config, sender) else {
        warn!(message = "smtp out: the sender is no one here; no notice", id = message_id, %sender);
        return record(None);
    };
    for login in &mailboxes {
        Maildir::open(&store.mailbox(login))
            .and_then(|m| m.deliver(&notice))
            .map_err(io::Error::other)?;
    }
    info!(message = "smtp out: notice sent", id = message_id, ?kind, to = %sender);
    if external.is_empty() {
        return record(None);
    }
    let path = store
        .write_queue_file(&notice, now)
        .map_err(io::Error::other)?;
    let rcpts: Vec<NewRecipient> = external.into_iter().map(NewRecipient::plain).collect();
    record(Some(&NewMessage {
        sender: "",
        path: &path,
        size: notice.len() as u64,
        envid: None,
        ret: None,
        recipients: &rcpts,
    }))
}

/// The notice itself, about `first` and the other jobs of its message.
fn compose(
    config: &Config,
    kind: Kind,
    first: &Job,
    jobs: &[Job],
    original: Option<&[u8]>,
) -> Vec<u8> {
    let host = format!("{}.{}", config.network.hostname, config.network.domain);
    let lines: Vec<Line<'_>> = jobs.iter().map(|job| Line { job, kind }).collect();
    report::build(&Report {
        host: &host,
        to: &first.sender,
        lines: &lines,
        original,
        now: SystemTime::now(),
        give_up_at: first
            .received_at
            .saturating_add(secs(config.mail.queue.give_up_after)),
    })
}

/// Where a notice to `sender` goes: (local mailboxes, addresses elsewhere); `None` for
/// an address of ours that is no one.
fn notice_route(config: &Config, sender: &str) -> Option<(Vec<String>, Vec<String>)> {
    match resolve(config, sender) {
        Destination::Local { mailboxes, forward } => Some((
            mailboxes.into_iter().collect(),
            forward.into_iter().collect(),
        )),
        Destination::Foreign(a) => Some((Vec::new(), vec![a])),
        Destination::Fax(_) | Destination::Unknown => None,
    }
}

/// The success notice (RFC 3461 NOTIFY=SUCCESS) for recipients whose mailboxes are
/// here: sent when the message is stored, as the final delivering server must.
/// `recipients`: (address, ORCPT).
pub fn local_success_notice(
    config: &Config,
    store: &Store,
    envelope: &Envelope,
    recipients: &[(String, Option<String>)],
    message: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    if envelope.from.is_empty() || recipients.is_empty() {
        return Ok(());
    }
    let host = format!("{}.{}", config.network.hostname, config.network.domain);
    let jobs: Vec<Job> = recipients
        .iter()
        .map(|(address, orcpt)| Job {
            message_id: 0,
            sender: envelope.from.clone(),
            path: PathBuf::new(),
            size: message.len() as u64,
            received_at: now,
            envid: envelope.envid.clone(),
            ret: envelope.ret,
            recipient: address.clone(),
            notify: None,
            orcpt: orcpt.clone(),
            state: RecipientState::Delivered,
            attempts: 0,
            last_error: None,
            remote: Some(host.clone()),
        })
        .collect();
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    let notice = compose(config, Kind::Delivered, first, &jobs, Some(message));
    let Some((mailboxes, external)) = notice_route(config, &envelope.from) else {
        return Ok(());
    };
    let delivery = deliver::Delivery {
        mailboxes: mailboxes.into_iter().collect(),
        external: external.into_iter().map(NewRecipient::plain).collect(),
        junk: false,
    };
    store.deliver(&Envelope::default(), &notice, &delivery, now)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_at_the_give_up_time() {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.toml");
        let mut config = officebox_config::load(std::path::Path::new(demo)).unwrap();
        config.mail.queue.first_retry = Duration::from_secs(60);
        config.mail.queue.max_retry_interval = Duration::from_secs(600);
        config.mail.queue.give_up_after = Duration::from_secs(3600);
        let t0 = 1_000_000;
        assert_eq!(next_attempt(&config, 0, t0, t0), t0 + 60);
        assert_eq!(next_attempt(&config, 1, t0, t0), t0 + 120);
        assert_eq!(next_attempt(&config, 3, t0, t0), t0 + 480);
        assert_eq!(next_attempt(&config, 4, t0, t0), t0 + 600);
        assert_eq!(next_attempt(&config, 60, t0, t0), t0 + 600);
        assert_eq!(next_attempt(&config, 4, t0, t0 + 3300), t0 + 3600);
    }
}
