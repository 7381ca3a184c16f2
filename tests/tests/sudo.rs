//! Time-boxed sudo grants end to end: real sudo with pam_jit, real jitd, real jitctl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, PASSWORD, World, shard_file, wait_for};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[[role]]
name = "web-restart"
description = "Restart the web tier"
commands = ["/usr/bin/id -u", "/usr/bin/true"]
requesters = ["alice", "%webops"]
max_duration = "1h"
default_duration = "15m"
reason_pattern = "^[A-Z]+-[0-9]+"

[[role]]
name = "db-admin"
description = "Database administration"
commands = ["/usr/bin/id -g"]
requesters = ["%webops", "bob"]
approvers = ["%sre"]
approvals = 1
max_duration = "2h"
"#;

fn world() -> World {
    Builder::new()
        .user("alice", &["webops"])
        .user("bob", &["sre"])
        .user("carol", &["sre"])
        .user("mallory", &[])
        .policy(POLICY)
        .build()
}

/// The first sudo: password, then role, reason, duration. Returns what sudo printed.
fn ask_for(w: &World, user: &str, role: &str, reason: &str, duration: &str) -> String {
    let r = w.sudo(
        user,
        &[PASSWORD, role, reason, duration],
        &["/usr/bin/id", "-u"],
    );
    r.all()
}

fn active_id(w: &World, user: &str) -> u64 {
    let r = w.jitctl(user, &["--json", "grants"]);
    assert!(r.ok(), "{}", r.all());
    r.json()[0]["id"].as_u64().expect("an active grant")
}

#[test]
fn given_no_grant_when_sudo_then_reason_is_asked_and_next_sudo_works() {
    let w = world();
    let before = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(!before.ok(), "no standing rights: {}", before.all());

    let said = ask_for(&w, "alice", "web-restart", "OPS-4411 nginx wedged", "10m");
    assert!(said.contains("jit: no active grant for alice"), "{said}");
    assert!(
        said.contains("jit:   web-restart  up to 1h, no approval"),
        "{said}"
    );
    assert!(said.contains("granted web-restart until"), "{said}");
    assert!(said.contains("Run your command again"), "{said}");

    let after = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(after.ok(), "{}", after.all());
    assert_eq!(after.stdout.trim(), "0");

    let files = w.sudoers_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let rule = std::fs::read_to_string(format!("/etc/sudoers.d/{}", files[0])).unwrap();
    assert!(rule.contains("alice ALL = (root) NOTAFTER="), "{rule}");
    let id = active_id(&w, "alice");
    assert_eq!(w.request(id)["reason"], "OPS-4411 nginx wedged");
}

#[test]
fn given_active_grant_when_command_outside_role_then_sudo_refuses() {
    let w = world();
    ask_for(&w, "alice", "web-restart", "OPS-1 x", "");
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    for cmd in [
        &["/usr/bin/id"][..],
        &["/usr/bin/id", "-g"],
        &["/bin/sh", "-c", "id"],
        &["/usr/bin/whoami"],
    ] {
        let r = w.sudo_n("alice", cmd);
        assert!(!r.ok(), "{cmd:?} must be refused: {}", r.all());
    }
}

#[test]
fn given_empty_role_answer_when_sudo_then_nothing_is_requested() {
    let w = world();
    let r = w.sudo("alice", &[PASSWORD, ""], &["/usr/bin/id", "-u"]);
    assert!(!r.ok());
    assert!(r.all().contains("no role chosen"), "{}", r.all());
    let list = w.jitctl("root", &["--json", "list", "--all"]);
    assert_eq!(list.json().as_array().unwrap().len(), 0);
}

#[test]
fn given_reason_not_matching_pattern_when_sudo_then_refused_and_nothing_granted() {
    let w = world();
    // The reason is checked as typed and asked for again; no good one comes: nothing is
    // requested.
    let said = ask_for(&w, "alice", "web-restart", "because", "");
    assert!(said.contains("reason must match ^[A-Z]+-[0-9]+"), "{said}");
    assert!(said.contains("type it again"), "{said}");
    assert!(w.sudoers_files().is_empty());
    let list = w.jitctl("root", &["--json", "list", "--all"]);
    assert_eq!(list.json().as_array().unwrap().len(), 0, "{}", list.all());
}

