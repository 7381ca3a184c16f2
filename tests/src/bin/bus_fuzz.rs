//! A bounded randomized fuzzer of jitd's D-Bus interfaces, as dfuzzer is for polkit:
//! `bus_fuzz ADDRESS SEED CALLS [PIDS]` makes CALLS calls, as whoever runs it, to every
//! method of `org.jit.Jitd.User1` and `org.jit.Jitd.Pam1` (and the standard interfaces), with
//! arguments from the edges: empty, huge, control and invisible characters, sudoers
//! specials, other users' names and ids, extreme integers; one call in eight has the wrong
//! signature or names no method. PIDS (comma-separated) are the only process ids it passes
//! as a session's (root may register any pid, and jitd ends registered sessions with their
//! grant: the test gives it processes of its own to lose). The sequence is fixed by SEED.
//!
//! It prints one JSON line: calls made, answers by outcome (`ok`, each error name,
//! `timeout`), how many calls to the root-only PAM interface were answered (`pam1_ok`), and
//! exits 0 once every call has been made, 1 if it lost the bus.
#![forbid(unsafe_code)]

use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use zbus::DynamicType;

/// xorshift64*: a fixed sequence per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

const NAMES: &[&str] = &[
    "",
    "alice",
    "bob",
    "carol",
    "mallory",
    "root",
    "nobody",
    "ALL",
    "%jit-users",
    "web",
    "db",
    "ops",
    "no-such-role",
    "-rf",
    "_",
    "a,b",
    "alice ALL=(ALL) NOPASSWD: ALL",
    "alice\nALL ALL=(ALL) NOPASSWD: ALL",
    "../../etc/shadow",
    "#include /tmp/x",
    "abcdefghijklmnopqrstuvwxyz0123456",
    "al\u{202e}ice",
    "al\u{200b}ice",
    "\u{1b}[2J\u{7}",
    "é",
    "web ",
    " web",
];

const TEXTS: &[&str] = &[
    "",
    " ",
    "INC-1234 fix the stuck worker",
    "ok",
    "\u{1b}]0;owned\u{7}\u{1b}[2J",
    "line\nbreak",
    "\t\r\n",
    "\u{202e}gnp.exe",
    "\u{200b}\u{200b}\u{200b}",
    "a\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}",
    "'; DROP TABLE requests; --",
    "%s%s%s%n",
    "\u{fffd}\u{feff}",
];

/// Strings: a name, a text, something built of both, or huge.
fn string(r: &mut Rng) -> String {
    match r.below(10) {
        0..=3 => (*r.pick(NAMES)).to_string(),
        4..=6 => (*r.pick(TEXTS)).to_string(),
        7 => format!("{}{}", r.pick(NAMES), r.pick(TEXTS)),
        8 => "A".repeat(*r.pick(&[33, 501, 4097, 65_536, 1 << 20])),
        _ => {
            let n = r.below(40);
            (0..n)
                .filter_map(|_| char::from_u32(u32::try_from(r.next() % 0x3_0000).unwrap_or(65)))
                .filter(|c| *c != '\0')
                .collect()
        }
    }
}

/// A role argument: mostly one the policy has (so requests get far enough to be granted,
/// extended, revoked), otherwise anything.
fn role(r: &mut Rng) -> String {
    match r.below(5) {
        0..=2 => (*r.pick(&["web", "db", "ops"])).to_string(),
        _ => string(r),
    }
}

/// A reason argument: mostly one the roles accept, otherwise anything.
fn reason(r: &mut Rng) -> String {
    match r.below(2) {
        0 => (*r.pick(&["INC-1234 fix the stuck worker", "DB-77 vacuum", "INC-9 x"])).to_string(),
        _ => string(r),
    }
}

/// A user argument (the PAM interface names users): mostly one of the world's.
fn user(r: &mut Rng) -> String {
    match r.below(3) {
        0 | 1 => (*r.pick(&["alice", "mallory", "bob", "carol", "root"])).to_string(),
        _ => string(r),
    }
}

fn u64_edge(r: &mut Rng) -> u64 {
    match r.below(4) {
        // Existing requests: the test makes a few, of several users.
        0 | 1 => 1 + r.next() % 40,
        2 => *r.pick(&[0, 1, 59, 60, 61, 3600, 86_400 * 366, 86_400 * 367, 1 << 53]),
        _ => {
            let any = r.next();
            *r.pick(&[u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, any])
        }
    }
}

