//! The notification outbox as the core sees it: what is due, and each attempt's result
//! recorded with its audit record in one transaction (see [`crate::outbox`]).

use super::*;
use crate::policy::Notifier;
use crate::store::OutboxRow;

/// Deliveries due, each with its notifier as the policy has it now (None: no longer in it),
/// and when the next queued one is due.
pub type Due = (Vec<(OutboxRow, Option<Notifier>)>, Option<i64>);

impl Core {
    /// Deliveries due now (at most `limit`), each with its notifier as the policy has it now
    /// (None: no longer in the policy), and when the next queued one is due.
    pub fn deliveries_due(&self, limit: u32) -> Result<Due> {
        let now = self.now();
        let due = store::outbox_due(self.store.conn(), now, limit)?
            .into_iter()
            .map(|row| {
                let n = self
                    .policy
                    .notifiers
                    .iter()
                    .find(|n| n.name == row.notifier)
                    .cloned();
                (row, n)
            })
            .collect();
        Ok((due, store::outbox_next_at(self.store.conn())?))
    }

    /// Records one attempt at a delivery: gone from the outbox when it succeeded, due again
    /// after the backoff when it failed, given up after its last attempt. Audited as
    /// `notify`.
    pub fn delivery_done(
        &mut self,
        row: &OutboxRow,
        notifier: Option<&Notifier>,
        result: &std::result::Result<(), String>,
    ) -> Result<()> {
        let now = self.now();
        let attempts = row.attempts.saturating_add(1);
        let max = notifier.map_or(0, |n| n.max_attempts);
        let next = match result {
            Ok(()) => None,
            Err(_) => crate::outbox::retry_after(attempts, max).map(|s| now.saturating_add(s)),
        };
        let outcome = match (result, next) {
            (Ok(()), _) => "delivered".to_string(),
            (Err(e), Some(at)) => format!(
                "failed: {}; next attempt at {}",
                crate::names::escape(e),
                format_rfc3339(at)
            ),
            (Err(e), None) => format!("failed: {}; given up", crate::names::escape(e)),
        };
        if let Err(e) = result {
            tracing::warn!(
                "notifier '{}' failed on {} of request {} (attempt {attempts}): {e}",
                row.notifier,
                row.event,
                row.request_id
            );
        }
        let detail = format!(
            "notifier={} event={} seq={} attempt={attempts} {outcome}",
            row.notifier, row.event, row.audit_seq
        );
        let jitd = Actor::jitd();
        self.commit_as(Requests::Untouched, |tx, recs| {
            match (result, next) {
                (Ok(()), _) => store::outbox_delivered(tx, row.id)?,
                (Err(e), next) => store::outbox_failed(tx, row.id, attempts, next, e, now)?,
            }
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: &jitd,
                    action: "notify",
                    request_id: row.request_id,
                    detail,
                },
            )?);
            Ok(())
        })
    }

    /// One line per notifier whose deliveries are failing or were given up lately.
    pub fn notifier_notes(&self) -> Result<Vec<String>> {
        let now = self.now();
        Ok(store::notifier_health(self.store.conn(), now)?
            .into_iter()
            .map(|h| {
                format!(
                    "notifier '{}' is failing: {} delivery(ies) retrying, {} given up in the last \
                     day; last failure at {}: {}",
                    h.notifier,
                    h.retrying,
                    h.given_up,
                    format_rfc3339(h.last_failed_at),
                    crate::names::escape(&h.last_error)
                )
            })
            .collect())
    }
}
