//! The text protocol's parser: one request at the start of a buffer,
//! borrowing keys and data from it.
//!
//! Owns the syntax of memcached's text commands (the meta commands' is in
//! [`crate::protocol::meta`], the operator commands' in
//! [`crate::protocol::admin`]). Must not decide outcomes: a malformed
//! request is a [`Request::Invalid`] naming its [`Fault`].
//!
//! The reference is memcached 1.6.18: for every malformed input the parser
//! yields what makes the server answer the bytes memcached answers, and
//! consumes the bytes memcached consumes. The rules, as observed on the real
//! server:
//!
//! - A line ends at the first `\n`; one `\r` before it is dropped. The command
//!   ends at the first NUL in the line (memcached reads it as a C string).
//! - Tokens are separated by one or more spaces (only spaces: a tab is part of
//!   a token, so keys may hold tabs and any other byte but space, NUL and
//!   `\n`). Command names are case-sensitive.
//! - `noreply` counts only as the last token, spelled exactly so; in its
//!   place any other word is ignored (`set k 0 0 1 foo` stores and answers).
//!   When it is given, errors found after it was seen are silent too (see
//!   [`Request::Invalid`]).
//! - Numbers are read the way memcached's `strtol`-based helpers read them,
//!   including the 32-bit truncation of flags, exptimes and byte counts (see
//!   the `num` module).
//! - A storage command whose line is wrong is answered on its own and its
//!   data block is *not* swallowed: the data is read as the next command. A
//!   data block not followed by `\r\n` is a bad data chunk: exactly `bytes + 2`
//!   bytes after the line are consumed. A too-large value is swallowed.

use crate::cnum::{safe_strtol, safe_strtoul, safe_strtoull};
use crate::protocol::{
    admin, meta, scan, Fault, Keys, Limits, ParseError, Request, StoreMode, MAX_GET_LINE_LEN,
    MAX_KEY_LEN, MAX_LINE_LEN,
};

/// memcached skips at most this many leading spaces when deciding whether an
/// unfinished long line is a multi-get.
const MAX_LEADING_SPACES: usize = 100;

const ERROR: Fault = Fault::UnknownCommand;
pub(in crate::protocol) const BAD_FORMAT: Fault = Fault::BadCommandLineFormat;
const BAD_DATA_CHUNK: Fault = Fault::BadDataChunk;
const BAD_EXPTIME: Fault = Fault::BadExptime;
const BAD_DELTA: Fault = Fault::BadDelta;
const DELETE_USAGE: Fault = Fault::DeleteUsage;

/// Parses one request at the start of `buf`.
///
/// On success returns the request and how many bytes it took. That count can
/// be larger than `buf.len()` only for [`Request::TooLarge`]: the caller then
/// discards the rest of the value as it arrives.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Request<'a>, usize), ParseError> {
    let Some((newline, nul)) = scan::find_line(buf) else {
        return Err(unfinished_line(buf));
    };
    let consumed = newline + 1;
    // memcached drops a `\r` before the `\n` only when something precedes it;
    // a lone "\r" line stays one byte long (and is an unknown command).
    let end = if nul < newline {
        nul
    } else if newline > 1 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = &buf[..end];

    let mut i = 0;
    while i < line.len() && line[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < line.len() && line[i] != b' ' {
        i += 1;
    }
    let cmd = &line[start..i];
    let rest = &line[i..];

    let req = match cmd {
        b"get" => retrieval(rest, false),
        b"set" => return storage(StoreMode::Set, rest, buf, consumed, limits),
        b"gets" => retrieval(rest, true),
        b"delete" => delete(rest),
        b"incr" => arith(rest, true),
        b"decr" => arith(rest, false),
        b"touch" => touch(rest),
        b"gat" => get_and_touch(rest, false),
        b"gats" => get_and_touch(rest, true),
        b"add" => return storage(StoreMode::Add, rest, buf, consumed, limits),
        b"replace" => return storage(StoreMode::Replace, rest, buf, consumed, limits),
        b"append" => return storage(StoreMode::Append, rest, buf, consumed, limits),
        b"prepend" => return storage(StoreMode::Prepend, rest, buf, consumed, limits),
        b"cas" => return storage(StoreMode::Cas, rest, buf, consumed, limits),
        b"version" => Request::Version,
        b"refresh_certs" => Request::RefreshCerts {
            noreply: Args::split(rest).noreply(),
        },
        b"quit" => Request::Quit,
        b"stats" => Request::Stats {
            args: trim_spaces(rest),
        },
        b"flush_all" => flush_all(rest),
        b"verbosity" => verbosity(rest),
        b"cache_memlimit" => cache_memlimit(rest),
        b"shutdown" => shutdown(rest),
        b"mg" => meta::keyed(meta::Kind::Get, rest),
        b"ms" => return meta::set(rest, buf, consumed, limits),
        b"md" => meta::keyed(meta::Kind::Delete, rest),
        b"ma" => meta::keyed(meta::Kind::Arith, rest),
        b"mn" => Request::MetaNoop,
        b"me" => meta::debug(rest),
        b"lru_crawler" => admin::lru_crawler(rest),
        b"watch" => admin::watch(rest),
        b"slabs" => admin::slabs(rest),
        _ => unknown(cmd, rest),
    };
    Ok((req, consumed))
}

/// No `\n` in `buf` yet: wait, or give up on a line that cannot be a request.
/// What [`parse`] answers for such a buffer; the server calls it directly
/// when it knows there is no `\n` (it has seen the earlier bytes), so that a
/// long line arriving in small pieces is not searched again from its start
/// after every piece.
pub fn unfinished_line(buf: &[u8]) -> ParseError {
    if buf.len() <= MAX_LINE_LEN {
        return ParseError::Incomplete;
    }
    let spaces = buf
        .iter()
        .take(MAX_LEADING_SPACES + 1)
        .take_while(|&&b| b == b' ')
        .count();
    if spaces > MAX_LEADING_SPACES {
        return ParseError::LineTooLong;
    }
    let line = &buf[spaces..];
    let multi_get = [&b"get "[..], b"gets ", b"gat ", b"gats "]
        .iter()
        .any(|p| line.starts_with(p));
    if multi_get && buf.len() <= MAX_GET_LINE_LEN {
        ParseError::Incomplete
    } else {
        ParseError::LineTooLong
    }
}

pub(in crate::protocol) fn invalid(fault: Fault, noreply: bool) -> Request<'static> {
    Request::Invalid { fault, noreply }
}

pub(in crate::protocol) fn error() -> Request<'static> {
    invalid(ERROR, false)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    &s[start..end]
}

/// The first token of `s` and what follows it (`(b"", b"")` when none).
pub(in crate::protocol) fn next_token(s: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < s.len() && s[i] != b' ' {
        i += 1;
    }
    (&s[start..i], &s[i..])
}

/// Most arguments any fixed-arity command takes (`cas` with `noreply`).
const MAX_ARGS: usize = 6;

/// The arguments after a command name. `n` counts them, saturating at
/// `MAX_ARGS + 1` ("too many for any command").
struct Args<'a> {
    t: [&'a [u8]; MAX_ARGS],
    n: usize,
}

