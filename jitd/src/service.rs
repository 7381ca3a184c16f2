//! The shared daemon state: the [`Core`] behind one lock, what wakes the expiry timer (a
//! condition variable) and the callers waiting for a decision (an async event) on every
//! change, the per-caller limits, and the timer loop itself.

use crate::error::{Error, Refusal, Result};
use crate::grants::{Core, SharedIndex};
use crate::model::{Actor, Ask};
use crate::notify::Notifier;
use crate::policy::{Validator, Verdict};
use crate::store::RequestRow;
use crate::validator;
use jit_proto::{JitError, State};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Waits for a decision one caller may hold at once. A wait holds no thread (it sleeps on
/// an event), so this bounds memory and fairness, not threads.
pub const MAX_WAITS_PER_CALLER: usize = 8;
/// Calls one caller may have in progress at once (each holds a pool thread while it runs).
pub const MAX_CALLS_PER_CALLER: usize = 16;
/// Waits of everyone together: a bound on memory only; one caller alone never reaches it.
pub const MAX_WAITERS: usize = 4096;
/// Longest single wait a caller may ask for.
pub const MAX_WAIT_SECS: u32 = 600;
/// The timer re-reads the wall clock at least this often, so suspend and clock steps are
/// noticed within this bound.
pub const TIMER_MAX_SLEEP: Duration = Duration::from_millis(1000);

pub struct Service {
    core: Mutex<Core>,
    /// The core's index of grants in force, for checks without the core's lock.
    in_force: Arc<SharedIndex>,
    /// Wakes the expiry timer on every change.
    changed: Condvar,
    /// Wakes the callers waiting for a decision on every change.
    decided: zruntime::Event,
    quotas: Quotas,
    /// Who is told of events as they happen (watchers, terminals).
    hub: Arc<crate::hub::Hub>,
}

/// Whom a limit counts against: a bus caller by uid, or the user pam_jit acts for (pam_jit
/// always calls as root, so its calls are counted per PAM user, apart from root's own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    Bus(u32),
    Pam(String),
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Bus(uid) => write!(f, "uid {uid}"),
            Caller::Pam(user) => write!(f, "{user} (through PAM)"),
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Waits for a decision.
    Wait,
    /// Calls in progress.
    Call,
}

impl Budget {
    fn limit(self) -> usize {
        match self {
            Budget::Wait => MAX_WAITS_PER_CALLER,
            Budget::Call => MAX_CALLS_PER_CALLER,
        }
    }
}

/// Per-caller counts of waits and calls in progress, so that no caller can use up what
/// others need (one user holding every waiting slot, or every pool thread).
#[derive(Default)]
pub struct Quotas {
    counts: Mutex<HashMap<(Caller, Budget), usize>>,
}

/// One unit of a caller's budget, given back when dropped.
pub struct Slot<'a> {
    quotas: &'a Quotas,
    key: (Caller, Budget),
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self.quotas.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Quotas {
    fn lock(&self) -> MutexGuard<'_, HashMap<(Caller, Budget), usize>> {
        // Only counts live here, each change one statement: a panic cannot leave them torn.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one unit of `who`'s `budget`, or refuses when they (or, for waits, everyone
    /// together) are at the limit.
    pub fn enter(&self, who: &Caller, budget: Budget) -> Result<Slot<'_>> {
        let mut counts = self.lock();
        let mine = counts.get(&(who.clone(), budget)).copied().unwrap_or(0);
        if mine >= budget.limit() {
            return Err(Error::refused(
                Refusal::Busy,
                match budget {
                    Budget::Wait => format!(
                        "{who} already waits for {mine} decision(s), the most one caller may; \
                     stop one of those waits first"
                    ),
                    Budget::Call => format!(
                        "{who} already has {mine} call(s) in progress, the most one caller may; \
                     try again when they are answered"
                    ),
                },
            ));
        }
        if budget == Budget::Wait {
            let all: usize = counts
                .iter()
                .filter(|((_, b), _)| *b == Budget::Wait)
                .map(|(_, n)| n)
                .sum();
            if all >= MAX_WAITERS {
                return Err(Error::refused(
                    Refusal::Busy,
                    format!(
                        "too many callers are waiting (at most {MAX_WAITERS}); try again shortly"
                    ),
                ));
            }
        }
        *counts.entry((who.clone(), budget)).or_insert(0) += 1;
        Ok(Slot {
            quotas: self,
            key: (who.clone(), budget),
        })
    }
}

