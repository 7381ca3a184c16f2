//! Fleet grants, the part every host decides alone (`fleet.md`): the records a fleet request
//! is made of (the request, signed by the host that took it; approvals, signed by each
//! approver's own SSH key; ends), their canonical bytes, and [`verify`], which says whether
//! this host may enforce a request now and until when. Trust lives in the signatures and in
//! this host's copy of the fleet policy ([`policy::FleetPolicy`]), never in the transport:
//! whatever carried the records (etcd, an agent, another host) can delay or drop them, it
//! cannot make a grant.
//!
//! Signatures are SSHSIG (`ssh-keygen -Y sign`, git's commit signing) through RustCrypto's
//! `ssh-key`, each record kind in a namespace of its own, so no signature of one kind is ever
//! taken for another.
//!
//! What a host does with a verified record is in [`crate::grants`] (`Fleet1.Offer`); the
//! agent that carries records through etcd is `jit_fleetd`; what users do (request, approve,
//! end, list) is in [`crate::grants`] too.

pub mod policy;

use ssh_key::{HashAlg, PrivateKey, PublicKey, SshSig};

pub use jit_proto::fleet::{
    APPROVAL_NAMESPACE, Approval, Canonical, END_NAMESPACE, End, FleetRequest, REQUEST_NAMESPACE,
    Signed, hex, id_of_host,
};
/// This host's fleet key at `path` (OpenSSH format), made (Ed25519, from the kernel's
/// random source) if there is none yet, with its public half beside it (`PATH.pub`: what
/// the fleet policy lists for this host).
pub fn host_key(path: &std::path::Path, host: &str) -> Result<PrivateKey, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return PrivateKey::from_openssh(text.as_bytes())
                .map_err(|e| format!("fleet host key {shown}: {e}"));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("fleet host key {shown}: {e}"));
        }
        Err(_) => {}
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("random bytes for a host key: {e}"))?;
    let mut key = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(format!("jitd@{host}"));
    let text = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| format!("encoding a host key: {e}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| format!("encoding a host key: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("writing the fleet host key {shown}: {e}"))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing the fleet host key {shown}: {e}"))?;
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| format!("writing {}: {e}", std::path::Path::new(&pub_path).display()))?;
    Ok(key)
}

/// Signs `record` with `key` (a host's key) in `namespace`.
pub fn sign<T: Canonical>(key: &PrivateKey, namespace: &str, record: &T) -> Result<String, String> {
    let sig = key
        .sign(namespace, HashAlg::Sha512, &record.canonical())
        .map_err(|e| format!("signing: {e}"))?;
    sig.to_pem(ssh_key::LineEnding::LF)
        .map_err(|e| format!("encoding a signature: {e}"))
}

/// Whether `signed` carries a valid signature by one of `keys` in `namespace`.
fn signed_by<T: Canonical>(signed: &Signed<T>, namespace: &str, keys: &[PublicKey]) -> bool {
    let Ok(sig) = SshSig::from_pem(&signed.signature) else {
        return false;
    };
    let bytes = signed.record.canonical();
    keys.iter()
        .any(|k| k.verify(namespace, &bytes, &sig).is_ok())
}

/// Whether `req` is signed by the key of the host it names, and its id is that host's.
pub fn request_signed(fleet: &policy::FleetPolicy, req: &Signed<FleetRequest>) -> bool {
    fleet.host(&req.record.host).is_some_and(|h| {
        signed_by(req, REQUEST_NAMESPACE, std::slice::from_ref(&h.key))
            && id_of_host(&req.record.id, &req.record.host)
    })
}

/// Whether `a` is a valid approval of request `r` (whose digest is `digest`) by one of
/// `role`'s approvers, signed with one of that approver's keys. (Whether the approver is
/// the requester is the caller's to judge.)
pub fn approval_valid(
    fleet: &policy::FleetPolicy,
    role: &policy::FleetRole,
    r: &FleetRequest,
    digest: &str,
    a: &Signed<Approval>,
) -> bool {
    let ar = &a.record;
    ar.request_id == r.id
        && ar.request_digest == digest
        && role.approvers.contains(&ar.approver)
        && signed_by(a, APPROVAL_NAMESPACE, fleet.approver_keys(&ar.approver))
}

/// Whether `e` validly ends request `r`: anything that only takes privilege away is taken
/// from any key the policy knows.
pub fn end_valid(
    fleet: &policy::FleetPolicy,
    r: &FleetRequest,
    digest: &str,
    e: &Signed<End>,
) -> bool {
    e.record.request_id == r.id
        && e.record.request_digest == digest
        && signed_by(e, END_NAMESPACE, &fleet.all_keys())
}

/// Why this host will not enforce a fleet request: each is acked and audited as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("request {0} comes from host '{1}', which this host's fleet policy does not know")]
    UnknownHost(String, String),
    #[error("request {0} is not signed by the key of host '{1}' (forged or altered)")]
    BadRequestSignature(String, String),
    #[error("request {0} was made under fleet policy {1}, this host has {2}")]
    PolicyMismatch(String, String, String),
    #[error("request {0}: no fleet role '{1}' in this host's policy")]
    UnknownRole(String, String),
    #[error("request {0} is not for this host ({1})")]
    NotForThisHost(String, String),
    #[error("request {0}: {1} may not request fleet role '{2}'")]
    NotARequester(String, String, String),
    #[error("request {0}: {1}")]
    BadDuration(String, String),
    #[error("request {0} was ended by {1}")]
    Ended(String, String),
    #[error("request {0} has {1} valid approval(s) of {2} needed{3}")]
    NotApproved(String, usize, u32, String),
    #[error("request {0}: approved at {1}, but this host's clock says {2} (more than {3} s apart)")]
    Clock(String, i64, i64, i64),
    #[error("request {0} ended at {1}")]
    Expired(String, i64),
    #[error("request {0} was not approved within its duration (by {1}): it has lapsed")]
    Lapsed(String, i64),
}

