//! The policy engine end to end: each approval model and guard, with real sudo, real
//! jitd, real jitctl, and (for the validator) a real external program.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, PASSWORD, World, shard_file};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn users(b: Builder) -> Builder {
    b.user("alice", &["webops"])
        .user("frank", &["webops"])
        .user("bob", &["sre"])
        .user("carol", &["sre"])
        .user("dave", &["sre"])
        .user("erin", &["managers"])
}

fn id_of(r: &jit_e2e::Run) -> u64 {
    assert!(r.ok(), "{}", r.all());
    r.json()["id"].as_u64().unwrap()
}

fn sudo_works(w: &World, user: &str) -> bool {
    w.sudo_n(user, &["/usr/bin/id", "-u"]).ok()
}

/// The NOTAFTER of grant `id` as its shard file says.
fn notafter_in_shard(id: u64) -> String {
    let text = std::fs::read_to_string(format!("/etc/sudoers.d/{}", shard_file(id))).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("NOTAFTER=") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no rule in {text}"));
    line.split("NOTAFTER=").nth(1).unwrap()[..15].to_string()
}

const APPROVALS: &str = r#"
[[role]]
name = "prod"
commands = ["/usr/bin/id -u"]
requesters = ["%webops", "bob"]
approvers = ["%sre"]
approvals = 2
max_duration = "1h"
max_total_duration = "3h"
pending_timeout = "1h"
escalate_after = "3s"
escalation_approvers = ["erin"]
break_glass = true
"#;

#[test]
fn given_two_approval_role_when_one_approves_then_nothing_and_second_distinct_approver_grants() {
    let w = users(Builder::new()).policy(APPROVALS).build();
    let id = id_of(&w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "prod",
            "--for",
            "10m",
            "--reason",
            "INC-1 db down",
        ],
    ));
    assert!(w.jitctl("bob", &["approve", &id.to_string()]).ok());
    assert!(
        !sudo_works(&w, "alice"),
        "one of two approvals must not grant"
    );
    let again = w.jitctl("bob", &["approve", &id.to_string()]);
    assert_eq!(again.code, 3, "the same approver twice: {}", again.all());
    assert!(!sudo_works(&w, "alice"));
    let done = w.jitctl("carol", &["--json", "approve", &id.to_string()]);
    assert_eq!(done.json()["state"], "active", "{}", done.all());
    assert!(sudo_works(&w, "alice"));
}

#[test]
fn given_requester_who_is_an_approver_when_approving_own_request_then_refused() {
    let w = users(Builder::new()).policy(APPROVALS).build();
    let id = id_of(&w.jitctl(
        "bob",
        &[
            "--json",
            "request",
            "prod",
            "--for",
            "10m",
            "--reason",
            "INC-2 mine",
        ],
    ));
    let own = w.jitctl("bob", &["approve", &id.to_string()]);
    assert_eq!(own.code, 3, "{}", own.all());
    assert!(
        own.stderr.contains("may not approve their own"),
        "{}",
        own.all()
    );
    assert!(w.jitctl("carol", &["approve", &id.to_string()]).ok());
    assert!(!sudo_works(&w, "bob"), "bob's own approval must not count");
    assert!(w.jitctl("dave", &["approve", &id.to_string()]).ok());
    assert!(sudo_works(&w, "bob"));
}

#[test]
fn given_break_glass_when_used_then_sudo_works_at_once_and_review_queue_shows_it_until_acked() {
    let w = users(Builder::new()).policy(APPROVALS).build();
    let r = w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "prod",
            "--break-glass",
            "--for",
            "10m",
            "--reason",
            "INC-3 outage, nobody answers",
        ],
    );
    let id = id_of(&r);
    assert_eq!(r.json()["kind"], "break-glass");
    assert!(sudo_works(&w, "alice"), "break-glass grants at once");
    let status = w.jitctl("root", &["status"]);
    assert!(
        status
            .stdout
            .contains("break-glass grants not yet reviewed: 1"),
        "{}",
        status.all()
    );
    let queue = w.jitctl("bob", &["review"]);
    assert!(
        queue.stdout.contains(&format!(
            "request {id}: alice prod for 10m BREAK-GLASS (not reviewed)"
        )),
        "{}",
        queue.all()
    );
    assert_eq!(
        w.jitctl("frank", &["review"]).code,
        3,
        "non-approvers do not review"
    );
    let own = w.jitctl(
        "alice",
        &["review", "ack", &id.to_string(), "--comment", "fine"],
    );
    assert_eq!(own.code, 3, "{}", own.all());
    let ack = w.jitctl(
        "bob",
        &[
            "review",
            "ack",
            &id.to_string(),
            "--comment",
            "called alice, legit",
        ],
    );
    assert!(ack.ok(), "{}", ack.all());
    assert!(
        !w.jitctl("root", &["status"])
            .stdout
            .contains("not yet reviewed")
    );
    assert!(
        w.jitctl("bob", &["review"])
            .stdout
            .contains("no break-glass grants to review")
    );
    let actions = w.audit_actions();
    assert!(actions.contains(&"break-glass".to_string()), "{actions:?}");
    assert!(actions.contains(&"review".to_string()), "{actions:?}");
}

