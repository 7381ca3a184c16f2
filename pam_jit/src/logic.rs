//! What each hook does, written against small traits ([`Pam`], [`Jitd`], [`Host`]) so unit
//! tests drive it with scripted fakes. No FFI here.

use crate::args::{Config, Mode};
use jit_proto::{GrantCheck, RequestInfo, RoleInfo, State, format_duration, parse_duration};
use std::time::Instant;

/// The PAM handle as the logic sees it.
pub trait Pam {
    /// PAM_USER. An error means the user cannot be determined.
    fn user(&mut self) -> Result<String, Error>;
    /// PAM_RUSER: the invoking user (sudo sets it; PAM_USER becomes the target user for the
    /// session phase).
    fn ruser(&self) -> String;
    fn service(&self) -> String;
    fn tty(&self) -> String;
    fn rhost(&self) -> String;
    /// Asks with echo on; `None` when the application gave no answer.
    fn prompt(&mut self, msg: &str) -> Result<Option<String>, Error>;
    /// PAM_TEXT_INFO; failures to show are ignored.
    fn info(&mut self, msg: &str);
    /// PAM_ERROR_MSG; failures to show are ignored.
    fn error(&mut self, msg: &str);
    /// Decisions to syslog (authpriv).
    fn log(&mut self, msg: &str);
    /// Whether auth already ran in this PAM transaction (sudo retries auth up to 3 times).
    fn auth_done(&self) -> bool;
    fn set_auth_done(&mut self);
}

/// jitd's PAM interface.
pub trait Jitd {
    fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck, Error>;
    fn roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error>;
    fn request(&self, req: &Submit<'_>) -> Result<RequestInfo, Error>;
    fn wait(&self, user: &str, id: u64, secs: u32) -> Result<RequestInfo, Error>;
    fn open_session(&self, s: &SessionOpen<'_>) -> Result<u64, Error>;
}

/// A session to register with jitd, and where it comes from (PAM items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOpen<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub tty: &'a str,
    pub rhost: &'a str,
    pub pid: u32,
}

/// Facts about the host.
pub trait Host {
    fn hostname(&self) -> String;
    fn in_group(&self, user: &str, group: &str) -> Result<bool, String>;
    fn now(&self) -> i64;
}

pub struct Submit<'a> {
    pub user: &'a str,
    pub role: &'a str,
    pub duration_secs: u64,
    pub reason: &'a str,
    pub service: &'a str,
    pub tty: &'a str,
    pub rhost: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad module argument: always denies.
    Config(String),
    /// PAM could not give us the user or an item.
    Pam(String),
    /// The conversation failed (no terminal, sudo -n...).
    Conversation(String),
    /// jitd could not be reached, timed out, or answered nonsense.
    Unreachable(String),
    /// jitd answered with a refusal.
    Refused(String),
}

/// What a hook decided, before it becomes a PAM code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Step aside: let the rest of the stack decide.
    Ignore,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Auth,
    Account,
    OpenSession,
    CloseSession,
}

/// Whether pam_jit is the gate for this phase: then every error denies.
pub fn is_gate(cfg: Option<&Config>, phase: Phase) -> bool {
    match (cfg, phase) {
        // Without a valid configuration we cannot tell: treat as the gate.
        (None, _) => true,
        (Some(_), Phase::CloseSession) => false,
        // A session that cannot be registered would not be ended with its grant.
        (Some(c), Phase::OpenSession) => c.require_grant,
        (Some(c), Phase::Account) => c.mode == Mode::Ssh || c.require_grant,
        (Some(c), Phase::Auth) => c.require_grant,
    }
}

/// The one place a result becomes a decision. A configuration error always denies;
/// any other error denies where pam_jit is the gate and steps aside elsewhere.
/// No error ever becomes Success.
pub fn decide(gate: bool, result: &Result<Verdict, Error>) -> Verdict {
    match result {
        Ok(v) => *v,
        Err(Error::Config(_)) => Verdict::Deny,
        Err(_) if gate => Verdict::Deny,
        Err(_) => Verdict::Ignore,
    }
}

const ASK_ATTEMPTS: usize = 3;
/// One long-poll slice while waiting for an approval.
const WAIT_SLICE_SECS: u64 = 10;

fn unreachable_message(e: &Error) -> String {
    match e {
        Error::Unreachable(m) => format!("jit: cannot reach jitd ({m})"),
        Error::Refused(m) => format!("jit: refused: {m}"),
        Error::Conversation(m) => format!("jit: cannot ask for a reason here ({m})"),
        Error::Pam(m) | Error::Config(m) => format!("jit: {m}"),
    }
}

