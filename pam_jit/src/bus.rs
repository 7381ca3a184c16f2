//! jitd over D-Bus, from inside sudo or sshd: the way to jitd when its PAM socket is absent
//! (jitd not running yet: the bus starts it, where activation is set up), or with
//! `socket=none`.
//!
//! The bus client is a library of its own, `pam_jit_bus.so` beside `pam_jit.so`, loaded
//! the first time it is needed and never unloaded: zbus inside pam_jit.so cost every sudo
//! its load time, used or not. The library answers the same call frames the socket does
//! ([`jit_proto::wire`]). It is loaded only if it is root's and nobody else may write it.

use crate::logic::Error;
use jit_proto::wire::{PamAnswer, PamCall};
use std::path::PathBuf;
use std::time::Duration;

/// The library's file name, in the directory pam_jit.so was loaded from.
pub const LIBRARY: &str = "pam_jit_bus.so";

pub struct BusClient {
    /// From `bus=` or the system bus socket; never from the environment.
    pub address: String,
    pub timeout: Duration,
    /// `pam_jit_bus.so`; `None`: beside this module.
    pub library: Option<PathBuf>,
}

impl BusClient {
    /// One call, answered within `timeout` plus `extra`.
    pub fn call(&self, call: &PamCall, extra: Duration) -> Result<PamAnswer, Error> {
        let limit = self.timeout + extra;
        let library = match &self.library {
            Some(p) => p.clone(),
            None => crate::ffi::own_dir()
                .map_err(Error::Unreachable)?
                .join(LIBRARY),
        };
        let mut frame = call.encode().map_err(|e| Error::Unreachable(e.message()))?;
        frame.pop();
        let reply = crate::ffi::bus_call(&library, &self.address, limit, &frame)
            .map_err(|e| Error::Unreachable(format!("the bus: {e}")))?;
        call.decode_reply(&reply).map_err(crate::channel::from_jit)
    }
}