#[test]
fn given_escalation_when_request_waits_then_escalation_approver_may_approve_only_afterwards() {
    let w = users(Builder::new()).policy(APPROVALS).build();
    let id = id_of(&w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "prod",
            "--for",
            "10m",
            "--reason",
            "INC-4 weekend",
        ],
    ));
    assert!(w.jitctl("bob", &["approve", &id.to_string()]).ok());
    let early = w.jitctl("erin", &["approve", &id.to_string()]);
    assert_eq!(early.code, 3, "{}", early.all());
    assert!(
        w.jitctl("erin", &["list", "--pending"])
            .stdout
            .contains("no requests")
    );
    // Once the escalation delay has passed, the request is erin's to see and decide.
    jit_e2e::wait_for("the escalation delay", Duration::from_secs(30), || {
        w.jitctl("erin", &["list", "--pending"])
            .stdout
            .contains(&format!("request {id}"))
            .then_some(())
    });
    let late = w.jitctl("erin", &["--json", "approve", &id.to_string()]);
    assert_eq!(late.json()["state"], "active", "{}", late.all());
    assert!(sudo_works(&w, "alice"));
}

#[test]
fn given_active_grants_when_extended_then_notafter_moves_but_never_past_max_total() {
    let policy = format!(
        "{APPROVALS}\n{}",
        r#"
[[role]]
name = "web"
commands = ["/usr/bin/id -u"]
requesters = ["%webops"]
max_duration = "1h"
max_total_duration = "90m"
"#
    );
    let w = users(Builder::new()).policy(&policy).build();
    // Self-service: applied at once.
    let g = id_of(&w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "web",
            "--for",
            "1h",
            "--reason",
            "OPS-1 deploy",
        ],
    ));
    let before = notafter_in_shard(g);
    let ext = w.jitctl(
        "alice",
        &[
            "--json",
            "extend",
            &g.to_string(),
            "--by",
            "20m",
            "--reason",
            "OPS-1 still going",
        ],
    );
    assert!(ext.ok(), "{}", ext.all());
    assert_eq!(ext.json()["state"], "applied");
    let after = notafter_in_shard(g);
    assert!(after > before, "{before} -> {after}");
    assert_eq!(
        w.request(g)["not_after_unix"].as_i64().unwrap()
            - w.request(g)["granted_at"].as_i64().unwrap(),
        4800
    );
    let over = w.jitctl(
        "alice",
        &[
            "extend",
            &g.to_string(),
            "--by",
            "11m",
            "--reason",
            "OPS-1 more",
        ],
    );
    assert_eq!(over.code, 3, "{}", over.all());
    assert!(
        over.stderr.contains("maximum total of 1h30m"),
        "{}",
        over.all()
    );
    assert!(sudo_works(&w, "alice"));

    // Approval role: the extension waits for two approvals of its own.
    let p = id_of(&w.jitctl(
        "frank",
        &[
            "--json", "request", "prod", "--for", "30m", "--reason", "INC-5 x",
        ],
    ));
    assert!(w.jitctl("bob", &["approve", &p.to_string()]).ok());
    assert!(w.jitctl("carol", &["approve", &p.to_string()]).ok());
    let was = notafter_in_shard(p);
    let e = id_of(&w.jitctl(
        "frank",
        &[
            "--json",
            "extend",
            &p.to_string(),
            "--by",
            "30m",
            "--reason",
            "INC-5 longer",
        ],
    ));
    assert_eq!(w.request(e)["state"], "pending");
    assert!(w.jitctl("bob", &["approve", &e.to_string()]).ok());
    assert_eq!(
        notafter_in_shard(p),
        was,
        "one approval of two must not extend"
    );
    assert!(w.jitctl("dave", &["approve", &e.to_string()]).ok());
    assert_eq!(w.request(e)["state"], "applied");
    assert!(notafter_in_shard(p) > was);
    assert!(w.audit_actions().contains(&"extend".to_string()));
}

