//! Scale-out: more than one ferrocache, the way operators already run
//! memcached. ferrocache has no clustering of its own; these tests put three
//! nodes behind the engines docs/scale-out.md ("Running more than one
//! ferrocache") recommends, using the configuration snippets that page shows:
//!
//! - twemproxy (Debian's `nutcracker`): a ketama pool with auto-eject;
//!   tests/scaleout/nutcracker.yml.
//! - libmemcached's tools (`memccp`/`memccat`/`memcrm`) hashing keys over a
//!   `--servers` list; tests/scaleout/libmemcached-tools.sh, run as it
//!   stands.
//! - pymemcache's HashClient, including a node that dies;
//!   tests/scaleout/pymemcache_hashclient.py (driven by
//!   tests/scaleout/hashclient_failover.py).
//!
//! Each check runs against three ferrocache nodes (the built binary, spawned,
//! so a node can be killed for real) and, as the reference that keeps the
//! expectations honest, against three Debian memcached nodes. A missing tool
//! prints a loud SKIPPED and passes, unless `CI` is set: then it fails.
//!
//! memcached's own proxy and mcrouter cannot run here (Debian's memcached
//! 1.6.18 is built without the proxy, mcrouter is not packaged): the
//! requests they send a backend, their health check first, run against one
//! ferrocache and one memcached instead (`proxy_health_check`,
//! `proxy_and_mcrouter_requests`).
//!
//! Run: `cargo test --release --test scaleout`.

#[macro_use]
mod common;

