//! End-to-end test harness for sshmcp: a real OpenSSH server, the real
//! daemon and the real shim, each a child process in a throwaway sandbox.
//!
//! Tests here and benchmarks later build on these pieces:
//!
//! - [`Sshd`] / [`SshdConfig`]: an OpenSSH `sshd` on 127.0.0.1 with its own
//!   host key, client key and `authorized_keys`.
//! - [`TestUser`]: the ordinary local account tests log in as besides root.
//! - [`Agent`]: an `ssh-agent` of the test's own; [`keygen`] and
//!   [`sign_user_key`] make the keys and certificates to put in it.
//! - [`Env`]: `HOME`, `XDG_*` and `SSHMCP_SOCKET` inside a temp dir, so
//!   nothing touches the real user's files or daemon.
//! - [`Daemon`], [`run_cli`]: `sshmcpd serve` and its CLI in that sandbox.
//! - [`Shim`]: `sshmcp-shim` driven over MCP stdio, with [`ToolResult`].
//! - [`Human`] / [`McpHost`]: an MCP host built on rmcp's client that
//!   answers the shim's elicitations; [`Browser`]: headless Chromium through
//!   ChromeDriver, for the pages the human is sent to.
//! - [`wait_until`], [`pid_alive`], [`random_file`], [`sha256_file`].
//!
//! Conventions:
//!
//! - Every process is stopped when its handle drops, also when a test
//!   panics, and a failing test prints what the processes logged.
//! - Waits are for events (a line from sshd, a socket accepting, a response
//!   on stdout) with a deadline; polling is kept to conditions that have no
//!   event, like a process that is not our child going away.
//! - Setup that a test cannot continue without panics with a message that
//!   says what to do; only checks a test may want to assert either way
//!   return a `Result`.
//!
//! The harness runs the product as binaries and uses no product crate but
//! `sshmcp-proto`'s rendezvous names, so it tests what users run.
//! Linux only: it reads `/proc` and uses `SO_PEERCRED`.

mod agent;
mod browser;
mod daemon;
mod data;
mod env;
mod human;
mod mcp;
mod process;
mod sshd;
mod user;
mod wait;
mod world;

pub use agent::{Agent, keygen, sign_user_key};
pub use browser::Browser;
pub use daemon::{Daemon, run_cli};
pub use data::{random_file, sha256_file};
pub use env::Env;
pub use human::{Human, McpHost, PageVisit, result_text};
pub use mcp::{PROTOCOL_VERSION, Shim, ToolResult};
pub use process::{bin_path, is_root};
pub use sshd::{Sshd, SshdConfig};
pub use user::{TestUser, current_user_name};
pub use wait::{pid_alive, proc_status_kib, processes_with, wait_until};
pub use world::World;
