use super::*;
use crate::directory::FakeDirectory;
use crate::policy::Verdict;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// A wall clock and a boot clock that advance together unless a test steps one of them.
pub(crate) struct FakeClock {
    wall_ms: AtomicI64,
    boot_ms: AtomicI64,
    boot_id: Mutex<&'static str>,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }
    fn boot_ms(&self) -> Option<i64> {
        Some(self.boot_ms.load(Ordering::SeqCst))
    }
    fn boot_id(&self) -> &str {
        *self.boot_id.lock().unwrap()
    }
}

impl FakeClock {
    pub(crate) fn at(unix: i64) -> FakeClock {
        FakeClock {
            wall_ms: AtomicI64::new(unix * 1000),
            boot_ms: AtomicI64::new(5_000),
            boot_id: Mutex::new("boot-1"),
        }
    }

    /// Time passes: both clocks move on.
    pub(crate) fn advance(&self, secs: i64) {
        self.wall_ms.fetch_add(secs * 1000, Ordering::SeqCst);
        self.boot_ms.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// Someone sets the wall clock: only it moves.
    pub(crate) fn step_wall(&self, secs: i64) {
        self.wall_ms.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// The machine is down for `secs` and boots again (the boot clock starts over).
    pub(crate) fn reboot(&self, secs: i64, id: &'static str) {
        self.wall_ms.fetch_add(secs * 1000, Ordering::SeqCst);
        self.boot_ms.store(3_000, Ordering::SeqCst);
        *self.boot_id.lock().unwrap() = id;
    }
}

/// Keeps shards in memory; can be told to fail.
#[derive(Clone, Default)]
pub(crate) struct FakeRules {
    shards: Arc<Mutex<BTreeMap<u32, Vec<Rule>>>>,
    foreign: Arc<Mutex<Vec<String>>>,
    fail: Arc<Mutex<bool>>,
}

impl FakeRules {
    /// The rule of grant `id` as the shard holds it.
    pub(crate) fn rule(&self, id: u64) -> Option<Rule> {
        self.shards
            .lock()
            .unwrap()
            .values()
            .flatten()
            .find(|r| r.grant_id == id)
            .cloned()
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .shards
            .lock()
            .unwrap()
            .values()
            .flatten()
            .map(|r| r.grant_id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl Rules for FakeRules {
    fn write_shard(
        &self,
        shard: u32,
        rules: &[Rule],
    ) -> std::result::Result<(), crate::sudoers::SudoersError> {
        if *self.fail.lock().unwrap() && !rules.is_empty() {
            return Err("disk full".into());
        }
        crate::sudoers::render_shard(shard, rules)?;
        let mut m = self.shards.lock().unwrap();
        if rules.is_empty() {
            m.remove(&shard);
        } else {
            m.insert(shard, rules.to_vec());
        }
        Ok(())
    }
    fn shard_matches(&self, shard: u32, rules: &[Rule]) -> bool {
        let m = self.shards.lock().unwrap();
        match m.get(&shard) {
            None => rules.is_empty(),
            Some(have) => have == rules,
        }
    }
    fn clear_timestamps(
        &self,
        _user: &UserName,
    ) -> std::result::Result<(), crate::sudoers::SudoersError> {
        Ok(())
    }
    fn owned(&self) -> std::result::Result<crate::sudoers::Owned, crate::sudoers::SudoersError> {
        Ok(crate::sudoers::Owned {
            shards: self.shards.lock().unwrap().keys().copied().collect(),
            foreign: self.foreign.lock().unwrap().clone(),
            ..Default::default()
        })
    }
    fn remove_owned(&self, name: &str) -> std::result::Result<(), crate::sudoers::SudoersError> {
        self.foreign.lock().unwrap().retain(|n| n != name);
        Ok(())
    }
    fn location(&self) -> String {
        "fake".into()
    }
}

pub(crate) const POLICY: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/systemctl restart nginx"]
requesters = ["%webops"]
max_duration = "1h"
default_duration = "15m"

[[role]]
name = "db-admin"
commands = ["/usr/bin/psql"]
requesters = ["%webops", "bob"]
approvers = ["%sre", "alice"]
approvals = 1
max_duration = "2h"
pending_timeout = "10m"

[[role]]
name = "prod-root"
commands = ["/usr/bin/id"]
requesters = ["%webops", "bob"]
approvers = ["%sre", "alice"]
approvals = 2
max_duration = "1h"
max_total_duration = "90m"
break_glass = true
"#;

pub(crate) fn dir() -> FakeDirectory {
    FakeDirectory::default()
        .user("alice", 1001, &["alice", "webops"])
        .user("bob", 1002, &["bob", "sre"])
        .user("carol", 1003, &["carol", "sre"])
        .user("dave", 1004, &["dave", "sre"])
        .user("mallory", 1005, &["mallory"])
        .user("root", 0, &["root"])
}

pub(crate) fn actor(name: &str) -> Actor {
    let uid = dir().uid_of(name).unwrap().unwrap();
    Actor {
        name: name.into(),
        uid,
        origin: "bus pid=4242 tty=pts/1".into(),
        login_uid: Some(uid),
        tty: "pts/1".into(),
    }
}

pub(crate) struct World {
    pub(crate) core: Core,
    pub(crate) clock: Arc<FakeClock>,
    pub(crate) rules: FakeRules,
}

/// A core on `policy`, users from `dir`, an in-memory store and fake rules, at unix second `t`.
pub(crate) fn world_with(policy: &str, dir: &FakeDirectory, t: i64) -> World {
    let clock = Arc::new(FakeClock::at(t));
    let rules = FakeRules::default();
    let policy = Policy::parse("test.toml", policy, dir).unwrap();
    let core = Core::new(
        policy,
        Store::in_memory().unwrap(),
        Box::new(rules.clone()),
        Box::new(dir.clone()),
        clock.clone(),
        None,
    );
    World { core, clock, rules }
}

pub(crate) fn world() -> World {
    world_with(POLICY, &dir(), 1_795_272_000)
}

/// A request as asked through jitctl.
pub(crate) fn ask(kind: Kind, role: &str, duration: u64, reason: &str) -> Ask {
    Ask {
        kind,
        role: role.into(),
        duration,
        reason: reason.into(),
        origin: origin(),
        ssh_keys: Vec::new(),
        key_fingerprints: Vec::new(),
    }
}

pub(crate) fn origin() -> Origin {
    Origin {
        service: "jitctl".into(),
        ..Origin::default()
    }
}

#[test]
fn given_self_service_role_when_requested_then_active_with_rule_until_not_after() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 0, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(r.state, State::Active);
    assert_eq!(r.not_after, w.core.now() + 900);
    assert_eq!(w.rules.ids(), vec![r.id]);
    assert!(w.core.check("alice", false).unwrap().active);
    assert!(
        !w.core.check("alice", true).unwrap().active,
        "role has no ssh"
    );
}

#[test]
fn given_approval_role_when_requested_then_pending_and_no_rule() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(r.state, State::Pending);
    assert!(w.rules.ids().is_empty());
    assert!(!w.core.check("alice", false).unwrap().active);
}

#[test]
fn given_pending_request_when_approver_approves_then_active() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.clock.advance(30);
    let a = w.core.approve(&actor("bob"), r.id, "ok").unwrap();
    assert_eq!(a.state, State::Active);
    assert_eq!(a.not_after, w.core.now() + 600, "time counts from approval");
    assert_eq!(w.rules.ids(), vec![r.id]);
}

#[test]
fn given_own_request_when_requester_approves_then_refused_even_if_approver() {
    let mut w = world();
    // bob is in %sre (an approver) and may request db-admin himself.
    let r = w
        .core
        .request(
            &actor("bob"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    let e = w.core.approve(&actor("bob"), r.id, "").unwrap_err();
    assert!(matches!(e, Error::NotAuthorized(m) if m.contains("own request")));
    assert_eq!(w.core.get(r.id).unwrap().state, State::Pending);
}

#[test]
fn given_non_approver_when_approving_then_refused() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    // root sees every request but approves none it is not an approver of; mallory may
    // not even see it.
    let e = w.core.approve(&actor("root"), r.id, "").unwrap_err();
    assert!(matches!(e, Error::NotAuthorized(_)), "root: {e:?}");
    let e = w.core.approve(&actor("mallory"), r.id, "").unwrap_err();
    assert_eq!(e, Error::NotFound(format!("no request {}", r.id)));
    assert_eq!(w.core.get(r.id).unwrap().state, State::Pending);
}

#[test]
fn given_two_approval_role_when_same_approver_approves_twice_then_second_refused() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "prod-root", 600, "P-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(
        w.core.approve(&actor("bob"), r.id, "").unwrap().state,
        State::Pending
    );
    let e = w.core.approve(&actor("bob"), r.id, "").unwrap_err();
    assert!(matches!(e, Error::WrongState(m) if m.contains("already approved")));
    assert_eq!(
        w.core.approve(&actor("carol"), r.id, "").unwrap().state,
        State::Active
    );
}

#[test]
fn given_denied_request_when_approved_then_refused_and_never_active() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.deny(&actor("carol"), r.id, "not now").unwrap();
    let e = w.core.approve(&actor("bob"), r.id, "").unwrap_err();
    assert!(matches!(e, Error::WrongState(_)));
    assert_eq!(w.core.get(r.id).unwrap().state, State::Denied);
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_pending_timeout_when_time_passes_then_expired_and_cannot_be_approved() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.clock.advance(601);
    w.core.expire_due().unwrap();
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
    assert!(matches!(
        w.core.approve(&actor("bob"), r.id, ""),
        Err(Error::WrongState(_))
    ));
}

