//! Notifier programs (`[[notifier]]`): each event a notifier wants is queued in the state
//! database in the transaction that made it ([`enqueue`]), and handed to the notifier agent
//! (`jit-notifyd`, an unprivileged process outside jitd's sandbox, with the network that
//! jitd has not) over `org.jit.Jitd.Notify1`. The agent runs the program (the event document
//! on standard input, its own process group, a timeout) and reports back; a failure is
//! tried again with backoff ([`retry_after`]) until its attempts are used up. Every attempt
//! is audited (`notify`). jitd never waits on a notifier to decide anything, and a queued
//! delivery survives a restart of either.

use crate::error::Result;
use crate::notices::Notice;
use crate::policy::Policy;
use crate::store;
/// The first retry comes this long after a failure; each next one twice as long after.
pub const FIRST_RETRY_SECS: i64 = 5;
/// The longest wait between two attempts.
pub const MAX_RETRY_SECS: i64 = 3600;

/// Exit status of a notifier program that failed in a way no retry can change (EX_DATAERR
/// of sysexits.h): the delivery is given up at once.
pub const EXIT_REJECTED: i32 = 65;

/// How one attempt at a delivery went, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Failed; tried again after the backoff.
    Failed(String),
    /// Failed in a way no retry can change (the program exited [`EXIT_REJECTED`]): given up at once.
    Rejected(String),
}

/// Queues each notice for every notifier that wants it (in the caller's transaction).
pub fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    policy: &Policy,
    notices: &[Notice],
    now: i64,
) -> Result<()> {
    for n in notices {
        for notifier in policy
            .notifiers
            .iter()
            .filter(|x| x.wants(n.kind, &n.row.role))
        {
            store::enqueue(
                tx,
                &notifier.name,
                n.seq,
                n.kind.as_str(),
                n.row.id,
                &n.body,
                now,
            )?;
        }
    }
    Ok(())
}

/// When attempt `attempts` (1-based) failed, the next one is due this many seconds later;
/// None once `max_attempts` are used up.
pub fn retry_after(attempts: u32, max_attempts: u32) -> Option<i64> {
    if attempts >= max_attempts {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(20);
    Some(
        FIRST_RETRY_SECS
            .saturating_mul(1_i64 << doublings)
            .min(MAX_RETRY_SECS),
    )
}

/// Longest error line kept from a notifier program's output.
const MAX_ERROR: usize = 200;

/// Runs one delivery (in the notifier agent): delivered once the program exited 0, or why
/// not (one line: its status and the last line of its standard error, else of its output:
/// where a traceback or a usage message says what went wrong).
pub fn attempt(d: &jit_proto::Delivery) -> Attempt {
    use crate::validator::{Run, run_program};
    let last_line = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        crate::names::cut(last.trim(), MAX_ERROR)
    };
    let env = [
        ("JIT_NOTIFIER", d.notifier.clone()),
        ("JIT_EVENT", d.event.clone()),
        ("JIT_REQUEST_ID", d.request_id.to_string()),
        ("JIT_ATTEMPT", d.attempt.to_string()),
    ];
    let timeout = std::time::Duration::from_millis(d.timeout_ms);
    match run_program(&d.command, &env, d.body.as_bytes(), timeout) {
        Run::Exited { code: Some(0), .. } => Attempt::Delivered,
        Run::Exited {
            code,
            stdout,
            stderr,
        } => {
            let said = match last_line(&stderr) {
                m if m.is_empty() => last_line(&stdout),
                m => m,
            };
            let status = code.map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit status {c}"),
            );
            let why = if said.is_empty() {
                status
            } else {
                format!("{status}: {said}")
            };
            if code == Some(EXIT_REJECTED) {
                Attempt::Rejected(why)
            } else {
                Attempt::Failed(why)
            }
        }
        Run::TimedOut => Attempt::Failed(format!("timed out after {}s", timeout.as_secs_f32())),
        Run::Failed(e) => Attempt::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_failures_when_retried_then_backoff_doubles_up_to_the_cap_and_stops_at_the_limit() {
        assert_eq!(retry_after(1, 10), Some(5));
        assert_eq!(retry_after(2, 10), Some(10));
        assert_eq!(retry_after(3, 10), Some(20));
        assert_eq!(retry_after(9, 10), Some(1280));
        assert_eq!(retry_after(10, 10), None);
        assert_eq!(retry_after(1, 1), None);
        assert_eq!(retry_after(40, 100), Some(MAX_RETRY_SECS));
        assert_eq!(retry_after(u32::MAX - 1, u32::MAX), Some(MAX_RETRY_SECS));
    }
}
