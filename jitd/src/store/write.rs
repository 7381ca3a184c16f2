//! Everything a transaction writes: requests, their state changes, approvals, sessions and
//! audit records. Each function runs in the caller's transaction, so a change and its audit
//! record commit together or not at all.

use super::*;

pub fn insert_session(tx: &Transaction<'_>, s: &SessionRow) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO sessions (grant_id, pid, start_time, boot_id, tty) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            to_i64(s.grant_id)?,
            s.pid,
            to_i64(s.start_time)?,
            s.boot_id,
            s.tty
        ],
    )?;
    Ok(())
}

/// Forgets the stored sessions of grant `grant_id`, or only the one of `pid` when given.
pub fn delete_sessions(tx: &Transaction<'_>, grant_id: u64, pid: Option<i32>) -> Result<()> {
    match pid {
        Some(pid) => tx.execute(
            "DELETE FROM sessions WHERE grant_id = ?1 AND pid = ?2",
            params![to_i64(grant_id)?, pid],
        )?,
        None => tx.execute(
            "DELETE FROM sessions WHERE grant_id = ?1",
            params![to_i64(grant_id)?],
        )?,
    };
    Ok(())
}

/// Inserts a request; returns its id (ids are never reused).
pub fn insert_request(tx: &Transaction<'_>, r: &NewRequest) -> Result<u64> {
    tx.execute(
        "INSERT INTO requests (user, uid, role, reason, duration_secs, state, created_at, \
         updated_at, not_after, pending_until, approvals_required, approvers, commands, run_as, \
         reauth, ssh, service, tty, rhost, kind, extends, log_io, granted_at, groups, account, \
         shell, ssh_keys, key_fingerprints) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20, ?21, CASE WHEN ?6 = 'active' THEN ?7 ELSE 0 END, ?22, ?23, ?24, ?25, ?26)",
        params![
            r.user.as_str(),
            r.uid,
            r.role.as_str(),
            r.reason,
            to_i64(r.duration_secs)?,
            r.state.as_str(),
            r.now,
            r.not_after,
            r.pending_until,
            r.approvals_required,
            r.approvers.join("\n"),
            lines(&r.commands),
            lines(&r.run_as),
            r.reauth,
            r.ssh,
            r.service,
            r.tty,
            r.rhost,
            r.kind.as_str(),
            to_i64(r.extends)?,
            r.log_io,
            lines(&r.groups),
            r.account,
            r.shell,
            r.ssh_keys.join("\n"),
            r.key_fingerprints.join("\n"),
        ],
    )?;
    u64::try_from(tx.last_insert_rowid()).map_err(|_| Error::Internal("negative request id".into()))
}

/// One state change of a request.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub id: u64,
    pub from: State,
    pub to: State,
    pub now: i64,
    /// Set when the request becomes active.
    pub not_after: Option<i64>,
    /// Who decided (deny, revoke...) and why; empty keeps what is stored.
    pub decided_by: &'a str,
    pub decision_reason: &'a str,
}

/// Moves a request from `t.from` to `t.to`. Fails (changing nothing) if it is no longer in
/// `t.from`, so two racing decisions cannot both apply.
pub fn transition(tx: &Transaction<'_>, t: &Transition<'_>) -> Result<()> {
    let Transition {
        id,
        from,
        to,
        now,
        not_after,
        decided_by,
        decision_reason,
    } = *t;
    let n = tx.execute(
        "UPDATE requests SET state = ?1, updated_at = ?2, not_after = COALESCE(?3, not_after), \
         granted_at = CASE WHEN ?1 = 'active' THEN ?2 ELSE granted_at END, \
         decided_by = CASE WHEN ?4 = '' THEN decided_by ELSE ?4 END, \
         decision_reason = CASE WHEN ?5 = '' THEN decision_reason ELSE ?5 END \
         WHERE id = ?6 AND state = ?7",
        params![
            to.as_str(),
            now,
            not_after,
            decided_by,
            decision_reason,
            to_i64(id)?,
            from.as_str()
        ],
    )?;
    exactly_one(n, || format!("request {id} is no longer {from}"))
}

/// An update meant for one row that is still in the state it expects: any other count
/// means the row moved on (or never was), and the transaction is refused.
fn exactly_one(changed: usize, why: impl FnOnce() -> String) -> Result<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::WrongState(why()))
    }
}

