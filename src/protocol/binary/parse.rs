//! The binary frame parser: one request frame at the front of the read
//! buffer, borrowed in place, into a [`Frame`].
//!
//! Owns which frames memcached 1.6.18 accepts and what it does with the
//! others: the order of its checks (magic, then header, extras and key in
//! its 16 KiB read buffer, then key and extras against the body length,
//! then the 250-byte key limit, then each opcode's shape), the status or
//! close each one earns, and how many bytes each frame takes from the
//! input (memcached's own counts, quirks included). Must not execute
//! anything: requests go out as codec-neutral values.

use super::{opcode, Header, Status, HEADER_LEN, MAX_HEAD, REQUEST_MAGIC};
use crate::protocol::{ArithCreate, Keys, Limits, Request, StoreMode, MAX_KEY_LEN};

/// One parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    /// The request's key (a GETK miss sends it back).
    pub key: &'a [u8],
    pub action: Action<'a>,
    /// Bytes of input the frame takes. It may run past what has arrived:
    /// a value refused for its size is thrown away as it comes, never
    /// buffered.
    pub consumed: usize,
}

/// What a frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// Execute this request. Its `noreply` is always false: quiet opcodes
    /// are silenced by the reply sink, which knows which replies are
    /// successes.
    Execute(Request<'a>),
    /// Answer `status` without executing anything. `close`: then close
    /// the connection. `flushes`: memcached sends its stacked replies
    /// right after this one (an error that swallows nothing).
    Refuse {
        status: Status,
        close: bool,
        flushes: bool,
    },
    /// `quit`/`quitq`: answer (unless quiet), then close.
    Quit,
    /// Under `-S`: list the SASL mechanisms.
    SaslList,
    /// Under `-S`: start (`step` false) or continue a SASL exchange with
    /// mechanism `mech` and the client's `data`.
    SaslAuth {
        mech: &'a [u8],
        data: &'a [u8],
        step: bool,
    },
}

/// Where a connection stands with SASL (`-S`), which decides what the
/// parser lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No `-S`: the SASL opcodes are unknown commands.
    Open,
    /// `-S`, not authenticated: only the SASL opcodes and `version` pass;
    /// anything else is an authentication error, then a close.
    Locked,
    /// `-S`, authenticated.
    Authenticated,
}

/// memcached's longest SASL mechanism name.
const MAX_SASL_MECH_LEN: usize = 32;

/// Why no frame came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not all of the frame's header, extras and key (or value) yet.
    Incomplete,
    /// memcached closes the connection without an answer: a bad magic
    /// byte, or a header, extras and key that outgrow its read buffer.
    Close,
}

/// The header fields as sent.
struct Raw {
    opcode: u8,
    keylen: usize,
    extlen: usize,
    bodylen: u32,
}

/// Parses the frame at the front of `buf` (see [`Frame`]), without `-S`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Frame<'a>, FrameError> {
    parse_gated(buf, limits, Gate::Open)
}

/// Parses the frame at the front of `buf` on a connection where SASL
/// stands at `gate`.
pub fn parse_gated<'a>(
    buf: &'a [u8],
    limits: &Limits,
    gate: Gate,
) -> Result<Frame<'a>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    if buf[0] != REQUEST_MAGIC {
        return Err(FrameError::Close);
    }
    let raw = Raw {
        opcode: buf[1],
        keylen: usize::from(u16::from_be_bytes([buf[2], buf[3]])),
        extlen: usize::from(buf[4]),
        bodylen: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
    };
    let header = Header {
        opcode: raw.opcode,
        opaque: [buf[12], buf[13], buf[14], buf[15]],
        cas: u64::from_be_bytes([
            buf[16], buf[17], buf[18], buf[19], buf[20], buf[21], buf[22], buf[23],
        ]),
    };
    let head = HEADER_LEN + raw.extlen + raw.keylen;
    if head > MAX_HEAD {
        // memcached waits until its buffer is full, then gives up
        return Err(if buf.len() >= MAX_HEAD {
            FrameError::Close
        } else {
            FrameError::Incomplete
        });
    }
    if buf.len() < head {
        return Err(FrameError::Incomplete);
    }
    let extras = &buf[HEADER_LEN..HEADER_LEN + raw.extlen];
    let key = &buf[HEADER_LEN + raw.extlen..head];
    let frame = |action, consumed| Frame {
        header,
        key,
        action,
        consumed,
    };
    if (raw.keylen + raw.extlen) as u64 > u64::from(raw.bodylen) {
        return Ok(frame(refuse(Status::UnknownCommand, true, true), head));
    }
    let sasl_op = matches!(
        raw.opcode,
        opcode::SASL_LIST_MECHS | opcode::SASL_AUTH | opcode::SASL_STEP | opcode::VERSION
    );
    if gate == Gate::Locked && !sasl_op {
        return Ok(frame(refuse(Status::AuthError, true, true), head));
    }
    if raw.keylen > MAX_KEY_LEN {
        return Ok(frame(invalid(), head));
    }
    let parts = Parts {
        loud: opcode::loud(raw.opcode).0,
        raw,
        cas: header.cas,
        extras,
        key,
        buf,
        head,
    };
    let (action, consumed) = match gate {
        Gate::Open => dispatch(&parts, limits)?,
        _ => match sasl(&parts, limits)? {
            Some(done) => done,
            None => dispatch(&parts, limits)?,
        },
    };
    Ok(frame(action, consumed))
}

