use super::*;
use crate::args::parse;
use std::cell::RefCell;
use std::collections::VecDeque;

/// A scripted PAM conversation.
#[derive(Default)]
struct FakePam {
    user: Option<String>,
    answers: Script,
    prompts: Vec<String>,
    infos: Vec<String>,
    errors: Vec<String>,
    logs: Vec<String>,
    marks: Vec<Mark>,
    conv_broken: bool,
    ruser: String,
    /// sshd's SSH_AUTH_INFO_0: the methods that succeeded before.
    auth_info: Option<String>,
}

impl FakePam {
    fn new(user: &str, answers: &[&str]) -> FakePam {
        FakePam {
            user: Some(user.into()),
            answers: Script(answers.iter().map(|a| Some((*a).to_string())).collect()),
            ..FakePam::default()
        }
    }
    fn said(&self) -> String {
        [self.infos.join("\n"), self.errors.join("\n")].join("\n")
    }
}

/// The answers a test scripts. Every one must have been asked for by the time it is
/// dropped: a test whose script outlives the conversation is testing a conversation that did
/// not happen (kanidm's PAM test handler checks the same).
#[derive(Default)]
struct Script(VecDeque<Option<String>>);

impl Drop for Script {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(
                self.0.is_empty(),
                "scripted answers never asked for: {:?}",
                self.0
            );
        }
    }
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
        self.prompts.push(msg.into());
        if self.conv_broken {
            return Err(Error::Conversation("no tty".into()));
        }
        Ok(self.answers.0.pop_front().flatten())
    }
    fn info(&mut self, msg: &str) {
        self.infos.push(msg.into());
    }
    fn error(&mut self, msg: &str) {
        self.errors.push(msg.into());
    }
    fn log(&mut self, msg: &str) {
        self.logs.push(msg.into());
    }
    fn marked(&self, m: Mark) -> bool {
        self.marks.contains(&m)
    }
    fn mark(&mut self, m: Mark) {
        self.marks.push(m);
    }
}

/// A scripted jitd.
#[derive(Default)]
struct FakeJitd {
    active: bool,
    down: bool,
    roles: Vec<RoleInfo>,
    approvals: u32,
    refuse: Option<String>,
    /// States returned by successive waits.
    waits: RefCell<VecDeque<&'static str>>,
    submitted: RefCell<Vec<(String, String, u64, String)>>,
    sessions: RefCell<Vec<SessionOpen>>,
    /// The user's pending requests.
    pending: Vec<RequestInfo>,
    /// Reasons holding this are refused by check_reason.
    bad_reason: Option<String>,
    /// The fleet roles the user may request here.
    fleet_roles: Vec<RoleInfo>,
    /// Fleet requests submitted (role, duration, reason).
    fleet_submitted: RefCell<Vec<(String, u64, String)>>,
    /// Fleet waits asked (the id each named).
    fleet_waits: RefCell<Vec<String>>,
    /// The user's fleet requests waiting.
    fleet_pending: Vec<FleetAnswer>,
}

fn role(name: &str, approvals: u32) -> RoleInfo {
    RoleInfo {
        name: name.into(),
        description: String::new(),
        approvals,
        approvers: if approvals > 0 {
            vec!["%sre".into()]
        } else {
            vec![]
        },
        max_duration_secs: 3600,
        default_duration_secs: 900,
        commands: vec!["/usr/bin/true".into()],
        run_as: "root".into(),
        ssh: false,
        reason_pattern: String::new(),
        reason_min_length: 1,
        reason_max_length: 500,
        break_glass: false,
        max_total_secs: 3600,
        window: String::new(),
        window_open: true,
        account: false,
    }
}

