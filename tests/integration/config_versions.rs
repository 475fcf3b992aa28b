//! Every spec version: valid configs written in the style of Ignition's documentation examples,
//! each using only its own version's fields, must parse without any finding and translate to the
//! expected internal model; fields of later versions are unused keys; unsupported versions are
//! refused with the supported ones named.

use ember::config::{self, Spec};

use crate::lint_support::*;

/// Parses `src`, asserts there is no finding at all (Ignition's or Ember's) and returns the
/// translated config. Also asserts `ember validate` and `ignition-validate` agree.
fn clean(version: Spec, src: &str) -> config::Config {
    let p = config::parse(src.as_bytes());
    let lines: Vec<String> = p
        .report
        .entries
        .iter()
        .map(|e| format!("{} [{}]", e.ignition_line(), e.code))
        .collect();
    assert!(
        lines.is_empty(),
        "findings in a valid {version} config:\n{lines:#?}\n{src}"
    );
    assert_eq!(p.error, None);
    assert_eq!(p.spec, Some(version));
    p.config.expect("a valid config translates")
}

/// The CLI view of a valid config: `ember validate` says valid (exit 0), `ignition-validate`
/// prints nothing (exit 0).
fn clean_cli(version: Spec, src: &str) {
    let r = ember_validate_src(src.as_bytes(), &[]);
    r.expect_code(0);
    assert!(
        r.stdout.ends_with(&format!(": valid (spec {version})\n")),
        "{}",
        r.stdout
    );
    let r = validate_src(src.as_bytes());
    r.expect_code(0);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "");
}

// ---------------------------------------------------------------------------------------------
// 3.0.0: the base of 3.x. No httpHeaders, proxy, mountOptions, luks, resize, shouldExist on
// users/groups, kernelArguments; sha512 only; FileContents/ConfigReference/CaReference shapes.

const V30_SERVICES: &str = r#"{
  "ignition": { "version": "3.0.0" },
  "systemd": {
    "units": [
      {
        "name": "example.service",
        "enabled": true,
        "contents": "[Service]\nType=oneshot\nExecStart=/usr/bin/echo Hello World\n\n[Install]\nWantedBy=multi-user.target"
      },
      {
        "name": "systemd-journald.service",
        "dropins": [{
          "name": "debug.conf",
          "contents": "[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug"
        }]
      },
      { "name": "sshd.socket", "mask": true },
      { "name": "docker.service", "enabled": false }
    ]
  }
}"#;

const V30_VAR_AND_FILES: &str = r#"{
  "ignition": { "version": "3.0.0" },
  "storage": {
    "filesystems": [{
      "device": "/dev/disk/by-label/VAR",
      "path": "/var",
      "format": "btrfs",
      "wipeFilesystem": true,
      "label": "VAR",
      "options": ["--nodesize", "32k"]
    }],
    "files": [
      {
        "path": "/var/example-asset",
        "mode": 420,
        "contents": {
          "source": "http://example.com/asset",
          "verification": { "hash": "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
        }
      },
      {
        "path": "/etc/hostname",
        "mode": 420,
        "overwrite": true,
        "contents": { "source": "data:,core1" }
      },
      {
        "path": "/etc/motd",
        "append": [{ "source": "data:,welcome%0A" }, { "source": "tftp://10.0.0.1/motd" }],
        "user": { "name": "core" },
        "group": { "id": 0 }
      },
      {
        "path": "/opt/tool.gz",
        "contents": { "source": "s3://bucket/tool.gz", "compression": "gzip" }
      }
    ],
    "directories": [{ "path": "/var/lib/app", "mode": 448, "user": { "id": 500 } }],
    "links": [
      { "path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC", "overwrite": true },
      { "path": "/var/lib/app/current", "target": "/var/example-asset", "hard": true }
    ]
  }
}"#;

const V30_RAID: &str = r#"{
  "ignition": { "version": "3.0.0" },
  "storage": {
    "disks": [
      {
        "device": "/dev/sdb",
        "wipeTable": true,
        "partitions": [{ "label": "raid.1.1", "number": 1, "sizeMiB": 1024, "startMiB": 0 }]
      },
      {
        "device": "/dev/sdc",
        "wipeTable": true,
        "partitions": [{
          "label": "raid.1.2", "number": 1, "sizeMiB": 1024, "startMiB": 0,
          "typeGuid": "A19D880F-05FC-4D3B-A006-743F0F84911E",
          "guid": "8a7e9a1f-4f55-4b3c-9a1e-3d6c0a2b1c4d",
          "wipePartitionEntry": true
        }]
      }
    ],
    "raid": [{
      "devices": ["/dev/disk/by-partlabel/raid.1.1", "/dev/disk/by-partlabel/raid.1.2"],
      "level": "stripe",
      "name": "data",
      "options": ["--metadata=1.2"]
    }],
    "filesystems": [{ "device": "/dev/md/data", "path": "/var/lib/data", "format": "ext4", "label": "DATA" }]
  },
  "systemd": {
    "units": [{
      "name": "var-lib-data.mount",
      "enabled": true,
      "contents": "[Mount]\nWhat=/dev/md/data\nWhere=/var/lib/data\nType=ext4\n\n[Install]\nWantedBy=local-fs.target"
    }]
  }
}"#;

