//! Placeholder until the RFC 2397 decoder lands (replaced on merge).
#![allow(dead_code)]

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataUrlError(pub String);

pub struct DataUrl {
    pub data: Vec<u8>,
}

pub fn validate(s: &str) -> Result<(), DataUrlError> {
    decode(s).map(|_| ())
}

pub fn decode(s: &str) -> Result<DataUrl, DataUrlError> {
    let rest = s
        .strip_prefix("data:")
        .ok_or_else(|| DataUrlError("missing data prefix".into()))?;
    let (_, data) = rest
        .split_once(',')
        .ok_or_else(|| DataUrlError("missing comma".into()))?;
    Ok(DataUrl {
        data: data.as_bytes().to_vec(),
    })
}
