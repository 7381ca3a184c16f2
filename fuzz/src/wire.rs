//! The PAM socket's frames: what jitd reads from pam_jit (and pam_jit from jitd). Only root
//! may connect, but a frame is still parsed strictly: decoding never panics, what decodes
//! encodes back to the same call, and framing never yields more than it was given.

use jit_proto::wire::{Frames, MAX_CALL, PamCall, encode_reply};

pub fn fuzz(data: &[u8]) {
    // A frame as jitd reads one.
    if let Ok(call) = PamCall::decode(data) {
        let again = call.encode().expect("a decoded call encodes");
        assert_eq!(again.last(), Some(&0), "a frame ends with its NUL");
        let back = PamCall::decode(&again[..again.len() - 1]).expect("an encoded call decodes");
        assert_eq!(back, call);
    }
    // The same bytes as a reply to each call.
    for call in calls() {
        if let Ok(answer) = call.decode_reply(data) {
            assert!(call.answered_by(&answer), "{call:?} answered by {answer:?}");
            let frame = encode_reply(&Ok(answer.clone()));
            let back = call
                .decode_reply(&frame[..frame.len() - 1])
                .expect("an encoded answer decodes");
            assert_eq!(back, answer);
        }
    }
    // Framing: the bytes in chunks (split where the first byte says); every frame is a
    // NUL-free piece of the input, and the total never grows.
    let split = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut frames = Frames::new(MAX_CALL);
    let mut out = 0usize;
    for chunk in data.chunks(split) {
        match frames.feed(chunk) {
            Ok(Some(f)) => {
                assert!(
                    !f.contains(&0) && f.len() <= MAX_CALL,
                    "a frame over the limit"
                );
                out += f.len() + 1;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    assert!(out <= data.len());
}

fn calls() -> Vec<PamCall> {
    vec![
        PamCall::Check {
            user: "alice".into(),
            ssh: true,
        },
        PamCall::Roles {
            user: "alice".into(),
        },
        PamCall::Wait {
            user: "alice".into(),
            id: 1,
            timeout_secs: 1,
        },
        PamCall::Pending {
            user: "alice".into(),
        },
        PamCall::CheckReason {
            role: "db".into(),
            reason: "x".into(),
        },
        PamCall::Request {
            request: jit_proto::PamRequest {
                user: "alice".into(),
                role: "db".into(),
                duration_secs: 60,
                reason: "x".into(),
                origin: jit_proto::PamOrigin::default(),
            },
        },
        PamCall::OpenSession {
            session: jit_proto::SessionOpen {
                user: "alice".into(),
                target: "root".into(),
                ssh: false,
                pid: 42,
                origin: jit_proto::PamOrigin::default(),
            },
        },
    ]
}