#[test]
fn given_active_grant_when_not_after_passes_then_expired_and_rule_removed() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 60, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(w.core.expire_due().unwrap(), Some(r.not_after));
    w.clock.advance(59);
    w.core.expire_due().unwrap();
    assert_eq!(w.rules.ids(), vec![r.id]);
    w.clock.advance(1);
    assert_eq!(w.core.expire_due().unwrap(), None);
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
    assert!(w.rules.ids().is_empty());
    assert!(!w.core.check("alice", false).unwrap().active);
}

#[test]
fn given_grant_past_not_after_when_timer_has_not_run_then_check_says_inactive() {
    let mut w = world();
    w.core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 60, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.clock.advance(61);
    assert!(!w.core.check("alice", false).unwrap().active);
}

#[test]
fn given_active_grant_when_released_or_revoked_then_rule_removed() {
    let mut w = world();
    let a = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 0, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    let released = w.core.release(&actor("alice"), 0).unwrap();
    assert_eq!(released.state, State::Released);
    assert!(w.rules.ids().is_empty());

    let b = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 0, "OPS-2"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        w.core.revoke(&actor("mallory"), b.id, "x").unwrap_err(),
        Error::NotFound(format!("no request {}", b.id)),
        "a grant mallory may not see does not exist for her"
    );
    assert!(matches!(
        w.core.revoke(&actor("root"), b.id, ""),
        Err(Error::Refused(Refusal::ReasonRequired, _))
    ));
    let revoked = w.core.revoke(&actor("root"), b.id, "incident").unwrap();
    assert_eq!(revoked.state, State::Revoked);
    assert_eq!(revoked.decision_reason, "incident");
    assert!(w.rules.ids().is_empty());
    assert!(matches!(
        w.core.release(&actor("alice"), b.id),
        Err(Error::WrongState(_))
    ));
}

