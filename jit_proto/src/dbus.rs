//! The D-Bus side of the contract: [`JitError`] as D-Bus errors, and the proxies jitctl and
//! pam_jit's bus fallback call.

use crate::JitError;
use crate::{
    AuditRecord, AuditVerify, Delivery, FleetAnswer, GrantCheck, PamRequest, RequestInfo, RoleInfo,
    SessionOpen, StatusInfo,
};
use zbus::proxy;

impl zbus::DBusError for JitError {
    fn name(&self) -> zbus::names::ErrorName<'_> {
        zbus::names::ErrorName::from_static_str_unchecked(JitError::name(self))
    }

    fn description(&self) -> Option<&str> {
        match self {
            JitError::ZBus(e) => e.description(),
            other => other.text(),
        }
    }

    fn create_reply(&self, call: &zbus::message::Header<'_>) -> zbus::Result<zbus::Message> {
        let text = match self {
            JitError::ZBus(e) => e
                .description()
                .map_or_else(|| e.to_string(), str::to_string),
            other => other.description().unwrap_or_default().to_string(),
        };
        zbus::Message::error(call, self.name()).build(&(text,))
    }
}

impl From<zbus::Error> for JitError {
    fn from(value: zbus::Error) -> JitError {
        let known = match &value {
            zbus::Error::MethodError(name, desc, _) => {
                JitError::from_name(name.as_str(), desc.clone().unwrap_or_default())
            }
            _ => None,
        };
        known.unwrap_or(JitError::ZBus(value))
    }
}

impl From<zbus::fdo::Error> for JitError {
    fn from(value: zbus::fdo::Error) -> JitError {
        JitError::ZBus(value.into())
    }
}

impl JitError {
    /// True when jitd is not on the bus at all.
    pub fn is_service_missing(&self) -> bool {
        match self {
            JitError::ZBus(zbus::Error::MethodError(name, _, _)) => matches!(
                name.as_str(),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
            ),
            JitError::ZBus(zbus::Error::FDO(e)) => matches!(
                **e,
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
            ),
            _ => false,
        }
    }

    /// True when the bus tried to start jitd (activation) and it did not come up: a bad
    /// policy, another jitd, a broken install. jitd's log says why.
    pub fn is_start_failure(&self) -> bool {
        let name = match self {
            JitError::ZBus(zbus::Error::MethodError(name, _, _)) => name.as_str().to_string(),
            JitError::ZBus(zbus::Error::FDO(e)) => zbus::DBusError::name(&**e).to_string(),
            _ => return false,
        };
        name.starts_with("org.freedesktop.DBus.Error.Spawn.")
    }
}

