//! The meta commands `mg ms md ma mn me`: their lines and flag tokens,
//! checked in the order memcached 1.6 checks them, with its error strings.
//!
//! A flag is one token: its first byte names it, the rest (if any) is its
//! argument (`T30`, `Oabc`). The parsed flags drive the command; the tokens
//! themselves are kept, because the reply echoes some of them in the order
//! they were sent.

use super::base64;
use super::text::{error, invalid, next_token, push_decimal, BAD_FORMAT};
use super::{Fault, Limits, MetaField, MetaReply, MetaStatus, ParseError, Request, MAX_KEY_LEN};
use crate::cnum::{safe_strtol, safe_strtoul, safe_strtoull};

/// memcached refuses a meta line of more than this many tokens (command,
/// key, `ms`'s length and the flags).
const MAX_META_TOKENS: usize = 19;
/// Longest `O` (opaque) token, flag letter included.
const MAX_OPAQUE_TOKEN: usize = 32;

const DUPLICATE: Fault = Fault::DuplicateFlag;
const INVALID_FLAG: Fault = Fault::InvalidFlag;
const BAD_TOKEN: Fault = Fault::BadToken;
const M_LENGTH: Fault = Fault::ModeTokenLength;
const BAD_INITIAL: Fault = Fault::BadInitial;
const BAD_DELTA: Fault = Fault::BadMetaDelta;
const BAD_KEY: Fault = Fault::BadKeyEncoding;
const OPAQUE_TOO_LONG: Fault = Fault::OpaqueTooLong;
/// `md` and `ma` answer this for any flag `mg`/`ms` would name the fault of.
const INVALID_OR_DUPLICATE: Fault = Fault::InvalidOrDuplicateFlag;

/// The flags of one meta request, parsed. Which of them a command uses is
/// the command's business: memcached accepts every known flag on every meta
/// command and ignores the ones that mean nothing there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFlags {
    /// `b`: the key is base64; replies echo it encoded.
    pub base64: bool,
    /// `q`: leave out the reply that means "as expected".
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: do not record the read (no LRU bump, fetched mark, access time).
    pub no_update: bool,
    /// `I`: invalidate (mark stale) rather than delete / accept an older cas.
    pub invalidate: bool,
    /// `x` (memcached 1.6.21+): `md` empties the value, keeps the item.
    pub remove_value: bool,
    /// `N<ttl>`: create the item on a miss, with this exptime.
    pub vivify: Option<i32>,
    /// `T<ttl>`: set this exptime.
    pub ttl: Option<i32>,
    /// `R<ttl>`: win the recache token if fewer seconds than this remain.
    pub recache: Option<i32>,
    /// `F<flags>`: client flags to store.
    pub client_flags: u32,
    /// `C<cas>`: compare this unique.
    pub compare_cas: Option<u64>,
    /// `E<cas>` (memcached 1.6.21+): the unique to give the changed item.
    pub new_cas: Option<u64>,
    /// `M<mode>`: the mode letter, checked by the command.
    pub mode: Option<u8>,
    /// `J<n>`: `ma`'s value for an item it creates.
    pub initial: u64,
    /// `D<n>`: `ma`'s delta (default 1).
    pub delta: u64,
}

impl Default for MetaFlags {
    fn default() -> Self {
        MetaFlags {
            base64: false,
            quiet: false,
            value: false,
            no_update: false,
            invalidate: false,
            remove_value: false,
            vivify: None,
            ttl: None,
            recache: None,
            client_flags: 0,
            compare_cas: None,
            new_cas: None,
            mode: None,
            initial: 0,
            delta: 1,
        }
    }
}

/// One `mg`, `ms`, `md` or `ma` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The key as sent: base64 when `flags.base64` (then known to decode).
    pub key: &'a [u8],
    /// The flag tokens as sent, space separated (see [`flag_tokens`]).
    pub tokens: &'a [u8],
    /// `ms`'s value.
    pub data: &'a [u8],
    pub flags: MetaFlags,
}

impl<'a> Meta<'a> {
    /// The flag tokens in the order they were sent.
    pub fn flag_tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        flag_tokens(self.tokens)
    }

    /// The key to look up: decoded into `buf` when it was sent in base64.
    pub fn lookup_key<'b>(&self, buf: &'b mut [u8; base64::MAX_DECODED]) -> &'b [u8]
    where
        'a: 'b,
    {
        lookup_key(self.key, self.flags.base64, buf)
    }
}

/// A meta key as sent, decoded into `buf` when it is base64 (which the
/// parser has checked).
pub fn lookup_key<'b>(
    key: &'b [u8],
    base64: bool,
    buf: &'b mut [u8; base64::MAX_DECODED],
) -> &'b [u8] {
    if base64 {
        let n = base64::decode(key, buf).unwrap_or(0);
        &buf[..n]
    } else {
        key
    }
}

/// The tokens of a space-separated run, skipping empty ones.
pub fn flag_tokens(mut s: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (tok, after) = next_token(s);
        s = after;
        (!tok.is_empty()).then_some(tok)
    })
}