fn u32_edge(r: &mut Rng) -> u32 {
    // Waits are kept short: a long one only times out this client.
    *r.pick(&[0, 1, 2, u32::MAX, 1 << 31])
}

fn i64_edge(r: &mut Rng) -> i64 {
    *r.pick(&[0, -1, 1, i64::MIN, i64::MAX, 1_800_000_000, 253_402_300_800])
}

fn bool_of(r: &mut Rng) -> bool {
    r.next() & 1 == 1
}

#[derive(Serialize, zbus::Type)]
struct Origin {
    service: String,
    tty: String,
    rhost: String,
}

#[derive(Serialize, zbus::Type)]
struct PamRequest {
    user: String,
    role: String,
    duration_secs: u64,
    reason: String,
    origin: Origin,
}

#[derive(Serialize, zbus::Type)]
struct SessionOpen {
    user: String,
    target: String,
    ssh: bool,
    pid: u32,
    origin: Origin,
}

fn origin(r: &mut Rng) -> Origin {
    Origin {
        service: (*r.pick(&["sudo", "sudo-i", "sshd", "", "su", "sudo\n"])).to_string(),
        tty: (*r.pick(&["/dev/pts/999999", "", "ssh", "../../dev/sda", "/dev/tty63"])).to_string(),
        rhost: string(r),
    }
}

struct Fuzz {
    conn: zbus::Connection,
    outcomes: BTreeMap<String, u64>,
    pids: Vec<u32>,
    lost: bool,
    /// The call after which the bus connection was gone.
    lost_at: String,
    /// Calls to the root-only PAM interface that were answered.
    pam1_ok: u64,
}

