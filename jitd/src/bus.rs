//! The D-Bus layer: establishes who is calling (from the bus, never from arguments),
//! authorizes the interface, and hands typed calls to the service. Nothing else.

use crate::directory::{Directory, Nss};
use crate::error::Error;
use crate::grants::Core;
use crate::model::{Actor, Ask, Kind, Origin};
use crate::names::UserName;
use crate::pam_ops;
use crate::service::{Caller, Service, blocking, wait_while_pending};
use crate::store::RequestRow;
use jit_proto::{
    AuditRecord, AuditVerify, Delivery, FleetAnswer, GrantCheck, JitError, PamRequest, RequestInfo,
    RoleInfo, SessionOpen, StatusInfo,
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
            .map_err(|e| {
                // Typically a caller gone before its call was read (polkit's CVE-2021-3560):
                // refused, and said, since a burst of them is someone trying that race.
                tracing::warn!("a call from {sender} refused: its sender is gone ({e})");
                unknown_caller(e)
            })?;
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

/// A user argument that may be empty (everyone the caller may see), checked at the edge.
fn optional_user(user: &str) -> Result<Option<UserName>, JitError> {
    match user {
        "" => Ok(None),
        u => UserName::new(u)
            .map(Some)
            .map_err(|e| JitError::InvalidArgument(e.0)),
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

    /// A request made through jitctl: `ask` as the caller asked it, its origin (the
    /// caller's terminal) filled in here.
    async fn submit(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        mut ask: Ask,
    ) -> Result<RequestInfo, JitError> {
        self.call(conn, hdr, move |s, who| {
            ask.origin = Origin::bus(who);
            let r = s.request(who, &ask)?;
            s.read(|c| c.info(&r))
        })
        .await
    }
}

/// A request as a bus caller asks it (the origin is set from the caller).
fn asked(kind: Kind, role: String, duration: u64, reason: String, ssh_keys: Vec<String>) -> Ask {
    Ask {
        kind,
        role,
        duration,
        reason,
        origin: Origin::default(),
        ssh_keys,
        key_fingerprints: Vec::new(),
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
        self.submit(
            conn,
            &hdr,
            asked(Kind::Grant, role, duration_secs, reason, Vec::new()),
        )
        .await
    }

    /// A request for a role that grants an account, with the SSH public keys the account
    /// gets (`authorized_keys` lines, at most [`crate::accounts::MAX_KEYS`]).
    async fn request_with_keys(
        &self,
        role: String,
        duration_secs: u64,
        reason: String,
        ssh_keys: Vec<String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        self.submit(
            conn,
            &hdr,
            asked(Kind::Grant, role, duration_secs, reason, ssh_keys),
        )
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
        self.submit(
            conn,
            &hdr,
            asked(Kind::BreakGlass, role, duration_secs, reason, Vec::new()),
        )
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

    /// A fleet request: fleet role `role` on `hosts` (host names or host groups); returns
    /// its id.
    async fn fleet_request(
        &self,
        role: String,
        hosts: Vec<String>,
        duration_secs: u64,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        if hosts.len() > 1024 {
            return Err(JitError::InvalidArgument("at most 1024 hosts".into()));
        }
        self.call(conn, &hdr, move |s, who| {
            s.write(|c| c.fleet_request(who, &role, &hosts, duration_secs, &reason))
        })
        .await
    }

    /// The fleet requests the caller may see, with every host's ack (JSON).
    /// How this host's link to the fleet stands (JSON); empty outside a fleet.
    async fn fleet_status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        self.call(conn, &hdr, move |s, _| {
            match s.read(|c| Ok(c.fleet_link()))? {
                Some(link) => {
                    serde_json::to_string(&link).map_err(|e| Error::Internal(e.to_string()))
                }
                None => Ok(String::new()),
            }
        })
        .await
    }

    async fn fleet_list(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        self.call(conn, &hdr, move |s, who| {
            let list = s.read(|c| c.fleet_list(who))?;
            serde_json::to_string(&list).map_err(|e| Error::Internal(e.to_string()))
        })
        .await
    }

    /// Fleet request `id` (JSON), if the caller may see it.
    async fn fleet_show(
        &self,
        id: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        self.call(conn, &hdr, move |s, who| {
            let v = s.read(|c| c.fleet_show(who, &id))?;
            serde_json::to_string(&v).map_err(|e| Error::Internal(e.to_string()))
        })
        .await
    }

    /// The caller's approval of fleet request `id` (JSON of a signed approval).
    async fn fleet_approve(
        &self,
        id: String,
        approval: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        self.call(conn, &hdr, move |s, who| {
            s.write(|c| c.fleet_approve(who, &id, &approval))
        })
        .await
    }

    /// Ends fleet request `id` everywhere (release by its requester, revoke by an approver
    /// or root).
    async fn fleet_end(
        &self,
        id: String,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        self.call(conn, &hdr, move |s, who| {
            s.write(|c| c.fleet_end(who, &id, &reason))
        })
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
        let row = wait_while_pending(&self.svc, key.clone(), id, timeout_secs, move |c| {
            c.show(&who, id)?;
            c.row(id)
        })
        .await?;
        blocking(&self.svc, key, move |s| s.read(|c| c.info(&row))).await
    }

    /// Subscribes the calling connection to events (see [`jit_proto::User1Proxy::watch`]).
    async fn watch(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        let who = caller(&self.ids, conn, &hdr).await?;
        let Some(sender) = hdr.sender().map(ToString::to_string) else {
            return Err(JitError::NotAuthorized("message has no sender".into()));
        };
        self.svc
            .hub()
            .subscribe(&sender, &who)
            .map_err(JitError::from)?;
        // A caller gone before it was subscribed would never be unsubscribed by the
        // NameOwnerChanged that has already passed.
        let still_there = match zbus::names::BusName::try_from(sender.as_str()) {
            Ok(name) => match zbus::fdo::DBusProxy::new(conn).await {
                Ok(p) => p.name_has_owner(name).await.unwrap_or(false),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if !still_there {
            self.svc.hub().unsubscribe(&sender);
            return Err(JitError::NotAuthorized(
                "the caller left the bus before it was subscribed".into(),
            ));
        }
        tracing::info!(
            "{} (uid {}) watches events from {sender}",
            who.name,
            who.uid
        );
        Ok(())
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
        let user = optional_user(&user)?;
        self.call(conn, &hdr, move |s, who| {
            s.read(|c| c.audit(who, since, user.as_ref()))
        })
        .await
    }

    async fn audit_page(
        &self,
        after_seq: u64,
        limit: u32,
        since: i64,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<AuditRecord>, JitError> {
        let user = optional_user(&user)?;
        self.call(conn, &hdr, move |s, who| {
            s.read(|c| c.audit_page(who, after_seq, limit, since, user.as_ref()))
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

    async fn audit_verify_key(
        &self,
        key: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<AuditVerify, JitError> {
        self.call(conn, &hdr, move |s, who| {
            // Who may verify with a key first: a caller who may not learns nothing about
            // the key they sent, not even whether it is well formed.
            if who.uid != 0 {
                return Err(crate::error::Error::NotAuthorized(
                    "only root may verify the audit trail with the key".into(),
                ));
            }
            let key: crate::seal::VerificationKey =
                key.parse().map_err(crate::error::Error::InvalidArgument)?;
            s.read(|c| c.verify_with(who, Some(key)))
        })
        .await
    }

    async fn audit_prune(
        &self,
        before_seq: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        self.call(conn, &hdr, move |s, who| {
            s.write(|c| c.audit_prune(who, before_seq))
        })
        .await
    }

    async fn seal_setup(
        &self,
        interval_secs: u64,
        force: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        self.call(conn, &hdr, move |s, who| {
            s.write(|c| c.seal_setup(who, interval_secs, force))
                .map(|k| k.to_string())
        })
        .await
    }
}

/// `org.jit.Jitd.Pam1`: pam_jit acting for the PAM user (the operations are
/// [`crate::pam_ops`]). The bus policy lets only root send here; this re-checks it, so a
/// policy mistake alone opens nothing.
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

#[interface(name = "org.jit.Jitd.Pam1")]
impl PamInterface {
    async fn open_session(
        &self,
        session: SessionOpen,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::open_session(&self.svc, session)
    }

    async fn check(
        &self,
        user: String,
        ssh: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<GrantCheck, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::check(&self.svc, &user, ssh)
    }

    async fn roles(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RoleInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::roles(&self.svc, user).await
    }

    async fn request(
        &self,
        request: PamRequest,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<RequestInfo, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::request(&self.svc, request).await
    }

    async fn check_reason(
        &self,
        role: String,
        reason: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::check_reason(&self.svc, &role, &reason)
    }

    async fn pending(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RequestInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::pending(&self.svc, user).await
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
        pam_ops::wait(&self.svc, user, id, timeout_secs).await
    }

    async fn fleet_roles(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<RoleInfo>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::fleet_roles(&self.svc, user).await
    }

    async fn fleet_request(
        &self,
        request: PamRequest,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<FleetAnswer, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::fleet_request(&self.svc, request).await
    }

    async fn fleet_wait(
        &self,
        user: String,
        id: String,
        timeout_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<FleetAnswer, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::fleet_wait(&self.svc, user, id, timeout_secs).await
    }

    async fn fleet_pending(
        &self,
        user: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<FleetAnswer>, JitError> {
        require_root(&self.ids, conn, &hdr).await?;
        pam_ops::fleet_pending(&self.svc, user).await
    }
}

/// `org.jit.Jitd.Notify1`: for the notifier agent (`jit-notifyd`) only, by its uid.
pub struct NotifyInterface {
    pub svc: Arc<Service>,
    pub ids: Arc<Identities>,
    /// The user the agent runs as.
    pub agent: String,
}

/// Longest a `Take` waits for a delivery.
const MAX_TAKE_WAIT_SECS: u32 = 60;
/// Most deliveries one `Take` hands out.
const MAX_TAKE: u32 = 64;
/// Longest error text an agent reports (the rest is cut).
const MAX_REPORT: usize = 500;

impl NotifyInterface {
    /// The caller, if it is the agent's user.
    async fn require_agent(&self, conn: &Connection, hdr: &Header<'_>) -> Result<Actor, JitError> {
        require_user(
            &self.ids,
            conn,
            hdr,
            &self.agent,
            ("notifier interface", "jit-notifyd"),
        )
        .await
    }
}

/// The caller, if it runs as `user` (an agent's interface: jitd checks the uid itself,
/// whatever the bus policy lets through).
async fn require_user(
    ids: &Identities,
    conn: &Connection,
    hdr: &Header<'_>,
    user: &str,
    (what, program): (&str, &str),
) -> Result<Actor, JitError> {
    let who = caller(ids, conn, hdr).await?;
    let agent = Nss.uid_of(user).map_err(JitError::Internal)?;
    if agent == Some(who.uid) {
        return Ok(who);
    }
    tracing::warn!("uid {} called the {what}; refused", who.uid);
    Err(JitError::NotAuthorized(format!(
        "the {what} is for {user} ({program}) only"
    )))
}

/// The fleet agent's interface: it offers the fleet records it has seen; jitd verifies and
/// applies them itself and answers what it did.
pub struct FleetInterface {
    pub svc: Arc<Service>,
    pub ids: Arc<Identities>,
    /// The user the fleet agent runs as.
    pub agent: String,
}

/// Most approvals or ends one offer carries.
const MAX_OFFER_RECORDS: usize = 64;

#[interface(name = "org.jit.Jitd.Fleet1")]
impl FleetInterface {
    /// A fleet request (JSON of a signed request), with the approvals and ends seen for it.
    /// Returns the acknowledgement (JSON: id, host, outcome, reason, local_id, not_after).
    async fn offer(
        &self,
        request: String,
        approvals: Vec<String>,
        ends: Vec<String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, JitError> {
        let who = self.require_agent(conn, &hdr).await?;
        if approvals.len() > MAX_OFFER_RECORDS || ends.len() > MAX_OFFER_RECORDS {
            return Err(JitError::InvalidArgument(format!(
                "at most {MAX_OFFER_RECORDS} approvals and ends per offer"
            )));
        }
        blocking(&self.svc, Caller::Bus(who.uid), move |s| {
            let ack = s.write(|c| c.offer_fleet(&who, &request, &approvals, &ends))?;
            serde_json::to_string(&ack).map_err(|e| crate::error::Error::Internal(e.to_string()))
        })
        .await
    }

    /// What the agent saw in etcd at `revision`: records put (key, value) or deleted (key,
    /// ""); `reset` when it listed everything again. Also says the agent is in touch.
    /// Answers true when jitd needs everything listed again (it restarted).
    async fn sync(
        &self,
        revision: i64,
        reset: bool,
        changes: Vec<(String, String)>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, JitError> {
        let who = self.require_agent(conn, &hdr).await?;
        if changes.len() > MAX_SYNC {
            return Err(JitError::InvalidArgument(format!(
                "at most {MAX_SYNC} records per sync"
            )));
        }
        blocking(&self.svc, Caller::Bus(who.uid), move |s| {
            s.write(|c| c.fleet_sync(revision, reset, changes))
        })
        .await
    }

    /// Records made on this host for the agent to put into etcd (key, value), waiting up
    /// to `wait_secs` for one.
    async fn take(
        &self,
        wait_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, String)>, JitError> {
        let who = Caller::Bus(self.require_agent(conn, &hdr).await?.uid);
        let _slot = self
            .svc
            .quotas()
            .enter(&who, crate::service::Budget::Wait)?;
        let runtime = zruntime::SharedRuntime::current()
            .map_err(|e| JitError::Internal(format!("no runtime to wait on: {e}")))?;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(u64::from(wait_secs.min(MAX_TAKE_WAIT_SECS)));
        loop {
            let changed = self.svc.listen();
            let got = blocking(&self.svc, who.clone(), move |s| {
                s.read(|c| c.fleet_take(MAX_TAKE))
            })
            .await?;
            if !got.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(got);
            }
            let _ = runtime.timeout_at(deadline, changed).await;
        }
    }

    /// Records the agent has put into etcd (as `take` gave them).
    async fn published(
        &self,
        done: Vec<(String, String)>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        let who = self.require_agent(conn, &hdr).await?;
        blocking(&self.svc, Caller::Bus(who.uid), move |s| {
            s.write(|c| c.fleet_published(done))
        })
        .await
    }
}

impl FleetInterface {
    async fn require_agent(&self, conn: &Connection, hdr: &Header<'_>) -> Result<Actor, JitError> {
        require_user(
            &self.ids,
            conn,
            hdr,
            &self.agent,
            ("fleet interface", "jit-fleetd"),
        )
        .await
    }
}

/// Most records one `Sync` carries.
const MAX_SYNC: usize = 1024;

#[interface(name = "org.jit.Jitd.Notify1")]
impl NotifyInterface {
    async fn take(
        &self,
        limit: u32,
        wait_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<Delivery>, JitError> {
        let who = Caller::Bus(self.require_agent(conn, &hdr).await?.uid);
        let limit = limit.clamp(1, MAX_TAKE);
        let _slot = self
            .svc
            .quotas()
            .enter(&who, crate::service::Budget::Wait)?;
        let runtime = zruntime::SharedRuntime::current()
            .map_err(|e| JitError::Internal(format!("no runtime to wait on: {e}")))?;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(u64::from(wait_secs.min(MAX_TAKE_WAIT_SECS)));
        loop {
            let changed = self.svc.listen();
            // A look first (no write, so no wake-up of its own), a lease only when due.
            let (due, next, now) = blocking(&self.svc, who.clone(), move |s| {
                s.read(|c| Ok((c.deliveries_due_now(limit)?, c.next_delivery()?, c.now())))
            })
            .await?;
            if due > 0 {
                let (got, _) = blocking(&self.svc, who.clone(), move |s| {
                    s.write(|c| c.take_deliveries(limit))
                })
                .await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            if std::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            // Woken by a change (a new delivery queued), when the next retry is due, or at
            // the deadline.
            let wake = next.map_or(deadline, |at| {
                let secs = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                (std::time::Instant::now() + std::time::Duration::from_secs(secs)).min(deadline)
            });
            let _ = runtime.timeout_at(wake, changed).await;
        }
    }

    async fn done(
        &self,
        id: u64,
        ok: bool,
        permanent: bool,
        error: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), JitError> {
        let who = self.require_agent(conn, &hdr).await?;
        // Stored as it came (one line, bounded); whoever shows it escapes it.
        let mut text = crate::names::cut(error.lines().next().unwrap_or("").trim(), MAX_REPORT);
        if text.is_empty() {
            text = "failed (no reason given)".into();
        }
        let result = match (ok, permanent) {
            (true, _) => crate::outbox::Attempt::Delivered,
            (false, false) => crate::outbox::Attempt::Failed(text),
            (false, true) => crate::outbox::Attempt::Rejected(text),
        };
        blocking(&self.svc, Caller::Bus(who.uid), move |s| {
            s.write(|c| c.delivery_report(id, &result, &who))
        })
        .await
    }
}
