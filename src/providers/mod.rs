//! Platform providers: where a machine's config comes from. One file per platform, all behind
//! [`Provider`], chosen by Ignition's platform ids with one closed `match` ([`get`]). The
//! platforms whose config is one GET of their metadata service share [`util::UserData`], and
//! those that read an OpenStack config drive's user data share [`configdrive::OpenStackDrive`]:
//! their files only name the URL or the drive.
//!
//! Providers only return data: `Ok(Some(bytes))`, `Ok(None)` for "no config here" (the engine
//! then uses an empty config), or an error. They never write to the machine. Their endpoints
//! and every wait they do are constructor arguments ([`Endpoints`]), so tests point them at
//! servers on 127.0.0.1, fake sysfs trees and loop devices, with short waits.
//!
//! Shared pieces: [`configdrive`] (find a filesystem by label or type without udev, mount it
//! read-only, read one file, unmount), [`util`] (base64, gzip sniffing, the HTTP helpers and
//! the "first source to answer wins" race), [`rawhttp`] (sockets the fetcher cannot open, for
//! the two platforms that need them). See docs/providers.md for the per-platform rules.

pub mod akamai;
pub mod aliyun;
pub mod applehv;
pub mod aws;
pub mod azure;
pub mod azurestack;
pub mod brightbox;
pub mod cloudstack;
pub mod cmdline;
pub mod configdrive;
pub mod digitalocean;
pub mod exoscale;
pub mod file;
pub mod gcp;
pub mod hetzner;
pub mod hyperv;
pub mod ibmcloud;
pub mod iso9660;
pub mod kubevirt;
pub mod metal;
pub mod nutanix;
pub mod nvidiabluefield;
pub mod openstack;
pub mod oraclecloud;
pub mod packet;
pub mod powervs;
pub mod proxmoxve;
pub mod qemu;
pub mod rawhttp;
pub mod scaleway;
pub mod system;
pub mod upcloud;
pub mod util;
pub mod virtualbox;
pub mod vmware;
pub mod vultr;
pub mod zvm;

use std::path::PathBuf;
use std::time::Duration;

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

pub use crate::config::MAX_CONFIG_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source needs the network and the fetcher is offline (fetch-offline).
    #[error("fetching the config needs the network")]
    NeedsNetwork,
    /// A platform Ember knows but cannot read in this build (no device or kernel channel).
    #[error("platform {platform} not supported by this build: {reason}")]
    NotSupported {
        platform: &'static str,
        reason: &'static str,
    },
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
    /// Looking for, or mounting, a config drive or CD-ROM failed.
    #[error("{what}")]
    Drive {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A wait that Ignition leaves unbounded ran out of Ember's documented bound.
    #[error("{what} did not appear within {wait:?}")]
    Timeout { what: String, wait: Duration },
    #[error("running a helper program")]
    Command(#[from] crate::system::command::Error),
    /// Ember's own small HTTP client (scaleway's privileged port, applehv's vsock).
    #[error("http request to {target} failed: {reason}")]
    Http { target: String, reason: String },
    #[error("{what}")]
    Socket {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Offline fetch errors from the fetcher mean "needs network" too.
    pub fn needs_network(&self) -> bool {
        matches!(self, Error::NeedsNetwork)
            || matches!(self, Error::Fetch(fetch::Error::NeedsNetwork { .. }))
    }
}

/// Ignition leaves these waits unbounded; Ember's default bound (see docs/providers.md).
pub const DEFAULT_DRIVE_WAIT: Duration = Duration::from_secs(300);
/// Ignition's fixed wait for the `cidata` drive of ibmcloud and proxmoxve.
pub const DEFAULT_CIDATA_WAIT: Duration = Duration::from_secs(30);
/// Ignition's bound on the aws region lookup; Ember uses it for every auxiliary lookup
/// (region, instance-role credentials, GCE token, packet's phone-home metadata).
pub const DEFAULT_METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// Where providers look and how long they wait: base URLs, paths, programs, bounds.
/// [`Endpoints::default`] is the real machine; tests override fields.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The link-local metadata service (`http://169.254.169.254`) of aws, azure, gcp,
    /// openstack, brightbox, digitalocean, exoscale, hetzner, oraclecloud, upcloud, vultr,
    /// akamai.
    pub metadata: String,
    /// aliyun's metadata service (`http://100.100.100.200`).
    pub aliyun: String,
    /// scaleway's metadata service (`http://169.254.42.42`); an IPv4 literal with an optional
    /// port, since the request is made from a privileged local port by Ember's own client.
    pub scaleway: String,
    /// packet's (Equinix Metal's) metadata service (`https://metadata.packet.net`).
    pub packet: String,
    /// Port of cloudstack's metadata service on the DHCP server (80).
    pub cloudstack_port: u16,
    /// The link-local IPv6 address openstack and brightbox also try on every up,
    /// non-loopback interface with IPv6 (`fe80::a9fe:a9fe`); `None` skips those URLs.
    pub link_local_v6: Option<String>,
    /// The config file of the `file` platform: `$IGNITION_CONFIG_FILE`, else `config.ign`.
    pub config_file: PathBuf,
    /// `/dev`, for config drives found by label.
    pub dev_dir: PathBuf,
    /// `/sys`, for fw_cfg, the bootfifo, the vsock device and network interfaces.
    pub sys_dir: PathBuf,
    /// systemd-networkd's DHCP leases (`/run/systemd/netif/leases`), for cloudstack.
    pub leases_dir: PathBuf,
    /// The DHCP server of the lease Ember took itself when it brought the network up (boot);
    /// cloudstack uses it before networkd's lease files.
    pub dhcp_server: Option<String>,
    /// The program that loads kernel modules (`modprobe`).
    pub modprobe: PathBuf,
    /// applehv's vsock peer: CID (2, the host) and port (1024).
    pub vsock_cid: u32,
    pub vsock_port: u32,
    /// Bound on waits Ignition leaves unbounded: config drives of openstack, brightbox,
    /// cloudstack, kubevirt, nutanix, powervs, and azure's OVF CD-ROM.
    pub drive_wait: Duration,
    /// Wait for the `cidata` drive of ibmcloud and proxmoxve (Ignition: 30 s).
    pub cidata_wait: Duration,
    /// How often a drive wait looks again (Ignition: 1 s).
    pub poll_interval: Duration,
    /// Bound on auxiliary metadata lookups (see [`DEFAULT_METADATA_TIMEOUT`]).
    pub metadata_timeout: Duration,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            metadata: "http://169.254.169.254".into(),
            aliyun: "http://100.100.100.200".into(),
            scaleway: "http://169.254.42.42".into(),
            packet: "https://metadata.packet.net".into(),
            cloudstack_port: 80,
            link_local_v6: Some("fe80::a9fe:a9fe".into()),
            config_file: std::env::var_os("IGNITION_CONFIG_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("config.ign")),
            dev_dir: PathBuf::from("/dev"),
            sys_dir: PathBuf::from("/sys"),
            leases_dir: PathBuf::from("/run/systemd/netif/leases"),
            dhcp_server: None,
            modprobe: PathBuf::from("modprobe"),
            vsock_cid: applehv::HOST_CID,
            vsock_port: applehv::PORT,
            drive_wait: DEFAULT_DRIVE_WAIT,
            cidata_wait: DEFAULT_CIDATA_WAIT,
            poll_interval: Duration::from_secs(1),
            metadata_timeout: DEFAULT_METADATA_TIMEOUT,
        }
    }
}

