//! Numbers as memcached's C code reads and writes them: the one copy of each
//! reading rule, for `config` (command-line flags and `-o` options),
//! `protocol` (request tokens) and `storage` (incr/decr on a stored value).
//!
//! Owns how text becomes a number and a number becomes decimal digits. Must
//! not know where the text came from (a flag, a token, a value) nor import
//! anything from the crate: callers pick the reader whose rules memcached
//! applies in their place, so this module sits below all of them.
//!
//! The readers differ on purpose, because clients and operators see the
//! differences:
//!
//! | reader | rules in short | used for |
//! |---|---|---|
//! | [`safe_strtol`], [`safe_strtoul`], [`safe_strtoull`] | memcached's `safe_strto*` (C blanks, a sign, digits, then the end or a C blank; 32-bit truncation) | request tokens |
//! | [`safe_strtoull_cstr`] | `safe_strtoull` on C text: a NUL ends it too | incr/decr on a stored value |
//! | [`safe_strtod`] | memcached's `safe_strtod`: a whole token, no overflow | `slabs automove ratio` |
//! | [`atoi`], [`strtol`], [`atof`] | C's lenient readers: the longest number in front, else 0 | command-line flags (`-p abc` is 0, `-m 64k` is 64) |
//! | [`whole_u32`], [`whole_i32`], [`whole_f64`] | the whole text, blanks around it allowed, in range (Rust's parser) | `-o` option checks |
//!
//! Writing: [`Backwards`] formats decimals into a stack buffer, two digits at
//! a time, so the reply path never goes through `format!`.

// ---- memcached's safe_strto* (request tokens, stored values) ----

