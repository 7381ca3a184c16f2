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

pub fn drop_all(group_edits: bool) -> Result<(), String> {
    join_tty_group();
    let keep: CapsHashSet = KEEP.iter().copied().collect();
    // For roles with `groups`: gpasswd (a child, run as root) writes /etc/gshadow, owned by
    // group shadow, which needs CAP_CHOWN. jitd itself never uses it (not effective); it
    // stays permitted and is passed to children as an ambient capability (no_new_privs
    // caps what a child may hold at what its parent permits). Only when the policy at start
    // grants groups, and only if jitd was given it (systemd: the drop-in
    // jitd.service.d/groups.conf).
    let chown_kept = group_edits
        && caps::has_cap(None, CapSet::Bounding, Capability::CAP_CHOWN).unwrap_or(false);
    if group_edits && !chown_kept {
        tracing::warn!(
            "the policy grants groups, but CAP_CHOWN is not in jitd's bounding set: gpasswd \
             will fail and such grants will be revoked (systemd: install the drop-in \
             jitd.service.d/groups.conf)"
        );
    }
    let held = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if let Some(missing) = keep.iter().find(|c| !held.contains(c)) {
        return Err(format!(
            "{missing} is missing: jitd needs it to end sessions of other users when their \
             grant ends (systemd: CapabilityBoundingSet={missing})"
        ));
    }
    let kept =
        |cap: &Capability| keep.contains(cap) || (chown_kept && *cap == Capability::CAP_CHOWN);
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
    if chown_kept {
        permitted.insert(Capability::CAP_CHOWN);
    }
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(|e| format!("setting permitted caps: {e}"))?;
    if chown_kept {
        let chown: CapsHashSet = [Capability::CAP_CHOWN].into_iter().collect();
        caps::set(None, CapSet::Inheritable, &chown)
            .map_err(|e| format!("setting inheritable caps: {e}"))?;
        caps::raise(None, CapSet::Ambient, Capability::CAP_CHOWN)
            .map_err(|e| format!("raising CAP_CHOWN for gpasswd: {e}"))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    let left = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if left != permitted {
        return Err(format!("capabilities still held after dropping: {left:?}"));
    }
    Ok(())
}
