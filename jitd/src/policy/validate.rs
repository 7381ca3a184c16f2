//! Turning a role as written into a [`Role`] that can be trusted: every name, command,
//! duration and pattern checked, every contradiction refused with its position, what
//! depends on today's group membership reported as a warning.

use super::file::{Ctx, OneOrMany, RawRole, RawValidator};
use super::*;
use std::collections::{HashMap, HashSet};

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

pub(super) fn duration(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Spanned<String>,
) -> std::result::Result<u64, PolicyError> {
    parse_duration(value.get_ref()).map_err(|e| ctx.err(value.span(), format!("{key}: {e}")))
}

pub(super) struct Defaults {
    pub(super) reason_min: usize,
    pub(super) reason_max: usize,
}

/// An optional integer setting within `lo..=hi`.
pub(super) fn bounded(
    ctx: &Ctx<'_>,
    key: &str,
    value: Option<Spanned<i64>>,
    lo: u32,
    hi: u32,
) -> std::result::Result<Option<u32>, PolicyError> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .map(Some)
            .ok_or_else(|| ctx.err(v.span(), format!("{key} must be between {lo} and {hi}"))),
    }
}

/// Every user a list of principals can stand for, as NSS sees it now.
fn resolve(list: &[Principal], dir: &dyn Directory) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for p in list {
        match p {
            Principal::User(u) => out.push(u.to_string()),
            Principal::Group(g) => out.extend(dir.group_members(g)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A program to run as a list (absolute path, then fixed arguments): no shell, no PATH
/// search, nothing hidden in an argument, and the program an executable file now.
pub(super) fn program_command(
    ctx: &Ctx<'_>,
    key: &str,
    raw: Spanned<Vec<String>>,
) -> std::result::Result<Vec<String>, PolicyError> {
    let cmd_span = raw.span();
    let command = raw.into_inner();
    let Some(program) = command.first() else {
        return Err(ctx.err(cmd_span, format!("{key} must name a program")));
    };
    if !program.starts_with('/') {
        return Err(ctx.err(
            cmd_span,
            format!(
                "{key}: '{}' must be an absolute path (no shell, no PATH search)",
                names::escape(program)
            ),
        ));
    }
    if program.contains(char::is_whitespace) {
        return Err(ctx.err(
            cmd_span,
            format!(
                "{key}: '{}' is one string: put the program and each argument in a list item \
                 of its own ([\"/usr/bin/prog\", \"--opt\", \"value\"])",
                names::escape(program)
            ),
        ));
    }
    for arg in &command {
        if arg.is_empty() || arg.len() > 512 || arg.chars().any(names::is_hidden_char) {
            return Err(ctx.err(
                cmd_span,
                format!("{key}: arguments must be non-empty text without control characters"),
            ));
        }
    }
    match std::fs::metadata(Path::new(program)) {
        Ok(m)
            if m.is_file()
                && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0 => {}
        Ok(_) => {
            return Err(ctx.err(
                cmd_span,
                format!("{key}: {program} is not an executable file"),
            ));
        }
        Err(e) => {
            return Err(ctx.err(cmd_span, format!("{key}: {program}: {e}")));
        }
    }
    Ok(command)
}

fn validator(
    ctx: &Ctx<'_>,
    raw: Spanned<RawValidator>,
    has_pattern: bool,
) -> std::result::Result<Validator, PolicyError> {
    let raw = raw.into_inner();
    let command = program_command(ctx, "reason_validator.command", raw.command)?;
    let timeout = match &raw.timeout {
        Some(t) => {
            let d = Duration::from_secs(duration(ctx, "reason_validator.timeout", t)?);
            if d > MAX_VALIDATOR_TIMEOUT {
                return Err(ctx.err(
                    t.span(),
                    format!(
                        "reason_validator.timeout must be at most {}s: the requester waits for it",
                        MAX_VALIDATOR_TIMEOUT.as_secs()
                    ),
                ));
            }
            d
        }
        None => DEFAULT_VALIDATOR_TIMEOUT,
    };
    let fallback_to_pattern = match &raw.on_failure {
        None => false,
        Some(v) => match v.get_ref().as_str() {
            "refuse" => false,
            "pattern" if has_pattern => true,
            "pattern" => {
                return Err(ctx.err(
                    v.span(),
                    "reason_validator.on_failure = \"pattern\" needs a reason_pattern on the role",
                ));
            }
            other => {
                return Err(ctx.err(
                    v.span(),
                    format!("reason_validator.on_failure must be \"refuse\" or \"pattern\", not '{other}'"),
                ));
            }
        },
    };
    Ok(Validator {
        command,
        timeout,
        fallback_to_pattern,
    })
}

pub(super) fn validate_role(
    ctx: &Ctx<'_>,
    mut raw: RawRole,
    defaults: &Defaults,
    dir: &dyn Directory,
    warnings: &mut Vec<PolicyError>,
) -> std::result::Result<Role, PolicyError> {
    let name_span = raw.name.span();
    let name =
        RoleName::new(raw.name.get_ref().as_str()).map_err(|e| ctx.err(raw.name.span(), e))?;
    let description = names::validate_text("description", &raw.description, 200)
        .unwrap_or_else(|_| name.to_string());

    let Durations {
        max_duration,
        default_duration,
        max_total,
        pending_timeout,
    } = durations_of(ctx, &raw)?;

    let commands_span = raw.commands.span();
    let groups = groups_of(ctx, raw.groups.take(), dir)?;
    let account_span = raw.account.as_ref().map(Spanned::span);
    let account = raw.account.as_ref().is_some_and(|a| *a.get_ref());
    let commands = commands_of(ctx, raw.commands, !groups.is_empty() || account)?;
    let shell = shell_of(ctx, raw.shell.take(), account)?;

    let run_as_list = run_as_of(ctx, raw.run_as)?;
    let run_as = run_as_list
        .iter()
        .map(UserName::as_str)
        .collect::<Vec<_>>()
        .join(", ");

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

    let escalation_approvers = match raw.escalation_approvers {
        Some(a) => {
            let span = a.span();
            let list = principals(ctx, a, dir)?;
            if list.is_empty() {
                return Err(ctx.err(span, "escalation_approvers must not be empty"));
            }
            if raw.escalate_after.is_none() {
                return Err(ctx.err(
                    span,
                    "escalation_approvers needs escalate_after (how long a request waits before they may approve)",
                ));
            }
            list
        }
        None => Vec::new(),
    };
    let escalate_after = match &raw.escalate_after {
        Some(d) => {
            let v = duration(ctx, "escalate_after", d)?;
            if escalation_approvers.is_empty() {
                return Err(ctx.err(d.span(), "escalate_after needs escalation_approvers"));
            }
            if approvals == 0 {
                return Err(ctx.err(
                    d.span(),
                    "escalate_after on a self-service role (approvals = 0): nothing to escalate",
                ));
            }
            if v >= pending_timeout {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "escalate_after {} is not before pending_timeout {}: requests would expire first",
                        format_duration(v),
                        format_duration(pending_timeout)
                    ),
                ));
            }
            Some(v)
        }
        None => None,
    };

    if approvals > 0 {
        // With only named users this is a contradiction in the file itself: refused. With
        // groups it depends on today's membership (install.sh creates empty groups), so it
        // is a warning: printed by `jitctl policy check` and logged at start.
        let is_group = |p: &Principal| matches!(p, Principal::Group(_));
        let approver_groups = approvers.iter().chain(&escalation_approvers).any(is_group);
        let requester_groups = requesters.iter().any(is_group);
        let mut possible =
            resolve(&approvers, dir).map_err(|e| ctx.err(approvers_span.clone(), e))?;
        possible.extend(
            resolve(&escalation_approvers, dir).map_err(|e| ctx.err(approvers_span.clone(), e))?,
        );
        possible.sort();
        possible.dedup();
        let need = usize_of(approvals);
        let requesters_now =
            resolve(&requesters, dir).map_err(|e| ctx.err(requesters_span.clone(), e))?;
        let problem = if possible.len() < need {
            Some((
                approver_groups,
                format!(
                    "role '{name}' needs {approvals} distinct approvals but only {} user(s) can approve{}: lower approvals or add approvers",
                    possible.len(),
                    if possible.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", possible.join(", "))
                    }
                ),
            ))
        } else if !requesters_now.is_empty()
            && !requesters_now
                .iter()
                .any(|u| possible.iter().filter(|a| *a != u).count() >= need)
        {
            Some((
                approver_groups || requester_groups,
                format!(
                    "role '{name}' can never be granted: every requester is one of its {} possible approvers, and a requester never approves their own request",
                    possible.len()
                ),
            ))
        } else {
            None
        };
        if let Some((membership, message)) = problem {
            let e = ctx.err(approvers_span.clone(), message);
            if membership {
                warnings.push(e);
            } else {
                return Err(e);
            }
        }
    }

    let reason_pattern = match raw.reason_pattern {
        // Bounded: a pattern nested deeper than any ticket format needs, or one that
        // compiles to a huge automaton, is refused rather than compiled (found by the
        // policy fuzz target: `x+++...` 150 deep overflowed a 2 MB thread's stack in a
        // debug build; jitd reloads the policy on a thread of its own).
        Some(p) => Some(
            regex::RegexBuilder::new(p.get_ref())
                .nest_limit(PATTERN_NEST_LIMIT)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    ctx.err(
                        p.span(),
                        format!(
                            "reason_pattern does not compile: {}",
                            one_line(&e.to_string())
                        ),
                    )
                })?,
        ),
        None => None,
    };
    let reason_max = bounded(ctx, "reason_max_length", raw.reason_max_length, 1, 4096)?
        .map_or(defaults.reason_max, usize_of);
    let reason_min = bounded(ctx, "reason_min_length", raw.reason_min_length, 1, 4096)?
        .map_or(defaults.reason_min, usize_of);
    if reason_min > reason_max {
        return Err(ctx.err(
            name_span.clone(),
            format!("role '{name}': reason_min_length {reason_min} is larger than reason_max_length {reason_max}"),
        ));
    }
    let validator = match raw.reason_validator {
        Some(v) => Some(validator(ctx, v, reason_pattern.is_some())?),
        None => None,
    };

    let break_glass = match raw.break_glass {
        Some(b) if *b.get_ref() && approvals == 0 => {
            return Err(ctx.err(
                b.span(),
                "break_glass on a self-service role (approvals = 0) changes nothing: remove it",
            ));
        }
        Some(b) => *b.get_ref(),
        None => false,
    };

    let window = match raw.window {
        Some(w) => {
            let span = w.span();
            let w = w.into_inner();
            Some(
                Window::parse(&w.days, &w.hours, &w.timezone)
                    .map_err(|e| ctx.err(span, format!("window: {e}")))?,
            )
        }
        None => None,
    };
    let outlive_window = match raw.outlive_window {
        Some(o) if window.is_none() => {
            return Err(ctx.err(o.span(), "outlive_window without a window"));
        }
        Some(o) => *o.get_ref(),
        None => false,
    };
    let max_active = bounded(ctx, "max_active", raw.max_active, 1, 10_000)?;

    let role = Role {
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
        run_as_list,
        reason_min,
        reason_max,
        validator,
        break_glass,
        max_total,
        window,
        outlive_window,
        max_active,
        escalate_after,
        escalation_approvers,
        log_io: raw.log_io,
        notify_terminals: raw.notify_terminals,
        groups,
        account,
        shell,
    };
    check_account(ctx, &role, account_span, dir, warnings)?;
    Ok(role)
}

