//! A right exists only while the grant that gave it exists, and only the policy's path
//! creates one: real sudo (every PAM service it uses), real jitctl and jitd, tried the way a
//! user and a local attacker would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, bin, run, wait_for};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// root's login shell on this host (what `sudo -i` runs), for the role that allows it.
fn root_shell() -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap()
        .to_string()
}

fn policy() -> String {
    format!(
        r#"
[[role]]
name = "shell"
commands = ["/bin/sh", "{root_shell}"]
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "ident"
commands = ["/usr/bin/id"]
requesters = ["alice", "carol"]
max_duration = "1h"

[[role]]
name = "as-svc"
commands = ["/usr/bin/id"]
run_as = "svc"
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "db"
commands = ["/usr/bin/true"]
requesters = ["alice", "carol"]
approvers = ["%approvers"]
approvals = 1
max_duration = "1h"

[[role]]
name = "db2"
commands = ["/usr/bin/false"]
requesters = ["alice"]
approvers = ["%approvers"]
approvals = 1
max_duration = "1h"
"#,
        root_shell = root_shell()
    )
}

fn builder() -> Builder {
    Builder::new()
        .user("alice", &[])
        .user("bob", &["approvers"])
        .user("carol", &[])
        .user("mallory", &[])
        .user("svc", &[])
        .policy(&policy())
}

fn id_of(v: &serde_json::Value) -> u64 {
    v["id"].as_u64().unwrap()
}

