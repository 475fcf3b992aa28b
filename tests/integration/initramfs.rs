//! The two ways to put Ember in an initramfs, checked by building real images and listing
//! them with cpio:
//!
//! - `initramfs/dracut/30ember` in Debian's dracut (a private copy of its module directory, so
//!   the system's is untouched), `--no-kernel` and `-m ember` so that it is quick; the
//!   generator found in the image is then run against sample kernel command lines;
//! - `initramfs/build.sh`, the minimal image: Ember as /init, the kernel modules with every
//!   dependency (checked against kmod's own `modprobe --show-depends`), the programs with
//!   their libraries (checked against `ldd`), nsswitch.conf and the CA certificates.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::harness::{ember_bin, require_root, tool, TempDir};
use crate::qemu_harness::repo;

/// `cpio -itv` of an uncompressed image: path → (mode string, link target).
fn listing(image: &Path) -> Vec<(String, String, Option<String>)> {
    let out = tool(
        "sh",
        &["-c", &format!("cpio -itv --quiet < '{}'", image.display())],
    );
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // mode links owner group size month day time path [-> target]
            let mode = w.first()?.to_string();
            let arrow = w.iter().position(|x| *x == "->");
            let path = match arrow {
                Some(a) => w[8..a].join(" "),
                None => w.get(8..)?.join(" "),
            };
            let target = arrow.map(|a| w[a + 1..].join(" "));
            Some((path, mode, target))
        })
        .collect()
}

/// Extracts one file of an uncompressed image.
fn extract(image: &Path, path: &str) -> Vec<u8> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cpio -i --quiet --to-stdout '{path}' < '{}'",
            image.display()
        ))
        .output()
        .expect("running cpio");
    assert!(o.status.success(), "extracting {path}");
    o.stdout
}

fn have(program: &str) -> bool {
    ember::stages::disks::devices::have_program(program)
}

// ---------------------------------------------------------------------------------------------
// dracut

const UNITS: [&str; 11] = [
    "ignition-complete.target",
    "ignition-diskful.target",
    "ignition-subsequent.target",
    "ignition-diskful-subsequent.target",
    "ignition-fetch-offline.service",
    "ignition-fetch.service",
    "ignition-kargs.service",
    "ignition-disks.service",
    "ignition-mount.service",
    "ignition-files.service",
    "ignition-remount-sysroot.service",
];

