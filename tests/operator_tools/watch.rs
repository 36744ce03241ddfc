//! `watch` log streams: refusals, pipelining, and the lines of each stream
//! (fetchers, mutations, evictions, connevents); a watcher too slow to
//! read gets counts of what it skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{eventually, Conn, Server};

use super::{fields, num, small_rcvbuf, Table};

const WATCH_REFUSED: Table = &[
    (b"watch\r\n", b"CLIENT_ERROR watch commands not allowed\r\n"),
    // -W is checked before the pipeline, and noreply silences it
    (
        b"set a 0 0 1\r\nx\r\nwatch\r\n",
        b"STORED\r\nCLIENT_ERROR watch commands not allowed\r\n",
    ),
    (b"watch fetchers noreply\r\nmn\r\n", b"MN\r\n"),
];
table!(watch_refused_under_w, &["-W"], WATCH_REFUSED);

const WATCH_ERRORS: Table = &[
    (b"watch deletions\r\n", b"ERROR\r\n"),
    (b"watch fetchers bogus\r\n", b"ERROR\r\n"),
    (b"watchx\r\n", b"ERROR\r\n"),
];
table!(watch_unknown_streams, &[], WATCH_ERRORS);

/// memcached refuses a `watch` pipelined behind replies it has not sent
/// yet (it sends them when the input runs out, and after a get or `mn`),
/// and a `watch` ending in `noreply` answers nothing (the word is unknown,
/// and its `ERROR` is not sent); the connection goes on either way.
const WATCH_PIPELINED: Table = &[
    (
        b"set a 0 0 1\r\nx\r\nwatch mutations\r\nmn\r\n",
        b"STORED\r\nERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (
        b"delete a noreply\r\nwatch\r\nmn\r\n",
        b"ERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (
        b"mg a v q\r\nwatch\r\nwatch\r\nmn\r\n",
        b"ERROR cannot pipeline other commands before watch\r\n\
          ERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (b"watch noreply\r\nmn\r\n", b"MN\r\n"),
    (b"watch fetchers noreply\r\nmn\r\n", b"MN\r\n"),
    (b"watch bogus noreply\r\nmn\r\n", b"MN\r\n"),
];

/// A watch pipelined behind a get, or behind `mn`, is taken: memcached sent
/// what was stacked first.
fn watch_pipelined(server: &Server) {
    crate::common::transcript(server, WATCH_PIPELINED);
    for (request, reply) in [
        (
            "set a 0 0 1\r\nx\r\nget a\r\nwatch\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nOK\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\nmn\r\nwatch\r\n",
            "STORED\r\nMN\r\nOK\r\n",
        ),
    ] {
        let mut w = server.connect();
        w.roundtrip(request, reply);
        // it watches: another connection's read shows up
        let mut c = server.connect();
        c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
        let line = normalize(&watch_lines(&mut w, 1)[0]);
        assert_eq!(
            line,
            "type=item_get key=a status=found clsid=1 cfd=F size=1"
        );
    }
}
both!(watch_pipelined, &[]);

/// A watch line with its varying parts replaced: `ts=T gid=G` and
/// `cfd=F`. Checks those parts' shapes first.
fn normalize(line: &str) -> String {
    let rest = line
        .strip_prefix("ts=")
        .unwrap_or_else(|| panic!("no ts= in {line:?}"));
    let (ts, rest) = rest.split_once(' ').expect("ts then gid");
    let (secs, micros) = ts.split_once('.').expect("ts=secs.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.parse::<u32>().is_ok_and(|u| u < 1_000_000));
    let (gid, rest) = rest
        .strip_prefix("gid=")
        .and_then(|r| r.split_once(' '))
        .expect("gid=");
    assert!(gid.parse::<u64>().is_ok(), "gid {gid}");
    rest.split(' ')
        .map(|f| match f.split_once('=') {
            Some(("cfd", v)) => {
                assert!(v.parse::<i32>().is_ok_and(|fd| fd > 0), "cfd={v}");
                "cfd=F".to_string()
            }
            _ => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads `n` watch lines (each ending in a lone `\n`).
fn watch_lines(w: &mut Conn, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = w.read_line();
            assert!(!line.ends_with(b"\r\n"), "watch lines end in \\n alone");
            String::from_utf8(line)
                .expect("ASCII")
                .trim_end()
                .to_string()
        })
        .collect()
}

fn start_watch(server: &Server, streams: &str) -> Conn {
    let mut w = server.connect();
    w.roundtrip(format!("watch{streams}\r\n"), "OK\r\n");
    w
}

fn watch_fetchers(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set k 0 0 3\r\nabc\r\n", "STORED\r\n");
    // (the unique is each server's own: learnt before the watch starts)
    let (_, _, cas) = c.gets("k");
    let mut w = start_watch(server, "");
    c.roundtrip("get k\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
    c.roundtrip("get nokey\r\n", "END\r\n");
    c.roundtrip(
        "gets k a%b\r\n",
        format!("VALUE k 0 3 {cas}\r\nabc\r\nEND\r\n"),
    );
    c.roundtrip("touch k 0\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 0 k\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
    // writes log the lookup they make first
    c.roundtrip("set n 0 0 1\r\n1\r\n", "STORED\r\n");
    c.roundtrip("incr n 2\r\n", "3\r\n");
    c.roundtrip("append n 0 0 1\r\n2\r\n", "STORED\r\n");
    c.roundtrip("delete n\r\n", "DELETED\r\n");
    c.roundtrip("delete n\r\n", "NOT_FOUND\r\n");
    c.roundtrip("flush_all\r\n", "OK\r\n");
    c.roundtrip("get k\r\n", "END\r\n");
    let mut got: Vec<String> = watch_lines(&mut w, 12)
        .iter()
        .map(|l| normalize(l))
        .collect();
    // a flushed item the background reaper (memcached's crawler,
    // ferrocache's sweep) got to first reads as simply absent
    if got[11] == "type=item_get key=k status=not_found clsid=0 cfd=F size=0" {
        got[11] = got[11].replace("not_found", "flushed");
    }
    let line = |key: &str, status: &str, class: u32, size: usize| {
        format!("type=item_get key={key} status={status} clsid={class} cfd=F size={size}")
    };
    let found = line("k", "found", 1, 3);
    assert_eq!(
        got,
        [
            found.clone(),
            line("nokey", "not_found", 0, 0),
            found.clone(),
            line("a%25b", "not_found", 0, 0),
            found.clone(),
            found,
            line("n", "not_found", 0, 0),
            line("n", "found", 1, 1),
            line("n", "found", 1, 1),
            line("n", "found", 1, 2),
            line("n", "not_found", 0, 0),
            line("k", "flushed", 0, 0),
        ]
    );
    // a watching connection executes nothing more
    w.send("version\r\n");
    w.expect_silence(Duration::from_millis(300));
}
both!(watch_fetchers, &[]);

fn watch_mutations(server: &Server) {
    let mut c = server.connect();
    let mut w = start_watch(server, " mutations");
    c.roundtrip("set m 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get m\r\n", "VALUE m 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("add m 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
    c.roundtrip("append m 0 0 2\r\nyz\r\n", "STORED\r\n");
    c.roundtrip("prepend m 0 0 1\r\nw\r\n", "STORED\r\n");
    c.roundtrip("cas m 0 0 1 999\r\nq\r\n", "EXISTS\r\n");
    c.roundtrip("cas nokey 0 0 1 1\r\nq\r\n", "NOT_FOUND\r\n");
    c.roundtrip("replace nokey 0 0 1\r\nq\r\n", "NOT_STORED\r\n");
    c.roundtrip("set t 0 100 1\r\nx\r\n", "STORED\r\n");
    let got: Vec<String> = watch_lines(&mut w, 8)
        .iter()
        .map(|l| normalize(l))
        .collect();
    let store = |key: &str, status: &str, cmd: &str, size: usize| {
        format!(
            "type=item_store key={key} status={status} cmd={cmd} ttl=0 clsid=1 cfd=F size={size}"
        )
    };
    assert_eq!(
        got[..7],
        [
            store("m", "stored", "set", 1),
            store("m", "not_stored", "add", 1),
            store("m", "stored", "append", 3),
            store("m", "stored", "prepend", 4),
            store("m", "exists", "cas", 1),
            store("nokey", "not_found", "cas", 1),
            store("nokey", "not_stored", "replace", 1),
        ]
    );
    // the clock may tick between the store and the line
    let ttl = got[7]
        .split(' ')
        .find_map(|f| f.strip_prefix("ttl="))
        .expect("ttl");
    assert!(ttl == "100" || ttl == "99", "{}", got[7]);
}
both!(watch_mutations, &[]);

fn watch_evictions(server: &Server) {
    let mut c = server.connect();
    let mut w = start_watch(server, " evictions mutations");
    let value = "e".repeat(1000);
    let mut i = 0;
    let evicted = eventually(Duration::from_secs(30), || {
        for _ in 0..500 {
            c.send(format!("set ev{i} 0 0 1000 noreply\r\n{value}\r\n"));
            i += 1;
        }
        c.stat("", "evictions") > 0
    });
    assert!(evicted, "no eviction after {i} sets");
    // the stream holds mutation lines and, among them, the eviction
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        assert!(Instant::now() < deadline, "no eviction line");
        let l = watch_lines(&mut w, 1).remove(0);
        if l.contains("type=eviction") {
            break normalize(&l);
        }
        assert!(
            l.contains("type=item_store") || l.starts_with("skipped="),
            "{l}"
        );
    };
    let f = fields(&line);
    assert!(f["key"].starts_with("ev"), "{line}");
    assert_eq!(f["fetch"], "no");
    assert_eq!(f["ttl"], "-1");
    assert!(num(&f, "la") >= 0 && num(&f, "clsid") > 1);
    assert_eq!(f["size"], "1000");
}
both!(watch_evictions, &["-m", "2"]);

fn watch_connevents(server: &Server) {
    let mut w = start_watch(server, " connevents");
    let mut c = server.connect();
    let port = c.tcp().local_addr().unwrap().port();
    c.roundtrip("quit\r\n", "");
    c.expect_closed();
    // other connections' events (the harness's own start-up probe, whose
    // close memcached may log late) are not ours: take this port's two
    let ours = format!(" rport={port} ");
    let mut got = Vec::new();
    for _ in 0..10 {
        let line = watch_lines(&mut w, 1).remove(0);
        if line.contains(&ours) {
            got.push(line);
        }
        if got.len() == 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "events of port {port}: {got:?}");
    let new = normalize(&got[0]);
    assert_eq!(
        new,
        format!("type=conn_new rip=127.0.0.1 rport={port} transport=tcp cfd=F")
    );
    let closed = normalize(&got[1]);
    assert!(
        closed.starts_with(&format!(
            "type=conn_close rip=127.0.0.1 rport={port} transport=tcp reason="
        )),
        "{closed}"
    );
}
both!(watch_connevents, &[]);

/// Reads whatever `stream` sends until it stays quiet for `quiet`.
fn drain(stream: &mut TcpStream, quiet: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("the watcher was disconnected"),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return all
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A watcher that does not read never makes the server buffer without
/// bound: lines past its buffer are dropped and counted, and every line is
/// either delivered or counted in a `skipped=N` line (sent before the next
/// line that finds room).
#[test]
fn slow_watcher_gets_skipped_counts() {
    let server = Server::ferrocache(&[]);
    let w = server.connect();
    small_rcvbuf(&w);
    let mut w_stream = w.tcp().try_clone().unwrap();
    w_stream.write_all(b"watch\r\n").unwrap();
    let mut ok = [0u8; 4];
    w_stream.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"OK\r\n");
    let mut c = server.connect();
    let pad = "x".repeat(240);
    let mut sent = 0u64;
    for round in 0..6 {
        let mut batch = String::new();
        for i in 0..10_000 {
            batch.push_str(&format!("get {pad}{round}_{i}\r\n"));
        }
        c.send(&batch);
        sent += 10_000;
        // wait for the answers, so the lines were all produced
        for _ in 0..10_000 {
            c.expect("END\r\n");
        }
    }
    let (mut delivered, mut skipped) = (0u64, 0u64);
    let mut count = |bytes: &[u8]| {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = std::str::from_utf8(line).unwrap();
            if let Some(n) = text.strip_prefix("skipped=") {
                skipped += n.parse::<u64>().expect("count");
            } else {
                assert!(text.contains(" type=item_get key="), "{text}");
                delivered += 1;
            }
        }
        (delivered, skipped)
    };
    count(&drain(&mut w_stream, Duration::from_secs(2)));
    // each further get finds room and carries the count of what was lost
    let mut extra = 0;
    let mut accounted = false;
    while !accounted && extra < 20 {
        c.roundtrip(format!("get one_more{extra}\r\n"), "END\r\n");
        extra += 1;
        let (d, s) = count(&drain(&mut w_stream, Duration::from_millis(1500)));
        accounted = d + s == sent + extra;
    }
    assert!(
        accounted,
        "{delivered} delivered + {skipped} skipped != {sent} + {extra}"
    );
    assert!(
        skipped > 0,
        "nothing was dropped: the test did not fill the buffer"
    );
    assert!(delivered > 0);
    drop(w);
}
