//! The memcached ASCII protocol: bytes → [`Request`], [`Response`] → bytes.
//!
//! Owns the wire format only. Must not know sockets, storage or time: exptimes
//! are passed through as the client wrote them, and the one limit it needs
//! (how large a value may be) comes in as [`Limits`].

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;

/// A command line longer than this without a newline closes the connection,
/// unless it is a `get`/`gets` line (memcached's rule).
pub const MAX_LINE_LEN: usize = 2048;

/// Bound on a `get`/`gets`/`gat`/`gats` line: memcached lets these grow
/// without limit; ferrocache caps them so a connection's read buffer is bounded.
pub const MAX_GET_LINE_LEN: usize = 2 * 1024 * 1024;

/// What the parser needs to know about the server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A storage command whose `key.len() + bytes` exceeds this is answered
    /// `SERVER_ERROR object too large for cache` and its data swallowed.
    /// (memcached: `-I` minus its 59-byte item overhead with CAS, 51 without.)
    pub max_key_plus_value: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// The keys of a retrieval command, validated, kept as the raw space-separated
/// slice so that parsing a multi-get allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    raw: &'a [u8],
}

impl<'a> Keys<'a> {
    /// `raw` must hold keys separated by spaces (leading/trailing/multiple
    /// spaces allowed); the parser has already checked each key.
    pub fn new(raw: &'a [u8]) -> Keys<'a> {
        Keys { raw }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.raw.split(|&b| b == b' ').filter(|k| !k.is_empty())
    }
}

/// One parsed request, borrowing keys and data from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets` (`with_cas` for gets).
    Get {
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `gat`/`gats <exptime> <key>*`.
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `set add replace append prepend cas`. `cas` is 0 except for `cas`.
    Store {
        mode: StoreMode,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    /// A storage command whose value is larger than [`Limits`] allows: the
    /// data was (or will be) swallowed. Answer
    /// `SERVER_ERROR object too large for cache` unless noreply; a `set`
    /// also removes the key, as memcached does.
    TooLarge {
        mode: StoreMode,
        key: &'a [u8],
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    /// `incr`/`decr`.
    Arith {
        key: &'a [u8],
        delta: u64,
        incr: bool,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`; delay 0 when absent.
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    /// `shutdown [graceful]`.
    Shutdown {
        graceful: bool,
    },
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// `stats [args…]`: `args` is the rest of the line, trimmed.
    Stats {
        args: &'a [u8],
    },
    /// A complete request that is wrong: answer exactly `reply` (e.g.
    /// `b"ERROR"`, `b"CLIENT_ERROR bad command line format"`), without the
    /// trailing CRLF.
    Invalid {
        reply: &'static [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a whole request yet: read more and call again with the same start.
    Incomplete,
    /// The line is too long to be a request: close the connection.
    LineTooLong,
}

/// Parses one request at the start of `buf`.
///
/// On success returns the request and how many bytes it took. That count can
/// be larger than `buf.len()` only for [`Request::TooLarge`]: the caller then
/// discards the rest of the value as it arrives.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Request<'a>, usize), ParseError> {
    let _ = (buf, limits);
    todo!("protocol::parse")
}

/// One reply, borrowing what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    End,
    Error,
    /// `CLIENT_ERROR <msg>`
    ClientError(&'a str),
    /// `SERVER_ERROR <msg>`
    ServerError(&'a str),
    /// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`
    Value {
        key: &'a [u8],
        flags: u32,
        data: &'a [u8],
        cas: Option<u64>,
    },
    /// The decimal result of incr/decr.
    Number(u64),
    /// `VERSION <v>`
    Version(&'a str),
    /// `STAT <name> <value>`
    Stat(&'a str, &'a str),
}

/// Appends the wire form of `resp` (with its CRLF) to `out`.
pub fn encode(resp: &Response<'_>, out: &mut Vec<u8>) {
    let _ = (resp, out);
    todo!("protocol::encode")
}
