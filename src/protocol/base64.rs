//! Base64 keys of the meta commands (`b` flag): the standard alphabet with
//! `=` padding, read the way memcached reads it.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Longest decoded key: a 250-byte encoded key holds at most 62 groups.
pub const MAX_DECODED: usize = 250 / 4 * 3;

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes `enc` into `out`, returning the decoded length; `None` when it
/// is not base64: empty, not whole groups of four, a character outside the
/// alphabet, or padding anywhere but the last group or more than two `=`
/// there. As memcached, a `=` inside the last group counts as padding and
/// as zero bits (`YQ=a` decodes to `a\0`).
pub fn decode(enc: &[u8], out: &mut [u8]) -> Option<usize> {
    if enc.is_empty() || enc.len() % 4 != 0 {
        return None;
    }
    let groups = enc.len() / 4;
    let mut n = 0;
    for (g, quad) in enc.chunks_exact(4).enumerate() {
        let mut bits = 0u32;
        let mut pad = 0;
        for &c in quad {
            let v = if c == b'=' {
                pad += 1;
                0
            } else {
                sextet(c)?
            };
            bits = bits << 6 | u32::from(v);
        }
        if pad > 2 || (pad > 0 && g + 1 != groups) {
            return None;
        }
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        let take = 3 - pad;
        out.get_mut(n..n + take)?.copy_from_slice(&bytes[..take]);
        n += take;
    }
    Some(n)
}

/// Appends the padded base64 form of `raw` to `out`.
pub fn encode(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let bits = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(bits >> (18 - 6 * i)) as usize & 63]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Option<Vec<u8>> {
        let mut out = [0u8; MAX_DECODED];
        decode(s.as_bytes(), &mut out).map(|n| out[..n].to_vec())
    }

    fn enc(raw: &[u8]) -> String {
        let mut out = Vec::new();
        encode(raw, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        for len in 0..=MAX_DECODED {
            let raw: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let e = enc(&raw);
            assert_eq!(e.len(), len.div_ceil(3) * 4);
            if len > 0 {
                assert_eq!(dec(&e).as_deref(), Some(&raw[..]), "{e}");
            }
        }
        assert_eq!(enc(b"foo"), "Zm9v");
        assert_eq!(enc(b"a"), "YQ==");
        assert_eq!(enc(b"\xff\xfe"), "//4=");
    }

    #[test]
    fn reads_like_memcached() {
        // what memcached 1.6.18 answered to `mg <key> b k`
        assert_eq!(dec("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(dec("Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(dec("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(dec("YQ=a").as_deref(), Some(&b"a\0"[..]));
        for bad in [
            "", "Zm8", "YQ", "====", "Y===", "Zm9vYg", "Zm9v=", "!!!!", "YQ==Zm9v",
        ] {
            assert_eq!(dec(bad), None, "{bad:?}");
        }
    }
}