#[test]
fn given_someone_elses_grant_when_released_then_refused() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 0, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(
        w.core.release(&actor("bob"), r.id).unwrap_err(),
        Error::NotFound(format!("no request {}", r.id))
    );
    assert_eq!(w.rules.ids(), vec![r.id]);
}

#[test]
fn given_duplicate_request_when_submitted_then_refused_without_new_request() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    let e = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Refused(Refusal::Duplicate, m) if m.contains(&format!("request {}", r.id)))
    );
    assert_eq!(w.core.store.recent(10).unwrap().len(), 1);
}

#[test]
fn given_bad_requests_when_submitted_then_refused_and_nothing_stored() {
    let mut w = world();
    let cases: Vec<(&str, &str, u64, &str)> = vec![
        ("alice", "no-such-role", 60, "x"),
        ("alice", "web-restart", 7200, "x"),
        ("alice", "web-restart", 60, "  "),
        ("alice", "web-restart", 60, "line\nbreak"),
        ("mallory", "web-restart", 60, "x"),
    ];
    for (user, role, d, reason) in cases {
        assert!(
            w.core
                .request(
                    &actor(user),
                    &ask(Kind::Grant, role, d, reason),
                    &Verdict::NotRun
                )
                .is_err(),
            "{user} {role} {d} {reason:?}"
        );
    }
    assert!(w.core.store.recent(10).unwrap().is_empty());
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_rule_install_fails_when_granting_then_grant_revoked_and_error() {
    let mut w = world();
    *w.rules.fail.lock().unwrap() = true;
    let e = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 0, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Internal(_)));
    let rows = w.core.store.recent(10).unwrap();
    assert_eq!(rows[0].state, State::Revoked);
    assert!(!w.core.check("alice", false).unwrap().active);
    assert!(
        w.core
            .status(&actor("root"))
            .unwrap()
            .last_error
            .contains("disk full")
    );
}

