//! ssh logins gated on grants: real sshd on 127.0.0.1 with pam_jit (`mode=ssh`) in its
//! account stack, real ssh client with keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, SSH_ACCOUNT_JIT, World};
use nix::sys::signal::Signal;
use std::process::Stdio;
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "login"
commands = ["/usr/bin/true"]
requesters = ["alice"]
approvers = ["bob"]
max_duration = "1h"
ssh = true

[[role]]
name = "sudo-only"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "1h"
"#;

fn world() -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .policy(POLICY)
        .sshd(Some(SSH_ACCOUNT_JIT))
        .build()
}

#[test]
fn given_no_grant_when_ssh_login_then_refused() {
    let w = world();
    let r = w.ssh("alice", "id -un");
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("alice"), "{}", r.all());
}

#[test]
fn given_grant_whose_role_has_no_ssh_when_ssh_login_then_refused() {
    let w = world();
    assert!(
        w.jitctl("alice", &["request", "sudo-only", "--reason", "T-1"])
            .ok()
    );
    let r = w.ssh("alice", "id -un");
    assert_ne!(r.code, 0, "{}", r.all());
}

#[test]
fn given_ssh_grant_when_ssh_login_then_admitted_and_after_revoke_refused() {
    let w = world();
    let g = w.submit("alice", "login", "", "T-2");
    let r = w.ssh("alice", "id -un");
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "alice");
    let id = g["id"].as_u64().unwrap().to_string();
    assert!(w.jitctl("bob", &["revoke", &id, "--reason", "done"]).ok());
    let after = w.ssh("alice", "id -un");
    assert_ne!(after.code, 0, "{}", after.all());
}

#[test]
fn given_jitd_down_when_ssh_login_then_refused_even_with_a_grant() {
    let mut w = world();
    assert!(
        w.jitctl("alice", &["request", "login", "--reason", "T-3"])
            .ok()
    );
    assert!(w.ssh("alice", "true").ok());
    w.stop_jitd(Signal::SIGKILL);
    let r = w.ssh("alice", "true");
    assert_ne!(r.code, 0, "fail closed: {}", r.all());
}

#[test]
fn given_sshd_without_pam_jit_then_login_works_without_grant() {
    // The control for the tests above: the same world without pam_jit admits alice.
    let w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .sshd(None)
        .build();
    let r = w.ssh("alice", "id -un");
    assert!(r.ok(), "{}", r.all());
}

#[test]
fn given_open_ssh_session_when_grant_revoked_then_it_is_logged_out() {
    let w = world();
    let id = w.submit("alice", "login", "", "T-4")["id"].to_string();
    let mut session = w
        .ssh_command("alice", "sleep 600")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    jit_e2e::wait_for(
        "the ssh session to be registered",
        std::time::Duration::from_secs(10),
        || {
            w.audit_actions()
                .iter()
                .any(|a| a == "session-open")
                .then_some(())
        },
    );
    assert!(session.try_wait().unwrap().is_none(), "logged in");
    assert!(w.jitctl("bob", &["revoke", &id, "--reason", "done"]).ok());
    let status = jit_e2e::wait_for("the logout", std::time::Duration::from_secs(15), || {
        session.try_wait().unwrap()
    });
    assert!(!status.success(), "{status}");
}

// --- keyboard-interactive: asking for a grant at the login prompt ---

/// [`POLICY`] with a login role that needs bob's approval.
fn approved_login() -> String {
    let p = POLICY.replacen(
        "approvers = [\"bob\"]\n",
        "approvers = [\"bob\"]\napprovals = 1\n",
        1,
    );
    assert_ne!(p, POLICY);
    p
}

/// sshd with `AuthenticationMethods publickey,keyboard-interactive` and pam_jit's auth.
fn kbdint_world(wait: u32) -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .policy(&approved_login())
        .sshd(Some(SSH_ACCOUNT_JIT))
        .ssh_keyboard_interactive(&format!("mode=ssh timeout=5 wait={wait}"))
        .build()
}

