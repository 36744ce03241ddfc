//! ASCII authentication (`-Y FILE`), run against ferrocache and memcached
//! 1.6.18 with the same bytes: what an unauthenticated connection is
//! answered, the token's malformed forms, memcached's way of answering only
//! the last of several attempts pipelined in one write, the connections it
//! closes, the counters, and reading the file again on SIGHUP.

#[macro_use]
mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::tools::{Process, Target, TempDir};
use common::{eventually, stat_str, stat_u64, transcript, Conn, Server, CLOSED};

const UNAUTHENTICATED: &str = "CLIENT_ERROR unauthenticated\r\n";

/// The auth file every server of this test binary reads: two entries, the
/// second with a `:` in its password.
fn auth_file() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("ferrocache-auth-{}", std::process::id()));
        std::fs::write(&path, "user:pass\nfoo:bar:baz\n").expect("write the auth file");
        path.to_string_lossy().into_owned()
    })
}

/// Before a token, every command is refused, whatever it is; the token
/// opens the connection for everything after it.
const BEFORE_AND_AFTER: &[(&str, &str)] = &[
    ("get a\r\n", UNAUTHENTICATED),
    ("mg a v\r\n", UNAUTHENTICATED),
    ("version\r\n", UNAUTHENTICATED),
    ("quit\r\n", UNAUTHENTICATED),
    ("set a 0 0\r\n", UNAUTHENTICATED),
    ("add a 0 0 9\r\nuser pass\r\n", UNAUTHENTICATED),
    ("set a 0 0 9\r\nuser pass\r\n", "STORED\r\n"),
    ("get a\r\n", "END\r\n"),
    (
        "set a 0 0 1\r\nx\r\nget a\r\n",
        "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    ),
];
table!(
    before_and_after,
    &["-Y", super::auth_file()],
    BEFORE_AND_AFTER
);

/// The token's malformed forms, each answered with memcached's words; the
/// key, flags, exptime and `noreply` of the token's line are not read.
const BAD_TOKENS: &[(&str, &str)] = &[
    (
        "set a 0 0 8\r\nuser bad\r\n",
        "CLIENT_ERROR authentication failure\r\n",
    ),
    (
        "set a 0 0 4\r\nuser\r\n",
        "CLIENT_ERROR bad authentication token format\r\n",
    ),
    (
        "set a 0 0 9\r\nfoo bar:b\r\n",
        "CLIENT_ERROR authentication failure\r\n",
    ),
    // 9 bytes are "user pass", then "X\r" where "\r\n" must be: the "\n"
    // after them is left over and waits, alone, for more input
    (
        "set a 0 0 9\r\nuser passX\r\n",
        "CLIENT_ERROR bad command line termination\r\n",
    ),
    // that "\n" is an empty line, refused, and so is the get after it: of
    // the two answers only the last is sent
    ("get a\r\n", UNAUTHENTICATED),
    ("set x y z 11 noreply\r\nfoo bar:baz\r\n", "STORED\r\n"),
    ("get x\r\n", "END\r\n"),
];
table!(bad_tokens, &["-Y", super::auth_file()], BAD_TOKENS);

/// memcached answers each attempt into the same reply until it sends its
/// replies, so of attempts pipelined in one write only the last answer
/// arrives; once a token is accepted, the requests after it in the same
/// write are answered as usual.
const PIPELINED: &[(&str, &str)] = &[
    ("get a\r\nget b\r\nversion\r\n", UNAUTHENTICATED),
    ("set a 0 0 8\r\nuser bad\r\nget a\r\n", UNAUTHENTICATED),
    (
        "get a\r\nset a 0 0 9\r\nuser pass\r\nset b 0 0 1\r\nx\r\nget b\r\n",
        "STORED\r\nSTORED\r\nVALUE b 0 1\r\nx\r\nEND\r\n",
    ),
];
table!(pipelined, &["-Y", super::auth_file()], PIPELINED);

/// A line not found in the first 2048 bytes closes the connection, as does
/// a token too large for memcached's 16 KiB read buffer.
fn closes(server: &Server) {
    let long_line = "x".repeat(2049);
    transcript(server, &[(long_line.as_str(), CLOSED)]);
    let big = format!("set a 0 0 20000\r\n{}\r\n", "y".repeat(20_000));
    transcript(server, &[(big.as_str(), CLOSED)]);
    // a line of 2048 bytes is still waited for, and then refused
    let mut conn = server.connect();
    conn.send("z".repeat(2048));
    conn.expect_silence(Duration::from_millis(200));
    conn.send("\r\nset a 0 0 9\r\nuser pass\r\n");
    conn.expect("STORED\r\n");
}
both!(closes, &["-Y", super::auth_file()]);

/// `auth_cmds` counts tokens checked, `auth_errors` those refused; other
/// refusals count neither. `stats settings` names the file (memcached's
/// `auth_enabled_ascii`) and says that `-Y` made the protocol ASCII.
fn counters_and_settings(server: &Server) {
    let mut conn = server.connect();
    conn.send("get a\r\n");
    conn.expect(UNAUTHENTICATED);
    conn.send("set a 0 0 8\r\nuser bad\r\n");
    conn.expect("CLIENT_ERROR authentication failure\r\n");
    conn.send("set a 0 0 4\r\nuser\r\n");
    conn.expect("CLIENT_ERROR bad authentication token format\r\n");
    conn.send("set a 0 0 9\r\nuser pass\r\n");
    conn.expect("STORED\r\n");
    let stats = conn.stats("");
    assert_eq!(stat_u64(&stats, "auth_cmds"), 2);
    assert_eq!(stat_u64(&stats, "auth_errors"), 1);
    assert_eq!(stat_u64(&stats, "cmd_set"), 0, "a token is not a set");
    let settings = conn.stats("settings");
    assert_eq!(stat_str(&settings, "auth_enabled_ascii"), auth_file());
    assert_eq!(stat_str(&settings, "binding_protocol"), "ascii");
}
both!(counters_and_settings, &["-Y", super::auth_file()]);

/// Without `-Y`, a `set` is a set and the setting says no.
fn without_auth(server: &Server) {
    let mut conn = server.connect();
    conn.send("set a 0 0 9\r\nuser pass\r\nget a\r\n");
    conn.expect("STORED\r\nVALUE a 0 9\r\nuser pass\r\nEND\r\n");
    let settings = conn.stats("settings");
    assert_eq!(stat_str(&settings, "auth_enabled_ascii"), "no");
    assert_eq!(stat_u64(&conn.stats(""), "auth_cmds"), 0);
}
both!(without_auth, &[]);

/// Whether `user pass` is accepted on a new connection to `process`.
fn accepted(process: &Process, user: &str, pass: &str) -> bool {
    let token = format!("{user} {pass}");
    let mut conn = Conn::new(common::Stream::Tcp(
        std::net::TcpStream::connect(process.addr()).expect("connect"),
    ));
    conn.send(format!("set k 0 0 {}\r\n{token}\r\n", token.len()));
    match conn.read_line().as_slice() {
        b"STORED\r\n" => true,
        b"CLIENT_ERROR authentication failure\r\n" => false,
        other => panic!("unexpected answer {}", String::from_utf8_lossy(other)),
    }
}

/// SIGHUP reads the file again: the new entries replace the old ones for
/// connections made after it; a file that has become malformed or missing
/// leaves the entries in force.
fn sighup_reloads(target: Target) {
    if !target.available() {
        return;
    }
    let dir = TempDir::new("auth-reload");
    let file = dir.path("auth");
    std::fs::write(&file, "old:one\n").unwrap();
    let process = Process::start(target, &["-Y", &file.to_string_lossy()]);
    assert!(accepted(&process, "old", "one"));
    let hup = |pid: u32| {
        // SAFETY: kill only sends a signal to the server under test.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    };
    std::fs::write(&file, "new:two\n").unwrap();
    hup(process.pid());
    // memcached reads the file on its next clock tick
    assert!(
        eventually(Duration::from_secs(3), || accepted(&process, "new", "two")),
        "{target:?}: the new entry is not accepted after SIGHUP"
    );
    assert!(
        !accepted(&process, "old", "one"),
        "{target:?}: the old entry is still accepted"
    );
    std::fs::write(&file, "broken\n").unwrap();
    hup(process.pid());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        accepted(&process, "new", "two"),
        "{target:?}: a bad reload lost the entries"
    );
    std::fs::remove_file(&file).unwrap();
    hup(process.pid());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        accepted(&process, "new", "two"),
        "{target:?}: a missing file lost the entries"
    );
}

#[test]
fn sighup_reloads_ferrocache() {
    sighup_reloads(Target::Ferrocache);
}

#[test]
fn sighup_reloads_memcached() {
    sighup_reloads(Target::Memcached);
}
