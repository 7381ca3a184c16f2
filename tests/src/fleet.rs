//! Fleet helpers shared by the fleet tests and the fleet benchmark: keys made by the real
//! ssh-keygen, and a real etcd cluster on loopback ports.

use crate::run;
use nix::sys::signal::Signal;
use std::process::Command;
use std::time::Duration;

/// An Ed25519 key pair made by ssh-keygen as `dir/name` (and `.pub`); the public line.
pub fn keygen(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// Seconds since the epoch, by this machine's clock (what every host of a test has).
pub fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A real etcd cluster of `n` members on free loopback ports, each stopped (by its pid)
/// when dropped.
pub struct Etcd {
    members: Vec<Option<std::process::Child>>,
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    pub fn start(n: usize) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peer = |p: u16| format!("http://127.0.0.1:{p}");
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}={}", peer(*p)))
            .collect();
        let mut members = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, p)) in ports.iter().enumerate() {
            let endpoint = format!("http://127.0.0.1:{client}");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(dir.path().join(format!("data{i}")))
                .args(["--listen-client-urls", &endpoint])
                .args(["--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &peer(*p)])
                .args(["--initial-advertise-peer-urls", &peer(*p)])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--log-level", "error"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join(format!("etcd{i}.log"))).unwrap())
                .spawn()
                .expect("etcd (package etcd-server)");
            members.push(Some(child));
            endpoints.push(endpoint);
        }
        let e = Etcd {
            members,
            endpoints,
            _dir: dir,
        };
        crate::wait_for("etcd to serve", Duration::from_secs(60), || {
            e.ctl(&["endpoint", "health", "--cluster"])
                .ok()
                .then_some(())
        });
        e
    }

    /// The endpoints as a TOML list's items.
    pub fn toml(&self) -> String {
        self.endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The pids of the members running.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().flatten().map(|c| c.id()).collect()
    }

    pub fn ctl(&self, args: &[&str]) -> crate::Run {
        let live: Vec<&str> = self
            .members
            .iter()
            .zip(&self.endpoints)
            .filter(|(m, _)| m.is_some())
            .map(|(_, e)| e.as_str())
            .collect();
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", live.join(",")))
            .args(args);
        run(c, "", Duration::from_secs(30))
    }

    pub fn put<T: serde::Serialize>(&self, key: &str, value: &T) {
        let r = self.ctl(&["put", key, &serde_json::to_string(value).unwrap()]);
        assert!(r.ok(), "{}", r.all());
    }

    /// The ack of `host` for request `id`, once it has `outcome`.
    pub fn wait_ack(&self, host: &str, id: &str, outcome: &str) -> serde_json::Value {
        crate::wait_for(
            &format!("{host}'s ack '{outcome}' of {id}"),
            Duration::from_secs(60),
            || {
                let r = self.ctl(&[
                    "get",
                    "--print-value-only",
                    &format!("/jit/v1/{host}/ack/{id}"),
                ]);
                let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).ok()?;
                (v["outcome"] == outcome).then_some(v)
            },
        )
    }

    /// Stops member `i`.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap()),
                Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