/// A role may not run commands as anyone the policy names as a requester or approver: a
/// grant would let its holder act as that principal (`sudo -u approver jitctl approve` of
/// their own request, or requesting the principal's roles). A user named directly is an
/// error, with the run_as position; one who is a principal through a group today is a
/// warning (membership changes without the policy changing), and jitd refuses such
/// approvals at run time anyway.
pub(super) fn check_run_as_principals(
    ctx: &Ctx<'_>,
    roles: &[Role],
    run_as_spans: &[Range<usize>],
    dir: &dyn Directory,
    warnings: &mut Vec<PolicyError>,
) -> std::result::Result<(), PolicyError> {
    // Every principal once, with the first role that names it: a lookup per run_as target
    // (linear in the policy, not roles times principals).
    let mut named: HashMap<&str, (&str, &str)> = HashMap::new();
    // Each group once: its first mention (for a stable message), who it is, of which role.
    let mut groups: HashMap<&str, (usize, &str, &str)> = HashMap::new();
    for r in roles {
        for (what, list) in [
            ("a requester", &r.requesters),
            ("an approver", &r.approvers),
            ("an escalation approver", &r.escalation_approvers),
        ] {
            for p in list {
                match p {
                    Principal::User(u) => {
                        named.entry(u.as_str()).or_insert((what, &r.name));
                    }
                    Principal::Group(g) => {
                        let first = groups.len();
                        groups.entry(g.as_str()).or_insert((first, what, &r.name));
                    }
                }
            }
        }
    }
    // The groups each target is in, asked of NSS once per target.
    let mut member_of: HashMap<&str, Option<HashSet<String>>> = HashMap::new();
    for (role, span) in roles.iter().zip(run_as_spans) {
        for target in &role.run_as_list {
            if let Some((what, of)) = named.get(target.as_str()) {
                return Err(ctx.err(
                    span.clone(),
                    format!(
                        "role '{}' runs commands as '{target}', who is {what} of role '{of}': \
                         a holder could act as them (sudo -u {target} jitctl ...); run as a \
                         user the policy does not name",
                        role.name
                    ),
                ));
            }
            let groups_of = member_of
                .entry(target.as_str())
                .or_insert_with(|| dir.groups_of(target).ok().map(|g| g.into_iter().collect()));
            let Some(groups_of) = groups_of else {
                continue;
            };
            let hit = groups_of
                .iter()
                .filter_map(|g| groups.get_key_value(g.as_str()))
                .min_by_key(|(_, (first, _, _))| *first);
            if let Some((g, (_, what, of))) = hit {
                warnings.push(ctx.err(
                    span.clone(),
                    format!(
                        "role '{}' runs commands as '{target}', a member of %{g} ({what} of \
                         role '{of}'): a holder could act as them; jitd refuses their \
                         approvals of the holder's requests",
                        role.name
                    ),
                ));
            }
        }
    }
    for (role, span) in roles.iter().zip(run_as_spans) {
        let as_root = role.run_as_list.iter().any(|u| u.as_str() == "root");
        let shell = role.commands.iter().find(|c| gives_anything(c));
        if let (true, 0, Some(shell)) = (as_root, role.approvals, shell) {
            warnings.push(ctx.err(
                span.clone(),
                format!(
                    "self-service role '{}' runs {shell} as root: its holders are root at will \
                     and can act as anyone, approvers included (approvals they make that \
                     way are not theirs in the audit trail); give it approvals, or run a \
                     narrower command",
                    role.name
                ),
            ));
        }
    }
    Ok(())
}

