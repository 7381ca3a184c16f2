//! The PAM operations (`org.jit.Jitd.Pam1`, [`jit_proto::wire::PamCall`]): pam_jit acting
//! for the PAM user. Defined once here; [`crate::bus`] serves them on the bus and
//! [`crate::pam_socket`] on the PAM socket, each after establishing that the caller is root
//! its own way (bus credentials, `SO_PEERCRED`). Every argument is checked here, the same
//! for both.

use crate::directory::{Directory, Nss};
use crate::grants::SessionSpec;
use crate::model::{Actor, Ask, Kind, Origin};
use crate::names::{self, UserName};
use crate::service::{Caller, Service, blocking, wait_while, wait_while_pending};
use jit_proto::wire::{PamAnswer, PamCall};
use jit_proto::{
    FleetAnswer, GrantCheck, JitError, PamOrigin, PamRequest, RequestInfo, RoleInfo, SessionOpen,
    State,
};
use std::sync::Arc;

/// The PAM user as an actor: the name must fit the grammar and exist in NSS. The origin is
/// what pam_jit reports from the PAM items (checked by [`origin_field`]).
fn pam_user(user: &str, origin: &Origin) -> Result<Actor, JitError> {
    let user = pam_name(user)?;
    let uid = Nss
        .uid_of(&user)
        .map_err(JitError::Internal)?
        .ok_or_else(|| JitError::InvalidArgument(format!("no such user: {user}")))?;
    let mut from = format!("service={}", origin.service);
    for (k, v) in [("tty", &origin.tty), ("rhost", &origin.rhost)] {
        if !v.is_empty() {
            from.push_str(&format!(" {k}={v}"));
        }
    }
    Ok(Actor {
        name: user,
        uid,
        origin: from,
        login_uid: None,
        tty: String::new(),
    })
}

/// A user name from pam_jit, checked at the edge.
fn pam_name(user: &str) -> Result<UserName, JitError> {
    UserName::new(user).map_err(|e| JitError::InvalidArgument(e.0))
}

/// The origin of a PAM call that does not say where it comes from.
fn pam_origin() -> Origin {
    Origin {
        service: "pam".into(),
        ..Origin::default()
    }
}

fn origin_field(name: &str, v: &str) -> Result<String, JitError> {
    if v.len() > 128 || v.chars().any(names::is_hidden_char) {
        return Err(JitError::InvalidArgument(format!("invalid {name}")));
    }
    Ok(v.to_string())
}

fn session_pid(pid: u32) -> Result<i32, JitError> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| JitError::InvalidArgument(format!("invalid pid {pid}")))
}

/// The origin of a PAM call, each item checked.
fn pam_origin_of(o: &PamOrigin) -> Result<Origin, JitError> {
    Ok(Origin {
        service: origin_field("service", &o.service)?,
        tty: origin_field("tty", &o.tty)?,
        rhost: origin_field("rhost", &o.rhost)?,
    })
}

/// One call from an authenticated root caller, whichever channel it came on.
pub async fn answer(svc: &Arc<Service>, call: PamCall) -> Result<PamAnswer, JitError> {
    Ok(match call {
        PamCall::Check { user, ssh } => PamAnswer::Check(check(svc, &user, ssh)?),
        PamCall::Roles { user } => PamAnswer::Roles(roles(svc, user).await?),
        PamCall::Request { request: r } => PamAnswer::Request(Box::new(request(svc, r).await?)),
        PamCall::Wait {
            user,
            id,
            timeout_secs,
        } => PamAnswer::Request(Box::new(wait(svc, user, id, timeout_secs).await?)),
        PamCall::Pending { user } => PamAnswer::Requests(pending(svc, user).await?),
        PamCall::CheckReason { role, reason } => {
            check_reason(svc, &role, &reason)?;
            PamAnswer::ReasonOk {}
        }
        PamCall::OpenSession { session } => PamAnswer::Session(open_session(svc, session)?),
        PamCall::FleetRoles { user } => PamAnswer::Roles(fleet_roles(svc, user).await?),
        PamCall::FleetRequest { request } => {
            PamAnswer::Fleet(Box::new(fleet_request(svc, request).await?))
        }
        PamCall::FleetWait {
            user,
            id,
            timeout_secs,
        } => PamAnswer::Fleet(Box::new(fleet_wait(svc, user, id, timeout_secs).await?)),
        PamCall::FleetPending { user } => PamAnswer::Fleets(fleet_pending(svc, user).await?),
    })
}

