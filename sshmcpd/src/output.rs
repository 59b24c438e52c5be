//! Capturing one output stream of a command with bounded memory: the first
//! and last bytes inline for the model, everything (up to a cap) in a spill
//! file on disk that the agent can read or grep with its own tools.

use crate::file_sink::FileSink;
use sshmcp_proto::StreamOutput;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Where spilled output goes, how much of it one stream may write, and how
/// long it is kept.
#[derive(Clone, Debug)]
pub struct SpillDir {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub retention: Duration,
}

impl SpillDir {
    /// Deletes spill files older than the retention period. Errors are
    /// logged: a file that cannot be removed now is tried again next sweep.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let cutoff = SystemTime::now() - self.retention;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old && let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), "cannot remove old output: {e}");
            }
        }
    }
}

/// One stream being captured.
pub struct Capture {
    /// Inline bytes allowed; the head and tail get half each once exceeded.
    inline: usize,
    /// The first `inline` bytes.
    head: Vec<u8>,
    /// The last `inline / 2` bytes seen after the head filled.
    tail: VecDeque<u8>,
    total: u64,
    spill: Option<Spill>,
    spill_dir: SpillDir,
    /// Names the spill file: `<call>-<stream>.log`.
    name: String,
}

struct Spill {
    path: PathBuf,
    /// `None` when the file could not be opened or a write failed.
    file: Option<FileSink>,
    /// Output gathered into [`SPILL_BUFFER`]-sized writes.
    pending: Vec<u8>,
    written: u64,
    truncated: bool,
}

/// Bytes of output handed to the spill file's writer at once.
const SPILL_BUFFER: usize = 256 * 1024;

impl Spill {
    /// Hands the gathered output to the writer; a failure ends the spill.
    async fn flush_pending(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let buf = std::mem::replace(&mut self.pending, Vec::with_capacity(SPILL_BUFFER));
        if let Err(e) = file.write(buf).await {
            tracing::warn!(path = %self.path.display(), "writing full output failed: {e}");
            self.file = None;
            self.truncated = true;
        }
    }
}

impl Capture {
    pub fn new(inline: usize, spill_dir: SpillDir, name: String) -> Self {
        Capture {
            inline,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
            spill: None,
            spill_dir,
            name,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub async fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.inline.saturating_sub(self.head.len());
        let (to_head, rest) = data.split_at(data.len().min(room));
        self.head.extend_from_slice(to_head);
        if !rest.is_empty() {
            let keep = self.inline / 2;
            if rest.len() >= keep {
                self.tail.clear();
                self.tail.extend(&rest[rest.len() - keep..]);
            } else {
                let excess = (self.tail.len() + rest.len()).saturating_sub(keep);
                self.tail.drain(..excess);
                self.tail.extend(rest);
            }
        }
        if self.spill.is_none() && self.total > self.inline as u64 {
            self.start_spill().await;
            // Everything before this chunk is in `head`, whole.
            let before = self.head.len() - to_head.len();
            let early = self.head[..before].to_vec();
            self.write_spill(&early).await;
        }
        if self.spill.is_some() {
            self.write_spill(data).await;
        }
    }

    async fn start_spill(&mut self) {
        let path = self.spill_dir.dir.join(&self.name);
        let opened = async {
            crate::paths::create_private_dir(&self.spill_dir.dir)?;
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .await
        }
        .await;
        let file = match opened {
            Ok(f) => Some(FileSink::new(f.into_std().await)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot save full output: {e}");
                None
            }
        };
        self.spill = Some(Spill {
            path,
            file,
            pending: Vec::with_capacity(SPILL_BUFFER),
            written: 0,
            truncated: false,
        });
    }

    async fn write_spill(&mut self, data: &[u8]) {
        let max = self.spill_dir.max_bytes;
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        if spill.file.is_none() {
            return;
        }
        let room = max.saturating_sub(spill.written) as usize;
        let part = &data[..data.len().min(room)];
        if part.len() < data.len() {
            spill.truncated = true;
        }
        spill.pending.extend_from_slice(part);
        spill.written += part.len() as u64;
        if spill.pending.len() >= SPILL_BUFFER {
            spill.flush_pending().await;
        }
    }

    /// Flushes the spill file and returns what the caller sees.
    pub async fn finish(mut self) -> StreamOutput {
        let (spill_path, spill_truncated) = match self.spill.take() {
            Some(mut spill) => {
                spill.flush_pending().await;
                let flushed = match spill.file.take() {
                    Some(file) => file.finish().await.map(drop).map_err(|e| {
                        tracing::warn!(path = %spill.path.display(), "writing full output failed: {e}");
                    }),
                    None => Err(()),
                };
                match flushed {
                    Ok(()) => (Some(spill.path.display().to_string()), spill.truncated),
                    Err(()) => (None, true),
                }
            }
            None => (None, false),
        };
        if self.total <= self.inline as u64 {
            return StreamOutput {
                head: self.head,
                total_bytes: self.total,
                ..StreamOutput::default()
            };
        }
        let keep = self.inline / 2;
        self.head.truncate(keep);
        let tail: Vec<u8> = self.tail.into_iter().collect();
        StreamOutput {
            omitted_bytes: self.total - (self.head.len() + tail.len()) as u64,
            head: self.head,
            tail,
            total_bytes: self.total,
            spill_path,
            spill_truncated,
        }
    }
}

/// The spill file name for one stream of one call.
pub fn spill_name(call: &str, stream: &str) -> String {
    format!("{call}-{stream}.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill_dir(tag: &str) -> SpillDir {
        SpillDir {
            dir: std::env::temp_dir().join(format!("sshmcpd-output-{tag}-{}", std::process::id())),
            max_bytes: 1000,
            retention: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn short_output_is_whole_and_not_spilled() {
        let mut c = Capture::new(10, spill_dir("short"), "a-stdout.log".into());
        c.push(b"hello").await;
        let out = c.finish().await;
        assert_eq!(out.head, b"hello");
        assert!(out.tail.is_empty() && out.spill_path.is_none());
        assert_eq!((out.total_bytes, out.omitted_bytes), (5, 0));
    }

    #[tokio::test]
    async fn long_output_keeps_head_and_tail_and_spills_everything() {
        let dir = spill_dir("long");
        let mut c = Capture::new(10, dir.clone(), "b-stdout.log".into());
        c.push(b"0123").await;
        c.push(b"456789abcdef").await;
        c.push(b"ghij").await;
        let out = c.finish().await;
        assert_eq!(out.head, b"01234");
        assert_eq!(out.tail, b"fghij");
        assert_eq!((out.total_bytes, out.omitted_bytes), (20, 10));
        let path = out.spill_path.expect("spilled");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789abcdefghij");
        assert!(!out.spill_truncated);
        std::fs::remove_dir_all(&dir.dir).unwrap();
    }

    #[tokio::test]
    async fn the_spill_file_stops_at_its_cap() {
        let dir = SpillDir {
            max_bytes: 12,
            ..spill_dir("cap")
        };
        let mut c = Capture::new(4, dir.clone(), "c-stderr.log".into());
        for _ in 0..5 {
            c.push(b"abcd").await;
        }
        let out = c.finish().await;
        assert!(out.spill_truncated);
        assert_eq!(std::fs::read(out.spill_path.unwrap()).unwrap().len(), 12);
        std::fs::remove_dir_all(&dir.dir).unwrap();
    }
}