#[test]
fn given_approval_role_when_second_user_approves_then_sudo_works() {
    let w = world();
    // alice's sudo waits for the approval in pam_jit (wait=20) while bob approves.
    let handle = std::thread::scope(|s| {
        let waiting = s.spawn(|| ask_for(&w, "alice", "db-admin", "DB-9 vacuum", "5m"));
        let id = wait_for("alice's pending request", Duration::from_secs(20), || {
            let r = w.jitctl("bob", &["--json", "list", "--pending"]);
            r.json()[0]["id"].as_u64()
        });
        let pending = w.request(id);
        assert_eq!(pending["state"], "pending");
        assert_eq!(pending["user"], "alice");
        let approve = w.jitctl("bob", &["approve", &id.to_string(), "--comment", "ok"]);
        assert!(approve.ok(), "{}", approve.all());
        let approved_at = Instant::now();
        let sudo = wait_for("the granted sudo", Duration::from_secs(5), || {
            let r = w.sudo_n("alice", &["/usr/bin/id", "-g"]);
            r.ok().then_some(r)
        });
        let latency = approved_at.elapsed();
        println!("measured: jitctl approve returned -> next sudo succeeded: {latency:?}");
        assert_eq!(sudo.stdout.trim(), "0");
        (waiting.join().unwrap(), id)
    });
    let (said, id) = handle;
    assert!(said.contains("needs 1 approval(s) from %sre"), "{said}");
    assert!(
        said.contains(&format!("request {id}: granted db-admin")),
        "{said}"
    );
    assert_eq!(w.request(id)["approved_by"][0], "bob");
}

#[test]
fn given_own_request_when_requester_approves_then_refused_with_exit_3() {
    let w = world();
    // bob is an approver (%sre) and may request db-admin himself.
    let r = w.jitctl(
        "bob",
        &[
            "--json", "request", "db-admin", "--for", "10m", "--reason", "DB-1",
        ],
    );
    assert!(r.ok(), "{}", r.all());
    let id = r.json()["id"].as_u64().unwrap();
    let own = w.jitctl("bob", &["approve", &id.to_string()]);
    assert_eq!(own.code, 3, "{}", own.all());
    assert!(own.stderr.contains("own request"), "{}", own.all());
    let outsider = w.jitctl("mallory", &["approve", &id.to_string()]);
    assert_eq!(outsider.code, 3, "{}", outsider.all());
    assert_eq!(w.request(id)["state"], "pending");
    assert!(w.sudoers_files().is_empty());
}

