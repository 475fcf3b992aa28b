//! The kernel command line as Ember reads it at boot.
//!
//! Words are split on whitespace; double quotes group (`rootflags="a b"`); `--` ends the
//! kernel's part.  The last occurrence of a key wins, except `ember.modules`, whose lists add
//! up.  Boolean keys follow Ignition's generator: a bare key is true, and so is any value but
//! an empty one, `0`, `no` and `off`.

use std::path::PathBuf;
use std::time::Duration;

use crate::system::devnames;

/// Defaults of Ember's own knobs.
pub const DEFAULT_FAILURE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_ROOT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_NET_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_INIT: &str = "/sbin/init";

/// What the boot needs from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    /// `ignition.firstboot`: `Some(true)` provision, `Some(false)` never; `None` decides by the
    /// stamp in the root filesystem.
    pub firstboot: Option<bool>,
    /// `ignition.platform.id`.
    pub platform: Option<String>,
    /// `ignition.config.url` (only logged, redacted; the fetch stages read it themselves).
    pub config_url: Option<String>,
    /// `root=` as given.
    pub root: Option<String>,
    /// `rootflags=`.
    pub rootflags: Option<String>,
    /// `rootfstype=`.
    pub rootfstype: Option<String>,
    /// `ro` (the default) or `rw`, whichever comes last.
    pub read_only: bool,
    /// `init=`.
    pub init: PathBuf,
    /// `ember.failure_timeout=SECONDS`: how long the failure report stays before the reboot
    /// when there is no rescue shell.
    pub failure_timeout: Duration,
    /// `ember.shell=0` refuses the rescue shell even when the image has one.
    pub shell: bool,
    /// `ember.root_timeout=SECONDS`: how long to wait for the root device.
    pub root_timeout: Duration,
    /// `ember.net_timeout=SECONDS`: how long to wait for a carrier and a DHCP lease.
    pub net_timeout: Duration,
    /// `ember.netif=NAME`: DHCP on this interface only.
    pub netif: Option<String>,
    /// `ember.modules=a,b`: modules to load besides the image's list.
    pub modules: Vec<String>,
    /// `ember.log=LEVEL`: the log level (`EMBER_LOG`).
    pub log: Option<String>,
}

impl Default for BootArgs {
    fn default() -> Self {
        BootArgs {
            firstboot: None,
            platform: None,
            config_url: None,
            root: None,
            rootflags: None,
            rootfstype: None,
            read_only: true,
            init: PathBuf::from(DEFAULT_INIT),
            failure_timeout: DEFAULT_FAILURE_TIMEOUT,
            shell: true,
            root_timeout: DEFAULT_ROOT_TIMEOUT,
            net_timeout: DEFAULT_NET_TIMEOUT,
            netif: None,
            modules: Vec::new(),
            log: None,
        }
    }
}

/// Splits a command line into words (quotes group and are removed; `--` ends it).
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    if cur == "--" {
                        return out;
                    }
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word && cur != "--" {
        out.push(cur);
    }
    out
}

/// Ignition's boolean: bare or any value but "", "0", "no", "off" is true.
pub fn truthy(value: Option<&str>) -> bool {
    match value {
        None => true,
        Some(v) => !matches!(v, "" | "0" | "no" | "off"),
    }
}

/// Longest time an `ember.*_timeout=` may give: a year (366 days).  Larger values (up to
/// 18446744073709551615) would overflow the deadlines computed from them.
const MAX_SECONDS: u64 = 366 * 24 * 3600;

fn seconds(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_SECONDS)
        .map(Duration::from_secs)
}

