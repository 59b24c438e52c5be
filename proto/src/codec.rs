//! The one place bincode is used, so that swapping the codec is a one-file
//! change.
//!
//! RUSTSEC-2025-0141 marks bincode as unmaintained, and bincode 3.0.0 is an
//! empty tombstone release; the workspace pins `=2.0.1`. The configuration is
//! pinned here too: little-endian, variable-length integers, and a decode
//! limit equal to the frame cap so no length inside a frame can make the
//! decoder allocate more than the frame itself could hold.

use crate::{MAX_FRAME_LEN, ProtoError};
use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Serialize, de::DeserializeOwned};

type Config = Configuration<LittleEndian, Varint, Limit<{ MAX_FRAME_LEN as usize }>>;

const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<{ MAX_FRAME_LEN as usize }>();

/// Encodes a message body (without the length prefix).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtoError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| ProtoError::Encode(e.to_string()))
}

/// Decodes a message body; trailing bytes are an error, so a frame holds
/// exactly one message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| ProtoError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(ProtoError::Decode(format!(
            "{} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}
