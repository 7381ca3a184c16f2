//! Fleet grants applied on this host: which local request holds each fleet request, so an
//! offer seen again changes nothing and an end finds what to revoke.

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

/// Records that fleet request `fleet_id` is held here by local request `id`.
pub fn insert_fleet_grant(tx: &Transaction<'_>, fleet_id: &str, id: u64, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO fleet_grants (fleet_id, request_id, at) VALUES (?1, ?2, ?3)",
        params![fleet_id, super::to_i64(id)?, now],
    )?;
    Ok(())
}
