//! LUKS2 volumes with cryptsetup, as Ignition makes them (`behaviour` §2.9).
//!
//! Keys never appear on a command line or in a log: cryptsetup and clevis read them from a
//! private temporary file ([`KeyFile`]: mode 0400 in a 0700 directory, overwritten and removed
//! when dropped).  A generated key is 4096 random bytes written as 8192 hex characters, like
//! Ignition's, and handed to the files stage as a data URL in
//! `state.luks_persist_key_files[name]`.

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::config::model::Clevis;
use crate::system::command::{self, Command, Output};
use crate::system::kmod;

/// Key bytes: not printed by `Debug`, zeroed when dropped.
#[derive(Clone, Default)]
pub(crate) struct Secret(pub(crate) Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into our own buffer; the
            // volatile write only keeps the compiler from eliding the zeroing.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Secret {
    /// 4096 random bytes as lower-case hex (8192 characters).
    pub(crate) fn generate() -> Secret {
        let mut raw = vec![0u8; 4096];
        crate::system::random_bytes(&mut raw);
        let mut hex = Vec::with_capacity(8192);
        for b in &raw {
            hex.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        for b in raw.iter_mut() {
            *b = 0;
        }
        Secret(hex)
    }

    /// The key as a data URL, the form the state file keeps it in.
    pub(crate) fn data_url(&self) -> String {
        format!(
            "data:application/octet-stream;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }
}

/// A key written to a private temporary file for the tools to read.
pub(crate) struct KeyFile {
    dir: PathBuf,
    path: PathBuf,
    len: usize,
}

impl KeyFile {
    pub(crate) fn new(key: &Secret) -> std::io::Result<KeyFile> {
        let mut rnd = [0u8; 8];
        crate::system::random_bytes(&mut rnd);
        let dir = std::env::temp_dir().join(format!(
            "ember-luks-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(rnd)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("key");
        let kf = KeyFile {
            dir,
            path,
            len: key.0.len(),
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&kf.path)?;
        f.write_all(&key.0)?;
        f.sync_all()?;
        Ok(kf)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.write_all(&vec![0u8; self.len]);
            let _ = f.sync_all();
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What a LUKS header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u16,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// `allow-discards` among LUKS2 `config.flags`.
    pub allow_discards: bool,
}

/// Reads a LUKS header (primary at offset 0), or `None` when there is none.
pub(crate) fn read_header<D: Read + Seek>(dev: &mut D) -> std::io::Result<Option<Header>> {
    let mut bin = [0u8; 4096];
    dev.seek(SeekFrom::Start(0))?;
    if let Err(e) = dev.read_exact(&mut bin) {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Ok(None);
        }
        return Err(e);
    }
    if &bin[..6] != b"LUKS\xba\xbe" {
        return Ok(None);
    }
    let version = u16::from_be_bytes([bin[6], bin[7]]);
    let text = |b: &[u8]| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        let s = String::from_utf8_lossy(&b[..end]).trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    let uuid = text(&bin[168..208]);
    if version != 2 {
        return Ok(Some(Header {
            version,
            label: None,
            uuid,
            allow_discards: false,
        }));
    }
    let label = text(&bin[24..72]);
    let mut hs = [0u8; 8];
    hs.copy_from_slice(&bin[8..16]);
    let hdr_size = u64::from_be_bytes(hs);
    // The JSON area follows the 4 KiB binary header; LUKS2 allows at most 4 MiB for both.
    let mut allow_discards = false;
    if (8192..=4 << 20).contains(&hdr_size) {
        let mut json = vec![0u8; (hdr_size - 4096) as usize];
        dev.seek(SeekFrom::Start(4096))?;
        dev.read_exact(&mut json)?;
        let end = json.iter().position(|c| *c == 0).unwrap_or(json.len());
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json[..end]) {
            allow_discards = v
                .pointer("/config/flags")
                .and_then(|f| f.as_array())
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("allow-discards")));
        }
    }
    Ok(Some(Header {
        version,
        label,
        uuid,
        allow_discards,
    }))
}

/// Makes sure the kernel has device-mapper (and, when it can be loaded, dm-crypt).  Returns
/// why not, otherwise.
pub(crate) fn ensure_dm() -> Result<(), String> {
    let has_dm = || {
        std::fs::read_to_string("/proc/misc")
            .map(|s| s.lines().any(|l| l.trim_end().ends_with(" device-mapper")))
            .unwrap_or(false)
    };
    let mut why = String::new();
    if !has_dm() {
        if let Err(e) = kmod::modprobe("dm_mod") {
            why = e.to_string();
        }
    }
    if !has_dm() {
        return Err(format!(
            "the kernel has no device-mapper support (no device-mapper in /proc/misc){}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" and {why}")
            }
        ));
    }
    if !Path::new("/sys/module/dm_crypt").exists() {
        if let Err(e) = kmod::modprobe("dm_crypt") {
            log::debug!("{e}");
        }
    }
    Ok(())
}

/// `cryptsetup luksFormat --type luks2 --key-file K [--label L] [--uuid U] <options> <dev>`.
pub(crate) fn format_command(
    key: &Path,
    label: Option<&str>,
    uuid: Option<&str>,
    options: &[String],
    device: &Path,
) -> Command {
    let mut c = Command::new("cryptsetup").args(["luksFormat", "--type", "luks2", "--key-file"]);
    c = c.arg(key);
    if let Some(l) = label {
        c = c.args(["--label", l]);
    }
    if let Some(u) = uuid {
        c = c.args(["--uuid", u]);
    }
    c.args(options).arg(device)
}

/// `cryptsetup luksOpen <dev> <name> --key-file K --persistent [--allow-discards] <open options>`.
pub(crate) fn open_command(
    device: &Path,
    name: &str,
    key: &Path,
    discard: bool,
    open_options: &[String],
) -> Command {
    let mut c = Command::new("cryptsetup")
        .arg("luksOpen")
        .arg(device)
        .arg(name)
        .arg("--key-file")
        .arg(key)
        .arg("--persistent");
    if discard {
        c = c.arg("--allow-discards");
    }
    c.args(open_options)
}

/// Checks a key against a volume without opening it.
pub(crate) fn test_key_command(device: &Path, key: &Path) -> Command {
    Command::new("cryptsetup")
        .args(["luksOpen", "--test-passphrase", "--key-file"])
        .arg(key)
        .arg(device)
}

/// cryptsetup's exit status when no key slot opens with the passphrase.
const CRYPTSETUP_WRONG_PASSPHRASE: i32 = 2;

/// What `test` (a [`test_key_command`]) said, given its output: `Ok(true)` when the key
/// opens the volume, `Ok(false)` when cryptsetup answered "wrong passphrase"; any other
/// failure (cryptsetup killed, the device busy or missing) is the command's error.
pub(crate) fn key_opens(test: &Command, out: Output) -> Result<bool, command::Error> {
    if out.status.code() == Some(CRYPTSETUP_WRONG_PASSPHRASE) {
        return Ok(false);
    }
    test.check(out).map(|_| true)
}

/// The clevis pin and its JSON config, as Ignition builds them: a custom pin as given, else
/// `sss` over the tang servers (with their advertisements, fetched ones included) and tpm2.
/// `None` when the volume has no clevis binding.
pub(crate) fn clevis_config(
    c: &Clevis,
    advertisements: &[Option<serde_json::Value>],
) -> Option<(String, String)> {
    if let Some(pin) = c.custom.pin.as_deref().filter(|p| !p.is_empty()) {
        return Some((pin.to_string(), c.custom.config.clone().unwrap_or_default()));
    }
    let tpm2 = c.tpm2 == Some(true);
    if c.tang.is_empty() && !tpm2 {
        return None;
    }
    // Ignition's field order: {"pins":{"tang":[{"url","thp","adv"}],"tpm2":{}},"t":N}.
    #[derive(serde::Serialize)]
    struct TangPin<'a> {
        url: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        thp: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        adv: Option<&'a serde_json::Value>,
    }
    #[derive(serde::Serialize)]
    struct Pins<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        tang: Option<Vec<TangPin<'a>>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tpm2: Option<serde_json::Map<String, serde_json::Value>>,
    }
    #[derive(serde::Serialize)]
    struct Sss<'a> {
        pins: Pins<'a>,
        t: i64,
    }
    let tang: Vec<TangPin> = c
        .tang
        .iter()
        .zip(advertisements.iter().chain(std::iter::repeat(&None)))
        .map(|(t, adv)| TangPin {
            url: &t.url,
            thp: t.thumbprint.as_deref().filter(|s| !s.is_empty()),
            adv: adv.as_ref(),
        })
        .collect();
    let cfg = Sss {
        pins: Pins {
            tang: (!tpm2 || !tang.is_empty()).then_some(tang),
            tpm2: tpm2.then(serde_json::Map::new),
        },
        t: c.threshold.unwrap_or(1),
    };
    serde_json::to_string(&cfg).ok().map(|s| ("sss".into(), s))
}

