//! memcached's binary protocol for the tests: request frames built field
//! by field (any field may lie), response frames read and normalised, and
//! the transcript runner for binary conversations.
//!
//! Owns the test side of the binary wire format. Must not know what a
//! server answers: expectations are written by the tests and checked
//! against memcached by running them on both servers.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{escape, Server};

pub const GET: u8 = 0x00;
pub const SET: u8 = 0x01;
pub const ADD: u8 = 0x02;
pub const REPLACE: u8 = 0x03;
pub const DELETE: u8 = 0x04;
pub const INCR: u8 = 0x05;
pub const DECR: u8 = 0x06;
pub const QUIT: u8 = 0x07;
pub const FLUSH: u8 = 0x08;
pub const GETQ: u8 = 0x09;
pub const NOOP: u8 = 0x0a;
pub const VERSION: u8 = 0x0b;
pub const GETK: u8 = 0x0c;
pub const GETKQ: u8 = 0x0d;
pub const APPEND: u8 = 0x0e;
pub const PREPEND: u8 = 0x0f;
pub const STAT: u8 = 0x10;
pub const SETQ: u8 = 0x11;
pub const ADDQ: u8 = 0x12;
pub const REPLACEQ: u8 = 0x13;
pub const DELETEQ: u8 = 0x14;
pub const INCRQ: u8 = 0x15;
pub const DECRQ: u8 = 0x16;
pub const QUITQ: u8 = 0x17;
pub const FLUSHQ: u8 = 0x18;
pub const APPENDQ: u8 = 0x19;
pub const PREPENDQ: u8 = 0x1a;
pub const VERBOSITY: u8 = 0x1b;
pub const TOUCH: u8 = 0x1c;
pub const GAT: u8 = 0x1d;
pub const GATQ: u8 = 0x1e;
pub const SASL_LIST: u8 = 0x20;
pub const SASL_AUTH: u8 = 0x21;
pub const SASL_STEP: u8 = 0x22;
pub const GATK: u8 = 0x23;
pub const GATKQ: u8 = 0x24;

pub const OK: u16 = 0x00;
pub const NOT_FOUND: u16 = 0x01;
pub const EXISTS: u16 = 0x02;
pub const TOO_LARGE: u16 = 0x03;
pub const EINVAL: u16 = 0x04;
pub const NOT_STORED: u16 = 0x05;
pub const NON_NUMERIC: u16 = 0x06;
/// memcached's number (the specification says 0x08).
pub const AUTH_ERROR: u16 = 0x20;
pub const UNKNOWN: u16 = 0x81;

/// A unique in a request: literal, or the n-th distinct unique (from 1)
/// this connection has been shown, resolved when the frame is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cas {
    Raw(u64),
    Seen(u64),
}

/// A request frame; every header field can be overridden to lie.
#[derive(Clone, Debug)]
pub struct Req {
    pub magic: u8,
    pub opcode: u8,
    pub key: Vec<u8>,
    pub extras: Vec<u8>,
    pub value: Vec<u8>,
    pub opaque: u32,
    pub cas: Cas,
    pub keylen: Option<u16>,
    pub extlen: Option<u8>,
    pub bodylen: Option<u32>,
    /// Bytes sent after the frame (a swallow's fill, garbage).
    pub trailer: Vec<u8>,
}

/// A request with `opcode` and nothing else (opaque 0x0a0b0c0d).
pub fn req(opcode: u8) -> Req {
    Req {
        magic: 0x80,
        opcode,
        key: Vec::new(),
        extras: Vec::new(),
        value: Vec::new(),
        opaque: 0x0a0b_0c0d,
        cas: Cas::Raw(0),
        keylen: None,
        extlen: None,
        bodylen: None,
        trailer: Vec::new(),
    }
}

