//! The PAM socket: pam_jit's short path to jitd, beside the bus.
//!
//! jitd serves the [`PamCall`] operations (the same ones as `org.jit.Jitd.Pam1`) on a
//! root-only socket ([`DEFAULT_SOCKET`]); the caller's identity is the socket's peer
//! credentials (`SO_PEERCRED`), and only uid 0 is served. The framing is Varlink's: each
//! message is one JSON object followed by a NUL byte. A call is
//! `{"method":"org.jit.Jitd.Pam1.Check","parameters":{"user":"alice","ssh":false}}`, its reply
//! `{"parameters":{"check":{...}}}` or `{"error":"org.jit.Jitd.Error.NotFound",
//! "parameters":{"message":"..."}}`. One call at a time on a connection, each answered before
//! the next is read. Everything here is std and serde only: pam_jit links no bus code for it.

use crate::{FleetAnswer, GrantCheck, JitError, PamRequest, RequestInfo, RoleInfo, SessionOpen};
use serde::{Deserialize, Serialize};

/// Where jitd serves the PAM operations, and where pam_jit looks first.
pub const DEFAULT_SOCKET: &str = "/run/jitd/pam.socket";
/// The largest call jitd reads (a request with a long reason is a few KiB).
pub const MAX_CALL: usize = 64 * 1024;
/// The largest reply pam_jit reads (the roles of a large policy).
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A PAM operation, as on the bus (`org.jit.Jitd.Pam1`, whose methods document them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "parameters", deny_unknown_fields)]
pub enum PamCall {
    #[serde(rename = "org.jit.Jitd.Pam1.Check")]
    Check { user: String, ssh: bool },
    #[serde(rename = "org.jit.Jitd.Pam1.Roles")]
    Roles { user: String },
    #[serde(rename = "org.jit.Jitd.Pam1.Request")]
    Request { request: PamRequest },
    #[serde(rename = "org.jit.Jitd.Pam1.Wait")]
    Wait {
        user: String,
        id: u64,
        timeout_secs: u32,
    },
    #[serde(rename = "org.jit.Jitd.Pam1.Pending")]
    Pending { user: String },
    #[serde(rename = "org.jit.Jitd.Pam1.CheckReason")]
    CheckReason { role: String, reason: String },
    #[serde(rename = "org.jit.Jitd.Pam1.OpenSession")]
    OpenSession { session: SessionOpen },
    #[serde(rename = "org.jit.Jitd.Pam1.FleetRoles")]
    FleetRoles { user: String },
    #[serde(rename = "org.jit.Jitd.Pam1.FleetRequest")]
    FleetRequest { request: PamRequest },
    #[serde(rename = "org.jit.Jitd.Pam1.FleetWait")]
    FleetWait {
        user: String,
        id: String,
        timeout_secs: u32,
    },
    #[serde(rename = "org.jit.Jitd.Pam1.FleetPending")]
    FleetPending { user: String },
}

/// What a [`PamCall`] answers, one kind per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PamAnswer {
    Check(GrantCheck),
    Roles(Vec<RoleInfo>),
    /// A request: submitted, or as it stands after a wait.
    Request(Box<RequestInfo>),
    /// Pending requests.
    Requests(Vec<RequestInfo>),
    /// The reason would do.
    ReasonOk {},
    /// The grant a session was bound to (0: none could have authorised it).
    Session(u64),
    /// A fleet request made at the prompt: submitted, or as it stands after a wait.
    Fleet(Box<FleetAnswer>),
    /// Fleet requests waiting.
    Fleets(Vec<FleetAnswer>),
}

