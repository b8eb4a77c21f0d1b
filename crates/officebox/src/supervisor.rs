//! The supervisor: starts one task per enabled service, publishes config snapshots to them,
//! reloads on SIGHUP and stops everything on SIGINT/SIGTERM within a deadline.
//!
//! Only this module touches signals. Services take a `watch::Receiver<Arc<Config>>` and a
//! cancellation token; they apply each published config themselves and return when the
//! token is cancelled.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use officebox_config::{Config, LoadError};
use officebox_store::Db;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long services get to stop after SIGINT/SIGTERM.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

type ServiceFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Whether a config enables a service.
type Enabled = fn(&Config) -> bool;

/// A service the supervisor can run.
struct ServiceSpec {
    name: &'static str,
    enabled: Enabled,
    start: fn(watch::Receiver<Arc<Config>>, CancellationToken) -> ServiceFuture,
}

/// Every service built into this officebox.
const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "net",
        enabled: |c| c.network.manage,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_net::manage::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "dns",
        enabled: |c| c.dns.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_dns::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "wan-dhcp",
        enabled: officebox_dhcp::wan_client_enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_dhcp::serve_wan(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "dhcp",
        enabled: |c| c.dhcp.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_dhcp::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "mail",
        enabled: |c| c.mail.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_mail::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "phone",
        enabled: |c| c.phone.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_voice::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "web",
        enabled: |c| c.web.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_web::serve(config, stop).await?) })
        },
    },
    ServiceSpec {
        name: "ntp",
        enabled: |c| c.ntp.enabled,
        start: |config, stop| {
            Box::pin(async move { Ok(officebox_net::ntp::serve(config, stop).await?) })
        },
    },
];

pub fn run(path: &Path) -> Result<ExitCode> {
    // The admin pages edit this file (an absolute path: the process may change directory).
    officebox_web::set_config_path(
        &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    );
    let config = match officebox_config::load(path) {
        Ok(c) => c,
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}");
            anyhow::bail!(
                "{} has {} problem(s); nothing was started",
                path.display(),
                diags.0.len()
            );
        }
        Err(e) => return Err(e.into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(supervise(path, config));
    // Blocking tasks (a stuck disk write) must not hold the process past the deadline.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One started service task.
struct Instance {
    name: &'static str,
    id: tokio::task::Id,
    stop: CancellationToken,
    /// Disabled by a reload; a new instance of the same service starts only once this one
    /// has ended (two DHCP servers must never overlap).
    stopping: bool,
}

async fn supervise(path: &Path, config: Config) -> Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let db_path = officebox_store::state_db(&config.data_dir);
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path)).await??;
    info!(
        message = "officebox starting",
        config = %path.display(),
        data_dir = %config.data_dir.display(),
        schema = db.schema_version()?,
        mode = config.security.mode.name(),
    );
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;

    for advice in officebox_config::derive::advice(&config) {
        warn!(message = "config", %advice);
    }
    // The decoy hash for logins that do not exist is made now, beside the start, so that
    // the first such login takes no longer to refuse than the next
    // (officebox_secrets::login; a check that comes first waits for it).
    drop(tokio::task::spawn_blocking(
        officebox_secrets::login::prepare,
    ));
    let (tx, rx) = watch::channel(Arc::new(config));
    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<(&'static str, Result<()>)> = JoinSet::new();
    let mut running: Vec<Instance> = Vec::new();
    start_enabled(&tx.borrow(), &rx, &shutdown, &mut tasks, &mut running);
    settle_memory();
    info!(
        message = "officebox running",
        services = %running.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
    );

    let mut failed = false;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(path, &tx, &rx, &shutdown, &mut tasks, &mut running).await,
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            Some(done) = tasks.join_next_with_id() => match done {
                Ok((id, (_, Ok(())))) => {
                    running.retain(|i| i.id != id);
                    // A service disabled and enabled again starts once its old instance is gone.
                    start_enabled(&tx.borrow(), &rx, &shutdown, &mut tasks, &mut running);
                }
                Ok((_, (name, Err(e)))) => {
                    error!(message = "service failed; stopping officebox", service = name, error = %format!("{e:#}"));
                    failed = true;
                    break;
                }
                Err(e) => {
                    error!(message = "service task panicked; stopping officebox", error = %e);
                    failed = true;
                    break;
                }
            },
        }
    }

    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(e))) = done {
                warn!(message = "service stopped with an error", service = name, error = %format!("{e:#}"));
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("some services did not stop in time; leaving them");
        tasks.abort_all();
    }
    drop(db);
    info!("officebox stopped");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Once services have built their state (a few seconds after a start or reload), gives the
/// memory freed meanwhile back to the system.
fn settle_memory() {
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = tokio::task::spawn_blocking(crate::memory::release_free_memory).await;
    });
}

fn start_enabled(
    config: &Config,
    rx: &watch::Receiver<Arc<Config>>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<(&'static str, Result<()>)>,
    running: &mut Vec<Instance>,
) {
    for spec in SERVICES {
        if !(spec.enabled)(config) || running.iter().any(|i| i.name == spec.name) {
            continue;
        }
        let stop = shutdown.child_token();
        let fut = (spec.start)(rx.clone(), stop.clone());
        let name = spec.name;
        let id = tasks.spawn(async move { (name, fut.await) }).id();
        running.push(Instance {
            name,
            id,
            stop,
            stopping: false,
        });
        info!(message = "service started", service = name);
    }
}

/// Reads the file again; an invalid file changes nothing. Services see the new snapshot
/// through the watch channel; services switched on or off are started or stopped here.
async fn reload(
    path: &Path,
    tx: &watch::Sender<Arc<Config>>,
    rx: &watch::Receiver<Arc<Config>>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<(&'static str, Result<()>)>,
    running: &mut Vec<Instance>,
) {
    info!(message = "SIGHUP: reloading", config = %path.display());
    let path_buf = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || officebox_config::load(&path_buf)).await;
    let new = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(LoadError::Invalid(diags))) => {
            error!(
                message = "reload refused: the new config is invalid; keeping the running one",
                problems = diags.0.len()
            );
            for d in &diags.0 {
                error!("{d}");
            }
            return;
        }
        Ok(Err(e)) => {
            error!(message = "reload refused; keeping the running config", error = %e);
            return;
        }
        Err(e) => {
            error!(message = "reload failed", error = %e);
            return;
        }
    };
    let mut new = new;
    if new.data_dir != tx.borrow().data_dir {
        // The services keep the state they opened: a new data_dir waits for a restart.
        warn!("data_dir changed; it takes effect at the next start");
        new.data_dir = tx.borrow().data_dir.clone();
    }
    // Stop services that are now disabled, publish, then start newly enabled ones.
    for i in running.iter_mut().filter(|i| !i.stopping) {
        let enabled = SERVICES
            .iter()
            .any(|s| s.name == i.name && (s.enabled)(&new));
        if !enabled {
            info!(message = "service disabled by reload", service = i.name);
            i.stop.cancel();
            i.stopping = true;
        }
    }
    tx.send_replace(Arc::new(new));
    start_enabled(&tx.borrow(), rx, shutdown, tasks, running);
    settle_memory();
    info!("reload applied");
}