/// A window that is closed now (opens in two hours, for an hour, every day, UTC) and one
/// that is open now and closes at the next full hour.
fn windows() -> (String, String, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour = (now / 3600) % 24;
    let closed = format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let open = format!("{:02}:00-{:02}:00", hour, hour + 1);
    (closed, open, (now / 3600 + 1) * 3600)
}

#[test]
fn given_change_window_when_closed_then_refused_through_sudo_and_when_open_grant_ends_with_it() {
    let (closed, open, next_hour) = windows();
    let all = r#"["mon-sun"]"#;
    let policy = format!(
        r#"
[[role]]
name = "closed"
commands = ["/usr/bin/id -u"]
requesters = ["%webops"]
max_duration = "4h"
window = {{ days = {all}, hours = "{closed}", timezone = "UTC" }}

[[role]]
name = "open"
commands = ["/usr/bin/id -u"]
requesters = ["%webops"]
max_duration = "4h"
window = {{ days = {all}, hours = "{open}", timezone = "UTC" }}
"#
    );
    let w = users(Builder::new()).policy(&policy).build();
    let said = w
        .sudo(
            "alice",
            &[PASSWORD, "closed", "CHG-1 patch", "1h"],
            &["/usr/bin/id", "-u"],
        )
        .all();
    assert!(said.contains("closed now"), "{said}");
    assert!(!sudo_works(&w, "alice"));
    let r = w.jitctl("alice", &["request", "closed", "--reason", "CHG-1 patch"]);
    assert_eq!(r.code, 3, "{}", r.all());

    let g = id_of(&w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "open",
            "--for",
            "4h",
            "--reason",
            "CHG-2 patch",
        ],
    ));
    assert_eq!(
        w.request(g)["not_after_unix"].as_i64().unwrap(),
        next_hour.min(w.request(g)["granted_at"].as_i64().unwrap() + 4 * 3600)
    );
    assert!(sudo_works(&w, "alice"));
}

const LIMITS: &str = r#"
[settings]
max_pending_per_user = 1

[[role]]
name = "web"
commands = ["/usr/bin/id -u"]
requesters = ["%webops", "%sre"]
max_duration = "1h"
max_active = 1

[[role]]
name = "audit"
commands = ["/usr/bin/id -g"]
requesters = ["%webops", "%sre"]
approvers = ["%sre"]
approvals = 1
max_duration = "1h"
pending_timeout = "2s"

[[role]]
name = "db"
commands = ["/usr/bin/id -n -u"]
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "1h"

[[separation]]
roles = ["web", "audit"]
description = "operators do not audit themselves"
"#;

#[test]
fn given_role_cap_when_reached_then_next_user_refused_and_sudo_stays_closed() {
    let w = users(Builder::new()).policy(LIMITS).build();
    assert!(
        w.jitctl("alice", &["request", "web", "--reason", "OPS-1 x"])
            .ok()
    );
    let second = w.jitctl(
        "frank",
        &["--json", "request", "web", "--reason", "OPS-2 y"],
    );
    assert_eq!(second.code, 3, "{}", second.all());
    assert_eq!(second.json()["refusal"], "max_active", "{}", second.all());
    assert!(!sudo_works(&w, "frank"));
    assert!(sudo_works(&w, "alice"));
    // max_pending_per_user = 1
    assert!(
        w.jitctl("frank", &["request", "db", "--reason", "DB-1 a"])
            .ok()
    );
    let more = w.jitctl(
        "frank",
        &["--json", "request", "audit", "--reason", "AU-1 b"],
    );
    assert_eq!(more.code, 3, "{}", more.all());
    assert_eq!(
        more.json()["refusal"],
        "max_pending_per_user",
        "{}",
        more.all()
    );
    assert!(
        more.json()["message"]
            .as_str()
            .unwrap()
            .contains("max_pending_per_user"),
        "{}",
        more.all()
    );
}

