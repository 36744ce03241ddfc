//! The wire protocols' shared vocabulary: what a request is ([`Request`],
//! parsed values borrowing the read buffer), what a command can answer
//! ([`Response`], [`MetaReply`], stats) and the sink answers go to
//! ([`Reply`]). One submodule per codec turns bytes into requests and
//! answers into bytes: [`text`] (memcached's text and meta protocols, with
//! the syntax of the meta and operator commands in [`meta`] and [`admin`])
//! and [`binary`] (memcached's binary protocol): each its own parser
//! yielding the same [`Request`]s and its own [`Reply`] sink, and
//! `command` serves both. A sink over a connection's write buffer can send
//! a value from the cache itself instead of a copy ([`splice`]).
//!
//! Owns every byte on the wire. Must not know sockets, storage or time:
//! exptimes are passed through as the client wrote them, and the one limit
//! the parsers need (how large a value may be) comes in as [`Limits`].

pub mod admin;
pub mod base64;
pub mod binary;
pub mod meta;
pub mod metrics;
mod scan;
pub mod splice;
pub mod stats;
pub mod text;

use std::fmt::Display;

pub use meta::{Meta, MetaFlags};
pub use splice::{Shared, Splices};
pub use text::{encode, parse, unfinished_line, TextReply};

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;

/// A command line longer than this without a newline closes the connection,
/// unless it is a `get`/`gets` line (memcached's rule; ferrocache extends it
/// to `gat`/`gats`).
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
    /// memcached stores non-zero flags in 4 more bytes of the item, so when
    /// the flags are not 0 the parser compares `key.len() + bytes + 4`.
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
    /// `raw` is one key, spaces and all: the binary protocol's keys are
    /// any bytes, and its retrievals name one key each.
    single: bool,
}

