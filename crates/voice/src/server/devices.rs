//! Provisioned phones sign in with their MAC as digest user name and a password of their
//! own (`officebox_secrets::provision`), never the user's. The secrets are in the state
//! database, written by the provisioning server; the server keeps a copy, read again
//! with the call forwarding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use officebox_config::Config;
use officebox_config::model::User;
use officebox_store::Db;
use tracing::warn;

use super::State;

/// Each provisioned phone's secret, by MAC (12 lowercase hex digits).
pub(super) type Table = Mutex<HashMap<String, String>>;

/// The user and digest HA1s (MD5, SHA-256) of the assigned phone signing in as `name`,
/// when there is one and it has its secret.
pub(super) fn credentials<'c>(
    state: &State,
    config: &'c Config,
    name: &str,
) -> Option<(&'c User, String, String)> {
    let device = config.phone.devices.iter().find(|d| d.name() == name)?;
    let user = config.users.iter().find(|u| u.login == device.user)?;
    let secret = state
        .devices
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()?;
    let (md5, sha256) = officebox_secrets::provision::sip_ha1s(name, &state.auth.realm, &secret);
    Some((user, md5, sha256))
}

/// Reads the phones' secrets again from the database.
pub(super) async fn reload(state: &Arc<State>, db: &Arc<Mutex<Db>>) {
    let db = Arc::clone(db);
    let read = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .provisioned_phones()
    })
    .await;
    match read {
        Ok(Ok(rows)) => {
            *state.devices.lock().unwrap_or_else(PoisonError::into_inner) =
                rows.into_iter().map(|p| (p.mac, p.secret)).collect();
        }
        Ok(Err(error)) => warn!(message = "phone: cannot read the provisioned phones", %error),
        Err(_) => {}
    }
}
