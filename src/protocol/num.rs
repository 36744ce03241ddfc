//! Numbers on the wire, both ways.
//!
//! Reading: memcached reads every numeric argument with C's `strtol` /
//! `strtoul` / `strtoull` wrapped in its `safe_strto*` helpers, and then stores
//! the result in a 32-bit variable where the protocol field is 32 bits. The
//! quirks that follow (leading tabs allowed, `+5` and `-0` accepted, `1\tjunk`
//! read as 1, flags `4294967296` stored as 0, exptime `4294967396` read as
//! 100) are reproduced exactly, because clients see them in the replies.
//!
//! Writing: decimal formatting into a stack buffer, two digits at a time, so
//! the reply path never goes through `format!`.
//!
//! Must not know commands: callers decide which reading a field gets.

/// `isspace` in the C locale: what `strtol` skips before a number and what
/// memcached accepts right after one.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The part `strtol`, `strtoul` and `strtoull` share (base 10), plus the end
/// check of memcached's `safe_strto*`: optional C whitespace, an optional
/// sign, at least one digit, then either the end of the token or a C
/// whitespace byte (whatever follows it is ignored, as memcached ignores it).
///
/// Returns the sign and the magnitude, `None` as magnitude when it does not
/// fit 64 bits (`ERANGE`); `None` overall when the token is rejected.
#[inline]
fn scan(tok: &[u8]) -> Option<(bool, Option<u64>)> {
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
    if i < tok.len() && !is_c_space(tok[i]) {
        return None;
    }
    Some((negative, if overflow { None } else { Some(mag) }))
}

/// memcached's `safe_strtol` into an `int32_t`: the value must fit a 64-bit
/// `long`, and is then truncated to 32 bits (so `4294967396` reads as 100 and
/// `9223372036854775807` as -1).
#[inline]
pub(crate) fn safe_strtol(tok: &[u8]) -> Option<i32> {
    let (negative, mag) = scan(tok)?;
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

/// memcached's `safe_strtoull`: a 64-bit unsigned value; a leading `-` is
/// allowed as long as the negated result still looks non-negative as a
/// signed 64-bit number (so `-0` is 0, `-1` is rejected).
#[inline]
pub(crate) fn safe_strtoull(tok: &[u8]) -> Option<u64> {
    let (negative, mag) = scan(tok)?;
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

/// memcached's `safe_strtoul` into a `uint32_t`: read as 64 bits (an
/// `unsigned long` on the 64-bit builds memcached ships), then truncated, so
/// `4294967296` is 0 and `4294967297` is 1.
#[inline]
pub(crate) fn safe_strtoul(tok: &[u8]) -> Option<u32> {
    safe_strtoull(tok).map(|v| v as u32)
}

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
