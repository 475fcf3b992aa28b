//! `file`: the config is a local file, `$IGNITION_CONFIG_FILE` or `config.ign` in the current
//! directory. A missing file is an error, as in Ignition.

use std::path::PathBuf;

use super::{Error, Provider};
use crate::fetch;

pub struct File {
    path: PathBuf,
}

impl File {
    pub fn new(path: PathBuf) -> Self {
        File { path }
    }
}

impl Provider for File {
    fn id(&self) -> &'static str {
        "file"
    }

    fn fetch_config(&self, _fetcher: &fetch::Fetcher) -> Result<Option<Vec<u8>>, Error> {
        std::fs::read(&self.path)
            .map(Some)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_or_fails() {
        let f = fetch::Fetcher::new(fetch::Options::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("ember-file-prov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.ign");
        std::fs::write(&p, b"{}").unwrap();
        assert_eq!(
            File::new(p.clone()).fetch_config(&f).unwrap(),
            Some(b"{}".to_vec())
        );
        assert!(File::new(dir.join("missing")).fetch_config(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
