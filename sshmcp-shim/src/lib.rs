//! sshmcp-shim: the stdio MCP server each MCP client spawns.
//!
//! It owns everything MCP — tool names, JSON schemas, descriptions, `isError`
//! results — and forwards each tool call to the per-user daemon `sshmcpd`
//! over its Unix socket, starting the daemon when none answers. It holds no
//! SSH state, so it can exit at any moment without losing a session.
//!
//! Stdout carries MCP alone; logs go to stderr (level `warn` unless
//! `RUST_LOG` says otherwise).
//!
//! It depends on `sshmcp_proto` for the wire contract and must never depend
//! on the daemon crate or on SSH libraries.

pub mod daemon;
pub mod elicit;
mod server;
pub mod tools;

pub use server::SshTools;

use anyhow::Context;
use daemon::Daemon;
use rmcp::ServiceExt;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG` (default `warn`), except that rmcp's request logging stays at
/// info whatever `RUST_LOG` says: at debug it prints every tool call's
/// arguments, passwords included.
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    match "rmcp::service=info".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

const USAGE: &str = "\
usage: sshmcp-shim [--version | --help]

Serves sshmcp's SSH tools (connect, disconnect, list_sessions, execute,
upload, download) as an MCP server on stdin/stdout, forwarding them to
sshmcpd, which it starts when none is running. Configure it as a stdio
server in your MCP client; it takes no arguments.

Environment:
  SSHMCP_SOCKET  socket of sshmcpd (default: $XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock)
  SSHMCPD_BIN    sshmcpd binary to start (default: beside this one, else PATH)
  RUST_LOG       log filter for stderr (default: warn)
";

/// Runs the shim with its command-line arguments (without the program
/// name).
///
/// # Errors
/// On an unknown argument, or when the MCP session over stdio cannot start
/// or ends abnormally.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<()> {
    let mut args = args.into_iter();
    match (args.next(), args.next()) {
        (None, _) => serve(),
        (Some(arg), None) if arg == "--version" || arg == "-V" => {
            println!("sshmcp-shim {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        (Some(arg), None) if arg == "--help" || arg == "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        (Some(arg), _) => anyhow::bail!(
            "unexpected argument {}: sshmcp-shim takes no arguments other than --version and \
             --help\n\n{USAGE}",
            arg.to_string_lossy()
        ),
    }
}

/// Serves MCP on stdin/stdout until the client closes stdin.
fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter())
        .init();
    // One client, a handful of calls at a time: one thread is plenty.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let daemon = Arc::new(Daemon::from_env());
        tracing::info!(socket = %daemon.socket().display(), "serving MCP on stdio");
        let service = SshTools::new(daemon)
            .serve(rmcp::transport::stdio())
            .await
            .context("the MCP client did not complete initialisation over stdio")?;
        let reason = service
            .waiting()
            .await
            .context("the MCP session task failed")?;
        tracing::info!(?reason, "MCP session ended");
        Ok(())
    })
}
