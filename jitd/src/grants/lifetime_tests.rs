//! A right exists only while the grant that gave it exists, and only the policy's path
//! creates one: sessions bound to the grant that could have authorised them, no request
//! revealed to a caller who may not see it, no approval by the requester under another
//! identity, no input that can panic the core.

use super::tests::{World, ask, world_with};
use super::*;
use crate::directory::FakeDirectory;
use crate::policy::Verdict;

const POLICY: &str = r#"
[[role]]
name = "short"
commands = ["/bin/sh"]
requesters = ["%ops"]
max_duration = "1h"

[[role]]
name = "long"
commands = ["/usr/bin/id"]
requesters = ["%ops"]
max_duration = "1h"

[[role]]
name = "as-db"
commands = ["/usr/bin/psql"]
run_as = "postgres"
requesters = ["%ops"]
max_duration = "1h"

[[role]]
name = "login"
commands = ["/usr/bin/true"]
requesters = ["%ops"]
max_duration = "1h"
ssh = true

[[role]]
name = "db"
commands = ["/usr/bin/psql"]
requesters = ["%ops"]
approvers = ["%sre"]
approvals = 1
max_duration = "1h"

[[role]]
name = "as-helper"
commands = ["/usr/bin/true"]
run_as = "helper"
requesters = ["%ops"]
max_duration = "1h"
"#;

const T0: i64 = 1_795_272_000;

fn dir() -> FakeDirectory {
    FakeDirectory::default()
        .user("alice", 1001, &["alice", "ops"])
        .user("dave", 1004, &["dave", "ops"])
        .user("carol", 1003, &["carol", "sre"])
        .user("bob", 1002, &["bob", "sre"])
        .user("mallory", 1005, &["mallory"])
        .user("postgres", 120, &["postgres"])
        // A service account the approvers' group holds: a requester who could run commands
        // as it would approve through it.
        .user("helper", 130, &["helper", "sre"])
        .user("root", 0, &["root"])
}

/// `name` calling from their own login session.
fn actor(name: &str) -> Actor {
    let uid = dir().uid_of(name).unwrap().unwrap();
    Actor {
        name: name.into(),
        uid,
        origin: format!("bus pid=4242 loginuid={uid}"),
        login_uid: Some(uid),
        tty: "pts/1".into(),
    }
}

fn world() -> World {
    world_with(POLICY, &dir(), T0)
}

fn grant(w: &mut World, role: &str, secs: u64) -> RequestRow {
    w.core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, role, secs, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap()
}

fn sudo_to(target: &str) -> SessionSpec {
    SessionSpec {
        pid: 4242,
        target: (!target.is_empty()).then(|| target.into()),
        ssh: false,
    }
}

fn bound(w: &World, s: &SessionSpec) -> Option<u64> {
    w.core.authorising_grant("alice", s).unwrap().map(|r| r.id)
}

#[test]
fn given_short_and_long_grants_when_a_session_opens_then_bound_to_the_one_ending_first() {
    // Regression: a `sudo -s` shell opened under a 1-minute grant was bound to a longer
    // grant of another role and kept root for minutes after its own grant ended.
    let mut w = world();
    let long = grant(&mut w, "long", 480);
    let short = grant(&mut w, "short", 60);
    assert_eq!(bound(&w, &sudo_to("root")), Some(short.id));
    // Once the short one has ended, the long one is all that could authorise it.
    w.clock.advance(61);
    w.core.expire_due().unwrap();
    assert_eq!(bound(&w, &sudo_to("root")), Some(long.id));
}

#[test]
fn given_grants_running_as_other_users_when_sudo_session_opens_then_bound_by_target() {
    let mut w = world();
    let as_db = grant(&mut w, "as-db", 3000);
    let as_root = grant(&mut w, "short", 60);
    // sudo -u postgres: only the grant that runs as postgres could have authorised it,
    // however much sooner the other one ends.
    assert_eq!(bound(&w, &sudo_to("postgres")), Some(as_db.id));
    assert_eq!(bound(&w, &sudo_to("root")), Some(as_root.id));
    // A target no grant runs as (a static rule authorised it, or jitd cannot tell): the
    // grant that ends first of all of them (fail closed).
    assert_eq!(bound(&w, &sudo_to("nobody")), Some(as_root.id));
    assert_eq!(bound(&w, &sudo_to("")), Some(as_root.id));
}

