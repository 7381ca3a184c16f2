//! The sudo prompt, jitctl and the docs as the people who use them meet them: a sysadmin
//! who knows sudo, and a developer who needs root for five minutes. Real sudo on a real
//! terminal, real jitctl, real jitd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, PASSWORD, Pty, World, bin, run};
use std::process::Command;
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "web"
description = "Restart the web tier"
commands = ["/usr/bin/true", "/usr/bin/id"]
requesters = ["alice"]
max_duration = "1h"
default_duration = "5m"
max_total_duration = "2h"
reason_pattern = "^[A-Z]+-[0-9]+"

[[role]]
name = "db"
commands = ["/usr/bin/false"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "1h"
pending_timeout = "30m"
escalate_after = "10m"
escalation_approvers = ["carol"]
"#;

fn world(wait: &str) -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .user("carol", &[])
        .policy(POLICY)
        .pam_args(wait, "")
        .build()
}

fn id_of(v: &serde_json::Value) -> u64 {
    v["id"].as_u64().unwrap()
}

/// Asks for `db` at a real sudo prompt, up to the point where sudo waits for bob.
fn waiting_sudo(w: &World) -> Pty {
    let mut t = Pty::spawn(w, "alice", "sudo /usr/bin/false");
    let step = Duration::from_secs(30);
    t.expect("password for alice", step);
    t.line(PASSWORD);
    t.expect("role (Enter to skip)", step);
    t.line("db");
    t.expect("reason", step);
    t.line("T-1 slow queries");
    t.expect("duration", step);
    t.line("");
    t.expect("Ctrl-C stops waiting", step);
    t
}

#[test]
fn given_sudo_waiting_for_approval_when_ctrl_c_then_the_shell_is_back_and_the_request_stays() {
    // wait=600: without the stop the user would sit for ten minutes.
    let w = world("wait=600");
    let mut t = waiting_sudo(&w);
    let said = t.said();
    assert!(
        said.contains("jitctl wait 1"),
        "told how to follow it: {said}"
    );
    t.ctrl_c();
    let status = t.wait(Duration::from_secs(20));
    assert!(!status.success(), "{status}");
    let pending = w.jitctl("alice", &["--json", "list", "--pending"]).json();
    assert_eq!(pending[0]["state"], "pending", "{pending}");
    // And it can be followed: bob approves, `jitctl wait` says so.
    assert!(w.jitctl("bob", &["approve", "1"]).ok());
    let followed = w.jitctl("alice", &["wait", "1", "--timeout", "30s"]);
    assert!(followed.ok(), "{}", followed.all());
    assert!(
        followed.stdout.contains("active until"),
        "{}",
        followed.all()
    );
}

#[test]
fn given_pending_request_when_sudo_again_then_it_is_offered_before_anything_is_asked() {
    // Regression: role, reason and duration were asked again, then "already pending".
    let w = world("wait=2");
    let id = id_of(&w.submit("alice", "db", "", "T-2 first ask"));
    let r = w.sudo("alice", &[PASSWORD, ""], &["/usr/bin/false"]);
    let said = r.all();
    assert!(
        said.contains(&format!("request {id} for role 'db' is still waiting")),
        "{said}"
    );
    assert!(
        !said.contains("role (Enter to skip)"),
        "nothing asked again: {said}"
    );
    assert!(!said.contains("already pending"), "{said}");
    assert_eq!(w.request(id)["state"], "pending");
    let all = w.jitctl("root", &["--json", "list", "--all"]).json();
    assert_eq!(all.as_array().unwrap().len(), 1, "no second request: {all}");
}

