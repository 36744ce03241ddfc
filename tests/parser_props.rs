//! Property tests of the ASCII parser, `ferrocache::protocol::parse`:
//!
//! - any byte stream: no panic; a buffer without a newline gets the verdict
//!   of `unfinished_line` (which the server uses for a line still arriving);
//!   a request that fits in the buffer consumes
//!   at most the buffer, and parsing only the consumed bytes gives the same
//!   request (the parser never looked past them); `Incomplete` stays
//!   `Incomplete` for every shorter prefix (nothing was taken early);
//! - a stream fed whole or in arbitrary pieces (re-parsing the growing
//!   buffer after each piece, as the server does, including swallowing the
//!   rest of a too-large value) yields the same sequence of requests;
//! - requests built from valid commands parse back to what was built.
//!
//! Each property runs 512 to 2048 cases (well under a second in release).
//! Failures are shrunk by proptest and printed with the minimal input.

use ferrocache::protocol::{
    parse, unfinished_line, Limits, ParseError, Request, StoreMode, MAX_LINE_LEN,
};
use proptest::prelude::*;

/// `-I 1m` as the server computes it.
const LIMITS: Limits = Limits {
    max_key_plus_value: 1024 * 1024 - 59,
};
/// A small limit so that generated streams reach "too large" cheaply.
const SMALL: Limits = Limits {
    max_key_plus_value: 64,
};

/// What one parse step gave, owned so that steps can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Req(String),
    Close,
}

/// The server's read loop in miniature: `chunks` arrive one after the
/// other; after each, every complete request in the buffer is parsed.
fn serve(chunks: &[&[u8]], limits: &Limits) -> Vec<Event> {
    let mut buf: Vec<u8> = Vec::new();
    let mut swallow = 0usize;
    let mut out = Vec::new();
    for chunk in chunks {
        let mut chunk = *chunk;
        let skip = swallow.min(chunk.len());
        swallow -= skip;
        chunk = &chunk[skip..];
        buf.extend_from_slice(chunk);
        loop {
            if buf.is_empty() {
                break;
            }
            match parse(&buf, limits) {
                Ok((req, n)) => {
                    out.push(Event::Req(format!("{req:?}")));
                    if n > buf.len() {
                        swallow = n - buf.len();
                        buf.clear();
                        break;
                    }
                    buf.drain(..n);
                }
                Err(ParseError::Incomplete) => break,
                Err(ParseError::LineTooLong) => {
                    out.push(Event::Close);
                    return out;
                }
            }
        }
    }
    out
}

/// Splits `data` at the given (sorted, deduplicated) cut points.
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let c = c.min(data.len());
        if c > at {
            v.push(&data[at..c]);
            at = c;
        }
    }
    v.push(&data[at..]);
    v
}

/// Bytes that look like protocol traffic often enough to reach deep into
/// the parser: command words, numbers, spaces, CR/LF, NUL, random bytes.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"get ".to_vec()),
        Just(b"gets ".to_vec()),
        Just(b"gat ".to_vec()),
        Just(b"set ".to_vec()),
        Just(b"add ".to_vec()),
        Just(b"cas ".to_vec()),
        Just(b"append ".to_vec()),
        Just(b"incr ".to_vec()),
        Just(b"delete ".to_vec()),
        Just(b"touch ".to_vec()),
        Just(b"flush_all ".to_vec()),
        Just(b"verbosity ".to_vec()),
        Just(b"shutdown ".to_vec()),
        Just(b"noreply".to_vec()),
        Just(b"HTTP/1.1".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\0".to_vec()),
        "[0-9]{1,3}".prop_map(|s| s.into_bytes()),
        Just(b"4294967297".to_vec()),
        Just(b"-1".to_vec()),
        "[a-z]{1,4}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|v| v.concat())
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        protocolish()
    ]
}

