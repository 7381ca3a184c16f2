//! The policy: reading the file (positions of every error, contradictions, warnings) and
//! the decisions it drives.

use super::*;
use crate::directory::FakeDirectory;

fn dir() -> FakeDirectory {
    FakeDirectory::default()
        .user("alice", 1001, &["alice", "webops"])
        .user("bob", 1002, &["bob", "sre"])
        .user("carol", 1003, &["carol", "sre"])
        .user("mallory", 1004, &["mallory"])
}

const GOOD: &str = r#"
[[role]]
name = "web-restart"
description = "Restart the web tier"
commands = ["/usr/bin/systemctl restart nginx", "/usr/bin/systemctl status nginx"]
requesters = ["alice", "%webops"]
approvals = 0
max_duration = "1h"
default_duration = "15m"
reason_pattern = "^[A-Z]+-[0-9]+"

[[role]]
name = "db-admin"
commands = ["/usr/bin/psql"]
run_as = "postgres"
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "2h"
"#;

/// Friday 2026-11-20 14:00 UTC.
const NOW: i64 = 1_795_183_200;

fn parse(text: &str) -> std::result::Result<Policy, PolicyError> {
    Policy::parse("jit.toml", text, &dir())
}

#[test]
fn given_example_policy_when_parsed_then_roles_have_their_values() {
    let p = parse(GOOD).unwrap();
    assert_eq!(p.roles.len(), 2);
    let web = p.role("web-restart").unwrap();
    assert_eq!(web.max_duration, 3600);
    assert_eq!(web.default_duration, 900);
    assert_eq!(web.run_as, "root");
    let db = p.role("db-admin").unwrap();
    assert_eq!(db.approvals, 1);
    assert_eq!(db.run_as, "postgres");
    assert_eq!(db.approvers, vec![Principal::Group("sre".into())]);
    assert_eq!(db.default_duration, 900);
}

fn err_of(text: &str) -> PolicyError {
    parse(text).unwrap_err()
}

#[test]
fn given_unknown_key_when_parsed_then_error_names_line_and_column() {
    let e = err_of(
        &GOOD
            .replace("ssh_x", "")
            .replace("approvals = 0", "approvals = 0\naproval = 1"),
    );
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("aproval"), "{e}");
    assert!(e.to_string().starts_with("jit.toml:8:1:"), "{e}");
}

#[test]
fn given_malformed_toml_when_parsed_then_refused_with_position() {
    let e = err_of("[[role]\nname = 1");
    assert_eq!(e.line, 1, "{e}");
}

#[test]
fn given_bad_values_when_parsed_then_each_is_refused_with_its_position() {
    let cases = [
        (GOOD.replace("\"1h\"", "\"1 fortnight\""), "max_duration", 8),
        (GOOD.replace("\"15m\"", "\"2h\""), "default_duration", 9),
        (
            GOOD.replace("^[A-Z]+-[0-9]+", "^[A-Z+"),
            "does not compile",
            10,
        ),
        (GOOD.replace("%sre", "%nosuchgroup"), "unknown group", 17),
        (
            GOOD.replace("\"alice\",", "\"Alice\","),
            "invalid user name",
            6,
        ),
        (
            GOOD.replace("/usr/bin/psql", "/usr/bin/psql *"),
            "invalid command",
            14,
        ),
        (
            GOOD.replace("approvals = 1", "approvals = -1"),
            "approvals",
            18,
        ),
        (
            GOOD.replace("\"db-admin\"", "\"web-restart\""),
            "duplicate",
            13,
        ),
        (
            GOOD.replace("name = \"db-admin\"", "name = \"DB\""),
            "role name",
            13,
        ),
    ];
    for (text, needle, line) in cases {
        let e = err_of(&text);
        assert!(e.message.contains(needle), "want {needle}: {e}");
        assert_eq!(e.line, line, "{needle}: {e}");
    }
}

#[test]
fn given_approvals_without_enough_approvers_when_parsed_then_refused() {
    let e = err_of(
        &GOOD
            .replace("[\"%sre\"]", "[\"bob\"]")
            .replace("approvals = 1", "approvals = 2"),
    );
    assert!(e.message.contains("2 distinct approvals"), "{e}");
    let e = err_of(&GOOD.replace("approvers = [\"%sre\"]\n", ""));
    assert!(e.message.contains("lists no approvers"), "{e}");
}