impl<'a> Keys<'a> {
    /// `raw` must hold keys separated by spaces (leading/trailing/multiple
    /// spaces allowed); the parser has already checked each key.
    pub fn new(raw: &'a [u8]) -> Keys<'a> {
        Keys { raw, single: false }
    }

    /// Exactly one key, whatever bytes it holds (not empty).
    pub fn one(key: &'a [u8]) -> Keys<'a> {
        Keys {
            raw: key,
            single: true,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let single = self.single;
        // the space test first: the text path pays for `single` only at
        // its spaces
        self.raw
            .split(move |&b| b == b' ' && !single)
            .filter(|k| !k.is_empty())
    }

    /// The keys that start at or after byte `at` of the list, each with the
    /// byte offset where it starts: a multi-get paused before a key resumes
    /// there without walking the keys before it (a 2 MiB line holds ~8,000
    /// long keys, and a large reply pauses thousands of times).
    pub fn iter_from(&self, at: usize) -> impl Iterator<Item = (usize, &'a [u8])> + 'a {
        let (raw, single) = (self.raw, self.single);
        let mut pos = at.min(raw.len());
        std::iter::from_fn(move || {
            if single {
                let start = pos;
                pos = raw.len();
                return (start == 0 && !raw.is_empty()).then_some((0, raw));
            }
            while pos < raw.len() && raw[pos] == b' ' {
                pos += 1;
            }
            if pos == raw.len() {
                return None;
            }
            let start = pos;
            pos += raw[start..]
                .iter()
                .position(|&b| b == b' ')
                .unwrap_or(raw.len() - start);
            Some((start, &raw[start..pos]))
        })
    }

    /// The space-separated list as it was on the command line.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// One parsed request, borrowing keys and data from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets` (`with_cas` for gets). Never without keys.
    Get {
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `gat`/`gats <exptime> <key>*`. `keys` may be empty (`gat 10` is
    /// answered `END`). `exptime` is memcached's 32-bit reading of the
    /// argument, widened.
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// A `gat`/`gats` line with a key over 250 bytes: memcached touches the
    /// keys before it (`keys`), drops their replies and answers only
    /// `CLIENT_ERROR bad command line format`.
    GatBadKey {
        exptime: i64,
        keys: Keys<'a>,
    },
    /// `set add replace append prepend cas`. `cas` is 0 except for `cas`,
    /// and for a binary append/prepend, which then stores only if the
    /// item's unique is `cas`.
    /// `flags` and `exptime` are memcached's 32-bit readings of the arguments
    /// (`4294967297` flags are stored as 1), widened for `exptime`.
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
    /// `delete`; `cas` is 0 (no compare) except in the binary protocol,
    /// whose delete removes the item only if its unique is `cas`.
    Delete {
        key: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    /// `incr`/`decr`. `cas` and `create` are the binary protocol's (0 and
    /// `None` in text): change the item only if its unique is `cas`, and
    /// create a missing one from `create`.
    Arith {
        key: &'a [u8],
        delta: u64,
        incr: bool,
        cas: u64,
        create: Option<ArithCreate>,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`; delay 0 when absent (a negative delay
    /// is accepted and means now, as 0 does).
    ///
    /// `bad_delay` is set when the delay is not a number. It is not an
    /// [`Request::Invalid`] because memcached counts the command
    /// (`cmd_flush`) and refuses it under `-F`
    /// (`CLIENT_ERROR flush_all not allowed`) before it looks at the delay;
    /// only then does it answer `CLIENT_ERROR invalid exptime argument`.
    /// All of these replies are suppressed by `noreply`.
    FlushAll {
        delay: i64,
        noreply: bool,
        bad_delay: bool,
    },
    /// `version` (any arguments are ignored).
    Version,
    /// `refresh_certs [noreply]`: read the TLS certificate and key again.
    /// Other arguments are ignored; `noreply` silences only the `OK`.
    RefreshCerts {
        noreply: bool,
    },
    Verbosity {
        level: u32,
        noreply: bool,
    },
    /// Close the connection without a reply: `quit` (any arguments are
    /// ignored), and also an unknown command whose last token starts with
    /// `HTTP/`, which memcached takes for an HTTP request and drops.
    Quit,
    /// `shutdown [graceful]`.
    ///
    /// `bad_mode` is set when the arguments are anything else. memcached
    /// first refuses the command without `-A` (`ERROR: shutdown not
    /// enabled`), and only then answers `CLIENT_ERROR invalid shutdown mode`.
    /// `noreply` is not recognised (`shutdown noreply` is a bad mode).
    Shutdown {
        graceful: bool,
        bad_mode: bool,
    },
    /// `cache_memlimit <megabytes> [noreply]`. `megabytes` is memcached's
    /// 32-bit reading of the argument (`4294967304` is 8); range checks
    /// (`< 8`, `> 1000000000`) are the command's job.
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// `stats [args…]`: `args` is the rest of the line, trimmed of spaces;
    /// sub-arguments may still be separated by several spaces.
    Stats {
        args: &'a [u8],
    },
    /// `mg <key> <flags>*`.
    MetaGet(Meta<'a>),
    /// `ms <key> <datalen> <flags>*` with its data.
    MetaSet(Meta<'a>),
    /// An `ms` whose value is larger than [`Limits`] allows: the data was
    /// (or will be) swallowed. Answer `SERVER_ERROR object too large for
    /// cache` and remove the key, as memcached does.
    MetaTooLarge {
        key: &'a [u8],
        base64: bool,
    },
    /// `md <key> <flags>*`.
    MetaDelete(Meta<'a>),
    /// `ma <key> <flags>*`.
    MetaArith(Meta<'a>),
    /// `mn`: answer `MN`.
    MetaNoop,
    /// `me <key> [b]`.
    MetaDebug {
        key: &'a [u8],
        base64: bool,
    },
    /// A complete request that is wrong: answer `fault` — or nothing at
    /// all when `noreply` is set, as memcached stays silent about errors in
    /// a command that carried `noreply`.
    Invalid {
        fault: Fault,
        noreply: bool,
    },
    /// `lru_crawler <subcommand> [arg]` (see [`admin::LruCrawler`]).
    LruCrawler(admin::LruCrawler),
    /// `watch [stream…]`: `mask` is a set of [`admin::watch`] bits
    /// (`fetchers` when no stream is named).
    Watch {
        mask: u32,
    },
    /// `slabs reassign <src> <dst>`: the class ids as memcached reads them.
    SlabsReassign {
        src: i32,
        dst: i32,
    },
    /// `slabs automove <level>` (`level` 0 to 2) or `slabs automove ratio
    /// <float>` (`level` `None`).
    SlabsAutomove {
        level: Option<u8>,
        noreply: bool,
    },
}

/// What a binary incr/decr of a missing key creates: the item holding
/// `initial` (in decimal), with flags 0 and this exptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithCreate {
    pub initial: u64,
    pub exptime: i64,
}

/// How much of a reply memcached's `-vv` log shows (see [`text::Summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbose {
    /// The summary: keys sent and the last line.
    Summary,
    /// Only an error (the meta commands: memcached logs none of their
    /// statuses).
    ErrorsOnly,
    /// Nothing (`stats`, a metadump).
    Nothing,
}

impl<'a> Request<'a> {
    /// This request with its reply turned on, if it had `noreply`; `None`
    /// otherwise. memcached's `-vv` logs what a silent request would have
    /// answered (`>fd NOREPLY STORED`): the server runs this copy into a
    /// scratch buffer the client never sees. (`slabs automove … noreply`
    /// is left out: memcached logs nothing for it.)
    pub fn with_reply(&self) -> Option<Request<'a>> {
        let mut loud = self.clone();
        match &mut loud {
            Request::Store { noreply, .. }
            | Request::TooLarge { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arith { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::Invalid { noreply, .. }
                if *noreply =>
            {
                *noreply = false;
                Some(loud)
            }
            _ => None,
        }
    }

    /// `watch` and `lru_crawler metadump` take over the connection's
    /// output (a stream of log lines, a dump of any length), so memcached
    /// refuses them while replies of earlier pipelined requests wait
    /// unsent: this is the refusal. (memcached makes its own checks first:
    /// `-W`, the crawler's state, `-X`; and a dump that is already running
    /// is not refused.)
    pub fn pipelining_refusal(&self) -> Option<Failure> {
        match self {
            Request::Watch { .. } => Some(Failure::WatchAfterPipeline),
            Request::LruCrawler(admin::LruCrawler::Metadump(_)) => {
                Some(Failure::MetadumpAfterPipeline)
            }
            _ => None,
        }
    }

    /// Whether this request's answer is a stream (`watch`, a metadump),
    /// which a UDP datagram cannot carry: memcached sends nothing usable.
    pub fn streams(&self) -> bool {
        self.pipelining_refusal().is_some()
    }

    /// Whether memcached sends the connection's stacked replies right after
    /// this request (a get, `gets`, `gat`, `gats`, `mn` or a metadump)
    /// instead of waiting for the input to run out: after these, nothing
    /// is pending, so a following `watch` or metadump is not refused.
    pub fn sends_replies(&self) -> bool {
        matches!(
            self,
            Request::Get { .. }
                | Request::Gat { .. }
                | Request::MetaNoop
                | Request::LruCrawler(admin::LruCrawler::Metadump(_))
        )
    }

    /// How much of this request's reply memcached's `-vv` logs.
    pub fn verbose(&self) -> Verbose {
        match self {
            Request::Stats { .. } | Request::LruCrawler(admin::LruCrawler::Metadump(_)) => {
                Verbose::Nothing
            }
            Request::MetaGet(_)
            | Request::MetaSet(_)
            | Request::MetaDelete(_)
            | Request::MetaArith(_) => Verbose::ErrorsOnly,
            _ => Verbose::Summary,
        }
    }

    /// A `cas` command's key and the unique it compares: `-vv` logs
    /// memcached's `CAS:  failure` line when it is refused.
    pub fn cas_compare(&self) -> Option<(&'a [u8], u64)> {
        match *self {
            Request::Store {
                mode: StoreMode::Cas,
                key,
                cas,
                ..
            } => Some((key, cas)),
            _ => None,
        }
    }

    /// The retrieval [`Request::retrieval`] took apart.
    pub fn retrieval_of(keys: Keys<'a>, exptime: Option<i64>, with_cas: bool) -> Request<'a> {
        match exptime {
            None => Request::Get { keys, with_cas },
            Some(exptime) => Request::Gat {
                exptime,
                keys,
                with_cas,
            },
        }
    }

    /// A retrieval's keys, exptime (`gat`, `gats`) and whether it shows cas
    /// uniques: what a multi-get paused at its output limit needs to be
    /// rebuilt without parsing its line again.
    pub fn retrieval(&self) -> Option<(Keys<'a>, Option<i64>, bool)> {
        match *self {
            Request::Get { keys, with_cas } => Some((keys, None, with_cas)),
            Request::Gat {
                exptime,
                keys,
                with_cas,
            } => Some((keys, Some(exptime), with_cas)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a whole request yet: read more and call again with the same start.
    Incomplete,
    /// The line is too long to be a request: close the connection.
    LineTooLong,
}

/// Why a request was refused by the parser: the request is malformed. Each
/// codec names these its own way; the text codec's lines are memcached's
/// (see `text::fault_line`, which spells every one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An unknown command, or a known one with the wrong number of
    /// arguments (`ERROR`).
    UnknownCommand,
    BadCommandLineFormat,
    /// A data block not followed by `\r\n`. memcached has counted the set
    /// (`cmd_set`) by the time it sees this.
    BadDataChunk,
    BadExptime,
    /// `incr`/`decr`'s delta is not a number.
    BadDelta,
    /// `delete <key> <anything but 0 or noreply>`.
    DeleteUsage,
    /// A meta flag given twice (or a flag byte above 126).
    DuplicateFlag,
    InvalidFlag,
    /// A meta flag's numeric argument does not read.
    BadToken,
    /// `M` with other than one mode letter.
    ModeTokenLength,
    /// `ma`'s `J` does not read.
    BadInitial,
    /// `ma`'s `D` does not read.
    BadMetaDelta,
    /// A `b` key that is not base64.
    BadKeyEncoding,
    OpaqueTooLong,
    /// What `md` and `ma` answer for any flag fault.
    InvalidOrDuplicateFlag,
    InvalidArithMode,
    InvalidSetMode,
    /// Too many tokens on an `mg` line (memcached words it apart).
    GetFlagsTooLong,
    /// Too many tokens on another meta line.
    FlagsTooLong,
    /// `lru_crawler sleep` above one second.
    SleepTooLong,
}

/// A command that could not do what was asked, or refused to: its outcome
/// as a value, for the codec to name (the text codec's lines are in
/// `text::failure_line`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The value is larger than `-I` allows.
    TooLarge,
    /// `-M` and no memory for the item.
    NoMemoryStoring,
    /// incr/decr could not build the new value.
    NoMemory,
    NonNumeric,
    /// `flush_all` under `-F`.
    FlushDisabled,
    /// `shutdown` without `-A`.
    ShutdownDisabled,
    BadShutdownMode,
    MemlimitTooSmall,
    /// A `cache_memlimit` that looks like bytes, not megabytes.
    MemlimitTooLarge,
    StatsDetailUsage,
    CachedumpDisabled,
    CachedumpBadClass,
    /// `stats cachedump` without its two numbers.
    CachedumpUsage,
    SlabsSameClass,
    SlabsBadClass,
    SlabsNoSpare,
    /// `lru_crawler enable` while the crawler runs.
    CrawlerRunning,
    CrawlerDisabled,
    CrawlBadClass,
    /// `lru_crawler crawl hash`: memcached cannot crawl by hash table.
    CrawlByHash,
    CrawlerBusy,
    CrawlNothingToDo,
    MetadumpDisabled,
    WatchDisabled,
    /// `watch` behind replies not yet sent.
    WatchAfterPipeline,
    /// `lru_crawler metadump` behind replies not yet sent.
    MetadumpAfterPipeline,
    /// A multi-get's reply does not fit in a UDP reply, or in the buffers
    /// `-o read_buf_mem_limit` leaves the connection, or its value would
    /// pin more than `-o pinned_mem_limit` (memcached answers its cases
    /// with the same words).
    ReplyNoMemory,
    /// A UDP request spread over several datagrams.
    UdpMultiPacket,
    /// A connection over `-c`, answered once and closed.
    TooManyConnections,
    /// `refresh_certs` on a server without `-Z`.
    TlsNotEnabled,
    /// Under `-Y`, anything but an authentication token before one
    /// succeeded.
    Unauthenticated,
    /// Under `-Y`, a token whose user and password match no entry.
    AuthFailure,
    /// Under `-Y`, a token whose data holds fewer than two words.
    AuthBadFormat,
    /// Under `-Y`, a token whose data does not end in `\r\n`.
    AuthBadTermination,
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
    /// A retrieval's hit.
    Value {
        key: &'a [u8],
        flags: u32,
        data: &'a [u8],
        cas: Option<u64>,
    },
    /// The result of incr/decr.
    Number(u64),
    Version(&'a str),
    /// `stats reset` done.
    Reset,
    /// `mn`: every reply before this one has been sent.
    MetaNoop,
    /// The request was malformed.
    Fault(Fault),
    /// The command failed or was refused.
    Failure(Failure),
    /// One item of `stats cachedump`: its key, value length and expiry
    /// (unix time, 0 for never).
    CachedumpItem {
        key: &'a [u8],
        value_len: usize,
        exp: u64,
    },
    /// One item of `lru_crawler metadump`.
    MetadumpItem(&'a ItemInfo<'a>),
    /// `me`'s answer for a live item.
    MetaDebug(&'a ItemInfo<'a>),
    /// `refresh_certs` failed: why, in memcached's words (its reply is the
    /// bare message, without an `ERROR` word before it).
    CertRefreshFailed(&'a str),
}

/// One item as the operator commands show it (`metadump`, `me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo<'a> {
    pub key: &'a [u8],
    /// The key was stored in binary (meta `b`): `me` shows it in base64.
    pub binary_key: bool,
    /// Unix time the item expires; `None` when it never does.
    pub exp: Option<u64>,
    /// Unix time of the last access.
    pub last_access: u64,
    /// Unix time now (the relative forms: `me`'s `exp` and `la`).
    pub now: u64,
    /// 0 under `-C`.
    pub cas: u64,
    pub fetched: bool,
    pub class: u32,
    pub size: u64,
}

/// What a meta reply says (`mg ms md ma`); the text codec's two letters are
/// memcached's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStatus {
    /// `HD`, or `VA <len>` when the reply carries a value.
    Done,
    /// `EN`: `mg` missed.
    Miss,
    /// `NS`
    NotStored,
    /// `EX`: the compare unique did not match.
    Exists,
    /// `NF`
    NotFound,
}

/// One flag a meta reply returns, with its value, in the order the client
/// sent the flags (then the marks `Z`, `X`, `W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField<'a> {
    /// `s`: value length.
    Size(u64),
    /// `t`: seconds left; `None` for never (`-1`).
    Ttl(Option<u32>),
    /// `c`
    Cas(u64),
    /// `f`: client flags.
    Flags(u32),
    /// `l`: seconds since the last access.
    LastAccess(u64),
    /// `h`: fetched before (0 or 1).
    Hit(bool),
    /// `O`: the opaque token as sent, letter included.
    Opaque(&'a [u8]),
    /// `k`: the key; a binary key goes back in base64, with `b`.
    Key { key: &'a [u8], binary: bool },
    /// `W`: this client won the right to recache.
    Win,
    /// `X`: the item is stale.
    Stale,
    /// `Z`: a win was already sent to someone else.
    WinSent,
}

/// The flags of one meta reply: one per returning flag a request gave (`s
/// t c f l h O k`; the parser refuses a flag given twice) and the three
/// marks `W X Z`.
#[derive(Debug, Clone, Copy)]
pub struct MetaFields<'a> {
    fields: [MetaField<'a>; MetaFields::CAP],
    len: usize,
}

impl<'a> MetaFields<'a> {
    /// Eight returning flags and three marks, with room to spare; kept
    /// small, as the array is set up on every meta request.
    const CAP: usize = 16;

    pub fn new() -> MetaFields<'a> {
        MetaFields {
            fields: [MetaField::Win; MetaFields::CAP],
            len: 0,
        }
    }

    /// Adds `f`; beyond the capacity (which the parser's refusal of a
    /// repeated flag keeps out of reach) it is dropped.
    #[inline]
    pub fn push(&mut self, f: MetaField<'a>) {
        if let Some(slot) = self.fields.get_mut(self.len) {
            *slot = f;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[MetaField<'a>] {
        &self.fields[..self.len]
    }

    /// Fills in the key of every `k` field: a command that changes the item
    /// while it goes through the flags borrows the item's key only at the
    /// end. In place: the fields are a few hundred bytes, and moving them
    /// into a new value on every `mg` showed in its cost.
    pub fn set_key(&mut self, key: &'a [u8], binary: bool) {
        for slot in &mut self.fields[..self.len] {
            if let MetaField::Key { .. } = slot {
                *slot = MetaField::Key { key, binary };
            }
        }
    }
}

impl Default for MetaFields<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// A meta command's reply.
#[derive(Debug, Clone, Copy)]
pub struct MetaReply<'a> {
    pub status: MetaStatus,
    pub fields: &'a [MetaField<'a>],
    /// The value, sent after the status line (`v`).
    pub value: Option<&'a [u8]>,
}

/// Where a command's outcomes go: each codec implements it over its
/// connection's output. `command::execute` is generic over it, so the text
/// path pays no dynamic call.
pub trait Reply {
    /// Adds one reply.
    fn respond(&mut self, r: &Response<'_>);
    /// Adds a meta command's reply.
    fn meta(&mut self, r: &MetaReply<'_>);
    /// Adds one `stats` entry.
    fn stat(&mut self, name: &dyn Display, value: &dyn Display);
    /// The unique of the item the request just wrote (a store, an
    /// incr/decr), called before its reply: the binary protocol sends it
    /// in the reply's header; the text protocol has no place for it.
    #[inline]
    fn item_cas(&mut self, _cas: u64) {}
    /// Whether the sink can send a value from the cache itself (a socket
    /// connection's write buffer can; a datagram cannot): callers hold a
    /// value for it only then.
    #[inline]
    fn takes_shared(&self) -> bool {
        false
    }
    /// Adds a retrieval's hit (`Response::Value`) whose data is `value`'s
    /// bytes, held in the cache: the sink sends them from there instead of
    /// copying them. A sink that cannot copies.
    fn respond_shared(&mut self, r: &Response<'_>, _value: Shared) {
        self.respond(r);
    }
    /// [`Self::respond_shared`] for a meta reply carrying a value.
    fn meta_shared(&mut self, r: &MetaReply<'_>, _value: Shared) {
        self.meta(r);
    }
    /// Bytes written so far (with the values sent from the cache): a
    /// multi-get or a dump pauses once this passes
    /// the connection's output limit, and `stats cachedump` stops at its
    /// size cap.
    fn len(&self) -> usize;
    /// Drops what was written past `len` (a cachedump item that crossed its
    /// cap).
    fn truncate(&mut self, len: usize);
    /// Whether nothing was written yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_plus_value: 1024 * 1024 - 59,
    };

    fn req(line: &[u8]) -> Request<'_> {
        parse(line, &LIMITS).expect("complete").0
    }

    #[test]
    fn what_the_server_asks_of_a_request() {
        assert!(req(b"set k 0 0 1 noreply\r\nx\r\n").with_reply().is_some());
        assert!(req(b"set k 0 0 1\r\nx\r\n").with_reply().is_none());
        assert!(req(b"incr k x noreply\r\n").with_reply().is_some());
        let loud = req(b"delete k noreply\r\n")
            .with_reply()
            .expect("had noreply");
        assert_eq!(loud.with_reply(), None, "the copy has its reply on");
        assert_eq!(req(b"delete k\r\n").with_reply(), None);
        assert_eq!(req(b"slabs automove 1 noreply\r\n").with_reply(), None);

        assert_eq!(
            req(b"watch\r\n").pipelining_refusal(),
            Some(Failure::WatchAfterPipeline)
        );
        assert_eq!(
            req(b"lru_crawler metadump all\r\n").pipelining_refusal(),
            Some(Failure::MetadumpAfterPipeline)
        );
        assert!(req(b"lru_crawler metadump all\r\n").streams());
        assert!(!req(b"lru_crawler crawl all\r\n").streams());

        for sends in [&b"get a\r\n"[..], b"gats 1 a\r\n", b"mn\r\n"] {
            assert!(req(sends).sends_replies(), "{sends:?}");
        }
        for stacks in [&b"mg a v\r\n"[..], b"set k 0 0 1\r\nx\r\n", b"bogus\r\n"] {
            assert!(!req(stacks).sends_replies(), "{stacks:?}");
        }

        assert_eq!(req(b"stats\r\n").verbose(), Verbose::Nothing);
        assert_eq!(req(b"mg a v\r\n").verbose(), Verbose::ErrorsOnly);
        assert_eq!(req(b"me a\r\n").verbose(), Verbose::Summary);
        assert_eq!(req(b"get a\r\n").verbose(), Verbose::Summary);

        let Some((keys, exptime, with_cas)) = req(b"gats 10 a b\r\n").retrieval() else {
            panic!("a retrieval");
        };
        assert_eq!(
            (keys.raw(), exptime, with_cas),
            (&b" a b"[..], Some(10), true)
        );
        assert_eq!(req(b"mn\r\n").retrieval(), None);
    }
}
