//! File transfers over SFTP.
//!
//! Both directions write to a temporary name beside the destination and
//! rename it into place only when every byte has arrived and the file is
//! closed without error, so a failed transfer never leaves a truncated file at
//! the destination and an existing destination is replaced whole or not at
//! all. Reads and writes are pipelined (`IN_FLIGHT` requests of `CHUNK`
//! bytes) because one request per round trip is several times slower.

use super::SshHandle;
use crate::error::RequestError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use sshmcp_proto::{ErrorKind, TransferResult};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const CHUNK: u32 = 64 * 1024;
const IN_FLIGHT: usize = 32;
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// An SFTP subsystem on its own channel, closed when dropped.
struct Sftp {
    raw: Arc<RawSftpSession>,
    posix_rename: bool,
}

impl Drop for Sftp {
    fn drop(&mut self) {
        if let Err(e) = self.raw.close_session() {
            tracing::debug!("closing sftp session: {e}");
        }
    }
}

fn remote_error(what: &str, path: &str, e: &SftpError) -> RequestError {
    let advice = match e {
        SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile => {
            "check the path (relative remote paths start in the login directory)"
        }
        SftpError::Status(s) if s.status_code == StatusCode::PermissionDenied => {
            "the remote user lacks permission there; pick another path"
        }
        _ => "check the path and the session (list_sessions)",
    };
    RequestError::remote_io(format!(
        "{what} {path} on the remote host failed: {e}; {advice}"
    ))
}

