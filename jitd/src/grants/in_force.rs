//! The grants in force, indexed by holder: pam_jit's `Check` comes with every sudo and
//! every ssh login, its session registration with most, and answering them from the
//! database took a SQLite read transaction and a query (0.13-0.4 ms on a cold path, most of
//! what a check cost jitd). The index is rebuilt from the database after every commit (the
//! only way the database changes), before the committing call returns, and swapped in
//! whole, so no reader sees a change half-made; the service answers checks from it
//! without the core's lock. Time is judged at the moment of the check, with the core's
//! clock and the core's rule ([`admits`]): a grant whose end has passed is not in force,
//! whether or not the timer has run yet. If the index cannot be rebuilt, there is none,
//! and everything asks the database again.

use super::{Clock, Core};
use crate::error::Result;
use crate::model::Kind;
use crate::store::RequestRow;
use jit_proto::{GrantCheck, State};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Milliseconds left on an active grant: the wall clock's answer (a step forward ends it
/// early), and never more than the boot clock's answer for the boot it was granted on (a
/// step back does not lengthen it; suspend does not stop it).
pub(super) fn ms_left(clock: &dyn Clock, r: &RequestRow) -> i64 {
    let wall = r
        .not_after
        .saturating_mul(1000)
        .saturating_sub(clock.now_ms());
    match clock.boot_ms() {
        Some(boot) if !r.boot_id.is_empty() && r.boot_id == clock.boot_id() => {
            wall.min(r.boot_deadline_ms.saturating_sub(boot))
        }
        _ => wall,
    }
}

/// Whether `r` is a grant in force now (with `ssh`: of a role that admits ssh logins).
pub(super) fn admits(clock: &dyn Clock, r: &RequestRow, ssh: bool) -> bool {
    r.state == State::Active
        && r.kind != Kind::Extension
        && ms_left(clock, r) > 0
        && (!ssh || r.ssh)
}

/// The answer to a check: the grant in force that lasts longest, if any.
pub(super) fn answer<'a>(in_force: impl Iterator<Item = &'a RequestRow>) -> GrantCheck {
    match in_force.max_by_key(|r| r.not_after) {
        Some(r) => GrantCheck {
            active: true,
            request_id: r.id,
            role: r.role.to_string(),
            not_after: r.not_after,
        },
        None => GrantCheck {
            active: false,
            request_id: 0,
            role: String::new(),
            not_after: 0,
        },
    }
}

/// Every active grant by holder ([`RequestRow::holder`]: the requester, or the grant's
/// account), as of the last change.
pub struct InForce {
    by_user: HashMap<String, Vec<RequestRow>>,
    clock: Arc<dyn Clock>,
}

impl InForce {
    /// What [`Core::check`] answers, without the core.
    pub fn check(&self, user: &str, ssh: bool) -> GrantCheck {
        let held = self
            .by_user
            .get(user)
            .map(Vec::as_slice)
            .unwrap_or_default();
        answer(held.iter().filter(|r| admits(&*self.clock, r, ssh)))
    }
}

/// The current index, shared between the core (which replaces it) and its readers.
#[derive(Default)]
pub struct SharedIndex(RwLock<Option<Arc<InForce>>>);

impl SharedIndex {
    /// The index as of the last commit; `None` if it could not be rebuilt.
    pub fn get(&self) -> Option<Arc<InForce>> {
        match self.0.read() {
            Ok(i) => i.clone(),
            Err(_) => crate::fatal::fatal("the grant index lock was poisoned by a panic"),
        }
    }

    fn set(&self, index: Option<Arc<InForce>>) {
        match self.0.write() {
            Ok(mut slot) => *slot = index,
            Err(_) => crate::fatal::fatal("the grant index lock was poisoned by a panic"),
        }
    }
}

impl InForce {
    /// The user's grants in force now (what [`Core::in_force`] answers).
    pub(super) fn of(&self, user: &str, ssh: bool) -> Vec<RequestRow> {
        let held = self
            .by_user
            .get(user)
            .map(Vec::as_slice)
            .unwrap_or_default();
        held.iter()
            .filter(|r| admits(&*self.clock, r, ssh))
            .cloned()
            .collect()
    }
}

impl Core {
    /// The index shared with readers outside the core's lock.
    pub fn shared_index(&self) -> Arc<SharedIndex> {
        self.index.clone()
    }

    /// Rebuilds the index from the database (after a commit; at start). A failure leaves
    /// no index, said in the log: readers then ask the database.
    pub(super) fn reindex(&mut self) {
        let fresh = match self.in_force_index() {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                tracing::error!("rebuilding the index of grants in force failed: {e}");
                None
            }
        };
        self.index.set(fresh);
    }

    /// The index of grants in force, from the database as it is now.
    pub fn in_force_index(&self) -> Result<InForce> {
        let mut by_user: HashMap<String, Vec<RequestRow>> = HashMap::new();
        for r in self.store.by_state(&[State::Active])? {
            if r.kind != Kind::Extension {
                by_user.entry(r.holder()).or_default().push(r);
            }
        }
        Ok(InForce {
            by_user,
            clock: self.clock.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{actor, ask, world};
    use crate::model::Kind;
    use crate::policy::Verdict;

    /// The index built now answers every check as the core does.
    fn same_answers(w: &super::super::tests::World) {
        let index = w.core.in_force_index().unwrap();
        for user in ["alice", "bob", "carol", "nobody"] {
            for ssh in [false, true] {
                assert_eq!(
                    index.check(user, ssh),
                    w.core.check(user, ssh).unwrap(),
                    "{user} ssh={ssh}"
                );
            }
        }
    }

    #[test]
    fn given_grants_coming_and_going_when_checked_then_the_index_answers_as_the_core() {
        let mut w = world();
        same_answers(&w);
        let short = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "web-restart", 60, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap();
        same_answers(&w);
        // An index built while the grant was in force: time passes, nothing is written, and
        // the index still says what the core says (ended), judged at the check.
        let stale = w.core.in_force_index().unwrap();
        assert!(stale.check("alice", false).active);
        w.clock.advance(61);
        assert!(!stale.check("alice", false).active);
        assert_eq!(
            stale.check("alice", false),
            w.core.check("alice", false).unwrap()
        );
        w.core.expire_due().unwrap();
        same_answers(&w);
        let long = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "web-restart", 600, "OPS-2"),
                &Verdict::NotRun,
            )
            .unwrap();
        assert_ne!(long.id, short.id);
        same_answers(&w);
        // A wall clock stepped back does not lengthen it (the boot clock bounds it).
        w.clock.step_wall(-3600);
        w.clock.advance(601);
        same_answers(&w);
        assert!(
            !w.core
                .in_force_index()
                .unwrap()
                .check("alice", false)
                .active
        );
    }

    #[test]
    fn given_a_grant_revoked_when_the_index_is_rebuilt_then_it_is_gone() {
        let mut w = world();
        let r = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "web-restart", 600, "OPS-3"),
                &Verdict::NotRun,
            )
            .unwrap();
        let before = w.core.in_force_index().unwrap();
        w.core.revoke(&actor("bob"), r.id, "done").ok();
        w.core.release(&actor("alice"), r.id).ok();
        let after = w.core.in_force_index().unwrap();
        assert!(before.check("alice", false).active);
        assert!(!after.check("alice", false).active);
        same_answers(&w);
    }
}
