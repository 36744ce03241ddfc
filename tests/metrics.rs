//! The Prometheus endpoint (`-o metrics_listen=IP:PORT`): `GET /metrics`
//! in the text exposition format with prometheus/memcached_exporter's
//! metric names and labels, checked with `promtool check metrics` and the
//! Python `prometheus_client` parser (Debian's `prometheus` and
//! `python3-prometheus-client`; skipped loudly without them, failed under
//! CI), compared with what the exporter's mapping makes of memcached
//! 1.6.18's own `stats` after the same requests; bad requests get a 400
//! and a closed connection, and a stalled client holds only the endpoint.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tools::require;
use common::{memcached_or_skip, Conn, Server};
use ferrocache::protocol::metrics::{render, Snapshot};

const ENDPOINT: &[&str] = &["-o", "metrics_listen=127.0.0.1:0"];

/// What promtool's lint says of names memcached_exporter gives counters
/// without a `_total` suffix (kept: dashboards query these names). Any
/// other finding fails the test.
const EXPORTER_LINTS: &[&str] = &[
    "memcached_slab_items_evicted_time_seconds",
    "memcached_slab_items_moves_to_cold",
    "memcached_slab_items_moves_to_warm",
    "memcached_slab_items_moves_within_lru",
    "memcached_slab_mem_requested_bytes",
    "memcached_uptime_seconds",
];

fn endpoint(server: &Server) -> SocketAddr {
    server.metrics_addr().expect("the endpoint is on")
}

/// Sends `request`, reads until the server closes; returns the reply.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send the request");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .expect("the endpoint closes after its reply");
    String::from_utf8(reply).expect("UTF-8 reply")
}

/// `GET /metrics`: the body of a 200 reply.
fn scrape(addr: SocketAddr) -> String {
    let reply = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    body.to_string()
}

/// One sample's value, by its name and labels as written.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .expect("a number")
}

