//! The one place bincode is used, so that swapping the codec is a one-file
//! change.
//!
//! RUSTSEC-2025-0141 marks bincode as unmaintained, and bincode 3.0.0 is an
//! empty tombstone release; the workspace pins `=2.0.1`. The configuration is
//! pinned here too: little-endian, variable-length integers, and a decode
//! limit that grows with the frame, so a length inside a small frame cannot
//! make the decoder allocate much more than the frame itself holds.
//!
//! bincode allocates a string or byte buffer as soon as it reads its length,
//! before it finds the input too short; its limit is what stops it, and the
//! limit is a type parameter. So it comes in steps: 16 times the frame's
//! size at least (fixed-size integers count their full width against it,
//! up to 8 times their varint bytes), the frame cap at most.

use crate::{MAX_FRAME_LEN, ProtoError};
use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Serialize, de::DeserializeOwned};

type Config<const LIMIT: usize> = Configuration<LittleEndian, Varint, Limit<LIMIT>>;

const fn config<const LIMIT: usize>() -> Config<LIMIT> {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<LIMIT>()
}

const CONFIG: Config<{ MAX_FRAME_LEN as usize }> = config();

const KIB: usize = 1024;

/// Encodes a message body (without the length prefix).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtoError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| ProtoError::Encode(e.to_string()))
}

/// Decodes a message body; trailing bytes are an error, so a frame holds
/// exactly one message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    match bytes.len() {
        0..=4096 => decode_with(bytes, config::<{ 128 * KIB }>()),
        4097..=65_536 => decode_with(bytes, config::<{ 2048 * KIB }>()),
        65_537..=1_048_576 => decode_with(bytes, config::<{ 32 * 1024 * KIB }>()),
        _ => decode_with(bytes, CONFIG),
    }
}

fn decode_with<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
    config: Config<LIMIT>,
) -> Result<T, ProtoError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| ProtoError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(ProtoError::Decode(format!(
            "{} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}
