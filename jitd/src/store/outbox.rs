//! The notification outbox: one row per event and notifier, written in the transaction that
//! made the event, so a delivery is never lost to a crash between a decision and its
//! notification. Delivered rows are removed (the audit trail keeps every attempt); rows
//! given up after their last attempt are kept a while, for `jitctl status`.

use super::{to_i64, u64_col};
use crate::error::Result;
use rusqlite::{Connection, Transaction, params};

/// How long a delivery given up is kept (and reported by `jitctl status` for a day).
const GIVEN_UP_KEPT_SECS: i64 = 30 * 86_400;
/// A delivery given up is reported this long.
const GIVEN_UP_REPORTED_SECS: i64 = 86_400;

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: u64,
    pub notifier: String,
    pub audit_seq: u64,
    pub event: String,
    pub request_id: u64,
    pub body: String,
    pub attempts: u32,
}

/// How one notifier stands, when something is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierHealth {
    pub notifier: String,
    /// Deliveries still queued after at least one failed attempt.
    pub retrying: u32,
    /// Deliveries given up in the last day.
    pub given_up: u32,
    pub last_error: String,
    pub last_failed_at: i64,
}

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: u64_col(r, "id")?,
        notifier: r.get("notifier")?,
        audit_seq: u64_col(r, "audit_seq")?,
        event: r.get("event")?,
        request_id: u64_col(r, "request_id")?,
        body: r.get("body")?,
        attempts: r.get("attempts")?,
    })
}

/// Queues `body` (an event document) for `notifier`, due at once.
pub fn enqueue(
    tx: &Transaction<'_>,
    notifier: &str,
    audit_seq: u64,
    event: &str,
    request_id: u64,
    body: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO outbox (notifier, audit_seq, event, request_id, body, created_at, \
         updated_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
    )?
    .execute(params![
        notifier,
        to_i64(audit_seq)?,
        event,
        to_i64(request_id)?,
        body,
        now
    ])?;
    Ok(())
}

/// Queued deliveries due at `now`, oldest first, at most `limit`: for each notifier and
/// request only the oldest queued one, so a notifier gets each request's events in the
/// order they happened (a `decided` never before its `submitted`, even while that one is
/// retried), and one request's failing delivery holds up no other request's.
pub fn outbox_due(conn: &Connection, now: i64, limit: u32) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, notifier, audit_seq, event, request_id, body, attempts FROM outbox \
         WHERE state = 'queued' AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM outbox AS \
         earlier WHERE earlier.notifier = outbox.notifier AND earlier.request_id = \
         outbox.request_id AND earlier.state = 'queued' AND earlier.id < outbox.id) \
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], outbox_row)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Into::into)
}

/// Queued delivery `id`, if it is queued.
pub fn outbox_get(conn: &Connection, id: u64) -> Result<Option<OutboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, notifier, audit_seq, event, request_id, body, attempts FROM outbox \
         WHERE state = 'queued' AND id = ?1",
    )?;
    let mut rows = stmt.query_map(params![to_i64(id)?], outbox_row)?;
    Ok(rows.next().transpose()?)
}

/// Leases queued delivery `id` to the notifier agent until `until`: not due again before.
pub fn outbox_lease(tx: &Transaction<'_>, id: u64, until: i64) -> Result<()> {
    tx.execute(
        "UPDATE outbox SET next_at = ?1 WHERE id = ?2 AND state = 'queued'",
        params![until, to_i64(id)?],
    )?;
    Ok(())
}

/// When the next queued delivery is due, if any is queued.
pub fn outbox_next_at(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT min(next_at) FROM outbox WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )?)
}

/// A delivery that succeeded: gone from the outbox.
pub fn outbox_delivered(tx: &Transaction<'_>, id: u64) -> Result<()> {
    tx.execute("DELETE FROM outbox WHERE id = ?1", params![to_i64(id)?])?;
    Ok(())
}

/// A failed attempt: tried again at `next_at`, or given up (`next_at` None).
pub fn outbox_failed(
    tx: &Transaction<'_>,
    id: u64,
    attempts: u32,
    next_at: Option<i64>,
    error: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE outbox SET attempts = ?1, next_at = ?2, last_error = ?3, updated_at = ?4, \
         state = ?5 WHERE id = ?6",
        params![
            attempts,
            next_at.unwrap_or(now),
            error,
            now,
            if next_at.is_some() {
                "queued"
            } else {
                "given-up"
            },
            to_i64(id)?
        ],
    )?;
    tx.execute(
        "DELETE FROM outbox WHERE state = 'given-up' AND updated_at < ?1",
        params![now.saturating_sub(GIVEN_UP_KEPT_SECS)],
    )?;
    Ok(())
}

/// Deliveries of notifiers the policy no longer has: given up (nothing would ever run them).
pub fn outbox_orphans(tx: &Transaction<'_>, known: &[&str], now: i64) -> Result<usize> {
    let mut stmt =
        tx.prepare_cached("SELECT DISTINCT notifier FROM outbox WHERE state = 'queued'")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut n = 0;
    for name in names.iter().filter(|n| !known.contains(&n.as_str())) {
        n += tx.execute(
            "UPDATE outbox SET state = 'given-up', updated_at = ?1, \
             last_error = 'the notifier is no longer in the policy' \
             WHERE notifier = ?2 AND state = 'queued'",
            params![now, name],
        )?;
    }
    Ok(n)
}

/// Notifiers with failed deliveries still queued or given up in the last day.
pub fn notifier_health(conn: &Connection, now: i64) -> Result<Vec<NotifierHealth>> {
    let mut stmt = conn.prepare_cached(
        "SELECT notifier, \
           sum(state = 'queued') AS retrying, \
           sum(state = 'given-up') AS given_up, \
           max(updated_at) AS last_at \
         FROM outbox WHERE attempts > 0 AND (state = 'queued' OR updated_at >= ?1) \
         GROUP BY notifier ORDER BY notifier",
    )?;
    let rows = stmt
        .query_map(params![now.saturating_sub(GIVEN_UP_REPORTED_SECS)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (notifier, retrying, given_up, last_failed_at) in rows {
        let last_error: String = conn.query_row(
            "SELECT last_error FROM outbox WHERE notifier = ?1 AND attempts > 0 \
             ORDER BY updated_at DESC, id DESC LIMIT 1",
            params![notifier],
            |r| r.get(0),
        )?;
        out.push(NotifierHealth {
            notifier,
            retrying,
            given_up,
            last_error,
            last_failed_at,
        });
    }
    Ok(out)
}

/// The pending request was announced as escalated.
pub fn mark_escalated(tx: &Transaction<'_>, id: u64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE requests SET escalated_at = ?1 WHERE id = ?2",
        params![now, to_i64(id)?],
    )?;
    Ok(())
}

/// The active grant was announced as ending soon, for the end it has now.
pub fn mark_ending_soon(tx: &Transaction<'_>, id: u64, not_after: i64) -> Result<()> {
    tx.execute(
        "UPDATE requests SET ending_soon_for = ?1 WHERE id = ?2",
        params![not_after, to_i64(id)?],
    )?;
    Ok(())
}
