//! The fleet policy: a file configuration management puts on every host
//! (`/etc/jit/fleet.toml`), from which each host decides alone. Its digest goes into every
//! request, so a host with another version of it says so instead of guessing.

use crate::names::{RoleName, UserName};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ssh_key::PublicKey;

/// How far apart a host's clock and an approval's time may be by default.
pub const DEFAULT_MAX_SKEW: i64 = 300;
/// How long finished fleet requests' records stay in etcd by default.
pub const DEFAULT_RECORD_RETENTION: i64 = 24 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    #[serde(default)]
    etcd: RawEtcd,
    #[serde(default)]
    max_skew: Option<String>,
    #[serde(default)]
    record_retention: Option<String>,
    #[serde(default, rename = "host")]
    hosts: Vec<RawHost>,
    #[serde(default, rename = "approver")]
    approvers: Vec<RawApprover>,
    #[serde(default, rename = "fleet_role")]
    roles: Vec<RawRole>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    #[serde(default)]
    endpoints: Vec<String>,
    /// The CA of etcd's certificates, and this host's client certificate and key: read by
    /// the fleet agent (jit-fleetd), not by jitd.
    #[serde(default)]
    ca: String,
    #[serde(default)]
    cert: String,
    #[serde(default)]
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    key: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: String,
    keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    hosts: Vec<String>,
    requesters: Vec<String>,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    approvals: u32,
    max_duration: String,
    commands: Vec<String>,
    #[serde(default)]
    run_as: Vec<String>,
    #[serde(default)]
    fleet_stale_after: Option<String>,
}

/// A host of the fleet: its name, its key (requests it takes are signed with it), its groups.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub key: PublicKey,
    pub groups: Vec<String>,
}

/// A fleet role: for the hosts of these groups.
#[derive(Debug, Clone)]
pub struct FleetRole {
    pub name: String,
    pub host_groups: Vec<String>,
    pub requesters: Vec<String>,
    pub approvers: Vec<String>,
    pub approvals: u32,
    pub max_duration: u64,
    /// The sudoers rule a verified grant writes on each host it applies to.
    pub commands: Vec<crate::names::Command>,
    pub run_as: Vec<UserName>,
    /// A host whose view of etcd has made no progress for this long suspends this role's
    /// fleet grants until it catches up (seconds; None: it keeps them to NOTAFTER).
    pub stale_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct FleetPolicy {
    pub etcd_endpoints: Vec<String>,
    /// etcd's CA, and this host's client certificate and key (the agent reads them).
    pub etcd_ca: String,
    pub etcd_cert: String,
    pub etcd_key: String,
    pub max_skew: i64,
    /// How long a fleet request's records stay in etcd after it can no longer be in force
    /// anywhere; then the host that wrote each deletes it (seconds).
    pub record_retention: i64,
    pub hosts: Vec<Host>,
    /// Approver name -> their SSH public keys.
    pub approvers: Vec<(String, Vec<PublicKey>)>,
    pub roles: Vec<FleetRole>,
    /// SHA-256 of the file's bytes, hex.
    pub digest: String,
}

/// A public key line (`TYPE BASE64 [COMMENT]`), no options.
fn key(what: &str, line: &str) -> Result<PublicKey, String> {
    let bare = crate::accounts::parse_key(line).map_err(|e| format!("{what}: {e}"))?;
    PublicKey::from_openssh(&bare).map_err(|e| format!("{what}: not a public key: {e}"))
}

/// A host's name as the fleet knows it: a DNS name in lower case (`db1.example.com`).
fn host_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.contains("..");
    ok.then(|| name.to_string()).ok_or_else(|| {
        format!(
            "host '{}': a host name is a DNS name in lower case",
            crate::names::cut(&crate::names::escape(name), 60)
        )
    })
}

fn user(what: &str, name: &str) -> Result<String, String> {
    UserName::new(name)
        .map(|u| u.to_string())
        .map_err(|e| format!("{what}: {e}"))
}

