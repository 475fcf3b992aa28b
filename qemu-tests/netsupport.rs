//! What the network boot scenarios (`qemu-tests/scenarios_net.rs`) need besides a machine:
//! the shipped configs under `qemu-tests/configs/`, servers on the host that the guest
//! reaches through QEMU's user network (a plain file server, an EC2-style IMDSv2 mock, a
//! GCE-style metadata mock), the `-netdev` that puts a metadata server at 169.254.169.254,
//! the TFTP directory of a PXE boot, and an OpenStack config drive.
//!
//! QEMU's user network maps the guest's 10.0.2.2 to the host's 127.0.0.1, so the servers
//! listen on 127.0.0.1 only.  A guest address outside that (the link-local metadata
//! address) is served by a `guestfwd` rule that runs `busybox nc` to the server for each
//! guest connection.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::harness::{respond, HttpRequest, HttpServer};
use crate::qemu_harness as qh;

/// The link-local address of the cloud metadata services.
pub const METADATA_ADDR: &str = "169.254.169.254";

/// The port the shipped metal config names for its server (`http://10.0.2.2:8080/`); the
/// tests serve on another port and rewrite it.
pub const CONFIG_PORT: u16 = 8080;

/// `qemu-tests/configs/<rel>`.
pub fn config_path(rel: &str) -> PathBuf {
    qh::repo().join("qemu-tests/configs").join(rel)
}

/// The bytes of `qemu-tests/configs/<rel>`.
pub fn config_bytes(rel: &str) -> Vec<u8> {
    let p = config_path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// `qemu-tests/configs/<rel>` parsed.
pub fn config_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&config_bytes(rel))
        .unwrap_or_else(|e| panic!("qemu-tests/configs/{rel} is not JSON: {e}"))
}

/// A config's text with its `http://10.0.2.2:8080/` URLs pointing at `port` instead.
pub fn with_port(config: &[u8], port: u16) -> Vec<u8> {
    String::from_utf8_lossy(config)
        .replace(
            &format!("http://10.0.2.2:{CONFIG_PORT}/"),
            &format!("http://10.0.2.2:{port}/"),
        )
        .into_bytes()
}

/// The requests a server saw, as `METHOD path` lines, for assertion messages.
pub fn request_lines(reqs: &[HttpRequest]) -> String {
    reqs.iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Servers

/// Paths and their bytes.
type Files = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A file server: GET of a path it was given answers its bytes; anything else is a 404.
/// Files can be added once the port is known (a config naming its own server).
pub struct FileServer {
    pub server: HttpServer,
    files: Files,
}

impl FileServer {
    pub fn start() -> FileServer {
        let files = Files::default();
        let served = files.clone();
        let server = HttpServer::start(move |req, conn| {
            let body = served
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| p == req.path())
                .map(|(_, b)| b.clone());
            match body {
                Some(b) if req.method == "GET" => respond(conn, 200, &[], &b),
                _ => respond(conn, 404, &[], b"not found\n"),
            }
        });
        FileServer { server, files }
    }

    /// Serves `body` at `path` from now on.
    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().push((path.to_string(), body));
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.server.requests()
    }
}

/// An EC2 instance metadata service that requires IMDSv2 sessions:
/// `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) gives a
/// token; every GET must carry it in `X-aws-ec2-metadata-token` (401 otherwise).  It knows
/// the user data (`/<version>/user-data`), the region and no instance role.
pub struct Imds {
    pub server: HttpServer,
    tokens: Arc<Mutex<Vec<String>>>,
}

