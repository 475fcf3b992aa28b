//! The status file (`/run/ember/status.json`, moved by `EMBER_STATUS_FILE`) and the status
//! webhook (`ember.status_url=` on the kernel command line), with a real server on 127.0.0.1:
//! a document per stage on success and on failure, retries after a 500, delivery even when no
//! config could be fetched, and a webhook that never answers does not fail the boot.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{self, respond, HttpRequest, HttpServer};

/// The harness's scratch machine, with the status webhook's timeout per call.
struct Machine(harness::Machine);

impl std::ops::Deref for Machine {
    type Target = harness::Machine;
    fn deref(&self) -> &harness::Machine {
        &self.0
    }
}

struct Out {
    code: i32,
    all: String,
}

impl Machine {
    fn new(tag: &str, cmdline: &str) -> Machine {
        Machine(harness::Machine::new(&format!("status-{tag}"), cmdline))
    }

    /// `ignition` as the dracut units call it; the webhook gets `timeout` seconds per stage.
    fn ignition(&self, stage: &str, timeout: &str) -> Out {
        let mut c = self.ignition_command(stage);
        c.env("EMBER_STATUS_TIMEOUT", timeout);
        let o = self.run(c);
        Out {
            code: o.code,
            all: o.all(),
        }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.p("run/ember/status.json")).unwrap()).unwrap()
    }

    fn queue(&self) -> PathBuf {
        self.p("run/ember/webhook-queue.json")
    }
}

/// The JSON documents POSTed to `path`, in order.
fn posted(server: &HttpServer, path: &str) -> Vec<serde_json::Value> {
    server
        .requests()
        .iter()
        .filter(|r| r.path() == path)
        .map(|r| {
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("content-type"), Some("application/json"));
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

fn stages(docs: &[serde_json::Value]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{} {}", d["stage"].as_str().unwrap(), d["result"]))
        .collect()
}

#[test]
fn webhook_and_status_file_on_success_and_failure() {
    let server = HttpServer::start(|_, c| respond(c, 200, &[], b""));
    let cmdline = format!(
        "root=/dev/vda4 ember.status_url={}\n",
        server.url("/hook?key=HOOK-KEY")
    );
    let m = Machine::new("ok", &cmdline);
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "mode": 420, "contents": {"source": "data:,hi"}}]}
    }));
    for stage in [
        "fetch-offline",
        "kargs",
        "disks",
        "mount",
        "files",
        "umount",
    ] {
        let o = m.ignition(stage, "10");
        assert_eq!(o.code, 0, "{stage}: {}", o.all);
        assert!(!o.all.contains("HOOK-KEY"), "{}", o.all);
    }
    // fetch-offline never uses the network: its document waited in the queue and went out,
    // first, with kargs'.
    let docs = posted(&server, "/hook");
    assert_eq!(
        stages(&docs),
        [
            "fetch-offline \"passed\"",
            "kargs \"passed\"",
            "disks \"passed\"",
            "mount \"passed\"",
            "files \"passed\"",
            "umount \"passed\""
        ]
    );
    assert!(server
        .requests()
        .iter()
        .all(|r| r.target == "/hook?key=HOOK-KEY"));
    for d in &docs {
        assert_eq!(d["platform"], "file");
        assert!(d["ember"].is_string());
        assert!(d["startedAt"].as_u64().unwrap() > 1_600_000_000);
        assert!(d["durationMs"].is_u64());
        assert!(d["error"].is_null());
    }
    assert!(!m.queue().exists(), "the queue is emptied");

    // The status file: one entry per stage, with its operations.
    let status = m.status();
    let runs = status["stages"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    let files = &runs[4];
    assert_eq!(files["stage"], "files");
    assert_eq!(files["result"], "passed");
    assert!(files["error"].is_null());
    let ops = files["operations"].as_array().unwrap();
    assert_eq!(
        files["operationCount"].as_u64().unwrap() as usize,
        ops.len()
    );
    assert!(
        ops.iter().any(|o| o["description"]
            .as_str()
            .unwrap()
            .contains("writing file \"/etc/motd\"")
            && o["durationMs"].is_u64()
            && o["error"].is_null()),
        "{files}"
    );
    let mode = std::fs::metadata(m.p("run/ember/status.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A failing files stage: the document and the status entry carry the report.
    m.config(&serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/app.conf", "user": {"name": "app"},
                               "contents": {"source": "data:,x"}}]}
    }));
    let _ = std::fs::remove_dir_all(m.p("run"));
    for stage in ["fetch-offline", "kargs", "disks", "mount"] {
        assert_eq!(m.ignition(stage, "10").code, 0);
    }
    let o = m.ignition("files", "10");
    assert_eq!(o.code, 1, "{}", o.all);
    let docs = posted(&server, "/hook");
    let last = docs.last().unwrap();
    assert_eq!(last["stage"], "files");
    assert_eq!(last["result"], "failed");
    let e = &last["error"];
    assert_eq!(
        e["rootCause"],
        "no such user \"app\" in the target's account files"
    );
    assert_eq!(e["operation"], "checking file \"/etc/app.conf\"");
    assert_eq!(e["path"], "$.storage.files.0.user.name");
    assert_eq!(
        e["config"],
        format!(
            "the user config from the file platform ({})",
            m.p("config.ign").display()
        )
    );
    assert!(e["hint"].as_str().unwrap().contains("passwd.users"));
    assert!(e["chain"]
        .as_str()
        .unwrap()
        .starts_with("checking file \"/etc/app.conf\": "));
    let runs = m.status()["stages"].as_array().unwrap().clone();
    let failed = runs.last().unwrap();
    assert_eq!(failed["result"], "failed");
    assert_eq!(failed["error"]["rootCause"], e["rootCause"]);
    assert_eq!(failed["error"]["path"], e["path"]);
    assert!(failed["error"]["details"].is_string());
}

