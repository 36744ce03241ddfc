//! Concurrency: clients racing on one server. Every acknowledged incr is
//! counted once, one cas wins, no append is lost, no value is torn, and
//! eviction racing expiry loses nothing it acknowledged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use crate::common::random::Rng;
use crate::common::{escape, Conn, Server};

use super::{connect, no_panics, stock, verify, verify_present_intact};

const THREADS: usize = 8;

/// Every acknowledged `incr` is counted exactly once: the replies are
/// exactly 1..=N, each once, and the final value is N.
fn incr_counted_once(server: &Server) {
    let stock = stock(server);
    let per = 300;
    server
        .connect()
        .roundtrip("set ctr 0 0 1\r\n0\r\n", "STORED\r\n");
    let replies = race(server, move |_, c| {
        (0..per)
            .map(|_| {
                c.send("incr ctr 1\r\n");
                let line = c.read_line();
                std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.trim_end().parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("incr reply {}", escape(&line)))
            })
            .collect::<Vec<u64>>()
    });
    let mut all: Vec<u64> = replies.into_iter().flatten().collect();
    all.sort_unstable();
    let n = (THREADS * per) as u64;
    assert_eq!(all.len() as u64, n);
    assert!(
        all.iter().copied().eq(1..=n),
        "incr replies are not exactly 1..={n} once each"
    );
    let mut c = server.connect();
    let v = n.to_string();
    c.roundtrip(
        "get ctr\r\n",
        format!("VALUE ctr 0 {}\r\n{v}\r\nEND\r\n", v.len()),
    );
    verify(server, &stock);
}
both!(incr_counted_once, &[]);

/// Runs `body(t, conn)` for t in 0..THREADS, each on its own connection
/// to `server`, all released at once by a barrier; returns what each
/// returned, in thread order.
fn race<T: Send + 'static>(
    server: &Server,
    body: impl Fn(usize, &mut Conn) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let addr = server.tcp_addr();
    let start = Arc::new(Barrier::new(THREADS));
    let body = Arc::new(body);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (start, body) = (start.clone(), body.clone());
            thread::spawn(move || {
                let mut c = connect(addr);
                start.wait();
                body(t, &mut c)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `cas` never lets two writers win with the same unique; the value ends
/// as the number of wins.
fn cas_single_winner(server: &Server) {
    let stock = stock(server);
    server
        .connect()
        .roundtrip("set casv 0 0 1\r\n0\r\n", "STORED\r\n");
    let wins = race(server, |_, c| {
        let mut wins = Vec::new();
        for _ in 0..150 {
            let (_, data, unique) = c.gets("casv");
            let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
            let next = (n + 1).to_string();
            c.send(format!(
                "cas casv 0 0 {} {unique}\r\n{next}\r\n",
                next.len()
            ));
            let line = c.read_line();
            match &line[..] {
                b"STORED\r\n" => wins.push((unique, n + 1)),
                b"EXISTS\r\n" => {}
                other => panic!("cas reply {}", escape(other)),
            }
        }
        wins
    });
    let wins: Vec<(u64, u64)> = wins.into_iter().flatten().collect();
    let mut by_unique: BTreeMap<u64, usize> = BTreeMap::new();
    for (u, _) in &wins {
        *by_unique.entry(*u).or_default() += 1;
    }
    let doubles: Vec<_> = by_unique.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        doubles.is_empty(),
        "two cas winners for uniques {doubles:?}"
    );
    // Each win wrote the value it read + 1: the wins are 1..=W.
    let mut written: Vec<u64> = wins.iter().map(|(_, v)| *v).collect();
    written.sort_unstable();
    assert!(
        written.iter().copied().eq(1..=wins.len() as u64),
        "cas wins did not write 1..={} once each",
        wins.len()
    );
    assert!(!wins.is_empty());
    let (_, data, _) = server.connect().gets("casv");
    assert_eq!(data, wins.len().to_string().into_bytes());
    verify(server, &stock);
}
both!(cas_single_winner, &[]);

/// Concurrent appends: every acknowledged piece is in the value exactly
/// once, each writer's pieces in its order.
fn append_no_loss(server: &Server) {
    let stock = stock(server);
    server
        .connect()
        .roundtrip("set app 0 0 0\r\n\r\n", "STORED\r\n");
    let per = 200;
    race(server, move |t, c| {
        for i in 0..per {
            let piece = format!("{t}.{i},");
            c.roundtrip(
                format!("append app 0 0 {}\r\n{piece}\r\n", piece.len()),
                "STORED\r\n",
            );
        }
    });
    let (_, data, _) = server.connect().gets("app");
    let text = String::from_utf8(data).unwrap();
    let mut next = [0usize; THREADS];
    let mut count = 0;
    for piece in text.split(',').filter(|p| !p.is_empty()) {
        let (t, i) = piece
            .split_once('.')
            .unwrap_or_else(|| panic!("torn piece {piece:?}"));
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[t], "writer {t}: piece {i} out of order or repeated");
        next[t] += 1;
        count += 1;
    }
    assert_eq!(count, THREADS * per, "pieces lost");
    verify(server, &stock);
}
both!(append_no_loss, &[]);

