//! The daemon's request error: a wire [`ErrorKind`] plus a message that says
//! what happened and what to do next.

use sshmcp_proto::{ErrorBody, ErrorKind};

/// A request failed. Built with the constructors below so every site picks a
/// kind; converted to an [`ErrorBody`] on the way out.
#[derive(Debug)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RequestError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn local_io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LocalIo, message)
    }

    pub fn remote_io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RemoteIo, message)
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

impl From<RequestError> for ErrorBody {
    fn from(e: RequestError) -> Self {
        ErrorBody::new(e.kind, e.message)
    }
}
