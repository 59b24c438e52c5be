//! The handshake. Its layout is frozen forever, outside bincode, so that any
//! two versions of sshmcp can read each other's protocol version:
//!
//! ```text
//! Hello:      magic "SSHMCP\0\n" (8 bytes) | proto_version u32 LE | software_len u8 | software (UTF-8)
//! HelloReply: magic "SSHMCP\0\n" (8 bytes) | proto_version u32 LE | status u8 | software_len u8 | software (UTF-8)
//! ```
//!
//! `status` is 0 when the daemon accepts the connection and 1 when the
//! versions differ, after which the daemon closes the connection.
//!
//! The daemon's `software` string is `NAME VERSION`, then facts a client of
//! any version may need when the versions differ, each as `; key=value` or
//! `; flag` ([`DaemonFacts`]): whether it may be stopped and replaced.

use crate::ProtoError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const HELLO_MAGIC: [u8; 8] = *b"SSHMCP\0\n";

/// What a client says first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub proto_version: u32,
    /// The client's software name and version, for logs and error messages.
    pub software: String,
}

/// Whether the daemon will talk to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloStatus {
    Accepted,
    VersionMismatch,
}

/// What the daemon answers to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    pub proto_version: u32,
    pub status: HelloStatus,
    /// The daemon's software name and version.
    pub software: String,
}

fn software_bytes(s: &str) -> &[u8] {
    // Truncate on a char boundary to the 255 bytes the length byte allows.
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// What a daemon says about itself in its hello, readable whatever its
/// protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonFacts {
    /// Open sessions; `None` from a daemon that does not say.
    pub sessions: Option<u64>,
    /// systemd handed the daemon its socket: clients must not replace it.
    pub socket_activated: bool,
}

impl DaemonFacts {
    /// `software` with these facts appended.
    pub fn describe(&self, software: &str) -> String {
        let mut out = software.to_owned();
        if let Some(n) = self.sessions {
            out.push_str(&format!("; sessions={n}"));
        }
        if self.socket_activated {
            out.push_str("; socket-activated");
        }
        out
    }

    /// The facts in a daemon's software string; unknown ones are ignored.
    pub fn parse(software: &str) -> Self {
        let mut facts = DaemonFacts::default();
        for part in software.split(';').skip(1).map(str::trim) {
            match part.split_once('=') {
                Some(("sessions", n)) => facts.sessions = n.trim().parse().ok(),
                None if part == "socket-activated" => facts.socket_activated = true,
                _ => {}
            }
        }
        facts
    }
}

async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<u32, ProtoError> {
    let mut magic = [0u8; 8];
    read_exact(r, &mut magic).await?;
    if magic != HELLO_MAGIC {
        return Err(ProtoError::BadMagic);
    }
    let mut version = [0u8; 4];
    read_exact(r, &mut version).await?;
    Ok(u32::from_le_bytes(version))
}

async fn read_software<R: AsyncRead + Unpin>(r: &mut R) -> Result<String, ProtoError> {
    let mut len = [0u8; 1];
    read_exact(r, &mut len).await?;
    let mut buf = vec![0u8; len[0].into()];
    read_exact(r, &mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), ProtoError> {
    r.read_exact(buf)
        .await
        .map(drop)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ProtoError::Truncated,
            _ => ProtoError::Io(e),
        })
}

impl Hello {
    pub fn current(software: impl Into<String>) -> Self {
        Hello {
            proto_version: crate::PROTOCOL_VERSION,
            software: software.into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let software = software_bytes(&self.software);
        let mut buf = Vec::with_capacity(13 + software.len());
        buf.extend_from_slice(&HELLO_MAGIC);
        buf.extend_from_slice(&self.proto_version.to_le_bytes());
        buf.push(software.len() as u8);
        buf.extend_from_slice(software);
        buf
    }

    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> Result<(), ProtoError> {
        w.write_all(&self.to_bytes()).await?;
        w.flush().await?;
        Ok(())
    }

    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, ProtoError> {
        let proto_version = read_head(r).await?;
        let software = read_software(r).await?;
        Ok(Hello {
            proto_version,
            software,
        })
    }
}

impl HelloReply {
    pub fn to_bytes(&self) -> Vec<u8> {
        let software = software_bytes(&self.software);
        let mut buf = Vec::with_capacity(14 + software.len());
        buf.extend_from_slice(&HELLO_MAGIC);
        buf.extend_from_slice(&self.proto_version.to_le_bytes());
        buf.push(match self.status {
            HelloStatus::Accepted => 0,
            HelloStatus::VersionMismatch => 1,
        });
        buf.push(software.len() as u8);
        buf.extend_from_slice(software);
        buf
    }

    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> Result<(), ProtoError> {
        w.write_all(&self.to_bytes()).await?;
        w.flush().await?;
        Ok(())
    }

    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, ProtoError> {
        let proto_version = read_head(r).await?;
        let mut status = [0u8; 1];
        read_exact(r, &mut status).await?;
        let status = match status[0] {
            0 => HelloStatus::Accepted,
            // Any other value means the daemon will not talk to us; a future
            // daemon may add reasons, all of which read as a mismatch here.
            _ => HelloStatus::VersionMismatch,
        };
        let software = read_software(r).await?;
        Ok(HelloReply {
            proto_version,
            status,
            software,
        })
    }
}