fn info(id: u64, state: &str) -> RequestInfo {
    RequestInfo {
        id,
        user: "alice".into(),
        uid: 1001,
        role: "web".into(),
        state: state.into(),
        reason: "r".into(),
        duration_secs: 900,
        created_at: 0,
        updated_at: 0,
        not_after: if state == "active" { 1000 } else { 0 },
        approvals_required: 1,
        approved_by: vec![],
        approvers: vec!["%sre".into()],
        decided_by: if state == "denied" {
            "bob".into()
        } else {
            String::new()
        },
        decision_reason: String::new(),
        service: "sudo".into(),
        tty: String::new(),
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

impl Jitd for FakeJitd {
    fn check(&self, _user: &str, _ssh: bool) -> Result<GrantCheck, Error> {
        if self.down {
            return Err(Error::Unreachable("jitd is not running".into()));
        }
        Ok(GrantCheck {
            active: self.active,
            request_id: u64::from(self.active),
            role: String::new(),
            not_after: 0,
        })
    }
    fn roles(&self, _user: &str) -> Result<Vec<RoleInfo>, Error> {
        Ok(self.roles.clone())
    }
    fn request(&self, r: &PamRequest) -> Result<RequestInfo, Error> {
        if let Some(m) = &self.refuse {
            return Err(Error::Refused(m.clone()));
        }
        self.submitted.borrow_mut().push((
            r.user.clone(),
            r.role.clone(),
            r.duration_secs,
            r.reason.clone(),
        ));
        Ok(info(
            17,
            if self.approvals == 0 {
                "active"
            } else {
                "pending"
            },
        ))
    }
    fn wait(&self, _user: &str, id: u64, _secs: u32) -> Result<RequestInfo, Error> {
        let s = self.waits.borrow_mut().pop_front().unwrap_or_else(|| {
            // Still pending: a real long poll would have taken a while.
            std::thread::sleep(std::time::Duration::from_millis(5));
            "pending"
        });
        Ok(info(id, s))
    }
    fn check_reason(&self, _role: &str, reason: &str) -> Result<(), Error> {
        match &self.bad_reason {
            Some(bad) if reason.contains(bad.as_str()) => {
                Err(Error::Refused(format!("reason must not say {bad}")))
            }
            _ => Ok(()),
        }
    }
    fn pending(&self, _user: &str) -> Result<Vec<RequestInfo>, Error> {
        if self.down {
            return Err(Error::Unreachable("jitd is not running".into()));
        }
        Ok(self.pending.clone())
    }
    fn open_session(&self, s: &SessionOpen) -> Result<u64, Error> {
        if self.down {
            return Err(Error::Unreachable("jitd is not running".into()));
        }
        self.sessions.borrow_mut().push(s.clone());
        Ok(u64::from(self.active))
    }
    fn fleet_roles(&self, _user: &str) -> Result<Vec<RoleInfo>, Error> {
        Ok(self.fleet_roles.clone())
    }
    fn fleet_request(&self, r: &PamRequest) -> Result<FleetAnswer, Error> {
        self.fleet_submitted
            .borrow_mut()
            .push((r.role.clone(), r.duration_secs, r.reason.clone()));
        let mut request = info(0, "pending");
        request.role = r.role.clone();
        request.approvers = vec!["bob".into()];
        Ok(FleetAnswer {
            id: "db1-00aa11bb22".into(),
            request,
        })
    }
    fn fleet_pending(&self, _user: &str) -> Result<Vec<FleetAnswer>, Error> {
        Ok(self.fleet_pending.clone())
    }
    fn fleet_wait(&self, _user: &str, id: &str, _secs: u32) -> Result<FleetAnswer, Error> {
        self.fleet_waits.borrow_mut().push(id.into());
        let state = self.waits.borrow_mut().pop_front().unwrap_or("pending");
        let mut request = info(if state == "active" { 9 } else { 0 }, state);
        request.role = "db-admin".into();
        Ok(FleetAnswer {
            id: id.into(),
            request,
        })
    }
}

struct FakeHost {
    exempt: bool,
}

impl Host for FakeHost {
    fn hostname(&self) -> String {
        "web01".into()
    }
    fn in_group(&self, _user: &str, _group: &str) -> Result<bool, String> {
        Ok(self.exempt)
    }
    fn interrupted(&self) -> bool {
        false
    }
    fn is_superuser(&self, user: &str) -> Result<bool, String> {
        Ok(user == "root")
    }
    fn now(&self) -> i64 {
        0
    }
}

const HOST: FakeHost = FakeHost { exempt: false };

fn sudo_cfg() -> Config {
    parse(["mode=sudo", "wait=30"]).unwrap()
}

fn gate_cfg() -> Config {
    parse(["mode=sudo", "require_grant", "exempt=rescue"]).unwrap()
}

#[test]
fn given_no_grant_when_sudo_auth_then_role_reason_and_duration_are_asked_and_submitted() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["web", "OPS-4411 nginx wedged", "30m"]);
    let v = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    assert_eq!(v, Ok(Verdict::Ignore));
    assert_eq!(
        jitd.submitted.borrow().as_slice(),
        &[(
            "alice".to_string(),
            "web".to_string(),
            1800,
            "OPS-4411 nginx wedged".to_string()
        )]
    );
    let said = pam.said();
    assert!(
        said.contains("no active grant for alice on web01"),
        "{said}"
    );
    assert!(said.contains("granted web"), "{said}");
    assert!(said.contains("Run your command again"), "{said}");
}

#[test]
fn given_empty_role_answer_when_sudo_auth_then_falls_through_without_request() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[""]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert!(jitd.submitted.borrow().is_empty());
    assert_eq!(pam.prompts.len(), 1, "no reason asked after an empty role");
}