impl Endpoints {
    /// The config-drive search these endpoints describe, bounded by `wait`.
    pub fn drives(&self, wait: Duration) -> configdrive::Search {
        configdrive::Search {
            dev_dir: self.dev_dir.clone(),
            wait,
            poll: self.poll_interval,
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
    let md = ep.metadata.trim_end_matches('/');
    Ok(match id {
        "akamai" => Box::new(akamai::Akamai::new(md)),
        "aliyun" => Box::new(aliyun::provider(&ep.aliyun)),
        "applehv" => Box::new(applehv::AppleHv::new(
            ep.vsock_cid,
            ep.vsock_port,
            ep.sys_dir.clone(),
            ep.modprobe.clone(),
        )),
        "aws" => Box::new(aws::Aws::new(md, ep.metadata_timeout)),
        "azure" => Box::new(azure::Azure::new(md, ep.drives(ep.drive_wait))),
        "azurestack" => Box::new(azurestack::AzureStack::new(ep.drives(ep.drive_wait))),
        "brightbox" => Box::new(brightbox::Brightbox::new(openstack::Sources::new(ep))),
        "cloudstack" => Box::new(
            cloudstack::CloudStack::new(
                ep.drives(ep.drive_wait),
                ep.leases_dir.clone(),
                ep.sys_dir.clone(),
                ep.cloudstack_port,
            )
            .with_dhcp_server(ep.dhcp_server.clone()),
        ),
        "digitalocean" => Box::new(digitalocean::provider(md)),
        "exoscale" => Box::new(exoscale::provider(md)),
        "file" => Box::new(file::File::new(ep.config_file.clone())),
        "gcp" => Box::new(gcp::Gcp::new(md, ep.metadata_timeout)),
        "hetzner" => Box::new(hetzner::provider(md)),
        "hyperv" => Box::new(hyperv::HyperV),
        "ibmcloud" => Box::new(ibmcloud::IbmCloud::new(ep.drives(ep.cidata_wait))),
        "kubevirt" => Box::new(kubevirt::KubeVirt::new(ep.drives(ep.drive_wait))),
        "metal" => Box::new(metal::Metal),
        "nutanix" => Box::new(nutanix::provider(ep.drives(ep.drive_wait))),
        "nvidiabluefield" => Box::new(nvidiabluefield::NvidiaBlueField::new(
            ep.sys_dir.clone(),
            ep.modprobe.clone(),
        )),
        "openstack" => Box::new(openstack::OpenStack::new(openstack::Sources::new(ep))),
        "oraclecloud" => Box::new(oraclecloud::OracleCloud::new(md)),
        "packet" => Box::new(packet::Packet::new(&ep.packet, ep.metadata_timeout)),
        "powervs" => Box::new(powervs::provider(ep.drives(ep.drive_wait))),
        "proxmoxve" => Box::new(proxmoxve::ProxmoxVe::new(ep.drives(ep.cidata_wait))),
        "qemu" => Box::new(qemu::Qemu::new(ep.sys_dir.clone(), ep.modprobe.clone())),
        "scaleway" => Box::new(scaleway::Scaleway::new(&ep.scaleway)),
        "upcloud" => Box::new(upcloud::provider(md)),
        "virtualbox" => Box::new(virtualbox::VirtualBox),
        "vmware" => Box::new(vmware::VmWare),
        "vultr" => Box::new(vultr::provider(md)),
        "zvm" => Box::new(zvm::Zvm),
        p => return Err(Error::UnknownPlatform(p.into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_has_a_provider_with_its_id() {
        let ep = Endpoints::default();
        for id in PLATFORMS {
            let p = get(id, &ep).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(p.id(), *id);
        }
        assert!(matches!(
            get("nonesuch", &ep),
            Err(Error::UnknownPlatform(_))
        ));
    }
}
