//! `-o read_buf_mem_limit`: the memory all connections' buffers may take
//! together, run against ferrocache and memcached 1.6.18 with the same
//! flags and bytes. A multi-get with no room left is answered `SERVER_ERROR
//! out of memory writing get response` (the reply so far dropped, the
//! connection kept) and counted in `response_obj_oom`; a connection that
//! cannot get a read buffer is closed and counted in `read_buf_oom`.
//! `-o resp_obj_mem_limit` is deprecated in 1.6.18 and ignored by both.
//!
//! The limit is split over the threads (here one, 1 MiB). memcached counts
//! a response object per key and never the values (it sends them from the
//! items); ferrocache counts the bytes of the values in a reply, copied
//! into its buffer or (large ones) sent from the cache. The requests below
//! are refused, or served, by both.

#[macro_use]
mod common;

use std::time::Duration;

use common::{stat_u64, Conn, Server};

const LIMITED: &[&str] = &["-t", "1", "-I", "2m", "-o", "read_buf_mem_limit=1"];

const OOM: &str = "SERVER_ERROR out of memory writing get response\r\n";

fn set(c: &mut Conn, key: &str, len: usize) {
    c.send(format!("set {key} 0 0 {len}\r\n"));
    c.send(vec![b'v'; len]);
    c.roundtrip("\r\n", "STORED\r\n");
}

fn get_line(keys: &[&str]) -> String {
    format!("get {}\r\n", keys.join(" "))
}

/// A multi-get of 2,000 small hits and a value of about the limit: no room
/// (memcached: 2,000 response objects; ferrocache: the value's bytes). The
/// connection stays usable, and a small multi-get is served.
fn multiget_past_the_limit(server: &Server) {
    let mut c = server.connect();
    set(&mut c, "small", 1);
    set(&mut c, "big", 1_040_000);
    let before = c.stat("", "response_obj_oom");
    let mut keys = vec!["small"; 2000];
    keys.push("big");
    c.send(get_line(&keys));
    c.expect(OOM);
    c.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
    assert_eq!(c.stat("", "response_obj_oom"), before + 1);

    let keys = vec!["small"; 100];
    c.send(get_line(&keys));
    for _ in 0..100 {
        c.expect("VALUE small 0 1\r\nv\r\n");
    }
    c.expect("END\r\n");
    assert_eq!(c.stat("", "response_obj_oom"), before + 1);
}
both!(multiget_past_the_limit, super::LIMITED);

/// Without the limit the same multi-get is answered in full.
fn multiget_without_a_limit(server: &Server) {
    let mut c = server.connect();
    set(&mut c, "small", 1);
    set(&mut c, "big", 1_040_000);
    let mut keys = vec!["small"; 2000];
    keys.push("big");
    c.send(get_line(&keys));
    for _ in 0..2000 {
        c.expect("VALUE small 0 1\r\nv\r\n");
    }
    c.expect("VALUE big 0 1040000\r\n");
    c.expect(vec![b'v'; 1_040_000]);
    c.expect("\r\nEND\r\n");
    assert_eq!(c.stat("", "response_obj_oom"), 0);
}
both!(multiget_without_a_limit, &["-t", "1", "-I", "2m"]);

/// Connections that each hold a read buffer (a request half sent) take the
/// limit: past it, a connection that sends something is closed, and each
/// such close is counted in `read_buf_oom`. Those that kept their buffer
/// are answered once their line is complete.
fn read_buffers_past_the_limit(server: &Server) {
    let mut conns: Vec<Conn> = (0..100).map(|_| server.connect()).collect();
    for c in conns.iter_mut() {
        c.send("get abc");
    }
    let mut closed = 0;
    for c in conns.iter_mut() {
        if !c.try_send("\r\n") {
            closed += 1;
            continue;
        }
        match c.try_read_n(5) {
            Ok(reply) => assert_eq!(reply, b"END\r\n"),
            Err(_) => closed += 1,
        }
    }
    eprintln!("{:?}: {closed} of 100 closed", server.target());
    assert!(closed > 0 && closed < 100, "{closed} of 100 closed");
    drop(conns);
    let stats = server.connect().stats("");
    assert_eq!(stat_u64(&stats, "read_buf_oom"), closed);
}
both!(read_buffers_past_the_limit, super::LIMITED);

/// The buffer gauges move: a connection with a half-sent request holds a
/// read buffer, counted in `read_buf_count` and `read_buf_bytes`.
fn buffers_are_counted(server: &Server) {
    let mut c = server.connect();
    let before = c.stats("");
    let mut half = server.connect();
    half.send("get abc");
    let mut now = before.clone();
    let moved = common::eventually(Duration::from_secs(5), || {
        now = c.stats("");
        stat_u64(&now, "read_buf_bytes") > stat_u64(&before, "read_buf_bytes")
    });
    assert!(moved, "{before:?}\n{now:?}");
    assert!(stat_u64(&now, "read_buf_count") > stat_u64(&before, "read_buf_count"));
}
both!(buffers_are_counted, super::LIMITED);