/// How deeply a reason pattern may nest groups and repetitions (a ticket format needs a
/// handful).
const PATTERN_NEST_LIMIT: u32 = 32;
/// The largest compiled reason pattern, in bytes.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The role's commands, each in the grammar: at least one, unless the role grants groups
/// (`groups_only`), where none means "no sudo rule at all".
fn commands_of(
    ctx: &Ctx<'_>,
    raw: Spanned<Vec<Spanned<String>>>,
    groups_only: bool,
) -> std::result::Result<Vec<Command>, PolicyError> {
    let span = raw.span();
    let mut commands = Vec::new();
    for c in raw.into_inner() {
        commands.push(Command::new(c.get_ref().as_str()).map_err(|e| ctx.err(c.span(), e))?);
    }
    if commands.is_empty() && !groups_only {
        return Err(ctx.err(
            span,
            "commands must list at least one command (or the role must grant groups or an account)",
        ));
    }
    Ok(commands)
}

/// Groups that are root in all but name: membership of any of them is what sudo (or su)
/// grants to, so a role may not hand it out as a group.
/// `disk` and `kmem` read and write what root's files are made of; `shadow` reads every
/// password hash.
pub const FORBIDDEN_GROUPS: [&str; 7] =
    ["root", "sudo", "wheel", "admin", "disk", "kmem", "shadow"];