pub fn open_session(svc: &Arc<Service>, session: SessionOpen) -> Result<u64, JitError> {
    let origin = pam_origin_of(&session.origin)?;
    let who = pam_user(&session.user, &origin)?;
    let target = match session.target.as_str() {
        "" => None,
        t => Some(pam_name(t)?),
    };
    let spec = SessionSpec {
        pid: session_pid(session.pid)?,
        target,
        ssh: session.ssh,
    };
    let Some(opened) = svc.write(|c| c.open_session(&who, &spec, &origin))? else {
        return Ok(0);
    };
    let grant = opened.grant;
    // Written after the reply; the pool runs it even though nobody awaits it.
    let svc = svc.clone();
    drop(zruntime::unblock(move || {
        let _ = svc.write(|c| {
            c.record_session_open(&who, &opened, &origin);
            Ok(())
        });
    }));
    Ok(grant)
}

pub fn check(svc: &Service, user: &str, ssh: bool) -> Result<GrantCheck, JitError> {
    let user = pam_name(user)?;
    svc.check(&user, ssh).map_err(Into::into)
}

/// The roles pam_jit may offer at a prompt: not those that grant an account (what they
/// grant is another login, never the prompting user's sudo or ssh login, and their keys
/// come with `jitctl request`).
pub async fn roles(svc: &Arc<Service>, user: String) -> Result<Vec<RoleInfo>, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    blocking(svc, Caller::Pam(user), move |s| {
        s.read(|c| c.roles_for(&who.name))
            .map(|roles| roles.into_iter().filter(|r| !r.account).collect())
    })
    .await
}

pub async fn request(svc: &Arc<Service>, request: PamRequest) -> Result<RequestInfo, JitError> {
    let origin = pam_origin_of(&request.origin)?;
    let who = pam_user(&request.user, &origin)?;
    let ask = Ask {
        kind: Kind::Grant,
        role: request.role,
        duration: request.duration_secs,
        reason: request.reason,
        origin,
        ssh_keys: Vec::new(),
        key_fingerprints: Vec::new(),
    };
    blocking(svc, Caller::Pam(who.name.to_string()), move |s| {
        let r = s.request(&who, &ask)?;
        s.read(|c| c.info(&r))
    })
    .await
}

pub fn check_reason(svc: &Service, role: &str, reason: &str) -> Result<(), JitError> {
    svc.read(|c| c.policy().role(role)?.check_reason(reason).map(|_| ()))
        .map_err(Into::into)
}

pub async fn pending(svc: &Arc<Service>, user: String) -> Result<Vec<RequestInfo>, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    blocking(svc, Caller::Pam(user), move |s| {
        s.read(|c| c.pending_of(&who.name))
    })
    .await
}

pub async fn wait(
    svc: &Arc<Service>,
    user: String,
    id: u64,
    timeout_secs: u32,
) -> Result<RequestInfo, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    let key = Caller::Pam(user);
    let row = wait_while_pending(svc, key.clone(), id, timeout_secs, move |c| {
        c.request_of(&who.name, id)
    })
    .await?;
    blocking(svc, key, move |s| s.read(|c| c.info(&row))).await
}

/// The fleet roles the PAM user may request for this host (none outside a fleet).
pub async fn fleet_roles(svc: &Arc<Service>, user: String) -> Result<Vec<RoleInfo>, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    blocking(svc, Caller::Pam(user), move |s| {
        s.read(|c| c.fleet_roles_for(&who))
    })
    .await
}

/// A fleet request for this host alone, made at the prompt: signed and queued for the
/// fleet agent, as `jitctl request ROLE --hosts THIS-HOST` makes it.
pub async fn fleet_request(
    svc: &Arc<Service>,
    request: PamRequest,
) -> Result<FleetAnswer, JitError> {
    let origin = pam_origin_of(&request.origin)?;
    let who = pam_user(&request.user, &origin)?;
    blocking(svc, Caller::Pam(who.name.to_string()), move |s| {
        let id = s.write(|c| {
            c.fleet_request_here(&who, &request.role, request.duration_secs, &request.reason)
        })?;
        let request = s.read(|c| c.fleet_status(&who, &id))?;
        Ok(FleetAnswer { id, request })
    })
    .await
}

/// The PAM user's fleet requests for this host that still wait for approval.
pub async fn fleet_pending(svc: &Arc<Service>, user: String) -> Result<Vec<FleetAnswer>, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    blocking(svc, Caller::Pam(user), move |s| {
        s.read(|c| c.fleet_pending_of(&who))
    })
    .await
}

/// Waits while the PAM user's fleet request `id` is pending on this host.
pub async fn fleet_wait(
    svc: &Arc<Service>,
    user: String,
    id: String,
    timeout_secs: u32,
) -> Result<FleetAnswer, JitError> {
    let who = pam_user(&user, &pam_origin())?;
    let fleet_id = id.clone();
    let request = wait_while(
        svc,
        Caller::Pam(user),
        timeout_secs,
        move |c| c.fleet_status(&who, &fleet_id),
        |r| r.state() == Some(State::Pending),
        |_| {},
    )
    .await?;
    Ok(FleetAnswer { id, request })
}
