//! pam_jit's way to jitd over the system bus, in a library of its own.
//!
//! pam_jit goes to jitd's PAM socket (std only) and comes here only when nobody serves it:
//! jitd not running yet (the bus starts it, where activation is set up), or `socket=none`.
//! zbus in pam_jit.so itself cost every sudo about 0.1 ms just to load (its relocations and
//! pages; bench/RESULTS.md), used or not, so pam_jit loads this file (`pam_jit_bus.so`,
//! beside `pam_jit.so`) with `dlopen` the first time it needs it, and never unloads it.
//!
//! The one entry point takes a call and returns a reply, both as frames of the PAM socket
//! protocol ([`jit_proto::wire`]): the two ways to jitd carry the same operations and the
//! same answers. Each call connects, calls and closes inside one `zbus::block_on`, so no
//! thread and no connection outlives it, and every step is bounded by the timeout.
#![deny(unsafe_code)]

mod ffi;

use jit_proto::wire::{self, PamAnswer, PamCall};
use jit_proto::{JitError, Pam1Proxy};
use std::time::Duration;

/// The version of the entry point's contract, in its symbol name: pam_jit refuses a
/// library without the one it was built for.
pub const ENTRY: &str = "jit_pam_bus_call_v1";

/// What a failure of the bus itself tells the user (not jitd's own errors, which keep
/// their names).
fn channel(e: JitError) -> JitError {
    if e.is_start_failure() {
        return JitError::Channel(JitError::START_FAILURE.into());
    }
    if e.is_service_missing() {
        return JitError::Channel("jitd is not running".into());
    }
    match e {
        JitError::ZBus(z) => JitError::Channel(z.to_string()),
        other => other,
    }
}

/// The call on the bus: the same operation under its D-Bus method.
async fn dispatch(p: Pam1Proxy<'static>, call: PamCall) -> Result<PamAnswer, JitError> {
    Ok(match call {
        PamCall::Check { user, ssh } => PamAnswer::Check(p.check(&user, ssh).await?),
        PamCall::Roles { user } => PamAnswer::Roles(p.roles(&user).await?),
        PamCall::Request { request } => PamAnswer::Request(Box::new(p.request(&request).await?)),
        PamCall::Wait {
            user,
            id,
            timeout_secs,
        } => PamAnswer::Request(Box::new(p.wait(&user, id, timeout_secs).await?)),
        PamCall::Pending { user } => PamAnswer::Requests(p.pending(&user).await?),
        PamCall::CheckReason { role, reason } => {
            p.check_reason(&role, &reason).await?;
            PamAnswer::ReasonOk {}
        }
        PamCall::OpenSession { session } => PamAnswer::Session(p.open_session(&session).await?),
        PamCall::FleetRoles { user } => PamAnswer::Roles(p.fleet_roles(&user).await?),
        PamCall::FleetRequest { request } => {
            PamAnswer::Fleet(Box::new(p.fleet_request(&request).await?))
        }
        PamCall::FleetWait {
            user,
            id,
            timeout_secs,
        } => PamAnswer::Fleet(Box::new(p.fleet_wait(&user, &id, timeout_secs).await?)),
        PamCall::FleetPending { user } => PamAnswer::Fleets(p.fleet_pending(&user).await?),
    })
}

/// One call at `address`, answered within `limit`.
pub fn call(address: &str, limit: Duration, call: PamCall) -> Result<PamAnswer, JitError> {
    zbus::block_on(async {
        let runtime = zruntime::SharedRuntime::current()
            .map_err(|e| JitError::Channel(format!("no runtime: {e}")))?;
        let work = async {
            let conn = zbus::connection::Builder::address(address)
                .method_timeout(limit)
                .build()
                .await
                .map_err(|e| JitError::Channel(format!("cannot connect to the bus: {e}")))?;
            let proxy = jit_proto::pam1(&conn)
                .await
                .map_err(|e| channel(e.into()))?;
            let out = dispatch(proxy, call).await.map_err(channel);
            let _ = conn.close().await;
            out
        };
        match runtime.timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(JitError::Channel(format!(
                "no answer within {}s",
                limit.as_secs()
            ))),
        }
    })
}

/// A call frame in, a reply frame out (both without their NUL).
pub fn answer(address: &str, limit: Duration, frame: &[u8]) -> Vec<u8> {
    let result = PamCall::decode(frame).and_then(|c| call(address, limit, c));
    let mut reply = wire::encode_reply(&result);
    reply.pop();
    reply
}
