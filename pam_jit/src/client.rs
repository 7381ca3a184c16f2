//! jitd over D-Bus, from inside sudo or sshd.
//!
//! Each call connects, calls and closes inside one `zbus::block_on`, so no thread and no
//! connection outlives the hook, and every step is bounded by the `timeout=` argument.

use crate::logic::{Error, Jitd};
use jit_proto::{GrantCheck, JitError, Pam1Proxy, PamRequest, RequestInfo, RoleInfo, SessionOpen};
use std::future::Future;
use std::time::Duration;

pub struct BusClient {
    /// From `bus=` or the system bus socket; never from the environment.
    pub address: String,
    pub timeout: Duration,
}

fn from_jit(e: JitError) -> Error {
    if e.is_start_failure() {
        return Error::Unreachable(JitError::START_FAILURE.into());
    }
    if e.is_service_missing() {
        return Error::Unreachable("jitd is not running".into());
    }
    match e {
        JitError::ZBus(z) => Error::Unreachable(z.to_string()),
        JitError::Internal(m) => Error::Unreachable(format!("jitd failed: {m}")),
        other => Error::Refused(other.message()),
    }
}

impl BusClient {
    fn call<T, F, Fut>(&self, extra: Duration, f: F) -> Result<T, Error>
    where
        F: FnOnce(Pam1Proxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, JitError>>,
    {
        let limit = self.timeout + extra;
        zbus::block_on(async {
            let runtime = zruntime::SharedRuntime::current()
                .map_err(|e| Error::Unreachable(format!("no runtime: {e}")))?;
            let work = async {
                let conn = zbus::connection::Builder::address(self.address.as_str())
                    .method_timeout(limit)
                    .build()
                    .await
                    .map_err(|e| Error::Unreachable(format!("cannot connect to the bus: {e}")))?;
                let proxy = jit_proto::pam1(&conn)
                    .await
                    .map_err(|e| from_jit(e.into()))?;
                let out = f(proxy).await.map_err(from_jit);
                let _ = conn.close().await;
                out
            };
            match runtime.timeout(limit, work).await {
                Ok(r) => r,
                Err(_) => Err(Error::Unreachable(format!(
                    "no answer within {}s",
                    limit.as_secs()
                ))),
            }
        })
    }
}

impl Jitd for BusClient {
    fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck, Error> {
        let user = user.to_string();
        self.call(Duration::ZERO, |p| async move { p.check(&user, ssh).await })
    }

    fn roles(&self, user: &str) -> Result<Vec<RoleInfo>, Error> {
        let user = user.to_string();
        self.call(Duration::ZERO, |p| async move { p.roles(&user).await })
    }

    fn request(&self, r: &PamRequest) -> Result<RequestInfo, Error> {
        let r = r.clone();
        self.call(Duration::ZERO, |p| async move { p.request(&r).await })
    }

    fn open_session(&self, s: &SessionOpen) -> Result<u64, Error> {
        let s = s.clone();
        self.call(Duration::ZERO, |p| async move { p.open_session(&s).await })
    }

    fn check_reason(&self, role: &str, reason: &str) -> Result<(), Error> {
        let (role, reason) = (role.to_string(), reason.to_string());
        self.call(Duration::ZERO, |p| async move {
            p.check_reason(&role, &reason).await
        })
    }

    fn pending(&self, user: &str) -> Result<Vec<RequestInfo>, Error> {
        let user = user.to_string();
        self.call(Duration::ZERO, |p| async move { p.pending(&user).await })
    }

    fn wait(&self, user: &str, id: u64, secs: u32) -> Result<RequestInfo, Error> {
        let user = user.to_string();
        self.call(Duration::from_secs(u64::from(secs)), |p| async move {
            p.wait(&user, id, secs).await
        })
    }
}