fn refuse(status: Status, close: bool, flushes: bool) -> Action<'static> {
    Action::Refuse {
        status,
        close,
        flushes,
    }
}

/// memcached's answer to a frame of the wrong shape: invalid arguments,
/// then close.
fn invalid() -> Action<'static> {
    refuse(Status::InvalidArguments, true, true)
}

/// memcached's count of bytes to throw away, an `int`: a length of 2 GiB
/// or more is negative there, and nothing is thrown away.
fn as_c_int(n: u64) -> usize {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= i32::MAX as usize)
        .unwrap_or(0)
}

/// An opcode memcached does not serve here: "Unknown command", then it
/// throws away `swallow` bytes after the header, extras and key.
fn unknown(head: usize, swallow: u64) -> (Action<'static>, usize) {
    let swallow = as_c_int(swallow);
    (
        refuse(Status::UnknownCommand, false, swallow == 0),
        head + swallow,
    )
}

/// A frame's header fields and the parts of it that have arrived.
struct Parts<'a> {
    raw: Raw,
    /// The opcode without its quiet form.
    loud: u8,
    cas: u64,
    extras: &'a [u8],
    key: &'a [u8],
    /// The whole input (a value follows the key).
    buf: &'a [u8],
    /// Where the key ends.
    head: usize,
}

/// The opcodes memcached serves (loud forms, SASL included): one of these
/// in the wrong shape is invalid arguments; any other is unknown.
const SERVED: [u8; 21] = [
    opcode::VERSION,
    opcode::NOOP,
    opcode::QUIT,
    opcode::FLUSH,
    opcode::SET,
    opcode::ADD,
    opcode::REPLACE,
    opcode::APPEND,
    opcode::PREPEND,
    opcode::GET,
    opcode::GETK,
    opcode::TOUCH,
    opcode::GAT,
    opcode::GATK,
    opcode::DELETE,
    opcode::INCREMENT,
    opcode::DECREMENT,
    opcode::STAT,
    opcode::SASL_LIST_MECHS,
    opcode::SASL_AUTH,
    opcode::SASL_STEP,
];

