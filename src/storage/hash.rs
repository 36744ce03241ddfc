//! The keyed hash that places a key in a shard and in the shard's index,
//! and the checksum that guards a memory file's bytes.
//!
//! Owns the hash keys. Must not know records or shards. The keys are
//! random per cold start (so a client cannot choose keys that collide:
//! hash flooding) and saved with a memory file (`-e`), so that after a
//! restart every key lands where the restored index expects it.

use std::hash::{BuildHasher, Hasher};

/// SipHash-2-4 with the cache's keys: std's `SipHasher` (deprecated only
/// in favour of `DefaultHasher`, which cannot be given keys; it is the
/// same algorithm `RandomState` used before, with one more round per
/// block).
#[allow(deprecated)]
type Sip = std::hash::SipHasher;

/// A `BuildHasher` with fixed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keyed {
    pub(super) k0: u64,
    pub(super) k1: u64,
}

impl Keyed {
    /// Keys from the kernel's random source (getrandom), falling back to
    /// std's own per-process random state.
    pub(super) fn random() -> Keyed {
        let mut buf = [0u8; 16];
        // SAFETY: writes at most 16 bytes into `buf`.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n == 16 {
            let (a, b) = buf.split_at(8);
            let word = |s: &[u8]| {
                let mut w = [0u8; 8];
                w.copy_from_slice(s);
                u64::from_le_bytes(w)
            };
            return Keyed {
                k0: word(a),
                k1: word(b),
            };
        }
        let std = std::collections::hash_map::RandomState::new();
        Keyed {
            k0: std.hash_one(0u64),
            k1: std.hash_one(1u64),
        }
    }
}

impl BuildHasher for Keyed {
    type Hasher = Sip;

    #[inline]
    #[allow(deprecated)]
    fn build_hasher(&self) -> Sip {
        Sip::new_with_keys(self.k0, self.k1)
    }
}

/// A 64-bit checksum of `bytes` for telling a memory file's segment from
/// a zeroed, truncated or garbled one (not against an adversary: the file
/// is the server's own, mode 0600). Four independent lanes of 8-byte words
/// multiplied and rotated, so it runs at several GB/s: a restart checks
/// every byte it adopts.
pub(super) fn checksum(bytes: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let mut lanes = [P1, P2, P1 ^ P2, P1.wrapping_add(P2)];
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[i * 8..i * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(w))
                .wrapping_mul(P1)
                .rotate_left(31);
        }
    }
    let mut h = bytes.len() as u64;
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(P2).rotate_left(27);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(P1).rotate_left(11);
    }
    h ^ (h >> 29)
}

/// Word-wise checksum of the metadata (see `persist`), the same function.
pub(super) fn checksum_of(parts: &[&[u8]]) -> u64 {
    let mut h = Sip::default();
    for p in parts {
        h.write(p);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fix_the_hash() {
        let a = Keyed { k0: 1, k1: 2 };
        let b = Keyed { k0: 1, k1: 2 };
        assert_eq!(a.hash_one(b"key"), b.hash_one(b"key"));
        assert_ne!(a.hash_one(b"key"), Keyed { k0: 1, k1: 3 }.hash_one(b"key"));
        assert_ne!(Keyed::random(), Keyed::random());
    }

    #[test]
    fn checksums_see_every_byte() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let base = checksum(&data);
        for at in [0, 31, 32, 500, 991, 999] {
            let mut d = data.clone();
            d[at] ^= 1;
            assert_ne!(checksum(&d), base, "flip at {at}");
        }
        assert_ne!(checksum(&data[..999]), base);
        assert_ne!(
            checksum(&[0; 64]),
            checksum(&[0; 32]),
            "zeros of two lengths"
        );
    }
}
