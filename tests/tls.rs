//! TLS (`-Z`), run against ferrocache and memcached 1.6.18 with the same
//! certificates and the same bytes: commands, pipelining and large values
//! over TLS, the `ssl_*` lines of `stats settings` and `stats`, plain
//! listeners beside TLS ones (`notls:`), client certificates requested,
//! required and refused, minimum version and cipher lists, session
//! resumption, `refresh_certs` while clients are connected, garbage and
//! truncated handshakes, idle timeout, start-up refusals, and real clients
//! (`openssl s_client`, pymemcache with an `SSLContext`).
//!
//! The certificates are made once per run by the `openssl` command (see
//! `common::tls`); without it the tests say so loudly and pass, except
//! under `CI`, where they fail.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{certs, client_config, connect, ClientCert};
use common::tools::{args, free_port, payload, require, run, Process, Target, TempDir, PYTHON};
use common::{stat_str, stat_u64, transcript, Conn, Server, Stream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// `-Z` with the test server certificate, then `extra` `-o` options
/// (`",ssl_session_cache"`…); `None` without openssl.
fn tls_args(extra: &str) -> Option<Vec<String>> {
    let c = certs()?;
    Some(vec![
        "-Z".into(),
        "-o".into(),
        format!(
            "ssl_chain_cert={},ssl_key={}{extra}",
            c.server_cert.display(),
            c.server_key.display()
        ),
    ])
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Like `both!`, with the TLS flags and `extra` options: `name::ferrocache`
/// (in-process) and `name::memcached`.
macro_rules! tls_both {
    ($test:ident, $extra:expr) => {
        tls_both!($test, $extra, []);
    };
    ($test:ident, $extra:expr, [$($flag:expr),*]) => {
        mod $test {
            #[allow(unused_imports)]
            use super::*;

            fn args() -> Option<Vec<String>> {
                let mut args = super::tls_args($extra)?;
                args.extend([$($flag.to_string()),*]);
                Some(args)
            }

            #[test]
            fn ferrocache() {
                if let Some(args) = args() {
                    let server = crate::common::Server::ferrocache(&super::strs(&args));
                    super::$test(&server);
                }
            }

            #[test]
            fn memcached() {
                if let Some(args) = args() {
                    if let Some(server) = crate::common::memcached_or_skip(&super::strs(&args)) {
                        super::$test(&server);
                    }
                }
            }
        }
    };
}

/// `both!` for a plain server (no TLS flags).
macro_rules! table_plain {
    ($test:ident, $table:expr) => {
        mod $test {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn ferrocache() {
                let server = crate::common::Server::ferrocache(&[]);
                crate::common::transcript(&server, $table);
            }

            #[test]
            fn memcached() {
                if let Some(server) = crate::common::memcached_or_skip(&[]) {
                    crate::common::transcript(&server, $table);
                }
            }
        }
    };
}

/// `both!` for a test function on a plain server.
macro_rules! both_plain {
    ($test:ident) => {
        mod $test {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn ferrocache() {
                super::$test(&crate::common::Server::ferrocache(&[]));
            }

            #[test]
            fn memcached() {
                if let Some(server) = crate::common::memcached_or_skip(&[]) {
                    super::$test(&server);
                }
            }
        }
    };
}

/// The servers a test can run against here: ferrocache, and memcached
/// when it is installed (its absence is loud, or a failure under CI).
fn targets() -> Vec<Target> {
    let mut all = vec![Target::Ferrocache];
    if Target::Memcached.available() {
        all.push(Target::Memcached);
    }
    all
}

/// Both servers as child processes (for what an in-process server cannot
/// show: its own listeners, start-up, signals); empty without openssl.
fn processes(extra_opts: &str, flags: &[&str]) -> Vec<Process> {
    [Target::Ferrocache, Target::Memcached]
        .into_iter()
        .filter_map(|t| process(t, extra_opts, flags))
        .collect()
}

/// One of them; `None` without openssl or without memcached.
fn process(target: Target, extra_opts: &str, flags: &[&str]) -> Option<Process> {
    let base = tls_args(extra_opts)?;
    if !targets().contains(&target) {
        return None;
    }
    let mut all = strs(&base);
    all.extend_from_slice(flags);
    Some(Process::start(target, &all))
}

/// Whether a client presenting `cert` is served: its handshake completes
/// and `version` is answered.
fn served(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut s) = connect(addr, config) else {
        return false;
    };
    if s.write_all(b"version\r\n").and_then(|_| s.flush()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION "))
}

fn conn_with(server: &Server, config: &Arc<rustls::ClientConfig>) -> Conn {
    let s = connect(server.tcp_addr(), config).expect("TLS handshake");
    Conn::new(Stream::Tls(Box::new(s)))
}

// ---------------------------------------------------------------------------
// The protocol over TLS
// ---------------------------------------------------------------------------

/// Storage, retrieval, arithmetic and meta commands, pipelined and
/// one by one, answered over TLS with the same bytes as in the clear.
const COMMANDS: &[(&str, &str)] = &[
    ("set a 5 0 3\r\nabc\r\n", "STORED\r\n"),
    ("get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n"),
    (
        "append a 0 0 2\r\nde\r\nget a b\r\n",
        "STORED\r\nVALUE a 5 5\r\nabcde\r\nEND\r\n",
    ),
    ("set n 0 0 2 noreply\r\n41\r\nincr n 1\r\n", "42\r\n"),
    ("mg a v f s\r\n", "VA 5 f5 s5\r\nabcde\r\n"),
    (
        "ms m 2 T0\r\nhi\r\nmg m v\r\nmn\r\n",
        "HD\r\nVA 2\r\nhi\r\nMN\r\n",
    ),
    ("delete a\r\ndelete a\r\n", "DELETED\r\nNOT_FOUND\r\n"),
    ("bogus\r\n", "ERROR\r\n"),
];

fn commands(server: &Server) {
    transcript(server, COMMANDS);
}
tls_both!(commands, "");

/// Values up to 1 MB in both directions, and a multi-get whose replies
/// outgrow every buffer on the way, are delivered byte for byte; a client
/// that reads its replies late gets all of them.
fn large_values(server: &Server) {
    let mut conn = server.connect();
    let mut want = Vec::new();
    let mut keys = String::new();
    for i in 0..8u8 {
        let value = payload(1000 * 1000 - usize::from(i) * 1111, i);
        let mut req = format!("set big{i} {i} 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        conn.roundtrip(req, "STORED\r\n");
        want.extend_from_slice(format!("VALUE big{i} {i} {}\r\n", value.len()).as_bytes());
        want.extend_from_slice(&value);
        want.extend_from_slice(b"\r\n");
        keys.push_str(&format!(" big{i}"));
    }
    want.extend_from_slice(b"END\r\n");
    // ten multi-gets of 8 MB each, sent before any reply is read
    let request = format!("get{keys}\r\n").repeat(10);
    conn.send(request);
    std::thread::sleep(Duration::from_millis(300));
    // meanwhile another client is served
    let first = &want[..want.windows(2).position(|w| w == b"\r\n").unwrap() + 2 + 1000 * 1000 + 2];
    let mut other = server.connect();
    other.send("get big0 none\r\n");
    other.expect(first);
    other.expect("END\r\n");
    for _ in 0..10 {
        let got = conn.read_exact_n(want.len());
        assert!(got == want, "a multi-get reply differs over TLS");
    }
}
tls_both!(large_values, "");

/// Without `-Z`, `refresh_certs` is refused in memcached's words, even
/// with `noreply`.
const NOT_ENABLED: &[(&str, &str)] = &[
    ("refresh_certs\r\n", "Error TLS not enabled\r\n"),
    ("refresh_certs noreply\r\n", "Error TLS not enabled\r\n"),
];
table_plain!(refresh_without_tls, NOT_ENABLED);

// ---------------------------------------------------------------------------
// stats
// ---------------------------------------------------------------------------

/// The `ssl_*` lines of `stats settings` as memcached prints them for
/// these options (the verify mode as OpenSSL's flags: 2 is 3), and the
/// TLS lines of `stats`.
fn settings_and_stats(server: &Server) {
    let c = certs().expect("checked");
    let mut conn = server.connect();
    let settings = conn.stats("settings");
    let ssl: Vec<String> = settings
        .iter()
        .filter(|(k, _)| k.starts_with("ssl_"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let want = [
        "ssl_enabled yes".to_string(),
        format!("ssl_chain_cert {}", c.server_cert.display()),
        format!("ssl_key {}", c.server_key.display()),
        "ssl_verify_mode 3".into(),
        "ssl_keyformat 1".into(),
        "ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384".into(),
        format!("ssl_ca_cert {}", c.ca.display()),
        "ssl_wbuf_size 32768".into(),
        "ssl_session_cache yes".into(),
        "ssl_kernel_tls no".into(),
        "ssl_min_version tlsv1.2".into(),
    ];
    assert_eq!(ssl, want);
    let stats = conn.stats("");
    let names: Vec<&str> = stats
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("ssl_") || k.contains("cert"))
        .collect();
    assert_eq!(
        names,
        [
            "ssl_new_sessions",
            "ssl_handshake_errors",
            "time_since_server_cert_refresh"
        ]
    );
    // TLS 1.3 sends its session tickets after the handshake; at least the
    // probe's and this connection's were stored
    assert!(stat_u64(&stats, "ssl_new_sessions") >= 1, "{stats:?}");
}
tls_both!(
    settings_and_stats,
    &format!(
        ",ssl_verify_mode=2,ssl_ca_cert={},ssl_wbuf_size=32,ssl_session_cache,\
         ssl_ciphers=ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        certs()
            .map(|c| c.ca.display().to_string())
            .unwrap_or_default()
    )
);

/// Without `-Z`, `stats settings` still has the `ssl_*` lines (TLS off)
/// and `stats` has none.
fn settings_without_tls(server: &Server) {
    let mut conn = server.connect();
    let settings = conn.stats("settings");
    assert_eq!(stat_str(&settings, "ssl_enabled"), "no");
    assert_eq!(stat_str(&settings, "ssl_chain_cert"), "(null)");
    assert_eq!(stat_str(&settings, "ssl_ca_cert"), "NULL");
    assert_eq!(stat_str(&settings, "ssl_min_version"), "tlsv1.2");
    let stats = conn.stats("");
    assert!(
        !stats.iter().any(|(k, _)| k.starts_with("ssl_")),
        "{stats:?}"
    );
}
both_plain!(settings_without_tls);

// ---------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------

/// `-l notls:ADDR` opens a plain listener beside the TLS one; a plain
/// client on the TLS port is never answered in the clear and is closed.
#[test]
fn notls_listener_beside_tls() {
    for target in [Target::Ferrocache, Target::Memcached] {
        let plain_port = free_port();
        let notls = format!("notls:127.0.0.1:{plain_port}");
        let Some(p) = process(target, "", &["-l", &notls]) else {
            continue;
        };
        let who = format!("{target:?}");
        let mut plain = TcpStream::connect(("127.0.0.1", plain_port)).expect("plain port");
        plain
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        plain.write_all(b"set k 0 0 1\r\nv\r\nget k\r\n").unwrap();
        let mut buf = vec![0u8; 64];
        let mut got = Vec::new();
        while got.len() < 28 {
            let n = plain.read(&mut buf).expect("reply on the plain port");
            assert!(n > 0, "{who}: plain port closed");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n", "{who}");
        // plain text on the TLS port
        let mut s = TcpStream::connect(p.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"get k\r\n").unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all); // end of stream or a reset
        assert!(
            !all.windows(3).any(|w| w == b"END") && !all.starts_with(b"VALUE"),
            "{who}: answered in the clear: {all:?}"
        );
        // and the TLS port still serves TLS
        let config = client_config(certs().unwrap(), ClientCert::None, None);
        assert!(served(p.addr(), &config), "{who}");
    }
}

// ---------------------------------------------------------------------------
// Client certificates, versions, ciphers, resumption
// ---------------------------------------------------------------------------

fn ca_opts(mode: u8) -> String {
    let ca = certs()
        .map(|c| c.ca.display().to_string())
        .unwrap_or_default();
    format!(",ssl_verify_mode={mode},ssl_ca_cert={ca}")
}

/// `ssl_verify_mode=2` (require): a client certificate the CA signed is
/// served; none, or one the CA did not sign, is refused.
fn certificate_required(server: &Server) {
    let c = certs().unwrap();
    let addr = server.tcp_addr();
    assert!(served(addr, &client_config(c, ClientCert::Signed, None)));
    assert!(!served(addr, &client_config(c, ClientCert::None, None)));
    assert!(!served(addr, &client_config(c, ClientCert::Rogue, None)));
    // the same over TLS 1.2, where the refusal comes within the handshake
    let v12 = Some(&[&rustls::version::TLS12][..]);
    assert!(served(addr, &client_config(c, ClientCert::Signed, v12)));
    assert!(!served(addr, &client_config(c, ClientCert::None, v12)));
    assert!(!served(addr, &client_config(c, ClientCert::Rogue, v12)));
    // refused clients cost nothing: the server goes on serving
    let mut conn = server.connect();
    conn.send("version\r\n");
    conn.expect_line_prefix("VERSION ");
    let stats = conn.stats("");
    if !server.is_memcached() {
        // every refused handshake counts (memcached counts only those that
        // fail in its listener's first attempt)
        assert!(stat_u64(&stats, "ssl_handshake_errors") >= 4, "{stats:?}");
    }
}
tls_both!(certificate_required, &ca_opts(2));

/// `ssl_verify_mode=3` (once) requires a certificate as 2 does.
fn certificate_once(server: &Server) {
    let c = certs().unwrap();
    let addr = server.tcp_addr();
    assert!(served(addr, &client_config(c, ClientCert::Signed, None)));
    assert!(!served(addr, &client_config(c, ClientCert::None, None)));
}
tls_both!(certificate_once, &ca_opts(3));

/// `ssl_verify_mode=1` (request): a client without a certificate is
/// served, one with a certificate the CA did not sign is not.
fn certificate_requested(server: &Server) {
    let c = certs().unwrap();
    let addr = server.tcp_addr();
    assert!(served(addr, &client_config(c, ClientCert::Signed, None)));
    assert!(served(addr, &client_config(c, ClientCert::None, None)));
    assert!(!served(addr, &client_config(c, ClientCert::Rogue, None)));
}
tls_both!(certificate_requested, &ca_opts(1));

/// `ssl_min_version=3`: a TLS 1.2 client is refused, TLS 1.3 served.
fn minimum_version(server: &Server) {
    let c = certs().unwrap();
    let v12 = Some(&[&rustls::version::TLS12][..]);
    let v13 = Some(&[&rustls::version::TLS13][..]);
    assert!(!served(
        server.tcp_addr(),
        &client_config(c, ClientCert::None, v12)
    ));
    assert!(served(
        server.tcp_addr(),
        &client_config(c, ClientCert::None, v13)
    ));
}
tls_both!(minimum_version, ",ssl_min_version=3");

/// `ssl_ciphers` decides the TLS 1.2 suite; TLS 1.3 is not narrowed.
fn cipher_list(server: &Server) {
    let c = certs().unwrap();
    let v12 = Some(&[&rustls::version::TLS12][..]);
    let s = connect(server.tcp_addr(), &client_config(c, ClientCert::None, v12)).expect("TLS 1.2");
    let suite = s.conn.negotiated_cipher_suite().expect("a suite");
    assert_eq!(
        format!("{:?}", suite.suite()),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    );
    assert!(served(
        server.tcp_addr(),
        &client_config(c, ClientCert::None, None)
    ));
}
tls_both!(cipher_list, ",ssl_ciphers=ECDHE-RSA-CHACHA20-POLY1305");

/// Whether a second connection with the same client resumes the first's
/// session, over `version`.
fn resumes(server: &Server, version: &'static rustls::SupportedProtocolVersion) -> bool {
    let c = certs().unwrap();
    let config = client_config(c, ClientCert::None, Some(&[version][..]));
    let mut first = conn_with(server, &config);
    // TLS 1.3 tickets arrive after the handshake: read a reply first
    first.send("version\r\n");
    first.expect_line_prefix("VERSION ");
    let s = connect(server.tcp_addr(), &config).expect("second connection");
    s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// With `ssl_session_cache`, a client resumes its session (TLS 1.2 by
/// session id, TLS 1.3 by ticket) and `ssl_new_sessions` counts them.
fn resumption(server: &Server) {
    assert!(resumes(server, &rustls::version::TLS12), "TLS 1.2");
    assert!(resumes(server, &rustls::version::TLS13), "TLS 1.3");
    let stats = server.connect().stats("");
    assert!(stat_u64(&stats, "ssl_new_sessions") >= 2, "{stats:?}");
}
tls_both!(resumption, ",ssl_session_cache");

/// Without it, clients still resume, by the stateless tickets OpenSSL
/// issues by default; nothing is stored, so nothing is counted.
fn resumption_by_ticket(server: &Server) {
    assert!(resumes(server, &rustls::version::TLS12), "TLS 1.2");
    assert!(resumes(server, &rustls::version::TLS13), "TLS 1.3");
    let stats = server.connect().stats("");
    assert!(
        !stats.iter().any(|(k, _)| k == "ssl_new_sessions"),
        "{stats:?}"
    );
}
tls_both!(resumption_by_ticket, "");

// ---------------------------------------------------------------------------
// refresh_certs
// ---------------------------------------------------------------------------

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .expect("read certificate")
        .next()
        .expect("one certificate")
        .expect("PEM")
        .to_vec()
}

fn peer_cert(conn: &rustls::ClientConnection) -> Vec<u8> {
    conn.peer_certificates().expect("a server certificate")[0].to_vec()
}

/// `refresh_certs` reads the files again: connections already open go on,
/// new ones get the new certificate; `noreply` silences the `OK`; a file
/// that cannot be loaded is reported in memcached's words and the
/// certificate in force stays.
#[test]
fn refresh_certs_while_connected() {
    let Some(c) = certs() else { return };
    for target in targets() {
        let dir = TempDir::new("refresh");
        let (cert, key) = (dir.path("chain.pem"), dir.path("key.pem"));
        std::fs::copy(&c.server_cert, &cert).unwrap();
        std::fs::copy(&c.server_key, &key).unwrap();
        let opts = format!(
            "ssl_chain_cert={},ssl_key={}",
            cert.display(),
            key.display()
        );
        let p = Process::start(target, &["-Z", "-o", &opts]);
        // a new client each time: a resumed session shows the certificate
        // of the session it resumes
        let config = || client_config(c, ClientCert::None, None);
        let before = connect(p.addr(), &config()).expect("first connection");
        assert_eq!(peer_cert(&before.conn), der(&c.server_cert));
        let mut old = Conn::new(Stream::Tls(Box::new(before)));
        old.roundtrip("set k 0 0 1\r\nv\r\n", "STORED\r\n");
        std::fs::copy(&c.server2_cert, &cert).unwrap();
        std::fs::copy(&c.server2_key, &key).unwrap();
        old.roundtrip("refresh_certs\r\n", "OK\r\n");
        old.roundtrip(
            "refresh_certs noreply\r\nget k\r\n",
            "VALUE k 0 1\r\nv\r\nEND\r\n",
        );
        let after = connect(p.addr(), &config()).expect("connection after the refresh");
        assert_eq!(peer_cert(&after.conn), der(&c.server2_cert), "{target:?}");
        let mut new = Conn::new(Stream::Tls(Box::new(after)));
        let stats = new.stats("");
        assert!(
            stat_u64(&stats, "time_since_server_cert_refresh") <= 2,
            "{target:?}"
        );
        // a chain file that is not PEM
        std::fs::write(&cert, "not a certificate\n").unwrap();
        new.send("refresh_certs\r\n");
        let line = new.read_line();
        let prefix = format!("Error loading the certificate chain: {} : ", cert.display());
        assert!(
            line.starts_with(prefix.as_bytes()) && line.ends_with(b"\r\n"),
            "{target:?}: {}",
            String::from_utf8_lossy(&line)
        );
        // the certificate in force is still served
        let again = connect(p.addr(), &config()).expect("connection after a failed refresh");
        assert_eq!(peer_cert(&again.conn), der(&c.server2_cert), "{target:?}");
        old.roundtrip("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n");
    }
}

// ---------------------------------------------------------------------------
// Hostile handshakes
// ---------------------------------------------------------------------------

/// The first flight of a real TLS client.
fn client_hello() -> Vec<u8> {
    let c = certs().unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn =
        rustls::ClientConnection::new(client_config(c, ClientCert::None, None), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// Reads until the server closes (or `limit` passes): what it sent and
/// whether it closed.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => {}
        }
    }
    (got, false)
}

/// Garbage where a ClientHello belongs, a memcached command in the clear,
/// and a ClientHello cut short: the first two are closed, the third waits
/// for the rest (a stalled handshake holds no more than its bytes), and
/// none of them keeps the server from serving a real client.
fn hostile_handshakes(server: &Server) {
    let addr = server.tcp_addr();
    let hello = client_hello();
    let garbage: Vec<u8> = (0..517u32).map(|i| (i * 7 + 3) as u8).collect();
    for bad in [&garbage[..], b"get a\r\nversion\r\n"] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(bad).unwrap();
        let (got, closed) = read_to_close(&mut s, Duration::from_secs(5));
        assert!(closed, "not closed after {} bytes of garbage", bad.len());
        assert!(
            !got.starts_with(b"END") && !got.starts_with(b"VERSION"),
            "{got:?}"
        );
    }
    // many handshakes stalled halfway, then a real client
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            s
        })
        .collect();
    let config = client_config(certs().unwrap(), ClientCert::Signed, None);
    assert!(
        served(addr, &config),
        "a stalled handshake blocked the server"
    );
    // a truncated handshake closed by the client
    for mut s in stalled {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let (got, closed) = read_to_close(&mut s, Duration::from_secs(5));
        assert!(closed, "a half-closed handshake stays open");
        assert!(!got.starts_with(b"VERSION"));
    }
    server.connect().roundtrip(
        "set z 0 0 1\r\nz\r\nget z\r\n",
        "STORED\r\nVALUE z 0 1\r\nz\r\nEND\r\n",
    );
}
tls_both!(hostile_handshakes, "");

