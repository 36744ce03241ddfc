//! One stored item as bytes in a segment, what those bytes cost, and the
//! size class an item counts in.
//!
//! Owns the record layout (a 7-byte header for the usual item, then key
//! and value, packed with no alignment or padding; the mappings they live
//! in are `mapping`'s). Must not know about shards, the index or eviction: code that
//! walks a segment's records goes through [`record_len`], [`write_record`]
//! and [`Item`]'s accessors and never reads a header byte itself.
//!
//! Record layout (version [`LAYOUT_VERSION`]), little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | marks: stale, win sent, dead, fetched, active; bits 5–7 uses (the CLOCK counter) |
//! | 1 | form: bits 0–1 value length bytes − 1; bit 2 has a deadline field; bit 3 has flags; bit 4 binary key; bit 5 has a cas field |
//! | 2 | key length |
//! | 3..6 | last access: the low 24 bits of its clock second |
//! | 6.. | value length, 1 to 4 bytes (as the form says) |
//! | then 8 | cas unique, only with the cas field |
//! | then 4 | deadline (clock seconds, 0 = never), only with the deadline field |
//! | then 4 | client flags, only when the form says so |
//!
//! then the key and the value. A 14-byte key with a 100-byte value and no
//! TTL or flags takes 7 + 114 bytes (layout 2 took 13 + 114, layout 1
//! 20 + 114).
//!
//! A record's cas unique is where it was written ([`derived_cas`]: its
//! segment's cas base and its offset), unless it has a cas field. Every
//! write goes to a new place, so it gets a new unique with no bytes spent
//! on it. The field is for uniques a place cannot give: one a client set
//! (meta `E`), one that must survive a move (compaction and second chances
//! slide records; a rewrite keeps the unique), and one changed in place
//! (incr/decr, `md I`).
//!
//! The last access is read against the current second ([`Item::atime`]):
//! exact for any item last used within 2^24 seconds (194 days); one idle
//! longer than that (only possible after as long an uptime) reads as idle
//! for its idle time modulo 194 days.
//!
//! What is fixed when a record is written: the key, the value's length, the
//! flags and whether the deadline and cas fields are there. What changes in
//! place: the marks, the last access, and a deadline or cas field's value.
//! A record without a deadline field cannot be given a deadline in place
//! ([`Item::set_deadline`] says so, and the shard writes a new record);
//! records that are likely to be touched or costly to copy (under `-M`, and
//! from [`DEADLINE_FIELD_FROM`] bytes of key and value) always carry one.

use crate::clock::Secs;

/// The version of the record and segment byte layout: bump whenever the
/// record or segment byte layout changes. A memory file (`-e`) is saved
/// with it, and a restart from a file of another version starts an empty
/// cache, never a misread one.
///
/// 1: the 20-byte header (48-bit cas, marks and key length in one word,
/// 4-byte value length, deadline and last access). 2: a 13-byte header
/// with a 48-bit cas. 3: the table above (cas uniques from the place).
pub(super) const LAYOUT_VERSION: u32 = 3;

/// Keys are at most 250 bytes in memcached; the length lives in 8 bits.
pub(super) const MAX_KEY_LEN: usize = u8::MAX as usize;
/// Largest key + value an item can hold. memcached's own ceiling for `-I`
/// is 1 GiB, the same.
pub(super) const MAX_TOTAL_LEN: usize = (1 << 30) - 1;

/// Header bytes before the value length.
const FIXED: usize = 6;
const AT_ATIME: usize = 3;
/// The last access keeps the low 24 bits of a clock second.
const ATIME_MASK: u32 = (1 << 24) - 1;
/// A last access read as up to this far in the future is "now": a thread
/// whose clock read a second later may have written it.
const ATIME_AHEAD: u32 = 256;
const AT_VLEN: usize = FIXED;
/// The smallest header (1-byte value length, no deadline, no flags).
pub(super) const MIN_HEADER: usize = FIXED + 1;
/// The largest header (4-byte value length, cas, deadline and flags).
pub(super) const MAX_HEADER: usize = FIXED + 4 + 8 + 4 + 4;

/// From this many bytes of key + value a record always has a deadline
/// field: 4 bytes are under 1% of it, and a touch then never copies it.
pub(super) const DEADLINE_FIELD_FROM: usize = 512;

