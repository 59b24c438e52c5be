//! sshmcpd: the per-user daemon that owns sshmcp's SSH sessions.
//!
//! It listens on a Unix socket reachable only by its own user, speaks the
//! `sshmcp-proto` wire protocol, and never speaks MCP: the shim does that.
//! Sessions live here so they outlive any one MCP client.

pub mod audit;
pub mod call;
pub mod cli;
pub mod config;
pub mod error;
pub mod file_sink;
pub mod log;
pub mod output;
pub mod paths;
pub mod policy;
pub mod secret_page;
pub mod server;
pub mod service;
pub mod sessions;
pub mod ssh;
pub mod ssh_config;

/// What the daemon calls itself in hellos and `status`.
pub const SOFTWARE: &str = concat!("sshmcpd ", env!("CARGO_PKG_VERSION"));