#[test]
fn given_ssh_login_when_session_opens_then_only_an_ssh_grant_may_hold_it() {
    // Regression: an ssh login could land on a grant whose role has no ssh right, and ran
    // until that unrelated grant ended.
    let mut w = world();
    let _other = grant(&mut w, "short", 60);
    let ssh = SessionSpec {
        pid: 4242,
        target: None,
        ssh: true,
    };
    assert_eq!(
        bound(&w, &ssh),
        None,
        "no ssh grant: nothing holds the login"
    );
    let login = grant(&mut w, "login", 3000);
    assert_eq!(bound(&w, &ssh), Some(login.id));
}

#[test]
fn given_request_caller_may_not_see_when_any_method_names_it_then_it_does_not_exist_for_them() {
    // Regression: release/cancel/extend answered "request 2 belongs to axreq", approve/deny/
    // revoke "... is not an approver for role 'one'", where show said "no request 2".
    let mut w = world();
    let active = grant(&mut w, "short", 600);
    let pending = grant(&mut w, "db", 600);
    let mallory = actor("mallory");
    let missing = 999;
    for id in [active.id, pending.id, missing] {
        let want = Error::NotFound(format!("no request {id}"));
        let answers = [
            w.core.show(&mallory, id).map(|_| ()),
            w.core.approve(&mallory, id, "").map(|_| ()),
            w.core.deny(&mallory, id, "no").map(|_| ()),
            w.core.revoke(&mallory, id, "no").map(|_| ()),
            w.core.release(&mallory, id).map(|_| ()),
            w.core.cancel(&mallory, id).map(|_| ()),
            w.core
                .extend(&mallory, id, 60, "more", &Verdict::NotRun)
                .map(|_| ()),
            w.core.acknowledge(&mallory, id, "seen").map(|_| ()),
        ];
        for (i, a) in answers.into_iter().enumerate() {
            assert_eq!(a, Err(want.clone()), "request {id}, method #{i}");
        }
    }
    assert_eq!(w.core.row(active.id).unwrap().state, State::Active);
    assert_eq!(w.core.row(pending.id).unwrap().state, State::Pending);
}

#[test]
fn given_approval_from_the_requesters_login_session_when_approving_then_refused() {
    // Regression: with a role that let the requester act as an approver, the requester
    // approved their own request through `sudo -u approver jitctl approve`.
    let mut w = world();
    let r = grant(&mut w, "db", 600);
    let mut bob_in_alices_session = actor("bob");
    bob_in_alices_session.login_uid = Some(1001);
    let e = w
        .core
        .approve(&bob_in_alices_session, r.id, "")
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("login session of its requester")),
        "{e:?}"
    );
    assert_eq!(w.core.row(r.id).unwrap().state, State::Pending);
    // bob from his own session may.
    let a = w.core.approve(&actor("bob"), r.id, "ok").unwrap();
    assert_eq!(a.state, State::Active);
    let rec = w.core.store.audit_since(0, "").unwrap();
    let approval = rec.iter().find(|r| r.action == "approve").unwrap();
    assert!(approval.origin.contains("loginuid=1002"), "{approval:?}");
}

#[test]
fn given_requester_who_can_run_commands_as_an_approver_when_that_approver_approves_then_refused() {
    let mut w = world();
    let _as_helper = grant(&mut w, "as-helper", 600);
    let r = grant(&mut w, "db", 600);
    // helper (in %sre) is an approver, and alice may run commands as helper right now: an
    // approval from helper may be alice's own, whatever session it comes from.
    let e = w.core.approve(&actor("helper"), r.id, "").unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("can run commands as helper")),
        "{e:?}"
    );
    assert_eq!(w.core.row(r.id).unwrap().state, State::Pending);
}

#[test]
fn given_durations_past_any_bound_when_requested_or_extended_then_refused_without_panic() {
    // Regression: a request for 9000y panicked a worker formatting a time past year 9999,
    // poisoned the state lock and stopped expiry for everyone.
    let mut w = world();
    for secs in [u64::MAX, u64::MAX / 2, 9000 * 365 * 86_400, 3601] {
        let e = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "long", secs, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Duration), "{secs}: {e:?}");
    }
    let g = grant(&mut w, "long", 600);
    for by in [u64::MAX, 9000 * 365 * 86_400] {
        let e = w
            .core
            .extend(&actor("alice"), g.id, by, "OPS-1 more", &Verdict::NotRun)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{by}: {e:?}");
    }
    // Expiry still runs.
    w.clock.advance(601);
    w.core.expire_due().unwrap();
    assert_eq!(w.core.row(g.id).unwrap().state, State::Expired);
}