/// A value that says what it must contain: `<key>|<writer>|<seq>|<len>|`
/// then a byte pattern fixed by those numbers.
fn checked_value(key: &str, writer: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{key}|{writer}|{seq}|{len}|").into_bytes();
    let fill = b'a' + ((writer * 31 + seq) % 26) as u8;
    v.resize(v.len() + len, fill);
    v
}

fn check_value(key: &str, v: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned();
    let mut parts = text.splitn(5, '|');
    let k = parts.next().unwrap_or("");
    let w = parts.next().and_then(|s| s.parse::<usize>().ok());
    let s = parts.next().and_then(|s| s.parse::<usize>().ok());
    let l = parts.next().and_then(|s| s.parse::<usize>().ok());
    let (Some(w), Some(s), Some(l)) = (w, s, l) else {
        return Err(format!("bad header in {}", escape(&v[..v.len().min(80)])));
    };
    if k != key {
        return Err(format!("value of {k} under key {key}"));
    }
    let want = checked_value(key, w, s, l);
    if v != &want[..] {
        return Err(format!("torn value under {key}: header w{w} s{s} len{l}"));
    }
    Ok(())
}

/// Reads `get <keys>` replies and checks every value.
fn read_checked(c: &mut Conn, keys: &[String]) -> usize {
    let mut seen = 0;
    loop {
        let line = c.read_line();
        if line == b"END\r\n" {
            return seen;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let f: Vec<&str> = text.trim_end().split(' ').collect();
        assert!(
            f.len() == 4 && f[0] == "VALUE" && keys.iter().any(|k| k == f[1]),
            "unexpected line {}",
            escape(&line)
        );
        let len: usize = f[3].parse().unwrap();
        let data = c.read_exact_n(len + 2);
        assert_eq!(&data[len..], b"\r\n");
        if let Err(e) = check_value(f[1], &data[..len]) {
            panic!("{e}");
        }
        seen += 1;
    }
}

/// Writers overwrite a few keys with self-checking values of changing
/// sizes while readers read them: no reader ever sees a torn value.
fn no_torn_values(server: &Server) {
    let stock = stock(server);
    let addr = server.tcp_addr();
    let keys: Vec<String> = (0..4).map(|i| format!("torn:{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..4 {
        let keys = keys.clone();
        handles.push(thread::spawn(move || {
            let mut c = connect(addr);
            for seq in 0..300 {
                let key = &keys[(w + seq) % keys.len()];
                let len = [10, 5000, 70_000, 300][seq % 4] + w;
                let v = checked_value(key, w, seq, len);
                let mut req = format!("set {key} 0 0 {}\r\n", v.len()).into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                c.roundtrip(req, "STORED\r\n");
            }
            0
        }));
    }
    for _ in 0..4 {
        let (keys, stop) = (keys.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut c = connect(addr);
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                c.send(format!("get {}\r\n", keys.join(" ")));
                seen += read_checked(&mut c, &keys);
            }
            seen
        }));
    }
    let readers = handles.split_off(4);
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let seen: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(seen > 0, "readers saw no values");
    verify(server, &stock);
}
both!(no_torn_values, &[]);

/// On a small cache, writers with short TTLs force eviction and expiry
/// while readers multi-get: every value returned is whole and belongs to
/// its key; the server stays up. (Stocked items may be evicted here; those
/// still present must be intact.)
fn eviction_and_expiry_race(server: &Server) {
    let stock = stock(server);
    let addr = server.tcp_addr();
    // memcached's slab allocator at -m 4 cannot give every size class a
    // page, so it may refuse a set; ferrocache (without -M) always evicts.
    let may_refuse = server.is_memcached();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        writers.push(thread::spawn(move || {
            let mut refused = 0;
            let mut c = connect(addr);
            let mut rng = Rng(7 + w as u64);
            for seq in 0..1500 {
                let key = format!("ev:{}", rng.below(3000));
                let len = 500 + rng.below(6000);
                let ttl = ["0", "1", "2", "-1"][rng.below(4)];
                let v = checked_value(&key, w, seq, len);
                let mut req = format!("set {key} 0 {ttl} {}\r\n", v.len()).into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                c.send(req);
                let line = c.read_line();
                if may_refuse && line == b"SERVER_ERROR out of memory storing object\r\n" {
                    refused += 1;
                    continue;
                }
                // -M is not set: a full cache evicts, it never refuses.
                assert_eq!(escape(&line), "STORED\\r\\n", "set {key}");
            }
            refused
        }));
    }
    let mut readers = Vec::new();
    for r in 0..3 {
        let stop = stop.clone();
        readers.push(thread::spawn(move || {
            let mut c = connect(addr);
            let mut rng = Rng(1000 + r as u64);
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                let keys: Vec<String> =
                    (0..10).map(|_| format!("ev:{}", rng.below(3000))).collect();
                c.send(format!("get {}\r\n", keys.join(" ")));
                seen += read_checked(&mut c, &keys);
            }
            seen
        }));
    }
    let refused: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let seen: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(seen > 0, "readers saw no values");
    assert!(refused < 4500, "every set refused");
    let mut c = server.connect();
    let evictions = c.stat("", "evictions");
    assert!(
        evictions > 0,
        "the test did not fill the cache (no evictions)"
    );
    verify_present_intact(server, &stock);
    no_panics(server);
}
both!(eviction_and_expiry_race, &["-m", "4"]);
