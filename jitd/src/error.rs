//! jitd's error kinds. Every one of them denies; the bus layer maps each to one D-Bus error.

use crate::names::TextError;
use jit_proto::JitError;
pub use jit_proto::Refusal;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Policy says no, and why (not eligible, bad reason, over the limit...).
    #[error("{1}")]
    Refused(Refusal, String),
    /// The caller may not do this.
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is not in a state that allows this.
    #[error("{0}")]
    WrongState(String),
    /// Something failed inside jitd; nothing was granted.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn refused(why: Refusal, message: impl Into<String>) -> Error {
        Error::Refused(why, message.into())
    }

    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Refused(r, _) => Some(*r),
            _ => None,
        }
    }
}

/// Free text that breaks the rules is a refusal of the request it came with.
impl From<TextError> for Error {
    fn from(e: TextError) -> Error {
        let why = match e {
            TextError::Required(_) => Refusal::ReasonRequired,
            TextError::TooLong { .. } => Refusal::ReasonLength,
            TextError::Hidden { .. } | TextError::Stacked(_) => Refusal::ReasonCharacters,
        };
        Error::Refused(why, e.to_string())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(format!("state database: {e}"))
    }
}

impl From<Error> for JitError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(r, m) => JitError::Refused(r, m),
            Error::NotAuthorized(m) => JitError::NotAuthorized(m),
            Error::NotFound(m) => JitError::NotFound(m),
            Error::InvalidArgument(m) => JitError::InvalidArgument(m),
            Error::WrongState(m) => JitError::WrongState(m),
            Error::Internal(m) => JitError::Internal(m),
        }
    }
}