#[test]
fn given_short_grant_when_it_expires_then_rule_is_removed_and_sudo_refuses() {
    let w = world();
    let r = w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "web-restart",
            "--for",
            "2s",
            "--reason",
            "OPS-2 short",
        ],
    );
    assert!(r.ok(), "{}", r.all());
    let not_after = r.json()["not_after_unix"].as_i64().unwrap();
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    wait_for("the rule to go", Duration::from_secs(10), || {
        w.sudoers_files().is_empty().then_some(())
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let late = now - not_after as f64;
    println!("measured: rule removed {late:.3}s after not_after");
    assert!(late < 1.5, "removed {late}s after not_after");
    assert!(!w.sudo_n("alice", &["/usr/bin/true"]).ok());
    let id = r.json()["id"].as_u64().unwrap();
    assert_eq!(w.request(id)["state"], "expired");
}

#[test]
fn given_active_grant_when_released_then_sudo_refuses() {
    let w = world();
    ask_for(&w, "alice", "web-restart", "OPS-3 x", "");
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    let r = w.jitctl("alice", &["release"]);
    assert!(r.ok(), "{}", r.all());
    assert!(w.sudoers_files().is_empty());
    assert!(!w.sudo_n("alice", &["/usr/bin/true"]).ok());
}

#[test]
fn given_active_grant_when_approver_revokes_then_sudo_refuses() {
    let w = world();
    let r = w.jitctl(
        "alice",
        &[
            "--json", "request", "db-admin", "--for", "30m", "--reason", "DB-4",
        ],
    );
    let id = r.json()["id"].as_u64().unwrap().to_string();
    assert!(w.jitctl("carol", &["approve", &id]).ok());
    assert!(w.sudo_n("alice", &["/usr/bin/id", "-g"]).ok());

    let denied = w.jitctl("mallory", &["revoke", &id, "--reason", "no"]);
    assert_eq!(denied.code, 3, "{}", denied.all());
    let no_reason = w.jitctl("bob", &["revoke", &id, "--reason", ""]);
    assert_eq!(no_reason.code, 3, "{}", no_reason.all());

    let revoked = w.jitctl("bob", &["revoke", &id, "--reason", "incident closed"]);
    assert!(revoked.ok(), "{}", revoked.all());
    assert!(w.sudoers_files().is_empty());
    assert!(!w.sudo_n("alice", &["/usr/bin/id", "-g"]).ok());
    assert_eq!(w.request(id.parse().unwrap())["state"], "revoked");
}

#[test]
fn given_denied_request_when_approved_later_then_it_never_becomes_active() {
    let w = world();
    let r = w.jitctl(
        "alice",
        &[
            "--json", "request", "db-admin", "--for", "30m", "--reason", "DB-5",
        ],
    );
    let id = r.json()["id"].as_u64().unwrap().to_string();
    assert!(
        w.jitctl("bob", &["deny", &id, "--reason", "not today"])
            .ok()
    );
    let late = w.jitctl("carol", &["approve", &id]);
    assert_eq!(late.code, 3, "{}", late.all());
    let twice = w.jitctl("bob", &["deny", &id, "--reason", "again"]);
    assert_eq!(twice.code, 3);
    assert_eq!(w.request(id.parse().unwrap())["state"], "denied");
    assert!(w.sudoers_files().is_empty());
}

#[test]
fn given_jitd_killed_when_restarted_then_active_grants_survive_and_expired_are_removed() {
    let mut w = world();
    let long = w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            "web-restart",
            "--for",
            "30m",
            "--reason",
            "OPS-5 long",
        ],
    );
    assert!(long.ok(), "{}", long.all());
    let short = w.jitctl(
        "bob",
        &[
            "--json",
            "request",
            "db-admin",
            "--for",
            "2s",
            "--reason",
            "DB-6 short",
        ],
    );
    let short_id = short.json()["id"].as_u64().unwrap();
    let approved = w.jitctl("carol", &["--json", "approve", &short_id.to_string()]);
    assert!(approved.ok(), "{}", approved.all());
    let short_end = approved.json()["not_after_unix"].as_i64().unwrap();
    assert_eq!(w.sudoers_files().len(), 2);
    assert!(w.sudo_n("bob", &["/usr/bin/id", "-g"]).ok());

    w.stop_jitd(Signal::SIGKILL);
    // While jitd is dead, sudo's own NOTAFTER still ends the short grant at not_after.
    wait_for(
        "the short grant's not_after",
        Duration::from_secs(10),
        || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            (i64::try_from(now).unwrap() >= short_end).then_some(())
        },
    );
    assert!(!w.sudo_n("bob", &["/usr/bin/id", "-g"]).ok());
    // A stray file and a missing one, as a crash could leave them.
    let long_id = long.json()["id"].as_u64().unwrap();
    std::fs::remove_file(format!("/etc/sudoers.d/{}", shard_file(long_id))).unwrap();
    std::fs::write(
        "/etc/sudoers.d/jit-999-mallory",
        "mallory ALL=(ALL) NOPASSWD: ALL\n",
    )
    .unwrap();

    w.start_jitd();
    assert_eq!(w.sudoers_files(), vec![shard_file(long_id)]);
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    assert!(!w.sudo_n("mallory", &["/usr/bin/true"]).ok());
    assert_eq!(w.request(short_id)["state"], "expired");
    assert_eq!(w.request(long_id)["state"], "active");
}