impl Req {
    pub fn key(mut self, k: impl AsRef<[u8]>) -> Req {
        self.key = k.as_ref().to_vec();
        self
    }
    pub fn extras(mut self, e: impl AsRef<[u8]>) -> Req {
        self.extras = e.as_ref().to_vec();
        self
    }
    pub fn value(mut self, v: impl AsRef<[u8]>) -> Req {
        self.value = v.as_ref().to_vec();
        self
    }
    pub fn opaque(mut self, o: u32) -> Req {
        self.opaque = o;
        self
    }
    pub fn cas(mut self, c: u64) -> Req {
        self.cas = Cas::Raw(c);
        self
    }
    /// The n-th distinct unique this connection was shown (from 1).
    pub fn seen(mut self, n: u64) -> Req {
        self.cas = Cas::Seen(n);
        self
    }
    pub fn keylen(mut self, n: u16) -> Req {
        self.keylen = Some(n);
        self
    }
    pub fn extlen(mut self, n: u8) -> Req {
        self.extlen = Some(n);
        self
    }
    pub fn bodylen(mut self, n: u32) -> Req {
        self.bodylen = Some(n);
        self
    }
    pub fn magic(mut self, m: u8) -> Req {
        self.magic = m;
        self
    }
    pub fn trailer(mut self, t: impl AsRef<[u8]>) -> Req {
        self.trailer = t.as_ref().to_vec();
        self
    }

    /// The frame's bytes, a `Seen` unique resolved through `seen`.
    pub fn bytes(&self, seen: &Uniques) -> Vec<u8> {
        let cas = match self.cas {
            Cas::Raw(c) => c,
            Cas::Seen(n) => seen.real(n),
        };
        let body = self.key.len() + self.extras.len() + self.value.len();
        let mut out = Vec::with_capacity(24 + body + self.trailer.len());
        out.push(self.magic);
        out.push(self.opcode);
        let keylen = self.keylen.unwrap_or(self.key.len() as u16);
        out.extend_from_slice(&keylen.to_be_bytes());
        out.push(self.extlen.unwrap_or(self.extras.len() as u8));
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.bodylen.unwrap_or(body as u32).to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&cas.to_be_bytes());
        out.extend_from_slice(&self.extras);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out.extend_from_slice(&self.trailer);
        out
    }
}

/// Extras of set/add/replace.
pub fn store_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// Extras of incr/decr.
pub fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// `set key flags 0 value` (or another storage opcode).
pub fn store(op: u8, key: &str, flags: u32, value: impl AsRef<[u8]>) -> Req {
    req(op).key(key).extras(store_extras(flags, 0)).value(value)
}

/// incr/decr(q) of `key` by `delta`, creating it from `initial` unless
/// `exptime` is all ones.
pub fn arith(op: u8, key: &str, delta: u64, initial: u64, exptime: u32) -> Req {
    req(op)
        .key(key)
        .extras(arith_extras(delta, initial, exptime))
}

/// A response frame as read, the cas as the n-th distinct unique shown
/// (0 stays 0) and a version text replaced by `VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resp {
    pub magic: u8,
    pub opcode: u8,
    pub datatype: u8,
    pub status: u16,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub opaque: u32,
    pub cas: u64,
}

/// An expected response: status 0, nothing in it, opaque 0x0a0b0c0d.
pub fn resp(opcode: u8) -> Resp {
    Resp {
        magic: 0x81,
        opcode,
        datatype: 0,
        status: 0,
        extras: Vec::new(),
        key: Vec::new(),
        value: Vec::new(),
        opaque: 0x0a0b_0c0d,
        cas: 0,
    }
}