#[test]
fn given_separated_roles_when_holder_requests_or_approves_the_other_then_refused() {
    let w = users(Builder::new()).policy(LIMITS).build();
    // Through sudo as well (frank holds no grant; pam_jit offers his pending request, he
    // asks for another role with "n"): his pending audit
    // request conflicts with web; the refusal reaches the terminal, nothing is granted.
    let pending = id_of(&w.jitctl(
        "frank",
        &["--json", "request", "audit", "--reason", "AU-2 me"],
    ));
    let said = w
        .sudo(
            "frank",
            &[PASSWORD, "n", "web", "OPS-2 restart", "10m"],
            &["/usr/bin/id", "-u"],
        )
        .all();
    assert!(said.contains("separation of duties"), "{said}");
    assert!(!sudo_works(&w, "frank"));
    assert!(w.jitctl("frank", &["cancel", &pending.to_string()]).ok());
    assert!(
        w.jitctl("alice", &["request", "web", "--reason", "OPS-1 x"])
            .ok()
    );
    let both = w.jitctl(
        "alice",
        &["--json", "request", "audit", "--reason", "AU-1 me"],
    );
    assert_eq!(both.code, 3, "{}", both.all());
    assert_eq!(both.json()["refusal"], "separation", "{}", both.all());
    // bob holds web, so he may not approve audit; carol may.
    assert!(w.jitctl("alice", &["release"]).ok());
    assert!(
        w.jitctl("bob", &["request", "web", "--reason", "OPS-3 y"])
            .ok()
    );
    let a = id_of(&w.jitctl(
        "frank",
        &["--json", "request", "audit", "--reason", "AU-3 z"],
    ));
    let bob = w.jitctl("bob", &["approve", &a.to_string()]);
    assert_eq!(bob.code, 3, "{}", bob.all());
    assert!(w.jitctl("carol", &["approve", &a.to_string()]).ok());
    assert!(w.sudo_n("frank", &["/usr/bin/id", "-g"]).ok());
}

#[test]
fn given_pending_timeout_when_nobody_decides_then_expired_and_cannot_be_approved() {
    let w = users(Builder::new()).policy(LIMITS).build();
    let id = id_of(&w.jitctl(
        "frank",
        &["--json", "request", "audit", "--reason", "AU-4 q"],
    ));
    jit_e2e::wait_for("the pending timeout", Duration::from_secs(30), || {
        (w.request(id)["state"] != "pending").then_some(())
    });
    assert_eq!(w.request(id)["state"], "expired");
    let late = w.jitctl("bob", &["approve", &id.to_string()]);
    assert_eq!(late.code, 3, "{}", late.all());
    assert!(!w.sudo_n("frank", &["/usr/bin/id", "-g"]).ok());
}

/// A validator: accepts OPEN-*, refuses CLOSED-* with a message, hangs on SLOW-*.
fn validator_world() -> (World, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("check-ticket");
    std::fs::write(
        &script,
        "#!/bin/sh\nread reason\ncase \"$reason\" in\n  OPEN-*) exit 0 ;;\n  CLOSED-*) echo \"ticket ${reason%% *} is closed ($JIT_USER, $JIT_ROLE)\"; exit 1 ;;\n  SLOW-*) sleep 30 ;;\nesac\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = script.display();
    let policy = format!(
        r#"
[[role]]
name = "strict"
commands = ["/usr/bin/id -u"]
requesters = ["%webops"]
max_duration = "1h"
reason_validator = {{ command = ["{s}"], timeout = "1s" }}

[[role]]
name = "lenient"
commands = ["/usr/bin/id -g"]
requesters = ["%webops"]
max_duration = "1h"
reason_pattern = "^[A-Z]+-[0-9]+"
reason_validator = {{ command = ["{s}"], timeout = "1s", on_failure = "pattern" }}
"#
    );
    (users(Builder::new()).policy(&policy).build(), d)
}

#[test]
fn given_validator_when_it_accepts_refuses_or_times_out_then_request_follows_and_fails_closed() {
    let (w, _d) = validator_world();
    let refused = w.jitctl(
        "alice",
        &[
            "request",
            "strict",
            "--reason",
            "CLOSED-7 $(touch /tmp/pwned)",
        ],
    );
    assert_eq!(refused.code, 3, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("ticket CLOSED-7 is closed (alice, strict)"),
        "{}",
        refused.all()
    );
    assert!(
        !std::path::Path::new("/tmp/pwned").exists(),
        "the reason reached a shell"
    );
    assert!(!sudo_works(&w, "alice"));

    let t = std::time::Instant::now();
    let slow = w.jitctl("alice", &["request", "strict", "--reason", "SLOW-1 x"]);
    assert_eq!(slow.code, 3, "{}", slow.all());
    assert!(slow.stderr.contains("timed out"), "{}", slow.all());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!sudo_works(&w, "alice"));

    let ok = w.jitctl("alice", &["request", "strict", "--reason", "OPEN-9 deploy"]);
    assert!(ok.ok(), "{}", ok.all());
    assert!(sudo_works(&w, "alice"));

    // The lenient role falls back to its pattern when the validator gives no answer.
    let fallback = w.jitctl(
        "frank",
        &["--json", "request", "lenient", "--reason", "SLOW-2 y"],
    );
    assert!(fallback.ok(), "{}", fallback.all());
    assert!(w.sudo_n("frank", &["/usr/bin/id", "-g"]).ok());
    let audit = w.jitctl("root", &["audit"]);
    assert!(
        audit.stdout.contains("accepted on reason_pattern"),
        "{}",
        audit.all()
    );
}