#[test]
fn given_empty_policy_when_parsed_then_refused() {
    assert!(err_of("").message.contains("no [[role]]"));
}

#[test]
fn given_user_in_requester_group_when_listing_roles_then_only_eligible_roles() {
    let p = parse(GOOD).unwrap();
    let d = dir();
    let names = |u| {
        p.requestable(u, &d)
            .unwrap()
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("alice"), vec!["web-restart", "db-admin"]);
    assert!(names("mallory").is_empty());
    assert!(p.requestable("nobody-here", &d).is_err());
}

fn ask(duration: u64, reason: &str) -> Ask {
    Ask {
        kind: Kind::Grant,
        role: "web-restart".into(),
        duration,
        reason: reason.into(),
        origin: crate::model::Origin::default(),
        ssh_keys: Vec::new(),
        key_fingerprints: Vec::new(),
    }
}

#[test]
fn given_request_when_checked_then_duration_and_reason_rules_apply() {
    let p = parse(GOOD).unwrap();
    let d = dir();
    let web = p.role("web-restart").unwrap();
    assert_eq!(
        p.check_request(web, "alice", &ask(0, " OPS-1 x "), NOW, &d),
        Ok((900, "OPS-1 x".to_string()))
    );
    assert!(matches!(
        p.check_request(web, "alice", &ask(7200, "OPS-1"), NOW, &d),
        Err(Error::Refused(Refusal::Duration, m)) if m.contains("exceeds")
    ));
    assert!(matches!(
        p.check_request(web, "alice", &ask(60, ""), NOW, &d),
        Err(Error::Refused(Refusal::ReasonRequired, _))
    ));
    assert!(matches!(
        p.check_request(web, "alice", &ask(60, "no ticket"), NOW, &d),
        Err(Error::Refused(Refusal::ReasonPattern, m)) if m.contains("must match")
    ));
    assert!(matches!(
        p.check_request(web, "mallory", &ask(60, "OPS-1"), NOW, &d),
        Err(Error::Refused(Refusal::NotEligible, _))
    ));
}

#[test]
fn given_group_approver_when_checked_then_membership_decides() {
    let p = parse(GOOD).unwrap();
    let d = dir();
    let db = p.role("db-admin").unwrap();
    assert!(p.may_approve(db, "bob", NOW, NOW, &d).unwrap());
    assert!(!p.may_approve(db, "alice", NOW, NOW, &d).unwrap());
    assert!(
        !p.may_approve(p.role("web-restart").unwrap(), "bob", NOW, NOW, &d)
            .unwrap()
    );
}

const FULL: &str = r#"
[settings]
reason_min_length = 8
max_active_per_user = 3
max_pending_per_user = 2

[[role]]
name = "change"
commands = ["/usr/bin/id"]
run_as = ["root", "postgres"]
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "1h"
max_total_duration = "5h"
pending_timeout = "30m"
escalate_after = "10m"
escalation_approvers = ["mallory"]
break_glass = true
window = { days = ["mon-fri"], hours = "08:00-18:00", timezone = "Europe/Berlin" }
max_active = 2
log_io = true
reason_validator = { command = ["/bin/true", "--check"], timeout = "3s", on_failure = "refuse" }

[[role]]
name = "audit"
commands = ["/usr/bin/last"]
requesters = ["%sre"]
max_duration = "1h"

[[separation]]
roles = ["change", "audit"]
"#;

#[test]
fn given_every_feature_key_when_parsed_then_values_arrive() {
    let p = parse(FULL).unwrap();
    let r = p.role("change").unwrap();
    assert_eq!(r.run_as_list, vec!["root", "postgres"]);
    assert_eq!(r.max_total, 5 * 3600);
    assert_eq!(r.escalate_after, Some(600));
    assert!(r.break_glass && r.log_io);
    assert_eq!(r.max_active, Some(2));
    assert_eq!(r.reason_min, 8);
    let v = r.validator.as_ref().unwrap();
    assert_eq!(v.command, vec!["/bin/true", "--check"]);
    assert_eq!(v.timeout, Duration::from_secs(3));
    assert!(!v.fallback_to_pattern);
    assert_eq!(
        r.window.as_ref().unwrap().describe(),
        "mon-fri 08:00-18:00 Europe/Berlin"
    );
    assert_eq!(p.max_active_per_user, Some(3));
    assert_eq!(p.max_pending_per_user, 2);
    assert!(p.conflict("change", "audit").is_some());
    assert!(p.conflict("audit", "audit").is_none());
}

