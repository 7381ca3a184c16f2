//! Group memberships jitd has taken charge of: one row per (user, group) while any grant
//! gives it, written *before* jitd adds the user to the group, and removed only after jitd
//! took the user out again. `had_before` says the user was a member before jitd touched it:
//! such a membership is never removed.

use crate::error::Result;
use rusqlite::{Connection, Transaction, params};

/// One membership jitd answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub user: String,
    pub group: String,
    /// The user was a member before jitd added anything: never removed by jitd.
    pub had_before: bool,
    pub since: i64,
}

/// Every membership jitd answers for.
pub fn memberships(conn: &Connection) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user, grp, had_before, since FROM memberships ORDER BY user, grp",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Membership {
            user: r.get(0)?,
            group: r.get(1)?,
            had_before: r.get(2)?,
            since: r.get(3)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Into::into)
}

/// Takes charge of (user, group), unless jitd already answers for it.
pub fn take_membership(
    tx: &Transaction<'_>,
    user: &str,
    group: &str,
    had_before: bool,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO memberships (user, grp, had_before, since) VALUES (?1, ?2, ?3, ?4)",
        params![user, group, had_before, now],
    )?;
    Ok(())
}

/// Lets go of (user, group): jitd no longer answers for it.
pub fn drop_membership(tx: &Transaction<'_>, user: &str, group: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM memberships WHERE user = ?1 AND grp = ?2",
        params![user, group],
    )?;
    Ok(())
}

/// How many memberships jitd answers for now.
pub fn membership_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM memberships", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
