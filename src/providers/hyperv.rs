//! `hyperv` (Microsoft Hyper-V): not readable by this build, which does not drive the kernel's
//! KVP channel (`/dev/vmbus/hv_kvp`, the protocol `hv_kvp_daemon` speaks);
//! [`Provider::fetch_config`] says so. The pool format and Ignition's key rules are here and
//! tested:
//!
//! - A KVP pool (`/var/lib/hyperv/.kvp_pool_<N>`, as `hv_kvp_daemon` stores it) is a sequence
//!   of records of a 512-byte key and a 2048-byte value, each NUL padded.
//! - The config is the value of `ignition.config` in pool 0; else the concatenation of
//!   `ignition.config.0`, `ignition.config.1`, … up to the first missing index (values are
//!   limited to about 2 KiB, hence the split). Neither means no config.

use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub const KEY_SIZE: usize = 512;
pub const VALUE_SIZE: usize = 2048;
pub const RECORD_SIZE: usize = KEY_SIZE + VALUE_SIZE;

pub struct HyperV;

/// The `(key, value)` records of a KVP pool file; a trailing partial record is an error.
pub fn parse_pool(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if data.len() % RECORD_SIZE != 0 {
        return Err(Error::Malformed {
            what: format!(
                "a KVP pool is made of {RECORD_SIZE}-byte records; this one has {} bytes",
                data.len()
            ),
        });
    }
    Ok(data
        .chunks_exact(RECORD_SIZE)
        .map(|r| {
            let key = cut_at_nul(&r[..KEY_SIZE]);
            let value = cut_at_nul(&r[KEY_SIZE..]);
            (String::from_utf8_lossy(&key).into_owned(), value)
        })
        .filter(|(k, _)| !k.is_empty())
        .collect())
}

fn cut_at_nul(b: &[u8]) -> Vec<u8> {
    b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())].to_vec()
}

/// The config from pool 0's records (see the module docs).
pub fn config(records: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
    let get = |k: &str| records.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    if let Some(v) = get("ignition.config") {
        return util::non_empty(v.clone());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(v) = get(&format!("ignition.config.{i}")) {
        out.extend_from_slice(v);
        i += 1;
    }
    util::non_empty(out)
}

impl Provider for HyperV {
    fn id(&self) -> &'static str {
        "hyperv"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Err(Error::NotSupported {
            platform: "hyperv",
            reason: "reading KVP pool 0 needs the Hyper-V KVP kernel channel (/dev/vmbus/hv_kvp), \
                     which this build does not drive",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_SIZE];
        r[..key.len()].copy_from_slice(key.as_bytes());
        r[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
        r
    }

    #[test]
    fn whole_key_wins() {
        let mut pool = record("other", "x");
        pool.extend(record("ignition.config.0", "{\"no\":"));
        pool.extend(record("ignition.config", "{\"ignition\":{}}"));
        let recs = parse_pool(&pool).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(config(&recs).unwrap(), b"{\"ignition\":{}}");
    }

    #[test]
    fn split_keys_concatenate_until_a_gap() {
        let mut pool = record("ignition.config.1", "\"3.4.0\"}}");
        pool.extend(record("ignition.config.0", "{\"ignition\":{\"version\":"));
        pool.extend(record("ignition.config.3", "ignored: .2 is missing"));
        let recs = parse_pool(&pool).unwrap();
        assert_eq!(
            config(&recs).unwrap(),
            b"{\"ignition\":{\"version\":\"3.4.0\"}}"
        );
        assert_eq!(config(&parse_pool(&record("x", "y")).unwrap()), None);
        assert_eq!(config(&[]), None);
    }

    #[test]
    fn partial_records_are_errors() {
        assert!(parse_pool(&[0u8; 100]).is_err());
        assert!(parse_pool(&[]).unwrap().is_empty());
        // An empty record slot is skipped.
        assert!(parse_pool(&[0u8; RECORD_SIZE]).unwrap().is_empty());
    }
}
