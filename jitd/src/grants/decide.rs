//! The decisions: requests, extensions, approvals and every way a request or grant ends
//! by someone's hand (deny, revoke, release, cancel), and the break-glass review. Each is
//! authorized, checked against the policy, committed with its audit record, and only then
//! applied to the sudoers rules.

use super::*;

impl Core {
    /// Submits a request. A self-service role, or a break-glass request, is granted at
    /// once. `verdict` is what the role's reason validator answered (see
    /// [`Core::validator_for`]).
    pub fn request(&mut self, who: &Actor, ask: &Ask, verdict: &Verdict) -> Result<RequestRow> {
        let (kind, origin) = (ask.kind, &ask.origin);
        if kind == Kind::Extension {
            return Err(Error::InvalidArgument(
                "extensions are requested with extend".into(),
            ));
        }
        let now = self.now();
        refuse_accounts(who)?;
        let role = self.policy.role(&ask.role)?.clone();
        let (duration, reason) =
            self.policy
                .check_request(&role, &who.name, ask, now, self.dir.as_ref())?;
        let ssh_keys = keys_for(&role, ask)?;
        let open = self.store.open_of_user(&who.name)?;
        if let Some(dup) = open
            .iter()
            .find(|r| r.role == role.name && r.kind != Kind::Extension)
        {
            return Err(Error::refused(
                Refusal::Duplicate,
                match dup.state {
                    State::Active => format!(
                        "{} already holds role '{}' (grant {}) until {}; extend or release it",
                        who.name,
                        role.name,
                        dup.id,
                        format_rfc3339(dup.not_after)
                    ),
                    _ => format!(
                        "request {} for role '{}' is already pending; wait for it or cancel it",
                        dup.id, role.name
                    ),
                },
            ));
        }
        let held = held(&open);
        let role_active = self.active_of_role(&role.name)?;
        let immediate = role.approvals == 0 || kind == Kind::BreakGlass;
        // A request that starts at once is not a pending one: only the active limits apply.
        self.policy
            .check_limits(&role, &who.name, &held, role_active, immediate)?;
        self.policy.check_separation(&role.name, &who.name, &held)?;
        let note = role.judge(verdict)?;
        let not_after = if immediate {
            self.policy.grant_end(&role, kind, now, duration)
        } else {
            0
        };
        let new = NewRequest {
            user: who.name.clone(),
            uid: who.uid,
            role: role.name.clone(),
            reason: reason.clone(),
            duration_secs: duration,
            state: if immediate {
                State::Active
            } else {
                State::Pending
            },
            now,
            not_after,
            pending_until: if immediate {
                0
            } else {
                now + to_secs(role.pending_timeout)
            },
            approvals_required: if immediate { 0 } else { role.approvals },
            approvers: role.approvers.iter().map(|p| p.spec()).collect(),
            commands: role.commands.clone(),
            run_as: role.run_as_list.clone(),
            reauth: role.reauth,
            // An account exists to be logged into.
            ssh: role.ssh || role.account,
            service: origin.service.clone(),
            tty: origin.tty.clone(),
            rhost: origin.rhost.clone(),
            kind,
            extends: 0,
            log_io: role.log_io,
            groups: role.groups.clone(),
            account: role.account,
            shell: role.shell.clone(),
            ssh_keys,
            key_fingerprints: ask.key_fingerprints.clone(),
        };
        let keys_note = if ask.key_fingerprints.is_empty() {
            String::new()
        } else {
            format!(" keys={}", ask.key_fingerprints.join(","))
        };
        let (boot_id, boot_deadline) = self.boot_deadline(not_after);
        let id = self.commit(|tx, recs| {
            let id = store::insert_request(tx, &new)?;
            if new.account {
                let name = crate::accounts::account_name(&new.user, id);
                if name.len() > crate::accounts::MAX_NAME {
                    return Err(Error::InvalidArgument(format!(
                        "role '{}' grants an account, and {name} would be over {} \
                         characters: ask an admin for a role without an account",
                        new.role,
                        crate::accounts::MAX_NAME
                    )));
                }
            }
            if immediate {
                store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
            }
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: if kind == Kind::BreakGlass {
                        "break-glass"
                    } else {
                        "request"
                    },
                    request_id: id,
                    detail: format!(
                        "role={} duration={} service={} tty={} rhost={} {note}{keys_note} \
                         reason={}",
                        new.role,
                        format_duration(duration),
                        new.service,
                        new.tty,
                        new.rhost,
                        new.reason
                    ),
                },
            )?);
            if immediate {
                let how = match kind {
                    Kind::BreakGlass => "break-glass, needs review",
                    _ => "self-service",
                };
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: who,
                        action: "grant",
                        request_id: id,
                        detail: format!(
                            "role={} {how} not_after={}",
                            new.role,
                            format_rfc3339(new.not_after)
                        ),
                    },
                )?);
            }
            Ok(id)
        })?;
        let row = self.get(id)?;
        if immediate {
            self.give_account_or_revoke(&row)?;
            self.install_or_revoke(&row)?;
            self.give_groups_or_revoke(&row)?;
        }
        self.get(id)
    }

    pub(super) fn active_of_role(&self, role: &str) -> Result<usize> {
        Ok(self
            .store
            .by_state(&[State::Active])?
            .iter()
            .filter(|r| r.role == role)
            .count())
    }

    /// Asks for `by` seconds more on the caller's active grant `id`. The extension is a
    /// request of its own under the role's current approval rule: applied at once for a
    /// self-service role, pending approval otherwise. It can never take the grant past
    /// the role's `max_total_duration` (counted from activation) or, unless the role
    /// allows it, past the end of its window.
    pub fn extend(
        &mut self,
        who: &Actor,
        id: u64,
        by: u64,
        reason: &str,
        verdict: &Verdict,
    ) -> Result<RequestRow> {
        if by == 0 {
            return Err(Error::InvalidArgument("say how much longer (--by)".into()));
        }
        if by > jit_proto::MAX_DURATION_SECS {
            return Err(Error::InvalidArgument(format!(
                "an extension is at most {}",
                format_duration(jit_proto::MAX_DURATION_SECS)
            )));
        }
        refuse_accounts(who)?;
        let grant = self.own_active_grant(who, id)?;
        // A fleet grant's terms are the fleet's (its approvers, its max_duration): a local
        // role of the same name must not lengthen it.
        if grant.service == "fleet" {
            return Err(Error::WrongState(format!(
                "request {id} is a fleet grant: it cannot be extended here; ask for it again with jitctl request --hosts"
            )));
        }
        let now = self.now();
        let role = self.policy.role(&grant.role)?.clone();
        let (_, reason) = self.policy.check_request(
            &role,
            &who.name,
            &Ask::extension(who, &role.name, by, reason),
            now,
            self.dir.as_ref(),
        )?;
        let new_end =
            self.policy
                .extension_end(&role, grant.granted_at, grant.not_after, by, now)?;
        let open = self.store.open_of_user(&who.name)?;
        if let Some(dup) = open
            .iter()
            .find(|r| r.kind == Kind::Extension && r.extends == id)
        {
            return Err(Error::refused(
                Refusal::Duplicate,
                format!(
                    "extension request {} for grant {id} is already pending",
                    dup.id
                ),
            ));
        }
        let note = role.judge(verdict)?;
        let immediate = role.approvals == 0;
        let new = NewRequest {
            user: who.name.clone(),
            uid: who.uid,
            role: role.name.clone(),
            reason,
            duration_secs: by,
            state: if immediate {
                State::Applied
            } else {
                State::Pending
            },
            now,
            not_after: if immediate { new_end } else { 0 },
            // An extension cannot wait past the grant it extends.
            pending_until: if immediate {
                0
            } else {
                (now + to_secs(role.pending_timeout)).min(grant.not_after)
            },
            approvals_required: role.approvals,
            approvers: role.approvers.iter().map(|p| p.spec()).collect(),
            commands: grant.commands.clone(),
            run_as: grant.run_as.clone(),
            reauth: grant.reauth,
            ssh: grant.ssh,
            service: "bus".into(),
            tty: who.tty.clone(),
            rhost: String::new(),
            kind: Kind::Extension,
            extends: id,
            log_io: grant.log_io,
            groups: grant.groups.clone(),
            // An extension is not a grant: the account stays the grant's.
            account: false,
            shell: String::new(),
            ssh_keys: Vec::new(),
            key_fingerprints: Vec::new(),
        };
        let (boot_id, boot_deadline) = self.boot_deadline(new_end);
        let ext = self.commit(|tx, recs| {
            let ext = store::insert_request(tx, &new)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "request-extension",
                    request_id: ext,
                    detail: format!(
                        "grant={id} role={} by={} {note} reason={}",
                        new.role,
                        format_duration(by),
                        new.reason
                    ),
                },
            )?);
            if immediate {
                store::set_not_after(tx, id, new_end, now)?;
                store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: who,
                        action: "extend",
                        request_id: id,
                        detail: format!(
                            "extension={ext} self-service not_after={}",
                            format_rfc3339(new_end)
                        ),
                    },
                )?);
            }
            Ok(ext)
        })?;
        if immediate {
            let row = self.get(id)?;
            self.install_or_revoke(&row)?;
        }
        self.get(ext)
    }

    /// Grant `id`, if it is active and `who` holds it (what may be extended).
    pub fn own_active_grant(&self, who: &Actor, id: u64) -> Result<RequestRow> {
        let grant = self.visible(who, id)?;
        if grant.uid != who.uid || grant.user != who.name {
            return Err(Error::NotAuthorized(format!(
                "grant {id} belongs to {}; only its holder can extend it",
                grant.user
            )));
        }
        if grant.state != State::Active || grant.kind == Kind::Extension {
            return Err(Error::WrongState(format!(
                "request {id} is not an active grant ({})",
                grant.state
            )));
        }
        Ok(grant)
    }

    /// Acknowledges a break-glass grant: an approver of its role (or root), never its
    /// holder, with a comment.
    pub fn acknowledge(&mut self, who: &Actor, id: u64, comment: &str) -> Result<RequestRow> {
        let comment = String::from(Text::new("comment", comment, MAX_COMMENT)?);
        let row = self.visible(who, id)?;
        if row.kind != Kind::BreakGlass {
            return Err(Error::WrongState(format!(
                "request {id} is not a break-glass grant"
            )));
        }
        if row.uid == who.uid || row.user == who.name {
            return Err(Error::NotAuthorized(format!(
                "{} may not review their own break-glass grant {id}",
                who.name
            )));
        }
        self.check_approver_identity(who, &row, "review")?;
        let direct = match self.policy.role(&row.role) {
            Ok(_) => self
                .policy
                .approver_view(&who.name, self.dir.as_ref())?
                .direct
                .contains(&row.role),
            Err(_) => false,
        };
        if !(who.uid == 0 || direct) {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        if !row.reviewed_by.is_empty() {
            return Err(Error::WrongState(format!(
                "break-glass grant {id} was already reviewed by {}",
                row.reviewed_by
            )));
        }
        let now = self.now();
        self.commit(|tx, recs| {
            store::mark_reviewed(tx, id, &who.name, now, &comment)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "review",
                    request_id: id,
                    detail: format!("role={} holder={} comment={comment}", row.role, row.user),
                },
            )?);
            Ok(())
        })?;
        self.get(id)
    }

    pub(super) fn end(
        &mut self,
        who: &Actor,
        row: &RequestRow,
        to: State,
        action: &str,
        reason: &str,
    ) -> Result<RequestRow> {
        let now = self.now();
        let from = row.state;
        let id = row.id;
        self.commit(|tx, recs| {
            recs.push(store::transition_audited(
                tx,
                &Transition {
                    id,
                    from,
                    to,
                    now,
                    not_after: None,
                    decided_by: &who.name,
                    decision_reason: reason,
                },
                &Event {
                    at: now,
                    actor: who,
                    action,
                    request_id: id,
                    detail: format!("role={} from={from} reason={reason}", row.role),
                },
            )?);
            Ok(())
        })?;
        if from == State::Active {
            self.remove_rules_of(std::slice::from_ref(row));
        }
        self.get(id)
    }

    /// An approver (or root) denies a pending request.
    pub fn deny(&mut self, who: &Actor, id: u64, reason: &str) -> Result<RequestRow> {
        self.end_by_approver(who, id, reason, Ending::Deny)
    }

    /// An approver (or root) ends an active grant.
    pub fn revoke(&mut self, who: &Actor, id: u64, reason: &str) -> Result<RequestRow> {
        self.end_by_approver(who, id, reason, Ending::Revoke)
    }

    pub(super) fn end_by_approver(
        &mut self,
        who: &Actor,
        id: u64,
        reason: &str,
        how: Ending,
    ) -> Result<RequestRow> {
        let reason = String::from(Text::new("reason", reason, MAX_COMMENT)?);
        let row = self.visible(who, id)?;
        if !(who.uid == 0 || self.is_approver(&row, who)?) {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        let (from, to, verb, what) = match how {
            Ending::Deny => (State::Pending, State::Denied, "deny", "pending requests"),
            Ending::Revoke => (State::Active, State::Revoked, "revoke", "active grants"),
        };
        if row.state != from {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only {what} can be {}",
                row.state,
                to.as_str()
            )));
        }
        self.end(who, &row, to, verb, &reason)
    }

    /// Ends the caller's own grant early. `id` 0 means "my only active grant".
    pub fn release(&mut self, who: &Actor, id: u64) -> Result<RequestRow> {
        let row = if id == 0 {
            let mine: Vec<RequestRow> = self
                .store
                .open_of_user(&who.name)?
                .into_iter()
                .filter(|r| r.state == State::Active && r.uid == who.uid)
                .collect();
            match mine.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::NotFound(format!("{} has no active grant", who.name))),
                many => {
                    let ids: Vec<String> = many.iter().map(|r| r.id.to_string()).collect();
                    return Err(Error::InvalidArgument(format!(
                        "{} has several active grants ({}); say which to release",
                        who.name,
                        ids.join(", ")
                    )));
                }
            }
        } else {
            self.visible(who, id)?
        };
        if row.uid != who.uid {
            return Err(Error::NotAuthorized(format!(
                "request {} belongs to {}; only its holder can release it",
                row.id, row.user
            )));
        }
        if row.state != State::Active {
            return Err(Error::WrongState(format!(
                "request {} is {}; only active grants can be released",
                row.id, row.state
            )));
        }
        self.end(who, &row, State::Released, "release", "released by holder")
    }

    /// Withdraws the caller's own pending request.
    pub fn cancel(&mut self, who: &Actor, id: u64) -> Result<RequestRow> {
        let row = self.visible(who, id)?;
        if row.uid != who.uid {
            return Err(Error::NotAuthorized(format!(
                "request {id} belongs to {}; only its requester can cancel it",
                row.user
            )));
        }
        if row.state != State::Pending {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only pending requests can be cancelled",
                row.state
            )));
        }
        self.end(
            who,
            &row,
            State::Cancelled,
            "cancel",
            "cancelled by requester",
        )
    }
}