impl<'a> Args<'a> {
    #[inline]
    fn split(rest: &'a [u8]) -> Args<'a> {
        let empty: &'a [u8] = &[];
        let mut t = [empty; MAX_ARGS];
        let mut n = 0;
        let mut s = rest;
        loop {
            let (tok, after) = next_token(s);
            if tok.is_empty() {
                break;
            }
            if n == MAX_ARGS {
                n += 1;
                break;
            }
            t[n] = tok;
            n += 1;
            s = after;
        }
        Args { t, n }
    }

    /// memcached's `set_noreply_maybe`: the last token, spelled exactly.
    #[inline]
    fn noreply(&self) -> bool {
        (1..=MAX_ARGS).contains(&self.n) && self.t[self.n - 1] == b"noreply"
    }
}

enum KeysCheck {
    Ok,
    Empty,
    TooLong,
}

/// Checks the keys of a retrieval command: memcached rejects the whole
/// command if any key is longer than [`MAX_KEY_LEN`].
#[inline]
fn check_keys(raw: &[u8]) -> KeysCheck {
    // A slice no longer than the limit cannot hold a key over it.
    if raw.len() > MAX_KEY_LEN && scan::has_run_longer_than(raw, MAX_KEY_LEN) {
        KeysCheck::TooLong
    } else if raw.iter().any(|&b| b != b' ') {
        KeysCheck::Ok
    } else {
        KeysCheck::Empty
    }
}

fn retrieval(rest: &[u8], with_cas: bool) -> Request<'_> {
    match check_keys(rest) {
        KeysCheck::Ok => Request::Get {
            keys: Keys::new(rest),
            with_cas,
        },
        KeysCheck::Empty => error(),
        KeysCheck::TooLong => invalid(BAD_FORMAT, false),
    }
}

fn get_and_touch(rest: &[u8], with_cas: bool) -> Request<'_> {
    let (exptime, keys) = next_token(rest);
    if exptime.is_empty() {
        return error();
    }
    let Some(exptime) = safe_strtol(exptime) else {
        return invalid(BAD_EXPTIME, false);
    };
    match check_keys(keys) {
        KeysCheck::Ok | KeysCheck::Empty => Request::Gat {
            exptime: i64::from(exptime),
            keys: Keys::new(keys),
            with_cas,
        },
        KeysCheck::TooLong => {
            // the keys up to the first over-long one
            let mut end = 0;
            loop {
                let (tok, after) = next_token(&keys[end..]);
                if tok.len() > MAX_KEY_LEN {
                    break;
                }
                end = keys.len() - after.len();
            }
            Request::GatBadKey {
                exptime: i64::from(exptime),
                keys: Keys::new(&keys[..end]),
            }
        }
    }
}

fn storage<'a>(
    mode: StoreMode,
    rest: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<(Request<'a>, usize), ParseError> {
    let a = Args::split(rest);
    let with_cas = mode == StoreMode::Cas;
    let fixed = if with_cas { 5 } else { 4 };
    if a.n != fixed && a.n != fixed + 1 {
        return Ok((error(), line_len));
    }
    let noreply = a.noreply();
    let bad = Ok((invalid(BAD_FORMAT, noreply), line_len));
    let key = a.t[0];
    if key.len() > MAX_KEY_LEN {
        return bad;
    }
    let (Some(flags), Some(exptime), Some(bytes)) = (
        safe_strtoul(a.t[1]),
        safe_strtol(a.t[2]),
        safe_strtol(a.t[3]),
    ) else {
        return bad;
    };
    let cas = if with_cas {
        match safe_strtoull(a.t[4]) {
            Some(cas) => cas,
            None => return bad,
        }
    } else {
        0
    };
    // memcached adds 2 for the CRLF to a signed 32-bit count.
    if !(0..=i32::MAX - 2).contains(&bytes) {
        return bad;
    }
    let bytes = bytes as usize;
    let total = line_len + bytes + 2;
    let flags_size = if flags == 0 { 0 } else { 4 };
    if key.len() + bytes + flags_size > limits.max_key_plus_value {
        // Decided from the line alone: the value is never buffered.
        return Ok((Request::TooLarge { mode, key, noreply }, total));
    }
    if buf.len() < total {
        return Err(ParseError::Incomplete);
    }
    if &buf[line_len + bytes..total] != b"\r\n" {
        return Ok((invalid(BAD_DATA_CHUNK, noreply), total));
    }
    let req = Request::Store {
        mode,
        key,
        flags,
        exptime: i64::from(exptime),
        data: &buf[line_len..line_len + bytes],
        cas,
        noreply,
    };
    Ok((req, total))
}

fn delete(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    if !(1..=3).contains(&a.n) {
        return error();
    }
    let mut noreply = false;
    if a.n > 1 {
        // `delete <key> 0` is an old form memcached still accepts.
        let hold_is_zero = a.t[1] == b"0";
        noreply = a.noreply();
        let valid =
            (a.n == 2 && (hold_is_zero || noreply)) || (a.n == 3 && hold_is_zero && noreply);
        if !valid {
            return invalid(DELETE_USAGE, noreply);
        }
    }
    let key = a.t[0];
    if key.len() > MAX_KEY_LEN {
        return invalid(BAD_FORMAT, noreply);
    }
    Request::Delete {
        key,
        cas: 0,
        noreply,
    }
}

fn arith(rest: &[u8], incr: bool) -> Request<'_> {
    let a = Args::split(rest);
    if a.n != 2 && a.n != 3 {
        return error();
    }
    let noreply = a.noreply();
    let key = a.t[0];
    if key.len() > MAX_KEY_LEN {
        return invalid(BAD_FORMAT, noreply);
    }
    match safe_strtoull(a.t[1]) {
        Some(delta) => Request::Arith {
            key,
            delta,
            incr,
            cas: 0,
            create: None,
            noreply,
        },
        None => invalid(BAD_DELTA, noreply),
    }
}

fn touch(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    if a.n != 2 && a.n != 3 {
        return error();
    }
    let noreply = a.noreply();
    let key = a.t[0];
    if key.len() > MAX_KEY_LEN {
        return invalid(BAD_FORMAT, noreply);
    }
    match safe_strtol(a.t[1]) {
        Some(exptime) => Request::Touch {
            key,
            exptime: i64::from(exptime),
            noreply,
        },
        None => invalid(BAD_EXPTIME, noreply),
    }
}

fn flush_all(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    if a.n > 2 {
        return error();
    }
    let noreply = a.noreply();
    let mut delay = 0;
    let mut bad_delay = false;
    // Like memcached: a lone `noreply` is no delay; otherwise the first
    // argument is the delay, and a second one that is not `noreply` is ignored.
    if a.n != usize::from(noreply) {
        match safe_strtol(a.t[0]) {
            Some(d) => delay = i64::from(d),
            None => bad_delay = true,
        }
    }
    Request::FlushAll {
        delay,
        noreply,
        bad_delay,
    }
}

fn verbosity(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    if a.n != 1 && a.n != 2 {
        return error();
    }
    let noreply = a.noreply();
    match safe_strtoul(a.t[0]) {
        Some(level) => Request::Verbosity { level, noreply },
        None => invalid(BAD_FORMAT, noreply),
    }
}

fn cache_memlimit(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    if a.n != 1 && a.n != 2 {
        return error();
    }
    let noreply = a.noreply();
    match safe_strtoul(a.t[0]) {
        Some(mb) => Request::CacheMemlimit {
            megabytes: u64::from(mb),
            noreply,
        },
        // memcached answers a plain ERROR here, not a CLIENT_ERROR.
        None => invalid(ERROR, noreply),
    }
}

fn shutdown(rest: &[u8]) -> Request<'_> {
    let a = Args::split(rest);
    match a.n {
        0 => Request::Shutdown {
            graceful: false,
            bad_mode: false,
        },
        1 if a.t[0] == b"graceful" => Request::Shutdown {
            graceful: true,
            bad_mode: false,
        },
        _ => Request::Shutdown {
            graceful: false,
            bad_mode: true,
        },
    }
}

/// memcached looks at this many tokens at most when it splits a line; the
/// HTTP check reads the last of them.
const MAX_TOKENS_SEEN: usize = 23;

