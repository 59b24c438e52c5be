//! The wire contract between sshmcpd and its clients (the MCP shim and
//! `sshmcpd status`/`stop`).
//!
//! This crate owns the message types, the frame codec, the hello handshake,
//! the protocol version and the limits. It owns no I/O policy: where sockets
//! live, who may connect and what a request does are the daemon's business.
//!
//! # Connection layout
//!
//! ```text
//! client                                   daemon
//!   Hello (frozen layout, see `hello`)  ─▶
//!                                       ◀─  HelloReply (frozen layout)
//!   if the versions differ the daemon closes the connection here
//!   Frame(ClientMessage)               ─▶   any number, any order
//!                                       ◀─  Frame(ServerMessage), matched by `id`
//! ```
//!
//! A frame is a little-endian `u32` length followed by that many bytes of
//! bincode (see `codec`). The length is checked against [`MAX_FRAME_LEN`]
//! before anything is allocated.
//!
//! # Compatibility rules
//!
//! bincode encodes enum variants by position and structs by field order, so
//! within one `PROTOCOL_VERSION`: variants and fields are never reordered,
//! removed or retyped. Any such change bumps [`PROTOCOL_VERSION`]. The hello
//! layout never changes, so peers of any version can always tell each other
//! their versions.
//!
//! `rendezvous` is the one piece of shared policy: where the socket lives, so
//! that every client and the daemon agree on it.
//!
//! # Trust boundary
//!
//! The daemon only accepts connections from its own uid, but still treats
//! every byte as untrusted: decoding never panics and never allocates more
//! than the frame cap.

mod client;
mod codec;
mod error;
mod frame;
mod hello;
mod messages;
pub mod rendezvous;

pub use client::{Client, ClientError};
pub use codec::{decode, encode};
pub use error::ProtoError;
pub use frame::{read_frame, read_message, write_frame, write_message};
pub use hello::{DaemonFacts, HELLO_MAGIC, Hello, HelloReply, HelloStatus};
pub use messages::*;

/// Version of the framed protocol that follows the hello. Bump it on any
/// incompatible change to a type in `messages`.
pub const PROTOCOL_VERSION: u32 = 4;

/// Hard cap on one frame's payload. Large enough for an `execute` result
/// holding both capped output streams; small enough that a hostile length
/// prefix cannot make a peer allocate much.
pub const MAX_FRAME_LEN: u32 = 64 * 1024 * 1024;

/// Cap on the inline bytes of each output stream an `execute` returns
/// (`max_output_bytes` cannot raise it further). Keeps a result inside one
/// frame.
pub const MAX_OUTPUT_BYTES: usize = 24 * 1024 * 1024;

/// Inline bytes per output stream when the caller does not say: enough for a
/// build log's error, small enough for a model's context.
pub const DEFAULT_OUTPUT_BYTES: usize = 32 * 1024;

/// Cap on `stdin` for one `execute` request, for the same reason.
pub const MAX_STDIN_BYTES: usize = 8 * 1024 * 1024;
