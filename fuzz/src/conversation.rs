//! What pam_jit reads from the PAM conversation: its module arguments, and the answers a
//! user types at the sudo or ssh prompt, against a scripted jitd whose answers come from
//! the fuzzer too. Whatever is typed and whatever jitd says:
//!
//! - sudo's auth never answers success (sudoers decides; pam_jit only asks);
//! - account and ssh auth answer success only when jitd said a grant is active;
//! - an error never becomes success;
//! - at most one request is made per transaction, for a role the user was offered, with the
//!   reason as typed (trimmed, accepted by jitd) and a duration within the role's maximum;
//! - the questions are bounded, and nothing the user typed comes back with a control,
//!   bidi or other hidden character in it.

use arbitrary::{Arbitrary, Unstructured};
use jit_proto::{
    FleetAnswer, GrantCheck, PamOrigin, PamRequest, RequestInfo, RoleInfo, SessionOpen,
};
use pam_jit::args::{Config, Mode, parse};
use pam_jit::logic::{self, Error, Host, Jitd, Mark, Pam, Phase, Verdict, decide, is_gate};
use std::cell::RefCell;
use std::collections::VecDeque;

#[derive(Arbitrary, Debug)]
struct Script {
    /// Free module arguments, parsed on their own.
    args: Vec<String>,
    ssh: bool,
    require_grant: bool,
    wait: bool,
    exempt: bool,
    user: Option<String>,
    ruser: String,
    auth_info: Option<String>,
    conv_broken: bool,
    answers: Vec<Option<String>>,
    already_asked: bool,
    jitd: JitdScript,
    interrupted: bool,
    superuser: Option<bool>,
    in_group: Option<bool>,
}

#[derive(Arbitrary, Debug, Clone)]
struct JitdScript {
    unreachable: u8,
    active: bool,
    active_ssh: bool,
    roles: Vec<RoleScript>,
    pending: Vec<(u8, u8)>,
    request_state: u8,
    waits: Vec<u8>,
    reasons_refused_with: Option<char>,
    session_grant: u64,
    /// Fleet roles for this host (the state of a fleet request is the request's).
    fleet_roles: Vec<RoleScript>,
}

#[derive(Arbitrary, Debug, Clone)]
struct RoleScript {
    name: u8,
    ssh: bool,
    max: u32,
    default: u32,
    approvals: u8,
}

const ROLE_NAMES: [&str; 4] = ["db-admin", "web", "deploy", "audit"];
const STATES: [&str; 7] = [
    "pending",
    "active",
    "denied",
    "expired",
    "revoked",
    "cancelled",
    "nonsense",
];

fn role_info(r: &RoleScript) -> RoleInfo {
    let max = u64::from(r.max.max(1));
    RoleInfo {
        name: ROLE_NAMES[usize::from(r.name) % ROLE_NAMES.len()].to_string(),
        description: String::new(),
        approvals: u32::from(r.approvals % 3),
        approvers: vec!["%ops".into()],
        max_duration_secs: max,
        default_duration_secs: u64::from(r.default).clamp(1, max),
        commands: vec!["/usr/bin/id".into()],
        run_as: "root".into(),
        ssh: r.ssh,
        reason_pattern: String::new(),
        reason_min_length: 1,
        reason_max_length: 500,
        break_glass: false,
        max_total_secs: max,
        window: String::new(),
        window_open: true,
        account: false,
    }
}

fn request_info(id: u64, role: &str, state: &str) -> RequestInfo {
    RequestInfo {
        id,
        user: "alice".into(),
        uid: 1000,
        role: role.into(),
        state: state.into(),
        reason: "r".into(),
        duration_secs: 60,
        created_at: 1_800_000_000,
        updated_at: 1_800_000_000,
        not_after: 1_800_000_060,
        approvals_required: 1,
        approved_by: vec![],
        approvers: vec!["%ops".into()],
        decided_by: "bob\u{1b}[2J".into(),
        decision_reason: "no\u{7}".into(),
        service: "sudo".into(),
        tty: "/dev/pts/1".into(),
        kind: "grant".into(),
        extends: 0,
        granted_at: 0,
        reviewed_by: String::new(),
        reviewed_at: 0,
        review_comment: String::new(),
        escalation_approvers: vec![],
        escalates_at: 0,
        commands: Vec::new(),
        run_as: Vec::new(),
        groups: Vec::new(),
        account: String::new(),
        ssh_keys: Vec::new(),
    }
}