/// Ephemeral accounts act for nobody: one that could request, extend or decide would let
/// its requester be their own approver under another name (an account made in an
/// approvers' group), or hold rights past the grant that made it.
pub(super) fn refuse_accounts(who: &Actor) -> Result<()> {
    if crate::accounts::in_range(who.uid) {
        return Err(Error::NotAuthorized(format!(
            "{} is an ephemeral account of jit: it cannot request or decide anything; ask \
             as the user it was made for",
            who.name
        )));
    }
    Ok(())
}

/// The keys a request carries: required for a role that grants an account (each checked
/// again against the grammar), refused for any other.
fn keys_for(role: &crate::policy::Role, ask: &Ask) -> Result<Vec<String>> {
    if !role.account {
        if !ask.ssh_keys.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "role '{}' does not grant an account: it takes no SSH keys",
                role.name
            )));
        }
        return Ok(Vec::new());
    }
    if ask.ssh_keys.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "role '{}' grants an account of its own: give the SSH public keys to log into \
             it with (jitctl request reads ~/.ssh/authorized_keys, or --ssh-key FILE)",
            role.name
        )));
    }
    if ask.ssh_keys.len() > crate::accounts::MAX_KEYS {
        return Err(Error::InvalidArgument(format!(
            "at most {} SSH keys",
            crate::accounts::MAX_KEYS
        )));
    }
    ask.ssh_keys
        .iter()
        .map(|k| crate::accounts::parse_key(k).map_err(Error::InvalidArgument))
        .collect()
}
