//! `virtualbox` (Oracle VirtualBox): not readable by this build, which does not speak the
//! guest additions' HGCM protocol on `/dev/vboxguest`; [`Provider::fetch_config`] says so.
//! Ignition's rules for the guest properties once read are here and tested:
//!
//! - The config is the guest property `/Ignition/Config` (trailing NULs dropped); missing or
//!   empty means no config.
//! - `/Ignition/Config/Encoding` must be unset or empty: no encoding is defined yet, so any
//!   other value is an error rather than a misread config.

use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub const CONFIG_PROPERTY: &str = "/Ignition/Config";
pub const ENCODING_PROPERTY: &str = "/Ignition/Config/Encoding";

pub struct VirtualBox;

/// The config from the two guest properties (`None` when a property is not set).
pub fn config(value: Option<&[u8]>, encoding: Option<&[u8]>) -> Result<Option<Vec<u8>>, Error> {
    if let Some(enc) = encoding {
        let enc = util::trim_trailing_nuls(enc.to_vec());
        if !enc.is_empty() {
            return Err(Error::Malformed {
                what: format!(
                    "unsupported {ENCODING_PROPERTY} {:?}",
                    String::from_utf8_lossy(&enc)
                ),
            });
        }
    }
    Ok(value.and_then(|v| util::non_empty(util::trim_trailing_nuls(v.to_vec()))))
}

impl Provider for VirtualBox {
    fn id(&self) -> &'static str {
        "virtualbox"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Err(Error::NotSupported {
            platform: "virtualbox",
            reason: "reading guest properties needs the VirtualBox guest HGCM channel \
                     (/dev/vboxguest), which this build does not drive",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_rules() {
        assert_eq!(config(Some(b"{}\0"), None).unwrap().unwrap(), b"{}");
        assert_eq!(config(Some(b"{}"), Some(b"\0")).unwrap().unwrap(), b"{}");
        assert_eq!(config(None, None).unwrap(), None);
        assert_eq!(config(Some(b"\0"), None).unwrap(), None);
        let err = config(Some(b"e30K"), Some(b"base64")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported /Ignition/Config/Encoding \"base64\""
        );
    }
}
