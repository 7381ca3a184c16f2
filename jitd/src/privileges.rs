//! Dropping privileges at start, so jitd stays confined without systemd too.
//!
//! jitd runs as uid 0 because the sudoers directory and its state are root's, but it needs
//! no capability for that: as the owner of those directories, uid 0 reads and writes them
//! through ordinary permission bits. So it clears every capability set down to CAP_KILL
//! (see [`KEEP`]), including the bounding set (a setuid program it executes gains nothing),
//! and sets no_new_privs.

use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities jitd keeps: CAP_KILL only, to end sessions that run as another user
/// (`sudo -u postgres ...`) when their grant ends. Every test in tests/ runs jitd this way.
pub const KEEP: &[Capability] = &[Capability::CAP_KILL];

/// The group that may write to users' terminals (as `wall` and `write` do); jitd writes
/// the warnings before a grant ends there. A user who ran `mesg n` is not written to.
const TTY_GROUP: &str = "tty";

/// Makes `tty` jitd's only supplementary group, while it may still change groups. Under
/// systemd (no CAP_SETGID in the bounding set) the unit's `SupplementaryGroups=tty` does it.
/// Without it, jitd works but cannot warn on terminals; that is logged.
fn join_tty_group() {
    let Ok(Some(tty)) = nix::unistd::Group::from_name(TTY_GROUP) else {
        tracing::warn!("no group '{TTY_GROUP}': warnings before expiry cannot reach terminals");
        return;
    };
    if nix::unistd::getgroups().is_ok_and(|g| g.contains(&tty.gid)) {
        return;
    }
    if let Err(e) = nix::unistd::setgroups(&[tty.gid]) {
        tracing::warn!(
            "cannot join group '{TTY_GROUP}' ({e}): warnings before expiry cannot reach \
             terminals (systemd: SupplementaryGroups={TTY_GROUP})"
        );
    }
}

/// The capabilities jitd keeps for the system tools it runs (`gpasswd`, `useradd`,
/// `userdel`), set once by [`drop_all`]: permitted and inheritable, never effective in jitd,
/// and raised as ambient capabilities only around a tool's run ([`run_tool`]), so no other
/// program jitd starts (a reason validator) is given them.
static TOOL_CAPS: std::sync::OnceLock<Vec<Capability>> = std::sync::OnceLock::new();

/// What the tools need: `gpasswd` gives the new /etc/gshadow its group (CAP_CHOWN);
/// `useradd -m` copies the skeleton into a home it has already given to the new account and
/// sets modes on files it no longer owns (CAP_DAC_OVERRIDE, CAP_FOWNER), `userdel -r`
/// empties that home (CAP_DAC_OVERRIDE). Measured with `setpriv --bounding-set`: without
/// CAP_FOWNER, useradd exits 0 but leaves `.ssh` out of the home.
pub fn tool_caps(group_edits: bool, accounts: bool) -> Vec<Capability> {
    let mut caps = Vec::new();
    if group_edits || accounts {
        caps.push(Capability::CAP_CHOWN);
    }
    if accounts {
        caps.extend([Capability::CAP_DAC_OVERRIDE, Capability::CAP_FOWNER]);
    }
    caps
}

/// Whether jitd kept, at start, every capability the tools of a policy need.
pub fn tools_ready(group_edits: bool, accounts: bool) -> bool {
    let kept = TOOL_CAPS.get().map(Vec::as_slice).unwrap_or_default();
    tool_caps(group_edits, accounts)
        .iter()
        .all(|c| kept.contains(c))
}

/// Runs a system tool with the capabilities [`drop_all`] kept for tools, as ambient
/// capabilities of this thread for the length of the run (a child started meanwhile from
/// another thread does not get them).
pub fn run_tool(command: &[String], timeout: std::time::Duration) -> crate::validator::Run {
    let caps = TOOL_CAPS.get().map(Vec::as_slice).unwrap_or_default();
    for cap in caps {
        if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
            let _ = caps::clear(None, CapSet::Ambient);
            return crate::validator::Run::Failed(format!("raising {cap} for the tool: {e}"));
        }
    }
    let run = crate::validator::run_program(command, &[], b"", timeout);
    if let Err(e) = caps::clear(None, CapSet::Ambient) {
        // A later child could inherit them: jitd stops rather than run on that way.
        crate::fatal::fatal(&format!("clearing ambient capabilities after a tool: {e}"));
    }
    run
}

/// Drops every capability but [`KEEP`] and, for the tools, `tool` (see [`tool_caps`]).
pub fn drop_all(tool: &[Capability]) -> Result<(), String> {
    join_tty_group();
    let keep: CapsHashSet = KEEP.iter().copied().collect();
    // The tools' capabilities stay permitted (no_new_privs caps what a child may hold at
    // what its parent permits) and inheritable (so they can be raised as ambient for a
    // tool's run), never effective: jitd itself never uses them. Only those the policy at
    // start needs, and only if jitd was given them (systemd: the drop-ins
    // jitd.service.d/groups.conf and accounts.conf).
    let mut kept_for_tools: Vec<Capability> = Vec::new();
    for cap in tool {
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            kept_for_tools.push(*cap);
        } else {
            tracing::warn!(
                "the policy needs {cap} for gpasswd/useradd/userdel, but it is not in jitd's \
                 bounding set: grants of groups or accounts will fail and be revoked \
                 (systemd: install the drop-ins jitd.service.d/groups.conf, accounts.conf)"
            );
        }
    }
    let held = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if let Some(missing) = keep.iter().find(|c| !held.contains(c)) {
        return Err(format!(
            "{missing} is missing: jitd needs it to end sessions of other users when their \
             grant ends (systemd: CapabilityBoundingSet={missing})"
        ));
    }
    let kept = |cap: &Capability| keep.contains(cap) || kept_for_tools.contains(cap);
    for cap in caps::all() {
        if !kept(&cap) && caps::has_cap(None, CapSet::Bounding, cap).map_err(|e| e.to_string())? {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing ambient caps: {e}"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| format!("clearing inheritable caps: {e}"))?;
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| format!("setting effective caps: {e}"))?;
    let mut permitted = keep.clone();
    permitted.extend(kept_for_tools.iter().copied());
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(|e| format!("setting permitted caps: {e}"))?;
    let inheritable: CapsHashSet = kept_for_tools.iter().copied().collect();
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| format!("setting inheritable caps: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    let left = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if left != permitted {
        return Err(format!("capabilities still held after dropping: {left:?}"));
    }
    let _ = TOOL_CAPS.set(kept_for_tools);
    Ok(())
}
