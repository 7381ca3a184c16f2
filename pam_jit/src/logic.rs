//! What each hook does, written against small traits ([`Pam`], [`Jitd`], [`Host`]) so unit
//! tests drive it with scripted fakes. No FFI here.

use crate::args::{Config, Mode};
use jit_proto::{
    FleetAnswer, GrantCheck, PamOrigin, PamRequest, RequestInfo, RoleInfo, SessionOpen, State,
    format_duration, parse_duration,
};
use std::time::{Duration, Instant};

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
    /// A variable of the PAM environment (sshd puts `SSH_AUTH_INFO_0` there).
    fn env(&self, name: &str) -> Option<String>;
    /// Asks with echo on; `None` when the application gave no answer.
    fn prompt(&mut self, msg: &str) -> Result<Option<String>, Error>;
    /// PAM_TEXT_INFO; failures to show are ignored.
    fn info(&mut self, msg: &str);
    /// PAM_ERROR_MSG; failures to show are ignored.
    fn error(&mut self, msg: &str);
    /// Decisions to syslog (authpriv).
    fn log(&mut self, msg: &str);
    /// Whether `m` was set earlier in this PAM transaction (PAM data, which lives as long as
    /// the handle: sudo retries auth up to 3 times, sshd keyboard-interactive too).
    fn marked(&self, m: Mark) -> bool;
    fn mark(&mut self, m: Mark);
    /// The connection to jitd's PAM socket an earlier hook of this transaction kept (in this
    /// process), if any.
    fn connection(&mut self) -> Option<std::os::unix::net::UnixStream> {
        None
    }
    /// Keeps `c` for the next hook of this transaction (`None` closes the kept one). PAM
    /// closes it at `pam_end`.
    fn keep_connection(&mut self, c: Option<std::os::unix::net::UnixStream>) {
        drop(c);
    }
}

/// What a hook remembers across calls in one PAM transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// sudo's auth ran (its retries must never make a second request).
    AuthDone,
    /// An ssh login was told it may request no ssh role (sshd's retries say it once).
    SshRefusalTold,
}

impl Mark {
    /// The PAM data key.
    pub fn key(self) -> &'static str {
        match self {
            Mark::AuthDone => "pam_jit_auth_done",
            Mark::SshRefusalTold => "pam_jit_ssh_refusal_told",
        }
    }
}

/// jitd's PAM interface.
pub trait Jitd {
    fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck, Error>;
    fn roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error>;
    fn request(&self, req: &PamRequest) -> Result<RequestInfo, Error>;
    fn wait(&self, user: &str, id: u64, secs: u32) -> Result<RequestInfo, Error>;
    /// The user's pending grant requests, oldest first.
    fn pending(&self, user: &str) -> Result<Vec<RequestInfo>, Error>;
    /// Whether `reason` would do for `role` (Refused says why).
    fn check_reason(&self, role: &str, reason: &str) -> Result<(), Error>;
    fn open_session(&self, s: &SessionOpen) -> Result<u64, Error>;
    /// The fleet roles the user may request for this host (none outside a fleet).
    fn fleet_roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error>;
    /// A fleet request for this host alone.
    fn fleet_request(&self, req: &PamRequest) -> Result<FleetAnswer, Error>;
    /// The user's fleet requests for this host that still wait for approval, oldest first.
    fn fleet_pending(&self, user: &str) -> Result<Vec<FleetAnswer>, Error>;
    /// One long poll on fleet request `id` (as [`Jitd::wait`]).
    fn fleet_wait(&self, user: &str, id: &str, secs: u32) -> Result<FleetAnswer, Error>;
}