/// `-o idle_timeout` closes an idle TLS connection as it closes a plain one.
fn idle_timeout(server: &Server) {
    let mut conn = server.connect();
    conn.send("version\r\n");
    conn.expect_line_prefix("VERSION ");
    conn.set_read_timeout(Duration::from_secs(8));
    let start = Instant::now();
    conn.expect_closed();
    assert!(start.elapsed() >= Duration::from_millis(900));
}
tls_both!(idle_timeout, ",idle_timeout=1");

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

/// Files that cannot be used stop the start with memcached's words and
/// exit status 64.
#[test]
fn bad_files_refuse_to_start() {
    let Some(c) = certs() else { return };
    let chain = c.server_cert.display().to_string();
    let key = c.server_key.display().to_string();
    let client_key = c.client_key.display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            args(&["-Z"]),
            "Error loading the certificate chain: (null) : ".into(),
        ),
        (
            args(&["-Z", "-o", &format!("ssl_chain_cert={chain}")]),
            "Error loading the key: (null) : ".into(),
        ),
        (
            args(&[
                "-Z",
                "-o",
                &format!("ssl_chain_cert={chain},ssl_key={client_key}"),
            ]),
            format!("Error loading the key: {client_key} : "),
        ),
        (
            args(&[
                "-Z",
                "-o",
                &format!("ssl_chain_cert=/nonexistent,ssl_key={key}"),
            ]),
            "Error loading the certificate chain: /nonexistent : ".into(),
        ),
        (
            args(&[
                "-Z",
                "-o",
                &format!("ssl_chain_cert={chain},ssl_key={key},ssl_ciphers=FOO"),
            ]),
            "Error setting the provided cipher(s): FOO".into(),
        ),
        (
            args(&[
                "-Z",
                "-o",
                &format!(
                    "ssl_chain_cert={chain},ssl_key={key},ssl_ca_cert=/none,ssl_verify_mode=1"
                ),
            ]),
            "Error loading the CA certificate: /none : ".into(),
        ),
    ];
    for target in targets() {
        for (flags, said) in &cases {
            let port = free_port().to_string();
            let mut full = args(&["-u", "root", "-p", &port, "-U", "0"]);
            full.extend(flags.iter().cloned());
            let r = run(target.program(), &full, &[]);
            assert_eq!(
                r.status.code(),
                Some(64),
                "{target:?} {flags:?}: {}",
                r.transcript()
            );
            assert!(
                r.stderr().lines().any(|l| l.starts_with(said.as_str())),
                "{target:?} {flags:?}: wanted a line starting {said:?}:\n{}",
                r.stderr()
            );
        }
    }
    // ferrocache refuses a verify mode it could never honour: no CA
    let r = run(
        Target::Ferrocache.program(),
        &args(&[
            "-u",
            "root",
            "-p",
            &free_port().to_string(),
            "-U",
            "0",
            "-Z",
            "-o",
            &format!("ssl_chain_cert={chain},ssl_key={key},ssl_verify_mode=2"),
        ]),
        &[],
    );
    assert_eq!(r.status.code(), Some(64), "{}", r.transcript());
    assert!(
        r.stderr().contains("ssl_verify_mode=2 needs ssl_ca_cert"),
        "{}",
        r.stderr()
    );
}

