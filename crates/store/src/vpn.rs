//! How each site's tunnel is doing, as the VPN service last saw it (soft state: written
//! every few seconds while the tunnels run), for `officebox vpn status` and the pages.

use rusqlite::params;

use crate::{Db, StoreError};

/// One site's tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStatus {
    pub site: String,
    /// Where its box was last heard from (or is sent to).
    pub endpoint: Option<String>,
    /// Unix seconds of the last completed handshake.
    pub handshake_at: Option<i64>,
    /// Bytes carried each way through the tunnel.
    pub sent: u64,
    pub received: u64,
    /// What of its box answered when last asked ("names answer, phones silent").
    pub services: Option<String>,
    pub updated_at: i64,
}

impl Db {
    /// Replaces every site's row with `sites` (one transaction; a site the config
    /// dropped goes with it).
    pub fn set_site_statuses(&self, sites: &[SiteStatus]) -> Result<(), StoreError> {
        let write_err = |e| self.err("save the tunnels' state", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        tx.execute("DELETE FROM vpn_status", [])
            .map_err(write_err)?;
        for s in sites {
            tx.execute(
                "INSERT INTO vpn_status (site, endpoint, handshake_at, sent, received, updated_at, services)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.site,
                    s.endpoint,
                    s.handshake_at,
                    i64::try_from(s.sent).unwrap_or(i64::MAX),
                    i64::try_from(s.received).unwrap_or(i64::MAX),
                    s.updated_at,
                    s.services
                ],
            )
            .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }

    /// Every site's row, by name.
    pub fn site_statuses(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let read_err = |e| self.err("read the tunnels' state", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT site, endpoint, handshake_at, sent, received, updated_at, services
                 FROM vpn_status ORDER BY site",
            )
            .map_err(read_err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(SiteStatus {
                    site: row.get(0)?,
                    endpoint: row.get(1)?,
                    handshake_at: row.get(2)?,
                    sent: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    received: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    updated_at: row.get(5)?,
                    services: row.get(6)?,
                })
            })
            .map_err(read_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sites_rows_are_replaced_as_a_whole() {
        let db = Db::open_in_memory().unwrap();
        let row = |site: &str, sent| SiteStatus {
            site: site.into(),
            endpoint: Some("203.0.113.2:51820".into()),
            handshake_at: Some(1_000),
            sent,
            received: 7,
            services: Some("names answer".into()),
            updated_at: 1_001,
        };
        db.set_site_statuses(&[row("branch", 5), row("annex", 1)])
            .unwrap();
        let got = db.site_statuses().unwrap();
        assert_eq!(got, [row("annex", 1), row("branch", 5)]);
        db.set_site_statuses(&[row("branch", 9)]).unwrap();
        assert_eq!(db.site_statuses().unwrap(), [row("branch", 9)]);
    }
}