/// Checks the single-call properties on `buf`.
fn check_one(buf: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    if !buf.contains(&b'\n') {
        // The server answers a buffer it knows holds no newline with
        // `unfinished_line` instead of parsing it again: the same verdict.
        prop_assert_eq!(parse(buf, limits).err(), Some(unfinished_line(buf)));
    }
    match parse(buf, limits) {
        Ok((req, n)) => {
            prop_assert!(n > 0, "a request consumed nothing: {req:?}");
            if n <= buf.len() {
                // The same request from exactly the consumed bytes: nothing
                // after them was looked at.
                let again = parse(&buf[..n], limits);
                prop_assert_eq!(
                    again.map(|(r, m)| (format!("{r:?}"), m)),
                    Ok((format!("{req:?}"), n))
                );
            } else {
                // Only a too-large value may claim more than the buffer.
                prop_assert!(
                    matches!(req, Request::TooLarge { .. }),
                    "consumed {n} of {} bytes: {req:?}",
                    buf.len()
                );
                prop_assert!(buf.contains(&b'\n'));
            }
        }
        Err(ParseError::Incomplete) => {
            // Shorter prefixes are incomplete too: no request was hiding in
            // the front of an incomplete buffer.
            for cut in [0, buf.len() / 2, buf.len().saturating_sub(1)] {
                if cut < buf.len() {
                    prop_assert_eq!(parse(&buf[..cut], limits), Err(ParseError::Incomplete));
                }
            }
        }
        Err(ParseError::LineTooLong) => {
            prop_assert!(buf.len() > MAX_LINE_LEN);
            prop_assert!(!buf[..MAX_LINE_LEN].contains(&b'\n'));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(buf in any_stream()) {
        check_one(&buf, &LIMITS)?;
        check_one(&buf, &SMALL)?;
    }

    #[test]
    fn long_lines(prefix in prop_oneof![Just(&b""[..]), Just(&b"get "[..]), Just(&b"   gets "[..]), Just(&b"set "[..])],
                  len in 2000usize..2100, newline in any::<bool>()) {
        let mut buf = prefix.to_vec();
        buf.resize(len, b'k');
        if newline {
            buf.extend_from_slice(b"\r\n");
        }
        check_one(&buf, &LIMITS)?;
    }

    #[test]
    fn whole_or_in_pieces(stream in any_stream(),
                          cuts in proptest::collection::vec(0usize..700, 0..12)) {
        // Only streams whose lines all fit the line limit: a longer line is
        // closed or not depending on how much of it has arrived, in
        // memcached as in ferrocache.
        prop_assume!(stream.split(|&b| b == b'\n').all(|l| l.len() < MAX_LINE_LEN));
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        for limits in [&LIMITS, &SMALL] {
            let whole = serve(&[&stream], limits);
            let split = serve(&pieces(&stream, &cuts), limits);
            prop_assert_eq!(&whole, &split);
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            let byte_by_byte = serve(&bytes, limits);
            prop_assert_eq!(&whole, &byte_by_byte);
        }
    }
}

// ------------------------------------------------------- round trips

/// A command built from valid parts, with what parsing it must give.
#[derive(Debug, Clone)]
enum Built {
    Store {
        mode: StoreMode,
        key: Vec<u8>,
        flags: u32,
        exptime: i32,
        data: Vec<u8>,
        cas: u64,
        noreply: bool,
    },
    Get {
        keys: Vec<Vec<u8>>,
        with_cas: bool,
    },
    Gat {
        exptime: i32,
        keys: Vec<Vec<u8>>,
        with_cas: bool,
    },
    Delete {
        key: Vec<u8>,
        noreply: bool,
    },
    Arith {
        key: Vec<u8>,
        delta: u64,
        incr: bool,
        noreply: bool,
    },
    Touch {
        key: Vec<u8>,
        exptime: i32,
        noreply: bool,
    },
    Flush {
        delay: Option<i32>,
        noreply: bool,
    },
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Version,
}

/// Keys: any bytes but space, NUL, CR and LF, 1 to 250 of them.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9:_.-]{1,20}".prop_map(String::into_bytes),
        proptest::collection::vec(
            any::<u8>().prop_filter("separator", |b| !matches!(b, b' ' | 0 | b'\r' | b'\n')),
            1..=250
        ),
        Just(vec![b'k'; 250]),
    ]
}

