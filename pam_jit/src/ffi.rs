//! The only place with FFI and `unsafe` in pam_jit: the PAM entry points, the PAM handle
//! adapter, and `pam_syslog`.
#![allow(unsafe_code)]

use crate::logic::{Error, Mark, Pam};
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, RUser, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use std::ffi::{CStr, CString, c_char, c_int};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;

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

/// The PAM data key of the connection to jitd's PAM socket.
const CONNECTION_KEY: &str = "pam_jit_connection";

/// A connection kept between the hooks of one transaction, and the process that opened it.
/// PAM's cleanup (at `pam_end`, or when replaced) drops it, closing the descriptor.
struct Kept {
    pid: u32,
    stream: Option<UnixStream>,
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

    fn connection(&mut self) -> Option<UnixStream> {
        // SAFETY: this key is only ever stored by `keep_connection`, always as a `Kept`.
        let kept = unsafe { self.pamh.get_data::<Kept>(CONNECTION_KEY) }.ok()?;
        // A connection inherited across fork (sshd's children) is its parent's: replies
        // would interleave. Only the process that opened it uses it.
        if kept.pid != std::process::id() {
            return None;
        }
        kept.stream.as_ref()?.try_clone().ok()
    }

    fn keep_connection(&mut self, c: Option<UnixStream>) {
        let kept = Kept {
            pid: std::process::id(),
            stream: c,
        };
        // Replacing the data runs the old value's cleanup: its descriptor is closed.
        let _ = self.pamh.set_data(CONNECTION_KEY, Box::new(kept));
    }

    fn marked(&self, m: Mark) -> bool {
        // SAFETY: a mark's key is only ever stored by `mark`, always as a `u8`.
        unsafe { self.pamh.get_data::<u8>(m.key()) }.is_ok()
    }
    fn mark(&mut self, m: Mark) {
        let _ = self.pamh.set_data(m.key(), Box::new(1u8));
    }
}

/// The uid of `name` from NSS (`getpwnam_r`), into a buffer on the stack: nothing to
/// allocate and zero on the path every sudo takes (a larger one on the heap only for an
/// entry that does not fit). `None`: no such user.
pub(crate) fn uid_of(name: &str) -> Result<Option<u32>, String> {
    let name = CString::new(name).map_err(|_| "user name holds a NUL".to_string())?;
    let mut small = [0 as c_char; 1024];
    let mut large: Vec<c_char> = Vec::new();
    loop {
        let buf: &mut [c_char] = if large.is_empty() {
            &mut small
        } else {
            &mut large
        };
        // SAFETY: an all-zero `passwd` is a valid value of this plain C struct (null
        // pointers, zero ids); getpwnam_r only writes it.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pw`, `buf` (with its true length) and `found`
        // are valid for writes for the duration of the call; the strings getpwnam_r puts
        // in `buf` are not used after it (only the uid is read).
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &raw mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(pw.pw_uid)),
            libc::ERANGE if buf.len() < 1 << 20 => large = vec![0; buf.len() * 4],
            e => return Err(std::io::Error::from_raw_os_error(e).to_string()),
        }
    }
}

/// The directory this module was loaded from (PAM's security directory, or wherever the
/// PAM file names it), as the dynamic loader says.
pub(crate) fn own_dir() -> Result<std::path::PathBuf, String> {
    let mut info = empty_dl_info();
    let me = own_dir as fn() -> Result<std::path::PathBuf, String>;
    // SAFETY: `me` is an address inside this module's text; `info` is valid for writes.
    let found = unsafe { libc::dladdr(me as *const libc::c_void, &raw mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err("cannot tell where pam_jit.so was loaded from".into());
    }
    // SAFETY: dladdr sets dli_fname to a NUL-terminated path the loader owns, valid while
    // this module is loaded; it is copied at once.
    let path = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes()));
    path.parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| format!("{} has no directory", path.display()))
}

fn empty_dl_info() -> libc::Dl_info {
    libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    }
}

type BusCall =
    unsafe extern "C" fn(*const c_char, u64, *const u8, usize, *mut *mut u8, *mut usize) -> c_int;
type BusFree = unsafe extern "C" fn(*mut u8, usize);