/// The role's `groups`: each in the grammar, existing now, not gid 0 and not one of
/// [`FORBIDDEN_GROUPS`], none twice.
fn groups_of(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    dir: &dyn Directory,
) -> std::result::Result<Vec<GroupName>, PolicyError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let span = raw.span();
    let mut out: Vec<GroupName> = Vec::new();
    for g in raw.into_inner() {
        let name = GroupName::new(g.get_ref()).map_err(|e| ctx.err(g.span(), e))?;
        if FORBIDDEN_GROUPS.contains(&name.as_str()) {
            return Err(ctx.err(
                g.span(),
                format!(
                    "groups: '{name}' gives root (through sudo or su) or root's secrets: grant \
                     commands instead"
                ),
            ));
        }
        match dir.gid_of(&name) {
            Ok(Some(0)) => {
                return Err(ctx.err(
                    g.span(),
                    format!("groups: '{name}' has gid 0, root's group: never granted"),
                ));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(ctx.err(
                    g.span(),
                    format!("groups: unknown group '{name}': create it first (groupadd)"),
                ));
            }
            Err(e) => return Err(ctx.err(g.span(), format!("groups: {e}"))),
        }
        if out.contains(&name) {
            return Err(ctx.err(g.span(), format!("groups: '{name}' named twice")));
        }
        out.push(name);
    }
    if out.is_empty() {
        return Err(ctx.err(span, "groups is empty: leave it out"));
    }
    Ok(out)
}