#[test]
fn given_reason_breaking_the_pattern_when_typed_at_sudo_then_asked_again_at_once() {
    // Regression: refused only after the duration question, and sudo then ended, so the
    // password and every answer had to be typed again.
    let w = world("wait=20");
    let r = w.sudo(
        "alice",
        &[PASSWORD, "web", "no ticket", "OPS-4 nginx wedged", ""],
        &["/usr/bin/id", "-u"],
    );
    let said = r.all();
    assert!(said.contains("reason must match"), "{said}");
    assert!(said.contains("type it again"), "{said}");
    assert!(said.contains("granted web"), "{said}");
    assert_eq!(said.matches("jit: duration").count(), 1, "{said}");
}

#[test]
fn given_sixteen_roles_when_sudo_lists_them_then_one_a_line_with_what_each_needs() {
    let mut policy = String::new();
    for i in 0..16 {
        policy.push_str(&format!(
            "[[role]]\nname = \"role-{i:02}\"\ncommands = [\"/usr/bin/true\"]\n\
             requesters = [\"alice\"]\nmax_duration = \"{}h\"\n\n",
            i + 1
        ));
    }
    let w = Builder::new().user("alice", &[]).policy(&policy).build();
    let r = w.sudo("alice", &[PASSWORD, ""], &["/usr/bin/true"]);
    let said = r.all();
    let listed: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("jit:   role-"))
        .collect();
    assert_eq!(listed.len(), 16, "{said}");
    assert!(
        listed.contains(&"jit:   role-09  up to 10h, no approval"),
        "{listed:?}"
    );
}

#[test]
fn given_a_closed_pipe_when_jitctl_prints_then_it_ends_quietly() {
    // Regression: `jitctl audit | head -1` panicked with a stack trace.
    let w = world("wait=20");
    for i in 0..30 {
        w.submit("alice", "web", "5m", &format!("OPS-{i} x"));
        assert!(w.jitctl("alice", &["release"]).ok());
    }
    let mut c2 = Command::new("bash");
    c2.arg("-c").arg(format!(
        "{} --bus {} audit | head -1; echo \"jitctl=${{PIPESTATUS[0]}}\"",
        bin("jitctl").display(),
        w.bus
    ));
    let r = run(c2, "", Duration::from_secs(30));
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    assert!(r.stdout.contains("jitctl=0"), "{}", r.all());
}

