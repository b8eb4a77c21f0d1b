//! What the phone service keeps in the state database: registrations (loaded at start,
//! written when they change, so phones stay reachable across a restart), the list of
//! live calls (for `officebox phone calls` and the admin pages), the trunks' states (for
//! `officebox phone trunks`), and the call log (each call's start, answer and end,
//! written in one transaction per tick: a call's row is on disk within a tick of its
//! start, so a crash leaves it, closed as "ended unknown" at the next start).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use officebox_store::{CallEvent, Db, SipBinding, SipCall, TrunkStatus};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::State;
use crate::now_unix;
use crate::registrar::{Binding, Registrar};
use crate::sip::Transport;
use crate::trunk::StatusSink;

/// Opens the state database, and the registrations in it that have not expired. Calls
/// the log shows in progress were cut off (officebox stopped during them): they are
/// closed as "ended unknown"; calls older than `log_days` leave the log.
pub(super) async fn open(
    data_dir: &Path,
    log_days: u32,
) -> io::Result<(Db, Registrar, crate::daynight::DayNight)> {
    let db_path = officebox_store::state_db(data_dir);
    let (db, restored, day_night) =
        tokio::task::spawn_blocking(move || -> Result<_, officebox_store::StoreError> {
            let db = Db::open(&db_path)?;
            let day_night = db
                .meta_get(crate::daynight::META_KEY)?
                .map(|t| crate::daynight::DayNight::from_text(&t))
                .unwrap_or_default();
            let restored = db.bindings(i64::try_from(now_unix()).unwrap_or(i64::MAX))?;
            let cut = db.close_unfinished_calls()?;
            if cut > 0 {
                warn!(
                    message = "phone: calls cut off by a stop are in the call log as ended unknown",
                    calls = cut
                );
            }
            prune(&db, log_days)?;
            Ok((db, restored, day_night))
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::other(format!("phone: {e}")))?;
    let mut registrar = Registrar::default();
    for b in restored {
        if let Ok(source) = b.source.parse() {
            registrar.restore(
                &b.login,
                Binding {
                    contact: b.contact,
                    expires_at: u64::try_from(b.expires_at).unwrap_or(0),
                    call_id: b.call_id,
                    cseq: u32::try_from(b.cseq).unwrap_or(0),
                    source,
                    transport: Transport::from_stored(&b.transport),
                    user_agent: b.user_agent,
                },
            );
        }
    }
    Ok((db, registrar, day_night))
}

/// Writes the registrations that changed.
pub(super) async fn save(state: &Arc<State>, db: &Arc<Mutex<Db>>) {
    let dirty = state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take_dirty();
    if dirty.is_empty() {
        return;
    }
    let rows: Vec<(String, Vec<SipBinding>)> = dirty
        .into_iter()
        .map(|(login, bindings)| {
            let rows = bindings
                .into_iter()
                .map(|b| SipBinding {
                    login: login.clone(),
                    contact: b.contact,
                    expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
                    call_id: b.call_id,
                    cseq: i64::from(b.cseq),
                    source: b.source.to_string(),
                    transport: b.transport.as_str().to_string(),
                    user_agent: b.user_agent,
                })
                .collect();
            (login, rows)
        })
        .collect();
    let db = Arc::clone(db);
    let r = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save_bindings(&rows)
    })
    .await;
    if !matches!(r, Ok(Ok(()))) {
        warn!(message = "phone: could not save registrations (phones re-register anyway)");
    }
}

/// Writes the list of live calls when it changed.
pub(super) async fn save_calls(state: &Arc<State>, db: &Arc<Mutex<Db>>, last: &mut Vec<SipCall>) {
    let now: Vec<SipCall> = {
        let calls = state.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<SipCall> = calls
            .status
            .iter()
            .map(|(id, rx)| {
                let s = rx.borrow();
                SipCall {
                    id: i64::try_from(*id).unwrap_or(0),
                    caller: s.caller.clone(),
                    callee: s.callee.clone(),
                    state: s.state.to_string(),
                    started_at: i64::try_from(s.started_at).unwrap_or(0),
                    answered_at: s.answered_at.and_then(|t| i64::try_from(t).ok()),
                }
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    };
    if now == *last {
        return;
    }
    let (db, rows) = (Arc::clone(db), now.clone());
    let r = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save_calls(&rows)
    })
    .await;
    if matches!(r, Ok(Ok(()))) {
        *last = now;
    }
}

/// Call log events waiting to be written (a failed write is tried again next tick).
#[derive(Debug)]
pub(super) struct CallLog {
    pending: Vec<CallEvent>,
    pruned: Instant,
}

impl Default for CallLog {
    fn default() -> CallLog {
        CallLog {
            pending: Vec::new(),
            pruned: Instant::now(),
        }
    }
}