impl BootArgs {
    pub fn parse(cmdline: &str) -> BootArgs {
        let mut a = BootArgs::default();
        for w in words(cmdline) {
            let (key, value) = match w.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            let v = value.clone().unwrap_or_default();
            let warn_bad = |what: &str| log::warn!("ignoring {key}={v}: not {what}");
            match key.as_str() {
                "ignition.firstboot" => a.firstboot = Some(truthy(value.as_deref())),
                "ignition.platform.id" => a.platform = Some(v).filter(|s| !s.is_empty()),
                "ignition.config.url" => a.config_url = Some(v).filter(|s| !s.is_empty()),
                "root" => a.root = Some(v).filter(|s| !s.is_empty()),
                "rootflags" => a.rootflags = Some(v).filter(|s| !s.is_empty()),
                "rootfstype" => a.rootfstype = Some(v).filter(|s| !s.is_empty()),
                "ro" if value.is_none() => a.read_only = true,
                "rw" if value.is_none() => a.read_only = false,
                "init" if v.starts_with('/') => a.init = PathBuf::from(v),
                "ember.failure_timeout" => match seconds(&v) {
                    Some(d) => a.failure_timeout = d,
                    None => warn_bad("a number of seconds up to a year"),
                },
                "ember.root_timeout" => match seconds(&v) {
                    Some(d) => a.root_timeout = d,
                    None => warn_bad("a number of seconds up to a year"),
                },
                "ember.net_timeout" => match seconds(&v) {
                    Some(d) => a.net_timeout = d,
                    None => warn_bad("a number of seconds up to a year"),
                },
                "ember.shell" => a.shell = truthy(value.as_deref()),
                "ember.netif" => a.netif = Some(v).filter(|s| !s.is_empty()),
                "ember.modules" => a.modules.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(String::from),
                ),
                "ember.log" => a.log = Some(v).filter(|s| !s.is_empty()),
                _ => {}
            }
        }
        a
    }

    /// Reads `/proc/cmdline` (or `IGNITION_KERNEL_CMDLINE_PATH`, as the stages do).
    pub fn from_system() -> BootArgs {
        let path = crate::providers::cmdline::Source::default().cmdline_path;
        BootArgs::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The mount options of the root filesystem: `rootflags`, then `ro` or `rw`.
    pub fn root_options(&self, read_only: bool) -> Vec<String> {
        let mut o: Vec<String> = self
            .rootflags
            .iter()
            .flat_map(|f| f.split(','))
            .filter(|s| !s.is_empty() && *s != "ro" && *s != "rw")
            .map(String::from)
            .collect();
        o.push(if read_only { "ro" } else { "rw" }.to_string());
        o
    }
}

/// Why a `root=` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("the kernel command line has no root=")]
    Missing,
    #[error("root={0} is not a device Ember can mount (a /dev path, LABEL=, UUID=, PARTUUID= or PARTLABEL=)")]
    Unsupported(String),
}

