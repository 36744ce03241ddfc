//! Property tests of the binary frame parser,
//! `ferrocache::protocol::binary::parse`:
//!
//! - any byte stream (random bytes, and frames with random header fields):
//!   no panic; a frame that is complete consumes at least its header, and
//!   parsing it again from a longer buffer gives the same frame (the parser
//!   never looked past the bytes it needed); `Incomplete` stays
//!   `Incomplete` for every shorter prefix (nothing was taken early); a
//!   frame needing more than memcached's 16 KiB read buffer is a close;
//! - a stream of frames fed whole or in arbitrary pieces (re-parsing the
//!   growing buffer after each piece, as the server does, throwing away a
//!   refused value as it arrives) yields the same sequence of frames;
//! - valid frames built from random fields parse back to the request they
//!   describe (opcode, opaque, cas, key, extras, value).
//!
//! Failures are shrunk by proptest and printed with the minimal input.

use ferrocache::protocol::binary::{parse, Action, FrameError, MAX_HEAD};
use ferrocache::protocol::{Keys, Limits, Request, StoreMode};
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_key_plus_value: 1024 * 1024 - 59,
};
/// A small limit so that generated streams reach "too large" cheaply.
const SMALL: Limits = Limits {
    max_key_plus_value: 64,
};

/// A header with the given fields, then `body`.
fn frame(opcode: u8, keylen: u16, extlen: u8, bodylen: u32, cas: u64, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80, opcode];
    f.extend_from_slice(&keylen.to_be_bytes());
    f.push(extlen);
    f.extend_from_slice(&[0, 0, 0]);
    f.extend_from_slice(&bodylen.to_be_bytes());
    f.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    f.extend_from_slice(&cas.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Frames whose header fields are random but mostly near the truth, so
/// that every branch of the parser is reached.
fn framish() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![0u8..0x25, any::<u8>()];
    (
        opcode,
        0usize..12,
        prop_oneof![Just(0u8), Just(4), Just(8), Just(20), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..80),
        prop_oneof![Just(0i64), -3i64..4, Just(1i64 << 31), Just(-(1i64 << 20))],
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(op, klen, ext, value, skew, cas)| {
            let mut body = vec![b'e'; usize::from(ext)];
            body.extend(std::iter::repeat_n(b'k', klen));
            body.extend_from_slice(&value);
            let bodylen = (body.len() as i64 + skew).clamp(0, u32::MAX as i64) as u32;
            frame(op, klen as u16, ext, bodylen, cas, &body)
        })
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(framish(), 1..6).prop_map(|fs| fs.concat()),
    ]
}

fn check_one(buf: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    match parse(buf, limits) {
        Ok(f) => {
            prop_assert!(f.consumed >= 24, "took {} bytes", f.consumed);
            // the parser needs no more than the frame's end (or, for a
            // refused value, its header, extras and key)
            let needed = f.consumed.min(buf.len());
            let mut longer = buf[..needed].to_vec();
            longer.extend_from_slice(&[0x80; 40]);
            let again = parse(&longer, limits);
            prop_assert_eq!(again, Ok(f.clone()));
            if matches!(f.action, Action::Execute(Request::Store { .. })) {
                prop_assert!(f.consumed <= buf.len());
            }
        }
        Err(FrameError::Incomplete) => {
            prop_assert!(buf.len() < MAX_HEAD.max(24) || buf[0] == 0x80);
            for cut in 0..buf.len().min(64) {
                prop_assert_eq!(parse(&buf[..cut], limits), Err(FrameError::Incomplete));
            }
        }
        Err(FrameError::Close) => {
            prop_assert!(buf.len() >= 24);
            prop_assert!(buf[0] != 0x80 || buf.len() >= MAX_HEAD);
        }
    }
    Ok(())
}

/// What one parse step gave, owned so that steps can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Frame(String),
    Close,
}

/// The server's read loop in miniature: `chunks` arrive one after the
/// other; after each, every complete frame in the buffer is parsed.
fn serve(chunks: &[&[u8]], limits: &Limits) -> Vec<Event> {
    let mut buf: Vec<u8> = Vec::new();
    let mut swallow = 0usize;
    let mut out = Vec::new();
    for chunk in chunks {
        let skip = swallow.min(chunk.len());
        swallow -= skip;
        buf.extend_from_slice(&chunk[skip..]);
        while !buf.is_empty() {
            match parse(&buf, limits) {
                Ok(f) => {
                    out.push(Event::Frame(format!("{f:?}")));
                    if f.consumed > buf.len() {
                        swallow = f.consumed - buf.len();
                        buf.clear();
                    } else {
                        buf.drain(..f.consumed);
                    }
                }
                Err(FrameError::Incomplete) => break,
                Err(FrameError::Close) => {
                    out.push(Event::Close);
                    return out;
                }
            }
        }
    }
    out
}

fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for c in at {
        out.push(&data[start..c]);
        start = c;
    }
    out.push(&data[start..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(buf in any_stream()) {
        check_one(&buf, &LIMITS)?;
        check_one(&buf, &SMALL)?;
    }

    #[test]
    fn whole_or_in_pieces(stream in proptest::collection::vec(framish(), 1..8),
                          cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let stream = stream.concat();
        for limits in [&LIMITS, &SMALL] {
            let whole = serve(&[&stream], limits);
            let split = serve(&pieces(&stream, &cuts), limits);
            prop_assert_eq!(&split, &whole);
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(&serve(&bytes, limits), &whole);
        }
    }

    #[test]
    fn heads_past_the_read_buffer_close(keylen in 16_361usize..=65_535, extlen in any::<u8>()) {
        let f = frame(0x00, keylen as u16, extlen, keylen as u32 + u32::from(extlen), 0, &[]);
        prop_assert_eq!(parse(&f, &LIMITS), Err(FrameError::Incomplete));
        let mut full = f.clone();
        full.resize(MAX_HEAD, b'k');
        prop_assert_eq!(parse(&full, &LIMITS), Err(FrameError::Close));
    }
}

/// A valid request, as fields.
#[derive(Debug, Clone)]
struct Built {
    opcode: u8,
    key: Vec<u8>,
    flags: u32,
    exptime: u32,
    value: Vec<u8>,
    cas: u64,
    delta: u64,
    initial: u64,
}

fn built() -> impl Strategy<Value = Built> {
    let opcode = prop_oneof![
        Just(0x00u8),
        Just(0x09),
        Just(0x0c),
        Just(0x0d),
        Just(0x01),
        Just(0x02),
        Just(0x03),
        Just(0x11),
        Just(0x12),
        Just(0x13),
        Just(0x0e),
        Just(0x0f),
        Just(0x19),
        Just(0x1a),
        Just(0x04),
        Just(0x14),
        Just(0x05),
        Just(0x06),
        Just(0x15),
        Just(0x16),
        Just(0x1c),
        Just(0x1d),
        Just(0x1e),
        Just(0x23),
        Just(0x24),
    ];
    (
        opcode,
        proptest::collection::vec(any::<u8>(), 1..=250),
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(opcode, key, flags, exptime, value, cas, delta, initial)| Built {
                opcode,
                key,
                flags,
                exptime,
                value,
                cas,
                delta,
                initial,
            },
        )
}

fn encode(b: &Built) -> Vec<u8> {
    let (extras, value): (Vec<u8>, &[u8]) = match b.opcode {
        0x01..=0x03 | 0x11..=0x13 => {
            let mut e = b.flags.to_be_bytes().to_vec();
            e.extend_from_slice(&b.exptime.to_be_bytes());
            (e, &b.value)
        }
        0x0e | 0x0f | 0x19 | 0x1a => (Vec::new(), &b.value),
        0x05 | 0x06 | 0x15 | 0x16 => {
            let mut e = b.delta.to_be_bytes().to_vec();
            e.extend_from_slice(&b.initial.to_be_bytes());
            e.extend_from_slice(&b.exptime.to_be_bytes());
            (e, b"")
        }
        0x1c..=0x1e | 0x23 | 0x24 => (b.exptime.to_be_bytes().to_vec(), b""),
        _ => (Vec::new(), b""),
    };
    let mut body = extras.clone();
    body.extend_from_slice(&b.key);
    body.extend_from_slice(value);
    frame(
        b.opcode,
        b.key.len() as u16,
        extras.len() as u8,
        body.len() as u32,
        b.cas,
        &body,
    )
}

/// The request `b` describes, as the codec-neutral value.
fn expected(b: &Built) -> Request<'_> {
    let key = &b.key[..];
    let store = |mode| Request::Store {
        mode: if b.cas != 0 && matches!(mode, StoreMode::Set | StoreMode::Add | StoreMode::Replace)
        {
            StoreMode::Cas
        } else {
            mode
        },
        key,
        flags: if matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            0
        } else {
            b.flags
        },
        exptime: if matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            0
        } else {
            i64::from(b.exptime)
        },
        data: &b.value,
        cas: b.cas,
        noreply: false,
    };
    match b.opcode {
        0x00 | 0x09 | 0x0c | 0x0d => Request::Get {
            keys: Keys::one(key),
            with_cas: true,
        },
        0x01 | 0x11 => store(StoreMode::Set),
        0x02 | 0x12 => store(StoreMode::Add),
        0x03 | 0x13 => store(StoreMode::Replace),
        0x0e | 0x19 => store(StoreMode::Append),
        0x0f | 0x1a => store(StoreMode::Prepend),
        0x04 | 0x14 => Request::Delete {
            key,
            cas: b.cas,
            noreply: false,
        },
        0x05 | 0x06 | 0x15 | 0x16 => Request::Arith {
            key,
            delta: b.delta,
            incr: matches!(b.opcode, 0x05 | 0x15),
            cas: b.cas,
            create: (b.exptime != u32::MAX).then_some(ferrocache::protocol::ArithCreate {
                initial: b.initial,
                exptime: i64::from(b.exptime),
            }),
            noreply: false,
        },
        _ => Request::Gat {
            exptime: i64::from(b.exptime),
            keys: Keys::one(key),
            with_cas: true,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn valid_frames_round_trip(batch in proptest::collection::vec(built(), 1..8)) {
        let stream: Vec<u8> = batch.iter().flat_map(encode).collect();
        let mut at = 0;
        for b in &batch {
            let f = parse(&stream[at..], &LIMITS).expect("a whole frame");
            prop_assert_eq!(f.header.opcode, b.opcode);
            prop_assert_eq!(f.header.opaque, 0x1234_5678u32.to_be_bytes());
            prop_assert_eq!(f.header.cas, b.cas);
            prop_assert_eq!(f.key, &b.key[..]);
            prop_assert_eq!(f.action, Action::Execute(expected(b)));
            prop_assert_eq!(f.consumed, encode(b).len());
            at += f.consumed;
        }
        prop_assert_eq!(at, stream.len());
    }
}