impl PamCall {
    /// The method name, for logs.
    pub fn method(&self) -> &'static str {
        match self {
            PamCall::Check { .. } => "Check",
            PamCall::Roles { .. } => "Roles",
            PamCall::Request { .. } => "Request",
            PamCall::Wait { .. } => "Wait",
            PamCall::Pending { .. } => "Pending",
            PamCall::CheckReason { .. } => "CheckReason",
            PamCall::OpenSession { .. } => "OpenSession",
            PamCall::FleetRoles { .. } => "FleetRoles",
            PamCall::FleetRequest { .. } => "FleetRequest",
            PamCall::FleetWait { .. } => "FleetWait",
            PamCall::FleetPending { .. } => "FleetPending",
        }
    }

    /// Whether `a` is the kind of answer this call gets.
    pub fn answered_by(&self, a: &PamAnswer) -> bool {
        matches!(
            (self, a),
            (PamCall::Check { .. }, PamAnswer::Check(_))
                | (
                    PamCall::Roles { .. } | PamCall::FleetRoles { .. },
                    PamAnswer::Roles(_)
                )
                | (
                    PamCall::FleetRequest { .. } | PamCall::FleetWait { .. },
                    PamAnswer::Fleet(_)
                )
                | (PamCall::FleetPending { .. }, PamAnswer::Fleets(_))
                | (
                    PamCall::Request { .. } | PamCall::Wait { .. },
                    PamAnswer::Request(_)
                )
                | (PamCall::Pending { .. }, PamAnswer::Requests(_))
                | (PamCall::CheckReason { .. }, PamAnswer::ReasonOk {})
                | (PamCall::OpenSession { .. }, PamAnswer::Session(_))
        )
    }

    /// The call as one frame.
    pub fn encode(&self) -> Result<Vec<u8>, JitError> {
        frame(self)
    }

    /// A call read from a frame (without its NUL); anything else is refused.
    pub fn decode(frame: &[u8]) -> Result<PamCall, JitError> {
        serde_json::from_slice(frame)
            .map_err(|e| JitError::InvalidArgument(format!("malformed call: {e}")))
    }

    /// The answer to this call from a reply frame (without its NUL): the answer, the error
    /// jitd named, or [`JitError::Channel`] for anything that makes no sense.
    pub fn decode_reply(&self, frame: &[u8]) -> Result<PamAnswer, JitError> {
        let malformed =
            |e: &dyn std::fmt::Display| JitError::Channel(format!("malformed reply: {e}"));
        let reply: Reply = serde_json::from_slice(frame).map_err(|e| malformed(&e))?;
        if let Some(name) = reply.error {
            let failure: Failure =
                serde_json::from_value(reply.parameters).map_err(|e| malformed(&e))?;
            return Err(JitError::from_name(&name, failure.message)
                .unwrap_or_else(|| malformed(&format!("unknown error {name}"))));
        }
        let answer: PamAnswer =
            serde_json::from_value(reply.parameters).map_err(|e| malformed(&e))?;
        if !self.answered_by(&answer) {
            return Err(malformed(&format!("not an answer to {}", self.method())));
        }
        Ok(answer)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    parameters: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    message: String,
}

fn frame(value: &impl Serialize) -> Result<Vec<u8>, JitError> {
    let mut out =
        serde_json::to_vec(value).map_err(|e| JitError::Internal(format!("encoding: {e}")))?;
    out.push(0);
    Ok(out)
}

/// A reply frame for `result`. A failure of the channel itself travels as one
/// (`org.jit.Jitd.Error.Channel`: pam_jit's bus library reports the bus's failures so);
/// jitd never sends it.
pub fn encode_reply(result: &Result<PamAnswer, JitError>) -> Vec<u8> {
    let reply = match result {
        Ok(answer) => serde_json::to_value(answer).map(|parameters| Reply {
            error: None,
            parameters,
        }),
        Err(e) => {
            let name = match e {
                #[cfg(feature = "dbus")]
                JitError::ZBus(_) => crate::error::CHANNEL,
                other => other.name(),
            };
            serde_json::to_value(Failure {
                message: e.message(),
            })
            .map(|parameters| Reply {
                error: Some(name.to_string()),
                parameters,
            })
        }
    };
    // Serialising these types cannot fail; if it ever did, the peer gets a frame it refuses
    // as malformed (an error on its side), never an answer.
    reply
        .and_then(|r| serde_json::to_vec(&r))
        .map(|mut v| {
            v.push(0);
            v
        })
        .unwrap_or_else(|_| b"{}\0".to_vec())
}

/// Collects bytes into NUL-terminated frames of at most `max` bytes.
#[derive(Debug)]
pub struct Frames {
    buf: Vec<u8>,
    max: usize,
}

impl Frames {
    pub fn new(max: usize) -> Frames {
        Frames {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds `data`; returns the first complete frame (without its NUL), keeping what follows
    /// it. A frame longer than `max` is an error, and so is one that is not valid UTF-8
    /// JSON (left to the decoder).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, JitError> {
        self.buf.extend_from_slice(data);
        match self.buf.iter().position(|b| *b == 0) {
            // A frame over the limit is refused even when its end came in the same read
            // (found by the wire fuzz target's review: only unfinished frames were bounded).
            Some(end) if end > self.max => Err(JitError::Channel(format!(
                "message longer than {} bytes",
                self.max
            ))),
            Some(end) => {
                let rest = self.buf.split_off(end + 1);
                let mut frame = std::mem::replace(&mut self.buf, rest);
                frame.pop();
                Ok(Some(frame))
            }
            None if self.buf.len() > self.max => Err(JitError::Channel(format!(
                "message longer than {} bytes",
                self.max
            ))),
            None => Ok(None),
        }
    }

    /// Whether bytes of an unfinished frame are waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_frame_over_the_limit_in_one_read_when_fed_then_refused() {
        let mut f = Frames::new(8);
        let mut data = vec![b'a'; 9];
        data.push(0);
        assert!(f.feed(&data).is_err());
        let mut f = Frames::new(8);
        let mut data = vec![b'a'; 8];
        data.push(0);
        assert_eq!(f.feed(&data).unwrap(), Some(vec![b'a'; 8]));
    }
    use crate::{PamOrigin, Refusal};