/// `auth` for sudo: when the user has no active grant, offer the roles they may request,
/// ask for role, reason and duration, submit, and wait (bounded) for a decision.
pub fn authenticate(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
) -> Result<Verdict, Error> {
    let user = pam.user()?;
    if pam.auth_done() {
        // sudo's second or third auth attempt in the same transaction: never a second request.
        return Ok(Verdict::Ignore);
    }
    pam.set_auth_done();
    let ssh = cfg.mode == Mode::Ssh;
    let result = (|| {
        let check = jitd.check(&user, ssh)?;
        if check.active {
            return Ok(Verdict::Ignore);
        }
        let roles: Vec<RoleInfo> = jitd
            .roles(&user)?
            .into_iter()
            .filter(|r| !ssh || r.ssh)
            .collect();
        if roles.is_empty() {
            return Ok(Verdict::Ignore);
        }
        ask_and_submit(cfg, pam, jitd, host, &user, &roles)
    })();
    if let Err(e) = &result {
        pam.error(&unreachable_message(e));
        pam.log(&format!("auth for {user}: {e:?}"));
    }
    result
}

fn ask_and_submit(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
    user: &str,
    roles: &[RoleInfo],
) -> Result<Verdict, Error> {
    pam.info(&format!(
        "jit: no active grant for {user} on {}.",
        host.hostname()
    ));
    let listed: Vec<String> = roles
        .iter()
        .map(|r| format!("{} ({})", r.name, r.summary()))
        .collect();
    pam.info(&format!(
        "jit: roles you may request: {}",
        listed.join(", ")
    ));

    let Some(role) = ask_role(pam, roles)? else {
        pam.info("jit: no role chosen; continuing without a grant.");
        return Ok(Verdict::Ignore);
    };
    let Some(reason) = ask_reason(pam, role)? else {
        pam.info("jit: no reason given; nothing was requested.");
        return Ok(Verdict::Ignore);
    };
    let Some(duration) = ask_duration(pam, role)? else {
        pam.info("jit: no valid duration given; nothing was requested.");
        return Ok(Verdict::Ignore);
    };

    let (service, tty, rhost) = (pam.service(), pam.tty(), pam.rhost());
    let req = jitd.request(&Submit {
        user,
        role: &role.name,
        duration_secs: duration,
        reason: &reason,
        service: &service,
        tty: &tty,
        rhost: &rhost,
    })?;
    pam.log(&format!(
        "user={user} submitted request {} for role {} ({}) via {service}",
        req.id, req.role, req.state
    ));
    let req = if req.state() == Some(State::Pending) && !cfg.wait.is_zero() {
        pam.info(&format!(
            "jit: role '{}' needs {} approval(s) from {}; waiting up to {} (request {}).",
            req.role,
            req.approvals_required,
            req.approvers.join(", "),
            format_duration(cfg.wait.as_secs()),
            req.id
        ));
        wait_for_decision(cfg, pam, jitd, user, req)?
    } else {
        req
    };
    report(pam, host, &req);
    Ok(Verdict::Ignore)
}

fn ask_role<'r>(pam: &mut dyn Pam, roles: &'r [RoleInfo]) -> Result<Option<&'r RoleInfo>, Error> {
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt("jit: role (Enter to skip): ")?;
        let answer = answer.as_deref().map(str::trim).unwrap_or("");
        if answer.is_empty() {
            return Ok(None);
        }
        match roles.iter().find(|r| r.name == answer) {
            Some(r) => return Ok(Some(r)),
            None => pam.error(&format!(
                "jit: '{}' is not a role you may request.",
                answer.escape_debug()
            )),
        }
    }
    Ok(None)
}

fn ask_reason(pam: &mut dyn Pam, role: &RoleInfo) -> Result<Option<String>, Error> {
    let prompt = if role.reason_pattern.is_empty() {
        "jit: reason: ".to_string()
    } else {
        format!("jit: reason (must match {}): ", role.reason_pattern)
    };
    for _ in 0..ASK_ATTEMPTS {
        match pam.prompt(&prompt)? {
            Some(r) if !r.trim().is_empty() => return Ok(Some(r.trim().to_string())),
            _ => pam.error("jit: a reason is required."),
        }
    }
    Ok(None)
}

fn ask_duration(pam: &mut dyn Pam, role: &RoleInfo) -> Result<Option<u64>, Error> {
    let default = format_duration(role.default_duration_secs);
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt(&format!("jit: duration [{default}]: "))?;
        let answer = answer.as_deref().map(str::trim).unwrap_or("");
        if answer.is_empty() {
            return Ok(Some(role.default_duration_secs));
        }
        match parse_duration(answer) {
            Ok(s) if s <= role.max_duration_secs => return Ok(Some(s)),
            Ok(_) => pam.error(&format!(
                "jit: at most {} for role '{}'.",
                format_duration(role.max_duration_secs),
                role.name
            )),
            Err(e) => pam.error(&format!("jit: {e}")),
        }
    }
    Ok(None)
}

