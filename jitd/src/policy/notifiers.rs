//! `[[notifier]]`: programs jitd tells of events (a mail, a chat webhook, a ticket update),
//! and the events themselves as the policy names them.

use super::file::{Ctx, RawNotifier};
use super::validate::{bounded, duration, program_command};
use super::*;
use std::collections::{HashMap, HashSet};

/// How long a notifier may run unless it says otherwise.
pub const DEFAULT_NOTIFIER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a notifier may be given (jitd never waits on it to decide anything, but one
/// delivery at a time runs).
pub const MAX_NOTIFIER_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts at one delivery unless the notifier says otherwise (about 40 minutes of
/// retries with the backoff of [`crate::outbox`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// What happened to a request or grant, as notifiers and `jitctl watch` are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A request (or an extension) waits for approval.
    Submitted,
    /// A pending request waited `escalate_after`: the escalation approvers may decide too.
    Escalated,
    /// A pending request was decided: approved (its last approval), denied, timed out or
    /// cancelled.
    Decided,
    /// A grant started (after its approvals, or at once for a self-service role).
    Granted,
    /// An extension was applied: the grant ends later.
    Extended,
    /// An active grant reaches `[settings] ending_soon` before its end.
    EndingSoon,
    /// A grant ended: expired, revoked or released.
    Ended,
    /// A break-glass grant was taken (active at once, queued for review).
    BreakGlass,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Submitted,
        EventKind::Escalated,
        EventKind::Decided,
        EventKind::Granted,
        EventKind::Extended,
        EventKind::EndingSoon,
        EventKind::Ended,
        EventKind::BreakGlass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Escalated => "escalated",
            EventKind::Decided => "decided",
            EventKind::Granted => "granted",
            EventKind::Extended => "extended",
            EventKind::EndingSoon => "ending-soon",
            EventKind::Ended => "ended",
            EventKind::BreakGlass => "break-glass",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One `[[notifier]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    /// Names it in the outbox, the audit trail and `jitctl status`.
    pub name: String,
    /// Absolute program path and fixed arguments; run without a shell.
    pub command: Vec<String>,
    pub events: Vec<EventKind>,
    /// The roles whose events it gets; empty: every role.
    pub roles: Vec<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
}

impl Notifier {
    /// Whether an event of `kind` on a request for `role` goes to this notifier.
    pub fn wants(&self, kind: EventKind, role: &str) -> bool {
        self.events.contains(&kind)
            && (self.roles.is_empty() || self.roles.iter().any(|r| r == role))
    }
}

/// A notifier's name: what a file name or a log line can carry as it is.
fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn validate(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawNotifier>>,
    roles: &HashMap<String, usize>,
) -> std::result::Result<Vec<Notifier>, PolicyError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for entry in raw {
        let raw = entry.into_inner();
        let name_span = raw.name.span();
        let name = raw.name.into_inner();
        if !valid_name(&name) {
            return Err(ctx.err(
                name_span,
                format!(
                    "[[notifier]] name '{}' must be 1-32 characters: lowercase letters, digits, \
                     '-' and '_', starting with a letter",
                    names::escape(&name)
                ),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(ctx.err(name_span, format!("duplicate [[notifier]] '{name}'")));
        }
        let command = program_command(ctx, &format!("[[notifier]] '{name}' command"), raw.command)?;
        let events = match raw.events {
            None => EventKind::ALL.to_vec(),
            Some(list) => {
                let span = list.span();
                let mut kinds = Vec::new();
                for e in list.into_inner() {
                    let kind = EventKind::parse(e.get_ref()).ok_or_else(|| {
                        ctx.err(
                            e.span(),
                            format!(
                                "[[notifier]] '{name}': unknown event '{}' (known: {})",
                                names::escape(e.get_ref()),
                                EventKind::ALL.map(EventKind::as_str).join(", ")
                            ),
                        )
                    })?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                if kinds.is_empty() {
                    return Err(ctx.err(
                        span,
                        format!("[[notifier]] '{name}': events is empty: it would never run"),
                    ));
                }
                kinds
            }
        };
        let mut role_names = Vec::new();
        if let Some(list) = raw.roles {
            let span = list.span();
            for r in list.into_inner() {
                if !roles.contains_key(r.get_ref().as_str()) {
                    return Err(ctx.err(
                        r.span(),
                        format!(
                            "[[notifier]] '{name}' names unknown role '{}'",
                            names::escape(r.get_ref())
                        ),
                    ));
                }
                if !role_names.contains(r.get_ref()) {
                    role_names.push(r.into_inner());
                }
            }
            if role_names.is_empty() {
                return Err(ctx.err(
                    span,
                    format!(
                        "[[notifier]] '{name}': roles is empty: it would never run (leave it out \
                         for every role)"
                    ),
                ));
            }
        }
        let timeout = match &raw.timeout {
            Some(t) => {
                let d = Duration::from_secs(duration(ctx, "[[notifier]] timeout", t)?);
                if d.is_zero() || d > MAX_NOTIFIER_TIMEOUT {
                    return Err(ctx.err(
                        t.span(),
                        format!(
                            "[[notifier]] '{name}': timeout must be between 1s and {}s",
                            MAX_NOTIFIER_TIMEOUT.as_secs()
                        ),
                    ));
                }
                d
            }
            None => DEFAULT_NOTIFIER_TIMEOUT,
        };
        let max_attempts = bounded(ctx, "[[notifier]] max_attempts", raw.max_attempts, 1, 100)?
            .unwrap_or(DEFAULT_MAX_ATTEMPTS);
        out.push(Notifier {
            name,
            command,
            events,
            roles: role_names,
            timeout,
            max_attempts,
        });
    }
    Ok(out)
}
