//! Interop: the clients and tools operators already use, pointed at ferrocache.
//!
//! Every check runs twice: once against the built `ferrocache` binary and once
//! against Debian's real `memcached` started with the same flags. The
//! memcached run proves the tool invocation and the expectations are right;
//! the ferrocache run proves we are indistinguishable. A few extra tests start
//! memcached with a deviating flag and show the checks notice.
//!
//! Tools come from Debian packages (`memcached`, `libmemcached-tools`,
//! `python3-pymemcache`). Where one is missing the test prints a loud
//! `SKIPPED` line and passes, unless `CI` is set: then it fails, because CI
//! must run them all.
//!
//! Run only the memcached half with `cargo test --release --test interop against_memcached`.

mod common;

use common::tools::{
    args, have_pymemcache, on_path, payload, require, run, Process, Run, Target, TempDir, PYTHON,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";
const PERL: &str = "/usr/bin/perl";
const PYMEMCACHE_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/pymemcache_roundtrip.py"
);

/// The flags every server here gets besides the launcher's (`-l 127.0.0.1
/// -U 0`, see `Process::start`); the expectations below follow from them.
const COMMON_FLAGS: [&str; 4] = ["-t", "2", "-m", "64"];
const MAXBYTES: u64 = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Which tools are here (the servers: common::tools::Target)
// ---------------------------------------------------------------------------

fn have_libmemcached_tool(name: &str) -> bool {
    require(name, on_path(name), "libmemcached-tools")
}

fn have_memcached_tool() -> bool {
    let present = Path::new(MEMCACHED_TOOL).exists() && Path::new(PERL).exists();
    require("memcached-tool", present, "memcached")
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn start(target: Target) -> Process {
    start_with(target, &[])
}

/// `target` with the launcher's `-u root -l 127.0.0.1 -p PORT -U 0`, then
/// COMMON_FLAGS and `extra`, once it answers.
fn start_with(target: Target, extra: &[&str]) -> Process {
    let mut args = COMMON_FLAGS.to_vec();
    args.extend_from_slice(extra);
    Process::start(target, &args)
}

// ---------------------------------------------------------------------------
// A minimal text-protocol client, to set up and inspect state without the
// tool under test.
// ---------------------------------------------------------------------------

struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(server: &Process) -> Raw {
        let stream = TcpStream::connect(server.addr())
            .unwrap_or_else(|e| panic!("connect {:?} at {}: {e}", server.target(), server.addr()));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone stream");
        Raw {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read reply line");
        line
    }

    fn set(&mut self, key: &str, flags: u32, value: &[u8]) {
        let mut req = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        self.writer.write_all(&req).expect("send set");
        assert_eq!(self.line(), "STORED\r\n", "set {key}");
    }

    /// `Some((flags, value))` or `None` on a miss.
    fn get(&mut self, key: &str) -> Option<(u32, Vec<u8>)> {
        self.writer
            .write_all(format!("get {key}\r\n").as_bytes())
            .expect("send get");
        let header = self.line();
        if header == "END\r\n" {
            return None;
        }
        let parts: Vec<&str> = header.split_whitespace().collect();
        assert!(
            parts.len() == 4 && parts[0] == "VALUE" && parts[1] == key,
            "get {key}: unexpected header {header:?}"
        );
        let flags = parts[2].parse().expect("flags");
        let len: usize = parts[3].parse().expect("length");
        let mut data = vec![0u8; len + 2];
        self.reader.read_exact(&mut data).expect("read value");
        assert_eq!(&data[len..], b"\r\n", "value terminator");
        data.truncate(len);
        assert_eq!(self.line(), "END\r\n", "get {key}: end marker");
        Some((flags, data))
    }

    fn version(&mut self) -> String {
        self.writer.write_all(b"version\r\n").expect("send version");
        let line = self.line();
        line.strip_prefix("VERSION ")
            .unwrap_or_else(|| panic!("version reply {line:?}"))
            .trim_end()
            .to_string()
    }
}

// ---------------------------------------------------------------------------
// memccapable -a
// ---------------------------------------------------------------------------

/// What memccapable said: `[pass]`, `[skip]` and `[FAIL]` markers (failure
/// details go to stderr, so both streams are counted) and its summary line.
#[derive(Debug)]
struct CapableReport {
    passed: usize,
    skipped: usize,
    failed: usize,
    all_passed_line: bool,
    failed_summary: Option<String>,
}

fn parse_memccapable(run: &Run) -> CapableReport {
    let all = format!("{}\n{}", run.stdout(), run.stderr());
    CapableReport {
        passed: all.matches("[pass]").count(),
        skipped: all.matches("[skip]").count(),
        failed: all.matches("[FAIL]").count(),
        all_passed_line: all.lines().any(|l| l.trim() == "All tests passed"),
        failed_summary: all
            .lines()
            .find(|l| l.contains(" tests failed"))
            .map(|l| l.trim().to_string()),
    }
}

/// `protocol`: `-a` (ASCII) or `-b` (binary).
fn run_memccapable(server: &Process, protocol: &str) -> Run {
    let port = server.port().to_string();
    // -t 5: per-operation timeout, so a hang fails.
    run(
        "memccapable",
        &args(&["-h", "127.0.0.1", "-p", &port, protocol, "-t", "5"]),
        &[],
    )
}

fn check_memccapable(target: Target, protocol: &str) {
    if !target.available() || !have_libmemcached_tool("memccapable") {
        return;
    }
    let server = start(target);
    let run = run_memccapable(&server, protocol);
    let report = parse_memccapable(&run);
    let _ = writeln!(
        std::io::stderr(),
        "memccapable {protocol} against {target:?}: {report:?}"
    );
    if protocol == "-b" {
        // the binary suite names its tests: all of them must have run
        for test in [
            "binary getkq",
            "binary incrq",
            "binary appendq",
            "binary stat",
        ] {
            assert!(
                run.stdout().contains(test),
                "{test} did not run:\n{}",
                run.transcript()
            );
        }
    }
    if report.skipped > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "note: memccapable skipped {} test(s) itself",
            report.skipped
        );
    }
    assert_eq!(
        report.failed,
        0,
        "memccapable reported failures:\n{}",
        run.transcript()
    );
    assert_eq!(
        report.failed_summary,
        None,
        "memccapable summary:\n{}",
        run.transcript()
    );
    assert!(
        report.all_passed_line,
        "no 'All tests passed':\n{}",
        run.transcript()
    );
    assert!(
        report.passed > 0,
        "no test passed at all:\n{}",
        run.transcript()
    );
    run.assert_success();
}