/// Writes `batch` in one transaction; when the database refuses it, event by event: one
/// it refuses on its own is dropped (counted), so it cannot hold up the rest for ever;
/// when it refuses them all, they are all given back for the next try.
fn write_events(db: &Db, batch: Vec<CallEvent>) -> Written {
    let Err(error) = db.record_calls(&batch) else {
        return Written::Dropped(0);
    };
    let total = batch.len();
    let refused: Vec<CallEvent> = batch
        .into_iter()
        .filter(|e| db.record_calls(std::slice::from_ref(e)).is_err())
        .collect();
    if refused.len() == total {
        Written::Refused(error, refused)
    } else {
        Written::Dropped(refused.len())
    }
}

/// What [`write_events`] did.
enum Written {
    /// Written, but for this many events the database refused.
    Dropped(usize),
    /// Nothing written: why, and the events, to try again.
    Refused(officebox_store::StoreError, Vec<CallEvent>),
}

/// Events kept for a state database that refuses writes, at most.
const MAX_PENDING: usize = 100_000;
/// How often old calls are pruned from the log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl CallLog {
    /// Writes the events that came since the last tick, in one transaction; once an hour
    /// also drops the calls older than `phone.call_log_days`.
    pub(super) async fn save(
        &mut self,
        db: &Arc<Mutex<Db>>,
        events: &mut mpsc::UnboundedReceiver<CallEvent>,
        days: u32,
    ) {
        while let Ok(e) = events.try_recv() {
            self.pending.push(e);
        }
        let prune_now = self.pruned.elapsed() >= PRUNE_EVERY;
        if self.pending.is_empty() && !prune_now {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let db = Arc::clone(db);
        let r = tokio::task::spawn_blocking(move || {
            let db = db.lock().unwrap_or_else(PoisonError::into_inner);
            let written = write_events(&db, batch);
            if prune_now {
                let _ = prune(&db, days);
            }
            written
        })
        .await;
        if prune_now {
            self.pruned = Instant::now();
        }
        match r {
            Ok(Written::Dropped(0)) => {}
            Ok(Written::Dropped(dropped)) => {
                warn!(
                    message = "phone: call log events the database refused were dropped",
                    dropped
                );
            }
            Ok(Written::Refused(error, mut batch)) => {
                warn!(message = "phone: could not write the call log (trying again)", %error);
                if batch.len() > MAX_PENDING {
                    batch.drain(..batch.len() - MAX_PENDING);
                }
                self.pending = batch;
            }
            Err(error) => warn!(message = "phone: could not write the call log", %error),
        }
    }
}

/// Drops the calls (and fax calls) older than `days` from the logs.
fn prune(db: &Db, days: u32) -> Result<(), officebox_store::StoreError> {
    let before = officebox_store::unix_now() - i64::from(days) * 86_400;
    db.prune_faxes(before)?;
    let n = db.prune_call_log(before)?;
    if n > 0 {
        info!(
            message = "phone: old calls left the call log",
            calls = n,
            days
        );
    }
    Ok(())
}

/// One change to the trunks' rows.
enum TrunkOp {
    Report(TrunkStatus),
    Retain(Vec<String>),
}

/// The trunks' states into the state database, in the order reported, by one writer task
/// (on a blocking thread per write) that ends when the trunk clients are gone.
pub(super) struct TrunkStatusDb {
    tx: mpsc::UnboundedSender<TrunkOp>,
}

impl TrunkStatusDb {
    /// The sink, and the writer task (which ends once every sink is dropped).
    pub(super) fn start(db: Arc<Mutex<Db>>) -> (Arc<TrunkStatusDb>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<TrunkOp>();
        let writer = tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let db = Arc::clone(&db);
                let result = tokio::task::spawn_blocking(move || {
                    let db = db.lock().unwrap_or_else(PoisonError::into_inner);
                    match op {
                        TrunkOp::Report(s) => db.set_trunk_status(&s),
                        TrunkOp::Retain(names) => {
                            let names: Vec<&str> = names.iter().map(String::as_str).collect();
                            db.retain_trunks(&names)
                        }
                    }
                })
                .await;
                if let Ok(Err(error)) = result {
                    warn!(message = "phone: cannot save the trunks' state", %error);
                }
            }
        });
        (Arc::new(TrunkStatusDb { tx }), writer)
    }
}

impl StatusSink for TrunkStatusDb {
    fn report(&self, status: TrunkStatus) {
        let _ = self.tx.send(TrunkOp::Report(status));
    }

    fn retain(&self, names: Vec<String>) {
        let _ = self.tx.send(TrunkOp::Retain(names));
    }
}