// ---------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------

/// `openssl s_client`, the operator's first check, with and without a
/// client certificate.
#[test]
fn openssl_s_client() {
    let Some(c) = certs() else { return };
    for p in processes(&ca_opts(1), &[]) {
        for with_cert in [false, true] {
            let port = p.port().to_string();
            let mut a = vec!["s_client", "-connect", &format!("127.0.0.1:{port}")]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            a.extend(args(&[
                "-CAfile",
                &c.ca.display().to_string(),
                "-quiet",
                "-verify_return_error",
            ]));
            if with_cert {
                a.extend(args(&[
                    "-cert",
                    &c.client_cert.display().to_string(),
                    "-key",
                    &c.client_key.display().to_string(),
                ]));
            }
            let out = s_client(&a, b"set sc 0 0 2\r\nok\r\nget sc\r\nquit\r\n");
            assert!(
                out.contains("STORED\r\nVALUE sc 0 2\r\nok\r\nEND\r\n"),
                "{:?} (client certificate: {with_cert}): {out}",
                p.target()
            );
        }
    }
}

/// Runs `openssl` with `input` on its standard input and returns its
/// standard output once it exits (the server closes after `quit`).
fn s_client(a: &[String], input: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(a)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().unwrap();
    // s_client sends what it reads once the handshake is done
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let _ = child.kill();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out
}