impl Resp {
    /// An error response: the status and memcached's text for it.
    pub fn error(opcode: u8, status: u16) -> Resp {
        let text: &[u8] = match status {
            NOT_FOUND => b"Not found",
            EXISTS => b"Data exists for key.",
            TOO_LARGE => b"Too large.",
            EINVAL => b"Invalid arguments",
            NOT_STORED => b"Not stored.",
            NON_NUMERIC => b"Non-numeric server-side value for incr or decr",
            AUTH_ERROR => b"Auth failure.",
            UNKNOWN => b"Unknown command",
            0x82 => b"Out of memory",
            _ => b"",
        };
        Resp {
            status,
            value: text.to_vec(),
            ..resp(opcode)
        }
    }
    /// A retrieval's hit: the flags as extras.
    pub fn hit(opcode: u8, flags: u32, value: impl AsRef<[u8]>, cas: u64) -> Resp {
        Resp {
            extras: flags.to_be_bytes().to_vec(),
            value: value.as_ref().to_vec(),
            cas,
            ..resp(opcode)
        }
    }
    /// An incr/decr's new value.
    pub fn number(opcode: u8, n: u64, cas: u64) -> Resp {
        Resp {
            value: n.to_be_bytes().to_vec(),
            cas,
            ..resp(opcode)
        }
    }
    pub fn key(mut self, k: impl AsRef<[u8]>) -> Resp {
        self.key = k.as_ref().to_vec();
        self
    }
    pub fn cas(mut self, c: u64) -> Resp {
        self.cas = c;
        self
    }
    pub fn opaque(mut self, o: u32) -> Resp {
        self.opaque = o;
        self
    }
    pub fn status(mut self, s: u16) -> Resp {
        self.status = s;
        self
    }
    pub fn value(mut self, v: impl AsRef<[u8]>) -> Resp {
        self.value = v.as_ref().to_vec();
        self
    }
}

/// A connection's uniques, named by order of first appearance.
#[derive(Default, Debug)]
pub struct Uniques {
    by_real: HashMap<u64, u64>,
    by_name: HashMap<u64, u64>,
}

impl Uniques {
    pub fn name(&mut self, real: u64) -> u64 {
        if real == 0 {
            return 0;
        }
        let next = self.by_real.len() as u64 + 1;
        let n = *self.by_real.entry(real).or_insert(next);
        self.by_name.insert(n, real);
        n
    }
    /// The real unique of name `n`; one never shown is a unique no
    /// server reaches.
    pub fn real(&self, n: u64) -> u64 {
        self.by_name.get(&n).copied().unwrap_or(1 << 60)
    }
}

/// What a connection read: frames, then maybe the end of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Read1 {
    Frame(Resp),
    Closed,
    /// Nothing within the timeout.
    Silent,
}

/// A binary client connection.
pub struct BinConn {
    stream: TcpStream,
    pending: Vec<u8>,
    pub uniques: Uniques,
}

