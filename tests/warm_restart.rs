//! Warm restart (`-e FILE`, issue 17), spawning the built binary: what a
//! graceful stop (SIGUSR1; SIGTERM too in ferrocache) keeps, and every
//! case that must start with a clean cache and say why. Where memcached
//! 1.6.18 has the behaviour the same check runs against it.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tools::{free_port, Process, Target, TempDir};
use common::{is_root, stat_str, stat_u64, Conn, Stream};

/// A directory on tmpfs (where a memory file belongs), removed on drop.
struct ShmDir(TempDir);

impl ShmDir {
    fn new(tag: &str) -> ShmDir {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        ShmDir(TempDir::under(&base, &format!("warm-{tag}")))
    }

    fn file(&self) -> PathBuf {
        self.0.path("cache")
    }

    fn meta(&self) -> PathBuf {
        self.0.path("cache.meta")
    }
}

fn start(target: Target, file: &Path, extra: &[&str]) -> Process {
    let file = file.to_string_lossy().into_owned();
    let mut args = vec!["-v", "-m", "64", "-e", &file];
    args.extend_from_slice(extra);
    Process::start(target, &args)
}

fn conn(p: &Process) -> Conn {
    let s = TcpStream::connect(p.addr()).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    Conn::new(Stream::Tcp(s))
}