#[test]
fn given_role_with_several_targets_when_granted_then_sudo_u_each_works() {
    let policy = r#"
[[role]]
name = "svc"
commands = ["/usr/bin/id -u"]
run_as = ["root", "nobody"]
requesters = ["%webops"]
max_duration = "1h"
"#;
    let w = users(Builder::new()).policy(policy).build();
    assert!(
        w.jitctl("alice", &["request", "svc", "--reason", "OPS-8 x"])
            .ok()
    );
    let nobody = w.sudo_n("alice", &["-u", "nobody", "/usr/bin/id", "-u"]);
    assert_eq!(nobody.stdout.trim(), "65534", "{}", nobody.all());
    assert!(sudo_works(&w, "alice"));
    assert!(
        !w.sudo_n("alice", &["-u", "daemon", "/usr/bin/id", "-u"])
            .ok()
    );
}

#[test]
fn given_log_io_role_when_command_runs_then_sudoreplay_lists_and_replays_the_session() {
    // The I/O logs go to a private directory, set in the policy.
    let io = tempfile::tempdir().unwrap();
    let policy = format!(
        r#"
[settings]
iolog_dir = "{}"

[[role]]
name = "recorded"
commands = ["/usr/bin/echo recorded-session-output"]
requesters = ["%webops"]
max_duration = "1h"
log_io = true
"#,
        io.path().display()
    );
    let w = users(Builder::new()).policy(&policy).build();
    assert!(
        w.jitctl("alice", &["request", "recorded", "--reason", "OPS-7 x"])
            .ok()
    );
    let ran = w.sudo_n("alice", &["/usr/bin/echo", "recorded-session-output"]);
    assert!(ran.ok(), "{}", ran.all());
    // Each user's sessions in a directory of their own; the session's audit record names it.
    let user_dir = io.path().join("alice");
    let dir = user_dir.to_str().unwrap();
    let opened = jit_e2e::wait_for("the session record", Duration::from_secs(10), || {
        let r = w.jitctl("root", &["--json", "audit"]);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "session-open")
            .map(|a| a["detail"].as_str().unwrap().to_string())
    });
    let named = format!("iolog={dir}/00/00/01");
    assert!(opened.contains(&named), "{opened}");
    let list = jit_e2e::run(
        {
            let mut c = std::process::Command::new("sudoreplay");
            c.args(["-d", dir, "-l"]);
            c
        },
        "",
        Duration::from_secs(30),
    );
    assert!(list.ok(), "{}", list.all());
    let line = list
        .stdout
        .lines()
        .find(|l| l.contains("COMMAND=/usr/bin/echo recorded-session-output"))
        .unwrap_or_else(|| panic!("session not listed: {}", list.all()));
    assert!(line.contains(": alice :"), "{line}");
    let tsid = line
        .split("TSID=")
        .nth(1)
        .unwrap()
        .split([' ', ';'])
        .next()
        .unwrap()
        .to_string();
    assert_eq!(tsid, "000001", "{line}");
    let replay = jit_e2e::run(
        {
            let mut c = std::process::Command::new("sudoreplay");
            c.args(["-d", dir, "-s", "100", &tsid]);
            c
        },
        "",
        Duration::from_secs(30),
    );
    assert!(
        replay.stdout.contains("recorded-session-output"),
        "{}",
        replay.all()
    );
}

#[test]
fn given_the_shipped_example_policies_when_checked_then_both_are_valid() {
    // The README says both examples pass `jitctl policy check`; on a host with their groups.
    let w = Builder::new()
        .user("ex-user", &["jit-users"])
        .user("ex-approver", &["jit-approvers"])
        .user("ex-manager", &["jit-managers"])
        .without_jitd()
        .build();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for example in ["conf/jit.toml", "conf/jit-advanced.toml"] {
        let path = root.join(example).display().to_string();
        let r = w.jitctl("root", &["policy", "check", &path]);
        assert!(r.ok(), "{example}: {}", r.all());
        assert!(r.stdout.contains(": OK ("), "{example}: {}", r.all());
    }
}
