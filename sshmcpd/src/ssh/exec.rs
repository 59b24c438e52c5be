//! Running one command on its own session channel, and stopping it.
//!
//! Stopping a remote command is harder than closing its channel: OpenSSH
//! leaves a non-pty command running when the channel closes, and before 9.8
//! it refuses the SSH `signal` request for root logins. So every command is
//! run behind a one-line preamble that prints the pid of the login shell
//! sshd started for it. sshd makes that shell a session and process-group
//! leader (`setsid`), and a non-interactive shell keeps its children in its
//! group, so killing that group over a second channel stops the command and
//! its children for root and ordinary users alike.

use super::SshHandle;
use crate::call::{CallContext, PROGRESS_INTERVAL};
use crate::error::RequestError;
use crate::output::{Capture, SpillDir, spill_name};
use russh::{ChannelMsg, Sig};
use sshmcp_proto::{Deadline, ErrorKind, ExecuteResult};
use std::time::Duration;
use tokio::time::Instant;

/// How long a stopped command gets between TERM and KILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading a stopped command's channel for its last output.
const DRAIN_AFTER_STOP: Duration = Duration::from_secs(5);
/// How long a stopped command's pid line may take to arrive.
const PID_WAIT: Duration = Duration::from_secs(5);

/// What to run and how.
pub struct ExecParams {
    pub command: String,
    pub stdin: Option<Vec<u8>>,
    pub deadline: Option<Deadline>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub pty: bool,
    /// Inline bytes per stream.
    pub inline: usize,
}

/// Quotes `s` for a POSIX shell: single quotes, with `'` as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A directory argument for `cd`: `~` and a leading `~/` mean the remote
/// home, as they would typed at a prompt; the rest is quoted literally.
fn shell_dir(dir: &str) -> String {
    match dir.strip_prefix("~/") {
        Some("") => "\"$HOME\"".to_owned(),
        Some(rest) => format!("\"$HOME\"/{}", shell_quote(rest)),
        None if dir == "~" => "\"$HOME\"".to_owned(),
        None => shell_quote(dir),
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The remote script: a preamble in which the login shell prints its pid on
/// the first line of stdout (which [`Output`] strips before anything reaches
/// the caller), then `env` and `cwd`, then the command. Newlines, not `;`,
/// separate the parts so any command text stays valid. `env` is applied in
/// the script because OpenSSH's `AcceptEnv` refuses most `setenv` requests.
///
/// # Errors
/// `BadRequest` for a variable name a shell cannot take.
fn script(params: &ExecParams) -> Result<String, RequestError> {
    let mut script = String::from("printf '%s\\n' \"$$\"\n");
    for (name, value) in &params.env {
        if !valid_env_name(name) {
            return Err(RequestError::bad_request(format!(
                "environment variable name {name:?} is not valid in a shell: use letters, \
                 digits and _, not starting with a digit"
            )));
        }
        script.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    if let Some(dir) = &params.cwd {
        script.push_str(&format!("cd -- {} || exit 1\n", shell_dir(dir)));
    }
    script.push_str(&params.command);
    Ok(script)
}

/// The remote script that stops process group `pgid`: TERM, up to
/// [`KILL_GRACE`] for it to go, then KILL.
fn kill_script(pgid: u32) -> String {
    let ticks = KILL_GRACE.as_millis() / 100;
    format!(
        "kill -TERM -- -{pgid} 2>/dev/null || exit 0; i=0; \
         while [ $i -lt {ticks} ] && kill -0 -- -{pgid} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; \
         kill -KILL -- -{pgid} 2>/dev/null; exit 0"
    )
}

/// Output so far, with the preamble's pid line taken off stdout.
struct Output {
    preamble_done: bool,
    pid_line: Vec<u8>,
    pgid: Option<u32>,
    stdout: Capture,
    stderr: Capture,
    exit_status: Option<u32>,
    signal: Option<String>,
}

impl Output {
    fn new(inline: usize, spill: &SpillDir) -> Self {
        let call = uuid::Uuid::new_v4().simple().to_string();
        Output {
            preamble_done: false,
            pid_line: Vec::new(),
            pgid: None,
            stdout: Capture::new(inline, spill.clone(), spill_name(&call, "stdout")),
            stderr: Capture::new(inline, spill.clone(), spill_name(&call, "stderr")),
            exit_status: None,
            signal: None,
        }
    }

    async fn stdout(&mut self, mut data: &[u8]) {
        if !self.preamble_done {
            let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                self.pid_line.extend_from_slice(data);
                return;
            };
            self.pid_line.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            self.preamble_done = true;
            // A login shell that printed no number leaves the command
            // unstoppable, but it still runs and its output still counts.
            self.pgid = std::str::from_utf8(&self.pid_line)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|pid| *pid > 1);
        }
        self.stdout.push(data).await;
    }

    /// Handles one channel message; true when the channel is finished.
    async fn apply(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => self.stdout(&data).await,
            ChannelMsg::ExtendedData { data, ext: 1 } => self.stderr.push(&data).await,
            ChannelMsg::ExitStatus { exit_status } => self.exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.signal = Some(signal_name_of(&signal_name))
            }
            ChannelMsg::Close => return true,
            _ => {}
        }
        false
    }

    fn bytes_so_far(&self) -> u64 {
        self.stdout.total() + self.stderr.total()
    }

    async fn finish(self, timed_out: bool, deadline: Option<Deadline>) -> ExecuteResult {
        ExecuteResult {
            stdout: self.stdout.finish().await,
            stderr: self.stderr.finish().await,
            exit_status: if self.signal.is_some() {
                None
            } else {
                self.exit_status
            },
            signal: self.signal,
            timed_out,
            deadline,
            reconnected: false,
        }
    }
}