/// `sudo -n ARGS` as `user` in the background, its stdin kept open (a shell waits on it).
fn background_sudo(w: &World, user: &str, args: &[&str]) -> Child {
    let mut all = vec!["-n"];
    all.extend_from_slice(args);
    w.as_user(user, Path::new("/usr/bin/sudo"), &all)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `session-open` audit records: (grant, origin).
fn sessions_opened(w: &World) -> Vec<(u64, String)> {
    let r = w.jitctl("root", &["--json", "audit"]);
    assert!(r.ok(), "{}", r.all());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "session-open")
        .map(|a| {
            (
                a["request_id"].as_u64().unwrap(),
                a["origin"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn wait_for_session(w: &World) -> (u64, String) {
    wait_for(
        "the session to be registered",
        Duration::from_secs(20),
        || sessions_opened(w).into_iter().next(),
    )
}

fn wait_for_exit(child: &mut Child, what: &str, within: Duration) -> std::process::ExitStatus {
    wait_for(what, within, || child.try_wait().unwrap())
}

#[test]
fn given_shell_under_a_short_grant_and_a_longer_grant_of_another_role_when_the_short_one_ends_then_the_shell_ends()
 {
    // Regression: the session was bound to the user's longest grant, so a `sudo -s` root
    // shell opened under a short grant kept root until an unrelated grant ended.
    let w = builder().build();
    let long = id_of(&w.submit("alice", "ident", "10m", "T-1"));
    let short = id_of(&w.submit("alice", "shell", "15s", "T-2"));
    let mut shell = background_sudo(&w, "alice", &["-s"]);
    let (grant, origin) = wait_for_session(&w);
    assert_eq!(
        grant, short,
        "bound to the grant that authorised it ({origin})"
    );
    let status = wait_for_exit(
        &mut shell,
        "the shell to end with its grant",
        Duration::from_secs(90),
    );
    assert!(!status.success(), "ended by a signal: {status}");
    assert_eq!(
        w.request(long)["state"],
        "active",
        "the other grant runs on"
    );
    assert_eq!(w.request(short)["state"], "expired");
}

#[test]
fn given_sudo_i_login_shell_under_a_grant_when_revoked_then_it_ends() {
    // Regression: `sudo -i` runs through the PAM service sudo-i, which pam_jit was not in:
    // the login shell had no session record and survived its grant.
    let w = builder().build();
    let g = id_of(&w.submit("alice", "shell", "10m", "T-3"));
    let mut shell = background_sudo(&w, "alice", &["-i"]);
    let (grant, origin) = wait_for_session(&w);
    assert_eq!(grant, g);
    assert!(origin.contains("service=sudo-i"), "{origin}");
    let r = w.jitctl("root", &["revoke", &g.to_string(), "--reason", "done"]);
    assert!(r.ok(), "{}", r.all());
    let status = wait_for_exit(
        &mut shell,
        "the login shell to end",
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{status}");
}

#[test]
fn given_grant_as_another_user_when_sudo_u_then_the_session_is_bound_by_its_target() {
    let w = builder().build();
    let as_svc = id_of(&w.submit("alice", "as-svc", "5m", "T-4"));
    let _root_soon = id_of(&w.submit("alice", "ident", "1m", "T-5"));
    let _root_late = id_of(&w.submit("alice", "shell", "10m", "T-5"));
    let r = w.sudo_n("alice", &["-u", "svc", "/usr/bin/id", "-un"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "svc");
    // The grant that runs as svc: not the longest (it was bound to that), nor the one that
    // ends first of all (both run as root and could not have authorised it).
    let (grant, _) = wait_for_session(&w);
    assert_eq!(grant, as_svc);
}

#[test]
fn given_require_grant_and_a_static_rule_when_any_form_of_sudo_then_denied_without_a_grant() {
    // Regression: with require_grant, a user with a static rule got a root shell through
    // `sudo -i` (service sudo-i) while `sudo id` was refused.
    let w = builder()
        .pam_args("wait=0", "require_grant")
        .static_rule("carol ALL=(ALL) NOPASSWD: ALL")
        .build();
    let edited = w.path().join("edit-me");
    std::fs::write(&edited, "x\n").unwrap();
    let forms: Vec<Vec<&str>> = vec![
        vec!["/usr/bin/id", "-u"],
        vec!["-i", "/usr/bin/id", "-u"],
        vec!["--login", "/usr/bin/id", "-u"],
        vec!["-s", "/usr/bin/id", "-u"],
        vec!["-u", "svc", "/usr/bin/id", "-u"],
        vec!["-e", edited.to_str().unwrap()],
    ];
    for form in &forms {
        let r = w.sudo_n("carol", form);
        assert!(!r.ok(), "sudo {form:?} without a grant: {}", r.all());
        assert!(
            r.stderr.contains("has no active grant"),
            "sudo {form:?}: {}",
            r.all()
        );
    }
    // With a grant, the static rule works again (any grant unlocks it: `jitctl policy
    // check` warns about exactly this).
    w.submit("carol", "ident", "5m", "T-6");
    let r = w.sudo_n("carol", &["-i", "/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "0");
}

#[test]
fn given_sudoers_asking_for_root_or_target_password_when_no_grant_then_still_denied() {
    // Regression: with `Defaults rootpw` (or targetpw, openSUSE's default) sudo starts PAM
    // as root (or the target user), not as the invoking user. pam_jit took PAM_USER as the
    // grant holder: "root needs no grant" let carol's standing rule through require_grant,
    // and her grants were looked up as the target's.
    for option in ["rootpw", "targetpw"] {
        let w = builder()
            .pam_args("wait=0", "require_grant")
            .static_rule(&format!(
                "Defaults {option}\ncarol ALL=(ALL) NOPASSWD: /usr/bin/id\n"
            ))
            .build();
        for form in [
            vec!["/usr/bin/id", "-u"],
            vec!["-u", "svc", "/usr/bin/id", "-u"],
        ] {
            let r = w.sudo_n("carol", &form);
            assert!(!r.ok(), "{option} {form:?} without a grant: {}", r.all());
            assert!(
                r.stderr.contains("carol has no active grant"),
                "{option} {form:?}: {}",
                r.all()
            );
        }
        // Her own grant counts, whoever PAM was started as.
        w.submit("carol", "ident", "5m", "T-16");
        let r = w.sudo_n("carol", &["/usr/bin/id", "-u"]);
        assert!(r.ok(), "{option}: {}", r.all());
        assert_eq!(r.stdout.trim(), "0");
    }
}

#[test]
fn given_require_grant_when_root_runs_sudo_then_it_needs_no_grant() {
    // Regression: root's own sudo was denied unless root was in the exempt group.
    let w = builder().pam_args("wait=0", "require_grant").build();
    let r = w.sudo_n("root", &["/usr/bin/id", "-u"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "0");
    let r = w.sudo_n("carol", &["/usr/bin/id", "-u"]);
    assert!(!r.ok(), "{}", r.all());
}

#[test]
fn given_requests_mallory_may_not_see_when_she_names_them_then_each_answer_is_no_such_request() {
    // Regression: show said "no request 2", but release/cancel/extend answered "request 2
    // belongs to alice" and approve/deny/revoke "... is not an approver for role 'db'".
    let w = builder().build();
    let active = id_of(&w.submit("alice", "ident", "10m", "T-7"));
    let pending = id_of(&w.submit("alice", "db", "10m", "T-8"));
    let missing = 9999;
    let answer = |id: u64, cmd: &[&str]| {
        let id = id.to_string();
        let args: Vec<&str> = cmd
            .iter()
            .map(|a| if *a == "ID" { id.as_str() } else { a })
            .collect();
        let r = w.jitctl("mallory", &args);
        (
            r.code,
            r.stdout.replace(&id, "N"),
            r.stderr.replace(&id, "N"),
        )
    };
    let commands: [&[&str]; 8] = [
        &["show", "ID"],
        &["approve", "ID"],
        &["deny", "ID", "--reason", "no"],
        &["revoke", "ID", "--reason", "no"],
        &["release", "ID"],
        &["cancel", "ID"],
        &["extend", "ID", "--by", "5m", "--reason", "more"],
        &["review", "ack", "ID", "--comment", "seen"],
    ];
    for cmd in commands {
        let nothing = answer(missing, cmd);
        assert_eq!(nothing.0, 3, "{cmd:?}: {nothing:?}");
        for id in [active, pending] {
            assert_eq!(answer(id, cmd), nothing, "{cmd:?} on request {id}");
        }
    }
    assert_eq!(w.request(active)["state"], "active");
    assert_eq!(w.request(pending)["state"], "pending");
}

#[test]
fn given_invisible_characters_in_a_reason_when_requested_then_refused_and_nothing_stored() {
    // Regression: line/paragraph separators, tag characters, the soft hyphen and the
    // interlinear annotation characters passed the filter and were shown raw.
    let w = builder().build();
    for reason in [
        "T-9\u{2028}approved by bob",
        "T-9\u{2029}x",
        "T-9 \u{E0001}\u{E0041}",
        "T\u{00AD}-9",
        "T-9 \u{FFF9}x\u{FFFB}",
        "T-9\u{180E}",
        "T-9\u{206A}",
        // Trojan Source (CVE-2021-42574): bidi overrides and isolates reorder what is shown.
        "T-9 \u{202E}evob yb devorppa",
        "T-9 \u{2066}x\u{2069}",
        "T-9 \u{200F}x",
    ] {
        let r = w.jitctl("alice", &["request", "ident", "--reason", reason]);
        assert_eq!(r.code, 3, "{reason:?}: {}", r.all());
        assert!(r.stderr.contains("invisible"), "{reason:?}: {}", r.all());
    }
    let r = w.jitctl("root", &["--json", "list", "--all"]);
    assert_eq!(r.json().as_array().unwrap().len(), 0, "{}", r.all());
}

#[test]
fn given_approval_from_the_requesters_login_session_when_approving_as_an_approver_then_refused_and_the_login_uid_audited()
 {
    // Regression: a requester who could act as an approver approved their own request; the
    // audit showed only the approver.
    let w = builder().build();
    let id = id_of(&w.submit("alice", "db", "10m", "T-10")).to_string();
    let jitctl = bin("jitctl");
    let bus = w.bus.clone();
    let r = run(
        w.in_session_of("alice", "bob", &jitctl, &["--bus", &bus, "approve", &id]),
        "",
        Duration::from_secs(60),
    );
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("login session of its requester"),
        "{}",
        r.all()
    );
    assert_eq!(w.request(id.parse().unwrap())["state"], "pending");
    // bob from his own login session may.
    let r = run(
        w.in_session_of("bob", "bob", &jitctl, &["--bus", &bus, "approve", &id]),
        "",
        Duration::from_secs(60),
    );
    assert!(r.ok(), "{}", r.all());
    let audit = w.jitctl("root", &["--json", "audit"]).json();
    let approval = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "approve")
        .unwrap()
        .clone();
    let bob = w.uid_of("bob");
    assert!(
        approval["origin"]
            .as_str()
            .unwrap()
            .contains(&format!("loginuid={bob}")),
        "{approval}"
    );
}

#[test]
fn given_role_running_as_an_approver_when_the_requester_approves_through_sudo_u_then_refused() {
    // `sudo -u helper jitctl approve N` from alice's own session, with a grant that lets
    // alice run jitctl as helper, an approver.
    let jitctl = bin("jitctl");
    // A copy of jitctl under a path the command grammar accepts, wherever the build is.
    let dir = tempfile::Builder::new().prefix("jitctl").tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let jitctl_copy = dir.path().join("jitctl");
    std::fs::copy(&jitctl, &jitctl_copy).unwrap();
    let policy = format!(
        "{}\n[[role]]\nname = \"as-helper\"\ncommands = [\"{}\"]\nrun_as = \"helper\"\n\
         requesters = [\"alice\"]\nmax_duration = \"1h\"\n",
        policy(),
        jitctl_copy.display()
    );
    let w = builder()
        .user("helper", &["approvers"])
        .policy(&policy)
        .build();
    let checked = w.jitctl(
        "root",
        &["policy", "check", w.policy_path.to_str().unwrap()],
    );
    assert!(
        checked
            .stderr
            .contains("runs commands as 'helper', a member of %approvers"),
        "{}",
        checked.all()
    );
    w.submit("alice", "as-helper", "10m", "T-11");
    let id = id_of(&w.submit("alice", "db", "10m", "T-12")).to_string();
    let bus = w.bus.clone();
    let jc = jitctl_copy.to_str().unwrap();
    // alice runs `sudo -u helper jitctl approve`, from a session of `login`'s.
    let approve_from_session_of = |login: &str| {
        run(
            w.in_session_of(
                login,
                "alice",
                Path::new("/usr/bin/sudo"),
                &["-n", "-u", "helper", jc, "--bus", &bus, "approve", &id],
            ),
            "",
            Duration::from_secs(60),
        )
    };
    let r = approve_from_session_of("alice");
    assert_eq!(r.code, 3, "{}", r.all());
    // From alice's own session the login-uid check refuses first. The grant check on its
    // own: the same call from a session the login uid ties to helper (an approver, not the
    // requester), so only "alice can run commands as helper" stands in the way.
    let r = approve_from_session_of("helper");
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.all().contains("can run commands as helper"),
        "{}",
        r.all()
    );
    assert_eq!(
        w.request(id.parse().unwrap())["state"],
        "pending",
        "{}",
        r.all()
    );
}

#[test]
fn given_one_user_holding_many_waits_when_others_wait_then_they_are_served() {
    // Regression: 64 waiting slots shared by everyone; one requester holding them all made
    // every other user's `jitctl request --wait` and sudo prompt fail.
    let w = builder().build();
    let held = id_of(&w.submit("alice", "db", "10m", "T-13"));
    let calls = 100;
    let mut flood = w
        .as_user(
            "alice",
            &bin("bus_flood"),
            &[&w.bus, &held.to_string(), &calls.to_string(), "120"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = flood.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Once more calls were refused than a shared pool of 64 would leave, every slot alice
    // could ever get is taken.
    let mut refused = Vec::new();
    wait_for(
        "alice's extra waits to be refused",
        Duration::from_secs(60),
        || {
            while let Ok(l) = rx.try_recv() {
                if l.starts_with("refused") {
                    refused.push(l);
                }
            }
            (refused.len() > calls - 64).then_some(())
        },
    );
    assert!(
        refused[0].contains("the most one caller may"),
        "{refused:?}"
    );
    // carol waits through jitctl: she gets her slot (the wait runs out: exit 4, not 3).
    let r = w.jitctl(
        "carol",
        &[
            "request",
            "db",
            "--reason",
            "T-14",
            "--wait",
            "--timeout",
            "2s",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.all());
    // alice's own sudo prompt waits in a budget of its own (PAM), apart from her jitctl.
    let approver = std::thread::spawn({
        let bus = w.bus.clone();
        move || {
            let jitctl = bin("jitctl");
            wait_for("alice's db2 request", Duration::from_secs(60), || {
                let mut c = std::process::Command::new(&jitctl);
                c.args(["--bus", &bus, "--json", "list", "--pending"]);
                let r = run(c, "", Duration::from_secs(30));
                r.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["role"] == "db2")
                    .map(|x| x["id"].as_u64().unwrap())
            })
        }
    });
    let mut asking = w
        .as_user(
            "alice",
            Path::new("/usr/bin/sudo"),
            &["-S", "/usr/bin/false"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut i = asking.stdin.take().unwrap();
        // Her flood's request is pending: "n" asks for another role instead of waiting.
        writeln!(i, "{}\nn\ndb2\nT-15\n\n", jit_e2e::PASSWORD).unwrap();
    }
    let db2 = approver.join().unwrap();
    let r = w.jitctl("bob", &["approve", &db2.to_string()]);
    assert!(r.ok(), "{}", r.all());
    let status = wait_for_exit(&mut asking, "sudo to end", Duration::from_secs(60));
    let mut said = String::new();
    std::io::Read::read_to_string(&mut asking.stdout.take().unwrap(), &mut said).unwrap();
    std::io::Read::read_to_string(&mut asking.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("granted db2"), "{status}: {said}");
    let _ = flood.kill();
    let _ = flood.wait();
}

#[test]
fn given_a_grant_to_run_as_svc_when_sudo_names_uid_minus_one_or_another_target_then_refused() {
    // CVE-2019-14287: sudo ran `sudo -u#-1` as root for rules that allowed "any user but
    // root". jitd's rules name each target user and never negate, and sudo refuses every
    // other way to spell a target; sudoedit (CVE-2023-22809) is in no rule at all.
    let w = builder().build();
    w.submit("alice", "as-svc", "5m", "T-14287");
    let r = w.sudo_n("alice", &["-u", "svc", "/usr/bin/id", "-un"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.stdout.trim(), "svc");
    let target = w.path().join("target-file");
    std::fs::write(&target, "x\n").unwrap();
    let target = target.to_str().unwrap();
    for args in [
        vec!["-u#-1", "/usr/bin/id", "-u"],
        vec!["-u#4294967295", "/usr/bin/id", "-u"],
        vec!["-u#0", "/usr/bin/id", "-u"],
        vec!["-u", "root", "/usr/bin/id", "-u"],
        vec!["/usr/bin/id", "-u"],
        vec!["-g", "root", "/usr/bin/id", "-u"],
        vec!["-u", "svc", "-g", "root", "/usr/bin/id", "-u"],
        vec!["-u", "svc", "-e", target],
        vec!["-u", "svc", "/bin/sh", "-c", "id"],
    ] {
        let r = w.sudo_n("alice", &args);
        assert!(!r.ok(), "sudo {args:?} ran: {}", r.all());
        assert!(
            !r.stdout.contains("0\n") && r.stdout.trim() != "0",
            "{}",
            r.all()
        );
    }
    let mut edit = w.as_user(
        "alice",
        Path::new("/usr/bin/env"),
        &[
            "SUDO_EDITOR=/usr/bin/true -- /etc/shadow",
            "/usr/bin/sudo",
            "-n",
            "-u",
            "svc",
            "-e",
            target,
        ],
    );
    edit.stdin(Stdio::null());
    let r = run(edit, "", Duration::from_secs(60));
    assert!(!r.ok(), "sudoedit ran: {}", r.all());
}

#[test]
fn given_a_caller_gone_before_jitd_asks_who_it_was_when_it_revokes_then_nothing_happens() {
    // polkit's CVE-2021-3560: a caller that disconnected before the service asked the bus
    // for its uid was taken for root. Here every caller is gone before jitd asks: jitd is
    // stopped (SIGSTOP) while 40 callers each send `Revoke` of alice's grant and exit, then
    // resumed. Each call must be refused (jitd asks the bus, which no longer knows the
    // sender, and logs it); none may act as anyone.
    let w = builder().build();
    let id = id_of(&w.submit("alice", "ident", "10m", "T-3560"));
    let jitd = nix::unistd::Pid::from_raw(i32::try_from(w.jitd_pid().unwrap()).unwrap());
    nix::sys::signal::kill(jitd, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let callers = 40;
    let sent: Vec<jit_e2e::Run> = (0..callers)
        .map(|_| {
            run(
                w.as_user(
                    "mallory",
                    &bin("bus_probe"),
                    &["vanish", &w.bus, &id.to_string()],
                ),
                "",
                Duration::from_secs(30),
            )
        })
        .collect();
    nix::sys::signal::kill(jitd, nix::sys::signal::Signal::SIGCONT).unwrap();
    for r in &sent {
        assert!(r.ok(), "{}", r.all());
    }
    let gone = || {
        w.jitd_log()
            .lines()
            .filter(|l| l.contains("its sender is gone"))
            .count()
    };
    wait_for(
        "every vanished call to be refused",
        Duration::from_secs(60),
        || (gone() >= callers).then_some(()),
    );
    assert_eq!(w.request(id)["state"], "active", "{}", w.jitd_log());
    assert!(jit_e2e::has_rule(id));
    assert!(!w.audit_actions().iter().any(|a| a == "revoke"));
}

#[test]
fn given_a_hostile_environment_when_sudo_runs_pam_jit_then_it_reads_nothing_from_it() {
    // CVE-2021-4034 (pkexec) trusted its environment inside a setuid program. pam_jit runs
    // inside sudo, with the invoking user's environment: it takes where jitd is from the
    // PAM file only. Pointed elsewhere by every variable it could read, it still asks the
    // real jitd: the grant counts, and without one the gate still closes.
    let w = builder()
        .pam_args("wait=0", "require_grant")
        .pam_socket_arg("none")
        .build();
    let hostile = [
        "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus",
        "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus",
        "DBUS_STARTER_ADDRESS=unix:path=/nonexistent/bus",
        "DBUS_STARTER_BUS_TYPE=session",
        "XDG_RUNTIME_DIR=/nonexistent",
        "LD_PRELOAD=/nonexistent/evil.so",
        "GCONV_PATH=/nonexistent",
        "RUST_LOG=trace",
    ];
    let sudo = |user: &str| {
        let mut args: Vec<&str> = hostile.to_vec();
        args.extend(["/usr/bin/sudo", "-n", "/usr/bin/id", "-u"]);
        run(
            w.as_user(user, Path::new("/usr/bin/env"), &args),
            "",
            Duration::from_secs(60),
        )
    };
    let r = sudo("alice");
    assert!(!r.ok(), "sudo without a grant: {}", r.all());
    w.submit("alice", "ident", "10m", "T-4034");
    let r = sudo("alice");
    assert!(r.ok(), "pam_jit followed the environment: {}", r.all());
    assert_eq!(r.stdout.trim(), "0");
}