const V30_REPLACE_USERS: &str = r#"{
  "ignition": {
    "version": "3.0.0",
    "config": {
      "replace": {
        "source": "http://example.com/config.json",
        "verification": { "hash": "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
      }
    },
    "timeouts": { "httpResponseHeaders": 20, "httpTotal": 600 },
    "security": { "tls": { "certificateAuthorities": [{ "source": "https://example.com/ca.pem" }] } }
  },
  "passwd": {
    "users": [
      {
        "name": "systemUser",
        "passwordHash": "$superSecretPasswordHash.",
        "sshAuthorizedKeys": ["ssh-rsa veryLongRSAPublicKey"]
      },
      {
        "name": "jenkins",
        "uid": 1000,
        "gecos": "Jenkins",
        "homeDir": "/var/lib/jenkins",
        "noCreateHome": false,
        "primaryGroup": "jenkins",
        "groups": ["docker", "wheel"],
        "noUserGroup": true,
        "noLogInit": true,
        "shell": "/bin/bash",
        "system": true
      }
    ],
    "groups": [{ "name": "jenkins", "gid": 1000, "system": true }]
  }
}"#;

#[test]
fn v3_0_valid_configs() {
    let c = clean(Spec::V3_0, V30_SERVICES);
    assert_eq!(
        c.ignition.version, "3.7.0-experimental",
        "translated to the internal version"
    );
    assert_eq!(c.systemd.units.len(), 4);
    assert_eq!(c.systemd.units[0].enabled, Some(true));
    assert_eq!(c.systemd.units[1].dropins[0].name, "debug.conf");
    assert_eq!(c.systemd.units[2].mask, Some(true));
    assert_eq!(c.systemd.units[3].enabled, Some(false));

    let c = clean(Spec::V3_0, V30_VAR_AND_FILES);
    let fs = &c.storage.filesystems[0];
    assert_eq!(fs.format.as_deref(), Some("btrfs"));
    assert_eq!(fs.path.as_deref(), Some("/var"));
    assert_eq!(fs.wipe_filesystem, Some(true));
    assert!(
        fs.mount_options.is_empty(),
        "mountOptions start empty (3.0 has none)"
    );
    let f = &c.storage.files;
    assert_eq!(f[0].mode, Some(420));
    assert_eq!(
        f[0].contents.verification.hash.as_deref().map(|h| &h[..7]),
        Some("sha512-")
    );
    assert!(f[0].contents.http_headers.is_empty());
    assert_eq!(f[1].overwrite, Some(true));
    assert_eq!(f[2].append.len(), 2);
    assert_eq!(
        f[2].append[1].source.as_deref(),
        Some("tftp://10.0.0.1/motd")
    );
    assert_eq!(f[2].user.name.as_deref(), Some("core"));
    assert_eq!(f[2].group.id, Some(0));
    assert_eq!(f[3].contents.compression.as_deref(), Some("gzip"));
    assert_eq!(c.storage.directories[0].mode, Some(448));
    // Link targets are plain strings up to 3.2: always set after translation.
    assert_eq!(
        c.storage.links[0].target.as_deref(),
        Some("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(c.storage.links[1].hard, Some(true));
    assert!(c.storage.luks.is_empty());

    let c = clean(Spec::V3_0, V30_RAID);
    assert_eq!(c.storage.disks.len(), 2);
    let p = &c.storage.disks[1].partitions[0];
    assert_eq!(p.number, 1);
    assert_eq!(p.size_mib, Some(1024));
    assert_eq!(p.start_mib, Some(0));
    assert_eq!(p.resize, None);
    assert_eq!(
        p.type_guid.as_deref(),
        Some("A19D880F-05FC-4D3B-A006-743F0F84911E")
    );
    let r = &c.storage.raid[0];
    assert_eq!(r.level.as_deref(), Some("stripe"));
    assert_eq!(r.devices.len(), 2);
    assert_eq!(r.options, vec!["--metadata=1.2"]);

    let c = clean(Spec::V3_0, V30_REPLACE_USERS);
    assert_eq!(
        c.ignition.config.replace.source.as_deref(),
        Some("http://example.com/config.json")
    );
    assert_eq!(c.ignition.config.replace.compression, None);
    assert_eq!(c.ignition.timeouts.http_response_headers, Some(20));
    assert_eq!(c.ignition.timeouts.http_total, Some(600));
    assert_eq!(
        c.ignition.security.tls.certificate_authorities[0]
            .source
            .as_deref(),
        Some("https://example.com/ca.pem")
    );
    let u = &c.passwd.users[1];
    assert_eq!(u.uid, Some(1000));
    assert_eq!(u.groups, vec!["docker", "wheel"]);
    assert_eq!(u.should_exist, None);
    assert_eq!(c.passwd.groups[0].gid, Some(1000));

    for src in [V30_SERVICES, V30_VAR_AND_FILES, V30_RAID, V30_REPLACE_USERS] {
        clean_cli(Spec::V3_0, src);
    }
}

#[test]
fn v3_0_translation_of_plain_strings() {
    // A 3.0 certificate authority's source is a plain Go string, and so are link targets and
    // raid levels: after translation they are always set.
    let p = config::parse(
        br#"{"ignition":{"version":"3.0.0"},"storage":{"links":[{"path":"/l","target":"/t"}]}}"#,
    );
    assert_eq!(
        p.config.unwrap().storage.links[0].target.as_deref(),
        Some("/t")
    );
    let p =
        config::parse(br#"{"ignition":{"version":"3.0.0"},"storage":{"links":[{"path":"/l"}]}}"#);
    let c = p
        .config
        .expect("a 3.0 link without target is accepted, as Ignition does");
    assert_eq!(c.storage.links[0].target.as_deref(), Some(""));
}

#[test]
fn empty_link_targets_before_3_3_pass_ignition_validate_but_ember_reports_the_boot_failure() {
    // Ignition validates old configs with their own rules only, then the rendered config with
    // the latest ones at boot: an empty target passes ignition-validate and fails at boot.
    for v in ["3.0.0", "3.1.0", "3.2.0"] {
        let src = cfg(v, "\n\"storage\": {\"links\": [\n{\"path\": \"/l\"},\n{\"path\": \"/m\", \"target\": \"\"},\n{\"path\": \"/n\", \"target\": \"/t\"}\n]}");
        let r = validate_src(src.as_bytes());
        r.expect_code(0);
        assert_eq!(r.stdout, "");
        let r = ember_validate_src(src.as_bytes(), &[]);
        r.expect_code(1);
        // links.0 has no target key (its entry, col 2); links.1's "" is at col 26.
        assert!(
            r.stdout
                .contains(":3:2: error: link target is required (fails at boot)"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .contains(":4:26: error: link target is required (fails at boot)"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("2 errors, 0 warnings"), "{}", r.stdout);
        let p = config::parse(src.as_bytes());
        let c = p.config.unwrap();
        // The runtime (latest) rules find exactly these two.
        let rt: Vec<String> = config::validate_runtime(&c)
            .entries
            .iter()
            .map(|e| e.ignition_line())
            .collect();
        assert_eq!(
            rt,
            vec![
                "error at $.storage.links.0.target: link target is required",
                "error at $.storage.links.1.target: link target is required",
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3.1.0: sha256, compression on merge/replace/CAs, httpHeaders, proxy, mountOptions.

const V31_MERGE_PROXY: &str = r#"{
  "ignition": {
    "version": "3.1.0",
    "config": {
      "merge": [
        {
          "source": "https://example.com/base.ign.gz",
          "compression": "gzip",
          "httpHeaders": [{ "name": "Authorization", "value": "Bearer abc" }, { "name": "X-Empty" }],
          "verification": { "hash": "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
        },
        { "source": "s3://bucket/extra.ign" }
      ]
    },
    "proxy": {
      "httpProxy": "http://proxy.example.com:3128",
      "httpsProxy": "https://proxy.example.com:3129",
      "noProxy": ["localhost", ".internal", "10.0.0.0/8"]
    },
    "security": {
      "tls": {
        "certificateAuthorities": [{ "source": "data:;base64,LS0tLS1CRUdJTg==", "compression": "" }]
      }
    }
  }
}"#;

const V31_STORAGE: &str = r#"{
  "ignition": { "version": "3.1.0" },
  "storage": {
    "filesystems": [{
      "device": "/dev/disk/by-partlabel/data",
      "path": "/var/data",
      "format": "xfs",
      "label": "data",
      "uuid": "6f0b1f2a-4c45-4a4f-9e31-0b6a3f0e8c11",
      "mountOptions": ["noatime", "discard"]
    }, {
      "device": "/dev/disk/by-partlabel/swap",
      "format": "swap",
      "label": "swap"
    }],
    "files": [{
      "path": "/etc/app.conf",
      "mode": 384,
      "contents": {
        "source": "https://example.com/app.conf",
        "httpHeaders": [{ "name": "X-Token", "value": "secret" }],
        "verification": { "hash": "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
      }
    }]
  }
}"#;

#[test]
fn v3_1_valid_configs() {
    let c = clean(Spec::V3_1, V31_MERGE_PROXY);
    let m = &c.ignition.config.merge;
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].compression.as_deref(), Some("gzip"));
    assert_eq!(m[0].http_headers.len(), 2);
    assert_eq!(m[0].http_headers[0].value.as_deref(), Some("Bearer abc"));
    assert_eq!(m[0].http_headers[1].value, None);
    assert_eq!(
        c.ignition.proxy.https_proxy.as_deref(),
        Some("https://proxy.example.com:3129")
    );
    assert_eq!(c.ignition.proxy.no_proxy.len(), 3);
    assert_eq!(
        c.ignition.security.tls.certificate_authorities[0]
            .compression
            .as_deref(),
        Some("")
    );

    let c = clean(Spec::V3_1, V31_STORAGE);
    assert_eq!(
        c.storage.filesystems[0].mount_options,
        vec!["noatime", "discard"]
    );
    assert_eq!(c.storage.filesystems[1].format.as_deref(), Some("swap"));
    assert_eq!(c.storage.files[0].contents.http_headers[0].name, "X-Token");
    for src in [V31_MERGE_PROXY, V31_STORAGE] {
        clean_cli(Spec::V3_1, src);
    }
}

// ---------------------------------------------------------------------------------------------
// 3.2.0: partitions[].resize, luks (clevis tang/tpm2/threshold/custom), shouldExist on users and
// groups, gs:// URLs.

const V32_LUKS: &str = r#"{
  "ignition": { "version": "3.2.0" },
  "storage": {
    "luks": [
      {
        "name": "data",
        "device": "/dev/disk/by-partlabel/data",
        "label": "luks-data",
        "uuid": "0f3e2b1a-9c8d-4e7f-a6b5-c4d3e2f1a0b9",
        "options": ["--cipher", "aes-xts-plain64"],
        "wipeVolume": true,
        "clevis": {
          "tpm2": true,
          "threshold": 2,
          "tang": [{ "url": "http://tang.example.com", "thumbprint": "r4ndomThumbpr1nt" }]
        }
      },
      {
        "name": "backup",
        "device": "/dev/disk/by-partlabel/backup",
        "keyFile": { "source": "gs://bucket/luks.key" },
        "clevis": { "custom": { "pin": "tpm2", "config": "{\"pcr_ids\":\"7\"}", "needsNetwork": false } }
      }
    ],
    "filesystems": [{ "device": "/dev/mapper/data", "format": "ext4", "path": "/var/data", "label": "data" }],
    "disks": [{
      "device": "/dev/vda",
      "partitions": [{ "number": 4, "label": "root", "sizeMiB": 8192, "resize": true }]
    }]
  },
  "passwd": {
    "users": [{ "name": "olduser", "shouldExist": false }, { "name": "core", "shouldExist": true }],
    "groups": [{ "name": "oldgroup", "shouldExist": false }]
  }
}"#;

#[test]
fn v3_2_valid_configs() {
    let c = clean(Spec::V3_2, V32_LUKS);
    let l = &c.storage.luks;
    assert_eq!(l[0].clevis.tpm2, Some(true));
    assert_eq!(l[0].clevis.threshold, Some(2));
    assert_eq!(
        l[0].clevis.tang[0].thumbprint.as_deref(),
        Some("r4ndomThumbpr1nt")
    );
    assert_eq!(l[0].clevis.tang[0].advertisement, None);
    assert_eq!(l[0].wipe_volume, Some(true));
    assert_eq!(
        l[1].key_file.source.as_deref(),
        Some("gs://bucket/luks.key")
    );
    // 3.2's custom pin and config are plain strings: set after translation.
    assert_eq!(l[1].clevis.custom.pin.as_deref(), Some("tpm2"));
    assert_eq!(l[1].clevis.custom.needs_network, Some(false));
    assert_eq!(l[1].discard, None);
    assert_eq!(c.storage.disks[0].partitions[0].resize, Some(true));
    assert_eq!(c.passwd.users[0].should_exist, Some(false));
    assert_eq!(c.passwd.groups[0].should_exist, Some(false));
    clean_cli(Spec::V3_2, V32_LUKS);

    // A 3.2 custom binding without clevis.custom keeps pin and config unset.
    assert_eq!(l[0].clevis.custom.pin, None);
}

#[test]
fn v3_2_link_target_and_raid_level_always_set() {
    let src = r#"{"ignition":{"version":"3.2.0"},"storage":{
      "links":[{"path":"/l","target":"/t"},{"path":"/m","target":null}],
      "raid":[{"name":"md0","level":"raid1","devices":["/dev/sda","/dev/sdb"]}]}}"#;
    let p = config::parse(src.as_bytes());
    let c = p.config.unwrap();
    assert_eq!(c.storage.links[0].target.as_deref(), Some("/t"));
    // null does not clear a plain Go string; translation sets it to "".
    assert_eq!(c.storage.links[1].target.as_deref(), Some(""));
    assert_eq!(c.storage.raid[0].level.as_deref(), Some("raid1"));
    // From 3.3 the target is a pointer: absent stays absent (and is an error).
    let p =
        config::parse(br#"{"ignition":{"version":"3.3.0"},"storage":{"links":[{"path":"/l"}]}}"#);
    assert!(p.config.is_none());
}

// ---------------------------------------------------------------------------------------------
// 3.3.0: kernelArguments, filesystem format "none", raid.level/link.target pointers.

const V33_KARGS: &str = r#"{
  "ignition": { "version": "3.3.0" },
  "kernelArguments": {
    "shouldExist": ["console=ttyS0,115200n8", "systemd.unified_cgroup_hierarchy=1"],
    "shouldNotExist": ["quiet"]
  },
  "storage": {
    "filesystems": [{ "device": "/dev/disk/by-partlabel/scratch", "format": "none" }],
    "raid": [{ "name": "mirror", "level": "raid1", "devices": ["/dev/sda1", "/dev/sdb1"], "spares": 0 }],
    "links": [{ "path": "/usr/local/bin/tool", "target": "/opt/tool/bin/tool" }]
  }
}"#;

#[test]
fn v3_3_valid_configs() {
    let c = clean(Spec::V3_3, V33_KARGS);
    assert_eq!(c.kernel_arguments.should_exist.len(), 2);
    assert_eq!(c.kernel_arguments.should_not_exist, vec!["quiet"]);
    assert_eq!(c.storage.filesystems[0].format.as_deref(), Some("none"));
    assert_eq!(c.storage.raid[0].spares, Some(0));
    clean_cli(Spec::V3_3, V33_KARGS);
}

// ---------------------------------------------------------------------------------------------
// 3.4.0: arn: URLs, luks discard/openOptions, tang advertisement.

const V34_ARN_LUKS: &str = r#"{
  "ignition": { "version": "3.4.0" },
  "storage": {
    "files": [
      { "path": "/etc/a", "contents": { "source": "arn:aws:s3:::bucket/path/to/a" } },
      { "path": "/etc/b", "contents": { "source": "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/b?versionId=v1" } }
    ],
    "luks": [{
      "name": "root",
      "device": "/dev/disk/by-partlabel/root",
      "discard": true,
      "openOptions": ["--perf-no_read_workqueue"],
      "clevis": { "tpm2": true }
    }]
  }
}"#;

#[test]
fn v3_4_valid_configs() {
    let c = clean(Spec::V3_4, V34_ARN_LUKS);
    assert_eq!(c.storage.luks[0].discard, Some(true));
    assert_eq!(
        c.storage.luks[0].open_options,
        vec!["--perf-no_read_workqueue"]
    );
    assert!(c.storage.files[1]
        .contents
        .source
        .as_deref()
        .unwrap()
        .starts_with("arn:aws:s3:us-east-1"));
    clean_cli(Spec::V3_4, V34_ARN_LUKS);
}

#[test]
fn v3_4_tang_advertisement_is_dropped_with_an_ember_warning() {
    let src = r#"{"ignition": {"version": "3.4.0"},
"storage": {"luks": [{"name": "d", "device": "/dev/vdb", "clevis": {"tang": [
{"url": "http://tang", "thumbprint": "t", "advertisement": "{\"payload\": \"x\"}"}
]}}]}}"#;
    let p = config::parse(src.as_bytes());
    assert_eq!(
        p.report.ignition_entries().count(),
        0,
        "Ignition finds nothing"
    );
    let codes: Vec<&str> = p.report.entries.iter().map(|e| e.code).collect();
    assert_eq!(codes, vec!["tang-advertisement-dropped"]);
    let c = p.config.unwrap();
    assert_eq!(c.storage.luks[0].clevis.tang[0].advertisement, None);
    assert_eq!(
        c.storage.luks[0].clevis.tang[0].thumbprint.as_deref(),
        Some("t")
    );
    // ignition-validate is silent, ember validate warns at the advertisement (line 3 col 60).
    let r = validate_src(src.as_bytes());
    r.expect_code(0);
    assert_eq!(r.stdout, "");
    let r = ember_validate_src(src.as_bytes(), &[]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(":3:60: warning: Ignition drops tang advertisements"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("at $.storage.luks.0.clevis.tang.0.advertisement"));

    // 3.5.0 keeps it.
    let p = config::parse(src.replace("3.4.0", "3.5.0").as_bytes());
    assert!(p.report.entries.is_empty());
    assert_eq!(
        p.config.unwrap().storage.luks[0].clevis.tang[0]
            .advertisement
            .as_deref(),
        Some("{\"payload\": \"x\"}")
    );
}

// ---------------------------------------------------------------------------------------------
// 3.5.0: luks cex.

const V35_CEX: &str = r#"{
  "ignition": { "version": "3.5.0" },
  "storage": {
    "luks": [
      { "name": "root", "device": "/dev/disk/by-label/root", "cex": { "enabled": true }, "wipeVolume": true },
      { "name": "data", "device": "/dev/disk/by-label/data",
        "clevis": { "tang": [{ "url": "https://tang.example.com", "thumbprint": "x", "advertisement": "{\"payload\":\"e30\"}" }] } }
    ]
  }
}"#;

#[test]
fn v3_5_valid_configs() {
    let c = clean(Spec::V3_5, V35_CEX);
    assert_eq!(c.storage.luks[0].cex.enabled, Some(true));
    assert_eq!(
        c.storage.luks[1].clevis.tang[0].advertisement.as_deref(),
        Some("{\"payload\":\"e30\"}")
    );
    clean_cli(Spec::V3_5, V35_CEX);
}

// ---------------------------------------------------------------------------------------------
// 3.6.0: special mode bits honoured; custom clevis pins unrestricted.

const V36_MODES: &str = r#"{
  "ignition": { "version": "3.6.0" },
  "storage": {
    "files": [{ "path": "/usr/local/bin/helper", "mode": 2541, "contents": { "source": "data:,%23!/bin/sh%0A" } }],
    "directories": [{ "path": "/srv/shared", "mode": 1023 }],
    "luks": [{ "name": "x", "device": "/dev/vdc", "clevis": { "custom": { "pin": "yubikey", "config": "{}" } } }]
  },
  "kernelArguments": { "shouldExist": ["mitigations=auto"] },
  "systemd": { "units": [{ "name": "app.service", "enabled": true, "contents": "[Service]\nExecStart=/usr/local/bin/helper\n[Install]\nWantedBy=multi-user.target\n" }] }
}"#;

#[test]
fn v3_6_valid_configs() {
    let c = clean(Spec::V3_6, V36_MODES);
    assert_eq!(c.storage.files[0].mode, Some(2541), "setuid kept in 3.6");
    assert_eq!(
        c.storage.directories[0].mode,
        Some(1023),
        "sticky kept in 3.6"
    );
    assert_eq!(
        c.storage.luks[0].clevis.custom.pin.as_deref(),
        Some("yubikey")
    );
    clean_cli(Spec::V3_6, V36_MODES);
    // examples/clean.ign is a 3.6.0 config too.
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clean.ign"))
            .unwrap();
    clean(Spec::V3_6, &example);
}

#[test]
fn modes_are_masked_below_3_6() {
    for v in ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"] {
        let src = cfg(
            v,
            "\n\"storage\": {\"files\": [{\"path\": \"/f\", \"mode\": 3565}],\n\"directories\": [{\"path\": \"/d\", \"mode\": 1517}]}",
        );
        let p = config::parse(src.as_bytes());
        let c = p.config.expect("only warnings");
        assert_eq!(c.storage.files[0].mode, Some(493), "{v}: 06755 & ~07000");
        assert_eq!(
            c.storage.directories[0].mode,
            Some(493),
            "{v}: 02755 & ~07000"
        );
        let r = validate_src(src.as_bytes());
        r.expect_code(0);
        // Line 2: `"storage": {"files": [{"path": "/f", "mode": 3565}],` puts 3565 at col 46;
        // line 3: `"directories": [{"path": "/d", "mode": 1517}]}` puts 1517 at col 40.
        assert_eq!(
            r.lines(),
            vec![
                "warning at $.storage.directories.0.mode, line 3 col 40: setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
                "warning at $.storage.files.0.mode, line 2 col 46: setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
            ],
            "{v}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3.7.0-experimental: virtiofs; accepted with an Ember warning.

const V37_VIRTIOFS: &str = r#"{"ignition": {"version": "3.7.0-experimental"},
"storage": {"filesystems": [{"device": "hostshare", "format": "virtiofs", "path": "/var/share"}]}}"#;

#[test]
fn v3_7_experimental_is_accepted_with_a_warning() {
    let src = V37_VIRTIOFS;
    let p = config::parse(src.as_bytes());
    assert_eq!(p.spec, Some(Spec::V3_7Exp));
    assert_eq!(p.report.ignition_entries().count(), 0);
    let codes: Vec<&str> = p.report.entries.iter().map(|e| e.code).collect();
    assert_eq!(codes, vec!["experimental-spec"]);
    let c = p.config.unwrap();
    assert_eq!(c.storage.filesystems[0].format.as_deref(), Some("virtiofs"));

    let r = validate_src(src.as_bytes());
    r.expect_code(0);
    assert_eq!(r.stdout, "");
    let r = ember_validate_src(src.as_bytes(), &[]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(":1:26: warning: spec 3.7.0-experimental may change incompatibly"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("0 errors, 1 warning (spec 3.7.0-experimental)"));
    // --strict makes the warning an error.
    ember_validate_src(src.as_bytes(), &["--strict"]).expect_code(1);
}

// ---------------------------------------------------------------------------------------------
// Fields of later versions are unknown keys in earlier ones.

#[test]
fn later_fields_are_unused_keys_in_earlier_versions() {
    // (version, body, expected ignition-validate lines). Every key below sits on line 2 or 3;
    // an unused key's marker is its opening quote.
    let cases: Vec<(String, &[&str])> = vec![
        (
            cfg("3.0.0", "\n\"kernelArguments\": {\"shouldExist\": [\"quiet\"]}"),
            &["warning at $.kernelArguments, line 2 col 1: unused key kernelArguments"],
        ),
        (
            cfg("3.2.0", "\n\"kernelArguments\": {\"shouldExist\": [\"quiet\"]}"),
            &["warning at $.kernelArguments, line 2 col 1: unused key kernelArguments"],
        ),
        (
            // `"storage": {"files": [{"path": "/a", "contents": {"source": "http://x", ` is 72
            // bytes, so "httpHeaders" starts at column 73.
            cfg("3.0.0", "\n\"storage\": {\"files\": [{\"path\": \"/a\", \"contents\": {\"source\": \"http://x\", \"httpHeaders\": [{\"name\": \"a\", \"value\": \"b\"}]}}]}"),
            &["warning at $.storage.files.0.contents.httpHeaders, line 2 col 73: unused key httpHeaders"],
        ),
        (
            cfg("3.0.0", "\n\"storage\": {\"filesystems\": [{\"device\": \"/dev/a\", \"format\": \"ext4\",\n\"mountOptions\": [\"noatime\"]}],\n\"luks\": [{\"name\": \"x\"}]}"),
            &[
                "warning at $.storage.filesystems.0.mountOptions, line 3 col 1: unused key mountOptions",
                "warning at $.storage.luks, line 4 col 1: unused key luks",
            ],
        ),
        (
            cfg("3.1.0", "\n\"storage\": {\"disks\": [{\"device\": \"/dev/a\", \"partitions\": [{\"number\": 1,\n\"resize\": true}]}]},\n\"passwd\": {\"users\": [{\"name\": \"u\",\n\"shouldExist\": false}]}"),
            &[
                "warning at $.passwd.users.0.shouldExist, line 5 col 1: unused key shouldExist",
                "warning at $.storage.disks.0.partitions.0.resize, line 3 col 1: unused key resize",
            ],
        ),
        (
            cfg("3.3.0", "\n\"storage\": {\"luks\": [{\"name\": \"x\", \"device\": \"/dev/a\",\n\"discard\": true,\n\"openOptions\": [\"a\"],\n\"clevis\": {\"tang\": [{\"url\": \"http://t\", \"thumbprint\": \"p\",\n\"advertisement\": \"{}\"}]}}]}"),
            &[
                "warning at $.storage.luks.0.discard, line 3 col 1: unused key discard",
                "warning at $.storage.luks.0.openOptions, line 4 col 1: unused key openOptions",
                "warning at $.storage.luks.0.clevis.tang.0.advertisement, line 6 col 1: unused key advertisement",
            ],
        ),
        (
            cfg("3.4.0", "\n\"storage\": {\"luks\": [{\"name\": \"x\", \"device\": \"/dev/a\",\n\"cex\": {\"enabled\": true}}]}"),
            &["warning at $.storage.luks.0.cex, line 3 col 1: unused key cex"],
        ),
        (
            "{\"ignition\": {\"version\": \"3.0.0\",\n\"proxy\": {\"httpProxy\": \"http://p\"}}}\n".to_string(),
            &["warning at $.ignition.proxy, line 2 col 1: unused key proxy"],
        ),
        (
            // 3.0 config references have no compression.
            "{\"ignition\": {\"version\": \"3.0.0\", \"config\": {\"replace\": {\"source\": \"data:,x\",\n\"compression\": \"gzip\"}}}}\n".to_string(),
            &["warning at $.ignition.config.replace.compression, line 2 col 1: unused key compression"],
        ),
    ];
    for (src, want) in &cases {
        let r = validate_src(src.as_bytes());
        r.expect_code(0);
        let mut got: Vec<&str> = r.lines();
        let mut want: Vec<&str> = want.to_vec();
        // Ignition's order of unused keys is random (Go map iteration); compare as sets.
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{src}");
    }
    // The linter says which version introduced the key.
    let r = ember_validate_src(cfg("3.2.0", "\n\"kernelArguments\": {}").as_bytes(), &[]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("hint: \"kernelArguments\" needs spec 3.3.0 or later; this config is 3.2.0"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_later_field_in_an_earlier_config_is_ignored_by_decoding() {
    // The value of an unknown key is not decoded at all: a wrong type there is no error.
    let p = config::parse(br#"{"ignition":{"version":"3.2.0"},"kernelArguments":5}"#);
    assert!(p.config.is_some());
    let p = config::parse(br#"{"ignition":{"version":"3.3.0"},"kernelArguments":5}"#);
    assert!(p.config.is_none());
    // A 3.0 sha256 hash is a rule violation, not an unknown key.
    let src = cfg(
        "3.0.0",
        &format!("\n\"storage\": {{\"files\": [{{\"path\": \"/a\", \"contents\": {{\"source\": \"http://x\",\n\"verification\": {{\"hash\": \"sha256-{SHA256}\"}}}}}}]}}"),
    );
    let r = validate_src(src.as_bytes());
    r.expect_code(1);
    // Line 3: `"verification": {"hash": "sha256-...` puts the hash at column 26.
    assert_eq!(
        r.lines(),
        vec!["error at $.storage.files.0.contents.verification.hash, line 3 col 26: unrecognized hash function"]
    );
    let r = validate_src(src.replace("3.0.0", "3.1.0").as_bytes());
    r.expect_code(0);
}

// ---------------------------------------------------------------------------------------------
// Unsupported and missing versions.

#[test]
fn unsupported_versions_are_refused_naming_the_supported_ones() {
    let supported = "3.0.0, 3.1.0, 3.2.0, 3.3.0, 3.4.0, 3.5.0, 3.6.0";
    let cases: &[(&str, &str)] = &[
        (
            r#"{"ignition": {"version": "2.2.0"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": "2.4.0-experimental"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": "3.8.0"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": "3.6.0-experimental"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": "3.6.0+build.1"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": "3.7.0"}}"#,
            "unsupported config version",
        ),
        (
            r#"{"ignition": {"version": ""}}"#,
            "invalid config version (couldn't parse)",
        ),
        (
            r#"{"ignition": {"version": "3.6"}}"#,
            "invalid config version (couldn't parse)",
        ),
        (
            r#"{"ignition": {"version": "latest"}}"#,
            "invalid config version (couldn't parse)",
        ),
        (
            r#"{"ignition": {}}"#,
            "invalid config version (couldn't parse)",
        ),
        (
            r#"{"storage": {}}"#,
            "invalid config version (couldn't parse)",
        ),
        (r#"{}"#, "invalid config version (couldn't parse)"),
        (r#"null"#, "invalid config version (couldn't parse)"),
    ];
    for (src, ignition_err) in cases {
        let r = validate_src(src.as_bytes());
        r.expect_code(1);
        assert_eq!(r.stdout, "", "{src}");
        assert_eq!(
            r.stderr,
            format!("couldn't parse config: {ignition_err}\n"),
            "{src}"
        );

        let r = ember_validate_src(src.as_bytes(), &[]);
        r.expect_code(1);
        assert!(r.stdout.contains(supported), "{src}: {}", r.stdout);
        assert!(
            r.stdout.contains(": 1 error, 0 warnings"),
            "{src}: {}",
            r.stdout
        );
        let code = if ignition_err.starts_with("unsupported") {
            "[version-unsupported]"
        } else {
            "[version-"
        };
        assert!(r.stdout.contains(code), "{src}: {}", r.stdout);

        let p = config::parse(src.as_bytes());
        assert!(p.config.is_none());
        assert_eq!(p.error.unwrap().to_string(), *ignition_err);
    }
    // The version's location is shown: `{"ignition": {"version": "2.2.0"}}` has it at col 26.
    let r = ember_validate_src(
        br#"{"ignition": {"version": "2.2.0"}}"#,
        &["--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["path"], "$.ignition.version");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(1), Some(26))
    );
    assert_eq!(f["code"], "version-unsupported");
    assert_eq!(
        f["ignition"], false,
        "Ignition reports this as a parse error, not a finding"
    );
}

#[test]
fn version_type_errors_come_from_the_version_stub() {
    // `{"ignition": {"version": 3}}`: Go's offset is one past the number, index 26, col 27.
    let r = validate_src(br#"{"ignition": {"version": 3}}"#);
    r.expect_code(1);
    assert_eq!(
        r.lines(),
        vec!["error at line 1 col 27: json: cannot unmarshal number into Go struct field versionStub.ignition.version of type string"]
    );
    // `"ignition": "3.6.0"`: a string where the stub wants a struct; one past the closing quote
    // is index 20, col 21.
    let r = validate_src(br#"{"ignition": "3.6.0"}"#);
    r.expect_code(1);
    assert_eq!(
        r.lines(),
        vec!["error at line 1 col 21: json: cannot unmarshal string into Go struct field versionStub.ignition of type struct { Version string \"json:\\\"version\\\"\" }"]
    );
    // A top-level array: one past '[' is index 1, col 2.
    let r = validate_src(b"[]");
    r.expect_code(1);
    assert_eq!(
        r.lines(),
        vec!["error at line 1 col 2: json: cannot unmarshal array into Go value of type util.versionStub"]
    );
}

/// Every valid config above, with its version (the schema test checks them too).
pub const VALID_CONFIGS: &[(Spec, &str)] = &[
    (Spec::V3_0, V30_SERVICES),
    (Spec::V3_0, V30_VAR_AND_FILES),
    (Spec::V3_0, V30_RAID),
    (Spec::V3_0, V30_REPLACE_USERS),
    (Spec::V3_1, V31_MERGE_PROXY),
    (Spec::V3_1, V31_STORAGE),
    (Spec::V3_2, V32_LUKS),
    (Spec::V3_3, V33_KARGS),
    (Spec::V3_4, V34_ARN_LUKS),
    (Spec::V3_5, V35_CEX),
    (Spec::V3_6, V36_MODES),
    (Spec::V3_7Exp, V37_VIRTIOFS),
];

/// Every valid config of one version, with only its version string changed, is a valid config
/// of each later stable version and translates to the same internal model: later versions only
/// add fields and relax rules (3.4.0's dropped tang advertisements aside, which none of these
/// use). This gives every version several valid configs.
#[test]
fn valid_configs_stay_valid_in_later_versions() {
    let all: Vec<(Spec, &str)> = VALID_CONFIGS
        .iter()
        .copied()
        .filter(|(s, _)| !s.is_experimental())
        .collect();
    let mut per_version = std::collections::HashMap::new();
    for (from, src) in &all {
        let original = clean(*from, src);
        for to in Spec::STABLE.iter().filter(|s| *s >= from) {
            let moved = src.replacen(
                &format!("\"version\": \"{from}\""),
                &format!("\"version\": \"{to}\""),
                1,
            );
            assert!(to == from || &moved != src, "version string not found");
            let translated = clean(*to, &moved);
            assert_eq!(translated, original, "{from} config read as {to}");
            *per_version.entry(*to).or_insert(0) += 1;
        }
    }
    for v in Spec::STABLE {
        assert!(
            per_version[&v] >= 4,
            "{v} has {} valid configs",
            per_version[&v]
        );
    }
}
