//! Outside programs for the tests that drive them (`interop.rs`,
//! `scaleout.rs`): which server binary a check runs against, whether a tool
//! is installed (skip loudly, or fail under CI), spawned processes' output,
//! scratch directories and binary-safe payloads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::MEMCACHED;

/// Debian's python, the one with pymemcache (another python3 may come
/// first on PATH).
pub const PYTHON: &str = "/usr/bin/python3";
/// How long one tool run may take before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The server binary a check runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Ferrocache,
    Memcached,
}

impl Target {
    pub fn program(self) -> &'static str {
        match self {
            Target::Ferrocache => env!("CARGO_BIN_EXE_ferrocache"),
            Target::Memcached => MEMCACHED,
        }
    }

    /// False (after saying so) when the reference server is not installed.
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

/// A port nobody was listening on a moment ago, never handed out twice by
/// this process (the tests run in parallel).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = super::free_tcp_port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
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
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
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