/// pymemcache with an `ssl.SSLContext`, with a client certificate that
/// the server requires.
#[test]
fn pymemcache_over_tls() {
    let Some(c) = certs() else { return };
    if !require(
        "pymemcache",
        common::tools::have_pymemcache("pymemcache"),
        "python3-pymemcache",
    ) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pymemcache_tls.py"
    );
    for p in processes(&ca_opts(2), &[]) {
        let a = args(&[
            script,
            &p.port().to_string(),
            &c.ca.display().to_string(),
            &c.client_cert.display().to_string(),
            &c.client_key.display().to_string(),
        ]);
        let r = run(PYTHON, &a, &[]);
        assert!(
            r.status.success() && r.stdout().trim() == "OK",
            "{:?}: {}",
            p.target(),
            r.transcript()
        );
    }
}

// ---------------------------------------------------------------------------
// Limits and stopping
// ---------------------------------------------------------------------------

/// Over `-c`, memcached's refusal is written in the clear before any
/// handshake, so a TLS client fails its handshake; the clients served go
/// on, and closing them makes room.
fn connection_limit(server: &Server) {
    let c = certs().unwrap();
    let config = client_config(c, ClientCert::Signed, None);
    let mut served_conns = Vec::new();
    let mut refused = 0;
    for _ in 0..=24 {
        let handshake = connect(server.tcp_addr(), &config);
        let ok = handshake.is_ok_and(|s| {
            let mut conn = Conn::new(Stream::Tls(Box::new(s)));
            conn.send("version\r\n");
            let line = conn.read_line();
            let ok = line.starts_with(b"VERSION ");
            if ok {
                served_conns.push(conn);
            }
            ok
        });
        if !ok {
            refused += 1;
        }
    }
    assert!(refused >= 1 && !served_conns.is_empty() && served_conns.len() <= 24);
    // the words, as a plain client on the TLS port reads them
    let mut raw = TcpStream::connect(server.tcp_addr()).unwrap();
    let (got, closed) = read_to_close(&mut raw, Duration::from_secs(5));
    assert_eq!(got, b"ERROR Too many open connections\r\n");
    assert!(closed);
    for conn in &mut served_conns {
        conn.roundtrip("get x\r\n", "END\r\n");
    }
    served_conns.clear();
    let room = common::eventually(Duration::from_secs(5), || {
        served(server.tcp_addr(), &config)
    });
    assert!(room, "closing clients did not make room");
}
tls_both!(connection_limit, "", ["-c", "24", "-t", "1"]);

