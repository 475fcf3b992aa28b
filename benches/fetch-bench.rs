//! Helper for benches/fetch-*.sh (not a timed test): a static-file HTTP server with an optional
//! per-request delay, a plain SHA-512 baseline, and the fetcher's client side.
//!
//! ```text
//! fetch-bench serve DIR [DELAY_MS]            prints the port, serves DIR/<name> until killed
//! fetch-bench sha512 BYTES                    hashes BYTES of memory on one core
//! fetch-bench fetch URL DEST SHA512HEX        fetch_to_file_atomic with verification
//! fetch-bench fetch-null URL SHA512HEX        fetch_to into io::sink() (no disk writes)
//! fetch-bench many URL_PREFIX MANIFEST DIR N  fetch_many of every "<sha512>  <name>" line
//! ```
//! Results are printed as `key=value` lines for the scripts.

use ember::fetch::{Fetcher, Hash, Options, Resource};
use sha2::{Digest, Sha512};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["serve", dir, rest @ ..] => {
            let delay = rest.first().map_or(0, |d| d.parse().expect("delay in ms"));
            serve(PathBuf::from(dir), Duration::from_millis(delay));
        }
        ["sha512", bytes] => sha512(bytes.parse().expect("byte count")),
        ["fetch", url, dest, hash] => fetch(url, Some(Path::new(dest)), hash),
        ["fetch-null", url, hash] => fetch(url, None, hash),
        ["many", prefix, manifest, dir, n] => many(
            prefix,
            manifest,
            Path::new(dir),
            n.parse().expect("parallelism"),
        ),
        // `cargo bench` runs bench targets with `--bench`: nothing to do then.
        ["--bench", ..] | [] => eprintln!("fetch-bench: driven by benches/fetch-*.sh"),
        _ => {
            eprintln!("usage: see benches/fetch-bench.rs");
            std::process::exit(2);
        }
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// User and system CPU seconds of this process so far (all threads).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let tick = 100.0; // USER_HZ on Linux
    (
        f.get(11).copied().unwrap_or(0.0) / tick,
        f.get(12).copied().unwrap_or(0.0) / tick,
    )
}

fn print_cpu(key: &str) {
    let (user, sys) = cpu_seconds();
    println!("{key}_cpu_user_s={user:.2}");
    println!("{key}_cpu_sys_s={sys:.2}");
}

fn serve(dir: PathBuf, delay: Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().expect("stdout");
    for stream in listener.incoming().flatten() {
        let dir = dir.clone();
        std::thread::spawn(move || handle(stream, &dir, delay));
    }
}

fn handle(stream: TcpStream, dir: &Path, delay: Duration) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    std::thread::sleep(delay);
    let mut stream = stream;
    let name = target.trim_start_matches('/');
    let Ok(mut file) = std::fs::File::open(dir.join(name)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_ok() {
        // std uses sendfile(2) for File -> TcpStream: the server costs little CPU.
        let _ = std::io::copy(&mut file, &mut stream);
    }
}

fn sha512(total: u64) {
    let buf: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = Instant::now();
    let mut h = Sha512::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    std::hint::black_box(h.finalize());
    let secs = start.elapsed().as_secs_f64();
    println!("sha512_seconds={secs:.3}");
    println!("sha512_mib_per_s={:.1}", total as f64 / secs / 1048576.0);
    print_cpu("sha512");
}

fn opts() -> Options {
    Options {
        system_ca_files: Some(Vec::new()),
        ..Options::default()
    }
}

fn fetch(url: &str, dest: Option<&Path>, hash: &str) {
    let f = Fetcher::new(opts()).expect("fetcher");
    let res = Resource {
        source: url.to_string(),
        hash: Some(Hash::parse(&format!("sha512-{hash}")).expect("sha512 hex")),
        ..Resource::default()
    };
    let start = Instant::now();
    let outcome = match dest {
        Some(dest) => f.fetch_to_file_atomic(&res, dest, 0o644),
        None => f.fetch_to(&res, &mut std::io::sink()),
    }
    .expect("fetch");
    let secs = start.elapsed().as_secs_f64();
    let key = if dest.is_some() {
        "fetch"
    } else {
        "fetch_null"
    };
    println!("{key}_seconds={secs:.3}");
    println!(
        "{key}_mib_per_s={:.1}",
        outcome.size as f64 / secs / 1048576.0
    );
    println!("{key}_peak_rss_kib={}", peak_rss_kib());
    print_cpu(key);
}

fn many(prefix: &str, manifest: &str, dir: &Path, parallelism: usize) {
    let mut jobs = Vec::new();
    let mut text = String::new();
    std::fs::File::open(manifest)
        .and_then(|mut f| f.read_to_string(&mut text))
        .expect("manifest");
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let res = Resource {
            source: format!("{prefix}/{name}"),
            hash: Some(Hash::parse(&format!("sha512-{hash}")).expect("sha512 hex")),
            ..Resource::default()
        };
        jobs.push((res, dir.join(name)));
    }
    let count = jobs.len();
    let f = Fetcher::new(Options {
        parallelism,
        ..opts()
    })
    .expect("fetcher");
    let start = Instant::now();
    let results = f.fetch_many(jobs, |f, (res, dest)| {
        f.fetch_to_file_atomic(&res, &dest, 0o644)
    });
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = results.into_iter().map(|r| r.expect("fetch").size).sum();
    println!("many_files={count}");
    println!("many_parallelism={parallelism}");
    println!("many_seconds={secs:.3}");
    println!("many_mib_per_s={:.1}", bytes as f64 / secs / 1048576.0);
    println!("many_peak_rss_kib={}", peak_rss_kib());
}
