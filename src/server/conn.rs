//! One client connection and its turn.
//!
//! Owns a connection's state (its stream, read and write buffers, request
//! loop, readiness, close and watch), and its turn (`drive`): write what is
//! pending, run the request loop, read more, as far as it goes without
//! blocking, with backpressure at the output limit. Must not know the
//! worker's poller or other connections, nor parse: requests are the
//! pipeline's.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use log::{debug, trace};

use super::buf::{ReadBuf, WriteBuf, OUT_LIMIT};
use super::pipeline::{Pipeline, Step, Turn};
use super::transport::Stream;
use crate::command::Context;
use crate::protocol::Limits;
use crate::stats::{bump, set, BufGauges, WorkerStats};
use crate::watch::Watcher;

/// One client connection, owned by one worker.
pub(super) struct Conn {
    pub(super) stream: Stream,
    pub(super) fd: i32,
    pub(super) input: ReadBuf,
    pub(super) output: WriteBuf,
    /// Where its requests stand between turns.
    pub(super) requests: Pipeline,
    /// The socket may have unread bytes (edge-triggered readiness). A read
    /// that leaves room in the buffer took everything there was, so it
    /// clears this: bytes arriving later raise a new event (see
    /// [`read_more`]).
    pub(super) readable: bool,
    /// The poller reported the peer's end closed (or an error): the next
    /// read would say so, so reads go on to it however short they are.
    pub(super) peer_closed: bool,
    /// Close once the replies are written.
    pub(super) closing: bool,
    /// In the worker's ready list (yielded with work left).
    pub(super) queued: bool,
    pub(super) last_active: u32,
    /// `last_active` as `stats conns` reads it from other threads.
    pub(super) seen: Arc<AtomicU32>,
    /// The bytes of its read and write buffers as last counted in its
    /// worker's gauges (see [`meter`]).
    metered: (usize, usize),
    /// Set once the connection sent `watch`: it receives log lines and
    /// executes nothing more.
    pub(super) watcher: Option<Arc<Watcher>>,
}

impl Conn {
    pub(super) fn new(stream: Stream, now: u32) -> Conn {
        Conn {
            fd: stream.fd(),
            stream,
            input: ReadBuf::default(),
            output: WriteBuf::default(),
            requests: Pipeline::default(),
            // data may have arrived before the registration
            readable: true,
            peer_closed: false,
            closing: false,
            queued: false,
            last_active: now,
            seen: Arc::new(AtomicU32::new(now)),
            metered: (0, 0),
            watcher: None,
        }
    }

    /// Nothing left to send: no reply pending, no multi-get half answered,
    /// nothing held by the transport.
    pub(super) fn all_sent(&self) -> bool {
        self.output.pending() == 0 && !self.requests.is_paused() && !self.stream.wants_write()
    }
}

/// Writes pending replies until done or the socket is full. Err on a dead
/// socket.
pub(super) fn flush(c: &mut Conn, stats: &WorkerStats) -> io::Result<()> {
    c.output
        .write_to(&mut c.stream, stats, c.requests.is_paused())?;
    // then what the transport holds of its own (none on a plain socket)
    c.stream.write_pending()
}

/// Serves one connection as far as it can go without blocking: write what is
/// pending, execute what is buffered (up to -R requests), read more; then
/// counts its buffers in the worker's gauges.
///
/// Under `-o read_buf_mem_limit` the worker's connections share
/// `limit / threads` bytes of buffers (memcached splits its limit over its
/// threads the same way): while this one runs, its reply buffer may hold
/// what the others leave (`BufGauges::reply_room`, which a multi-get
/// checks), and a read that would grow its read buffer past that closes
/// it (`read_buf_oom`), as memcached closes a connection it cannot give a
/// read buffer.
pub(super) fn drive(c: &mut Conn, ctx: &Context<'_>, limits: &Limits) -> Step {
    let limit = share(ctx);
    if limit != 0 {
        let others = ctx.worker.bufs.held() - c.metered.1 as u64;
        set(
            &ctx.worker.bufs.reply_room,
            limit.saturating_sub(others).max(1),
        );
    }
    let step = run(c, ctx, limits, limit);
    if limit != 0 {
        set(&ctx.worker.bufs.reply_room, 0);
        // as memcached gives an idle connection's buffers back to its
        // thread's cache: under a limit, idle connections hold none
        if c.input.is_empty() {
            c.input.release();
        }
        if c.all_sent() {
            c.output.release();
        }
    }
    meter(c, &ctx.worker.bufs);
    step
}