/// SIGTERM while a large reply is on its way over TLS: the client receives
/// all of it (the sealed records the transport still holds included), then
/// a clean end of stream.
#[test]
fn sigterm_finishes_tls_replies() {
    let Some(mut p) = process(Target::Ferrocache, "", &["-t", "2"]) else {
        return;
    };
    let config = client_config(certs().unwrap(), ClientCert::None, None);
    let mut conn = Conn::new(Stream::Tls(Box::new(connect(p.addr(), &config).unwrap())));
    let value = payload(1000 * 1000, 9);
    let mut req = format!("set t 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    conn.roundtrip(req, "STORED\r\n");
    conn.send("get t t t t t t t t\r\n");
    conn.expect(format!("VALUE t 0 {}\r\n", value.len()));
    // SAFETY: kill(2) on the child's pid, which this test owns
    unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) };
    conn.expect(&value);
    for _ in 1..8 {
        conn.expect(b"\r\n");
        conn.expect(format!("VALUE t 0 {}\r\n", value.len()));
        conn.expect(&value);
    }
    conn.expect("\r\nEND\r\n");
    conn.expect_closed();
    let status = p.child().wait().unwrap();
    assert!(status.success(), "{status}");
}

/// What a connection's TLS layer may hold of replies the socket has not
/// taken is bounded by `ssl_wbuf_size`: a megabyte written to a session
/// whose peer reads nothing is taken only up to the bound, and more once
/// the peer has read.
#[test]
fn sealed_replies_are_bounded_by_wbuf_size() {
    let Some(c) = certs() else { return };
    let argv = [
        "ferrocache".to_string(),
        "-Z".into(),
        "-o".into(),
        format!(
            "ssl_chain_cert={},ssl_key={},ssl_wbuf_size=8",
            c.server_cert.display(),
            c.server_key.display()
        ),
    ];
    let config = ferrocache::Config::from_args(argv).unwrap();
    let ctx = ferrocache::tls::TlsContext::open(&config.tls).expect("TLS context");
    assert_eq!(ctx.wbuf_size(), 8 * 1024);
    let mut server = ctx.accept().unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client =
        rustls::ClientConnection::new(client_config(c, ClientCert::None, None), name).unwrap();
    // the handshake, in memory
    while client.is_handshaking() || server.is_handshaking() {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        server.read_tls(&mut &wire[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut back = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut back).unwrap();
        }
        client.read_tls(&mut &back[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    let big = vec![7u8; 1 << 20];
    let taken = server.writer().write(&big).unwrap();
    assert!(taken > 0 && taken <= 8 * 1024, "took {taken} bytes");
    assert_eq!(server.writer().write(&big).unwrap(), 0, "full");
    // the peer reads: room again
    let mut wire = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut wire).unwrap();
    }
    assert!(server.writer().write(&big).unwrap() > 0);
}

/// Under `-Z`, `stats` and `stats settings` name the same lines in the same
/// order as memcached's (ferrocache's own two lines aside, at the end).
#[test]
fn tls_lines_where_memcached_prints_them() {
    let Some(args) = tls_args(",ssl_session_cache") else {
        return;
    };
    let args = strs(&args);
    let Some(memcached) = common::memcached_or_skip(&args) else {
        return;
    };
    let ferrocache = Server::ferrocache(&args);
    for sub in ["", "settings"] {
        let names = |s: &Server| -> Vec<String> {
            s.connect()
                .stats(sub)
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| {
                    ![
                        "worker_panics",
                        "pinned_bytes",
                        "pinned_refused",
                        "ferrocache_version",
                    ]
                    .contains(&k.as_str())
                })
                .collect()
        };
        assert_eq!(names(&ferrocache), names(&memcached), "stats {sub}");
    }
}
