//! The D-Bus layer: establishes who is calling (from the bus, never from arguments),
//! authorizes the interface, and hands typed calls to the service. Nothing else.

use crate::directory::{Directory, Nss};
use crate::error::Error;
use crate::grants::Origin;
use crate::names;
use crate::service::Service;
use crate::store::{Actor, Kind};
use jit_proto::{
    AuditRecord, AuditVerify, GrantCheck, JitError, RequestInfo, RoleInfo, StatusInfo,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// The calling user: uid from the bus, name from NSS; the origin names the calling process
/// and its terminal (for the audit trail only: nothing is decided on it).
async fn caller(ids: &Identities, conn: &Connection, hdr: &Header<'_>) -> Result<Actor, JitError> {
    let (uid, pid) = ids.lookup(conn, hdr).await?;
    let name = Nss
        .name_of(uid)
        .map_err(JitError::Internal)?
        .ok_or_else(|| JitError::NotAuthorized(format!("uid {uid} has no user name")))?;
    names::validate_user_name(&name).map_err(JitError::NotAuthorized)?;
    let tty = crate::sessions::tty_of(pid);
    let origin = if tty.is_empty() {
        format!("bus pid={pid}")
    } else {
        format!("bus pid={pid} tty={tty}")
    };
    Ok(Actor { name, uid, origin })
}

/// Runs `f` on the blocking pool so SQLite and visudo never stall the bus connection.
async fn blocking<T: Send + 'static>(
    svc: &Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, Error> + Send + 'static,
) -> Result<T, JitError> {
    let svc = svc.clone();
    zruntime::unblock(move || f(&svc)).await.map_err(Into::into)
}

/// `org.jit.Jitd.User1`: open to every local user; authorization per method in the core.
pub struct UserInterface {
    pub svc: Arc<Service>,
    pub ids: Arc<Identities>,
}

impl UserInterface {
    /// A request made through jitctl (`kind`: an ordinary grant or break-glass).
    async fn submit(
        &self,
        who: Actor,
        kind: Kind,
        role: String,
        duration_secs: u64,
        reason: String,
    ) -> Result<RequestInfo, JitError> {
        let origin = Origin {
            service: "jitctl".into(),
            ..Origin::default()
        };
        blocking(&self.svc, move |s| {
            let r = s.request(&who, kind, &role, duration_secs, &reason, &origin)?;
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
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.roles_for(&who.name))).await
    }

    async fn request(
        &self,
        role: String,
        duration_secs: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        self.submit(who, Kind::Grant, role, duration_secs, reason)
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
        let who = caller(&self.ids, conn, &hdr).await?;
        self.submit(who, Kind::BreakGlass, role, duration_secs, reason)
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
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            let r = s.extend(&who, id, by_secs, &reason)?;
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
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.review(&who, all))).await
    }

    async fn acknowledge(
        &self,
        id: u64,
        comment: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.acknowledge(&who, id, &comment)?;
                c.info(&r)
            })
        })
        .await
    }

    async fn list(
        &self,
        pending_only: bool,
        all: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.read(|c| c.list(&who, pending_only, all))
        })
        .await
    }

    async fn show(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.show(&who, id))).await
    }

    async fn approve(
        &self,
        id: u64,
        comment: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.approve(&who, id, &comment)?;
                c.info(&r)
            })
        })
        .await
    }

    async fn deny(
        &self,
        id: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.deny(&who, id, &reason)?;
                c.info(&r)
            })
        })
        .await
    }

    async fn revoke(
        &self,
        id: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.revoke(&who, id, &reason)?;
                c.info(&r)
            })
        })
        .await
    }

    async fn release(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.release(&who, id)?;
                c.info(&r)
            })
        })
        .await
    }

    async fn cancel(
        &self,
        id: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| {
            s.write(|c| {
                let r = c.cancel(&who, id)?;
                c.info(&r)
            })
        })
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
        blocking(&self.svc, move |s| {
            let row = s.wait_while_pending(timeout_secs, |c| {
                c.show(&who, id)?;
                c.row(id)
            })?;
            s.read(|c| c.info(&row))
        })
        .await
    }

    async fn grants(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.grants(&who))).await
    }

    async fn status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<StatusInfo, JitError> {
        caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, |s| s.read(|c| c.status())).await
    }

    async fn audit(
        &self,
        since: i64,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<AuditRecord>, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.audit(&who, since, &user))).await
    }

    async fn audit_verify(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<AuditVerify, JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        blocking(&self.svc, move |s| s.read(|c| c.audit_verify(&who))).await
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
    names::validate_user_name(user).map_err(JitError::InvalidArgument)?;
    let uid = Nss
        .uid_of(user)
        .map_err(JitError::Internal)?
        .ok_or_else(|| JitError::InvalidArgument(format!("no such user: {user}")))?;
    let mut from = format!("service={}", origin.service);
    for (k, v) in [("tty", &origin.tty), ("rhost", &origin.rhost)] {
        if !v.is_empty() {
            from.push_str(&format!(" {k}={v}"));
        }
    }
    Ok(Actor {
        name: user.to_string(),
        uid,
        origin: from,
    })
}

/// The origin of a PAM call that does not say where it comes from.
fn pam_origin() -> Origin {
    Origin {
        service: "pam".into(),
        ..Origin::default()
    }
}

fn origin_field(name: &str, v: &str) -> Result<String, JitError> {
    if v.len() > 128 || v.chars().any(names::is_dangerous_char) {
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

#[interface(name = "org.jit.Jitd.Pam1")]
impl PamInterface {
    #[allow(clippy::too_many_arguments)]
    async fn open_session(
        &self,
        user: String,
        service: String,
        tty: String,
        rhost: String,
        pid: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let origin = Origin {
            service: origin_field("service", &service)?,
            tty: origin_field("tty", &tty)?,
            rhost: origin_field("rhost", &rhost)?,
        };
        let who = pam_user(&user, &origin)?;
        let pid = session_pid(pid)?;
        let Some(opened) = self.svc.write(|c| c.open_session(&who, pid, &origin))? else {
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
        names::validate_user_name(&user).map_err(JitError::InvalidArgument)?;
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
        blocking(&self.svc, move |s| s.read(|c| c.roles_for(&who.name))).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn request(
        &self,
        user: String,
        role: String,
        duration_secs: u64,
        reason: String,
        service: String,
        tty: String,
        rhost: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let origin = Origin {
            service: origin_field("service", &service)?,
            tty: origin_field("tty", &tty)?,
            rhost: origin_field("rhost", &rhost)?,
        };
        let who = pam_user(&user, &origin)?;
        blocking(&self.svc, move |s| {
            let r = s.request(&who, Kind::Grant, &role, duration_secs, &reason, &origin)?;
            s.read(|c| c.info(&r))
        })
        .await
    }

    async fn pending(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        let who = pam_user(&user, &pam_origin())?;
        blocking(&self.svc, move |s| s.read(|c| c.pending_of(&who.name))).await
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
        blocking(&self.svc, move |s| {
            let row = s.wait_while_pending(timeout_secs, |c| c.request_of(&who.name, id))?;
            s.read(|c| c.info(&row))
        })
        .await
    }
}
