//! The usual end-to-end set-up in one value: an sshd, a sandbox and an
//! initialized shim, with the calls most tests make.

use serde_json::{Value, json};

use crate::env::Env;
use crate::mcp::Shim;
use crate::sshd::Sshd;

/// An sshd, a sandbox and an initialized shim that auto-starts its daemon.
/// Field order is drop order: the shim goes first, then the sandbox (which
/// stops the daemon), then sshd.
pub struct World {
    pub shim: Shim,
    pub env: Env,
    pub sshd: Sshd,
}

impl World {
    pub fn new() -> World {
        let sshd = Sshd::start();
        let env = Env::new();
        let mut shim = Shim::spawn(&env);
        shim.initialize();
        World { shim, env, sshd }
    }

    /// `connect` to the fixture sshd as `user` with the fixture's client
    /// key; returns the session id.
    ///
    /// # Panics
    ///
    /// When the connect fails.
    pub fn connect_as(&mut self, user: &str) -> String {
        let result = self.shim.call_tool(
            "connect",
            json!({
                "hostname": self.sshd.host(),
                "port": self.sshd.port(),
                "username": user,
                "private_key": self.sshd.client_key(),
            }),
        );
        let value = result.expect_ok();
        value["session_id"]
            .as_str()
            .unwrap_or_else(|| panic!("connect gave no session_id: {value}"))
            .to_owned()
    }

    /// `execute` on `session` with `args` (session_id is filled in);
    /// returns the structured result.
    ///
    /// # Panics
    ///
    /// When the call fails as a tool.
    pub fn execute(&mut self, session: &str, mut args: Value) -> Value {
        args["session_id"] = json!(session);
        self.shim.call_tool("execute", args).expect_ok().clone()
    }

    /// The pid of the daemon listening on the sandbox socket.
    ///
    /// # Panics
    ///
    /// When none is listening.
    pub fn daemon_pid(&self) -> u32 {
        self.env.daemon_pid().expect("a daemon is listening")
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
