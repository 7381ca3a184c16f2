//! The policy file (TOML) and the decisions it drives.
//!
//! Loading is strict: an unknown key, a bad name, a pattern that does not compile or a
//! contradiction is an error with file, line and column; jitd never runs on a
//! half-understood policy. Decisions are pure: users and groups come from an injected
//! [`Directory`].

use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::names;
use jit_proto::{RoleInfo, format_duration, parse_duration};
use regex::Regex;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// Longest reason accepted unless the policy says otherwise.
pub const DEFAULT_REASON_MAX: usize = 500;
/// How long a request may stay pending unless the role says otherwise.
pub const DEFAULT_PENDING_TIMEOUT: u64 = 3600;

/// A requester or approver as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(String),
    Group(String),
}

impl Principal {
    fn parse(s: &str) -> std::result::Result<Principal, String> {
        match s.strip_prefix('%') {
            Some(g) => names::validate_group_name(g).map(|()| Principal::Group(g.to_string())),
            None => names::validate_user_name(s).map(|()| Principal::User(s.to_string())),
        }
    }

    pub fn spec(&self) -> String {
        match self {
            Principal::User(u) => u.clone(),
            Principal::Group(g) => format!("%{g}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub commands: Vec<String>,
    pub run_as: String,
    pub requesters: Vec<Principal>,
    pub approvers: Vec<Principal>,
    pub approvals: u32,
    pub max_duration: u64,
    pub default_duration: u64,
    pub reason_pattern: Option<Regex>,
    pub ssh: bool,
    pub reauth: bool,
    pub pending_timeout: u64,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub path: String,
    pub roles: Vec<Role>,
    pub reason_max: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    reason_max_length: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    commands: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    run_as: Option<Spanned<String>>,
    requesters: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    approvers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    approvals: Option<Spanned<i64>>,
    max_duration: Spanned<String>,
    #[serde(default)]
    default_duration: Option<Spanned<String>>,
    #[serde(default)]
    reason_pattern: Option<Spanned<String>>,
    #[serde(default)]
    ssh: bool,
    #[serde(default)]
    reauth: bool,
    #[serde(default)]
    pending_timeout: Option<Spanned<String>>,
}

/// A policy error with its position, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let (line, column) = position(self.text, span.start);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Policy {
    /// Reads and validates the policy file.
    pub fn load(path: &str, dir: &dyn Directory) -> std::result::Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read policy: {e}"),
        })?;
        Policy::parse(path, &text, dir)
    }

    /// Parses and validates policy text; `file` is only used in messages.
    pub fn parse(
        file: &str,
        text: &str,
        dir: &dyn Directory,
    ) -> std::result::Result<Policy, PolicyError> {
        let ctx = Ctx { file, text };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ctx.err(span, e.message().trim().to_string())
        })?;
        let reason_max = match raw.settings.and_then(|s| s.reason_max_length) {
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n) if (1..=4096).contains(&n) => n,
                _ => {
                    return Err(ctx.err(v.span(), "reason_max_length must be between 1 and 4096"));
                }
            },
            None => DEFAULT_REASON_MAX,
        };
        let mut roles: Vec<Role> = Vec::new();
        for spanned in raw.role {
            let span = spanned.get_ref().name.span();
            let role = validate_role(&ctx, spanned.into_inner(), dir)?;
            if roles.iter().any(|r| r.name == role.name) {
                return Err(ctx.err(span, format!("duplicate role '{}'", role.name)));
            }
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(ctx.err(0..0, "no [[role]] defined: nothing could ever be granted"));
        }
        Ok(Policy {
            path: file.to_string(),
            roles,
            reason_max,
        })
    }

    pub fn role(&self, name: &str) -> Result<&Role> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::NotFound(format!("unknown role '{}'", names::escape(name))))
    }

    /// Roles `user` may request, in policy order.
    pub fn requestable(&self, user: &str, dir: &dyn Directory) -> Result<Vec<&Role>> {
        let groups = user_groups(user, dir)?;
        Ok(self
            .roles
            .iter()
            .filter(|r| matches_any(&r.requesters, user, &groups))
            .collect())
    }

    /// Validates a request against the role: eligibility, duration, reason. Returns the
    /// duration (the role's default when 0 is asked) and the normalised reason.
    pub fn check_request(
        &self,
        role: &Role,
        user: &str,
        duration: u64,
        reason: &str,
        dir: &dyn Directory,
    ) -> Result<(u64, String)> {
        let groups = user_groups(user, dir)?;
        if !matches_any(&role.requesters, user, &groups) {
            return Err(Error::Refused(format!(
                "{user} may not request role '{}'",
                role.name
            )));
        }
        let duration = if duration == 0 {
            role.default_duration
        } else {
            duration
        };
        if duration > role.max_duration {
            return Err(Error::Refused(format!(
                "duration {} exceeds the maximum of {} for role '{}'",
                format_duration(duration),
                format_duration(role.max_duration),
                role.name
            )));
        }
        let reason =
            names::validate_text("reason", reason, self.reason_max).map_err(Error::Refused)?;
        if let Some(re) = &role.reason_pattern
            && !re.is_match(&reason)
        {
            return Err(Error::Refused(format!(
                "reason must match {} for role '{}' (for example a ticket id)",
                re.as_str(),
                role.name
            )));
        }
        Ok((duration, reason))
    }

    /// Whether `user` is one of the role's approvers. Never decides self-approval: the
    /// caller checks that against the request.
    pub fn may_approve(&self, role: &Role, user: &str, dir: &dyn Directory) -> Result<bool> {
        let groups = user_groups(user, dir)?;
        Ok(matches_any(&role.approvers, user, &groups))
    }

    /// Names of the roles `user` may approve, resolving the user's groups once.
    pub fn approvable(&self, user: &str, dir: &dyn Directory) -> Result<Vec<&str>> {
        let groups = user_groups(user, dir)?;
        Ok(self
            .roles
            .iter()
            .filter(|r| matches_any(&r.approvers, user, &groups))
            .map(|r| r.name.as_str())
            .collect())
    }
}