#[test]
fn given_another_users_grant_runs_as_the_approver_when_that_identity_approves_then_refused() {
    // Found in the user trial: dave (no approver) held a role running as bob (an approver)
    // and approved ann's request with `sudo -u bob jitctl approve`.
    let mut w = world();
    w.core
        .request(
            &actor("dave"),
            &ask(Kind::Grant, "as-helper", 600, "OPS-2"),
            &Verdict::NotRun,
        )
        .unwrap();
    let r = grant(&mut w, "db", 600);
    let mut helper_from_nowhere = actor("helper");
    helper_from_nowhere.login_uid = None;
    let e = w.core.approve(&helper_from_nowhere, r.id, "").unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("another user, dave can run commands as helper")),
        "{e:?}"
    );
    assert_eq!(w.core.row(r.id).unwrap().state, State::Pending);
}

#[test]
fn given_login_session_of_a_non_approver_when_approving_as_an_approver_then_refused() {
    let mut w = world();
    let r = grant(&mut w, "db", 600);
    let mut bob_in_daves_session = actor("bob");
    bob_in_daves_session.login_uid = Some(1004);
    let e = w.core.approve(&bob_in_daves_session, r.id, "").unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("login session of dave") && m.contains("not an approver")),
        "{e:?}"
    );
    // An approver who switched to another approver's identity counts as themselves: carol
    // in bob's session approves as bob would, once.
    let mut carol_in_bobs_session = actor("carol");
    carol_in_bobs_session.login_uid = Some(1002);
    assert_eq!(
        w.core
            .approve(&carol_in_bobs_session, r.id, "")
            .unwrap()
            .state,
        State::Active
    );
}

#[test]
fn given_approver_who_approved_when_approving_again_as_another_approver_then_refused() {
    let mut w = world_with(
        &POLICY.replace(
            "approvals = 1\nmax_duration = \"1h\"\n\n[[role]]\nname = \"as-helper\"",
            "approvals = 2\nmax_duration = \"1h\"\n\n[[role]]\nname = \"as-helper\"",
        ),
        &dir(),
        T0,
    );
    let r = grant(&mut w, "db", 600);
    w.core.approve(&actor("bob"), r.id, "").unwrap();
    let mut bob_as_carol = actor("carol");
    bob_as_carol.login_uid = Some(1002);
    let e = w.core.approve(&bob_as_carol, r.id, "").unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("has already approved it")),
        "{e:?}"
    );
    assert_eq!(w.core.row(r.id).unwrap().state, State::Pending);
}

#[test]
fn given_requests_of_others_when_an_ordinary_user_asks_status_then_only_their_own_are_counted() {
    // Found in the user trial: `jitctl status` showed any user the host's pending count.
    let mut w = world();
    grant(&mut w, "db", 600);
    let mallory = w.core.status(&actor("mallory")).unwrap();
    assert_eq!((mallory.pending_requests, mallory.active_grants), (0, 0));
    let alice = w.core.status(&actor("alice")).unwrap();
    assert_eq!(alice.pending_requests, 1);
    let root = w.core.status(&actor("root")).unwrap();
    assert_eq!(root.pending_requests, 1);
}

#[test]
fn given_an_ordinary_user_when_asking_for_another_users_audit_records_then_refused_saying_why() {
    // Found in the user trial: the filter was ignored and the caller's own records came back.
    let w = world();
    let bob: UserName = "bob".into();
    let e = w.core.audit(&actor("alice"), 0, Some(&bob)).unwrap_err();
    assert!(
        matches!(&e, Error::NotAuthorized(m) if m.contains("only root and approvers")),
        "{e:?}"
    );
    let alice: UserName = "alice".into();
    assert!(w.core.audit(&actor("alice"), 0, Some(&alice)).is_ok());
    assert!(w.core.audit(&actor("root"), 0, Some(&bob)).is_ok());
}
