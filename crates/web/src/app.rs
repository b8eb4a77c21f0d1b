//! What every request of the admin pages shares: the running config, the sessions, the
//! change waiting for confirmation, the state database, and the supervisor's context.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use officebox_config::Config;
use officebox_store::{Db, StoreError};
use tokio::sync::watch;
use tracing::warn;

use crate::WebContext;
use crate::confirm::Pending;
use crate::session::Sessions;

/// The admin pages' shared state (behind an `Arc`, as axum's router state).
#[derive(Debug)]
pub(crate) struct App {
    config: watch::Receiver<Arc<Config>>,
    pub(crate) sessions: Sessions,
    /// A risky change waiting for confirmation.
    pub(crate) pending: Mutex<Option<Pending>>,
    pub(crate) started: Instant,
    pub(crate) store: Store,
    pub(crate) context: WebContext,
}

pub(crate) type Shared = Arc<App>;

impl App {
    pub(crate) fn new(config: watch::Receiver<Arc<Config>>, context: WebContext) -> App {
        let c = Arc::clone(&config.borrow());
        App {
            sessions: Sessions::new(c.web.session_timeout),
            pending: Mutex::new(None),
            started: Instant::now(),
            store: Store::new(officebox_store::state_db(&c.data_dir)),
            config,
            context,
        }
    }

    /// The config as it runs now.
    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    /// The config file's text, as it is on disk now.
    pub(crate) fn config_text(&self) -> Option<String> {
        std::fs::read_to_string(&self.context.config_path).ok()
    }

    /// The config file's name, for validation messages.
    pub(crate) fn config_name(&self) -> String {
        self.context.config_path.display().to_string()
    }

    pub(crate) fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The web service's one handle on the state database: opened when the service starts
/// (or, if that failed, at the next use), then kept and shared by every request (SQLite calls block, so they run on a blocking thread, one
/// at a time).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    path: PathBuf,
    db: Arc<Mutex<Option<Db>>>,
}

impl Store {
    fn new(path: PathBuf) -> Store {
        Store {
            path,
            db: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on the database; `None` (logged) when it cannot be opened or `f` fails.
    pub(crate) async fn with<R, F>(&self, f: F) -> Option<R>
    where
        F: FnOnce(&Db) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (path, db) = (self.path.clone(), Arc::clone(&self.db));
        let done = tokio::task::spawn_blocking(move || {
            let mut guard = db.lock().unwrap_or_else(PoisonError::into_inner);
            let db = match guard.take() {
                Some(db) => db,
                None => Db::open(&path)?,
            };
            let r = f(&db);
            *guard = Some(db);
            r
        })
        .await;
        match done {
            Ok(Ok(r)) => Some(r),
            Ok(Err(error)) => {
                warn!(message = "web: the state database", %error);
                None
            }
            Err(error) => {
                warn!(message = "web: a state database call failed", %error);
                None
            }
        }
    }
}
