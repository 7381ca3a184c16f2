//! The policy file: TOML as written (the raw serde types), read strictly, with every error
//! placed at its file, line and column.

use super::validate::{Defaults, bounded, check_run_as_principals, validate_role};
use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
    #[serde(default)]
    separation: Vec<Spanned<RawSeparation>>,
    #[serde(default)]
    notifier: Vec<Spanned<RawNotifier>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifier {
    pub(super) name: Spanned<String>,
    pub(super) command: Spanned<Vec<String>>,
    #[serde(default)]
    pub(super) events: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) roles: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_attempts: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    reason_max_length: Option<Spanned<i64>>,
    reason_min_length: Option<Spanned<i64>>,
    max_active_per_user: Option<Spanned<i64>>,
    max_pending_per_user: Option<Spanned<i64>>,
    iolog_dir: Option<Spanned<String>>,
    ending_soon: Option<Spanned<String>>,
    fleet: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeparation {
    roles: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValidator {
    pub(super) command: Spanned<Vec<String>>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) on_failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindow {
    pub(super) days: Vec<String>,
    pub(super) hours: String,
    pub(super) timezone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    pub(super) commands: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) run_as: Option<Spanned<OneOrMany>>,
    pub(super) requesters: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) approvers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) approvals: Option<Spanned<i64>>,
    pub(super) max_duration: Spanned<String>,
    #[serde(default)]
    pub(super) default_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) reason_pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ssh: bool,
    #[serde(default)]
    pub(super) reauth: bool,
    #[serde(default)]
    pub(super) pending_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) reason_min_length: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) reason_max_length: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) reason_validator: Option<Spanned<RawValidator>>,
    #[serde(default)]
    pub(super) break_glass: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) max_total_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) window: Option<Spanned<RawWindow>>,
    #[serde(default)]
    pub(super) outlive_window: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) max_active: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) escalate_after: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) escalation_approvers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) log_io: bool,
    #[serde(default)]
    pub(super) notify_terminals: bool,
    #[serde(default)]
    pub(super) groups: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) account: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) shell: Option<Spanned<String>>,
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
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
        // Thousands of roles name the same few users and groups: ask NSS once each.
        let memo = crate::directory::Memo::new(dir);
        let dir: &dyn Directory = &memo;
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ctx.err(span, e.message().trim().to_string())
        })?;
        let settings = raw.settings.unwrap_or(RawSettings {
            reason_max_length: None,
            reason_min_length: None,
            max_active_per_user: None,
            max_pending_per_user: None,
            iolog_dir: None,
            ending_soon: None,
            fleet: None,
        });
        let reason_max = bounded(
            &ctx,
            "reason_max_length",
            settings.reason_max_length,
            1,
            4096,
        )?
        .map_or(DEFAULT_REASON_MAX, usize_of);
        let reason_min = bounded(
            &ctx,
            "reason_min_length",
            settings.reason_min_length,
            1,
            4096,
        )?
        .map_or(DEFAULT_REASON_MIN, usize_of);
        if reason_min > reason_max {
            return Err(ctx.err(
                0..0,
                format!(
                    "[settings] reason_min_length {reason_min} is larger than reason_max_length {reason_max}"
                ),
            ));
        }
        let max_active_per_user = bounded(
            &ctx,
            "max_active_per_user",
            settings.max_active_per_user,
            1,
            1000,
        )?;
        let max_pending_per_user = bounded(
            &ctx,
            "max_pending_per_user",
            settings.max_pending_per_user,
            1,
            100,
        )?
        .unwrap_or(DEFAULT_MAX_PENDING_PER_USER);
        // The fleet policy this host takes part under (read at jitd's start).
        let fleet = match settings.fleet {
            Some(f) if !f.get_ref().starts_with('/') || f.get_ref().contains('\0') => {
                return Err(ctx.err(
                    f.span(),
                    "[settings] fleet must be an absolute path (the fleet policy, e.g. /etc/jit/fleet.toml)".to_string(),
                ));
            }
            Some(f) => Some(f.into_inner()),
            None => None,
        };
        let iolog_dir = match settings.iolog_dir {
            Some(d) => {
                names::validate_dir_path("[settings] iolog_dir", d.get_ref())
                    .map_err(|e| ctx.err(d.span(), e))?;
                d.into_inner()
            }
            None => DEFAULT_IOLOG_DIR.to_string(),
        };
        let ending_soon = match &settings.ending_soon {
            Some(d) => {
                let secs = super::validate::duration(&ctx, "[settings] ending_soon", d)?;
                if !(60..=86_400).contains(&secs) {
                    return Err(ctx.err(
                        d.span(),
                        "[settings] ending_soon must be between 1m and 24h",
                    ));
                }
                secs
            }
            None => DEFAULT_ENDING_SOON,
        };
        let defaults = Defaults {
            reason_min,
            reason_max,
        };
        let mut roles: Vec<Role> = Vec::new();
        // Each role's index by name: the duplicate and unknown-role checks in constant time
        // each, and the policy's lookups later.
        let mut by_name: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut run_as_spans = Vec::new();
        let mut warnings = Vec::new();
        for spanned in raw.role {
            let span = spanned.get_ref().name.span();
            let run_as_span = spanned
                .get_ref()
                .run_as
                .as_ref()
                .map_or_else(|| span.clone(), Spanned::span);
            let role = validate_role(&ctx, spanned.into_inner(), &defaults, dir, &mut warnings)?;
            if by_name.insert(role.name.to_string(), roles.len()).is_some() {
                return Err(ctx.err(span, format!("duplicate role '{}'", role.name)));
            }
            roles.push(role);
            run_as_spans.push(run_as_span);
        }
        if roles.is_empty() {
            return Err(ctx.err(0..0, "no [[role]] defined: nothing could ever be granted"));
        }
        check_run_as_principals(&ctx, &roles, &run_as_spans, dir, &mut warnings)?;
        let mut separations = Vec::new();
        for sep in raw.separation {
            let span = sep.span();
            let sep = sep.into_inner();
            let mut names: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in sep.roles.into_inner() {
                if !by_name.contains_key(r.get_ref().as_str()) {
                    return Err(ctx.err(
                        r.span(),
                        format!(
                            "[[separation]] names unknown role '{}'",
                            names::escape(r.get_ref())
                        ),
                    ));
                }
                if seen.insert(r.get_ref().clone()) {
                    names.push(r.into_inner());
                }
            }
            if names.len() < 2 {
                return Err(ctx.err(span, "[[separation]] needs at least two different roles"));
            }
            let description = names::validate_text("description", &sep.description, 200)
                .unwrap_or_else(|_| names.join(" / "));
            separations.push(Separation {
                roles: names,
                description,
            });
        }
        let notifiers = super::notifiers::validate(&ctx, raw.notifier, &by_name)?;
        Ok(Policy {
            path: file.to_string(),
            notifiers,
            ending_soon,
            roles,
            reason_max,
            reason_min,
            max_active_per_user,
            max_pending_per_user,
            iolog_dir,
            fleet,
            separations,
            warnings,
            by_name,
        })
    }
}