#[test]
fn given_sudo_retries_auth_when_password_is_wrong_then_one_request_at_most() {
    // sudo runs the auth stack up to three times in one transaction. pam_unix fails on the
    // wrong password but, being `required`, lets the stack go on: pam_jit asks and submits
    // on the first try (an approval role, not waited for). The retry must ask nothing and
    // submit nothing. The input for a second request is there: a retry that asked ("wait
    // for it? n", then a role) would make one (checked against a pam_jit without the guard).
    let w = Builder::new()
        .user("alice", &["webops"])
        .user("bob", &["sre"])
        .policy(POLICY)
        .pam_args("wait=0", "")
        .build();
    let r = w.sudo(
        "alice",
        &[
            "wrong",
            "db-admin",
            "DB-1 first",
            "",
            PASSWORD,
            "n",
            "web-restart",
            "OPS-7 second",
            "",
        ],
        &["/usr/bin/true"],
    );
    assert!(r.all().contains("is still pending"), "{}", r.all());
    assert!(
        !r.all().contains("wait for it"),
        "a retry asked: {}",
        r.all()
    );
    let all = w.jitctl("root", &["--json", "list", "--all"]);
    let requests = all.json().as_array().cloned().unwrap();
    assert_eq!(requests.len(), 1, "{}", all.all());
    assert_eq!(requests[0]["role"], "db-admin");
}

#[test]
fn every_step_is_audited_and_the_chain_verifies() {
    let w = world();
    ask_for(&w, "alice", "web-restart", "OPS-8 audit", "");
    assert!(w.jitctl("alice", &["release"]).ok());
    let actions = w.audit_actions();
    assert_eq!(actions, ["reconcile", "request", "grant", "release"]);
    let verify = w.jitctl("root", &["audit", "verify"]);
    assert!(verify.ok(), "{}", verify.all());
    assert!(
        verify.stdout.contains("intact: 4 records"),
        "{}",
        verify.all()
    );
    let mine = w.jitctl("mallory", &["--json", "audit"]);
    assert_eq!(
        mine.json().as_array().unwrap().len(),
        0,
        "others' records are hidden"
    );
}

#[test]
fn given_cached_sudo_credentials_when_a_grant_ends_then_they_are_cleared() {
    let w = Builder::new()
        .user("alice", &["webops"])
        .user("bob", &["sre"])
        .policy(POLICY)
        .static_rule("Defaults:alice timestamp_type=global")
        .static_rule("alice ALL=(root) /usr/bin/id -g")
        .build();
    // A static PASSWD rule: the password caches a time stamp (global: the test has no tty),
    // then -n works without one.
    let first = w.sudo("alice", &[PASSWORD, ""], &["/usr/bin/id", "-g"]);
    assert!(first.ok(), "{}", first.all());
    assert!(
        w.sudo_n("alice", &["/usr/bin/id", "-g"]).ok(),
        "time stamp cached"
    );
    assert!(
        w.jitctl(
            "alice",
            &["request", "web-restart", "--reason", "OPS-10 ts"]
        )
        .ok()
    );
    assert!(w.jitctl("alice", &["release"]).ok());
    let after = w.sudo_n("alice", &["/usr/bin/id", "-g"]);
    assert!(
        !after.ok(),
        "the grant's end cleared alice's time stamps: {}",
        after.all()
    );
    assert!(
        after.stderr.contains("password is required"),
        "{}",
        after.all()
    );
}

fn shell_world() -> World {
    Builder::new()
        .user("alice", &["webops"])
        .user("bob", &["sre"])
        .policy(
            r#"
[[role]]
name = "root-shell"
commands = ["/bin/sh"]
requesters = ["alice"]
approvers = ["bob"]
max_duration = "1h"
"#,
        )
        .build()
}