/// The id of alice's first pending request, once there is one.
fn pending_request(w: &World) -> String {
    jit_e2e::wait_for(
        "alice's request to be pending",
        Duration::from_secs(20),
        || {
            let r = w.jitctl("bob", &["--json", "list", "--pending"]);
            r.json()
                .as_array()
                .and_then(|a| a.first())
                .map(|q| q["id"].to_string())
        },
    )
}

fn spawn_login(w: &World, reason: &str) -> std::process::Child {
    w.ssh_interactive("alice", "login", reason, "id -un")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn given_key_and_no_grant_when_login_asks_and_bob_approves_then_login_succeeds() {
    let w = kbdint_world(40);
    let login = spawn_login(&w, "OPS-7 db failover");
    let id = pending_request(&w);
    let show = w.jitctl("bob", &["--json", "show", &id]);
    assert_eq!(show.json()["reason"], "OPS-7 db failover", "{}", show.all());
    assert_eq!(show.json()["service"], "sshd-jittest", "{}", show.all());
    let ok = w.jitctl("bob", &["approve", &id, "--comment", "go"]);
    assert!(ok.ok(), "{}", ok.all());
    let out = login.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{stdout}{stderr}\n{}\n{}",
        std::fs::read_to_string(w.path().join("sshd.log")).unwrap_or_default(),
        w.jitd_log()
    );
    assert_eq!(stdout.trim(), "alice");
    let prompts = w.ssh_prompts("alice");
    assert!(
        prompts.contains(
            "roles you may request:\njit:   login  up to 1h, 1 approval from bob, admits ssh logins"
        ),
        "{prompts}"
    );
    assert!(!prompts.contains("sudo-only"), "only ssh roles: {prompts}");
    assert!(
        prompts.contains(&format!(
            "request {id} for role 'login' needs 1 approval(s) from bob"
        )),
        "{prompts}"
    );
    assert!(prompts.contains("Press Enter to wait for it"), "{prompts}");
    // The session that followed is the grant's, and a second login needs no question.
    assert!(w.audit_actions().iter().any(|a| a == "session-open"));
    let again = w.ssh_interactive("alice", "", "", "id -un");
    let again = jit_e2e::run(again, "", Duration::from_secs(30));
    assert!(again.ok(), "{}", again.all());
    assert_eq!(
        w.ssh_prompts("alice"),
        prompts,
        "no new prompt for a held grant"
    );
}

#[test]
fn given_login_waiting_when_bob_denies_then_login_ends_and_client_is_told_why() {
    let w = kbdint_world(40);
    let login = spawn_login(&w, "OPS-8 just looking");
    let id = pending_request(&w);
    let no = w.jitctl("bob", &["deny", &id, "--reason", "use the read-only role"]);
    assert!(no.ok(), "{}", no.all());
    let out = login.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no session: {stderr}");
    assert!(
        stderr.contains(&format!(
            "jit: request {id} was denied by bob: use the read-only role"
        )),
        "{stderr}"
    );
    assert!(!w.audit_actions().iter().any(|a| a == "session-open"));
}

#[test]
fn given_nobody_decides_when_wait_ends_then_login_ends_cleanly_and_request_stays_pending() {
    let w = kbdint_world(6);
    let started = std::time::Instant::now();
    let login = spawn_login(&w, "OPS-9 night shift");
    let out = login.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(30), "{took:?}: {stderr}");
    assert!(
        stderr.contains("is still waiting for approval; log in again once it is approved"),
        "{stderr}"
    );
    // Approved later: the next login waits for that request instead of asking again.
    let id = pending_request(&w);
    assert!(w.jitctl("bob", &["approve", &id]).ok());
    let again = jit_e2e::run(
        w.ssh_interactive("alice", "login", "a second reason", "id -un"),
        "",
        Duration::from_secs(30),
    );
    assert!(again.ok(), "{}", again.all());
    let listed = w.jitctl("bob", &["--json", "list", "--all"]);
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        1,
        "{}",
        listed.all()
    );
}