/// A state change and its audit record, in the caller's transaction.
pub fn transition_audited(
    tx: &Transaction<'_>,
    t: &Transition<'_>,
    ev: &Event<'_>,
) -> Result<AuditRecord> {
    transition(tx, t)?;
    append_audit(tx, ev)
}

/// Moves an active grant's end to `not_after` (an applied extension).
pub fn set_not_after(tx: &Transaction<'_>, id: u64, not_after: i64, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE requests SET not_after = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'active'",
        params![not_after, now, to_i64(id)?],
    )?;
    exactly_one(n, || format!("grant {id} is no longer active"))
}

/// Fixes an active grant's end on the boot clock (see [`RequestRow::boot_deadline_ms`]);
/// written in the same transaction as every change of its `not_after`.
pub fn set_boot_deadline(
    tx: &Transaction<'_>,
    id: u64,
    boot_id: &str,
    deadline_ms: i64,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE requests SET boot_id = ?1, boot_deadline_ms = ?2 WHERE id = ?3 AND state = 'active'",
        params![boot_id, deadline_ms, to_i64(id)?],
    )?;
    exactly_one(n, || format!("grant {id} is no longer active"))
}

/// Records the acknowledgement of a break-glass grant; only once.
pub fn mark_reviewed(
    tx: &Transaction<'_>,
    id: u64,
    by: &str,
    now: i64,
    comment: &str,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE requests SET reviewed_by = ?1, reviewed_at = ?2, review_comment = ?3 \
         WHERE id = ?4 AND kind = 'break-glass' AND reviewed_by = ''",
        params![by, now, comment, to_i64(id)?],
    )?;
    exactly_one(n, || {
        format!("request {id} is not an unreviewed break-glass grant")
    })
}

pub fn add_approval(
    tx: &Transaction<'_>,
    id: u64,
    approver: &Actor,
    now: i64,
    comment: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO approvals (request_id, approver, approver_uid, at, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![to_i64(id)?, approver.name.as_str(), approver.uid, now, comment],
    )?;
    Ok(())
}

/// Appends one record to the hash chain.
pub fn append_audit(tx: &Transaction<'_>, ev: &Event<'_>) -> Result<AuditRecord> {
    let (last_seq, prev) = super::audit_head(tx)?;
    let seq = last_seq + 1;
    let mut rec = AuditRecord {
        seq,
        at: ev.at,
        actor: ev.actor.name.to_string(),
        actor_uid: ev.actor.uid,
        origin: ev.actor.origin.clone(),
        action: ev.action.to_string(),
        request_id: ev.request_id,
        detail: ev.detail.clone(),
        hash: String::new(),
    };
    rec.hash = audit::hash(&prev, &rec);
    tx.execute(
        "INSERT INTO audit (seq, at, actor, actor_uid, action, request_id, detail, prev_hash, \
         hash, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            to_i64(seq)?,
            rec.at,
            rec.actor,
            rec.actor_uid,
            rec.action,
            to_i64(rec.request_id)?,
            rec.detail,
            prev,
            rec.hash,
            rec.origin,
        ],
    )?;
    Ok(rec)
}

/// Removes the records before `next` and makes the chain start there: `prev` is the hash
/// of the last record removed, `sealing` the sealing in force at the cut. Returns how many
/// records went.
pub fn prune_audit(
    tx: &Transaction<'_>,
    next: u64,
    prev: &str,
    sealing: Option<&(String, crate::seal::Schedule, u64)>,
) -> Result<u64> {
    let (key, t0, interval, next_epoch) = match sealing {
        Some((k, s, e)) => (k.as_str(), s.t0, to_i64(s.interval)?, to_i64(*e)?),
        None => ("", 0, 0, 0),
    };
    tx.execute(
        "INSERT OR REPLACE INTO audit_base (id, next_seq, prev_hash, seal_key, seal_t0, \
         seal_interval, seal_next_epoch) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![to_i64(next)?, prev, key, t0, interval, next_epoch],
    )?;
    let removed = tx.execute("DELETE FROM audit WHERE seq < ?1", params![to_i64(next)?])?;
    Ok(u64::try_from(removed).unwrap_or(0))
}