fn wait_for_decision(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    user: &str,
    mut req: RequestInfo,
) -> Result<RequestInfo, Error> {
    let deadline = Instant::now() + cfg.wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(req);
        }
        let slice = left.as_secs().clamp(1, WAIT_SLICE_SECS);
        req = jitd.wait(user, req.id, u32::try_from(slice).unwrap_or(10))?;
        if req.state() != Some(State::Pending) {
            return Ok(req);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            pam.info(&format!(
                "jit: still waiting for approval of request {} ({} left).",
                req.id,
                format_duration(left.as_secs().max(1))
            ));
        }
    }
}

fn report(pam: &mut dyn Pam, host: &dyn Host, req: &RequestInfo) {
    match req.state() {
        Some(State::Active) => pam.info(&format!(
            "jit: request {}: granted {} until {}. Run your command again.",
            req.id,
            req.role,
            jit_proto::format_time_short(req.not_after, host.now())
        )),
        Some(State::Pending) => pam.info(&format!(
            "jit: request {} is still pending; run your command again once it is approved \
             (jitctl show {}).",
            req.id, req.id
        )),
        _ => pam.error(&format!(
            "jit: request {} was {}{}.",
            req.id,
            req.state,
            if req.decided_by.is_empty() {
                String::new()
            } else {
                format!(" by {}: {}", req.decided_by, req.decision_reason)
            }
        )),
    }
}

/// `account`: in ssh mode, or sudo with `require_grant`, admit only users with an active
/// grant (ssh: one whose role allows login). Otherwise step aside: sudoers is the gate.
pub fn account(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
) -> Result<Verdict, Error> {
    if cfg.mode == Mode::Sudo && !cfg.require_grant {
        return Ok(Verdict::Ignore);
    }
    let user = pam.user()?;
    if let Some(group) = &cfg.exempt {
        match host.in_group(&user, group) {
            Ok(true) => {
                pam.log(&format!(
                    "user={user} admitted without a grant: member of exempt group {group}"
                ));
                return Ok(Verdict::Ignore);
            }
            Ok(false) => {}
            Err(e) => pam.log(&format!("exempt group check for {user} failed: {e}")),
        }
    }
    let ssh = cfg.mode == Mode::Ssh;
    match jitd.check(&user, ssh) {
        Ok(c) if c.active => {
            pam.log(&format!(
                "user={user} admitted by grant {} ({}) until {}",
                c.request_id,
                c.role,
                jit_proto::format_rfc3339(c.not_after)
            ));
            Ok(Verdict::Success)
        }
        Ok(_) => {
            let what = if ssh { "ssh-capable" } else { "active" };
            let msg = format!(
                "jit: {user} has no {what} grant on {}; request one with: \
                 jitctl request ROLE --for 15m --reason TEXT (jitctl roles lists them)",
                host.hostname()
            );
            if ssh {
                pam.info(&msg);
            } else {
                pam.error(&msg);
            }
            pam.log(&format!("user={user} denied: no {what} grant"));
            Ok(Verdict::Deny)
        }
        Err(e) => {
            let msg = format!(
                "{}; access denied because this host requires a grant",
                unreachable_message(&e)
            );
            if ssh {
                pam.info(&msg);
            } else {
                pam.error(&msg);
            }
            pam.log(&format!("user={user} denied: {e:?}"));
            Err(e)
        }
    }
}

/// `open_session`: registers `pid` (the sudo or sshd process that runs the session) with
/// jitd under the grant holder's active grant, so jitd ends it when the grant ends. In sudo
/// the holder is the invoking user (PAM_RUSER): for the session sudo sets PAM_USER to the
/// target user. In sshd it is PAM_USER.
pub fn open_session(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    pid: u32,
) -> Result<Verdict, Error> {
    let user = match cfg.mode {
        Mode::Sudo => Some(pam.ruser())
            .filter(|u| !u.is_empty())
            .map_or_else(|| pam.user(), Ok)?,
        Mode::Ssh => pam.user()?,
    };
    let (service, tty, rhost) = (pam.service(), pam.tty(), pam.rhost());
    let grant = jitd.open_session(&SessionOpen {
        user: &user,
        service: &service,
        tty: &tty,
        rhost: &rhost,
        pid,
    })?;
    if grant != 0 {
        pam.log(&format!(
            "user={user} session pid={pid} registered under grant {grant}"
        ));
    }
    Ok(Verdict::Ignore)
}

#[cfg(test)]
mod tests;
