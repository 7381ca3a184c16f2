//! Approvals: who may approve, never the requester under any identity, N distinct
//! approvers, and what the last approval starts (a grant, or an extension of one), checked
//! again at that moment.

use super::*;

impl Core {
    /// Records one approval. The request becomes active once it has the required number of
    /// distinct approvals, none of them from the requester; an extension is then applied to
    /// its grant. Everything that must hold when a grant starts (window, limits,
    /// separation of duties) is checked again at that moment; if it does not hold, the
    /// approval is refused and not recorded.
    pub fn approve(&mut self, who: &Actor, id: u64, comment: &str) -> Result<RequestRow> {
        let row = self.visible(who, id)?;
        if row.uid == who.uid || row.user == who.name {
            return Err(Error::NotAuthorized(format!(
                "{} may not approve their own request {id}",
                who.name
            )));
        }
        self.check_approver_identity(who, &row, "approve")?;
        if !self.is_approver(&row, who)? {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        if row.state != State::Pending {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only pending requests can be approved",
                row.state
            )));
        }
        let now = self.now();
        if row.pending_until != 0 && now >= row.pending_until {
            return Err(Error::WrongState(format!(
                "request {id} has timed out waiting for approval"
            )));
        }
        let already = self.store.approvers_of(id)?;
        if already
            .iter()
            .any(|(n, uid)| *uid == who.uid || *n == who.name)
        {
            return Err(Error::WrongState(format!(
                "{} has already approved request {id}",
                who.name
            )));
        }
        let approver_open = self.store.open_of_user(&who.name)?;
        self.policy
            .check_approver_separation(&row.role, &who.name, &held(&approver_open))?;
        let comment = if comment.trim().is_empty() {
            String::new()
        } else {
            String::from(Text::new("comment", comment, MAX_COMMENT)?)
        };
        let distinct = already.len() + 1;
        let activate = distinct >= usize::try_from(row.approvals_required).unwrap_or(usize::MAX);
        let activation = if activate {
            Some(self.activation(&row, now)?)
        } else {
            None
        };
        let (boot_id, boot_deadline) = match activation {
            Some(Activation::Grant { not_after } | Activation::Extension { not_after, .. }) => {
                self.boot_deadline(not_after)
            }
            None => (String::new(), 0),
        };
        self.commit(|tx, recs| {
            store::add_approval(tx, id, who, now, &comment)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "approve",
                    request_id: id,
                    detail: format!(
                        "approval {distinct}/{} comment={comment}",
                        row.approvals_required
                    ),
                },
            )?);
            match activation {
                None => {}
                Some(Activation::Grant { not_after }) => {
                    recs.push(store::transition_audited(
                        tx,
                        &Transition {
                            id,
                            from: State::Pending,
                            to: State::Active,
                            now,
                            not_after: Some(not_after),
                            decided_by: "",
                            decision_reason: "",
                        },
                        &Event {
                            at: now,
                            actor: who,
                            action: "grant",
                            request_id: id,
                            detail: format!(
                                "role={} not_after={}",
                                row.role,
                                format_rfc3339(not_after)
                            ),
                        },
                    )?);
                    store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
                }
                Some(Activation::Extension { grant, not_after }) => {
                    store::transition(
                        tx,
                        &Transition {
                            id,
                            from: State::Pending,
                            to: State::Applied,
                            now,
                            not_after: Some(not_after),
                            decided_by: "",
                            decision_reason: "",
                        },
                    )?;
                    store::set_not_after(tx, grant, not_after, now)?;
                    store::set_boot_deadline(tx, grant, &boot_id, boot_deadline)?;
                    recs.push(store::append_audit(
                        tx,
                        &Event {
                            at: now,
                            actor: who,
                            action: "extend",
                            request_id: grant,
                            detail: format!(
                                "extension={id} not_after={}",
                                format_rfc3339(not_after)
                            ),
                        },
                    )?);
                }
            }
            Ok(())
        })?;
        match activation {
            Some(Activation::Grant { .. }) => {
                let row = self.get(id)?;
                self.give_account_or_revoke(&row)?;
                self.install_or_revoke(&row)?;
                self.give_groups_or_revoke(&row)?;
            }
            Some(Activation::Extension { grant, .. }) => {
                let row = self.get(grant)?;
                self.install_or_revoke(&row)?;
            }
            None => {}
        }
        self.get(id)
    }

    /// What approving `row` would start now, or why it cannot.
    pub(super) fn activation(&self, row: &RequestRow, now: i64) -> Result<Activation> {
        let role = self.policy.role(&row.role).map_err(|_| {
            Error::WrongState(format!(
                "role '{}' is no longer in the policy; request {} cannot start",
                row.role, row.id
            ))
        })?;
        self.policy.check_window(role, now)?;
        if row.kind == Kind::Extension {
            let grant = self.get(row.extends)?;
            if grant.state != State::Active {
                return Err(Error::WrongState(format!(
                    "grant {} has ended ({}); extension {} cannot apply",
                    grant.id, grant.state, row.id
                )));
            }
            let not_after = self.policy.extension_end(
                role,
                grant.granted_at,
                grant.not_after,
                row.duration_secs,
                now,
            )?;
            return Ok(Activation::Extension {
                grant: grant.id,
                not_after,
            });
        }
        let open: Vec<RequestRow> = self
            .store
            .open_of_user(&row.user)?
            .into_iter()
            .filter(|r| r.id != row.id)
            .collect();
        let held = held(&open);
        self.policy.check_limits(
            role,
            &row.user,
            &held,
            self.active_of_role(&row.role)?,
            true,
        )?;
        self.policy.check_separation(&row.role, &row.user, &held)?;
        Ok(Activation::Grant {
            not_after: self
                .policy
                .grant_end(role, row.kind, now, row.duration_secs),
        })
    }

    /// Refuses a decision on `row` that comes from its requester under another identity:
    /// from a process of the requester's own login session (`loginuid`, which su and sudo
    /// keep), or from a user the requester can run commands as through an active grant
    /// (`sudo -u approver jitctl approve`). `what` names the decision for the message.
    /// The person behind an approval (or a break-glass review) must be an approver of the
    /// role, and never the requester, whatever identity they call from:
    /// - not from a login session of the requester (`loginuid`, which su and sudo keep);
    /// - from another user's login session only if that user is an approver of the role
    ///   too, and has not decided on this request already (one person, one approval);
    /// - not while someone other than the approver holds an active grant whose role runs as
    ///   the approver (`sudo -u approver jitctl approve`): that identity is not the
    ///   approver's alone until the grant ends.
    ///
    /// `what` names the decision for the message.
    /// Whose login session `who` calls from, when it is someone else's (its loginuid and
    /// that user's name): the person at the keyboard.
    pub(super) fn session_person(&self, who: &Actor) -> Result<Option<(u32, String)>> {
        let Some(login) = who.login_uid.filter(|l| *l != who.uid) else {
            return Ok(None);
        };
        let person = self
            .dir
            .name_of(login)
            .map_err(Error::Internal)?
            .unwrap_or_else(|| format!("uid {login}"));
        Ok(Some((login, person)))
    }

    pub(super) fn check_approver_identity(
        &self,
        who: &Actor,
        row: &RequestRow,
        what: &str,
    ) -> Result<()> {
        let refuse = |why: String| {
            Err(Error::NotAuthorized(format!(
                "{} may not {what} request {}: {why}",
                who.name, row.id
            )))
        };
        if who.login_uid == Some(row.uid) {
            return refuse(format!(
                "the call comes from a login session of its requester {} (loginuid {})",
                row.user, row.uid
            ));
        }
        if let Some((login, person)) = self.session_person(who)? {
            let approves = self.policy.role(&row.role).is_ok_and(|role| {
                self.policy
                    .may_approve(role, &person, row.created_at, self.now(), self.dir.as_ref())
                    .unwrap_or(false)
            });
            if !approves {
                return refuse(format!(
                    "the call comes from a login session of {person} (loginuid {login}), who \
                     is not an approver of role '{}'",
                    row.role
                ));
            }
            if self
                .store
                .approvers_of(row.id)?
                .iter()
                .any(|(n, uid)| *uid == login || *n == person)
            {
                return refuse(format!(
                    "the call comes from a login session of {person} (loginuid {login}), who \
                     has already approved it"
                ));
            }
        }
        let assumable = self
            .store
            .by_state(&[State::Active])?
            .into_iter()
            .filter(|g| g.uid != who.uid && g.kind != Kind::Extension && self.ms_left(g) > 0)
            .find(|g| g.run_as.contains(&who.name));
        if let Some(g) = assumable {
            let whose = if g.uid == row.uid {
                "its requester"
            } else {
                "another user,"
            };
            return refuse(format!(
                "{whose} {} can run commands as {} (grant {}, role '{}') until it ends",
                g.user, who.name, g.id, g.role
            ));
        }
        Ok(())
    }
}
