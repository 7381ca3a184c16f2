//! Sessions opened under grants (sudo commands, ssh logins): which grant holds each one,
//! their records, taking them up again after a restart, warnings before the end, and
//! ending them with their grant.

use super::*;

impl Core {
    /// Ends the sessions registered under `grant` (a `session-end` record, their stored rows
    /// removed in the same transaction; the signals are sent even if that fails).
    pub(super) fn end_sessions_of(&mut self, grant: u64) {
        let sessions = self.sessions.take(grant);
        if sessions.is_empty() {
            return;
        }
        let pids: Vec<String> = sessions.iter().map(|s| s.pid.to_string()).collect();
        self.audit_with(
            &Actor::jitd(),
            "session-end",
            grant,
            format!("pids={} signal=HUP then KILL", pids.join(",")),
            |tx| store::delete_sessions(tx, grant, None),
        );
        crate::sessions::end(sessions);
    }

    /// Registers a session (pam_jit's session hook) under the grant that could have
    /// authorised it and ends first ([`Core::authorising_grant`]); it is ended when that
    /// grant ends, and its terminal (`tty`) gets the warnings before. Returns None if the
    /// user holds no such grant. For a sudo session of a role that logs I/O it also
    /// says where sudo records it: the newest session in the holder's I/O log directory
    /// (sudo has created it, and advanced its `seq` file, before it opens the PAM session).
    /// The audit record and the stored row are written by [`Core::record_session_open`],
    /// after the caller has its answer: they record a use, they do not authorize one, and
    /// their fsync need not hold up sudo.
    pub fn open_session(
        &mut self,
        who: &Actor,
        session: &SessionSpec,
        origin: &Origin,
    ) -> Result<Option<OpenedSession>> {
        let pid = session.pid;
        let Some(grant) = self.authorising_grant(&who.name, session)? else {
            return Ok(None);
        };
        let start_time = self
            .sessions
            .open(grant.id, pid, &origin.tty)
            .map_err(|e| Error::InvalidArgument(format!("cannot track session {pid}: {e}")))?;
        let iolog = (grant.log_io && origin.service.starts_with("sudo"))
            .then(|| crate::sudoers::newest_iolog(&self.policy.iolog_dir, &grant.user))
            .flatten();
        Ok(Some(OpenedSession {
            grant: grant.id,
            pid,
            start_time,
            iolog,
        }))
    }

    /// The `session-open` record (a use of the grant, where it came from, and where sudo
    /// records it when the role logs I/O) and the stored session, in one transaction.
    pub fn record_session_open(&mut self, who: &Actor, s: &OpenedSession, origin: &Origin) {
        let mut detail = format!(
            "pid={} service={} tty={} rhost={}",
            s.pid, origin.service, origin.tty, origin.rhost
        );
        if let Some(path) = &s.iolog {
            detail.push_str(&format!(" iolog={path}"));
        }
        let row = store::SessionRow {
            grant_id: s.grant,
            pid: s.pid,
            start_time: s.start_time,
            boot_id: self.clock.boot_id().to_string(),
            tty: origin.tty.clone(),
        };
        self.audit_with(who, "session-open", s.grant, detail, |tx| {
            store::insert_session(tx, &row)
        });
    }

    /// Takes up the stored sessions after a restart (before expiry runs, so the sessions of
    /// grants that ended while jitd was away are ended with them). A session whose process
    /// has gone, or whose pid now names another process, is forgotten; one whose grant is
    /// no longer active (jitd stopped between ending a grant and ending its sessions) is
    /// ended now. Returns how many are tracked again.
    pub(super) fn restore_sessions(&mut self) -> Result<usize> {
        let rows = self.store.sessions()?;
        let boot = self.clock.boot_id().to_string();
        let (mut tracked, mut forget, mut orphaned) = (0, Vec::new(), Vec::new());
        for row in rows {
            let restored = if row.boot_id == boot {
                self.sessions
                    .restore(row.grant_id, row.pid, row.start_time, &row.tty)
            } else {
                Err("from another boot".into())
            };
            // A grant that cannot be read counts as ended: its session ends (fail closed).
            let active = || matches!(self.get(row.grant_id), Ok(g) if g.state == State::Active);
            match restored {
                Ok(()) if active() => tracked += 1,
                Ok(()) => orphaned.push(row.grant_id),
                Err(why) => {
                    tracing::info!(
                        "session pid={} of grant {} not taken up: {why}",
                        row.pid,
                        row.grant_id
                    );
                    forget.push(row);
                }
            }
        }
        if !forget.is_empty() {
            self.commit(|tx, _| {
                for row in &forget {
                    store::delete_sessions(tx, row.grant_id, Some(row.pid))?;
                }
                Ok(())
            })?;
        }
        orphaned.dedup();
        for grant in orphaned {
            self.end_sessions_of(grant);
        }
        Ok(tracked)
    }

