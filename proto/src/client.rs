//! A minimal client for one connection: hello, then requests matched to
//! responses by id. It knows nothing of socket paths or daemon start-up;
//! those are the callers' policy.

use crate::{
    ClientMessage, Hello, HelloReply, HelloStatus, PROTOCOL_VERSION, Progress, ProtoError, Request,
    Response, ServerMessage, codec, read_message, write_frame,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("the daemon closed the connection before answering")]
    Closed,
    /// The connection broke in a way other than a clean close; the text is
    /// the error that ended it.
    #[error("the connection to the daemon failed: {0}")]
    Broken(String),
}

/// A call waiting for its answer, and where its progress reports go.
struct Waiter {
    answer: oneshot::Sender<Response>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
}

/// Waiters by request id, or — once the connection is gone — why it ended.
enum Pending {
    Open(HashMap<u64, Waiter>),
    Ended(Option<String>),
}

impl Pending {
    fn ended_error(&self) -> ClientError {
        match self {
            Pending::Ended(Some(why)) => ClientError::Broken(why.clone()),
            _ => ClientError::Closed,
        }
    }
}

type Shared = Arc<Mutex<Pending>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handshaken connection to the daemon. Share it behind an `Arc`: several
/// calls may be in flight at once.
///
/// Calls are cancel-safe: a call's future may be dropped at any point (a
/// cancelled tool call) without leaving half a frame on the connection,
/// because frames are written by one writer task, never by the caller.
pub struct Client {
    /// Encoded frames for the writer task.
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    pending: Shared,
    next_id: AtomicU64,
    daemon_software: String,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Ends a call that is dropped before its answer (a cancelled tool call):
/// removes its waiter and asks the daemon to cancel it, so the remote
/// command or transfer stops instead of running on unobserved.
struct Registration<'a> {
    client: &'a Client,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let unanswered = match &mut *lock(&self.client.pending) {
            Pending::Open(waiters) => waiters.remove(&self.id).is_some(),
            Pending::Ended(_) => false,
        };
        if unanswered {
            self.client.send_cancel(self.id);
        }
    }
}

impl Client {
    /// Performs the hello exchange on `stream`.
    ///
    /// # Errors
    /// [`ProtoError::VersionMismatch`] when the daemon speaks another
    /// protocol version or refuses us; [`ProtoError::BadMagic`] when the peer
    /// is not an sshmcp daemon.
    pub async fn handshake<S>(mut stream: S, software: &str) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Hello::current(software).write(&mut stream).await?;
        let reply = HelloReply::read(&mut stream).await?;
        if reply.proto_version != PROTOCOL_VERSION || reply.status != HelloStatus::Accepted {
            return Err(ProtoError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: reply.proto_version,
                peer_software: reply.software,
            }
            .into());
        }
        let (mut read, mut write) = tokio::io::split(stream);
        let pending: Shared = Arc::new(Mutex::new(Pending::Open(HashMap::new())));

        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                match read_message::<ServerMessage, _>(&mut read).await {
                    Ok(Some(ServerMessage {
                        id,
                        response: Response::Progress(progress),
                    })) => {
                        if let Pending::Open(waiters) = &*lock(&reader_pending)
                            && let Some(sink) = waiters.get(&id).and_then(|w| w.progress.as_ref())
                        {
                            // The caller may have stopped listening; fine.
                            drop(sink.send(progress));
                        }
                    }
                    Ok(Some(msg)) => {
                        let waiter = match &mut *lock(&reader_pending) {
                            Pending::Open(waiters) => waiters.remove(&msg.id),
                            Pending::Ended(_) => None,
                        };
                        if let Some(waiter) = waiter {
                            // The caller may have given up; nothing to do then.
                            drop(waiter.answer.send(msg.response));
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            // Fail every waiter (dropping its sender) and refuse new calls.
            *lock(&reader_pending) = Pending::Ended(why);
        });

        let (outgoing, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer_pending = pending.clone();
        let writer = tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if let Err(e) = write_frame(&mut write, &frame).await {
                    *lock(&writer_pending) = Pending::Ended(Some(e.to_string()));
                    break;
                }
            }
        });

        Ok(Client {
            outgoing,
            pending,
            next_id: AtomicU64::new(1),
            daemon_software: reply.software,
            tasks: [reader, writer],
        })
    }

    /// The daemon's software name and version from its hello.
    pub fn daemon_software(&self) -> &str {
        &self.daemon_software
    }

    /// Whether the connection has ended; every call would fail.
    pub fn is_closed(&self) -> bool {
        matches!(*lock(&self.pending), Pending::Ended(_))
    }

    /// Sends one request and waits for its response.
    ///
    /// Dropping the returned future before it completes cancels the call in
    /// the daemon.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the daemon closed the connection first;
    /// [`ClientError::Broken`] when it failed otherwise;
    /// [`ProtoError::FrameTooLarge`] for a request too large to send, which
    /// leaves the connection usable.
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        self.call_inner(request, None).await
    }

    /// [`Client::call`], with the daemon's progress reports for this call
    /// sent to `progress` while it runs.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_progress(
        &self,
        request: Request,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Result<Response, ClientError> {
        self.call_inner(request, Some(progress)).await
    }

    async fn call_inner(
        &self,
        request: Request,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = codec::encode(&ClientMessage {
            id,
            request,
            progress: progress.is_some(),
        })?;
        if frame.len() > crate::MAX_FRAME_LEN as usize {
            return Err(ProtoError::FrameTooLarge {
                len: frame.len() as u64,
                max: crate::MAX_FRAME_LEN,
            }
            .into());
        }
        let (answer, rx) = oneshot::channel();
        match &mut *lock(&self.pending) {
            Pending::Open(waiters) => waiters.insert(id, Waiter { answer, progress }),
            ended => return Err(ended.ended_error()),
        };
        let _registration = Registration { client: self, id };
        if self.outgoing.send(frame).is_err() {
            return Err(lock(&self.pending).ended_error());
        }
        match rx.await {
            Ok(response) => Ok(response),
            Err(_) => Err(lock(&self.pending).ended_error()),
        }
    }

    /// Queues a [`Request::Cancel`] for call `target`; nothing waits for an
    /// answer, since the cancelled call gives it.
    fn send_cancel(&self, target: u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = ClientMessage {
            id,
            request: Request::Cancel { id: target },
            progress: false,
        };
        // Encoding this fixed, tiny message cannot fail. A closed queue means
        // the connection is gone, and the daemon cancels a gone
        // connection's calls itself.
        if let Ok(frame) = codec::encode(&msg) {
            drop(self.outgoing.send(frame));
        }
    }
}
