//! The D-Bus layer: establishes who is calling (from the bus, never from arguments),
//! authorizes the interface, and hands typed calls to the service. Nothing else.

use crate::directory::{Directory, Nss};
use crate::error::Error;
use crate::grants::{Core, SessionSpec};
use crate::model::{Actor, Ask, Kind, Origin};
use crate::names::{self, UserName};
use crate::service::{Budget, Caller, MAX_WAIT_SECS, Service};
use crate::store::RequestRow;
use jit_proto::State;
use jit_proto::{
    AuditRecord, AuditVerify, GrantCheck, JitError, PamOrigin, PamRequest, RequestInfo, RoleInfo,
    SessionOpen, StatusInfo,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zbus::message::Header;
use zbus::{Connection, interface};

/// Callers' uids and pids by unique bus name. A unique name is never reused on a bus, so an
/// entry can only ever describe the connection the bus daemon vouched for.
#[derive(Default)]
pub struct Identities {
    ids: Mutex<HashMap<String, (u32, u32)>>,
}

/// Entries kept before the cache starts over (names of closed connections linger).
const MAX_CACHED_IDENTITIES: usize = 4096;

fn unknown_caller(e: impl std::fmt::Display) -> JitError {
    JitError::NotAuthorized(format!("cannot establish the caller's identity: {e}"))
}

impl Identities {
    /// Asks the bus daemon for the uid and pid of the message's sender (once per
    /// connection). Any failure denies.
    async fn lookup(&self, conn: &Connection, hdr: &Header<'_>) -> Result<(u32, u32), JitError> {
        let Some(sender) = hdr.sender() else {
            return Err(JitError::NotAuthorized("message has no sender".into()));
        };
        let cached = self
            .ids
            .lock()
            .ok()
            .and_then(|m| m.get(sender.as_str()).copied());
        if let Some(ids) = cached {
            return Ok(ids);
        }
        let dbus = zbus::fdo::DBusProxy::builder(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(unknown_caller)?;
        // One round trip for both (GetConnectionCredentials); either missing denies.
        let creds = dbus
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(unknown_caller)?;
        let (Some(uid), Some(pid)) = (creds.unix_user_id(), creds.process_id()) else {
            return Err(unknown_caller("the bus daemon did not say"));
        };
        if let Ok(mut m) = self.ids.lock() {
            if m.len() >= MAX_CACHED_IDENTITIES {
                m.clear();
            }
            m.insert(sender.to_string(), (uid, pid));
        }
        Ok((uid, pid))
    }

    async fn uid(&self, conn: &Connection, hdr: &Header<'_>) -> Result<u32, JitError> {
        Ok(self.lookup(conn, hdr).await?.0)
    }
}

/// The calling user: uid from the bus, name from NSS; the origin names the calling process,
/// its terminal and its login session (`loginuid`). The terminal is for the audit trail
/// only; the login uid also refuses approvals from the requester's own session.
async fn caller(ids: &Identities, conn: &Connection, hdr: &Header<'_>) -> Result<Actor, JitError> {
    let (uid, pid) = ids.lookup(conn, hdr).await?;
    let name = Nss
        .name_of(uid)
        .map_err(JitError::Internal)?
        .ok_or_else(|| JitError::NotAuthorized(format!("uid {uid} has no user name")))?;
    let name = UserName::new(name).map_err(|e| JitError::NotAuthorized(e.0))?;
    let login_uid = crate::sessions::login_uid_of(pid).map_err(unknown_caller)?;
    let mut origin = format!("bus pid={pid}");
    let tty = crate::sessions::tty_of(pid);
    if !tty.is_empty() {
        origin.push_str(&format!(" tty={tty}"));
    }
    if let Some(l) = login_uid {
        origin.push_str(&format!(" loginuid={l}"));
    }
    Ok(Actor {
        name,
        uid,
        origin,
        login_uid,
        tty,
    })
}

/// Runs `f` on the blocking pool so SQLite and visudo never stall the bus connection,
/// within `who`'s budget of calls in progress.
async fn blocking<T: Send + 'static>(
    svc: &Arc<Service>,
    who: Caller,
    f: impl FnOnce(&Service) -> Result<T, Error> + Send + 'static,
) -> Result<T, JitError> {
    let _slot = svc.quotas().enter(&who, Budget::Call)?;
    let svc = svc.clone();
    zruntime::unblock(move || f(&svc)).await.map_err(Into::into)
}

/// Waits while the request `check` returns is pending, up to `timeout_secs` (at most
/// [`MAX_WAIT_SECS`]), and returns it as it stands then. `check` also authorizes the caller,
/// before any waiting and after each change. The wait holds no thread: it sleeps on the
/// service's change event, each look at the state is one short call on the pool. Counted
/// against `who`'s own budget of waits, so no caller can take the slots others need.
async fn wait_while_pending(
    svc: &Arc<Service>,
    who: Caller,
    timeout_secs: u32,
    check: impl Fn(&Core) -> Result<RequestRow, Error> + Send + Sync + 'static,
) -> Result<RequestRow, JitError> {
    let _slot = svc.quotas().enter(&who, Budget::Wait)?;
    let runtime = zruntime::SharedRuntime::current()
        .map_err(|e| JitError::Internal(format!("no runtime to wait on: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(timeout_secs.min(MAX_WAIT_SECS)));
    let check = Arc::new(check);
    loop {
        let changed = svc.listen();
        let c = check.clone();
        let row = blocking(svc, who.clone(), move |s| s.read(|core| c(core))).await?;
        if row.state != State::Pending || Instant::now() >= deadline {
            return Ok(row);
        }
        // Woken by the next change, or at the deadline for one more look.
        let _ = runtime.timeout_at(deadline, changed).await;
    }
}

/// `org.jit.Jitd.User1`: open to every local user; authorization per method in the core.
pub struct UserInterface {
    pub svc: Arc<Service>,
    pub ids: Arc<Identities>,
}

impl UserInterface {
    /// Every User1 method: who is calling (from the bus), then `f` with that caller on the
    /// blocking pool, within the caller's budget.
    async fn call<T: Send + 'static>(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        f: impl FnOnce(&Service, &Actor) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, JitError> {
        let who = caller(&self.ids, conn, hdr).await?;
        blocking(&self.svc, Caller::Bus(who.uid), move |s| f(s, &who)).await
    }

    /// A change to one request by the caller; answers with the request as it is then.
    async fn change(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        f: impl FnOnce(&mut Core, &Actor) -> Result<RequestRow, Error> + Send + 'static,
    ) -> Result<RequestInfo, JitError> {
        self.call(conn, hdr, move |s, who| {
            s.write(|c| {
                let r = f(c, who)?;
                c.info(&r)
            })
        })
        .await
    }

    /// A request made through jitctl (`kind`: an ordinary grant or break-glass).
    async fn submit(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        kind: Kind,
        role: String,
        duration_secs: u64,
        reason: String,
    ) -> Result<RequestInfo, JitError> {
        self.call(conn, hdr, move |s, who| {
            let ask = Ask {
                kind,
                role,
                duration: duration_secs,
                reason,
                origin: Origin::bus(who),
            };
            let r = s.request(who, &ask)?;
            s.read(|c| c.info(&r))
        })
        .await
    }
}

#[interface(name = "org.jit.Jitd.User1")]
impl UserInterface {
    async fn roles(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RoleInfo>, JitError> {
        self.call(conn, &hdr, |s, who| s.read(|c| c.roles_for(&who.name)))
            .await
    }

    async fn request(
        &self,
        role: String,
        duration_secs: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.submit(conn, &hdr, Kind::Grant, role, duration_secs, reason)
            .await
    }

    async fn break_glass(
        &self,
        role: String,
        duration_secs: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.submit(conn, &hdr, Kind::BreakGlass, role, duration_secs, reason)
            .await
    }

    async fn extend(
        &self,
        id: u64,
        by_secs: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.call(conn, &hdr, move |s, who| {
            let r = s.extend(who, id, by_secs, &reason)?;
            s.read(|c| c.info(&r))
        })
        .await
    }

    async fn review(
        &self,
        all: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        self.call(conn, &hdr, move |s, who| s.read(|c| c.review(who, all)))
            .await
    }

    async fn acknowledge(
        &self,
        id: u64,
        comment: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.acknowledge(who, id, &comment))
            .await
    }

    async fn list(
        &self,
        pending_only: bool,
        all: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        self.call(conn, &hdr, move |s, who| {
            s.read(|c| c.list(who, pending_only, all))
        })
        .await
    }

    async fn show(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.call(conn, &hdr, move |s, who| s.read(|c| c.show(who, id)))
            .await
    }

    async fn approve(
        &self,
        id: u64,
        comment: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.approve(who, id, &comment))
            .await
    }

    async fn deny(
        &self,
        id: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.deny(who, id, &reason))
            .await
    }

    async fn revoke(
        &self,
        id: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.revoke(who, id, &reason))
            .await
    }

    async fn release(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.release(who, id))
            .await
    }

    async fn cancel(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.change(conn, &hdr, move |c, who| c.cancel(who, id))
            .await
    }

    async fn wait(
        &self,
        id: u64,
        timeout_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        let key = Caller::Bus(who.uid);
        let row = wait_while_pending(&self.svc, key.clone(), timeout_secs, move |c| {
            c.show(&who, id)?;
            c.row(id)
        })
        .await?;
        blocking(&self.svc, key, move |s| s.read(|c| c.info(&row))).await
    }

    async fn grants(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        self.call(conn, &hdr, |s, who| s.read(|c| c.grants(who)))
            .await
    }

    async fn status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<StatusInfo, JitError> {
        self.call(conn, &hdr, |s, who| s.read(|c| c.status(who)))
            .await
    }

    async fn audit(
        &self,
        since: i64,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<AuditRecord>, JitError> {
        let user = match user.as_str() {
            "" => None,
            u => Some(UserName::new(u).map_err(|e| JitError::InvalidArgument(e.0))?),
        };
        self.call(conn, &hdr, move |s, who| {
            s.read(|c| c.audit(who, since, user.as_ref()))
        })
        .await
    }

    async fn audit_verify(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<AuditVerify, JitError> {
        self.call(conn, &hdr, |s, who| s.read(|c| c.audit_verify(who)))
            .await
    }
}

/// `org.jit.Jitd.Pam1`: pam_jit acting for the PAM user. The bus policy lets only root
/// send here; this re-checks it, so a policy mistake alone opens nothing.
pub struct PamInterface {
    pub svc: Arc<Service>,
    pub ids: Arc<Identities>,
}

async fn require_root(
    ids: &Identities,
    conn: &Connection,
    hdr: &Header<'_>,
) -> Result<(), JitError> {
    match ids.uid(conn, hdr).await? {
        0 => Ok(()),
        uid => {
            tracing::warn!("uid {uid} called the PAM interface; refused");
            Err(JitError::NotAuthorized(
                "the PAM interface is for root (pam_jit) only".into(),
            ))
        }
    }
}

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

#[interface(name = "org.jit.Jitd.Pam1")]
impl PamInterface {
    async fn open_session(
        &self,
        session: SessionOpen,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
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
        let Some(opened) = self.svc.write(|c| c.open_session(&who, &spec, &origin))? else {
            return Ok(0);
        };
        let grant = opened.grant;
        // Written after the reply; the pool runs it even though nobody awaits it.
        let svc = self.svc.clone();
        drop(zruntime::unblock(move || {
            let _ = svc.write(|c| {
                c.record_session_open(&who, &opened, &origin);
                Ok(())
            });
        }));
        Ok(grant)
    }

    async fn check(
        &self,
        user: String,
        ssh: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<GrantCheck, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let user = pam_name(&user)?;
        self.svc.read(|c| c.check(&user, ssh)).map_err(Into::into)
    }

    async fn roles(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RoleInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let who = pam_user(&user, &pam_origin())?;
        blocking(&self.svc, Caller::Pam(user), move |s| {
            s.read(|c| c.roles_for(&who.name))
        })
        .await
    }

    async fn request(
        &self,
        request: PamRequest,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let origin = pam_origin_of(&request.origin)?;
        let who = pam_user(&request.user, &origin)?;
        let ask = Ask {
            kind: Kind::Grant,
            role: request.role,
            duration: request.duration_secs,
            reason: request.reason,
            origin,
        };
        blocking(&self.svc, Caller::Pam(who.name.to_string()), move |s| {
            let r = s.request(&who, &ask)?;
            s.read(|c| c.info(&r))
        })
        .await
    }

    async fn check_reason(
        &self,
        role: String,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        self.svc
            .read(|c| c.policy().role(&role)?.check_reason(&reason).map(|_| ()))
            .map_err(Into::into)
    }

    async fn pending(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let who = pam_user(&user, &pam_origin())?;
        blocking(&self.svc, Caller::Pam(user), move |s| {
            s.read(|c| c.pending_of(&who.name))
        })
        .await
    }

    async fn wait(
        &self,
        user: String,
        id: u64,
        timeout_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let who = pam_user(&user, &pam_origin())?;
        let key = Caller::Pam(user);
        let row = wait_while_pending(&self.svc, key.clone(), timeout_secs, move |c| {
            c.request_of(&who.name, id)
        })
        .await?;
        blocking(&self.svc, key, move |s| s.read(|c| c.info(&row))).await
    }
}
