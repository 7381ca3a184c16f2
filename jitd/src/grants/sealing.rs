//! The audit trail's seals and its health: setting sealing up, sealing each epoch as it
//! ends (catching up on epochs that ended while jitd was not running), checking the trail
//! a slice at a time, and the check with the verification key.

use super::*;
use crate::seal::{self, Key, KeyState, Schedule, Seal, VerificationKey};
use crate::trail::{self, Report, Verifier};
use std::path::{Path, PathBuf};

/// Records the daemon checks per pass of its timer (a pass holds the state lock).
pub const CHECK_SLICE: u64 = 20_000;

/// Where sealing stands.
#[derive(Debug, Default)]
pub enum Sealing {
    /// No key file: never set up (`jitctl audit setup-keys`).
    #[default]
    Off,
    On {
        path: PathBuf,
        state: KeyState,
    },
    /// Set up, but the key file cannot be used: nothing is sealed until it is set up again.
    Broken(String),
}

/// The daemon's own check of its trail, advanced a slice at a time.
#[derive(Debug)]
pub struct Health {
    verifier: Verifier,
    /// Whether the check has reached the newest record (until then the seals it has not
    /// seen yet are not missing).
    caught_up: bool,
    /// Whether a broken trail was already logged and recorded.
    reported: bool,
}

impl Health {
    pub fn new(base: &trail::Base) -> Health {
        Health {
            verifier: Verifier::new(base, None),
            caught_up: false,
            reported: false,
        }
    }
}

impl Core {
    /// Where the key file lives (the state directory), and what is in it now.
    pub fn enable_sealing(&mut self, state_dir: &Path) {
        let path = seal::key_path(state_dir);
        self.sealing = match seal::read_key(&path) {
            Ok(None) => Sealing::Off,
            Ok(Some(state)) => Sealing::On {
                path: path.clone(),
                state,
            },
            Err(e) => {
                tracing::error!("audit sealing stopped: {e} (jitctl audit setup-keys --force)");
                Sealing::Broken(e)
            }
        };
        self.seal_path = Some(path);
    }

    /// Sets sealing up with a new key 0 (root only): records the set-up, writes the key
    /// file, and returns the verification key, which is not kept anywhere on this host.
    /// Set up already: refused unless `force` (a new key; the old verification key still
    /// checks what it sealed, and says that sealing was set up again after it).
    pub fn seal_setup(
        &mut self,
        who: &Actor,
        interval: u64,
        force: bool,
    ) -> Result<VerificationKey> {
        if who.uid != 0 {
            return Err(Error::NotAuthorized(
                "only root may set up audit sealing".into(),
            ));
        }
        if !(seal::MIN_INTERVAL..=seal::MAX_INTERVAL).contains(&interval) {
            return Err(Error::InvalidArgument(format!(
                "the sealing interval must be from {}s to {}",
                seal::MIN_INTERVAL,
                format_duration(seal::MAX_INTERVAL)
            )));
        }
        if matches!(self.sealing, Sealing::On { .. }) && !force {
            return Err(Error::WrongState(
                "audit sealing is set up already; --force sets it up again with a new key \
                 (keep the old verification key: it still checks what it sealed)"
                    .into(),
            ));
        }
        let Some(path) = self.seal_path.clone() else {
            return Err(Error::Internal(
                "no state directory for the seal key".into(),
            ));
        };
        let key0 = Key::random().map_err(Error::Internal)?;
        let schedule = Schedule {
            t0: self.now(),
            interval,
        };
        let fingerprint = key0.fingerprint();
        self.record(
            who,
            trail::SEAL_SETUP,
            0,
            seal::setup_detail(&fingerprint, schedule),
        )?;
        let state = KeyState {
            fingerprint,
            schedule,
            epoch: 0,
            key: key0.clone(),
        };
        if let Err(e) = seal::write_key(&path, &state) {
            self.sealing = Sealing::Broken(e.clone());
            return Err(Error::Internal(e));
        }
        tracing::info!(
            "audit sealing set up: key {}, a seal every {}",
            state.fingerprint,
            format_duration(interval)
        );
        self.sealing = Sealing::On { path, state };
        Ok(VerificationKey { key0, schedule })
    }

