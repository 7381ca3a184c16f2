//! The D-Bus contract: every argument list jitd's methods take and every value they return,
//! decoded from arbitrary bytes in the D-Bus wire format as zbus decodes a message body.
//! Decoding never panics, and whatever decodes encodes back to bytes that decode to the same
//! value (nothing is read differently the second time).

use jit_proto::{
    AuditRecord, AuditVerify, GrantCheck, JitError, PamRequest, RequestInfo, RoleInfo, SessionOpen,
    StatusInfo,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use zbus::wire::serialized::{Context, Data};
use zbus::wire::{BE, LE, to_bytes};
use zbus::{DynamicType, Type};

fn round_trip<T>(ctxt: Context, bytes: &[u8])
where
    T: DeserializeOwned + Serialize + Type + DynamicType + PartialEq + Debug,
{
    let data = Data::new(bytes, ctxt);
    let Ok((value, _)) = data.deserialize::<T>() else {
        return;
    };
    let again = to_bytes(ctxt, &value).expect("a decoded value encodes");
    let (back, used) = again.deserialize::<T>().expect("an encoded value decodes");
    assert_eq!(back, value, "{} reads differently", T::SIGNATURE);
    assert_eq!(used, again.len());
}

pub fn fuzz(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    // The first byte picks the byte order and the type, so the fuzzer explores each.
    let ctxt = Context::new(if which & 0x80 == 0 { LE } else { BE }, 0);
    match which & 0x7f {
        // Arguments of User1 (jitctl's interface, any local user).
        0 => round_trip::<(String, u64, String)>(ctxt, body),
        1 => round_trip::<(u64, u64, String)>(ctxt, body),
        2 => round_trip::<(u64, String)>(ctxt, body),
        3 => round_trip::<(bool, bool)>(ctxt, body),
        4 => round_trip::<(u64, u32)>(ctxt, body),
        5 => round_trip::<(i64, String)>(ctxt, body),
        6 => round_trip::<(u64, u32, i64, String)>(ctxt, body),
        7 => round_trip::<(u64, bool)>(ctxt, body),
        8 => round_trip::<(u64,)>(ctxt, body),
        // Arguments of Pam1 (root only).
        9 => round_trip::<(String, bool)>(ctxt, body),
        10 => round_trip::<(PamRequest,)>(ctxt, body),
        11 => round_trip::<(String, u64, u32)>(ctxt, body),
        12 => round_trip::<(String, String)>(ctxt, body),
        13 => round_trip::<(SessionOpen,)>(ctxt, body),
        // What jitd answers (jitctl and pam_jit's bus library read these).
        14 => round_trip::<RequestInfo>(ctxt, body),
        15 => round_trip::<Vec<RoleInfo>>(ctxt, body),
        16 => round_trip::<Vec<RequestInfo>>(ctxt, body),
        17 => round_trip::<GrantCheck>(ctxt, body),
        18 => round_trip::<StatusInfo>(ctxt, body),
        19 => round_trip::<Vec<AuditRecord>>(ctxt, body),
        20 => round_trip::<AuditVerify>(ctxt, body),
        _ => {
            // An error's name and message, as a reply carries them.
            if let Ok(name) = std::str::from_utf8(body) {
                // A known name stands for itself; a refusal this client does not know (a
                // newer jitd's) is read as a policy refusal, still a refusal.
                if let Some(e) = JitError::from_name(name, "m".into()) {
                    assert!(
                        e.name() == name
                            || (name.starts_with("org.jit.Jitd.Error.Refused.")
                                && e.name() == "org.jit.Jitd.Error.Refused"),
                        "{name} read as {}",
                        e.name()
                    );
                    assert_eq!(e.message(), "m");
                }
                let _ = jit_proto::Refusal::from_error_name(name);
                if let Some(s) = jit_proto::State::parse(name) {
                    assert_eq!(s.as_str(), name);
                }
            }
        }
    }
}