#[test]
fn given_user_eligible_for_no_role_when_sudo_auth_then_nothing_is_asked() {
    let jitd = FakeJitd::default();
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert!(pam.prompts.is_empty());
}

#[test]
fn given_active_grant_when_sudo_auth_then_nothing_is_asked() {
    let jitd = FakeJitd {
        active: true,
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert!(pam.prompts.is_empty());
}

#[test]
fn given_sudo_retries_auth_when_called_again_in_same_transaction_then_no_second_request() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["web", "r", ""]);
    for _ in 0..3 {
        let _ = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    }
    assert_eq!(jitd.submitted.borrow().len(), 1);
    assert_eq!(pam.prompts.len(), 3, "asked once: {:?}", pam.prompts);
}

#[test]
fn given_unknown_role_and_empty_reasons_when_asked_then_reasked_then_gives_up() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["nope", "web", "", " ", ""]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert!(jitd.submitted.borrow().is_empty());
    assert!(pam.said().contains("'nope' is not a role"));
    assert!(pam.said().contains("a reason is required"));
}

#[test]
fn given_refused_request_when_submitted_then_user_sees_why() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        refuse: Some("reason must match ^[A-Z]+-[0-9]+".into()),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["web", "no ticket", ""]);
    let r = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    assert!(matches!(r, Err(Error::Refused(_))));
    assert!(
        pam.said().contains("refused: reason must match"),
        "{}",
        pam.said()
    );
}

