//! Fleet helpers shared by the fleet tests and the fleet benchmark: keys made by the real
//! ssh-keygen, and a real etcd cluster on loopback ports.

use crate::run;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
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

/// `conf/fleet-init.sh ARGS`.
pub fn fleet_init(args: &[&str]) -> crate::Run {
    let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/fleet-init.sh"));
    c.args(args);
    run(c, "", Duration::from_secs(120))
}

/// A real etcd cluster on free loopback ports, its members started with the flags `certs`
/// printed (TLS for clients and peers, client certificates required); each member stopped
/// by its pid when dropped.
pub struct TlsEtcd {
    members: Vec<Option<std::process::Child>>,
    pub endpoints: Vec<String>,
    pki: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsEtcd {
    pub fn start(pki: &Path, certs_output: &str, names: &[&str]) -> TlsEtcd {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
        let url = |p: u16| format!("https://127.0.0.1:{p}");
        let cluster: Vec<String> = names
            .iter()
            .zip(&ports)
            .map(|(n, (_, p))| format!("{n}={}", url(*p)))
            .collect();
        let mut e = TlsEtcd {
            members: Vec::new(),
            endpoints: Vec::new(),
            pki: pki.to_path_buf(),
            dir,
        };
        for (name, (client, peer)) in names.iter().zip(&ports) {
            let tls: Vec<&str> = certs_output
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no flags for member {name}:\n{certs_output}"))
                .split_whitespace()
                .collect();
            let endpoint = url(*client);
            let child = Command::new("etcd")
                .args(["--name", name, "--data-dir"])
                .arg(e.dir.path().join(format!("data-{name}")))
                .args(&tls)
                .args(["--listen-client-urls", &endpoint])
                .args(["--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &url(*peer)])
                .args(["--initial-advertise-peer-urls", &url(*peer)])
                .args(["--initial-cluster", &cluster.join(",")])
                // zap at warn: the only way etcd 3.4 says why it refused a TLS client.
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(e.log_path(name)).unwrap())
                .spawn()
                .expect("etcd (package etcd-server)");
            e.members.push(Some(child));
            e.endpoints.push(endpoint);
        }
        crate::wait_for("etcd to serve", Duration::from_secs(60), || {
            e.ctl(Some("admin"), &["endpoint", "health", "--cluster"])
                .ok()
                .then_some(())
        });
        e
    }

    pub fn log_path(&self, member: &str) -> PathBuf {
        self.dir.path().join(format!("{member}.log"))
    }

    pub fn logs(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "log").then(|| std::fs::read_to_string(p).unwrap())
            })
            .collect()
    }

    pub fn endpoints(&self) -> String {
        self.endpoints.join(",")
    }

    /// etcdctl as the owner of the certificate `client.crt` in `who` (relative to the fleet's
    /// directory: `admin`, `hosts/db1`, or any other directory), or with none.
    pub fn ctl(&self, who: Option<&str>, args: &[&str]) -> crate::Run {
        self.ctl_in(who, args, "")
    }

    pub fn ctl_in(&self, who: Option<&str>, args: &[&str], stdin: &str) -> crate::Run {
        let mut c = Command::new("etcdctl");
        // etcdctl refuses a flag also set in its environment; a user there would override
        // the certificate.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL_") {
                c.env_remove(k);
            }
        }
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints()))
            .arg("--cacert")
            .arg(self.pki.join("ca.crt"));
        if let Some(who) = who {
            let d = self.pki.join(who);
            c.arg("--cert")
                .arg(d.join("client.crt"))
                .arg("--key")
                .arg(d.join("client.key"));
        }
        c.args(args);
        run(c, stdin, Duration::from_secs(60))
    }

    /// Each member stopped in turn (all at once, the last ones wait seconds for the others).
    pub fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.take() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap()),
                    Signal::SIGTERM,
                );
                let _ = c.wait();
            }
        }
    }
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}
