//! What a running call gets from the connection that asked for it: a token
//! that says "stop" (the client cancelled, left, or the daemon is shutting
//! down) and, when the client asked, a way to report progress.

use sshmcp_proto::{Progress, Response, ServerMessage};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often long calls report progress, when asked to.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone)]
pub struct CallContext {
    pub cancel: CancellationToken,
    progress: Option<ProgressSink>,
}

#[derive(Clone)]
struct ProgressSink {
    id: u64,
    out: mpsc::Sender<ServerMessage>,
    started: Instant,
}

impl CallContext {
    pub fn new(
        cancel: CancellationToken,
        id: u64,
        progress: Option<mpsc::Sender<ServerMessage>>,
    ) -> Self {
        CallContext {
            cancel,
            progress: progress.map(|out| ProgressSink {
                id,
                out,
                started: Instant::now(),
            }),
        }
    }

    /// A context nobody cancels and nobody watches (internal calls, tests).
    pub fn detached() -> Self {
        CallContext {
            cancel: CancellationToken::new(),
            progress: None,
        }
    }

    pub fn wants_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Reports progress if the client asked for it. A full connection queue
    /// drops the report: the next one carries newer numbers anyway.
    pub fn report(&self, done: u64, total: Option<u64>) {
        if let Some(sink) = &self.progress {
            let msg = ServerMessage {
                id: sink.id,
                response: Response::Progress(Progress {
                    elapsed_ms: sink.started.elapsed().as_millis() as u64,
                    done,
                    total,
                }),
            };
            if sink.out.try_send(msg).is_err() {
                tracing::trace!(id = sink.id, "progress report dropped");
            }
        }
    }
}
