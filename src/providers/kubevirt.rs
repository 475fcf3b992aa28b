//! `kubevirt`: the user data from a NoCloud (`cidata`: `user-data`) or a config-drive
//! (`config-2`: `openstack/latest/user_data`) disk, whichever appears first. A missing file
//! means no config. Ignition waits for them forever; Ember stops after
//! [`super::Endpoints::drive_wait`] with an error. Works offline.

use super::configdrive::{self, Search};
use super::util::{self, Source};
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct KubeVirt {
    drives: Search,
}

impl KubeVirt {
    pub fn new(drives: Search) -> Self {
        KubeVirt { drives }
    }
}

impl Provider for KubeVirt {
    fn id(&self) -> &'static str {
        "kubevirt"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        let mut sources: Vec<(String, Source)> = Vec::new();
        for (label, path) in [
            ("cidata", "user-data"),
            ("config-2", "openstack/latest/user_data"),
        ] {
            let drives = self.drives.clone();
            sources.push((
                format!("{label} drive"),
                Box::new(move |cancel| configdrive::read_from_label(&drives, label, path, cancel)),
            ));
        }
        match util::race(sources) {
            Ok(data) => Ok(data.and_then(util::non_empty)),
            Err(mut errors) => Err(match errors.len() {
                1 => errors.swap_remove(0).1,
                _ => Error::Drive {
                    what: format!(
                        "no config drive: {}",
                        errors
                            .iter()
                            .map(|(n, e)| format!("{n}: {}", util::chain(e)))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    source: None,
                },
            }),
        }
    }
}
