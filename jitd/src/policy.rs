//! The policy: its types (here), the file format and its strict reading
//! ([`file`], [`validate`]), and the decisions it drives ([`decide`]).
//!
//! Loading is strict: an unknown key, a bad name, a pattern that does not compile or a
//! contradiction is an error with file, line and column; jitd never runs on a
//! half-understood policy. Decisions are pure: users and groups come from an injected
//! [`Directory`].

use crate::directory::Directory;
use crate::error::{Error, Refusal, Result};
use crate::model::{Ask, Kind};
use crate::names::{self, Command, GroupName, RoleName, UserName};
use crate::window::Window;
use jit_proto::{RoleInfo, State, format_duration, format_rfc3339, parse_duration};
use regex::Regex;
use serde::Deserialize;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// Longest reason accepted unless the policy says otherwise.
pub const DEFAULT_REASON_MAX: usize = 500;
/// Shortest reason accepted unless the policy says otherwise.
pub const DEFAULT_REASON_MIN: usize = 1;
/// How long a request may stay pending unless the role says otherwise.
pub const DEFAULT_PENDING_TIMEOUT: u64 = 3600;
/// Most pending requests one user may have at once unless the policy says otherwise.
pub const DEFAULT_MAX_PENDING_PER_USER: u32 = 5;
/// Where sudo records sessions of roles with `log_io`, unless `[settings] iolog_dir` says.
pub const DEFAULT_IOLOG_DIR: &str = "/var/log/sudo-io/jit";
/// How long before its end a grant is announced as ending soon, unless `[settings]` says.
pub const DEFAULT_ENDING_SOON: u64 = 300;
/// How long a reason validator may run unless the role says otherwise.
pub const DEFAULT_VALIDATOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a reason validator may be given.
pub const MAX_VALIDATOR_TIMEOUT: Duration = Duration::from_secs(60);

/// A requester or approver as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(UserName),
    Group(GroupName),
}

impl Principal {
    fn parse(s: &str) -> std::result::Result<Principal, names::NameError> {
        match s.strip_prefix('%') {
            Some(g) => GroupName::new(g).map(Principal::Group),
            None => UserName::new(s).map(Principal::User),
        }
    }

    pub fn spec(&self) -> String {
        match self {
            Principal::User(u) => u.to_string(),
            Principal::Group(g) => format!("%{g}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    pub commands: Vec<Command>,
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
    pub run_as_list: Vec<UserName>,
    pub reason_min: usize,
    pub reason_max: usize,
    pub validator: Option<Validator>,
    pub break_glass: bool,
    /// Longest a grant may last from activation, counting every extension.
    pub max_total: u64,
    pub window: Option<Window>,
    /// Whether a grant may run past the end of the window it started in.
    pub outlive_window: bool,
    /// Most simultaneous active grants of this role (all users together).
    pub max_active: Option<u32>,
    /// After this long without a decision, `escalation_approvers` may approve too.
    pub escalate_after: Option<u64>,
    pub escalation_approvers: Vec<Principal>,
    /// sudo I/O logging (`LOG_INPUT:`/`LOG_OUTPUT:`) on the role's rule.
    pub log_io: bool,
    /// A request that needs approval is written to the terminals of the approvers who are
    /// logged in (`write`-style, respecting `mesg n`).
    pub notify_terminals: bool,
    /// Supplementary groups the grant gives its holder for its time (`gpasswd`); for a
    /// role with `account`, the groups the account is made in.
    pub groups: Vec<GroupName>,
    /// The grant is an ephemeral account of its own (`jit-USER-ID`), made at the grant's
    /// start and removed at its end; the role's rule and ssh logins are the account's.
    pub account: bool,
    /// The account's login shell.
    pub shell: String,
}

/// An external command that accepts or refuses a reason (e.g. checks a ticket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// Absolute program path and fixed arguments; run without a shell.
    pub command: Vec<String>,
    pub timeout: Duration,
    /// When the validator cannot give an answer (timeout, crash, cannot run): accept on
    /// `reason_pattern` alone instead of refusing.
    pub fallback_to_pattern: bool,
}

/// Roles that one user may not hold (or approve) together.
#[derive(Debug, Clone)]
pub struct Separation {
    pub roles: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub path: String,
    pub roles: Vec<Role>,
    pub reason_max: usize,
    pub reason_min: usize,
    pub max_active_per_user: Option<u32>,
    pub max_pending_per_user: u32,
    /// Where sudo records sessions of roles with `log_io` (one directory per user below).
    pub iolog_dir: String,
    /// The fleet policy file this host takes part under (`[settings] fleet`; jitd's
    /// `--fleet` wins), read when jitd starts.
    pub fleet: Option<String>,
    pub separations: Vec<Separation>,
    /// Programs told of events (`[[notifier]]`).
    pub notifiers: Vec<Notifier>,
    /// How long before a grant's end the `ending-soon` event comes.
    pub ending_soon: u64,
    /// Problems that depend on group membership today, not on the file: reported, not fatal.
    pub warnings: Vec<PolicyError>,
    /// Each role's index in `roles`, by name: a lookup is constant time at any policy size.
    by_name: std::collections::HashMap<String, usize>,
}

/// What a reason validator answered, as the caller ran it (outside jitd's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The role has no validator, or it was not run.
    NotRun,
    Accepted,
    /// The validator refused, with its message.
    Refused(String),
    /// No answer: timeout, crash, could not start.
    Failed(String),
}

/// One open request of a user, as limits and separation of duties see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub role: &'a str,
    pub state: State,
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

fn to_secs(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX / 4)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
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

impl Role {
    pub fn info(&self) -> RoleInfo {
        RoleInfo {
            name: self.name.to_string(),
            description: self.description.clone(),
            approvals: self.approvals,
            approvers: self.approvers.iter().map(Principal::spec).collect(),
            max_duration_secs: self.max_duration,
            default_duration_secs: self.default_duration,
            commands: self.commands.iter().map(ToString::to_string).collect(),
            run_as: self.run_as.clone(),
            ssh: self.ssh,
            reason_pattern: self
                .reason_pattern
                .as_ref()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            reason_min_length: u32::try_from(self.reason_min).unwrap_or(u32::MAX),
            reason_max_length: u32::try_from(self.reason_max).unwrap_or(u32::MAX),
            break_glass: self.break_glass,
            max_total_secs: self.max_total,
            window: self
                .window
                .as_ref()
                .map(Window::describe)
                .unwrap_or_default(),
            window_open: true,
            account: self.account,
        }
    }

    /// [`Role::info`] with the window's state at `now`.
    pub fn info_at(&self, now: i64) -> RoleInfo {
        let mut info = self.info();
        info.window_open = self
            .window
            .as_ref()
            .is_none_or(|w| w.end_if_open(now).is_some());
        info
    }
}

mod decide;
mod file;
mod notifiers;
mod validate;

pub use notifiers::{EventKind, Notifier};

pub use decide::ApproverView;

#[cfg(test)]
mod tests;
