use crate::grants::tests::{actor, ask, dir, world_with};
use crate::model::Kind;
use crate::policy::{EventKind, Verdict};
use serde_json::Value;

const POLICY: &str = r#"
[settings]
ending_soon = "2m"

[[role]]
name = "db-admin"
commands = ["/usr/bin/psql"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "2h"
pending_timeout = "30m"
escalate_after = "10m"
escalation_approvers = ["carol"]
reason_pattern = '^(?P<ticket>OPS-[0-9]+)\b'

[[role]]
name = "web-restart"
commands = ["/usr/bin/systemctl restart nginx"]
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "prod-root"
commands = ["/usr/bin/id"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "1h"
break_glass = true
"#;

fn world() -> crate::grants::tests::World {
    world_with(POLICY, &dir(), 1_795_272_000)
}

/// The events committed since the last look: (kind, outcome, request id).
fn events(w: &mut crate::grants::tests::World) -> Vec<(EventKind, Option<String>, u64)> {
    w.core
        .take_notices()
        .into_iter()
        .map(|n| {
            let v: Value = serde_json::from_str(&n.body).unwrap();
            assert_eq!(v["schema"], "jit.event/1");
            assert_eq!(v["event"], n.kind.as_str());
            assert_eq!(v["request"]["id"], n.row.id);
            (n.kind, v["outcome"].as_str().map(str::to_string), n.row.id)
        })
        .collect()
}

#[test]
fn given_a_request_approved_used_and_expired_then_each_step_is_one_event_in_order() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, "OPS-12 reindex"),
            &Verdict::NotRun,
        )
        .unwrap();
    let n = w.core.take_notices();
    assert_eq!(n.len(), 1);
    let v: Value = serde_json::from_str(&n[0].body).unwrap();
    assert_eq!(v["event"], "submitted");
    assert_eq!(v["request"]["user"], "alice");
    assert_eq!(v["request"]["role"], "db-admin");
    assert_eq!(v["request"]["duration"], "10m");
    assert_eq!(v["request"]["reason"], "OPS-12 reindex");
    assert_eq!(v["request"]["ticket"], "OPS-12");
    assert_eq!(v["commands"]["approve"], format!("jitctl approve {}", r.id));
    assert_eq!(
        v["commands"]["deny"],
        format!("jitctl deny {} --reason TEXT", r.id)
    );
    assert!(v["request"]["pending_until"].is_string());
    assert!(v["request"]["escalates_at"].is_string());
    let summary = v["summary"].as_str().unwrap();
    for needle in [
        "alice asks for role db-admin for 10m on ",
        "\"OPS-12 reindex\"",
        "decide by ",
        &format!("jitctl approve {}", r.id),
        &format!("jitctl deny {} --reason TEXT", r.id),
        "escalates at",
    ] {
        assert!(summary.contains(needle), "{needle:?} in {summary:?}");
    }

    w.core.approve(&actor("bob"), r.id, "ok").unwrap();
    assert_eq!(
        events(&mut w),
        vec![
            (EventKind::Decided, Some("approved".into()), r.id),
            (EventKind::Granted, None, r.id),
        ]
    );
    // Nothing to announce yet; then 2 minutes before the end, once.
    w.core.expire_due().unwrap();
    assert_eq!(events(&mut w), vec![]);
    w.clock.advance(600 - 120);
    w.core.expire_due().unwrap();
    assert_eq!(events(&mut w), vec![(EventKind::EndingSoon, None, r.id)]);
    w.clock.advance(30);
    w.core.expire_due().unwrap();
    assert_eq!(events(&mut w), vec![], "announced once");
    w.clock.advance(90);
    w.core.expire_due().unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Ended, Some("expired".into()), r.id)]
    );
}

#[test]
fn given_endings_by_hand_and_by_time_then_each_says_how() {
    let mut w = world();
    let who = actor("alice");
    let deny = w
        .core
        .request(
            &who,
            &ask(Kind::Grant, "db-admin", 600, "OPS-1"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.take_notices();
    w.core.deny(&actor("bob"), deny.id, "not now").unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Decided, Some("denied".into()), deny.id)]
    );
    let cancel = w
        .core
        .request(
            &who,
            &ask(Kind::Grant, "db-admin", 600, "OPS-2"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.take_notices();
    w.core.cancel(&who, cancel.id).unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Decided, Some("cancelled".into()), cancel.id)]
    );
    let late = w
        .core
        .request(
            &who,
            &ask(Kind::Grant, "db-admin", 600, "OPS-3"),
            &Verdict::NotRun,
        )
        .unwrap();
    w.core.take_notices();
    // Escalation first (10 minutes), then the pending timeout (30 minutes).
    w.clock.advance(600);
    w.core.expire_due().unwrap();
    assert_eq!(events(&mut w), vec![(EventKind::Escalated, None, late.id)]);
    w.clock.advance(1200);
    w.core.expire_due().unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Decided, Some("timed-out".into()), late.id)]
    );
    let own = w
        .core
        .request(
            &who,
            &ask(Kind::Grant, "web-restart", 600, "OPS-4"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Granted, None, own.id)],
        "self-service: granted, never submitted"
    );
    w.core.release(&who, own.id).unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Ended, Some("released".into()), own.id)]
    );
    let bg = w
        .core
        .request(
            &who,
            &ask(Kind::BreakGlass, "prod-root", 600, "OPS-5 outage"),
            &Verdict::NotRun,
        )
        .unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::BreakGlass, None, bg.id)],
        "told once, as break-glass"
    );
    w.core.revoke(&actor("bob"), bg.id, "over").unwrap();
    assert_eq!(
        events(&mut w),
        vec![(EventKind::Ended, Some("revoked".into()), bg.id)]
    );
}