/// A jitd that answers from the script and remembers what it was asked and what it said.
struct FakeJitd {
    s: JitdScript,
    roles: Vec<RoleInfo>,
    waits: RefCell<VecDeque<u8>>,
    calls: RefCell<u32>,
    requests: RefCell<Vec<PamRequest>>,
    fleet_roles: Vec<RoleInfo>,
    fleet_requests: RefCell<Vec<PamRequest>>,
    /// The role of each request it knows (made, or pending from before).
    roles_of: RefCell<Vec<(u64, String)>>,
    /// Whether it ever said a grant is active: any grant (what admits sudo), and one whose
    /// role admits ssh logins (checked with ssh, or a request for an ssh role).
    said_active: RefCell<bool>,
    said_active_ssh: RefCell<bool>,
}

impl FakeJitd {
    fn fail(&self) -> Result<(), Error> {
        let mut n = self.calls.borrow_mut();
        *n += 1;
        if self.s.unreachable != 0 && (*n).is_multiple_of(u32::from(self.s.unreachable)) {
            return Err(Error::Unreachable("scripted".into()));
        }
        Ok(())
    }
    fn said(&self, r: RequestInfo) -> RequestInfo {
        if r.state == "active" {
            *self.said_active.borrow_mut() = true;
            if self.roles.iter().any(|x| x.name == r.role && x.ssh) {
                *self.said_active_ssh.borrow_mut() = true;
            }
        }
        r
    }
    fn role_of(&self, id: u64) -> String {
        self.roles_of
            .borrow()
            .iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| "web".to_string(), |(_, r)| r.clone())
    }
}

impl Jitd for FakeJitd {
    fn check(&self, _user: &str, ssh: bool) -> Result<GrantCheck, Error> {
        self.fail()?;
        let active = if ssh {
            self.s.active_ssh
        } else {
            self.s.active
        };
        if active {
            *(if ssh {
                &self.said_active_ssh
            } else {
                &self.said_active
            })
            .borrow_mut() = true;
        }
        Ok(GrantCheck {
            active,
            request_id: u64::from(active),
            role: "web".into(),
            not_after: 1_800_000_060,
        })
    }
    fn roles(&self, _user: &str) -> Result<Vec<RoleInfo>, Error> {
        self.fail()?;
        Ok(self.roles.clone())
    }
    fn request(&self, req: &PamRequest) -> Result<RequestInfo, Error> {
        self.fail()?;
        self.requests.borrow_mut().push(req.clone());
        self.roles_of.borrow_mut().push((7, req.role.clone()));
        let state = STATES[usize::from(self.s.request_state) % STATES.len()];
        Ok(self.said(request_info(7, &req.role, state)))
    }
    fn wait(&self, _user: &str, id: u64, _secs: u32) -> Result<RequestInfo, Error> {
        self.fail()?;
        // The script, then a decision: every wait ends.
        let state = self
            .waits
            .borrow_mut()
            .pop_front()
            .map_or("denied", |w| STATES[usize::from(w) % STATES.len()]);
        Ok(self.said(request_info(id, &self.role_of(id), state)))
    }
    fn pending(&self, _user: &str) -> Result<Vec<RequestInfo>, Error> {
        self.fail()?;
        // Ids of earlier requests: unique, as jitd's are (100 and up: never the id a new
        // request gets); the fuzzer picks the roles.
        let pending: Vec<RequestInfo> = self
            .s
            .pending
            .iter()
            .zip(100u64..)
            .map(|((_, role), id)| {
                request_info(
                    id,
                    ROLE_NAMES[usize::from(*role) % ROLE_NAMES.len()],
                    "pending",
                )
            })
            .collect();
        self.roles_of
            .borrow_mut()
            .extend(pending.iter().map(|p| (p.id, p.role.clone())));
        Ok(pending)
    }
    fn check_reason(&self, _role: &str, reason: &str) -> Result<(), Error> {
        self.fail()?;
        match self.s.reasons_refused_with {
            Some(c) if reason.contains(c) => Err(Error::Refused(format!("no {c:?} here"))),
            _ => Ok(()),
        }
    }
    fn open_session(&self, _s: &SessionOpen) -> Result<u64, Error> {
        self.fail()?;
        Ok(self.s.session_grant)
    }
    fn fleet_roles(&self, _user: &str) -> Result<Vec<RoleInfo>, Error> {
        self.fail()?;
        Ok(self.fleet_roles.clone())
    }
    fn fleet_request(&self, req: &PamRequest) -> Result<FleetAnswer, Error> {
        self.fail()?;
        self.fleet_requests.borrow_mut().push(req.clone());
        let state = STATES[usize::from(self.s.request_state) % STATES.len()];
        Ok(FleetAnswer {
            id: "db1-\u{1b}[2J".into(),
            request: self.said(request_info(0, &req.role, state)),
        })
    }
    fn fleet_pending(&self, _user: &str) -> Result<Vec<FleetAnswer>, Error> {
        self.fail()?;
        Ok(Vec::new())
    }
    fn fleet_wait(&self, _user: &str, id: &str, _secs: u32) -> Result<FleetAnswer, Error> {
        self.fail()?;
        let state = self
            .waits
            .borrow_mut()
            .pop_front()
            .map_or("denied", |w| STATES[usize::from(w) % STATES.len()]);
        Ok(FleetAnswer {
            id: id.into(),
            request: self.said(request_info(0, "db-admin", state)),
        })
    }
}

