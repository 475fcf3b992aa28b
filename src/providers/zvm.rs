//! `zvm` (IBM z/VM): not available in this build. z/VM guests are s390x machines and this
//! build targets x86_64; the provider reads the virtual reader (`vmur`, after `modprobe vmur`
//! and bringing device `000c` online with `chccwdev`). [`Provider::fetch_config`] says so.
//! How Ignition picks the spool file is here and tested: the first entry of `vmur li` whose
//! type is `ign` is received as `<name>.ign`, and its NUL bytes at both ends are trimmed.

use super::{util, Error, Provider};
use crate::fetch::Fetcher;

pub struct Zvm;

/// A reader spool file: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFile {
    pub id: String,
    pub name: String,
}

/// The first spool file of type `ign` in `vmur li` output (columns: ORIGINID FILE CLASS
/// RECORDS CPY HOLD DATE TIME NAME TYPE DIST).
pub fn first_ign_file(listing: &str) -> Option<SpoolFile> {
    listing.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // CLASS is two words ("T DMP"/"A PRT"/...), so NAME and TYPE are fields 9 and 10.
        (f.len() >= 11 && f[10] == "ign").then(|| SpoolFile {
            id: f[1].to_string(),
            name: f[9].to_string(),
        })
    })
}

/// The received file's content as the config.
pub fn config(received: &[u8]) -> Option<Vec<u8>> {
    util::non_empty(util::trim_nuls(received))
}

impl Provider for Zvm {
    fn id(&self) -> &'static str {
        "zvm"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        Err(Error::NotSupported {
            platform: "zvm",
            reason: "z/VM guests are s390x and this build targets x86_64",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_listing() {
        let out = "ORIGINID FILE CLASS RECORDS  CPY HOLD DATE  TIME     NAME      TYPE     DIST\n\
                   T6360025 0463 T DMP 00020222 001 NONE 06/11 15:07:53 VMDUMP   FILE     T6360025\n\
                   T6360025 0464 A PUN 00000012 001 NONE 06/11 15:08:00 CONFIG   ign      T6360025\n\
                   T6360025 0465 A PUN 00000012 001 NONE 06/11 15:08:01 OTHER    ign      T6360025\n";
        assert_eq!(
            first_ign_file(out),
            Some(SpoolFile {
                id: "0464".into(),
                name: "CONFIG".into()
            })
        );
        assert_eq!(first_ign_file("ORIGINID FILE\n"), None);
        assert_eq!(config(b"\0{}\0\0").unwrap(), b"{}");
        assert_eq!(config(b"\0\0"), None);
    }
}
