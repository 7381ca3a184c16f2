//! The notification outbox as the core sees it: deliveries handed to the notifier agent
//! (leased, so one it never reports comes back), and each attempt's result recorded with
//! its audit record in one transaction (see [`crate::outbox`]).

use super::*;
use crate::outbox::Attempt;
use crate::store::OutboxRow;
use jit_proto::Delivery;

/// A delivery is leased to the agent for its notifier's timeout and this much more.
const LEASE_SECS: i64 = 60;
/// The agent asks at least every 30 s while it runs: this long without a question, and it
/// is not running.
const AGENT_SILENT_AFTER_SECS: i64 = 90;

impl Core {
    /// The policy's notifier `name` as it is now (None: no longer in the policy).
    fn notifier(&self, name: &str) -> Option<crate::policy::Notifier> {
        self.policy
            .notifiers
            .iter()
            .find(|n| n.name == name)
            .cloned()
    }

    /// Deliveries due now, at most `limit`, leased to the caller; and when the next queued
    /// one is due. A delivery whose notifier is gone from the policy is given up here.
    pub fn take_deliveries(&mut self, limit: u32) -> Result<(Vec<Delivery>, Option<i64>)> {
        let now = self.now();
        let due = store::outbox_due(self.store.conn(), now, limit)?;
        let mut out = Vec::new();
        for row in due {
            let Some(n) = self.notifier(&row.notifier) else {
                self.delivery_done(
                    &row,
                    None,
                    &Attempt::Rejected("the notifier is no longer in the policy".into()),
                    &Actor::jitd(),
                )?;
                continue;
            };
            let until = now
                .saturating_add(i64::try_from(n.timeout.as_secs()).unwrap_or(i64::MAX / 4))
                .saturating_add(LEASE_SECS);
            self.commit_as(Requests::Untouched, |tx, _| {
                store::outbox_lease(tx, row.id, until)
            })?;
            self.leased.insert(row.id);
            out.push(Delivery {
                id: row.id,
                notifier: n.name.clone(),
                command: n.command.clone(),
                timeout_ms: u64::try_from(n.timeout.as_millis()).unwrap_or(u64::MAX),
                event: row.event.clone(),
                request_id: row.request_id,
                attempt: row.attempts.saturating_add(1),
                body: row.body.clone(),
            });
        }
        Ok((out, store::outbox_next_at(self.store.conn())?))
    }

    /// How many deliveries are due now (at most `limit`), without leasing any. Asked by
    /// the notifier agent only: it shows the agent is alive.
    pub fn deliveries_due_now(&self, limit: u32) -> Result<usize> {
        let now = self.now();
        self.agent_seen
            .store(now, std::sync::atomic::Ordering::Relaxed);
        Ok(store::outbox_due(self.store.conn(), now, limit)?.len())
    }

    /// When the next queued delivery is due (unix seconds), if any is queued.
    pub fn next_delivery(&self) -> Result<Option<i64>> {
        store::outbox_next_at(self.store.conn())
    }

    /// The notifier agent's (`who`) report on delivery `id`: only one handed out to it and
    /// not yet reported on; recorded as the agent's.
    pub fn delivery_report(&mut self, id: u64, result: &Attempt, who: &Actor) -> Result<()> {
        if !self.leased.contains(&id) {
            return Err(Error::NotFound(format!("no delivery {id} in progress")));
        }
        let row = store::outbox_get(self.store.conn(), id)?
            .ok_or_else(|| Error::NotFound(format!("no delivery {id} in progress")))?;
        self.leased.remove(&id);
        let notifier = self.notifier(&row.notifier);
        self.delivery_done(&row, notifier.as_ref(), result, who)
    }

