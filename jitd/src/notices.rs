//! Events for people: what an audit record means to an approver or a requester, as one
//! document (`jit.event/1`) that `jitctl watch`, the terminal notes and every notifier
//! program get alike.
//!
//! Events are derived from the audit records of a transaction, inside it: every event is
//! an audit record first, and the outbox rows of an event commit with the change that made
//! it (see [`crate::outbox`]).

use crate::error::Result;
use crate::model::Kind;
use crate::names::escape;
use crate::policy::{EventKind, Policy};
use crate::store::{self, RequestRow};
use jit_proto::{AuditRecord, EVENT_SCHEMA, State, format_duration, format_rfc3339};
use rusqlite::Connection;
use serde_json::{Value, json};

/// One event, ready to be told.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: EventKind,
    /// The audit record it comes from.
    pub seq: u64,
    /// The request as it stands after the change.
    pub row: RequestRow,
    /// The event document (JSON).
    pub body: String,
    /// One line for a terminal: every text from users escaped.
    pub line: String,
}

/// How an event came out, where that is part of it.
fn outcome(kind: EventKind, rec: &AuditRecord, row: &RequestRow) -> Option<&'static str> {
    match (kind, rec.action.as_str()) {
        (EventKind::Decided, "approve") => Some("approved"),
        (EventKind::Decided, "deny") => Some("denied"),
        (EventKind::Decided, "cancel") => Some("cancelled"),
        (EventKind::Decided, _) => Some("timed-out"),
        (EventKind::Ended, "revoke") => Some("revoked"),
        (EventKind::Ended, "release") => Some("released"),
        (EventKind::Ended, _) if row.state == State::Expired => Some("expired"),
        (EventKind::Ended, _) => Some("ended"),
        _ => None,
    }
}

/// The event an audit record is, if any (`row`: the request after the transaction). A
/// partial approval, a session, a policy reload are not events for people.
fn classify(action: &str, row: &RequestRow) -> Option<EventKind> {
    match action {
        "request" | "request-extension" if row.state == State::Pending => {
            Some(EventKind::Submitted)
        }
        "break-glass" => Some(EventKind::BreakGlass),
        // A break-glass grant is told once, as break-glass.
        "grant" if row.kind != Kind::BreakGlass => Some(EventKind::Granted),
        "approve" if matches!(row.state, State::Active | State::Applied) => {
            Some(EventKind::Decided)
        }
        "deny" | "cancel" => Some(EventKind::Decided),
        // A pending request (or extension) that timed out was never granted.
        "expire" if row.granted_at == 0 => Some(EventKind::Decided),
        "expire" | "revoke" | "release" => Some(EventKind::Ended),
        "escalate" => Some(EventKind::Escalated),
        "ending-soon" => Some(EventKind::EndingSoon),
        "extend" => Some(EventKind::Extended),
        _ => None,
    }
}

/// Whether an audit action can be an event at all (before the request is read).
fn may_be_event(action: &str) -> bool {
    matches!(
        action,
        "request"
            | "request-extension"
            | "break-glass"
            | "grant"
            | "approve"
            | "deny"
            | "cancel"
            | "expire"
            | "revoke"
            | "release"
            | "escalate"
            | "ending-soon"
            | "extend"
    )
}

/// Longest ticket id taken from a reason.
const MAX_TICKET: usize = 64;

/// The ticket a reason carries, by the role's `reason_pattern`: its group named `ticket`,
/// else what it matched, if that is one word (`^(INC|CHG)-[0-9]+` gives `INC-42`; a pattern
/// that matches the whole reason gives none unless it names the group). At most
/// [`MAX_TICKET`] characters, a letter or digit first, then letters, digits and `-_.:/#`,
/// never `..`.
pub fn ticket_of(policy: &Policy, role: &str, reason: &str) -> Option<String> {
    let pattern = policy.role(role).ok()?.reason_pattern.as_ref()?;
    let caps = pattern.captures(reason)?;
    let t = caps.name("ticket").or_else(|| caps.get(0))?.as_str().trim();
    let word = t.len() <= MAX_TICKET
        && t.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !t.contains("..")
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/#".contains(c));
    word.then(|| t.to_string())
}

