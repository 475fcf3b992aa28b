//! Platform providers against mock metadata servers on 127.0.0.1, fake sysfs trees, and real
//! config drives (ISO 9660, UDF and FAT images on loop devices, root only).

use crate::harness::{require_root, respond, tool, HttpRequest, HttpServer, TempDir};
use base64::Engine as _;
use ember::fetch::{Fetcher, Options};
use ember::providers::{self, Endpoints, Error, Provider};
use ember::system::loopdev::{LoopDevice, LoopOptions};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const CONFIG: &[u8] = br#"{"ignition":{"version":"3.4.0"}}"#;

// ---------------------------------------------------------------------------------------------
// A scripted metadata server.

#[derive(Clone)]
enum Reply {
    Status(u16, Vec<u8>),
    /// Accept the request and never answer.
    Hang,
}

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply::Status(200, body.into())
}

type Script = Arc<Mutex<HashMap<String, VecDeque<Reply>>>>;

struct Mock {
    server: HttpServer,
    script: Script,
}

impl Mock {
    fn new() -> Mock {
        let script: Script = Arc::default();
        let s = script.clone();
        let server = HttpServer::start(move |req, conn| {
            let key = format!("{} {}", req.method, req.target);
            let reply = {
                let mut map = s.lock().unwrap();
                match map.get_mut(&key) {
                    // The last reply repeats.
                    Some(q) if q.len() > 1 => q.pop_front(),
                    Some(q) => q.front().cloned(),
                    None => None,
                }
            };
            match reply.unwrap_or(Reply::Status(404, Vec::new())) {
                Reply::Status(code, body) => respond(conn, code, &[], &body),
                Reply::Hang => std::thread::sleep(Duration::from_secs(10)),
            }
        });
        Mock { server, script }
    }

    /// Replies for `METHOD target`, in order; the last one repeats.
    fn on(&self, method: &str, target: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap()
            .insert(format!("{method} {target}"), replies.into());
    }

    fn base(&self) -> String {
        self.server.url("")
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.server.requests()
    }

    fn requests_to(&self, method: &str, target: &str) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.target == target)
            .collect()
    }
}

/// Endpoints pointing every service at `base`, with short waits and a modprobe that fails
/// loudly if a test did not expect it to run.
fn endpoints(base: &str) -> Endpoints {
    Endpoints {
        metadata: base.into(),
        aliyun: base.into(),
        scaleway: base.into(),
        packet: base.into(),
        link_local_v6: None,
        modprobe: PathBuf::from("/nonexistent/modprobe"),
        drive_wait: Duration::from_millis(400),
        cidata_wait: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        metadata_timeout: Duration::from_secs(2),
        ..Endpoints::default()
    }
}

