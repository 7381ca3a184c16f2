//! Notifications end to end: `jitctl watch` over the real bus (and what a raw bus monitor
//! of another user sees), notes on real terminals, and the shipped notifier programs
//! delivering to a real SMTP server (aiosmtpd, through msmtp as sendmail) and a real HTTP
//! receiver on 127.0.0.1, from an outbox that survives `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, PASSWORD, Pty, World, bin, wait_for};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(path)
        .display()
        .to_string()
}

/// The roles of these tests, then `extra` (notifiers).
fn policy(extra: &str) -> String {
    format!(
        r#"
[[role]]
name = "db-admin"
commands = ["/usr/bin/id -g"]
requesters = ["alice"]
approvers = ["bob", "carol"]
approvals = 1
max_duration = "2h"
pending_timeout = "30m"
reason_pattern = '^(?P<ticket>OPS-[0-9]+)\b'
notify_terminals = true

[[role]]
name = "web-restart"
commands = ["/usr/bin/id -u"]
requesters = ["alice"]
max_duration = "1h"
reason_pattern = '^(?P<ticket>OPS-[0-9]+)\b'
{extra}
"#
    )
}

fn world(extra: &str) -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .user("carol", &[])
        .user("mallory", &[])
        .user(jit_proto::NOTIFIER_USER, &[])
        .policy(&policy(extra))
        .build()
}

/// `busctl call` of the notifier interface as `user`: METHOD SIGNATURE ARGS...
fn notify_call(w: &World, user: &str, call: &[&str]) -> jit_e2e::Run {
    let mut c = w.as_user(user, Path::new("/usr/bin/busctl"), &[]);
    c.arg(format!("--address={}", w.bus)).args([
        "call",
        "org.jit.Jitd",
        "/org/jit/Jitd",
        "org.jit.Jitd.Notify1",
    ]);
    c.args(call);
    jit_e2e::run(c, "", LONG)
}

/// The notifier agent, as its own user, once it takes deliveries.
fn agent(w: &World) -> Follower {
    let a = Follower::start(w.as_user(
        jit_proto::NOTIFIER_USER,
        &bin("jit-notifyd"),
        &["--bus", &w.bus],
    ));
    wait_for("jit-notifyd to take deliveries", LONG, || {
        a.err()
            .contains("taking deliveries from jitd")
            .then_some(())
    });
    a
}

/// A program of this test that runs until dropped, its output collected as it comes.
struct Follower {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut from = from;
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

impl Follower {
    fn start(mut cmd: Command) -> Follower {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Follower { child, out, err }
    }

