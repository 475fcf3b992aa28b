//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Path of the `ember` binary built for this test run.
pub fn ember_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ember"))
}

/// Fails the test with a clear message unless it runs as root (loop devices, mounts, ioctls).
pub fn require_root() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (loop devices, mounts); run it as root"
    );
}

/// Runs a tool, asserts it succeeded, and returns its standard output.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Disks seen from outside: sgdisk, blkid and the kernel's partitions.

/// `number -> (start, end, name)` from `sgdisk -p`.
pub fn sgdisk_table(disk: &Path) -> BTreeMap<u32, (u64, u64, String)> {
    let out = tool("sgdisk", &["-p", &disk.to_string_lossy()]);
    let mut m = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.starts_with("Number") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        // Number Start End Size Unit Code Name...
        let name = f.get(6..).map(|n| n.join(" ")).unwrap_or_default();
        m.insert(
            f[0].parse().unwrap(),
            (f[1].parse().unwrap(), f[2].parse().unwrap(), name),
        );
    }
    m
}

/// Asserts that `sgdisk -v` finds no problem in the table of `disk`.
pub fn sgdisk_verify_ok(disk: &Path) {
    let out = tool("sgdisk", &["-v", &disk.to_string_lossy()]);
    assert!(out.contains("No problems found"), "sgdisk -v: {out}");
}

/// `blkid -p` of `dev` as a map (empty when nothing is found).
pub fn blkid(dev: &(impl AsRef<Path> + ?Sized)) -> BTreeMap<String, String> {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(dev.as_ref())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\ ", " ")))
        .collect()
}

/// The partitions the kernel has for `disk`: `(number, start, size)` in sectors.
pub fn kernel_partitions(disk: &Path) -> Vec<(u32, u64, u64)> {
    ember::system::blockdev::SysBlock::from_path(disk)
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.number, p.start, p.size))
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// The lowercase hex SHA-512 of `data`.
pub fn sha512_hex(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha512::digest(data))
}

/// An Ignition verification hash of `data`: `sha512-<hex>`.
pub fn sha512_hash(data: &[u8]) -> String {
    format!("sha512-{}", sha512_hex(data))
}

/// A fresh empty directory under the temp dir, removed (best effort) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ember-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 test server on 127.0.0.1: one request per connection, one thread per
// connection, every request recorded. The handler writes whatever response it wants (or none).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A request as the test server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (origin form `/x?y` or absolute form `http://h/x`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// First header with this name, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// A connection the handler writes its response to.
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Reads one request head (and a `Content-Length` body). `Ok(None)` on a closed connection.
pub fn read_request(r: &mut dyn Read) -> io::Result<Option<HttpRequest>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too large"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(HttpRequest {
        method,
        target,
        headers,
        body,
    }))
}

/// Writes a complete response with a `Content-Length`.
pub fn respond(w: &mut dyn Write, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(body);
    let _ = w.flush();
}

type Handler = dyn Fn(&HttpRequest, &mut dyn Conn) + Send + Sync;
type Wrap = dyn Fn(TcpStream) -> Option<Box<dyn Conn>> + Send + Sync;