fn is_no_such_file(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

/// Encodes an SSH `string` (u32 big-endian length, bytes).
fn ssh_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// `dir/.name.sshmcp-XXXXXXXX.tmp`: hidden, unique, and in the destination's
/// directory so the final rename never crosses a file system.
fn temp_name(name: &str) -> String {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!(".{name}.sshmcp-{}.tmp", &tag[..8])
}

fn join_remote(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a remote path into (directory, file name); the directory is "."
/// for a bare name.
fn split_remote(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => ("/".to_owned(), trimmed[1..].to_owned()),
        Some(i) => (trimmed[..i].to_owned(), trimmed[i + 1..].to_owned()),
        None => (".".to_owned(), trimmed.to_owned()),
    }
}

impl Sftp {
    async fn open(handle: &SshHandle) -> Result<Self, RequestError> {
        let fail = |e: &dyn std::fmt::Display| {
            RequestError::remote_io(format!(
                "cannot start SFTP on the remote host: {e}; the server must enable the sftp \
                 subsystem (OpenSSH: `Subsystem sftp internal-sftp`)"
            ))
        };
        let channel = handle.channel_open_session().await.map_err(|e| fail(&e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| fail(&e))?;
        let raw = RawSftpSession::new(channel.into_stream());
        let version = raw.init().await.map_err(|e| fail(&e))?;
        Ok(Sftp {
            raw: Arc::new(raw),
            posix_rename: version
                .extensions
                .get(POSIX_RENAME)
                .is_some_and(|v| v == "1"),
        })
    }

    async fn stat(&self, path: &str) -> Result<Option<FileAttributes>, SftpError> {
        match self.raw.stat(path).await {
            Ok(attrs) => Ok(Some(attrs.attrs)),
            Err(e) if is_no_such_file(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn realpath(&self, path: &str) -> String {
        match self.raw.realpath(path).await {
            Ok(name) => name
                .files
                .into_iter()
                .next()
                .map(|f| f.filename)
                .unwrap_or_else(|| path.to_owned()),
            Err(_) => path.to_owned(),
        }
    }

    /// Moves `from` over `to`, atomically when the server offers
    /// `posix-rename@openssh.com`. Returns a note when it could not be atomic.
    async fn replace(
        &self,
        from: &str,
        to: &str,
        exists: bool,
    ) -> Result<Option<String>, SftpError> {
        if self.posix_rename {
            let mut data = Vec::new();
            ssh_string(&mut data, from);
            ssh_string(&mut data, to);
            return match self.raw.extended(POSIX_RENAME, data).await? {
                Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(None),
                Packet::Status(s) => Err(SftpError::Status(s)),
                _ => Err(SftpError::UnexpectedPacket),
            };
        }
        // Plain SFTP rename refuses an existing target: remove it first.
        if exists {
            self.raw.remove(to).await?;
        }
        self.raw.rename(from, to).await?;
        Ok(exists.then(|| {
            "the server lacks posix-rename, so the old file was removed before the new one \
             was renamed into place (not atomic)"
                .to_owned()
        }))
    }

    async fn remove_quietly(&self, path: &str) {
        if let Err(e) = self.raw.remove(path).await {
            tracing::warn!(path, "could not remove temporary file: {e}");
        }
    }
}

/// Uploads `local_path` to `remote_path` (into it, when it is a directory).
///
/// # Errors
/// `LocalIo` for an unreadable local file; `RemoteIo` for remote failures.
pub async fn upload(
    handle: &SshHandle,
    local_path: &str,
    remote_path: &str,
) -> Result<TransferResult, RequestError> {
    let mut local = tokio::fs::File::open(local_path)
        .await
        .map_err(|e| RequestError::local_io(format!("cannot open local file {local_path}: {e}")))?;
    let meta = local
        .metadata()
        .await
        .map_err(|e| RequestError::local_io(format!("cannot stat local file {local_path}: {e}")))?;
    if !meta.is_file() {
        return Err(RequestError::local_io(format!(
            "local path {local_path} is not a regular file; upload sends one file at a time"
        )));
    }
    let local_name = Path::new(local_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let sftp = Sftp::open(handle).await?;
    let mut target = remote_path.to_owned();
    let mut existing = sftp
        .stat(&target)
        .await
        .map_err(|e| remote_error("checking", &target, &e))?;
    if existing.as_ref().is_some_and(FileAttributes::is_dir) {
        target = join_remote(&target, &local_name);
        existing = sftp
            .stat(&target)
            .await
            .map_err(|e| remote_error("checking", &target, &e))?;
        if existing.as_ref().is_some_and(FileAttributes::is_dir) {
            return Err(RequestError::bad_request(format!(
                "remote path {target} is a directory; give a file path"
            )));
        }
    }
    let (dir, name) = split_remote(&target);
    if name.is_empty() {
        return Err(RequestError::bad_request(format!(
            "remote path {remote_path:?} names no file"
        )));
    }
    let resolved = join_remote(&sftp.realpath(&dir).await, &name);
    let temp = join_remote(&dir, &temp_name(&name));
    let mode = existing
        .as_ref()
        .and_then(|a| a.permissions)
        .unwrap_or(meta.permissions().mode())
        & 0o7777;
    let attrs = FileAttributes {
        permissions: Some(mode),
        ..FileAttributes::empty()
    };
    let file = sftp
        .raw
        .open(
            temp.as_str(),
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE,
            attrs,
        )
        .await
        .map_err(|e| remote_error("creating a temporary file in", &dir, &e))?
        .handle;

    let written = send_file(&sftp.raw, &file, &mut local, local_path).await;
    let closed = sftp.raw.close(file.as_str()).await;
    let outcome = match (written, closed) {
        (Ok(bytes), Ok(_)) => Ok(bytes),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(remote_error("finishing the write of", &temp, &e)),
    };
    let bytes = match outcome {
        Ok(bytes) => bytes,
        Err(e) => {
            sftp.remove_quietly(&temp).await;
            return Err(e);
        }
    };
    let note = match sftp.replace(&temp, &target, existing.is_some()).await {
        Ok(note) => note,
        Err(e) => {
            sftp.remove_quietly(&temp).await;
            return Err(remote_error(
                "renaming the upload into place at",
                &target,
                &e,
            ));
        }
    };
    Ok(TransferResult {
        local_path: local_path.to_owned(),
        remote_path: resolved,
        bytes,
        replaced: existing.is_some(),
        notes: note.into_iter().collect(),
    })
}

/// Streams `local` into the open remote handle with pipelined writes.
async fn send_file(
    raw: &Arc<RawSftpSession>,
    handle: &str,
    local: &mut tokio::fs::File,
    local_path: &str,
) -> Result<u64, RequestError> {
    let mut in_flight = JoinSet::new();
    let mut offset = 0u64;
    let mut eof = false;
    loop {
        while !eof && in_flight.len() < IN_FLIGHT {
            let mut buf = vec![0u8; CHUNK as usize];
            let mut filled = 0;
            while filled < buf.len() {
                let n = local.read(&mut buf[filled..]).await.map_err(|e| {
                    RequestError::local_io(format!("reading local file {local_path} failed: {e}"))
                })?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            let raw = raw.clone();
            let handle = handle.to_owned();
            let at = offset;
            in_flight.spawn(async move { raw.write(handle, at, buf).await });
            offset += filled as u64;
        }
        match in_flight.join_next().await {
            None => return Ok(offset),
            Some(Ok(Ok(_))) => {}
            Some(Ok(Err(e))) => {
                return Err(RequestError::remote_io(format!(
                    "writing to the remote file failed: {e}; nothing was left at the destination"
                )));
            }
            Some(Err(e)) => {
                return Err(RequestError::new(
                    ErrorKind::Internal,
                    format!("an upload write task failed: {e}"),
                ));
            }
        }
    }
}

/// Downloads `remote_path` to `local_path` (into it, when it is a directory).
///
/// # Errors
/// `RemoteIo` for a missing or unreadable remote file; `LocalIo` when the
/// local destination cannot be written.
pub async fn download(
    handle: &SshHandle,
    remote_path: &str,
    local_path: &str,
) -> Result<TransferResult, RequestError> {
    let sftp = Sftp::open(handle).await?;
    let attrs = sftp
        .stat(remote_path)
        .await
        .map_err(|e| remote_error("checking", remote_path, &e))?
        .ok_or_else(|| {
            RequestError::remote_io(format!(
                "remote file {remote_path} does not exist; check the path (relative remote \
                 paths start in the login directory)"
            ))
        })?;
    if attrs.is_dir() {
        return Err(RequestError::bad_request(format!(
            "remote path {remote_path} is a directory; download fetches one file at a time"
        )));
    }
    let resolved_remote = sftp.realpath(remote_path).await;
    let (_, remote_name) = split_remote(&resolved_remote);

    let mut target = PathBuf::from(local_path);
    if target.is_dir() {
        target.push(&remote_name);
    }
    let target_display = target.display().to_string();
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    if !dir.is_dir() {
        return Err(RequestError::local_io(format!(
            "local directory {} does not exist; create it first or pick another local_path",
            dir.display()
        )));
    }
    let existing = std::fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(RequestError::bad_request(format!(
            "local path {target_display} is a directory"
        )));
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(temp_name(&file_name));
    let mode = existing
        .as_ref()
        .map(|m| m.permissions().mode())
        .or(attrs.permissions)
        .unwrap_or(0o644)
        & 0o777;
    let mut local = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .await
        .map_err(|e| {
            RequestError::local_io(format!(
                "cannot create a temporary file in {}: {e}",
                dir.display()
            ))
        })?;

    let remote = match sftp
        .raw
        .open(remote_path, OpenFlags::READ, FileAttributes::empty())
        .await
    {
        Ok(h) => h.handle,
        Err(e) => {
            drop(local);
            remove_local_quietly(&temp);
            return Err(remote_error("opening", remote_path, &e));
        }
    };
    let received = receive_file(&sftp.raw, &remote, &mut local, &temp).await;
    if let Err(e) = sftp.raw.close(remote.as_str()).await {
        tracing::debug!("closing remote file after download: {e}");
    }
    let finished = match received {
        Ok(bytes) => finish_local(local, &temp, &target, mode)
            .await
            .map(|()| bytes),
        Err(e) => Err(e),
    };
    match finished {
        Ok(bytes) => Ok(TransferResult {
            local_path: target_display,
            remote_path: resolved_remote,
            bytes,
            replaced: existing.is_some(),
            notes: Vec::new(),
        }),
        Err(e) => {
            remove_local_quietly(&temp);
            Err(e)
        }
    }
}

fn remove_local_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), "could not remove temporary file: {e}");
    }
}

async fn finish_local(
    mut local: tokio::fs::File,
    temp: &Path,
    target: &Path,
    mode: u32,
) -> Result<(), RequestError> {
    let fail = |what: &str, e: std::io::Error| {
        RequestError::local_io(format!("{what} {} failed: {e}", temp.display()))
    };
    local.flush().await.map_err(|e| fail("flushing", e))?;
    local.sync_all().await.map_err(|e| fail("syncing", e))?;
    local
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|e| fail("setting permissions on", e))?;
    drop(local);
    tokio::fs::rename(temp, target).await.map_err(|e| {
        RequestError::local_io(format!(
            "moving the download into place at {} failed: {e}",
            target.display()
        ))
    })
}

/// Reads the whole remote file with pipelined reads, writing it in order.
async fn receive_file(
    raw: &Arc<RawSftpSession>,
    handle: &str,
    local: &mut tokio::fs::File,
    temp: &Path,
) -> Result<u64, RequestError> {
    let mut in_flight = JoinSet::new();
    // Pieces that arrived ahead of the write cursor, by offset.
    let mut ready: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut cursor = 0u64;
    let mut next = 0u64;
    let mut eof_at: Option<u64> = None;
    let spawn_read = |set: &mut JoinSet<_>, at: u64, len: u32| {
        let raw = raw.clone();
        let handle = handle.to_owned();
        set.spawn(async move { (at, len, raw.read(handle, at, len).await) });
    };
    loop {
        while eof_at.is_none() && in_flight.len() < IN_FLIGHT {
            spawn_read(&mut in_flight, next, CHUNK);
            next += u64::from(CHUNK);
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (at, len, result) = joined.map_err(|e| {
            RequestError::new(
                ErrorKind::Internal,
                format!("a download read task failed: {e}"),
            )
        })?;
        match result {
            Ok(data) => {
                let n = data.data.len() as u64;
                if n == 0 {
                    eof_at = Some(eof_at.map_or(at, |e| e.min(at)));
                } else {
                    if n < u64::from(len) {
                        // A short read: ask for the rest of this piece.
                        spawn_read(&mut in_flight, at + n, len - n as u32);
                    }
                    ready.insert(at, data.data);
                }
            }
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => {
                eof_at = Some(eof_at.map_or(at, |e| e.min(at)));
            }
            Err(e) => {
                return Err(RequestError::remote_io(format!(
                    "reading the remote file failed: {e}; nothing was left at the destination"
                )));
            }
        }
        while let Some(piece) = ready.remove(&cursor) {
            local.write_all(&piece).await.map_err(|e| {
                RequestError::local_io(format!("writing {} failed: {e}", temp.display()))
            })?;
            cursor += piece.len() as u64;
        }
    }
    if eof_at != Some(cursor) || !ready.is_empty() {
        return Err(RequestError::remote_io(
            "the remote file changed size during the download; try again",
        ));
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_split() {
        assert_eq!(split_remote("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_remote("/b"), ("/".into(), "b".into()));
        assert_eq!(split_remote("b"), (".".into(), "b".into()));
        assert_eq!(split_remote("x/y/"), ("x".into(), "y".into()));
    }

    #[test]
    fn ssh_strings_are_length_prefixed() {
        let mut buf = Vec::new();
        ssh_string(&mut buf, "ab");
        assert_eq!(buf, [0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn temp_names_are_hidden_and_unique() {
        let a = temp_name("f.txt");
        assert!(a.starts_with(".f.txt.sshmcp-") && a.ends_with(".tmp"));
        assert_ne!(a, temp_name("f.txt"));
    }
}
