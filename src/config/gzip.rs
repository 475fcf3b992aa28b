//! gzip decompression for configs referenced with `compression: gzip`.

use std::io::Read;

/// The largest decompressed config Ember accepts (a guard against decompression bombs).
pub const MAX_CONFIG_SIZE: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid gzip data")]
    Invalid(#[source] std::io::Error),
    #[error("decompressed data is larger than {MAX_CONFIG_SIZE} bytes")]
    TooLarge,
}

/// Decompresses a whole gzip stream held in memory.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut r = flate2::read::GzDecoder::new(data).take(MAX_CONFIG_SIZE + 1);
    r.read_to_end(&mut out).map_err(Error::Invalid)?;
    if out.len() as u64 > MAX_CONFIG_SIZE {
        return Err(Error::TooLarge);
    }
    Ok(out)
}
