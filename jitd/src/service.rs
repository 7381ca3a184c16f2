//! The shared daemon state: the [`Core`] behind one lock, a condition variable that wakes
//! waiters and the expiry timer on every change, and the timer loop itself.

use crate::error::{Error, Result};
use crate::grants::{Core, Origin};
use crate::notify::Notifier;
use crate::policy::{Validator, Verdict};
use crate::store::{Actor, Kind, RequestRow};
use crate::validator;
use jit_proto::State;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Most callers that may wait for a decision at once (each holds a pool thread).
pub const MAX_WAITERS: usize = 64;
/// Longest single wait a caller may ask for.
pub const MAX_WAIT_SECS: u32 = 600;
/// The timer re-reads the wall clock at least this often, so suspend and clock steps are
/// noticed within this bound.
pub const TIMER_MAX_SLEEP: Duration = Duration::from_millis(1000);

pub struct Service {
    core: Mutex<Core>,
    changed: Condvar,
    waiters: AtomicUsize,
}

impl Service {
    pub fn new(core: Core) -> Service {
        Service {
            core: Mutex::new(core),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Core>> {
        self.core
            .lock()
            .map_err(|_| Error::Internal("jitd state lock poisoned".into()))
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
        drop(g);
        self.changed.notify_all();
        out
    }

    /// Submits a request: validator first (unlocked: it may take seconds and must not stall
    /// expiry or other callers), then the decision (locked). The core checks everything
    /// again, so a policy reload in between cannot slip anything past. Only a role with a
    /// validator is checked beforehand, so a cheap refusal never costs a validator run;
    /// without one, the core's checks are the only ones.
    pub fn request(
        &self,
        who: &Actor,
        kind: Kind,
        role: &str,
        duration: u64,
        reason: &str,
        origin: &Origin,
    ) -> Result<RequestRow> {
        let v = self.read(|c| {
            let Some(v) = c.validator_for(role) else {
                return Ok(None);
            };
            let r = c.policy().role(role)?;
            c.policy().check_request(
                r,
                &who.name,
                kind,
                duration,
                reason,
                c.now(),
                c.directory(),
            )?;
            Ok(Some(v))
        })?;
        let verdict = run_validator(v.as_ref(), who, role, kind, duration, reason);
        self.write(|c| c.request(who, kind, role, duration, reason, origin, &verdict))
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
            Some((v, role)) => run_validator(Some(v), who, role, Kind::Extension, by, reason),
            None => Verdict::NotRun,
        };
        self.write(|c| c.extend(who, id, by, reason, &verdict))
    }

    /// Waits while the request `check` returns is pending, up to `timeout_secs`; returns it
    /// as it stands. `check` also authorizes the caller, before any waiting and on each wake.
    pub fn wait_while_pending(
        &self,
        timeout_secs: u32,
        check: impl Fn(&Core) -> Result<RequestRow>,
    ) -> Result<RequestRow> {
        if self.waiters.fetch_add(1, Ordering::SeqCst) >= MAX_WAITERS {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Refused(format!(
                "too many callers are waiting (at most {MAX_WAITERS}); try again shortly"
            )));
        }
        let out = self.wait_inner(timeout_secs.min(MAX_WAIT_SECS), check);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn wait_inner(
        &self,
        timeout_secs: u32,
        check: impl Fn(&Core) -> Result<RequestRow>,
    ) -> Result<RequestRow> {
        let deadline = std::time::Instant::now() + Duration::from_secs(u64::from(timeout_secs));
        let mut g = self.lock()?;
        loop {
            let row = check(&g)?;
            let now = std::time::Instant::now();
            if row.state != State::Pending || now >= deadline {
                return Ok(row);
            }
            let (ng, _) = self
                .changed
                .wait_timeout(g, (deadline - now).min(TIMER_MAX_SLEEP))
                .map_err(|_| Error::Internal("jitd state lock poisoned".into()))?;
            g = ng;
        }
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
            let mut g = match self.lock() {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!("expiry timer stopped: {e}");
                    return;
                }
            };
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
            self.changed.notify_all();
            // The watchdog hears from this loop only: if it stops (a stuck lock, a hung
            // pass), the service manager restarts jitd, which reconciles at start.
            notify.watchdog(std::time::Instant::now());
            match self.changed.wait_timeout(g, sleep) {
                Ok((g, _)) => drop(g),
                Err(_) => {
                    tracing::error!("expiry timer stopped: state lock poisoned");
                    return;
                }
            }
        }
    }
}

/// The validator's verdict on a request, or [`Verdict::NotRun`] for a role without one.
fn run_validator(
    v: Option<&Validator>,
    who: &Actor,
    role: &str,
    kind: Kind,
    duration: u64,
    reason: &str,
) -> Verdict {
    let Some(v) = v else {
        return Verdict::NotRun;
    };
    validator::run(
        v,
        &validator::Subject {
            user: &who.name,
            role,
            kind: kind.as_str(),
            duration_secs: duration,
            reason: reason.trim(),
        },
    )
}
