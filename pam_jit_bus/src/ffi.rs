//! The C entry points pam_jit finds with `dlsym`. Nothing crosses them but bytes: a call
//! frame in, a reply frame out (allocated here, freed here), and no panic.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::time::Duration;

/// Answers the call frame `call` (`call_len` bytes) through the bus at `address`, within
/// `timeout_ms`, into a reply frame that `*reply`/`*reply_len` then point to (free it with
/// [`jit_pam_bus_free_v1`]). Returns 0, or -1 (nothing allocated) when the arguments
/// cannot be used or the call panicked.
///
/// # Safety
///
/// `address` is a NUL-terminated string; `call` points to `call_len` readable bytes;
/// `reply` and `reply_len` are valid for writes. Each only for the call's duration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jit_pam_bus_call_v1(
    address: *const c_char,
    timeout_ms: u64,
    call: *const u8,
    call_len: usize,
    reply: *mut *mut u8,
    reply_len: *mut usize,
) -> c_int {
    if address.is_null() || call.is_null() || reply.is_null() || reply_len.is_null() {
        return -1;
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller promises.
    let Ok(address) = unsafe { CStr::from_ptr(address) }.to_str() else {
        return -1;
    };
    // SAFETY: `call_len` readable bytes at `call`, as the caller promises.
    let frame = unsafe { std::slice::from_raw_parts(call, call_len) };
    let answered = std::panic::catch_unwind(|| {
        crate::answer(address, Duration::from_millis(timeout_ms), frame)
    });
    let Ok(bytes) = answered else {
        return -1;
    };
    let bytes = bytes.into_boxed_slice();
    let len = bytes.len();
    // SAFETY: both valid for writes, as the caller promises; the box is handed over and
    // comes back whole to `jit_pam_bus_free_v1` with this length.
    unsafe {
        *reply_len = len;
        *reply = Box::into_raw(bytes).cast::<u8>();
    }
    0
}

/// Frees a reply [`jit_pam_bus_call_v1`] returned.
///
/// # Safety
///
/// `reply` and `reply_len` are exactly what one call of `jit_pam_bus_call_v1` wrote, and
/// this is called once for them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jit_pam_bus_free_v1(reply: *mut u8, reply_len: usize) {
    if reply.is_null() {
        return;
    }
    // SAFETY: the pointer and length of a boxed slice from `jit_pam_bus_call_v1`, freed
    // once (the caller's promise).
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(reply, reply_len)) });
}