#[test]
fn dracut_module_installs_ember_units_and_generator() {
    require_root();
    assert!(
        have("dracut"),
        "dracut is not installed (package dracut-core; see scripts/install-deps.sh)"
    );
    assert!(
        Path::new("/usr/lib/systemd/systemd").exists()
            || Path::new("/lib/systemd/systemd").exists(),
        "dracut's systemd module needs systemd installed (package systemd)"
    );
    let dir = TempDir::new("dracut");
    // A private copy of dracut's modules with ours added.
    let base = dir.path().join("dracut");
    tool(
        "cp",
        &["-a", "/usr/lib/dracut", &base.display().to_string()],
    );
    tool(
        "cp",
        &[
            "-a",
            &repo()
                .join("initramfs/dracut/30ember")
                .display()
                .to_string(),
            &base.join("modules.d/").display().to_string(),
        ],
    );
    let confdir = dir.path().join("conf.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let image = dir.path().join("initrd.img");
    let o = Command::new("dracut")
        .env("dracutbasedir", &base)
        .env("EMBER_BINARY", ember_bin())
        .args([
            "--force",
            "--no-kernel",
            "--no-compress",
            "--no-hostonly",
            "--nostrip",
        ])
        .args(["--no-early-microcode", "--conf", "/dev/null", "--confdir"])
        .arg(&confdir)
        .arg("--tmpdir")
        .arg(dir.path())
        .args(["-m", "ember"])
        .arg(&image)
        .output()
        .expect("running dracut");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "dracut failed:\n{log}");
    // `ember` pulls in what it depends on.
    for m in ["systemd", "ember", "qemu"] {
        assert!(
            log.contains(&format!("Including module: {m} ")),
            "module {m} not included:\n{log}"
        );
    }

    let list = listing(&image);
    let entry = |p: &str| list.iter().find(|(path, _, _)| path == p);
    // Ember, and `ignition` as the name the units call it by.
    let (_, mode, _) = entry("usr/bin/ember").expect("usr/bin/ember in the image");
    assert!(mode.starts_with("-rwx"), "{mode}");
    assert!(
        std::fs::read(ember_bin()).unwrap() == extract(&image, "usr/bin/ember"),
        "usr/bin/ember is not the ember binary"
    );
    let (_, _, target) = entry("usr/bin/ignition").expect("usr/bin/ignition in the image");
    assert_eq!(target.as_deref(), Some("ember"));
    // The units and targets, as in the repository.
    for u in UNITS {
        let p = format!("usr/lib/systemd/system/{u}");
        assert!(entry(&p).is_some(), "{p} is not in the image");
        assert_eq!(
            extract(&image, &p),
            std::fs::read(repo().join("initramfs/dracut/30ember").join(u)).unwrap(),
            "{u} differs from the repository's"
        );
    }
    // Every stage is required by ignition-complete.target, the remount by the diskful target.
    for s in ["fetch-offline", "fetch", "kargs", "disks", "mount", "files"] {
        let p =
            format!("etc/systemd/system/ignition-complete.target.requires/ignition-{s}.service");
        let (_, _, target) = entry(&p).unwrap_or_else(|| panic!("{p} is not in the image"));
        assert!(
            target
                .as_deref()
                .is_some_and(|t| t.ends_with(&format!("/systemd/system/ignition-{s}.service"))),
            "{p} -> {target:?}"
        );
    }
    assert!(entry(
        "etc/systemd/system/ignition-diskful.target.requires/ignition-remount-sysroot.service"
    )
    .is_some());
    // The generator, executable.
    let gen = "usr/lib/systemd/system-generators/ember-generator";
    let (_, mode, _) = entry(gen).expect("the generator in the image");
    assert!(mode.starts_with("-rwx"), "{mode}");
    // What the stages run, found on this system.
    for p in ["usr/sbin/mkfs.ext4", "usr/sbin/mkfs.xfs", "usr/sbin/mdadm"] {
        let alt = p.replace("usr/sbin", "sbin");
        assert!(
            entry(p).is_some() || entry(&alt).is_some(),
            "{p} is not in the image"
        );
    }

    // The generator from the image, run on sample command lines.
    let gen_path = dir.path().join("ember-generator");
    std::fs::write(&gen_path, extract(&image, gen)).unwrap();
    let run = |cmdline: &str| -> (BTreeSet<String>, String) {
        let t = TempDir::new("gen");
        let cl = t.path().join("cmdline");
        std::fs::write(&cl, cmdline).unwrap();
        let env = t.path().join("ignition.env");
        let out = t.path().join("normal");
        let o = Command::new("sh")
            .arg(&gen_path)
            .arg(&out)
            .arg(t.path().join("early"))
            .arg(t.path().join("late"))
            .env("IGNITION_KERNEL_CMDLINE_PATH", &cl)
            .env("EMBER_IGNITION_ENV", &env)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "generator on {cmdline:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut links = BTreeSet::new();
        for d in std::fs::read_dir(&out).into_iter().flatten().flatten() {
            for l in std::fs::read_dir(d.path()).unwrap().flatten() {
                links.insert(format!(
                    "{}/{}",
                    d.file_name().to_string_lossy(),
                    l.file_name().to_string_lossy()
                ));
            }
        }
        (links, std::fs::read_to_string(&env).unwrap_or_default())
    };
    let first: BTreeSet<String> = [
        "initrd.target.requires/ignition-complete.target",
        "ignition-complete.target.requires/ignition-diskful.target",
    ]
    .map(String::from)
    .into();
    let later: BTreeSet<String> = [
        "initrd.target.requires/ignition-subsequent.target",
        "ignition-subsequent.target.requires/ignition-diskful-subsequent.target",
    ]
    .map(String::from)
    .into();
    let (links, env) = run("BOOT_IMAGE=/vmlinuz ignition.firstboot ignition.platform.id=qemu\n");
    assert_eq!(links, first);
    assert_eq!(env, "PLATFORM_ID=qemu\n");
    let (links, env) =
        run("ignition.platform.id=aws ignition.firstboot=1 ignition.platform.id=metal");
    assert_eq!(links, first);
    assert_eq!(env, "PLATFORM_ID=metal\n", "the last occurrence wins");
    for cmdline in [
        "ignition.platform.id=qemu",
        "ignition.firstboot=0 ignition.platform.id=qemu",
        "ignition.firstboot ignition.firstboot=off",
    ] {
        assert_eq!(run(cmdline).0, later, "{cmdline}");
    }
}

// ---------------------------------------------------------------------------------------------
// build.sh

/// The modules the minimal image must carry.
const MODULES: [&str; 20] = [
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "nvme",
    "sd_mod",
    "e1000",
    "qemu_fw_cfg",
    "ext4",
    "xfs",
    "btrfs",
    "vfat",
    "isofs",
    "md_mod",
    "raid0",
    "raid1",
    "raid10",
    "raid456",
    "dm_mod",
    "dm_crypt",
];