#[test]
fn given_keyboard_interactive_alone_when_login_then_pam_jit_refuses_without_asking() {
    // A misconfiguration: pam_jit's auth as the only method. It must not act for a client
    // that proved nothing: no prompt, no request, no login.
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .policy(POLICY)
        .sshd(Some(SSH_ACCOUNT_JIT))
        .ssh_keyboard_interactive("mode=ssh timeout=5 wait=20")
        .ssh_methods("keyboard-interactive")
        .build();
    let r = jit_e2e::run(
        w.ssh_interactive("alice", "login", "OPS-10", "id -un"),
        "",
        Duration::from_secs(30),
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("alice"), "{}", r.all());
    assert_eq!(w.ssh_prompts("alice"), "", "nothing was asked");
    let listed = w.jitctl("bob", &["--json", "list", "--all"]);
    assert_eq!(
        listed.json(),
        serde_json::json!([]),
        "nothing was requested"
    );
}

#[test]
fn given_no_grant_when_key_only_login_then_client_is_told_how_to_get_access() {
    let w = world();
    // Key only: the client's messages at INFO show sshd's banner.
    let r = jit_e2e::run(
        w.ssh_interactive("alice", "", "", "true"),
        "",
        Duration::from_secs(30),
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("jit: alice has no ssh-capable grant on")
            && r.stderr.contains("jitctl request ROLE"),
        "{}",
        r.all()
    );
}

#[test]
fn given_short_ssh_grant_when_it_expires_then_login_is_refused() {
    let w = world();
    let id = w.submit("alice", "login", "3s", "T-11")["id"]
        .as_u64()
        .unwrap();
    assert!(w.ssh("alice", "true").ok());
    jit_e2e::wait_for("the grant to expire", Duration::from_secs(15), || {
        (!jit_e2e::has_rule(id)).then_some(())
    });
    let r = w.ssh("alice", "true");
    assert_ne!(r.code, 0, "{}", r.all());
}

// --- sessions survive a jitd restart ---

/// alice holds a login grant and has an ssh session open under it.
fn open_session(w: &World, reason: &str) -> (String, std::process::Child) {
    let id = w.submit("alice", "login", "", reason)["id"].to_string();
    let session = w
        .ssh_command("alice", "sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    jit_e2e::wait_for(
        "the session to be recorded",
        Duration::from_secs(10),
        || {
            w.audit_actions()
                .iter()
                .any(|a| a == "session-open")
                .then_some(())
        },
    );
    (id, session)
}

fn assert_logged_out(session: &mut std::process::Child) {
    let status = jit_e2e::wait_for("the logout", Duration::from_secs(15), || {
        session.try_wait().unwrap()
    });
    assert!(!status.success(), "{status}");
}

#[test]
fn given_open_ssh_session_when_jitd_restarts_then_revoke_still_logs_it_out() {
    let mut w = world();
    let (id, mut session) = open_session(&w, "T-12");
    w.stop_jitd(Signal::SIGKILL);
    w.start_jitd();
    assert!(
        w.jitd_log().contains("1 session(s) tracked again"),
        "{}",
        w.jitd_log()
    );
    assert!(session.try_wait().unwrap().is_none(), "still logged in");
    assert!(w.jitctl("bob", &["revoke", &id, "--reason", "done"]).ok());
    assert_logged_out(&mut session);
}