/// Starts `sudo -n ARGS` as alice in the background; its stdin stays open (an interactive
/// shell waits on it).
fn background_sudo(w: &World, args: &[&str]) -> std::process::Child {
    let mut all = vec!["-n"];
    all.extend_from_slice(args);
    w.as_user("alice", std::path::Path::new("/usr/bin/sudo"), &all)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn session_opened(w: &World) -> bool {
    w.audit_actions().iter().any(|a| a == "session-open")
}

#[test]
fn given_root_shell_under_grant_when_grant_revoked_then_shell_is_ended() {
    let w = shell_world();
    let id = w.submit("alice", "root-shell", "", "T-1")["id"].to_string();
    let mut shell = background_sudo(&w, &["-s"]);
    wait_for(
        "the session to be registered",
        Duration::from_secs(10),
        || session_opened(&w).then_some(()),
    );
    assert!(shell.try_wait().unwrap().is_none(), "the shell runs");
    assert!(
        w.jitctl("bob", &["revoke", &id, "--reason", "incident over"])
            .ok()
    );
    let status = wait_for("the shell to end", Duration::from_secs(10), || {
        shell.try_wait().unwrap()
    });
    assert!(
        !status.success(),
        "ended by a signal, not by itself: {status}"
    );
}

#[test]
fn given_command_ignoring_sighup_when_grant_expires_then_it_is_killed() {
    let w = shell_world();
    assert!(
        w.jitctl(
            "alice",
            &["request", "root-shell", "--for", "3s", "--reason", "T-2"]
        )
        .ok()
    );
    // The command itself, not sudo, is what must end: jitd kills sudo anyway.
    let pidfile = w.path().join("command.pid");
    let script = format!(
        "trap '' HUP; echo $$ > {}; exec sleep 600",
        pidfile.display()
    );
    let mut cmd = background_sudo(&w, &["/bin/sh", "-c", &script]);
    let pid: i32 = wait_for("the command to start", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    wait_for(
        "the session to be registered",
        Duration::from_secs(10),
        || session_opened(&w).then_some(()),
    );
    wait_for(
        "the command ignoring SIGHUP to be killed",
        Duration::from_secs(15),
        || (!running(pid)).then_some(()),
    );
    let _ = cmd.wait();
    let ended = w.audit_actions().iter().any(|a| a == "session-end");
    assert!(ended, "the end is audited");
}

/// A process is gone once it has no /proc entry or is a zombie waiting to be reaped.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// Why jitd keeps CAP_KILL (and the unit's bounding set holds it): a command run as another
/// user outlives sudo's SIGKILL unless jitd may signal that user's processes itself.
#[test]
fn given_command_as_other_user_ignoring_sighup_when_grant_revoked_then_it_is_killed() {
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .policy(
            r#"
[[role]]
name = "as-nobody"
commands = ["/bin/sh"]
run_as = ["nobody"]
requesters = ["alice"]
approvers = ["bob"]
max_duration = "1h"
"#,
        )
        .build();
    let id = w.submit("alice", "as-nobody", "", "T-3")["id"].to_string();
    let drop = w.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pidfile = drop.join("pid");
    let script = format!(
        "trap '' HUP; echo $$ > {}; exec sleep 600",
        pidfile.display()
    );
    let mut cmd = background_sudo(&w, &["-u", "nobody", "/bin/sh", "-c", &script]);
    let pid: i32 = wait_for("the command to start", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    wait_for(
        "the session to be registered",
        Duration::from_secs(10),
        || session_opened(&w).then_some(()),
    );
    let owner = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    assert!(
        owner
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&format!("\t{nobody}\t"))),
        "runs as nobody: {owner}"
    );
    assert!(w.jitctl("bob", &["revoke", &id, "--reason", "done"]).ok());
    wait_for(
        "the command as nobody to be killed",
        Duration::from_secs(15),
        || (!running(pid)).then_some(()),
    );
    let _ = cmd.wait();
}

#[test]
fn given_a_grant_lived_through_when_audited_then_each_record_says_who_and_from_where() {
    let w = world();
    let said = ask_for(&w, "alice", "web-restart", "OPS-77 audit me", "10m");
    assert!(said.contains("granted web-restart"), "{said}");
    let id = active_id(&w, "alice");
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    wait_for("the session record", Duration::from_secs(10), || {
        session_opened(&w).then_some(())
    });
    assert!(w.jitctl("alice", &["release", &id.to_string()]).ok());
    let alice_uid = w
        .jitctl("alice", &["--json", "show", &id.to_string()])
        .json()["uid"]
        .as_u64()
        .unwrap();

    let r = w.jitctl("root", &["--json", "audit"]);
    let records = r.json();
    let of = |action: &str| {
        records
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == action && a["request_id"].as_u64() == Some(id))
            .unwrap_or_else(|| panic!("no {action} record: {}", r.stdout))
            .clone()
    };
    // Through sudo (pam_jit): the PAM service; as alice, by uid and name.
    for action in ["request", "grant", "session-open"] {
        let rec = of(action);
        assert_eq!(rec["actor"], "alice", "{rec}");
        assert_eq!(rec["actor_uid"].as_u64(), Some(alice_uid), "{rec}");
        assert!(
            rec["origin"].as_str().unwrap().starts_with("service=sudo"),
            "{rec}"
        );
    }
    assert!(
        of("session-open")["detail"]
            .as_str()
            .unwrap()
            .contains("pid=")
    );
    // Through jitctl (D-Bus): the calling process.
    let release = of("release");
    assert_eq!(release["actor"], "alice");
    assert!(
        release["origin"].as_str().unwrap().starts_with("bus pid="),
        "{release}"
    );
    // jitd's own records say so; every record has an origin and the chain holds.
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a["origin"].as_str().unwrap_or_default().is_empty()),
        "{}",
        r.stdout
    );
    let text = w.jitctl("root", &["audit"]);
    assert!(
        text.stdout.contains("release by alice") && text.stdout.contains("from [bus pid="),
        "{}",
        text.stdout
    );
    assert!(w.jitctl("root", &["audit", "verify"]).ok());
}