/// This worker's share of `-o read_buf_mem_limit` (0: none).
fn share(ctx: &Context<'_>) -> u64 {
    ctx.config.read_buf_mem_limit / ctx.config.threads.max(1) as u64
}

/// Brings the worker's buffer gauges up to date with `c`'s buffers.
pub(super) fn meter(c: &mut Conn, g: &BufGauges) {
    let now = (c.input.capacity(), c.output.capacity());
    let was = c.metered;
    if now == was {
        return;
    }
    let add = |gauge: &std::sync::atomic::AtomicU64, from: usize, to: usize| {
        let v = gauge.load(Ordering::Relaxed);
        set(gauge, v.wrapping_add(to as u64).wrapping_sub(from as u64));
    };
    add(&g.read_bytes, was.0, now.0);
    add(
        &g.read_count,
        usize::from(was.0 > 0),
        usize::from(now.0 > 0),
    );
    add(&g.write_bytes, was.1, now.1);
    add(
        &g.write_count,
        usize::from(was.1 > 0),
        usize::from(now.1 > 0),
    );
    c.metered = now;
}

/// Takes `c`'s buffers out of the worker's gauges (it is closing).
pub(super) fn unmeter(c: &mut Conn, g: &BufGauges) {
    c.input.release();
    c.output.release();
    meter(c, g);
}