use common::tools::{
    free_port, have_pymemcache, on_path, payload, require, run, Process, Run, Target, TempDir,
    PYTHON,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const NUTCRACKER: &str = "/usr/sbin/nutcracker";
const SNIPPETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scaleout");
/// The page that shows the snippets these tests run.
const SCALE_OUT_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scale-out.md");
/// Its first line, so that a page renamed or replaced fails here.
const SCALE_OUT_TITLE: &str = "# Running more than one ferrocache";

/// Placeholder addresses in the snippets, replaced by the test's ports.
const NODE_PLACEHOLDERS: [&str; 3] = ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"];
const PROXY_PLACEHOLDER: &str = "127.0.0.1:22122";

const STARTUP: Duration = Duration::from_secs(10);
/// How long a proxy or client may take to notice a dead node. Generous: the
/// machine may be loaded; the wait ends as soon as it has.
const NOTICE_DEATH: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Tools present or not
// ---------------------------------------------------------------------------

fn have_nutcracker() -> bool {
    require("nutcracker", Path::new(NUTCRACKER).exists(), "nutcracker")
}

fn have_libmemcached_tools() -> bool {
    ["memccp", "memccat", "memcrm", "memcstat"]
        .iter()
        .all(|t| require(t, on_path(t), "libmemcached-tools"))
}

// ---------------------------------------------------------------------------
// Snippets: the same text as in docs/scale-out.md
// ---------------------------------------------------------------------------

fn snippet(name: &str) -> String {
    let path = Path::new(SNIPPETS).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `text` with each `(from, to)` replaced; each `from` must occur exactly
/// once, so a snippet edited out of shape fails here rather than testing
/// something else.
fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert_eq!(
            out.matches(from).count(),
            1,
            "placeholder {from:?} must occur exactly once in:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}

/// The page this file documents (docs/scale-out.md), whole; it must start
/// with its title.
fn scale_out_doc() -> String {
    let doc = std::fs::read_to_string(SCALE_OUT_DOC)
        .unwrap_or_else(|e| panic!("read {SCALE_OUT_DOC}: {e}"));
    assert!(
        doc.starts_with(&format!("{SCALE_OUT_TITLE}\n")),
        "{SCALE_OUT_DOC} must start with the line {SCALE_OUT_TITLE:?}"
    );
    doc
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// One cache node: a spawned ferrocache or memcached process (the tests'
/// one launcher, `common::tools::Process`), killed on drop.
struct Node {
    process: Process,
}

impl Node {
    /// Spawns `target -u root -l 127.0.0.1 -p PORT -U 0 -t 2 -m 64` and
    /// waits until it answers `version` (retried on a new port if it exits
    /// first because another process took the port).
    fn start(target: Target) -> Node {
        Node {
            process: Process::start(target, &["-t", "2", "-m", "64"]),
        }
    }

    fn three(target: Target) -> [Node; 3] {
        [
            Node::start(target),
            Node::start(target),
            Node::start(target),
        ]
    }

    fn port(&self) -> u16 {
        self.process.port()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL, and wait until it is gone: no goodbye to anyone.
    fn kill(&mut self) {
        let child = self.process.child();
        child.kill().expect("kill node");
        child.wait().expect("wait for killed node");
        assert!(
            TcpStream::connect(("127.0.0.1", self.port())).is_err(),
            "port {} still accepts connections after its node was killed",
            self.port()
        );
    }
}

// ---------------------------------------------------------------------------
// A minimal text-protocol client, for a node or the proxy
// ---------------------------------------------------------------------------

struct Raw {
    what: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16, what: &str) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect {what} on port {port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone stream");
        Raw {
            what: format!("{what} (port {port})"),
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn node(node: &Node) -> Raw {
        Raw::connect(node.port(), "node")
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.what));
    }

    /// One reply line with its CRLF, or "" at EOF.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{}: read reply: {e}", self.what));
        line
    }

    /// Sends one command and returns its one-line reply.
    fn command(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        self.line()
    }

    fn set(&mut self, key: &str, value: &[u8]) -> String {
        let mut req = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        self.send(&req);
        self.line()
    }

    fn set_ok(&mut self, key: &str, value: &[u8]) {
        let reply = self.set(key, value);
        assert_eq!(reply, "STORED\r\n", "{}: set {key}", self.what);
    }

    /// `get k1 k2 ...`: the hits, by key. Err(first line) when the reply is
    /// not a well-formed VALUE...END sequence (a proxy's SERVER_ERROR).
    fn try_get_multi(&mut self, keys: &[String]) -> Result<BTreeMap<String, Vec<u8>>, String> {
        self.send(format!("get {}\r\n", keys.join(" ")).as_bytes());
        let mut hits = BTreeMap::new();
        loop {
            let header = self.line();
            if header == "END\r\n" {
                return Ok(hits);
            }
            let parts: Vec<&str> = header.split_whitespace().collect();
            if parts.len() != 4 || parts[0] != "VALUE" || !header.ends_with("\r\n") {
                return Err(header);
            }
            let len: usize = parts[3].parse().map_err(|_| header.clone())?;
            let mut data = vec![0u8; len + 2];
            self.reader
                .read_exact(&mut data)
                .unwrap_or_else(|e| panic!("{}: read value: {e}", self.what));
            assert_eq!(&data[len..], b"\r\n", "{}: value terminator", self.what);
            data.truncate(len);
            let key = parts[1].to_string();
            assert!(
                keys.contains(&key),
                "{}: VALUE for {key}, which was not asked for",
                self.what
            );
            assert!(
                hits.insert(key.clone(), data).is_none(),
                "{}: {key} returned twice",
                self.what
            );
        }
    }

    fn get_multi(&mut self, keys: &[String]) -> BTreeMap<String, Vec<u8>> {
        let what = self.what.clone();
        self.try_get_multi(keys)
            .unwrap_or_else(|line| panic!("{what}: get {keys:?}: unexpected reply {line:?}"))
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.get_multi(&[key.to_string()]).remove(key)
    }

    fn curr_items(&mut self) -> u64 {
        self.send(b"stats\r\n");
        let mut items = None;
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "{}: EOF in stats", self.what);
            if line == "END\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("STAT curr_items ") {
                items = Some(v.trim_end().parse().expect("curr_items is a number"));
            }
        }
        items.unwrap_or_else(|| panic!("{}: no curr_items in stats", self.what))
    }
}