/// The device path `root=` names: `/dev/...` as is, `LABEL=`, `UUID=`, `PARTUUID=` and
/// `PARTLABEL=` as the `/dev/disk/by-*` link udev would make.  Only `PARTUUID=` is
/// lower-cased (partition UUIDs are lower-case in by-partuuid); `UUID=` is kept as given, as
/// systemd does: vfat's is upper-case in by-uuid (`ABCD-1234`, as blkid writes it).
pub fn root_device(root: Option<&str>) -> Result<PathBuf, RootError> {
    let r = root.ok_or(RootError::Missing)?;
    if r.starts_with("/dev/") {
        return Ok(PathBuf::from(r));
    }
    let (dir, name, lower) = match r.split_once('=') {
        Some(("LABEL", n)) => ("by-label", n, false),
        Some(("UUID", n)) => ("by-uuid", n, false),
        Some(("PARTUUID", n)) => ("by-partuuid", n, true),
        Some(("PARTLABEL", n)) => ("by-partlabel", n, false),
        _ => return Err(RootError::Unsupported(r.to_string())),
    };
    if name.is_empty() {
        return Err(RootError::Unsupported(r.to_string()));
    }
    let name = if lower {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    };
    Ok(PathBuf::from("/dev/disk")
        .join(dir)
        .join(devnames::encode(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_end() {
        assert_eq!(words(r#"a  b="c d" "e f" -- g"#), vec!["a", "b=c d", "e f"]);
        assert_eq!(words("  x\ty\n"), vec!["x", "y"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn ignition_and_root_keys() {
        let a = BootArgs::parse(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 root=LABEL=root rootflags=noatime,ro \
             rootfstype=ext4 rw ignition.firstboot ignition.platform.id=qemu \
             ignition.config.url=http://10.0.2.2/c.ign init=/usr/lib/systemd/systemd",
        );
        assert_eq!(a.firstboot, Some(true));
        assert_eq!(a.platform.as_deref(), Some("qemu"));
        assert_eq!(a.config_url.as_deref(), Some("http://10.0.2.2/c.ign"));
        assert_eq!(a.root.as_deref(), Some("LABEL=root"));
        assert_eq!(a.rootfstype.as_deref(), Some("ext4"));
        assert!(!a.read_only);
        assert_eq!(a.init, PathBuf::from("/usr/lib/systemd/systemd"));
        assert_eq!(a.root_options(false), vec!["noatime", "rw"]);
        assert_eq!(a.root_options(true), vec!["noatime", "ro"]);
    }

    #[test]
    fn defaults_and_last_wins() {
        let a = BootArgs::parse("quiet");
        assert_eq!(a, BootArgs::default());
        assert!(a.read_only);
        assert_eq!(a.init, PathBuf::from("/sbin/init"));
        let a = BootArgs::parse(
            "rw ro root=/dev/vda root=/dev/vdb ignition.firstboot=1 ignition.firstboot=off",
        );
        assert!(a.read_only);
        assert_eq!(a.root.as_deref(), Some("/dev/vdb"));
        assert_eq!(a.firstboot, Some(false));
        for (v, want) in [
            ("", false),
            ("0", false),
            ("no", false),
            ("off", false),
            ("yes", true),
            ("1", true),
        ] {
            let a = BootArgs::parse(&format!("ignition.firstboot={v}"));
            assert_eq!(a.firstboot, Some(want), "{v:?}");
        }
    }

    #[test]
    fn ember_knobs() {
        let a = BootArgs::parse(
            "ember.failure_timeout=0 ember.root_timeout=5 ember.net_timeout=7 ember.shell=0 \
             ember.netif=eth1 ember.modules=xfs,dm-crypt ember.modules=raid1 ember.log=debug \
             ember.root_timeout=bad init=relative",
        );
        assert_eq!(a.failure_timeout, Duration::ZERO);
        assert_eq!(a.root_timeout, Duration::from_secs(5));
        assert_eq!(a.net_timeout, Duration::from_secs(7));
        assert!(!a.shell);
        assert_eq!(a.netif.as_deref(), Some("eth1"));
        assert_eq!(a.modules, vec!["xfs", "dm-crypt", "raid1"]);
        assert_eq!(a.log.as_deref(), Some("debug"));
        assert_eq!(a.init, PathBuf::from("/sbin/init"));
    }

    #[test]
    fn huge_timeouts_keep_the_default() {
        // Would overflow `Instant + Duration` (a panic in the boot process).
        let a = BootArgs::parse(
            "ember.net_timeout=18446744073709551615 ember.root_timeout=99999999999 \
             ember.failure_timeout=18446744073709551615",
        );
        assert_eq!(a.net_timeout, DEFAULT_NET_TIMEOUT);
        assert_eq!(a.root_timeout, DEFAULT_ROOT_TIMEOUT);
        assert_eq!(a.failure_timeout, DEFAULT_FAILURE_TIMEOUT);
        let _ = std::time::Instant::now() + a.net_timeout + a.root_timeout;
        let a = BootArgs::parse("ember.root_timeout=31536000");
        assert_eq!(a.root_timeout, Duration::from_secs(31_536_000));
    }

    #[test]
    fn root_devices() {
        let d = |r: &str| root_device(Some(r));
        assert_eq!(d("/dev/vda4"), Ok(PathBuf::from("/dev/vda4")));
        assert_eq!(
            d("LABEL=my root"),
            Ok(PathBuf::from("/dev/disk/by-label/my\\x20root"))
        );
        // vfat's UUID is upper-case in by-uuid, as blkid reports it: kept as given.
        assert_eq!(
            d("UUID=ABCD-1234"),
            Ok(PathBuf::from("/dev/disk/by-uuid/ABCD-1234"))
        );
        assert_eq!(
            d("UUID=0b9b6c2e-1b7f-4a6e-9f3e-2f3d7c1a5b00"),
            Ok(PathBuf::from(
                "/dev/disk/by-uuid/0b9b6c2e-1b7f-4a6e-9f3e-2f3d7c1a5b00"
            ))
        );
        assert_eq!(
            d("PARTUUID=8C1B9C3E-AAAA-4A4A-9B9B-000000000001"),
            Ok(PathBuf::from(
                "/dev/disk/by-partuuid/8c1b9c3e-aaaa-4a4a-9b9b-000000000001"
            ))
        );
        assert_eq!(
            d("PARTLABEL=root"),
            Ok(PathBuf::from("/dev/disk/by-partlabel/root"))
        );
        assert_eq!(root_device(None), Err(RootError::Missing));
        assert!(matches!(d("nfs:server:/x"), Err(RootError::Unsupported(_))));
        assert!(matches!(d("LABEL="), Err(RootError::Unsupported(_))));
    }
}
