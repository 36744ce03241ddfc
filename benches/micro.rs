//! Micro-benchmarks (criterion): the parser, the encoder and the cache, each
//! with `Throughput::Elements(1)` per iteration so criterion prints
//! operations per second ("thrpt: … Kelem/s" = thousand ops/s).
//!
//! `cargo bench --bench micro` runs all; a filter picks some, e.g.
//! `cargo bench --bench micro -- parse/` or `-- cache/`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::clock::Clock;
use ferrocache::protocol::{encode, parse, Limits, Request, Response};
use ferrocache::storage::{Cache, CacheConfig, StoreOp};

/// `-I 1m` as the server computes it (item size max minus memcached's 59-byte
/// item overhead with CAS).
const LIMITS: Limits = Limits {
    max_key_plus_value: 1024 * 1024 - 59,
};

fn key(n: u64) -> Vec<u8> {
    format!("key:{n:010}").into_bytes()
}

/// `key:<n>` zero-padded to 10 digits, written into `buf` without allocating
/// (used inside timed loops).
fn fill_key(buf: &mut Vec<u8>, mut n: u64) {
    buf.clear();
    buf.extend_from_slice(b"key:0000000000");
    for d in buf[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn set_request(value_len: usize) -> Vec<u8> {
    let mut r = format!("set key:0000012345 0 0 {value_len}\r\n").into_bytes();
    r.extend((0..value_len).map(|i| b'a' + (i % 26) as u8));
    r.extend_from_slice(b"\r\n");
    r
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let multiget = {
        let mut r = b"get".to_vec();
        for n in 0..10 {
            r.push(b' ');
            r.extend_from_slice(&key(n * 7919));
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    let cases: [(&str, Vec<u8>); 4] = [
        ("get", b"get key:0000012345\r\n".to_vec()),
        ("get_10_keys", multiget),
        ("set_32B", set_request(32)),
        ("set_1KiB", set_request(1024)),
    ];
    for (name, req) in &cases {
        // Check once, outside the timing, that the case parses as meant.
        match parse(req, &LIMITS) {
            Ok((Request::Get { .. } | Request::Store { .. }, used)) if used == req.len() => {}
            other => panic!("{name}: unexpected parse result {other:?}"),
        }
        g.bench_function(*name, |b| {
            b.iter(|| {
                let r = parse(black_box(req), &LIMITS);
                black_box(r.map(|(_, used)| used))
            })
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let v32 = vec![b'x'; 32];
    let v1k = vec![b'x'; 1024];
    let key = key(12345);
    let cases: [(&str, Response<'_>); 5] = [
        ("stored", Response::Stored),
        ("end", Response::End),
        (
            "value_32B",
            Response::Value {
                key: &key,
                flags: 0,
                data: &v32,
                cas: None,
            },
        ),
        (
            "value_1KiB",
            Response::Value {
                key: &key,
                flags: 0,
                data: &v1k,
                cas: None,
            },
        ),
        (
            "value_32B_cas",
            Response::Value {
                key: &key,
                flags: 12345,
                data: &v32,
                cas: Some(987_654_321),
            },
        ),
    ];
    let mut out = Vec::with_capacity(4096);
    for (name, resp) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(resp), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn new_cache(memory_limit: usize) -> Cache {
    Cache::new(
        CacheConfig {
            memory_limit,
            evict: true,
            // As the server sizes it for -t 2 (16 shards per thread).
            shards: 32,
            item_size_max: 1024 * 1024,
            cas: true,
        },
        Arc::new(Clock::new()),
    )
}

fn bench_cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(1));
    const KEYS: u64 = 100_000;
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let value = vec![b'v'; 100];

    // 100,000 items of 100 B in 1 GiB: every get hits.
    let cache = new_cache(1 << 30);
    for k in &keys {
        cache.store(StoreOp::Set, k, 0, 0, &value);
    }
    let mut i = 0usize;
    g.bench_function("get_hit_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(cache.get(&keys[i], |item| item.data.len()))
        })
    });
    let missing: Vec<Vec<u8>> = (KEYS..2 * KEYS).map(key).collect();
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % missing.len();
            black_box(cache.get(&missing[i], |item| item.data.len()))
        })
    });
    g.bench_function("set_overwrite_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(cache.store(StoreOp::Set, &keys[i], 0, 0, &value))
        })
    });
    drop(cache);

    // 8 MiB holds ~50,000 such items at most: after the first pass every set
    // of a new key evicts.
    let small = new_cache(8 << 20);
    let mut n = 0u64;
    let mut scratch = Vec::with_capacity(16);
    for _ in 0..200_000 {
        n += 1;
        fill_key(&mut scratch, n);
        small.store(StoreOp::Set, &scratch, 0, 0, &value);
    }
    g.bench_function("set_with_eviction_100B", |b| {
        b.iter(|| {
            n += 1;
            fill_key(&mut scratch, n);
            black_box(small.store(StoreOp::Set, &scratch, 0, 0, &value))
        })
    });
    g.finish();
}

criterion_group! {
    name = micro;
    // Short windows: the whole run stays around a minute on 2 cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench_parse, bench_encode, bench_cache
}
criterion_main!(micro);