impl Service {
    pub fn new(core: Core) -> Service {
        let in_force = core.shared_index();
        Service {
            core: Mutex::new(core),
            in_force,
            changed: Condvar::new(),
            decided: zruntime::Event::new(),
            quotas: Quotas::default(),
            hub: Arc::new(crate::hub::Hub::default()),
        }
    }

    pub fn hub(&self) -> &Arc<crate::hub::Hub> {
        &self.hub
    }

    /// Hands the events of the last change to the watchers: who gets each is decided here,
    /// under the lock, the sending is done elsewhere. (Deliveries to notifier programs were
    /// queued with the change; the agent waiting in `Take` is woken with everyone else.)
    fn tell(&self, core: &mut Core) {
        let notices = core.take_notices();
        if notices.is_empty() {
            return;
        }
        let plan = self.hub.plan(core, &notices);
        self.hub.send(plan);
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// A listener woken by the next change of state (take it before looking at the state,
    /// so a change in between is not missed).
    pub fn listen(&self) -> zruntime::EventListener {
        self.decided.listen()
    }

    /// The state lock. A panic while it was held (a bug: no input is meant to reach one)
    /// leaves the state in memory unknown: jitd then exits, saying why, so its supervisor
    /// restarts it and reconciliation brings the rules back in line with the database. A
    /// daemon alive but unable to expire grants is never left behind.
    fn lock(&self) -> Result<MutexGuard<'_, Core>> {
        match self.core.lock() {
            Ok(g) => Ok(g),
            Err(_) => crate::fatal::fatal("the state lock was poisoned by a panic"),
        }
    }

    fn notify_all(&self) {
        self.changed.notify_all();
        self.decided.notify(usize::MAX);
    }

    /// Runs a read-only operation.
    pub fn read<T>(&self, f: impl FnOnce(&Core) -> Result<T>) -> Result<T> {
        let g = self.lock()?;
        f(&g)
    }