struct FakePam {
    user: Option<String>,
    ruser: String,
    auth_info: Option<String>,
    conv_broken: bool,
    answers: VecDeque<Option<String>>,
    prompts: u32,
    typed: Vec<String>,
    shown: Vec<String>,
    marks: Vec<Mark>,
}

impl Pam for FakePam {
    fn user(&mut self) -> Result<String, Error> {
        self.user.clone().ok_or(Error::Pam("no user".into()))
    }
    fn ruser(&self) -> String {
        self.ruser.clone()
    }
    fn service(&self) -> String {
        "sudo".into()
    }
    fn tty(&self) -> String {
        "/dev/pts/1".into()
    }
    fn rhost(&self) -> String {
        String::new()
    }
    fn env(&self, name: &str) -> Option<String> {
        (name == "SSH_AUTH_INFO_0")
            .then(|| self.auth_info.clone())
            .flatten()
    }
    fn prompt(&mut self, msg: &str) -> Result<Option<String>, Error> {
        self.prompts += 1;
        self.shown.push(msg.to_string());
        if self.conv_broken {
            return Err(Error::Conversation("no tty".into()));
        }
        let a = self.answers.pop_front().flatten();
        if let Some(t) = &a {
            self.typed.push(t.clone());
        }
        Ok(a)
    }
    fn info(&mut self, msg: &str) {
        self.shown.push(msg.to_string());
    }
    fn error(&mut self, msg: &str) {
        self.shown.push(msg.to_string());
    }
    fn log(&mut self, _msg: &str) {}
    fn marked(&self, m: Mark) -> bool {
        self.marks.contains(&m)
    }
    fn mark(&mut self, m: Mark) {
        self.marks.push(m);
    }
}

struct FakeHost {
    interrupted: bool,
    superuser: Option<bool>,
    in_group: Option<bool>,
}

impl Host for FakeHost {
    fn hostname(&self) -> String {
        "host1".into()
    }
    fn in_group(&self, _user: &str, _group: &str) -> Result<bool, String> {
        self.in_group.ok_or_else(|| "scripted".into())
    }
    fn interrupted(&self) -> bool {
        self.interrupted
    }
    fn is_superuser(&self, _user: &str) -> Result<bool, String> {
        self.superuser.ok_or_else(|| "scripted".into())
    }
    fn now(&self) -> i64 {
        1_800_000_000
    }
}