/// The frame's action by opcode, with the bytes it takes.
fn dispatch<'a>(p: &Parts<'a>, limits: &Limits) -> Result<(Action<'a>, usize), FrameError> {
    let (ext, klen, body) = (p.raw.extlen, p.raw.keylen, u64::from(p.raw.bodylen));
    let bare = ext == 0 && klen == 0 && body == 0;
    let action = match p.loud {
        opcode::VERSION if bare => Action::Execute(Request::Version),
        opcode::NOOP if bare => Action::Execute(Request::MetaNoop),
        opcode::QUIT if bare => Action::Quit,
        opcode::FLUSH if klen == 0 && body == ext as u64 && (ext == 0 || ext == 4) => {
            let delay = if ext == 4 { be32(p.extras, 0) } else { 0 };
            Action::Execute(Request::FlushAll {
                delay: i64::from(delay),
                noreply: false,
                bad_delay: false,
            })
        }
        opcode::SET | opcode::ADD | opcode::REPLACE | opcode::APPEND | opcode::PREPEND => {
            return storage(p, limits)
        }
        opcode::STAT if ext == 0 => stat(p.key),
        // without -S, memcached answers the SASL opcodes as unknown,
        // throwing away the body after the key
        opcode::SASL_LIST_MECHS if bare => return Ok(unknown(p.head, 0)),
        opcode::SASL_AUTH | opcode::SASL_STEP if ext == 0 && klen != 0 => {
            return Ok(unknown(p.head, body - klen as u64))
        }
        _ => match keyed(p) {
            Some(req) => Action::Execute(req),
            None if SERVED.contains(&p.loud) => invalid(),
            // memcached throws away the whole body length after the
            // extras and key it has already taken: the frame's end and as
            // many bytes again of what follows
            None => return Ok(unknown(p.head, body)),
        },
    };
    Ok((action, p.head))
}

/// set/add/replace (8 bytes of extras: flags, exptime) and append/prepend
/// (none), each with a key; anything else is invalid.
fn storage<'a>(p: &Parts<'a>, limits: &Limits) -> Result<(Action<'a>, usize), FrameError> {
    let (ext, klen, body) = (p.raw.extlen, p.raw.keylen, u64::from(p.raw.bodylen));
    let store = |mode, flags, exptime| Store {
        mode,
        key: p.key,
        flags,
        exptime,
        cas: p.cas,
    };
    let (store, vlen) = match p.loud {
        opcode::SET | opcode::ADD | opcode::REPLACE
            if ext == 8 && klen != 0 && body >= klen as u64 + 8 =>
        {
            let mode = match p.loud {
                opcode::SET => StoreMode::Set,
                opcode::ADD => StoreMode::Add,
                _ => StoreMode::Replace,
            };
            let exptime = i64::from(be32(p.extras, 4));
            let s = store(mode, be32(p.extras, 0), exptime);
            (s, body - (klen + ext) as u64)
        }
        opcode::APPEND | opcode::PREPEND if klen != 0 && ext == 0 => {
            let mode = match p.loud {
                opcode::APPEND => StoreMode::Append,
                _ => StoreMode::Prepend,
            };
            (store(mode, 0, 0), body - klen as u64)
        }
        _ => return Ok((invalid(), p.head)),
    };
    store.value(vlen, p.buf, p.head, limits)
}

/// The requests about one key and no value: get, touch and gat, delete,
/// incr/decr; `None` for any other frame (or one of the wrong shape).
fn keyed<'a>(p: &Parts<'a>) -> Option<Request<'a>> {
    let (ext, klen, body) = (p.raw.extlen, p.raw.keylen, u64::from(p.raw.bodylen));
    if klen == 0 {
        return None;
    }
    let (key, cas) = (p.key, p.cas);
    match p.loud {
        opcode::GET | opcode::GETK if ext == 0 && body == klen as u64 => Some(Request::Get {
            keys: Keys::one(key),
            with_cas: true,
        }),
        opcode::TOUCH | opcode::GAT | opcode::GATK if ext == 4 => Some(Request::Gat {
            exptime: i64::from(be32(p.extras, 0)),
            keys: Keys::one(key),
            with_cas: true,
        }),
        opcode::DELETE if ext == 0 && body == klen as u64 => Some(Request::Delete {
            key,
            cas,
            noreply: false,
        }),
        opcode::INCREMENT | opcode::DECREMENT if ext == 20 && body == (klen + ext) as u64 => {
            let expiration = be32(p.extras, 16);
            Some(Request::Arith {
                key,
                delta: be64(p.extras, 0),
                incr: p.loud == opcode::INCREMENT,
                cas,
                // all ones: "do not create"
                create: (expiration != u32::MAX).then_some(ArithCreate {
                    initial: be64(p.extras, 8),
                    exptime: i64::from(expiration),
                }),
                noreply: false,
            })
        }
        _ => None,
    }
}

