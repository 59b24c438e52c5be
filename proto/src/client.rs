//! A minimal client for one connection: hello, then requests matched to
//! responses by id. It knows nothing of socket paths or daemon start-up;
//! those are the callers' policy.

use crate::{
    ClientMessage, Hello, HelloReply, HelloStatus, PROTOCOL_VERSION, ProtoError, Request, Response,
    ServerMessage, read_message, write_message,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, WriteHalf};
use tokio::sync::oneshot;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("the daemon closed the connection before answering")]
    Closed,
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Response>>>>>;

/// A handshaken connection to the daemon. Cheap to share behind an `Arc`:
/// several calls may be in flight at once.
pub struct Client<S> {
    writer: tokio::sync::Mutex<WriteHalf<S>>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
    daemon_software: String,
    reader: tokio::task::JoinHandle<()>,
}

impl<S> Drop for Client<S> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Client<S> {
    /// Performs the hello exchange on `stream`.
    ///
    /// # Errors
    /// [`ProtoError::VersionMismatch`] when the daemon speaks another
    /// protocol version; [`ProtoError::BadMagic`] when the peer is not an
    /// sshmcp daemon.
    pub async fn handshake(mut stream: S, software: &str) -> Result<Self, ClientError>
    where
        S: Unpin,
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
        let (mut read, write) = tokio::io::split(stream);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(msg)) = read_message::<ServerMessage, _>(&mut read).await {
                let waiter = reader_pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                    .and_then(|p| p.remove(&msg.id));
                if let Some(waiter) = waiter {
                    // The caller may have given up; nothing to do then.
                    drop(waiter.send(msg.response));
                }
            }
            // Connection gone: fail every waiter by dropping its sender, and
            // refuse new registrations.
            reader_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
        });
        Ok(Client {
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: std::sync::atomic::AtomicU64::new(1),
            daemon_software: reply.software,
            reader,
        })
    }

    /// The daemon's software name and version from its hello.
    pub fn daemon_software(&self) -> &str {
        &self.daemon_software
    }

    /// Sends one request and waits for its response.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection ends first.
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(p) => p.insert(id, tx),
            None => return Err(ClientError::Closed),
        };
        let sent = {
            let mut w = self.writer.lock().await;
            write_message(&mut *w, &ClientMessage { id, request }).await
        };
        if let Err(e) = sent {
            if let Some(p) = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                p.remove(&id);
            }
            return Err(e.into());
        }
        rx.await.map_err(|_| ClientError::Closed)
    }
}