    fn calls() -> Vec<PamCall> {
        let origin = PamOrigin {
            service: "sudo".into(),
            tty: "/dev/pts/1".into(),
            rhost: String::new(),
        };
        vec![
            PamCall::Check {
                user: "alice".into(),
                ssh: true,
            },
            PamCall::Roles {
                user: "alice".into(),
            },
            PamCall::Request {
                request: PamRequest {
                    user: "alice".into(),
                    role: "web".into(),
                    duration_secs: 900,
                    reason: "OPS-1 \"quoted\" \u{e9}".into(),
                    origin: origin.clone(),
                },
            },
            PamCall::Wait {
                user: "alice".into(),
                id: 7,
                timeout_secs: 1,
            },
            PamCall::Pending {
                user: "alice".into(),
            },
            PamCall::CheckReason {
                role: "web".into(),
                reason: "x".into(),
            },
            PamCall::OpenSession {
                session: SessionOpen {
                    user: "alice".into(),
                    target: "root".into(),
                    ssh: false,
                    pid: 42,
                    origin,
                },
            },
        ]
    }

    fn strip(mut f: Vec<u8>) -> Vec<u8> {
        assert_eq!(f.pop(), Some(0), "a frame ends in NUL");
        assert!(!f.contains(&0), "JSON holds no NUL");
        f
    }

    #[test]
    fn given_every_call_when_encoded_then_it_decodes_to_itself_with_varlink_names() {
        for c in calls() {
            let f = strip(c.encode().unwrap());
            let text = String::from_utf8(f.clone()).unwrap();
            assert!(
                text.starts_with(&format!(
                    "{{\"method\":\"org.jit.Jitd.Pam1.{}\",\"parameters\":{{",
                    c.method()
                )),
                "{text}"
            );
            assert_eq!(PamCall::decode(&f).unwrap(), c);
        }
    }

    #[test]
    fn given_malformed_or_unknown_calls_when_decoded_then_refused() {
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            b"{\"method\":\"org.jit.Jitd.Pam1.Nope\",\"parameters\":{}}",
            b"{\"method\":\"org.jit.Jitd.Pam1.Check\",\"parameters\":{\"user\":\"a\"}}",
            b"{\"method\":\"org.jit.Jitd.Pam1.Check\",\"parameters\":{\"user\":\"a\",\"ssh\":false,\"uid\":0}}",
            b"{\"method\":\"org.jit.Jitd.Pam1.Wait\",\"parameters\":{\"user\":\"a\",\"id\":-1,\"timeout_secs\":1}}",
            b"\xff\xfe",
        ] {
            let e = PamCall::decode(bad).unwrap_err();
            assert!(matches!(e, JitError::InvalidArgument(_)), "{e:?}");
        }
    }

    #[test]
    fn given_answers_and_errors_when_replied_then_the_caller_gets_them_back() {
        let check = PamCall::Check {
            user: "alice".into(),
            ssh: false,
        };
        let answer = PamAnswer::Check(GrantCheck {
            active: true,
            request_id: 3,
            role: "web".into(),
            not_after: 10,
        });
        let f = strip(encode_reply(&Ok(answer.clone())));
        assert_eq!(check.decode_reply(&f).unwrap(), answer);

        let refused = JitError::Refused(Refusal::MaxActive, "too many".into());
        let f = strip(encode_reply(&Err(refused)));
        match check.decode_reply(&f) {
            Err(JitError::Refused(Refusal::MaxActive, m)) => assert_eq!(m, "too many"),
            other => panic!("{other:?}"),
        }
        let f = strip(encode_reply(&Err(JitError::NotAuthorized(
            "root only".into(),
        ))));
        assert!(matches!(
            check.decode_reply(&f),
            Err(JitError::NotAuthorized(m)) if m == "root only"
        ));
        let f = strip(encode_reply(&Err(JitError::Channel(
            "jitd is not running".into(),
        ))));
        assert!(matches!(
            check.decode_reply(&f),
            Err(JitError::Channel(m)) if m == "jitd is not running"
        ));
    }

    #[test]
    fn given_a_reply_for_another_call_or_nonsense_when_decoded_then_channel_error() {
        let check = PamCall::Check {
            user: "alice".into(),
            ssh: false,
        };
        let other = strip(encode_reply(&Ok(PamAnswer::Session(4))));
        for bad in [
            other.as_slice(),
            b"{}",
            b"{\"parameters\":{\"check\":{}}}",
            b"{\"error\":\"org.example.Nope\",\"parameters\":{\"message\":\"x\"}}",
            b"{\"error\":\"org.jit.Jitd.Error.NotFound\",\"parameters\":{}}",
            b"{\"parameters\":{\"session\":1},\"extra\":1}",
        ] {
            let e = check.decode_reply(bad).unwrap_err();
            assert!(matches!(e, JitError::Channel(_)), "{e:?}");
        }
    }

    #[test]
    fn given_bytes_in_pieces_when_fed_then_frames_come_out_whole_and_bounded() {
        let mut f = Frames::new(8);
        assert_eq!(f.feed(b"ab").unwrap(), None);
        assert_eq!(f.feed(b"c\0de").unwrap(), Some(b"abc".to_vec()));
        assert!(!f.is_empty());
        assert_eq!(f.feed(b"\0").unwrap(), Some(b"de".to_vec()));
        assert!(f.is_empty());
        assert!(f.feed(b"123456789").is_err());
    }
}