/// Which meta command a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::protocol) enum Kind {
    Get,
    Delete,
    Arith,
}

/// `mg`, `md`, `ma`: `<key> <flags>*`.
pub(in crate::protocol) fn keyed(kind: Kind, rest: &[u8]) -> Request<'_> {
    let (key, tokens) = next_token(rest);
    if key.is_empty() {
        return error();
    }
    if key.len() > MAX_KEY_LEN {
        return invalid(BAD_FORMAT, false);
    }
    if 2 + flag_tokens(tokens).count() > MAX_META_TOKENS {
        return invalid(too_many(kind == Kind::Get), false);
    }
    let flags = match preparse(tokens, key) {
        Ok(f) => f,
        Err(e) if kind == Kind::Get => return invalid(e, false),
        Err(_) => return invalid(INVALID_OR_DUPLICATE, false),
    };
    let arith_modes = [b'I', b'+', b'D', b'-'];
    if kind == Kind::Arith && flags.mode.is_some_and(|m| !arith_modes.contains(&m)) {
        return invalid(Fault::InvalidArithMode, false);
    }
    if let Err(e) = check_opaque(tokens) {
        return invalid(e, false);
    }
    let meta = Meta {
        key,
        tokens,
        data: &[],
        flags,
    };
    match kind {
        Kind::Get => Request::MetaGet(meta),
        Kind::Delete => Request::MetaDelete(meta),
        Kind::Arith => Request::MetaArith(meta),
    }
}

/// `ms <key> <datalen> <flags>*` and its data block. As memcached, faults
/// found before the length is known leave the data to be read as commands;
/// faults after it swallow the data.
pub(in crate::protocol) fn set<'a>(
    rest: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<(Request<'a>, usize), ParseError> {
    let (key, after_key) = next_token(rest);
    if key.is_empty() {
        return Ok((error(), line_len));
    }
    let bad = Ok((invalid(BAD_FORMAT, false), line_len));
    if key.len() > MAX_KEY_LEN {
        return bad;
    }
    let (len_token, tokens) = next_token(after_key);
    if len_token.is_empty() {
        return bad;
    }
    if 3 + flag_tokens(tokens).count() > MAX_META_TOKENS {
        return Ok((invalid(too_many(false), false), line_len));
    }
    let Some(bytes) = safe_strtol(len_token) else {
        return bad;
    };
    if !(0..=i32::MAX - 2).contains(&bytes) {
        return bad;
    }
    let bytes = bytes as usize;
    let total = line_len + bytes + 2;
    let swallow = |reply| Ok((invalid(reply, false), total));
    let flags = match preparse(tokens, key) {
        Ok(f) => f,
        Err(e) => return swallow(e),
    };
    if !matches!(flags.mode, None | Some(b'E' | b'A' | b'P' | b'R' | b'S')) {
        return swallow(Fault::InvalidSetMode);
    }
    if let Err(e) = check_opaque(tokens) {
        return swallow(e);
    }
    let key_len = lookup_key(key, flags.base64, &mut [0u8; base64::MAX_DECODED]).len();
    let flags_size = if flags.client_flags == 0 { 0 } else { 4 };
    if key_len + bytes + flags_size > limits.max_key_plus_value {
        return Ok((
            Request::MetaTooLarge {
                key,
                base64: flags.base64,
            },
            total,
        ));
    }
    if buf.len() < total {
        return Err(ParseError::Incomplete);
    }
    if &buf[line_len + bytes..total] != b"\r\n" {
        return swallow(Fault::BadDataChunk);
    }
    let meta = Meta {
        key,
        tokens,
        data: &buf[line_len..line_len + bytes],
        flags,
    };
    Ok((Request::MetaSet(meta), total))
}

/// `me <key> [b]`.
pub(in crate::protocol) fn debug(rest: &[u8]) -> Request<'_> {
    let (key, after) = next_token(rest);
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return invalid(BAD_FORMAT, false);
    }
    let base64 = next_token(after).0 == b"b";
    if base64 && base64::decode(key, &mut [0u8; base64::MAX_DECODED]).is_none() {
        return invalid(BAD_FORMAT, false);
    }
    Request::MetaDebug { key, base64 }
}

/// The "too many flags" error: `mg` words it differently.
fn too_many(get: bool) -> Fault {
    if get {
        Fault::GetFlagsTooLong
    } else {
        Fault::FlagsTooLong
    }
}

/// A flag's argument stored where it belongs, or, when it did not parse,
/// the fault it names.
fn parsed<T>(value: Option<T>, slot: &mut T, fault: Fault) -> Option<Fault> {
    match value {
        Some(v) => {
            *slot = v;
            None
        }
        None => Some(fault),
    }
}

/// A flag without an argument: never a fault.
fn switched_on(slot: &mut bool) -> Option<Fault> {
    *slot = true;
    None
}

fn check_opaque(tokens: &[u8]) -> Result<(), Fault> {
    if flag_tokens(tokens).any(|t| t[0] == b'O' && t.len() > MAX_OPAQUE_TOKEN) {
        Err(OPAQUE_TOO_LONG)
    } else {
        Ok(())
    }
}

