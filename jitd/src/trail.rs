//! Checking the audit trail: the hash chain, and the seals (see [`crate::seal`]).
//!
//! A [`Verifier`] is fed the records in order and keeps what it needs to go on, so the same
//! code serves a whole check (`jitctl audit verify`, with or without the verification key)
//! and the daemon's own check that advances a slice at a time. Without the key it checks
//! the chain and the seals' shape (each seal follows its epoch's predecessor, covers every
//! record before it, and names the set-up's key): what an intruder must forge is then the
//! seals' MACs, which only the key can check. With the key it checks every MAC of the
//! segment that key sealed. Given the time, it also demands a seal for every epoch that
//! has ended: removing the newest records takes their seals with them, which shows.

use crate::audit::{self, GENESIS};
use crate::seal::{self, GRACE_SECS, Key, Schedule, Seal, VerificationKey};
use jit_proto::{AuditRecord, format_rfc3339};

/// The audit action of a seal and of a sealing set-up.
pub const SEAL: &str = "seal";
pub const SEAL_SETUP: &str = "seal-setup";
/// The audit action of a prune: the records before a point removed, the chain going on.
pub const PRUNE: &str = "prune";

/// Where the chain starts: the first record, or the first kept after a prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The first record expected.
    pub next_seq: u64,
    /// The hash of the record before it.
    pub prev: String,
    /// The sealing in force at the cut (set-up fingerprint, schedule, next epoch due).
    pub sealing: Option<(String, Schedule, u64)>,
}

impl Default for Base {
    fn default() -> Base {
        Base {
            next_seq: 1,
            prev: GENESIS.to_string(),
            sealing: None,
        }
    }
}

/// The sealing segment being followed: the last set-up's (or, with a key, that key's).
#[derive(Debug, Clone)]
struct Segment {
    fingerprint: String,
    schedule: Schedule,
    next_epoch: u64,
    /// With the key: the key of the epoch last derived, to derive onwards cheaply.
    key: Option<(u64, Key)>,
}

#[derive(Debug, Clone)]
pub struct Verifier {
    key: Option<VerificationKey>,
    prev: String,
    next_seq: u64,
    records: u64,
    bad: Option<(u64, String)>,
    segment: Option<Segment>,
    /// With a key: whether the key's set-up was seen, and where sealing was set up again.
    key_seen: bool,
    rekeyed_at: Option<u64>,
    seals: u64,
    /// Sequence number and time of the last good seal.
    last_seal: Option<(u64, i64)>,
    /// Where the check started, and whether a prune record in the chain says so.
    start: (u64, String),
    start_confirmed: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub records: u64,
    /// The first record found wrong (0: none).
    pub first_bad_seq: u64,
    pub message: String,
    /// Whether the trail is sealed (a set-up is in force at its end).
    pub sealed: bool,
}

impl Verifier {
    /// A check from `base`, with the verification key if given.
    pub fn new(base: &Base, key: Option<VerificationKey>) -> Verifier {
        let segment = base
            .sealing
            .as_ref()
            .and_then(|(fp, schedule, next_epoch)| {
                let theirs = key
                    .as_ref()
                    .is_none_or(|k| k.key0.fingerprint() == *fp && k.schedule == *schedule);
                theirs.then(|| Segment {
                    fingerprint: fp.clone(),
                    schedule: *schedule,
                    next_epoch: *next_epoch,
                    key: key.as_ref().map(|k| (0, k.key0.clone())),
                })
            });
        Verifier {
            key_seen: segment.is_some() && key.is_some(),
            key,
            prev: base.prev.clone(),
            next_seq: base.next_seq,
            records: 0,
            bad: None,
            segment,
            rekeyed_at: None,
            seals: 0,
            last_seal: None,
            start: (base.next_seq, base.prev.clone()),
            start_confirmed: base.next_seq == 1,
        }
    }

    /// The sealing in force after the records checked so far (for a prune's checkpoint):
    /// the set-up's fingerprint and schedule, and the next epoch due.
    pub fn sealing(&self) -> Option<(String, Schedule, u64)> {
        self.segment
            .as_ref()
            .map(|s| (s.fingerprint.clone(), s.schedule, s.next_epoch))
    }

