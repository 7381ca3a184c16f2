//! pam_jit runs inside sudo and sshd: no thread may outlive a hook, and a dead or stopped
//! jitd must not hang it past `timeout=`. Alone in its binary so the thread count is exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pam_jit::bus::BusClient;
use pam_jit::channel::Channel;
use pam_jit::logic::Jitd;
use pam_jit::socket::SocketClient;
use std::time::{Duration, Instant};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The thread count once it has stopped changing: the world's own helpers (a thread per
/// command it ran, exiting just after the command) must not be counted in the baseline, or a
/// baseline taken while one is still exiting can never be reached again.
fn settled_threads() -> usize {
    let mut last = threads();
    let mut same = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while same < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = threads();
        if now == last {
            same += 1;
        } else {
            (last, same) = (now, 0);
        }
    }
    last
}

/// pam_jit's channel as a hook builds it: the PAM socket first (`socket`), or the bus only.
fn channel(w: &jit_e2e::World, socket: bool) -> Channel {
    let timeout = Duration::from_secs(2);
    Channel {
        socket: socket.then(|| SocketClient::new(w.pam_socket.clone(), timeout, None)),
        bus: BusClient {
            address: w.bus.clone(),
            timeout,
            library: Some(jit_e2e::bin("libpam_jit_bus.so")),
        },
    }
}

#[test]
fn given_calls_from_a_hook_on_either_channel_then_no_thread_outlives_them_and_timeouts_hold() {
    let w = Builder::new()
        .user("alice", &[])
        .policy(
            "[[role]]\nname = \"r\"\ncommands = [\"/usr/bin/true\"]\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n",
        )
        .build();
    let before = settled_threads();
    for socket in [false, true] {
        for _ in 0..20 {
            let client = channel(&w, socket);
            let c = client.check("alice", false).unwrap();
            assert!(!c.active);
            assert_eq!(client.roles("alice").unwrap().len(), 1);
        }
    }
    // Helper threads that finish late would show up here; give them a moment to exit.
    wait_for("threads to settle", Duration::from_secs(2), || {
        (threads() == before).then_some(())
    });

    // A stopped jitd (SIGSTOP): the call is bounded by timeout=, and fails (never succeeds).
    let pid = Pid::from_raw(i32::try_from(w.jitd_pid().unwrap()).unwrap());
    for socket in [false, true] {
        let client = channel(&w, socket);
        kill(pid, Signal::SIGSTOP).unwrap();
        let t = Instant::now();
        let r = client.check("alice", false);
        let took = t.elapsed();
        kill(pid, Signal::SIGCONT).unwrap();
        assert!(r.is_err(), "socket {socket}: {r:?}");
        assert!(
            took < Duration::from_secs(4),
            "socket {socket}: took {took:?}"
        );
    }
    wait_for(
        "threads to settle after the timeout",
        Duration::from_secs(2),
        || (threads() == before).then_some(()),
    );
}