/// Facts about the host.
pub trait Host {
    fn hostname(&self) -> String;
    fn in_group(&self, user: &str, group: &str) -> Result<bool, String>;
    /// Whether the user asked to stop (Ctrl-C, SIGTERM...): sudo blocks those signals while
    /// PAM runs, so they wait, pending, for the hook to return. pam_jit installs no handler
    /// and takes nothing: it only looks, and sudo gets the signal when the hook returns.
    fn interrupted(&self) -> bool;
    /// Whether `user` is uid 0 (root needs no grant to be root).
    fn is_superuser(&self, user: &str) -> Result<bool, String>;
    fn now(&self) -> i64;
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
        // sshd's auth succeeds only through pam_jit (the keyboard-interactive step).
        (Some(c), Phase::Auth) => c.mode == Mode::Ssh || c.require_grant,
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
/// One long-poll slice while waiting for an approval at the sudo prompt: between two, a
/// Ctrl-C is noticed, so it ends the wait within about this long.
const WAIT_SLICE_SECS: u64 = 1;
/// Between two "still waiting" lines at the sudo prompt.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Between progress prompts while an ssh login waits for an approval.
const PROGRESS_SECS: u64 = 20;
/// Where sshd lists the authentication methods that have already succeeded.
const SSH_AUTH_INFO: &str = "SSH_AUTH_INFO_0";

fn unreachable_message(e: &Error) -> String {
    match e {
        Error::Unreachable(m) => format!("jit: cannot reach jitd ({m})"),
        Error::Refused(m) => format!("jit: refused: {m}"),
        Error::Conversation(m) => {
            format!("jit: cannot ask here ({m})")
        }
        Error::Pam(m) | Error::Config(m) => format!("jit: {m}"),
    }
}

/// Whose grant counts. In sshd, PAM_USER. In sudo, the invoking user: sudo sets PAM_RUSER
/// to the user who ran it, while PAM_USER is whoever sudo authenticates (the invoking user,
/// but root under `Defaults rootpw`, the target user under `targetpw`, openSUSE's default,
/// or `runaspw`); taking PAM_USER there let "root needs no grant" admit anyone.
pub fn holder(cfg: &Config, pam: &mut dyn Pam) -> Result<String, Error> {
    match (cfg.mode, pam.ruser()) {
        (Mode::Sudo, ruser) if !ruser.is_empty() => Ok(ruser),
        _ => pam.user(),
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
    let user = holder(cfg, pam)?;
    if pam.marked(Mark::AuthDone) {
        // sudo's second or third auth attempt in the same transaction: never a second request.
        return Ok(Verdict::Ignore);
    }
    pam.mark(Mark::AuthDone);
    let result = (|| {
        if jitd.check(&user, false)?.active {
            return Ok(Verdict::Ignore);
        }
        let roles = jitd.roles(&user)?;
        // Fleet roles are an offer, not a gate: a jitd that cannot list them (an older one
        // beside a newer module, say) leaves the local roles as they were; one that says
        // why they cannot be asked for now is heard.
        let fleet = jitd.fleet_roles(&user).unwrap_or_else(|e| {
            if let Error::Refused(why) = &e
                && !why.contains("malformed call")
            {
                pam.info(&format!("jit: {}.", jit_proto::text::escape(why)));
            }
            pam.log(&format!("fleet roles for {user}: {e:?}"));
            Vec::new()
        });
        if roles.is_empty() && fleet.is_empty() {
            return Ok(Verdict::Ignore);
        }
        // A request from an earlier sudo that still waits: offer to wait for it first.
        let earlier = jitd
            .pending(&user)?
            .into_iter()
            .find(|p| roles.iter().any(|r| r.name == p.role));
        let choices = choices(roles, fleet);
        // Else a fleet request from an earlier sudo (an offer like the fleet roles: a jitd
        // that cannot say leaves it out).
        let earlier_fleet = match (&earlier, choices.iter().any(|c| c.fleet)) {
            (None, true) => jitd
                .fleet_pending(&user)
                .ok()
                .and_then(|p| p.into_iter().next()),
            _ => None,
        };
        if let Some(f) = earlier_fleet
            && wait_for_earlier(pam, &format!("fleet request {}", f.id), &f.request)?
        {
            fleet_wait_and_report(cfg, pam, jitd, host, &user, f)?;
            return Ok(Verdict::Ignore);
        }
        let req = match earlier {
            Some(req) if wait_for_earlier(pam, &format!("request {}", req.id), &req)? => req,
            _ => match ask_and_submit(pam, jitd, host, &user, &choices)? {
                Some(Submitted::Local(req)) => req,
                Some(Submitted::Fleet(f)) => {
                    fleet_wait_and_report(cfg, pam, jitd, host, &user, f)?;
                    return Ok(Verdict::Ignore);
                }
                None => return Ok(Verdict::Ignore),
            },
        };
        let req = if req.state() == Some(State::Pending) && !cfg.wait.is_zero() {
            pam.info(&format!(
                "jit: role '{}' needs {} approval(s) from {}; waiting up to {} (request {}). \
                 Ctrl-C stops waiting; the request stays: jitctl wait {}, jitctl show {}.",
                req.role,
                req.approvals_required,
                req.approvers.join(", "),
                format_duration(cfg.wait.as_secs()),
                req.id,
                req.id,
                req.id
            ));
            let waited = Waited {
                what: format!("request {}", req.id),
                follow: format!("jitctl wait {} follows it", req.id),
            };
            let id = req.id;
            wait_for_decision(cfg, pam, host, &waited, req, |slice| {
                poll(jitd, &user, id, slice)
            })?
        } else {
            req
        };
        report(pam, host, &req);
        Ok(Verdict::Ignore)
    })();
    if let Err(e) = &result {
        pam.error(&unreachable_message(e));
        pam.log(&format!("auth for {user}: {e:?}"));
    }
    result
}

/// Tells of a request from an earlier attempt that still waits, and asks whether to wait for
/// it (Enter) or ask for another role (`n`).
fn wait_for_earlier(pam: &mut dyn Pam, what: &str, req: &RequestInfo) -> Result<bool, Error> {
    pam.info(&format!(
        "jit: {what} for role '{}' is still waiting for {} approval(s) from {}.",
        req.role,
        req.approvals_required,
        req.approvers.join(", ")
    ));
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt("jit: wait for it (Enter), or ask for another role (n)? ")?;
        match answer.as_deref().map(str::trim).unwrap_or("") {
            "" => return Ok(true),
            a if a.eq_ignore_ascii_case("n") => return Ok(false),
            // Anything else (a role name typed too early, say) is neither: ask again rather
            // than take it for "wait" and lose what follows.
            a => pam.error(&format!(
                "jit: '{}' is neither; press Enter to wait, or type n.",
                jit_proto::text::escape(a)
            )),
        }
    }
    // Nothing understood: the default, as if Enter had been pressed.
    Ok(true)
}

/// A role offered at the prompt: one of this host's, or a fleet role (asked for this host
/// alone, approved with `jitctl approve` on any host of the fleet).
struct Choice {
    info: RoleInfo,
    fleet: bool,
    /// What the user types: the name, or `fleet:NAME` where a local role has that name.
    label: String,
}

/// The local roles, then the fleet roles, each with what the user types to choose it.
fn choices(local: Vec<RoleInfo>, fleet: Vec<RoleInfo>) -> Vec<Choice> {
    let mut out: Vec<Choice> = local
        .into_iter()
        .map(|info| Choice {
            label: info.name.clone(),
            info,
            fleet: false,
        })
        .collect();
    for info in fleet {
        let label = if out.iter().any(|c| c.info.name == info.name) {
            format!("{FLEET_PREFIX}{}", info.name)
        } else {
            info.name.clone()
        };
        out.push(Choice {
            info,
            fleet: true,
            label,
        });
    }
    out
}

/// Chooses a fleet role whatever its label (`fleet:db-admin`).
const FLEET_PREFIX: &str = "fleet:";

/// What the prompt submitted.
enum Submitted {
    Local(RequestInfo),
    Fleet(FleetAnswer),
}

/// Lists the roles, asks for role, reason and duration, and submits. None when the user
/// chose nothing (said so to them).
fn ask_and_submit(
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
    user: &str,
    choices: &[Choice],
) -> Result<Option<Submitted>, Error> {
    pam.info(&format!(
        "jit: no active grant for {} on {}.",
        jit_proto::text::escape(user),
        host.hostname()
    ));
    pam.info(&roles_listing(choices));

    let Some(choice) = ask_role(pam, choices)? else {
        pam.info("jit: no role chosen; nothing was requested.");
        return Ok(None);
    };
    let role = &choice.info;
    let reason = if choice.fleet {
        ask_fleet_reason(pam, role)?
    } else {
        ask_reason(pam, jitd, role)?
    };
    let Some(reason) = reason else {
        pam.info("jit: no reason given; nothing was requested.");
        return Ok(None);
    };
    let Some(duration) = ask_duration(pam, role)? else {
        pam.info("jit: no valid duration given; nothing was requested.");
        return Ok(None);
    };

    let origin = origin(pam);
    let ask = PamRequest {
        user: user.to_string(),
        role: role.name.clone(),
        duration_secs: duration,
        reason,
        origin: origin.clone(),
    };
    if choice.fleet {
        let f = jitd.fleet_request(&ask)?;
        pam.log(&format!(
            "user={user} submitted fleet request {} for role {} via {}",
            f.id, f.request.role, origin.service
        ));
        return Ok(Some(Submitted::Fleet(f)));
    }
    let req = jitd.request(&ask)?;
    pam.log(&format!(
        "user={user} submitted request {} for role {} ({}) via {}",
        req.id, req.role, req.state, origin.service
    ));
    Ok(Some(Submitted::Local(req)))
}

fn ask_role<'c>(pam: &mut dyn Pam, choices: &'c [Choice]) -> Result<Option<&'c Choice>, Error> {
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt("jit: role (Enter to skip): ")?;
        let answer = answer.as_deref().map(str::trim).unwrap_or("");
        if answer.is_empty() {
            return Ok(None);
        }
        let fleet = answer.strip_prefix(FLEET_PREFIX);
        let found = choices.iter().find(|c| c.label == answer).or_else(|| {
            choices
                .iter()
                .find(|c| c.fleet && Some(c.info.name.as_str()) == fleet)
        });
        match found {
            Some(c) => return Ok(Some(c)),
            None => pam.error(&format!(
                "jit: '{}' is not a role you may request.",
                jit_proto::text::escape(answer)
            )),
        }
    }
    Ok(None)
}