    /// The hash of the last record checked.
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// The next sequence number expected (where a check in slices goes on from).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether something was found wrong.
    pub fn broken(&self) -> Option<&(u64, String)> {
        self.bad.as_ref()
    }

    fn fail(&mut self, seq: u64, why: String) {
        if self.bad.is_none() {
            self.bad = Some((seq, why));
        }
    }

    /// The next record, with the previous-hash it was stored with.
    pub fn push(&mut self, rec: &AuditRecord, prev_hash: &str) {
        if self.bad.is_some() {
            return;
        }
        let seq = rec.seq;
        if seq != self.next_seq {
            return self.fail(seq, format!("record {} is missing", self.next_seq));
        }
        if prev_hash != self.prev {
            return self.fail(seq, "previous-hash link is broken".into());
        }
        if audit::hash(&self.prev, rec) != rec.hash {
            return self.fail(seq, "record content does not match its hash".into());
        }
        match rec.action.as_str() {
            SEAL_SETUP => self.setup(rec),
            SEAL => self.seal(rec, prev_hash),
            PRUNE => match parse_prune(&rec.detail) {
                Some((next, prev))
                    if (next, prev.as_str()) == (self.start.0, self.start.1.as_str()) =>
                {
                    self.start_confirmed = true;
                }
                // An older prune's record (a later prune cut after it): nothing to confirm.
                Some((next, _)) if next < self.start.0 => {}
                _ => {
                    return self.fail(
                        rec.seq,
                        "a prune record that does not match where the trail starts".into(),
                    );
                }
            },
            _ => {}
        }
        self.prev = rec.hash.clone();
        self.next_seq += 1;
        self.records += 1;
    }

    fn setup(&mut self, rec: &AuditRecord) {
        let Some((fingerprint, schedule)) = seal::parse_setup(&rec.detail) else {
            return self.fail(rec.seq, "unreadable sealing set-up record".into());
        };
        let theirs = match &self.key {
            None => true,
            Some(k) => k.key0.fingerprint() == fingerprint && k.schedule == schedule,
        };
        if theirs {
            self.key_seen |= self.key.is_some();
            self.segment = Some(Segment {
                fingerprint,
                schedule,
                next_epoch: 0,
                key: self.key.as_ref().map(|k| (0, k.key0.clone())),
            });
        } else if self.segment.take().is_some() {
            self.rekeyed_at.get_or_insert(rec.seq);
        }
    }

    fn seal(&mut self, rec: &AuditRecord, prev_hash: &str) {
        let Some(s) = Seal::parse(&rec.detail) else {
            return self.fail(rec.seq, "unreadable seal".into());
        };
        let Some(seg) = self.segment.as_mut() else {
            // A seal of another key's segment (checked with that key), or one with no
            // set-up before it at all.
            if self.key.is_none() {
                self.fail(rec.seq, "a seal with no sealing set-up before it".into());
            }
            return;
        };
        if s.key != seg.fingerprint {
            return self.fail(rec.seq, format!("a seal of another key ({})", s.key));
        }
        if s.count + 1 != rec.seq || s.head != prev_hash {
            return self.fail(
                rec.seq,
                "the seal does not cover the records before it".into(),
            );
        }
        if s.epoch < seg.next_epoch {
            return self.fail(rec.seq, format!("a second seal for epoch {}", s.epoch));
        }
        if s.epoch > seg.next_epoch {
            let (from, to) = (seg.next_epoch, s.epoch - 1);
            let why = missing(&seg.schedule, from, to);
            return self.fail(rec.seq, why);
        }
        if let Some((at_epoch, key)) = seg.key.as_mut() {
            *key = key.advance(s.epoch - *at_epoch);
            *at_epoch = s.epoch;
            if !s.holds(key) {
                return self.fail(
                    rec.seq,
                    format!(
                        "the seal of epoch {} is forged (its MAC does not hold)",
                        s.epoch
                    ),
                );
            }
        }
        seg.next_epoch = s.epoch + 1;
        self.seals += 1;
        self.last_seal = Some((rec.seq, rec.at));
    }