fn config(s: &Script) -> Config {
    let mut args = vec![if s.ssh { "mode=ssh" } else { "mode=sudo" }];
    if s.require_grant {
        args.push("require_grant");
    }
    args.push(if s.wait { "wait=5" } else { "wait=0" });
    if s.exempt {
        args.push("exempt=wheel");
    }
    parse(args).expect("the harness's own arguments parse")
}

/// Module arguments as written in a PAM file: a bad one is an error, a good one stays within
/// its bounds.
fn check_args(args: &[String]) {
    if let Ok(cfg) = parse(args.iter().map(String::as_str)) {
        assert!(
            cfg.timeout.as_secs() >= 1 && cfg.timeout.as_secs() <= 60,
            "{args:?}"
        );
        assert!(cfg.wait.as_secs() <= 3600, "{args:?}");
        assert!(
            cfg.bus.starts_with("unix:path=") || cfg.bus == jit_proto::SYSTEM_BUS_ADDRESS,
            "{args:?}"
        );
        if let Some(p) = &cfg.socket {
            assert!(p.is_absolute(), "{args:?}");
        }
    }
}

pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(s) = Script::arbitrary(&mut u) else {
        return;
    };
    check_args(&s.args);
    let cfg = config(&s);
    // jitd lists each role once.
    let mut roles: Vec<RoleInfo> = Vec::new();
    for r in s.jitd.roles.iter().take(8).map(role_info) {
        if !roles.iter().any(|o| o.name == r.name) {
            roles.push(r);
        }
    }
    let mut fleet_roles: Vec<RoleInfo> = Vec::new();
    for r in s.jitd.fleet_roles.iter().take(4).map(role_info) {
        if !fleet_roles.iter().any(|o| o.name == r.name) {
            fleet_roles.push(r);
        }
    }
    let jitd = FakeJitd {
        roles: roles.clone(),
        fleet_roles,
        fleet_requests: RefCell::new(Vec::new()),
        waits: RefCell::new(s.jitd.waits.iter().copied().take(16).collect()),
        s: s.jitd.clone(),
        calls: RefCell::new(0),
        requests: RefCell::new(Vec::new()),
        roles_of: RefCell::new(Vec::new()),
        said_active: RefCell::new(false),
        said_active_ssh: RefCell::new(false),
    };
    let host = FakeHost {
        interrupted: s.interrupted,
        superuser: s.superuser,
        in_group: s.in_group,
    };
    let mut pam = FakePam {
        user: s.user.clone(),
        ruser: s.ruser.clone(),
        auth_info: s.auth_info.clone(),
        conv_broken: s.conv_broken,
        answers: s.answers.iter().take(40).cloned().collect(),
        prompts: 0,
        typed: Vec::new(),
        shown: Vec::new(),
        marks: if s.already_asked {
            vec![Mark::AuthDone, Mark::SshRefusalTold]
        } else {
            vec![]
        },
    };

    // The transaction as sudo or sshd runs it: auth, account, session.
    let auth = if cfg.mode == Mode::Ssh {
        logic::authenticate_ssh(&cfg, &mut pam, &jitd, &host)
    } else {
        logic::authenticate(&cfg, &mut pam, &jitd, &host)
    };
    let auth_verdict = decide(is_gate(Some(&cfg), Phase::Auth), &auth);
    let ssh_active_after_auth = *jitd.said_active_ssh.borrow();
    if cfg.mode == Mode::Sudo {
        assert_ne!(auth_verdict, Verdict::Success, "sudo auth answered success");
    } else {
        if auth_verdict == Verdict::Success {
            assert!(
                ssh_active_after_auth,
                "ssh auth let in without an active grant of an ssh role: {s:?}"
            );
        }
        if pam.auth_info.as_deref().is_none_or(|m| m.trim().is_empty()) {
            assert_eq!(auth_verdict, Verdict::Deny);
            assert_eq!(
                *jitd.calls.borrow(),
                0,
                "jitd asked before any method succeeded"
            );
        }
    }
    if auth.is_err() {
        assert_ne!(auth_verdict, Verdict::Success);
    }
    check_requests(&pam, &jitd, &roles, &s);

    *jitd.said_active.borrow_mut() = false;
    *jitd.said_active_ssh.borrow_mut() = false;
    let account = logic::account(&cfg, &mut pam, &jitd, &host);
    let account_verdict = decide(is_gate(Some(&cfg), Phase::Account), &account);
    if account_verdict == Verdict::Success {
        let said = if cfg.mode == Mode::Ssh {
            *jitd.said_active_ssh.borrow()
        } else {
            *jitd.said_active.borrow()
        };
        assert!(
            said,
            "account admitted without an active grant (of an ssh role for ssh)"
        );
    }
    if (cfg.mode == Mode::Ssh || cfg.require_grant) && account.is_err() {
        assert_eq!(
            account_verdict,
            Verdict::Deny,
            "the gate let an error through"
        );
    }
    let session = logic::open_session(&cfg, &mut pam, &jitd, 4242);
    let session_verdict = decide(is_gate(Some(&cfg), Phase::OpenSession), &session);
    assert_ne!(session_verdict, Verdict::Success);
    if cfg.require_grant && session.is_err() {
        assert_eq!(session_verdict, Verdict::Deny);
    }

    // Nothing typed comes back raw: every message is free of control, bidi, invisible and
    // other hidden characters but the line breaks pam_jit puts between lines.
    for m in &pam.shown {
        assert!(
            !m.chars()
                .any(|c| jit_proto::text::is_hidden_char(c) && c != '\n'),
            "a message shows a hidden character: {m:?}"
        );
    }
}