fn workload(c: &mut Conn) {
    c.roundtrip("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip(
        "set b 0 0 3000\r\n".to_string() + &"y".repeat(3000) + "\r\n",
        "STORED\r\n",
    );
    c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("get nope\r\n", "END\r\n");
    c.roundtrip("delete nope\r\n", "NOT_FOUND\r\n");
    c.roundtrip(
        "incr a 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
}

#[test]
fn off_by_default() {
    assert!(Server::ferrocache(&[]).metrics_addr().is_none());
}

/// The samples follow the requests made.
#[test]
fn samples_count_what_happened() {
    let server = Server::ferrocache(ENDPOINT);
    let mut c = server.connect();
    workload(&mut c);
    let body = scrape(endpoint(&server));
    let cmd = |c: &str, s: &str| {
        sample(
            &body,
            &format!("memcached_commands_total{{command=\"{c}\",status=\"{s}\"}}"),
        )
    };
    assert_eq!(cmd("get", "hit"), 1.0);
    assert_eq!(cmd("get", "miss"), 1.0);
    assert_eq!(cmd("delete", "miss"), 1.0);
    assert_eq!(cmd("set", "hit"), 2.0);
    assert_eq!(sample(&body, "memcached_current_items"), 2.0);
    assert_eq!(sample(&body, "memcached_up"), 1.0);
    assert_eq!(sample(&body, "memcached_version{version=\"1.6.18\"}"), 1.0);
    assert_eq!(sample(&body, "memcached_current_connections"), 1.0);
    assert_eq!(
        sample(
            &body,
            "memcached_slab_commands_total{slab=\"1\",command=\"get\",status=\"hit\"}"
        ),
        1.0
    );
    c.roundtrip(
        "get a a\r\n",
        "VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    let body = scrape(endpoint(&server));
    assert_eq!(
        sample(
            &body,
            "memcached_commands_total{command=\"get\",status=\"hit\"}"
        ),
        3.0
    );
    // service times: one request in 64 is timed, so 200 more gets give at
    // least three timed ones
    for _ in 0..200 {
        c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    }
    let body = scrape(endpoint(&server));
    let h = "ferrocache_command_duration_seconds";
    let count = sample(&body, &format!("{h}_count{{family=\"get\"}}"));
    assert!(count >= 3.0, "{count}");
    assert_eq!(
        sample(&body, &format!("{h}_bucket{{family=\"get\",le=\"+Inf\"}}")),
        count
    );
    assert!(sample(&body, &format!("{h}_sum{{family=\"get\"}}")) > 0.0);
    assert_eq!(
        sample(&body, &format!("{h}_count{{family=\"arithmetic\"}}")),
        0.0
    );
}

/// Every series memcached_exporter makes of memcached's `stats`, `stats
/// settings`, `stats items` and `stats slabs` (its mapping, applied to
/// memcached 1.6.18's own replies after the same requests) is in
/// ferrocache's exposition, with the same labels.
#[test]
fn every_series_of_memcached_is_there() {
    let Some(memcached) = memcached_or_skip(&[]) else {
        return;
    };
    let mut m = memcached.connect();
    workload(&mut m);
    let want = series(&render(&Snapshot {
        stats: m.stats(""),
        settings: m.stats("settings"),
        items: m.stats("items"),
        slabs: m.stats("slabs"),
        service: Vec::new(),
        lock_contention: Vec::new(),
        eviction: Default::default(),
        top_keys: Vec::new(),
        keys_shown: false,
    }));
    let server = Server::ferrocache(ENDPOINT);
    workload(&mut server.connect());
    let got = series(&scrape(endpoint(&server)));
    let missing: Vec<&String> = want.difference(&got).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert!(want.len() > 80, "{want:?}");
}

/// Each sample's name and labels, without its value.
fn series(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').expect("name value").0.to_string())
        .collect()
}

/// `promtool check metrics`: nothing but the exporter's own naming lints.
#[test]
fn promtool_accepts_the_exposition() {
    if !require(
        "promtool",
        Path::new("/usr/bin/promtool").exists(),
        "prometheus",
    ) {
        return;
    }
    let server = Server::ferrocache(ENDPOINT);
    workload(&mut server.connect());
    let body = scrape(endpoint(&server));
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // exit 3: lint findings only (a parse error is 1)
    assert!(matches!(out.status.code(), Some(0) | Some(3)), "{said}");
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        let known = EXPORTER_LINTS
            .iter()
            .any(|m| line == format!("{m} counter metrics should have \"_total\" suffix"));
        assert!(known, "promtool: {line}\n{said}");
    }
    // and the check can fail: a sample of a family declared twice
    let mut bad = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broken = body.clone() + "# TYPE memcached_up gauge\nmemcached_up 1\n";
    bad.stdin
        .take()
        .unwrap()
        .write_all(broken.as_bytes())
        .unwrap();
    assert_eq!(bad.wait().unwrap().code(), Some(1));
}

/// Python's `prometheus_client` parser reads every family.
#[test]
fn prometheus_client_parses_the_exposition() {
    let present = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !require("prometheus_client", present, "python3-prometheus-client") {
        return;
    }
    let server = Server::ferrocache(ENDPOINT);
    workload(&mut server.connect());
    let body = scrape(endpoint(&server));
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as parse\n\
        fams = list(parse(sys.stdin.read()))\n\
        print(len(fams), sum(len(f.samples) for f in fams))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = String::from_utf8_lossy(&out.stdout).to_string();
    let families = body.matches("# TYPE ").count();
    let samples = series(&body).len();
    assert_eq!(counts.trim(), format!("{families} {samples}"));
}

/// Bad requests: a 400 (or 404, 405) and a closed connection.
#[test]
fn bad_requests_are_refused_and_closed() {
    let server = Server::ferrocache(ENDPOINT);
    let addr = endpoint(&server);
    let status = |request: &[u8]| {
        let reply = http(addr, request);
        reply.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(status(b"hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    assert_eq!(
        status(b"get /metrics HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(status(&[b'x'; 5000]), "HTTP/1.1 400 Bad Request");
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        status(b"GET /other HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    // a client that closes without a request gets nothing, and the next
    // is served
    drop(TcpStream::connect(addr).unwrap());
    scrape(addr);
}

/// A client that connects and sends nothing holds the endpoint only until
/// its time runs out: the cache is served meanwhile, and the next scrape
/// is answered after it.
#[test]
fn a_stalled_client_holds_only_the_endpoint() {
    let server = Server::ferrocache(ENDPOINT);
    let addr = endpoint(&server);
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /metr").unwrap();
    let mut c = server.connect();
    workload(&mut c);
    c.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
    // closed by the endpoint once its time is up (no reply: no request)
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let end = stalled.read_to_end(&mut rest);
    assert!(
        matches!(end, Ok(0))
            || matches!(end, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?} {rest:?}"
    );
    let body = scrape(addr);
    assert!(body.contains("memcached_up 1\n"));
}

/// The eviction policy's own counters move when the cache is full: oldest
/// segments recycled, items read since the CLOCK last passed kept.
#[test]
fn eviction_policy_counters_move() {
    let server = Server::ferrocache(&["-m", "8", "-o", "metrics_listen=127.0.0.1:0"]);
    let addr = endpoint(&server);
    let recycled = |body: &str| {
        ["second_chance", "released", "compacted"]
            .iter()
            .map(|how| {
                sample(
                    body,
                    &format!("ferrocache_segments_recycled_total{{how=\"{how}\"}}"),
                )
            })
            .sum::<f64>()
    };
    let before = scrape(addr);
    assert_eq!(recycled(&before), 0.0);
    let mut c = server.connect();
    let value = "v".repeat(1000);
    for i in 0..20_000 {
        c.send(format!("set key:{i} 0 0 1000 noreply\r\n{value}\r\n"));
        if i % 100 == 0 {
            // keep one key in use
            c.roundtrip(
                "get key:0\r\n",
                format!("VALUE key:0 0 1000\r\n{value}\r\nEND\r\n"),
            );
        }
    }
    let after = scrape(addr);
    assert!(recycled(&after) > 0.0, "{after}");
    assert!(sample(&after, "memcached_items_evicted_total") > 0.0);
    assert!(sample(&after, "ferrocache_items_kept_by_clock_total") > 0.0);
}

/// The most read keys: shown with `-o metrics_keys=shown`, as a hash by
/// default, not at all with `off`.
#[test]
fn most_read_keys_are_listed_as_asked() {
    let top = |flags: &[&str]| {
        let mut args = ENDPOINT.to_vec();
        args.extend_from_slice(flags);
        let server = Server::ferrocache(&args);
        let mut c = server.connect();
        c.roundtrip("set hot 0 0 1\r\nx\r\n", "STORED\r\n");
        for _ in 0..300 {
            c.roundtrip("get hot\r\n", "VALUE hot 0 1\r\nx\r\nEND\r\n");
        }
        scrape(endpoint(&server))
            .lines()
            .filter(|l| l.starts_with("ferrocache_top_key_reads{"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let shown = top(&["-o", "metrics_keys=shown"]);
    assert_eq!(shown.len(), 1, "{shown:?}");
    let reads: f64 = shown[0]
        .strip_prefix("ferrocache_top_key_reads{key=\"hot\"} ")
        .expect("the key shown")
        .parse()
        .unwrap();
    // one request in 64 is sampled: 300 gets (and a set) give 4 or 5
    assert!((4.0..=5.0).contains(&reads), "{reads}");
    let hashed = top(&[]);
    assert_eq!(hashed.len(), 1, "{hashed:?}");
    assert!(
        hashed[0].starts_with("ferrocache_top_key_reads{key=\"fnv1a:")
            && !hashed[0].contains("hot"),
        "{hashed:?}"
    );
    assert!(top(&["-o", "metrics_keys=off"]).is_empty());
}
