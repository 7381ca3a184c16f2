//! pam_jit's short path: jitd's root-only PAM socket beside the bus. The two channels give
//! the same answers; only root is served; pam_jit believes only a socket root serves; the
//! bus takes over when the socket is absent; one PAM transaction is one connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, PASSWORD, World, bin, run, wait_for};
use jit_proto::wire::{PamAnswer, PamCall};
use jit_proto::{PamOrigin, PamRequest};
use nix::sys::signal::Signal;
use pam_jit::bus::BusClient;
use pam_jit::socket::{Failure, SocketClient};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "ident"
commands = ["/usr/bin/id"]
requesters = ["alice", "carol"]
max_duration = "1h"
reason_pattern = "^OPS-[0-9]+"

[[role]]
name = "db"
commands = ["/usr/bin/id"]
requesters = ["carol"]
approvers = ["bob"]
max_duration = "1h"
ssh = true
"#;

fn world(b: Builder) -> World {
    b.user("alice", &[])
        .user("bob", &[])
        .user("carol", &[])
        .user("mallory", &[])
        .policy(POLICY)
        .pam_args("wait=0", "require_grant")
        .build()
}

fn origin() -> PamOrigin {
    PamOrigin {
        service: "sudo".into(),
        tty: "/dev/pts/9".into(),
        rhost: String::new(),
    }
}

/// The answer as text: equal texts, equal answers (errors by name and message).
fn shown(r: Result<PamAnswer, pam_jit::logic::Error>) -> String {
    format!("{r:?}")
}

#[test]
fn given_the_same_calls_on_the_pam_socket_and_on_the_bus_then_the_answers_are_the_same() {
    let w = world(Builder::new());
    let granted = w.submit("alice", "ident", "10m", "OPS-1 look");
    let pending = w.submit("carol", "db", "10m", "needs bob");
    let timeout = Duration::from_secs(5);
    let socket = SocketClient::new(w.pam_socket.clone(), timeout, None);
    let bus = BusClient {
        address: w.bus.clone(),
        timeout,
        library: Some(bin("libpam_jit_bus.so")),
    };
    let request = |user: &str, role: &str, reason: &str| PamCall::Request {
        request: PamRequest {
            user: user.into(),
            role: role.into(),
            duration_secs: 600,
            reason: reason.into(),
            origin: origin(),
        },
    };
    let calls = vec![
        PamCall::Check {
            user: "alice".into(),
            ssh: false,
        },
        PamCall::Check {
            user: "alice".into(),
            ssh: true,
        },
        PamCall::Check {
            user: "carol".into(),
            ssh: false,
        },
        PamCall::Check {
            user: "no-such-user".into(),
            ssh: false,
        },
        PamCall::Check {
            user: "../etc".into(),
            ssh: false,
        },
        PamCall::Roles {
            user: "carol".into(),
        },
        PamCall::Roles {
            user: "no-such-user".into(),
        },
        PamCall::Pending {
            user: "carol".into(),
        },
        PamCall::Wait {
            user: "carol".into(),
            id: pending["id"].as_u64().unwrap(),
            timeout_secs: 0,
        },
        PamCall::Wait {
            user: "alice".into(),
            id: pending["id"].as_u64().unwrap(),
            timeout_secs: 0,
        },
        PamCall::CheckReason {
            role: "ident".into(),
            reason: "OPS-2 fine".into(),
        },
        PamCall::CheckReason {
            role: "ident".into(),
            reason: "because".into(),
        },
        PamCall::CheckReason {
            role: "nope".into(),
            reason: "OPS-2".into(),
        },
        request("alice", "db", "OPS-3 not hers"),
        request("alice", "ident", "bad reason"),
        request("alice", "ident", "OPS-4 again"),
        request("carol", "nope", "OPS-5"),
        PamCall::OpenSession {
            session: jit_proto::SessionOpen {
                user: "alice".into(),
                target: "root".into(),
                ssh: false,
                pid: 1,
                origin: origin(),
            },
        },
    ];
    for call in calls {
        let on_socket = socket.call(&call, Duration::ZERO).map_err(|f| match f {
            Failure::Error(e) => e,
            Failure::Absent => panic!("the socket is served"),
        });
        let on_bus = bus.call(&call, Duration::ZERO);
        assert_eq!(shown(on_socket), shown(on_bus), "{call:?}");
    }
    // A request that succeeds: one on each channel, the same but for its id and time.
    let ok = request("carol", "ident", "OPS-6 both");
    let a = socket.call(&ok, Duration::ZERO).ok().unwrap();
    let ok = request("alice", "db", "x");
    let b = bus.call(&ok, Duration::ZERO).unwrap_err();
    assert!(matches!(a, PamAnswer::Request(ref r) if r.role == "ident" && r.user == "carol"));
    assert!(format!("{b:?}").contains("may not request"), "{b:?}");
    assert!(granted["state"] == "active");
}