fn check_requests(pam: &FakePam, jitd: &FakeJitd, roles: &[RoleInfo], s: &Script) {
    let requests = jitd.requests.borrow();
    let fleet = jitd.fleet_requests.borrow();
    assert!(
        requests.len() + fleet.len() <= 1,
        "{} requests in one transaction",
        requests.len() + fleet.len()
    );
    if let Some(f) = fleet.first() {
        assert!(!s.ssh, "an ssh login made a fleet request");
        let role = jitd
            .fleet_roles
            .iter()
            .find(|r| r.name == f.role)
            .unwrap_or_else(|| panic!("requested fleet role {} was not offered", f.role));
        assert!(f.duration_secs > 0 && f.duration_secs <= role.max_duration_secs);
        assert!(!f.reason.is_empty() && f.reason == f.reason.trim());
        assert!(
            !f.reason.chars().any(jit_proto::text::is_hidden_char),
            "a fleet reason with a hidden character was submitted"
        );
        assert!(pam.typed.iter().any(|t| t.trim() == f.reason));
    }
    // A pending request waited for, then three questions of at most three tries each, then
    // the wait at an ssh login (a prompt per poll).
    assert!(
        pam.prompts <= 1 + 9 + 17,
        "{} questions in one transaction",
        pam.prompts
    );
    if s.already_asked && !s.ssh {
        assert!(requests.is_empty(), "sudo's retry made a request");
    }
    let Some(req) = requests.first() else {
        return;
    };
    let role = roles
        .iter()
        .find(|r| r.name == req.role)
        .unwrap_or_else(|| panic!("requested role {} was not offered", req.role));
    if s.ssh {
        assert!(role.ssh, "an ssh login requested a role without ssh");
    }
    assert!(req.duration_secs > 0 && req.duration_secs <= role.max_duration_secs);
    assert!(!req.reason.is_empty() && req.reason == req.reason.trim());
    assert!(
        pam.typed.iter().any(|t| t.trim() == req.reason),
        "the reason {:?} was never typed",
        req.reason
    );
    if let Some(c) = s.jitd.reasons_refused_with {
        assert!(!req.reason.contains(c), "a refused reason was submitted");
    }
    assert_eq!(
        req.origin,
        PamOrigin {
            service: "sudo".into(),
            tty: "/dev/pts/1".into(),
            rhost: String::new(),
        }
    );
}