    /// Runs an operation that may change state, then wakes waiters and the timer.
    pub fn write<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        let mut g = self.lock()?;
        let out = f(&mut g);
        self.tell(&mut g);
        drop(g);
        self.notify_all();
        out
    }

    /// The user's grant in force (pam_jit's check, on every sudo): from the core's index,
    /// without its lock, or from the core when there is no index.
    pub fn check(&self, user: &str, ssh: bool) -> Result<jit_proto::GrantCheck> {
        match self.in_force.get() {
            Some(i) => Ok(i.check(user, ssh)),
            None => self.read(|c| c.check(user, ssh)),
        }
    }

    /// Submits a request: validator first (unlocked: it may take seconds and must not stall
    /// expiry or other callers), then the decision (locked). The core checks everything
    /// again, so a policy reload in between cannot slip anything past. Only a role with a
    /// validator is checked beforehand, so a cheap refusal never costs a validator run;
    /// without one, the core's checks are the only ones.
    pub fn request(&self, who: &Actor, ask: &Ask) -> Result<RequestRow> {
        // Keys are read by ssh-keygen here, outside the lock (a program run per key).
        let mut checked;
        let ask = if ask.ssh_keys.is_empty() {
            ask
        } else {
            let keys = crate::accounts::check_keys(&ask.ssh_keys)
                .map_err(|e| Error::InvalidArgument(format!("SSH keys: {e}")))?;
            checked = ask.clone();
            (checked.ssh_keys, checked.key_fingerprints) = keys.into_iter().unzip();
            &checked
        };
        let v = self.read(|c| {
            let Some(v) = c.validator_for(&ask.role) else {
                return Ok(None);
            };
            let r = c.policy().role(&ask.role)?;
            c.policy()
                .check_request(r, &who.name, ask, c.now(), c.directory())?;
            Ok(Some(v))
        })?;
        let verdict = run_validator(v.as_ref(), who, ask);
        self.write(|c| c.request(who, ask, &verdict))
    }

    /// Extends grant `id` of `who` by `by` seconds; the validator runs as for a request.
    pub fn extend(&self, who: &Actor, id: u64, by: u64, reason: &str) -> Result<RequestRow> {
        let v = self.read(|c| {
            let grant = c.own_active_grant(who, id)?;
            let Some(v) = c.validator_for(&grant.role) else {
                return Ok(None);
            };
            c.policy().role(&grant.role)?.check_reason(reason)?;
            Ok(Some((v, grant.role)))
        })?;
        let verdict = match &v {
            Some((v, role)) => run_validator(Some(v), who, &Ask::extension(who, role, by, reason)),
            None => Verdict::NotRun,
        };
        self.write(|c| c.extend(who, id, by, reason, &verdict))
    }

    /// The expiry loop: ends what is due, then sleeps until the next deadline, a change, or
    /// at most [`TIMER_MAX_SLEEP`]. Deadlines are wall-clock times re-read on every pass, so
    /// a suspended machine or a clock step forward expires what is due on the next pass.
    pub fn run_timer(&self, notify: &Notifier) {
        // With a watchdog, the loop wakes at least as often as keep-alives are due.
        let max_sleep = notify
            .watchdog_every()
            .map_or(TIMER_MAX_SLEEP, |w| w.min(TIMER_MAX_SLEEP));
        loop {
            let Ok(mut g) = self.lock() else {
                return;
            };
            let before = g.generation();
            // The audit trail: seals for epochs that ended, the next slice of the daemon's
            // own check, and a syslog mirror that is down tries again.
            if let Err(e) = g.seal_due() {
                tracing::error!("sealing the audit trail failed (will retry): {e}");
            }
            if let Err(e) = g.check_trail() {
                tracing::error!("checking the audit trail failed (will retry): {e}");
            }
            g.mirror_keepalive();
            let sleep = match g.expire_due() {
                Ok(Some(deadline)) => {
                    let ms = deadline.saturating_mul(1000).saturating_sub(g.now_ms());
                    Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)).min(max_sleep)
                }
                Ok(None) => max_sleep,
                Err(e) => {
                    tracing::error!("expiry pass failed (will retry): {e}");
                    max_sleep
                }
            };
            self.tell(&mut g);
            if g.generation() != before {
                self.decided.notify(usize::MAX);
            }
            // The watchdog hears from this loop only: if it stops (a stuck lock, a hung
            // pass), the service manager restarts jitd, which reconciles at start.
            notify.watchdog(std::time::Instant::now());
            match self.changed.wait_timeout(g, sleep) {
                Ok((g, _)) => drop(g),
                Err(_) => crate::fatal::fatal("the state lock was poisoned by a panic"),
            }
        }
    }
}

/// The validator's verdict on a request, or [`Verdict::NotRun`] for a role without one.
fn run_validator(v: Option<&Validator>, who: &Actor, ask: &Ask) -> Verdict {
    let Some(v) = v else {
        return Verdict::NotRun;
    };
    validator::run(
        v,
        &validator::Subject {
            user: &who.name,
            role: &ask.role,
            kind: ask.kind.as_str(),
            duration_secs: ask.duration,
            reason: ask.reason.trim(),
        },
    )
}

/// Runs `f` on the blocking pool so SQLite and visudo never stall a connection (the bus, the PAM socket),
/// within `who`'s budget of calls in progress.
pub async fn blocking<T: Send + 'static>(
    svc: &Arc<Service>,
    who: Caller,
    f: impl FnOnce(&Service) -> std::result::Result<T, Error> + Send + 'static,
) -> std::result::Result<T, JitError> {
    let _slot = svc.quotas().enter(&who, Budget::Call)?;
    let svc = svc.clone();
    zruntime::unblock(move || f(&svc)).await.map_err(Into::into)
}