fn built() -> impl Strategy<Value = Built> {
    let mode = prop_oneof![
        Just(StoreMode::Set),
        Just(StoreMode::Add),
        Just(StoreMode::Replace),
        Just(StoreMode::Append),
        Just(StoreMode::Prepend),
        Just(StoreMode::Cas),
    ];
    prop_oneof![
        (
            mode,
            key(),
            any::<u32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(mode, key, flags, exptime, data, cas, noreply)| Built::Store {
                    cas: if mode == StoreMode::Cas { cas } else { 0 },
                    mode,
                    key,
                    flags,
                    exptime,
                    data,
                    noreply,
                }
            ),
        (proptest::collection::vec(key(), 1..8), any::<bool>())
            .prop_map(|(keys, with_cas)| Built::Get { keys, with_cas }),
        (
            any::<i32>(),
            proptest::collection::vec(key(), 0..5),
            any::<bool>()
        )
            .prop_map(|(exptime, keys, with_cas)| Built::Gat {
                exptime,
                keys,
                with_cas
            }),
        (key(), any::<bool>()).prop_map(|(key, noreply)| Built::Delete { key, noreply }),
        (key(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, delta, incr, noreply)| Built::Arith {
                key,
                delta,
                incr,
                noreply
            }
        ),
        (key(), any::<i32>(), any::<bool>()).prop_map(|(key, exptime, noreply)| Built::Touch {
            key,
            exptime,
            noreply
        }),
        (proptest::option::of(any::<i32>()), any::<bool>())
            .prop_map(|(delay, noreply)| Built::Flush { delay, noreply }),
        (any::<u32>(), any::<bool>())
            .prop_map(|(level, noreply)| Built::Verbosity { level, noreply }),
        Just(Built::Version),
    ]
}

fn nr(noreply: bool) -> &'static str {
    if noreply {
        " noreply"
    } else {
        ""
    }
}

