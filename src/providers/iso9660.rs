//! A read-only ISO 9660 reader for config drives, used when the kernel cannot mount the image
//! (no `iso9660` module in the initramfs, as on minimal kernels).
//!
//! Names are taken from Rock Ridge (`NM`, with `CE` continuation areas), else from the Joliet
//! tree (UCS-2), else from the plain ISO 9660 names, compared without case and without the
//! `;1` version suffix (8.3-mangled level-1 names are not guessed at). That covers the images
//! OpenStack, cloud-init NoCloud and Proxmox make (genisoimage `-J -r`, `-J -R`, `-l`), and
//! UDF bridge discs that carry such an ISO 9660 tree. A UDF-only disc still needs the
//! kernel's `udf` module. Symlinks, multi-extent and interleaved files are not followed.
//! Every offset is bounds checked: a corrupt image gives an error, never a panic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Error, MAX_CONFIG_SIZE};

const SECTOR: u64 = 2048;
const MAX_DIR_SIZE: u32 = 16 * 1024 * 1024;

/// A directory record, decoded.
#[derive(Debug, Clone)]
struct Record {
    extent: u32,
    size: u32,
    dir: bool,
    /// Plain name (identifier) bytes.
    ident: Vec<u8>,
    /// Rock Ridge name, if any.
    rr_name: Option<Vec<u8>>,
}

/// An opened image.
pub struct Image {
    file: File,
    path: PathBuf,
    block: u64,
    /// Root of the primary tree, and whether it carries Rock Ridge names.
    primary: Option<(Record, bool, usize)>,
    /// Root of the Joliet tree.
    joliet: Option<Record>,
}

fn bad(path: &Path, what: &str) -> Error {
    Error::Drive {
        what: format!("{}: {what}", path.display()),
        source: None,
    }
}

fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn parse_record(r: &[u8]) -> Option<(Record, &[u8])> {
    let len = *r.first()? as usize;
    let rec = r.get(..len)?;
    let name_len = *rec.get(32)? as usize;
    let ident = rec.get(33..33 + name_len)?.to_vec();
    let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
    let su = rec.get(su_start.min(len)..).unwrap_or(&[]);
    Some((
        Record {
            extent: le32(rec, 2)?,
            size: le32(rec, 10)?,
            dir: rec.get(25)? & 2 != 0,
            ident,
            rr_name: None,
        },
        su,
    ))
}

