//! The daemon's request error: a wire [`ErrorKind`] plus a message that says
//! what happened and what to do next.

use sshmcp_proto::{ErrorBody, ErrorKind, Needs};

/// A request failed. Built with the constructors below so every site picks a
/// kind; converted to an [`ErrorBody`] on the way out.
#[derive(Debug)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
    /// What a human could supply for a retry to succeed.
    pub needs: Option<Needs>,
}

impl RequestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RequestError {
            kind,
            message: message.into(),
            needs: None,
        }
    }

    pub fn with_needs(mut self, needs: Option<Needs>) -> Self {
        self.needs = needs;
        self
    }

    /// The same error, its message prefixed with where it happened.
    pub fn context(mut self, prefix: impl std::fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// The user's host policy (config.toml's `allow_hosts`/`deny_hosts`)
    /// refuses the request. `BadRequest`: retrying cannot help, only the
    /// user changing the policy can, which the message must say.
    pub fn denied_by_policy(message: impl Into<String>) -> Self {
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
        ErrorBody {
            kind: e.kind,
            message: e.message,
            needs: e.needs,
        }
    }
}