fn encode(b: &Built) -> Vec<u8> {
    let mut out = Vec::new();
    match b {
        Built::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            cas,
            noreply,
        } => {
            let name = match mode {
                StoreMode::Set => "set",
                StoreMode::Add => "add",
                StoreMode::Replace => "replace",
                StoreMode::Append => "append",
                StoreMode::Prepend => "prepend",
                StoreMode::Cas => "cas",
            };
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(key);
            out.extend_from_slice(format!(" {flags} {exptime} {}", data.len()).as_bytes());
            if *mode == StoreMode::Cas {
                out.extend_from_slice(format!(" {cas}").as_bytes());
            }
            out.extend_from_slice(nr(*noreply).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
        }
        Built::Get { keys, with_cas } | Built::Gat { keys, with_cas, .. } => {
            let gat = matches!(b, Built::Gat { .. });
            out.extend_from_slice(match (gat, with_cas) {
                (false, false) => b"get",
                (false, true) => b"gets",
                (true, false) => b"gat",
                (true, true) => b"gats",
            });
            if let Built::Gat { exptime, .. } = b {
                out.extend_from_slice(format!(" {exptime}").as_bytes());
            }
            for k in keys {
                out.push(b' ');
                out.extend_from_slice(k);
            }
        }
        Built::Delete { key, noreply } => {
            out.extend_from_slice(b"delete ");
            out.extend_from_slice(key);
            out.extend_from_slice(nr(*noreply).as_bytes());
        }
        Built::Arith {
            key,
            delta,
            incr,
            noreply,
        } => {
            out.extend_from_slice(if *incr { b"incr " } else { b"decr " });
            out.extend_from_slice(key);
            out.extend_from_slice(format!(" {delta}{}", nr(*noreply)).as_bytes());
        }
        Built::Touch {
            key,
            exptime,
            noreply,
        } => {
            out.extend_from_slice(b"touch ");
            out.extend_from_slice(key);
            out.extend_from_slice(format!(" {exptime}{}", nr(*noreply)).as_bytes());
        }
        Built::Flush { delay, noreply } => {
            out.extend_from_slice(b"flush_all");
            if let Some(d) = delay {
                out.extend_from_slice(format!(" {d}").as_bytes());
            }
            out.extend_from_slice(nr(*noreply).as_bytes());
        }
        Built::Verbosity { level, noreply } => {
            out.extend_from_slice(format!("verbosity {level}{}", nr(*noreply)).as_bytes());
        }
        Built::Version => out.extend_from_slice(b"version"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `req` is what `b` describes.
fn matches_built(req: &Request<'_>, b: &Built) -> bool {
    match (req, b) {
        (
            Request::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                cas,
                noreply,
            },
            Built::Store {
                mode: m,
                key: k,
                flags: f,
                exptime: e,
                data: d,
                cas: c,
                noreply: n,
            },
        ) => {
            mode == m
                && key == k
                && flags == f
                && *exptime == i64::from(*e)
                && data == d
                && cas == c
                && noreply == n
        }
        (
            Request::Get { keys, with_cas },
            Built::Get {
                keys: k,
                with_cas: c,
            },
        ) => with_cas == c && keys.iter().eq(k.iter().map(Vec::as_slice)),
        (
            Request::Gat {
                exptime,
                keys,
                with_cas,
            },
            Built::Gat {
                exptime: e,
                keys: k,
                with_cas: c,
            },
        ) => {
            *exptime == i64::from(*e)
                && with_cas == c
                && keys.iter().eq(k.iter().map(Vec::as_slice))
        }
        (Request::Delete { key, cas, noreply }, Built::Delete { key: k, noreply: n }) => {
            key == k && *cas == 0 && noreply == n
        }
        (
            Request::Arith {
                key,
                delta,
                incr,
                cas,
                create,
                noreply,
            },
            Built::Arith {
                key: k,
                delta: d,
                incr: i,
                noreply: n,
            },
        ) => key == k && delta == d && incr == i && *cas == 0 && create.is_none() && noreply == n,
        (
            Request::Touch {
                key,
                exptime,
                noreply,
            },
            Built::Touch {
                key: k,
                exptime: e,
                noreply: n,
            },
        ) => key == k && *exptime == i64::from(*e) && noreply == n,
        (
            Request::FlushAll {
                delay,
                noreply,
                bad_delay,
            },
            Built::Flush {
                delay: d,
                noreply: n,
            },
        ) => !bad_delay && *delay == i64::from(d.unwrap_or(0)) && noreply == n,
        (
            Request::Verbosity { level, noreply },
            Built::Verbosity {
                level: l,
                noreply: n,
            },
        ) => level == l && noreply == n,
        (Request::Version, Built::Version) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A pipelined batch of valid commands parses back, request by
    /// request, consuming each exactly, whole or split anywhere.
    #[test]
    fn valid_commands_round_trip(batch in proptest::collection::vec(built(), 1..12),
                                 cuts in proptest::collection::vec(0usize..4000, 0..8)) {
        let encoded: Vec<Vec<u8>> = batch.iter().map(encode).collect();
        let stream = encoded.concat();
        let mut at = 0;
        for (b, bytes) in batch.iter().zip(&encoded) {
            let (req, n) = parse(&stream[at..], &LIMITS)
                .map_err(|e| TestCaseError::fail(format!("{e:?} for {b:?}")))?;
            prop_assert!(matches_built(&req, b), "built {:?}\nparsed {:?}", b, req);
            prop_assert_eq!(n, bytes.len());
            at += n;
        }
        prop_assert_eq!(parse(&stream[at..], &LIMITS), Err(ParseError::Incomplete));
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let whole = serve(&[&stream], &LIMITS);
        prop_assert_eq!(whole.len(), batch.len());
        prop_assert_eq!(&whole, &serve(&pieces(&stream, &cuts), &LIMITS));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// With a small item limit many values are too large: the parser
    /// decides that from the line alone and claims the whole value, which
    /// the server swallows as it arrives. Fed in pieces, the stream still
    /// gives one request per command, the same as whole.
    #[test]
    fn too_large_values_swallowed_across_pieces(
        batch in proptest::collection::vec(built(), 1..12),
        cuts in proptest::collection::vec(0usize..4000, 1..12),
    ) {
        let stream: Vec<u8> = batch.iter().flat_map(encode).collect();
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let whole = serve(&[&stream], &SMALL);
        prop_assert_eq!(whole.len(), batch.len(), "one request per command: {:?}", whole);
        let split = serve(&pieces(&stream, &cuts), &SMALL);
        prop_assert_eq!(&whole, &split);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&whole, &serve(&bytes, &SMALL));
    }
}
