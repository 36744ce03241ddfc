//! Outside programs for the tests that drive them: which server a check
//! runs against ([`Target`]), the one launcher for a server binary as a
//! child process ([`Process`]), whether a tool is installed (skip loudly,
//! or fail under CI), spawned processes' output, scratch directories and
//! binary-safe payloads.
//!
//! Owns: everything about processes outside the test. Must not: know the
//! protocol beyond the `version` probe that says a server is up (the
//! byte-level client is `common::Conn`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The reference server.
pub const MEMCACHED: &str = "/usr/bin/memcached";
/// Debian's python, the one with pymemcache (another python3 may come
/// first on PATH).
pub const PYTHON: &str = "/usr/bin/python3";
/// How long one tool run may take before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a spawned server may take to answer its first `version`.
pub const STARTUP: Duration = Duration::from_secs(10);

/// Which server a check runs against: ferrocache, or the reference
/// memcached it must answer like. The one such type of every test file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Ferrocache,
    Memcached,
}

impl Target {
    /// The binary: the ferrocache this test run built, or Debian's memcached.
    pub fn program(self) -> &'static str {
        match self {
            Target::Ferrocache => env!("CARGO_BIN_EXE_ferrocache"),
            Target::Memcached => MEMCACHED,
        }
    }

    /// False (after saying so) when the reference server is not installed;
    /// under CI a panic instead (see [`require`]).
    pub fn available(self) -> bool {
        match self {
            Target::Ferrocache => true,
            Target::Memcached => require("memcached", Path::new(MEMCACHED).exists(), "memcached"),
        }
    }
}

/// Whether a test may go on. A missing tool skips loudly, or fails under CI.
pub fn require(tool: &str, present: bool, package: &str) -> bool {
    if present {
        return true;
    }
    let msg = format!("{tool} not installed (apt-get install {package})");
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so tests must not be skipped");
    }
    // Straight to the process's stderr: the harness hides the output of
    // passing tests, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {msg} ***\n*** the test needing {tool} did not run ***\n"
    );
    false
}

pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// pymemcache is importable (`module`: the part the test uses).
pub fn have_pymemcache(module: &str) -> bool {
    let present = Path::new(PYTHON).exists()
        && Command::new(PYTHON)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    require("pymemcache", present, "python3-pymemcache")
}

/// A TCP port nobody was listening on a moment ago on 127.0.0.1, never
/// handed out twice by this process (the tests run in parallel).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// The value following `flag` in `args` (`-U 1234` → `1234`).
pub fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// Collects a child's output on a thread so the child never blocks on a full pipe.
pub fn drain(
    mut from: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, handle)
}