    /// `jitctl watch` as `user`, once it is subscribed.
    fn watch(w: &World, user: &str, json: bool) -> Follower {
        let mut args = vec!["--bus", w.bus.as_str()];
        if json {
            args.push("--json");
        }
        args.push("watch");
        let f = Follower::start(w.as_user(user, &bin("jitctl"), &args));
        wait_for(&format!("{user}'s watch to start"), LONG, || {
            f.err().contains("jitctl: watching").then_some(())
        });
        f
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn expect(&self, text: &str) {
        wait_for(&format!("{text:?} in the output"), LONG, || {
            self.out().contains(text).then_some(())
        });
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receiver from tests/helpers (HTTP or SMTP) on 127.0.0.1, stopped when dropped. Started
/// before the world, whose policy names its port.
struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sink {
    fn start(helper: &str, extra: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let out = dir.path().join("received");
        let child = Command::new("/usr/bin/python3")
            .arg(repo(&format!("tests/helpers/{helper}")))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port = wait_for(&format!("the {helper} receiver to listen"), LONG, || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
        });
        Sink {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    /// An HTTP receiver that answers 500 to the first `fail_first` requests.
    fn http(fail_first: u32) -> Sink {
        Sink::start("http_sink.py", &["--fail", &fail_first.to_string()])
    }

    fn smtp() -> Sink {
        Sink::start("smtp_sink.py", &[])
    }

    /// The requests the HTTP receiver got, in order.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The messages the SMTP receiver got, in order.
    fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `text` on the terminal; says what jitd logged if it never comes.
fn expect_on(w: &World, p: &Pty, text: &str) {
    if wait_until(|| p.said().contains(text)) {
        return;
    }
    panic!(
        "{text:?} never came on the terminal; it said:\n{}\njitd:\n{}",
        p.said(),
        w.jitd_log()
    );
}

fn wait_until(f: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn submit_pending(w: &World, reason: &str) -> u64 {
    w.submit("alice", "db-admin", "10m", reason)["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn given_a_request_at_the_sudo_prompt_when_watched_then_approvers_see_it_at_once_and_no_one_else_does()
 {
    let w = world("");
    let bob = Follower::watch(&w, "bob", false);
    let bob_json = Follower::watch(&w, "bob", true);
    let alice = Follower::watch(&w, "alice", false);
    let mallory = Follower::watch(&w, "mallory", true);
    // mallory's raw look at the bus: dbus-monitor (BecomeMonitor, or eavesdropping match
    // rules when that is refused), with no help from jitctl.
    let monitor = Follower::start(w.as_user(
        "mallory",
        Path::new("/usr/bin/dbus-monitor"),
        &["--address", &w.bus],
    ));
    wait_for("mallory's monitor to start", LONG, || {
        (monitor.out().contains("NameAcquired") || monitor.err().contains("Failed")).then_some(())
    });

    // alice asks at the sudo prompt and waits there for the decision.
    let said = std::thread::scope(|s| {
        let sudo = s.spawn(|| {
            w.sudo(
                "alice",
                &[
                    PASSWORD,
                    "db-admin",
                    "OPS-77 vacuum the orders table",
                    "10m",
                ],
                &["/usr/bin/id", "-g"],
            )
        });
        bob.expect("submitted: request ");
        let line = bob.out();
        let id: u64 = line
            .split("request ")
            .nth(1)
            .and_then(|t| t.split(':').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        for needle in [
            "alice asks for role db-admin for 10m on ",
            "\"OPS-77 vacuum the orders table\"",
            "decide by ",
            &format!("jitctl approve {id}"),
            &format!("jitctl deny {id} --reason TEXT"),
        ] {
            assert!(line.contains(needle), "{needle:?} in {line:?}");
        }
        bob_json.expect("\"event\":\"submitted\"");
        let doc: serde_json::Value =
            serde_json::from_str(bob_json.out().lines().next().unwrap()).unwrap();
        assert_eq!(doc["schema"], "jit.event/1");
        assert_eq!(doc["request"]["id"], id);
        assert_eq!(doc["request"]["user"], "alice");
        assert_eq!(doc["request"]["service"], "sudo");
        assert_eq!(doc["request"]["ticket"], "OPS-77");
        assert_eq!(doc["request"]["duration_secs"], 600);
        alice.expect(&format!("submitted: request {id}"));

        let approve = w.jitctl("bob", &["approve", &id.to_string()]);
        assert!(approve.ok(), "{}", approve.all());
        alice.expect(&format!("request {id} (alice, role db-admin for 10m on "));
        alice.expect("approved by bob");
        alice.expect(&format!("granted: grant {id}: alice holds role db-admin"));
        bob.expect(&format!("granted: grant {id}"));
        (sudo.join().unwrap(), id)
    });
    let (sudo, id) = said;
    assert!(
        sudo.all()
            .contains(&format!("request {id}: granted db-admin")),
        "{}",
        sudo.all()
    );
    // What bob saw arrived as a signal addressed to him: a later event reached mallory's
    // connection only if jitd sent her one, and it never did.
    let release = w.jitctl("alice", &["release", &id.to_string()]);
    assert!(release.ok(), "{}", release.all());
    bob.expect(&format!("ended: grant {id}"));
    alice.expect(&format!("ended: grant {id}"));
    assert_eq!(
        mallory.out(),
        "",
        "mallory may not see alice's request: {}",
        mallory.out()
    );
    let raw = monitor.out();
    assert!(
        !raw.contains("OPS-77") && !raw.contains("member=Event"),
        "mallory's bus monitor saw jitd's events:\n{raw}"
    );
    // A new connection of mallory's after the fact learns nothing either.
    assert!(!w.jitctl("mallory", &["show", &id.to_string()]).ok());
}

#[test]
fn given_approvers_logged_in_when_a_request_comes_then_their_terminals_say_so_unless_mesg_n() {
    let w = world("");
    w.host_like_terminals();
    let bob = Pty::spawn(&w, "bob", "echo ready; sleep 120");
    let carol = Pty::spawn(&w, "carol", "mesg n; echo ready; sleep 120");
    let mallory = Pty::spawn(&w, "mallory", "echo ready; sleep 120");
    let alice = Pty::spawn(&w, "alice", "echo ready; sleep 120");
    for p in [&bob, &carol, &mallory, &alice] {
        p.expect("ready", LONG);
    }
    let id = submit_pending(&w, "OPS-5 rotate keys");
    expect_on(
        &w,
        &bob,
        &format!("jit: request {id}: alice asks for role db-admin"),
    );
    expect_on(&w, &bob, &format!("jitctl approve {id}"));
    // The decision: to the requester, who is not waiting at a prompt for it.
    let deny = w.jitctl("bob", &["deny", &id.to_string(), "--reason", "not today"]);
    assert!(deny.ok(), "{}", deny.all());
    expect_on(&w, &alice, "denied by bob: \"not today\"");
    // By then every note of the request was written: none went to a non-approver, to a
    // terminal with messages off, or to the requester's own terminal as a new request.
    assert!(!carol.said().contains("jit:"), "mesg n: {}", carol.said());
    assert!(!mallory.said().contains("jit:"), "{}", mallory.said());
    assert!(!alice.said().contains("asks for"), "{}", alice.said());
    assert!(!bob.said().contains("denied"), "{}", bob.said());
}

#[test]
fn given_the_requester_waits_at_a_prompt_when_decided_then_the_note_is_not_written_twice() {
    let w = world("");
    w.host_like_terminals();
    let mut alice = Pty::spawn(
        &w,
        "alice",
        &format!(
            "{} --bus {} request db-admin --for 10m --reason 'OPS-6 x' --wait \
             --timeout 60s; echo done; sleep 60",
            bin("jitctl").display(),
            w.bus
        ),
    );
    let id = wait_for("alice's pending request", LONG, || {
        w.jitctl("bob", &["--json", "list", "--pending"]).json()[0]["id"].as_u64()
    });
    let approve = w.jitctl("bob", &["approve", &id.to_string()]);
    assert!(approve.ok(), "{}", approve.all());
    alice.expect("done", LONG);
    assert!(
        !alice.said().contains("approved by bob"),
        "the prompt says it; the note must not: {}",
        alice.said()
    );
    alice.ctrl_c();
}

#[test]
fn given_the_mail_notifier_when_a_request_waits_then_the_approvers_get_a_mail_through_sendmail() {
    let smtp = Sink::smtp();
    let extra = format!(
        r#"
[[notifier]]
name = "mail"
command = ["{}", "--to", "approvers@example.test", "--from", "jitd@example.test", "--",
           "/usr/bin/msmtp", "--host=127.0.0.1", "--port={}", "--from=jitd@example.test"]
events = ["submitted", "decided"]
roles = ["db-admin"]
"#,
        repo("conf/notifiers/jit-notify-mail"),
        smtp.port
    );
    let w = world(&extra);
    let _agent = agent(&w);
    let id = submit_pending(&w, "OPS-31 failover drill");
    let mail = wait_for("the mail", LONG, || smtp.mails().into_iter().next());
    for needle in [
        "X-Envelope-To: approvers@example.test",
        &format!("Subject: [jit] submitted: request {id} (alice, db-admin)"),
        "alice asks for role db-admin for 10m on ",
        "OPS-31 failover drill",
        "Ticket:       OPS-31",
        "Decide by:",
        &format!("jitctl approve {id}"),
        &format!("jitctl deny {id} --reason TEXT"),
    ] {
        assert!(mail.contains(needle), "{needle:?} in:\n{mail}");
    }
    let deny = w.jitctl("bob", &["deny", &id.to_string(), "--reason", "drill moved"]);
    assert!(deny.ok(), "{}", deny.all());
    let mails = wait_for("the decision's mail", LONG, || {
        let m = smtp.mails();
        (m.len() >= 2).then_some(m)
    });
    assert!(
        mails[1].contains("denied by bob: \"drill moved\""),
        "{}",
        mails[1]
    );
    // A self-service role is not this notifier's: nothing more arrives for it.
    w.submit("alice", "web-restart", "5m", "OPS-32 restart");
    let audit = w.jitctl("root", &["audit"]).stdout;
    assert_eq!(audit.matches("notifier=mail").count(), 2, "{audit}");
    assert!(audit.contains("notifier=mail event=submitted"), "{audit}");
    assert_eq!(smtp.mails().len(), 2);
}

fn webhook(sink: &Sink, events: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "chat"
command = ["{}", "--url", "http://127.0.0.1:{}/hooks/jit", "--format", "slack"]
events = {events}
max_attempts = 4
"#,
        repo("conf/notifiers/jit-notify-webhook"),
        sink.port
    )
}

#[test]
fn given_a_webhook_that_fails_at_first_when_notified_then_retried_with_backoff_shown_in_status_and_delivered()
 {
    let http = Sink::http(2);
    let w = world(&webhook(&http, r#"["submitted"]"#));
    let _agent = agent(&w);
    // A requester's text never becomes a mention or a link in the channel (found in a
    // trial): it arrives as code, with Slack's control characters as entities.
    let id = submit_pending(
        &w,
        "OPS-40 patch <!channel> [approve](https://evil.example)",
    );
    // The first attempt fails: jitctl status says so while it retries.
    let status = wait_for("the failure in jitctl status", LONG, || {
        let s = w.jitctl("root", &["status"]);
        s.stdout.contains("notifier 'chat' is failing").then_some(s)
    });
    assert!(
        status
            .stdout
            .contains("exit status 1: the webhook answered 500"),
        "{}",
        status.all()
    );
    // 5 s, then 10 s later: the third attempt gets through.
    let got = wait_for("the third attempt", Duration::from_secs(60), || {
        let r = http.requests();
        (r.len() >= 3).then_some(r)
    });
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        assert_eq!(r["path"], "/hooks/jit");
        assert_eq!(r["headers"]["Content-Type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("request {id}: alice asks for role db-admin")),
            "{text}"
        );
        assert!(text.contains(&format!("jitctl approve {id}")), "{text}");
        assert!(
            text.contains("`OPS-40 patch &lt;!channel&gt; [approve](https://evil.example)`"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"), "{text}");
    }
    // The agent reports a delivery after the receiver has answered: waited for.
    let audit = wait_for("the delivery's report", LONG, || {
        let a = w.jitctl("root", &["audit"]).stdout;
        a.contains("attempt=3 delivered").then_some(a)
    });
    assert!(
        audit.contains("attempt=1 failed: exit status 1: the webhook answered 500"),
        "{audit}"
    );
    // Delivered: status is clean again.
    let status = wait_for("a clean status", LONG, || {
        let s = w.jitctl("root", &["status"]);
        (!s.stdout.contains("is failing")).then_some(s)
    });
    assert!(status.stdout.contains("health: ok"), "{}", status.all());
    // Only root and approvers see notifier trouble.
    assert!(!w.jitctl("mallory", &["status"]).stdout.contains("notifier"));
}

#[test]
fn given_jitd_killed_between_the_decision_and_its_notification_when_restarted_then_the_outbox_delivers()
 {
    let http = Sink::http(0);
    let mut w = world(&webhook(&http, r#"["decided", "granted"]"#));
    // The agent keeps running through jitd's crash and restart: it connects again.
    let _agent = agent(&w);
    let id = submit_pending(&w, "OPS-41 resize the volume");
    // The first commit of the restarted jitd is the approval: jitd dies right after it
    // (kill -9 there), before anything was delivered.
    w.stop_jitd(Signal::SIGTERM);
    w.jitd_env = vec![("JITD_CRASH_AT".into(), "after-commit:1".into())];
    w.start_jitd();
    let approve = w.jitctl("bob", &["approve", &id.to_string()]);
    wait_for("jitd to die at the crash point", LONG, || w.jitd_exited());
    assert!(
        http.requests().is_empty(),
        "delivered before the crash: {:?} ({})",
        http.requests(),
        approve.all()
    );
    w.stop_jitd(Signal::SIGKILL);
    w.jitd_env.clear();
    w.start_jitd();
    let got = wait_for("the deliveries after the restart", LONG, || {
        let r = http.requests();
        (r.len() >= 2).then_some(r)
    });
    let texts: Vec<String> = got
        .iter()
        .map(|r| {
            let body: serde_json::Value =
                serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        texts[0].contains(&format!("request {id} (alice, role db-admin for 10m on ")),
        "{texts:?}"
    );
    assert!(texts[0].contains("approved by bob"), "{texts:?}");
    assert!(
        texts[1].contains(&format!("grant {id}: alice holds role db-admin")),
        "{texts:?}"
    );
    // Exactly once each, and the state agrees: the approval was committed.
    assert_eq!(w.request(id)["state"], "active");
    let audit = w.jitctl("root", &["audit"]).stdout;
    assert_eq!(audit.matches("notifier=chat").count(), 2, "{audit}");
}

#[test]
fn given_a_ticket_in_the_reason_when_a_grant_lives_and_ends_then_the_ticket_follows_it() {
    let http = Sink::start("http_sink.py", &["--reject", "OPS-404"]);
    let extra = format!(
        r#"
[[notifier]]
name = "itsm"
command = ["{}", "--url", "http://127.0.0.1:{}/api/v2"]
events = ["granted", "extended", "ended"]
"#,
        repo("conf/notifiers/jit-notify-ticket"),
        http.port
    );
    let w = world(&extra);
    let _agent = agent(&w);
    let g = w.submit("alice", "web-restart", "5m", "OPS-88 restart after deploy");
    let id = g["id"].as_u64().unwrap();
    wait_for("the grant's ticket update", LONG, || {
        (!http.requests().is_empty()).then_some(())
    });
    let release = w.jitctl("alice", &["release", &id.to_string()]);
    assert!(release.ok(), "{}", release.all());
    let got = wait_for("the end's ticket update", LONG, || {
        let r = http.requests();
        (r.len() >= 2).then_some(r)
    });
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| {
            assert_eq!(r["path"], "/api/v2/tickets/OPS-88/events", "{r}");
            serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(bodies[0]["ticket"], "OPS-88");
    assert_eq!(bodies[0]["event"], "granted");
    assert_eq!(bodies[0]["request_id"], id);
    let note = bodies[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("access granted: alice as web-restart on "),
        "{note}"
    );
    assert!(note.contains(" until "), "{note}");
    assert_eq!(bodies[1]["event"], "ended");
    assert_eq!(bodies[1]["outcome"], "released");
    assert!(
        bodies[1]["note"]
            .as_str()
            .unwrap()
            .starts_with("access ended (released)"),
        "{}",
        bodies[1]
    );
    // A ticket the system does not know is refused for good: given up at once, and it
    // holds up nothing after it (found in a trial: retried for 43 minutes, blocking all).
    let bad = w.submit("alice", "web-restart", "5m", "OPS-404 no such ticket");
    let release = w.jitctl(
        "alice",
        &["release", &bad["id"].as_u64().unwrap().to_string()],
    );
    assert!(release.ok(), "{}", release.all());
    w.submit("alice", "web-restart", "5m", "OPS-89 after it");
    wait_for("the later ticket's update", LONG, || {
        http.requests()
            .iter()
            .any(|r| r["path"] == "/api/v2/tickets/OPS-89/events")
            .then_some(())
    });
    // Its two events (granted, ended) are each tried once and given up, in any order
    // against the later request's, which never waits for them.
    let audit = wait_for("both refusals recorded", LONG, || {
        let a = w.jitctl("root", &["audit"]).stdout;
        (a.matches("rejected: exit status 65: the ticket system answered 404")
            .count()
            == 2)
            .then_some(a)
    });
    assert!(!audit.contains("next attempt"), "never retried: {audit}");
    assert_eq!(
        http.requests()
            .iter()
            .filter(|r| r["path"] == "/api/v2/tickets/OPS-404/events")
            .count(),
        2,
        "granted and ended, each tried once"
    );
}

#[test]
fn given_anyone_but_the_agent_when_taking_deliveries_then_refused_and_the_agent_never_runs_as_root()
{
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let seen = dir.path().join("uid");
    let extra = format!(
        r#"
[[notifier]]
name = "whoami"
command = ["/bin/sh", "-c", "id -un > {}"]
events = ["submitted"]
"#,
        seen.display()
    );
    let w = world(&extra);
    // The bus refuses everyone else, root included; jitd would too (the next test's world).
    for user in ["mallory", "alice", "root"] {
        let r = notify_call(&w, user, &["Take", "uu", "10", "0"]);
        assert!(!r.ok(), "{user} took deliveries: {}", r.all());
    }
    // The agent refuses to run as root.
    let root = jit_e2e::run(
        w.as_user("root", &bin("jit-notifyd"), &["--bus", &w.bus]),
        "",
        LONG,
    );
    assert_eq!(root.code, 1, "{}", root.all());
    assert!(
        root.stderr.contains("refusing to run as root"),
        "{}",
        root.all()
    );
    // Run as its user, the program runs as that user.
    let _agent = agent(&w);
    submit_pending(&w, "OPS-50 who runs notifiers");
    let who = wait_for("the notifier to run", LONG, || {
        std::fs::read_to_string(&seen)
            .ok()
            .filter(|s| !s.is_empty())
    });
    assert_eq!(who.trim(), jit_proto::NOTIFIER_USER);
}

#[test]
fn given_a_lax_bus_policy_when_another_user_takes_deliveries_then_jitd_itself_refuses() {
    let w = Builder::new()
        .user("alice", &[])
        .user("mallory", &[])
        .user(jit_proto::NOTIFIER_USER, &[])
        .policy(&policy(""))
        .bus_policy(jit_e2e::LAX_BUS_POLICY)
        .build();
    for user in ["mallory", "root"] {
        let r = notify_call(&w, user, &["Done", "tbbs", "1", "true", "false", ""]);
        assert!(!r.ok(), "{user}: {}", r.all());
        assert!(
            r.all().contains("the notifier interface is for jit-notify"),
            "{user}: {}",
            r.all()
        );
    }
}

#[test]
fn given_jitd_restarted_when_watching_then_the_watch_takes_up_again_by_itself() {
    let mut w = world("");
    let bob = Follower::watch(&w, "bob", false);
    w.stop_jitd(Signal::SIGTERM);
    wait_for("the watch to see jitd go", LONG, || {
        bob.err().contains("jitd stopped").then_some(())
    });
    w.start_jitd();
    wait_for("the watch to take up again", LONG, || {
        bob.err().contains("watching again").then_some(())
    });
    let id = submit_pending(&w, "OPS-60 after the restart");
    bob.expect(&format!(
        "submitted: request {id}: alice asks for role db-admin"
    ));
}

#[test]
fn given_a_notifier_that_hangs_when_events_come_then_the_others_are_not_held_up() {
    let http = Sink::http(0);
    let extra = format!(
        r#"
[[notifier]]
name = "stuck"
command = ["/bin/sleep", "60"]
events = ["submitted"]
timeout = "60s"
{}"#,
        webhook(&http, r#"["submitted"]"#)
    );
    let w = world(&extra);
    let _agent = agent(&w);
    let started = std::time::Instant::now();
    let id = submit_pending(&w, "OPS-70 the others go on");
    let got = wait_for("the webhook beside a hung notifier", LONG, || {
        let r = http.requests();
        (!r.is_empty()).then_some(r)
    });
    assert!(
        got[0]["body"]
            .as_str()
            .unwrap()
            .contains(&format!("request {id}"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "held up {:?} by the hung notifier",
        started.elapsed()
    );
}
