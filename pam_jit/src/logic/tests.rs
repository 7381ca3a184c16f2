use super::*;
use crate::args::parse;
use std::cell::RefCell;
use std::collections::VecDeque;

/// A scripted PAM conversation.
#[derive(Default)]
struct FakePam {
    user: Option<String>,
    answers: VecDeque<Option<String>>,
    prompts: Vec<String>,
    infos: Vec<String>,
    errors: Vec<String>,
    logs: Vec<String>,
    done: bool,
    conv_broken: bool,
    ruser: String,
}

impl FakePam {
    fn new(user: &str, answers: &[&str]) -> FakePam {
        FakePam {
            user: Some(user.into()),
            answers: answers.iter().map(|a| Some((*a).to_string())).collect(),
            ..FakePam::default()
        }
    }
    fn said(&self) -> String {
        [self.infos.join("\n"), self.errors.join("\n")].join("\n")
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
    fn prompt(&mut self, msg: &str) -> Result<Option<String>, Error> {
        self.prompts.push(msg.into());
        if self.conv_broken {
            return Err(Error::Conversation("no tty".into()));
        }
        Ok(self.answers.pop_front().flatten())
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
    fn auth_done(&self) -> bool {
        self.done
    }
    fn set_auth_done(&mut self) {
        self.done = true;
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
    sessions: RefCell<Vec<u32>>,
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
    fn request(&self, r: &Submit<'_>) -> Result<RequestInfo, Error> {
        if let Some(m) = &self.refuse {
            return Err(Error::Refused(m.clone()));
        }
        self.submitted.borrow_mut().push((
            r.user.into(),
            r.role.into(),
            r.duration_secs,
            r.reason.into(),
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
        let s = self.waits.borrow_mut().pop_front().unwrap_or("pending");
        Ok(info(id, s))
    }
    fn open_session(&self, s: &SessionOpen<'_>) -> Result<u64, Error> {
        if self.down {
            return Err(Error::Unreachable("jitd is not running".into()));
        }
        self.sessions.borrow_mut().push(s.pid);
        Ok(u64::from(self.active))
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
    let mut pam = FakePam::new("alice", &["web", "r", "", "web", "r", ""]);
    for _ in 0..3 {
        let _ = authenticate(&sudo_cfg(), &mut pam, &jitd, &HOST);
    }
    assert_eq!(jitd.submitted.borrow().len(), 1);
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
    assert_eq!(jitd.sessions.borrow().as_slice(), &[4242]);
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