fn user_groups(user: &str, dir: &dyn Directory) -> Result<Vec<String>> {
    dir.groups_of(user)
        .map_err(|e| Error::Internal(format!("cannot resolve groups: {e}")))
}

fn matches_any(list: &[Principal], user: &str, groups: &[String]) -> bool {
    list.iter().any(|p| match p {
        Principal::User(u) => u == user,
        Principal::Group(g) => groups.iter().any(|x| x == g),
    })
}

fn principals(
    ctx: &Ctx<'_>,
    list: Spanned<Vec<Spanned<String>>>,
    dir: &dyn Directory,
) -> std::result::Result<Vec<Principal>, PolicyError> {
    let mut out = Vec::new();
    for item in list.into_inner() {
        let p = Principal::parse(item.get_ref()).map_err(|e| ctx.err(item.span(), e))?;
        if let Principal::Group(g) = &p {
            match dir.group_exists(g) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(ctx.err(
                        item.span(),
                        format!("unknown group '{g}': create it or remove it from the list"),
                    ));
                }
                Err(e) => return Err(ctx.err(item.span(), e)),
            }
        }
        out.push(p);
    }
    Ok(out)
}

fn duration(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Spanned<String>,
) -> std::result::Result<u64, PolicyError> {
    parse_duration(value.get_ref()).map_err(|e| ctx.err(value.span(), format!("{key}: {e}")))
}

