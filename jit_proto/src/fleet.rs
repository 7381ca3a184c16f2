//! Fleet records (`fleet.md`): the request a host signs, an approver's approval, an end, and
//! a host's acknowledgement; their canonical bytes (what a signature covers) and digests.
//! jitd verifies and signs them; jitctl builds approvals from them; the agent carries them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a request's host signs.
pub const REQUEST_NAMESPACE: &str = "jit-request";
/// What an approver signs.
pub const APPROVAL_NAMESPACE: &str = "jit-approval";
/// What ends a grant (release, revoke): a host or an approver signs it.
pub const END_NAMESPACE: &str = "jit-end";

/// A fleet request, as the host that took it signs it. Ids are the host's name and its own
/// sequence (`db1-17`), unique across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    pub id: String,
    /// The host that took the request (its key signs it).
    pub host: String,
    pub user: String,
    pub role: String,
    /// The hosts it is for, by name (host groups expanded when it was made).
    pub hosts: Vec<String>,
    pub duration_secs: u64,
    pub reason: String,
    pub created_at: i64,
    /// The fleet policy the request was made under ([`policy::FleetPolicy::digest`]).
    pub policy_digest: String,
}

/// An approval: names the exact request it approves by its digest, so it can be neither
/// replayed onto another request nor kept across a change of this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub request_id: String,
    pub request_digest: String,
    pub approver: String,
    pub approved_at: i64,
}

/// The end of a request (released by its holder, revoked by an approver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub request_id: String,
    pub request_digest: String,
    /// A host name or an approver's name: whose key signs it.
    pub by: String,
    pub at: i64,
}

/// A record and its SSHSIG signature (PEM, `-----BEGIN SSH SIGNATURE-----`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<T> {
    pub record: T,
    pub signature: String,
}