#[test]
fn given_jitd_killed_between_revoke_and_logout_when_it_restarts_then_the_session_ends() {
    let mut w = world();
    let (id, mut session) = open_session(&w, "T-13");
    w.stop_jitd(Signal::SIGKILL);
    // Killed right after the revoke's commit: the grant is revoked, its session not ended.
    w.jitd_env = vec![("JITD_CRASH_AT".into(), "after-commit:1".into())];
    w.start_jitd();
    let _ = w.jitctl("bob", &["revoke", &id, "--reason", "done"]);
    jit_e2e::wait_for(
        "jitd to die at the kill point",
        Duration::from_secs(10),
        || w.jitd_exited(),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(session.try_wait().unwrap().is_none(), "not yet ended");
    w.stop_jitd(Signal::SIGKILL);
    w.jitd_env.clear();
    w.start_jitd();
    assert_eq!(w.request(id.parse().unwrap())["state"], "revoked");
    assert_logged_out(&mut session);
    let actions = w.audit_actions();
    // Ended by the restarted jitd, as it took up its stored sessions.
    assert!(
        actions.ends_with(&["revoke".into(), "session-end".into(), "reconcile".into()]),
        "{actions:?}"
    );
}

#[test]
fn given_short_ssh_grant_and_a_longer_grant_without_ssh_when_the_ssh_grant_ends_then_the_login_ends()
 {
    // Regression: the login was bound to the user's longest grant, one whose role has no
    // ssh right, and ran on after the ssh grant ended.
    let w = world();
    let other = w.submit("alice", "sudo-only", "10m", "T-20")["id"]
        .as_u64()
        .unwrap();
    let ssh = w.submit("alice", "login", "15s", "T-21")["id"]
        .as_u64()
        .unwrap();
    let mut session = w
        .ssh_command("alice", "sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bound = jit_e2e::wait_for(
        "the session to be recorded",
        Duration::from_secs(20),
        || {
            w.jitctl("root", &["--json", "audit"])
                .json()
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["action"] == "session-open")
                .map(|a| a["request_id"].as_u64().unwrap())
        },
    );
    assert_eq!(bound, ssh, "bound to the ssh grant");
    let status = jit_e2e::wait_for("the logout", Duration::from_secs(90), || {
        session.try_wait().unwrap()
    });
    assert!(!status.success(), "{status}");
    assert_eq!(w.request(other)["state"], "active");
}

#[test]
fn given_user_eligible_for_no_ssh_role_when_keyboard_interactive_then_refusal_said_once() {
    // Regression: the ssh client retries keyboard-interactive, and the user read the same
    // refusal three times.
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .policy(POLICY.replace("ssh = true", "ssh = false").as_str())
        .sshd(Some(SSH_ACCOUNT_JIT))
        .ssh_keyboard_interactive("mode=ssh timeout=5 wait=20")
        .build();
    let r = jit_e2e::run(
        w.ssh_interactive("alice", "login", "OPS-11", "id -un"),
        "",
        Duration::from_secs(60),
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.stderr.matches("no role they may request does").count(),
        1,
        "{}",
        r.all()
    );
}

#[test]
fn given_ssh_session_on_a_terminal_when_its_grant_nears_its_end_then_the_login_is_warned_there() {
    // Regression: ssh sessions got no warning (their PAM_TTY is `ssh`, not the pty, which
    // sshd allocates after it opens the PAM session).
    let w = world();
    // Terminals as a Debian host makes them (see the sudo warning test).
    w.host_like_terminals();
    // 65 s: the one-minute warning is due 5 s in.
    let id = w.submit("alice", "login", "65s", "OPS-12")["id"]
        .as_u64()
        .unwrap();
    let mut login = w
        .ssh_terminal("alice", "sleep 40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = login.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("--reason TEXT") {
                break;
            }
        }
        seen
    });
    jit_e2e::wait_for("the warning", Duration::from_secs(45), || {
        reader.is_finished().then_some(())
    });
    let _ = login.kill();
    let _ = login.wait();
    let text = reader.join().unwrap();
    assert!(
        text.contains(&format!("jit: your grant {id} (login) ends in")),
        "{text:?}\n{}",
        w.jitd_log()
    );
}