/// Which node holds each of `keys`, read from the nodes directly. Panics
/// when a key is on more than one node.
fn placement(nodes: &[&Node], keys: &[String]) -> BTreeMap<String, usize> {
    let mut at = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut raw = Raw::node(node);
        for chunk in keys.chunks(100) {
            for key in raw.get_multi(chunk).into_keys() {
                if let Some(other) = at.insert(key.clone(), i) {
                    panic!("{key} is on node {other} and on node {i}");
                }
            }
        }
    }
    at
}

fn value_of(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

// ---------------------------------------------------------------------------
// twemproxy (nutcracker)
// ---------------------------------------------------------------------------

/// A nutcracker child process on tests/scaleout/nutcracker.yml with the
/// nodes' ports; killed on drop.
struct Nutcracker {
    child: Child,
    port: u16,
    stats_port: u16,
    dir: TempDir,
}

impl Nutcracker {
    fn start(nodes: &[Node; 3]) -> Nutcracker {
        let template = snippet("nutcracker.yml");
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            let dir = TempDir::new("nutcracker");
            let port = free_port();
            let stats_port = free_port();
            let mut pairs = vec![(PROXY_PLACEHOLDER, format!("127.0.0.1:{port}"))];
            for (placeholder, node) in NODE_PLACEHOLDERS.iter().zip(nodes) {
                pairs.push((placeholder, node.addr()));
            }
            let conf = dir.path("nutcracker.yml");
            std::fs::write(&conf, substitute(&template, &pairs)).expect("write nutcracker.yml");
            let log = dir.path("nutcracker.log");
            let args = [
                "-c".to_string(),
                conf.display().to_string(),
                "-s".into(),
                stats_port.to_string(),
                "-a".into(),
                "127.0.0.1".into(),
                // Stats aggregated every 100 ms, so an eject shows soon.
                "-i".into(),
                "100".into(),
                "-p".into(),
                dir.path("nutcracker.pid").display().to_string(),
                "-o".into(),
                log.display().to_string(),
            ];
            let mut child = Command::new(NUTCRACKER)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {NUTCRACKER} {args:?}: {e}"));
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    failures.push(format!(
                        "nutcracker {args:?} exited with {status}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", stats_port)).is_ok()
                {
                    return Nutcracker {
                        child,
                        port,
                        stats_port,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nutcracker {args:?} did not listen within {STARTUP:?}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start nutcracker:\n{}", failures.join("\n"));
    }

    fn connect(&self) -> Raw {
        Raw::connect(self.port, "nutcracker")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("nutcracker.log")).unwrap_or_default()
    }

    /// The stats port's JSON document (nutcracker writes it and closes).
    fn stats(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.stats_port)).expect("connect stats");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read stats");
        out
    }

    /// The pool's `"server_ejects":N` counter.
    fn server_ejects(&self) -> u64 {
        let stats = self.stats();
        let at = stats
            .find("\"server_ejects\":")
            .unwrap_or_else(|| panic!("no server_ejects in nutcracker stats: {stats}"));
        let rest = &stats[at + "\"server_ejects\":".len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("server_ejects not a number in: {stats}"))
    }
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_nutcracker(target: Target) {
    if !target.available() || !have_nutcracker() {
        return;
    }
    let mut nodes = Node::three(target);
    let proxy = Nutcracker::start(&nodes);
    let mut px = proxy.connect();
    let log = |p: &Nutcracker| format!("nutcracker log:\n{}", p.log());

    // The proxy passes `version` to a node: clients that probe with it work.
    let version = px.command("version\r\n");
    assert!(
        version.starts_with("VERSION ") && version.ends_with("\r\n"),
        "version through the proxy: {version:?}\n{}",
        log(&proxy)
    );

    if target == Target::Ferrocache {
        // The line docs/scale-out.md quotes for health checks.
        assert_eq!(version, "VERSION 1.6.18\r\n");
    }

    // Writes through the proxy spread fairly over the nodes.
    const N: usize = 600;
    let keys: Vec<String> = (0..N).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        px.set_ok(key, &value_of(key));
    }
    let counts: Vec<u64> = nodes.iter().map(|n| Raw::node(n).curr_items()).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        N as u64,
        "items over all nodes {counts:?}"
    );
    for (i, &c) in counts.iter().enumerate() {
        let share = c as f64 / N as f64;
        assert!(
            (0.15..=0.55).contains(&share),
            "node {i} holds {c} of {N} keys ({:.0}%), want 15%..55%: {counts:?}",
            share * 100.0
        );
    }
    let at = placement(&nodes.iter().collect::<Vec<_>>(), &keys);
    assert_eq!(at.len(), N, "every key on exactly one node");

    // Reads through the proxy: a multi-get spanning all nodes, in one request.
    let batch: Vec<String> = keys[..150].to_vec();
    let got = px.get_multi(&batch);
    assert_eq!(got.len(), batch.len(), "multi-get through the proxy");
    for key in &batch {
        assert_eq!(got[key], value_of(key), "{key} through the proxy");
    }
    let spanned: BTreeSet<usize> = batch.iter().map(|k| at[k]).collect();
    assert_eq!(spanned.len(), 3, "the multi-get spans all three nodes");
    let mut with_missing = batch[..5].to_vec();
    with_missing.push("key:absent".into());
    assert_eq!(
        px.get_multi(&with_missing).len(),
        5,
        "a miss in a multi-get"
    );

    // delete and incr through the proxy, one key per node.
    for (index, node) in nodes.iter().enumerate() {
        let key = keys
            .iter()
            .find(|k| at[*k] == index)
            .expect("a key per node");
        assert_eq!(px.command(&format!("delete {key}\r\n")), "DELETED\r\n");
        assert_eq!(px.command(&format!("delete {key}\r\n")), "NOT_FOUND\r\n");
        assert_eq!(px.get(key), None, "{key} after delete");
        assert_eq!(Raw::node(node).get(key), None, "{key} on its node");
        px.set_ok(key, b"41");
        assert_eq!(px.command(&format!("incr {key} 1\r\n")), "42\r\n");
        assert_eq!(px.command(&format!("decr {key} 2\r\n")), "40\r\n");
        assert_eq!(Raw::node(node).get(key), Some(b"40".to_vec()));
        px.set_ok(key, &value_of(key));
    }
    assert_eq!(px.command("incr key:absent 1\r\n"), "NOT_FOUND\r\n");
    let key = &keys[1];
    assert_eq!(px.command(&format!("touch {key} 3600\r\n")), "TOUCHED\r\n");
    assert_eq!(px.get(key), Some(value_of(key)), "{key} after touch");
    // What nutcracker does not pass on (docs/scale-out.md says so): it closes the
    // client's connection.
    for request in ["stats\r\n", "flush_all\r\n", "mn\r\n"] {
        let mut c = proxy.connect();
        assert_eq!(c.command(request), "", "nutcracker answered {request:?}");
    }

    // Kill node 2 (index). Until the proxy notices, its keys may fail; then
    // they are misses, served by the ring of the two others.
    let dead = 2;
    nodes[dead].kill();
    let dead_keys: Vec<String> = keys.iter().filter(|k| at[*k] == dead).cloned().collect();
    let live_keys: Vec<String> = keys.iter().filter(|k| at[*k] != dead).cloned().collect();
    let probe = dead_keys[0].clone();
    let mut replies = Vec::new();
    let ejected = common::eventually(NOTICE_DEATH, || {
        // A fresh connection each time: a proxy may close one after an error.
        let mut c = proxy.connect();
        match c.try_get_multi(std::slice::from_ref(&probe)) {
            Ok(hits) => hits.is_empty(),
            Err(line) => {
                replies.push(line);
                false
            }
        }
    });
    assert!(
        ejected,
        "get {probe} still fails {NOTICE_DEATH:?} after its node died; replies {replies:?}\n{}",
        log(&proxy)
    );
    let _ = writeln!(
        std::io::stderr(),
        "{target:?}: nutcracker answered {replies:?} before it ejected the dead node"
    );
    assert!(
        common::eventually(NOTICE_DEATH, || proxy.server_ejects() >= 1),
        "nutcracker stats show no eject: {}",
        proxy.stats()
    );

    let mut px = proxy.connect();
    // Keys on the surviving nodes still hit, through the proxy.
    for chunk in live_keys.chunks(100) {
        let got = px.get_multi(chunk);
        assert_eq!(got.len(), chunk.len(), "surviving keys through the proxy");
        for key in chunk {
            assert_eq!(got[key], value_of(key), "{key} after the eject");
        }
    }
    // Keys of the dead node are misses, not errors.
    for chunk in dead_keys.chunks(100) {
        assert!(
            px.get_multi(chunk).is_empty(),
            "dead node's keys must be misses"
        );
    }
    // New keys and the dead node's keys can be written and read back; they
    // land on the two survivors.
    let new_keys: Vec<String> = (0..200).map(|i| format!("after:{i}")).collect();
    let rewritten: Vec<String> = new_keys.iter().chain(&dead_keys).cloned().collect();
    for key in &rewritten {
        px.set_ok(key, &value_of(key));
    }
    for chunk in rewritten.chunks(100) {
        let got = px.get_multi(chunk);
        assert_eq!(got.len(), chunk.len(), "keys written after the eject");
        for key in chunk {
            assert_eq!(got[key], value_of(key), "{key} written after the eject");
        }
    }
    let survivors: Vec<&Node> = nodes.iter().take(dead).collect();
    let now_at = placement(&survivors, &rewritten);
    assert_eq!(
        now_at.len(),
        rewritten.len(),
        "every key written after the eject is on a surviving node"
    );
    let used: BTreeSet<usize> = now_at.values().copied().collect();
    assert_eq!(used.len(), 2, "both survivors take new keys");
    // Consistent hashing: the survivors' own keys did not move.
    let still = placement(&survivors, &live_keys);
    for key in &live_keys {
        assert_eq!(still.get(key), at.get(key), "{key} moved between survivors");
    }
    // delete and incr still work through the proxy.
    let key = &live_keys[0];
    assert_eq!(px.command(&format!("delete {key}\r\n")), "DELETED\r\n");
    px.set_ok(key, b"9");
    assert_eq!(px.command(&format!("incr {key} 1\r\n")), "10\r\n");
}