/// The events of a transaction's audit records, read from inside it.
pub fn derive(
    conn: &Connection,
    policy: &Policy,
    host: &str,
    records: &[AuditRecord],
) -> Result<Vec<Notice>> {
    let mut out = Vec::new();
    for rec in records {
        if rec.request_id == 0 || !may_be_event(&rec.action) {
            continue;
        }
        let Some(row) = store::get(conn, rec.request_id)? else {
            continue;
        };
        let Some(kind) = classify(&rec.action, &row) else {
            continue;
        };
        let approved_by: Vec<String> = store::approvers_of(conn, row.id)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut doc = document(policy, host, kind, rec, &row, &approved_by);
        // The document's fields carry users' text as it is (JSON escapes what it must); the
        // summary is the terminal line, where that text is quoted and escaped.
        let line = line(kind, host, rec, &row, &doc);
        doc["summary"] = Value::String(line.clone());
        out.push(Notice {
            kind,
            seq: rec.seq,
            line,
            body: doc.to_string(),
            row,
        });
    }
    Ok(out)
}

fn time(t: i64) -> Value {
    if t > 0 {
        Value::String(format_rfc3339(t))
    } else {
        Value::Null
    }
}

/// The event document, schema `jit.event/1` (documented in jit.toml(5)).
fn document(
    policy: &Policy,
    host: &str,
    kind: EventKind,
    rec: &AuditRecord,
    row: &RequestRow,
    approved_by: &[String],
) -> Value {
    let role = policy.role(&row.role).ok();
    let escalates_at = role.and_then(|r| r.escalate_after).map_or(0, |after| {
        row.created_at
            .saturating_add(i64::try_from(after).unwrap_or(i64::MAX / 4))
    });
    let escalation_approvers: Vec<String> = role
        .map(|r| r.escalation_approvers.iter().map(|p| p.spec()).collect())
        .unwrap_or_default();
    let pending = row.state == State::Pending;
    let id = row.id;
    json!({
        "schema": EVENT_SCHEMA,
        "seq": rec.seq,
        "event": kind.as_str(),
        "outcome": outcome(kind, rec, row),
        "at": format_rfc3339(rec.at),
        "at_unix": rec.at,
        "host": host,
        "actor": rec.actor,
        "request": {
            "id": id,
            "kind": row.kind.as_str(),
            "extends": (row.extends != 0).then_some(row.extends),
            "user": row.user.as_str(),
            "uid": row.uid,
            "role": row.role.as_str(),
            "reason": row.reason,
            "ticket": ticket_of(policy, &row.role, &row.reason),
            "duration_secs": row.duration_secs,
            "duration": format_duration(row.duration_secs),
            "state": row.state.as_str(),
            "created_at": time(row.created_at),
            "granted_at": time(row.granted_at),
            "not_after": time(row.not_after),
            "pending_until": if pending { time(row.pending_until) } else { Value::Null },
            "escalates_at": if pending { time(escalates_at) } else { Value::Null },
            "approvals_required": row.approvals_required,
            "approved_by": approved_by,
            "approvers": row.approvers,
            "escalation_approvers": escalation_approvers,
            "decided_by": row.decided_by,
            "decision_reason": row.decision_reason,
            "service": row.service,
            "tty": row.tty,
            "rhost": row.rhost,
            "sessions_recorded": row.log_io,
        },
        "commands": if pending {
            json!({
                "approve": format!("jitctl approve {id}"),
                "deny": format!("jitctl deny {id} --reason TEXT"),
                "show": format!("jitctl show {id}"),
            })
        } else if row.state == State::Active {
            json!({
                "show": format!("jitctl show {id}"),
                "revoke": format!("jitctl revoke {id} --reason TEXT"),
                "extend": format!("jitctl extend {id} --by 30m --reason TEXT"),
            })
        } else {
            json!({ "show": format!("jitctl show {id}") })
        },
    })
}