/// `isspace` in the C locale: what `strtol` skips before a number and what
/// memcached accepts right after one.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The part `strtol`, `strtoul` and `strtoull` share (base 10), plus the end
/// check of memcached's `safe_strto*`: optional C whitespace, an optional
/// sign, at least one digit, then the end of `tok`, a C whitespace byte
/// (whatever follows it is ignored, as memcached ignores it) or, when
/// `nul_ends`, a NUL byte (C text ends there).
///
/// Returns the sign and the magnitude, `None` as magnitude when it does not
/// fit 64 bits (`ERANGE`); `None` overall when the token is rejected.
#[inline]
fn scan(tok: &[u8], nul_ends: bool) -> Option<(bool, Option<u64>)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        negative = tok[i] == b'-';
        i += 1;
    }
    let digits = i;
    let mut mag: u64 = 0;
    let mut overflow = false;
    while i < tok.len() && tok[i].is_ascii_digit() {
        let d = u64::from(tok[i] - b'0');
        match mag.checked_mul(10).and_then(|m| m.checked_add(d)) {
            Some(m) => mag = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits {
        return None;
    }
    if i < tok.len() && !is_c_space(tok[i]) && !(nul_ends && tok[i] == 0) {
        return None;
    }
    Some((negative, if overflow { None } else { Some(mag) }))
}

/// memcached's `safe_strtol` into an `int32_t`: the value must fit a 64-bit
/// `long`, and is then truncated to 32 bits (so `4294967396` reads as 100 and
/// `9223372036854775807` as -1).
#[inline]
pub(crate) fn safe_strtol(tok: &[u8]) -> Option<i32> {
    let (negative, mag) = scan(tok, false)?;
    let mag = mag?;
    let v: i64 = if negative {
        if mag > 1 << 63 {
            return None;
        }
        (mag as i64).wrapping_neg()
    } else {
        if mag > i64::MAX as u64 {
            return None;
        }
        mag as i64
    };
    Some(v as i32)
}

/// The sign rule of memcached's `safe_strtoull`: `strtoull` negates the
/// magnitude of a `-` number, and memcached refuses the result only when it
/// looks negative as a signed 64-bit number.
#[inline]
fn strtoull_sign(negative: bool, mag: Option<u64>) -> Option<u64> {
    let mag = mag?;
    if !negative {
        return Some(mag);
    }
    let v = mag.wrapping_neg();
    if (v as i64) < 0 {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoull`: a 64-bit unsigned value; a leading `-` is
/// allowed as long as the negated result still looks non-negative as a
/// signed 64-bit number (so `-0` is 0, `-1` is rejected).
#[inline]
pub(crate) fn safe_strtoull(tok: &[u8]) -> Option<u64> {
    let (negative, mag) = scan(tok, false)?;
    strtoull_sign(negative, mag)
}

/// memcached's `safe_strtoull` on a stored value, which memcached reads as C
/// text (followed by its "\r\n"): as [`safe_strtoull`], and a NUL byte right
/// after the digits ends the number too (`"7\0x"` is 7). So `"12 abc"` is
/// 12, `"12abc"` is refused.
#[inline]
pub(crate) fn safe_strtoull_cstr(value: &[u8]) -> Option<u64> {
    let (negative, mag) = scan(value, true)?;
    strtoull_sign(negative, mag)
}

/// memcached's `safe_strtoul` into a `uint32_t`: read as 64 bits (an
/// `unsigned long` on the 64-bit builds memcached ships), then truncated, so
/// `4294967296` is 0 and `4294967297` is 1.
#[inline]
pub(crate) fn safe_strtoul(tok: &[u8]) -> Option<u32> {
    safe_strtoull(tok).map(|v| v as u32)
}

/// memcached's `safe_strtod`: a whole token read by `strtod`, refused when
/// it overflows (`1e400`). (`strtod`'s hexadecimal forms are not read.)
pub(crate) fn safe_strtod(tok: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(tok).ok()?.parse().ok()?;
    let spelled_inf = tok.iter().any(|b| b.eq_ignore_ascii_case(&b'i'));
    (v.is_finite() || spelled_inf).then_some(v)
}

// ---- C's lenient readers (command-line flags) ----

/// C's `atoi`: leading blanks, a sign, digits; anything after is ignored and
/// no digits at all is 0 (`-p abc` is port 0, `-m 64k` is 64). The result
/// wraps to 32 bits as memcached's `int`s do (through [`strtol`], which
/// saturates at 64 bits first). The flag says whether the whole text was a
/// number.
pub(crate) fn atoi(s: &str) -> (i32, bool) {
    let (v, clean) = strtol(s, 10);
    (v as i32, clean)
}

/// C's `strtol` in `base` (8 or 10), saturating at 64 bits: leading blanks
/// (Rust's whitespace, which includes C's), a sign, then the longest run of
/// digits of `base`; no digits is 0. The flag says whether the whole text
/// after the blanks was a sign and digits.
pub(crate) fn strtol(s: &str, base: u32) -> (i64, bool) {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    let mut n = 0;
    for c in digits.chars() {
        match c.to_digit(base) {
            Some(d) => {
                v = v.saturating_mul(base as i64).saturating_add(d as i64);
                n += 1;
            }
            None => break,
        }
    }
    let v = if neg { -v } else { v };
    (v, n > 0 && n == digits.chars().count())
}

/// C's `atof`: the longest leading float, else 0.
pub(crate) fn atof(s: &str) -> f64 {
    let t = s.trim_start();
    let len = t
        .find(|c: char| !matches!(c, '+' | '-' | '.' | 'e' | 'E' | '0'..='9'))
        .unwrap_or(t.len());
    (1..=len)
        .rev()
        .find_map(|n| t[..n].parse::<f64>().ok())
        .unwrap_or(0.0)
}

// ---- whole-text readers (`-o` option checks) ----
//
// Stricter than memcached's `safe_strto*`, which `-o` options go through in
// memcached: these refuse a 32-bit overflow instead of truncating it
// (`4294967296`), anything after the number (`5 x`), and for `whole_u32`
// any `-` (`-0`).

/// The whole text, blanks around it allowed, an unsigned 32-bit number
/// (a `+` allowed, no `-`, no overflow).
pub(crate) fn whole_u32(s: &str) -> Option<u32> {
    let t = s.trim_end();
    if t.is_empty() || t.starts_with('-') {
        return None;
    }
    t.trim_start().parse::<u32>().ok()
}

/// The whole text, blanks around it allowed, a signed 32-bit number.
pub(crate) fn whole_i32(s: &str) -> Option<i32> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<i32>().ok()
}

/// The whole text, blanks around it allowed, a float as Rust reads one
/// (`inf` and `1e400`, read as infinity, included).
pub(crate) fn whole_f64(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

// ---- writing ----

const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A small stack buffer filled from its end, so that a reply line's numbers
/// are formatted in place, right to left, with no intermediate copies.
/// `N` must cover everything pushed (the callers' sizes are fixed).
pub(crate) struct Backwards<const N: usize> {
    buf: [u8; N],
    pos: usize,
}

impl<const N: usize> Backwards<N> {
    #[inline]
    pub(crate) fn new() -> Self {
        Backwards {
            buf: [0; N],
            pos: N,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, s: &[u8]) -> &mut Self {
        let start = self.pos - s.len();
        self.buf[start..self.pos].copy_from_slice(s);
        self.pos = start;
        self
    }

    /// Pushes the decimal digits of `n`, two at a time.
    #[inline]
    pub(crate) fn push_u64(&mut self, mut n: u64) -> &mut Self {
        let mut i = self.pos;
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            self.buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            i -= 2;
            self.buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            i -= 1;
            self.buf[i] = b'0' + n as u8;
        }
        self.pos = i;
        self
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_reads_like_memcached() {
        let cases: &[(&[u8], Option<i32>)] = &[
            (b"0", Some(0)),
            (b"100", Some(100)),
            (b"-1", Some(-1)),
            (b"+5", Some(5)),
            (b"-0", Some(0)),
            (b"007", Some(7)),
            (b"\t5", Some(5)),
            (b"\x0b\x0c\r5", Some(5)),
            (b"5\t", Some(5)),
            (b"5\tjunk", Some(5)),
            (b"5\r", Some(5)),
            (b"2147483647", Some(i32::MAX)),
            (b"2147483648", Some(i32::MIN)),
            (b"4294967396", Some(100)),
            (b"-4294967196", Some(100)),
            (b"9223372036854775807", Some(-1)),
            (b"-9223372036854775808", Some(0)),
            (b"9223372036854775808", None),
            (b"-9223372036854775809", None),
            (b"99999999999999999999", None),
            (b"", None),
            (b"x", None),
            (b"1x", None),
            (b"0x10", None),
            (b"-", None),
            (b"+", None),
            (b"+-5", None),
            (b"\t", None),
            (b"1.5", None),
            (b"5\0", None),
        ];
        for &(tok, want) in cases {
            assert_eq!(safe_strtol(tok), want, "{:?}", String::from_utf8_lossy(tok));
        }
    }

    #[test]
    fn strtoull_reads_like_memcached() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"-0", Some(0)),
            (b"-1", None),
            (b"+1", Some(1)),
            // strtoull negates the magnitude; memcached only rejects results
            // that look negative as signed.
            (b"-9223372036854775809", Some(9223372036854775807)),
            (b"-18446744073709551615", Some(1)),
            (b"-18446744073709551616", None),
            (b"9223372036854775808", Some(1 << 63)),
            (b"1\tx", Some(1)),
            (b"1x", None),
            (b"x", None),
            // (the parser ends a line at its first NUL, so no token holds
            // one; were one there, it would not end the number)
            (b"7\0", None),
        ];
        for &(tok, want) in cases {
            assert_eq!(
                safe_strtoull(tok),
                want,
                "{:?}",
                String::from_utf8_lossy(tok)
            );
        }
    }

    #[test]
    fn strtoul_truncates_to_32_bits() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (b"4294967295", Some(u32::MAX)),
            (b"4294967296", Some(0)),
            (b"4294967297", Some(1)),
            (b"18446744073709551615", Some(u32::MAX)),
            (b"18446744073709551616", None),
            (b"-1", None),
            (b"-0", Some(0)),
            (b"-9223372036854775809", Some(u32::MAX)),
        ];
        for &(tok, want) in cases {
            assert_eq!(
                safe_strtoul(tok),
                want,
                "{:?}",
                String::from_utf8_lossy(tok)
            );
        }
    }

    #[test]
    fn counters_parse_like_strtoull() {
        // checked against memcached 1.6.18 with incr (see the storage report)
        let ok: &[(&[u8], u64)] = &[
            (b"100", 100),
            (b"99 ", 99),
            (b" 12", 12),
            (b"12 abc", 12),
            (b"5\t\t", 5),
            (b"18446744073709551615", u64::MAX),
            (b"000000000000000000000007", 7),
            (b"-0", 0),
            (b"+5", 5),
            (b"-18446744073709551615", 1),
            (b"7\0x", 7),
        ];
        for (v, n) in ok {
            assert_eq!(
                safe_strtoull_cstr(v),
                Some(*n),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"12abc",
            b"18446744073709551616",
            b"-1",
            b"+",
            b"0x10",
            b"abc",
            b"1.5",
            b"\0",
            b" \x005",
            b"-\x005",
        ];
        for v in bad {
            assert_eq!(
                safe_strtoull_cstr(v),
                None,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn strtod_refuses_overflow() {
        assert_eq!(safe_strtod(b"0.5"), Some(0.5));
        assert_eq!(safe_strtod(b"1e400"), None);
        assert_eq!(safe_strtod(b"inf"), Some(f64::INFINITY));
        assert_eq!(safe_strtod(b"0.5x"), None);
        assert_eq!(safe_strtod(b""), None);
    }

    #[test]
    fn c_library_readers_are_lenient() {
        assert_eq!(atoi("42"), (42, true));
        assert_eq!(atoi(" 42"), (42, true));
        assert_eq!(atoi("42x"), (42, false));
        assert_eq!(atoi("-7"), (-7, true));
        assert_eq!(atoi("abc"), (0, false));
        assert_eq!(atoi(""), (0, false));
        assert_eq!(atoi("64k"), (64, false));
        assert_eq!(atoi("99999999999").0, 99999999999i64 as i32);
        assert_eq!(strtol("0777x", 8), (0o777, false));
        assert_eq!(strtol("888", 8), (0, false));
        assert_eq!(atof("1.5x"), 1.5);
        assert_eq!(atof("abc"), 0.0);
        assert_eq!(atof("2e"), 2.0);
    }

    #[test]
    fn whole_text_readers_are_strict() {
        assert_eq!(whole_u32("5"), Some(5));
        assert_eq!(whole_u32(" 5 "), Some(5));
        assert_eq!(whole_u32("+5"), Some(5));
        assert_eq!(whole_u32("-1"), None);
        assert_eq!(whole_u32("-0"), None);
        assert_eq!(whole_u32("5x"), None);
        assert_eq!(whole_u32("5 x"), None);
        assert_eq!(whole_u32("4294967296"), None);
        assert_eq!(whole_i32(" -5 "), Some(-5));
        assert_eq!(whole_i32("2147483648"), None);
        assert_eq!(whole_i32(""), None);
        assert_eq!(whole_f64(" 0.8 "), Some(0.8));
        assert_eq!(whole_f64("1e400"), Some(f64::INFINITY));
        assert_eq!(whole_f64("x"), None);
    }

    #[test]
    fn digits_match_std_formatting() {
        let mut samples = vec![0u64, 1, 9, 10, 11, 99, 100, 101, 999, 1000, u64::MAX];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            samples.extend([next - 1, next, next + 1]);
            p = next;
        }
        for n in samples {
            let mut b = Backwards::<20>::new();
            b.push_u64(n);
            assert_eq!(b.as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn backwards_builds_right_to_left() {
        let mut b = Backwards::<32>::new();
        b.push(b"\r\n")
            .push_u64(42)
            .push(b" ")
            .push_u64(0)
            .push(b"x");
        assert_eq!(b.as_bytes(), b"x0 42\r\n");
        // Filled to the brim.
        let mut full = Backwards::<22>::new();
        full.push(b"\r\n").push_u64(u64::MAX);
        assert_eq!(full.as_bytes(), b"18446744073709551615\r\n");
    }
}