    /// The user's grants in force now (with `ssh`: of roles that admit ssh logins): from
    /// the index of grants in force, or from the database when there is none.
    pub(super) fn in_force(&self, user: &str, ssh: bool) -> Result<Vec<RequestRow>> {
        if let Some(index) = self.index.get() {
            return Ok(index.of(user, ssh));
        }
        // An account's grant is the one its name says; a user's are theirs but for the
        // grants of accounts (which are the accounts').
        let held = match crate::accounts::request_of(user) {
            Some(id) => self.store.get(id)?.into_iter().collect(),
            None => self.store.open_of_user(user)?,
        };
        Ok(held
            .into_iter()
            .filter(|r| r.holder() == user)
            .filter(|r| super::in_force::admits(&*self.clock, r, ssh))
            .collect())
    }

    /// The grant a session is bound to. jitd cannot see which sudoers rule sudo matched,
    /// so of the grants that could have authorised the session it takes the one that ends
    /// first (fail closed: the session never outlives the grant that authorised it). An
    /// ssh login: only grants of roles with `ssh = true`. A sudo session: the grants whose
    /// role runs as the session's target user; if none does (a static rule authorised it,
    /// or jitd cannot tell), every grant of the user.
    pub fn authorising_grant(&self, user: &str, s: &SessionSpec) -> Result<Option<RequestRow>> {
        let all = self.in_force(user, s.ssh)?;
        let by_target: Vec<&RequestRow> = all
            .iter()
            .filter(|r| s.ssh || s.target.as_ref().is_some_and(|t| r.run_as.contains(t)))
            .collect();
        let candidates = if by_target.is_empty() {
            all.iter().collect()
        } else {
            by_target
        };
        Ok(candidates
            .into_iter()
            .min_by_key(|r| (self.ms_left(r), r.id))
            .cloned())
    }

    /// Warns the terminals of an active grant's sessions once it is within
    /// [`crate::sessions::WARN_BEFORE`] of its end (`left_ms`).
    pub(super) fn warn_sessions(&mut self, r: &RequestRow, left_ms: i64) {
        let left = u64::try_from(left_ms / 1000).unwrap_or(0);
        if !crate::sessions::WARN_BEFORE.iter().any(|&t| left <= t) {
            return;
        }
        let length = u64::try_from(r.not_after - r.granted_at).unwrap_or(0);
        let (id, role, end) = (r.id, &r.role, r.not_after);
        let ending = self.groups_ending_with(r);
        // The terminals of an account's processes, as well as those of its sessions.
        let account_uid = r
            .account
            .then(|| store::account_of(self.store.conn(), r.id).ok().flatten())
            .flatten()
            .map(|a| a.uid);
        let extra = || {
            let mut ttys: Vec<String> = ending
                .iter()
                .flat_map(|&(uid, gid)| crate::sessions::carrying_group(uid, gid))
                .chain(account_uid.into_iter().flat_map(crate::sessions::of_uid))
                .filter_map(|s| s.tty.clone())
                .collect();
            ttys.sort_unstable();
            ttys.dedup();
            ttys
        };
        let n = self.sessions.warn(id, left, length, extra, |left| {
            format!(
                "\r\n\x07jit: your grant {id} ({role}) ends in {} (at {}); \
                 extend it with: jitctl extend {id} --by 30m --reason TEXT\r\n",
                format_duration(left.max(1)),
                format_rfc3339(end)
            )
        });
        if n > 0 {
            tracing::info!("warned {n} terminal(s) of grant {id}: {left} s left");
        }
    }
}