// ---------------------------------------------------------------------------
// pymemcache
// ---------------------------------------------------------------------------

fn run_pymemcache_script(servers: &[Process]) -> Run {
    let mut argv = vec![PYMEMCACHE_SCRIPT.to_string()];
    argv.extend(servers.iter().map(|s| s.addr().to_string()));
    run(PYTHON, &argv, &[])
}

fn check_pymemcache(target: Target) {
    if !target.available() || !have_pymemcache("pymemcache") {
        return;
    }
    let servers = [start(target), start(target), start(target)];
    let run = run_pymemcache_script(&servers);
    run.assert_success();
    assert!(
        run.stdout().contains("all pymemcache checks passed"),
        "script did not finish:\n{}",
        run.transcript()
    );
}

// ---------------------------------------------------------------------------
// memcstat, memccp / memccat / memcrm
// ---------------------------------------------------------------------------

/// One `Server:` section of memcstat's output: the server and its stats.
type StatSection = (String, BTreeMap<String, String>);

/// memcstat's output: per server (`Server: HOST (PORT)`), its `name: value` lines.
fn parse_memcstat(out: &str) -> Vec<StatSection> {
    let mut sections: Vec<StatSection> = Vec::new();
    for line in out.lines() {
        if let Some(server) = line.strip_prefix("Server: ") {
            sections.push((server.trim().to_string(), BTreeMap::new()));
        } else if let (Some((name, value)), Some(last)) =
            (line.split_once(": "), sections.last_mut())
        {
            last.1
                .insert(name.trim().to_string(), value.trim().to_string());
        }
    }
    sections
}

fn memcstat(servers: &str) -> (Run, Vec<StatSection>) {
    let run = run("memcstat", &[format!("--servers={servers}")], &[]);
    run.assert_success();
    let parsed = parse_memcstat(&run.stdout());
    (run, parsed)
}

/// Stats every memcached reports and tools read.
const GENERAL_STATS: [&str; 16] = [
    "pid",
    "uptime",
    "time",
    "version",
    "curr_connections",
    "total_connections",
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "curr_items",
    "total_items",
    "bytes",
    "limit_maxbytes",
    "threads",
    "evictions",
];

/// Puts the server in a known state: 5 items, 2 hits, 1 miss. Returns its version.
fn known_state(server: &Process) -> String {
    let mut raw = Raw::connect(server);
    for i in 0..5 {
        raw.set(&format!("stat:{i}"), 0, format!("value {i}").as_bytes());
    }
    assert!(raw.get("stat:0").is_some());
    assert!(raw.get("stat:4").is_some());
    assert!(raw.get("stat:none").is_none());
    raw.version()
}