/// Low bits of a derived cas unique that hold the record's offset in its
/// segment (segments are at most 1 MiB); the high bits are the segment's
/// cas base, from a cache-wide counter (2^44 bases: a new segment every
/// microsecond for half a year... times a thousand).
pub(super) const CAS_OFFSET_BITS: u32 = 20;

/// The cas unique of a record without a cas field: `base` (a segment's,
/// a multiple of 2^[`CAS_OFFSET_BITS`]) and its offset in the segment.
#[inline]
pub(super) fn derived_cas(base: u64, off: usize) -> u64 {
    base | off as u64
}

/// Marked stale by a meta invalidation (`md I`, `ms I`): readers see `X`.
const STALE: u8 = 1 << 0;
/// A meta reader has been handed the recache token (`W`); others see `Z`.
const WIN_SENT: u8 = 1 << 1;
/// The record is garbage: deleted, replaced, expired or moved. Its bytes
/// stay until its segment is recycled.
const DEAD: u8 = 1 << 2;
/// Read at least once (`evicted_unfetched`, `expired_unfetched`, `me`).
const FETCHED: u8 = 1 << 3;
/// Read again after its first read (`evicted_active`).
const ACTIVE: u8 = 1 << 4;
/// The CLOCK counter (three bits): uses since it was written, up to
/// [`MAX_USES`], less one per second chance spent (see [`Item::uses`]).
const USES_SHIFT: u32 = 5;
const USES: u8 = 0b111 << USES_SHIFT;
/// Uses the counter holds at most: an item used this often survives as
/// many turns of the FIFO unused. (Measured with the memory bench's
/// read-through Zipf workload at `-m 8`: hit ratios rise with the range,
/// 1 → 2 → 3 → 7, by less each time.)
pub(super) const MAX_USES: u8 = 7;

/// Form byte: the value length's bytes − 1.
const VLEN_BYTES: u8 = 0b11;
/// Form byte: the header has the deadline field.
const HAS_DEADLINE: u8 = 1 << 2;
/// Form byte: the header has the client flags field.
const HAS_FLAGS: u8 = 1 << 3;
/// Form byte: stored with a base64 (binary) key: meta replies echo the key
/// encoded.
const BINARY_KEY: u8 = 1 << 4;
/// Form byte: the header has a cas field (else the unique is derived).
const HAS_CAS: u8 = 1 << 5;

#[inline]
fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

#[inline]
fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Bytes a value length takes (1 to 4).
#[inline]
const fn vlen_bytes(vlen: usize) -> usize {
    if vlen < 1 << 8 {
        1
    } else if vlen < 1 << 16 {
        2
    } else if vlen < 1 << 24 {
        3
    } else {
        4
    }
}

/// The header's length from its form byte (without branches: this runs
/// for every record a lookup or a walk meets).
#[inline(always)]
fn header_len_of(form: u8) -> usize {
    let f = usize::from(form);
    FIXED + 1 + (f & 0b11) + ((f >> 2) & 1) * 4 + ((f >> 3) & 1) * 4 + ((f >> 5) & 1) * 8
}

/// The value length stored at `AT_VLEN` in `form`'s width. `b` may run on
/// past the record (a segment's bytes from the record on): then one 4-byte
/// load and a mask, else one arm per width (a copy of a variable length
/// would be a call to memcpy, and this runs for every record a lookup or a
/// walk meets).
#[inline(always)]
fn read_vlen(b: &[u8], form: u8) -> usize {
    let at = AT_VLEN;
    let w = form & VLEN_BYTES;
    if b.len() >= at + 4 {
        return (read_u32(b, at) & (u32::MAX >> (8 * (3 - u32::from(w))))) as usize;
    }
    match w {
        0 => usize::from(b[at]),
        1 => usize::from(u16::from_le_bytes([b[at], b[at + 1]])),
        2 => u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0]) as usize,
        _ => read_u32(b, at) as usize,
    }
}

/// The length of the record that starts `b` (which holds at least its
/// header).
#[inline(always)]
pub(super) fn record_len(b: &[u8]) -> usize {
    let form = b[1];
    header_len_of(form) + usize::from(b[2]) + read_vlen(b, form)
}

