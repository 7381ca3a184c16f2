//! Fleet grants applied on this host: which local request holds each fleet request, so an
//! offer seen again changes nothing and an end finds what to revoke; and the outbox of
//! records made here for the fleet agent to publish.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The local request that holds fleet request `fleet_id`, if it was applied here.
pub fn fleet_grant(conn: &Connection, fleet_id: &str) -> Result<Option<u64>> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT request_id FROM fleet_grants WHERE fleet_id = ?1",
            params![fleet_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.and_then(|i| u64::try_from(i).ok()))
}

/// The fleet grants in force here: (fleet request id, local request id).
pub fn fleet_active(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.fleet_id, f.request_id FROM fleet_grants f \
         JOIN requests r ON r.id = f.request_id WHERE r.state = 'active' ORDER BY f.request_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (fleet_id, id) = row?;
        out.extend(u64::try_from(id).ok().map(|id| (fleet_id, id)));
    }
    Ok(out)
}

/// Records that fleet request `fleet_id` is held here by local request `id` (a grant
/// applied again after a suspension replaces the one before).
pub fn insert_fleet_grant(tx: &Transaction<'_>, fleet_id: &str, id: u64, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO fleet_grants (fleet_id, request_id, at) VALUES (?1, ?2, ?3)",
        params![fleet_id, super::to_i64(id)?, now],
    )?;
    Ok(())
}

/// Queues a record for the fleet agent to put at `key`.
pub fn put_fleet_outbox(tx: &Transaction<'_>, key: &str, value: &str, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO fleet_outbox (key, value, at) VALUES (?1, ?2, ?3)",
        params![key, value, now],
    )?;
    Ok(())
}

/// The oldest `limit` records waiting to be published.
pub fn fleet_outbox(conn: &Connection, limit: u32) -> Result<Vec<(String, String)>> {
    let mut st = conn.prepare("SELECT key, value FROM fleet_outbox ORDER BY at, key LIMIT ?1")?;
    let rows = st.query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The record waiting at `key`, if any.
pub fn fleet_outbox_value(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM fleet_outbox WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Forgets a published record (only if it is still the value published).
pub fn fleet_published(tx: &Transaction<'_>, key: &str, value: &str) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM fleet_outbox WHERE key = ?1 AND value = ?2",
        params![key, value],
    )?;
    Ok(n > 0)
}