// ---------------------------------------------------------------------------
// libmemcached's tools
// ---------------------------------------------------------------------------

/// memcstat's output: per server (`Server: HOST (PORT)`), its curr_items.
fn memcstat_items(servers: &str) -> (Run, Vec<(String, u64)>) {
    let run = run("memcstat", &[format!("--servers={servers}")], &[]);
    run.assert_success();
    let mut sections: Vec<(String, Option<u64>)> = Vec::new();
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        if let Some(server) = line.strip_prefix("Server: ") {
            sections.push((server.trim().to_string(), None));
        } else if let (Some(v), Some(last)) = (
            line.trim().strip_prefix("curr_items: "),
            sections.last_mut(),
        ) {
            last.1 = v.trim().parse().ok();
        }
    }
    let parsed = sections
        .into_iter()
        .map(|(s, n)| {
            let n = n.unwrap_or_else(|| panic!("curr_items of {s}:\n{}", run.transcript()));
            (s, n)
        })
        .collect();
    (run, parsed)
}

/// The documented snippet with the nodes' ports.
fn libmemcached_snippet(nodes: &[Node; 3]) -> String {
    let pairs: Vec<(&str, String)> = NODE_PLACEHOLDERS
        .iter()
        .zip(nodes)
        .map(|(p, n)| (*p, n.addr()))
        .collect();
    substitute(&snippet("libmemcached-tools.sh"), &pairs)
}

