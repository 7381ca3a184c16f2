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

pub fn drop_all() -> Result<(), String> {
    let keep: CapsHashSet = KEEP.iter().copied().collect();
    let held = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if let Some(missing) = keep.iter().find(|c| !held.contains(c)) {
        return Err(format!(
            "{missing} is missing: jitd needs it to end sessions of other users when their \
             grant ends (systemd: CapabilityBoundingSet={missing})"
        ));
    }
    for cap in caps::all() {
        if !keep.contains(&cap)
            && caps::has_cap(None, CapSet::Bounding, cap).map_err(|e| e.to_string())?
        {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing ambient caps: {e}"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| format!("clearing inheritable caps: {e}"))?;
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| format!("setting effective caps: {e}"))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(|e| format!("setting permitted caps: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    let left = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if left != keep {
        return Err(format!("capabilities still held after dropping: {left:?}"));
    }
    Ok(())
}