fn unknown<'a>(cmd: &[u8], rest: &[u8]) -> Request<'a> {
    if cmd.len() < 2 {
        return error();
    }
    // memcached dispatches on these first letters (and on two-letter meta
    // commands) before its final HTTP check, so unknown words starting with
    // them are always plain errors.
    match cmd[0] {
        b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't' => return error(),
        b'm' if cmd.len() == 2 => return error(),
        _ => {}
    }
    let mut last = cmd;
    let mut seen = 1;
    let mut s = rest;
    while seen < MAX_TOKENS_SEEN {
        let (tok, after) = next_token(s);
        if tok.is_empty() {
            break;
        }
        last = tok;
        seen += 1;
        s = after;
    }
    if last.starts_with(b"HTTP/") {
        Request::Quit
    } else {
        error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memcached's default `-I 1m` with CAS.
    const LIMITS: Limits = Limits {
        max_key_plus_value: 1024 * 1024 - 59,
    };

    fn p(buf: &[u8]) -> Result<(Request<'_>, usize), ParseError> {
        parse(buf, &LIMITS)
    }

    fn err(reply: Fault) -> Request<'static> {
        invalid(reply, false)
    }

    fn silent(reply: Fault) -> Request<'static> {
        invalid(reply, true)
    }

    fn get(raw: &[u8]) -> Request<'_> {
        Request::Get {
            keys: Keys::new(raw),
            with_cas: false,
        }
    }

    fn gets(raw: &[u8]) -> Request<'_> {
        Request::Get {
            keys: Keys::new(raw),
            with_cas: true,
        }
    }

    fn gat(exptime: i64, raw: &[u8], with_cas: bool) -> Request<'_> {
        Request::Gat {
            exptime,
            keys: Keys::new(raw),
            with_cas,
        }
    }

    fn gat_bad_key(exptime: i64, raw: &[u8]) -> Request<'_> {
        Request::GatBadKey {
            exptime,
            keys: Keys::new(raw),
        }
    }

    fn store<'a>(
        mode: StoreMode,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        cas: u64,
        noreply: bool,
    ) -> Request<'a> {
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            cas,
            noreply,
        }
    }

    fn set<'a>(key: &'a [u8], flags: u32, exptime: i64, data: &'a [u8]) -> Request<'a> {
        store(StoreMode::Set, key, flags, exptime, data, 0, false)
    }

    fn arith(key: &[u8], delta: u64, incr: bool, noreply: bool) -> Request<'_> {
        Request::Arith {
            key,
            delta,
            incr,
            cas: 0,
            create: None,
            noreply,
        }
    }

    fn touch(key: &[u8], exptime: i64, noreply: bool) -> Request<'_> {
        Request::Touch {
            key,
            exptime,
            noreply,
        }
    }

    fn flush(delay: i64, noreply: bool, bad_delay: bool) -> Request<'static> {
        Request::FlushAll {
            delay,
            noreply,
            bad_delay,
        }
    }

    fn memlimit(megabytes: u64, noreply: bool) -> Request<'static> {
        Request::CacheMemlimit { megabytes, noreply }
    }

    fn shutdown(graceful: bool, bad_mode: bool) -> Request<'static> {
        Request::Shutdown { graceful, bad_mode }
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn line_len(input: &[u8]) -> usize {
        input
            .iter()
            .position(|&b| b == b'\n')
            .map_or(usize::MAX, |i| i + 1)
    }

    /// Parses `input` whole, at every shorter prefix, and followed by another
    /// request: a prefix must be `Incomplete` (or, for `TooLarge`, the same
    /// answer once the line is in), and what follows must not change anything.
    fn check(input: &[u8], want: &Request<'_>, consumed: usize) {
        let shown = String::from_utf8_lossy(&input[..input.len().min(120)]).into_owned();
        assert_eq!(p(input), Ok((want.clone(), consumed)), "input {shown:?}");
        let too_large = matches!(want, Request::TooLarge { .. });
        for k in 0..input.len() {
            let got = p(&input[..k]);
            if k >= consumed || (too_large && k >= line_len(input)) {
                assert_eq!(got, Ok((want.clone(), consumed)), "prefix {k} of {shown:?}");
            } else {
                assert_eq!(got, Err(ParseError::Incomplete), "prefix {k} of {shown:?}");
            }
        }
        let mut more = input.to_vec();
        more.extend_from_slice(b"get next\r\n");
        assert_eq!(
            p(&more),
            Ok((want.clone(), consumed)),
            "pipelined {shown:?}"
        );
    }

    fn check_all(cases: &[(&[u8], Request<'_>, usize)]) {
        for (input, want, consumed) in cases {
            check(input, want, *consumed);
        }
    }

    /// Resuming a key list from a key's offset gives the keys from that one
    /// on, whatever the spacing.
    #[test]
    fn keys_resume_from_an_offset() {
        let keys = Keys::new(b"  a bb   ccc d ");
        let all: Vec<(usize, &[u8])> = keys.iter_from(0).collect();
        assert_eq!(
            all,
            vec![(2, &b"a"[..]), (4, b"bb"), (9, b"ccc"), (13, b"d")]
        );
        assert!(keys.iter().eq(all.iter().map(|&(_, k)| k)));
        for (i, &(at, _)) in all.iter().enumerate() {
            assert!(keys.iter_from(at).eq(all[i..].iter().copied()));
        }
        assert_eq!(keys.iter_from(15).count(), 0);
        assert_eq!(keys.iter_from(99).count(), 0);
        assert_eq!(Keys::new(b"").iter_from(0).count(), 0);
    }

    #[test]
    fn retrieval_commands() {
        let k250 = [b'k'; 250];
        let k251 = [b'k'; 251];
        let get250 = cat(&[b"get ", &k250, b"\r\n"]);
        let get251 = cat(&[b"get ", &k251, b"\r\n"]);
        let get_mid251 = cat(&[b"get a ", &k251, b" a\r\n"]);
        let get_late251 = cat(&[&b"get "[..], &b"a ".repeat(30), &k251, b"\r\n"]);
        let gets251 = cat(&[b"gets a ", &k251, b"\r\n"]);
        let many = cat(&[&b"get"[..], &b" a".repeat(40), b"\r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"get a\r\n", get(b" a"), 7),
            (b"get a\n", get(b" a"), 6),
            (b"get a b  c \r\n", get(b" a b  c "), 13),
            (b"   get a\r\n", get(b" a"), 10),
            (b"gets a b\r\n", gets(b" a b"), 10),
            // Only one CR is dropped; the other belongs to the key.
            (b"get a\r\r\n", get(b" a\r"), 8),
            // The command ends at a NUL.
            (b"get a\0b c\r\n", get(b" a"), 11),
            (b"get a\0\r\n", get(b" a"), 8),
            // Keys are not checked for control characters.
            (b"get a\tb \x01 \xff\r\n", get(b" a\tb \x01 \xff"), 13),
            (b"get noreply\r\n", get(b" noreply"), 13),
            (b"get / HTTP/1.1\r\n", get(b" / HTTP/1.1"), 16),
            (&get250, get(&get250[3..254]), 256),
            (&many, get(&many[3..many.len() - 2]), many.len()),
            (b"get\r\n", err(ERROR), 5),
            (b"get \r\n", err(ERROR), 6),
            (b"gets\r\n", err(ERROR), 6),
            (b"get\ta\r\n", err(ERROR), 7),
            (b"GET a\r\n", err(ERROR), 7),
            (b"Get a\r\n", err(ERROR), 7),
            (b"gets\0 a\r\n", err(ERROR), 9),
            (&get251, err(BAD_FORMAT), get251.len()),
            (&get_mid251, err(BAD_FORMAT), get_mid251.len()),
            (&get_late251, err(BAD_FORMAT), get_late251.len()),
            (&gets251, err(BAD_FORMAT), gets251.len()),
        ];
        check_all(cases);
    }

    #[test]
    fn get_and_touch() {
        let k251 = [b'k'; 251];
        let gat_key251 = cat(&[b"gat 0 a ", &k251, b"\r\n"]);
        let gat_only251 = cat(&[b"gat 0 ", &k251, b"\r\n"]);
        let gat_exptime251 = cat(&[b"gat ", &k251, b" a\r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"gat 10 a\r\n", gat(10, b" a", false), 10),
            (b"gats 10 a b\r\n", gat(10, b" a b", true), 13),
            (b"gat  10  a \r\n", gat(10, b"  a ", false), 13),
            // No keys at all: memcached answers END.
            (b"gat 10\r\n", gat(10, b"", false), 8),
            (b"gats 10 \r\n", gat(10, b" ", true), 10),
            (b"gat 4294967396 a\r\n", gat(100, b" a", false), 18),
            (b"gat 99999999999 a\r\n", gat(1215752191, b" a", false), 19),
            (b"gat -1 a\r\n", gat(-1, b" a", false), 10),
            (b"gat +5 a\r\n", gat(5, b" a", false), 10),
            (b"gat\r\n", err(ERROR), 5),
            (b"gat \r\n", err(ERROR), 6),
            (b"gats\r\n", err(ERROR), 6),
            (b"gat xx a\r\n", err(BAD_EXPTIME), 10),
            (b"gat 10x a\r\n", err(BAD_EXPTIME), 11),
            (b"gat 99999999999999999999 a\r\n", err(BAD_EXPTIME), 28),
            (&gat_key251, gat_bad_key(0, b" a"), gat_key251.len()),
            (&gat_only251, gat_bad_key(0, b""), gat_only251.len()),
            // The exptime is read before any key is looked at.
            (&gat_exptime251, err(BAD_EXPTIME), gat_exptime251.len()),
        ];
        check_all(cases);
    }

    #[test]
    fn storage_commands() {
        use StoreMode::*;
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"set a 0 0 3\r\nabc\r\n", set(b"a", 0, 0, b"abc"), 18),
            (b"set a 0 0 3\nabc\r\n", set(b"a", 0, 0, b"abc"), 17),
            (b"set a 0 0 0\r\n\r\n", set(b"a", 0, 0, b""), 15),
            (b"set a 0 0 2\r\n\r\n\r\n", set(b"a", 0, 0, b"\r\n"), 17),
            (
                b"set a 0 0 5\r\na\nb\0c\r\n",
                set(b"a", 0, 0, b"a\nb\0c"),
                20,
            ),
            (
                b"set a 5 10 3 noreply\r\nabc\r\n",
                store(Set, b"a", 5, 10, b"abc", 0, true),
                27,
            ),
            // Anything but `noreply` in its place is ignored.
            (b"set a 0 0 1 foo\r\nx\r\n", set(b"a", 0, 0, b"x"), 20),
            (b"set a 0 0 1 NOREPLY\r\nx\r\n", set(b"a", 0, 0, b"x"), 24),
            (b"set a 0 0 1 \r\nx\r\n", set(b"a", 0, 0, b"x"), 17),
            (b"  set  a  0  0  1  \r\nx\r\n", set(b"a", 0, 0, b"x"), 24),
            // A NUL ends the command line but not the bytes consumed for it.
            (
                b"set b 0 0 1\0 junk junk\r\nx\r\n",
                set(b"b", 0, 0, b"x"),
                27,
            ),
            (
                b"add a 1 2 1\r\nz\r\n",
                store(Add, b"a", 1, 2, b"z", 0, false),
                16,
            ),
            (
                b"replace a 0 0 1\r\nq\r\n",
                store(Replace, b"a", 0, 0, b"q", 0, false),
                20,
            ),
            (
                b"append a 0 0 1 noreply\r\nz\r\n",
                store(Append, b"a", 0, 0, b"z", 0, true),
                27,
            ),
            (
                b"prepend a 5 6 1\r\ny\r\n",
                store(Prepend, b"a", 5, 6, b"y", 0, false),
                20,
            ),
            (
                b"cas a 0 0 1 99\r\nx\r\n",
                store(Cas, b"a", 0, 0, b"x", 99, false),
                19,
            ),
            (
                b"cas a 0 0 1 18446744073709551615 noreply\r\nx\r\n",
                store(Cas, b"a", 0, 0, b"x", u64::MAX, true),
                45,
            ),
            (
                b"cas a 0 0 1 1 foo\r\nx\r\n",
                store(Cas, b"a", 0, 0, b"x", 1, false),
                22,
            ),
            (
                b"cas a 0 0 1 -0\r\nx\r\n",
                store(Cas, b"a", 0, 0, b"x", 0, false),
                19,
            ),
            // Keys may hold any byte but space, NUL and newline.
            (b"set a\tb 0 0 1\r\nx\r\n", set(b"a\tb", 0, 0, b"x"), 18),
            (
                b"set a\x01\x7fb 0 0 1\r\nx\r\n",
                set(b"a\x01\x7fb", 0, 0, b"x"),
                19,
            ),
            (
                b"set \xff\xfe 0 0 1\r\nx\r\n",
                set(b"\xff\xfe", 0, 0, b"x"),
                17,
            ),
            (b"set a\rb 0 0 1\r\nx\r\n", set(b"a\rb", 0, 0, b"x"), 18),
        ];
        check_all(cases);
    }

    #[test]
    fn storage_numbers_read_like_memcached() {
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            // flags: read as 64 bits, kept as 32.
            (
                b"set f 4294967295 0 1\r\nx\r\n",
                set(b"f", u32::MAX, 0, b"x"),
                25,
            ),
            (b"set f 4294967296 0 1\r\nx\r\n", set(b"f", 0, 0, b"x"), 25),
            (b"set f 4294967297 0 1\r\nx\r\n", set(b"f", 1, 0, b"x"), 25),
            (
                b"set f 18446744073709551615 0 1\r\nx\r\n",
                set(b"f", u32::MAX, 0, b"x"),
                35,
            ),
            (
                b"set f -9223372036854775809 0 1\r\nx\r\n",
                set(b"f", u32::MAX, 0, b"x"),
                35,
            ),
            (b"set f -0 0 1\r\nx\r\n", set(b"f", 0, 0, b"x"), 17),
            (b"set f +7 0 1\r\nx\r\n", set(b"f", 7, 0, b"x"), 17),
            (b"set f 010 0 1\r\nx\r\n", set(b"f", 10, 0, b"x"), 18),
            (b"set f 1\tx 0 1\r\nx\r\n", set(b"f", 1, 0, b"x"), 18),
            (b"set f \t5 0 1\r\nx\r\n", set(b"f", 5, 0, b"x"), 17),
            // exptime: a 64-bit long truncated to 32 bits.
            (
                b"set e 0 4294967396 1\r\nx\r\n",
                set(b"e", 0, 100, b"x"),
                25,
            ),
            (
                b"set e 0 -4294967196 1\r\nx\r\n",
                set(b"e", 0, 100, b"x"),
                26,
            ),
            (
                b"set e 0 9223372036854775807 1\r\nx\r\n",
                set(b"e", 0, -1, b"x"),
                34,
            ),
            (
                b"set e 0 -9223372036854775808 1\r\nx\r\n",
                set(b"e", 0, 0, b"x"),
                35,
            ),
            (b"set e 0 -1 1\r\nx\r\n", set(b"e", 0, -1, b"x"), 17),
            (
                b"set e 0 2592001 1\r\nx\r\n",
                set(b"e", 0, 2592001, b"x"),
                22,
            ),
            // bytes: the same, then 0 ..= i32::MAX - 2.
            (b"set f 1 0 +1\r\nx\r\n", set(b"f", 1, 0, b"x"), 17),
            (b"set f 1 0 01\r\nx\r\n", set(b"f", 1, 0, b"x"), 17),
            (b"set f 1 0 -0\r\n\r\n", set(b"f", 1, 0, b""), 16),
            (b"set f 1 0 4294967297\r\nx\r\n", set(b"f", 1, 0, b"x"), 25),
            (b"set f 1 0 -4294967295\r\nx\r\n", set(b"f", 1, 0, b"x"), 26),
        ];
        check_all(cases);
    }

    #[test]
    fn storage_line_errors_do_not_swallow_the_data() {
        let k250 = [b'k'; 250];
        let k251 = [b'k'; 251];
        let set250 = cat(&[b"set ", &k250, b" 0 0 3\r\nnew\r\n"]);
        let set251 = cat(&[b"set ", &k251, b" 0 0 3\r\nnew\r\n"]);
        let set251_noreply = cat(&[b"set ", &k251, b" 0 0 3 noreply\r\nnew\r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (&set250, set(&k250, 0, 0, b"new"), set250.len()),
            (&set251, err(BAD_FORMAT), 4 + 251 + 8),
            (&set251_noreply, silent(BAD_FORMAT), 4 + 251 + 16),
            // Wrong number of tokens: ERROR, never silent.
            (b"set a 0 0\r\nx\r\n", err(ERROR), 11),
            (b"set a 0\r\nx\r\n", err(ERROR), 9),
            (b"set a\r\nx\r\n", err(ERROR), 7),
            (b"set\r\nx\r\n", err(ERROR), 5),
            (b"set a 0 0 1 noreply x\r\nx\r\n", err(ERROR), 23),
            (b"SET a 0 0 1\r\nx\r\n", err(ERROR), 13),
            (b"sets a 0 0 1\r\nx\r\n", err(ERROR), 14),
            (b"cas a 0 0 1\r\nx\r\n", err(ERROR), 13),
            (b"cas a 0 0 1 1 noreply x\r\nx\r\n", err(ERROR), 25),
            (b"append a 0 0 1 2 3\r\nz\r\n", err(ERROR), 20),
            (b"prepend a\r\n", err(ERROR), 11),
            (b"replace\r\n", err(ERROR), 9),
            (b"add a 0 0\r\n", err(ERROR), 11),
            (b"replace HTTP/1.1\r\n", err(ERROR), 18),
            // Bad numbers: CLIENT_ERROR, silent with noreply.
            (
                b"set f 18446744073709551616 0 1\r\nx\r\n",
                err(BAD_FORMAT),
                32,
            ),
            (b"set f -1 0 1\r\nx\r\n", err(BAD_FORMAT), 14),
            (b"set f 1x 0 1\r\nx\r\n", err(BAD_FORMAT), 14),
            (b"set f 0x10 0 1\r\nx\r\n", err(BAD_FORMAT), 16),
            (b"set f - 0 1\r\nx\r\n", err(BAD_FORMAT), 13),
            (b"set f + 0 1\r\nx\r\n", err(BAD_FORMAT), 13),
            (
                b"set e 0 9223372036854775808 1\r\nx\r\n",
                err(BAD_FORMAT),
                31,
            ),
            (
                b"set e 0 -9223372036854775809 1\r\nx\r\n",
                err(BAD_FORMAT),
                32,
            ),
            (b"set e 0 1x 1\r\nx\r\n", err(BAD_FORMAT), 14),
            (b"set f 1 0 -1\r\nx\r\n", err(BAD_FORMAT), 14),
            (b"set f 1 0 -1 noreply\r\nx\r\n", silent(BAD_FORMAT), 22),
            (b"set f 1 0 1x\r\nx\r\n", err(BAD_FORMAT), 14),
            (b"set f 1 0 2147483646\r\nx\r\n", err(BAD_FORMAT), 22),
            (b"set f 1 0 2147483647\r\nx\r\n", err(BAD_FORMAT), 22),
            (b"set a 0 0 noreply\r\nx\r\n", silent(BAD_FORMAT), 19),
            (b"cas n 0 0 1 x\r\nx\r\n", err(BAD_FORMAT), 15),
            (b"cas n 0 0 1 -1\r\nx\r\n", err(BAD_FORMAT), 16),
            (
                b"cas n 0 0 1 18446744073709551616\r\nx\r\n",
                err(BAD_FORMAT),
                34,
            ),
            (b"cas n 0 0 1 x noreply\r\nx\r\n", silent(BAD_FORMAT), 23),
        ];
        check_all(cases);
    }

    #[test]
    fn bad_data_chunk_consumes_exactly_bytes_plus_two() {
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"set a 0 0 3\r\nabcde\r\n", err(BAD_DATA_CHUNK), 18),
            (
                b"set a 0 0 3 noreply\r\nabcde\r\n",
                silent(BAD_DATA_CHUNK),
                26,
            ),
            // A bare LF does not end a data block.
            (b"set a 0 0 3\r\nabc\nget a\r\n", err(BAD_DATA_CHUNK), 18),
            (b"set a 0 0 3\r\nabc\n\r\n", err(BAD_DATA_CHUNK), 18),
            (b"set a 0 0 0\r\nxx\r\n", err(BAD_DATA_CHUNK), 15),
            (b"append a 0 0 3\r\nabcde\r\n", err(BAD_DATA_CHUNK), 21),
            (b"cas a 0 0 1 5\r\nxyz\r\n", err(BAD_DATA_CHUNK), 18),
        ];
        check_all(cases);
    }

    #[test]
    fn too_large_is_decided_from_the_line_alone() {
        use StoreMode::*;
        let big = |line: &str, n: usize| cat(&[line.as_bytes(), &vec![b'x'; n], b"\r\n"]);
        // The largest values memcached 1.6.18 -I 1m stores for key "k".
        let ok0 = big("set k 0 0 1048516\r\n", 1048516);
        let (req, used) = p(&ok0).expect("complete");
        assert_eq!(used, ok0.len());
        assert!(matches!(req, Request::Store { data, .. } if data.len() == 1048516));
        let ok1 = big("set k 1 0 1048512\r\n", 1048512);
        let (req, _) = p(&ok1).expect("complete");
        assert!(matches!(req, Request::Store { flags: 1, data, .. } if data.len() == 1048512));

        let too_large =
            |mode, key: &'static [u8], noreply| Request::TooLarge { mode, key, noreply };
        let cases: Vec<(Vec<u8>, Request<'_>, usize)> = vec![
            (
                big("set k 0 0 1048517\r\n", 1048517),
                too_large(Set, b"k", false),
                19 + 1048519,
            ),
            // Non-zero flags take 4 more bytes in memcached's item.
            (
                big("set k 1 0 1048513\r\n", 1048513),
                too_large(Set, b"k", false),
                19 + 1048515,
            ),
            (
                big("set k 4294967295 0 1048513\r\n", 1048513),
                too_large(Set, b"k", false),
                28 + 1048515,
            ),
            (
                big("set k 0 0 1048517 noreply\r\n", 1048517),
                too_large(Set, b"k", true),
                27 + 1048519,
            ),
            (
                big("cas k 0 0 1048517 1\r\n", 1048517),
                too_large(Cas, b"k", false),
                21 + 1048519,
            ),
            (
                big("append k 0 0 1048517\r\n", 1048517),
                too_large(Append, b"k", false),
                22 + 1048519,
            ),
            (
                big("add k 0 0 1048517\r\n", 1048517),
                too_large(Add, b"k", false),
                19 + 1048519,
            ),
            // A too-large value is swallowed whatever it ends with.
            (
                cat(&[b"set k 0 0 1048517\r\n", &vec![b'x'; 1048519]]),
                too_large(Set, b"k", false),
                19 + 1048519,
            ),
        ];
        for (input, want, consumed) in &cases {
            assert_eq!(p(input), Ok((want.clone(), *consumed)));
            // With none or only part of the value in: the same answer.
            for cut in [19, 20, 30, 1000, input.len() - 1] {
                if cut >= line_len(input) {
                    assert_eq!(p(&input[..cut]), Ok((want.clone(), *consumed)));
                }
            }
            assert_eq!(
                p(&input[..line_len(input) - 1]),
                Err(ParseError::Incomplete)
            );
        }

        // A client declaring a 2 GB value is answered at once: consumed runs
        // far past the buffer and nothing waits for the data.
        let huge: &[u8] = b"set f 1 0 2147483645\r\nx";
        assert_eq!(p(huge), Ok((too_large(Set, b"f", false), 22 + 2147483647)));
        // 99999999999 bytes is 1215752191 once truncated to 32 bits.
        let trunc: &[u8] = b"set f 1 0 99999999999\r\n";
        assert_eq!(p(trunc), Ok((too_large(Set, b"f", false), 23 + 1215752193)));
        check(trunc, &too_large(Set, b"f", false), 23 + 1215752193);

        // The limit is the server's: a small one.
        let small = Limits {
            max_key_plus_value: 10,
        };
        assert_eq!(
            parse(b"set kk 0 0 8\r\n12345678\r\n", &small),
            Ok((set(b"kk", 0, 0, b"12345678"), 24))
        );
        assert_eq!(
            parse(b"set kk 0 0 9\r\n", &small),
            Ok((too_large(Set, b"kk", false), 14 + 11))
        );
        assert_eq!(
            parse(b"set kk 2 0 5\r\n", &small),
            Ok((too_large(Set, b"kk", false), 14 + 7))
        );
        // Line errors win over the size.
        assert_eq!(parse(b"set kk 0 0 9 x y\r\n", &small), Ok((err(ERROR), 18)));
    }

    #[test]
    fn delete_command() {
        let k250 = [b'k'; 250];
        let k251 = [b'k'; 251];
        let d250 = cat(&[b"delete ", &k250, b"\r\n"]);
        let d251 = cat(&[b"delete ", &k251, b"\r\n"]);
        let d251_noreply = cat(&[b"delete ", &k251, b" noreply\r\n"]);
        let d251_hold = cat(&[b"delete ", &k251, b" 5\r\n"]);
        let del = |key, noreply| Request::Delete {
            key,
            cas: 0,
            noreply,
        };
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"delete a\r\n", del(&b"a"[..], false), 10),
            (b"delete a 0\r\n", del(b"a", false), 12),
            (b"delete a noreply\r\n", del(b"a", true), 18),
            (b"delete a 0 noreply\r\n", del(b"a", true), 20),
            (&d250, del(&k250, false), d250.len()),
            (b"delete a 5\r\n", err(DELETE_USAGE), 12),
            (b"delete a 00\r\n", err(DELETE_USAGE), 13),
            (b"delete a -0\r\n", err(DELETE_USAGE), 13),
            (b"delete a 0 0\r\n", err(DELETE_USAGE), 14),
            (b"delete a noreply 0\r\n", err(DELETE_USAGE), 20),
            (b"delete a 0 foo\r\n", err(DELETE_USAGE), 16),
            (b"delete a x\r\n", err(DELETE_USAGE), 12),
            (b"delete a 5 noreply\r\n", silent(DELETE_USAGE), 20),
            (b"delete\r\n", err(ERROR), 8),
            (b"delete a b c d\r\n", err(ERROR), 16),
            (&d251, err(BAD_FORMAT), d251.len()),
            (&d251_noreply, silent(BAD_FORMAT), d251_noreply.len()),
            // The argument check comes before the key check.
            (&d251_hold, err(DELETE_USAGE), d251_hold.len()),
        ];
        check_all(cases);
    }

    #[test]
    fn incr_decr_commands() {
        let k251 = [b'k'; 251];
        let i251 = cat(&[b"incr ", &k251, b" 1\r\n"]);
        let i251_bad_delta = cat(&[b"incr ", &k251, b" x\r\n"]);
        let i251_noreply = cat(&[b"incr ", &k251, b" 1 noreply\r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"incr n 1\r\n", arith(b"n", 1, true, false), 10),
            (b"decr n 1\r\n", arith(b"n", 1, false, false), 10),
            (b"incr n +1\r\n", arith(b"n", 1, true, false), 11),
            (b"incr n -0\r\n", arith(b"n", 0, true, false), 11),
            (
                b"incr n 18446744073709551615\r\n",
                arith(b"n", u64::MAX, true, false),
                29,
            ),
            (
                b"incr n -9223372036854775809\r\n",
                arith(b"n", 9223372036854775807, true, false),
                29,
            ),
            (b"incr n 1\tx\r\n", arith(b"n", 1, true, false), 12),
            (b"decr n 1 noreply\r\n", arith(b"n", 1, false, true), 18),
            (b"decr n 1 foo\r\n", arith(b"n", 1, false, false), 14),
            (b"incr n -1\r\n", err(BAD_DELTA), 11),
            (b"incr n 18446744073709551616\r\n", err(BAD_DELTA), 29),
            (b"incr n 1x\r\n", err(BAD_DELTA), 11),
            (b"incr n x\r\n", err(BAD_DELTA), 10),
            (b"decr n x noreply\r\n", silent(BAD_DELTA), 18),
            (b"incr n\r\n", err(ERROR), 8),
            (b"incr\r\n", err(ERROR), 6),
            (b"incr n 1 2 3\r\n", err(ERROR), 14),
            (b"decr n\r\n", err(ERROR), 8),
            (&i251, err(BAD_FORMAT), i251.len()),
            (&i251_bad_delta, err(BAD_FORMAT), i251_bad_delta.len()),
            (&i251_noreply, silent(BAD_FORMAT), i251_noreply.len()),
        ];
        check_all(cases);
    }

    #[test]
    fn touch_command() {
        let k250 = [b'k'; 250];
        let k251 = [b'k'; 251];
        let t250 = cat(&[b"touch ", &k250, b" 10\r\n"]);
        let t251 = cat(&[b"touch ", &k251, b" 10\r\n"]);
        let t251_bad = cat(&[b"touch ", &k251, b" xx\r\n"]);
        let t251_noreply = cat(&[b"touch ", &k251, b" 10 noreply\r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"touch e 10\r\n", touch(b"e", 10, false), 12),
            (b"touch e 4294967396\r\n", touch(b"e", 100, false), 20),
            (b"touch e -1\r\n", touch(b"e", -1, false), 12),
            (b"touch e 10 noreply\r\n", touch(b"e", 10, true), 20),
            (b"touch e 10 foo\r\n", touch(b"e", 10, false), 16),
            (&t250, touch(&k250, 10, false), t250.len()),
            (b"touch e xx\r\n", err(BAD_EXPTIME), 12),
            (b"touch e 1x\r\n", err(BAD_EXPTIME), 12),
            (b"touch e 99999999999999999999\r\n", err(BAD_EXPTIME), 30),
            (b"touch e xx noreply\r\n", silent(BAD_EXPTIME), 20),
            (b"touch e\r\n", err(ERROR), 9),
            (b"touch\r\n", err(ERROR), 7),
            (b"touch e 1 2 3\r\n", err(ERROR), 15),
            (&t251, err(BAD_FORMAT), t251.len()),
            (&t251_bad, err(BAD_FORMAT), t251_bad.len()),
            (&t251_noreply, silent(BAD_FORMAT), t251_noreply.len()),
        ];
        check_all(cases);
    }

    #[test]
    fn flush_all_command() {
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"flush_all\r\n", flush(0, false, false), 11),
            (b"flush_all 0\r\n", flush(0, false, false), 13),
            (b"flush_all 10\r\n", flush(10, false, false), 14),
            (b"flush_all -1\r\n", flush(-1, false, false), 14),
            (b"flush_all 4294967296\r\n", flush(0, false, false), 22),
            (b"flush_all noreply\r\n", flush(0, true, false), 19),
            (b"flush_all 0 noreply\r\n", flush(0, true, false), 21),
            (b"flush_all 7 noreply\r\n", flush(7, true, false), 21),
            (b"flush_all 0 foo\r\n", flush(0, false, false), 17),
            (b"flush_all xx\r\n", flush(0, false, true), 14),
            (b"flush_all 1x\r\n", flush(0, false, true), 14),
            (
                b"flush_all 99999999999999999999\r\n",
                flush(0, false, true),
                32,
            ),
            (b"flush_all foo bar\r\n", flush(0, false, true), 19),
            (b"flush_all noreply foo\r\n", flush(0, false, true), 23),
            (b"flush_all HTTP/1.1\r\n", flush(0, false, true), 20),
            (b"flush_all xx noreply\r\n", flush(0, true, true), 22),
            (b"flush_all noreply noreply\r\n", flush(0, true, true), 27),
            (b"flush_all 1 2 3\r\n", err(ERROR), 17),
        ];
        check_all(cases);
    }

    #[test]
    fn admin_commands() {
        let verb = |level, noreply| Request::Verbosity { level, noreply };
        let stats = |args| Request::Stats { args };
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"version\r\n", Request::Version, 9),
            (b"version foo bar\r\n", Request::Version, 17),
            (b"version \r\n", Request::Version, 10),
            (b"version\0xx\r\n", Request::Version, 12),
            (b"version HTTP/1.1\r\n", Request::Version, 18),
            (b"version\t\r\n", err(ERROR), 10),
            (b"quit\r\n", Request::Quit, 6),
            (b"quit foo\r\n", Request::Quit, 10),
            (b"verbosity\r\n", err(ERROR), 11),
            (b"verbosity 1\r\n", verb(1, false), 13),
            (b"verbosity 99\r\n", verb(99, false), 14),
            (b"verbosity 4294967296\r\n", verb(0, false), 22),
            (b"verbosity 1 2\r\n", verb(1, false), 15),
            (b"verbosity 1\t\r\n", verb(1, false), 14),
            (b"verbosity 1 noreply\r\n", verb(1, true), 21),
            (b"verbosity xx\r\n", err(BAD_FORMAT), 14),
            (b"verbosity -1\r\n", err(BAD_FORMAT), 14),
            (b"verbosity HTTP/1.1\r\n", err(BAD_FORMAT), 20),
            (b"verbosity xx noreply\r\n", silent(BAD_FORMAT), 22),
            (b"verbosity noreply\r\n", silent(BAD_FORMAT), 19),
            (b"verbosity 1 2 3\r\n", err(ERROR), 17),
            (b"cache_memlimit\r\n", err(ERROR), 16),
            (b"cache_memlimit 0\r\n", memlimit(0, false), 18),
            (b"cache_memlimit 8\r\n", memlimit(8, false), 18),
            (b"cache_memlimit +64\r\n", memlimit(64, false), 20),
            (b"cache_memlimit -0\r\n", memlimit(0, false), 19),
            (
                b"cache_memlimit 1000000001\r\n",
                memlimit(1000000001, false),
                27,
            ),
            (
                b"cache_memlimit 4294967295\r\n",
                memlimit(4294967295, false),
                27,
            ),
            (b"cache_memlimit 4294967296\r\n", memlimit(0, false), 27),
            (b"cache_memlimit 4294967304\r\n", memlimit(8, false), 27),
            (b"cache_memlimit 64 noreply\r\n", memlimit(64, true), 27),
            (b"cache_memlimit 64 foo\r\n", memlimit(64, false), 23),
            (b"cache_memlimit xx\r\n", err(ERROR), 19),
            (b"cache_memlimit -1\r\n", err(ERROR), 19),
            (b"cache_memlimit 18446744073709551616\r\n", err(ERROR), 37),
            (b"cache_memlimit xx noreply\r\n", silent(ERROR), 27),
            (b"cache_memlimit noreply\r\n", silent(ERROR), 24),
            (b"cache_memlimit 1 2 3\r\n", err(ERROR), 22),
            (b"shutdown\r\n", shutdown(false, false), 10),
            (b"shutdown graceful\r\n", shutdown(true, false), 19),
            (b"shutdown  graceful \r\n", shutdown(true, false), 21),
            (b"shutdown foo\r\n", shutdown(false, true), 14),
            (b"shutdown GRACEFUL\r\n", shutdown(false, true), 19),
            (b"shutdown graceful foo\r\n", shutdown(false, true), 23),
            (b"shutdown noreply\r\n", shutdown(false, true), 18),
            (b"shutdown a b c d\r\n", shutdown(false, true), 18),
            (b"stats\r\n", stats(&b""[..]), 7),
            (b"stats \r\n", stats(b""), 8),
            (b"stats reset\r\n", stats(b"reset"), 13),
            (b"stats  reset  \r\n", stats(b"reset"), 16),
            (b"stats detail  on\r\n", stats(b"detail  on"), 18),
            (b"stats cachedump 1 1\r\n", stats(b"cachedump 1 1"), 21),
            (b"stats\tfoo\r\n", err(ERROR), 11),
            (b"Stats\r\n", err(ERROR), 7),
        ];
        check_all(cases);
    }

    #[test]
    fn unknown_commands_and_http() {
        let a21: Vec<u8> = (1..=21)
            .flat_map(|i| format!(" a{i}").into_bytes())
            .collect();
        // The HTTP/ token as the 23rd token, with a 24th after it: memcached
        // only looks at the first 23.
        let http23 = cat(&[b"foo", &a21, b" HTTP/1.1 y\r\n"]);
        let http24 = cat(&[b"foo", &a21, b" a22 HTTP/1.1\r\n"]);
        let http_last = cat(&[b"foo", &a21, b" HTTP/1.1  \r\n"]);
        let cases: &[(&[u8], Request<'_>, usize)] = &[
            (b"\r\n", err(ERROR), 2),
            (b"\n", err(ERROR), 1),
            (b"\r\r\n", err(ERROR), 3),
            (b"   \r\n", err(ERROR), 5),
            (b"\0version\r\n", err(ERROR), 10),
            (b"x\r\n", err(ERROR), 3),
            (b"foo\r\n", err(ERROR), 5),
            (b"mz\r\n", err(ERROR), 4),
            (b"mq a v\r\n", err(ERROR), 8),
            (b"watchx\r\n", err(ERROR), 8),
            (b"slabss reassign 1 2\r\n", err(ERROR), 21),
            (b"lru_crawlers metadump all\r\n", err(ERROR), 27),
            (b"GET / HTTP/1.1\r\n", Request::Quit, 16),
            (b"POST /x HTTP/1.0\r\n", Request::Quit, 18),
            (b"foo HTTP/1.1\r\n", Request::Quit, 14),
            (b"xx HTTP/\r\n", Request::Quit, 10),
            (b"HTTP/1.1\r\n", Request::Quit, 10),
            (b"foo HTTP/1.1 \r\n", Request::Quit, 15),
            (b"rxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"pxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"fxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"vxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"qxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"lxx HTTP/1.1\r\n", Request::Quit, 14),
            (b"mxx HTTP/1.1\r\n", Request::Quit, 14),
            (&http23, Request::Quit, http23.len()),
            (&http_last, Request::Quit, http_last.len()),
            (&http24, err(ERROR), http24.len()),
            (b"gex HTTP/1.1\r\n", err(ERROR), 14),
            (b"axx HTTP/1.1\r\n", err(ERROR), 14),
            (b"cxx HTTP/1.1\r\n", err(ERROR), 14),
            (b"ixx HTTP/1.1\r\n", err(ERROR), 14),
            (b"dxx HTTP/1.1\r\n", err(ERROR), 14),
            (b"txx HTTP/1.1\r\n", err(ERROR), 14),
            (b"sxx HTTP/1.1\r\n", err(ERROR), 14),
            (b"mx HTTP/1.1\r\n", err(ERROR), 13),
            (b"m HTTP/1.1\r\n", err(ERROR), 12),
            (b"x HTTP/1.1\r\n", err(ERROR), 12),
            (b"foo HTTP/1.1 x\r\n", err(ERROR), 16),
            (b"foo http/1.1\r\n", err(ERROR), 14),
        ];
        check_all(cases);
    }

    #[test]
    fn line_length_rules() {
        let inc = Err(ParseError::Incomplete);
        let long = Err(ParseError::LineTooLong);
        assert_eq!(p(&[b'x'; 2048]), inc);
        assert_eq!(p(&[b'x'; 2049]), long);
        assert_eq!(p(&cat(&[&[b'x'; 2047], b"\r"])), inc);
        assert_eq!(p(&cat(&[b"set k 0 0 1", &[b' '; 2040]])), long);
        // A NUL does not end an unfinished line.
        assert_eq!(p(&cat(&[b"get a\0", &[b'x'; 3000]])), inc);

        let keys = b"a ".repeat(1500);
        for prefix in [&b"get "[..], b"gets ", b"gat ", b"gats "] {
            assert_eq!(p(&cat(&[prefix, &keys])), inc);
            assert_eq!(p(&cat(&[&[b' '; 100], prefix, &keys])), inc);
            assert_eq!(p(&cat(&[&[b' '; 101], prefix, &keys])), long);
        }
        for prefix in [&b"get\t"[..], b"getx ", b"GET ", b"get", b"set "] {
            assert_eq!(p(&cat(&[prefix, &keys])), long);
        }
        // A multi-get may grow to MAX_GET_LINE_LEN, not further.
        let mut get_line = b"get ".to_vec();
        get_line.resize(MAX_GET_LINE_LEN, b'a');
        assert_eq!(p(&get_line), inc);
        get_line.push(b'a');
        assert_eq!(p(&get_line), long);

        // A line that is complete is served whatever its length.
        let set_line = cat(&[b"set k 0 0 1", &[b' '; 3000], b"\r\nx\r\n"]);
        assert_eq!(p(&set_line), Ok((set(b"k", 0, 0, b"x"), set_line.len())));
        let junk = cat(&[&[b'x'; 5000], b"\r\n"]);
        assert_eq!(p(&junk), Ok((err(ERROR), 5002)));
        let big_get = cat(&[b"get ", &b"a ".repeat(50000), b"\r\n"]);
        let (req, used) = p(&big_get).expect("complete");
        assert_eq!(used, big_get.len());
        match req {
            Request::Get { keys, .. } => assert_eq!(keys.iter().count(), 50000),
            other => panic!("not a get: {other:?}"),
        }
    }

    /// What a stateless server would answer to each request in `stream`:
    /// errors spelled out (or nothing under noreply), other requests named.
    fn conversation(stream: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            match parse(&stream[at..], &LIMITS) {
                Ok((req, used)) => {
                    match req {
                        Request::Invalid { noreply: true, .. } => {}
                        Request::Invalid { fault, .. } => out.push(
                            String::from_utf8_lossy(super::super::fault_line(fault)).into_owned(),
                        ),
                        Request::TooLarge { noreply: false, .. } => {
                            out.push("SERVER_ERROR object too large for cache".into())
                        }
                        Request::TooLarge { noreply: true, .. } => {}
                        Request::Get { keys, .. } => out.push(format!(
                            "get {}",
                            keys.iter()
                                .map(|k| String::from_utf8_lossy(k).into_owned())
                                .collect::<Vec<_>>()
                                .join(",")
                        )),
                        Request::Store { key, data, .. } => out.push(format!(
                            "store {}={}",
                            String::from_utf8_lossy(key),
                            String::from_utf8_lossy(data)
                        )),
                        other => out.push(format!("{other:?}")),
                    }
                    at += used;
                }
                Err(e) => {
                    out.push(format!("{e:?}"));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn conversations_match_memcached() {
        // Each stream was sent to memcached 1.6.18; the comment is its reply.
        let k251 = [b'a'; 251];
        let too_large_swallow = cat(&[
            b"set k 0 0 1048517\r\n",
            &vec![b'x'; 1048517],
            b"abget k\r\n",
        ]);
        let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
            // CLIENT_ERROR bad data chunk / ERROR / END
            (
                b"set a 0 0 3\r\nabcde\r\nget a\r\n".to_vec(),
                vec!["CLIENT_ERROR bad data chunk", "ERROR", "get a"],
            ),
            // ERROR / END
            (
                b"set a 0 0 3 noreply\r\nabcde\r\nget a\r\n".to_vec(),
                vec!["ERROR", "get a"],
            ),
            // CLIENT_ERROR bad data chunk / ERROR
            (
                b"set a 0 0 3\r\nabc\nget a\r\n".to_vec(),
                vec!["CLIENT_ERROR bad data chunk", "ERROR"],
            ),
            // STORED / VALUE a 0 3 abc END
            (
                b"set a 0 0 3\nabc\r\nget a\n".to_vec(),
                vec!["store a=abc", "get a"],
            ),
            // CLIENT_ERROR bad command line format / ERROR / VALUE … END
            (
                b"set f 1 0 -1\r\nx\r\nget f\r\n".to_vec(),
                vec!["CLIENT_ERROR bad command line format", "ERROR", "get f"],
            ),
            // ERROR / VALUE … END
            (
                b"set f 1 0 -1 noreply\r\nx\r\nget f\r\n".to_vec(),
                vec!["ERROR", "get f"],
            ),
            // ERROR (the data line, as a command)
            (
                cat(&[b"set ", &k251, b" 0 0 3 noreply\r\nnew\r\n"]),
                vec!["ERROR"],
            ),
            // ERROR / ERROR
            (b"set a 0 0\r\nx\r\n".to_vec(), vec!["ERROR", "ERROR"]),
            // SERVER_ERROR object too large for cache / END
            (
                too_large_swallow,
                vec!["SERVER_ERROR object too large for cache", "get k"],
            ),
            // DELETED-or-NOT_FOUND, usage, (silent), ERROR
            (
                b"delete n\r\ndelete n 5\r\ndelete n 5 noreply\r\ndelete a b c d\r\n".to_vec(),
                vec![
                    "Delete { key: [110], cas: 0, noreply: false }",
                    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                    "ERROR",
                ],
            ),
        ];
        for (stream, want) in cases {
            assert_eq!(conversation(&stream), want);
        }
    }

    #[test]
    fn keys_iterate_without_empty_keys() {
        let keys = Keys::new(b"  a bb   ccc ");
        let got: Vec<&[u8]> = keys.iter().collect();
        assert_eq!(got, vec![&b"a"[..], b"bb", b"ccc"]);
        assert_eq!(Keys::new(b"   ").iter().count(), 0);
        let Ok((Request::Get { keys, .. }, _)) = p(b"get  x\ty  z\r\n") else {
            panic!("not a get");
        };
        let got: Vec<&[u8]> = keys.iter().collect();
        assert_eq!(got, vec![&b"x\ty"[..], b"z"]);
    }
}