#[test]
fn given_an_ordinary_user_when_asking_for_bobs_audit_records_then_refused_saying_why() {
    // Regression: the filter was ignored and alice's own records came back, silently.
    let w = world("wait=20");
    let r = w.jitctl("alice", &["audit", "--user", "bob"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("only root and approvers"), "{}", r.all());
}

#[test]
fn given_an_extended_grant_when_listed_then_its_length_is_what_is_true_now() {
    // Regression: `for 5m ... until 12:06` after an extension.
    let w = world("wait=20");
    let id = id_of(&w.submit("alice", "web", "5m", "OPS-6 x"));
    assert!(
        w.jitctl(
            "alice",
            &[
                "extend",
                &id.to_string(),
                "--by",
                "10m",
                "--reason",
                "OPS-6 more"
            ]
        )
        .ok()
    );
    let grants = w.jitctl("alice", &["grants"]);
    assert!(
        grants.stdout.contains("for 15m (asked 5m, extended)"),
        "{}",
        grants.all()
    );
    let none = w.jitctl("bob", &["grants"]);
    assert!(none.stdout.contains("no active grants"), "{}", none.all());
}

#[test]
fn given_json_when_any_command_answers_or_fails_then_it_is_json() {
    let w = world("wait=20");
    // An error, with its stable code and the refusal's reason.
    let r = w.jitctl(
        "alice",
        &["--json", "request", "web", "--reason", "no ticket"],
    );
    assert_eq!(r.code, 3);
    let e = r.json();
    assert_eq!(
        (e["error"].as_str(), e["refusal"].as_str()),
        (Some("refused"), Some("reason_pattern")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("must match"), "{e}");
    let r = w.jitctl("alice", &["--json", "show", "99"]);
    assert_eq!(r.json()["error"], "not_found", "{}", r.all());
    // policy check and setup pam.
    let r = w.jitctl(
        "root",
        &["--json", "policy", "check", w.policy_path.to_str().unwrap()],
    );
    assert!(r.ok(), "{}", r.all());
    assert_eq!(
        (r.json()["valid"].as_bool(), r.json()["roles"].as_u64()),
        (Some(true), Some(2)),
        "{}",
        r.all()
    );
    let bad = w.path().join("bad.toml");
    std::fs::write(&bad, "[[role]]\nname = 1\n").unwrap();
    let r = w.jitctl(
        "root",
        &["--json", "policy", "check", bad.to_str().unwrap()],
    );
    assert_eq!(r.json()["error"], "invalid_policy", "{}", r.all());
    let r = w.jitctl("root", &["--json", "setup", "pam", "--print"]);
    assert!(
        r.json()["/etc/pam.d/sudo-i"][0]["line"]
            .as_str()
            .unwrap()
            .contains("pam_jit.so"),
        "{}",
        r.all()
    );
}

#[test]
fn given_bash_completion_when_completing_request_and_approve_then_roles_and_ids_come_from_jitd() {
    let w = world("wait=20");
    let id = id_of(&w.submit("alice", "db", "", "T-7 x"));
    let dist = w.path().join("dist");
    let r = run(
        {
            let mut c = Command::new(bin("xtask"));
            c.arg("dist").arg(&dist);
            c
        },
        "",
        Duration::from_secs(60),
    );
    assert!(r.ok(), "{}", r.all());
    let complete = |user: &str, words: &str| {
        let script = format!(
            "export PATH={}:$PATH DBUS_SYSTEM_BUS_ADDRESS={}; source {}; \
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _jitctl_dynamic jitctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bin("jitctl").parent().unwrap().display(),
            w.bus,
            dist.join("completions/bash/jitctl").display()
        );
        let r = run(
            w.as_user(user, std::path::Path::new("/bin/bash"), &["-c", &script]),
            "",
            Duration::from_secs(30),
        );
        r.stdout
    };
    let roles = complete("alice", "jitctl request ''");
    assert_eq!(
        roles.split_whitespace().collect::<Vec<_>>(),
        ["web", "db"],
        "{roles}"
    );
    let ids = complete("bob", "jitctl approve ''");
    assert_eq!(ids.trim(), id.to_string(), "{ids}");
}

#[test]
fn given_an_escalating_request_when_listed_then_who_may_approve_now_and_from_when_is_shown() {
    // Regression: a request that escalated looked the same as one that had not.
    let w = world("wait=20");
    let id = id_of(&w.submit("alice", "db", "", "T-8 x"));
    let listed = w.jitctl("bob", &["list", "--pending"]);
    assert!(
        listed.stdout.contains("0/1 approvals from bob; from "),
        "{}",
        listed.all()
    );
    assert!(listed.stdout.contains(" also carol"), "{}", listed.all());
    let shown = w
        .jitctl("alice", &["--json", "show", &id.to_string()])
        .json();
    assert_eq!(shown["escalation_approvers"][0], "carol", "{shown}");
    let created = shown["created_at"].as_i64().unwrap();
    assert_eq!(
        shown["escalates_at"].as_i64().unwrap(),
        created + 600,
        "{shown}"
    );
}

#[test]
fn given_jitd_cannot_start_when_the_bus_starts_it_then_jitctl_says_so_and_where_the_log_is() {
    // Regression: "org.freedesktop.DBus.Error.Spawn.ChildExited: Launch helper exited with
    // unknown return code 1".
    let w = Builder::new()
        .user("alice", &[])
        .policy("[[role]]\nname = \"broken\"\n")
        .bus_activation()
        .build();
    let r = w.jitctl("alice", &["roles"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("jitd could not start"), "{}", r.all());
    assert!(r.stderr.contains("/var/log/jitd.log"), "{}", r.all());
}