impl Fuzz {
    async fn call<B: Serialize + DynamicType>(&mut self, iface: &str, method: &str, body: &B) {
        let answer = self
            .conn
            .call_method(
                Some("org.jit.Jitd"),
                "/org/jit/Jitd",
                Some(iface),
                method,
                body,
            )
            .await;
        let outcome = match answer {
            Ok(_) => "ok".to_string(),
            Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
            // This client's own limit on a call (a long Wait): not a lost bus.
            Err(zbus::Error::InputOutput(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                "timeout".to_string()
            }
            Err(zbus::Error::InputOutput(e)) => {
                self.lost = true;
                self.lost_at = format!(
                    "{iface}.{method}{} ({} bytes): {e}",
                    B::signature(body),
                    serde_json::to_string(body).map_or(0, |j| j.len())
                );
                "lost".to_string()
            }
            Err(e) => {
                let text = e.to_string();
                let low = text.to_lowercase();
                if low.contains("timeout") || low.contains("timed out") {
                    "timeout".to_string()
                } else if text.starts_with("org.") {
                    // An error reply (from jitd, or the bus's own refusals): its name.
                    text.split(':').next().unwrap_or_default().to_string()
                } else {
                    format!("client: {text}")
                }
            }
        };
        if iface == "org.jit.Jitd.Pam1" && outcome == "ok" {
            self.pam1_ok += 1;
        }
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn pid(&self, r: &mut Rng) -> u32 {
        match r.below(3) {
            0 if !self.pids.is_empty() => *r.pick(&self.pids),
            _ => *r.pick(&[0, 1, u32::MAX, 1 << 31, (1 << 31) - 1]),
        }
    }

    /// One call: a method of jitd's with arguments from the edges, or (one in eight) one
    /// with the wrong arguments or no such method.
    async fn one(&mut self, r: &mut Rng) {
        const U: &str = "org.jit.Jitd.User1";
        const P: &str = "org.jit.Jitd.Pam1";
        if r.below(8) == 0 {
            let iface = *r.pick(&[U, P, "org.jit.Jitd.Nope", "org.freedesktop.DBus.Properties"]);
            let method = *r.pick(&[
                "Request",
                "Approve",
                "Check",
                "OpenSession",
                "Nope",
                "GetAll",
            ]);
            match r.below(5) {
                0 => self.call(iface, method, &()).await,
                1 => self.call(iface, method, &(string(r),)).await,
                2 => {
                    self.call(iface, method, &(u64_edge(r), u64_edge(r), u64_edge(r)))
                        .await
                }
                3 => {
                    self.call(iface, method, &(bool_of(r), string(r), i64_edge(r)))
                        .await
                }
                _ => {
                    self.call(iface, method, &(vec![string(r)], u32_edge(r)))
                        .await
                }
            }
            return;
        }
        match r.below(35) {
            0 => self.call(U, "Roles", &()).await,
            1 => {
                self.call(U, "Request", &(role(r), u64_edge(r), reason(r)))
                    .await
            }
            2 => {
                self.call(U, "BreakGlass", &(role(r), u64_edge(r), reason(r)))
                    .await
            }
            3 => {
                self.call(U, "Extend", &(u64_edge(r), u64_edge(r), reason(r)))
                    .await
            }
            4 => self.call(U, "Review", &(bool_of(r),)).await,
            5 => self.call(U, "Acknowledge", &(u64_edge(r), string(r))).await,
            6 => self.call(U, "List", &(bool_of(r), bool_of(r))).await,
            7 => self.call(U, "Show", &(u64_edge(r),)).await,
            8 | 9 => self.call(U, "Approve", &(u64_edge(r), string(r))).await,
            10 => self.call(U, "Deny", &(u64_edge(r), string(r))).await,
            11 => self.call(U, "Revoke", &(u64_edge(r), string(r))).await,
            12 => self.call(U, "Release", &(u64_edge(r),)).await,
            13 => self.call(U, "Cancel", &(u64_edge(r),)).await,
            14 => self.call(U, "Wait", &(u64_edge(r), u32_edge(r))).await,
            15 => self.call(U, "Grants", &()).await,
            16 => self.call(U, "Status", &()).await,
            17 => self.call(U, "Audit", &(i64_edge(r), string(r))).await,
            18 => {
                let b = (u64_edge(r), u32_edge(r), i64_edge(r), string(r));
                self.call(U, "AuditPage", &b).await
            }
            19 => self.call(U, "AuditVerify", &()).await,
            20 => self.call(U, "AuditVerifyKey", &(string(r),)).await,
            21 => self.call(U, "SealSetup", &(u64_edge(r), bool_of(r))).await,
            22 => self.call(U, "AuditPrune", &(u64_edge(r),)).await,
            23 => self.call(P, "Check", &(user(r), bool_of(r))).await,
            24 => self.call(P, "Roles", &(user(r),)).await,
            25 | 26 => {
                let req = PamRequest {
                    user: user(r),
                    role: role(r),
                    duration_secs: u64_edge(r),
                    reason: reason(r),
                    origin: origin(r),
                };
                self.call(P, "Request", &(req,)).await
            }
            27 => {
                self.call(P, "Wait", &(user(r), u64_edge(r), u32_edge(r)))
                    .await
            }
            28 => self.call(P, "Pending", &(user(r),)).await,
            29 => self.call(P, "CheckReason", &(role(r), reason(r))).await,
            30 | 31 => {
                let s = SessionOpen {
                    user: user(r),
                    target: user(r),
                    ssh: bool_of(r),
                    pid: self.pid(r),
                    origin: origin(r),
                };
                self.call(P, "OpenSession", &(s,)).await
            }
            33 => self.call(U, "Watch", &()).await,
            32 => {
                self.call("org.freedesktop.DBus.Introspectable", "Introspect", &())
                    .await
            }
            _ => self.call("org.freedesktop.DBus.Peer", "Ping", &()).await,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(seed), Some(calls)) = (
        args.get(1),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
        args.get(3).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bus_fuzz ADDRESS SEED CALLS [PIDS]");
        return ExitCode::from(2);
    };
    let pids: Vec<u32> = args
        .get(4)
        .map(|p| p.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let result = zbus::block_on(async {
        let conn = zbus::connection::Builder::address(addr.as_str())
            .method_timeout(Duration::from_secs(3))
            .build()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut f = Fuzz {
            conn,
            outcomes: BTreeMap::new(),
            pids,
            lost: false,
            lost_at: String::new(),
            pam1_ok: 0,
        };
        let mut r = Rng(seed | 1);
        let mut made = 0u64;
        while made < calls && !f.lost {
            f.one(&mut r).await;
            made += 1;
        }
        Ok::<_, String>((made, f.outcomes, f.lost_at, f.pam1_ok))
    });
    match result {
        Ok((made, outcomes, lost_at, pam1_ok)) => {
            let lost = !lost_at.is_empty();
            println!(
                "{}",
                serde_json::json!({
                    "calls": made, "outcomes": outcomes, "lost": lost, "lost_at": lost_at,
                    "pam1_ok": pam1_ok
                })
            );
            if lost {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
