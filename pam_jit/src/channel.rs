//! The way to jitd from a hook: its PAM socket first ([`crate::socket`]), the system bus
//! only when the socket is absent ([`crate::bus`]). Both carry the same operations
//! ([`PamCall`]), so the logic cannot tell them apart, and neither can its answers.

use crate::bus::BusClient;
use crate::logic::{Error, Jitd};
use crate::socket::{Failure, SocketClient};
use jit_proto::wire::{PamAnswer, PamCall};
use jit_proto::{
    FleetAnswer, GrantCheck, JitError, PamRequest, RequestInfo, RoleInfo, SessionOpen,
};
use std::time::Duration;

/// jitd's answer as the logic sees it: a refusal says why; anything else (jitd failed, the
/// channel broke, the answer made no sense) is "unreachable", which denies where pam_jit is
/// the gate.
pub fn from_jit(e: JitError) -> Error {
    match e {
        JitError::Internal(m) => Error::Unreachable(format!("jitd failed: {m}")),
        JitError::Refused(..)
        | JitError::NotAuthorized(_)
        | JitError::NotFound(_)
        | JitError::InvalidArgument(_)
        | JitError::WrongState(_) => Error::Refused(e.message()),
        // The channel broke, or (on the bus) the bus said something.
        other => Error::Unreachable(other.message()),
    }
}

pub struct Channel {
    /// `None` with `socket=none`: the bus only.
    pub socket: Option<SocketClient>,
    pub bus: BusClient,
}

impl Channel {
    fn call(&self, call: PamCall, extra: Duration) -> Result<PamAnswer, Error> {
        if let Some(s) = &self.socket {
            match s.call(&call, extra) {
                Ok(a) => return Ok(a),
                Err(Failure::Error(e)) => return Err(e),
                Err(Failure::Absent) => {}
            }
        }
        self.bus.call(&call, extra)
    }

    /// The socket's connection, for the next hook of this PAM transaction.
    pub fn into_connection(self) -> Option<std::os::unix::net::UnixStream> {
        self.socket.and_then(SocketClient::into_connection)
    }
}

fn mismatch() -> Error {
    Error::Unreachable("jitd answered another question".into())
}

impl Jitd for Channel {
    fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck, Error> {
        let call = PamCall::Check {
            user: user.into(),
            ssh,
        };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Check(c) => Ok(c),
            _ => Err(mismatch()),
        }
    }

    fn roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error> {
        let call = PamCall::Roles { user: user.into() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Roles(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    fn request(&self, r: &PamRequest) -> Result<RequestInfo, Error> {
        let call = PamCall::Request { request: r.clone() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Request(r) => Ok(*r),
            _ => Err(mismatch()),
        }
    }

    fn wait(&self, user: &str, id: u64, secs: u32) -> Result<RequestInfo, Error> {
        let call = PamCall::Wait {
            user: user.into(),
            id,
            timeout_secs: secs,
        };
        match self.call(call, Duration::from_secs(u64::from(secs)))? {
            PamAnswer::Request(r) => Ok(*r),
            _ => Err(mismatch()),
        }
    }

    fn pending(&self, user: &str) -> Result<Vec<RequestInfo>, Error> {
        let call = PamCall::Pending { user: user.into() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Requests(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    fn check_reason(&self, role: &str, reason: &str) -> Result<(), Error> {
        let call = PamCall::CheckReason {
            role: role.into(),
            reason: reason.into(),
        };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::ReasonOk {} => Ok(()),
            _ => Err(mismatch()),
        }
    }

    fn open_session(&self, s: &SessionOpen) -> Result<u64, Error> {
        let call = PamCall::OpenSession { session: s.clone() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Session(g) => Ok(g),
            _ => Err(mismatch()),
        }
    }

    fn fleet_roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error> {
        let call = PamCall::FleetRoles { user: user.into() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Roles(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    fn fleet_request(&self, r: &PamRequest) -> Result<FleetAnswer, Error> {
        let call = PamCall::FleetRequest { request: r.clone() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Fleet(f) => Ok(*f),
            _ => Err(mismatch()),
        }
    }

    fn fleet_pending(&self, user: &str) -> Result<Vec<FleetAnswer>, Error> {
        let call = PamCall::FleetPending { user: user.into() };
        match self.call(call, Duration::ZERO)? {
            PamAnswer::Fleets(f) => Ok(f),
            _ => Err(mismatch()),
        }
    }

    fn fleet_wait(&self, user: &str, id: &str, secs: u32) -> Result<FleetAnswer, Error> {
        let call = PamCall::FleetWait {
            user: user.into(),
            id: id.into(),
            timeout_secs: secs,
        };
        match self.call(call, Duration::from_secs(u64::from(secs)))? {
            PamAnswer::Fleet(f) => Ok(*f),
            _ => Err(mismatch()),
        }
    }
}