/// The last moment a fleet request can be in force anywhere: approved within its duration
/// (and the clock bound) of being made, it then lasts its duration. Its records in etcd
/// are of no use to any host after this (see `Core::fleet_done`).
pub fn last_in_force(r: &FleetRequest, max_skew: i64) -> i64 {
    let d = i64::try_from(r.duration_secs).unwrap_or(i64::MAX);
    r.created_at
        .saturating_add(d.saturating_mul(2))
        .saturating_add(max_skew.saturating_mul(2))
}

/// What this host may enforce: until `not_after`, approved by these approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub not_after: i64,
    pub approvers: Vec<String>,
}

/// Whether this host (`this_host`) may enforce `req` at `now`, given the approvals and ends
/// it has seen, judged only by its own fleet policy and the signatures:
/// - the request is signed by its host's key, under this policy, for a fleet role that
///   applies to this host, by a user the role lets request it, for no longer than the role
///   allows;
/// - no valid end names it;
/// - enough distinct approvers of the role, never the requester, each signed an approval
///   of this exact request (its digest) with one of their keys;
/// - the approval that completed it is within the policy's clock bound of this host's
///   clock. The grant ends `duration` after that approval: nobody's later record, and no
///   host's late arrival, lengthens it.
pub fn verify(
    fleet: &policy::FleetPolicy,
    this_host: &str,
    req: &Signed<FleetRequest>,
    approvals: &[Signed<Approval>],
    ends: &[Signed<End>],
    now: i64,
) -> Result<Decision, Refused> {
    let r = &req.record;
    let id = r.id.clone();
    let host = fleet
        .host(&r.host)
        .ok_or_else(|| Refused::UnknownHost(id.clone(), r.host.clone()))?;
    if !signed_by(req, REQUEST_NAMESPACE, std::slice::from_ref(&host.key))
        || !id_of_host(&r.id, &r.host)
    {
        return Err(Refused::BadRequestSignature(id, r.host.clone()));
    }
    if r.policy_digest != fleet.digest {
        return Err(Refused::PolicyMismatch(
            id,
            r.policy_digest.clone(),
            fleet.digest.clone(),
        ));
    }
    let role = fleet
        .role(&r.role)
        .ok_or_else(|| Refused::UnknownRole(id.clone(), r.role.clone()))?;
    if !r.hosts.iter().any(|h| h == this_host) || !fleet.applies(role, this_host) {
        return Err(Refused::NotForThisHost(id, this_host.to_string()));
    }
    if !role.requesters.contains(&r.user) {
        return Err(Refused::NotARequester(id, r.user.clone(), r.role.clone()));
    }
    if r.duration_secs == 0 || r.duration_secs > role.max_duration {
        return Err(Refused::BadDuration(
            id,
            format!(
                "{} s asked, role '{}' allows at most {} s",
                r.duration_secs, role.name, role.max_duration
            ),
        ));
    }
    let digest = r.digest();
    if let Some(end) = ends.iter().find(|e| end_valid(fleet, r, &digest, e)) {
        return Err(Refused::Ended(id, end.record.by.clone()));
    }
    // Distinct approvers of the role, never the requester, each with a valid signature of
    // an approval of this very request; the earliest approval of each counts.
    let mut valid: Vec<(&str, i64)> = Vec::new();
    let mut self_approved = false;
    for a in approvals {
        let ar = &a.record;
        if !approval_valid(fleet, role, r, &digest, a) {
            continue;
        }
        if ar.approver == r.user {
            self_approved = true;
            continue;
        }
        match valid.iter_mut().find(|(n, _)| *n == ar.approver) {
            Some(v) => v.1 = v.1.min(ar.approved_at),
            None => valid.push((&ar.approver, ar.approved_at)),
        }
    }
    valid.sort_by_key(|(_, at)| *at);
    let need = usize::try_from(role.approvals).unwrap_or(usize::MAX);
    // A self-service fleet role (no approvals) starts when the request was made; any other
    // when the approval that completed it was given.
    let start = match need.checked_sub(1) {
        None => r.created_at,
        Some(last) => match valid.get(last) {
            Some(&(_, completed)) => completed,
            None => {
                return Err(Refused::NotApproved(
                    id,
                    valid.len(),
                    role.approvals,
                    if self_approved {
                        "; the requester's own approval does not count".into()
                    } else {
                        String::new()
                    },
                ));
            }
        },
    };
    // Approved in this host's future: one of the clocks is wrong; never trusted.
    if start > now.saturating_add(fleet.max_skew) {
        return Err(Refused::Clock(id, start, now, fleet.max_skew));
    }
    if start < r.created_at.saturating_sub(fleet.max_skew) {
        return Err(Refused::Clock(id, start, r.created_at, fleet.max_skew));
    }
    // A request lapses unapproved after its duration: its records can then be let go.
    let lapses = r
        .created_at
        .saturating_add(i64::try_from(r.duration_secs).unwrap_or(i64::MAX))
        .saturating_add(fleet.max_skew);
    if start > lapses {
        return Err(Refused::Lapsed(id, lapses));
    }
    // Approved a little in this host's future (within the bound): it starts now, so it
    // never lasts longer than was asked.
    let start = start.min(now);
    let not_after = start.saturating_add(i64::try_from(r.duration_secs).unwrap_or(i64::MAX));
    if not_after <= now {
        return Err(Refused::Expired(id, not_after));
    }
    Ok(Decision {
        not_after,
        approvers: valid
            .iter()
            .take(need)
            .map(|(n, _)| (*n).to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests;