/// The `SERVERS=` value of the documented snippet, with the nodes' ports.
fn servers_from_snippet(nodes: &[Node; 3]) -> String {
    libmemcached_snippet(nodes)
        .lines()
        .find_map(|l| l.strip_prefix("SERVERS=").map(str::to_string))
        .expect("libmemcached-tools.sh sets SERVERS")
}

/// Runs the documented snippet as it stands, by `sh -e`, in a directory with
/// the two files it copies: `copy.html` must come out identical to
/// `report.html`, and `memcrm` leaves every node empty.
fn run_libmemcached_snippet(nodes: &[Node; 3], list: &str) {
    let dir = TempDir::new("snippet");
    let report = payload(40_000, 3);
    std::fs::write(dir.path("report.html"), &report).expect("write report.html");
    std::fs::write(dir.path("logo.png"), payload(9_000, 5)).expect("write logo.png");
    std::fs::write(dir.path("snippet.sh"), libmemcached_snippet(nodes)).expect("write snippet");
    let script = format!("cd '{}' && . ./snippet.sh", dir.path("").display());
    let ran = run("sh", &["-ec".to_string(), script], &[]);
    ran.assert_success();
    let copy = std::fs::read(dir.path("copy.html")).expect("the snippet wrote copy.html");
    assert!(copy == report, "copy.html differs from report.html");
    let (stat, sections) = memcstat_items(list);
    assert_eq!(sections.len(), 3, "three servers:\n{}", stat.transcript());
    for (server, items) in &sections {
        assert_eq!(
            *items,
            0,
            "{server} after the snippet's memcrm:\n{}",
            stat.transcript()
        );
    }
}