#[test]
fn given_missing_and_orphan_files_when_reconciled_then_directory_matches_database() {
    let mut w = world();
    let keep = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", 600, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    let gone = w
        .core
        .request(
            &actor("bob"),
            &ask(Kind::Grant, "db-admin", 60, "DB-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.approve(&actor("carol"), gone.id, "").unwrap();
    // Simulate a crash: alice's rule vanished, and a foreign file is present.
    w.rules.shards.lock().unwrap().clear();
    w.rules
        .foreign
        .lock()
        .unwrap()
        .push("jit-999-mallory".into());
    w.clock.advance(61);
    let rep = w.core.reconcile().unwrap();
    assert_eq!(rep.expired, 1);
    assert_eq!(rep.removed, 1);
    assert_eq!(rep.restored, 1);
    assert_eq!(w.rules.ids(), vec![keep.id]);
    assert!(w.rules.foreign.lock().unwrap().is_empty());
    assert_eq!(w.core.get(gone.id).unwrap().state, State::Expired);
}

#[test]
fn given_requests_of_others_when_listing_then_only_visible_ones() {
    let mut w = world();
    let a = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    let ids = |core: &Core, who: &str| -> Vec<u64> {
        core.list(&actor(who), false, false)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(&w.core, "alice"), vec![a.id]);
    assert_eq!(ids(&w.core, "bob"), vec![a.id], "approver sees it");
    assert!(ids(&w.core, "mallory").is_empty());
    assert!(matches!(
        w.core.show(&actor("mallory"), a.id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn every_change_is_audited_and_the_chain_verifies() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "DB-7"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.approve(&actor("bob"), r.id, "fine").unwrap();
    w.core.revoke(&actor("bob"), r.id, "done").unwrap();
    let actions: Vec<String> = w
        .core
        .audit(&actor("root"), 0, None)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["request", "approve", "grant", "revoke"]);
    let v = w.core.audit_verify(&actor("root")).unwrap();
    assert!(v.ok, "{}", v.message);
    assert_eq!(v.records, 4);
    assert!(w.core.audit_verify(&actor("mallory")).is_err());
}

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Request(usize, usize),
        Approve(usize, usize),
        Deny(usize, usize),
        Revoke(usize, usize),
        Release(usize),
        Cancel(usize, usize),
        Advance(i64),
        BreakGlass(usize, usize),
        Extend(usize, usize, u64),
    }

    const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "mallory", "root"];
    const ROLES: [&str; 3] = ["web-restart", "db-admin", "prod-root"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..USERS.len(), 0..ROLES.len()).prop_map(|(u, r)| Op::Request(u, r)),
            3 => (0..USERS.len(), 1usize..8).prop_map(|(u, id)| Op::Approve(u, id)),
            1 => (0..USERS.len(), 1usize..8).prop_map(|(u, id)| Op::Deny(u, id)),
            1 => (0..USERS.len(), 1usize..8).prop_map(|(u, id)| Op::Revoke(u, id)),
            1 => (0..USERS.len()).prop_map(Op::Release),
            1 => (0..USERS.len(), 1usize..8).prop_map(|(u, id)| Op::Cancel(u, id)),
            1 => (1i64..900).prop_map(Op::Advance),
            1 => (0..USERS.len(), 0..ROLES.len()).prop_map(|(u, r)| Op::BreakGlass(u, r)),
            3 => (0..2usize, 1usize..6, 60u64..4000).prop_map(|(u, id, by)| Op::Extend(u, id, by)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// No sequence of calls yields an active grant of an approval role without the
        /// required number of distinct approvals from people other than the requester,
        /// and no ended request ever becomes active again.
        #[test]
        fn no_active_grant_without_required_distinct_non_requester_approvals(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let mut w = world();
            let mut ended: Vec<u64> = Vec::new();
            for o in ops {
                let _ = match o {
                    Op::Request(u, r) => w.core.request(&actor(USERS[u]), &ask(Kind::Grant, ROLES[r], 60, "T-1"), &Verdict::NotRun).map(|_| ()),
                    Op::Approve(u, id) => w.core.approve(&actor(USERS[u]), id as u64, "").map(|_| ()),
                    Op::Deny(u, id) => w.core.deny(&actor(USERS[u]), id as u64, "no").map(|_| ()),
                    Op::Revoke(u, id) => w.core.revoke(&actor(USERS[u]), id as u64, "no").map(|_| ()),
                    Op::Release(u) => w.core.release(&actor(USERS[u]), 0).map(|_| ()),
                    Op::Cancel(u, id) => w.core.cancel(&actor(USERS[u]), id as u64).map(|_| ()),
                    Op::Advance(s) => { w.clock.advance(s); w.core.expire_due().map(|_| ()) }
                    Op::BreakGlass(u, r) => w.core.request(&actor(USERS[u]), &ask(Kind::BreakGlass, ROLES[r], 60, "T-2 outage"), &Verdict::NotRun).map(|_| ()),
                    Op::Extend(u, id, by) => w.core.extend(&actor(USERS[u]), id as u64, by, "T-3 more", &Verdict::NotRun).map(|_| ()),
                };
                for r in w.core.store.recent(100).unwrap() {
                    if r.state.is_terminal() {
                        if !ended.contains(&r.id) { ended.push(r.id); }
                        prop_assert!(!w.rules.ids().contains(&r.id), "ended {} still has a rule", r.id);
                    } else {
                        prop_assert!(!ended.contains(&r.id), "request {} came back", r.id);
                    }
                    // The policy, not what the row says, decides how many approvals a
                    // grant (or an applied extension) needed.
                    let role = w.core.policy().role(&r.role).unwrap();
                    let needs = match (r.state, r.kind) {
                        (State::Active, Kind::Grant) | (State::Applied, Kind::Extension) => role.approvals,
                        (State::Active, Kind::BreakGlass) => {
                            prop_assert!(role.break_glass, "break-glass grant {} of a role without it", r.id);
                            0
                        }
                        _ => 0,
                    };
                    if r.state == State::Active {
                        prop_assert!(r.not_after - r.granted_at <= role.max_total as i64,
                            "grant {} runs {}s past its start, max total {}", r.id, r.not_after - r.granted_at, role.max_total);
                    }
                    if needs > 0 {
                        let approvers = w.core.store.approvers_of(r.id).unwrap();
                        let distinct: std::collections::BTreeSet<u32> = approvers
                            .iter()
                            .map(|(_, uid)| *uid)
                            .filter(|uid| *uid != r.uid)
                            .collect();
                        prop_assert!(distinct.len() >= needs as usize,
                            "request {} active with {:?}", r.id, approvers);
                    }
                }
            }
        }
    }
}
