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
use crate::error::RequestError;
use russh::{ChannelMsg, Sig};
use sshmcp_proto::{ErrorKind, ExecuteResult, MAX_OUTPUT_BYTES};
use std::time::Duration;
use tokio::time::Instant;

/// How long a stopped command gets between TERM and KILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading a stopped command's channel for its last output.
const DRAIN_AFTER_STOP: Duration = Duration::from_secs(5);

/// The preamble: the login shell prints its pid on the first line of stdout,
/// which [`Output`] strips before anything reaches the caller. A newline, not
/// `;`, separates it from the command so any command text stays valid.
fn wrap(command: &str) -> String {
    format!("printf '%s\\n' \"$$\"\n{command}")
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

/// Collects one stream up to the cap.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT_BYTES.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Output so far, with the preamble's pid line taken off stdout.
#[derive(Default)]
struct Output {
    preamble_done: bool,
    pid_line: Vec<u8>,
    pgid: Option<u32>,
    stdout: Capped,
    stderr: Capped,
    exit_status: Option<u32>,
    signal: Option<String>,
}

impl Output {
    fn stdout(&mut self, mut data: &[u8]) {
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
        self.stdout.push(data);
    }

    /// Handles one channel message; true when the channel is finished.
    fn apply(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => self.stdout(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => self.stderr.push(&data),
            ChannelMsg::ExitStatus { exit_status } => self.exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.signal = Some(signal_name_of(&signal_name))
            }
            ChannelMsg::Close => return true,
            _ => {}
        }
        false
    }

    fn finish(self, timed_out: bool) -> ExecuteResult {
        ExecuteResult {
            stdout: self.stdout.bytes,
            stderr: self.stderr.bytes,
            exit_status: if self.signal.is_some() {
                None
            } else {
                self.exit_status
            },
            signal: self.signal,
            timed_out,
            stdout_truncated: self.stdout.truncated,
            stderr_truncated: self.stderr.truncated,
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

/// Runs `command` with optional `stdin`, stopping it at `timeout`.
///
/// # Errors
/// `RemoteIo` when the channel cannot be opened or the server refuses exec.
pub async fn execute(
    handle: &SshHandle,
    command: &str,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
) -> Result<ExecuteResult, RequestError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| channel_error("cannot open a channel for the command", e))?;
    channel
        .exec(true, wrap(command))
        .await
        .map_err(|e| channel_error("cannot start the command", e))?;
    let (mut reader, writer) = channel.split();
    // stdin is written beside the reads: a command that does not read its
    // input must not stall us on a full window, and EOF is always sent so a
    // command that reads stdin never waits forever.
    let feeder = tokio::spawn(async move {
        if let Some(input) = stdin {
            writer.data(&input[..]).await?;
        }
        writer.eof().await
    });

    let mut out = Output::default();
    let mut timed_out = false;
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, reader.wait()).await {
                Ok(msg) => msg,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            },
            None => reader.wait().await,
        };
        match next {
            Some(ChannelMsg::Failure) => {
                feeder.abort();
                return Err(RequestError::remote_io(
                    "the server refused to run the command (exec request denied)",
                ));
            }
            Some(msg) => {
                if out.apply(msg) {
                    break;
                }
            }
            None => break,
        }
    }
    // A command may exit without reading all its stdin; the rest can never
    // be sent, so the feeder is stopped rather than awaited.
    feeder.abort();
    if timed_out {
        stop(handle, out.pgid).await;
        // Collect what the command printed while it was being stopped.
        let drain_until = Instant::now() + DRAIN_AFTER_STOP;
        while let Ok(Some(msg)) = tokio::time::timeout_at(drain_until, reader.wait()).await {
            if out.apply(msg) {
                break;
            }
        }
    }
    Ok(out.finish(timed_out))
}

/// Stops the process group `pgid` over a second channel. Failures are logged,
/// not returned: the caller's result (a timeout) stands either way.
async fn stop(handle: &SshHandle, pgid: Option<u32>) {
    let Some(pgid) = pgid else {
        tracing::warn!("cannot stop a timed-out command: its process group is unknown");
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
        Ok(()) => tracing::info!(pgid, "stopped timed-out command"),
        Err(e) => tracing::warn!(pgid, "could not stop timed-out command: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::CryptoVec;

    fn data(s: &[u8]) -> ChannelMsg {
        ChannelMsg::Data {
            data: CryptoVec::from_slice(s).to_vec().into(),
        }
    }

    #[test]
    fn pid_line_is_stripped_across_packets() {
        let mut out = Output::default();
        out.apply(data(b"12"));
        out.apply(data(b"34\nhello"));
        out.apply(data(b" world\n"));
        assert_eq!(out.pgid, Some(1234));
        assert_eq!(out.finish(false).stdout, b"hello world\n");
    }

    #[test]
    fn odd_preamble_output_is_not_a_pid() {
        let mut out = Output::default();
        out.apply(data(b"$$\nrest\n"));
        assert_eq!(out.pgid, None);
        assert_eq!(out.finish(false).stdout, b"rest\n");
    }

    #[test]
    fn output_without_newline_is_not_lost_after_the_preamble() {
        let mut out = Output::default();
        out.apply(data(b"7\nno newline"));
        assert_eq!(out.pgid, Some(7));
        assert_eq!(out.finish(false).stdout, b"no newline");
    }

    #[test]
    fn output_is_capped() {
        let mut c = Capped::default();
        c.push(&vec![b'x'; MAX_OUTPUT_BYTES - 1]);
        c.push(b"abc");
        assert!(c.truncated);
        assert_eq!(c.bytes.len(), MAX_OUTPUT_BYTES);
    }

    #[test]
    fn signal_clears_exit_status() {
        let mut out = Output::default();
        out.apply(ChannelMsg::ExitSignal {
            signal_name: Sig::KILL,
            core_dumped: false,
            error_message: String::new(),
            lang_tag: String::new(),
        });
        out.apply(ChannelMsg::ExitStatus { exit_status: 137 });
        let r = out.finish(false);
        assert_eq!(r.signal.as_deref(), Some("KILL"));
        assert_eq!(r.exit_status, None);
    }
}