fn check_libmemcached_tools(target: Target) {
    if !target.available() || !have_libmemcached_tools() {
        return;
    }
    let nodes = Node::three(target);
    let list = servers_from_snippet(&nodes);
    run_libmemcached_snippet(&nodes, &list);
    // As the snippet does: the server list in --servers (the tools take it
    // from MEMCACHED_SERVERS too, checked once below).
    let servers = format!("--servers={list}");
    let with_list = |args: Vec<String>| -> Vec<String> { [vec![servers.clone()], args].concat() };
    let env: [(&str, &str); 0] = [];
    let dir = TempDir::new("memccp");
    const FILES: usize = 30;
    let mut keys = Vec::new();
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for i in 1..=FILES {
        let key = format!("file{i:02}.bin");
        let data = payload(i * 1500, i as u8);
        std::fs::write(dir.path(&key), &data).expect("write file");
        files.push(dir.path(&key).display().to_string());
        keys.push(key);
        contents.push(data);
    }
    let mut cp = vec!["--set".to_string()];
    cp.extend(files.iter().cloned());
    run("memccp", &with_list(cp), &env).assert_success();

    // libmemcached's default distribution is a hash of the key modulo the
    // number of servers, so the spread is fixed by the file names, whatever
    // the ports; every server got some.
    let (stat, sections) = memcstat_items(&list);
    assert_eq!(sections.len(), 3, "three servers:\n{}", stat.transcript());
    for (server, items) in &sections {
        assert!(
            *items > 0,
            "no file landed on {server}:\n{}",
            stat.transcript()
        );
    }
    let total: u64 = sections.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total,
        FILES as u64,
        "items over all servers:\n{}",
        stat.transcript()
    );
    // Seen without the tools: each file on exactly one node, byte-identical.
    let node_refs: Vec<&Node> = nodes.iter().collect();
    let at = placement(&node_refs, &keys);
    assert_eq!(at.len(), FILES, "every file on exactly one node");
    for (key, data) in keys.iter().zip(&contents) {
        let held = Raw::node(&nodes[at[key]]).get(key);
        assert!(held.as_ref() == Some(data), "{key} as stored on its node");
    }

    // memccat prints each value followed by a newline, in argument order.
    let cat = run("memccat", &with_list(keys.clone()), &env);
    cat.assert_success();
    let mut want = Vec::new();
    for data in &contents {
        want.extend_from_slice(data);
        want.push(b'\n');
    }
    assert!(
        cat.stdout == want,
        "memccat of {FILES} files differs:\n{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    // The same list from MEMCACHED_SERVERS, as the snippet's comment says.
    let cat = run("memccat", &keys, &[("MEMCACHED_SERVERS", list.as_str())]);
    cat.assert_success();
    assert!(cat.stdout == want, "memccat with MEMCACHED_SERVERS differs");

    // A client hashing differently looks for some keys on the wrong node:
    // every client of the cluster must use the same hash.
    let md5 = run(
        "memccat",
        &with_list([vec!["--hash=md5".to_string()], keys.clone()].concat()),
        &env,
    );
    assert!(
        !md5.status.success() && md5.stdout != want,
        "memccat --hash=md5 found every key the default hash placed:\n{}",
        md5.transcript()
    );

    run("memcrm", &with_list(keys.clone()), &env).assert_success();
    let (stat, sections) = memcstat_items(&list);
    for (server, items) in &sections {
        assert_eq!(*items, 0, "{server} after memcrm:\n{}", stat.transcript());
    }

    // The same files placed with --hash=md5 and read back with it.
    let mut cp = vec!["--hash=md5".to_string()];
    cp.extend(files.iter().cloned());
    run("memccp", &with_list(cp), &env).assert_success();
    let md5_at = placement(&node_refs, &keys);
    assert_eq!(md5_at.len(), FILES, "every file on exactly one node (md5)");
    assert_ne!(md5_at, at, "--hash=md5 places the files differently");
    let used: BTreeSet<usize> = md5_at.values().copied().collect();
    assert_eq!(used.len(), 3, "--hash=md5 uses every node");
    let cat = run(
        "memccat",
        &with_list([vec!["--hash=md5".to_string()], keys.clone()].concat()),
        &env,
    );
    cat.assert_success();
    assert!(cat.stdout == want, "memccat --hash=md5 differs");
}