/// Where a shell may be: what `/etc/shells` lists on Debian, and nothing a user can write.
const SHELL_DIRS: [&str; 4] = ["/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/"];
/// The account's shell when the role does not say.
pub const DEFAULT_SHELL: &str = "/bin/bash";

/// The role's `shell`: only with `account`, an absolute path in a system directory, in
/// the grammar of commands (no spaces, nothing to escape).
fn shell_of(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<String>>,
    account: bool,
) -> std::result::Result<String, PolicyError> {
    let Some(raw) = raw else {
        return Ok(if account {
            DEFAULT_SHELL.into()
        } else {
            String::new()
        });
    };
    let shell = raw.get_ref();
    if !account {
        return Err(ctx.err(raw.span(), "shell is for roles with account = true"));
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
    if !SHELL_DIRS.iter().any(|d| shell.starts_with(d))
        || !shell.chars().all(plain)
        || shell.contains("..")
    {
        return Err(ctx.err(
            raw.span(),
            format!(
                "shell '{}' must be a program in {}",
                crate::names::cut(&crate::names::escape(shell), 60),
                SHELL_DIRS.join(", ")
            ),
        ));
    }
    Ok(shell.clone())
}

/// A role with `account`: the account has no password (so no `reauth`), and its name
/// (`jit-USER-ID`) must fit [`crate::accounts::MAX_NAME`] for every requester named, with
/// a request id of up to [`ACCOUNT_ID_DIGITS`] digits; a requester named through a group
/// is a warning (membership changes). A longer name is refused at request time anyway.
fn check_account(
    ctx: &Ctx<'_>,
    role: &Role,
    span: Option<std::ops::Range<usize>>,
    dir: &dyn Directory,
    warnings: &mut Vec<PolicyError>,
) -> std::result::Result<(), PolicyError> {
    let Some(span) = span.filter(|_| role.account) else {
        return Ok(());
    };
    if role.reauth {
        return Err(ctx.err(
            span,
            "account = true with reauth = true: an ephemeral account has no password to ask \
             for (leave reauth out)",
        ));
    }
    // A warning, as for commands: the policy may be written for hosts other than this one.
    if !std::path::Path::new(&role.shell).is_file() {
        warnings.push(ctx.err(
            span.clone(),
            format!(
                "account: the shell {} does not exist on this host: logins into the account \
                 will fail",
                role.shell
            ),
        ));
    }
    let longest =
        |user: &str| crate::accounts::account_name(user, 10u64.pow(ACCOUNT_ID_DIGITS) - 1).len();
    for p in &role.requesters {
        let (users, named) = match p {
            Principal::User(u) => (vec![u.to_string()], true),
            Principal::Group(g) => (dir.group_members(g).unwrap_or_default(), false),
        };
        for u in users
            .iter()
            .filter(|u| longest(u) > crate::accounts::MAX_NAME)
        {
            let msg = format!(
                "account: requester '{u}' would get an account name of {} characters \
                 ({}), over {}: shorten the user name or use another role",
                longest(u),
                crate::accounts::account_name(u, 10u64.pow(ACCOUNT_ID_DIGITS) - 1),
                crate::accounts::MAX_NAME
            );
            if named {
                return Err(ctx.err(span.clone(), msg));
            }
            warnings.push(ctx.err(span.clone(), msg));
        }
    }
    Ok(())
}

/// Request ids [`check_account`] makes room for (a million requests).
const ACCOUNT_ID_DIGITS: u32 = 6;

/// Whom the role's commands run as: root unless it says, never a user twice.
fn run_as_of(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<OneOrMany>>,
) -> std::result::Result<Vec<UserName>, PolicyError> {
    let Some(r) = raw else {
        return Ok(vec![UserName::root()]);
    };
    let span = r.span();
    let list = match r.into_inner() {
        OneOrMany::One(u) => vec![u],
        OneOrMany::Many(v) => v,
    };
    if list.is_empty() {
        return Err(ctx.err(span, "run_as must name at least one user"));
    }
    let list = list
        .iter()
        .map(|u| {
            UserName::new(u.as_str()).map_err(|e| ctx.err(span.clone(), format!("run_as: {e}")))
        })
        .collect::<std::result::Result<Vec<UserName>, PolicyError>>()?;
    let mut dedup = list.clone();
    dedup.sort();
    dedup.dedup();
    if dedup.len() != list.len() {
        return Err(ctx.err(span, "run_as lists a user twice"));
    }
    Ok(list)
}

/// A role's durations, each in its bounds and consistent with the others.
struct Durations {
    max_duration: u64,
    default_duration: u64,
    max_total: u64,
    pending_timeout: u64,
}

fn durations_of(ctx: &Ctx<'_>, raw: &RawRole) -> std::result::Result<Durations, PolicyError> {
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
    let max_total = match &raw.max_total_duration {
        Some(d) => {
            let v = duration(ctx, "max_total_duration", d)?;
            if v < max_duration {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "max_total_duration {} is shorter than max_duration {}: make it at least as long",
                        format_duration(v),
                        format_duration(max_duration)
                    ),
                ));
            }
            v
        }
        None => max_duration,
    };
    let pending_timeout = match &raw.pending_timeout {
        Some(d) => duration(ctx, "pending_timeout", d)?,
        None => DEFAULT_PENDING_TIMEOUT,
    };

    Ok(Durations {
        max_duration,
        default_duration,
        max_total,
        pending_timeout,
    })
}

