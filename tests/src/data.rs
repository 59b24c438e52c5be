//! Test data for transfers: files of random bytes and their digests, so a
//! test can check that what arrived is byte-for-byte what was sent.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

const CHUNK: usize = 1 << 16;

/// Writes `size` random bytes to `path` (creating or truncating it) and
/// returns their SHA-256 as lowercase hex.
///
/// Random rather than patterned data, so that compression or an off-by-one
/// chunk boundary cannot make a broken transfer look right.
///
/// # Panics
///
/// When the file cannot be written.
pub fn random_file(path: &Path, size: u64) -> String {
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut out = BufWriter::new(file);
    let mut rng = rand::rng();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        rng.fill_bytes(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        left -= n as u64;
    }
    out.flush()
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    hex(&hasher.finalize())
}

/// The SHA-256 of the file at `path`, as lowercase hex.
///
/// # Panics
///
/// When the file cannot be read.
pub fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_written_file_matches_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let written = random_file(&path, 3 * CHUNK as u64 + 7);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            3 * CHUNK as u64 + 7
        );
        assert_eq!(written, sha256_file(&path));
    }

    #[test]
    fn empty_file_has_the_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        assert_eq!(
            random_file(&path, 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