impl Imds {
    pub fn start(user_data: Vec<u8>, region: &str) -> Imds {
        let tokens: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let issued = tokens.clone();
        let region = region.to_string();
        let server = HttpServer::start(move |req, conn| {
            if req.path() == "/latest/api/token" {
                if req.method != "PUT" {
                    return respond(conn, 405, &[], b"");
                }
                let ttl = req
                    .header("X-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|v| v.parse::<u32>().ok());
                if !ttl.is_some_and(|t| (1..=21600).contains(&t)) {
                    return respond(conn, 400, &[], b"");
                }
                let mut t = issued.lock().unwrap();
                let token = format!("AQAEAEmberImdsToken{:04}==", t.len());
                t.push(token.clone());
                let ttl = ttl.unwrap_or_default().to_string();
                return respond(
                    conn,
                    200,
                    &[("X-aws-ec2-metadata-token-ttl-seconds", &ttl)],
                    token.as_bytes(),
                );
            }
            let valid = req
                .header("X-aws-ec2-metadata-token")
                .is_some_and(|v| issued.lock().unwrap().iter().any(|t| t == v));
            if req.method != "GET" {
                return respond(conn, 405, &[], b"");
            }
            if !valid {
                return respond(conn, 401, &[], b"");
            }
            let p = req.path();
            if p == "/latest/meta-data/placement/region" {
                respond(conn, 200, &[], region.as_bytes())
            } else if p.ends_with("/user-data")
                && p.matches('/').count() == 2
                && (p.starts_with("/latest/") || p.starts_with("/20"))
            {
                respond(conn, 200, &[], &user_data)
            } else {
                respond(conn, 404, &[], b"")
            }
        });
        Imds { server, tokens }
    }

    /// The tokens handed out so far.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }
}

/// The GCE metadata path of the instance's user data.
pub const GCE_USER_DATA: &str = "/computeMetadata/v1/instance/attributes/user-data";

/// A GCE metadata server: every request needs `Metadata-Flavor: Google` (403 otherwise) and
/// is answered with that header; it knows the `user-data` attribute and no service account.
pub fn gce_metadata_server(user_data: Vec<u8>) -> HttpServer {
    HttpServer::start(move |req, conn| {
        let flavor = [("Metadata-Flavor", "Google")];
        if req.header("Metadata-Flavor") != Some("Google") {
            return respond(
                conn,
                403,
                &flavor,
                b"Missing Metadata-Flavor:Google header.\n",
            );
        }
        if req.method == "GET" && req.path() == GCE_USER_DATA {
            respond(conn, 200, &flavor, &user_data)
        } else {
            respond(conn, 404, &flavor, b"")
        }
    })
}

/// The `-netdev` of a user network on 169.254.0.0/16 (the guest gets 169.254.0.15 by DHCP)
/// whose 169.254.169.254:80 is `127.0.0.1:port` on the host, as a cloud's link-local
/// metadata service is.  QEMU runs `busybox nc` for each connection the guest opens there.
pub fn link_local_metadata_netdev(id: &str, port: u16) -> String {
    format!(
        "user,id={id},net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,\
         dns=169.254.0.3,guestfwd=tcp:{METADATA_ADDR}:80-cmd:{} nc 127.0.0.1 {port}",
        busybox()
    )
}

/// The static busybox the forwarding runs (package busybox-static).
pub fn busybox() -> &'static str {
    "/bin/busybox"
}

// ---------------------------------------------------------------------------------------------
// PXE and config drives

/// A TFTP directory for an iPXE network boot: `vmlinuz`, `initrd.img` and the script
/// `boot.ipxe`, which loads both from QEMU's TFTP server (10.0.2.2) and boots the kernel
/// with `cmdline`.  Returns the directory.
pub fn pxe_dir(dir: &Path, kernel: &Path, initrd: &Path, cmdline: &str) -> PathBuf {
    let d = dir.join("tftp");
    std::fs::create_dir_all(&d).expect("creating the TFTP directory");
    std::fs::copy(kernel, d.join("vmlinuz"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", kernel.display()));
    std::fs::copy(initrd, d.join("initrd.img"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", initrd.display()));
    let script = format!(
        "#!ipxe\n\
         echo Ember PXE test: loading the kernel and Ember's initramfs over TFTP\n\
         kernel tftp://10.0.2.2/vmlinuz {cmdline}\n\
         initrd tftp://10.0.2.2/initrd.img\n\
         boot\n"
    );
    std::fs::write(d.join("boot.ipxe"), script).expect("writing boot.ipxe");
    d
}

/// The QEMU arguments of a PXE boot from `tftp_dir` on a virtio NIC: QEMU's iPXE ROM asks
/// the user network's DHCP server, which names `boot.ipxe` on its TFTP server.
pub fn pxe_args(tftp_dir: &Path) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=pxe,tftp={},bootfile=boot.ipxe", tftp_dir.display()),
        "-device".into(),
        "virtio-net-pci,netdev=pxe".into(),
        "-boot".into(),
        "order=n".into(),
    ]
}

/// An ISO 9660 image labelled `label` (Rock Ridge and Joliet) holding `files`
/// (relative path → contents), made with genisoimage (or xorriso).
pub fn iso_image(dir: &Path, label: &str, files: &[(&str, &[u8])], out: &Path) {
    let tree = dir.join(format!("iso-{label}"));
    let _ = std::fs::remove_dir_all(&tree);
    for (rel, data) in files {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().expect("a file in a directory")).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let (program, pre): (&str, &[&str]) =
        if ember::stages::disks::devices::have_program("genisoimage") {
            ("genisoimage", &[])
        } else {
            ("xorriso", &["-as", "mkisofs"])
        };
    let o = Command::new(program)
        .args(pre)
        .args(["-quiet", "-r", "-J", "-V", label, "-o"])
        .arg(out)
        .arg(&tree)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (package genisoimage or xorriso): {e}"));
    assert!(
        o.status.success(),
        "{program} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The QEMU arguments of a SATA CD-ROM (q35's AHCI controller) holding `iso`, the way
/// OpenStack Nova attaches a config drive on q35 machines.
pub fn sata_cdrom_args(iso: &Path, id: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},if=none,id={id},media=cdrom,readonly=on,format=raw",
            iso.display()
        ),
        "-device".into(),
        format!("ide-cd,drive={id}"),
    ]
}