/// Waits while the request `check` returns is pending, up to `timeout_secs` (at most
/// [`MAX_WAIT_SECS`]), and returns it as it stands then. `check` also authorizes the caller,
/// before any waiting and after each change. The wait holds no thread: it sleeps on the
/// service's change event, each look at the state is one short call on the pool. Counted
/// against `who`'s own budget of waits, so no caller can take the slots others need.
pub async fn wait_while_pending(
    svc: &Arc<Service>,
    who: Caller,
    id: u64,
    timeout_secs: u32,
    check: impl Fn(&Core) -> std::result::Result<RequestRow, Error> + Send + Sync + 'static,
) -> std::result::Result<RequestRow, JitError> {
    let hub = svc.hub().clone();
    let mut waiting_guard = None;
    let caller = &who.clone();
    wait_while(
        svc,
        who,
        timeout_secs,
        check,
        |row| row.state == State::Pending,
        |row| {
            // The requester waits at a prompt: the decision reaches it there, not on their
            // terminal as well. (Only the requester's own wait counts.)
            let requester = match caller {
                Caller::Bus(uid) => row.uid == *uid,
                Caller::Pam(user) => row.user.as_str() == user,
            };
            if waiting_guard.is_none() && requester && row.id == id {
                waiting_guard = Some(hub.waiting_on(id));
            }
        },
    )
    .await
}

/// Waits while `pending` holds of what `check` returns, up to `timeout_secs` (at most
/// [`MAX_WAIT_SECS`]), as [`wait_while_pending`] does; `seen` is shown each answer.
pub async fn wait_while<T: Send + 'static>(
    svc: &Arc<Service>,
    who: Caller,
    timeout_secs: u32,
    check: impl Fn(&Core) -> std::result::Result<T, Error> + Send + Sync + 'static,
    pending: impl Fn(&T) -> bool,
    mut seen: impl FnMut(&T),
) -> std::result::Result<T, JitError> {
    let _slot = svc.quotas().enter(&who, Budget::Wait)?;
    let runtime = zruntime::SharedRuntime::current()
        .map_err(|e| JitError::Internal(format!("no runtime to wait on: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(timeout_secs.min(MAX_WAIT_SECS)));
    let check = Arc::new(check);
    loop {
        let changed = svc.listen();
        let c = check.clone();
        let now = blocking(svc, who.clone(), move |s| s.read(|core| c(core))).await?;
        seen(&now);
        if !pending(&now) || Instant::now() >= deadline {
            return Ok(now);
        }
        // Woken by the next change, or at the deadline for one more look.
        let _ = runtime.timeout_at(deadline, changed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::{actor, ask, world};
    use crate::model::Kind;

    #[test]
    fn given_changes_through_the_service_when_checked_then_the_index_follows_each_one() {
        let w = world();
        let clock = w.clock.clone();
        let svc = Service::new(w.core);
        assert!(!svc.check("alice", false).unwrap().active);
        let r = svc
            .write(|c| {
                c.request(
                    &actor("alice"),
                    &ask(Kind::Grant, "web-restart", 60, "OPS-1"),
                    &Verdict::NotRun,
                )
            })
            .unwrap();
        assert!(
            svc.check("alice", false).unwrap().active,
            "a grant: in force at once"
        );
        svc.write(|c| c.release(&actor("alice"), r.id)).unwrap();
        assert!(
            !svc.check("alice", false).unwrap().active,
            "released: gone at once"
        );
        let r = svc
            .write(|c| {
                c.request(
                    &actor("alice"),
                    &ask(Kind::Grant, "web-restart", 60, "OPS-2"),
                    &Verdict::NotRun,
                )
            })
            .unwrap();
        // Time passes and nothing is written: the check judges the end itself.
        clock.advance(61);
        assert!(
            !svc.check("alice", false).unwrap().active,
            "ended at its end"
        );
        assert_eq!(
            svc.check("alice", false).unwrap(),
            svc.read(|c| c.check("alice", false)).unwrap()
        );
        assert!(svc.read(|c| c.get(r.id)).unwrap().state == jit_proto::State::Active);
    }
}