/// The server; it stops accepting when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    connections: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// A plain HTTP server.
    pub fn start(handler: impl Fn(&HttpRequest, &mut dyn Conn) + Send + Sync + 'static) -> Self {
        Self::start_with(|s| Some(Box::new(s)), handler)
    }

    /// A server whose connections first go through `wrap` (a TLS handshake, say; `None` drops
    /// the connection).
    pub fn start_with(
        wrap: impl Fn(TcpStream) -> Option<Box<dyn Conn>> + Send + Sync + 'static,
        handler: impl Fn(&HttpRequest, &mut dyn Conn) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a test server");
        let addr = listener.local_addr().expect("test server address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let wrap: Arc<Wrap> = Arc::new(wrap);
        {
            let (requests, connections, stop) =
                (requests.clone(), connections.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    *connections.lock().unwrap() += 1;
                    let (handler, wrap, requests) =
                        (handler.clone(), wrap.clone(), requests.clone());
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                        let Some(mut conn) = wrap(stream) else { return };
                        if let Ok(Some(req)) = read_request(&mut conn) {
                            requests.lock().unwrap().push(req.clone());
                            handler(&req, &mut *conn);
                        }
                    });
                }
            });
        }
        HttpServer {
            addr,
            requests,
            connections,
            stop,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections accepted so far (including those that never sent a request).
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------------------------
// A scratch machine: `ignition` and `ember` run as processes against a directory standing in
// for the system.

/// What a process printed and how it exited (`code` -1: ended by a signal).
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Standard output then standard error.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A target root with minimal account files (`root/`), the three system config dirs
/// (`sys/run`, `sys/etc`, `sys/usr`), a kernel command line (`cmdline`), the config
/// (`config.ign`), and `bin/ignition`, `bin/ignition-apply`, `bin/ignition-rmcfg` linked to
/// Ember.  The cache, state, neednet and status files go below `run/`.
pub struct Machine {
    dir: PathBuf,
    _temp: Option<TempDir>,
}

impl Machine {
    /// A machine in a fresh temporary directory.
    pub fn new(tag: &str, cmdline: &str) -> Machine {
        let temp = TempDir::new(tag);
        let mut m = Machine::in_dir(temp.path().to_owned(), cmdline);
        m._temp = Some(temp);
        m
    }

    /// A machine in `dir` (created; not removed on drop).
    pub fn in_dir(dir: PathBuf, cmdline: &str) -> Machine {
        for d in [
            "root/etc",
            "root/home",
            "sys/run",
            "sys/etc",
            "sys/usr",
            "bin",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (f, t) in [
            ("root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("root/etc/group", "root:x:0:\n"),
            ("root/etc/shadow", "root:*:19000:0:99999:7:::\n"),
            ("root/etc/gshadow", "root:*::\n"),
            ("cmdline", cmdline),
        ] {
            std::fs::write(dir.join(f), t).unwrap();
        }
        for name in ["ignition", "ignition-apply", "ignition-rmcfg"] {
            std::os::unix::fs::symlink(ember_bin(), dir.join("bin").join(name)).unwrap();
        }
        Machine { dir, _temp: None }
    }

    /// The machine's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path in the machine.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes `text` to `rel`, making its directories.
    pub fn put(&self, rel: &str, text: &str) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The config, as JSON.
    pub fn config(&self, v: &serde_json::Value) {
        self.config_text(&v.to_string());
    }

    /// The config, as text.
    pub fn config_text(&self, text: &str) {
        self.put("config.ign", text);
    }

    /// Replaces the kernel command line.
    pub fn cmdline(&self, text: &str) {
        self.put("cmdline", text);
    }

    /// `program` in the machine's directory, pointed at its files: config, kernel command
    /// line, system config dirs, status file; no kargs helper, no `EMBER_LOG`.
    pub fn command(&self, program: &Path) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.current_dir(&self.dir)
            .env("IGNITION_CONFIG_FILE", self.p("config.ign"))
            .env("IGNITION_KERNEL_CMDLINE_PATH", self.p("cmdline"))
            .env("IGNITION_SYSTEM_RUNTIME_CONFIG_DIR", self.p("sys/run"))
            .env("IGNITION_SYSTEM_LOCAL_CONFIG_DIR", self.p("sys/etc"))
            .env("IGNITION_SYSTEM_CONFIG_DIR", self.p("sys/usr"))
            .env("EMBER_STATUS_FILE", self.p("run/ember/status.json"))
            .env("EMBER_KARGS_HELPER", self.p("no-kargs-helper"))
            .env_remove("IGNITION_WRITE_AUTHORIZED_KEYS_FRAGMENT")
            .env_remove("EMBER_LOG");
        c
    }

    /// The arguments of every `ignition --stage=…` call: root, platform `file`, and the
    /// cache, state and neednet files.
    pub fn stage_args(&self) -> Vec<String> {
        vec![
            format!("--root={}", self.p("root").display()),
            "--platform=file".into(),
            format!("--config-cache={}", self.p("run/ignition.json").display()),
            format!("--state-file={}", self.p("run/ignition/state").display()),
            format!("--neednet={}", self.p("run/ignition/neednet").display()),
        ]
    }

    /// `ignition --stage=<stage>` as the dracut units call it, logging to standard output.
    pub fn ignition_command(&self, stage: &str) -> std::process::Command {
        let mut c = self.command(&self.p("bin/ignition"));
        c.args(self.stage_args())
            .arg(format!("--stage={stage}"))
            .arg("--log-to-stdout");
        c
    }

    /// Runs `c` (standard input empty), failing the test if it takes over two minutes.
    pub fn run(&self, c: std::process::Command) -> Out {
        self.run_input(c, None)
    }

    /// Runs `c` fed `stdin`, failing the test if it takes over two minutes.
    pub fn run_input(&self, c: std::process::Command, stdin: Option<Vec<u8>>) -> Out {
        let r = crate::lint_support::run_cmd(c, stdin, std::time::Duration::from_secs(120));
        Out {
            code: r.code.unwrap_or(-1),
            stdout: r.stdout,
            stderr: r.stderr,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The system log, captured

/// Records received: (which socket, `syslog` or `journal`; the datagram).
pub type LogRecords = Vec<(String, Vec<u8>)>;

/// Sockets standing in for `/dev/log` and journald's, collecting what arrives until
/// [`LogSockets::finish`].
pub struct LogSockets {
    dev_log: PathBuf,
    journal: PathBuf,
    got: Arc<Mutex<LogRecords>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LogSockets {
    /// The sockets `log.sock` and `journal.sock` in `dir`.
    pub fn new(dir: &Path) -> LogSockets {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (dev_log, journal) = (dir.join("log.sock"), dir.join("journal.sock"));
        for (name, path) in [("syslog", &dev_log), ("journal", &journal)] {
            let sock = std::os::unix::net::UnixDatagram::bind(path).unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
                .unwrap();
            let (got, stop) = (got.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 17];
                loop {
                    match sock.recv(&mut buf) {
                        Ok(n) => got
                            .lock()
                            .unwrap()
                            .push((name.to_string(), buf[..n].to_vec())),
                        Err(_) if stop.load(Ordering::SeqCst) => break,
                        Err(_) => {}
                    }
                }
            }));
        }
        LogSockets {
            dev_log,
            journal,
            got,
            stop,
            threads,
        }
    }

    /// `unshare` (a command the caller made, with its environment) running `program` in a
    /// mount namespace whose `/dev/log` and journal socket are ours; the rest of /dev stays
    /// reachable through links to it bound on `olddev`.
    pub fn wrap(
        &self,
        mut unshare: std::process::Command,
        olddev: &Path,
        program: &Path,
    ) -> std::process::Command {
        std::fs::create_dir_all(olddev).unwrap();
        let script = format!(
            "mount --bind /dev '{old}' && mount -t tmpfs none /dev && \
             for f in '{old}'/*; do ln -s \"$f\" /dev/; done && ln -s '{log}' /dev/log && \
             mount -t tmpfs none /run && mkdir -p /run/systemd/journal && \
             ln -s '{journal}' /run/systemd/journal/socket && exec \"$0\" \"$@\"",
            old = olddev.display(),
            log = self.dev_log.display(),
            journal = self.journal.display()
        );
        unshare
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(program);
        unshare
    }

    /// Stops listening and returns every record, in the order received.
    pub fn finish(mut self) -> LogRecords {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let got = self.got.lock().unwrap().clone();
        got
    }
}
