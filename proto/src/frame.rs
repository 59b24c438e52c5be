use crate::{MAX_FRAME_LEN, ProtoError, codec};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one frame's payload.
///
/// Returns `Ok(None)` only when the peer closed the connection cleanly between
/// frames. A close inside a frame is [`ProtoError::Truncated`]; a length over
/// [`MAX_FRAME_LEN`] is refused before any buffer is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, ProtoError> {
    let mut len_buf = [0u8; 4];
    let mut filled = 0;
    while filled < len_buf.len() {
        let n = r.read(&mut len_buf[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(ProtoError::Truncated)
            };
        }
        filled += n;
    }
    let len = u32::from_le_bytes(len_buf);
    if len > MAX_FRAME_LEN {
        return Err(ProtoError::FrameTooLarge {
            len: len.into(),
            max: MAX_FRAME_LEN,
        });
    }
    // Grow with the bytes that actually arrive rather than trusting the
    // prefix for an allocation up front.
    let mut payload = Vec::with_capacity((len as usize).min(64 * 1024));
    let got = r.take(len.into()).read_to_end(&mut payload).await?;
    if got < len as usize {
        return Err(ProtoError::Truncated);
    }
    Ok(Some(payload))
}

/// Writes one frame (length prefix and payload) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> Result<(), ProtoError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME_LEN)
        .ok_or(ProtoError::FrameTooLarge {
            len: payload.len() as u64,
            max: MAX_FRAME_LEN,
        })?;
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads and decodes one message; `Ok(None)` at a clean end of stream.
pub async fn read_message<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<T>, ProtoError> {
    match read_frame(r).await? {
        Some(payload) => codec::decode(&payload).map(Some),
        None => Ok(None),
    }
}

/// Encodes and writes one message.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
) -> Result<(), ProtoError> {
    write_frame(w, &codec::encode(msg)?).await
}
