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
                .take(MAX_CONFIG_SIZE)
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
        Ok(util::non_empty(util::trim_nuls(&data)))
    }
}
