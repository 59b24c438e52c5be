//! Ours, as an MCP host sees it: the real `sshmcpd` on a sandbox socket and
//! the real `sshmcp-shim` spoken to over stdio. Every figure measures tool
//! calls end to end (JSON-RPC in, JSON-RPC out), never the daemon alone.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sshmcp_tests::{Daemon, Env, Shim, Sshd};

/// The daemon's defaults, but room for the 200 idle sessions of figure 5:
/// the default cap on open sessions is lower.
const DAEMON_CONFIG: &str = "max_sessions = 1000\n";

/// How many `connect` calls are in flight at once when opening many
/// sessions: well under sshd's `MaxStartups`, which would drop the excess.
const CONNECT_BATCH: usize = 20;

/// A daemon of its own and the shim that set it up.
///
/// Field order is drop order: the shim and the daemon stop before the
/// sandbox they live in is removed.
pub struct Ours {
    shim: Shim,
    daemon: Daemon,
    env: Env,
    connect_args: Value,
}

impl Ours {
    /// A fresh sandbox, a daemon started in it (so figures that read its
    /// memory see only their own sessions), and an initialised shim.
    ///
    /// # Panics
    ///
    /// When the daemon's config file cannot be written (or the fixtures
    /// fail to start, as they say).
    pub fn start(sshd: &Sshd, user: &str) -> Ours {
        let env = Env::new();
        let config_dir = env.dir().join("config/sshmcp");
        std::fs::create_dir_all(&config_dir)
            .and_then(|()| std::fs::write(config_dir.join("config.toml"), DAEMON_CONFIG))
            .unwrap_or_else(|e| panic!("write the daemon's config.toml: {e}"));
        let daemon = Daemon::start(&env);
        let mut shim = Shim::spawn(&env);
        shim.initialize();
        Ours {
            shim,
            daemon,
            env,
            connect_args: json!({
                "hostname": sshd.host(),
                "port": sshd.port(),
                "username": user,
                "private_key": sshd.client_key(),
            }),
        }
    }

    pub fn shim(&mut self) -> &mut Shim {
        &mut self.shim
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Another initialised shim on the same daemon, as a second MCP host
    /// would start.
    pub fn new_shim(&self) -> Shim {
        let mut shim = Shim::spawn(&self.env);
        shim.initialize();
        shim
    }

    /// `connect` with the fixture's client key; returns the session id.
    ///
    /// # Errors
    ///
    /// When the tool reports an error.
    pub fn connect(&mut self) -> Result<String> {
        let out = call(&mut self.shim, "connect", self.connect_args.clone())?;
        session_id(&out)
    }

    /// `n` sessions, opened by pipelined `connect` calls in batches.
    ///
    /// # Errors
    ///
    /// When any connect fails.
    pub fn connect_many(&mut self, n: usize) -> Result<Vec<String>> {
        let mut sessions = Vec::with_capacity(n);
        while sessions.len() < n {
            let batch = CONNECT_BATCH.min(n - sessions.len());
            let ids: Vec<u64> = (0..batch)
                .map(|_| {
                    self.shim
                        .send_request("tools/call", tool_call("connect", &self.connect_args))
                })
                .collect();
            for id in ids {
                sessions.push(session_id(&outcome(self.shim.wait_response(id))?)?);
            }
        }
        Ok(sessions)
    }

    /// `execute` of `command`, which must exit 0; returns the tool's
    /// structured result.
    ///
    /// # Errors
    ///
    /// When the tool reports an error or the command fails.
    pub fn execute(&mut self, session: &str, command: &str) -> Result<Value> {
        execute(&mut self.shim, session, command)
    }

    /// One `execute` of `command` on every session, all sent before any
    /// answer is awaited, as an MCP host issues parallel tool calls.
    ///
    /// # Errors
    ///
    /// When any of them fails.
    pub fn execute_all(&mut self, sessions: &[String], command: &str) -> Result<()> {
        let ids: Vec<u64> = sessions
            .iter()
            .map(|s| {
                self.shim.send_request(
                    "tools/call",
                    tool_call("execute", &execute_args(s, command)),
                )
            })
            .collect();
        for id in ids {
            exited_zero(&outcome(self.shim.wait_response(id))?)?;
        }
        Ok(())
    }

    /// # Errors
    ///
    /// When the tool reports an error.
    pub fn disconnect(&mut self, session: &str) -> Result<()> {
        call(
            &mut self.shim,
            "disconnect",
            json!({ "session_id": session }),
        )
        .map(drop)
    }
}

/// `execute` on any shim, as [`Ours::execute`].
///
/// # Errors
///
/// When the tool reports an error or the command fails.
pub fn execute(shim: &mut Shim, session: &str, command: &str) -> Result<Value> {
    let out = call(shim, "execute", execute_args(session, command))?;
    exited_zero(&out)?;
    Ok(out)
}

/// Calls `tool` and returns its structured result.
///
/// # Errors
///
/// When the call is refused (a JSON-RPC error) or the tool reports an error
/// (`isError`), with the text the model would read.
pub fn call(shim: &mut Shim, tool: &str, arguments: Value) -> Result<Value> {
    outcome(shim.try_request("tools/call", tool_call(tool, &arguments)))
}

/// The `arguments` of an `upload` or `download` call.
pub fn transfer_args(session: &str, local: &std::path::Path, remote: &std::path::Path) -> Value {
    json!({ "session_id": session, "local_path": local, "remote_path": remote })
}

fn tool_call(tool: &str, arguments: &Value) -> Value {
    json!({ "name": tool, "arguments": arguments })
}

fn execute_args(session: &str, command: &str) -> Value {
    json!({ "session_id": session, "command": command })
}

/// A `tools/call` response's structured content, or why there is none.
fn outcome(response: Result<Value, Value>) -> Result<Value> {
    let result = match response {
        Ok(result) => result,
        Err(error) => bail!("the shim refused the call: {error}"),
    };
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("the tool failed: {}", result["content"]);
    }
    result
        .get("structuredContent")
        .cloned()
        .with_context(|| format!("a tool result without structuredContent: {result}"))
}

fn session_id(connected: &Value) -> Result<String> {
    connected["session_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("connect returned no session_id: {connected}"))
}

fn exited_zero(executed: &Value) -> Result<()> {
    match executed["exit_status"].as_u64() {
        Some(0) => Ok(()),
        _ => bail!("the command did not exit 0: {executed}"),
    }
}
