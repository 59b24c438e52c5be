//! Everything that speaks SSH: connecting and authenticating, running
//! commands, and moving files over SFTP.

pub mod auth;
pub mod connect;
pub mod exec;
pub mod jump;
pub mod known_hosts;
pub mod sftp;

pub use connect::{ConnectParams, Connection, HostKeyStatus, SshHandle, TrustSettings};
