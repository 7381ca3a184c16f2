//! Notifier programs (`[[notifier]]`): each event a notifier wants is queued in the state
//! database in the transaction that made it ([`enqueue`]), and delivered by a thread of its
//! own ([`run`]): the program gets the event document on standard input, runs in its own
//! process group with a timeout, and is tried again with backoff until it exits 0 or its
//! attempts are used up. Every attempt is audited (`notify`). jitd never waits on a
//! notifier to decide anything, and a queued delivery survives a restart.

use crate::error::Result;
use crate::notices::Notice;
use crate::policy::{Notifier, Policy};
use crate::service::Service;
use crate::store;
use crate::validator::{Run, message_of, run_program};
use std::time::Duration;

/// Deliveries looked at per pass.
const BATCH: u32 = 32;
/// The first retry comes this long after a failure; each next one twice as long after.
pub const FIRST_RETRY_SECS: i64 = 5;
/// The longest wait between two attempts.
pub const MAX_RETRY_SECS: i64 = 3600;
/// The worker looks at the outbox at least this often (a clock step, a missed wake-up).
const MAX_SLEEP: Duration = Duration::from_secs(30);

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

/// What one attempt came to: Ok, or why not (one line).
pub fn attempt(notifier: &Notifier, row: &store::OutboxRow) -> std::result::Result<(), String> {
    let env = [
        ("JIT_NOTIFIER", notifier.name.clone()),
        ("JIT_EVENT", row.event.clone()),
        ("JIT_REQUEST_ID", row.request_id.to_string()),
        ("JIT_ATTEMPT", (row.attempts + 1).to_string()),
    ];
    match run_program(
        &notifier.command,
        &env,
        row.body.as_bytes(),
        notifier.timeout,
    ) {
        Run::Exited { code: Some(0), .. } => Ok(()),
        Run::Exited {
            code,
            stdout,
            stderr,
        } => {
            let said = match message_of(&stderr) {
                m if m.is_empty() => message_of(&stdout),
                m => m,
            };
            let status = code.map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit status {c}"),
            );
            Err(if said.is_empty() {
                status
            } else {
                format!("{status}: {said}")
            })
        }
        Run::TimedOut => Err(format!(
            "timed out after {}s",
            notifier.timeout.as_secs_f32()
        )),
        Run::Failed(e) => Err(e),
    }
}

/// The delivery thread: due deliveries one at a time, outside the state lock, each result
/// recorded (and audited) under it; then sleeps until the next is due or a new one is
/// queued.
pub fn run(svc: &Service) {
    loop {
        let woken = svc.outbox_listen();
        let due = svc.read(|c| c.deliveries_due(BATCH));
        let (due, next) = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("reading the notification outbox failed (will retry): {e}");
                (Vec::new(), None)
            }
        };
        let busy = due.len() == usize::try_from(BATCH).unwrap_or(usize::MAX);
        for (row, notifier) in due {
            let result = match &notifier {
                Some(n) => attempt(n, &row),
                None => Err("the notifier is no longer in the policy".into()),
            };
            if let Err(e) = svc.write(|c| c.delivery_done(&row, notifier.as_ref(), &result)) {
                tracing::error!("recording delivery {} failed (will retry): {e}", row.id);
            }
        }
        if busy {
            continue;
        }
        let now = svc.read(|c| Ok(c.now())).unwrap_or(0);
        let sleep = next.map_or(MAX_SLEEP, |at| {
            Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0)).min(MAX_SLEEP)
        });
        if !sleep.is_zero() {
            woken.wait_timeout(sleep);
        }
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