/// The user-facing interface. Identity always comes from the bus, never from arguments.
#[proxy(
    interface = "org.jit.Jitd.User1",
    default_service = "org.jit.Jitd",
    default_path = "/org/jit/Jitd"
)]
pub trait User1 {
    fn roles(&self) -> Result<Vec<RoleInfo>, JitError>;
    fn request(
        &self,
        role: &str,
        duration_secs: u64,
        reason: &str,
    ) -> Result<RequestInfo, JitError>;
    /// A request for a role that grants an account of its own, with the SSH public keys
    /// (`authorized_keys` lines, no options) the account is made with.
    fn request_with_keys(
        &self,
        role: &str,
        duration_secs: u64,
        reason: &str,
        ssh_keys: &[String],
    ) -> Result<RequestInfo, JitError>;
    /// An emergency self-grant of a role that allows it; lands in the review queue.
    fn break_glass(
        &self,
        role: &str,
        duration_secs: u64,
        reason: &str,
    ) -> Result<RequestInfo, JitError>;
    /// Asks for `by_secs` more on the caller's active grant `id`, under the role's approval
    /// rule. Returns the extension request (applied at once for self-service roles).
    fn extend(&self, id: u64, by_secs: u64, reason: &str) -> Result<RequestInfo, JitError>;
    /// Break-glass grants the caller may review; `all`: acknowledged ones too.
    fn review(&self, all: bool) -> Result<Vec<RequestInfo>, JitError>;
    /// Acknowledges a break-glass grant after the fact.
    fn acknowledge(&self, id: u64, comment: &str) -> Result<RequestInfo, JitError>;
    fn list(&self, pending_only: bool, all: bool) -> Result<Vec<RequestInfo>, JitError>;
    fn show(&self, id: u64) -> Result<RequestInfo, JitError>;
    fn approve(&self, id: u64, comment: &str) -> Result<RequestInfo, JitError>;
    fn fleet_request(
        &self,
        role: &str,
        hosts: &[String],
        duration_secs: u64,
        reason: &str,
    ) -> Result<String, JitError>;
    fn fleet_list(&self) -> Result<String, JitError>;
    /// How this host's link to the fleet stands (JSON of [`crate::fleet::FleetContact`]);
    /// empty outside a fleet.
    fn fleet_status(&self) -> Result<String, JitError>;
    fn fleet_show(&self, id: &str) -> Result<String, JitError>;
    fn fleet_approve(&self, id: &str, approval: &str) -> Result<(), JitError>;
    fn fleet_end(&self, id: &str, reason: &str) -> Result<(), JitError>;
    fn deny(&self, id: u64, reason: &str) -> Result<RequestInfo, JitError>;
    fn revoke(&self, id: u64, reason: &str) -> Result<RequestInfo, JitError>;
    /// id 0: the caller's only active grant.
    fn release(&self, id: u64) -> Result<RequestInfo, JitError>;
    fn cancel(&self, id: u64) -> Result<RequestInfo, JitError>;
    /// Blocks up to `timeout_secs` while the request is pending; returns it as it stands then.
    fn wait(&self, id: u64, timeout_secs: u32) -> Result<RequestInfo, JitError>;
    fn grants(&self) -> Result<Vec<RequestInfo>, JitError>;
    /// Subscribes the calling connection to [`crate::EVENT_SIGNAL`]: from now on, until it leaves
    /// the bus, jitd sends it (and only it: the signal has a destination) every event on a
    /// request the caller may see when it happens. The argument is an event document
    /// ([`crate::EVENT_SCHEMA`], JSON).
    fn watch(&self) -> Result<(), JitError>;
    #[zbus(signal)]
    fn event(&self, event: String) -> zbus::Result<()>;
    fn status(&self) -> Result<StatusInfo, JitError>;
    /// The whole selection in one reply; refused when it would not fit one: use
    /// [`User1Proxy::audit_page`].
    fn audit(&self, since: i64, user: &str) -> Result<Vec<AuditRecord>, JitError>;
    /// Records after `after_seq`, at most `limit` (up to 10,000), from `since`, by or about
    /// `user` (empty: everyone the caller may see): one page, in order.
    fn audit_page(
        &self,
        after_seq: u64,
        limit: u32,
        since: i64,
        user: &str,
    ) -> Result<Vec<AuditRecord>, JitError>;
    fn audit_verify(&self) -> Result<AuditVerify, JitError>;
    /// The trail checked with the verification key `jitctl audit setup-keys` printed
    /// (root only): every seal's MAC, and a seal for every epoch that has ended.
    fn audit_verify_key(&self, key: &str) -> Result<AuditVerify, JitError>;
    /// Sets up forward-secure sealing (root only): a seal every `interval_secs`. Returns the
    /// verification key, which jitd does not keep. `force`: set up again with a new key.
    fn seal_setup(&self, interval_secs: u64, force: bool) -> Result<String, JitError>;
    /// Removes the records before `before_seq` (root), if the trail verifies; the chain goes
    /// on from there. Export them first (`jitctl audit --json`).
    fn audit_prune(&self, before_seq: u64) -> Result<String, JitError>;
}