fn validate_role(
    ctx: &Ctx<'_>,
    raw: RawRole,
    dir: &dyn Directory,
) -> std::result::Result<Role, PolicyError> {
    let name = raw.name.get_ref().clone();
    names::validate_role_name(&name).map_err(|e| ctx.err(raw.name.span(), e))?;
    let description =
        names::validate_text("description", &raw.description, 200).unwrap_or_else(|_| name.clone());

    let commands_span = raw.commands.span();
    let mut commands = Vec::new();
    for c in raw.commands.into_inner() {
        names::validate_command(c.get_ref()).map_err(|e| ctx.err(c.span(), e))?;
        commands.push(c.into_inner());
    }
    if commands.is_empty() {
        return Err(ctx.err(commands_span, "commands must list at least one command"));
    }

    let run_as = match raw.run_as {
        Some(r) => {
            names::validate_user_name(r.get_ref()).map_err(|e| ctx.err(r.span(), e))?;
            r.into_inner()
        }
        None => "root".to_string(),
    };

    let requesters_span = raw.requesters.span();
    let requesters = principals(ctx, raw.requesters, dir)?;
    if requesters.is_empty() {
        return Err(ctx.err(requesters_span, "requesters must not be empty"));
    }
    let (approvers, approvers_span) = match raw.approvers {
        Some(a) => {
            let span = a.span();
            (principals(ctx, a, dir)?, span)
        }
        None => (Vec::new(), commands_span.clone()),
    };

    let approvals = match raw.approvals {
        Some(a) => u32::try_from(*a.get_ref())
            .ok()
            .filter(|n| *n <= 16)
            .ok_or_else(|| ctx.err(a.span(), "approvals must be between 0 and 16"))?,
        None => 0,
    };
    if approvals > 0 && approvers.is_empty() {
        return Err(ctx.err(
            approvers_span,
            format!("role '{name}' needs {approvals} approval(s) but lists no approvers"),
        ));
    }
    let explicit_users = approvers
        .iter()
        .filter(|p| matches!(p, Principal::User(_)))
        .count();
    let has_group = approvers.iter().any(|p| matches!(p, Principal::Group(_)));
    if !has_group && usize::try_from(approvals).unwrap_or(usize::MAX) > explicit_users {
        return Err(ctx.err(
            approvers_span,
            format!(
                "role '{name}' needs {approvals} distinct approvals but lists only {explicit_users} approver(s)"
            ),
        ));
    }

    let max_duration = duration(ctx, "max_duration", &raw.max_duration)?;
    let default_duration = match &raw.default_duration {
        Some(d) => {
            let v = duration(ctx, "default_duration", d)?;
            if v > max_duration {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "default_duration {} is longer than max_duration {}",
                        format_duration(v),
                        format_duration(max_duration)
                    ),
                ));
            }
            v
        }
        None => max_duration.min(900),
    };
    let pending_timeout = match &raw.pending_timeout {
        Some(d) => duration(ctx, "pending_timeout", d)?,
        None => DEFAULT_PENDING_TIMEOUT,
    };

    let reason_pattern = match raw.reason_pattern {
        Some(p) => Some(Regex::new(p.get_ref()).map_err(|e| {
            ctx.err(
                p.span(),
                format!(
                    "reason_pattern does not compile: {}",
                    one_line(&e.to_string())
                ),
            )
        })?),
        None => None,
    };

    Ok(Role {
        name,
        description,
        commands,
        run_as,
        requesters,
        approvers,
        approvals,
        max_duration,
        default_duration,
        reason_pattern,
        ssh: raw.ssh,
        reauth: raw.reauth,
        pending_timeout,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Role {
    pub fn info(&self) -> RoleInfo {
        RoleInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            approvals: self.approvals,
            approvers: self.approvers.iter().map(Principal::spec).collect(),
            max_duration_secs: self.max_duration,
            default_duration_secs: self.default_duration,
            commands: self.commands.clone(),
            run_as: self.run_as.clone(),
            ssh: self.ssh,
            reason_pattern: self
                .reason_pattern
                .as_ref()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::FakeDirectory;

    fn dir() -> FakeDirectory {
        FakeDirectory::default()
            .user("alice", 1001, &["alice", "webops"])
            .user("bob", 1002, &["bob", "sre"])
            .user("carol", 1003, &["carol", "sre"])
            .user("mallory", 1004, &["mallory"])
    }

    const GOOD: &str = r#"
[[role]]
name = "web-restart"
description = "Restart the web tier"
commands = ["/usr/bin/systemctl restart nginx", "/usr/bin/systemctl status nginx"]
requesters = ["alice", "%webops"]
approvals = 0
max_duration = "1h"
default_duration = "15m"
reason_pattern = "^[A-Z]+-[0-9]+"

[[role]]
name = "db-admin"
commands = ["/usr/bin/psql"]
run_as = "postgres"
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "2h"
"#;

    fn parse(text: &str) -> std::result::Result<Policy, PolicyError> {
        Policy::parse("jit.toml", text, &dir())
    }

    #[test]
    fn given_example_policy_when_parsed_then_roles_have_their_values() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.roles.len(), 2);
        let web = p.role("web-restart").unwrap();
        assert_eq!(web.max_duration, 3600);
        assert_eq!(web.default_duration, 900);
        assert_eq!(web.run_as, "root");
        let db = p.role("db-admin").unwrap();
        assert_eq!(db.approvals, 1);
        assert_eq!(db.run_as, "postgres");
        assert_eq!(db.approvers, vec![Principal::Group("sre".into())]);
        assert_eq!(db.default_duration, 900);
    }

    fn err_of(text: &str) -> PolicyError {
        parse(text).unwrap_err()
    }

    #[test]
    fn given_unknown_key_when_parsed_then_error_names_line_and_column() {
        let e = err_of(
            &GOOD
                .replace("ssh_x", "")
                .replace("approvals = 0", "approvals = 0\naproval = 1"),
        );
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("aproval"), "{e}");
        assert!(e.to_string().starts_with("jit.toml:8:1:"), "{e}");
    }

    #[test]
    fn given_malformed_toml_when_parsed_then_refused_with_position() {
        let e = err_of("[[role]\nname = 1");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn given_bad_values_when_parsed_then_each_is_refused_with_its_position() {
        let cases = [
            (GOOD.replace("\"1h\"", "\"1 fortnight\""), "max_duration", 8),
            (GOOD.replace("\"15m\"", "\"2h\""), "default_duration", 9),
            (
                GOOD.replace("^[A-Z]+-[0-9]+", "^[A-Z+"),
                "does not compile",
                10,
            ),
            (GOOD.replace("%sre", "%nosuchgroup"), "unknown group", 17),
            (
                GOOD.replace("\"alice\",", "\"Alice\","),
                "invalid user name",
                6,
            ),
            (
                GOOD.replace("/usr/bin/psql", "/usr/bin/psql *"),
                "invalid command",
                14,
            ),
            (
                GOOD.replace("approvals = 1", "approvals = -1"),
                "approvals",
                18,
            ),
            (
                GOOD.replace("\"db-admin\"", "\"web-restart\""),
                "duplicate",
                13,
            ),
            (
                GOOD.replace("name = \"db-admin\"", "name = \"DB\""),
                "role name",
                13,
            ),
        ];
        for (text, needle, line) in cases {
            let e = err_of(&text);
            assert!(e.message.contains(needle), "want {needle}: {e}");
            assert_eq!(e.line, line, "{needle}: {e}");
        }
    }

    #[test]
    fn given_approvals_without_enough_approvers_when_parsed_then_refused() {
        let e = err_of(
            &GOOD
                .replace("[\"%sre\"]", "[\"bob\"]")
                .replace("approvals = 1", "approvals = 2"),
        );
        assert!(e.message.contains("2 distinct approvals"), "{e}");
        let e = err_of(&GOOD.replace("approvers = [\"%sre\"]\n", ""));
        assert!(e.message.contains("lists no approvers"), "{e}");
    }

    #[test]
    fn given_empty_policy_when_parsed_then_refused() {
        assert!(err_of("").message.contains("no [[role]]"));
    }

    #[test]
    fn given_user_in_requester_group_when_listing_roles_then_only_eligible_roles() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let names = |u| {
            p.requestable(u, &d)
                .unwrap()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("alice"), vec!["web-restart", "db-admin"]);
        assert!(names("mallory").is_empty());
        assert!(p.requestable("nobody-here", &d).is_err());
    }

    #[test]
    fn given_request_when_checked_then_duration_and_reason_rules_apply() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let web = p.role("web-restart").unwrap();
        assert_eq!(
            p.check_request(web, "alice", 0, " OPS-1 x ", &d),
            Ok((900, "OPS-1 x".to_string()))
        );
        assert!(matches!(
            p.check_request(web, "alice", 7200, "OPS-1", &d),
            Err(Error::Refused(m)) if m.contains("exceeds")
        ));
        assert!(matches!(
            p.check_request(web, "alice", 60, "", &d),
            Err(Error::Refused(m)) if m.contains("required")
        ));
        assert!(matches!(
            p.check_request(web, "alice", 60, "no ticket", &d),
            Err(Error::Refused(m)) if m.contains("must match")
        ));
        assert!(matches!(
            p.check_request(web, "mallory", 60, "OPS-1", &d),
            Err(Error::Refused(m)) if m.contains("may not request")
        ));
    }

    #[test]
    fn given_group_approver_when_checked_then_membership_decides() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let db = p.role("db-admin").unwrap();
        assert!(p.may_approve(db, "bob", &d).unwrap());
        assert!(!p.may_approve(db, "alice", &d).unwrap());
        assert!(
            !p.may_approve(p.role("web-restart").unwrap(), "bob", &d)
                .unwrap()
        );
    }
}