#[test]
fn given_approval_role_when_approved_while_waiting_then_granted_message() {
    let jitd = FakeJitd {
        roles: vec![role("db", 1)],
        approvals: 1,
        waits: RefCell::new(VecDeque::from(["pending", "active"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["db", "DB-1", ""]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    let said = pam.said();
    assert!(said.contains("needs 1 approval(s) from %sre"), "{said}");
    assert!(said.contains("still waiting"), "{said}");
    assert!(said.contains("granted"), "{said}");
}

#[test]
fn given_approval_role_when_denied_while_waiting_then_user_is_told_who_denied() {
    let jitd = FakeJitd {
        roles: vec![role("db", 1)],
        approvals: 1,
        waits: RefCell::new(VecDeque::from(["denied"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["db", "DB-1", ""]);
    let _ = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    assert!(pam.said().contains("was denied by bob"), "{}", pam.said());
}

#[test]
fn given_jitd_down_when_sudo_auth_without_require_grant_then_user_told_and_steps_aside() {
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    let r = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    assert!(r.is_err());
    assert_eq!(
        decide(is_gate(Some(&sudo_cfg()), Phase::Auth), &r),
        Verdict::Ignore
    );
    assert!(pam.said().contains("jitd is not running"), "{}", pam.said());
}

#[test]
fn given_broken_conversation_when_asking_then_error_never_success() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    pam.conv_broken = true;
    let r = authenticate(&gate_cfg(), &mut pam, &jitd, &HOST);
    assert!(matches!(r, Err(Error::Conversation(_))));
    assert_eq!(
        decide(is_gate(Some(&gate_cfg()), Phase::Auth), &r),
        Verdict::Deny
    );
}

#[test]
fn given_no_require_grant_when_account_then_steps_aside_without_calling_jitd() {
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        account(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
}

#[test]
fn given_require_grant_and_active_grant_when_account_then_success() {
    let jitd = FakeJitd {
        active: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        account(&gate_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Success)
    );
}

#[test]
fn given_require_grant_and_no_grant_when_account_then_denied_with_how_to_get_one() {
    let jitd = FakeJitd::default();
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        account(&gate_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    assert!(pam.said().contains("jitctl request"), "{}", pam.said());
}

#[test]
fn given_require_grant_and_jitd_down_when_account_then_denied() {
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    let r = account(&gate_cfg(), &mut pam, &jitd, &HOST);
    assert_eq!(
        decide(is_gate(Some(&gate_cfg()), Phase::Account), &r),
        Verdict::Deny
    );
    assert!(pam.said().contains("cannot reach jitd"), "{}", pam.said());
}

#[test]
fn given_exempt_group_member_when_account_with_jitd_down_then_passes_to_rest_of_stack() {
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    let host = FakeHost { exempt: true };
    assert_eq!(
        account(&gate_cfg(), &mut pam, &jitd, &host),
        Ok(Verdict::Ignore)
    );
    assert!(pam.logs.iter().any(|l| l.contains("exempt group rescue")));
}

#[test]
fn given_sudo_authenticating_root_or_the_target_when_account_then_the_invoking_user_needs_the_grant()
 {
    // Regression: under `Defaults rootpw` / `targetpw` PAM_USER is root (or the target);
    // the invoking user is PAM_RUSER, and hers is the grant that counts.
    let cfg = parse(["mode=sudo", "require_grant"]).unwrap();
    let mut pam = FakePam::new("root", &[]);
    pam.ruser = "alice".into();
    assert_eq!(
        account(&cfg, &mut pam, &FakeJitd::default(), &HOST),
        Ok(Verdict::Deny),
        "root's exemption is not alice's"
    );
    assert!(
        pam.errors.iter().any(|e| e.contains("alice")),
        "{:?}",
        pam.errors
    );
    let mut pam = FakePam::new("root", &[]);
    pam.ruser = "alice".into();
    let held = FakeJitd {
        active: true,
        ..FakeJitd::default()
    };
    assert_eq!(account(&cfg, &mut pam, &held, &HOST), Ok(Verdict::Success));
    assert_eq!(holder(&cfg, &mut pam), Ok("alice".to_string()));
    // sshd: PAM_USER, whatever PAM_RUSER says.
    let ssh = parse(["mode=ssh"]).unwrap();
    assert_eq!(holder(&ssh, &mut pam), Ok("root".to_string()));
}

#[test]
fn given_require_grant_when_root_runs_sudo_then_no_grant_is_needed() {
    // Regression: root's own sudo was denied unless root was in the exempt group.
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("root", &[]);
    let no_exempt = parse(["mode=sudo", "require_grant"]).unwrap();
    assert_eq!(
        account(&no_exempt, &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    // Anyone else still needs one.
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        account(&no_exempt, &mut pam, &FakeJitd::default(), &HOST),
        Ok(Verdict::Deny)
    );
    // ssh logins as root stay gated (sshd's PermitRootLogin decides whether they happen).
    let mut pam = FakePam::new("root", &[]);
    let ssh = parse(["mode=ssh"]).unwrap();
    assert_eq!(
        account(&ssh, &mut pam, &FakeJitd::default(), &HOST),
        Ok(Verdict::Deny)
    );
}

#[test]
fn given_ssh_mode_when_account_without_grant_then_denied_even_without_require_grant() {
    let cfg = parse(["mode=ssh"]).unwrap();
    let mut pam = FakePam::new("alice", &[]);
    assert_eq!(
        account(&cfg, &mut pam, &FakeJitd::default(), &HOST),
        Ok(Verdict::Deny)
    );
    let down = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let r = account(&cfg, &mut pam, &down, &HOST);
    assert_eq!(
        decide(is_gate(Some(&cfg), Phase::Account), &r),
        Verdict::Deny
    );
}

#[test]
fn no_error_of_any_kind_ever_decides_success() {
    let errors = [
        Error::Config("x".into()),
        Error::Pam("x".into()),
        Error::Conversation("x".into()),
        Error::Unreachable("x".into()),
        Error::Refused("x".into()),
    ];
    for gate in [true, false] {
        for e in &errors {
            assert_ne!(decide(gate, &Err(e.clone())), Verdict::Success);
        }
    }
    assert_eq!(
        decide(false, &Err(Error::Config("x".into()))),
        Verdict::Deny
    );
    assert_eq!(
        decide(true, &Err(Error::Refused("x".into()))),
        Verdict::Deny
    );
    assert!(is_gate(None, Phase::Auth));
}

#[test]
fn given_sudo_session_when_opened_then_jitd_tracks_the_invoking_users_pid() {
    let jitd = FakeJitd {
        active: true,
        ..FakeJitd::default()
    };
    // In sudo's session phase PAM_USER is the target user; the holder is PAM_RUSER.
    let mut pam = FakePam::new("root", &[]);
    pam.ruser = "alice".into();
    assert_eq!(
        open_session(&sudo_cfg(), &mut pam, &jitd, 4242),
        Ok(Verdict::Ignore)
    );
    let sessions = jitd.sessions.borrow();
    let [s] = sessions.as_slice() else {
        panic!("one session: {sessions:?}")
    };
    assert_eq!((s.pid, s.user.as_str()), (4242, "alice"));
    // What the grant's role must run as, so jitd binds the session to a grant that could
    // have authorised it (regression: it took the user's longest grant of any role).
    assert_eq!((s.target.as_str(), s.ssh), ("root", false));
}

#[test]
fn given_ssh_session_when_opened_then_only_ssh_grants_may_hold_it() {
    let jitd = FakeJitd {
        active: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    let cfg = parse(["mode=ssh"]).unwrap();
    assert_eq!(
        open_session(&cfg, &mut pam, &jitd, 4242),
        Ok(Verdict::Ignore)
    );
    let sessions = jitd.sessions.borrow();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].user.as_str(), sessions[0].target.as_str()),
        ("alice", "")
    );
    assert!(sessions[0].ssh, "an ssh login binds to ssh grants only");
}

#[test]
fn given_jitd_down_when_session_opens_then_denied_only_with_require_grant() {
    let jitd = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    let r = open_session(&sudo_cfg(), &mut pam, &jitd, 4242);
    assert_eq!(
        decide(is_gate(Some(&gate_cfg()), Phase::OpenSession), &r),
        Verdict::Deny
    );
    assert_eq!(
        decide(is_gate(Some(&sudo_cfg()), Phase::OpenSession), &r),
        Verdict::Ignore
    );
}

// --- sshd auth: the keyboard-interactive step after the key ---

fn ssh_role(name: &str, approvals: u32) -> RoleInfo {
    RoleInfo {
        ssh: true,
        ..role(name, approvals)
    }
}

/// A key-authenticated login as sshd presents it to PAM.
fn after_key(answers: &[&str]) -> FakePam {
    FakePam {
        auth_info: Some("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB...\n".into()),
        ..FakePam::new("alice", answers)
    }
}

fn ssh_cfg() -> Config {
    parse(["mode=ssh", "wait=5"]).unwrap()
}

#[test]
fn given_no_earlier_method_when_ssh_auth_then_denied_without_asking_or_calling_jitd() {
    // jitd "down": any call would be an error, so Ok(Deny) shows none was made.
    let jitd = FakeJitd {
        down: true,
        roles: vec![ssh_role("web", 1)],
        ..FakeJitd::default()
    };
    for info in [None, Some(""), Some("  \n")] {
        let mut pam = FakePam {
            auth_info: info.map(str::to_string),
            ..FakePam::new("alice", &[])
        };
        assert_eq!(
            authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
            Ok(Verdict::Deny)
        );
        assert!(pam.prompts.is_empty(), "{info:?}");
        assert!(pam.logs[0].contains("must follow one"), "{:?}", pam.logs);
    }
}

#[test]
fn given_active_ssh_grant_when_ssh_auth_then_success_without_prompts() {
    let jitd = FakeJitd {
        active: true,
        roles: vec![ssh_role("web", 1)],
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Success)
    );
    assert!(pam.prompts.is_empty());
}

#[test]
fn given_no_grant_when_ssh_auth_then_asked_submitted_and_admitted_once_approved() {
    let jitd = FakeJitd {
        roles: vec![role("sudo-only", 0), ssh_role("web", 1)],
        approvals: 1,
        waits: RefCell::new(VecDeque::from(["active"])),
        ..FakeJitd::default()
    };
    let mut pam = after_key(&["web", "OPS-1 disk full", "20m", ""]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Success)
    );
    let submitted = jitd.submitted.borrow();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].1, "web");
    assert_eq!(submitted[0].2, 1200);
    let said = pam.said();
    assert!(
        said.contains("roles you may request:\njit:   web  "),
        "{said}"
    );
    assert!(
        !said.contains("sudo-only"),
        "only ssh roles are offered: {said}"
    );
    // The wait starts with a prompt: sshd shows PAM messages only with the next prompt.
    let last = pam.prompts.last().unwrap();
    assert!(
        last.contains("request 17 for role 'web' needs 1 approval(s) from %sre"),
        "{last}"
    );
    assert!(last.contains("Press Enter to wait for it"), "{last}");
    assert!(said.contains("granted web"), "{said}");
}

#[test]
fn given_request_still_pending_when_waiting_then_progress_prompt_each_interval() {
    let jitd = FakeJitd {
        waits: RefCell::new(VecDeque::from(["pending", "pending", "pending", "active"])),
        ..FakeJitd::default()
    };
    let mut pam = after_key(&["", "", "", ""]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let req = wait_at_login(
        &mut pam,
        &jitd,
        "alice",
        info(17, "pending"),
        deadline,
        Duration::from_millis(1),
    )
    .unwrap();
    assert_eq!(req.state, "active");
    assert_eq!(pam.prompts.len(), 4, "{:?}", pam.prompts);
    assert!(
        pam.prompts[1].starts_with("jit: request 17 is still waiting for approval."),
        "{:?}",
        pam.prompts
    );
}

#[test]
fn given_q_at_progress_prompt_when_ssh_auth_then_stops_and_login_refused() {
    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 1)],
        approvals: 1,
        ..FakeJitd::default()
    };
    let mut pam = after_key(&["web", "r", "", "q"]);
    let started = Instant::now();
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    assert!(started.elapsed() < Duration::from_secs(2), "did not wait");
    assert!(
        pam.said()
            .contains("still waiting for approval; log in again"),
        "{}",
        pam.said()
    );
}

#[test]
fn given_no_decision_before_wait_ends_when_ssh_auth_then_refused_in_time() {
    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 1)],
        approvals: 1,
        ..FakeJitd::default()
    };
    let mut pam = after_key(&["web", "r", "", "", "", "", ""]);
    let cfg = parse(["mode=ssh", "wait=1"]).unwrap();
    let started = Instant::now();
    assert_eq!(
        authenticate_ssh(&cfg, &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn given_denial_when_ssh_auth_then_refused_saying_by_whom() {
    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 1)],
        approvals: 1,
        waits: RefCell::new(VecDeque::from(["denied"])),
        ..FakeJitd::default()
    };
    let mut pam = after_key(&["web", "r", "", ""]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    assert!(
        pam.said().contains("request 17 was denied by bob"),
        "{}",
        pam.said()
    );
}

