//! `nvidiabluefield` (NVIDIA BlueField DPUs): the config written to the boot FIFO of the
//! `mlxbf_bootctl` driver, `/sys/bus/platform/devices/MLNXBF04:00/bootfifo`, with NUL bytes
//! trimmed. `modprobe mlxbf_bootctl` runs first when the file is missing.
//!
//! Nothing in the FIFO (or no FIFO) means no config. Ignition differs here: it returns a
//! zero-valued config without error, which then fails validation for its empty version;
//! Ember returns "no config" instead, so such a boot gets the empty config like every other
//! platform. Works offline.

use std::path::PathBuf;

use super::{util, Error, Provider, MAX_CONFIG_SIZE};
use crate::fetch::Fetcher;

pub struct NvidiaBlueField {
    sys_dir: PathBuf,
    modprobe: PathBuf,
}

impl NvidiaBlueField {
    pub fn new(sys_dir: PathBuf, modprobe: PathBuf) -> Self {
        NvidiaBlueField { sys_dir, modprobe }
    }
}

impl Provider for NvidiaBlueField {
    fn id(&self) -> &'static str {
        "nvidiabluefield"
    }

    fn fetch_config(&self, _fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        use std::io::Read;
        let fifo = self
            .sys_dir
            .join("bus/platform/devices/MLNXBF04:00/bootfifo");
        if !fifo.exists() {
            util::modprobe(&self.modprobe, "mlxbf_bootctl")?;
        }
        let mut data = Vec::new();
        match std::fs::File::open(&fifo) {
            Ok(f) => f
                .take(MAX_CONFIG_SIZE + 1)
                .read_to_end(&mut data)
                .map_err(|source| Error::Io {
                    path: fifo.clone(),
                    source,
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::info!("nvidiabluefield: no boot FIFO; no config");
                return Ok(None);
            }
            Err(source) => return Err(Error::Io { path: fifo, source }),
        };
        if data.len() as u64 > MAX_CONFIG_SIZE {
            return Err(Error::Malformed {
                what: format!(
                    "the boot FIFO {} holds more than {MAX_CONFIG_SIZE} bytes",
                    fifo.display()
                ),
            });
        }
        Ok(util::non_empty(util::trim_nuls(&data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overfull_fifo_is_an_error_not_a_cut_config() {
        let dir = std::env::temp_dir().join(format!("ember-bf-{}", std::process::id()));
        let dev = dir.join("bus/platform/devices/MLNXBF04:00");
        std::fs::create_dir_all(&dev).unwrap();
        let fifo = std::fs::File::create(dev.join("bootfifo")).unwrap();
        fifo.set_len(MAX_CONFIG_SIZE + 1).unwrap();
        let fetcher = Fetcher::new(crate::fetch::Options {
            system_ca_files: Some(Vec::new()),
            ..crate::fetch::Options::default()
        })
        .unwrap();
        let p = NvidiaBlueField::new(dir.clone(), PathBuf::from("/nonexistent/modprobe"));
        let err = p.fetch_config(&fetcher).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        fifo.set_len(0).unwrap();
        assert_eq!(p.fetch_config(&fetcher).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
