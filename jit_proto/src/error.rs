//! The error every jitd operation returns, on either channel: one stable name per kind (and
//! per [`Refusal`]) with a message. On D-Bus the name is the error name and the message its
//! one string argument ([`crate::dbus`]); on the PAM socket both travel in the error reply
//! ([`crate::wire`]).

use crate::Refusal;

pub const NOT_AUTHORIZED: &str = "org.jit.Jitd.Error.NotAuthorized";
pub const NOT_FOUND: &str = "org.jit.Jitd.Error.NotFound";
pub const INVALID_ARGUMENT: &str = "org.jit.Jitd.Error.InvalidArgument";
pub const WRONG_STATE: &str = "org.jit.Jitd.Error.WrongState";
pub const INTERNAL: &str = "org.jit.Jitd.Error.Internal";
/// The way to jitd failed (no jitd, no bus, no answer in time), as pam_jit's bus library
/// reports it.
pub const CHANNEL: &str = "org.jit.Jitd.Error.Channel";

#[derive(Debug)]
pub enum JitError {
    /// Transport-level failure on the bus (no jitd, timeout, bad reply).
    #[cfg(feature = "dbus")]
    ZBus(zbus::Error),
    /// Transport-level failure on the PAM socket, or an answer that makes no sense.
    Channel(String),
    /// Policy refused the request, and why (not eligible, over a limit, bad reason...).
    Refused(Refusal, String),
    /// The caller may not do this (not an approver, self-approval, wrong uid...).
    NotAuthorized(String),
    /// No such request or role.
    NotFound(String),
    /// An argument is malformed (bad user name, zero duration...).
    InvalidArgument(String),
    /// The request is not in a state that allows this transition.
    WrongState(String),
    /// jitd failed internally; nothing was changed.
    Internal(String),
}

impl JitError {
    /// The error's name: a D-Bus error name, the same on the PAM socket.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "dbus")]
            JitError::ZBus(_) => "org.freedesktop.zbus.Error",
            JitError::Channel(_) => CHANNEL,
            JitError::Refused(r, _) => r.error_name(),
            JitError::NotAuthorized(_) => NOT_AUTHORIZED,
            JitError::NotFound(_) => NOT_FOUND,
            JitError::InvalidArgument(_) => INVALID_ARGUMENT,
            JitError::WrongState(_) => WRONG_STATE,
            JitError::Internal(_) => INTERNAL,
        }
    }

    /// The error jitd named `name`, or `None` for a name that is not jitd's.
    pub fn from_name(name: &str, message: String) -> Option<JitError> {
        if let Some(r) = Refusal::from_error_name(name) {
            return Some(JitError::Refused(r, message));
        }
        Some(match name {
            NOT_AUTHORIZED => JitError::NotAuthorized(message),
            NOT_FOUND => JitError::NotFound(message),
            INVALID_ARGUMENT => JitError::InvalidArgument(message),
            WRONG_STATE => JitError::WrongState(message),
            INTERNAL => JitError::Internal(message),
            CHANNEL => JitError::Channel(message),
            _ => return None,
        })
    }

    /// True for errors that mean "the service said no" (exit code 3 in jitctl).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            JitError::Refused(..)
                | JitError::NotAuthorized(_)
                | JitError::InvalidArgument(_)
                | JitError::WrongState(_)
        )
    }

    /// What to tell a user when jitd could not start.
    pub const START_FAILURE: &'static str = "jitd could not start; its log says why: \
        /var/log/jitd.log (without systemd) or journalctl -u jitd";

    /// The human-readable part only.
    pub fn message(&self) -> String {
        match self {
            #[cfg(feature = "dbus")]
            JitError::ZBus(e) => e.to_string(),
            other => other.text().unwrap_or_default().to_string(),
        }
    }

    /// The message this error carries itself (a bus library error carries none).
    pub fn text(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "dbus")]
            JitError::ZBus(_) => None,
            JitError::Channel(m)
            | JitError::Refused(_, m)
            | JitError::NotAuthorized(m)
            | JitError::NotFound(m)
            | JitError::InvalidArgument(m)
            | JitError::WrongState(m)
            | JitError::Internal(m) => Some(m),
        }
    }
}

impl std::fmt::Display for JitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for JitError {}