#[test]
fn given_contradictory_policies_when_parsed_then_each_refused_with_position_and_fix() {
    let cases: Vec<(String, &str, usize)> = vec![
        (FULL.replace("\"5h\"", "\"30m\""), "shorter than max_duration", 15),
        (FULL.replace("escalate_after = \"10m\"", "escalate_after = \"40m\""), "not before pending_timeout", 17),
        (FULL.replace("escalate_after = \"10m\"\n", ""), "needs escalate_after", 17),
        (FULL.replace("approvals = 1", "approvals = 4").replace("[\"%sre\"]", "[\"bob\", \"carol\"]").replace("requesters = [\"%webops\"]", "requesters = [\"alice\"]"), "only 3 user(s) can approve", 12),
        (FULL.replace("\"mon-fri\"", "\"someday\""), "unknown day", 20),
        (FULL.replace("Europe/Berlin", "Mars/Olympus"), "unknown time zone", 20),
        (FULL.replace("on_failure = \"refuse\"", "on_failure = \"pattern\""), "needs a reason_pattern", 23),
        (FULL.replace("/bin/true", "true"), "absolute path", 23),
        (FULL.replace("/bin/true", "/nonexistent/check"), "No such file", 23),
        (FULL.replace("timeout = \"3s\"", "timeout = \"5m\""), "at most 60s", 23),
        (FULL.replace("roles = [\"change\", \"audit\"]", "roles = [\"change\", \"nope\"]"), "unknown role 'nope'", 32),
        (FULL.replace("roles = [\"change\", \"audit\"]", "roles = [\"change\", \"change\"]"), "at least two different roles", 31),
        (FULL.replace("max_active = 2", "max_active = 0"), "max_active must be between", 21),
        (FULL.replace("reason_min_length = 8", "reason_min_length = 900"), "larger than reason_max_length", 1),
        (FULL.replace("run_as = [\"root\", \"postgres\"]", "run_as = [\"root\", \"root\"]"), "twice", 10),
        (FULL.replace("[[role]]\nname = \"audit\"\ncommands = [\"/usr/bin/last\"]\nrequesters = [\"%sre\"]\nmax_duration = \"1h\"\n", "[[role]]\nname = \"audit\"\ncommands = [\"/usr/bin/last\"]\nrequesters = [\"%sre\"]\nmax_duration = \"1h\"\nbreak_glass = true\n"), "changes nothing", 30),
        (FULL.replace("max_duration = \"1h\"\n\n[[separation]]", "max_duration = \"1h\"\noutlive_window = true\n\n[[separation]]"), "outlive_window without a window", 30),
    ];
    for (text, needle, line) in cases {
        let e = err_of(&text);
        assert!(e.message.contains(needle), "want {needle}: {e}");
        assert_eq!(e.line, line, "{needle}: {e}");
    }
}

#[test]
fn given_durations_past_a_year_when_parsed_then_refused_with_position() {
    // Regression: max_duration = "10000y" passed, and a request for 9000y then
    // panicked jitd formatting a time past year 9999.
    for (key, line) in [("max_duration", 8), ("default_duration", 9)] {
        let text = GOOD.replacen(
            &format!("{key} = \""),
            &format!("{key} = \"10000y\" # was \""),
            1,
        );
        let e = err_of(&text);
        assert!(
            e.message.contains(key) && e.message.contains("at most 366d"),
            "{e}"
        );
        assert_eq!(e.line, line, "{e}");
    }
    let e = err_of(&FULL.replace("pending_timeout = \"30m\"", "pending_timeout = \"2y\""));
    assert!(e.message.contains("at most 366d"), "{e}");
}