pub fn snapshot(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// A server binary running as a child process, killed on drop: the one
/// launcher of every test that spawns a server, ferrocache's binary or
/// memcached alike.
pub struct Process {
    target: Target,
    child: Child,
    port: u16,
    unix: Option<PathBuf>,
    /// It speaks only the binary protocol (`-B binary`, `-S`).
    binary: bool,
    /// Standard error as read so far, unless it goes to a log file.
    stderr: Option<Arc<Mutex<Vec<u8>>>>,
    log: Option<PathBuf>,
    /// Started with `-Z`: its port speaks TLS (the probe presents the
    /// test CA's client certificate, which every verify mode accepts).
    tls: bool,
}

impl Process {
    /// `program -u root -l 127.0.0.1 -p <free port> -U 0 <args>` (a later
    /// flag wins), once it answers `version`: on the unix socket when
    /// `args` name one with `-s`. `-u root` lets the tests run as root
    /// (both servers refuse root without `-u`; they ignore it otherwise).
    /// A server that exits first, because another process took the port a
    /// moment after it was free, is retried on a new port.
    pub fn start(target: Target, args: &[&str]) -> Process {
        Process::launch(target, args, None)
    }

    /// [`Process::start`] with standard error written to `log`, and
    /// RUST_LOG unset so that ferrocache logs exactly what its flags ask.
    pub fn start_logged(target: Target, args: &[&str], log: &Path) -> Process {
        Process::launch(target, args, Some(log))
    }

    /// Exactly `args`, nothing added and no retry, for the tests of what
    /// the defaults are; `port` is where the server should answer.
    pub fn start_exact(target: Target, args: &[&str], port: u16) -> Process {
        spawn(target, args, port, None).unwrap_or_else(|why| panic!("{why}"))
    }

    fn launch(target: Target, args: &[&str], log: Option<&Path>) -> Process {
        // Addresses the caller chose (a unix socket, a UDP port): a new
        // TCP port would not help.
        let chosen = flag_value(args, "-s").is_some()
            || flag_value(args, "-U").is_some_and(|port| port != "0");
        let mut failures = Vec::new();
        for _attempt in 0..5 {
            let port = free_port();
            let port_arg = port.to_string();
            let mut full = vec!["-u", "root", "-l", "127.0.0.1", "-p", &port_arg, "-U", "0"];
            full.extend_from_slice(args);
            match spawn(target, &full, port, log) {
                Ok(process) => return process,
                Err(why) => failures.push(why),
            }
            if chosen {
                break;
            }
        }
        panic!("could not start {target:?}:\n{}", failures.join("\n"));
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its TCP address on 127.0.0.1.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself: to signal it, or wait for it to exit.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What it wrote to standard error so far (its log file's contents
    /// when it was started with one).
    pub fn stderr(&self) -> String {
        match (&self.stderr, &self.log) {
            (Some(buf), _) => snapshot(buf),
            (None, Some(log)) => std::fs::read_to_string(log).unwrap_or_default(),
            (None, None) => String::new(),
        }
    }

    /// Whether it answers `version` on a fresh connection. Ready once it
    /// answers a request, not merely accepts: the probe connection is then
    /// fully accounted for in its stats before the test runs. Under `-Y`
    /// the answer is the refusal of an unauthenticated request.
    fn answers_version(&self) -> bool {
        // a server bound to the binary protocol (-B binary, -S) closes a
        // text connection: ask it with a binary VERSION frame
        let binary = self.binary;
        let probe = |s: &mut dyn ReadWrite| -> bool {
            let mut buf = [0u8; 64];
            if binary {
                let mut frame = [0u8; 24];
                frame[0] = 0x80;
                frame[1] = 0x0b;
                return s.write_all(&frame).is_ok()
                    && matches!(s.read(&mut buf), Ok(n) if n >= 2 && buf[..2] == [0x81, 0x0b]);
            }
            s.write_all(b"version\r\n").is_ok()
                && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION ")
                    || buf[..n].starts_with(b"CLIENT_ERROR unauthenticated"))
        };
        let timeout = Some(Duration::from_secs(2));
        if self.tls && self.unix.is_none() {
            let Some(certs) = super::tls::certs() else {
                return false;
            };
            let config = super::tls::client_config(certs, super::tls::ClientCert::Signed, None);
            return super::tls::connect(self.addr(), &config).is_ok_and(|mut s| probe(&mut s));
        }
        match &self.unix {
            Some(path) => UnixStream::connect(path)
                .is_ok_and(|mut s| s.set_read_timeout(timeout).is_ok() && probe(&mut s)),
            None => TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
                .is_ok_and(|mut s| s.set_read_timeout(timeout).is_ok() && probe(&mut s)),
        }
    }
}

/// A stream the start-up probe can use.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `target args` and waits until it answers `version`: the process,
/// or what it said when it exited first. Panics when it does neither
/// within [`STARTUP`].
fn spawn(target: Target, args: &[&str], port: u16, log: Option<&Path>) -> Result<Process, String> {
    let program = target.program();
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    match log {
        Some(path) => {
            let file = std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            cmd.stderr(file).env_remove("RUST_LOG");
        }
        // Drained as it comes: an unread pipe would stall a server that
        // logs (`verbosity` turns memcached's logging on).
        None => {
            cmd.stderr(Stdio::piped());
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program} {args:?}: {e}"));
    let reader = child.stderr.take().map(drain);
    let mut process = Process {
        target,
        child,
        port,
        unix: flag_value(args, "-s").map(PathBuf::from),
        binary: flag_value(args, "-B") == Some("binary") || args.contains(&"-S"),
        stderr: reader.as_ref().map(|(buf, _)| Arc::clone(buf)),
        log: log.map(Path::to_path_buf),
        tls: args.contains(&"-Z"),
    };
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            if let Some((_, handle)) = reader {
                let _ = handle.join(); // all of it, up to EOF
            }
            return Err(format!(
                "{program} {args:?} exited with {status} before answering; stderr:\n{}",
                process.stderr()
            ));
        }
        if process.answers_version() {
            return Ok(process);
        }
        if Instant::now() > deadline {
            let said = process.stderr();
            drop(process);
            panic!("{program} {args:?} did not answer within {STARTUP:?}; stderr:\n{said}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A finished tool run.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything the tool said, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            self.stdout(),
            self.stderr()
        )
    }

    pub fn assert_success(&self) -> &Run {
        assert!(self.status.success(), "tool failed:\n{}", self.transcript());
        self
    }
}

/// Runs a program with no stdin and a clean libmemcached environment plus
/// `env` (so MEMCACHED_SERVERS only when asked), killing it after
/// [`TOOL_TIMEOUT`].
pub fn run(program: &str, args: &[String], env: &[(&str, &str)]) -> Run {
    let what = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("MEMCACHED_SERVERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (stdout, out_reader) = drain(child.stdout.take().expect("piped stdout"));
    let (stderr, err_reader) = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not finish within {TOOL_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    snapshot(&stdout),
                    snapshot(&stderr)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait for {what}: {e}"),
        }
    };
    let _ = out_reader.join();
    let _ = err_reader.join();
    let take = |buf: Arc<Mutex<Vec<u8>>>| {
        std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
    };
    Run {
        what,
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    }
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), tag)
    }

    /// A scratch directory under `base` (a tmpfs, say).
    pub fn under(base: &Path, tag: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = base.join(format!(
            "ferrocache-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes that exercise binary safety: every byte value, and the
/// protocol's own terminators inside the data.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let marker = b"\r\nEND\r\nVALUE x 0 1\r\n\0";
    if len > 2 * marker.len() {
        v[len / 2..len / 2 + marker.len()].copy_from_slice(marker);
    }
    v
}