// ---------------------------------------------------------------------------
// pymemcache HashClient
// ---------------------------------------------------------------------------

fn check_pymemcache_hashclient(target: Target) {
    if !target.available() || !have_pymemcache("pymemcache.client.hash") {
        return;
    }
    let nodes = Node::three(target);
    let script = Path::new(SNIPPETS).join("hashclient_failover.py");
    let mut args = vec![script.display().to_string(), nodes[2].pid().to_string()];
    args.extend(nodes.iter().map(Node::addr));
    let run = run(PYTHON, &args, &[]);
    run.assert_success();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("all HashClient checks passed"),
        "script did not finish:\n{}",
        run.transcript()
    );
    let _ = writeln!(std::io::stderr(), "{target:?}:\n{out}");
}

// ---------------------------------------------------------------------------
// What memcached's proxy and mcrouter send a backend
// ---------------------------------------------------------------------------

/// Both check a backend with `version` (memcached's proxy on every new
/// backend connection, and it takes the backend for bad unless the reply
/// starts `VERSION `; mcrouter when it probes a node it marked down): the
/// first request of each new connection.
fn proxy_health_check(server: &common::Server) {
    for _ in 0..3 {
        let mut c = server.connect();
        c.send("version\r\n");
        let line = c.expect_line_prefix("VERSION ");
        let version = line.trim_end().trim_start_matches("VERSION ");
        assert!(
            version.starts_with("1.6.") && !version.contains(' '),
            "{line:?}"
        );
        // and the connection goes on serving
        c.roundtrip("mn\r\n", "MN\r\n");
    }
}
both!(proxy_health_check, &[]);