fn run(c: &mut Conn, ctx: &Context<'_>, limits: &Limits, limit: u64) -> Step {
    if c.watcher.is_some() {
        return drive_watcher(c, ctx);
    }
    let mut turn = Turn {
        ctx,
        limits,
        fd: c.fd,
        budget: ctx.config.reqs_per_event.max(1),
    };
    loop {
        if flush(c, ctx.worker).is_err() {
            return Step::Close;
        }
        let pending = c.output.pending();
        if c.closing {
            return if pending == 0 && !c.stream.wants_write() {
                Step::Close
            } else {
                Step::Wait
            };
        }
        if pending >= OUT_LIMIT {
            // Backpressure: nothing more is executed (or read) until the
            // client takes its replies; a writable event resumes us.
            trace!(
                "{}: output full ({} bytes), waiting for the client",
                c.fd,
                pending
            );
            return Step::Wait;
        }
        match c.requests.process(&mut c.input, &mut c.output, &mut turn) {
            Step::Executed => continue,
            Step::Watch(mask) => return Step::Watch(mask),
            Step::Yield => {
                trace!("{}: request budget (-R) used up, yielding", c.fd);
                return Step::Yield;
            }
            Step::Close => {
                c.closing = true;
                continue;
            }
            Step::Wait => return Step::Wait,
            Step::NeedInput => {}
        }
        if !c.readable {
            c.input.release_if_idle();
            return Step::Wait;
        }
        if turn.budget == 0 {
            // Requests to the -R limit were executed and the buffer is used
            // up: the rest waits in the socket until the other connections
            // had their turn.
            return Step::Yield;
        }
        match read_more(c, ctx, limit) {
            Ok(0) => return Step::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                debug!("{}: no room for a read buffer (read_buf_mem_limit)", c.fd);
                bump(&ctx.worker.read_buf_oom, 1);
                return Step::Close;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                c.input.release_if_idle();
                return Step::Wait;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}

/// A watching connection: write what is pending, take the watcher's new
/// lines while the output is under its limit, and read (and drop) whatever
/// the client sends, to notice when it goes away.
fn drive_watcher(c: &mut Conn, ctx: &Context<'_>) -> Step {
    let Some(w) = c.watcher.clone() else {
        return Step::Wait;
    };
    loop {
        if flush(c, ctx.worker).is_err() {
            return Step::Close;
        }
        let pending = c.output.pending();
        if pending >= OUT_LIMIT || !w.drain_into(c.output.replies()) {
            break;
        }
    }
    let mut scratch = [0u8; 4096];
    while c.readable {
        match c.stream.read(&mut scratch) {
            Ok(0) => return Step::Close,
            Ok(n) => bump(&ctx.worker.bytes_read, n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
    Step::Wait
}

/// Reads what the socket holds into `input`.
///
/// A read that does not fill the free space has emptied the socket's receive
/// queue, so it clears `c.readable`: the epoll registration is edge-triggered
/// and every later arrival raises a new event. Without this, `drive` would
/// read again after answering, and a client that sends its next request as
/// soon as it has a reply (the worker is preempted by the client inside the
/// write that wakes it) is served again and again in one turn, up to -R
/// requests, while every other connection of that worker waits; a
/// connection that had yielded then waits for all of them (about 9 x 20
/// requests, 4 ms, in the multiget load benchmark: its p99). memcached goes
/// back to its event loop as soon as its read buffer is empty, too. It also
/// saves the read that would only say WouldBlock.
fn read_more(c: &mut Conn, ctx: &Context<'_>, limit: u64) -> io::Result<usize> {
    let room = if limit == 0 {
        u64::MAX
    } else {
        // what the others hold, and this one's reply buffer as it is now
        meter(c, &ctx.worker.bufs);
        limit.saturating_sub(ctx.worker.bufs.held())
    };
    let (n, drained) = c.input.read_from(&mut c.stream, room)?;
    if drained && !c.peer_closed {
        c.readable = false;
    }
    if n > 0 {
        bump(&ctx.worker.bytes_read, n as u64);
        c.last_active = ctx.clock.now();
        c.seen.store(c.last_active, Ordering::Relaxed);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::protocol;
    use crate::server::buf::READ_CHUNK;
    use crate::server::transport::Script;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn scripted(chunks: &[&[u8]], eof: bool) -> Conn {
        let script = Script {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            eof,
            written: Vec::new(),
            room: usize::MAX,
        };
        Conn::new(Stream::Script(script), 0)
    }

    fn script_mut(c: &mut Conn) -> &mut Script {
        match &mut c.stream {
            Stream::Script(s) => s,
            _ => unreachable!(),
        }
    }

    /// A long line arriving in small pieces is searched for its end only in
    /// the new bytes: a 2 MiB `get` line sent 20 bytes at a time cost 10.8 s
    /// of server CPU when each piece restarted the search from the line's
    /// start (memcached: 2.9 s).
    #[test]
    fn a_line_arriving_in_pieces_is_searched_once() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let mut line = b"get".to_vec();
        for i in 0..20_000 {
            line.extend_from_slice(format!(" key:{i}").as_bytes());
        }
        let pieces: Vec<&[u8]> = line.chunks(1000).collect();
        let mut c = scripted(&[], false);
        let mut got = 0;
        for piece in &pieces {
            script_mut(&mut c).chunks.push_back(piece.to_vec());
            c.readable = true;
            assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
            got += piece.len();
            assert_eq!(c.input.len(), got, "the line is kept whole");
            assert_eq!(c.input.scanned(), got, "bytes known to hold no newline");
        }
        assert!(script(&c).written.is_empty());
        // the bytes already searched are not looked at again: a newline
        // planted among them goes unseen
        let planted = 100;
        let was = std::mem::replace(&mut c.input.unread_mut()[planted], b'\n');
        script_mut(&mut c).chunks.push_back(b" more".to_vec());
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
        assert!(script(&c).written.is_empty(), "searched from the start");
        c.input.unread_mut()[planted] = was;
        script_mut(&mut c)
            .chunks
            .push_back(b"\r\nget x\r\n".to_vec());
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert_eq!((c.input.len(), c.input.scanned()), (0, 0));
        // still closed past the 2 MiB a multi-get line may have
        let mut c = scripted(&[], false);
        let piece = vec![b'k'; 64 * 1024];
        let mut status = Step::Wait;
        for _ in 0..40 {
            let chunk = if c.input.is_empty() {
                b"get ".to_vec()
            } else {
                piece.clone()
            };
            script_mut(&mut c).chunks.push_back(chunk);
            c.readable = true;
            status = drive(&mut c, &ctx, &shared.limits);
            if matches!(status, Step::Close) {
                break;
            }
        }
        assert!(matches!(status, Step::Close), "an endless line is closed");
        assert!(c.input.len() > protocol::MAX_GET_LINE_LEN - 64 * 1024);
    }

    /// A multi-get paused at the output limit goes on from where it
    /// stopped without parsing its line again or walking the keys already
    /// answered (8,000 250-byte keys of 100 KB values cost 18 x memcached's
    /// CPU that way), and its reply is the same.
    #[test]
    fn a_paused_multiget_resumes_without_parsing_again() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let value = vec![b'v'; 100_000];
        let mut setup = Vec::new();
        for k in ["a", "bb", "ccc"] {
            setup.extend_from_slice(format!("set {k} 7 0 {}\r\n", value.len()).as_bytes());
            setup.extend_from_slice(&value);
            setup.extend_from_slice(b"\r\n");
        }
        let mut c = scripted(&[&setup], false);
        drive(&mut c, &ctx, &shared.limits);
        assert_eq!(script(&c).written, b"STORED\r\n".repeat(3));
        // irregular spaces, misses, repeats
        let keys = "  a bb   ccc nope a  ccc bb a   ccc bb bb a ";
        for gat in [false, true] {
            let line = if gat {
                format!("gats 0 {keys}\r\n")
            } else {
                format!("get {keys}\r\n")
            };
            let mut c = scripted(&[line.as_bytes()], false);
            script_mut(&mut c).room = 0;
            drive(&mut c, &ctx, &shared.limits);
            assert!(c.requests.is_paused(), "paused at the output limit");
            let consumed = c.requests.paused_len().expect("the paused request is kept");
            assert_eq!(consumed, line.len());
            // the line is not read again: spoil the command word
            c.input.unread_mut()[..3].copy_from_slice(b"xxx");
            let mut pauses = 1;
            while c.requests.is_paused() || c.output.pending() != 0 {
                script_mut(&mut c).room = 150_000;
                drive(&mut c, &ctx, &shared.limits);
                pauses += 1;
            }
            assert!(pauses > 3, "{pauses}");
            let mut want = Vec::new();
            for k in keys.split_whitespace().filter(|k| *k != "nope") {
                let cas = if gat {
                    let Some(at) = find(&script(&c).written[want.len()..], b"\r\n") else {
                        panic!("short reply")
                    };
                    let header = &script(&c).written[want.len()..want.len() + at];
                    let text = String::from_utf8_lossy(header);
                    format!(" {}", text.rsplit(' ').next().unwrap())
                } else {
                    String::new()
                };
                want.extend_from_slice(format!("VALUE {k} 7 {}{cas}\r\n", value.len()).as_bytes());
                want.extend_from_slice(&value);
                want.extend_from_slice(b"\r\n");
            }
            want.extend_from_slice(b"END\r\n");
            assert!(script(&c).written == want, "reply differs (gat: {gat})");
            assert!(c.requests.paused_len().is_none());
            assert!(c.input.is_empty());
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn script(c: &Conn) -> &Script {
        match &c.stream {
            Stream::Script(s) => s,
            _ => unreachable!(),
        }
    }

    /// A request that arrives after the read that emptied the socket waits
    /// for its own readiness event: the turn ends once what was read is
    /// answered, so a client that sends its next request the moment it has
    /// a reply cannot keep the worker to itself while the worker's other
    /// connections wait (the multiget p99 of 4 ms: 20 requests in a row for
    /// each of 9 connections before a yielded one was answered).
    #[test]
    fn a_turn_ends_with_the_read_that_emptied_the_socket() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let mut c = scripted(&[b"get a\r\n", b"get b\r\n"], false);
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
        assert_eq!(
            script(&c).written,
            b"END\r\n",
            "only the first get answered"
        );
        assert_eq!(script(&c).chunks.len(), 1, "the second get is left unread");
        assert!(!c.readable);
        // its readiness event
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert!(script(&c).chunks.is_empty());
    }

    /// A read that fills the buffer may have left more behind: it is
    /// followed by another in the same turn.
    #[test]
    fn a_full_read_is_followed_by_another() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        // 16 KiB of one get (a long multi-get line, all misses), then
        // a second get that arrived with it
        let mut big = b"get".to_vec();
        while big.len() < READ_CHUNK - 2 - 2 {
            big.extend_from_slice(b" k");
        }
        big.resize(READ_CHUNK - 2, b'k');
        big.extend_from_slice(b"\r\n");
        assert_eq!(big.len(), READ_CHUNK);
        let mut c = scripted(&[&big, b"get b\r\n"], false);
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Wait));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert!(script(&c).chunks.is_empty());
        assert!(!c.readable);
    }

    /// Once the poller has reported the peer's end closed, a short read does
    /// not end the turn: the end of stream is read and the connection closed
    /// after its reply (no new event would come for it).
    #[test]
    fn a_closed_peer_is_read_to_the_end() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let mut c = scripted(&[b"get a\r\n"], true);
        c.peer_closed = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Step::Close));
        assert_eq!(script(&c).written, b"END\r\n");
    }

    /// Over real sockets: a client that sends a request and shuts its side
    /// at once gets the reply and then the end of stream, whether the server
    /// saw the data and the FIN in one event or two, on a new connection or
    /// on one the server had already emptied.
    #[test]
    fn request_then_half_close_is_answered_and_closed() {
        let (handle, addr) = one_worker_on_loopback();
        for i in 0..100 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut want = String::new();
            if i % 2 == 1 {
                roundtrip(&mut s, b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
            } else {
                s.write_all(b"set k 0 0 1\r\nv\r\n").unwrap();
                want.push_str("STORED\r\n");
            }
            s.write_all(b"get k\r\n").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            want.push_str("VALUE k 0 1\r\nv\r\nEND\r\n");
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got);
            assert!(r.is_ok(), "connection {i}: no end of stream: {r:?}");
            assert_eq!(String::from_utf8_lossy(&got), want, "connection {i}");
        }
        handle.shutdown();
    }

    /// Stores `values` (key, bytes) through a connection.
    fn store(ctx: &Context<'_>, limits: &Limits, values: &[(&str, Vec<u8>)]) {
        let mut setup = Vec::new();
        for (k, v) in values {
            setup.extend_from_slice(format!("set {k} 0 0 {}\r\n", v.len()).as_bytes());
            setup.extend_from_slice(v);
            setup.extend_from_slice(b"\r\n");
        }
        let mut c = scripted(&[&setup], false);
        drive(&mut c, ctx, limits);
        assert_eq!(script(&c).written, b"STORED\r\n".repeat(values.len()));
    }

    /// Large values go out from the cache itself (spliced between the
    /// reply's bytes, in vectored writes), byte for byte what a copy would
    /// send, however the client's reads cut them; rewriting and deleting
    /// the keys meanwhile changes nothing sent; every value is let go once
    /// written.
    #[test]
    fn large_values_go_out_from_the_cache_as_a_copy_would() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let pattern = |seed: u8, n: usize| -> Vec<u8> {
            (0..n).map(|i| seed.wrapping_add((i % 253) as u8)).collect()
        };
        let values = [
            ("big1", pattern(1, 100_000)),
            ("small", pattern(2, 100)),
            ("big2", pattern(3, 70_000)),
            ("big3", pattern(4, 20_000)),
        ];
        store(&ctx, &shared.limits, &values);
        let mut want = Vec::new();
        for (k, v) in &values {
            want.extend_from_slice(format!("VALUE {k} 0 {}\r\n", v.len()).as_bytes());
            want.extend_from_slice(v);
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(b"END\r\n");
        want.extend_from_slice(format!("VA {} s{}\r\n", 70_000, 70_000).as_bytes());
        want.extend_from_slice(&values[2].1);
        want.extend_from_slice(b"\r\n");
        for step in [1000, 4093, 65_536] {
            // both requests run at once (190 KB, under the output limit)
            let line = b"get big1 small big2 big3\r\nmg big2 s v\r\n";
            let mut c = scripted(&[line], false);
            script_mut(&mut c).room = 0;
            drive(&mut c, &ctx, &shared.limits);
            assert!(c.input.is_empty(), "both requests ran");
            assert!(shared.cache.stats().pinned_bytes > 0, "values held");
            // the keys change while the reply is being written
            store(&ctx, &shared.limits, &[("big1", pattern(9, 100_000))]);
            assert!(shared.cache.delete(b"big2"));
            for _ in 0..10_000 {
                if c.all_sent() {
                    break;
                }
                script_mut(&mut c).room = step;
                drive(&mut c, &ctx, &shared.limits);
            }
            let got = &script(&c).written;
            assert_eq!(got.len(), want.len(), "step {step}");
            assert!(got == &want, "step {step}: the bytes sent");
            assert_eq!(shared.cache.stats().pinned_bytes, 0, "step {step}: let go");
            store(&ctx, &shared.limits, &values[..3]);
        }
    }

    /// A worker that panics mid-reply drops the connection (see
    /// `worker::run_conn`), and with it every value its reply held.
    #[test]
    fn a_panic_mid_reply_lets_go_of_what_the_reply_held() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        store(&ctx, &shared.limits, &[("big", vec![b'b'; 50_000])]);
        let mut c = scripted(&[b"get big\r\nget test:panic\r\n"], false);
        script_mut(&mut c).room = 0;
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(&mut c, &ctx, &shared.limits)
        }));
        assert!(turn.is_err(), "the injected panic");
        assert!(shared.cache.stats().pinned_bytes > 0);
        drop(c);
        assert_eq!(shared.cache.stats().pinned_bytes, 0);
    }
}