/// Under `-S`, the SASL opcodes of the right shape (`None` for any other
/// frame, which `dispatch` takes).
fn sasl<'a>(p: &Parts<'a>, limits: &Limits) -> Result<Option<(Action<'a>, usize)>, FrameError> {
    let (raw, key, buf, head) = (&p.raw, p.key, p.buf, p.head);
    let (ext, klen, body) = (raw.extlen, raw.keylen, u64::from(raw.bodylen));
    let step = match raw.opcode {
        opcode::SASL_LIST_MECHS if ext == 0 && klen == 0 && body == 0 => {
            return Ok(Some((Action::SaslList, head)))
        }
        opcode::SASL_AUTH if ext == 0 && klen != 0 => false,
        opcode::SASL_STEP if ext == 0 && klen != 0 => true,
        _ => return Ok(None),
    };
    // the data as memcached reads its length: an int
    let vlen = i32::try_from(body - klen as u64)
        .ok()
        .and_then(|v| usize::try_from(v).ok());
    if klen > MAX_SASL_MECH_LEN {
        let action = refuse(Status::InvalidArguments, false, false);
        return Ok(Some((action, head + vlen.unwrap_or(0))));
    }
    // memcached reads the data into an item: one it cannot allocate is
    // out of memory, and thrown away
    let vlen = match vlen {
        Some(v) if klen + v <= limits.max_key_plus_value => v,
        v => {
            let action = refuse(Status::OutOfMemory, false, false);
            return Ok(Some((action, head + v.unwrap_or(0))));
        }
    };
    if buf.len() < head + vlen {
        return Err(FrameError::Incomplete);
    }
    let data = &buf[head..head + vlen];
    Ok(Some((
        Action::SaslAuth {
            mech: key,
            data,
            step,
        },
        head + vlen,
    )))
}

/// A storage frame before its value.
struct Store<'a> {
    mode: StoreMode,
    key: &'a [u8],
    flags: u32,
    exptime: i64,
    cas: u64,
}

impl<'a> Store<'a> {
    /// The request, once its `vlen`-byte value after `head` is here; a
    /// value too large for the cache (or a length memcached reads as
    /// negative) is refused at once and thrown away as it arrives.
    fn value(
        self,
        vlen: u64,
        buf: &'a [u8],
        head: usize,
        limits: &Limits,
    ) -> Result<(Action<'a>, usize), FrameError> {
        let flags_size = if self.flags == 0 { 0 } else { 4 };
        let fits = i32::try_from(vlen)
            .ok()
            .and_then(|v| usize::try_from(v).ok());
        let vlen = match fits {
            Some(v) if self.key.len() + v + flags_size <= limits.max_key_plus_value => v,
            _ => {
                let too_large = Request::TooLarge {
                    mode: self.mode,
                    key: self.key,
                    noreply: false,
                };
                return Ok((Action::Execute(too_large), head + fits.unwrap_or(0)));
            }
        };
        let end = head + vlen;
        if buf.len() < end {
            return Err(FrameError::Incomplete);
        }
        // a cas makes any set/add/replace a compare-and-swap
        let mode = match self.mode {
            StoreMode::Set | StoreMode::Add | StoreMode::Replace if self.cas != 0 => StoreMode::Cas,
            mode => mode,
        };
        let store = Request::Store {
            mode,
            key: self.key,
            flags: self.flags,
            exptime: self.exptime,
            data: &buf[head..end],
            cas: self.cas,
            noreply: false,
        };
        Ok((Action::Execute(store), end))
    }
}

/// `stat` with its key, read as memcached reads it: a few prefixes, a few
/// exact names, anything else "Not found".
fn stat(key: &[u8]) -> Action<'static> {
    let args: &'static [u8] = if key.is_empty() {
        b""
    } else if key.starts_with(b"reset") {
        b"reset"
    } else if key.starts_with(b"settings") {
        b"settings"
    } else if let Some(rest) = key.strip_prefix(b"detail") {
        if rest.starts_with(b" dump") {
            b"detail dump"
        } else if rest.starts_with(b" on") {
            b"detail on"
        } else if rest.starts_with(b" off") {
            b"detail off"
        } else {
            return refuse(Status::KeyNotFound, false, true);
        }
    } else {
        match key {
            b"items" => b"items",
            b"slabs" => b"slabs",
            b"sizes" => b"sizes",
            _ => return refuse(Status::KeyNotFound, false, true),
        }
    };
    Action::Execute(Request::Stats { args })
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(v)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}