#[test]
fn given_a_peer_other_than_root_when_it_calls_then_it_is_refused_and_nothing_changes() {
    let w = world(Builder::new());
    // Only a mistake (or an attacker who got this far) opens the socket to others: jitd still
    // refuses, from the kernel's word about the peer.
    std::fs::set_permissions(&w.pam_socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let call = PamCall::Request {
        request: PamRequest {
            user: "carol".into(),
            role: "ident".into(),
            duration_secs: 600,
            reason: "OPS-7 me".into(),
            origin: origin(),
        },
    };
    let json =
        String::from_utf8(call.encode().unwrap()[..].split_last().unwrap().1.to_vec()).unwrap();
    let sock = w.pam_socket.display().to_string();
    let r = run(
        w.as_user("carol", &bin("socket_probe"), &["call", &sock, &json]),
        "",
        Duration::from_secs(30),
    );
    assert!(r.ok(), "{}", r.all());
    assert!(
        r.stdout
            .contains("\"error\":\"org.jit.Jitd.Error.NotAuthorized\""),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("for root (pam_jit) only"), "{}", r.all());
    let list = w.jitctl("root", &["--json", "list", "--all"]);
    assert_eq!(list.json().as_array().unwrap().len(), 0, "{}", list.all());
    assert!(w.sudoers_files().is_empty());
    let uid = w.uid_of("carol");
    assert!(
        w.jitd_log().contains(&format!("uid {uid} (pid")),
        "{}",
        w.jitd_log()
    );
    // Mode 0600 as jitd made it: others cannot even connect.
    std::fs::set_permissions(&w.pam_socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = run(
        w.as_user("carol", &bin("socket_probe"), &["call", &sock, &json]),
        "",
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 2, "{}", r.all());
}

#[test]
fn given_an_impostor_serving_the_socket_when_sudo_asks_then_pam_jit_believes_nothing() {
    // mallory serves a socket of her own where pam_jit looks (a PAM file pointing into a
    // directory she can write), answering every call with "active grant". alice has a
    // standing rule and no grant: under require_grant only pam_jit's word stands between.
    let dir = tempfile::Builder::new()
        .prefix("jit-impostor")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let fake = dir.path().join("pam.socket");
    let w = world(
        Builder::new()
            .pam_socket_arg(fake.to_str().unwrap())
            .static_rule("alice ALL=(root) NOPASSWD: /usr/bin/id\n"),
    );
    let lie = r#"{"parameters":{"check":{"active":true,"request_id":1,"role":"ident","not_after":99999999999}}}"#;
    // Run as mallory directly (no runuser in between), so its pid is the one to stop.
    let mallory = w.uid_of("mallory");
    let mut impostor = std::process::Command::new(bin("socket_probe"))
        .args(["serve", fake.to_str().unwrap(), lie])
        .uid(mallory)
        .gid(mallory)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the impostor's socket", Duration::from_secs(10), || {
        fake.exists().then_some(())
    });
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(impostor.id()).unwrap()),
        Signal::SIGKILL,
    );
    let _ = impostor.wait();
    assert!(!r.ok(), "pam_jit believed the impostor: {}", r.all());
    assert!(r.stdout.is_empty(), "{}", r.all());
}

#[test]
fn given_no_pam_socket_when_sudo_asks_then_the_bus_serves_the_whole_flow() {
    // A path nobody serves (an older jitd, a jitd started without it): the bus takes over.
    let w = world(Builder::new().pam_socket_arg("/nonexistent-jit/pam.socket"));
    let said = w
        .sudo(
            "alice",
            &[PASSWORD, "ident", "OPS-8 via the bus", "10m"],
            &["/usr/bin/id", "-u"],
        )
        .all();
    assert!(said.contains("granted ident"), "{said}");
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "0");
}

#[test]
fn given_jitd_killed_leaving_its_socket_when_sudo_asks_then_the_bus_starts_jitd_and_answers() {
    let mut w = world(Builder::new().bus_activation());
    w.submit("alice", "ident", "10m", "OPS-9 before the crash");
    w.stop_jitd(Signal::SIGKILL);
    assert!(w.pam_socket.exists(), "a killed jitd leaves its socket");
    // The stale socket refuses connections: pam_jit goes to the bus, which starts jitd.
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    let pid_file = w.path().join("jitd.pid");
    let pid: i32 = wait_for("the activated jitd's pid", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    // The new jitd replaced the stale socket and serves it.
    let again = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(again.ok(), "{}", again.all());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
    wait_for(
        "the activated jitd to stop",
        Duration::from_secs(20),
        || (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()),
    );
    assert!(
        !w.pam_socket.exists(),
        "a jitd stopped by SIGTERM removes its socket"
    );
}

#[test]
fn given_sudo_with_account_and_session_when_run_then_one_connection_serves_both() {
    let mut w = world(Builder::new().without_jitd());
    w.jitd_env
        .push(("JITD_LOG".into(), "info,jitd::pam_socket=debug".into()));
    w.start_jitd();
    w.submit("alice", "ident", "10m", "OPS-10 count");
    let before = w.jitd_log().matches("PAM socket: connection from").count();
    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    let log = w.jitd_log();
    let connections = log.matches("PAM socket: connection from").count() - before;
    assert_eq!(connections, 1, "{log}");
    // Both calls came on it: the check, then the session.
    let calls: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.split("PAM socket: call ")
                .nth(1)?
                .split_whitespace()
                .next()
        })
        .collect();
    assert!(
        calls.ends_with(&["Check", "OpenSession"]),
        "{calls:?}\n{log}"
    );
}

#[test]
fn given_a_second_jitd_on_the_same_socket_when_it_starts_then_it_refuses() {
    let w = world(Builder::new());
    let other = w.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let rules = other.join("rules");
    std::fs::create_dir(&rules).unwrap();
    let mut c = std::process::Command::new(bin("jitd"));
    c.arg("--config")
        .arg(&w.policy_path)
        .arg("--state-dir")
        .arg(other.join("state"))
        .arg("--sudoers-dir")
        .arg(&rules)
        .arg("--bus")
        .arg(&w.bus)
        .arg("--pam-socket")
        .arg(&w.pam_socket);
    let r = run(c, "", Duration::from_secs(30));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("another jitd serves the PAM socket"),
        "{}",
        r.all()
    );
    // The first still serves it.
    w.submit("alice", "ident", "10m", "OPS-11 still");
    assert!(w.sudo_n("alice", &["/usr/bin/id", "-u"]).ok());
}