#[test]
fn given_role_running_as_a_policy_principal_when_parsed_then_refused_or_warned() {
    // Regression: a self-service role that ran as an approver let the requester approve
    // their own request with `sudo -u approver jitctl approve`.
    let text = format!(
        "{GOOD}\n[[role]]\nname = \"as-bob\"\ncommands = [\"/usr/bin/jitctl\"]\n\
         run_as = \"bob\"\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n"
    );
    let p = parse(&text.replace("\"%sre\"", "\"bob\"")).map(|_| ());
    let Err(e) = p else {
        panic!("a role running as a named approver was accepted");
    };
    assert!(
        e.message
            .contains("runs commands as 'bob', who is an approver"),
        "{e}"
    );
    assert_eq!(
        e.line,
        text.lines()
            .position(|l| l.starts_with("run_as = \"bob\""))
            .unwrap()
            + 1
    );
    // As a member of an approver group: a warning (membership can change; jitd refuses
    // such approvals at run time).
    let p = parse(&text).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("a member of %sre")),
        "{:?}",
        p.warnings
    );
    // Running as a requester named elsewhere is refused too.
    let e = err_of(&text.replace("run_as = \"bob\"", "run_as = \"alice\""));
    assert!(e.message.contains("who is a requester"), "{e}");
}

#[test]
fn given_requesters_who_are_all_the_approvers_when_parsed_then_never_grantable() {
    // carol and bob are the only %sre; each would need the other plus one more.
    let text = r#"
[[role]]
name = "x"
commands = ["/usr/bin/id"]
requesters = ["%sre"]
approvers = ["%sre"]
approvals = 2
max_duration = "1h"
"#;
    // With groups it is a warning (membership can change); with named users, an error.
    let p = parse(text).unwrap();
    assert!(
        p.warnings[0].message.contains("can never be granted"),
        "{:?}",
        p.warnings
    );
    assert!(
        parse(&text.replace("approvals = 2", "approvals = 1"))
            .unwrap()
            .warnings
            .is_empty()
    );
    let e = err_of(&text.replace("[\"%sre\"]", "[\"bob\", \"carol\"]"));
    assert!(e.message.contains("can never be granted"), "{e}");
}

#[test]
fn given_role_rules_when_checking_then_each_decides_alone() {
    let p = parse(FULL).unwrap();
    let d = dir();
    let r = p.role("change").unwrap();
    // Reason length: the settings' minimum applies to every role.
    assert!(
        matches!(r.check_reason("T-1 x"), Err(Error::Refused(Refusal::ReasonLength, m)) if m.contains("too short"))
    );
    assert!(r.check_reason("T-1 fix the index").is_ok());
    // Window: Friday 14:00 UTC is 15:00 in Berlin (open); Saturday is closed.
    assert!(p.check_window(r, NOW).is_ok());
    assert!(p.check_window(r, NOW + 86_400).is_err());
    // Grants are cut at the window's end (17:00 UTC = 18:00 Berlin).
    assert_eq!(p.grant_end(r, Kind::Grant, NOW, 7200), NOW + 7200);
    assert_eq!(p.grant_end(r, Kind::Grant, NOW, 4 * 3600), NOW + 3 * 3600);
    assert_eq!(
        p.grant_end(r, Kind::BreakGlass, NOW, 4 * 3600),
        NOW + 4 * 3600
    );
    // Limits.
    let held = [
        Held {
            role: "a",
            state: State::Pending,
        },
        Held {
            role: "b",
            state: State::Pending,
        },
    ];
    assert!(p.check_limits(r, "alice", &held, 0, false).is_err());
    assert!(p.check_limits(r, "alice", &held, 0, true).is_ok());
    assert!(p.check_limits(r, "alice", &[], 2, true).is_err());
    // Separation, both ways, for holders and approvers.
    let audit = [Held {
        role: "audit",
        state: State::Active,
    }];
    assert!(p.check_separation("change", "alice", &audit).is_err());
    assert!(
        p.check_approver_separation("change", "bob", &audit)
            .is_err()
    );
    assert!(p.check_separation("audit", "alice", &[]).is_ok());
    // Escalation: mallory only after 10 minutes.
    assert!(!p.may_approve(r, "mallory", NOW, NOW + 599, &d).unwrap());
    assert!(p.may_approve(r, "mallory", NOW, NOW + 600, &d).unwrap());
    assert!(p.may_approve(r, "bob", NOW, NOW, &d).unwrap());
    // Extension: at most max_total from the start; never past the window.
    assert_eq!(
        p.extension_end(r, NOW - 600, NOW + 600, 600, NOW),
        Ok(NOW + 1200)
    );
    assert!(p.extension_end(r, NOW - 600, NOW + 3000, 1200, NOW).is_ok());
    assert!(matches!(
        p.extension_end(r, NOW, NOW + 3 * 3600, 600, NOW),
        Err(Error::Refused(Refusal::MaxTotal, m)) if m.contains("window")
    ));
    assert!(matches!(
        p.extension_end(r, NOW - 17_000, NOW + 600, 1200, NOW),
        Err(Error::Refused(Refusal::MaxTotal, m)) if m.contains("maximum total of 5h")
    ));
    // Validator verdicts.
    assert!(r.judge(&Verdict::Accepted).is_ok());
    assert!(r.judge(&Verdict::NotRun).is_err());
    assert!(r.judge(&Verdict::Failed("x".into())).is_err());
    assert!(r.judge(&Verdict::Refused("no".into())).is_err());
    assert_eq!(
        p.role("audit").unwrap().judge(&Verdict::NotRun),
        Ok(String::new())
    );
}