    /// The outcome so far. `now`: the check also demands a seal for every epoch that ended
    /// (more than [`GRACE_SECS`] ago) before `now`.
    pub fn report(&self, now: Option<i64>) -> Report {
        let report = |ok: bool, bad: u64, message: String| Report {
            ok,
            records: self.records,
            first_bad_seq: bad,
            message,
            sealed: self.segment.is_some(),
        };
        if let Some((seq, why)) = &self.bad {
            return report(
                false,
                *seq,
                format!("audit trail broken at record {seq}: {why}"),
            );
        }
        if !self.start_confirmed {
            return report(
                false,
                self.start.0,
                format!(
                    "the trail starts at record {} but no prune record in it says so: records \
                     before it were removed",
                    self.start.0
                ),
            );
        }
        if self.key.is_some() && !self.key_seen {
            return report(
                false,
                0,
                "no sealing set-up for this key in the trail: it was removed, or the trail \
                 was sealed with another key"
                    .into(),
            );
        }
        if let Some(seq) = self.rekeyed_at {
            return report(
                false,
                seq,
                format!(
                    "sealing was set up again at record {seq} with another key: the records \
                     after it are not covered by this key (verify them with the newer key)"
                ),
            );
        }
        let Some(seg) = &self.segment else {
            return report(
                true,
                0,
                format!(
                    "audit chain intact: {} records (not sealed: jitctl audit setup-keys)",
                    self.records
                ),
            );
        };
        if let Some(now) = now {
            let due = seg.schedule.epoch_at(now.saturating_sub(GRACE_SECS));
            if seg.next_epoch < due {
                let why = missing(&seg.schedule, seg.next_epoch, due - 1);
                return report(
                    false,
                    self.next_seq,
                    format!("audit trail incomplete: {why}"),
                );
            }
        }
        let unsealed = match self.last_seal {
            Some((seq, _)) => self.next_seq - 1 - seq,
            None => self.records,
        };
        let how = if self.key.is_some() {
            "every seal checked with the verification key"
        } else {
            "seals in order (their MACs need the verification key)"
        };
        let last = match self.last_seal {
            Some((_, at)) => format!("; last seal {}", format_rfc3339(at)),
            None => String::new(),
        };
        report(
            true,
            0,
            format!(
                "audit chain intact: {} records, {} seals, {how}{last}; {unsealed} record(s) \
                 since the last seal",
                self.records, self.seals
            ),
        )
    }
}

/// A prune record's detail: where the trail goes on.
pub fn prune_detail(first_removed: u64, next: u64, prev: &str) -> String {
    format!(
        "removed records {first_removed} to {}; the trail goes on from record {next} \
         next={next} prev={prev}",
        next - 1
    )
}

fn parse_prune(detail: &str) -> Option<(u64, String)> {
    let mut next = None;
    let mut prev = None;
    for kv in detail.split_whitespace() {
        if let Some(v) = kv.strip_prefix("next=") {
            next = v.parse().ok();
        } else if let Some(v) = kv.strip_prefix("prev=") {
            prev = Some(v.to_string());
        }
    }
    Some((next?, prev?))
}

/// Checks the whole trail in `store`, a slice at a time.
pub fn check_store(
    store: &crate::store::Store,
    key: Option<VerificationKey>,
    now: Option<i64>,
) -> crate::error::Result<Report> {
    const SLICE: u64 = 20_000;
    let mut v = Verifier::new(&store.audit_base()?, key);
    loop {
        let from = v.next_seq();
        let fed = store.audit_walk(from, SLICE, |rec, prev| v.push(rec, prev))?;
        if fed < SLICE || v.broken().is_some() {
            break;
        }
    }
    Ok(v.report(now))
}

