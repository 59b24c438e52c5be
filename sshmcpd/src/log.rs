//! The daemon's log file: appended to, and kept small. When a write would
//! take it past its cap, the file becomes `<name>.1` (replacing the one
//! before) and a new file starts, so a daemon left running for weeks keeps at
//! most two files' worth of log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// The cap on one log file.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

pub struct RotatingLog {
    path: PathBuf,
    max: u64,
    state: Mutex<State>,
}

struct State {
    file: File,
    size: u64,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RotatingLog {
    /// Opens (or creates) the log at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path, max: u64) -> io::Result<Self> {
        let (file, size) = open(path)?;
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max,
            state: Mutex::new(State { file, size }),
        })
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.size > 0 && state.size + buf.len() as u64 > self.max {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            let (file, size) = open(&self.path)?;
            *state = State { file, size };
        }
        state.file.write_all(buf)?;
        state.size += buf.len() as u64;
        Ok(buf.len())
    }
}

/// One event's write, handed out by [`RotatingLog`] to tracing.
pub struct LogWriter<'a>(&'a RotatingLog);

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RotatingLog {
    type Writer = LogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_past_its_cap_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.log");
        let log = RotatingLog::open(&path, 20).unwrap();
        let mut w = log.make_writer();
        w.write_all(b"first line 123\n").unwrap();
        w.write_all(b"second line 45\n").unwrap();
        w.write_all(b"third line 678\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third line 678\n");
        let old = dir.path().join("d.log.1");
        assert_eq!(std::fs::read_to_string(old).unwrap(), "second line 45\n");
    }
}
