//! File transfers over SFTP.
//!
//! Both directions write to a temporary name beside the destination and
//! rename it into place only when every byte has arrived and the file is
//! closed without error, so a failed transfer never leaves a truncated file at
//! the destination and an existing destination is replaced whole or not at
//! all. Reads and writes are pipelined (`IN_FLIGHT` requests of `CHUNK`
//! bytes) because one request per round trip is several times slower.

use super::SshHandle;
use crate::call::{CallContext, PROGRESS_INTERVAL};
use crate::error::RequestError;
use crate::file_sink::FileSink;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use sshmcp_proto::{ErrorKind, TransferRequest, TransferResult};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
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

    /// Creates remote directory `path` unless a directory is already there.
    async fn ensure_dir(&self, path: &str, mode: u32) -> Result<(), RequestError> {
        match self.stat(path).await {
            Ok(Some(attrs)) if attrs.is_dir() => return Ok(()),
            Ok(Some(_)) => {
                return Err(RequestError::remote_io(format!(
                    "remote path {path} exists and is not a directory"
                )));
            }
            Ok(None) => {}
            Err(e) => return Err(remote_error("checking", path, &e)),
        }
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        self.raw
            .mkdir(path, attrs)
            .await
            .map(drop)
            .map_err(|e| remote_error("creating the directory", path, &e))
    }

    /// Makes remote `path` a symlink to `target`, replacing a link already
    /// there. OpenSSH's sftp-server reads SSH_FXP_SYMLINK's two paths in the
    /// opposite order from the draft that russh-sftp follows, so the target
    /// goes first.
    async fn make_symlink(&self, path: &str, target: &str) -> Result<(), RequestError> {
        if let Ok(attrs) = self.raw.lstat(path).await
            && attrs.attrs.file_type().is_symlink()
        {
            self.raw
                .remove(path)
                .await
                .map_err(|e| remote_error("replacing the link", path, &e))?;
        }
        self.raw
            .symlink(target, path)
            .await
            .map(drop)
            .map_err(|e| remote_error("creating the link", path, &e))
    }

    /// The entries of remote directory `path` (without `.` and `..`), with
    /// their attributes as the server lists them (links not followed).
    async fn list(&self, path: &str) -> Result<Vec<(String, FileAttributes)>, RequestError> {
        let handle = self
            .raw
            .opendir(path)
            .await
            .map_err(|e| remote_error("listing", path, &e))?
            .handle;
        let mut entries = Vec::new();
        let listed = loop {
            match self.raw.readdir(handle.as_str()).await {
                Ok(name) => entries.extend(
                    name.files
                        .into_iter()
                        .filter(|f| f.filename != "." && f.filename != "..")
                        .map(|f| (f.filename, f.attrs)),
                ),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(remote_error("listing", path, &e)),
            }
        };
        if let Err(e) = self.raw.close(handle.as_str()).await {
            tracing::debug!("closing a remote directory listing: {e}");
        }
        listed?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    async fn remove_quietly(&self, path: &str) {
        if let Err(e) = self.raw.remove(path).await {
            tracing::warn!(path, "could not remove temporary file: {e}");
        }
    }
}

/// Bytes moved so far across a whole transfer, reported at most once per
/// [`PROGRESS_INTERVAL`].
struct Meter<'a> {
    ctx: &'a CallContext,
    done: u64,
    total: Option<u64>,
    last: Instant,
}

impl<'a> Meter<'a> {
    fn new(ctx: &'a CallContext, total: Option<u64>) -> Self {
        Meter {
            ctx,
            done: 0,
            total,
            last: Instant::now(),
        }
    }

    fn add(&mut self, n: u64) {
        self.done += n;
        if self.ctx.wants_progress() && self.last.elapsed() >= PROGRESS_INTERVAL {
            self.last = Instant::now();
            self.ctx.report(self.done, self.total);
        }
    }
}

fn cancelled() -> RequestError {
    RequestError::new(
        ErrorKind::Cancelled,
        "the transfer was cancelled; its temporary file was removed and the destination is untouched",
    )
}