/// The requests the two proxies pass to a backend, as they write them:
/// memcached's proxy forwards the meta commands (with `O` opaques, `k`, `q`
/// and an `mn` to end a quiet batch) and the classic ones; mcrouter writes
/// the classic commands (`delete <key> 0` with its exptime), and its own
/// `metaget` and lease commands, which memcached refuses with `ERROR`.
const PROXY_REQUESTS: &[(&[u8], &[u8])] = &[
    (b"ms foo 2 T0 F5\r\nhi\r\n", b"HD\r\n"),
    (b"mg foo s v f t\r\n", b"VA 2 s2 f5 t-1\r\nhi\r\n"),
    (
        b"mg foo k v O123 q\r\nmn\r\n",
        b"VA 2 kfoo O123\r\nhi\r\nMN\r\n",
    ),
    (
        b"mg missing v q\r\nmg missing k O9\r\nmn\r\n",
        b"EN kmissing O9\r\nMN\r\n",
    ),
    (b"ma cnt N0 J10 v\r\n", b"VA 2\r\n10\r\n"),
    (b"ma cnt v\r\n", b"VA 2\r\n11\r\n"),
    (b"md foo q\r\nmn\r\n", b"MN\r\n"),
    (b"mg foo v\r\n", b"EN\r\n"),
    (b"get foo cnt\r\n", b"VALUE cnt 0 2\r\n11\r\nEND\r\n"),
    (b"set k 0 0 1\r\nv\r\n", b"STORED\r\n"),
    (b"delete k 0\r\n", b"DELETED\r\n"),
    (b"set k 3 0 1\r\nv\r\n", b"STORED\r\n"),
    (b"add k 3 0 1\r\nv\r\n", b"NOT_STORED\r\n"),
    (b"append k 0 0 1\r\nw\r\n", b"STORED\r\n"),
    (b"touch k 10\r\n", b"TOUCHED\r\n"),
    (b"gat 100 k\r\n", b"VALUE k 3 2\r\nvw\r\nEND\r\n"),
    (b"incr cnt 5\r\n", b"16\r\n"),
    (b"decr cnt 100\r\n", b"0\r\n"),
    (b"metaget k\r\n", b"ERROR\r\n"),
    (b"lease-get k\r\n", b"ERROR\r\n"),
    (b"delete k noreply\r\nmn\r\n", b"MN\r\n"),
    (b"flush_all 0\r\n", b"OK\r\n"),
    (b"mg cnt v\r\n", b"EN\r\n"),
];
table!(proxy_and_mcrouter_requests, &[], PROXY_REQUESTS);

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Every snippet file appears verbatim in docs/scale-out.md, in a fenced
/// block of its language: what the page quotes is what these tests run.
#[test]
fn scale_out_doc_shows_the_tested_snippets_verbatim() {
    let doc = scale_out_doc();
    for (file, lang) in [
        ("nutcracker.yml", "yaml"),
        ("libmemcached-tools.sh", "sh"),
        ("pymemcache_hashclient.py", "python"),
    ] {
        let text = snippet(file);
        assert!(text.ends_with('\n'), "{file} ends with a newline");
        let block = format!("```{lang}\n{text}```\n");
        assert!(
            doc.contains(&block),
            "{SCALE_OUT_DOC} must contain tests/scaleout/{file} verbatim as:\n{block}"
        );
    }
}

macro_rules! scaleout_tests {
    ($target:expr) => {
        /// Three nodes behind nutcracker: fair spread, multi-get, delete,
        /// incr; one node killed, ejected, the rest keeps serving.
        #[test]
        fn nutcracker_ketama_pool_with_auto_eject() {
            check_nutcracker($target);
        }

        /// memccp/memccat/memcrm over three nodes from --servers, the documented snippet run as it stands.
        #[test]
        fn libmemcached_tools_hash_files_over_three_nodes() {
            check_libmemcached_tools($target);
        }

        /// pymemcache HashClient over three nodes, one of which dies.
        #[test]
        fn pymemcache_hashclient_survives_a_dead_node() {
            check_pymemcache_hashclient($target);
        }
    };
}

mod against_ferrocache {
    use super::*;
    scaleout_tests!(Target::Ferrocache);
}

/// The reference: the same checks with Debian's memcached as the nodes.
mod against_memcached {
    use super::*;
    scaleout_tests!(Target::Memcached);
}
