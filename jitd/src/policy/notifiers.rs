//! `[[notifier]]`: programs jitd tells of events (a mail, a chat webhook, a ticket update),
//! and the events themselves as the policy names them.

use super::file::{Ctx, RawNotifier};
use super::validate::{bounded, duration, program_command};
use super::*;
use std::collections::{HashMap, HashSet};

/// How long a notifier may run unless it says otherwise.
pub const DEFAULT_NOTIFIER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a notifier may be given (jitd never waits on it to decide anything, but a
/// request's next event for that notifier waits for it).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::FakeDirectory;

    const ROLE: &str = "[[role]]\nname = \"db\"\ncommands = [\"/usr/bin/id\"]\n\
                        requesters = [\"alice\"]\nmax_duration = \"1h\"\n";

    fn parse(notifier: &str) -> std::result::Result<Policy, PolicyError> {
        let dir = FakeDirectory::default().user("alice", 1001, &["alice"]);
        Policy::parse("t.toml", &format!("{ROLE}\n[[notifier]]\n{notifier}"), &dir)
    }

    fn refused(notifier: &str, line: usize, needle: &str) {
        match parse(notifier) {
            Ok(_) => panic!("accepted: {notifier}"),
            Err(e) => {
                assert_eq!(e.line, line, "{e}");
                assert!(e.column > 0, "{e}");
                assert!(e.message.contains(needle), "{needle:?} in {e}");
            }
        }
    }

    #[test]
    fn given_a_notifier_when_parsed_then_defaults_fill_what_it_leaves_out() {
        let p =
            parse("name = \"mail\"\ncommand = [\"/usr/bin/true\", \"--to\", \"x@y\"]\n").unwrap();
        let n = &p.notifiers[0];
        assert_eq!(n.name, "mail");
        assert_eq!(n.command, ["/usr/bin/true", "--to", "x@y"]);
        assert_eq!(n.events, EventKind::ALL.to_vec());
        assert!(n.roles.is_empty());
        assert_eq!(n.timeout, DEFAULT_NOTIFIER_TIMEOUT);
        assert_eq!(n.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert!(n.wants(EventKind::Submitted, "db") && n.wants(EventKind::Ended, "other"));
        let p = parse(
            "name = \"chat\"\ncommand = [\"/usr/bin/true\"]\nevents = [\"decided\", \
             \"ending-soon\"]\nroles = [\"db\"]\ntimeout = \"30s\"\nmax_attempts = 3\n",
        )
        .unwrap();
        let n = &p.notifiers[0];
        assert!(n.wants(EventKind::Decided, "db"));
        assert!(!n.wants(EventKind::Submitted, "db"));
        assert_eq!(n.timeout, Duration::from_secs(30));
        assert_eq!(n.max_attempts, 3);
    }

    #[test]
    fn given_bad_notifiers_when_checked_then_each_is_refused_at_its_position() {
        // The [[notifier]] header is line 7; its keys follow.
        refused(
            "name = \"Mail!\"\ncommand = [\"/usr/bin/true\"]\n",
            8,
            "1-32 characters",
        );
        refused("name = \"m\"\ncommand = [\"mail\"]\n", 9, "absolute path");
        refused("name = \"m\"\ncommand = []\n", 9, "must name a program");
        refused(
            "name = \"m\"\ncommand = [\"/nonexistent/x\"]\n",
            9,
            "No such file",
        );
        let plain = tempfile::NamedTempFile::new().unwrap();
        refused(
            &format!("name = \"m\"\ncommand = [\"{}\"]\n", plain.path().display()),
            9,
            "not an executable",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\", \"a\\u001bb\"]\n",
            9,
            "control",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\nevents = [\"submitted\", \"approved\"]\n",
            10,
            "unknown event 'approved'",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\nevents = []\n",
            10,
            "never run",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\nroles = [\"nope\"]\n",
            10,
            "unknown role 'nope'",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\ntimeout = \"5m\"\n",
            10,
            "timeout",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\nmax_attempts = 0\n",
            10,
            "max_attempts",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\nshell = true\n",
            10,
            "unknown field",
        );
        refused(
            "name = \"m\"\ncommand = [\"/usr/bin/true\"]\n[[notifier]]\nname = \"m\"\n\
             command = [\"/usr/bin/true\"]\n",
            11,
            "duplicate [[notifier]] 'm'",
        );
    }

    #[test]
    fn given_ending_soon_out_of_bounds_when_checked_then_refused() {
        let dir = FakeDirectory::default().user("alice", 1001, &["alice"]);
        for bad in ["30s", "2d"] {
            let e = Policy::parse(
                "t.toml",
                &format!("[settings]\nending_soon = \"{bad}\"\n{ROLE}"),
                &dir,
            )
            .unwrap_err();
            assert_eq!(e.line, 2, "{e}");
            assert!(e.message.contains("between 1m and 24h"), "{e}");
        }
        let p = Policy::parse(
            "t.toml",
            &format!("[settings]\nending_soon = \"10m\"\n{ROLE}"),
            &dir,
        )
        .unwrap();
        assert_eq!(p.ending_soon, 600);
    }
}
