//! PLACEHOLDER written on the `fetch` branch so the fetcher builds; the config helper's own
//! `dataurl` module replaces it at merge. Same public surface: `decode(&str) -> Result<DataUrl,
//! DataUrlError>` with a `data: Vec<u8>` field.
//!
//! RFC 2397: `data:[<mediatype>][;base64],<data>`; the data is percent-decoded, then base64-decoded
//! when `;base64` is present.

use base64::Engine as _;

/// A decoded `data:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl {
    /// The media type as written, `text/plain;charset=US-ASCII` when empty.
    pub media_type: String,
    /// The decoded payload.
    pub data: Vec<u8>,
}

/// Why a `data:` URL does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("not a data url")]
    NotDataUrl,
    #[error("missing comma before the data")]
    MissingComma,
    #[error("invalid percent-encoding")]
    BadPercentEncoding,
    #[error("invalid base64 data")]
    BadBase64,
}

/// Decodes a `data:` URL.
pub fn decode(url: &str) -> Result<DataUrl, DataUrlError> {
    let rest = url
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("data:"))
        .map(|_| &url[5..])
        .ok_or(DataUrlError::NotDataUrl)?;
    let (meta, data) = rest.split_once(',').ok_or(DataUrlError::MissingComma)?;
    let (media_type, base64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let decoded = percent_decode(data.as_bytes())?;
    let data = if base64 {
        let compact: Vec<u8> = decoded
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .map_err(|_| DataUrlError::BadBase64)?
    } else {
        decoded
    };
    let media_type = if media_type.is_empty() {
        "text/plain;charset=US-ASCII".to_string()
    } else {
        media_type.to_string()
    };
    Ok(DataUrl { media_type, data })
}

fn percent_decode(s: &[u8]) -> Result<Vec<u8>, DataUrlError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(DataUrlError::BadPercentEncoding)?;
            out.push(hex);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode("data:,hello%20world").unwrap().data, b"hello world");
        assert_eq!(decode("data:;base64,aGk=").unwrap().data, b"hi");
        assert_eq!(
            decode("data:text/plain;base64,aGk=").unwrap().media_type,
            "text/plain"
        );
        assert_eq!(decode("DATA:,").unwrap().data, b"");
        assert_eq!(decode("data:x"), Err(DataUrlError::MissingComma));
        assert_eq!(decode("http://x"), Err(DataUrlError::NotDataUrl));
        assert_eq!(
            decode("data:;base64,%%"),
            Err(DataUrlError::BadPercentEncoding)
        );
        assert_eq!(decode("data:;base64,!!"), Err(DataUrlError::BadBase64));
    }
}