#[test]
fn webhook_is_retried_after_a_500() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let server = HttpServer::start(move |_: &HttpRequest, c| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            respond(c, 500, &[], b"busy")
        } else {
            respond(c, 204, &[], b"")
        }
    });
    let m = Machine::new(
        "retry",
        &format!("quiet ember.status_url={}\n", server.url("/s")),
    );
    m.config(&serde_json::json!({"ignition": {"version": "3.4.0"}}));
    let o = m.ignition("fetch", "10");
    assert_eq!(o.code, 0, "{}", o.all);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "one 500, then the retry");
    assert_eq!(reqs[0].body, reqs[1].body, "the same document both times");
    let doc: serde_json::Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(doc["stage"], "fetch");
    assert_eq!(doc["result"], "passed");
    assert!(!m.queue().exists());
    assert!(o.all.contains("retrying in"), "{}", o.all);
}

#[test]
fn webhook_is_posted_when_no_config_could_be_fetched() {
    // One server: the config is not there (404), the webhook is.
    let server = HttpServer::start(|req, c| match req.path() {
        "/hook" => respond(c, 200, &[], b""),
        _ => respond(c, 404, &[], b""),
    });
    let m = Machine::new(
        "noconfig",
        &format!(
            "root=/dev/vda4 ignition.config.url={} ember.status_url={}\n",
            server.url("/m1.ign?token=CFG-TOKEN"),
            server.url("/hook")
        ),
    );
    let o = m.ignition("fetch-offline", "10");
    assert_eq!(o.code, 0, "{}", o.all);
    assert!(m.p("run/ignition/neednet").exists());
    assert!(posted(&server, "/hook").is_empty(), "fetch-offline queues");
    assert!(m.queue().exists());
    let o = m.ignition("fetch", "10");
    assert_eq!(o.code, 1, "{}", o.all);
    let docs = posted(&server, "/hook");
    assert_eq!(
        stages(&docs),
        ["fetch-offline \"neednet\"", "fetch \"failed\""]
    );
    let e = &docs[1]["error"];
    assert_eq!(
        e["rootCause"],
        format!("the config at {} does not exist", server.url("/m1.ign"))
    );
    assert_eq!(
        e["operation"],
        "fetching the config named on the kernel command line"
    );
    let body = String::from_utf8_lossy(&server.requests().last().unwrap().body).into_owned();
    assert!(!body.contains("CFG-TOKEN"), "{body}");
    assert_eq!(m.status()["stages"][1]["result"], "failed");
}

#[test]
fn a_webhook_that_never_answers_does_not_fail_the_stage() {
    let server = HttpServer::start(|_, c| respond(c, 503, &[], b""));
    let m = Machine::new(
        "down",
        &format!("quiet ember.status_url={}\n", server.url("/s")),
    );
    m.config(&serde_json::json!({"ignition": {"version": "3.4.0"}}));
    let o = m.ignition("fetch", "1");
    assert_eq!(o.code, 0, "{}", o.all);
    assert!(o.all.contains("WARNING  : status webhook"), "{}", o.all);
    assert!(server.requests().len() >= 2, "retried");
    // The document stays queued for the next stage.
    let q: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(m.queue()).unwrap()).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["stage"], "fetch");
    // A value that is not an http(s) URL is ignored with a warning.
    std::fs::write(m.p("cmdline"), "ember.status_url=file:///etc/passwd\n").unwrap();
    let o = m.ignition("kargs", "1");
    assert_eq!(o.code, 0, "{}", o.all);
    assert!(
        o.all
            .contains("ignoring the status webhook: ember.status_url must be an http or https URL"),
        "{}",
        o.all
    );
}

#[test]
fn a_webhook_answering_with_a_large_body_is_delivered_once() {
    // The answer's body does not matter: a 200 with 100 KiB is a delivery, not a failure that
    // leaves the document queued for every later stage to send again.
    let big = vec![b'x'; 100 << 10];
    let server = HttpServer::start(move |_, c| respond(c, 200, &[], &big));
    let m = Machine::new(
        "bigbody",
        &format!("quiet ember.status_url={}\n", server.url("/s")),
    );
    m.config(&serde_json::json!({"ignition": {"version": "3.4.0"}}));
    for stage in ["fetch", "kargs"] {
        let o = m.ignition(stage, "10");
        assert_eq!(o.code, 0, "{}", o.all);
        assert!(!o.all.contains("WARNING  : status webhook"), "{}", o.all);
        assert!(!m.queue().exists(), "nothing stays queued after {stage}");
    }
    assert_eq!(
        stages(&posted(&server, "/s")),
        ["fetch \"passed\"", "kargs \"passed\""]
    );
}