/// Whether a command gives its holder anything they like to run: a shell, an interpreter,
/// a way to switch users, or a program with a shell escape (editors, pagers, `find
/// -exec`: GTFOBins lists them; found missing in a user trial, which ran vim as root). The
/// program's name is what counts, whatever its arguments.
fn gives_anything(c: &Command) -> bool {
    let program = c.split(' ').next().unwrap_or_default();
    let name = program.rsplit('/').next().unwrap_or_default();
    matches!(
        name,
        "sh" | "bash"
            | "dash"
            | "zsh"
            | "ksh"
            | "mksh"
            | "fish"
            | "csh"
            | "tcsh"
            | "su"
            | "sudo"
            | "runuser"
            | "env"
            | "jitctl"
            | "perl"
            | "ruby"
            | "node"
            | "vi"
            | "vim"
            | "nvim"
            | "rvim"
            | "view"
            | "vimdiff"
            | "ex"
            | "ed"
            | "nano"
            | "emacs"
            | "less"
            | "more"
            | "man"
            | "find"
            | "xargs"
            | "awk"
            | "gawk"
            | "mawk"
            | "nawk"
            | "gdb"
            | "busybox"
            | "lua"
            | "php"
            | "tclsh"
            | "expect"
            | "script"
            | "nsenter"
            | "chroot"
            | "systemd-run"
            | "tmux"
            | "screen"
    ) || name.starts_with("python")
}