fn assert_known_stats(stats: &BTreeMap<String, String>, version: &str, transcript: &str) {
    for name in GENERAL_STATS {
        assert!(
            stats.contains_key(name),
            "stat {name} missing:\n{transcript}"
        );
    }
    let expect = [
        ("curr_items", "5".to_string()),
        ("total_items", "5".to_string()),
        ("cmd_set", "5".to_string()),
        ("get_hits", "2".to_string()),
        ("get_misses", "1".to_string()),
        ("limit_maxbytes", MAXBYTES.to_string()),
        ("threads", "2".to_string()),
        ("version", version.to_string()),
    ];
    for (name, want) in expect {
        assert_eq!(stats.get(name), Some(&want), "stat {name}:\n{transcript}");
    }
}

fn check_memcstat(target: Target) {
    if !target.available() || !have_libmemcached_tool("memcstat") {
        return;
    }
    let server = start(target);
    let version = known_state(&server);
    let (run, sections) = memcstat(&server.addr().to_string());
    let transcript = run.transcript();
    assert_eq!(sections.len(), 1, "one server section:\n{transcript}");
    assert_eq!(
        sections[0].0,
        format!("127.0.0.1 ({})", server.port()),
        "server header:\n{transcript}"
    );
    assert_known_stats(&sections[0].1, &version, &transcript);
}

fn check_memccp_memccat_memcrm(target: Target) {
    if !target.available()
        || !have_libmemcached_tool("memccp")
        || !have_libmemcached_tool("memccat")
        || !have_libmemcached_tool("memcrm")
    {
        return;
    }
    let server = start(target);
    let servers = format!("--servers={}", server.addr());
    let dir = TempDir::new("memccp");
    let file = dir.path("payload.bin");
    let data = payload(200_000, 7);
    std::fs::write(&file, &data).expect("write payload");
    let file_arg = file.to_string_lossy().into_owned();
    let key = "payload.bin"; // memccp keys a file by its basename

    run(
        "memccp",
        &[
            servers.clone(),
            "--flags=4242".into(),
            "--expire=0".into(),
            file_arg,
        ],
        &[],
    )
    .assert_success();
    // What the server holds, seen without the tools.
    let mut raw = Raw::connect(&server);
    assert_eq!(
        raw.get(key),
        Some((4242, data.clone())),
        "item stored by memccp"
    );

    // memccat --flags prints the flags on a line, then the value and a newline.
    let cat = run(
        "memccat",
        &[servers.clone(), "--flags".into(), key.into()],
        &[],
    );
    cat.assert_success();
    let mut want = b"4242\n".to_vec();
    want.extend_from_slice(&data);
    want.push(b'\n');
    assert!(
        cat.stdout == want,
        "memccat --flags output differs:\n{}",
        cat.stderr()
    );

    let out = dir.path("copy.bin");
    run(
        "memccat",
        &[
            servers.clone(),
            format!("--file={}", out.display()),
            key.into(),
        ],
        &[],
    )
    .assert_success();
    assert!(
        std::fs::read(&out).expect("read copy") == data,
        "memccat --file copy differs"
    );

    run("memcrm", &[servers.clone(), key.into()], &[]).assert_success();
    assert_eq!(raw.get(key), None, "item after memcrm");
    let cat = run("memccat", &[servers.clone(), key.into()], &[]);
    assert!(
        !cat.status.success(),
        "memccat of a removed key succeeded:\n{}",
        cat.transcript()
    );
    let rm = run("memcrm", &[servers, key.into()], &[]);
    assert!(
        !rm.status.success(),
        "memcrm of a missing key succeeded:\n{}",
        rm.transcript()
    );
}

// ---------------------------------------------------------------------------
// memcached-tool (perl)
// ---------------------------------------------------------------------------