    /// Seals every epoch that has ended and is not sealed yet, in one transaction, then
    /// moves the key file on to the current epoch (the old keys are gone from then on).
    /// Epochs that ended while jitd was not running are sealed now, late, with the keys
    /// the key file still leads to.
    pub fn seal_due(&mut self) -> Result<()> {
        let Sealing::On { path, state } = &self.sealing else {
            return Ok(());
        };
        let (path, state) = (path.clone(), state.clone());
        let now_epoch = state.schedule.epoch_at(self.now());
        if now_epoch <= state.epoch {
            return Ok(());
        }
        // A crash between the seals' commit and the key file's rewrite leaves seals for
        // epochs the key file has not moved past: those are not made twice.
        let first = match self.store.last_seal_epoch(&state.fingerprint)? {
            Some(last) if last >= state.epoch => last + 1,
            _ => state.epoch,
        };
        if first < now_epoch {
            let at = self.now();
            let fingerprint = state.fingerprint.clone();
            let key = state.key.clone();
            let from = state.epoch;
            self.commit_as(Requests::Untouched, |tx, recs| {
                for epoch in first..now_epoch {
                    let (count, head) = store::audit_head(tx)?;
                    let s = Seal::make(
                        &fingerprint,
                        &key.advance(epoch - from),
                        epoch,
                        count,
                        &head,
                    );
                    recs.push(store::append_audit(
                        tx,
                        &Event {
                            at,
                            actor: &Actor::jitd(),
                            action: trail::SEAL,
                            request_id: 0,
                            detail: s.detail(),
                        },
                    )?);
                }
                Ok(())
            })?;
        }
        let next = KeyState {
            epoch: now_epoch,
            key: state.key.advance(now_epoch - state.epoch),
            ..state
        };
        match seal::write_key(&path, &next) {
            Ok(()) => self.sealing = Sealing::On { path, state: next },
            Err(e) => {
                tracing::error!("audit sealing stopped: {e}");
                self.sealing = Sealing::Broken(e);
            }
        }
        Ok(())
    }

    /// Checks the next slice of the trail (the timer calls it on every pass); a broken
    /// trail is logged and recorded once.
    pub fn check_trail(&mut self) -> Result<()> {
        let from = self.health.verifier.next_seq();
        let mut v = self.health.verifier.clone();
        let fed = self
            .store
            .audit_walk(from, CHECK_SLICE, |rec, prev| v.push(rec, prev))?;
        self.health.verifier = v;
        self.health.caught_up = fed < CHECK_SLICE;
        let report = self.health.verifier.report(self.health_now());
        if !report.ok && !self.health.reported {
            self.health.reported = true;
            tracing::error!("{}", report.message);
            self.record(&Actor::jitd(), "audit-broken", 0, report.message)?;
        }
        Ok(())
    }

    /// `now`, when seals are being made here (their absence then means something).
    fn sealed_now(&self) -> Option<i64> {
        matches!(self.sealing, Sealing::On { .. }).then(|| self.now())
    }

    /// `now` for the daemon's own check: once it has seen every record.
    fn health_now(&self) -> Option<i64> {
        self.sealed_now().filter(|_| self.health.caught_up)
    }

    /// The trail as the daemon's own check found it so far: (error, notes).
    pub(super) fn trail_health(&self) -> (String, Vec<String>) {
        let report = self.health.verifier.report(self.health_now());
        let mut notes = Vec::new();
        let checked = self.health.verifier.next_seq().saturating_sub(1);
        let total = self
            .store
            .audit_head()
            .map(|(seq, _)| seq)
            .unwrap_or(checked);
        if checked < total {
            notes.push(format!(
                "audit chain checked up to record {checked} of {total}"
            ));
        }
        match &self.sealing {
            Sealing::Off => notes.push(
                "audit trail not sealed: jitctl audit setup-keys (keep the key it prints off \
                 this host)"
                    .into(),
            ),
            Sealing::On { state, .. } => notes.push(format!(
                "audit trail sealed every {} (key {})",
                format_duration(state.schedule.interval),
                state.fingerprint
            )),
            Sealing::Broken(_) => {}
        }
        if let Some(m) = &self.mirror
            && let Some(down) = m.down_since()
        {
            notes.push(format!(
                "syslog mirror down since {}: audit records go to the database only",
                format_rfc3339(down)
            ));
        }
        let error = match (&self.sealing, report.ok) {
            (_, false) => report.message,
            (Sealing::Broken(e), true) => format!("audit sealing stopped: {e}"),
            _ => String::new(),
        };
        (error, notes)
    }