/// Says which epochs have no seal, as times.
fn missing(s: &Schedule, from: u64, to: u64) -> String {
    let start = s
        .end_of(from)
        .saturating_sub(i64::try_from(s.interval).unwrap_or(0));
    format!(
        "no seal for {} to {} (epochs {from}..{to}): records of that time were removed with \
         their seals, or sealing stopped",
        format_rfc3339(start),
        format_rfc3339(s.end_of(to))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trail builder: records chained as jitd chains them.
    struct Trail {
        records: Vec<(AuditRecord, String)>,
    }

    impl Trail {
        fn new() -> Trail {
            Trail {
                records: Vec::new(),
            }
        }

        fn head(&self) -> (u64, String) {
            self.records
                .last()
                .map_or((0, GENESIS.to_string()), |(r, _)| (r.seq, r.hash.clone()))
        }

        fn add(&mut self, at: i64, action: &str, detail: String) {
            let (seq, prev) = self.head();
            let mut r = AuditRecord {
                seq: seq + 1,
                at,
                actor: "jitd".into(),
                actor_uid: 0,
                origin: String::new(),
                action: action.into(),
                request_id: 0,
                detail,
                hash: String::new(),
            };
            r.hash = audit::hash(&prev, &r);
            self.records.push((r, prev));
        }

        fn seal(&mut self, at: i64, key0: &Key, epoch: u64) {
            let (count, head) = self.head();
            let s = Seal::make(
                &key0.fingerprint(),
                &key0.advance(epoch),
                epoch,
                count,
                &head,
            );
            self.add(at, SEAL, s.detail());
        }

        fn check(&self, key: Option<&VerificationKey>, now: Option<i64>) -> Report {
            let mut v = Verifier::new(&Base::default(), key.cloned());
            for (r, prev) in &self.records {
                v.push(r, prev);
            }
            v.report(now)
        }

        /// Recomputes every hash, as an intruder would.
        fn rehash(&mut self) {
            let mut prev = GENESIS.to_string();
            for (r, p) in &mut self.records {
                *p = prev.clone();
                r.hash = audit::hash(&prev, r);
                prev = r.hash.clone();
            }
        }

        /// Recomputes every hash and points every seal at its new head, keeping the MACs
        /// (an intruder without the keys can do no more).
        fn rehash_and_repoint_seals(&mut self) {
            let mut prev = GENESIS.to_string();
            for (r, p) in &mut self.records {
                *p = prev.clone();
                if let Some(mut s) = Seal::parse(&r.detail) {
                    s.head = prev.clone();
                    r.detail = s.detail();
                }
                r.hash = audit::hash(&prev, r);
                prev = r.hash.clone();
            }
        }
    }

    const T0: i64 = 1_000_000;

    /// Two records per epoch over five epochs, each epoch sealed at its end.
    fn sealed() -> (Trail, VerificationKey) {
        let key0 = Key::random().unwrap();
        let schedule = Schedule {
            t0: T0,
            interval: 60,
        };
        let mut t = Trail::new();
        t.add(T0 - 5, "request", "before sealing".into());
        t.add(
            T0,
            SEAL_SETUP,
            seal::setup_detail(&key0.fingerprint(), schedule),
        );
        for e in 0..5u64 {
            let start = schedule.end_of(e) - 60;
            t.add(start + 10, "request", format!("r{e}a"));
            t.add(start + 20, "approve", format!("r{e}b"));
            t.seal(schedule.end_of(e) + 1, &key0, e);
        }
        t.add(
            schedule.end_of(4) + 5,
            "request",
            "after the last seal".into(),
        );
        (t, VerificationKey { key0, schedule })
    }

    fn now_after(t: &Trail) -> i64 {
        t.records.last().unwrap().0.at + 10
    }

    #[test]
    fn given_an_untouched_sealed_trail_when_checked_then_intact_with_and_without_key() {
        let (t, key) = sealed();
        let now = Some(now_after(&t));
        let with = t.check(Some(&key), now);
        assert!(with.ok, "{with:?}");
        assert!(with.message.contains("5 seals"), "{}", with.message);
        assert!(with.message.contains("1 record(s) since the last seal"));
        let without = t.check(None, now);
        assert!(without.ok, "{without:?}");
    }

    #[test]
    fn given_a_record_edited_and_the_chain_rehashed_when_checked_with_the_key_then_caught() {
        let (mut t, key) = sealed();
        t.records[3].0.detail = "r0b rewritten".into();
        assert!(!t.check(None, None).ok, "the chain alone catches an edit");
        t.rehash();
        let r = t.check(None, None);
        assert!(!r.ok, "the seal no longer covers the rehashed head: {r:?}");
        // An intruder who also repoints every seal at its new head must make their MACs
        // again: without the key that passes, with it the first one is caught.
        t.rehash_and_repoint_seals();
        assert!(
            t.check(None, None).ok,
            "without the key a rehashed forgery passes"
        );
        let r = t.check(Some(&key), None);
        assert!(!r.ok && r.message.contains("epoch 0 is forged"), "{r:?}");
    }

    #[test]
    fn given_the_tail_removed_when_checked_at_now_then_the_missing_seals_show() {
        let (mut t, key) = sealed();
        let now = now_after(&t);
        t.records.truncate(6);
        let r = t.check(Some(&key), Some(now));
        assert!(!r.ok, "{r:?}");
        assert!(r.message.contains("no seal for"), "{}", r.message);
        assert!(!t.check(None, Some(now)).ok, "also without the key");
    }

    #[test]
    fn given_one_record_removed_in_the_middle_then_caught() {
        let (mut t, key) = sealed();
        t.records.remove(5);
        assert!(!t.check(Some(&key), None).ok);
        t.rehash();
        for (i, (r, _)) in t.records.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
        t.rehash();
        let r = t.check(Some(&key), None);
        assert!(
            !r.ok,
            "renumbered and rehashed: the seals' counts and MACs: {r:?}"
        );
    }

    #[test]
    fn given_a_seal_forged_with_a_later_key_then_caught() {
        let (mut t, key) = sealed();
        // The intruder holds the key of epoch 6 and rewrites epoch 2's seal with it.
        let idx = t
            .records
            .iter()
            .position(|(r, _)| Seal::parse(&r.detail).is_some_and(|s| s.epoch == 2))
            .unwrap();
        let (_, prev) = t.records[idx].clone();
        let s = Seal::parse(&t.records[idx].0.detail).unwrap();
        let forged = Seal::make(&s.key, &key.key0.advance(6), 2, s.count, &prev);
        t.records[idx].0.detail = forged.detail();
        t.rehash();
        let r = t.check(Some(&key), None);
        assert!(!r.ok && r.message.contains("epoch 2 is forged"), "{r:?}");
    }

    #[test]
    fn given_the_setup_removed_or_another_key_then_the_key_finds_nothing_to_check() {
        let (t, key) = sealed();
        let other = VerificationKey {
            key0: Key::random().unwrap(),
            ..key.clone()
        };
        let r = t.check(Some(&other), None);
        assert!(
            !r.ok && r.message.contains("no sealing set-up for this key"),
            "{r:?}"
        );
        // A fresh trail (the database replaced): nothing of this key.
        let mut fresh = Trail::new();
        fresh.add(T0, "request", "new".into());
        assert!(!fresh.check(Some(&key), None).ok);
    }

    #[test]
    fn given_sealing_set_up_again_with_another_key_then_the_old_key_says_so() {
        let (mut t, key) = sealed();
        let intruder = Key::random().unwrap();
        t.add(
            T0 + 400,
            SEAL_SETUP,
            seal::setup_detail(&intruder.fingerprint(), key.schedule),
        );
        let r = t.check(Some(&key), None);
        assert!(!r.ok && r.message.contains("set up again"), "{r:?}");
    }

    #[test]
    fn given_a_seal_skipped_then_the_gap_shows() {
        let key0 = Key::random().unwrap();
        let schedule = Schedule {
            t0: T0,
            interval: 60,
        };
        let mut t = Trail::new();
        t.add(
            T0,
            SEAL_SETUP,
            seal::setup_detail(&key0.fingerprint(), schedule),
        );
        t.seal(T0 + 61, &key0, 0);
        t.seal(T0 + 181, &key0, 2);
        let r = t.check(None, None);
        assert!(!r.ok && r.message.contains("epochs 1..1"), "{r:?}");
    }

    #[test]
    fn given_a_check_in_slices_then_the_same_outcome() {
        let (t, key) = sealed();
        let mut v = Verifier::new(&Base::default(), Some(key.clone()));
        for (r, prev) in &t.records[..5] {
            v.push(r, prev);
        }
        assert_eq!(v.next_seq(), 6);
        for (r, prev) in &t.records[5..] {
            v.push(r, prev);
        }
        assert_eq!(v.report(None), t.check(Some(&key), None));
    }
}