/// memcached-tool's tables: a `#HOST:PORT Field Value` header, then one
/// right-aligned `name value` row per stat.
fn parse_memcached_tool(run: &Run, server: &Process) -> BTreeMap<String, String> {
    let out = run.stdout();
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let words: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        words,
        [format!("#{}", server.addr()).as_str(), "Field", "Value"],
        "memcached-tool header:\n{}",
        run.transcript()
    );
    lines
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((
                parts.next()?.to_string(),
                parts.collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

fn check_memcached_tool_stats(target: Target) {
    if !target.available() || !have_memcached_tool() {
        return;
    }
    let server = start(target);
    let version = known_state(&server);
    let run = run(
        MEMCACHED_TOOL,
        &[server.addr().to_string(), "stats".into()],
        &[],
    );
    run.assert_success();
    let stats = parse_memcached_tool(&run, &server);
    assert_known_stats(&stats, &version, &run.transcript());
}

fn check_memcached_tool_settings(target: Target) {
    if !target.available() || !have_memcached_tool() {
        return;
    }
    let server = start(target);
    let run = run(
        MEMCACHED_TOOL,
        &[server.addr().to_string(), "settings".into()],
        &[],
    );
    run.assert_success();
    let settings = parse_memcached_tool(&run, &server);
    // Each follows from a flag given (-m 64 -t 2 -p PORT -U 0) or a default.
    let expect = [
        ("maxbytes", MAXBYTES.to_string()),
        ("maxconns", "1024".to_string()),
        ("tcpport", server.port().to_string()),
        ("udpport", "0".to_string()),
        ("num_threads", "2".to_string()),
        ("item_size_max", "1048576".to_string()),
        ("cas_enabled", "yes".to_string()),
        ("evictions", "on".to_string()),
        ("flush_enabled", "yes".to_string()),
    ];
    for (name, want) in expect {
        assert_eq!(
            settings.get(name),
            Some(&want),
            "setting {name}:\n{}",
            run.transcript()
        );
    }
}

// ---------------------------------------------------------------------------
// The tests: the same checks against each server
// ---------------------------------------------------------------------------

macro_rules! interop_tests {
    ($target:expr) => {
        /// `memccapable -a`: libmemcached's ASCII protocol conformance suite.
        #[test]
        fn memccapable_ascii_all_pass() {
            check_memccapable($target, "-a");
        }

        /// `memccapable -b`: libmemcached's binary protocol conformance
        /// suite.
        #[test]
        fn memccapable_binary_all_pass() {
            check_memccapable($target, "-b");
        }

        /// pymemcache Client and HashClient round-trips (tests/interop/pymemcache_roundtrip.py).
        #[test]
        fn pymemcache_round_trips() {
            check_pymemcache($target);
        }

        /// `memcstat` prints the server's stats, with the values it should have.
        #[test]
        fn memcstat_reports_stats() {
            check_memcstat($target);
        }

        /// `memccp` / `memccat` / `memcrm` round-trip a binary file with flags.
        #[test]
        fn memccp_memccat_memcrm_round_trip_a_file() {
            check_memccp_memccat_memcrm($target);
        }

        /// `memcached-tool HOST:PORT stats`.
        #[test]
        fn memcached_tool_stats() {
            check_memcached_tool_stats($target);
        }

        /// `memcached-tool HOST:PORT settings`.
        #[test]
        fn memcached_tool_settings() {
            check_memcached_tool_settings($target);
        }
    };
}

mod against_ferrocache {
    use super::*;
    interop_tests!(Target::Ferrocache);
}

/// The reference run, plus controls showing the checks catch a server that
/// behaves differently.
mod against_memcached {
    use super::*;
    interop_tests!(Target::Memcached);

    /// memcached -F refuses flush_all; memccapable must report that, and our
    /// parsing must see it.
    #[test]
    fn control_memccapable_catches_flush_disabled() {
        if !Target::Memcached.available() || !have_libmemcached_tool("memccapable") {
            return;
        }
        let server = start_with(Target::Memcached, &["-F"]);
        for protocol in ["-a", "-b"] {
            let run = run_memccapable(&server, protocol);
            control_failed(&run);
        }
    }

    /// memccapable's report says a run failed.
    fn control_failed(run: &Run) {
        let report = parse_memccapable(run);
        assert!(
            report.failed > 0,
            "no [FAIL] seen: {report:?}\n{}",
            run.transcript()
        );
        assert!(
            report.failed_summary.is_some(),
            "{report:?}\n{}",
            run.transcript()
        );
        assert!(!report.all_passed_line, "{report:?}\n{}", run.transcript());
        assert!(
            !run.status.success(),
            "exit status 0:\n{}",
            run.transcript()
        );
    }

    /// A first server with a 4 MiB item limit and -t 4 is not the server the
    /// script expects; it must say so and exit non-zero.
    #[test]
    fn control_pymemcache_catches_different_limits() {
        if !Target::Memcached.available() || !have_pymemcache("pymemcache") {
            return;
        }
        let servers = [
            start_with(Target::Memcached, &["-I", "4m", "-t", "4"]),
            start(Target::Memcached),
            start(Target::Memcached),
        ];
        let run = run_pymemcache_script(&servers);
        assert!(
            !run.status.success(),
            "script passed:\n{}",
            run.transcript()
        );
        let out = run.stdout();
        for expected in [
            "MISMATCH: set over the 1 MiB item limit",
            "MISMATCH: stats threads",
        ] {
            assert!(
                out.contains(expected),
                "{expected:?} not reported:\n{}",
                run.transcript()
            );
        }
    }
}
