//! ssh logins gated on grants: real sshd on 127.0.0.1 with pam_jit (`mode=ssh`) in its
//! account stack, real ssh client with keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, SSH_ACCOUNT_JIT, World};
use nix::sys::signal::Signal;

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
    let g = w.jitctl("alice", &["--json", "request", "login", "--reason", "T-2"]);
    assert!(g.ok(), "{}", g.all());
    let r = w.ssh("alice", "id -un");
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "alice");
    let id = g.json()["id"].as_u64().unwrap().to_string();
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
    let g = w.jitctl("alice", &["--json", "request", "login", "--reason", "T-4"]);
    let id = g.json()["id"].as_u64().unwrap().to_string();
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