/// One role a line, what each needs beside it, the names aligned: readable with many.
fn roles_listing(choices: &[Choice]) -> String {
    let width = choices.iter().map(|c| c.label.len()).max().unwrap_or(0);
    let mut out = String::from("jit: roles you may request:");
    for c in choices {
        let r = &c.info;
        out.push_str(&format!(
            "\njit:   {:width$}  {}{}{}",
            c.label,
            r.summary(),
            if r.ssh { ", admits ssh logins" } else { "" },
            if c.fleet {
                ", fleet role (asked for this host; approved with jitctl approve on any host)"
            } else {
                ""
            }
        ));
    }
    out
}

/// Asks for the reason of a fleet request until one will do: required, no longer than
/// the host allows, nothing hidden (jitd checks it again, as every host of the fleet will).
fn ask_fleet_reason(pam: &mut dyn Pam, role: &RoleInfo) -> Result<Option<String>, Error> {
    let max = usize::try_from(role.reason_max_length).unwrap_or(usize::MAX);
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt("jit: reason: ")?;
        let answer = answer.as_deref().map(str::trim).unwrap_or("");
        if answer.is_empty() {
            pam.error("jit: a reason is required.");
        } else if answer.chars().count() > max {
            pam.error(&format!(
                "jit: a reason is at most {max} characters; type it again."
            ));
        } else if answer.chars().any(jit_proto::text::is_hidden_char)
            || jit_proto::text::has_stacked_marks(answer)
        {
            pam.error("jit: the reason has characters that could hide text; type it again.");
        } else {
            return Ok(Some(answer.to_string()));
        }
    }
    Ok(None)
}

