//! jitd under a service manager: readiness and watchdog notifications (sd_notify), as
//! systemd's `Type=notify` and `WatchdogSec=` in systemd/jitd.service expect them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, run};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "1h"
"#;

fn recv(sock: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 512];
    let len = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// A world whose jitd (not started yet) will notify a socket the test reads, as systemd's
/// would be, with a watchdog that wants a keep-alive every 200 ms; `extra` adds variables.
fn notified_world(wait: Duration, extra: &[(&str, &str)]) -> (World, UnixDatagram) {
    let mut w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .without_jitd()
        .build();
    let path = w.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    w.jitd_env = vec![
        ("NOTIFY_SOCKET".into(), path.to_str().unwrap().into()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    w.jitd_env
        .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    (w, sock)
}

#[test]
fn given_notify_socket_when_jitd_starts_then_ready_follows_the_bus_name_and_watchdog_pings_come() {
    let (mut w, sock) = notified_world(Duration::from_secs(10), &[]);
    // The first message other than a keep-alive is READY=1, and by then jitd owns its name.
    let bus = w.bus.clone();
    let listener = std::thread::spawn(move || {
        let first = std::iter::from_fn(|| recv(&sock)).find(|m| m != "WATCHDOG=1");
        let mut c = Command::new("busctl");
        c.arg(format!("--address={bus}"))
            .args(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .args(["org.freedesktop.DBus", "NameHasOwner", "s"])
            .arg(jit_proto::BUS_NAME);
        let owner = run(c, "", Duration::from_secs(10)).stdout;
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            match recv(&sock) {
                Some(m) if m == "WATCHDOG=1" => pings += 1,
                Some(_) => {}
                None => break,
            }
        }
        (first, owner, pings)
    });
    w.start_jitd();
    let (first, owner, pings) = listener.join().unwrap();
    let first = first.expect("no notification from jitd");
    assert!(first.starts_with("READY=1\n"), "{first:?}");
    assert!(
        first.contains(&format!("MAINPID={}", w.jitd_pid().unwrap())),
        "{first:?}"
    );
    assert_eq!(
        owner.trim(),
        "b true",
        "READY=1 before the bus name was taken"
    );
    // 1.5 s at one keep-alive per 200 ms is 7; allow for a loaded machine, but a watchdog
    // that depended on the 1 s timer period alone would give at most 2.
    assert!(pings >= 4, "{pings} watchdog keep-alives in 1.5 s");
}

#[test]
fn given_watchdog_meant_for_another_pid_when_jitd_starts_then_only_readiness_is_sent() {
    let (mut w, sock) = notified_world(Duration::from_secs(2), &[("WATCHDOG_PID", "1")]);
    w.start_jitd();
    let first = recv(&sock).expect("READY=1");
    assert!(first.starts_with("READY=1\n"), "{first:?}");
    assert_eq!(
        recv(&sock),
        None,
        "a keep-alive for a watchdog that is not jitd's"
    );
}

#[test]
fn given_activation_file_when_first_request_then_the_bus_starts_jitd_and_it_answers() {
    let w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .bus_activation()
        .build();
    let r = w.jitctl("alice", &["request", "web-restart", "--reason", "T-1"]);
    let mut c = Command::new("busctl");
    c.arg(format!("--address={}", w.bus))
        .args(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus"])
        .args(["org.freedesktop.DBus", "GetConnectionUnixProcessID", "s"])
        .arg(jit_proto::BUS_NAME);
    let owner = run(c, "", Duration::from_secs(10));
    // "u 1234": the activated jitd, stopped here by its pid.
    let pid: Option<i32> = owner
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok());
    let cmdline = pid
        .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .unwrap_or_default();
    if let Some(p) = pid {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert!(
        r.ok(),
        "the first request, with jitd not running: {}",
        r.all()
    );
    assert!(r.stdout.contains("active until"), "{}", r.all());
    assert!(
        cmdline.starts_with(jit_e2e::bin("jitd").as_os_str().as_encoded_bytes()),
        "the owner of org.jit.Jitd is the activated jitd: {}",
        owner.all()
    );
}