    /// Removes the records before `before` (root), once the trail verifies (pruning a broken
    /// trail would destroy the evidence). The chain goes on from `before`: a checkpoint
    /// keeps where it starts and the sealing in force there, and a `prune` record in the
    /// chain says so (the next seal covers it). Export first: `jitctl audit --json`.
    pub fn audit_prune(&mut self, who: &Actor, before: u64) -> Result<String> {
        if who.uid != 0 {
            return Err(Error::NotAuthorized(
                "only root may prune the audit trail".into(),
            ));
        }
        let base = self.store.audit_base()?;
        let (head, _) = self.store.audit_head()?;
        if before <= base.next_seq || before > head {
            return Err(Error::InvalidArgument(format!(
                "records {} to {head} are kept: prune before a record from {} to {head}",
                base.next_seq,
                base.next_seq + 1
            )));
        }
        let whole = trail::check_store(&self.store, None, self.sealed_now())?;
        if !whole.ok {
            return Err(Error::WrongState(format!(
                "the trail does not verify ({}); pruning now would destroy the evidence",
                whole.message
            )));
        }
        let mut upto = Verifier::new(&base, None);
        self.store
            .audit_walk(base.next_seq, before - base.next_seq, |rec, prev| {
                upto.push(rec, prev)
            })?;
        let (prev, sealing) = (upto.head().to_string(), upto.sealing());
        let first = base.next_seq;
        let now = self.now();
        let removed = self.commit_as(Requests::Untouched, |tx, recs| {
            let removed = store::prune_audit(tx, before, &prev, sealing.as_ref())?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: trail::PRUNE,
                    request_id: 0,
                    detail: trail::prune_detail(first, before, &prev),
                },
            )?);
            Ok(removed)
        })?;
        self.health = Health::new(&self.store.audit_base()?);
        Ok(format!(
            "removed {removed} records ({first} to {}); the trail goes on from record {before}",
            before - 1
        ))
    }

    /// The whole trail checked now (root and approvers), with the verification key if
    /// given (root only: the key is the power to seal).
    pub fn verify_trail(&self, who: &Actor, key: Option<VerificationKey>) -> Result<Report> {
        let allowed = match key {
            Some(_) => who.uid == 0,
            None => who.uid == 0 || self.is_any_approver(who)?,
        };
        if !allowed {
            return Err(Error::NotAuthorized(
                "only root and approvers may verify the audit trail (with a key: root)".into(),
            ));
        }
        trail::check_store(&self.store, key, self.sealed_now())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{actor, ask, world};
    use super::*;
    use crate::policy::Verdict;

    fn sealed_world() -> (
        super::super::tests::World,
        tempfile::TempDir,
        VerificationKey,
    ) {
        let mut w = world();
        let dir = tempfile::tempdir().unwrap();
        w.core.enable_sealing(dir.path());
        let key = w.core.seal_setup(&actor("root"), 60, false).unwrap();
        (w, dir, key)
    }

    fn seals(w: &super::super::tests::World) -> Vec<u64> {
        w.core
            .store
            .audit_since(0, "")
            .unwrap()
            .iter()
            .filter(|r| r.action == trail::SEAL)
            .map(|r| Seal::parse(&r.detail).unwrap().epoch)
            .collect()
    }

    #[test]
    fn given_epochs_ending_when_the_timer_runs_then_each_is_sealed_once_and_verifies() {
        let (mut w, _dir, key) = sealed_world();
        assert!(
            w.core.seal_setup(&actor("root"), 60, false).is_err(),
            "set up once unless forced"
        );
        assert!(
            w.core.seal_setup(&actor("alice"), 60, true).is_err(),
            "root only"
        );
        w.core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "web-restart", 600, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap();
        w.core.seal_due().unwrap();
        assert!(seals(&w).is_empty(), "epoch 0 has not ended");
        w.clock.advance(61);
        w.core.seal_due().unwrap();
        w.core.seal_due().unwrap();
        assert_eq!(seals(&w), vec![0]);
        // jitd was not running for three epochs: they are sealed when it is back.
        w.clock.advance(180);
        w.core.seal_due().unwrap();
        assert_eq!(seals(&w), vec![0, 1, 2, 3]);
        let r = w
            .core
            .verify_trail(&actor("root"), Some(key.clone()))
            .unwrap();
        assert!(r.ok, "{r:?}");
        assert!(r.message.contains("4 seals"), "{}", r.message);
        assert!(
            w.core.verify_trail(&actor("alice"), Some(key)).is_err(),
            "the key is root's"
        );
    }

    #[test]
    fn given_the_key_file_behind_its_seals_after_a_crash_then_no_seal_is_made_twice() {
        let (mut w, dir, key) = sealed_world();
        let path = seal::key_path(dir.path());
        let before = seal::read_key(&path).unwrap().unwrap();
        w.clock.advance(61);
        w.core.seal_due().unwrap();
        // The crash: the seal committed, the key file not yet moved on.
        seal::write_key(&path, &before).unwrap();
        w.core.enable_sealing(dir.path());
        w.clock.advance(60);
        w.core.seal_due().unwrap();
        assert_eq!(seals(&w), vec![0, 1]);
        let after = seal::read_key(&path).unwrap().unwrap();
        assert_eq!(after.epoch, 2);
        assert_eq!(
            after.key,
            key.key0.advance(2),
            "the old keys are gone from the file"
        );
        assert!(w.core.verify_trail(&actor("root"), Some(key)).unwrap().ok);
    }

    #[test]
    fn given_seals_not_made_when_the_trail_is_checked_now_then_health_says_so() {
        let (mut w, dir, _key) = sealed_world();
        // Epoch 0 ended 15 s ago (more than the grace), and nobody sealed it.
        w.clock.advance(75);
        w.core.check_trail().unwrap();
        let (error, _) = w.core.trail_health();
        assert!(error.contains("no seal for"), "{error}");
        // A broken key file stops sealing, loudly.
        std::fs::write(seal::key_path(dir.path()), "garbage").unwrap();
        w.core.enable_sealing(dir.path());
        let (error, _) = w.core.trail_health();
        assert!(!error.is_empty());
    }
}
