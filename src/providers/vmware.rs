//! `vmware`: not readable by this build, which has no VMware backdoor (guestinfo RPC) channel;
//! [`Provider::fetch_config`] says so. The decoding Ignition applies once the guestinfo
//! values are read is here and tested, ready for such a channel:
//!
//! - `guestinfo.ignition.config.data` with `guestinfo.ignition.config.data.encoding`: `""`
//!   (as is), `b64`/`base64`, `gz`/`gzip`, `gz+base64`/`gzip+base64`/`gz+b64`/`gzip+b64`;
//!   anything else is an error.
//! - Each of the two values defaults to the OVF environment's property of the same name
//!   (`guestinfo.ovfenv`, `<Property oe:key="guestinfo.ignition.config.data" oe:value="…"/>`);
//!   a value set directly wins.
//! - Empty data means no config.

use std::collections::BTreeMap;

use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub const DATA_KEY: &str = "guestinfo.ignition.config.data";
pub const ENCODING_KEY: &str = "guestinfo.ignition.config.data.encoding";

pub struct VmWare;

/// Decodes guestinfo data by its encoding name.
pub fn decode(data: &[u8], encoding: &str) -> Result<Vec<u8>, Error> {
    match encoding {
        "" => Ok(data.to_vec()),
        "b64" | "base64" => util::decode_base64(data),
        "gz" | "gzip" => util::gunzip(data),
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => {
            util::gunzip(&util::decode_base64(data)?)
        }
        other => Err(Error::Malformed {
            what: format!("unsupported guestinfo encoding {other:?}"),
        }),
    }
}

/// The config from the guestinfo values read directly (`None` when unset) and the OVF
/// environment document (`guestinfo.ovfenv`).
pub fn config(
    data: Option<&str>,
    encoding: Option<&str>,
    ovfenv: Option<&str>,
) -> Result<Option<Vec<u8>>, Error> {
    let props = ovfenv.map(ovf_properties).unwrap_or_default();
    let data = data
        .or(props.get(DATA_KEY).map(String::as_str))
        .unwrap_or("");
    let encoding = encoding
        .or(props.get(ENCODING_KEY).map(String::as_str))
        .unwrap_or("");
    if data.is_empty() {
        return Ok(None);
    }
    Ok(util::non_empty(decode(data.as_bytes(), encoding)?))
}

/// The `key` → `value` properties of an OVF environment document (`<Property>` elements of
/// any namespace prefix, attributes `key` and `value` of any prefix, entities decoded).
pub fn ovf_properties(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        rest = &rest[end..];
        let name_end = tag
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tag.len());
        let name = &tag[..name_end];
        if local(name) != "Property" {
            continue;
        }
        let attrs = attributes(&tag[name_end..]);
        let get = |want: &str| {
            attrs
                .iter()
                .find(|(n, _)| local(n) == want)
                .map(|(_, v)| v.clone())
        };
        if let (Some(k), Some(v)) = (get("key"), get("value")) {
            out.insert(k, v);
        }
    }
    out
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// `name="value"` / `name='value'` pairs, values entity-decoded.
fn attributes(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        let Some(eq) = s.find('=') else { break };
        let name = s[..eq].trim().to_string();
        let after = s[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(q) else {
            break;
        };
        out.push((name, unescape(&after[1..1 + close])));
        s = &after[close + 2..];
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Provider for VmWare {
    fn id(&self) -> &'static str {
        "vmware"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Err(Error::NotSupported {
            platform: "vmware",
            reason: "reading guestinfo needs the VMware backdoor RPC channel, which this build \
                     does not implement",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    #[test]
    fn every_encoding() {
        let cfg = b"{\"ignition\":{\"version\":\"3.0.0\"}}";
        assert_eq!(decode(cfg, "").unwrap(), cfg);
        for e in ["b64", "base64"] {
            assert_eq!(decode(b64(cfg).as_bytes(), e).unwrap(), cfg);
        }
        for e in ["gz", "gzip"] {
            assert_eq!(decode(&gz(cfg), e).unwrap(), cfg);
        }
        for e in ["gz+base64", "gzip+base64", "gz+b64", "gzip+b64"] {
            assert_eq!(decode(b64(&gz(cfg)).as_bytes(), e).unwrap(), cfg);
        }
        let err = decode(cfg, "base32").unwrap_err();
        assert_eq!(err.to_string(), "unsupported guestinfo encoding \"base32\"");
        assert!(decode(b"not base64!", "base64").is_err());
        assert!(decode(b64(b"not gzip").as_bytes(), "gzip+base64").is_err());
    }

    const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" oe:id="">
  <PlatformSection><Kind>VMware ESXi</Kind></PlatformSection>
  <PropertySection>
    <Property oe:key="guestinfo.ignition.config.data" oe:value="e30K"/>
    <Property oe:key='guestinfo.ignition.config.data.encoding' oe:value='base64' />
    <Property oe:key="other" oe:value="a &amp; &lt;b&gt; &#65;&#x42;"/>
  </PropertySection>
</Environment>"#;

    #[test]
    fn ovf_environment_properties() {
        let p = ovf_properties(OVF);
        assert_eq!(p[DATA_KEY], "e30K");
        assert_eq!(p[ENCODING_KEY], "base64");
        assert_eq!(p["other"], "a & <b> AB");
        assert!(ovf_properties("<notxml").is_empty());
    }

    #[test]
    fn direct_values_win_over_ovf_each_on_its_own() {
        // Only OVF.
        assert_eq!(config(None, None, Some(OVF)).unwrap().unwrap(), b"{}\n");
        // Direct data, OVF encoding.
        assert_eq!(
            config(Some("eyJhIjoxfQ=="), None, Some(OVF))
                .unwrap()
                .unwrap(),
            b"{\"a\":1}"
        );
        // Direct data and encoding.
        assert_eq!(
            config(Some("{\"b\":2}"), Some(""), Some(OVF))
                .unwrap()
                .unwrap(),
            b"{\"b\":2}"
        );
        // Nothing anywhere, or empty data: no config.
        assert_eq!(config(None, None, None).unwrap(), None);
        assert_eq!(config(Some(""), Some("base64"), Some(OVF)).unwrap(), None);
    }

    #[test]
    fn unsupported_in_this_build() {
        let f = crate::fetch::Fetcher::new(crate::fetch::Options::default()).unwrap();
        let err = VmWare.fetch_config(&f).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("platform vmware not supported by this build: "));
    }
}