/// Asks for a reason until one does for the role (checked by jitd as it is typed, so a
/// wrong one is asked again now, not refused after the last question).
fn ask_reason(
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    role: &RoleInfo,
) -> Result<Option<String>, Error> {
    let prompt = if role.reason_pattern.is_empty() {
        "jit: reason: ".to_string()
    } else {
        format!("jit: reason (must match {}): ", role.reason_pattern)
    };
    for _ in 0..ASK_ATTEMPTS {
        let answer = pam.prompt(&prompt)?;
        let answer = answer.as_deref().map(str::trim).unwrap_or("");
        if answer.is_empty() {
            pam.error("jit: a reason is required.");
            continue;
        }
        match jitd.check_reason(&role.name, answer) {
            Ok(()) => return Ok(Some(answer.to_string())),
            Err(Error::Refused(why)) => {
                let why = jit_proto::text::escape(&why);
                // Some refusals already say so ("... type it again without it").
                let again = if why.contains("type it again") {
                    ""
                } else {
                    "; type it again"
                };
                pam.error(&format!("jit: {why}{again}."))
            }
            Err(e) => return Err(e),
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

/// One long poll: jitd answers once the request is decided, or after `slice` (whole
/// seconds, at least one) with it still pending.
fn poll(jitd: &dyn Jitd, user: &str, id: u64, slice: Duration) -> Result<RequestInfo, Error> {
    jitd.wait(user, id, slice_secs(slice))
}

fn slice_secs(slice: Duration) -> u32 {
    let secs = slice.as_secs().clamp(1, u64::from(u32::MAX));
    u32::try_from(secs).unwrap_or(1)
}

/// What a prompt waits for, as its messages name it.
struct Waited {
    /// `request 17`, `fleet request db1-3fa29c01d2`.
    what: String,
    /// What to run after the prompt gives up (`jitctl wait 17 follows it`).
    follow: String,
}

/// sudo: waits up to `wait=`, saying after the first slice and then every
/// [`PROGRESS_EVERY`] that it still waits (sudo
/// shows PAM messages at once), and stops as soon as the user presses Ctrl-C.
fn wait_for_decision(
    cfg: &Config,
    pam: &mut dyn Pam,
    host: &dyn Host,
    waited: &Waited,
    mut req: RequestInfo,
    mut poll: impl FnMut(Duration) -> Result<RequestInfo, Error>,
) -> Result<RequestInfo, Error> {
    let deadline = Instant::now() + cfg.wait;
    // The first slice that ends pending says so; then every PROGRESS_EVERY.
    let mut next_progress = Instant::now();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(req);
        }
        req = poll(left.min(Duration::from_secs(WAIT_SLICE_SECS)))?;
        if req.state() != Some(State::Pending) {
            return Ok(req);
        }
        if host.interrupted() {
            pam.info(&format!(
                "jit: stopped waiting; {} stays pending ({}).",
                waited.what, waited.follow
            ));
            return Ok(req);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() && Instant::now() >= next_progress {
            next_progress = Instant::now() + PROGRESS_EVERY;
            let left = format_duration(left.as_secs().max(1));
            if req.decision_reason.is_empty() {
                pam.info(&format!(
                    "jit: still waiting for approval of {} ({left} left).",
                    waited.what
                ));
            } else {
                // A fleet request approved but not yet applied here says so.
                pam.info(&format!(
                    "jit: {}: {}; still waiting ({left} left).",
                    waited.what,
                    jit_proto::text::escape(&req.decision_reason)
                ));
            }
        }
    }
}

/// `auth` for sshd, as the second step of `AuthenticationMethods
/// publickey,keyboard-interactive`: succeeds only when the key-authenticated user holds a
/// grant whose role admits ssh logins, or obtains one now: it offers the ssh roles, asks
/// (keyboard-interactive prompts), submits, and waits for approval until `wait=` has passed
/// since the first question (set below sshd's LoginGraceTime). A pending request of the
/// user's from an earlier attempt is waited for instead of asking again. sshd hands PAM
/// messages to the client only with the next prompt, so progress is a prompt every
/// [`PROGRESS_SECS`] ("Enter to keep waiting, q to stop").
///
/// It never acts as the first method: unless sshd records an earlier successful method
/// ([`SSH_AUTH_INFO`]), it denies before calling jitd, so a client that proved nothing can
/// neither read the roles nor make requests in a user's name.
pub fn authenticate_ssh(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
) -> Result<Verdict, Error> {
    let deadline = Instant::now() + cfg.wait;
    let user = pam.user()?;
    if pam.env(SSH_AUTH_INFO).is_none_or(|m| m.trim().is_empty()) {
        pam.log(&format!(
            "user={user} denied: no authentication method succeeded before pam_jit's auth \
             (it must follow one: AuthenticationMethods publickey,keyboard-interactive)"
        ));
        return Ok(Verdict::Deny);
    }
    let result = (|| {
        let check = jitd.check(&user, true)?;
        if check.active {
            pam.log(&format!(
                "user={user} holds ssh grant {} ({})",
                check.request_id, check.role
            ));
            return Ok(Verdict::Success);
        }
        let roles: Vec<RoleInfo> = jitd.roles(&user)?.into_iter().filter(|r| r.ssh).collect();
        let earlier = jitd
            .pending(&user)?
            .into_iter()
            .find(|p| roles.iter().any(|r| r.name == p.role));
        let req = match earlier {
            Some(req) => req,
            None if roles.is_empty() => {
                // sshd retries keyboard-interactive; the user hears it once.
                if !pam.marked(Mark::SshRefusalTold) {
                    pam.mark(Mark::SshRefusalTold);
                    pam.error(&format!(
                        "jit: {} has no grant that admits ssh logins on {}, and no role \
                         they may request does.",
                        jit_proto::text::escape(&user),
                        host.hostname()
                    ));
                }
                pam.log(&format!("user={user} denied: no ssh grant and no ssh role"));
                return Ok(Verdict::Deny);
            }
            // ssh roles only: fleet grants are sudo rules.
            None => match ask_and_submit(pam, jitd, host, &user, &choices(roles, Vec::new()))? {
                Some(Submitted::Local(req)) => req,
                Some(Submitted::Fleet(_)) | None => return Ok(Verdict::Deny),
            },
        };
        let progress = Duration::from_secs(PROGRESS_SECS);
        let req = wait_at_login(pam, jitd, &user, req, deadline, progress)?;
        Ok(login_decision(pam, host, &user, &req))
    })();
    if let Err(e) = &result {
        pam.error(&unreachable_message(e));
        pam.log(&format!("ssh auth for {user}: {e:?}"));
    }
    result
}

/// Waits for a pending request at the login prompt, a progress prompt before each
/// `progress` of waiting, until `deadline` or the user answers `q`.
fn wait_at_login(
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    user: &str,
    mut req: RequestInfo,
    deadline: Instant,
    progress: Duration,
) -> Result<RequestInfo, Error> {
    let mut status = format!(
        "jit: request {} for role '{}' needs {} approval(s) from {}.",
        req.id,
        req.role,
        req.approvals_required,
        req.approvers.join(", ")
    );
    while req.state() == Some(State::Pending) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let answer = pam.prompt(&format!(
            "{status}\nPress Enter to wait for it (up to {}), or q to stop: ",
            format_duration(left.as_secs().max(1))
        ))?;
        if answer.as_deref().map(str::trim) == Some("q") {
            break;
        }
        req = poll(jitd, user, req.id, progress.min(left))?;
        status = format!("jit: request {} is still waiting for approval.", req.id);
    }
    Ok(req)
}

/// The end of an ssh login's wait: in only with the grant active.
fn login_decision(pam: &mut dyn Pam, host: &dyn Host, user: &str, req: &RequestInfo) -> Verdict {
    match req.state() {
        Some(State::Active) => {
            pam.info(&format!(
                "jit: request {}: granted {} until {}.",
                req.id,
                req.role,
                jit_proto::format_time_short(req.not_after, host.now())
            ));
            pam.log(&format!(
                "user={user} admitted by request {} ({}) at login",
                req.id, req.role
            ));
            Verdict::Success
        }
        Some(State::Pending) => {
            pam.error(&format!(
                "jit: request {} is still waiting for approval; log in again once it is \
                 approved.",
                req.id
            ));
            pam.log(&format!(
                "user={user} denied: request {} still pending",
                req.id
            ));
            Verdict::Deny
        }
        _ => {
            report(pam, host, req);
            pam.log(&format!(
                "user={user} denied: request {} {}",
                req.id, req.state
            ));
            Verdict::Deny
        }
    }
}

/// sudo, after a fleet request: says who must approve it and how, waits up to `wait=` for
/// this host to apply it, and says how it stands.
fn fleet_wait_and_report(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    host: &dyn Host,
    user: &str,
    f: FleetAnswer,
) -> Result<(), Error> {
    let FleetAnswer { id, request: req } = f;
    let req = if req.state() == Some(State::Pending) {
        pam.info(&format!(
            "jit: fleet role '{}' needs {} approval(s) from {}: an approver runs \
             `jitctl approve {id}` on any host of the fleet.",
            req.role,
            req.approvals_required,
            req.approvers.join(", "),
        ));
        if cfg.wait.is_zero() {
            req
        } else {
            pam.info(&format!(
                "jit: waiting up to {} (fleet request {id}). Ctrl-C stops waiting; the \
                 request stays: jitctl show {id}.",
                format_duration(cfg.wait.as_secs()),
            ));
            let waited = Waited {
                what: format!("fleet request {id}"),
                follow: format!("jitctl show {id} shows how it stands"),
            };
            wait_for_decision(cfg, pam, host, &waited, req, |slice| {
                jitd.fleet_wait(user, &id, slice_secs(slice))
                    .map(|f| f.request)
            })?
        }
    } else {
        req
    };
    match req.state() {
        Some(State::Active) => pam.info(&format!(
            "jit: fleet request {id}: granted {} until {}. Run your command again.",
            req.role,
            jit_proto::format_time_short(req.not_after, host.now())
        )),
        Some(State::Pending) => pam.info(&format!(
            "jit: fleet request {id} is still pending; run your command again once it is \
             approved (jitctl show {id})."
        )),
        Some(State::Expired) => pam.error(&format!(
            "jit: fleet request {id} has lapsed: {}.",
            jit_proto::text::escape(&req.decision_reason)
        )),
        Some(State::Denied) => pam.error(&format!(
            "jit: fleet request {id} was refused on this host: {}.",
            jit_proto::text::escape(&req.decision_reason)
        )),
        _ => pam.error(&format!(
            "jit: fleet request {id} was {} by {}.",
            req.state,
            jit_proto::text::escape(&req.decided_by)
        )),
    }
    Ok(())
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
             (jitctl wait {} waits for it; jitctl show {}).",
            req.id, req.id, req.id
        )),
        _ => pam.error(&format!(
            "jit: request {} was {}{}.",
            req.id,
            req.state,
            if req.decided_by.is_empty() {
                String::new()
            } else {
                format!(
                    " by {}: {}",
                    jit_proto::text::escape(&req.decided_by),
                    jit_proto::text::escape(&req.decision_reason)
                )
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
    let user = holder(cfg, pam)?;
    // root running sudo gains nothing it does not have: uid 0 needs no grant (and no
    // exempt group). ssh logins as root are sshd's to decide (PermitRootLogin) and stay
    // gated like any other login.
    if cfg.mode == Mode::Sudo {
        match host.is_superuser(&user) {
            Ok(true) => {
                pam.log(&format!("user={user} is uid 0: no grant needed"));
                return Ok(Verdict::Ignore);
            }
            Ok(false) => {}
            Err(e) => pam.log(&format!("uid check for {user} failed: {e}")),
        }
    }
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
                "jit: {} has no {what} grant on {}; request one with: \
                 jitctl request ROLE --for 15m --reason TEXT (jitctl roles lists them)",
                jit_proto::text::escape(&user),
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

/// Where a PAM call comes from, from the PAM items.
fn origin(pam: &dyn Pam) -> PamOrigin {
    PamOrigin {
        service: pam.service(),
        tty: pam.tty(),
        rhost: pam.rhost(),
    }
}

/// `open_session`: registers `pid` (the sudo or sshd process that runs the session) with
/// jitd, which binds it to the grant that could have authorised it and ends first, and ends
/// it with that grant. In sudo the holder is the invoking user (PAM_RUSER) and PAM_USER is
/// by now the target user, whom the grant's role must run as. In sshd the holder is
/// PAM_USER, and only grants of roles that admit ssh logins count.
pub fn open_session(
    cfg: &Config,
    pam: &mut dyn Pam,
    jitd: &dyn Jitd,
    pid: u32,
) -> Result<Verdict, Error> {
    let (user, target) = match cfg.mode {
        Mode::Sudo => {
            let target = pam.user()?;
            match pam.ruser() {
                ruser if ruser.is_empty() => (target, String::new()),
                ruser => (ruser, target),
            }
        }
        Mode::Ssh => (pam.user()?, String::new()),
    };
    let grant = jitd.open_session(&SessionOpen {
        user: user.clone(),
        target,
        ssh: cfg.mode == Mode::Ssh,
        pid,
        origin: origin(pam),
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
