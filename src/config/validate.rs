//! Validation: Ignition's rules, in Ignition's order, with its messages; plus Ember's own checks.
//!
//! Ignition validates in three passes, and its reports keep that order:
//! 1. every type's own rules, walking the config depth-first in field order, a type's rules
//!    before those of its children;
//! 2. duplicate entries in keyed lists;
//! 3. keys that are not fields (warnings).
//!
//! Old spec versions are validated with their own rules (the differences are marked with the
//! versions they apply to). Ember's own findings are marked `ember_only` and left out when Ember
//! acts as `ignition-validate`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::json::{Doc, Kind};
use super::model::*;
use super::report::{Entry, JsonPath, Lookup, Report, Severity};
use super::unit;
use super::url;
use super::version::Spec;

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Ext`.
pub fn path_ext(p: &str) -> &str {
    let last = p.rsplit('/').next().unwrap_or(p);
    match last.rfind('.') {
        Some(i) => &last[i..],
        None => "",
    }
}

/// Ignition's `validatePath`: (message, rule code).
pub fn path_problem(p: &str) -> Option<(&'static str, &'static str)> {
    if p.is_empty() {
        Some(("path not specified", "path-missing"))
    } else if !p.starts_with('/') {
        Some(("path not absolute", "path-not-absolute"))
    } else if clean_path(p) != p {
        Some(("path is not fully simplified", "path-not-simplified"))
    } else {
        None
    }
}

fn path_entry(path: JsonPath, p: &str) -> Option<Entry> {
    path_problem(p).map(|(msg, code)| {
        let hint = match code {
            "path-missing" => "give an absolute path such as \"/etc/example\"".to_string(),
            "path-not-absolute" => format!("make it absolute: \"/{}\"", p.trim_start_matches("./")),
            _ => format!("write it as \"{}\"", clean_path(p)),
        };
        Entry::error(path, code, msg).with_hint(hint)
    })
}

fn nil_or_empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

fn not_empty(s: &Option<String>) -> bool {
    !nil_or_empty(s)
}

fn is_true(b: Option<bool>) -> bool {
    b == Some(true)
}

struct Rules<'a> {
    spec: Spec,
    report: &'a mut Report,
}

impl Rules<'_> {
    fn push(&mut self, e: Option<Entry>) {
        if let Some(e) = e {
            self.report.push(e);
        }
    }

    fn url_error(&self, s: &str) -> Option<String> {
        let allow_gs = self.spec >= Spec::V3_2;
        let allow_arn = self.spec >= Spec::V3_4;
        url::validate_resource_url(s, allow_gs, allow_arn)
            .err()
            .map(|e| e.to_string())
    }

    fn url_entry(&self, path: JsonPath, s: &str) -> Option<Entry> {
        self.url_error(s)
            .map(|msg| url_error_entry(path, msg, self.spec))
    }

    /// Ignition's path rules on `path.key`, building the entry only when there is a problem.
    fn check_path(&mut self, path: &JsonPath, key: &str, p: &str) {
        if path_problem(p).is_some() {
            self.push(path_entry(path.key(key), p));
        }
    }

    fn required_source(&mut self, path: JsonPath, r: &Resource) {
        match r.source.as_deref() {
            None | Some("") => self.push(Some(
                Entry::error(path, "source-required", "source is required")
                    .with_hint("add a \"source\" URL"),
            )),
            Some(s) => {
                if let Some(msg) = self.url_error(s) {
                    self.push(Some(url_error_entry(path, msg, self.spec)));
                }
            }
        }
    }

    fn visit(&mut self, s: &dyn DynStruct, path: &JsonPath, shape: Shape30, root: &Config) {
        let any = s.as_any();
        if let Some(c) = any.downcast_ref::<Config>() {
            self.config(c, path);
        } else if let Some(ic) = any.downcast_ref::<IgnitionConfig>() {
            if self.spec >= Spec::V3_1 {
                for (i, r) in ic.merge.iter().enumerate() {
                    self.required_source(path.key("merge").index(i), r);
                }
            }
        } else if let Some(p) = any.downcast_ref::<Proxy>() {
            if p.http_proxy.is_some() {
                self.proxy(&p.http_proxy, path.key("httpProxy"), true);
            }
            if p.https_proxy.is_some() {
                self.proxy(&p.https_proxy, path.key("httpsProxy"), false);
            }
        } else if let Some(t) = any.downcast_ref::<Tls>() {
            for (i, r) in t.certificate_authorities.iter().enumerate() {
                let p = path.key("certificateAuthorities").index(i);
                if self.spec >= Spec::V3_1 {
                    self.required_source(p, r);
                } else {
                    let src = r.source.clone().unwrap_or_default();
                    let e = self.url_entry(p.key("source"), &src);
                    self.push(e);
                }
            }
        } else if let Some(r) = any.downcast_ref::<Resource>() {
            self.resource(r, path, shape);
        } else if let Some(h) = any.downcast_ref::<HttpHeader>() {
            if h.name.is_empty() {
                self.push(Some(
                    Entry::error(
                        path.key("name"),
                        "http-header-name-empty",
                        "HTTP header name can't be empty",
                    )
                    .with_hint("give the header a name, or remove the entry"),
                ));
            }
            if h.value.as_deref() == Some("") {
                self.push(Some(
                    Entry::error(
                        path.key("value"),
                        "http-header-value-empty",
                        "unable to parse HTTP header",
                    )
                    .with_hint("give the header a value, or leave \"value\" out"),
                ));
            }
        } else if let Some(v) = any.downcast_ref::<Verification>() {
            self.verification(v, path);
        } else if let Some(st) = any.downcast_ref::<Storage>() {
            self.storage(st, path);
        } else if let Some(d) = any.downcast_ref::<Directory>() {
            self.check_path(path, "path", &d.path);
            self.mode(d.mode, path);
        } else if let Some(f) = any.downcast_ref::<File>() {
            self.check_path(path, "path", &f.path);
            self.mode(f.mode, path);
            if is_true(f.overwrite) && f.contents.source.is_none() {
                self.push(Some(
                    Entry::error(
                        path.key("overwrite"),
                        "overwrite-without-source",
                        "overwrite must be false if source is unspecified",
                    )
                    .with_hint("add contents.source, or drop \"overwrite\""),
                ));
            }
        } else if let Some(l) = any.downcast_ref::<Link>() {
            self.link(l, path);
        } else if let Some(u) = any.downcast_ref::<NodeUser>() {
            self.owner(u.id, &u.name, path);
        } else if let Some(g) = any.downcast_ref::<NodeGroup>() {
            self.owner(g.id, &g.name, path);
        } else if let Some(d) = any.downcast_ref::<Disk>() {
            self.disk(d, path);
        } else if let Some(p) = any.downcast_ref::<Partition>() {
            self.partition(p, path);
        } else if let Some(f) = any.downcast_ref::<Filesystem>() {
            self.filesystem(f, path);
        } else if let Some(l) = any.downcast_ref::<Luks>() {
            self.luks(l, path);
        } else if let Some(c) = any.downcast_ref::<ClevisCustom>() {
            self.custom(c, path);
        } else if let Some(t) = any.downcast_ref::<Tang>() {
            self.tang(t, path);
        } else if let Some(r) = any.downcast_ref::<Raid>() {
            self.raid(r, path);
        } else if let Some(s) = any.downcast_ref::<Systemd>() {
            self.systemd(s, path);
        } else if let Some(u) = any.downcast_ref::<Unit>() {
            self.unit(u, path);
        } else if let Some(d) = any.downcast_ref::<Dropin>() {
            if let Err(e) = unit_contents(&d.contents) {
                self.push(Some(unit_content_entry(path.key("contents"), e)));
            }
            if path_ext(&d.name) != ".conf" {
                self.push(Some(
                    Entry::error(
                        path.key("name"),
                        "dropin-extension",
                        "invalid systemd drop-in extension",
                    )
                    .with_hint("drop-in names end in \".conf\""),
                ));
            }
        }
        let _ = root;
    }

    fn config(&mut self, c: &Config, path: &JsonPath) {
        let mut unit_paths: HashSet<String> = HashSet::new();
        for u in &c.systemd.units {
            if not_empty(&u.contents) {
                unit_paths.insert(format!("/etc/systemd/system/{}", u.name));
            }
            for d in &u.dropins {
                if not_empty(&d.contents) {
                    unit_paths.insert(format!("/etc/systemd/system/{}.d/{}", u.name, d.name));
                }
            }
        }
        let conflict = |p: JsonPath| {
            Entry::error(
                p,
                "path-conflicts-unit",
                "path conflicts with systemd unit or dropin",
            )
            .with_hint("write the unit through systemd.units, not as a file")
        };
        let st = path.key("storage");
        for (i, f) in c.storage.files.iter().enumerate() {
            if unit_paths.contains(&f.path) {
                self.push(Some(conflict(st.key("files").index(i).key("path"))));
            }
        }
        for (i, d) in c.storage.directories.iter().enumerate() {
            if unit_paths.contains(&d.path) {
                self.push(Some(conflict(st.key("directories").index(i).key("path"))));
            }
        }
        for (i, l) in c.storage.links.iter().enumerate() {
            if unit_paths.contains(&l.path) {
                self.push(Some(conflict(st.key("links").index(i).key("path"))));
            }
        }
    }

    fn proxy(&mut self, s: &Option<String>, path: JsonPath, http_ok: bool) {
        let Some(s) = s else { return };
        match url::parse(s).map(|u| u.scheme) {
            Err(_) => self.push(Some(Entry::error(
                path,
                "url-unparseable",
                "unable to parse url",
            ))),
            Ok(scheme) if scheme != "http" && scheme != "https" => self.push(Some(
                Entry::error(path, "proxy-scheme", "proxies must be http(s)")
                    .with_hint("use an http:// or https:// proxy URL"),
            )),
            Ok(scheme) => {
                if scheme == "http" && !http_ok {
                    self.push(Some(
                        Entry::warning(
                            path,
                            "insecure-proxy",
                            "insecure plaintext HTTP proxy specified for HTTPS resources",
                        )
                        .with_hint("use an https:// proxy for HTTPS traffic if you can"),
                    ));
                }
            }
        }
    }

    fn resource(&mut self, r: &Resource, path: &JsonPath, shape: Shape30) {
        if let Some(c) = &r.compression {
            if !c.is_empty() && c != "gzip" {
                self.push(Some(
                    Entry::error(
                        path.key("compression"),
                        "compression-invalid",
                        "invalid compression method",
                    )
                    .with_hint("the only compression is \"gzip\" (or leave it out)"),
                ));
            }
        }
        if r.verification.hash.is_some() && r.source.is_none() {
            self.push(Some(
                Entry::error(
                    path.key("verification").key("hash"),
                    "hash-without-source",
                    "source must be specified if verification is specified",
                )
                .with_hint("add a \"source\", or remove \"verification\""),
            ));
        }
        let ca30 = self.spec == Spec::V3_0 && shape == Shape30::CaReference;
        if !ca30 {
            if let Some(s) = r.source.as_deref().filter(|s| !s.is_empty()) {
                if let Some(msg) = self.url_error(s) {
                    self.push(Some(url_error_entry(path.key("source"), msg, self.spec)));
                }
            }
        }
        if !r.http_headers.is_empty() {
            let e = match r.source.as_deref() {
                None | Some("") => Some(Entry::error(
                    path.key("httpHeaders"),
                    "url-unparseable",
                    "unable to parse url",
                )),
                Some(s) => match url::parse(s).map(|u| u.scheme) {
                    Err(_) => Some(Entry::error(
                        path.key("httpHeaders"),
                        "url-unparseable",
                        "unable to parse url",
                    )),
                    Ok(sc) if sc == "http" || sc == "https" => None,
                    Ok(_) => Some(
                        Entry::error(
                            path.key("httpHeaders"),
                            "http-headers-scheme",
                            "cannot use HTTP headers with this source scheme",
                        )
                        .with_hint("httpHeaders only apply to http and https sources"),
                    ),
                },
            };
            self.push(e);
        }
    }

    fn verification(&mut self, v: &Verification, path: &JsonPath) {
        let Some(h) = &v.hash else { return };
        let p = path.key("hash");
        let Some((func, sum)) = h.split_once('-') else {
            self.push(Some(
                Entry::error(p, "hash-malformed", "malformed hash specifier").with_hint(
                    "write the hash as \"sha512-<128 hex digits>\" or \"sha256-<64 hex digits>\"",
                ),
            ));
            return;
        };
        let want = match func {
            "sha512" => 128,
            "sha256" if self.spec >= Spec::V3_1 => 64,
            _ => {
                let hint = if self.spec >= Spec::V3_1 {
                    "use sha512 or sha256"
                } else {
                    "spec 3.0.0 only has sha512 (sha256 needs 3.1.0)"
                };
                self.push(Some(
                    Entry::error(p, "hash-function", "unrecognized hash function").with_hint(hint),
                ));
                return;
            }
        };
        if sum.len() != want {
            self.push(Some(
                Entry::error(p, "hash-size", "incorrect size for hash sum").with_hint(format!(
                    "a {func} digest has {want} hex digits; this one has {}",
                    sum.len()
                )),
            ));
        }
    }

    fn mode(&mut self, mode: Option<i64>, parent: &JsonPath) {
        let Some(m) = mode else { return };
        let bad = !(0..=0o7777).contains(&m);
        let special = self.spec < Spec::V3_6 && (m as u32) & 0o7000 != 0;
        if !bad && !special {
            return;
        }
        let path = parent.key("mode");
        if bad {
            self.push(Some(
                Entry::error(path.clone(), "mode-illegal", "illegal file mode").with_hint(
                    "give the mode in decimal between 0 and 4095 (0644 is 420, 0755 is 493)",
                ),
            ));
        }
        if special {
            self.push(Some(
                Entry::warning(
                    path,
                    "mode-special-bits",
                    "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
                )
                .with_hint("use spec 3.6.0 to set these bits; older specs drop them"),
            ));
        }
    }

    fn owner(&mut self, id: Option<i64>, name: &Option<String>, path: &JsonPath) {
        if id.is_some() && not_empty(name) {
            self.push(Some(
                Entry::error(
                    path.clone(),
                    "owner-id-and-name",
                    "cannot set both id and name",
                )
                .with_hint("keep either \"id\" or \"name\""),
            ));
        }
    }

    fn storage(&mut self, s: &Storage, path: &JsonPath) {
        // Ignition compares every entry with every link (`p` starts with `link + "/"`); the same
        // findings, in the same order, come from looking each proper prefix of `p` that ends
        // before a '/' up among the link paths, counting links that share a path. Only
        // prefixes as long as some link path are looked up: hashing every prefix of a path with
        // n components takes time quadratic in its length.
        //
        // k links with the same path (already a duplicate error) and m files below them give
        // k×m findings, as in Ignition; past LINK_FINDINGS_LIMIT of them Ember stops and says
        // so, since a 64 KiB config could otherwise ask for gigabytes of findings.
        const LINK_FINDINGS_LIMIT: usize = 10_000;
        let mut links: FxMap<&str, usize> = FxMap::default();
        for l in &s.links {
            *links.entry(l.path.as_str()).or_default() += 1;
        }
        let link_lengths: FxSet<usize> = links.keys().map(|p| p.len()).collect();
        let below_links = |p: &str| -> usize {
            if links.is_empty() {
                return 0;
            }
            p.match_indices('/')
                .filter(|&(k, _)| link_lengths.contains(&k))
                .filter_map(|(k, _)| links.get(&p[..k]))
                .sum()
        };
        let mut emitted = 0usize;
        let mut emit = |rules: &mut Self, entry: Entry| {
            if emitted < LINK_FINDINGS_LIMIT {
                rules.push(Some(entry));
            } else if emitted == LINK_FINDINGS_LIMIT {
                rules.push(Some(
                    Entry::warning(
                        path.key("links"),
                        "findings-limited",
                        format!("more than {LINK_FINDINGS_LIMIT} findings about paths below links; the rest are not listed"),
                    )
                    .ember(),
                ));
            }
            emitted += 1;
        };
        for (i, d) in s.directories.iter().enumerate() {
            for _ in 0..below_links(&d.path) {
                emit(
                    self,
                    Entry::error(
                        path.key("directories").index(i),
                        "path-below-link",
                        "directory path includes link in config",
                    ),
                );
            }
        }
        for (i, f) in s.files.iter().enumerate() {
            for _ in 0..below_links(&f.path) {
                emit(
                    self,
                    Entry::error(
                        path.key("files").index(i),
                        "path-below-link",
                        "file path includes link in config",
                    ),
                );
            }
        }
        let mut dirs: FxMap<&str, usize> = FxMap::default();
        for d in &s.directories {
            *dirs.entry(d.path.as_str()).or_default() += 1;
        }
        for (i, l1) in s.links.iter().enumerate() {
            for _ in 0..below_links(&l1.path) {
                emit(
                    self,
                    Entry::error(
                        path.key("links").index(i),
                        "path-below-link",
                        "link path includes link in config",
                    ),
                );
            }
            if is_true(l1.hard) {
                if let Some(t) = &l1.target {
                    let mut target = clean_path(t);
                    if !target.starts_with('/') {
                        target = clean_path(&format!("{}/{}", l1.path, t));
                    }
                    for _ in 0..dirs.get(target.as_str()).copied().unwrap_or(0) {
                        emit(
                            self,
                            Entry::error(
                                path.key("links").index(i),
                                "hard-link-to-directory",
                                "hard link target is a directory",
                            ),
                        );
                    }
                }
            }
        }
        let mut disks: HashMap<&str, &Disk> = HashMap::new();
        for d in &s.disks {
            disks.insert(&d.device, d);
        }
        for (i, f) in s.filesystems.iter().enumerate() {
            if let Some(d) = disks.get(f.device.as_str()) {
                if !d.partitions.is_empty() {
                    self.push(Some(Entry::warning(
                        path.key("filesystems").index(i).key("device"),
                        "filesystem-on-partitioned-disk",
                        "filesystem overwrites partitioned device",
                    )));
                } else if !is_true(f.wipe_filesystem) && is_true(d.wipe_table) {
                    self.push(Some(Entry::warning(
                        path.key("filesystems").index(i).key("device"),
                        "filesystem-implicit-wipe",
                        "device matches disk with wipeTable enabled; filesystem will be wiped",
                    )));
                }
            }
        }
    }

    fn link(&mut self, l: &Link, path: &JsonPath) {
        self.check_path(path, "path", &l.path);
        if self.spec >= Spec::V3_3 && nil_or_empty(&l.target) {
            self.push(Some(
                Entry::error(
                    path.key("target"),
                    "link-target-required",
                    "link target is required",
                )
                .with_hint("say what the link points to with \"target\""),
            ));
        }
        if is_true(l.hard) {
            let warn = |p: JsonPath| {
                Entry::warning(p, "hard-link-owner", "user/group ignored for hard link")
                    .with_hint("a hard link shares its target's owner; remove user/group")
            };
            if l.user.id.is_some() {
                self.push(Some(warn(path.key("user").key("id"))));
            }
            if l.user.name.is_some() {
                self.push(Some(warn(path.key("user").key("name"))));
            }
            if l.group.id.is_some() {
                self.push(Some(warn(path.key("group").key("id"))));
            }
            if l.group.name.is_some() {
                self.push(Some(warn(path.key("group").key("name"))));
            }
        }
    }

    fn disk(&mut self, d: &Disk, path: &JsonPath) {
        if d.device.is_empty() {
            self.push(Some(
                Entry::error(
                    path.key("device"),
                    "device-required",
                    "disk device is required",
                )
                .with_hint("name the disk, e.g. \"/dev/disk/by-id/...\" or \"/dev/vda\""),
            ));
            return;
        }
        self.check_path(path, "device", &d.device);
        // Partition numbers must be unique (0 means "next free").
        let mut by_number: Vec<(i64, Vec<usize>)> = Vec::new();
        for (i, p) in d.partitions.iter().enumerate() {
            if p.number != 0 {
                match by_number.iter_mut().find(|(n, _)| *n == p.number) {
                    Some((_, v)) => v.push(i),
                    None => by_number.push((p.number, vec![i])),
                }
            }
        }
        if let Some((_, v)) = by_number.iter().find(|(_, v)| v.len() > 1) {
            self.push(Some(
                Entry::error(
                    path.key("partitions").index(v[1]),
                    "partition-number-collision",
                    "partition numbers collide",
                )
                .with_hint("give each partition its own number"),
            ));
        }
        if let Some(i) = overlapping_partition(&d.partitions) {
            self.push(Some(
                Entry::error(
                    path.key("partitions").index(i),
                    "partitions-overlap",
                    "partitions overlap",
                )
                .with_hint("check startMiB and sizeMiB of the partitions"),
            ));
        }
        let mut labels: Vec<&str> = Vec::new();
        for (i, p) in d.partitions.iter().enumerate() {
            if let Some(l) = &p.label {
                if labels.contains(&l.as_str()) {
                    self.push(Some(
                        Entry::error(
                            path.key("partitions").index(i),
                            "partition-label-twice",
                            "cannot use the same partition label twice",
                        )
                        .with_hint("partition labels on one disk must be unique"),
                    ));
                }
                labels.push(l);
            }
        }
    }

    fn partition(&mut self, p: &Partition, path: &JsonPath) {
        if p.should_exist == Some(false)
            && (p.label.is_some()
                || not_empty(&p.type_guid)
                || not_empty(&p.guid)
                || p.start_mib.is_some()
                || p.size_mib.is_some())
        {
            self.push(Some(
                Entry::error(
                    path.clone(),
                    "partition-should-not-exist-with-options",
                    "shouldExist specified false with other options also specified",
                )
                .with_hint("a partition to delete only needs its number (and wipePartitionEntry)"),
            ));
        }
        if p.number == 0 && p.label.is_none() {
            self.push(Some(
                Entry::error(
                    path.clone(),
                    "partition-number-or-label",
                    "a partition number >= 1 or a label must be specified",
                )
                .with_hint("add \"number\" or \"label\""),
            ));
        }
        if let Some(l) = &p.label {
            if l.len() > 36 {
                self.push(Some(Entry::error(
                    path.key("label"),
                    "partition-label-too-long",
                    "partition labels may not exceed 36 characters",
                )));
            } else if l.contains(':') {
                self.push(Some(Entry::error(
                    path.key("label"),
                    "partition-label-colon",
                    "partition label will be truncated to text before the colon",
                )));
            }
        }
        for (key, v) in [("guid", &p.guid), ("typeGuid", &p.type_guid)] {
            if let Some(g) = v {
                if !is_guid_or_empty(g) {
                    self.push(Some(
                        Entry::error(
                            path.key(key),
                            "guid-format",
                            "doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
                        )
                        .with_hint("a GUID is 8-4-4-4-12 hexadecimal digits"),
                    ));
                }
            }
        }
    }

    fn filesystem(&mut self, f: &Filesystem, path: &JsonPath) {
        if let Some(p) = &f.path {
            self.check_path(path, "path", p);
        }
        let virtiofs = self.spec == Spec::V3_7Exp && f.format.as_deref() == Some("virtiofs");
        if virtiofs {
            if f.device.is_empty() {
                self.push(Some(Entry::error(
                    path.key("device"),
                    "device-required",
                    "device not specified",
                )));
            } else if f.device.len() > 36 {
                self.push(Some(Entry::error(
                    path.key("device"),
                    "virtiofs-tag-too-long",
                    "virtiofs device tag cannot be longer than 36 bytes",
                )));
            }
        } else {
            self.check_path(path, "device", &f.device);
        }
        let mut formats: Vec<&str> = vec!["ext4", "btrfs", "xfs", "swap", "vfat"];
        if self.spec >= Spec::V3_3 {
            formats.push("none");
        }
        if self.spec == Spec::V3_7Exp {
            formats.push("virtiofs");
        }
        match f.format.as_deref() {
            None | Some("") => {
                if not_empty(&f.path)
                    || not_empty(&f.label)
                    || not_empty(&f.uuid)
                    || is_true(f.wipe_filesystem)
                    || !f.mount_options.is_empty()
                    || !f.options.is_empty()
                {
                    self.push(Some(
                        Entry::error(
                            path.key("format"),
                            "format-required",
                            "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions are specified",
                        )
                        .with_hint(format!("set \"format\" to one of: {}", formats.join(", "))),
                    ));
                }
            }
            Some(fmt) => {
                if !formats.contains(&fmt) {
                    self.push(Some(
                        Entry::error(
                            path.key("format"),
                            "format-invalid",
                            "invalid filesystem format",
                        )
                        .with_hint(format!(
                            "valid formats for spec {}: {}",
                            self.spec,
                            formats.join(", ")
                        )),
                    ));
                }
            }
        }
        if virtiofs {
            for (key, set) in [
                ("label", f.label.is_some()),
                ("uuid", f.uuid.is_some()),
                ("wipeFilesystem", f.wipe_filesystem.is_some()),
                ("options", !f.options.is_empty()),
            ] {
                if set {
                    self.push(Some(Entry::error(
                        path.key(key),
                        "virtiofs-option",
                        format!("virtiofs filesystems cannot have {key}"),
                    )));
                }
            }
            return;
        }
        if let Some(label) = f.label.as_deref().filter(|l| !l.is_empty()) {
            match f.format.as_deref() {
                None | Some("") => self.push(Some(
                    Entry::error(
                        path.key("label"),
                        "label-needs-format",
                        "filesystem must specify format if label is specified",
                    )
                    .with_hint("set \"format\""),
                )),
                Some(fmt) => {
                    let limit = match fmt {
                        "ext4" => Some(16),
                        "btrfs" => Some(256),
                        "xfs" => Some(12),
                        "swap" => Some(15),
                        "vfat" => Some(11),
                        _ => None,
                    };
                    if let Some(n) = limit {
                        if label.len() > n {
                            self.push(Some(
                                Entry::error(
                                    path.key("label"),
                                    "label-too-long",
                                    format!(
                                        "filesystem labels cannot be longer than {n} characters when using {fmt}"
                                    ),
                                )
                                .with_hint(format!("shorten the label to {n} bytes or fewer")),
                            ));
                        }
                    }
                }
            }
        }
    }

    fn luks(&mut self, l: &Luks, path: &JsonPath) {
        if l.name.contains('/') {
            self.push(Some(Entry::error(
                path.key("name"),
                "luks-name-slash",
                "device names cannot contain slashes",
            )));
        }
        if l.label.as_deref().is_some_and(|s| s.len() > 47) {
            self.push(Some(Entry::error(
                path.key("label"),
                "luks-label-too-long",
                "luks device labels cannot be longer than 47 characters",
            )));
        }
        match l.device.as_deref() {
            None | Some("") => self.push(Some(
                Entry::error(
                    path.key("device"),
                    "device-required",
                    "disk device is required",
                )
                .with_hint("name the device to encrypt"),
            )),
            Some(d) => self.check_path(path, "device", d),
        }
        let c = &l.clevis;
        if not_empty(&c.custom.pin)
            && (!c.tang.is_empty() || is_true(c.tpm2) || c.threshold.is_some_and(|t| t != 0))
        {
            self.push(Some(Entry::error(
                path.key("clevis"),
                "clevis-custom-with-others",
                "cannot use custom clevis config with tpm2, tang, or threshold",
            )));
        }
        if let Some(s) = l.key_file.source.as_deref().filter(|s| !s.is_empty()) {
            if self.url_error(s).is_some() {
                self.push(Some(Entry::error(
                    path.key("keys"),
                    "luks-key-file-source",
                    "invalid key-file source",
                )));
            }
        }
        let clevis_present = !c.tang.is_empty()
            || is_true(c.tpm2)
            || c.threshold.is_some_and(|t| t != 0)
            || c.custom.pin.is_some()
            || c.custom.config.is_some()
            || c.custom.needs_network.is_some();
        if is_true(l.cex.enabled) && clevis_present {
            self.push(Some(Entry::error(
                path.key("cex"),
                "cex-with-clevis",
                "cannot use cex with clevis",
            )));
        }
        if is_true(l.cex.enabled) && l.key_file.source.is_some() {
            self.push(Some(Entry::error(
                path.key("keyFile"),
                "cex-with-key-file",
                "cannot use key file with cex",
            )));
        }
    }

    fn custom(&mut self, c: &ClevisCustom, path: &JsonPath) {
        if c.pin.is_none() && c.config.is_none() && c.needs_network.is_none() {
            return;
        }
        match c.pin.as_deref() {
            None | Some("") => self.push(Some(Entry::error(
                path.key("pin"),
                "clevis-pin-required",
                "missing required custom clevis pin",
            ))),
            Some(pin) => {
                if self.spec < Spec::V3_6 && !matches!(pin, "tpm2" | "tang" | "sss") {
                    self.push(Some(
                        Entry::error(
                            path.key("pin"),
                            "clevis-pin-unknown",
                            "unsupported clevis pin",
                        )
                        .with_hint("before spec 3.6.0 the pin must be tpm2, tang or sss"),
                    ));
                }
            }
        }
        if nil_or_empty(&c.config) {
            self.push(Some(Entry::error(
                path.key("config"),
                "clevis-config-required",
                "missing required custom clevis config",
            )));
        }
    }

    fn tang(&mut self, t: &Tang, path: &JsonPath) {
        if let Err(e) = url::tang_url_ok(&t.url) {
            self.push(Some(Entry::error(
                path.key("url"),
                "tang-url",
                e.to_string(),
            )));
        }
        if nil_or_empty(&t.thumbprint) {
            self.push(Some(Entry::error(
                path.key("thumbprint"),
                "tang-thumbprint-required",
                "thumbprint is required",
            )));
        }
        if self.spec >= Spec::V3_4 {
            if let Some(a) = t.advertisement.as_deref().filter(|a| !a.is_empty()) {
                if !super::json::is_valid(a.as_bytes()) {
                    self.push(Some(Entry::error(
                        path.key("advertisement"),
                        "tang-advertisement-json",
                        "advertisement is not valid JSON",
                    )));
                }
            }
        }
    }

    fn raid(&mut self, r: &Raid, path: &JsonPath) {
        let level_hint = || format!("valid levels: {}", RAID_LEVELS.join(", "));
        match r.level.as_deref() {
            None | Some("") if self.spec >= Spec::V3_3 => self.push(Some(
                Entry::error(
                    path.key("level"),
                    "raid-level-required",
                    "raid level is required",
                )
                .with_hint(level_hint()),
            )),
            level => {
                let level = level.unwrap_or("");
                if matches!(level, "linear" | "raid0" | "0" | "stripe") {
                    if r.spares.is_some_and(|s| s != 0) {
                        self.push(Some(Entry::error(
                            path.key("level"),
                            "raid-spares-unsupported",
                            "spares unsupported for linear and raid0 arrays",
                        )));
                    }
                } else if !RAID_LEVELS.contains(&level) {
                    self.push(Some(
                        Entry::error(
                            path.key("level"),
                            "raid-level-unknown",
                            "unrecognized raid level",
                        )
                        .with_hint(level_hint()),
                    ));
                }
            }
        }
        if r.devices.is_empty() {
            self.push(Some(
                Entry::error(
                    path.key("devices"),
                    "raid-devices-required",
                    "raid devices required",
                )
                .with_hint("list the member devices"),
            ));
        }
        for (i, d) in r.devices.iter().enumerate() {
            if path_problem(d).is_some() {
                self.push(path_entry(path.key("devices").index(i), d));
            }
        }
    }

    fn systemd(&mut self, s: &Systemd, path: &JsonPath) {
        let mut by_name: HashMap<&str, &Unit> = HashMap::new();
        for u in &s.units {
            by_name.insert(&u.name, u);
        }
        for (i, u) in s.units.iter().enumerate() {
            let Some((prefix, rest)) = u.name.split_once('@') else {
                continue;
            };
            if rest.is_empty() || !is_true(u.enabled) || !u.name.ends_with(".service") {
                continue;
            }
            if rest == ".service" {
                continue;
            }
            let template = format!("{prefix}@.service");
            let Some(t) = by_name.get(template.as_str()) else {
                continue;
            };
            if nil_or_empty(&t.contents) {
                continue;
            }
            let Ok(opts) = unit_contents(&t.contents) else {
                continue;
            };
            if !unit::has_section(&opts, "Install") {
                self.push(Some(
                    Entry::warning(
                        path.key("units").index(i).key("contents"),
                        "template-without-install",
                        format!(
                            "template unit \"{template}\" for \"{}\" doesn't have Install section",
                            u.name
                        ),
                    )
                    .with_hint(format!("add an [Install] section to {template}")),
                ));
            }
        }
    }

    fn unit(&mut self, u: &Unit, path: &JsonPath) {
        const EXTS: &[&str] = &[
            ".service",
            ".socket",
            ".device",
            ".mount",
            ".automount",
            ".swap",
            ".target",
            ".path",
            ".timer",
            ".snapshot",
            ".slice",
            ".scope",
        ];
        if !EXTS.contains(&path_ext(&u.name)) {
            self.push(Some(
                Entry::error(
                    path.key("name"),
                    "unit-extension",
                    "invalid systemd unit extension",
                )
                .with_hint(format!("unit names end in one of: {}", EXTS.join(" "))),
            ));
        }
        let cpath = path.key("contents");
        // Contents that do not parse have no [Install] section either: Ignition reports the
        // error and, for an enabled unit, the warning too (reference §1.4, unit rules).
        let opts = match unit_contents(&u.contents) {
            Err(e) => {
                self.push(Some(unit_content_entry(cpath.clone(), e)));
                Vec::new()
            }
            Ok(opts) => opts,
        };
        if is_true(u.enabled) && not_empty(&u.contents) && !unit::has_section(&opts, "Install") {
            self.push(Some(
                Entry::warning(
                    cpath,
                    "unit-without-install",
                    format!(
                        "unit \"{}\" is enabled, but has no install section so enable does nothing",
                        u.name
                    ),
                )
                .with_hint("add an [Install] section with e.g. WantedBy=multi-user.target"),
            ));
        }
    }
}

fn unit_contents(c: &Option<String>) -> Result<Vec<unit::UnitOption>, unit::UnitParseError> {
    match c {
        None => Ok(Vec::new()),
        Some(s) => unit::deserialize_options(s),
    }
}

/// go-systemd quotes the offending unit text in one of its errors; unit contents may hold
/// secrets, so that text is replaced by [`super::redact::REDACTED`] in every output.
fn unit_content_entry(path: JsonPath, e: unit::UnitParseError) -> Entry {
    let message = match e {
        unit::UnitParseError::GarbageAfterSection(_) => format!(
            "invalid unit content: found garbage after section name : {}",
            super::redact::REDACTED
        ),
        e => format!("invalid unit content: {e}"),
    };
    Entry::error(path, "unit-content", message)
}

fn url_error_entry(path: JsonPath, msg: String, spec: Spec) -> Entry {
    let hint = match msg.as_str() {
        "invalid url scheme" => Some(if spec >= Spec::V3_4 {
            "use an http, https, tftp, s3, arn, gs or data URL"
        } else if spec >= Spec::V3_2 {
            "use an http, https, tftp, s3, gs or data URL (arn needs spec 3.4.0)"
        } else {
            "use an http, https, tftp, s3 or data URL (gs needs spec 3.2.0)"
        }),
        "unable to parse url" => Some("check the URL for spaces, stray '%' or brackets"),
        _ => None,
    };
    let code = match msg.as_str() {
        "invalid url scheme" => "url-scheme",
        "unable to parse url" => "url-unparseable",
        "invalid S3 object VersionId" => "s3-version-id",
        "invalid S3 ARN format" => "s3-arn",
        _ => "data-url",
    };
    let e = Entry::error(path, code, msg);
    match hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

fn is_guid_or_empty(g: &str) -> bool {
    if g.is_empty() {
        return true;
    }
    let parts: Vec<&str> = g.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The partition Ignition names in "partitions overlap": for the first partition (in list
/// order) with a set, non-zero start and a set size whose first or last MiB lies inside another
/// such partition (or that has the same extent), the first such other partition.
///
/// Ignition compares every pair; this finds the same answer in O(n log n): the partitions as
/// intervals sorted by start, with the two largest ends so far, answer "does another interval
/// hold this point" by binary search.
fn overlapping_partition(parts: &[Partition]) -> Option<usize> {
    // (index, start, end) of the partitions Ignition compares.
    let spans: Vec<(usize, i64, i64)> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (s, z) = (p.start_mib?, p.size_mib?);
            if s == 0 {
                return None;
            }
            let e = if z == 0 {
                s
            } else {
                s.saturating_add(z).saturating_sub(1)
            };
            Some((i, s, e))
        })
        .collect();
    let hit = |p: &(usize, i64, i64), o: &(usize, i64, i64)| {
        let ((_, ps, pe), (_, os, oe)) = (*p, *o);
        (ps >= os && ps <= oe) || (pe >= os && pe <= oe) || (ps == os && pe == oe)
    };
    // Non-empty intervals by start, and for each prefix the two largest ends (with their
    // partitions' indices).
    let mut sorted: Vec<&(usize, i64, i64)> = spans.iter().filter(|t| t.1 <= t.2).collect();
    sorted.sort_by_key(|t| t.1);
    let mut best: Vec<[(i64, usize); 2]> = Vec::with_capacity(sorted.len());
    let mut top = [(i64::MIN, usize::MAX); 2];
    for &&(i, _, e) in &sorted {
        if e > top[0].0 {
            top = [(e, i), top[0]];
        } else if e > top[1].0 {
            top[1] = (e, i);
        }
        best.push(top);
    }
    let held_by_other = |x: i64, me: usize| -> bool {
        let k = sorted.partition_point(|t| t.1 <= x);
        if k == 0 {
            return false;
        }
        let [first, second] = best[k - 1];
        let end = if first.1 != me { first.0 } else { second.0 };
        end >= x
    };
    let mut same: HashMap<(i64, i64), usize> = HashMap::new();
    for &(_, s, e) in &spans {
        *same.entry((s, e)).or_default() += 1;
    }
    let first = spans
        .iter()
        .find(|p| held_by_other(p.1, p.0) || held_by_other(p.2, p.0) || same[&(p.1, p.2)] > 1)?;
    spans
        .iter()
        .find(|o| o.0 != first.0 && hit(first, o))
        .map(|o| o.0)
}

/// Walks the model depth-first in field order, as Ignition's validator walks its types. The
/// path is one buffer extended and shortened in place.
fn walk(
    s: &dyn DynStruct,
    path: &mut JsonPath,
    shape: Shape30,
    spec: Spec,
    visit: &mut dyn FnMut(&dyn DynStruct, &JsonPath, Shape30),
) {
    visit(s, path, shape);
    let desc = s.desc();
    for (i, f) in desc.fields.iter().enumerate() {
        if !f.in_spec(spec) {
            continue;
        }
        match s.field(i) {
            FieldRef::Struct(inner) => {
                path.push_field(f.json);
                walk(inner, path, f.shape30, spec, visit);
                path.pop();
            }
            FieldRef::List(list) => {
                path.push_field(f.json);
                for j in 0..list.len() {
                    path.push_index(j);
                    walk(list.get(j), path, f.shape30, spec, visit);
                    path.pop();
                }
                path.pop();
            }
            _ => {}
        }
    }
}

/// Pass 1: each type's own rules.
pub fn rules(cfg: &Config, spec: Spec) -> Report {
    let mut report = Report::default();
    let mut r = Rules {
        spec,
        report: &mut report,
    };
    walk(
        cfg,
        &mut JsonPath::root(),
        Shape30::Full,
        spec,
        &mut |s, p, shape| r.visit(s, p, shape, cfg),
    );
    report
}

/// Pass 2: duplicate entries in keyed lists. Files, directories and links share one
/// namespace; so do the two kernel argument lists.
pub fn duplicates(cfg: &Config, spec: Spec) -> Report {
    let mut report = Report::default();
    walk(
        cfg,
        &mut JsonPath::root(),
        Shape30::Full,
        spec,
        &mut |s, path, _| {
            let desc = s.desc();
            // Keys seen per namespace of this struct.
            let mut namespaces: Vec<(&str, FxSet<Cow<'_, str>>)> = Vec::new();
            for (i, f) in desc.fields.iter().enumerate() {
                if f.append_list || !f.in_spec(spec) {
                    continue;
                }
                let ns = match (desc.go_name, f.json) {
                    ("Storage", "files" | "directories" | "links") => "node",
                    ("KernelArguments", _) => "karg",
                    (_, j) => j,
                };
                let keys: Vec<Cow<'_, str>> = match s.field(i) {
                    FieldRef::List(list) if list.len() > 1 || ns == "node" => (0..list.len())
                        .map(|j| list.get(j).key_ref().unwrap_or(Cow::Borrowed("")))
                        .collect(),
                    FieldRef::StrList(items) if items.len() > 1 || ns == "karg" => {
                        items.iter().map(|x| Cow::Borrowed(x.as_str())).collect()
                    }
                    _ => continue,
                };
                let idx = match namespaces.iter().position(|(n, _)| *n == ns) {
                    Some(i) => i,
                    None => {
                        namespaces.push((ns, FxSet::default()));
                        namespaces.len() - 1
                    }
                };
                let seen = &mut namespaces[idx].1;
                for (j, k) in keys.into_iter().enumerate() {
                    if seen.contains(&k) {
                        let mut e = Entry::error(
                            path.key(f.json).index(j),
                            "duplicate",
                            "duplicate entry defined",
                        );
                        e = e.with_hint(
                            if desc.go_name == "IgnitionConfig"
                                || desc.go_name == "Tls"
                                || desc.go_name == "File"
                            {
                                "another entry in this list has the same source; remove one"
                                    .to_string()
                            } else {
                                format!("another entry already has the key {k:?}; remove one")
                            },
                        );
                        report.push(e);
                    } else {
                        seen.insert(k);
                    }
                }
            }
        },
    );
    report
}

/// A small, fast hasher for string keys (FxHash, as used in rustc); the validator hashes
/// hundreds of thousands of paths and SipHash's flood resistance buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxSet<T> = HashSet<T, std::hash::BuildHasherDefault<FxHasher>>;
type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Pass 3: keys that are not fields of this spec version.
pub fn unused_keys(cfg: &Config, spec: Spec, doc: &Doc) -> Report {
    let mut report = Report::default();
    // Where the document is not an object although the config has a struct, Ignition warns
    // once and does not look below (reference §1.1: a later `"storage": null` gives one
    // warning at `$.storage`).
    let mut pruned: Vec<JsonPath> = Vec::new();
    walk(
        cfg,
        &mut JsonPath::root(),
        Shape30::Full,
        spec,
        &mut |s, path, shape| {
            if pruned.iter().any(|p| path.0.starts_with(&p.0)) {
                return;
            }
            let desc = s.desc();
            let node = match path.lookup(doc) {
                Lookup::Found(n) => n,
                Lookup::NotFound => return,
                Lookup::BadPath => {
                    report.push(mismatch(path));
                    pruned.push(path.clone());
                    return;
                }
            };
            let Kind::Object(members) = &node.kind else {
                // In 3.2 `luks.clevis` and `clevis.custom` are Go pointers: null leaves them
                // nil, and Ignition walks nothing there (reference §1.1 and §1.2, 3.2 shapes).
                let nil_pointer = spec == Spec::V3_2
                    && matches!(desc.go_name, "Clevis" | "ClevisCustom")
                    && matches!(node.kind, Kind::Null);
                if !nil_pointer {
                    report.push(mismatch(path));
                }
                pruned.push(path.clone());
                return;
            };
            let known = |m: &super::json::Member| {
                desc.fields.iter().any(|f| {
                    f.in_spec(spec)
                        && doc.key_is(m, f.json)
                        && !(spec == Spec::V3_0
                            && desc.go_name == "Resource"
                            && f.json == "compression"
                            && matches!(shape, Shape30::ConfigReference | Shape30::CaReference))
                })
            };
            // One warning per distinct key, at its last occurrence (a Go map keeps the last).
            let mut seen: FxSet<Cow<'_, str>> = FxSet::default();
            for m in members.iter().rev() {
                if known(m) {
                    continue;
                }
                let key = doc.key(m);
                if !seen.insert(key.clone()) {
                    continue;
                }
                let mut e =
                    Entry::warning(path.key(&key), "unused-key", format!("unused key {key}"))
                        .at_index(m.key_start as usize);
                if let Some(h) = unknown_key_hint(desc, &key, spec) {
                    e = e.with_hint(h);
                }
                report.push(e);
            }
        },
    );
    // Ignition's order within an object is random; Ember sorts by position for stable output.
    report.entries.sort_by_key(|e| e.marker.map(|m| m.index));
    report
}

fn mismatch(path: &JsonPath) -> Entry {
    Entry::warning(
        path.clone(),
        "context-mismatch",
        format!(
            "context tree does not match content tree at {path}. Line and column reporting may be inconsistent. Unused keys may not be reported"
        ),
    )
    .with_hint("this section is null or duplicated; remove the null value")
}

/// A did-you-mean for an unknown key: a field of a later spec, a case slip, or a near miss.
fn unknown_key_hint(desc: &StructDesc, key: &str, spec: Spec) -> Option<String> {
    if let Some(f) = desc
        .fields
        .iter()
        .find(|f| f.json == key && !f.in_spec(spec))
    {
        return Some(format!(
            "\"{key}\" needs spec {} or later; this config is {spec}",
            f.since
        ));
    }
    if let Some(f) = desc
        .fields
        .iter()
        .find(|f| f.json.eq_ignore_ascii_case(key))
    {
        return Some(format!(
            "did you mean \"{}\"? keys are case-sensitive",
            f.json
        ));
    }
    let best = desc
        .fields
        .iter()
        .map(|f| {
            (
                edit_distance(&key.to_lowercase(), &f.json.to_lowercase()),
                f.json,
            )
        })
        .min()?;
    let limit = if key.len() > 6 { 2 } else { 1 };
    (best.0 <= limit).then(|| format!("did you mean \"{}\"?", best.1))
}

/// Levenshtein distance (with adjacent transpositions counting as one edit).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Ember's checks of a config as a whole (after merging), beyond Ignition's rules.
pub fn whole_config_checks(cfg: &Config) -> Report {
    let mut report = Report::default();
    let st = JsonPath::root().key("storage");
    // A file's path cannot also be a directory on the way to another entry.
    let mut files: FxMap<&str, usize> = FxMap::default();
    for (i, f) in cfg.storage.files.iter().enumerate() {
        files.insert(f.path.as_str(), i);
    }
    // Only ancestors as long as some file path can be one: hashing every ancestor of a path
    // with n components would take time quadratic in its length.
    let lengths: FxSet<usize> = files.keys().map(|p| p.len()).collect();
    let mut check = |kind: &str, list: &str, i: usize, p: &str| {
        let mut anc = p;
        while let Some(pos) = anc.rfind('/') {
            anc = &anc[..pos];
            if anc.is_empty() {
                break;
            }
            if !lengths.contains(&anc.len()) {
                continue;
            }
            if let Some(&fi) = files.get(anc) {
                report.push(
                    Entry::error(
                        st.key(list).index(i).key("path"),
                        "path-below-file",
                        format!("{kind} {p:?} is below {anc:?}, which storage.files.{fi} makes a regular file"),
                    )
                    .with_hint(format!("make {anc:?} a directory, or move the {kind}"))
                    .ember(),
                );
                break;
            }
        }
    };
    for (i, f) in cfg.storage.files.iter().enumerate() {
        check("file", "files", i, &f.path);
    }
    for (i, d) in cfg.storage.directories.iter().enumerate() {
        check("directory", "directories", i, &d.path);
    }
    for (i, l) in cfg.storage.links.iter().enumerate() {
        check("link", "links", i, &l.path);
    }
    for (i, u) in cfg.systemd.units.iter().enumerate() {
        if u.name.contains('/') {
            report.push(
                Entry::error(
                    JsonPath::root()
                        .key("systemd")
                        .key("units")
                        .index(i)
                        .key("name"),
                    "unit-name-slash",
                    "unit names cannot contain '/'",
                )
                .with_hint("a unit name is a file name such as \"foo.service\"")
                .ember(),
            );
        }
    }
    report
}

/// Ember's checks of the modes as written (before translation masks special bits): a mode
/// such as 644 is almost always an octal 0644 written without conversion.
pub fn mode_checks(cfg: &Config) -> Report {
    let mut report = Report::default();
    let st = JsonPath::root().key("storage");
    let octal_look = |list: &str, i: usize, mode: Option<i64>, report: &mut Report| {
        const LOOKS_OCTAL: &[i64] = &[
            400, 440, 444, 500, 550, 555, 600, 640, 644, 660, 664, 666, 700, 750, 755, 770, 775,
            777, 1777, 2755, 4755,
        ];
        if let Some(m) = mode.filter(|m| LOOKS_OCTAL.contains(m)) {
            let meant = i64::from_str_radix(&m.to_string(), 8).unwrap_or(m);
            report.push(
                Entry::warning(
                    st.key(list).index(i).key("mode"),
                    "mode-looks-octal",
                    format!("mode {m} is {m:#o} in octal; modes are decimal numbers"),
                )
                .with_hint(format!("if you meant 0{m}, write {meant}"))
                .ember(),
            );
        }
    };
    for (i, f) in cfg.storage.files.iter().enumerate() {
        octal_look("files", i, f.mode, &mut report);
    }
    for (i, d) in cfg.storage.directories.iter().enumerate() {
        octal_look("directories", i, d.mode, &mut report);
    }
    report
}

/// A warning entry for things Ember points out.
pub fn ember_warning(path: JsonPath, code: &'static str, msg: impl Into<String>) -> Entry {
    Entry::new(Severity::Warning, path, code, msg).ember()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_clean() {
        for (i, o) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("", "."),
            ("a/b/../../c", "c"),
        ] {
            assert_eq!(clean_path(i), o, "{i}");
        }
        assert_eq!(path_ext("a/b.service"), ".service");
        assert_eq!(path_ext("a.b/c"), "");
        assert_eq!(edit_distance("filesytems", "filesystems"), 1);
    }

    #[test]
    fn overlapping_partitions_like_ignition() {
        // Ignition's comparison of every pair.
        fn pairwise(parts: &[Partition]) -> Option<usize> {
            let end = |p: &Partition| -> i64 {
                let (s, z) = (p.start_mib.unwrap_or(0), p.size_mib.unwrap_or(0));
                if z == 0 {
                    s
                } else {
                    s.saturating_add(z).saturating_sub(1)
                }
            };
            for (pi, p) in parts.iter().enumerate() {
                let (Some(ps), Some(_)) = (p.start_mib, p.size_mib) else {
                    continue;
                };
                if ps == 0 {
                    continue;
                }
                for (i, o) in parts.iter().enumerate() {
                    let (Some(os), Some(_)) = (o.start_mib, o.size_mib) else {
                        continue;
                    };
                    if i == pi || os == 0 {
                        continue;
                    }
                    let (pe, oe) = (end(p), end(o));
                    if (ps >= os && ps <= oe) || (pe >= os && pe <= oe) || (ps == os && pe == oe) {
                        return Some(i);
                    }
                }
            }
            None
        }
        let part = |s: Option<i64>, z: Option<i64>| Partition {
            start_mib: s,
            size_mib: z,
            ..Default::default()
        };
        // A small deterministic generator: many small layouts, negative sizes, unset fields
        // and zero starts included.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..20_000 {
            let len = next(7) as usize;
            let parts: Vec<Partition> = (0..len)
                .map(|_| {
                    let s = (next(6) > 0).then(|| next(12) as i64);
                    let z = (next(6) > 0).then(|| next(8) as i64 - 2);
                    part(s, z)
                })
                .collect();
            assert_eq!(overlapping_partition(&parts), pairwise(&parts), "{parts:?}");
        }
        // 200,000 partitions side by side, the last one overlapping the first: comparing every
        // pair took minutes.
        let mut parts: Vec<Partition> = (0..200_000)
            .map(|i| part(Some(1 + 2 * i), Some(2)))
            .collect();
        assert_eq!(overlapping_partition(&parts), None);
        parts.push(part(Some(2), Some(1)));
        assert_eq!(overlapping_partition(&parts), Some(200_000));
    }

    #[test]
    fn entries_below_links_once_per_link_like_ignition() {
        let mut cfg = Config::default();
        for _ in 0..3 {
            cfg.storage.links.push(Link {
                path: "/l".into(),
                target: Some("/t".into()),
                ..Default::default()
            });
        }
        cfg.storage.links.push(Link {
            path: "/h".into(),
            target: Some("/d".into()),
            hard: Some(true),
            ..Default::default()
        });
        for p in ["/l/a", "/l/b", "/m"] {
            cfg.storage.files.push(File {
                path: p.into(),
                ..Default::default()
            });
        }
        for _ in 0..2 {
            cfg.storage.directories.push(Directory {
                path: "/d".into(),
                ..Default::default()
            });
        }
        let found: Vec<(String, &str)> = rules(&cfg, Spec::LATEST)
            .entries
            .iter()
            .filter(|e| e.code == "path-below-link" || e.code == "hard-link-to-directory")
            .map(|e| (e.path.as_ref().unwrap().to_string(), e.code))
            .collect();
        // Ignition repeats each finding once per duplicate link (3 each) or directory (2).
        let f0 = ("$.storage.files.0".to_string(), "path-below-link");
        let f1 = ("$.storage.files.1".to_string(), "path-below-link");
        let h = ("$.storage.links.3".to_string(), "hard-link-to-directory");
        assert_eq!(
            found,
            [
                f0.clone(),
                f0.clone(),
                f0,
                f1.clone(),
                f1.clone(),
                f1,
                h.clone(),
                h
            ]
        );

        // k duplicate links and m files below them: k×m findings, but bounded.
        let mut big = Config::default();
        for _ in 0..200 {
            big.storage.links.push(Link {
                path: "/l".into(),
                target: Some("/t".into()),
                ..Default::default()
            });
        }
        for i in 0..200 {
            big.storage.files.push(File {
                path: format!("/l/{i}"),
                ..Default::default()
            });
        }
        let r = rules(&big, Spec::LATEST);
        let below = r
            .entries
            .iter()
            .filter(|e| e.code == "path-below-link")
            .count();
        assert_eq!(below, 10_000);
        assert_eq!(
            r.entries
                .iter()
                .filter(|e| e.code == "findings-limited")
                .count(),
            1
        );

        // Below a link, at any depth, and nowhere else; a deep path is cheap to check.
        cfg.storage.links.truncate(3);
        cfg.storage.files.push(File {
            path: format!("/l{}", "/a".repeat(500_000)),
            ..Default::default()
        });
        cfg.storage.files.push(File {
            path: "/a".repeat(500_000),
            ..Default::default()
        });
        let below = rules(&cfg, Spec::LATEST)
            .entries
            .iter()
            .filter(|e| e.code == "path-below-link")
            .count();
        // Three files below the three links named /l.
        assert_eq!(below, 9);
    }

    #[test]
    fn paths_below_files() {
        let mut cfg = Config::default();
        for p in ["/x", "/x/y", "/a/b", "/a/b/c/d"] {
            cfg.storage.files.push(File {
                path: p.into(),
                ..Default::default()
            });
        }
        let found: Vec<String> = whole_config_checks(&cfg)
            .entries
            .iter()
            .map(|e| e.path.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(found, ["$.storage.files.1.path", "$.storage.files.3.path"]);

        // A path of 500,000 components next to a short file path. Looking up every ancestor
        // hashes about 10^11 bytes (this test then runs for minutes); only ancestors as long
        // as a file path are looked up now.
        cfg.storage.directories.push(Directory {
            path: "/a".repeat(500_000),
            ..Default::default()
        });
        assert_eq!(whole_config_checks(&cfg).entries.len(), 2);
        cfg.storage.files.push(File {
            path: "/a".repeat(250_000),
            ..Default::default()
        });
        let r = whole_config_checks(&cfg);
        assert_eq!(r.entries.len(), 3);
        assert_eq!(
            r.entries[2].path.as_ref().unwrap().to_string(),
            "$.storage.directories.0.path"
        );
    }
}
