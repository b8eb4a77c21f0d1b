//! `officebox mail ...`: the outbound queue and the POP3 fetcher, read and nudged through
//! the state database (the running server notices within a second).

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use officebox_store::Db;

fn open(path: &Path) -> anyhow::Result<(officebox_config::Config, Db)> {
    let config = officebox_config::load(path)?;
    let db = Db::open(&officebox_store::state_db(&config.data_dir))?;
    Ok((config, db))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `12s ago`, `in 4m`: a time relative to now.
fn when(t: i64, now: i64) -> String {
    let d = t - now;
    let span = |s: i64| match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    };
    if d > 0 {
        format!("in {}", span(d))
    } else if d == 0 {
        "now".into()
    } else {
        format!("{} ago", span(-d))
    }
}

pub fn queue(path: &Path) -> anyhow::Result<ExitCode> {
    let (_, db) = open(path)?;
    let queue = db.queue()?;
    let now = now();
    if queue.is_empty() {
        println!("the queue is empty");
    }
    for m in queue {
        let sender = if m.sender.is_empty() {
            "<> (a delivery notice)".to_string()
        } else {
            format!("<{}>", m.sender)
        };
        println!(
            "#{} from {sender}, {} bytes, received {}",
            m.id,
            m.size,
            when(m.received_at, now)
        );
        for r in m.recipients {
            let next = if r.state == officebox_store::RecipientState::Pending {
                format!(", next try {}", when(r.next_attempt_at, now))
            } else {
                String::new()
            };
            let error = r.last_error.map(|e| format!(": {e}")).unwrap_or_default();
            println!(
                "    {}: {}, {} attempt(s){next}{error}",
                r.address,
                r.state.as_str(),
                r.attempts
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn flush(path: &Path) -> anyhow::Result<ExitCode> {
    let (_, db) = open(path)?;
    let n = db.flush_queue(now())?;
    println!("{n} recipient(s) will be tried again now");
    Ok(ExitCode::SUCCESS)
}

pub fn fetch_status(path: &Path) -> anyhow::Result<ExitCode> {
    let (config, db) = open(path)?;
    let accounts = officebox_mail::fetch::accounts(&config);
    if accounts.is_empty() {
        println!("no external POP3 mailboxes are configured");
    }
    let now = now();
    for a in accounts {
        let s = db.fetch_status(&a.key)?;
        println!("{} -> {}", a.key, a.describe_target());
        let last = s.last_attempt_at.map_or("never".into(), |t| when(t, now));
        let ok = s.last_success_at.map_or("never".into(), |t| when(t, now));
        println!(
            "    last poll {last}, last success {ok}, {} fetched, next poll {}",
            s.fetched,
            when(s.next_poll_at.max(now), now)
        );
        if let Some(e) = s.last_error {
            println!("    last error ({} failure(s) in a row): {e}", s.failures);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fetch_now(path: &Path) -> anyhow::Result<ExitCode> {
    let (config, db) = open(path)?;
    let accounts = officebox_mail::fetch::accounts(&config);
    for a in &accounts {
        db.request_fetch(&a.key)?;
    }
    println!("{} mailbox(es) will be polled now", accounts.len());
    Ok(ExitCode::SUCCESS)
}