/// The bytes a record's signature covers: a tag naming the record kind and its version,
/// then the record as JSON in its fields' declared order (so one record has one encoding).
pub trait Canonical: Serialize {
    const TAG: &'static str;
    fn canonical(&self) -> Vec<u8> {
        let mut out = format!("{}\n", Self::TAG).into_bytes();
        // Serializing these plain structs cannot fail; an empty body would verify nothing.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }
    /// SHA-256 of [`Canonical::canonical`], hex.
    fn digest(&self) -> String {
        hex(&Sha256::digest(self.canonical()))
    }
}

impl Canonical for FleetRequest {
    const TAG: &'static str = "jit.fleet.request/1";
}
impl Canonical for Approval {
    const TAG: &'static str = "jit.fleet.approval/1";
}
impl Canonical for End {
    const TAG: &'static str = "jit.fleet.end/1";
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a host did with a fleet request (what its agent writes to etcd as `HOST/ack/ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The fleet request's id (empty when the offer could not be read).
    pub id: String,
    pub host: String,
    /// `applied`, `unchanged`, `ended`, `pending` (nobody has approved it yet), `refused`.
    pub outcome: String,
    pub reason: String,
    /// The local request holding it (0: none).
    #[serde(default)]
    pub local_id: u64,
    #[serde(default)]
    pub not_after: i64,
}

/// Where fleet records live in etcd. Each host writes only under `PREFIX/HOST/` (etcd RBAC
/// gives each host that prefix alone): `req/ID`, `appr/ID/APPROVER`, `end/ID`, `ack/ID`,
/// `alive`.
pub const PREFIX: &str = "/jit/v1/";

/// What one etcd key under [`PREFIX`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Request {
        host: String,
        id: String,
    },
    Approval {
        host: String,
        id: String,
        approver: String,
    },
    End {
        host: String,
        id: String,
    },
    Ack {
        host: String,
        id: String,
    },
    Alive {
        host: String,
    },
}

/// Whether `s` may be one part of a key (a host, an id, an approver): what request ids,
/// host names and user names are made of, bounded.
pub fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

impl Key {
    /// Reads a key; None for anything not in the layout (left alone).
    pub fn parse(key: &str) -> Option<Key> {
        let rest = key.strip_prefix(PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if !parts.iter().all(|p| plain(p)) {
            return None;
        }
        let host = parts[0].to_string();
        let s = |i: usize| parts[i].to_string();
        Some(match parts.as_slice() {
            [_, "req", _] => Key::Request { host, id: s(2) },
            [_, "appr", _, _] => Key::Approval {
                host,
                id: s(2),
                approver: s(3),
            },
            [_, "end", _] => Key::End { host, id: s(2) },
            [_, "ack", _] => Key::Ack { host, id: s(2) },
            [_, "alive"] => Key::Alive { host },
            _ => return None,
        })
    }

    /// The fleet request the key is about (None for a heartbeat).
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Key::Request { id, .. }
            | Key::Approval { id, .. }
            | Key::End { id, .. }
            | Key::Ack { id, .. } => Some(id),
            Key::Alive { .. } => None,
        }
    }

    /// The host that wrote it (whose prefix it is under).
    pub fn host(&self) -> &str {
        match self {
            Key::Request { host, .. }
            | Key::Approval { host, .. }
            | Key::End { host, .. }
            | Key::Ack { host, .. }
            | Key::Alive { host } => host,
        }
    }

    /// The key's text.
    pub fn path(&self) -> String {
        match self {
            Key::Request { host, id } => format!("{PREFIX}{host}/req/{id}"),
            Key::Approval { host, id, approver } => format!("{PREFIX}{host}/appr/{id}/{approver}"),
            Key::End { host, id } => format!("{PREFIX}{host}/end/{id}"),
            Key::Ack { host, id } => format!("{PREFIX}{host}/ack/{id}"),
            Key::Alive { host } => format!("{PREFIX}{host}/alive"),
        }
    }
}

/// Whether request id `id` is one host `host` may give (`HOST-...`): each host writes only
/// its own ids, so no host can take another's.
pub fn id_of_host(id: &str, host: &str) -> bool {
    id.strip_prefix(host)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty())
}

/// How this host's link to the fleet stands (`jitctl status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetContact {
    /// This host's name in the fleet.
    pub host: String,
    /// When the agent last showed it was in touch with etcd (unix seconds; 0: not since
    /// jitd started), and etcd's revision then.
    pub last_contact: i64,
    pub revision: i64,
    /// Records of etcd in jitd's view.
    pub records: usize,
    /// jitd's clock when it answered.
    pub now: i64,
    /// Silent longer than this, the agent is out of touch: fleet requests are refused.
    pub quiet_after: i64,
}

/// A fleet request as one host sees it (`jitctl list --fleet`, `show ID`): the signed
/// request, which approvals and ends of it verify by this host's policy, and every host's
/// acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    pub request: Signed<FleetRequest>,
    /// The request's digest: what an approval names.
    pub digest: String,
    /// Whether the request's host signature verifies by this host's policy.
    pub signed: bool,
    pub approvals_required: u32,
    /// The approvers whose approval verifies.
    pub approved_by: Vec<String>,
    /// Who ended it (each end that verifies).
    pub ended_by: Vec<String>,
    /// Every host's acknowledgement seen so far.
    pub acks: Vec<Ack>,
    /// False while it waits in this host's outbox for the agent to publish it.
    pub published: bool,
    /// Its other records (approvals, ends) made on this host and still in its outbox.
    #[serde(default)]
    pub queued: usize,
    /// Whether it can still be approved (made less than its duration ago, not ended); a
    /// request not approved by then has lapsed.
    #[serde(default)]
    pub open: bool,
    /// The keys the fleet policy lists for the caller as an approver of this request's
    /// role (OpenSSH lines; empty when the caller may not approve it).
    pub your_keys: Vec<String>,
}

impl FleetView {
    /// The ack of `host`, if it sent one.
    pub fn ack_of(&self, host: &str) -> Option<&Ack> {
        self.acks.iter().find(|a| a.host == host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_keys_then_what_they_hold_comes_out_and_nothing_else() {
        for k in [
            Key::Request {
                host: "db2".into(),
                id: "db2-7f".into(),
            },
            Key::Approval {
                host: "db1".into(),
                id: "db2-7f".into(),
                approver: "bob".into(),
            },
            Key::End {
                host: "db1.example.com".into(),
                id: "db2-7f".into(),
            },
            Key::Ack {
                host: "db1".into(),
                id: "db2-7f".into(),
            },
            Key::Alive { host: "db1".into() },
        ] {
            assert_eq!(Key::parse(&k.path()), Some(k));
        }
        for k in [
            "/jit/v1/db1/req/",
            "/jit/v1/db1/appr/db2-7",
            "/jit/v2/db1/req/x",
            "/jit/v1/db1/req/a b",
            "/jit/v1/db1/req/x/y",
            "/jit/v1//req/x",
            "/jit/v1/db1/other/x",
        ] {
            assert_eq!(Key::parse(k), None, "{k}");
        }
    }
}
