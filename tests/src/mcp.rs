//! The shim under test as a child process, driven as an MCP host drives it:
//! JSON-RPC 2.0 messages, one per line, on its stdin and stdout.
//!
//! The API is synchronous so plain `#[test]` functions can use it. A reader
//! thread drains the shim's stdout into a channel, so the shim never blocks
//! on a full pipe and every wait has a deadline.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::env::Env;
use crate::process::{bin_path, read_lossy, show_if_panicking, stop_in_drop};
use crate::wait::wait_until;

/// The MCP revision the tests speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// Long enough for a tool call that connects over SSH and runs a command on
/// a loaded CI machine; tests of long operations raise it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the shim may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// JSON-RPC "method not found", the answer to server requests the tests do
/// not serve.
const METHOD_NOT_FOUND: i64 = -32601;

/// Numbers each shim's stderr file, for tests that run several shims in one
/// sandbox.
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// A running `sshmcp-shim` and the client side of its MCP session; killed
/// when dropped, even when the test panics.
///
/// Protocol violations (a line on stdout that is not JSON, a response to an
/// id never sent) fail the test: an MCP host would choke on them too.
pub struct Shim {
    child: Child,
    /// `None` once closed by [`Shim::close_stdin_and_wait`].
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: PathBuf,
    next_id: u64,
    timeout: Duration,
    /// Notifications and server requests read while waiting for responses.
    unsolicited: Vec<Value>,
    /// Responses read while waiting for something else, by id, for requests
    /// sent with [`Shim::send_request`].
    answered: HashMap<u64, Value>,
    /// Ids sent with [`Shim::send_request`] whose response has not been
    /// collected; a response to any other id is a protocol violation.
    outstanding: HashSet<u64>,
    /// Set when a panic message already included stderr, so `Drop` does not
    /// print it twice.
    stderr_shown: bool,
}

/// The outcome of `tools/call`, flattened for assertions.
#[derive(Clone, Debug)]
pub struct ToolResult {
    /// `isError`: the tool ran and failed; the model would read `text`.
    pub is_error: bool,
    /// `structuredContent`.
    pub structured: Option<Value>,
    /// The `text` items of `content`, joined with newlines.
    pub text: String,
    /// The whole `result` object, for anything not flattened above.
    pub raw: Value,
}

impl ToolResult {
    fn from_result(raw: Value) -> ToolResult {
        let text = raw
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|item| item.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n");
        ToolResult {
            is_error: raw.get("isError").and_then(Value::as_bool).unwrap_or(false),
            structured: raw.get("structuredContent").cloned(),
            text,
            raw,
        }
    }

    /// The structured content of a successful call.
    ///
    /// # Panics
    ///
    /// When the call failed or returned no structured content; the message
    /// is the tool's text, which says why.
    pub fn expect_ok(&self) -> &Value {
        assert!(!self.is_error, "tool call failed: {}", self.text);
        self.structured
            .as_ref()
            .unwrap_or_else(|| panic!("tool call returned no structuredContent: {}", self.raw))
    }
}

impl Shim {
    /// Starts `sshmcp-shim` in `env`. It starts its daemon on first use if
    /// none answers on the sandbox socket; [`Env`]'s `Drop` stops that one.
    ///
    /// # Panics
    ///
    /// When the shim cannot be started.
    pub fn spawn(env: &Env) -> Shim {
        Self::spawn_in(env, &env.home())
    }

