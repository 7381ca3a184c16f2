//! Time: a grant ends at whichever comes first of its wall-clock end and its end on the
//! boot clock; clock steps, suspend and reboots, with an injected clock.

use super::tests::{POLICY, World, actor, ask, dir, world};
use super::*;
use crate::policy::Verdict;

fn self_service_grant(w: &mut World, secs: u64) -> RequestRow {
    w.core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "web-restart", secs, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap()
}

#[test]
fn given_wall_clock_stepped_back_when_grant_time_passes_then_it_still_ends_on_time() {
    let mut w = world();
    let r = self_service_grant(&mut w, 60);
    w.clock.step_wall(-3600);
    w.core.expire_due().unwrap();
    // not_after is fixed wall-clock time: stepping back does not move it...
    assert_eq!(w.core.get(r.id).unwrap().not_after, r.not_after);
    assert!(w.core.check("alice", false).unwrap().active);
    // ...and the wall clock now says an hour and a minute are left; the boot clock says 1 s.
    w.clock.advance(59);
    assert_eq!(
        w.core.expire_due().unwrap(),
        Some(w.core.now() + 1),
        "the timer is set by the boot clock"
    );
    assert_eq!(w.rules.ids(), vec![r.id]);
    w.clock.advance(1);
    assert!(
        !w.core.check("alice", false).unwrap().active,
        "check ends it too"
    );
    assert_eq!(w.core.expire_due().unwrap(), None);
    let row = w.core.get(r.id).unwrap();
    assert_eq!(row.state, State::Expired);
    assert!(
        row.decision_reason.contains("boot clock"),
        "{}",
        row.decision_reason
    );
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_wall_clock_stepped_forward_when_timer_runs_then_grant_ends_at_once() {
    let mut w = world();
    let r = self_service_grant(&mut w, 600);
    w.clock.step_wall(601);
    assert!(!w.core.check("alice", false).unwrap().active);
    w.core.expire_due().unwrap();
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_extension_when_applied_then_boot_deadline_moves_with_not_after() {
    let mut w = world();
    let r = self_service_grant(&mut w, 60);
    w.core
        .extend(&actor("alice"), r.id, 120, "more", &Verdict::NotRun)
        .unwrap();
    w.clock.step_wall(-3600);
    w.clock.advance(179);
    w.core.expire_due().unwrap();
    assert_eq!(w.rules.ids(), vec![r.id], "extended to 180 s in all");
    w.clock.advance(1);
    w.core.expire_due().unwrap();
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_reboot_when_reconciled_then_grants_get_a_deadline_on_the_new_boot() {
    let mut w = world();
    let r = self_service_grant(&mut w, 600);
    // Down for 100 s; the new boot's wall clock is an hour behind (a bad RTC).
    w.clock.reboot(100 - 3600, "boot-2");
    let rep = w.core.reconcile().unwrap();
    assert_eq!(rep.revoked, 0);
    let row = w.core.get(r.id).unwrap();
    assert_eq!(row.boot_id, "boot-2");
    assert_eq!(row.not_after, r.not_after);
    // The wall clock says 600 - 100 + 3600 s are left; never more than the grant's length.
    w.clock.advance(599);
    w.core.expire_due().unwrap();
    assert_eq!(w.rules.ids(), vec![r.id]);
    w.clock.advance(1);
    w.core.expire_due().unwrap();
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
    let audit = w.core.audit(&actor("root"), 0, None).unwrap();
    assert!(
        audit.iter().any(|a| a.action == "reevaluate"
            && a.request_id == r.id
            && a.detail.contains("was boot-1")),
        "{audit:?}"
    );
}

#[test]
fn given_reboot_with_time_up_by_wall_clock_when_reconciled_then_expired() {
    let mut w = world();
    let r = self_service_grant(&mut w, 60);
    w.clock.reboot(300, "boot-2");
    let rep = w.core.reconcile().unwrap();
    assert_eq!(rep.expired, 1);
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_reboot_and_role_gone_from_policy_when_reconciled_then_revoked() {
    let mut w = world();
    let r = self_service_grant(&mut w, 600);
    let without = POLICY.replace("name = \"web-restart\"", "name = \"web-reload\"");
    w.core
        .replace_policy(Policy::parse("test.toml", &without, &dir()).unwrap())
        .unwrap();
    // Without a reboot the grant keeps its terms (frozen at approval)...
    w.core.reconcile().unwrap();
    assert_eq!(w.core.get(r.id).unwrap().state, State::Active);
    // ...a reboot judges it again.
    w.clock.reboot(10, "boot-2");
    let rep = w.core.reconcile().unwrap();
    assert_eq!(rep.revoked, 1);
    let row = w.core.get(r.id).unwrap();
    assert_eq!(row.state, State::Revoked);
    assert!(
        row.decision_reason.contains("after a reboot"),
        "{}",
        row.decision_reason
    );
    assert!(w.rules.ids().is_empty());
}

#[test]
fn given_suspend_when_machine_resumes_then_grant_ended_by_the_time_that_passed() {
    let mut w = world();
    let r = self_service_grant(&mut w, 60);
    // Suspended for ten minutes: the boot clock and the wall clock both moved on.
    w.clock.advance(600);
    w.core.expire_due().unwrap();
    assert_eq!(w.core.get(r.id).unwrap().state, State::Expired);
}