/// The length of the record that starts `b`, if `b` holds all of it: for
/// bytes that may be garbage (a memory file's, at a restart), where
/// [`record_len`] could read past `b`.
pub(super) fn checked_record_len(b: &[u8]) -> Option<usize> {
    let form = *b.get(1)?;
    if b.len() < header_len_of(form) {
        return None;
    }
    let len = record_len(b);
    (len <= b.len()).then_some(len)
}

/// What a new record holds besides its key and value.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Header {
    pub(super) flags: u32,
    pub(super) deadline: Secs,
    /// Give the record a deadline field even when `deadline` is 0, so that
    /// a later touch can set one in place (see [`deadline_field`]).
    pub(super) deadline_field: bool,
    pub(super) atime: Secs,
    /// A cas unique of its own (a cas field); `None`: the record's place
    /// gives it one (see [`derived_cas`]).
    pub(super) cas: Option<u64>,
    /// Give the record a cas field even without a unique of its own (the
    /// writer puts the place's unique in it): under `-M`, where records
    /// are compacted rather than evicted, so that a move never makes one
    /// larger (see [`cas_field`]).
    pub(super) cas_field: bool,
    pub(super) stale: bool,
    pub(super) win_sent: bool,
    pub(super) binary_key: bool,
    /// Marks a copy of an existing item carries over (a new item has none).
    pub(super) fetched: bool,
    pub(super) active: bool,
    /// The CLOCK counter (at most [`MAX_USES`]).
    pub(super) uses: u8,
}

impl Header {
    /// Bytes a record of this header with a key of `klen` and a value of
    /// `vlen` bytes takes.
    #[inline]
    pub(super) fn record_size(&self, klen: usize, vlen: usize) -> usize {
        let with_deadline = self.deadline_field || self.deadline != 0;
        let mut n = FIXED + vlen_bytes(vlen) + klen + vlen;
        if self.cas.is_some() || self.cas_field {
            n += 8;
        }
        if with_deadline {
            n += 4;
        }
        if self.flags != 0 {
            n += 4;
        }
        n
    }
}

/// Whether a new record of `klen + vlen` bytes gets a deadline field when
/// it has no deadline: always when nothing may be evicted (`-M`: a touch
/// must then never need memory), and for records large enough that 4 bytes
/// do not matter.
#[inline]
pub(super) fn deadline_field(evict: bool, klen: usize, vlen: usize) -> bool {
    !evict || klen + vlen >= DEADLINE_FIELD_FROM
}

/// Whether a new record gets a cas field when its unique comes from its
/// place: when nothing may be evicted (`-M`: live records are compacted,
/// and one that moves must carry its unique; with the field from the
/// start, a compaction gives back every dead byte and grows nothing).
#[inline]
pub(super) fn cas_field(evict: bool) -> bool {
    !evict
}

/// Bytes a record of a key and value of `total` bytes with no flags and no
/// deadline takes (the size its class is chosen by; the value length's
/// width is taken from `total`, so near a width boundary this may count
/// one byte more than a real record).
#[inline]
pub(super) const fn plain_record_size(total: usize) -> usize {
    FIXED + vlen_bytes(total) + total
}