/// A fetcher with short waits: 300 ms for headers, 2 s of retrying.
fn fetcher() -> Fetcher {
    Fetcher::new(Options {
        system_ca_files: Some(Vec::new()),
        response_headers_timeout: Duration::from_millis(300),
        deadline: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .unwrap()
}

fn offline_fetcher() -> Fetcher {
    Fetcher::new(Options {
        offline: true,
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    })
    .unwrap()
}

use ember::logging::chain;

fn provider(id: &str, ep: &Endpoints) -> Box<dyn Provider> {
    providers::get(id, ep).unwrap()
}

fn b64(data: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .into_bytes()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Tests that look for drives by label or type run one at a time, so that one test's drive
/// is never another's answer.
fn drive_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// HTTP providers, table driven.

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Plain,
    Base64,
}

struct Spec {
    id: &'static str,
    /// The user-data request target.
    target: &'static str,
    /// Headers the user-data request must carry.
    headers: &'static [(&'static str, &'static str)],
    encoding: Encoding,
    /// Whether a 404 is an error (else no config).
    not_found_is_error: bool,
    /// `(PUT target, token header)` for platforms with a session token.
    token: Option<(&'static str, &'static str)>,
}

const TOKEN: &str = "tok-123";

impl Spec {
    fn setup(&self, mock: &Mock) {
        if let Some((put, _)) = self.token {
            mock.on("PUT", put, vec![ok(TOKEN)]);
        }
    }

    fn encode(&self, data: &[u8]) -> Vec<u8> {
        match self.encoding {
            Encoding::Plain => data.to_vec(),
            Encoding::Base64 => b64(data),
        }
    }

    fn fetch(&self, mock: &Mock) -> Result<Option<Vec<u8>>, Error> {
        provider(self.id, &endpoints(&mock.base())).fetch_config(&fetcher())
    }

    fn config_present(&self) {
        let mock = Mock::new();
        self.setup(&mock);
        mock.on("GET", self.target, vec![ok(self.encode(CONFIG))]);
        let got = self
            .fetch(&mock)
            .unwrap_or_else(|e| panic!("{}: {}", self.id, chain(&e)));
        assert_eq!(got.as_deref(), Some(CONFIG), "{}", self.id);
        let reqs = mock.requests_to("GET", self.target);
        assert_eq!(reqs.len(), 1, "{}", self.id);
        for (name, value) in self.headers {
            assert_eq!(reqs[0].header(name), Some(*value), "{}: {name}", self.id);
        }
        if let Some((put, header)) = self.token {
            assert_eq!(reqs[0].header(header), Some(TOKEN), "{}", self.id);
            assert_eq!(mock.requests_to("PUT", put).len(), 1, "{}", self.id);
        }
    }

    fn no_config(&self) {
        // 404.
        let mock = Mock::new();
        self.setup(&mock);
        let r = self.fetch(&mock);
        if self.not_found_is_error {
            let err = r.expect_err(self.id);
            assert!(
                chain(&err).contains("not found"),
                "{}: {}",
                self.id,
                chain(&err)
            );
        } else {
            assert_eq!(r.unwrap(), None, "{}", self.id);
        }
        // An empty body.
        let mock = Mock::new();
        self.setup(&mock);
        mock.on("GET", self.target, vec![ok("")]);
        assert_eq!(self.fetch(&mock).unwrap(), None, "{}", self.id);
    }

    fn server_error_then_success(&self) {
        let mock = Mock::new();
        self.setup(&mock);
        mock.on(
            "GET",
            self.target,
            vec![
                Reply::Status(503, b"busy".to_vec()),
                Reply::Status(500, Vec::new()),
                ok(self.encode(CONFIG)),
            ],
        );
        assert_eq!(self.fetch(&mock).unwrap().as_deref(), Some(CONFIG));
        assert_eq!(mock.requests_to("GET", self.target).len(), 3, "{}", self.id);
    }

    fn timeout(&self) {
        let mock = Mock::new();
        self.setup(&mock);
        mock.on("GET", self.target, vec![Reply::Hang]);
        let start = Instant::now();
        let err = self.fetch(&mock).expect_err(self.id);
        assert!(
            chain(&err).contains("in time") || chain(&err).contains("timed out"),
            "{}: {}",
            self.id,
            chain(&err)
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{}", self.id);
    }

    fn malformed(&self) {
        if self.encoding != Encoding::Base64 {
            return;
        }
        let mock = Mock::new();
        self.setup(&mock);
        mock.on("GET", self.target, vec![ok("not*base64")]);
        let err = self.fetch(&mock).expect_err(self.id);
        assert!(matches!(err, Error::Malformed { .. }), "{}: {err}", self.id);
        assert!(err.to_string().contains("base64"), "{}: {err}", self.id);
    }

    fn offline(&self) {
        let mock = Mock::new();
        self.setup(&mock);
        mock.on("GET", self.target, vec![ok(self.encode(CONFIG))]);
        let err = provider(self.id, &endpoints(&mock.base()))
            .fetch_config(&offline_fetcher())
            .expect_err(self.id);
        assert!(err.needs_network(), "{}: {err}", self.id);
        assert!(mock.requests().is_empty(), "{}: nothing is sent", self.id);
    }

    fn all(&self) {
        self.config_present();
        self.no_config();
        self.server_error_then_success();
        self.timeout();
        self.malformed();
        self.offline();
    }
}

macro_rules! http_provider_tests {
    ($($name:ident: $spec:expr;)*) => {
        $(
            #[test]
            fn $name() {
                $spec.all();
            }
        )*
    };
}

const PLAIN: Spec = Spec {
    id: "",
    target: "",
    headers: &[],
    encoding: Encoding::Plain,
    not_found_is_error: false,
    token: None,
};

http_provider_tests! {
    aliyun_user_data: Spec { id: "aliyun", target: "/latest/user-data", ..PLAIN };
    digitalocean_user_data: Spec {
        id: "digitalocean",
        target: "/metadata/v1/user-data",
        not_found_is_error: true,
        ..PLAIN
    };
    exoscale_user_data: Spec { id: "exoscale", target: "/1.0/user-data", ..PLAIN };
    hetzner_user_data: Spec { id: "hetzner", target: "/hetzner/v1/userdata", ..PLAIN };
    upcloud_user_data: Spec { id: "upcloud", target: "/metadata/v1/user_data", ..PLAIN };
    vultr_user_data: Spec { id: "vultr", target: "/user-data/user-data", ..PLAIN };
    gcp_user_data: Spec {
        id: "gcp",
        target: "/computeMetadata/v1/instance/attributes/user-data",
        headers: &[("Metadata-Flavor", "Google")],
        ..PLAIN
    };
    oraclecloud_user_data: Spec {
        id: "oraclecloud",
        target: "/opc/v2/instance/metadata/user_data",
        headers: &[("Authorization", "Bearer Oracle")],
        encoding: Encoding::Base64,
        ..PLAIN
    };
    packet_user_data: Spec {
        id: "packet",
        target: "/userdata",
        headers: &[("Accept", "*/*")],
        not_found_is_error: true,
        ..PLAIN
    };
    aws_user_data: Spec {
        id: "aws",
        target: "/2019-10-01/user-data",
        token: Some(("/latest/api/token", "X-aws-ec2-metadata-token")),
        ..PLAIN
    };
    akamai_user_data: Spec {
        id: "akamai",
        target: "/v1/user-data",
        headers: &[("Accept", "*/*")],
        encoding: Encoding::Base64,
        not_found_is_error: true,
        token: Some(("/v1/token", "Metadata-Token")),
    };
}

const AZURE_TARGET: &str = "/metadata/instance/compute/userData?api-version=2021-01-01&format=text";

#[test]
fn azure_imds_user_data() {
    let spec = Spec {
        id: "azure",
        target: AZURE_TARGET,
        headers: &[("Metadata", "true")],
        encoding: Encoding::Base64,
        ..PLAIN
    };
    spec.config_present();
    spec.server_error_then_success();
    spec.timeout();
    spec.malformed();
    spec.offline();
    // 404, 410 and 429 are retried.
    let mock = Mock::new();
    mock.on(
        "GET",
        AZURE_TARGET,
        vec![
            Reply::Status(404, Vec::new()),
            Reply::Status(410, Vec::new()),
            Reply::Status(429, Vec::new()),
            ok(b64(CONFIG)),
        ],
    );
    assert_eq!(spec.fetch(&mock).unwrap().as_deref(), Some(CONFIG));
    assert_eq!(mock.requests_to("GET", AZURE_TARGET).len(), 4);
    // A 404 that lasts runs into the fetcher's deadline.
    let mock = Mock::new();
    mock.on("GET", AZURE_TARGET, vec![Reply::Status(404, Vec::new())]);
    let err = spec.fetch(&mock).unwrap_err();
    assert!(chain(&err).contains("in time"), "{}", chain(&err));
}

#[test]
fn azure_empty_user_data_without_an_ovf_disc_times_out() {
    let _g = drive_lock();
    let mock = Mock::new();
    mock.on("GET", AZURE_TARGET, vec![ok("")]);
    let start = Instant::now();
    let err = provider("azure", &endpoints(&mock.base()))
        .fetch_config(&fetcher())
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("ovf-env.xml"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn akamai_gzip_is_sniffed() {
    let mock = Mock::new();
    mock.on("PUT", "/v1/token", vec![ok(TOKEN)]);
    mock.on("GET", "/v1/user-data", vec![ok(b64(&gz(CONFIG)))]);
    let p = provider("akamai", &endpoints(&mock.base()));
    assert_eq!(p.fetch_config(&fetcher()).unwrap().as_deref(), Some(CONFIG));
    let put = &mock.requests_to("PUT", "/v1/token")[0];
    assert_eq!(put.header("Accept"), Some("text/plain"));
    assert_eq!(put.header("Metadata-Token-Expiry-Seconds"), Some("300"));
    // Bad gzip behind good base64.
    mock.on(
        "GET",
        "/v1/user-data",
        vec![ok(b64(b"\x1f\x8b\x08\x00garbage"))],
    );
    let err = p.fetch_config(&fetcher()).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    // An empty token is an error.
    mock.on("PUT", "/v1/token", vec![ok("")]);
    let err = p.fetch_config(&fetcher()).unwrap_err();
    assert!(err.to_string().contains("empty token"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// aws: IMDSv1 fallback, region hint, instance-role credentials.

#[test]
fn aws_falls_back_to_imdsv1() {
    let mock = Mock::new();
    // No token route: the PUT gets a 404.
    mock.on("GET", "/2019-10-01/user-data", vec![ok(CONFIG)]);
    let got = provider("aws", &endpoints(&mock.base()))
        .fetch_config(&fetcher())
        .unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG));
    let put = &mock.requests_to("PUT", "/latest/api/token")[0];
    assert_eq!(
        put.header("X-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    let get = &mock.requests_to("GET", "/2019-10-01/user-data")[0];
    assert_eq!(get.header("X-aws-ec2-metadata-token"), None);
}

#[test]
fn aws_configures_region_and_role_credentials() {
    let mock = Mock::new();
    mock.on("PUT", "/latest/api/token", vec![ok(TOKEN)]);
    mock.on(
        "GET",
        "/latest/meta-data/placement/region",
        vec![ok("eu-west-3")],
    );
    let dir = "/latest/meta-data/iam/security-credentials/";
    mock.on("GET", dir, vec![ok("my-role\n")]);
    mock.on(
        "GET",
        &format!("{dir}my-role"),
        vec![ok(r#"{"Code":"Success","AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"secret","Token":"session","Expiration":"2999-01-01T00:00:00Z"}"#)],
    );
    let p = provider("aws", &endpoints(&mock.base()));
    let mut opts = Options {
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    };
    p.configure_fetcher(&mut opts);
    assert_eq!(opts.aws_region_hint.as_deref(), Some("eu-west-3"));
    let source = opts.aws_credentials.clone().expect("a credentials source");
    let creds = source().expect("credentials");
    assert_eq!(creds.access_key_id, "AKIAEXAMPLE");
    assert_eq!(creds.secret_access_key, "secret");
    assert_eq!(creds.session_token.as_deref(), Some("session"));
    // Cached: a second call asks nothing.
    let before = mock.requests_to("GET", dir).len();
    assert!(source().is_some());
    assert_eq!(mock.requests_to("GET", dir).len(), before);
    let role_req = &mock.requests_to("GET", &format!("{dir}my-role"))[0];
    assert_eq!(role_req.header("X-aws-ec2-metadata-token"), Some(TOKEN));

    // No role: anonymous.
    let mock = Mock::new();
    let p = provider("aws", &endpoints(&mock.base()));
    let mut opts = Options {
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    };
    p.configure_fetcher(&mut opts);
    assert_eq!(opts.aws_region_hint, None);
    assert!((opts.aws_credentials.unwrap())().is_none());

    // Offline: nothing is asked.
    let mock = Mock::new();
    let mut opts = Options {
        offline: true,
        ..Options::default()
    };
    provider("aws", &endpoints(&mock.base())).configure_fetcher(&mut opts);
    assert!(opts.aws_credentials.is_none());
    assert!(mock.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// gcp: the gs:// token source.

#[test]
fn gcp_token_source() {
    let mock = Mock::new();
    let target = "/computeMetadata/v1/instance/service-accounts/default/token\
                  ?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdevstorage.read_only";
    mock.on(
        "GET",
        target,
        vec![ok(
            r#"{"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer"}"#,
        )],
    );
    let p = provider("gcp", &endpoints(&mock.base()));
    let mut opts = Options {
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    };
    p.configure_fetcher(&mut opts);
    let source = opts.gcp_token.expect("a token source");
    assert_eq!(source().as_deref(), Some("ya29.token"));
    assert_eq!(source().as_deref(), Some("ya29.token"));
    let reqs = mock.requests_to("GET", target);
    assert_eq!(reqs.len(), 1, "the token is cached");
    assert_eq!(reqs[0].header("Metadata-Flavor"), Some("Google"));

    // No service account: anonymous.
    let mock = Mock::new();
    let mut opts = Options {
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    };
    provider("gcp", &endpoints(&mock.base())).configure_fetcher(&mut opts);
    assert_eq!((opts.gcp_token.unwrap())(), None);
}

// ---------------------------------------------------------------------------------------------
// packet: the status report.

#[test]
fn packet_posts_stage_status() {
    let mock = Mock::new();
    let phone_home = format!("{}/phone-home", mock.base());
    mock.on(
        "GET",
        "/metadata",
        vec![ok(format!(
            r#"{{"id":"x","phone_home_url":"{phone_home}"}}"#
        ))],
    );
    mock.on("POST", "/events", vec![ok("")]);
    let p = provider("packet", &endpoints(&mock.base()));
    p.status("files", None, &fetcher());
    p.status("disks", Some("creating <partitions> & more"), &fetcher());
    let posts = mock.requests_to("POST", "/events");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].header("Content-Type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(posts[0].body.clone()).unwrap(),
        r#"{"state":"running","message":"[files] Ignition status: finished successfully"}"#
    );
    assert_eq!(
        String::from_utf8(posts[1].body.clone()).unwrap(),
        r#"{"state":"failed","message":"[disks] Ignition error: creating \u003cpartitions\u003e \u0026 more"}"#
    );
    // A broken metadata service is logged, not fatal.
    let mock = Mock::new();
    provider("packet", &endpoints(&mock.base())).status("fetch", None, &fetcher());
    assert!(mock.requests_to("POST", "/events").is_empty());
}

// ---------------------------------------------------------------------------------------------
// scaleway: a privileged source port.

#[test]
fn scaleway_from_a_privileged_port() {
    require_root();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ports = Arc::new(Mutex::new(Vec::new()));
    let seen = ports.clone();
    let replies = Arc::new(Mutex::new(VecDeque::from(vec![
        (503, Vec::new()),
        (200, CONFIG.to_vec()),
        (404, Vec::new()),
    ])));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            seen.lock().unwrap().push(s.peer_addr().unwrap().port());
            let Ok(Some(req)) = crate::harness::read_request(&mut s) else {
                continue;
            };
            assert_eq!(req.target, "/user_data/cloud-init");
            let (code, body) = replies.lock().unwrap().pop_front().unwrap_or((404, vec![]));
            respond(&mut s, code, &[], &body);
        }
    });
    let p = provider("scaleway", &endpoints(&base));
    assert_eq!(p.fetch_config(&fetcher()).unwrap().as_deref(), Some(CONFIG));
    assert_eq!(p.fetch_config(&fetcher()).unwrap(), None, "404: no config");
    let ports = ports.lock().unwrap().clone();
    assert_eq!(ports.len(), 3, "503, then success, then 404");
    assert!(ports.iter().all(|p| (1..=1022).contains(p)), "{ports:?}");
    let err = p.fetch_config(&offline_fetcher()).unwrap_err();
    assert!(err.needs_network());
}

#[test]
fn scaleway_timeout() {
    require_root();
    let mock = Mock::new();
    mock.on("GET", "/user_data/cloud-init", vec![Reply::Hang]);
    let start = Instant::now();
    let err = provider("scaleway", &endpoints(&mock.base()))
        .fetch_config(&fetcher())
        .unwrap_err();
    assert!(chain(&err).contains("timed out"), "{}", chain(&err));
    assert!(start.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------------
// openstack, brightbox, cloudstack: metadata services (drives absent).

#[test]
fn openstack_and_brightbox_metadata_service() {
    let _g = drive_lock();
    for id in ["openstack", "brightbox"] {
        let target = "/openstack/latest/user_data";
        let mock = Mock::new();
        mock.on(
            "GET",
            target,
            vec![Reply::Status(500, Vec::new()), ok(CONFIG)],
        );
        let ep = endpoints(&mock.base());
        assert_eq!(
            provider(id, &ep)
                .fetch_config(&fetcher())
                .unwrap()
                .as_deref(),
            Some(CONFIG),
            "{id}"
        );
        // 404 answers "no config" without waiting for the drives.
        let mock = Mock::new();
        let ep = Endpoints {
            drive_wait: Duration::from_secs(60),
            ..endpoints(&mock.base())
        };
        let start = Instant::now();
        assert_eq!(provider(id, &ep).fetch_config(&fetcher()).unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(10));
        // Every source failing (a hung service, no drive) is no config, in bounded time.
        let mock = Mock::new();
        mock.on("GET", target, vec![Reply::Hang]);
        let start = Instant::now();
        assert_eq!(
            provider(id, &endpoints(&mock.base()))
                .fetch_config(&fetcher())
                .unwrap(),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        let err = provider(id, &endpoints(&mock.base()))
            .fetch_config(&offline_fetcher())
            .unwrap_err();
        assert!(err.needs_network());
    }
}

#[test]
fn cloudstack_metadata_from_the_dhcp_server() {
    let _g = drive_lock();
    let mock = Mock::new();
    mock.on("GET", "/latest/user-data", vec![ok(CONFIG)]);
    let dir = TempDir::new("cloudstack");
    for (name, index, flags) in [("lo", "1", "0x9"), ("eth0", "2", "0x1003")] {
        let d = dir.path().join("sys/class/net").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ifindex"), index).unwrap();
        std::fs::write(d.join("flags"), flags).unwrap();
    }
    let leases = dir.path().join("leases");
    std::fs::create_dir_all(&leases).unwrap();
    std::fs::write(
        leases.join("2"),
        "ADDRESS=127.0.0.9\nSERVER_ADDRESS=127.0.0.1\n",
    )
    .unwrap();
    let ep = Endpoints {
        sys_dir: dir.path().join("sys"),
        leases_dir: leases.clone(),
        cloudstack_port: mock.server.port(),
        ..endpoints("http://unused.invalid")
    };
    let p = provider("cloudstack", &ep);
    assert_eq!(p.fetch_config(&fetcher()).unwrap().as_deref(), Some(CONFIG));
    // 404: no config.
    mock.on("GET", "/latest/user-data", vec![Reply::Status(404, vec![])]);
    assert_eq!(p.fetch_config(&fetcher()).unwrap(), None);
    // No lease and no drive: nothing answers in time, so no config.
    std::fs::remove_file(leases.join("2")).unwrap();
    let start = Instant::now();
    assert_eq!(p.fetch_config(&fetcher()).unwrap(), None);
    assert!(start.elapsed() < Duration::from_secs(10));
    // No lease file, but the lease Ember took itself names the server: used at once.
    mock.on("GET", "/latest/user-data", vec![ok(CONFIG)]);
    let ep = Endpoints {
        dhcp_server: Some("127.0.0.1".into()),
        drive_wait: Duration::from_secs(60),
        ..ep
    };
    let start = Instant::now();
    let got = provider("cloudstack", &ep)
        .fetch_config(&fetcher())
        .unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG));
    assert!(start.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------------
// Devices and firmware: qemu, nvidiabluefield, applehv, unsupported platforms.

/// A fake modprobe that records its arguments in `log` and exits with `code`.
fn fake_modprobe(dir: &Path, code: i32) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("modprobe.log");
    let script = dir.join("modprobe");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexit {code}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

#[test]
fn qemu_fw_cfg() {
    let dir = TempDir::new("qemu");
    let sys = dir.path().join("sys");
    let entry = sys.join("firmware/qemu_fw_cfg/by_name/opt/com.coreos/config");
    let (modprobe, log) = fake_modprobe(dir.path(), 0);
    let ep = Endpoints {
        sys_dir: sys.clone(),
        modprobe: modprobe.clone(),
        ..endpoints("http://unused.invalid")
    };
    let p = provider("qemu", &ep);
    let f = offline_fetcher();

    // No fw_cfg directory: modprobe runs, then there is no config.
    assert_eq!(p.fetch_config(&f).unwrap(), None);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "qemu_fw_cfg\n");

    // The entry: exactly `size` bytes.
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("size"), format!("{}\n", CONFIG.len())).unwrap();
    std::fs::write(entry.join("raw"), CONFIG).unwrap();
    assert_eq!(p.fetch_config(&f).unwrap().as_deref(), Some(CONFIG));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "qemu_fw_cfg\n",
        "no modprobe when fw_cfg is there"
    );

    // More than `size`: missing EOF.
    let mut long = CONFIG.to_vec();
    long.push(b'\n');
    std::fs::write(entry.join("raw"), &long).unwrap();
    let err = p.fetch_config(&f).unwrap_err();
    assert!(err.to_string().contains("missing EOF"), "{err}");
    // Less than `size`.
    std::fs::write(entry.join("raw"), &CONFIG[..5]).unwrap();
    assert!(p.fetch_config(&f).is_err());
    // A size that is not a number.
    std::fs::write(entry.join("size"), "lots").unwrap();
    assert!(matches!(p.fetch_config(&f), Err(Error::Malformed { .. })));
    // The directory without the entry: no config.
    std::fs::remove_dir_all(sys.join("firmware/qemu_fw_cfg/by_name")).unwrap();
    assert_eq!(p.fetch_config(&f).unwrap(), None);

    // A failing modprobe is an error.
    std::fs::remove_dir_all(sys.join("firmware")).unwrap();
    let ep = Endpoints {
        modprobe: PathBuf::from("/bin/false"),
        ..ep
    };
    let err = provider("qemu", &ep).fetch_config(&f).unwrap_err();
    assert!(matches!(err, Error::Command(_)), "{err}");
}

#[test]
fn nvidiabluefield_bootfifo() {
    let dir = TempDir::new("bluefield");
    let sys = dir.path().join("sys");
    let (modprobe, log) = fake_modprobe(dir.path(), 0);
    let ep = Endpoints {
        sys_dir: sys.clone(),
        modprobe,
        ..endpoints("http://unused.invalid")
    };
    let p = provider("nvidiabluefield", &ep);
    let f = offline_fetcher();
    assert_eq!(p.fetch_config(&f).unwrap(), None);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "mlxbf_bootctl\n");
    let dev = sys.join("bus/platform/devices/MLNXBF04:00");
    std::fs::create_dir_all(&dev).unwrap();
    let mut fifo = b"\0\0".to_vec();
    fifo.extend_from_slice(CONFIG);
    fifo.extend_from_slice(&[0; 64]);
    std::fs::write(dev.join("bootfifo"), &fifo).unwrap();
    assert_eq!(p.fetch_config(&f).unwrap().as_deref(), Some(CONFIG));
    std::fs::write(dev.join("bootfifo"), [0u8; 16]).unwrap();
    assert_eq!(p.fetch_config(&f).unwrap(), None);
}

#[test]
fn applehv_http_over_a_stream() {
    let mock = Mock::new();
    mock.on("GET", "/", vec![ok(CONFIG)]);
    let s = std::net::TcpStream::connect(mock.server.addr).unwrap();
    let got = providers::applehv::fetch_over(s, "test").unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG));
    let req = &mock.requests()[0];
    assert_eq!(req.header("Host"), Some("d"));
    assert_eq!(req.header("Accept"), Some("application/json"));
    // Empty body: no config; other statuses: errors.
    mock.on("GET", "/", vec![ok("")]);
    let s = std::net::TcpStream::connect(mock.server.addr).unwrap();
    assert_eq!(providers::applehv::fetch_over(s, "t").unwrap(), None);
    mock.on("GET", "/", vec![Reply::Status(500, vec![])]);
    let s = std::net::TcpStream::connect(mock.server.addr).unwrap();
    let err = providers::applehv::fetch_over(s, "t").unwrap_err();
    assert!(err.to_string().contains("http status 500"), "{err}");
}

#[test]
fn applehv_without_a_vsock_peer_fails_in_bounded_time() {
    // CID 1 (this machine), an unused port: never the real host CID in tests.
    let dir = TempDir::new("applehv");
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(sys.join("devices/virtual/misc/vsock")).unwrap();
    let ep = Endpoints {
        vsock_cid: 1,
        vsock_port: 0x7eed_0002,
        sys_dir: sys,
        ..endpoints("http://unused.invalid")
    };
    let start = Instant::now();
    let err = provider("applehv", &ep)
        .fetch_config(&offline_fetcher())
        .unwrap_err();
    assert!(!err.needs_network(), "vsock works offline: {err}");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn platforms_this_build_cannot_read_say_so() {
    let ep = endpoints("http://unused.invalid");
    for id in ["vmware", "virtualbox", "hyperv", "zvm"] {
        let err = provider(id, &ep).fetch_config(&fetcher()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("platform {id} not supported by this build: ")),
            "{msg}"
        );
    }
    assert!(matches!(
        providers::get("openstack2", &ep),
        Err(Error::UnknownPlatform(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Real drives (root): ISO 9660, UDF and FAT images on loop devices.

/// An image of `files` (relative path → content) made with genisoimage, attached read-only.
fn iso_drive(dir: &Path, label: &str, udf: bool, files: &[(&str, &[u8])]) -> LoopDevice {
    let root = dir.join(format!("root-{label}-{udf}"));
    for (rel, content) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let img = dir.join(format!("{label}-{udf}.iso"));
    let mut args = vec!["-quiet", "-V", label, "-J", "-R"];
    if udf {
        args.push("-udf");
    }
    let (img_s, root_s) = (img.display().to_string(), root.display().to_string());
    args.extend(["-o", &img_s, &root_s]);
    tool("genisoimage", &args);
    LoopDevice::attach(
        &img,
        &LoopOptions {
            read_only: true,
            ..LoopOptions::default()
        },
    )
    .unwrap()
}

/// A FAT image labelled `label` holding `files`, attached read-only.
fn vfat_drive(dir: &Path, label: &str, files: &[(&str, &[u8])]) -> LoopDevice {
    let img = dir.join(format!("{label}.vfat"));
    let img_s = img.display().to_string();
    tool("mkfs.vfat", &["-C", "-n", label, &img_s, "4096"]);
    let mnt = dir.join("vfat-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    {
        let dev = LoopDevice::attach(&img, &LoopOptions::default()).unwrap();
        let dev_s = dev.path().display().to_string();
        tool("mount", &[&dev_s, &mnt.display().to_string()]);
        for (rel, content) in files {
            std::fs::write(mnt.join(rel), content).unwrap();
        }
        tool("umount", &[&mnt.display().to_string()]);
    }
    LoopDevice::attach(
        &img,
        &LoopOptions {
            read_only: true,
            ..LoopOptions::default()
        },
    )
    .unwrap()
}

/// Whether the running kernel knows filesystem type `fs`.
fn kernel_mounts(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// No mount of `dev` is left behind.
fn assert_unmounted(dev: &LoopDevice) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let name = dev.path().display().to_string();
    assert!(
        !mounts.lines().any(|l| l.split(' ').any(|f| f == name)),
        "{name} is still mounted"
    );
}

#[test]
fn openstack_config_drive_iso() {
    require_root();
    let _g = drive_lock();
    let dir = TempDir::new("os-drive");
    let dev = iso_drive(
        dir.path(),
        "config-2",
        false,
        &[("openstack/latest/user_data", CONFIG)],
    );
    // The metadata service hangs; the drive answers.
    let mock = Mock::new();
    mock.on("GET", "/openstack/latest/user_data", vec![Reply::Hang]);
    let ep = Endpoints {
        drive_wait: Duration::from_secs(20),
        ..endpoints(&mock.base())
    };
    for id in ["openstack", "brightbox"] {
        let start = Instant::now();
        let got = provider(id, &ep).fetch_config(&fetcher()).unwrap();
        assert_eq!(got.as_deref(), Some(CONFIG), "{id}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_unmounted(&dev);
        // Offline (fetch-offline) the attached drive answers: no network needed.
        let got = provider(id, &ep).fetch_config(&offline_fetcher()).unwrap();
        assert_eq!(got.as_deref(), Some(CONFIG), "{id} offline");
        assert_unmounted(&dev);
    }
    // nutanix, powervs and kubevirt read the same drive.
    for id in ["nutanix", "powervs", "kubevirt"] {
        let got = provider(id, &ep).fetch_config(&offline_fetcher()).unwrap();
        assert_eq!(got.as_deref(), Some(CONFIG), "{id}");
        assert_unmounted(&dev);
    }
    drop(dev);
    // Without the drive, nutanix's bounded wait is an error.
    let ep = endpoints(&mock.base());
    let err = provider("nutanix", &ep)
        .fetch_config(&offline_fetcher())
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("config-2"), "{err}");
    let err = provider("kubevirt", &ep)
        .fetch_config(&offline_fetcher())
        .unwrap_err();
    assert!(err.to_string().contains("cidata"), "{err}");
}

#[test]
fn config_drive_without_the_file_is_no_config() {
    require_root();
    let _g = drive_lock();
    let dir = TempDir::new("os-empty");
    let dev = iso_drive(dir.path(), "CONFIG-2", false, &[("openstack/README", b"x")]);
    let mock = Mock::new();
    mock.on("GET", "/openstack/latest/user_data", vec![Reply::Hang]);
    mock.on("GET", "/latest/user-data", vec![Reply::Hang]);
    let ep = Endpoints {
        drive_wait: Duration::from_secs(20),
        ..endpoints(&mock.base())
    };
    assert_eq!(
        provider("openstack", &ep).fetch_config(&fetcher()).unwrap(),
        None
    );
    assert_unmounted(&dev);
    assert_eq!(
        provider("openstack", &ep)
            .fetch_config(&offline_fetcher())
            .unwrap(),
        None
    );
    assert_unmounted(&dev);
}

#[test]
fn cloudstack_config_drive() {
    require_root();
    let _g = drive_lock();
    let dir = TempDir::new("cs-drive");
    let dev = iso_drive(
        dir.path(),
        "config-2",
        false,
        &[("cloudstack/userdata/user_data.txt", CONFIG)],
    );
    let ep = Endpoints {
        sys_dir: dir.path().join("no-sys"),
        drive_wait: Duration::from_secs(20),
        ..endpoints("http://unused.invalid")
    };
    let got = provider("cloudstack", &ep)
        .fetch_config(&fetcher())
        .unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG));
    assert_unmounted(&dev);
}

#[test]
fn cidata_drives() {
    require_root();
    let _g = drive_lock();
    let dir = TempDir::new("cidata");
    let ep = Endpoints {
        cidata_wait: Duration::from_secs(20),
        drive_wait: Duration::from_secs(20),
        ..endpoints("http://unused.invalid")
    };
    let f = offline_fetcher();
    if kernel_mounts("vfat") {
        // FAT, as ibmcloud makes it (only where the kernel can mount it: Ember has no
        // userspace FAT reader).
        let dev = vfat_drive(dir.path(), "cidata", &[("user-data", CONFIG)]);
        for id in ["ibmcloud", "kubevirt", "proxmoxve"] {
            let got = provider(id, &ep).fetch_config(&f).unwrap();
            assert_eq!(got.as_deref(), Some(CONFIG), "{id}");
            assert_unmounted(&dev);
        }
    }
    for id in ["ibmcloud", "kubevirt"] {
        // NoCloud's usual ISO 9660 seed.
        let dev = iso_drive(dir.path(), "cidata", false, &[("user-data", CONFIG)]);
        let got = provider(id, &ep).fetch_config(&f).unwrap();
        assert_eq!(got.as_deref(), Some(CONFIG), "{id}");
        assert_unmounted(&dev);
    }
    {
        // Proxmox's default: cloud-config user-data, the Ignition config in vendor-data.
        let dev = iso_drive(
            dir.path(),
            "cidata",
            false,
            &[
                ("user-data", b"#cloud-config\nhostname: x\n"),
                ("vendor-data", CONFIG),
            ],
        );
        let got = provider("proxmoxve", &ep).fetch_config(&f).unwrap();
        assert_eq!(got.as_deref(), Some(CONFIG));
        assert_unmounted(&dev);
        let got = provider("ibmcloud", &ep).fetch_config(&f).unwrap();
        assert_eq!(got.as_deref(), Some(&b"#cloud-config\nhostname: x\n"[..]));
    }
    {
        let dev = iso_drive(
            dir.path(),
            "cidata",
            false,
            &[("user-data", b"#cloud-config\n"), ("vendor-data", b"")],
        );
        assert_eq!(provider("proxmoxve", &ep).fetch_config(&f).unwrap(), None);
        drop(dev);
    }
    // No drive: ibmcloud and proxmoxve give up after their wait with no config.
    let ep = endpoints("http://unused.invalid");
    for id in ["ibmcloud", "proxmoxve"] {
        let start = Instant::now();
        assert_eq!(provider(id, &ep).fetch_config(&f).unwrap(), None, "{id}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn azure_ovf_disc() {
    require_root();
    let _g = drive_lock();
    let dir = TempDir::new("azure-ovf");
    let ovf = b"<?xml version=\"1.0\"?><Environment/>" as &[u8];
    let dev = iso_drive(
        dir.path(),
        "rd_rdfe_stable",
        true,
        &[("ovf-env.xml", ovf), ("CustomData.bin", CONFIG)],
    );
    // A UDF disc without ovf-env.xml is passed over.
    let other = iso_drive(dir.path(), "other", true, &[("README", b"x")]);
    let mock = Mock::new();
    mock.on("GET", AZURE_TARGET, vec![ok("")]);
    let ep = Endpoints {
        drive_wait: Duration::from_secs(20),
        ..endpoints(&mock.base())
    };
    let got = provider("azure", &ep).fetch_config(&fetcher()).unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG));
    let got = provider("azurestack", &ep)
        .fetch_config(&offline_fetcher())
        .unwrap();
    assert_eq!(got.as_deref(), Some(CONFIG), "azurestack works offline");
    assert_unmounted(&dev);
    assert_unmounted(&other);
    drop(dev);
    drop(other);

    // azurestack also takes ISO 9660; no CustomData.bin means no config.
    let dev = iso_drive(dir.path(), "ovf", false, &[("ovf-env.xml", ovf)]);
    let got = provider("azurestack", &ep)
        .fetch_config(&offline_fetcher())
        .unwrap();
    assert_eq!(got, None);
    assert_unmounted(&dev);
}