#[test]
fn given_self_service_root_shell_when_parsed_then_warned() {
    // Found in the user trial: a self-service root shell let its holder reset their login
    // uid and approve their own request as an approver.
    let text = "[[role]]\nname = \"shell\"\ncommands = [\"/bin/bash\"]\nrequesters = [\"alice\"]\n\
                max_duration = \"1h\"\n";
    let p = parse(text).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("runs /bin/bash as root")),
        "{:?}",
        p.warnings
    );
    // With approvals, or a narrow command, no warning.
    let narrow = parse(&text.replace("/bin/bash", "/usr/bin/systemctl restart nginx")).unwrap();
    assert!(narrow.warnings.is_empty(), "{:?}", narrow.warnings);
    // Found in a later trial: programs with a shell escape went unnoticed.
    for escape in [
        "/usr/bin/vim /etc/hosts",
        "/usr/bin/less",
        "/usr/bin/find",
        "/usr/bin/awk",
    ] {
        let p = parse(&text.replace("/bin/bash", escape)).unwrap();
        let program = escape.split(' ').next().unwrap();
        assert!(
            p.warnings
                .iter()
                .any(|w| w.message.contains(&format!("runs {escape} as root"))),
            "{program}: {:?}",
            p.warnings
        );
    }
}

#[test]
fn given_a_reason_pattern_nested_deeper_than_any_ticket_format_then_refused_without_overflow() {
    // Found by the policy fuzz target: `x+++...` (150 nested repetitions) overflowed the
    // stack of a 2 MB thread compiling it in a debug build; jitd reloads the policy on a
    // thread of its own.
    let deep = format!(
        "[[role]]\nname = \"db\"\ncommands = [\"/usr/bin/id\"]\nrequesters = [\"alice\"]\n\
         max_duration = \"1h\"\nreason_pattern = \"-C{}x\"\n",
        "+".repeat(150)
    );
    let nested = deep.replace(&format!("-C{}x", "+".repeat(150)), &"(".repeat(40));
    let nested = nested.replace(
        "reason_pattern = \"((",
        &format!(
            "reason_pattern = \"{}a{}\"\n#",
            "(".repeat(40),
            ")".repeat(40)
        ),
    );
    let outcome = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            (
                parse(&deep).map(|_| ()).map_err(|e| e.message),
                parse(&nested).map(|_| ()).map_err(|e| e.message),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    for r in [outcome.0, outcome.1] {
        let e = r.unwrap_err();
        assert!(e.contains("reason_pattern does not compile"), "{e}");
    }
    // An ordinary ticket pattern still compiles.
    let ok = "[[role]]\nname = \"db\"\ncommands = [\"/usr/bin/id\"]\nrequesters = [\"alice\"]\n\
              max_duration = \"1h\"\nreason_pattern = \"^(INC|CHG)-[0-9]{4,8}( .*)?$\"\n";
    assert!(parse(ok).is_ok());
}

#[test]
fn given_groups_a_role_may_not_hand_out_when_checked_then_refused_at_their_position() {
    let d = dir();
    let role = |groups: &str, commands: &str| {
        format!(
            "[[role]]\nname = \"g\"\ncommands = {commands}\nrequesters = [\"alice\"]\n\
             max_duration = \"1h\"\ngroups = {groups}\n"
        )
    };
    for (groups, needle) in [
        (r#"["root"]"#, "gives root"),
        (r#"["sudo"]"#, "gives root"),
        (r#"["wheel"]"#, "gives root"),
        (r#"["nosuchgroup"]"#, "unknown group 'nosuchgroup'"),
        (r#"["webops", "webops"]"#, "named twice"),
        (r#"[]"#, "groups is empty"),
        (r#"["Bad Name"]"#, ""),
    ] {
        let e = Policy::parse("t.toml", &role(groups, "[]"), &d).unwrap_err();
        assert_eq!(e.line, 6, "{groups}: {e}");
        assert!(e.column > 0);
        assert!(e.message.contains(needle), "{groups}: {e}");
    }
    // No commands and no groups: nothing to grant.
    let e = Policy::parse(
        "t.toml",
        "[[role]]\nname = \"g\"\ncommands = []\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n",
        &d,
    )
    .unwrap_err();
    assert!(e.message.contains("at least one command"), "{e}");
    let ok = Policy::parse("t.toml", &role(r#"["webops"]"#, "[]"), &d).unwrap();
    assert_eq!(ok.roles[0].groups.len(), 1);
}

#[test]
fn given_account_roles_that_cannot_work_when_checked_then_refused_at_their_position() {
    let long = "a".repeat(22);
    let d = dir().user(&long, 1010, &[&long, "sre"]);
    let role = |extra: &str, requesters: &str| {
        format!(
            "[[role]]\nname = \"fix\"\ncommands = []\nrequesters = {requesters}\n\
             max_duration = \"1h\"\n{extra}\n"
        )
    };
    // jit-USER-NNNNNN over 32 characters for a requester named in the policy.
    let e = Policy::parse(
        "t.toml",
        &role("account = true", &format!("[\"{long}\"]")),
        &d,
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (6, 11), "{e}");
    assert!(e.message.contains("over 32"), "{e}");
    // Through a group: a warning (membership changes); the request is refused at run time.
    let p = Policy::parse("t.toml", &role("account = true", "[\"%sre\"]"), &d).unwrap();
    assert!(
        p.warnings.iter().any(|w| w.message.contains(&long)),
        "{:?}",
        p.warnings
    );
    for (extra, needle, line) in [
        ("account = true\nreauth = true", "no password", 6),
        (
            "groups = [\"webops\"]\nshell = \"/bin/sh\"",
            "shell is for roles with account",
            7,
        ),
        (
            "account = true\nshell = \"/tmp/sh\"",
            "must be a program in",
            7,
        ),
        (
            "account = true\nshell = \"/bin/../tmp/sh\"",
            "must be a program in",
            7,
        ),
    ] {
        let e = Policy::parse("t.toml", &role(extra, "[\"alice\"]"), &d).unwrap_err();
        assert_eq!(e.line, line, "{extra}: {e}");
        assert!(e.message.contains(needle), "{extra}: {e}");
    }
    let gone = Policy::parse(
        "t.toml",
        &role(
            "account = true\nshell = \"/usr/bin/no-such-shell\"",
            "[\"alice\"]",
        ),
        &d,
    )
    .unwrap();
    assert!(
        gone.warnings
            .iter()
            .any(|w| w.message.contains("does not exist")),
        "{:?}",
        gone.warnings
    );
    let ok = Policy::parse("t.toml", &role("account = true", "[\"alice\"]"), &d).unwrap();
    assert!(ok.roles[0].account);
    assert_eq!(ok.roles[0].shell, "/bin/bash");
}
