//! The only place with FFI and `unsafe` in pam_jit: the PAM entry points, the PAM handle
//! adapter, and `pam_syslog`.
#![allow(unsafe_code)]

use crate::logic::{Error, Mark, Pam};
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, RUser, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use std::ffi::{CStr, CString, c_char, c_int};

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_getenv(pamh: *const PamHandle, name: *const c_char) -> *const c_char;
}

pub struct PamJit;

pam::pam_hooks!(PamJit);

impl PamHooks for PamJit {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        crate::hook(crate::logic::Phase::Auth, &mut Handle { pamh }, &args)
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        crate::hook(crate::logic::Phase::Account, &mut Handle { pamh }, &args)
    }

    fn sm_setcred(_pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        crate::setcred(&args)
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        crate::hook(
            crate::logic::Phase::OpenSession,
            &mut Handle { pamh },
            &args,
        )
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        crate::hook(
            crate::logic::Phase::CloseSession,
            &mut Handle { pamh },
            &args,
        )
    }
}

/// The real PAM handle behind the [`Pam`] trait.
pub struct Handle<'a> {
    pamh: &'a mut PamHandle,
}

fn item_string(c: Option<&CStr>) -> String {
    c.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Handle<'_> {
    fn converse(&mut self, style: c_int, msg: &str) -> Result<Option<String>, Error> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Error::Conversation("no conversation function".into())),
            Err(e) => return Err(Error::Conversation(format!("{e:?}"))),
        };
        match conv.send(style, msg) {
            Ok(Some(answer)) => answer
                .as_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| Error::Conversation("answer is not UTF-8".into())),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::Conversation(format!("{e:?}"))),
        }
    }
}

impl Pam for Handle<'_> {
    fn user(&mut self) -> Result<String, Error> {
        match self.pamh.get_user(None) {
            Ok(u) if !u.is_empty() => Ok(u),
            Ok(_) => Err(Error::Pam("empty PAM user".into())),
            Err(e) => Err(Error::Pam(format!("cannot get the PAM user: {e:?}"))),
        }
    }

    fn ruser(&self) -> String {
        item_string(self.pamh.get_item::<RUser>().ok().flatten().map(|s| s.0))
    }

    fn service(&self) -> String {
        item_string(self.pamh.get_item::<Service>().ok().flatten().map(|s| s.0))
    }

    fn tty(&self) -> String {
        item_string(self.pamh.get_item::<Tty>().ok().flatten().map(|s| s.0))
    }

    fn rhost(&self) -> String {
        item_string(self.pamh.get_item::<RHost>().ok().flatten().map(|s| s.0))
    }

    fn env(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: `pamh` is the live handle PAM passed to this hook and `name` is a
        // NUL-terminated string; PAM returns NULL or a pointer into its own environment list,
        // which stays valid until the next change of that variable: it is copied at once.
        let value = unsafe { pam_getenv(&raw const *self.pamh, name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL, so a NUL-terminated string owned by PAM (see above).
        Some(
            unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    fn prompt(&mut self, msg: &str) -> Result<Option<String>, Error> {
        self.converse(PAM_PROMPT_ECHO_ON, msg)
    }

    fn info(&mut self, msg: &str) {
        let _ = self.converse(PAM_TEXT_INFO, msg);
    }

    fn error(&mut self, msg: &str) {
        let _ = self.converse(PAM_ERROR_MSG, msg);
    }

    fn log(&mut self, msg: &str) {
        let clean: String = msg
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let Ok(line) = CString::new(clean) else {
            return;
        };
        // SAFETY: `pamh` is the live handle PAM passed to this hook; the format is a static
        // "%s" whose only argument is a NUL-terminated string that outlives the call.
        unsafe {
            pam_syslog(
                &raw const *self.pamh,
                libc::LOG_AUTHPRIV | libc::LOG_NOTICE,
                c"%s".as_ptr(),
                line.as_ptr(),
            );
        }
    }

    fn marked(&self, m: Mark) -> bool {
        // SAFETY: a mark's key is only ever stored by `mark`, always as a `u8`.
        unsafe { self.pamh.get_data::<u8>(m.key()) }.is_ok()
    }
    fn mark(&mut self, m: Mark) {
        let _ = self.pamh.set_data(m.key(), Box::new(1u8));
    }
}
