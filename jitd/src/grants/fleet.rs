//! Fleet records offered by the fleet agent: each offer is verified here, by this host's own
//! fleet policy and the signatures ([`crate::fleet::verify`]), never trusted for having
//! come from the agent; a verified grant is applied with the machinery of local grants (a
//! request row, the sudoers rule with NOTAFTER, sessions, expiry, audit), an end revokes
//! it. Every offer gets an acknowledgement saying what this host did and why, for the
//! agent to publish.

use super::*;
use crate::fleet::{Approval, End, FleetRequest, Refused, Signed};
use serde::Serialize;

/// What this host did with an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The fleet request's id (empty when the offer could not be read).
    pub id: String,
    pub host: String,
    /// `applied`, `unchanged`, `ended`, `refused`.
    pub outcome: &'static str,
    pub reason: String,
    /// The local request holding it (0: none).
    pub local_id: u64,
    pub not_after: i64,
}

/// This host's fleet: its policy and the name it has in it.
pub struct FleetConfig {
    pub policy: crate::fleet::policy::FleetPolicy,
    pub host: String,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

impl Core {
    /// Makes this host a member of a fleet (jitd's `--fleet`).
    pub fn set_fleet(&mut self, fleet: FleetConfig) {
        self.fleet = Some(fleet);
    }

    /// An offer of the fleet agent (`who`): the request, the approvals and the ends it has
    /// seen for it, each as JSON of a signed record.
    pub fn offer_fleet(
        &mut self,
        who: &Actor,
        request: &str,
        approvals: &[String],
        ends: &[String],
    ) -> Result<Ack> {
        let Some(fleet) = &self.fleet else {
            return Err(Error::WrongState(
                "this host is not in a fleet (jitd has no --fleet policy)".into(),
            ));
        };
        let host = fleet.host.clone();
        let req: Signed<FleetRequest> = parse("request", request)?;
        // Approvals and ends that cannot be read are left out, not a reason to refuse the
        // offer: anyone who can write to etcd could otherwise keep a real end from landing.
        let approvals: Vec<Signed<Approval>> = approvals
            .iter()
            .filter_map(|a| parse("approval", a).ok())
            .collect();
        let ends: Vec<Signed<End>> = ends.iter().filter_map(|e| parse("end", e).ok()).collect();
        let now = self.now();
        let verdict = crate::fleet::verify(&fleet.policy, &host, &req, &approvals, &ends, now);
        let r = &req.record;
        let local = store::fleet_grant(self.store.conn(), &r.id)?;
        // What an unverified record says is bounded and escaped wherever it is repeated
        // (acks, the audit trail): it may be anyone's junk.
        let said = |s: &str| crate::names::cut(&crate::names::escape(s), 128);
        let ack = |outcome, reason: String, local_id, not_after| Ack {
            id: said(&r.id),
            host: host.clone(),
            outcome,
            reason,
            local_id,
            not_after,
        };
        match (verdict, local) {
            (Ok(d), None) => self.apply_fleet(who, &req.record, &d, &host, now),
            // Applied here before: said as it stands here (revoked on this host by root, or
            // expired, it is never applied again).
            (Ok(_), Some(id)) => {
                let row = self.get(id)?;
                Ok(match row.state {
                    State::Active => ack("unchanged", "applied already".into(), id, row.not_after),
                    other => ack("ended", other.as_str().into(), id, row.not_after),
                })
            }
            (Err(e), Some(id)) => {
                let row = self.get(id)?;
                if row.state != State::Active {
                    return Ok(ack("ended", row.state.as_str().into(), id, row.not_after));
                }
                // Time runs out by itself; anything else that no longer verifies (an end,
                // a changed policy) ends it now: fail closed.
                if matches!(e, Refused::Expired(..)) {
                    return Ok(ack("unchanged", said(&e.to_string()), id, row.not_after));
                }
                let why = format!("fleet request {}: {}", said(&r.id), said(&e.to_string()));
                self.revoke_as_jitd(&[id], &why)?;
                self.remove_rules_of(&[row]);
                Ok(ack("ended", said(&e.to_string()), id, 0))
            }
            (Err(e), None) => {
                self.record(
                    who,
                    "fleet-refuse",
                    0,
                    format!(
                        "fleet={} from host={} user={} role={}: {}",
                        said(&r.id),
                        said(&r.host),
                        said(&r.user),
                        said(&r.role),
                        said(&e.to_string())
                    ),
                )?;
                Ok(ack("refused", said(&e.to_string()), 0, 0))
            }
        }
    }

    /// A verified fleet grant, applied as a local grant of the fleet role's rule.
    fn apply_fleet(
        &mut self,
        who: &Actor,
        r: &FleetRequest,
        d: &crate::fleet::Decision,
        host: &str,
        now: i64,
    ) -> Result<Ack> {
        let refuse = |reason: String| Ack {
            id: r.id.clone(),
            host: host.to_string(),
            outcome: "refused",
            reason,
            local_id: 0,
            not_after: 0,
        };
        let Some(fleet) = &self.fleet else {
            return Ok(refuse("not in a fleet".into()));
        };
        let Some(role) = fleet.policy.role(&r.role).cloned() else {
            return Ok(refuse(format!("no fleet role '{}'", r.role)));
        };
        let (Ok(user), Ok(role_name)) = (
            UserName::new(r.user.as_str()),
            RoleName::new(r.role.as_str()),
        ) else {
            return Ok(refuse(
                "the user or role name is not in jit's grammar".into(),
            ));
        };
        // The requester must be a user of this host: the rule is theirs.
        let Some(uid) = self.dir.uid_of(&user).map_err(Error::Internal)? else {
            return Ok(refuse(format!("no user {user} on this host")));
        };
        let reason = crate::names::validate_text("reason", &r.reason, self.policy.reason_max)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let new = NewRequest {
            user,
            uid,
            role: role_name,
            reason,
            duration_secs: r.duration_secs,
            state: State::Active,
            now,
            not_after: d.not_after,
            pending_until: 0,
            approvals_required: role.approvals,
            approvers: d.approvers.clone(),
            commands: role.commands.clone(),
            run_as: role.run_as.clone(),
            reauth: false,
            ssh: false,
            service: "fleet".into(),
            tty: String::new(),
            rhost: r.host.clone(),
            kind: Kind::Grant,
            extends: 0,
            log_io: false,
            groups: Vec::new(),
            account: false,
            shell: String::new(),
            ssh_keys: Vec::new(),
            key_fingerprints: Vec::new(),
        };
        let (boot_id, boot_deadline) = self.boot_deadline(d.not_after);
        let detail = format!(
            "fleet={} from host={} user={} role={} approved by [{}] not_after={} reason={}",
            r.id,
            r.host,
            r.user,
            r.role,
            d.approvers.join(","),
            format_rfc3339(d.not_after),
            new.reason
        );
        let id = self.commit(|tx, recs| {
            let id = store::insert_request(tx, &new)?;
            store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
            store::insert_fleet_grant(tx, &r.id, id, now)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "fleet-grant",
                    request_id: id,
                    detail,
                },
            )?);
            Ok(id)
        })?;
        let row = self.get(id)?;
        self.install_or_revoke(&row)?;
        Ok(Ack {
            id: r.id.clone(),
            host: host.to_string(),
            outcome: "applied",
            reason: String::new(),
            local_id: id,
            not_after: d.not_after,
        })
    }
}
