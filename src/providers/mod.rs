//! Platform providers: where a machine's config comes from. One file per platform, all behind
//! [`Provider`], chosen by Ignition's platform ids with one closed `match` ([`get`]).
//!
//! Providers only return data: `Ok(Some(bytes))`, `Ok(None)` for "no config here" (the engine
//! then uses an empty config), or an error. They never write to the machine. Their endpoints
//! are constructor arguments ([`Endpoints`]), so tests point them at servers on 127.0.0.1.

pub mod cmdline;
pub mod file;
pub mod metal;
pub mod system;

use std::path::PathBuf;

use crate::fetch;

/// Ignition's platform ids.
pub const PLATFORMS: &[&str] = &[
    "akamai",
    "aliyun",
    "applehv",
    "aws",
    "azure",
    "azurestack",
    "brightbox",
    "cloudstack",
    "digitalocean",
    "exoscale",
    "file",
    "gcp",
    "hetzner",
    "hyperv",
    "ibmcloud",
    "kubevirt",
    "metal",
    "nutanix",
    "nvidiabluefield",
    "openstack",
    "oraclecloud",
    "packet",
    "powervs",
    "proxmoxve",
    "qemu",
    "scaleway",
    "upcloud",
    "virtualbox",
    "vmware",
    "vultr",
    "zvm",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source needs the network and the fetcher is offline (fetch-offline).
    #[error("fetching the config needs the network")]
    NeedsNetwork,
    #[error("platform {0:?} is not supported by this build")]
    Unsupported(String),
    #[error("unknown platform {0:?}")]
    UnknownPlatform(String),
    #[error("fetching the config")]
    Fetch(#[from] fetch::Error),
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The provider's data could not be decoded (bad base64, bad gzip, ...).
    #[error("{what}")]
    Malformed { what: String },
    #[error("deleting the config is not supported on platform {0:?}")]
    DeleteUnsupported(String),
}

impl Error {
    /// Offline fetch errors from the fetcher mean "needs network" too.
    pub fn needs_network(&self) -> bool {
        matches!(self, Error::NeedsNetwork)
            || matches!(self, Error::Fetch(fetch::Error::NeedsNetwork { .. }))
    }
}

/// Where providers look: base URLs and paths, overridable for tests.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The link-local metadata service (`http://169.254.169.254`).
    pub metadata: String,
    /// The config file of the `file` platform: `$IGNITION_CONFIG_FILE`, else `config.ign`.
    pub config_file: PathBuf,
    /// `/dev`, for config drives found by label.
    pub dev_dir: PathBuf,
    /// `/sys`, for fw_cfg and friends.
    pub sys_dir: PathBuf,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            metadata: "http://169.254.169.254".into(),
            config_file: std::env::var_os("IGNITION_CONFIG_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("config.ign")),
            dev_dir: PathBuf::from("/dev"),
            sys_dir: PathBuf::from("/sys"),
        }
    }
}

/// A platform's way of providing the config.
pub trait Provider: Send + Sync {
    /// Ignition's platform id.
    fn id(&self) -> &'static str;

    /// Fetches the user config. The fetcher is offline in fetch-offline: providers that need
    /// the network return [`Error::NeedsNetwork`] (or let the fetcher do so).
    fn fetch_config(&self, fetcher: &fetch::Fetcher) -> Result<Option<Vec<u8>>, Error>;

    /// Adjusts the fetcher used for the config's resources (credentials, region hints).
    fn configure_fetcher(&self, _opts: &mut fetch::Options) {}

    /// Reports a stage's outcome to the platform (only packet does).
    fn status(&self, _stage: &str, _error: Option<&str>, _fetcher: &fetch::Fetcher) {}

    /// Deletes the config from the platform (`ignition-rmcfg`).
    fn delete_config(&self) -> Result<(), Error> {
        Err(Error::DeleteUnsupported(self.id().into()))
    }
}

/// The provider for a platform id.
pub fn get(id: &str, ep: &Endpoints) -> Result<Box<dyn Provider>, Error> {
    match id {
        "file" => Ok(Box::new(file::File::new(ep.config_file.clone()))),
        "metal" => Ok(Box::new(metal::Metal)),
        p if PLATFORMS.contains(&p) => Err(Error::Unsupported(p.into())),
        p => Err(Error::UnknownPlatform(p.into())),
    }
}