/// The bus library's entry points, once loaded (never unloaded: it may leave thread-local
/// destructors behind, and loading it again would cost as much as the first time).
struct BusLibrary {
    call: BusCall,
    free: BusFree,
}

static BUS: std::sync::Mutex<Option<BusLibrary>> = std::sync::Mutex::new(None);

/// Loads `path` if it is root's, a regular file, and nobody else may write it; finds its
/// entry points.
fn load_bus(path: &std::path::Path) -> Result<BusLibrary, String> {
    use std::os::unix::fs::MetadataExt as _;
    let shown = path.display();
    let m = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{shown} must be a file of root's that nobody else may write; not loading it"
        ));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{shown}: path holds a NUL"))?;
    // SAFETY: a NUL-terminated path; the library is root's (checked above), as PAM modules
    // themselves are; its initialisers are Rust's own (no code of ours runs at load).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: non-NULL, NUL-terminated (see above); copied at once.
            unsafe { CStr::from_ptr(why) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("cannot load {shown}: {why}"));
    }
    let symbol = |name: &CStr| {
        // SAFETY: `handle` is a live handle from dlopen; `name` is NUL-terminated.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        (!p.is_null())
            .then_some(p)
            .ok_or_else(|| format!("{shown} has no {}", name.to_string_lossy()))
    };
    let call = symbol(c"jit_pam_bus_call_v1")?;
    let free = symbol(c"jit_pam_bus_free_v1")?;
    // SAFETY: the symbols are the library's functions of exactly these signatures (its
    // contract, versioned in their names).
    Ok(unsafe {
        BusLibrary {
            call: std::mem::transmute::<*mut libc::c_void, BusCall>(call),
            free: std::mem::transmute::<*mut libc::c_void, BusFree>(free),
        }
    })
}

/// One call frame through the bus library at `path` (loaded on first use), to the bus at
/// `address`, within `limit`; the reply frame.
pub(crate) fn bus_call(
    path: &std::path::Path,
    address: &str,
    limit: std::time::Duration,
    frame: &[u8],
) -> Result<Vec<u8>, String> {
    let mut loaded = BUS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if loaded.is_none() {
        *loaded = Some(load_bus(path)?);
    }
    let Some(lib) = loaded.as_ref() else {
        return Err("the bus library is not loaded".into());
    };
    let address = CString::new(address).map_err(|_| "bus address holds a NUL".to_string())?;
    let mut reply: *mut u8 = std::ptr::null_mut();
    let mut reply_len: usize = 0;
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    // SAFETY: the library's entry point (see load_bus): a NUL-terminated address, `frame`
    // with its true length, and two out-pointers valid for writes.
    let rc = unsafe {
        (lib.call)(
            address.as_ptr(),
            ms,
            frame.as_ptr(),
            frame.len(),
            &raw mut reply,
            &raw mut reply_len,
        )
    };
    if rc != 0 || reply.is_null() {
        return Err("the bus library failed".into());
    }
    // SAFETY: on success the library wrote a buffer of `reply_len` bytes at `reply`, ours
    // to read until it is given back to the library's free just below.
    let out = unsafe { std::slice::from_raw_parts(reply, reply_len) }.to_vec();
    // SAFETY: exactly what the call returned, given back once.
    unsafe { (lib.free)(reply, reply_len) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names_when_looked_up_then_uid_or_none() {
        // root is uid 0 on every host; the other name cannot be a user name anywhere.
        assert_eq!(uid_of("root"), Ok(Some(0)));
        assert_eq!(uid_of("no such user!"), Ok(None));
        assert!(uid_of("nul\0inside").is_err());
    }

    #[test]
    fn given_a_bus_library_others_may_write_or_none_when_loading_then_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pam-jit-ffi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("pam_jit_bus.so");
        std::fs::write(&lib, b"not a library").unwrap();
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load_bus(&lib).err().unwrap();
        assert!(e.contains("nobody else may write"), "{e}");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_bus(&lib).err().unwrap();
        assert!(e.contains("cannot load"), "{e}");
        let e = load_bus(&dir.join("absent.so")).err().unwrap();
        assert!(e.contains("absent.so"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
