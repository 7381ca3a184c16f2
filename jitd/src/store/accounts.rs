//! Ephemeral accounts jitd made: a row per account, written *before* `useradd` runs (state
//! `creating`), marked `made` once the account is there, and `removed` after `userdel`, but
//! never deleted: the highest uid ever given is where the next one starts, so no uid is
//! given twice. An account found in jitd's range that no grant made is recorded too
//! (request 0), removed.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Its row is written; `groupadd`/`useradd` may or may not have run.
    Creating,
    /// The account is there, with its keys.
    Made,
    /// `userdel` removed it.
    Removed,
}

impl AccountState {
    fn as_str(self) -> &'static str {
        match self {
            AccountState::Creating => "creating",
            AccountState::Made => "made",
            AccountState::Removed => "removed",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<AccountState> {
        [
            AccountState::Creating,
            AccountState::Made,
            AccountState::Removed,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| super::bad_column("state", format!("unknown account state '{s}'")))
    }
}

/// One account jitd answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// The grant it was made for (0: found in jitd's range, made by no grant).
    pub request_id: u64,
    pub name: String,
    pub uid: u32,
    /// Its home as `useradd` made it (empty until made).
    pub home: String,
    pub state: AccountState,
    pub created_at: i64,
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        request_id: u64::try_from(r.get::<_, i64>(0)?)
            .map_err(|_| super::bad_column("request_id", "negative".into()))?,
        name: r.get(1)?,
        uid: r.get(2)?,
        home: r.get(3)?,
        state: AccountState::parse(&r.get::<_, String>(4)?)?,
        created_at: r.get(5)?,
    })
}

const COLUMNS: &str = "request_id, name, uid, home, state, created_at";

/// The accounts not yet removed, oldest first.
pub fn live_accounts(conn: &Connection) -> Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE state != 'removed' ORDER BY id"
    ))?;
    let rows = stmt.query_map([], account_row)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Into::into)
}

/// The account made for request `id`, if any (removed or not).
pub fn account_of(conn: &Connection, id: u64) -> Result<Option<AccountRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM accounts WHERE request_id = ?1 AND request_id != 0 \
                 ORDER BY id DESC LIMIT 1"
            ),
            params![super::to_i64(id)?],
            account_row,
        )
        .optional()?)
}

/// The uid after every uid jitd ever gave (the range's first if none). Accounts found in
/// the range and removed do not move it (one planted at the range's top would end it);
/// their uids are stepped over ([`account_uid_recorded`]).
pub fn next_account_uid(conn: &Connection, first: u32) -> Result<u32> {
    let max: Option<u32> = conn.query_row(
        "SELECT max(uid) FROM accounts WHERE request_id != 0",
        [],
        |r| r.get(0),
    )?;
    Ok(max.map_or(first, |m| m.saturating_add(1).max(first)))
}

/// Whether `uid` was ever given or recorded (never given again).
pub fn account_uid_recorded(conn: &Connection, uid: u32) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM accounts WHERE uid = ?1",
        params![uid],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Records an account about to be made for request `id`.
pub fn insert_account(tx: &Transaction<'_>, id: u64, name: &str, uid: u32, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO accounts (request_id, name, uid, state, created_at) \
         VALUES (?1, ?2, ?3, 'creating', ?4)",
        params![super::to_i64(id)?, name, uid, now],
    )?;
    Ok(())
}

/// Records an account found in jitd's range that no grant made (already removed, or about
/// to be): its uid is never given. One recorded before keeps its row.
pub fn record_foreign_account(tx: &Transaction<'_>, name: &str, uid: u32, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO accounts (request_id, name, uid, state, created_at, removed_at) \
         VALUES (0, ?1, ?2, 'removed', ?3, ?3)",
        params![name, uid, now],
    )?;
    Ok(())
}

pub fn set_account_made(tx: &Transaction<'_>, uid: u32, home: &str) -> Result<()> {
    tx.execute(
        "UPDATE accounts SET state = 'made', home = ?2 WHERE uid = ?1",
        params![uid, home],
    )?;
    Ok(())
}

pub fn set_account_removed(tx: &Transaction<'_>, uid: u32, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE accounts SET state = 'removed', removed_at = ?2 WHERE uid = ?1",
        params![uid, now],
    )?;
    Ok(())
}

/// How many accounts jitd has made and not yet removed.
pub fn live_account_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM accounts WHERE state != 'removed'",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}