impl Image {
    /// Opens `path` and reads its volume descriptors; an error if it is not ISO 9660.
    pub fn open(path: &Path) -> Result<Image, Error> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut img = Image {
            file,
            path: path.to_owned(),
            block: SECTOR,
            primary: None,
            joliet: None,
        };
        for i in 16..116u64 {
            let vd = img.read_at(i * SECTOR, SECTOR as usize)?;
            if vd.get(1..6) != Some(b"CD001") {
                break;
            }
            match vd[0] {
                1 if img.primary.is_none() => {
                    let block = u16::from_le_bytes([vd[128], vd[129]]) as u64;
                    if [512, 1024, 2048].contains(&block) {
                        img.block = block;
                    }
                    let (root, _) = parse_record(&vd[156..190])
                        .ok_or_else(|| bad(path, "bad root directory record"))?;
                    img.primary = Some((root, false, 0));
                }
                2 => {
                    let esc = &vd[88..91];
                    if esc == b"%/@" || esc == b"%/C" || esc == b"%/E" {
                        if let Some((root, _)) = parse_record(&vd[156..190]) {
                            img.joliet = Some(root);
                        }
                    }
                }
                255 => break,
                _ => {}
            }
        }
        let Some((root, _, _)) = img.primary.clone() else {
            return Err(bad(path, "not an ISO 9660 image"));
        };
        // Rock Ridge: the root's "." record starts its system use area with SP.
        let dot = img.read_at(root.extent as u64 * img.block, 256)?;
        if let Some((_, su)) = parse_record(&dot) {
            if su.len() >= 7 && &su[0..2] == b"SP" && su[4] == 0xbe && su[5] == 0xef {
                img.primary = Some((root, true, su[6] as usize));
            }
        }
        Ok(img)
    }

    fn read_at(&mut self, off: u64, len: usize) -> Result<Vec<u8>, Error> {
        let io_err = |source: io::Error| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(off)).map_err(io_err)?;
        let mut buf = Vec::new();
        (&mut self.file)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        if buf.len() < len {
            return Err(bad(&self.path, "truncated image"));
        }
        Ok(buf)
    }

    /// Rock Ridge name from a system use area (following `CE` continuations).
    fn rr_name(&mut self, su: &[u8], skip: usize) -> Option<Vec<u8>> {
        let mut area = su.get(skip..)?.to_vec();
        let mut name: Option<Vec<u8>> = None;
        for _ in 0..16 {
            let mut next = None;
            let mut i = 0;
            while i + 4 <= area.len() {
                let (sig, len) = (&area[i..i + 2], area[i + 2] as usize);
                if len < 4 || i + len > area.len() {
                    break;
                }
                let e = &area[i..i + len];
                match sig {
                    // Flags 2 and 4 name "." and "..".
                    b"NM" if len >= 5 && e[4] & 0x6 == 0 => {
                        name.get_or_insert_with(Vec::new).extend_from_slice(&e[5..]);
                    }
                    b"CE" if len >= 28 => {
                        next = Some((le32(e, 4)?, le32(e, 12)?, le32(e, 20)?));
                    }
                    b"ST" => break,
                    _ => {}
                }
                i += len;
            }
            let Some((block, offset, size)) = next else {
                return name;
            };
            if size > 64 * 1024 {
                return name;
            }
            area = self
                .read_at(block as u64 * self.block + offset as u64, size as usize)
                .ok()?;
        }
        name
    }

    /// The records of a directory.
    fn list(&mut self, dir: &Record, rr: Option<usize>) -> Result<Vec<Record>, Error> {
        if dir.size > MAX_DIR_SIZE {
            return Err(bad(&self.path, "directory too large"));
        }
        let data = self.read_at(dir.extent as u64 * self.block, dir.size as usize)?;
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let len = data[i] as usize;
            if len == 0 {
                // Records do not cross sectors: skip to the next one.
                i = (i / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let Some((mut rec, su)) = data.get(i..).and_then(parse_record) else {
                return Err(bad(&self.path, "bad directory record"));
            };
            let su = su.to_vec();
            i += len;
            if rec.ident == [0] || rec.ident == [1] {
                continue;
            }
            if let Some(skip) = rr {
                rec.rr_name = self.rr_name(&su, skip);
            }
            out.push(rec);
        }
        Ok(out)
    }

    fn plain_name(ident: &[u8]) -> String {
        let s = String::from_utf8_lossy(ident);
        let s = s.split(';').next().unwrap_or("");
        s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
    }

    fn joliet_name(ident: &[u8]) -> String {
        let units: Vec<u16> = ident
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let s = String::from_utf16_lossy(&units);
        s.split(';').next().unwrap_or("").to_string()
    }

    /// Finds `rel` (slash separated) in one tree.
    fn lookup(
        &mut self,
        root: &Record,
        rr: Option<usize>,
        joliet: bool,
        rel: &str,
    ) -> Result<Option<Record>, Error> {
        let mut cur = root.clone();
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for (n, part) in parts.iter().enumerate() {
            if !cur.dir {
                return Ok(None);
            }
            let found = self.list(&cur, rr)?.into_iter().find(|r| {
                if let Some(nm) = &r.rr_name {
                    nm.as_slice() == part.as_bytes()
                } else if joliet {
                    Self::joliet_name(&r.ident) == *part
                } else {
                    Self::plain_name(&r.ident) == part.to_ascii_lowercase()
                }
            });
            match found {
                Some(r) if n + 1 == parts.len() || r.dir => cur = r,
                _ => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn find(&mut self, rel: &str) -> Result<Option<Record>, Error> {
        if let Some((root, has_rr, skip)) = self.primary.clone() {
            if has_rr {
                if let Some(r) = self.lookup(&root, Some(skip), false, rel)? {
                    return Ok(Some(r));
                }
            }
        }
        if let Some(root) = self.joliet.clone() {
            if let Some(r) = self.lookup(&root, None, true, rel)? {
                return Ok(Some(r));
            }
        }
        if let Some((root, _, _)) = self.primary.clone() {
            return self.lookup(&root, None, false, rel);
        }
        Ok(None)
    }

    /// The content of the regular file `rel`; `Ok(None)` when there is none.
    pub fn read(&mut self, rel: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(r) = self.find(rel)? else {
            return Ok(None);
        };
        if r.dir {
            return Ok(None);
        }
        if r.size as u64 > MAX_CONFIG_SIZE {
            return Err(bad(&self.path, "file too large"));
        }
        self.read_at(r.extent as u64 * self.block, r.size as usize)
            .map(Some)
    }

    /// Whether `rel` exists.
    pub fn exists(&mut self, rel: &str) -> bool {
        matches!(self.find(rel), Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genisoimage(args: &[&str], files: &[(&str, &[u8])]) -> (PathBuf, PathBuf) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ember-iso-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let root = dir.join("root");
        for (rel, content) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let img = dir.join("img.iso");
        let out = std::process::Command::new("genisoimage")
            .args(args)
            .args(["-quiet", "-o"])
            .arg(&img)
            .arg(&root)
            .output()
            .expect("genisoimage is installed (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, img)
    }

    const FILES: &[(&str, &[u8])] = &[
        ("openstack/latest/user_data", b"{\"config\":1}"),
        ("openstack/latest/meta_data.json", b"{}"),
        (
            "a-very-long-file-name-that-needs-rock-ridge-or-joliet.txt",
            b"long",
        ),
        ("CustomData.bin", b"custom"),
    ];

    #[test]
    fn rock_ridge_joliet_and_plain_names() {
        for args in [
            &["-R", "-J", "-V", "config-2"][..],
            &["-r", "-V", "config-2"],
            &["-J", "-V", "config-2"],
            &["-udf", "-R", "-V", "config-2"],
            // Plain ISO 9660 names, as Nova writes them next to -J -r.
            &[
                "-l",
                "-allow-lowercase",
                "-allow-multidot",
                "-V",
                "config-2",
            ],
        ] {
            let (dir, img) = genisoimage(args, FILES);
            let mut i = Image::open(&img).unwrap();
            assert_eq!(
                i.read("openstack/latest/user_data").unwrap().as_deref(),
                Some(&b"{\"config\":1}"[..]),
                "{args:?}"
            );
            assert_eq!(
                i.read("/CustomData.bin").unwrap().as_deref(),
                Some(&b"custom"[..])
            );
            assert_eq!(i.read("openstack/latest/missing").unwrap(), None);
            assert_eq!(
                i.read("openstack").unwrap(),
                None,
                "a directory is not a file"
            );
            assert!(i.exists("openstack/latest"));
            if args.contains(&"-R") || args.contains(&"-r") || args.contains(&"-J") {
                assert_eq!(
                    i.read("a-very-long-file-name-that-needs-rock-ridge-or-joliet.txt")
                        .unwrap()
                        .as_deref(),
                    Some(&b"long"[..]),
                    "{args:?}"
                );
            }
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn not_iso_and_corrupt_images_are_errors() {
        let dir = std::env::temp_dir().join(format!("ember-iso-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("zeros");
        std::fs::write(&p, vec![0u8; 64 * 1024]).unwrap();
        assert!(Image::open(&p).is_err());
        std::fs::write(&p, b"short").unwrap();
        assert!(Image::open(&p).is_err());
        // A real image with its directory extents pointing past the end.
        let (d2, img) = genisoimage(&["-R", "-V", "x"], FILES);
        let mut data = std::fs::read(&img).unwrap();
        data.truncate(19 * 2048);
        std::fs::write(&p, &data).unwrap();
        if let Ok(mut i) = Image::open(&p) {
            assert!(i.read("openstack/latest/user_data").is_err());
        }
        // Random garbage in the directory area never panics.
        let mut data = std::fs::read(&img).unwrap();
        for (n, b) in data.iter_mut().enumerate().skip(18 * 2048).take(8 * 2048) {
            *b = (n * 7919 % 251) as u8;
        }
        std::fs::write(&p, &data).unwrap();
        if let Ok(mut i) = Image::open(&p) {
            let _ = i.read("openstack/latest/user_data");
        }
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(d2).unwrap();
    }
}