/// Longest piece of a user's text in a line (the document has it whole).
const MAX_QUOTED: usize = 200;

/// A user's text in a line: in double quotes, escaped (hidden characters shown, backslashes
/// doubled), its own quotes as `\"`, so it can never seem to end early and add a command of
/// its own; cut at [`MAX_QUOTED`] characters.
fn quoted(s: &str) -> String {
    let t = crate::names::cut(&escape(s).replace('"', "\\\""), MAX_QUOTED);
    format!("\"{t}\"")
}

/// One line saying the event: who asks for what, for how long, why, where, by when a
/// decision is needed and how to give it. Users' text is [`quoted`].
fn line(kind: EventKind, host: &str, rec: &AuditRecord, row: &RequestRow, doc: &Value) -> String {
    let id = row.id;
    let (user, role) = (row.user.as_str(), escape(&row.role));
    let reason = quoted(&row.reason);
    let host = escape(host);
    let what = if row.kind == Kind::Extension {
        format!(
            "{} more on grant {} of role {role}",
            format_duration(row.duration_secs),
            row.extends
        )
    } else {
        format!("role {role} for {}", format_duration(row.duration_secs))
    };
    let by = |key: &str| doc["request"][key].as_str().unwrap_or("-").to_string();
    let decide = format!(
        "decide by {}: jitctl approve {id} | jitctl deny {id} --reason TEXT",
        by("pending_until")
    );
    let actor = escape(&rec.actor);
    let why = quoted(&row.decision_reason);
    match kind {
        EventKind::Submitted => {
            let esc = match doc["request"]["escalates_at"].as_str() {
                Some(at) => format!(" (escalates at {at})"),
                None => String::new(),
            };
            format!("request {id}: {user} asks for {what} on {host}: {reason}; {decide}{esc}")
        }
        EventKind::Escalated => format!(
            "request {id} escalated: {user} has waited since {} for {what} on {host}: \
             {reason}; {decide}",
            by("created_at")
        ),
        EventKind::Decided => match outcome(kind, rec, row) {
            Some("approved") => {
                format!("request {id} ({user}, {what} on {host}) approved by {actor}")
            }
            Some("denied") => {
                format!("request {id} ({user}, {what} on {host}) denied by {actor}: {why}")
            }
            Some("cancelled") => {
                format!("request {id} ({user}, {what} on {host}) cancelled by {actor}")
            }
            _ => format!("request {id} ({user}, {what} on {host}) timed out without a decision"),
        },
        EventKind::Granted => format!(
            "grant {id}: {user} holds role {role} on {host} until {}",
            by("not_after")
        ),
        EventKind::Extended => format!(
            "grant {id} ({user}, role {role} on {host}) extended until {}",
            by("not_after")
        ),
        EventKind::EndingSoon => format!(
            "grant {id} ({user}, role {role} on {host}) ends at {}; more time: jitctl extend {id} \
             --by 30m --reason TEXT",
            by("not_after")
        ),
        EventKind::Ended => match outcome(kind, rec, row) {
            Some("revoked") => {
                format!("grant {id} ({user}, role {role} on {host}) revoked by {actor}: {why}")
            }
            Some("released") => format!("grant {id} ({user}, role {role} on {host}) released"),
            _ => format!("grant {id} ({user}, role {role} on {host}) expired"),
        },
        EventKind::BreakGlass => format!(
            "BREAK-GLASS grant {id}: {user} took role {role} on {host} until {} without \
             approval: {reason}; review: jitctl review ack {id}",
            by("not_after")
        ),
    }
}

#[cfg(test)]
mod tests;