#[test]
fn build_sh_makes_a_complete_minimal_image() {
    require_root();
    let Some(k) = crate::qemu_harness::kernel_or_skip("build_sh_makes_a_complete_minimal_image")
    else {
        return;
    };
    let dir = TempDir::new("buildsh");
    let image = dir.path().join("initramfs.cpio");
    crate::qemu_harness::build_initramfs(
        &ember_bin(),
        &k,
        &image,
        &["--compress", "none", "--busybox"],
    );
    let list = listing(&image);
    let paths: BTreeSet<&str> = list.iter().map(|(p, _, _)| p.as_str()).collect();
    let entry = |p: &str| list.iter().find(|(path, _, _)| path == p);

    // Ember is /init, and modprobe and ignition.
    let (_, mode, _) = entry("init").expect("/init");
    assert!(mode.starts_with("-rwx"), "{mode}");
    assert_eq!(
        extract(&image, "init"),
        std::fs::read(ember_bin()).unwrap(),
        "/init is not the ember binary"
    );
    for (l, t) in [
        ("usr/sbin/modprobe", "../../init"),
        ("usr/bin/ignition", "../../init"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
    ] {
        assert_eq!(entry(l).and_then(|e| e.2.as_deref()), Some(t), "{l}");
    }
    // The name service and CA certificates.
    let nss = String::from_utf8(extract(&image, "etc/nsswitch.conf")).unwrap();
    assert!(nss.lines().any(|l| l == "hosts: files dns"), "{nss}");
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert_eq!(
            extract(&image, "etc/ssl/certs/ca-certificates.crt"),
            std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap()
        );
    }
    // busybox when asked for, with a shell for the rescue path.
    assert_eq!(
        entry("usr/bin/sh").and_then(|e| e.2.as_deref()),
        Some("busybox")
    );

    // Kernel modules: each wanted one and everything kmod says it needs.
    let mdir = format!("usr/lib/modules/{}", k.version);
    let dep = String::from_utf8(extract(&image, &format!("{mdir}/modules.dep"))).unwrap();
    let shipped: BTreeSet<String> = dep
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(ember::system::kmod::name_of_path)
        .collect();
    let builtin = std::fs::read_to_string(k.moddir.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .map(ember::system::kmod::name_of_path)
        .collect();
    let kmod_base = k
        .moddir
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("a module directory under lib/modules");
    for m in MODULES {
        if builtin.contains(m) {
            continue;
        }
        assert!(shipped.contains(m), "module {m} is not in the image");
        let o = Command::new("modprobe")
            .arg("-d")
            .arg(kmod_base)
            .args(["-S", &k.version, "--show-depends", m])
            .output()
            .expect("running modprobe");
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some(p) = line.strip_prefix("insmod ") {
                let p = p.split_whitespace().next().unwrap_or_default();
                let name = ember::system::kmod::name_of_path(p);
                assert!(
                    shipped.contains(&name),
                    "{name} (needed by {m}) is not in the image"
                );
            }
        }
    }
    // Every modules.dep line's files are in the image, uncompressed.
    for l in dep.lines() {
        for f in l.split([':', ' ']).filter(|f| !f.is_empty()) {
            assert!(f.ends_with(".ko"), "{f}");
            assert!(paths.contains(format!("{mdir}/{f}").as_str()), "{f}");
        }
    }
    // Loaded at every boot: the SCSI class drivers.  The others are matched to devices by
    // their aliases, which the image keeps.
    let boot = String::from_utf8(extract(&image, "etc/ember/modules")).unwrap();
    for m in ["sd_mod", "sr_mod"] {
        assert!(
            boot.lines().any(|l| l == m) || builtin.contains(m),
            "{m} is not loaded at boot:\n{boot}"
        );
    }
    let alias = String::from_utf8(extract(&image, &format!("{mdir}/modules.alias"))).unwrap();
    let db = ember::system::kmod::ModuleDb::parse(&dep, &alias, "", "");
    for (device, driver) in [
        (
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            "virtio_pci",
        ),
        ("virtio:d00000002v00001AF4", "virtio_blk"),
        ("virtio:d00000001v00001AF4", "virtio_net"),
        ("virtio:d00000008v00001AF4", "virtio_scsi"),
        (
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
            "e1000",
        ),
        (
            "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02",
            "nvme",
        ),
        ("acpi:QEMU0002:", "qemu_fw_cfg"),
    ] {
        assert!(
            db.resolve(device).iter().any(|m| m == driver),
            "the image's modules.alias does not match {device} to {driver}"
        );
    }

    // Programs, each with every library ldd names, and the loader.
    for p in [
        "mkfs.ext4",
        "mkfs.xfs",
        "mkfs.btrfs",
        "mkfs.fat",
        "mdadm",
        "cryptsetup",
    ] {
        if !have(p) {
            continue;
        }
        assert!(paths.contains(format!("usr/sbin/{p}").as_str()), "{p}");
        let host = String::from_utf8_lossy(
            &Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {p}"))
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string();
        let ldd = tool("ldd", &[&host]);
        for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
            let rel = lib.trim_start_matches('/');
            // The image has a merged /usr: /lib/x.so is usr/lib/x.so.
            let merged = rel
                .strip_prefix("lib/")
                .map(|r| format!("usr/lib/{r}"))
                .or_else(|| rel.strip_prefix("lib64/").map(|r| format!("usr/lib64/{r}")))
                .unwrap_or_else(|| rel.to_string());
            assert!(
                paths.contains(rel) || paths.contains(merged.as_str()),
                "{lib} (for {p}) is not in the image"
            );
        }
    }

    // The same inputs give the same bytes.
    let again = dir.path().join("again.cpio");
    crate::qemu_harness::build_initramfs(
        &ember_bin(),
        &k,
        &again,
        &["--compress", "none", "--busybox"],
    );
    assert!(
        std::fs::read(&image).unwrap() == std::fs::read(&again).unwrap(),
        "two builds differ"
    );
}