impl FleetPolicy {
    /// Parses and checks the fleet policy's text. Every contradiction is an error naming
    /// what is wrong; nothing of a bad file is used.
    pub fn parse(text: &str) -> Result<FleetPolicy, String> {
        let raw: RawFleet = toml::from_str(text).map_err(|e| e.to_string())?;
        let max_skew = match &raw.max_skew {
            Some(d) => {
                i64::try_from(jit_proto::parse_duration(d).map_err(|e| format!("max_skew: {e}"))?)
                    .map_err(|_| "max_skew is too long".to_string())?
            }
            None => DEFAULT_MAX_SKEW,
        };
        let record_retention = match &raw.record_retention {
            Some(d) => i64::try_from(
                jit_proto::parse_duration(d).map_err(|e| format!("record_retention: {e}"))?,
            )
            .map_err(|_| "record_retention is too long".to_string())?,
            None => DEFAULT_RECORD_RETENTION,
        };
        // Hosts' clocks may be max_skew apart: the host that deletes must not be ahead of
        // the last one to hold a grant by more than this.
        if record_retention < max_skew.saturating_mul(2) {
            return Err(format!(
                "record_retention ({}) must be at least twice max_skew ({})",
                jit_proto::format_duration(u64::try_from(record_retention).unwrap_or(0)),
                jit_proto::format_duration(u64::try_from(max_skew).unwrap_or(0))
            ));
        }
        if raw.etcd.cert.is_empty() != raw.etcd.key.is_empty() {
            return Err("[etcd] cert and key go together".into());
        }
        let mut hosts: Vec<Host> = Vec::new();
        for h in raw.hosts {
            let name = host_name(&h.name)?;
            if hosts.iter().any(|x| x.name == name) {
                return Err(format!("host '{name}' named twice"));
            }
            let k = key(&format!("host '{name}' key"), &h.key)?;
            if hosts.iter().any(|x| x.key.key_data() == k.key_data()) {
                return Err(format!("host '{name}' has the key of another host"));
            }
            hosts.push(Host {
                name,
                key: k,
                groups: h.groups,
            });
        }
        let mut approvers: Vec<(String, Vec<PublicKey>)> = Vec::new();
        for a in raw.approvers {
            let name = user("approver", &a.name)?;
            if approvers.iter().any(|(n, _)| *n == name) {
                return Err(format!("approver '{name}' named twice"));
            }
            if a.keys.is_empty() {
                return Err(format!("approver '{name}' has no keys"));
            }
            let keys = a
                .keys
                .iter()
                .map(|k| key(&format!("approver '{name}' key"), k))
                .collect::<Result<Vec<_>, _>>()?;
            // One key, one principal: a key two approvers share would count twice, and a
            // host's key as an approver's would let the host approve what it signed.
            let taken = |k: &PublicKey| {
                hosts.iter().any(|h| h.key.key_data() == k.key_data())
                    || approvers
                        .iter()
                        .flat_map(|(_, ks)| ks.iter())
                        .chain(keys.iter().take_while(|x| !std::ptr::eq(*x, k)))
                        .any(|x| x.key_data() == k.key_data())
            };
            if keys.iter().any(taken) {
                return Err(format!(
                    "approver '{name}' has a key that another approver or a host has (or one key twice)"
                ));
            }
            approvers.push((name, keys));
        }
        let mut roles: Vec<FleetRole> = Vec::new();
        for r in raw.roles {
            let name = RoleName::new(r.name.as_str())
                .map_err(|e| format!("fleet_role '{}': {e}", r.name))?
                .to_string();
            let at = |m: String| format!("fleet_role '{name}': {m}");
            if roles.iter().any(|x| x.name == name) {
                return Err(at("named twice".into()));
            }
            if r.hosts.is_empty() {
                return Err(at("hosts must name at least one host group".into()));
            }
            for g in &r.hosts {
                if !hosts.iter().any(|h| h.groups.contains(g)) {
                    return Err(at(format!("no host is in group '{g}'")));
                }
            }
            if r.requesters.is_empty() {
                return Err(at("requesters must not be empty".into()));
            }
            let requesters = r
                .requesters
                .iter()
                .map(|u| user("requester", u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            for a in &r.approvers {
                if !approvers.iter().any(|(n, _)| n == a) {
                    return Err(at(format!("approver '{a}' has no [[approver]] with keys")));
                }
            }
            if r.approvals as usize > r.approvers.len() {
                return Err(at(format!(
                    "needs {} approvals but names {} approvers",
                    r.approvals,
                    r.approvers.len()
                )));
            }
            let max_duration = jit_proto::parse_duration(&r.max_duration)
                .map_err(|e| at(format!("max_duration: {e}")))?;
            if r.commands.is_empty() {
                return Err(at("commands must list at least one command".into()));
            }
            let commands = r
                .commands
                .iter()
                .map(|c| crate::names::Command::new(c.as_str()).map_err(|e| at(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let run_as = if r.run_as.is_empty() {
                vec![UserName::root()]
            } else {
                r.run_as
                    .iter()
                    .map(|u| UserName::new(u.as_str()).map_err(|e| at(format!("run_as: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let stale_after = match &r.fleet_stale_after {
                Some(t) => {
                    let secs = jit_proto::parse_duration(t)
                        .map_err(|e| at(format!("fleet_stale_after: {e}")))?;
                    // The agent shows progress every 5 to 10 s while etcd answers.
                    if secs < 30 {
                        return Err(at("fleet_stale_after must be at least 30s".into()));
                    }
                    Some(secs)
                }
                None => None,
            };
            roles.push(FleetRole {
                stale_after,
                name,
                host_groups: r.hosts,
                requesters,
                approvers: r.approvers,
                approvals: r.approvals,
                max_duration,
                commands,
                run_as,
            });
        }
        Ok(FleetPolicy {
            etcd_endpoints: raw.etcd.endpoints,
            etcd_ca: raw.etcd.ca,
            etcd_cert: raw.etcd.cert,
            etcd_key: raw.etcd.key,
            max_skew,
            record_retention,
            hosts,
            approvers,
            roles,
            digest: super::hex(&Sha256::digest(text.as_bytes())),
        })
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn role(&self, name: &str) -> Option<&FleetRole> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Whether `role` applies to host `name` (it is in one of the role's host groups).
    pub fn applies(&self, role: &FleetRole, name: &str) -> bool {
        self.host(name)
            .is_some_and(|h| h.groups.iter().any(|g| role.host_groups.contains(g)))
    }

    pub fn approver_keys(&self, name: &str) -> &[PublicKey] {
        self.approvers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.as_slice())
            .unwrap_or_default()
    }

    /// Every key the policy knows (hosts' and approvers'): what may sign an end.
    pub fn all_keys(&self) -> Vec<PublicKey> {
        self.hosts
            .iter()
            .map(|h| h.key.clone())
            .chain(self.approvers.iter().flat_map(|(_, k)| k.iter().cloned()))
            .collect()
    }
}
