//! gzip decompression for configs referenced with `compression: gzip`.

use std::io::Read;

pub use super::MAX_CONFIG_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid gzip data")]
    Invalid(#[source] std::io::Error),
    #[error("decompressed data is larger than {MAX_CONFIG_SIZE} bytes")]
    TooLarge,
}

/// Decompresses a whole gzip stream held in memory.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, Error> {
    decompress_at_most(data, MAX_CONFIG_SIZE)?.ok_or(Error::TooLarge)
}

/// Decompresses a whole gzip stream held in memory, or says `Ok(None)` as soon as it is
/// larger than `max` bytes (without decompressing the rest).
pub fn decompress_at_most(data: &[u8], max: u64) -> Result<Option<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut r = flate2::read::GzDecoder::new(data).take(max.saturating_add(1));
    r.read_to_end(&mut out).map_err(Error::Invalid)?;
    if out.len() as u64 > max {
        return Ok(None);
    }
    Ok(Some(out))
}
