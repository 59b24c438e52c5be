//! A local file written on a blocking thread of its own, for the two places
//! the daemon writes hundreds of MiB: downloads and spilled output.
//!
//! `tokio::fs::File` copies every write into its own buffer and makes a
//! blocking-pool round trip per write; at hundreds of MiB/s on two cores
//! that showed in profiles as copies and scheduling next to the cipher.
//! Here the async side hands whole buffers over a bounded channel (no copy:
//! the buffer moves) and one thread writes them with plain `write_all`.
//! The channel's bound is the backpressure: a slow disk makes `write` wait
//! instead of queueing the stream in memory.

use std::fs::File;
use std::io::{self, Write};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Buffers queued for the writer at most.
const QUEUED: usize = 8;

pub struct FileSink {
    /// `None` once closed.
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// `None` once awaited: a failed write already reported its error.
    writer: Option<JoinHandle<io::Result<File>>>,
}

impl FileSink {
    /// Starts writing to `file`.
    pub fn new(mut file: File) -> FileSink {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUED);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(buf) = rx.blocking_recv() {
                file.write_all(&buf)?;
            }
            Ok(file)
        });
        FileSink {
            tx: Some(tx),
            writer: Some(writer),
        }
    }

    /// Queues `buf` to be written after everything queued before it.
    ///
    /// # Errors
    /// An earlier write failed (the writer stopped); the error is the
    /// write's own.
    pub async fn write(&mut self, buf: Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(tx) = &self.tx else {
            return Err(io::Error::other("the file is already closed"));
        };
        if tx.send(buf).await.is_ok() {
            return Ok(());
        }
        // The writer stopped on an error: that is the one to report.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("the file writer stopped early")),
        }
    }

    /// Waits until everything queued is written and returns the file.
    ///
    /// # Errors
    /// Any write failed.
    pub async fn finish(mut self) -> io::Result<File> {
        self.tx = None;
        self.join().await
    }

    /// The writer's outcome; awaited once, later calls get a plain error.
    async fn join(&mut self) -> io::Result<File> {
        match self.writer.take() {
            Some(writer) => writer
                .await
                .unwrap_or_else(|e| Err(io::Error::other(format!("the file writer failed: {e}")))),
            None => Err(io::Error::other("an earlier write to the file failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_arrive_in_order_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut sink = FileSink::new(File::create(&path).unwrap());
        let mut want = Vec::new();
        for i in 0..100u8 {
            let buf = vec![i; 1000 + usize::from(i)];
            want.extend_from_slice(&buf);
            sink.write(buf).await.unwrap();
        }
        sink.write(Vec::new()).await.unwrap();
        drop(sink.finish().await.unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported() {
        // /dev/full fails every write with ENOSPC.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut sink = FileSink::new(file);
        let mut failed = None;
        for _ in 0..2 * QUEUED + 2 {
            if let Err(e) = sink.write(vec![0; 4096]).await {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            // Finishing after a reported failure still fails, and does
            // not wait on the writer twice.
            Some(e) => {
                assert!(sink.finish().await.is_err());
                e
            }
            None => sink.finish().await.unwrap_err(),
        };
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    }
}