/// What a tree copy has done so far.
#[derive(Default)]
struct Tally {
    files: u64,
    bytes: u64,
    replaced: bool,
    notes: Vec<String>,
    skipped: Vec<String>,
}

impl Tally {
    fn into_result(self, local_path: String, remote_path: String) -> TransferResult {
        TransferResult {
            local_path,
            remote_path,
            bytes: self.bytes,
            replaced: self.replaced,
            notes: self.notes,
            files: self.files,
            skipped: self.skipped,
            reconnected: false,
        }
    }
}

fn mtime_of(meta: &std::fs::Metadata) -> Option<u32> {
    u32::try_from(meta.mtime()).ok()
}

/// Uploads `req.local_path` to `req.remote_path`: one file (into the remote
/// path when it is a directory) or, with `recursive`, a directory tree.
///
/// # Errors
/// `LocalIo` for an unreadable local file; `RemoteIo` for remote failures;
/// `Cancelled` when the call was cancelled.
pub async fn upload(
    handle: &SshHandle,
    req: &TransferRequest,
    ctx: &CallContext,
) -> Result<TransferResult, RequestError> {
    let local_path = req.local_path.as_str();
    let meta = std::fs::metadata(local_path)
        .map_err(|e| RequestError::local_io(format!("cannot read local path {local_path}: {e}")))?;
    let sftp = Sftp::open(handle).await?;
    let local_name = Path::new(local_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = sftp
        .stat(&req.remote_path)
        .await
        .map_err(|e| remote_error("checking", &req.remote_path, &e))?;
    let into_dir = existing.as_ref().is_some_and(FileAttributes::is_dir);
    let target = if into_dir {
        join_remote(&req.remote_path, &local_name)
    } else {
        req.remote_path.clone()
    };
    if meta.is_dir() {
        if !req.recursive {
            return Err(RequestError::bad_request(format!(
                "local path {local_path} is a directory; pass recursive: true to copy the tree"
            )));
        }
        let mut tally = Tally::default();
        let mut meter = Meter::new(ctx, None);
        upload_tree(
            &sftp,
            Path::new(local_path),
            &target,
            req.preserve,
            &mut meter,
            &mut tally,
        )
        .await?;
        return Ok(tally.into_result(local_path.to_owned(), sftp.realpath(&target).await));
    }
    if !meta.is_file() {
        return Err(RequestError::local_io(format!(
            "local path {local_path} is not a regular file or directory"
        )));
    }
    let (dir, name) = split_remote(&target);
    if name.is_empty() {
        return Err(RequestError::bad_request(format!(
            "remote path {:?} names no file",
            req.remote_path
        )));
    }
    let mut meter = Meter::new(ctx, Some(meta.len()));
    let sent = upload_file(
        &sftp,
        Path::new(local_path),
        &meta,
        &target,
        req.preserve,
        &mut meter,
    )
    .await?;
    Ok(TransferResult {
        local_path: local_path.to_owned(),
        remote_path: join_remote(&sftp.realpath(&dir).await, &name),
        bytes: sent.bytes,
        replaced: sent.replaced,
        notes: sent.note.into_iter().collect(),
        files: 1,
        skipped: Vec::new(),
        reconnected: false,
    })
}

/// One file's upload.
struct Sent {
    bytes: u64,
    replaced: bool,
    note: Option<String>,
}

/// Uploads one regular file to exactly `target` through a temporary file
/// beside it.
async fn upload_file(
    sftp: &Sftp,
    local_path: &Path,
    meta: &std::fs::Metadata,
    target: &str,
    preserve: bool,
    meter: &mut Meter<'_>,
) -> Result<Sent, RequestError> {
    let shown = local_path.display().to_string();
    let mut local = tokio::fs::File::open(local_path)
        .await
        .map_err(|e| RequestError::local_io(format!("cannot open local file {shown}: {e}")))?;
    let existing = sftp
        .stat(target)
        .await
        .map_err(|e| remote_error("checking", target, &e))?;
    if existing.as_ref().is_some_and(FileAttributes::is_dir) {
        return Err(RequestError::bad_request(format!(
            "remote path {target} is a directory; give a file path"
        )));
    }
    let (dir, name) = split_remote(target);
    let temp = join_remote(&dir, &temp_name(&name));
    let mode = match (&existing, preserve) {
        (Some(attrs), false) => attrs.permissions.unwrap_or(meta.mode()),
        _ => meta.mode(),
    } & 0o7777;
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

    let written = send_file(&sftp.raw, &file, &mut local, &shown, meter).await;
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
    if preserve && let Some(mtime) = mtime_of(meta) {
        let times = FileAttributes {
            atime: u32::try_from(meta.atime()).ok(),
            mtime: Some(mtime),
            ..FileAttributes::empty()
        };
        if let Err(e) = sftp.raw.setstat(temp.as_str(), times).await {
            sftp.remove_quietly(&temp).await;
            return Err(remote_error("setting the modification time of", &temp, &e));
        }
    }
    let note = match sftp.replace(&temp, target, existing.is_some()).await {
        Ok(note) => note,
        Err(e) => {
            sftp.remove_quietly(&temp).await;
            return Err(remote_error(
                "renaming the upload into place at",
                target,
                &e,
            ));
        }
    };
    Ok(Sent {
        bytes,
        replaced: existing.is_some(),
        note,
    })
}

/// Copies the local tree at `root` to `target` (created if missing).
async fn upload_tree(
    sftp: &Sftp,
    root: &Path,
    target: &str,
    preserve: bool,
    meter: &mut Meter<'_>,
    tally: &mut Tally,
) -> Result<(), RequestError> {
    let mut dirs = vec![(root.to_path_buf(), target.to_owned())];
    while let Some((local_dir, remote_dir)) = dirs.pop() {
        if meter.ctx.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let meta = std::fs::metadata(&local_dir).map_err(|e| {
            RequestError::local_io(format!("cannot read {}: {e}", local_dir.display()))
        })?;
        sftp.ensure_dir(&remote_dir, meta.mode() & 0o7777).await?;
        let mut entries: Vec<_> = std::fs::read_dir(&local_dir)
            .map_err(|e| {
                RequestError::local_io(format!("cannot list {}: {e}", local_dir.display()))
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                RequestError::local_io(format!("cannot list {}: {e}", local_dir.display()))
            })?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tally
                    .skipped
                    .push(format!("{} (name is not valid UTF-8)", path.display()));
                continue;
            };
            let remote = join_remote(&remote_dir, &name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| {
                RequestError::local_io(format!("cannot read {}: {e}", path.display()))
            })?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let link = std::fs::read_link(&path).map_err(|e| {
                    RequestError::local_io(format!("cannot read link {}: {e}", path.display()))
                })?;
                match link.to_str() {
                    Some(link) => sftp.make_symlink(&remote, link).await?,
                    None => tally.skipped.push(format!(
                        "{} (link target is not valid UTF-8)",
                        path.display()
                    )),
                }
            } else if kind.is_dir() {
                dirs.push((path, remote));
            } else if kind.is_file() {
                let sent = upload_file(sftp, &path, &meta, &remote, preserve, meter).await?;
                tally.files += 1;
                tally.bytes += sent.bytes;
                tally.replaced |= sent.replaced;
                tally.notes.extend(sent.note);
            } else {
                tally.skipped.push(format!(
                    "{} (not a regular file, directory or link)",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Streams `local` into the open remote handle with pipelined writes.
async fn send_file(
    raw: &Arc<RawSftpSession>,
    handle: &str,
    local: &mut tokio::fs::File,
    local_path: &str,
    meter: &mut Meter<'_>,
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
            in_flight.spawn(async move {
                let n = buf.len() as u64;
                raw.write(handle, at, buf).await.map(|_| n)
            });
            offset += filled as u64;
        }
        let joined = tokio::select! {
            joined = in_flight.join_next() => joined,
            () = meter.ctx.cancel.cancelled() => return Err(cancelled()),
        };
        match joined {
            None => return Ok(offset),
            Some(Ok(Ok(n))) => meter.add(n),
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

/// Downloads `req.remote_path` to `req.local_path`: one file (into the local
/// path when it is a directory) or, with `recursive`, a directory tree.
///
/// # Errors
/// `RemoteIo` for a missing or unreadable remote file; `LocalIo` when the
/// local destination cannot be written; `Cancelled` when the call was
/// cancelled.
pub async fn download(
    handle: &SshHandle,
    req: &TransferRequest,
    ctx: &CallContext,
) -> Result<TransferResult, RequestError> {
    let remote_path = req.remote_path.as_str();
    let sftp = Sftp::open(handle).await?;
    let attrs = sftp
        .stat(remote_path)
        .await
        .map_err(|e| remote_error("checking", remote_path, &e))?
        .ok_or_else(|| {
            RequestError::remote_io(format!(
                "remote path {remote_path} does not exist; check the path (relative remote \
                 paths start in the login directory)"
            ))
        })?;
    let resolved_remote = sftp.realpath(remote_path).await;
    let (_, remote_name) = split_remote(&resolved_remote);
    let mut target = PathBuf::from(&req.local_path);
    if target.is_dir() {
        target.push(&remote_name);
    }
    if attrs.is_dir() {
        if !req.recursive {
            return Err(RequestError::bad_request(format!(
                "remote path {remote_path} is a directory; pass recursive: true to copy the tree"
            )));
        }
        let mut tally = Tally::default();
        let mut meter = Meter::new(ctx, None);
        download_tree(
            &sftp,
            &resolved_remote,
            &target,
            req.preserve,
            &mut meter,
            &mut tally,
        )
        .await?;
        return Ok(tally.into_result(target.display().to_string(), resolved_remote));
    }
    let mut meter = Meter::new(ctx, attrs.size);
    let got = download_file(
        &sftp,
        remote_path,
        &attrs,
        &target,
        req.preserve,
        &mut meter,
    )
    .await?;
    Ok(TransferResult {
        local_path: target.display().to_string(),
        remote_path: resolved_remote,
        bytes: got.bytes,
        replaced: got.replaced,
        notes: Vec::new(),
        files: 1,
        skipped: Vec::new(),
        reconnected: false,
    })
}

/// Downloads one remote regular file to exactly `target` through a
/// temporary file beside it.
async fn download_file(
    sftp: &Sftp,
    remote_path: &str,
    attrs: &FileAttributes,
    target: &Path,
    preserve: bool,
    meter: &mut Meter<'_>,
) -> Result<Sent, RequestError> {
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
    let existing = std::fs::metadata(target).ok();
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
    let mode = match (&existing, preserve) {
        (Some(m), false) => Some(m.mode()),
        _ => attrs.permissions,
    }
    .unwrap_or(0o644)
        & 0o7777;
    let local = tokio::fs::OpenOptions::new()
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
    let mut sink = FileSink::new(local.into_std().await);

    let remote = match sftp
        .raw
        .open(remote_path, OpenFlags::READ, FileAttributes::empty())
        .await
    {
        Ok(h) => h.handle,
        Err(e) => {
            drop(sink.finish().await);
            remove_local_quietly(&temp);
            return Err(remote_error("opening", remote_path, &e));
        }
    };
    let received = receive_file(&sftp.raw, &remote, &mut sink, &temp, meter).await;
    if let Err(e) = sftp.raw.close(remote.as_str()).await {
        tracing::debug!("closing remote file after download: {e}");
    }
    let written = sink.finish().await;
    let mtime = attrs
        .mtime
        .filter(|_| preserve)
        .map(|t| UNIX_EPOCH + Duration::from_secs(t.into()));
    let finished = match (received, written) {
        (Ok(bytes), Ok(local)) => {
            finish_local(tokio::fs::File::from_std(local), &temp, target, mode, mtime)
                .await
                .map(|()| bytes)
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(RequestError::local_io(format!(
            "writing {} failed: {e}",
            temp.display()
        ))),
    };
    match finished {
        Ok(bytes) => Ok(Sent {
            bytes,
            replaced: existing.is_some(),
            note: None,
        }),
        Err(e) => {
            remove_local_quietly(&temp);
            Err(e)
        }
    }
}

/// Copies the remote tree at `root` to the local `target` (created if
/// missing).
async fn download_tree(
    sftp: &Sftp,
    root: &str,
    target: &Path,
    preserve: bool,
    meter: &mut Meter<'_>,
    tally: &mut Tally,
) -> Result<(), RequestError> {
    let mut dirs = vec![(root.to_owned(), target.to_path_buf())];
    while let Some((remote_dir, local_dir)) = dirs.pop() {
        if meter.ctx.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let attrs = sftp
            .stat(&remote_dir)
            .await
            .map_err(|e| remote_error("checking", &remote_dir, &e))?
            .unwrap_or_default();
        ensure_local_dir(&local_dir, attrs.permissions.unwrap_or(0o755) & 0o7777)?;
        for (name, attrs) in sftp.list(&remote_dir).await? {
            let remote = join_remote(&remote_dir, &name);
            if name.contains(char::REPLACEMENT_CHARACTER) {
                tally
                    .skipped
                    .push(format!("{remote} (name is not valid UTF-8)"));
                continue;
            }
            let local = local_dir.join(&name);
            let kind = attrs.file_type();
            if kind.is_symlink() {
                let link = sftp
                    .raw
                    .readlink(remote.as_str())
                    .await
                    .map_err(|e| remote_error("reading the link", &remote, &e))?
                    .files
                    .into_iter()
                    .next()
                    .map(|f| f.filename)
                    .unwrap_or_default();
                replace_local_symlink(&local, &link)?;
            } else if kind.is_dir() {
                dirs.push((remote, local));
            } else if kind.is_file() {
                let got = download_file(sftp, &remote, &attrs, &local, preserve, meter).await?;
                tally.files += 1;
                tally.bytes += got.bytes;
                tally.replaced |= got.replaced;
            } else {
                tally
                    .skipped
                    .push(format!("{remote} (not a regular file, directory or link)"));
            }
        }
    }
    Ok(())
}

fn ensure_local_dir(dir: &Path, mode: u32) -> Result<(), RequestError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(RequestError::local_io(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Err(_) => {
            std::fs::create_dir(dir).map_err(|e| {
                RequestError::local_io(format!("cannot create {}: {e}", dir.display()))
            })?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|e| {
                RequestError::local_io(format!("cannot set the mode of {}: {e}", dir.display()))
            })
        }
    }
}

/// Makes `path` a symlink to `target`, replacing a link already there (but
/// never a file or directory).
fn replace_local_symlink(path: &Path, target: &str) -> Result<(), RequestError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(path).map_err(|e| {
            RequestError::local_io(format!("cannot replace link {}: {e}", path.display()))
        })?;
    }
    std::os::unix::fs::symlink(target, path)
        .map_err(|e| RequestError::local_io(format!("cannot create link {}: {e}", path.display())))
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
    mtime: Option<SystemTime>,
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
    let local = local.into_std().await;
    if let Some(mtime) = mtime {
        local
            .set_times(std::fs::FileTimes::new().set_modified(mtime))
            .map_err(|e| fail("setting the modification time of", e))?;
    }
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
    local: &mut FileSink,
    temp: &Path,
    meter: &mut Meter<'_>,
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
        let joined = tokio::select! {
            joined = in_flight.join_next() => joined,
            () = meter.ctx.cancel.cancelled() => return Err(cancelled()),
        };
        let Some(joined) = joined else {
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
            let n = piece.len() as u64;
            local.write(piece).await.map_err(|e| {
                RequestError::local_io(format!("writing {} failed: {e}", temp.display()))
            })?;
            cursor += n;
            meter.add(n);
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
