//! jitd's error kinds. Every one of them denies; the bus layer maps each to one D-Bus error.

use jit_proto::JitError;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Policy says no (not eligible, bad reason, over the limit...).
    #[error("{0}")]
    Refused(String),
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

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(format!("state database: {e}"))
    }
}

impl From<Error> for JitError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(m) => JitError::Refused(m),
            Error::NotAuthorized(m) => JitError::NotAuthorized(m),
            Error::NotFound(m) => JitError::NotFound(m),
            Error::InvalidArgument(m) => JitError::InvalidArgument(m),
            Error::WrongState(m) => JitError::WrongState(m),
            Error::Internal(m) => JitError::Internal(m),
        }
    }
}