    /// Records one attempt at a delivery: gone from the outbox when it succeeded, due again
    /// after the backoff when it failed, given up after its last attempt. Audited as
    /// `notify`.
    pub(super) fn delivery_done(
        &mut self,
        row: &OutboxRow,
        notifier: Option<&crate::policy::Notifier>,
        result: &Attempt,
        who: &Actor,
    ) -> Result<()> {
        let now = self.now();
        let attempts = row.attempts.saturating_add(1);
        let max = notifier.map_or(0, |n| n.max_attempts);
        let next = match result {
            Attempt::Failed(_) => {
                crate::outbox::retry_after(attempts, max).map(|s| now.saturating_add(s))
            }
            Attempt::Delivered | Attempt::Rejected(_) => None,
        };
        // Users' and programs' text is stored as it came; readers escape it to show it.
        let outcome = match (result, next) {
            (Attempt::Delivered, _) => "delivered".to_string(),
            (Attempt::Failed(e), Some(at)) => {
                format!("failed: {e}; next attempt at {}", format_rfc3339(at))
            }
            (Attempt::Failed(e), None) => format!("failed: {e}; given up"),
            (Attempt::Rejected(e), _) => format!("rejected: {e}; given up (no retry helps)"),
        };
        if let Attempt::Failed(e) | Attempt::Rejected(e) = result {
            tracing::warn!(
                "notifier '{}' failed on {} of request {} (attempt {attempts}): {}",
                row.notifier,
                row.event,
                row.request_id,
                crate::names::escape(e)
            );
        }
        let detail = format!(
            "notifier={} event={} seq={} attempt={attempts} {outcome}",
            row.notifier, row.event, row.audit_seq
        );
        self.commit_as(Requests::Untouched, |tx, recs| {
            match result {
                Attempt::Delivered => store::outbox_delivered(tx, row.id)?,
                Attempt::Failed(e) | Attempt::Rejected(e) => {
                    store::outbox_failed(tx, row.id, attempts, next, e, now)?;
                }
            }
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "notify",
                    request_id: row.request_id,
                    detail,
                },
            )?);
            Ok(())
        })
    }

    /// One line per notifier whose deliveries are failing or were given up lately, and one
    /// when notifiers are configured but the agent that runs them is not asking.
    pub fn notifier_notes(&self) -> Result<Vec<String>> {
        let now = self.now();
        let mut notes: Vec<String> = store::notifier_health(self.store.conn(), now)?
            .into_iter()
            .map(|h| {
                format!(
                    "notifier '{}' is failing: {} delivery(ies) retrying, {} given up in the last \
                     day; last failure at {}: {}",
                    h.notifier,
                    h.retrying,
                    h.given_up,
                    format_rfc3339(h.last_failed_at),
                    h.last_error
                )
            })
            .collect();
        let seen = self.agent_seen.load(std::sync::atomic::Ordering::Relaxed);
        let since = if seen == 0 { self.started_at } else { seen };
        if !self.policy.notifiers.is_empty() && now.saturating_sub(since) > AGENT_SILENT_AFTER_SECS
        {
            notes.push(format!(
                "jit-notifyd has not asked for deliveries since {}{}: notifiers are not run \
                 (start it: systemctl start jit-notifyd, or see the README)",
                format_rfc3339(since),
                if seen == 0 { " (jitd's start)" } else { "" }
            ));
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{actor, ask, dir, world_with};
    use crate::model::{Actor, Kind};
    use crate::outbox::Attempt;
    use crate::policy::Verdict;

    const POLICY: &str = r#"
[[role]]
name = "db"
commands = ["/usr/bin/psql"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "1h"

[[notifier]]
name = "chat"
command = ["/usr/bin/true"]
events = ["submitted", "decided"]
timeout = "10s"
max_attempts = 3
"#;

    fn agent() -> Actor {
        actor("carol")
    }

    /// A world with one request of alice's waiting (its `submitted` event queued).
    fn requested(reason: &str) -> (super::super::tests::World, crate::store::RequestRow) {
        let mut w = world_with(POLICY, &dir(), 1_795_272_000);
        let r = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "db", 600, reason),
                &Verdict::NotRun,
            )
            .unwrap();
        (w, r)
    }

    fn failed() -> Attempt {
        Attempt::Failed("answered 500".into())
    }

    #[test]
    fn given_a_delivery_when_taken_failed_and_retried_then_leased_backed_off_given_up_and_shown() {
        let (mut w, _) = requested("OPS-1");
        let (got, _) = w.core.take_deliveries(10).unwrap();
        assert_eq!(got.len(), 1);
        let d = &got[0];
        assert_eq!(
            (d.notifier.as_str(), d.event.as_str(), d.attempt),
            ("chat", "submitted", 1)
        );
        assert_eq!(d.command, ["/usr/bin/true"]);
        assert_eq!(d.timeout_ms, 10_000);
        assert!(d.body.contains("\"schema\":\"jit.event/1\""));
        // Leased: not handed out again until its timeout and a minute have passed.
        assert!(w.core.take_deliveries(10).unwrap().0.is_empty());
        w.clock.advance(71);
        let again = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(again.len(), 1, "an unreported delivery comes back");
        assert_eq!(again[0].attempt, 1);
        // A failure: due again 5 s later, then 10 s, then given up (3 attempts).
        w.core.delivery_report(d.id, &failed(), &agent()).unwrap();
        assert!(w.core.take_deliveries(10).unwrap().0.is_empty());
        assert!(w.core.notifier_notes().unwrap()[0].contains("notifier 'chat' is failing: 1"));
        w.clock.advance(5);
        let second = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(second[0].attempt, 2);
        w.core.delivery_report(d.id, &failed(), &agent()).unwrap();
        w.clock.advance(10);
        assert_eq!(w.core.take_deliveries(10).unwrap().0[0].attempt, 3);
        w.core.delivery_report(d.id, &failed(), &agent()).unwrap();
        w.clock.advance(3600);
        assert!(w.core.take_deliveries(10).unwrap().0.is_empty(), "given up");
        let notes = w.core.notifier_notes().unwrap();
        assert!(notes[0].contains("1 given up"), "{notes:?}");
        assert!(notes[0].contains("answered 500"), "{notes:?}");
        // Reported once: a second report of the same delivery finds nothing.
        assert!(
            w.core
                .delivery_report(d.id, &Attempt::Delivered, &agent())
                .is_err()
        );
        let trail: Vec<(String, String)> = w
            .core
            .store
            .audit_since(0, "")
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "notify")
            .map(|r| (r.actor, r.detail))
            .collect();
        assert_eq!(trail.len(), 3, "{trail:?}");
        assert!(trail[2].1.ends_with("given up"), "{trail:?}");
        assert_eq!(trail[0].0, "carol", "recorded as the agent's report");
    }

    #[test]
    fn given_a_report_on_a_delivery_never_handed_out_then_refused() {
        let (mut w, r) = requested("OPS-2");
        w.core.deny(&actor("bob"), r.id, "no").unwrap();
        // Two queued, none handed out: no report is taken, for either.
        for id in [1, 2] {
            assert!(
                w.core
                    .delivery_report(id, &Attempt::Delivered, &agent())
                    .is_err()
            );
        }
        assert_eq!(w.core.take_deliveries(10).unwrap().0[0].event, "submitted");
    }

    #[test]
    fn given_a_rejection_when_reported_then_given_up_at_once_and_the_next_event_goes() {
        let (mut w, r) = requested("OPS-3");
        let first = w.core.take_deliveries(10).unwrap().0;
        w.core
            .delivery_report(
                first[0].id,
                &Attempt::Rejected("no such ticket".into()),
                &agent(),
            )
            .unwrap();
        w.core.deny(&actor("bob"), r.id, "no").unwrap();
        let next = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(next[0].event, "decided", "the rejected one is not retried");
        let notes = w.core.notifier_notes().unwrap();
        assert!(notes[0].contains("no such ticket"), "{notes:?}");
    }

    #[test]
    fn given_an_earlier_event_still_retried_when_a_later_one_is_due_then_it_waits_its_turn() {
        let (mut w, r) = requested("OPS-4");
        let first = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(first[0].event, "submitted");
        w.core
            .delivery_report(first[0].id, &Attempt::Failed("down".into()), &agent())
            .unwrap();
        w.core.deny(&actor("bob"), r.id, "no").unwrap();
        // Another request's event is not held up by this one's retries.
        let other = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "db", 600, "OPS-5"),
                &Verdict::NotRun,
            )
            .unwrap();
        let now = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0].request_id, other.id);
        // The decision of the first waits for its submission.
        w.clock.advance(5);
        let next = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].event, "submitted");
        w.core
            .delivery_report(next[0].id, &Attempt::Delivered, &agent())
            .unwrap();
        let last = w.core.take_deliveries(10).unwrap().0;
        assert_eq!(last[0].event, "decided");
    }

    #[test]
    fn given_notifiers_and_no_agent_asking_when_status_is_asked_then_it_says_so() {
        let w = world_with(POLICY, &dir(), 1_795_272_000);
        assert!(w.core.notifier_notes().unwrap().is_empty());
        w.clock.advance(91);
        let notes = w.core.notifier_notes().unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("jit-notifyd has not asked"), "{notes:?}");
        // The agent asks: nothing to say, until it stops asking.
        w.core.deliveries_due_now(10).unwrap();
        assert!(w.core.notifier_notes().unwrap().is_empty());
        w.clock.advance(91);
        assert!(w.core.notifier_notes().unwrap()[0].contains("jit-notifyd has not asked"));
    }
}