#[test]
fn given_pending_request_from_earlier_login_when_ssh_auth_then_waits_for_it_without_asking() {
    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 1)],
        pending: vec![info(9, "pending")],
        waits: RefCell::new(VecDeque::from(["active"])),
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[""]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Success)
    );
    assert!(jitd.submitted.borrow().is_empty());
    assert_eq!(pam.prompts.len(), 1, "{:?}", pam.prompts);
    assert!(pam.prompts[0].contains("request 9 for role 'web'"));
}

#[test]
fn given_no_ssh_role_or_empty_answer_when_ssh_auth_then_refused_with_a_reason() {
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    assert!(pam.said().contains("no role they may request does"));
    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[""]);
    assert_eq!(
        authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Deny)
    );
    assert!(jitd.submitted.borrow().is_empty());
}

#[test]
fn given_jitd_down_or_conversation_broken_when_ssh_auth_then_denied() {
    let cfg = ssh_cfg();
    assert!(is_gate(Some(&cfg), Phase::Auth));
    let down = FakeJitd {
        down: true,
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[]);
    let r = authenticate_ssh(&cfg, &mut pam, &down, &HOST);
    assert!(matches!(r, Err(Error::Unreachable(_))), "{r:?}");
    assert_eq!(decide(true, &r), Verdict::Deny);
    assert!(pam.said().contains("cannot reach jitd"), "{}", pam.said());

    let jitd = FakeJitd {
        roles: vec![ssh_role("web", 1)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam {
        conv_broken: true,
        ..after_key(&[])
    };
    let r = authenticate_ssh(&cfg, &mut pam, &jitd, &HOST);
    assert_eq!(decide(true, &r), Verdict::Deny);
}

// --- the sudo prompt, as a person meets it ---

#[test]
fn given_many_roles_when_listed_then_one_a_line_with_what_each_needs() {
    let roles: Vec<RoleInfo> = (0..16)
        .map(|i| role(&format!("role-{i:02}"), u32::from(i % 3 == 0)))
        .collect();
    let listing = roles_listing(&choices(roles, Vec::new()));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 17, "{listing}");
    assert_eq!(lines[0], "jit: roles you may request:");
    assert_eq!(lines[1], "jit:   role-00  up to 1h, 1 approval from %sre");
    assert_eq!(lines[2], "jit:   role-01  up to 1h, no approval");
}

#[test]
fn given_reason_breaking_the_role_rules_when_typed_then_asked_again_at_once() {
    // Regression: a bad reason was refused only after the duration question, and sudo then
    // ended, so every answer had to be typed again.
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        bad_reason: Some("nope".into()),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["web", "nope 1", "OPS-1 fine", ""]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert_eq!(
        jitd.submitted.borrow().as_slice(),
        &[(
            "alice".to_string(),
            "web".to_string(),
            900,
            "OPS-1 fine".to_string()
        )]
    );
    assert!(
        pam.said()
            .contains("reason must not say nope; type it again"),
        "{}",
        pam.said()
    );
}

#[test]
fn given_pending_request_from_earlier_sudo_when_sudo_again_then_offered_to_wait_for_it() {
    // Regression: the user was asked role, reason and duration again, then told the request
    // was already pending.
    let mut pending = info(17, "pending");
    pending.role = "web".into();
    let jitd = FakeJitd {
        roles: vec![role("web", 1)],
        pending: vec![pending],
        waits: RefCell::new(VecDeque::from(["active"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[""]);
    assert_eq!(
        authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST),
        Ok(Verdict::Ignore)
    );
    assert!(
        jitd.submitted.borrow().is_empty(),
        "nothing asked or submitted again"
    );
    assert_eq!(pam.prompts.len(), 1, "{:?}", pam.prompts);
    let said = pam.said();
    assert!(
        said.contains("request 17 for role 'web' is still waiting"),
        "{said}"
    );
    assert!(said.contains("granted web"), "{said}");
    // 'n' asks for another role instead.
    let mut pam = FakePam::new("alice", &["n", ""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    assert!(
        pam.prompts
            .iter()
            .any(|p| p.contains("role (Enter to skip)")),
        "{:?}",
        pam.prompts
    );
}

#[test]
fn given_no_ssh_role_when_keyboard_interactive_retries_then_refusal_said_once() {
    // Regression: sshd retries keyboard-interactive; the user saw the refusal three times.
    let jitd = FakeJitd {
        roles: vec![role("sudo-only", 0)],
        ..FakeJitd::default()
    };
    let mut pam = after_key(&[]);
    for _ in 0..3 {
        assert_eq!(
            authenticate_ssh(&ssh_cfg(), &mut pam, &jitd, &HOST),
            Ok(Verdict::Deny)
        );
    }
    assert_eq!(pam.errors.len(), 1, "{:?}", pam.errors);
}

#[test]
fn given_approval_needed_when_sudo_waits_then_told_how_to_stop_and_follow_it() {
    let jitd = FakeJitd {
        roles: vec![role("web", 1)],
        approvals: 1,
        waits: RefCell::new(VecDeque::from(["active"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["web", "OPS-1", ""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    let said = pam.said();
    assert!(
        said.contains("Ctrl-C stops waiting; the request stays: jitctl wait 17"),
        "{said}"
    );
}

#[test]
fn given_a_user_name_with_control_characters_when_refused_then_the_message_shows_them_escaped() {
    // Found by the conversation fuzz target: PAM_USER went into the refusal raw, so a name
    // holding terminal escapes reached the user's terminal as escapes.
    let ssh = parse(["mode=ssh"]).unwrap();
    let mut pam = FakePam::new("a\u{1b}[2Jb\u{1}", &[]);
    assert_eq!(
        account(&ssh, &mut pam, &FakeJitd::default(), &HOST),
        Ok(Verdict::Deny)
    );
    let mut sudo = FakePam::new("a\u{1b}[2Jb\u{1}", &[""]);
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let _ = authenticate(&sudo_cfg(), &mut sudo, &jitd, &HOST);
    for said in [pam.said(), sudo.said()] {
        assert!(said.contains("a\\u{1b}[2Jb\\u{1}"), "{said}");
        assert!(
            !said.contains('\u{1b}') && !said.contains('\u{1}'),
            "{said:?}"
        );
    }
}

#[test]
fn given_a_pending_request_when_something_other_than_enter_or_n_is_typed_then_asked_again() {
    // Found in a user trial: typing a role name at "wait for it (Enter), or ... (n)?" was
    // taken as "wait", and the reason and duration typed next went nowhere.
    let mut pending = info(17, "pending");
    pending.role = "web".into();
    let jitd = FakeJitd {
        roles: vec![role("web", 1), role("db", 0)],
        pending: vec![pending],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["db", "n", "db", "OPS-2 other", ""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    assert!(
        pam.said()
            .contains("'db' is neither; press Enter to wait, or type n."),
        "{}",
        pam.said()
    );
    assert_eq!(
        jitd.submitted.borrow().as_slice(),
        &[(
            "alice".to_string(),
            "db".to_string(),
            900,
            "OPS-2 other".to_string()
        )]
    );
}

#[test]
fn given_a_refusal_that_says_type_it_again_when_shown_then_said_once() {
    // Found in a user trial: "... type it again without it; type it again."
    // The fake refuses with "reason must not say BAD": here a BAD that ends the way
    // jitd's refusal of a hidden character does.
    let bad = "(U+001B); type it again without it";
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        bad_reason: Some(bad.into()),
        ..FakeJitd::default()
    };
    let typed = format!("a {bad}");
    let mut pam = FakePam::new("alice", &["web", &typed, "OPS-1 fine", ""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    let said = pam.said();
    assert_eq!(said.matches("type it again").count(), 1, "{said}");
}

#[test]
fn given_the_conversation_ends_at_the_role_question_then_the_message_does_not_speak_of_a_reason() {
    // Found in a user trial: Ctrl-C at the role question said "cannot ask for a reason here".
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[]);
    pam.conv_broken = true;
    let _ = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    let said = pam.said();
    assert!(said.contains("jit: cannot ask here"), "{said}");
    assert!(!said.contains("reason"), "{said}");
}

#[test]
fn given_a_typed_role_with_bidi_or_filler_characters_when_refused_then_they_show_escaped() {
    // escape_debug let printable-looking hidden characters through (U+3164 HANGUL FILLER,
    // U+2800 BRAILLE BLANK); the product's own escaping names them all.
    let jitd = FakeJitd {
        roles: vec![role("web", 0)],
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["we\u{202e}b", "\u{3164}web\u{2800}", ""]);
    let _ = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    let said = pam.said();
    assert!(said.contains("we\\u{202e}b"), "{said}");
    assert!(said.contains("\\u{3164}web\\u{2800}"), "{said}");
    assert!(
        !said
            .chars()
            .any(|c| jit_proto::text::is_hidden_char(c) && c != '\n'),
        "{said:?}"
    );
}

// --- fleet roles at the sudo prompt ---

#[test]
fn given_a_fleet_role_with_the_name_of_a_local_one_when_listed_then_it_is_chosen_as_fleet_name() {
    let listed = choices(
        vec![role("db-admin", 1)],
        vec![role("db-admin", 1), role("db-ro", 1)],
    );
    let labels: Vec<&str> = listed.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["db-admin", "fleet:db-admin", "db-ro"]);
    let listing = roles_listing(&listed);
    assert!(
        listing.contains("fleet:db-admin  up to 1h, 1 approval from %sre, fleet role"),
        "{listing}"
    );
    assert!(
        !listing.lines().nth(1).unwrap().contains("fleet"),
        "{listing}"
    );
}

#[test]
fn given_a_fleet_role_when_chosen_at_the_sudo_prompt_then_a_fleet_request_is_made_and_waited_for_until_applied_here()
 {
    let jitd = FakeJitd {
        roles: vec![role("db-admin", 1)],
        fleet_roles: vec![role("db-admin", 1)],
        waits: RefCell::new(VecDeque::from(["pending", "active"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["fleet:db-admin", "DB-7 vacuum", "20m"]);
    let r = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    assert_eq!(r, Ok(Verdict::Ignore));
    assert!(jitd.submitted.borrow().is_empty(), "no local request");
    assert_eq!(
        *jitd.fleet_submitted.borrow(),
        [("db-admin".to_string(), 1200, "DB-7 vacuum".to_string())]
    );
    assert_eq!(*jitd.fleet_waits.borrow(), ["db1-00aa11bb22"; 2]);
    let said = pam.said();
    assert!(
        said.contains("`jitctl approve db1-00aa11bb22` on any host"),
        "{said}"
    );
    assert!(
        said.contains("fleet request db1-00aa11bb22: granted db-admin until"),
        "{said}"
    );
}

#[test]
fn given_a_fleet_role_only_when_its_bare_name_is_typed_then_it_is_chosen() {
    let jitd = FakeJitd {
        fleet_roles: vec![role("db-ro", 1)],
        waits: RefCell::new(VecDeque::from(["expired"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &["db-ro", "DB-8", ""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    assert_eq!(jitd.fleet_submitted.borrow()[0].0, "db-ro");
    // The role's default duration, as for a local role.
    assert_eq!(jitd.fleet_submitted.borrow()[0].1, 900);
    assert!(
        pam.said()
            .contains("fleet request db1-00aa11bb22 has lapsed"),
        "{}",
        pam.said()
    );
}

#[test]
fn given_a_fleet_reason_that_hides_text_or_is_too_long_when_typed_then_asked_again() {
    let jitd = FakeJitd {
        fleet_roles: vec![role("db-ro", 1)],
        ..FakeJitd::default()
    };
    let long = "x".repeat(501);
    let mut pam = FakePam::new("alice", &["db-ro", "DB-1 \u{202e}evil", &long, ""]);
    let mut cfg = sudo_cfg();
    cfg.wait = std::time::Duration::ZERO;
    authenticate(&cfg, &mut pam, &jitd, &HOST).unwrap();
    let errors = pam.errors.join("\n");
    assert!(errors.contains("could hide text"), "{errors}");
    assert!(errors.contains("at most 500 characters"), "{errors}");
    assert!(errors.contains("a reason is required"), "{errors}");
    // Three attempts, none good: nothing requested.
    assert!(jitd.fleet_submitted.borrow().is_empty());
    assert!(
        pam.said()
            .contains("no reason given; nothing was requested")
    );
}

#[test]
fn given_a_fleet_request_from_an_earlier_sudo_still_waiting_when_sudo_runs_again_then_it_offers_to_wait_for_it_instead_of_asking_again()
 {
    let mut earlier = info(0, "pending");
    earlier.role = "db-admin".into();
    let jitd = FakeJitd {
        fleet_roles: vec![role("db-admin", 1)],
        fleet_pending: vec![FleetAnswer {
            id: "db1-00cc11dd22".into(),
            request: earlier,
        }],
        waits: RefCell::new(VecDeque::from(["active"])),
        ..FakeJitd::default()
    };
    let mut pam = FakePam::new("alice", &[""]);
    authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST).unwrap();
    assert!(jitd.fleet_submitted.borrow().is_empty(), "asked again");
    assert_eq!(*jitd.fleet_waits.borrow(), ["db1-00cc11dd22"]);
    let said = pam.said();
    assert!(
        said.contains("fleet request db1-00cc11dd22 for role 'db-admin' is still waiting"),
        "{said}"
    );
    assert!(
        said.contains("fleet request db1-00cc11dd22: granted"),
        "{said}"
    );
}