/// Writes a record (header, key, then the value's parts in order) at the
/// start of `out`, which is exactly [`Header::record_size`] long.
pub(super) fn write_record(out: &mut [u8], h: &Header, key: &[u8], value: &[&[u8]]) {
    let vlen: usize = value.iter().map(|p| p.len()).sum();
    debug_assert!(key.len() <= MAX_KEY_LEN && vlen <= MAX_TOTAL_LEN);
    debug_assert_eq!(out.len(), h.record_size(key.len(), vlen));
    debug_assert!(
        h.cas.is_some() || !h.cas_field,
        "the writer fills the field"
    );
    let mut marks = 0;
    for (on, bit) in [
        (h.stale, STALE),
        (h.win_sent, WIN_SENT),
        (h.fetched, FETCHED),
        (h.active, ACTIVE),
    ] {
        if on {
            marks |= bit;
        }
    }
    marks |= h.uses.min(MAX_USES) << USES_SHIFT;
    let w = vlen_bytes(vlen);
    let with_deadline = h.deadline_field || h.deadline != 0;
    let mut form = (w - 1) as u8;
    if with_deadline {
        form |= HAS_DEADLINE;
    }
    if h.flags != 0 {
        form |= HAS_FLAGS;
    }
    if h.binary_key {
        form |= BINARY_KEY;
    }
    if h.cas.is_some() {
        form |= HAS_CAS;
    }
    out[0] = marks;
    out[1] = form;
    out[2] = key.len() as u8;
    out[AT_ATIME..AT_ATIME + 3].copy_from_slice(&h.atime.to_le_bytes()[..3]);
    let v = (vlen as u32).to_le_bytes();
    match w {
        1 => out[AT_VLEN] = v[0],
        2 => out[AT_VLEN..AT_VLEN + 2].copy_from_slice(&v[..2]),
        3 => out[AT_VLEN..AT_VLEN + 3].copy_from_slice(&v[..3]),
        _ => out[AT_VLEN..AT_VLEN + 4].copy_from_slice(&v),
    }
    let mut at = AT_VLEN + w;
    if let Some(cas) = h.cas {
        out[at..at + 8].copy_from_slice(&cas.to_le_bytes());
        at += 8;
    }
    if with_deadline {
        write_u32(out, at, h.deadline);
        at += 4;
    }
    if h.flags != 0 {
        write_u32(out, at, h.flags);
        at += 4;
    }
    out[at..at + key.len()].copy_from_slice(key);
    at += key.len();
    for p in value {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// A stored item: a view of its record's bytes (exactly the record).
#[repr(transparent)]
pub(super) struct Item([u8]);

impl Item {
    #[inline]
    pub(super) fn new(record: &[u8]) -> &Item {
        // SAFETY: `Item` is a transparent wrapper of `[u8]`.
        unsafe { &*(record as *const [u8] as *const Item) }
    }

    #[inline]
    pub(super) fn new_mut(record: &mut [u8]) -> &mut Item {
        // SAFETY: as `new`; the borrow stays unique.
        unsafe { &mut *(record as *mut [u8] as *mut Item) }
    }

    #[inline]
    fn marks(&self) -> u8 {
        self.0[0]
    }

    #[inline]
    fn form(&self) -> u8 {
        self.0[1]
    }

    #[inline]
    fn header_len(&self) -> usize {
        header_len_of(self.form())
    }

    #[inline]
    fn klen(&self) -> usize {
        usize::from(self.0[2])
    }

    /// Where the deadline field is, if the record has one.
    #[inline]
    fn deadline_at(&self) -> Option<usize> {
        let form = self.form();
        (form & HAS_DEADLINE != 0).then(|| {
            AT_VLEN + usize::from(form & VLEN_BYTES) + 1 + usize::from((form >> 5) & 1) * 8
        })
    }

    /// Where the cas field is, if the record has one.
    #[inline]
    fn cas_at(&self) -> Option<usize> {
        let form = self.form();
        (form & HAS_CAS != 0).then(|| AT_VLEN + usize::from(form & VLEN_BYTES) + 1)
    }

    /// Bytes of the whole record.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Key + value bytes.
    #[cfg(test)]
    pub(super) fn total_len(&self) -> usize {
        self.0.len() - self.header_len()
    }

    #[inline]
    pub(super) fn key(&self) -> &[u8] {
        let h = self.header_len();
        &self.0[h..h + self.klen()]
    }

    #[inline]
    pub(super) fn value(&self) -> &[u8] {
        &self.0[self.header_len() + self.klen()..]
    }

    #[inline]
    pub(super) fn flags(&self) -> u32 {
        if self.form() & HAS_FLAGS != 0 {
            read_u32(&self.0, self.header_len() - 4)
        } else {
            0
        }
    }

    /// Clock second it expires at; 0 = never.
    #[inline]
    pub(super) fn deadline(&self) -> Secs {
        match self.deadline_at() {
            Some(at) => read_u32(&self.0, at),
            None => 0,
        }
    }

    /// Whether [`Item::set_deadline`] can set `deadline` in place.
    #[cfg(test)]
    pub(super) fn can_hold_deadline(&self, deadline: Secs) -> bool {
        deadline == 0 || self.deadline_at().is_some()
    }

    /// Sets the deadline in place; false (and nothing changed) when the
    /// record has no deadline field and `deadline` is not 0: the item must
    /// then be written anew to get one.
    #[must_use]
    pub(super) fn set_deadline(&mut self, deadline: Secs) -> bool {
        match self.deadline_at() {
            Some(at) => {
                write_u32(&mut self.0, at, deadline);
                true
            }
            None => deadline == 0,
        }
    }

    /// Clock second of the last write or read (age, delayed flush), read
    /// at clock second `now` (see the module header for the horizon).
    #[inline]
    pub(super) fn atime(&self, now: Secs) -> Secs {
        let mut w = [0; 4];
        w[..3].copy_from_slice(&self.0[AT_ATIME..AT_ATIME + 3]);
        let age = now.wrapping_sub(u32::from_le_bytes(w)) & ATIME_MASK;
        if age > ATIME_MASK - ATIME_AHEAD {
            now
        } else {
            now - age.min(now)
        }
    }

    #[inline]
    pub(super) fn set_atime(&mut self, now: Secs) {
        self.0[AT_ATIME..AT_ATIME + 3].copy_from_slice(&now.to_le_bytes()[..3]);
    }

    /// The cas unique of its cas field, if it has one.
    #[inline]
    pub(super) fn own_cas(&self) -> Option<u64> {
        self.cas_at().map(|at| {
            let mut w = [0; 8];
            w.copy_from_slice(&self.0[at..at + 8]);
            u64::from_le_bytes(w)
        })
    }

    /// Its cas unique: its own, or `derived` (what its place gives it:
    /// [`derived_cas`]).
    #[inline]
    pub(super) fn cas_or(&self, derived: u64) -> u64 {
        self.own_cas().unwrap_or(derived)
    }

    /// Its length once it has a cas field (what a move makes of it).
    #[inline]
    pub(super) fn len_with_cas(&self) -> usize {
        self.len() + if self.cas_at().is_some() { 0 } else { 8 }
    }

    /// Appends a copy of the record to `out`, with `cas` (its unique) in a
    /// cas field if it has none: a record that moves keeps its unique.
    pub(super) fn copy_with_cas(&self, cas: u64, out: &mut Vec<u8>) {
        if self.cas_at().is_some() {
            out.extend_from_slice(&self.0);
            return;
        }
        let at = AT_VLEN + usize::from(self.form() & VLEN_BYTES) + 1;
        let start = out.len();
        out.extend_from_slice(&self.0[..at]);
        out[start + 1] |= HAS_CAS;
        out.extend_from_slice(&cas.to_le_bytes());
        out.extend_from_slice(&self.0[at..]);
    }

    /// What a copy of this item (a rewrite that keeps its value) starts
    /// with at clock second `now`, its cas unique being `cas`: everything
    /// but the key and value. (The copy gets a cas field: it is somewhere
    /// else, and keeps the unique.)
    pub(super) fn header(&self, now: Secs, cas: u64) -> Header {
        Header {
            flags: self.flags(),
            deadline: self.deadline(),
            deadline_field: self.deadline_at().is_some(),
            atime: self.atime(now),
            cas: Some(cas),
            cas_field: false,
            stale: self.stale(),
            win_sent: self.win_sent(),
            binary_key: self.binary_key(),
            fetched: self.fetched(),
            active: self.active(),
            uses: self.uses(),
        }
    }

    #[inline]
    fn bit(&self, bit: u8) -> bool {
        self.marks() & bit != 0
    }

    #[inline]
    fn set_bit(&mut self, bit: u8, on: bool) {
        if on {
            self.0[0] |= bit;
        } else {
            self.0[0] &= !bit;
        }
    }

    pub(super) fn stale(&self) -> bool {
        self.bit(STALE)
    }

    pub(super) fn win_sent(&self) -> bool {
        self.bit(WIN_SENT)
    }

    pub(super) fn binary_key(&self) -> bool {
        self.form() & BINARY_KEY != 0
    }

    pub(super) fn set_win_sent(&mut self, on: bool) {
        self.set_bit(WIN_SENT, on);
    }

    #[inline]
    pub(super) fn dead(&self) -> bool {
        self.bit(DEAD)
    }

    pub(super) fn set_dead(&mut self) {
        self.set_bit(DEAD, true);
    }

    /// The CLOCK counter: uses (reads, and bumps such as a touch or an
    /// `add` that ran into the item) since it was written, up to
    /// [`MAX_USES`], less one for each second chance it was given.
    #[inline]
    pub(super) fn uses(&self) -> u8 {
        (self.marks() & USES) >> USES_SHIFT
    }

    #[inline]
    fn set_uses(&mut self, n: u8) {
        self.0[0] = (self.marks() & !USES) | (n.min(MAX_USES) << USES_SHIFT);
    }

    /// Used since it was written or last given a second chance: eviction
    /// keeps it.
    #[inline]
    pub(super) fn referenced(&self) -> bool {
        self.uses() > 0
    }

    /// A use that is not a read (a bump): counts as one.
    #[inline]
    pub(super) fn bump(&mut self) {
        self.set_uses(self.uses() + 1);
    }

    /// Spends one of the uses: what a second chance costs.
    #[inline]
    pub(super) fn spend_use(&mut self) {
        self.set_uses(self.uses().saturating_sub(1));
    }

    #[inline]
    pub(super) fn fetched(&self) -> bool {
        self.bit(FETCHED)
    }

    #[inline]
    pub(super) fn active(&self) -> bool {
        self.bit(ACTIVE)
    }

    /// Records a read: the first sets FETCHED, a later one ACTIVE; either
    /// counts as a use.
    #[inline]
    pub(super) fn mark_fetched(&mut self) {
        let m = self.marks();
        let mark = if m & FETCHED != 0 { ACTIVE } else { FETCHED };
        self.0[0] = m | mark;
        self.bump();
    }

    /// The size the item counts as for size classes and `mem_requested`:
    /// its record (header, key, value; there is no rounding).
    #[inline]
    pub(super) fn class_size(&self) -> usize {
        self.len()
    }
}

/// memcached's slab classes: 96 bytes (48-byte header + 48 `-n`), growing
/// by 1.25 rounded up to 8, while below 512 KiB / 1.25; then 512 KiB.
/// ferrocache adds one more class for anything larger.
const FIRST_CLASS: usize = 96;
const LARGEST_CHUNK: usize = 512 * 1024;

const fn class_count() -> usize {
    let mut size = FIRST_CLASS;
    let mut n = 0;
    while size * 5 < LARGEST_CHUNK * 4 {
        n += 1;
        size = (size * 5 / 4 + 7) & !7;
    }
    n + 2 // the 512 KiB class and the "larger" class
}

/// Number of size classes, including the last one for items over 512 KiB.
pub(super) const CLASSES: usize = class_count();

const fn class_table() -> [usize; CLASSES] {
    let mut t = [0; CLASSES];
    let mut size = FIRST_CLASS;
    let mut i = 0;
    while size * 5 < LARGEST_CHUNK * 4 {
        t[i] = size;
        i += 1;
        size = (size * 5 / 4 + 7) & !7;
    }
    t[i] = LARGEST_CHUNK;
    t[i + 1] = usize::MAX;
    t
}

/// Upper bound (inclusive) of each class; the last is unbounded.
pub(super) const CLASS_SIZES: [usize; CLASSES] = class_table();

/// Sizes up to this are classed by one table look-up ([`class_of`]).
const SMALL_SIZES: usize = 16 * 1024;

/// The class of every size up to `SMALL_SIZES`, by size / 8 rounded up:
/// every class bound is a multiple of 8, so a size and its round-up to 8
/// are in the same class.
const SMALL_CLASSES: [u8; SMALL_SIZES / 8 + 1] = {
    let mut t = [0u8; SMALL_SIZES / 8 + 1];
    let mut i = 0;
    let mut class = 0;
    while i < t.len() {
        while CLASS_SIZES[class] < i * 8 {
            class += 1;
        }
        t[i] = class as u8;
        i += 1;
    }
    t
};

/// The class (0-based) an item of `size` bytes (see [`Item::class_size`])
/// counts in. One table look-up for sizes up to 16 KiB: per-class
/// counters are bumped on every hit.
#[inline]
pub(super) fn class_of(size: usize) -> usize {
    if size <= SMALL_SIZES {
        usize::from(SMALL_CLASSES[size.div_ceil(8)])
    } else {
        CLASS_SIZES.partition_point(|&c| c < size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_table_agrees_with_the_bounds() {
        for size in 0..SMALL_SIZES + 100 {
            assert_eq!(
                class_of(size),
                CLASS_SIZES.partition_point(|&c| c < size),
                "{size}"
            );
        }
    }

    fn header(flags: u32, deadline: Secs, cas: Option<u64>) -> Header {
        Header {
            flags,
            deadline,
            atime: 2,
            cas,
            ..Header::default()
        }
    }

    fn record_with(h: &Header, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![0; h.record_size(key.len(), value.len())];
        write_record(&mut out, h, key, &[value]);
        assert_eq!(
            record_len(&out),
            out.len(),
            "record_len reads back the size"
        );
        out
    }

    fn record(key: &[u8], value: &[u8], flags: u32, cas: Option<u64>) -> Vec<u8> {
        record_with(&header(flags, 9, cas), key, value)
    }

    #[test]
    fn header_is_7_bytes_plus_what_the_item_has() {
        let plain = header(0, 0, None);
        assert_eq!(record_with(&plain, b"k", b"vv").len(), MIN_HEADER + 3);
        assert_eq!(MIN_HEADER, 7);
        assert_eq!(record_with(&header(7, 0, None), b"k", b"vv").len(), 11 + 3);
        assert_eq!(record_with(&header(0, 5, None), b"k", b"vv").len(), 11 + 3);
        assert_eq!(
            record_with(&header(0, 0, Some(1)), b"k", b"vv").len(),
            15 + 3
        );
        assert_eq!(
            record_with(&header(7, 5, None), b"key", b"value").len(),
            15 + 8
        );
        assert_eq!(
            record_with(&header(7, 5, Some(u64::MAX)), b"key", b"value").len(),
            23 + 8
        );
        let reserved = Header {
            deadline_field: true,
            ..plain
        };
        assert_eq!(record_with(&reserved, b"k", b"vv").len(), 11 + 3);
        // the value length takes as many bytes as it needs
        for (vlen, bytes) in [(255, 1), (256, 2), (65_535, 2), (65_536, 3), (1 << 24, 4)] {
            let value = vec![b'v'; vlen];
            let r = record_with(&plain, b"key", &value);
            assert_eq!(r.len(), FIXED + bytes + 3 + vlen, "{vlen}");
            let it = Item::new(&r);
            assert_eq!((it.key(), it.value().len()), (&b"key"[..], vlen));
            assert_eq!(
                plain_record_size(3 + vlen),
                r.len() + (vlen_bytes(3 + vlen) - bytes)
            );
        }
        let max = record_with(&header(1, 1, Some(1)), &[b'k'; 255], &vec![0; 1 << 24]);
        assert_eq!(Item::new(&max).len() - (1 << 24) - 255, MAX_HEADER);
    }

    #[test]
    fn fields_round_trip() {
        let cases = [(0, 9), (7, 9), (u32::MAX, 9), (0, 0), (3, 0)];
        for ((flags, deadline), own) in cases.into_iter().flat_map(|c| [(c, true), (c, false)]) {
            let cas = own.then_some(u64::MAX - 1);
            let mut buf = record_with(&header(flags, deadline, cas), b"key", b"value");
            let it = Item::new_mut(&mut buf);
            assert_eq!(
                (it.key(), it.value(), it.flags()),
                (&b"key"[..], &b"value"[..], flags)
            );
            assert_eq!(
                (it.own_cas(), it.deadline(), it.atime(5)),
                (cas, deadline, 2)
            );
            assert_eq!(
                it.cas_or(5),
                cas.unwrap_or(5),
                "the place's unique without a field"
            );
            assert!(!it.stale() && !it.win_sent() && !it.binary_key());
            assert!(!it.dead() && !it.referenced() && it.uses() == 0);
            it.set_win_sent(true);
            assert!(!it.stale() && it.win_sent());
            assert_eq!((it.cas_or(5), it.key()), (cas.unwrap_or(5), &b"key"[..]));
            assert!(!it.fetched() && !it.active());
            it.mark_fetched();
            assert!(it.fetched() && !it.active() && it.uses() == 1);
            it.spend_use();
            assert!(!it.referenced());
            it.mark_fetched();
            assert!(it.fetched() && it.active() && it.referenced());
            for _ in 0..=MAX_USES {
                it.bump();
            }
            assert_eq!(it.uses(), MAX_USES, "the counter saturates");
            it.spend_use();
            assert_eq!(it.uses(), MAX_USES - 1);
            assert!(it.fetched() && it.active() && !it.stale(), "bits apart");
            // a record written with a deadline has the field; one without
            // takes only "never" in place
            assert!(it.set_deadline(0));
            assert_eq!(it.deadline(), 0);
            assert_eq!(it.set_deadline(77), deadline != 0);
            assert_eq!(it.can_hold_deadline(77), deadline != 0);
            it.set_atime(78);
            let expect = if deadline != 0 { 77 } else { 0 };
            assert_eq!(
                (it.deadline(), it.atime(80), it.flags()),
                (expect, 78, flags)
            );
            assert_eq!(it.total_len(), 8, "bits do not leak into the lengths");
            // a copy of the header writes the same record (with the
            // unique in a field of its own)
            let copy = record_with(&it.header(80, it.cas_or(9)), it.key(), it.value());
            let copied = Item::new(&copy);
            assert_eq!(copied.own_cas(), Some(it.cas_or(9)));
            if own {
                assert_eq!(&copy[..], &it.0[..]);
            }
            assert_eq!(
                (
                    copied.key(),
                    copied.value(),
                    copied.flags(),
                    copied.deadline()
                ),
                (it.key(), it.value(), it.flags(), it.deadline())
            );
            assert_eq!(
                (copied.marks(), copied.atime(80)),
                (it.marks(), it.atime(80))
            );
            it.set_dead();
            assert!(it.dead() && it.win_sent() && it.cas_or(9) == cas.unwrap_or(9));
            assert_eq!(it.value(), b"value");
        }
        let empty = record(b"", b"", 0, None);
        let it = Item::new(&empty);
        assert_eq!(
            (it.key(), it.value(), it.len()),
            (&[][..], &[][..], MIN_HEADER + 4)
        );
    }

    #[test]
    fn the_last_access_reads_back_across_the_24_bit_wrap() {
        let mut buf = record(b"k", b"v", 0, None);
        let it = Item::new_mut(&mut buf);
        let wrap = 1 << 24;
        for (at, now) in [
            (5, 5),
            (5, 1000),
            (wrap - 5, wrap + 10),
            (wrap + 3, 2 * wrap - 1000),
        ] {
            it.set_atime(at);
            assert_eq!(it.atime(now), at, "written at {at}, read at {now}");
        }
        // written by a thread whose clock read a second later: "now"
        it.set_atime(wrap + 11);
        assert_eq!(it.atime(wrap + 10), wrap + 10);
        // idle past the horizon: modulo 2^24 (documented)
        it.set_atime(7);
        assert_eq!(it.atime(wrap + 9), wrap + 7);
    }

    #[test]
    fn a_deadline_field_is_kept_where_a_touch_must_not_copy() {
        assert!(deadline_field(false, 1, 1), "-M: always");
        assert!(!deadline_field(true, 14, 100));
        assert!(deadline_field(true, 12, DEADLINE_FIELD_FROM - 12));
    }

    #[test]
    fn classes_are_memcacheds() {
        // memcached 1.6.18 -vv: "slab class N: chunk size S"
        let memcached = [
            96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184, 1480, 1856, 2320, 2904,
            3632, 4544, 5680, 7104, 8880, 11104, 13880, 17352, 21696, 27120, 33904, 42384, 52984,
            66232, 82792, 103496, 129376, 161720, 202152, 252696, 315872, 394840, 524288,
        ];
        assert_eq!(CLASSES, memcached.len() + 1);
        assert_eq!(&CLASS_SIZES[..memcached.len()], &memcached[..]);
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(96), 0);
        assert_eq!(class_of(97), 1);
        assert_eq!(class_of(524288), CLASSES - 2);
        assert_eq!(class_of(524289), CLASSES - 1);
        assert_eq!(class_of(usize::MAX), CLASSES - 1);
    }
}
