//! Warm restart benchmark (`-e`, issue 17): how long each server takes
//! from launch to serving every item a graceful stop (SIGUSR1) saved.
//!
//! `cargo bench --bench restart`: for 1,000,000 and 10,000,000 items
//! (`FC_RESTART_ITEMS=1000000,10000000`) of 100-byte values under keys
//! `key:0000000000`… at `-m 1024` (1M) or `-m 2560` (10M; memcached needs
//! ~190 B an item), `-t 4`, memory file in /dev/shm: fill, check every key,
//! stop with SIGUSR1; then three rounds of: launch, time until a multi-get
//! of the first, middle and last key answers with all three (a server
//! answers only once recovery is done), stop with SIGUSR1 (timed too).
//! After the first round every key is read back (not timed): a restart
//! that lost any fails the bench. Prints medians side by side and writes
//! `target/bench-report/restart.md`.
//! `FC_BENCH_SERVERS`, `FC_MEMCACHED`, `FC_FERROCACHE` as for the load bench.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{grouped, median, Kind};

const ROUNDS: usize = 3;

struct Run {
    child: Child,
    addr: SocketAddr,
}

fn launch(kind: Kind, args: &[String]) -> io::Result<Run> {
    let port = common::free_port()?;
    let child = Command::new(kind.binary())
        .args([
            "-u",
            "root",
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Run {
        child,
        addr: ([127, 0, 0, 1], port).into(),
    })
}

/// Polls until `get` of `keys` answers with every one of them.
fn wait_serving(run: &mut Run, keys: &[String], limit: Duration) -> io::Result<()> {
    let start = Instant::now();
    let request = format!("get {}\r\n", keys.join(" "));
    loop {
        if let Some(status) = run.child.try_wait()? {
            return Err(io::Error::other(format!("exited at start-up: {status}")));
        }
        if let Ok(mut s) = TcpStream::connect(run.addr) {
            s.set_read_timeout(Some(limit))?;
            s.write_all(request.as_bytes())?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.ends_with(b"END\r\n") {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let hits = buf.windows(6).filter(|w| w == b"VALUE ").count();
            if hits == keys.len() {
                return Ok(());
            }
            return Err(io::Error::other(format!(
                "{hits} of {} keys after the restart",
                keys.len()
            )));
        }
        if start.elapsed() > limit {
            return Err(io::Error::other("did not accept connections"));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// SIGUSR1, then waits for the exit: the seconds it took.
fn stop(run: &mut Run) -> io::Result<f64> {
    let t = Instant::now();
    // SAFETY: kill only sends a signal to the server this bench started.
    if unsafe { libc::kill(run.child.id() as i32, libc::SIGUSR1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let status = run.child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("stopped with {status}")));
    }
    Ok(t.elapsed().as_secs_f64())
}

struct Figures {
    restart: f64,
    stop: f64,
    fill_secs: f64,
}

fn measure(kind: Kind, n: u64) -> io::Result<Figures> {
    let file = PathBuf::from(format!("/dev/shm/fc-bench-restart-{}", kind.name()));
    let meta = PathBuf::from(format!("{}.meta", file.display()));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&meta);
    let mb = if n > 2_000_000 { "2560" } else { "1024" };
    let args: Vec<String> = ["-m", mb, "-t", "4", "-e", &file.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let key = |i: u64| format!("key:{i:010}");
    let probe = [key(0), key(n / 2), key(n - 1)];
    let value = common::make_value(100);
    let mut run = launch(kind, &args)?;
    wait_serving_empty(&mut run)?;
    let t = Instant::now();
    let w = common::bulk_set(run.addr, "key:", 0..n, &value, 4, 500)?;
    let fill_secs = t.elapsed().as_secs_f64();
    let r = common::bulk_get(run.addr, "key:", 0..n, 100, 10, 4)?;
    if w.stored != n || r.hits != n {
        return Err(io::Error::other(format!(
            "stored {} and read {} of {n}: raise -m",
            w.stored, r.hits
        )));
    }
    stop(&mut run)?;
    let (mut restarts, mut stops) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // memcached refuses a restart within the second it stopped in
        // ("setting for [stop_time]"): both servers get the same pause
        std::thread::sleep(Duration::from_millis(1100));
        let t = Instant::now();
        let mut run = launch(kind, &args)?;
        wait_serving(&mut run, &probe, Duration::from_secs(60))?;
        restarts.push(t.elapsed().as_secs_f64());
        if round == 0 {
            let r = common::bulk_get(run.addr, "key:", 0..n, 100, 10, 4)?;
            if r.hits != n {
                return Err(io::Error::other(format!(
                    "{} of {n} after a restart",
                    r.hits
                )));
            }
        }
        stops.push(stop(&mut run)?);
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&meta);
    Ok(Figures {
        restart: median(&restarts),
        stop: median(&stops),
        fill_secs,
    })
}

/// Waits for a first start (nothing to restore) to answer `version`.
fn wait_serving_empty(run: &mut Run) -> io::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = run.child.try_wait()? {
            return Err(io::Error::other(format!("exited at start-up: {status}")));
        }
        if let Ok(mut s) = TcpStream::connect(run.addr) {
            s.write_all(b"version\r\n")?;
            let mut buf = [0u8; 64];
            if s.read(&mut buf)? > 0 {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(io::Error::other("did not start"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("restart: bench");
        return;
    }
    let sizes: Vec<u64> = std::env::var("FC_RESTART_ITEMS")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut table = String::from(
        "| items | server | restart (launch to serving every item) | stop (SIGUSR1 to exit) | ratio restart |\n|---|---|---|---|---|\n",
    );
    println!("{}", common::machine_info());
    for &n in &sizes {
        let mut figures = Vec::new();
        for kind in Kind::selected() {
            match measure(kind, n) {
                Ok(f) => {
                    println!(
                        "{:>12} items {:<10} restart {:.3} s  stop {:.3} s  (fill {:.1} s)",
                        grouped(n),
                        kind.name(),
                        f.restart,
                        f.stop,
                        f.fill_secs
                    );
                    figures.push((kind, f));
                }
                Err(e) => println!("{:>12} items {:<10} failed: {e}", grouped(n), kind.name()),
            }
        }
        let base = figures
            .iter()
            .find(|(k, _)| *k == Kind::Memcached)
            .map(|(_, f)| f.restart);
        for (kind, f) in &figures {
            let ratio = base.map_or("-".into(), |b| format!("{:.2}x", f.restart / b));
            table.push_str(&format!(
                "| {} | {} | {:.3} s | {:.3} s | {ratio} |\n",
                grouped(n),
                kind.name(),
                f.restart,
                f.stop
            ));
        }
    }
    println!("\n{table}");
    let path = common::report_dir().join("restart.md");
    let text = format!("# Warm restart\n\n{}\n\n{table}", common::machine_info());
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("{}: {e}", path.display());
    }
}