    /// [`Shim::spawn`] with working dir `cwd` instead of the sandbox
    /// `HOME`: an MCP host starts the shim in its project dir, and relative
    /// local paths in tool calls resolve against it.
    ///
    /// # Panics
    ///
    /// When the shim cannot be started.
    pub fn spawn_in(env: &Env, cwd: &Path) -> Shim {
        let stderr = env.dir().join(format!(
            "sshmcp-shim.{}.err",
            SPAWNED.fetch_add(1, Ordering::Relaxed)
        ));
        let file =
            File::create(&stderr).unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let mut child = env
            .command(bin_path("sshmcp-shim"))
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sshmcp-shim: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                // The receiver is gone only when the Shim is; nothing is
                // left to tell.
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Shim {
            child,
            stdin,
            stdout: rx,
            stderr,
            next_id: 1,
            timeout: DEFAULT_TIMEOUT,
            unsolicited: Vec::new(),
            answered: HashMap::new(),
            outstanding: HashSet::new(),
            stderr_shown: false,
        }
    }

    /// The shim's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How long requests wait for their response; 60 s by default.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// What the shim wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The MCP handshake: `initialize`, then `notifications/initialized`.
    /// Returns the `initialize` result (server info, capabilities).
    pub fn initialize(&mut self) -> Value {
        let result = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "sshmcp-tests", "version": "0"},
            }),
        );
        self.notify("notifications/initialized", Value::Null);
        result
    }

    /// Sends a request and returns its `result`.
    ///
    /// # Panics
    ///
    /// On a JSON-RPC error response, on timeout, or when the shim closes
    /// stdout; the message includes the shim's stderr.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        match self.try_request(method, params) {
            Ok(result) => result,
            Err(error) => self.fail(&format!("{method} returned a JSON-RPC error: {error}")),
        }
    }

    /// Sends a request and returns its `result`, or its JSON-RPC `error`
    /// object, for tests that expect a request to be refused. `Null` params
    /// are omitted.
    ///
    /// Notifications and server requests that arrive meanwhile are kept for
    /// [`Shim::take_notifications`]; server requests are answered (`ping`
    /// with an empty result, anything else with "method not found", as this
    /// client declares no capabilities).
    ///
    /// # Panics
    ///
    /// On timeout, when the shim closes stdout, or on a protocol violation.
    pub fn try_request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params);
        self.wait_response(id)
    }

    /// Sends a request without waiting for its response, for tests that act
    /// while it runs (cancel it, watch its progress); collect the response
    /// with [`Shim::wait_response`]. `Null` params are omitted.
    pub fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send(&message);
        self.outstanding.insert(id);
        id
    }

    /// Waits for the response to request `id`: its `result`, or its JSON-RPC
    /// `error` object.
    ///
    /// # Panics
    ///
    /// On timeout, when the shim closes stdout, or on a protocol violation.
    pub fn wait_response(&mut self, id: u64) -> Result<Value, Value> {
        let waiting_for = format!("the response to id {id}");
        let deadline = Instant::now() + self.timeout;
        let message = loop {
            if let Some(message) = self.answered.remove(&id) {
                break message;
            }
            if let Some(message) = self.next_response(deadline, &waiting_for) {
                if message.get("id") == Some(&json!(id)) {
                    break message;
                }
                self.stash(message, &waiting_for);
            }
        };
        self.outstanding.remove(&id);
        if let Some(error) = message.get("error") {
            return Err(error.clone());
        }
        match message.get("result") {
            Some(result) => Ok(result.clone()),
            None => self.fail(&format!(
                "a response with neither result nor error: {message}"
            )),
        }
    }

    /// Waits for a notification for which `wanted` holds and returns it;
    /// earlier notifications stay for [`Shim::take_notifications`], and
    /// responses that arrive meanwhile are kept for [`Shim::wait_response`].
    ///
    /// # Panics
    ///
    /// On timeout, when the shim closes stdout, or on a protocol violation.
    pub fn wait_notification(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + self.timeout;
        let mut seen = 0;
        loop {
            if let Some(found) = self.unsolicited[seen..].iter().find(|n| wanted(n)) {
                return found.clone();
            }
            seen = self.unsolicited.len();
            if let Some(message) = self.next_response(deadline, what) {
                self.stash(message, what);
            }
        }
    }

    /// Reads one message; notifications and server requests are kept (and
    /// server requests answered) and give `None`, a response gives `Some`.
    fn next_response(&mut self, deadline: Instant, waiting_for: &str) -> Option<Value> {
        let message = self.recv(deadline, waiting_for);
        if message.get("method").is_some() {
            self.answer_server_request(&message);
            self.unsolicited.push(message);
            return None;
        }
        Some(message)
    }

    /// Keeps a response to an outstanding request sent earlier.
    fn stash(&mut self, message: Value, waiting_for: &str) {
        match message.get("id").and_then(Value::as_u64) {
            Some(other) if self.outstanding.contains(&other) => {
                self.answered.insert(other, message);
            }
            _ => self.fail(&format!(
                "got a response to another id while waiting for {waiting_for}: {message}"
            )),
        }
    }

    /// Sends a notification (no response expected). `Null` params are
    /// omitted.
    pub fn notify(&mut self, method: &str, params: Value) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send(&message);
    }

    /// The notifications (progress, logging, list changes) and server
    /// requests read since the last call, oldest first.
    pub fn take_notifications(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.unsolicited)
    }

    /// `tools/list`, following `nextCursor` through every page.
    pub fn list_tools(&mut self) -> Vec<Value> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", params);
            match result.get("tools").and_then(Value::as_array) {
                Some(page) => tools.extend(page.iter().cloned()),
                None => self.fail(&format!("tools/list result has no tools array: {result}")),
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return tools,
            }
        }
    }

    /// `tools/call` with `arguments` (a JSON object).
    ///
    /// # Panics
    ///
    /// As [`Shim::request`]: a JSON-RPC error is a failure to call the tool
    /// at all, whereas a tool that ran and failed returns `is_error`.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> ToolResult {
        let result = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        ToolResult::from_result(result)
    }

    /// Closes the shim's stdin, which is how an MCP host ends the session,
    /// and waits for the shim to exit.
    ///
    /// # Panics
    ///
    /// When it has not exited within 10 s.
    pub fn close_stdin_and_wait(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let mut status = None;
        let exited = wait_until(EXIT_TIMEOUT, "the shim to exit after stdin closed", || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        match (status, exited) {
            (Some(status), _) => status,
            (None, Err(e)) => self.fail(&e.to_string()),
            (None, Ok(())) => unreachable!("wait_until succeeds only with a status"),
        }
    }

    fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush()),
            None => self.fail("the shim's stdin is already closed"),
        };
        if let Err(e) = result {
            self.fail(&format!("cannot write to the shim's stdin: {e}"));
        }
    }

    fn recv(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.stdout.recv_timeout(left) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| {
                self.fail(&format!(
                    "the shim wrote a line to stdout that is not JSON ({e}): {line:?}"
                ))
            }),
            Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                "no response to {waiting_for} within {:?}",
                self.timeout
            )),
            Err(RecvTimeoutError::Disconnected) => self.fail(&format!(
                "the shim closed stdout before responding to {waiting_for}"
            )),
        }
    }

    fn answer_server_request(&mut self, message: &Value) {
        let Some(id) = message.get("id") else {
            return;
        };
        let reply = if message.get("method").and_then(Value::as_str) == Some("ping") {
            json!({"jsonrpc": "2.0", "id": id, "result": {}})
        } else {
            json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": METHOD_NOT_FOUND, "message": "the test client serves no requests"},
            })
        };
        self.send(&reply);
    }

    fn fail(&mut self, what: &str) -> ! {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!(" (the shim has exited: {status})"),
            _ => String::new(),
        };
        self.stderr_shown = true;
        panic!("{what}{status}\nshim stderr:\n{}", self.stderr());
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // No grace: tests of a graceful exit use close_stdin_and_wait.
        stop_in_drop(&mut self.child, "sshmcp-shim", Duration::ZERO);
        if !self.stderr_shown {
            show_if_panicking("sshmcp-shim stderr", &self.stderr());
        }
    }
}
