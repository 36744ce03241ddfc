//! `-vv` and `-vvv` logging, and the `verbosity` command that turns it on:
//! the log lines of a spawned server binary, compared with memcached's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use crate::common::tools::Process;
use crate::common::{eventually, temp_path, Target};

/// A server binary on a free port with its stderr in a log file, removed
/// on drop.
struct Verbose {
    _process: Process,
    port: u16,
    log: PathBuf,
}

impl Drop for Verbose {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn start_verbose(target: Target) -> Verbose {
    start_logged(target, "-vv")
}

/// A server binary started with `flag` (`-vv`, or a harmless one such as
/// `-C` to start quiet), stderr to a file.
fn start_logged(target: Target, flag: &str) -> Verbose {
    start_logged_with(target, &[flag])
}

fn start_logged_with(target: Target, flags: &[&str]) -> Verbose {
    let log = temp_path("vv.log");
    let process = Process::start_logged(target, flags, &log);
    Verbose {
        port: process.port(),
        _process: process,
        log,
    }
}

/// The `<fd …` / `>fd …` lines of one connection, fd replaced by `N`
/// (ferrocache's log lines carry env_logger's prefix; it is dropped).
fn conn_lines(log: &str, fd: &str) -> Vec<String> {
    let lines: Vec<String> = log
        .lines()
        .map(|l| l.rsplit_once("] ").map_or(l, |(_, m)| m))
        .filter_map(|l| {
            for dir in ['<', '>'] {
                if let Some(rest) = l.strip_prefix(&format!("{dir}{fd} ")) {
                    return Some(format!("{dir}N {rest}"));
                }
            }
            None
        })
        .collect();
    // the descriptor may have served the start-up probe before: from our
    // first request on
    let first = lines.iter().position(|l| l == "<N get vv_marker");
    first.map_or_else(Vec::new, |i| lines[i..].to_vec())
}

fn verbose_logs_commands_and_replies(target: Target) {
    let bin = target.program();
    let v = start_verbose(target);
    // the listening probe above may have left its own lines: use a marker
    let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let script: &[(&str, &str)] = &[
        ("get vv_marker\r\n", "END\r\n"),
        ("set a 0 0 1\r\nx\r\n", "STORED\r\n"),
        ("get a b\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n"),
        ("cas a 0 0 1 999\r\ny\r\n", "EXISTS\r\n"),
        // what a noreply command would have answered is logged
        (
            "set q 0 0 1 noreply\r\ny\r\nadd q 0 0 1 noreply\r\nz\r\n\
             delete nokey noreply\r\nmn\r\n",
            "MN\r\n",
        ),
        // meta replies are not logged (never a value), but for me's miss
        // and errors
        (
            "mg a v\r\nmg nokey v\r\nms m 2\r\nhi\r\nmd m\r\nme nokey\r\n",
            "VA 1\r\nx\r\nEN\r\nHD\r\nHD\r\nEN\r\n",
        ),
        ("mg a v !\r\n", "CLIENT_ERROR invalid flag\r\n"),
        ("delete a\r\n", "DELETED\r\n"),
        ("incr a 1\r\n", "NOT_FOUND\r\n"),
        ("bogus\r\n", "ERROR\r\n"),
        ("stats settings\r\n", ""),
    ];
    for (req, want) in script {
        s.write_all(req.as_bytes()).unwrap();
        if want.is_empty() {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while !all.ends_with(b"END\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                all.extend_from_slice(&buf[..n]);
            }
        } else {
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
    }
    s.write_all(b"quit\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let want = [
        "<N get vv_marker",
        ">N END",
        "<N set a 0 0 1",
        ">N STORED",
        "<N get a b",
        ">N sending key a",
        ">N END",
        "<N cas a 0 0 1 999",
        ">N EXISTS",
        "<N set q 0 0 1 noreply",
        ">N NOREPLY STORED",
        "<N add q 0 0 1 noreply",
        ">N NOREPLY NOT_STORED",
        "<N delete nokey noreply",
        ">N NOREPLY NOT_FOUND",
        "<N mn",
        ">N MN",
        "<N mg a v",
        "<N mg nokey v",
        "<N ms m 2",
        "<N md m",
        "<N me nokey",
        ">N EN",
        "<N mg a v !",
        ">N CLIENT_ERROR invalid flag",
        "<N delete a",
        ">N DELETED",
        "<N incr a 1",
        ">N NOT_FOUND",
        "<N bogus",
        ">N ERROR",
        "<N stats settings",
        "<N quit",
        "<N connection closed.",
    ];
    let mut last = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&v.log).unwrap_or_default();
        let Some(fd) = log.lines().find_map(|l| {
            let m = l.rsplit_once("] ").map_or(l, |(_, m)| m);
            m.strip_prefix('<')?
                .strip_suffix(" get vv_marker")
                .map(str::to_string)
        }) else {
            return false;
        };
        let new_conn = format!("<{fd} new auto-negotiating client connection");
        last = conn_lines(&log, &fd);
        log.contains(&new_conn) && last == want
    });
    assert!(ok, "{bin} -vv logged: {last:#?}");
    // and the lines without a direction: the protocol, once, and the
    // unique a refused cas met (a's, the first write)
    let log = std::fs::read_to_string(&v.log).unwrap();
    let plain: Vec<&str> = log
        .lines()
        .map(|l| l.rsplit_once("] ").map_or(l, |(_, m)| m))
        .filter(|l| l.contains(": Client using the ascii protocol") || l.starts_with("CAS:"))
        .collect();
    // (a's unique: memcached's counter gives the first write 1;
    // ferrocache's comes from where the record is, never 0 nor 999)
    let expected: Vec<u64> = plain
        .iter()
        .filter_map(|l| {
            l.strip_prefix("CAS:  failure: expected ")?
                .strip_suffix(", got 999")?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(expected.len(), 1, "{bin}: {plain:?}");
    assert!(expected[0] != 0 && expected[0] != 999, "{bin}: {plain:?}");
    if target == Target::Memcached {
        assert_eq!(expected[0], 1, "{plain:?}");
    }
    assert!(
        plain
            .iter()
            .any(|l| l.ends_with(": Client using the ascii protocol")),
        "{bin}: {plain:?}"
    );
}

#[test]
fn verbose_logs_commands_and_replies_ferrocache() {
    verbose_logs_commands_and_replies(Target::Ferrocache);
}

#[test]
fn verbose_logs_commands_and_replies_memcached() {
    if Target::Memcached.available() {
        verbose_logs_commands_and_replies(Target::Memcached);
    }
}

/// ferrocache `-vvv`: its own state changes (memcached's are its
/// connection state machine's, `fd: going from conn_read to
/// conn_parse_cmd`, which ferrocache does not have): a connection yielding
/// its worker at the `-R` budget, a multi-get paused while its output waits
/// for the client, the end of a requested crawl. `-vv` logs none of them.
#[test]
fn very_verbose_logs_state_changes() {
    let state_lines = |flag: &str| -> String {
        let v = start_logged_with(Target::Ferrocache, &[flag, "-R", "2"]);
        let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let big = "v".repeat(200 * 1024);
        let mut req = String::new();
        for k in ["b1", "b2", "b3"] {
            req.push_str(&format!("set {k} 0 0 {}\r\n{big}\r\n", big.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; 3 * "STORED\r\n".len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, "STORED\r\n".repeat(3).as_bytes());
        // ten requests in one packet, two served per turn
        s.write_all("get nokey\r\n".repeat(10).as_bytes()).unwrap();
        let mut got = vec![0u8; 10 * "END\r\n".len()];
        s.read_exact(&mut got).unwrap();
        // three values, 600 KiB: more than one reply buffer's worth
        s.write_all(b"get b1 b2 b3\r\n").unwrap();
        let want = 3 * (big.len() + "VALUE b1 0 204800\r\n\r\n".len()) + 5;
        let mut reply = vec![0u8; want];
        s.read_exact(&mut reply).unwrap();
        assert!(reply.ends_with(b"END\r\n"));
        s.write_all(b"lru_crawler crawl all\r\n").unwrap();
        let mut ok = [0u8; 4];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK\r\n");
        // the crawl runs on the clock thread's next ticks
        let quiet_flag = flag == "-vv";
        let done = eventually(Duration::from_secs(20), || {
            let log = std::fs::read_to_string(&v.log).unwrap_or_default();
            quiet_flag || log.contains("lru crawler: requested crawl finished")
        });
        assert!(done, "no end of crawl logged");
        // the log is written as things happen; give it a moment
        thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(&v.log).unwrap()
    };
    let trace = state_lines("-vvv");
    for want in [
        ": request budget (-R) used up, yielding",
        ": reply paused at ",
        "lru crawler: requested crawl finished",
    ] {
        assert!(trace.contains(want), "-vvv did not log {want:?}:\n{trace}");
    }
    let debug = state_lines("-vv");
    assert!(debug.contains(" get b1 b2 b3"), "{debug}");
    for absent in ["yielding", "paused", "crawl finished"] {
        assert!(!debug.contains(absent), "-vv logged {absent:?}:\n{debug}");
    }
}

/// `verbosity 2` on a quiet server turns the -vv lines on from then on,
/// and `stats settings` shows it (memcached caps the level at 2).
fn verbosity_command_turns_logging_on(target: Target) {
    let bin = target.program();
    let v = start_logged(target, "-C");
    let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut roundtrip = |req: &str, want: &str| {
        s.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want, "{bin}: {req:?}");
    };
    roundtrip("get quiet_before\r\n", "END\r\n");
    roundtrip("verbosity 9\r\n", "OK\r\n");
    roundtrip("get loud_after\r\n", "END\r\n");
    s.write_all(b"stats settings\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    while !all.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    let settings = String::from_utf8_lossy(&all);
    assert!(
        settings.contains("STAT verbosity 2\r\n"),
        "{bin}: {settings}"
    );
    let logged = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&v.log).unwrap_or_default();
        log.contains(" get loud_after")
    });
    let log = std::fs::read_to_string(&v.log).unwrap_or_default();
    assert!(logged, "{bin} logged nothing after verbosity 2:\n{log}");
    assert!(
        !log.contains("quiet_before"),
        "{bin} logged before verbosity:\n{log}"
    );
}

#[test]
fn verbosity_command_turns_logging_on_ferrocache() {
    verbosity_command_turns_logging_on(Target::Ferrocache);
}

#[test]
fn verbosity_command_turns_logging_on_memcached() {
    if Target::Memcached.available() {
        verbosity_command_turns_logging_on(Target::Memcached);
    }
}
