use thiserror::Error;

/// What can go wrong reading or writing the wire format.
#[derive(Debug, Error)]
pub enum ProtoError {
    #[error("socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes is larger than the {max}-byte limit")]
    FrameTooLarge { len: u64, max: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("message could not be encoded: {0}")]
    Encode(String),
    #[error("peer is not an sshmcp endpoint (bad hello magic)")]
    BadMagic,
    #[error(
        "protocol version mismatch: this side speaks {ours}, the peer speaks {theirs} (peer software {peer_software})"
    )]
    VersionMismatch {
        ours: u32,
        theirs: u32,
        peer_software: String,
    },
}