/// Sends `sig` and waits for the process to exit (cleanly).
fn stop(p: &mut Process, sig: i32) {
    // SAFETY: kill only sends a signal to the server under test.
    assert_eq!(unsafe { libc::kill(p.pid() as i32, sig) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = p.child().try_wait().expect("wait") {
            if sig != libc::SIGKILL {
                assert!(status.success(), "{:?} exited with {status}", p.target());
            }
            return;
        }
        assert!(Instant::now() < deadline, "{:?} did not stop", p.target());
        thread::sleep(Duration::from_millis(10));
    }
}

/// What every restart test stores: a flushed item, plain, flagged, long
/// and short TTL, a base64 key, a value with protocol bytes in it, a large
/// item.
fn fill(c: &mut Conn) -> u64 {
    // flushed before the rest: its record is still in memory, and must
    // stay dead after a restart
    c.roundtrip("set flushed 0 0 3\r\nold\r\n", "STORED\r\n");
    c.roundtrip("flush_all\r\n", "OK\r\n");
    for i in 0..200 {
        c.roundtrip(
            format!(
                "set key{i} {i} 0 {}\r\nvalue-{i}\r\n",
                6 + i.to_string().len()
            ),
            "STORED\r\n",
        );
    }
    c.roundtrip("set ttl 0 3600 4\r\nlong\r\n", "STORED\r\n");
    c.roundtrip("set short 0 1 4\r\ngone\r\n", "STORED\r\n");
    c.roundtrip("ms Ymlu 3 b\r\nb64\r\n", "HD\r\n");
    c.roundtrip("set crlf 0 0 6\r\na\r\nb\r\n\r\n", "STORED\r\n");
    let big = "x".repeat(200_000);
    c.roundtrip(format!("set big 9 0 200000\r\n{big}\r\n"), "STORED\r\n");
    c.gets("key7").2
}

/// Checks what [`fill`] stored, after a restart.
fn check(c: &mut Conn, cas7: u64) {
    for i in 0..200 {
        let (flags, value, _) = c.gets(&format!("key{i}"));
        assert_eq!(
            (flags, value),
            (i, format!("value-{i}").into_bytes()),
            "key{i}"
        );
    }
    assert_eq!(c.gets("key7").2, cas7, "the cas unique is kept");
    c.roundtrip("get ttl\r\n", "VALUE ttl 0 4\r\nlong\r\nEND\r\n");
    c.roundtrip("get flushed\r\n", "END\r\n");
    c.roundtrip("get short\r\n", "END\r\n");
    // the item remembers its key came in base64: it answers in base64
    c.roundtrip("mg bin k v\r\n", "VA 3 kYmlu b\r\nb64\r\n");
    c.roundtrip("get crlf\r\n", "VALUE crlf 0 6\r\na\r\nb\r\n\r\nEND\r\n");
    let (flags, big, _) = c.gets("big");
    assert_eq!((flags, big.len()), (9, 200_000));
    c.roundtrip("set after 0 0 1\r\nz\r\n", "STORED\r\n");
    assert_ne!(c.gets("after").2, cas7);
    // a key's uniques go on growing across the restart (ferrocache's come
    // from where a record is written: not ordered across keys)
    c.roundtrip("set key7 7 0 7\r\nvalue-7\r\n", "STORED\r\n");
    assert!(c.gets("key7").2 > cas7, "the uniques go on above");
}

/// Stores, stops with `sig`, waits past the short TTL, starts again and
/// checks every item.
fn survives(target: Target, sig: i32) {
    if !target.available() {
        return;
    }
    let dir = ShmDir::new("survive");
    let mut p = start(target, &dir.file(), &[]);
    let cas7 = fill(&mut conn(&p));
    let items = conn(&p).stat("", "curr_items");
    stop(&mut p, sig);
    assert!(dir.meta().exists(), "{target:?}: no metadata written");
    thread::sleep(Duration::from_millis(2100));
    let p = start(target, &dir.file(), &[]);
    let mut c = conn(&p);
    let stats = c.stats("");
    // the flushed and the expired items count until they are next met
    // (both servers are lazy about them); a restart may drop them
    let restored = stat_u64(&stats, "curr_items");
    assert!(
        (items - 2..=items).contains(&restored),
        "{target:?}: {restored} of {items}"
    );
    assert!(stat_u64(&stats, "bytes") > 200_000);
    check(&mut c, cas7);
    let settings = c.stats("settings");
    assert_eq!(
        stat_str(&settings, "memory_file"),
        dir.file().to_string_lossy()
    );
}

#[test]
fn items_survive_sigusr1_ferrocache() {
    survives(Target::Ferrocache, libc::SIGUSR1);
}

#[test]
fn items_survive_sigusr1_memcached() {
    survives(Target::Memcached, libc::SIGUSR1);
}

/// Beyond memcached: SIGTERM saves too (systemctl restart, upgrades).
#[test]
fn items_survive_sigterm_ferrocache() {
    survives(Target::Ferrocache, libc::SIGTERM);
}

/// A start that could not restore: an empty cache, and the log says why.
fn starts_clean(p: &Process, why: &str) {
    let mut c = conn(p);
    c.roundtrip("get key1\r\n", "END\r\n");
    assert_eq!(c.stat("", "curr_items"), 0);
    let log = p.stderr();
    assert!(
        log.contains("[restart]") && log.contains(why),
        "{:?}: the log should say {why:?}:\n{log}",
        p.target()
    );
}

/// A saved cache in `dir`, stopped with SIGUSR1.
fn saved(target: Target, dir: &ShmDir) {
    let mut p = start(target, &dir.file(), &[]);
    fill(&mut conn(&p));
    stop(&mut p, libc::SIGUSR1);
    assert!(dir.meta().exists());
    // memcached refuses a restart within the second it stopped in
    // ("setting for [stop_time]"), which would hide the refusal tested
    if target == Target::Memcached {
        thread::sleep(Duration::from_millis(1100));
    }
}

fn refusals(target: Target) {
    if !target.available() {
        return;
    }
    let dir = ShmDir::new("refuse");
    // a stop that was not graceful leaves no metadata
    let mut p = start(target, &dir.file(), &[]);
    fill(&mut conn(&p));
    stop(&mut p, libc::SIGKILL);
    let p = start(target, &dir.file(), &[]);
    starts_clean(&p, "no metadata save file");
    drop(p);
    // a setting that shapes the memory differs
    saved(target, &dir);
    let p = start(target, &dir.file(), &["-I", "2m"]);
    starts_clean(&p, "[item_size_max]");
}

#[test]
fn sigkill_and_other_settings_start_clean_ferrocache() {
    refusals(Target::Ferrocache);
}

#[test]
fn sigkill_and_other_settings_start_clean_memcached() {
    refusals(Target::Memcached);
}

/// Damaged files never serve: truncated, zeroed or garbled metadata, a
/// garbled item, a truncated memory file. (memcached does not check its
/// files' contents: ferrocache alone.)
#[test]
fn damaged_files_start_clean() {
    let dir = ShmDir::new("damage");
    type Damage = fn(&ShmDir);
    let cases: [(&str, Damage, &str); 5] = [
        (
            "truncated metadata",
            |d| {
                let b = std::fs::read(d.meta()).unwrap();
                std::fs::write(d.meta(), &b[..b.len() / 2]).unwrap();
            },
            "metadata damaged",
        ),
        (
            "zeroed metadata",
            |d| {
                let n = std::fs::metadata(d.meta()).unwrap().len() as usize;
                std::fs::write(d.meta(), vec![0; n]).unwrap();
            },
            "metadata damaged",
        ),
        (
            "garbled metadata",
            |d| {
                let mut b = std::fs::read(d.meta()).unwrap();
                let at = b.len() - 20;
                b[at] ^= 0x10;
                std::fs::write(d.meta(), &b).unwrap();
            },
            "metadata damaged",
        ),
        (
            "a garbled item",
            |d| {
                let mut b = std::fs::read(d.file()).unwrap();
                let at = b.windows(8).position(|w| w == b"value-42").unwrap();
                b[at + 6] = b'9';
                std::fs::write(d.file(), &b).unwrap();
            },
            "does not match its metadata",
        ),
        (
            "a truncated memory file",
            |d| {
                let f = std::fs::OpenOptions::new().write(true).open(d.file());
                f.unwrap().set_len(4096).unwrap();
            },
            "does not match its metadata",
        ),
    ];
    for (what, damage, why) in cases {
        saved(Target::Ferrocache, &dir);
        damage(&dir);
        let p = start(Target::Ferrocache, &dir.file(), &[]);
        starts_clean(&p, why);
        let mut c = conn(&p);
        c.roundtrip("get key42\r\n", "END\r\n");
        assert!(p.stderr().contains(why), "{what}");
    }
}

/// `-o save_on_term=0`: SIGTERM stops without saving (SIGUSR1 still does).
#[test]
fn sigterm_can_be_told_not_to_save() {
    let dir = ShmDir::new("term0");
    let mut p = start(Target::Ferrocache, &dir.file(), &["-o", "save_on_term=0"]);
    fill(&mut conn(&p));
    stop(&mut p, libc::SIGTERM);
    assert!(!dir.meta().exists());
    let p = start(Target::Ferrocache, &dir.file(), &[]);
    starts_clean(&p, "no metadata save file");
}

/// `shutdown graceful` (with `-A`) saves as SIGUSR1 does; a plain
/// `shutdown` saves as SIGTERM does, unless `-o save_on_term=0`.
#[test]
fn the_shutdown_command_saves_as_the_signals_do() {
    for (command, term_saves, saved) in [
        ("shutdown graceful", "0", true),
        ("shutdown", "1", true),
        ("shutdown", "0", false),
    ] {
        let dir = ShmDir::new("shutdown");
        let opt = format!("save_on_term={term_saves}");
        let mut p = start(Target::Ferrocache, &dir.file(), &["-A", "-o", &opt]);
        fill(&mut conn(&p));
        conn(&p).send(format!("{command}\r\n"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.child().try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "{command}: still running");
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(dir.meta().exists(), saved, "{command}, {opt}");
    }
}

/// Clients that keep reading through a restart see every restored item
/// or no answer at all (connection refused while the server is down),
/// never a miss.
#[test]
fn a_restart_under_load_never_misses() {
    let dir = ShmDir::new("load");
    let port = free_port();
    let port_arg = port.to_string();
    let file = dir.file().to_string_lossy().into_owned();
    let args = [
        "-u",
        "root",
        "-l",
        "127.0.0.1",
        "-p",
        &port_arg,
        "-U",
        "0",
        "-m",
        "64",
        "-e",
        &file,
    ];
    let mut p = Process::start_exact(Target::Ferrocache, &args, port);
    let mut c = conn(&p);
    let mut batch = Vec::new();
    for i in 0..20_000 {
        write!(batch, "set k{i} 0 0 8 noreply\r\n{i:08}\r\n").unwrap();
    }
    c.send(&batch);
    c.roundtrip("mn\r\n", "MN\r\n");
    let done = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (done, hits) = (Arc::clone(&done), Arc::clone(&hits));
            thread::spawn(move || read_until(port, t, &done, &hits))
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    stop(&mut p, libc::SIGUSR1);
    let p = Process::start_exact(Target::Ferrocache, &args, port);
    thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw a miss");
    }
    assert!(hits.load(Ordering::Relaxed) > 100);
    drop(p);
}

/// Reads keys in a loop, reconnecting while the server is away; panics
/// on a miss.
fn read_until(port: u16, seed: u64, done: &AtomicBool, hits: &AtomicU64) {
    let mut i = seed * 7919;
    while !done.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
            thread::sleep(Duration::from_millis(2));
            continue;
        };
        let mut c = Conn::new(Stream::Tcp(s));
        while !done.load(Ordering::Relaxed) {
            i = (i + 7) % 20_000;
            if !c.try_send(format!("get k{i}\r\n")) {
                break;
            }
            let want = format!("VALUE k{i} 0 8\r\n");
            let Ok(line) = c.try_read_n(5) else {
                break;
            };
            assert_eq!(&line, b"VALUE", "a miss for a restored item: k{i}");
            if c.try_read_n(want.len() - 5).is_err() {
                break;
            }
            if c.try_read_n(15).is_err() {
                break;
            }
            hits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The binary with `args`, expected to refuse to start: its stderr.
fn refused(args: &[&str], setup: impl FnOnce(&mut Command)) -> String {
    let mut cmd = Command::new(Target::Ferrocache.program());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    setup(&mut cmd);
    let out = cmd.output().expect("spawn ferrocache");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(71), "{args:?}: {err}");
    err
}

/// A memory file that cannot be created, or not sized to -m, stops the
/// start with a clear message (memcached aborts, or dies of SIGBUS on
/// first use: ferrocache alone).
#[test]
fn unusable_memory_files_are_start_up_errors() {
    let port = free_port().to_string();
    let base = ["-l", "127.0.0.1", "-p", &port, "-U", "0", "-m", "64"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["-u", "root", "-e", "/nonexistent-dir/cache"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args, |_| {});
    assert!(
        err.contains("failed to open memory file /nonexistent-dir/cache"),
        "{err}"
    );

    // not writable by the user the server runs as
    let dir = ShmDir::new("perm");
    let file = dir.file().to_string_lossy().into_owned();
    let user = if is_root() { "nobody" } else { "root" };
    std::fs::set_permissions(
        dir.0.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let args = with(&["-u", user, "-e", &file]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args, |_| {});
    assert!(err.contains("Permission denied"), "{err}");
    std::fs::set_permissions(
        dir.0.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // in use by another server: two would overwrite each other's items
    let other = start(Target::Ferrocache, &dir.file(), &[]);
    let args = with(&["-u", "root", "-e", &file]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args, |_| {});
    assert!(err.contains("is in use by another process"), "{err}");
    drop(other);
    let _ = std::fs::remove_file(dir.file());

    // no room for -m: a file size limit stands in for a full filesystem
    let args = with(&["-u", "root", "-e", &file]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 1 << 20,
                    rlim_max: 1 << 20,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                Ok(())
            });
        }
    });
    assert!(err.contains("failed to size memory file"), "{err}");
}