#[test]
fn given_session_on_a_terminal_when_its_grant_nears_its_end_then_the_user_is_warned_there() {
    let w = Builder::new()
        .user("alice", &[])
        .policy(
            r#"
[[role]]
name = "long-job"
commands = ["/usr/bin/sleep"]
requesters = ["alice"]
max_duration = "1h"
"#,
        )
        .build();
    // Terminals as a Debian host makes them (devpts gid=5,mode=620: the owner and group tty
    // may write), in this test's mount namespace; this container mounts devpts mode=600.
    w.host_like_terminals();
    // 65 s: the one-minute warning is due 5 s in; the five-minute one never applies.
    let id = w.submit("alice", "long-job", "65s", "OPS-9")["id"]
        .as_u64()
        .unwrap();
    // script(1) gives sudo a real terminal (a pty) and copies what appears on it to stdout.
    let mut child = w
        .as_user(
            "alice",
            std::path::Path::new("/usr/bin/script"),
            &["-qfec", "sudo -n /usr/bin/sleep 25", "/dev/null"],
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("extend it with") {
                break;
            }
        }
        seen
    });
    let started = Instant::now();
    wait_for("the warning", Duration::from_secs(30), || {
        reader.is_finished().then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap();
    assert!(
        text.contains(&format!("jit: your grant {id} (long-job) ends in")),
        "{text:?}\n{}\n{}",
        w.jitd_log(),
        w.jitctl("root", &["audit"]).stdout
    );
    assert!(text.contains(&format!("jitctl extend {id}")), "{text:?}");
    // The command the warning gives works as printed (regression: it lacked --reason),
    // with its placeholder filled in.
    let printed = text
        .split("extend it with: ")
        .nth(1)
        .and_then(|t| t.lines().next())
        .unwrap()
        .trim()
        .to_string();
    let (before, after) = printed.split_once(" --reason ").unwrap();
    assert_eq!(after, "TEXT", "{printed}");
    let mut args: Vec<&str> = before.split(' ').skip(1).collect();
    args.extend(["--reason", "OPS-9 the job needs longer"]);
    let r = w.jitctl("alice", &args);
    assert!(r.ok(), "{printed}: {}", r.all());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "warned after {took:?}");
    // Once per threshold: no second warning in the next seconds.
    assert_eq!(text.matches("jit: your grant").count(), 1, "{text:?}");
}