/// memcached's flag pass: each flag at most once, every flag known, every
/// argument readable, and a base64 key that decodes. A repeated flag, an
/// unknown one or a byte above 126 (which memcached calls a duplicate) ends
/// the pass at once; the other faults are noted and the pass goes on, so
/// among them the last one named wins (an unreadable `F` names none: the
/// reply is then the last one named before it, or "bad command line
/// format"), as memcached 1.6.18 answers `mg a Jx Tx` with the `T` fault.
fn preparse(tokens: &[u8], key: &[u8]) -> Result<MetaFlags, Fault> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 256];
    let mut failed = false;
    let mut named = BAD_FORMAT;
    for tok in flag_tokens(tokens) {
        let (flag, arg) = (tok[0], &tok[1..]);
        if flag >= 127 || std::mem::replace(&mut seen[usize::from(flag)], true) {
            return Err(DUPLICATE);
        }
        // the fault of this flag, if any, and its message
        let fault: Option<Fault> = match flag {
            b'b' => {
                f.base64 = true;
                base64::decode(key, &mut [0u8; base64::MAX_DECODED])
                    .is_none()
                    .then_some(BAD_KEY)
            }
            b'N' => parsed(safe_strtol(arg).map(Some), &mut f.vivify, BAD_TOKEN),
            b'T' => parsed(safe_strtol(arg).map(Some), &mut f.ttl, BAD_TOKEN),
            b'R' => parsed(safe_strtol(arg).map(Some), &mut f.recache, BAD_TOKEN),
            // an unreadable F is a fault without a message of its own
            b'F' => parsed(safe_strtoul(arg), &mut f.client_flags, named),
            b'C' => parsed(safe_strtoull(arg).map(Some), &mut f.compare_cas, BAD_TOKEN),
            b'E' => parsed(safe_strtoull(arg).map(Some), &mut f.new_cas, BAD_TOKEN),
            b'M' => match arg {
                [mode] => {
                    f.mode = Some(*mode);
                    None
                }
                _ => Some(M_LENGTH),
            },
            b'J' => parsed(safe_strtoull(arg), &mut f.initial, BAD_INITIAL),
            b'D' => parsed(safe_strtoull(arg), &mut f.delta, BAD_DELTA),
            b'q' => switched_on(&mut f.quiet),
            b'v' => switched_on(&mut f.value),
            b'u' => switched_on(&mut f.no_update),
            b'I' => switched_on(&mut f.invalidate),
            b'x' => switched_on(&mut f.remove_value),
            // known, acted on (or not) by the command itself
            b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' | b'l' => None,
            _ => return Err(INVALID_FLAG),
        };
        if let Some(e) = fault {
            failed = true;
            named = e;
        }
    }
    if failed {
        Err(named)
    } else {
        Ok(f)
    }
}

/// Appends a meta reply: the status (`VA <len>` when it carries a value),
/// the returned flags in order, CRLF, then the value and its CRLF.
pub(in crate::protocol) fn encode_reply(r: &MetaReply<'_>, out: &mut Vec<u8>) {
    encode_reply_head(r, out);
    if let (MetaStatus::Done, Some(v)) = (r.status, r.value) {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
}

/// A meta reply's status line, up to its CRLF: the value (if any) and its
/// CRLF go after it.
pub(in crate::protocol) fn encode_reply_head(r: &MetaReply<'_>, out: &mut Vec<u8>) {
    let code: &[u8] = match r.status {
        MetaStatus::Done if r.value.is_some() => b"VA ",
        MetaStatus::Done => b"HD",
        MetaStatus::Miss => b"EN",
        MetaStatus::NotStored => b"NS",
        MetaStatus::Exists => b"EX",
        MetaStatus::NotFound => b"NF",
    };
    out.extend_from_slice(code);
    if let (MetaStatus::Done, Some(v)) = (r.status, r.value) {
        push_decimal(out, v.len() as u64);
    }
    for field in r.fields {
        match *field {
            MetaField::Size(n) => push_flag(out, b's', n),
            MetaField::Ttl(None) => out.extend_from_slice(b" t-1"),
            MetaField::Ttl(Some(left)) => push_flag(out, b't', u64::from(left)),
            MetaField::Cas(n) => push_flag(out, b'c', n),
            MetaField::Flags(n) => push_flag(out, b'f', u64::from(n)),
            MetaField::LastAccess(n) => push_flag(out, b'l', n),
            MetaField::Hit(h) => push_flag(out, b'h', u64::from(h)),
            MetaField::Opaque(tok) => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            MetaField::Key { key, binary } => {
                out.extend_from_slice(b" k");
                if binary {
                    base64::encode(key, out);
                    out.extend_from_slice(b" b");
                } else {
                    out.extend_from_slice(key);
                }
            }
            MetaField::WinSent => out.extend_from_slice(b" Z"),
            MetaField::Stale => out.extend_from_slice(b" X"),
            MetaField::Win => out.extend_from_slice(b" W"),
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn push_flag(out: &mut Vec<u8>, flag: u8, n: u64) {
    out.push(b' ');
    out.push(flag);
    push_decimal(out, n);
}