/// Whether the binding can unlock without the network at boot being needed for it: the
/// number of pins that work unattended (tang servers without a configured advertisement, and
/// tpm2) reaches the threshold.  Ignition then reopens the volume through clevis.
pub(crate) fn clevis_unlock_check(c: &Clevis) -> bool {
    if c.custom.pin.as_deref().is_some_and(|p| !p.is_empty()) {
        return false;
    }
    let online = c
        .tang
        .iter()
        .filter(|t| t.advertisement.as_deref().is_none_or(str::is_empty))
        .count()
        + usize::from(c.tpm2 == Some(true));
    let threshold = c.threshold.unwrap_or(1).max(0) as usize;
    (c.tang.len() + usize::from(c.tpm2 == Some(true))) > 0 && online >= threshold
}

/// Whether clevis binds the volume (Ignition's `Clevis.IsPresent`): tang servers, tpm2 or a
/// custom pin.
pub(crate) fn has_clevis(c: &Clevis) -> bool {
    !c.tang.is_empty()
        || c.tpm2 == Some(true)
        || c.custom.pin.as_deref().is_some_and(|p| !p.is_empty())
}

/// Whether unlocking needs the network (for `_netdev` in crypttab): tang, or a custom pin
/// that says so.
pub(crate) fn needs_network(c: &Clevis) -> bool {
    !c.tang.is_empty() || c.custom.needs_network == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ClevisCustom, Tang};
    use std::io::Cursor;

    #[test]
    fn only_a_wrong_passphrase_means_the_key_does_not_open() {
        let status = |script: &str| {
            let cmd = Command::new("sh").args(["-c", script]);
            let out = cmd.run_unchecked().unwrap();
            key_opens(&cmd, out)
        };
        assert!(status("exit 0").unwrap());
        assert!(!status("exit 2").unwrap());
        for other in ["echo busy >&2; exit 5", "exit 1", "kill -9 $$"] {
            let e = status(other).unwrap_err();
            assert!(matches!(e, command::Error::Failed { .. }), "{other}: {e}");
        }
    }

    #[test]
    fn generated_keys_are_hex_and_never_printed() {
        let k = Secret::generate();
        assert_eq!(k.0.len(), 8192);
        assert!(k.0.iter().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(format!("{k:?}"), "Secret(8192 bytes)");
        let url = k.data_url();
        let back = crate::config::dataurl::decode(&url).unwrap();
        assert_eq!(back.data, k.0);
    }

    #[test]
    fn key_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let k = Secret(b"sekrit".to_vec());
        let kf = KeyFile::new(&k).unwrap();
        let meta = std::fs::metadata(kf.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        let dir_mode = std::fs::metadata(kf.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(std::fs::read(kf.path()).unwrap(), b"sekrit");
        let p = kf.path().to_owned();
        drop(kf);
        assert!(!p.exists());
        assert!(!p.parent().unwrap().exists());
    }

    #[test]
    fn header_parsing() {
        let mut img = vec![0u8; 16384];
        img[..6].copy_from_slice(b"LUKS\xba\xbe");
        img[7] = 2;
        img[8..16].copy_from_slice(&16384u64.to_be_bytes());
        img[24..29].copy_from_slice(b"crypt");
        let uuid = b"3d3f8a4e-5d8e-4a57-9a0e-1f0f2f3f4f5f";
        img[168..168 + uuid.len()].copy_from_slice(uuid);
        let json = br#"{"keyslots":{},"config":{"json_size":"12288","flags":["allow-discards"]}}"#;
        img[4096..4096 + json.len()].copy_from_slice(json);
        let h = read_header(&mut Cursor::new(img.clone())).unwrap().unwrap();
        assert_eq!(h.version, 2);
        assert_eq!(h.label.as_deref(), Some("crypt"));
        assert_eq!(
            h.uuid.as_deref(),
            Some("3d3f8a4e-5d8e-4a57-9a0e-1f0f2f3f4f5f")
        );
        assert!(h.allow_discards);
        img[4096..4096 + json.len()].fill(0);
        assert!(
            !read_header(&mut Cursor::new(img))
                .unwrap()
                .unwrap()
                .allow_discards
        );
        assert!(read_header(&mut Cursor::new(vec![0u8; 8192]))
            .unwrap()
            .is_none());
        assert!(read_header(&mut Cursor::new(vec![0u8; 100]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn command_lines_carry_no_key() {
        let k = Path::new("/tmp/x/key");
        let d = Path::new("/dev/vdb3");
        assert_eq!(
            format_command(k, Some("data"), None, &["--pbkdf".into(), "pbkdf2".into()], d)
                .cmdline(),
            "cryptsetup luksFormat --type luks2 --key-file /tmp/x/key --label data --pbkdf pbkdf2 /dev/vdb3"
        );
        assert_eq!(
            open_command(d, "secret", k, true, &["--perf-no_read_workqueue".into()]).cmdline(),
            "cryptsetup luksOpen /dev/vdb3 secret --key-file /tmp/x/key --persistent \
             --allow-discards --perf-no_read_workqueue"
        );
    }

    #[test]
    fn clevis_configs_like_ignition() {
        let mut c = Clevis::default();
        assert_eq!(clevis_config(&c, &[]), None);
        c.tpm2 = Some(true);
        assert_eq!(
            clevis_config(&c, &[]).unwrap(),
            ("sss".into(), r#"{"pins":{"tpm2":{}},"t":1}"#.into())
        );
        assert!(clevis_unlock_check(&c));
        c.tang.push(Tang {
            url: "http://tang.example".into(),
            thumbprint: Some("abc".into()),
            advertisement: None,
        });
        c.threshold = Some(2);
        let adv = serde_json::json!({"payload": "x"});
        assert_eq!(
            clevis_config(&c, &[Some(adv)]).unwrap().1,
            r#"{"pins":{"tang":[{"url":"http://tang.example","thp":"abc","adv":{"payload":"x"}}],"tpm2":{}},"t":2}"#
        );
        assert!(clevis_unlock_check(&c));
        assert!(needs_network(&c));
        c.tpm2 = None;
        assert_eq!(
            clevis_config(&c, &[]).unwrap().1,
            r#"{"pins":{"tang":[{"url":"http://tang.example","thp":"abc"}]},"t":2}"#
        );
        assert!(!clevis_unlock_check(&c));
        c.custom = ClevisCustom {
            config: Some("{}".into()),
            needs_network: Some(true),
            pin: Some("tpm2".into()),
        };
        assert_eq!(
            clevis_config(&c, &[]).unwrap(),
            ("tpm2".into(), "{}".into())
        );
    }
}