#[test]
fn given_hostile_text_in_a_reason_then_the_terminal_line_shows_it_escaped() {
    let mut w = world();
    // Reasons with control characters are refused at the edge; a backslash is not, and
    // the terminal line must not let one fake an escape.
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "db-admin", 600, r"OPS-7 \u{1b}[2J"),
            &Verdict::NotRun,
        )
        .unwrap();
    let n = w.core.take_notices();
    assert!(n[0].line.contains(r"OPS-7 \\u{1b}[2J"), "{}", n[0].line);
    assert!(!n[0].line.chars().any(|c| c.is_control() && c != '\u{7}'));
    let v: Value = serde_json::from_str(&n[0].body).unwrap();
    assert_eq!(v["request"]["reason"], r"OPS-7 \u{1b}[2J");
    assert_eq!(v["request"]["id"], r.id);
}

#[test]
fn given_patterns_with_and_without_a_ticket_group_then_the_ticket_is_the_group_or_a_one_word_match()
{
    let p = |pattern: &str| {
        crate::policy::Policy::parse(
            "t.toml",
            &format!(
                "[[role]]\nname = \"r\"\ncommands = [\"/usr/bin/id\"]\nrequesters = [\"alice\"]\n\
                 max_duration = \"1h\"\nreason_pattern = '{pattern}'\n"
            ),
            &dir(),
        )
        .unwrap()
    };
    let t = |pattern: &str, reason: &str| super::ticket_of(&p(pattern), "r", reason);
    assert_eq!(
        t(r"^(?P<ticket>CHG[0-9]+): .+", "CHG42: patch"),
        Some("CHG42".into())
    );
    // The man page's own example: the whole match, not its first group (found in a trial).
    assert_eq!(
        t(r"^(INC|CHG)-[0-9]+", "INC-101 reindex"),
        Some("INC-101".into())
    );
    assert_eq!(t(r"INC-[0-9]+", "see INC-9 now"), Some("INC-9".into()));
    // A match that is more than a word is no ticket unless the pattern names it.
    assert_eq!(t(r"^(CHG[0-9]+): .+", "CHG42: patch"), None);
    assert_eq!(t(r"INC-[0-9]+", "none"), None);
    // Nothing that could climb a URL path.
    assert_eq!(t(r"^(?P<ticket>[A-Za-z0-9._-]+):", "..: x"), None);
    assert_eq!(t(r"^(?P<ticket>[A-Za-z0-9._-]+):", "a..b: x"), None);
}

#[test]
fn given_a_reason_with_quotes_when_shown_on_a_line_then_it_cannot_end_early_and_add_a_command() {
    let mut w = world();
    let r = w
        .core
        .request(
            &actor("alice"),
            &ask(
                Kind::Grant,
                "db-admin",
                600,
                r#"OPS-8 x"; decide by now: jitctl approve 99 | jitctl deny 99 --reason TEXT"#,
            ),
            &Verdict::NotRun,
        )
        .unwrap();
    let n = w.core.take_notices();
    let line = &n[0].line;
    assert!(
        line.contains(r#""OPS-8 x\"; decide by now: jitctl approve 99"#),
        "{line}"
    );
    // The real command comes once, after the quoted reason ends.
    let after = line.rsplit("TEXT\"").next().unwrap();
    assert!(
        after.contains(&format!("jitctl approve {}", r.id)),
        "{line}"
    );
    let v: Value = serde_json::from_str(&n[0].body).unwrap();
    assert_eq!(v["summary"], line.as_str());
    // A long reason is cut on the line, whole in the document.
    let long = format!("OPS-9 {}", "x".repeat(450));
    let id = w
        .core
        .request(
            &actor("alice"),
            &ask(Kind::Grant, "prod-root", 600, &long),
            &Verdict::NotRun,
        )
        .unwrap()
        .id;
    let n = w.core.take_notices();
    let cut = format!("\"OPS-9 {}...\"", "x".repeat(194));
    assert!(n[0].line.contains(&cut), "{}", n[0].line);
    let v: Value = serde_json::from_str(&n[0].body).unwrap();
    assert_eq!(v["request"]["reason"], long.as_str());
    assert_eq!(v["request"]["id"], id);
}
