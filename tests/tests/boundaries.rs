//! Trust boundaries and failure modes: the bus, zero standing privilege, jitd down,
//! bad input. Each security property has a named negative test here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, LAX_BUS_POLICY, PASSWORD, World, bin, run};
use nix::sys::signal::Signal;
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "1h"
default_duration = "15m"

[[role]]
name = "db-admin"
commands = ["/usr/bin/id -g"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "2h"
reason_pattern = "^DB-[0-9]+"
"#;

fn users(b: Builder) -> Builder {
    b.user("alice", &[])
        .user("bob", &[])
        .user("admin", &["rescue"])
        .policy(POLICY)
}

fn probe(w: &World, user: &str, args: &[&str]) -> jit_e2e::Run {
    let mut all = vec![args[0], w.bus.as_str()];
    all.extend_from_slice(&args[1..]);
    run(
        w.as_user(user, &bin("bus_probe"), &all),
        "",
        Duration::from_secs(30),
    )
}

#[test]
fn given_non_root_user_when_taking_the_bus_name_then_refused() {
    let mut w = users(Builder::new()).build();
    w.stop_jitd(Signal::SIGTERM);
    let r = probe(&w, "alice", &["own", "org.jit.Jitd"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("AccessDenied"), "{}", r.all());
}

#[test]
fn given_unprivileged_user_when_calling_the_pam_interface_then_bus_refuses() {
    let w = users(Builder::new()).build();
    let r = probe(&w, "alice", &["pam-check", "alice"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("AccessDenied"), "{}", r.all());
}

#[test]
fn given_lax_bus_policy_when_user_calls_the_pam_interface_then_jitd_still_refuses() {
    let w = users(Builder::new()).bus_policy(LAX_BUS_POLICY).build();
    let r = probe(&w, "alice", &["pam-check", "alice"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("NotAuthorized"), "{}", r.all());
    assert!(w.jitd_log().contains("called the PAM interface; refused"));
    // Every method of it, not only Check: each checks the caller itself.
    let r = probe(&w, "alice", &["pam-all", "alice"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stdout.contains("all 7 PAM methods refused"),
        "{}",
        r.all()
    );
    // Root's calls are answered through the same policy (the probe can tell).
    let r = probe(&w, "root", &["pam-all", "alice"]);
    assert!(r.stdout.contains("answered: [\"Check\""), "{}", r.all());
}

#[test]
fn given_root_when_calling_the_pam_interface_then_answered() {
    let w = users(Builder::new()).build();
    let r = probe(&w, "root", &["pam-check", "alice"]);
    assert!(r.ok(), "{}", r.all());
    assert!(r.stdout.contains("active: false"), "{}", r.all());
}

#[test]
fn given_jitd_not_running_when_jitctl_then_says_so() {
    let w = users(Builder::new()).without_jitd().build();
    let r = w.jitctl("alice", &["roles"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("jitd is not running"), "{}", r.all());
}

#[test]
fn given_static_rule_and_jitd_down_when_sudo_without_require_grant_then_rule_still_works() {
    let w = users(Builder::new())
        .static_rule("alice ALL=(root) /usr/bin/id -u")
        .without_jitd()
        .build();
    let r = w.sudo("alice", &[PASSWORD], &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "0");
    assert!(
        r.stderr.contains("cannot reach jitd"),
        "user is told: {}",
        r.all()
    );
}

#[test]
fn given_user_eligible_for_no_role_when_sudo_then_static_rule_works_without_prompts() {
    let w = users(Builder::new())
        .static_rule("bob ALL=(root) /usr/bin/id -u")
        .build();
    let r = w.sudo("bob", &[PASSWORD], &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    assert!(!r.all().contains("jit:"), "no prompt for bob: {}", r.all());
}

#[test]
fn given_require_grant_when_static_rule_but_no_grant_then_sudo_denied() {
    let w = users(Builder::new())
        .static_rule("alice ALL=(root) NOPASSWD: /usr/bin/id -u")
        .pam_args("wait=5", "require_grant exempt=rescue")
        .build();
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(!r.ok(), "zero standing privilege: {}", r.all());
    assert!(
        r.stderr.contains("alice has no active grant"),
        "{}",
        r.all()
    );
    let got = w.jitctl(
        "alice",
        &["request", "web-restart", "--for", "5m", "--reason", "T-1"],
    );
    assert!(got.ok(), "{}", got.all());
    assert!(w.sudo_n("alice", &["/usr/bin/id", "-u"]).ok());
}

#[test]
fn given_require_grant_and_jitd_down_when_sudo_then_denied_with_message() {
    let mut w = users(Builder::new())
        .static_rule("alice ALL=(root) NOPASSWD: /usr/bin/id -u")
        .pam_args("wait=5", "require_grant exempt=rescue")
        .build();
    assert!(
        w.jitctl("alice", &["request", "web-restart", "--reason", "T-2"])
            .ok()
    );
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    w.stop_jitd(Signal::SIGKILL);
    let r = w.sudo_n("alice", &["/usr/bin/true"]);
    assert!(!r.ok(), "fail closed: {}", r.all());
    assert!(r.stderr.contains("cannot reach jitd"), "{}", r.all());
}

#[test]
fn given_require_grant_and_jitd_down_when_exempt_group_member_sudo_then_rescue_path_works() {
    let w = users(Builder::new())
        .static_rule("admin ALL=(root) NOPASSWD: /usr/bin/id -u")
        .pam_args("wait=5", "require_grant exempt=rescue")
        .without_jitd()
        .build();
    let r = w.sudo_n("admin", &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
}

#[test]
fn given_unknown_pam_argument_when_sudo_then_configuration_error_denies() {
    let w = users(Builder::new())
        .static_rule("alice ALL=(root) NOPASSWD: /usr/bin/id -u")
        .pam_args("wait=5", "requre_grant")
        .build();
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(!r.ok(), "a misconfigured gate must deny: {}", r.all());
}

#[test]
fn given_bad_requests_when_jitctl_then_exit_3_and_nothing_changes() {
    let w = users(Builder::new()).build();
    let cases: &[&[&str]] = &[
        &["request", "no-such-role", "--reason", "x"],
        &["request", "web-restart", "--for", "2h", "--reason", "x"],
        &["request", "web-restart", "--reason", ""],
        &["request", "web-restart", "--reason", "bad\u{1b}[2Jreason"],
        &["request", "db-admin", "--reason", "no ticket"],
    ];
    for args in cases {
        let r = w.jitctl("alice", args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.all());
        assert!(!r.stderr.trim().is_empty(), "a clear error for {args:?}");
    }
    let bob = w.jitctl("bob", &["request", "web-restart", "--reason", "x"]);
    assert_eq!(bob.code, 3, "not a requester: {}", bob.all());
    let usage = w.jitctl(
        "alice",
        &["request", "web-restart", "--for", "soon", "--reason", "x"],
    );
    assert_eq!(usage.code, 2, "{}", usage.all());
    let all = w.jitctl("root", &["--json", "list", "--all"]);
    assert_eq!(
        all.json().as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
    assert!(w.sudoers_files().is_empty());
}

#[test]
fn given_approval_twice_when_jitctl_then_second_is_refused() {
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .user("carol", &[])
        .policy(
            r#"
[[role]]
name = "two"
commands = ["/usr/bin/true"]
requesters = ["alice"]
approvers = ["bob", "carol"]
approvals = 2
max_duration = "1h"
"#,
        )
        .build();
    let r = w.jitctl("alice", &["--json", "request", "two", "--reason", "x"]);
    let id = r.json()["id"].as_u64().unwrap().to_string();
    assert!(w.jitctl("bob", &["approve", &id]).ok());
    let again = w.jitctl("bob", &["approve", &id]);
    assert_eq!(again.code, 3, "{}", again.all());
    assert_eq!(w.request(id.parse().unwrap())["state"], "pending");
    assert!(w.sudoers_files().is_empty(), "one approver is not two");
    assert!(w.jitctl("carol", &["approve", &id]).ok());
    assert_eq!(w.request(id.parse().unwrap())["state"], "active");
}

#[test]
fn given_jitctl_request_wait_when_no_decision_comes_then_exit_4_and_cancel_ends_it() {
    let w = users(Builder::new()).build();
    let timed_out = w.jitctl(
        "alice",
        &[
            "request",
            "db-admin",
            "--reason",
            "DB-1",
            "--wait",
            "--timeout",
            "1s",
        ],
    );
    assert_eq!(timed_out.code, 4, "{}", timed_out.all());
    let id = w.jitctl("alice", &["--json", "list", "--pending"]).json()[0]["id"]
        .as_u64()
        .unwrap();
    assert!(w.jitctl("alice", &["cancel", &id.to_string()]).ok());
    assert_eq!(w.request(id)["state"], "cancelled");
}

#[test]
fn given_malformed_policy_when_jitd_starts_then_refuses_with_file_line_column() {
    let w = users(Builder::new()).without_jitd().build();
    std::fs::write(
        &w.policy_path,
        "[[role]]\nname = \"x\"\ncommands = [\"/bin/sh *\"]\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n",
    )
    .unwrap();
    let r = run(w.jitd_command(), "", Duration::from_secs(30));
    assert_eq!(r.code, 1, "{}", r.all());
    let where_ = format!("{}:3:13:", w.policy_path.display());
    assert!(r.stderr.contains(&where_), "want {where_} in {}", r.all());
    assert!(r.stderr.contains("invalid command"), "{}", r.all());
    assert!(w.sudoers_files().is_empty());
}

#[test]
fn example_policies_in_conf_pass_policy_check() {
    let w = Builder::new()
        .user("alice", &["jit-users"])
        .user("bob", &["jit-approvers"])
        .user("carol", &["jit-approvers"])
        .user("erin", &["jit-managers"])
        .policy(POLICY)
        .without_jitd()
        .build();
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&conf).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let r = w.jitctl("root", &["policy", "check", p.to_str().unwrap()]);
            assert!(r.ok(), "{}: {}", p.display(), r.all());
            assert!(
                r.stdout.contains(", 0 warnings)"),
                "{}: {}",
                p.display(),
                r.all()
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "example policies missing from conf/");
    let bad = w.path().join("bad.toml");
    std::fs::write(&bad, "[[role]]\nname = 1\n").unwrap();
    let r = w.jitctl("root", &["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("bad.toml:2:8"), "{}", r.all());
}

#[test]
fn given_jitd_runs_then_it_holds_only_cap_kill() {
    let w = users(Builder::new()).build();
    let pid = w.jitd_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for (set, want) in [
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        // CAP_KILL is bit 5: ending sessions that run as another user.
        ("CapPrm", "0000000000000020"),
        ("CapEff", "0000000000000020"),
        ("CapBnd", "0000000000000020"),
    ] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with(want), "{line}");
    }
    assert!(status.contains("NoNewPrivs:\t1"));
}

#[test]
fn given_bus_daemon_dies_when_jitd_runs_then_jitd_exits_for_its_supervisor_to_restart() {
    let mut w = users(Builder::new()).build();
    w.stop_bus();
    let status = jit_e2e::wait_for("jitd to exit", Duration::from_secs(10), || w.jitd_exited());
    assert!(!status.success(), "{status}");
    assert!(
        w.jitd_log().contains("lost the connection to the bus"),
        "{}",
        w.jitd_log()
    );
}

#[test]
fn given_policy_edited_when_sighup_then_reloaded_and_a_bad_one_is_refused() {
    let w = users(Builder::new()).build();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(w.jitd_pid().unwrap()).unwrap());
    let roles = |w: &World| -> Vec<String> {
        w.jitctl("alice", &["--json", "roles"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(roles(&w), ["web-restart", "db-admin"]);
    let added = format!(
        "{POLICY}\n[[role]]\nname = \"new-role\"\ncommands = [\"/usr/bin/true\"]\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n"
    );
    std::fs::write(&w.policy_path, &added).unwrap();
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    jit_e2e::wait_for("the reload", Duration::from_secs(10), || {
        (roles(&w).len() == 3).then_some(())
    });

    std::fs::write(&w.policy_path, "[[role]]\nname = \"broken\"\n").unwrap();
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    let status = jit_e2e::wait_for("the refusal", Duration::from_secs(10), || {
        let s = w.jitctl("root", &["status"]);
        s.stdout.contains("reload refused").then_some(s)
    });
    assert!(status.stdout.contains("jit.toml:"), "{}", status.all());
    assert_eq!(roles(&w).len(), 3, "the previous policy stays in force");
    assert!(
        w.audit_actions().iter().any(|a| a == "policy-reload"),
        "reload is audited"
    );
}

/// The pid the bus reports as the owner of org.jit.Jitd.
fn name_owner(w: &World) -> Option<u32> {
    let mut c = std::process::Command::new("busctl");
    c.arg(format!("--address={}", w.bus))
        .args(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus"])
        .args(["org.freedesktop.DBus", "GetConnectionUnixProcessID", "s"])
        .arg(jit_proto::BUS_NAME);
    run(c, "", Duration::from_secs(10))
        .stdout
        .trim()
        .strip_prefix("u ")
        .and_then(|p| p.parse().ok())
}

#[test]
fn given_jitd_running_when_a_second_jitd_starts_then_it_refuses_and_the_first_keeps_serving() {
    // Regression: a second jitd took the bus name over (the name request allowed
    // replacement), leaving two jitd on one database and sudoers directory.
    let w = users(Builder::new()).build();
    let first = w.jitd_pid().unwrap();
    // The same state directory and bus: refused by the state lock.
    let r = run(w.jitd_command(), "", Duration::from_secs(30));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("another jitd (pid {first}) is already running")),
        "{}",
        r.all()
    );
    // Another state directory, the same sudoers directory: refused (it would remove the
    // first one's rules as orphans).
    let jitd_on = |state: &std::path::Path, rules: &str| {
        let mut c = std::process::Command::new(bin("jitd"));
        c.arg("--config")
            .arg(&w.policy_path)
            .arg("--state-dir")
            .arg(state)
            .args(["--sudoers-dir", rules, "--bus", &w.bus])
            .arg("--pam-socket")
            .arg(w.path().join("other.socket"));
        c
    };
    let r = run(
        jitd_on(&w.path().join("other-state"), "/etc/sudoers.d"),
        "",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("already writing rules in /etc/sudoers.d"),
        "{}",
        r.all()
    );
    // Another state and sudoers directory on the same bus: refused by the name, which is
    // never taken from its owner.
    let rules = w.path().join("other-rules");
    std::fs::create_dir(&rules).unwrap();
    let r = run(
        jitd_on(&w.path().join("third-state"), rules.to_str().unwrap()),
        "",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("org.jit.Jitd is already owned by another jitd"),
        "{}",
        r.all()
    );
    assert_eq!(name_owner(&w), Some(first), "the first jitd still serves");
    assert!(w.jitctl("alice", &["roles"]).ok());
}

#[test]
fn given_jitd_stopped_by_a_signal_then_its_log_says_why() {
    // Regression: the installed jitd was found gone with no line in its log.
    let mut w = users(Builder::new()).build();
    w.stop_jitd(Signal::SIGTERM);
    assert!(
        w.jitd_log().contains("stopping on SIGTERM"),
        "{}",
        w.jitd_log()
    );
}

#[test]
fn given_pid_and_log_files_when_jitd_serves_then_they_name_it_and_go_with_it() {
    let mut w = users(Builder::new()).without_jitd().build();
    let (pid_file, log_file) = (w.path().join("run.pid"), w.path().join("own.log"));
    let mut c = w.jitd_command();
    c.arg("--pid-file")
        .arg(&pid_file)
        .arg("--log-file")
        .arg(&log_file);
    let mut child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = jit_e2e::wait_for("the pid file", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    });
    assert_eq!(pid, child.id());
    assert_eq!(name_owner(&w), Some(pid));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!pid_file.exists(), "the pid file goes with jitd");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("serving org.jit.Jitd"), "{log}");
    assert!(log.contains("stopping on SIGTERM"), "{log}");
    w.stop_jitd(Signal::SIGTERM);
}

#[test]
fn given_requester_with_static_sudoers_rules_when_policy_checked_or_status_then_warned() {
    // A grant unlocks every static rule its holder has under require_grant: say so.
    let w = users(Builder::new())
        .static_rule("alice ALL=(ALL) ALL")
        .build();
    let r = w.jitctl(
        "root",
        &["policy", "check", w.policy_path.to_str().unwrap()],
    );
    assert!(r.ok(), "{}", r.all());
    assert!(r.stdout.contains("1 warnings"), "{}", r.all());
    assert!(
        r.stderr
            .contains("alice may request roles and holds static sudoers rules")
            && r.stderr.contains("alice ALL = (ALL) ALL"),
        "{}",
        r.all()
    );
    let s = w.jitctl("root", &["status"]);
    assert!(s.ok(), "{}", s.all());
    assert!(
        s.stdout
            .contains("warning: alice may request roles and holds static sudoers rules"),
        "{}",
        s.all()
    );
    // Not to users, who cannot read sudoers anyway.
    let s = w.jitctl("alice", &["status"]);
    assert!(!s.stdout.contains("static sudoers"), "{}", s.all());
}

#[test]
fn given_host_with_users_and_groups_named_like_the_worlds_when_built_then_the_world_wins() {
    // Regression: on a host where an admin had created alice or jit-approvers, the world
    // appended its own entries after the host's, and the host's won.
    jit_e2e::private_mount_namespace();
    let tmp = tempfile::tempdir().unwrap();
    for (f, extra) in [
        (
            "passwd",
            "alice:x:1500:1500::/home/alice:/bin/bash\nbob:x:1501:1501::/:/bin/sh\n",
        ),
        (
            "group",
            "alice:x:1500:\njit-approvers:x:1600:alice,someone\nsudo-like:x:1601:bob\n",
        ),
        ("shadow", "alice:!:19000:0:99999:7:::\n"),
    ] {
        let host = std::fs::read_to_string(format!("/etc/{f}")).unwrap();
        let p = tmp.path().join(f);
        std::fs::write(&p, format!("{host}{extra}")).unwrap();
        nix::mount::mount(
            Some(&p),
            format!("/etc/{f}").as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    }
    let w = Builder::new()
        .user("alice", &["jit-users"])
        .user("bob", &["jit-approvers"])
        .policy(
            "[[role]]\nname = \"r\"\ncommands = [\"/usr/bin/true\"]\nrequesters = [\"%jit-users\"]\n\
             approvers = [\"%jit-approvers\"]\napprovals = 1\nmax_duration = \"1h\"\n",
        )
        .build();
    let id = |args: &[&str]| {
        let mut c = std::process::Command::new("id");
        c.args(args);
        run(c, "", Duration::from_secs(10))
            .stdout
            .trim()
            .to_string()
    };
    assert_ne!(id(&["-u", "alice"]), "1500");
    assert_eq!(id(&["-nG", "alice"]), "alice jit-users");
    assert_eq!(id(&["-nG", "bob"]), "bob jit-approvers");
    let r = w.jitctl(
        "root",
        &["policy", "check", w.policy_path.to_str().unwrap()],
    );
    assert!(r.stdout.contains(", 0 warnings)"), "{}", r.all());
}