/// The PAM interface: pam_jit acts on behalf of the PAM user. uid 0 only.
#[proxy(
    interface = "org.jit.Jitd.Pam1",
    default_service = "org.jit.Jitd",
    default_path = "/org/jit/Jitd"
)]
pub trait Pam1 {
    /// `ssh`: only grants whose role admits ssh logins count.
    fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck, JitError>;
    fn roles(&self, user: &str) -> Result<Vec<RoleInfo>, JitError>;
    fn request(&self, request: &PamRequest) -> Result<RequestInfo, JitError>;
    fn wait(&self, user: &str, id: u64, timeout_secs: u32) -> Result<RequestInfo, JitError>;
    /// The user's pending grant requests, oldest first: a login can wait for one it asked
    /// for earlier instead of asking again.
    fn pending(&self, user: &str) -> Result<Vec<RequestInfo>, JitError>;
    /// Whether `reason` would do for `role` (required, length, characters, pattern), so the
    /// prompt can ask again at once; the request is checked in full when it is submitted.
    fn check_reason(&self, role: &str, reason: &str) -> Result<(), JitError>;
    /// Registers a session (sudo's or sshd's process `pid`) under the grant that could have
    /// authorised it and ends soonest (see [`SessionOpen`]), so it is ended no later than
    /// that grant. Returns the grant id, 0 when the user holds none that could have.
    /// Sessions that have ended are forgotten by jitd on its own: there is no close call.
    fn open_session(&self, session: &SessionOpen) -> Result<u64, JitError>;
    /// The fleet roles `user` may request for this host (empty when it is in no fleet).
    fn fleet_roles(&self, user: &str) -> Result<Vec<RoleInfo>, JitError>;
    /// A fleet request for this host alone (`request.role` a fleet role), signed and queued
    /// for the fleet agent as `jitctl request ROLE --hosts THIS-HOST` makes it.
    fn fleet_request(&self, request: &PamRequest) -> Result<FleetAnswer, JitError>;
    /// Waits up to `timeout_secs` (bounded as `wait` is) while fleet request `id` of `user` is
    /// pending on this host, and answers how it stands.
    fn fleet_wait(&self, user: &str, id: &str, timeout_secs: u32) -> Result<FleetAnswer, JitError>;
    /// `user`'s fleet requests made on this host for it that still wait for approval,
    /// oldest first: a prompt can wait for one it asked for earlier instead of asking again.
    fn fleet_pending(&self, user: &str) -> Result<Vec<FleetAnswer>, JitError>;
}

/// The notifier agent's interface: callable by its user only.
#[proxy(
    interface = "org.jit.Jitd.Notify1",
    default_service = "org.jit.Jitd",
    default_path = "/org/jit/Jitd"
)]
pub trait Notify1 {
    /// Deliveries due now, at most `limit`; waits up to `wait_secs` (at most 60) for one
    /// when none is. Each is leased to the caller for its timeout and a minute more: one
    /// not reported by then is due again.
    fn take(&self, limit: u32, wait_secs: u32) -> Result<Vec<Delivery>, JitError>;
    /// How delivery `id` went: `ok`, or why not (`error`, one line); `permanent`: no retry
    /// can change it (given up at once).
    fn done(&self, id: u64, ok: bool, permanent: bool, error: &str) -> Result<(), JitError>;
}

/// A notifier-interface proxy that caches no properties.
pub async fn notify1(conn: &zbus::Connection) -> zbus::Result<Notify1Proxy<'static>> {
    Notify1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// A PAM-interface proxy that caches no properties (so building it costs no bus round trip).
pub async fn pam1(conn: &zbus::Connection) -> zbus::Result<Pam1Proxy<'static>> {
    Pam1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// A user-interface proxy that caches no properties.
pub async fn user1(conn: &zbus::Connection) -> zbus::Result<User1Proxy<'static>> {
    User1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// The fleet agent's interface (only the agent's uid may call it).
#[proxy(
    interface = "org.jit.Jitd.Fleet1",
    default_service = "org.jit.Jitd",
    default_path = "/org/jit/Jitd"
)]
pub trait Fleet1 {
    /// A fleet request (JSON of a signed request) with the approvals and ends seen for it;
    /// jitd verifies them itself and answers what it did (JSON acknowledgement).
    fn offer(
        &self,
        request: &str,
        approvals: &[String],
        ends: &[String],
    ) -> Result<String, JitError>;
    /// What the agent saw in etcd at `revision` (key, value; value "" for a deletion);
    /// `reset` when it listed everything again. True: jitd needs a full listing (it
    /// restarted).
    fn sync(
        &self,
        revision: i64,
        reset: bool,
        changes: &[(String, String)],
    ) -> Result<bool, JitError>;
    /// Records made on this host for the agent to put into etcd, then keys of this host's
    /// that no host needs any more, to delete (value "").
    fn take(&self, wait_secs: u32) -> Result<Vec<(String, String)>, JitError>;
    /// Records the agent has put into (or deleted from) etcd.
    fn published(&self, done: &[(String, String)]) -> Result<(), JitError>;
}

/// A fleet-interface proxy that caches no properties.
pub async fn fleet1(conn: &zbus::Connection) -> zbus::Result<Fleet1Proxy<'static>> {
    Fleet1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}