fn signal_name_of(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name.as_str(),
    }
    .to_owned()
}

fn channel_error(what: &str, e: russh::Error) -> RequestError {
    RequestError::new(
        ErrorKind::RemoteIo,
        format!(
            "{what}: {e}; the SSH connection may be down: call list_sessions, and connect again if it is disconnected"
        ),
    )
}

/// Why a command was stopped before it ended by itself.
enum Stop {
    Timeout,
    Cancelled,
}

/// Runs a command, stopping it at its timeout or when the call is cancelled.
///
/// # Errors
/// `RemoteIo` when the channel cannot be opened or the server refuses exec;
/// `Cancelled` when the call was cancelled (the command is stopped first).
pub async fn execute(
    handle: &SshHandle,
    params: ExecParams,
    spill: &SpillDir,
    ctx: &CallContext,
) -> Result<ExecuteResult, RequestError> {
    let script = script(&params)?;
    let deadline = params
        .deadline
        .map(|d| Instant::now() + Duration::from_millis(d.ms));
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| channel_error("cannot open a channel for the command", e))?;
    if params.pty {
        channel
            .request_pty(false, "xterm-256color", 200, 50, 0, 0, &[])
            .await
            .map_err(|e| channel_error("cannot allocate a terminal", e))?;
    }
    channel
        .exec(true, script)
        .await
        .map_err(|e| channel_error("cannot start the command", e))?;
    let (mut reader, writer) = channel.split();
    // stdin is written beside the reads: a command that does not read its
    // input must not stall us on a full window, and EOF is always sent so a
    // command that reads stdin never waits forever.
    let stdin = params.stdin;
    let feeder = tokio::spawn(async move {
        if let Some(input) = stdin {
            writer.data(&input[..]).await?;
        }
        writer.eof().await
    });

    let mut out = Output::new(params.inline, spill);
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let stopped = loop {
        let msg = tokio::select! {
            msg = reader.wait() => msg,
            () = tokio::time::sleep_until(deadline.unwrap_or(far)) => break Some(Stop::Timeout),
            () = ctx.cancel.cancelled() => break Some(Stop::Cancelled),
            _ = ticks.tick(), if ctx.wants_progress() => {
                ctx.report(out.bytes_so_far(), None);
                continue;
            }
        };
        match msg {
            Some(ChannelMsg::Failure) => {
                feeder.abort();
                return Err(RequestError::remote_io(
                    "the server refused to run the command (exec request denied)",
                ));
            }
            Some(msg) => {
                if out.apply(msg).await {
                    break None;
                }
            }
            None => break None,
        }
    };
    // A command may exit without reading all its stdin; the rest can never
    // be sent, so the feeder is stopped rather than awaited.
    feeder.abort();
    if stopped.is_some() {
        // The pid line may be waiting unread behind the event that stopped
        // us (select! picks among ready branches at random): read on until
        // it is known, the channel ends, or the shell never prints it.
        let pid_until = Instant::now() + PID_WAIT;
        while out.pgid.is_none() && !out.preamble_done {
            match tokio::time::timeout_at(pid_until, reader.wait()).await {
                Ok(Some(msg)) => {
                    if out.apply(msg).await {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        stop(handle, out.pgid).await;
        // Collect what the command printed while it was being stopped.
        let drain_until = Instant::now() + DRAIN_AFTER_STOP;
        while let Ok(Some(msg)) = tokio::time::timeout_at(drain_until, reader.wait()).await {
            if out.apply(msg).await {
                break;
            }
        }
    }
    match stopped {
        Some(Stop::Cancelled) => {
            // Flush and keep what was captured; the caller has gone.
            out.finish(false, None).await;
            Err(RequestError::new(
                ErrorKind::Cancelled,
                "the call was cancelled; the command was stopped",
            ))
        }
        Some(Stop::Timeout) => Ok(out.finish(true, params.deadline).await),
        None => Ok(out.finish(false, params.deadline).await),
    }
}

/// Stops the process group `pgid` over a second channel. Failures are logged,
/// not returned: the caller's result (a timeout) stands either way.
async fn stop(handle: &SshHandle, pgid: Option<u32>) {
    let Some(pgid) = pgid else {
        tracing::warn!("cannot stop a command: its process group is unknown");
        return;
    };
    let result = async {
        let mut channel = handle.channel_open_session().await?;
        channel.exec(true, kill_script(pgid)).await?;
        while let Some(msg) = channel.wait().await {
            if matches!(msg, ChannelMsg::Close) {
                break;
            }
        }
        Ok::<_, russh::Error>(())
    }
    .await;
    match result {
        Ok(()) => tracing::info!(pgid, "stopped command"),
        Err(e) => tracing::warn!(pgid, "could not stop command: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &[u8]) -> ChannelMsg {
        ChannelMsg::Data {
            data: s.to_vec().into(),
        }
    }

    fn output() -> Output {
        Output::new(
            1024,
            &SpillDir {
                dir: std::env::temp_dir().join("sshmcpd-exec-tests"),
                max_bytes: 0,
                retention: Duration::from_secs(1),
            },
        )
    }

    #[tokio::test]
    async fn pid_line_is_stripped_across_packets() {
        let mut out = output();
        out.apply(data(b"12")).await;
        out.apply(data(b"34\nhello")).await;
        out.apply(data(b" world\n")).await;
        assert_eq!(out.pgid, Some(1234));
        assert_eq!(out.finish(false, None).await.stdout.head, b"hello world\n");
    }

    #[tokio::test]
    async fn odd_preamble_output_is_not_a_pid() {
        let mut out = output();
        out.apply(data(b"$$\nrest\n")).await;
        assert_eq!(out.pgid, None);
        assert_eq!(out.finish(false, None).await.stdout.head, b"rest\n");
    }

    #[tokio::test]
    async fn a_pty_line_ending_still_gives_the_pid() {
        let mut out = output();
        out.apply(data(b"77\r\nx")).await;
        assert_eq!(out.pgid, Some(77));
    }

    #[tokio::test]
    async fn signal_clears_exit_status() {
        let mut out = output();
        out.apply(ChannelMsg::ExitSignal {
            signal_name: Sig::KILL,
            core_dumped: false,
            error_message: String::new(),
            lang_tag: String::new(),
        })
        .await;
        out.apply(ChannelMsg::ExitStatus { exit_status: 137 }).await;
        let r = out.finish(false, None).await;
        assert_eq!(r.signal.as_deref(), Some("KILL"));
        assert_eq!(r.exit_status, None);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_dir("~/a b"), "\"$HOME\"/'a b'");
        assert_eq!(shell_dir("~"), "\"$HOME\"");
        assert_eq!(shell_dir("/tmp"), "'/tmp'");
    }

    #[test]
    fn env_and_cwd_come_before_the_command() {
        let s = script(&ExecParams {
            command: "make".into(),
            stdin: None,
            deadline: None,
            cwd: Some("/srv".into()),
            env: vec![("A_1".into(), "x y".into())],
            pty: false,
            inline: 10,
        })
        .unwrap();
        assert_eq!(
            s,
            "printf '%s\\n' \"$$\"\nexport A_1='x y'\ncd -- '/srv' || exit 1\nmake"
        );
    }

    #[test]
    fn bad_env_names_are_refused() {
        for bad in ["1A", "A-B", "", "A B", "A;rm"] {
            assert!(!valid_env_name(bad), "{bad}");
        }
        assert!(valid_env_name("_PATH2"));
    }
}