impl BinConn {
    pub fn connect(addr: SocketAddr) -> BinConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        BinConn {
            stream,
            pending: Vec::new(),
            uniques: Uniques::default(),
        }
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    pub fn send(&mut self, r: &Req) {
        let bytes = r.bytes(&self.uniques);
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // a server that closed may reset: what it answered is still read
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until `n` bytes are pending; false at the end of the stream
    /// or a timeout.
    fn fill(&mut self, n: usize) -> Result<(), Read1> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.pending.len() < n {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Read1::Closed),
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Read1::Silent)
                }
                Err(_) => return Err(Read1::Closed),
            }
        }
        Ok(())
    }

    /// The next response frame, normalised (see [`Resp`]).
    pub fn read(&mut self) -> Read1 {
        if let Err(end) = self.fill(24) {
            return end;
        }
        let h = &self.pending[..24];
        let keylen = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let extlen = usize::from(h[4]);
        let bodylen = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        if let Err(end) = self.fill(24 + bodylen) {
            return end;
        }
        let f: Vec<u8> = self.pending.drain(..24 + bodylen).collect();
        let body = &f[24..];
        let mut cas = [0u8; 8];
        cas.copy_from_slice(&f[16..24]);
        let mut r = Resp {
            magic: f[0],
            opcode: f[1],
            datatype: f[5],
            status: u16::from_be_bytes([f[6], f[7]]),
            extras: body[..extlen.min(body.len())].to_vec(),
            key: body[extlen.min(body.len())..(extlen + keylen).min(body.len())].to_vec(),
            value: body[(extlen + keylen).min(body.len())..].to_vec(),
            opaque: u32::from_be_bytes([f[12], f[13], f[14], f[15]]),
            cas: self.uniques.name(u64::from_be_bytes(cas)),
        };
        if r.opcode == VERSION && r.status == OK {
            r.value = b"VERSION".to_vec();
        }
        Read1::Frame(r)
    }

    /// Reads `n` frames; panics with what came instead.
    pub fn expect(&mut self, want: &[Resp]) {
        for (i, w) in want.iter().enumerate() {
            match self.read() {
                Read1::Frame(got) if got == *w => {}
                other => panic!(
                    "response {} of {}:\n  expected: {}\n  received: {}",
                    i + 1,
                    want.len(),
                    show(w),
                    match other {
                        Read1::Frame(f) => show(&f),
                        end => format!("{end:?}"),
                    }
                ),
            }
        }
    }

    /// Expects the server to close without sending anything more.
    pub fn expect_closed(&mut self) {
        match self.read() {
            Read1::Closed => {}
            Read1::Frame(f) => panic!("expected a close, received {}", show(&f)),
            Read1::Silent => panic!("expected a close; the connection stays open"),
        }
    }

    /// Proves nothing else was sent: a `noop` answered by its own reply
    /// only.
    pub fn expect_nothing_more(&mut self) {
        self.send(&req(NOOP).opaque(0x5e47_1e17));
        self.expect(&[resp(NOOP).opaque(0x5e47_1e17)]);
    }

    /// Sends `stat <key>` and returns the (name, value) pairs, checking
    /// each frame and the empty terminator.
    pub fn stats(&mut self, key: &str) -> Vec<(String, String)> {
        self.send(&req(STAT).key(key).opaque(0x57a7));
        let mut out = Vec::new();
        loop {
            let f = match self.read() {
                Read1::Frame(f) => f,
                end => panic!("stat {key}: {end:?}"),
            };
            assert_eq!(
                (f.opcode, f.status, f.opaque, f.cas, f.extras.len()),
                (STAT, OK, 0x57a7, 0, 0),
                "{}",
                show(&f)
            );
            if f.key.is_empty() && f.value.is_empty() {
                return out;
            }
            out.push((
                String::from_utf8_lossy(&f.key).into_owned(),
                String::from_utf8_lossy(&f.value).into_owned(),
            ));
        }
    }
}

/// A frame for humans.
pub fn show(r: &Resp) -> String {
    format!(
        "op={:#04x} status={:#06x} opaque={:#x} cas=#{} extras={} key={} value={}",
        r.opcode,
        r.status,
        r.opaque,
        r.cas,
        escape(&r.extras),
        escape(&r.key),
        escape(&r.value)
    )
}

/// One step of a binary transcript: requests sent in one write, the
/// responses expected, and whether the server then closes.
pub struct Step {
    pub send: Vec<Req>,
    pub expect: Vec<Resp>,
    pub closes: bool,
}

/// `send` in one write, expecting exactly `expect`.
pub fn step(send: Vec<Req>, expect: Vec<Resp>) -> Step {
    Step {
        send,
        expect,
        closes: false,
    }
}

/// `send` in one write; the server closes after the responses `before`.
pub fn closes(send: Vec<Req>, before: Vec<Resp>) -> Step {
    Step {
        send,
        expect: before,
        closes: true,
    }
}

/// Plays a binary conversation on one connection of `server`; unless it
/// ends in a close, a final `noop` proves nothing else was sent.
pub fn transcript(server: &Server, steps: Vec<Step>) {
    let mut conn = BinConn::connect(server.tcp_addr());
    let target = server.target();
    let n = steps.len();
    for (i, s) in steps.into_iter().enumerate() {
        let mut bytes = Vec::new();
        for r in &s.send {
            bytes.extend_from_slice(&r.bytes(&conn.uniques));
        }
        conn.send_raw(&bytes);
        let run = std::panic::AssertUnwindSafe(|| {
            conn.expect(&s.expect);
            if s.closes {
                conn.expect_closed();
            }
        });
        if let Err(e) = std::panic::catch_unwind(run) {
            eprintln!("{target:?}: binary transcript step {} failed", i + 1);
            std::panic::resume_unwind(e);
        }
        if s.closes {
            assert_eq!(i + 1, n, "steps after a close cannot run");
            return;
        }
    }
    conn.expect_nothing_more();
}
