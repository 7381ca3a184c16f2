//! The vocabulary every layer of jitd shares: what a request is for, who acts, and where a
//! call came from. Plain data; nothing here decides anything.

use crate::names::UserName;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary request for a role.
    Grant,
    /// An emergency self-grant, reviewed afterwards.
    BreakGlass,
    /// More time on an active grant (`extends`).
    Extension,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Grant => "grant",
            Kind::BreakGlass => "break-glass",
            Kind::Extension => "extension",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Grant, Kind::BreakGlass, Kind::Extension]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Who did something: established by the bus layer (D-Bus credentials, or the PAM user
/// for pam_jit), never taken from an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: UserName,
    pub uid: u32,
    /// Where the action came from, as the audit trail shows it: `service=sudo tty=pts/3
    /// rhost=...` for pam_jit, `bus pid=... tty=...` for a D-Bus caller, `jitd` for jitd.
    pub origin: String,
    /// The login uid of the calling process (`/proc/PID/loginuid`, set by pam_loginuid
    /// when a login session starts and kept across su and sudo): whose login session the
    /// call comes from. None where there is none (unset, pam_jit, jitd itself).
    pub login_uid: Option<u32>,
    /// The calling process's terminal (`pts/3`), empty without one (or for pam_jit, whose
    /// origin names the PAM item).
    pub tty: String,
}

impl Actor {
    /// jitd itself (expiry, reconciliation, revocations it must make).
    pub fn jitd() -> Actor {
        Actor {
            name: UserName::jitd(),
            uid: 0,
            origin: "jitd".into(),
            login_uid: None,
            tty: String::new(),
        }
    }
}

/// Where a request came from (PAM items for pam_jit, `jitctl` for the bus).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub service: String,
    pub tty: String,
    pub rhost: String,
}

/// A request as its requester asked for it, before the policy has a say.
#[derive(Debug, Clone)]
pub struct Ask {
    pub kind: Kind,
    /// The role's name as given (the policy says whether there is such a role).
    pub role: String,
    /// Seconds; 0 asks for the role's default.
    pub duration: u64,
    pub reason: String,
    pub origin: Origin,
    /// SSH public keys for a role that grants an account (`authorized_keys` lines; checked
    /// by [`crate::accounts::check_keys`] before the request reaches the core).
    pub ssh_keys: Vec<String>,
    /// Their fingerprints (`SHA256:...`), as `ssh-keygen` gave them, for the audit trail.
    pub key_fingerprints: Vec<String>,
}

impl Ask {
    /// More time on a grant of `role`, asked over the bus by `who`.
    pub fn extension(who: &Actor, role: &str, by: u64, reason: &str) -> Ask {
        Ask {
            kind: Kind::Extension,
            role: role.to_string(),
            duration: by,
            reason: reason.to_string(),
            origin: Origin::bus(who),
            ssh_keys: Vec::new(),
            key_fingerprints: Vec::new(),
        }
    }
}

impl Origin {
    /// A call over the bus (jitctl, or any other D-Bus client), from `who`'s terminal.
    pub fn bus(who: &Actor) -> Origin {
        Origin {
            service: "bus".into(),
            tty: who.tty.clone(),
            rhost: String::new(),
        }
    }
}
