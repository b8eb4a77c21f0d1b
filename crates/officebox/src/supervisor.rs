//! The supervisor: starts one task per enabled service, publishes config snapshots to them,
//! reloads on SIGHUP (or when the admin pages ask, through a channel that answers whether
//! the new config was applied) and stops everything on SIGINT/SIGTERM within a deadline.
//!
//! Only this module touches signals. Services take a `watch::Receiver<Arc<Config>>` and a
//! cancellation token; they apply each published config themselves and return when the
//! token is cancelled.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use officebox_config::{Config, LoadError};
use officebox_store::Db;
use officebox_web::{ReloadRequest, Reloaded, WebContext};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long services get to stop after SIGINT/SIGTERM.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

type ServiceFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Whether a config enables a service.
type Enabled = fn(&Config) -> bool;

/// What a starting service is handed.
struct Handles {
    config: watch::Receiver<Arc<Config>>,
    stop: CancellationToken,
    /// The config file and the reload channel, for the admin pages.
    web: WebContext,
}

/// A service the supervisor can run.
struct ServiceSpec {
    name: &'static str,
    enabled: Enabled,
    start: fn(Handles) -> ServiceFuture,
}

/// Every service built into this officebox.
const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "net",
        enabled: |c| c.network.manage,
        start: |h| {
            Box::pin(async move { Ok(officebox_net::manage::serve(h.config, h.stop).await?) })
        },
    },
    ServiceSpec {
        name: "dns",
        enabled: |c| c.dns.enabled,
        start: |h| Box::pin(async move { Ok(officebox_dns::serve(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "wan-dhcp",
        enabled: officebox_dhcp::wan_client_enabled,
        start: |h| Box::pin(async move { Ok(officebox_dhcp::serve_wan(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "dhcp",
        enabled: |c| c.dhcp.enabled,
        start: |h| Box::pin(async move { Ok(officebox_dhcp::serve(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "mail",
        enabled: |c| c.mail.enabled,
        start: |h| Box::pin(async move { Ok(officebox_mail::serve(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "phone",
        enabled: |c| c.phone.enabled,
        start: |h| Box::pin(async move { Ok(officebox_voice::serve(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "web",
        enabled: |c| c.web.enabled,
        start: |h| {
            Box::pin(async move { Ok(officebox_web::serve(h.config, h.web, h.stop).await?) })
        },
    },
    ServiceSpec {
        name: "vpn",
        enabled: |c| c.vpn.enabled,
        start: |h| Box::pin(async move { Ok(officebox_vpn::serve(h.config, h.stop).await?) }),
    },
    ServiceSpec {
        name: "backup",
        enabled: |c| c.backup.enabled,
        start: |h| Box::pin(crate::backup::nightly(h.config, h.web.config_path, h.stop)),
    },
    ServiceSpec {
        name: "ntp",
        enabled: |c| c.ntp.enabled,
        start: |h| Box::pin(async move { Ok(officebox_net::ntp::serve(h.config, h.stop).await?) }),
    },
];

pub fn run(path: &Path) -> Result<ExitCode> {
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
    // Held until officebox stops: no second officebox, and no restore, on the same data.
    let _lock = crate::backup::lock_data_dir(&config.data_dir)?;
    let db_path = officebox_store::state_db(&config.data_dir);
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path)).await??;
    // The domain's DKIM keys exist before the DNS service builds the zone and before the
    // first message can leave (the mail service makes them too when it is switched on
    // later by a reload).
    if config.mail.enabled {
        let db_path = officebox_store::state_db(&config.data_dir);
        let made = tokio::task::spawn_blocking(move || {
            let db = Db::open(&db_path)?;
            anyhow::Ok(officebox_secrets::dkim::ensure(
                &db,
                officebox_store::unix_now(),
            )?)
        })
        .await?;
        match made {
            Ok(true) => info!(message = "made the domain's DKIM keys (published in the zone)"),
            Ok(false) => {}
            Err(error) => {
                warn!(message = "cannot make the DKIM keys; mail leaves unsigned", %error)
            }
        }
    }
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
    // The admin pages edit this file (an absolute path: the process may change directory)
    // and ask for a reload through `reloads`, which answers whether it was applied.
    let (reload_tx, mut reloads) = mpsc::channel::<ReloadRequest>(4);
    let web = WebContext {
        config_path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        reload: reload_tx,
    };
    let mut tasks: JoinSet<(&'static str, Result<()>)> = JoinSet::new();
    let mut running: Vec<Instance> = Vec::new();
    let mut s = Started {
        rx: &rx,
        shutdown: &shutdown,
        web: &web,
        tasks: &mut tasks,
        running: &mut running,
    };
    s.start_enabled(&tx.borrow());
    settle_memory();
    let services = s
        .running
        .iter()
        .map(|i| i.name)
        .collect::<Vec<_>>()
        .join(", ");
    info!(message = "officebox running", %services);
    let systemd = crate::notify::Systemd::from_env();
    if let Some(sd) = &systemd {
        sd.tell(&format!("READY=1\nSTATUS=running: {services}"));
    }
    // The watchdog is fed from this loop: a supervisor stuck anywhere stops feeding it.
    let watchdog_every = systemd
        .as_ref()
        .and_then(|sd| sd.watchdog)
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_every);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut failed = false;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!(message = "SIGHUP: reloading", config = %path.display());
                reload_telling(&mut s, path, &tx, systemd.as_ref()).await;
            }
            Some(answer) = reloads.recv() => {
                info!(message = "the admin pages ask for a reload", config = %path.display());
                let outcome = reload_telling(&mut s, path, &tx, systemd.as_ref()).await;
                // The page may have given up waiting; the reload stands either way.
                let _ = answer.send(outcome);
            }
            _ = watchdog.tick(), if systemd.as_ref().is_some_and(|sd| sd.watchdog.is_some()) => {
                if let Some(sd) = &systemd {
                    sd.tell("WATCHDOG=1");
                }
            }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            Some(done) = s.tasks.join_next_with_id() => match done {
                Ok((id, (_, Ok(())))) => {
                    s.running.retain(|i| i.id != id);
                    // A service disabled and enabled again starts once its old instance is gone.
                    s.start_enabled(&tx.borrow());
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

    if let Some(sd) = &systemd {
        sd.tell("STOPPING=1");
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

/// A reload, told to systemd: `RELOADING=1` before, `READY=1` after (with why, when
/// the new file was refused and the running config kept).
async fn reload_telling(
    s: &mut Started<'_>,
    path: &Path,
    tx: &watch::Sender<Arc<Config>>,
    systemd: Option<&crate::notify::Systemd>,
) -> Reloaded {
    if let Some(sd) = systemd {
        sd.reloading();
    }
    let outcome = s.reload(path, tx).await;
    if let Some(sd) = systemd {
        match &outcome {
            Reloaded::Applied => sd.tell("READY=1\nSTATUS=running; reload applied"),
            Reloaded::Refused(_) => {
                sd.tell(
                    "READY=1\nSTATUS=running; a reload was refused: the config file has problems",
                );
            }
        }
    }
    outcome
}

/// Once services have built their state (a few seconds after a start or reload), gives the
/// memory freed meanwhile back to the system.
fn settle_memory() {
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = tokio::task::spawn_blocking(crate::memory::release_free_memory).await;
    });
}

/// What starting and stopping services needs, borrowed from `supervise`.
struct Started<'a> {
    rx: &'a watch::Receiver<Arc<Config>>,
    shutdown: &'a CancellationToken,
    web: &'a WebContext,
    tasks: &'a mut JoinSet<(&'static str, Result<()>)>,
    running: &'a mut Vec<Instance>,
}

impl Started<'_> {
    fn start_enabled(&mut self, config: &Config) {
        for spec in SERVICES {
            if !(spec.enabled)(config) || self.running.iter().any(|i| i.name == spec.name) {
                continue;
            }
            let stop = self.shutdown.child_token();
            let fut = (spec.start)(Handles {
                config: self.rx.clone(),
                stop: stop.clone(),
                web: self.web.clone(),
            });
            let name = spec.name;
            let id = self.tasks.spawn(async move { (name, fut.await) }).id();
            self.running.push(Instance {
                name,
                id,
                stop,
                stopping: false,
            });
            info!(message = "service started", service = name);
        }
    }

    /// Reads the file again; an invalid file changes nothing (and the answer says why).
    /// Services see the new snapshot through the watch channel; services switched on or
    /// off are started or stopped here. SIGHUP and the admin pages both come here.
    async fn reload(&mut self, path: &Path, tx: &watch::Sender<Arc<Config>>) -> Reloaded {
        let path_buf: PathBuf = path.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || officebox_config::load(&path_buf)).await;
        let mut new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(LoadError::Invalid(diags))) => {
                error!(
                    message = "reload refused: the new config is invalid; keeping the running one",
                    problems = diags.0.len()
                );
                for d in &diags.0 {
                    error!("{d}");
                }
                return Reloaded::Refused(diags.to_string());
            }
            Ok(Err(e)) => {
                error!(message = "reload refused; keeping the running config", error = %e);
                return Reloaded::Refused(e.to_string());
            }
            Err(e) => {
                error!(message = "reload failed", error = %e);
                return Reloaded::Refused(format!("the reload failed: {e}"));
            }
        };
        if new.data_dir != tx.borrow().data_dir {
            // The services keep the state they opened: a new data_dir waits for a restart.
            warn!("data_dir changed; it takes effect at the next start");
            new.data_dir = tx.borrow().data_dir.clone();
        }
        // Stop services that are now disabled, publish, then start newly enabled ones.
        for i in self.running.iter_mut().filter(|i| !i.stopping) {
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
        self.start_enabled(&tx.borrow());
        settle_memory();
        info!("reload applied");
        Reloaded::Applied
    }
}
