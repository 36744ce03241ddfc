//! Memory benchmark: how many items each server keeps under `-m 64`, at what
//! resident memory, and whether resident memory stays under the ceiling for
//! any value size.
//!
//! `cargo bench --bench memory [-- items|sweep|hitratio]`:
//!
//! - items: memcached and ferrocache with `-m 64 -t 2`; 1,000,000 distinct keys
//!   `key:0000000000`… (14 bytes) set to 100-byte values (pipelined, 500
//!   requests per write), then every key read back with 100-key multi-gets.
//!   Prints hits, peak RSS (VmHWM of /proc/PID/status) and the ratios.
//! - sweep: for values of 10 B, 100 B, 1 KiB, 10 KiB, 100 KiB and 512 KiB, a
//!   fresh server with `-m 64 -I 1m`, written with 3 × 64 MiB of key + value
//!   bytes (distinct keys); prints peak RSS / ceiling for each.
//! - hitratio: eviction quality as an application sees it. A read-through
//!   client (a 100-key multi-get; a set of each key that missed) draws keys
//!   from a seeded Zipf distribution (exponents 0.7 and 0.9) over 4,000,000
//!   keys with 100 B values, against a fresh server at `-m 8`, `-m 64` and
//!   `-m 1024` (`-t 2`); after `FC_HR_WARMUP` requests (default 3,000,000)
//!   it counts the hits of the next `FC_HR_REQUESTS` (default 2,000,000).
//!   The same key sequence goes to both servers; prints the ratios.
//!   `FC_HR_CEILINGS=8,64` measures only those ceilings.
//!
//! Writes the tables to `target/bench-report/memory.md`.
//! `FC_BENCH_SERVERS`, `FC_MEMCACHED`, `FC_FERROCACHE` as for the load bench.

mod common;

use std::io;
use std::time::Instant;

use common::readthrough::{read_through, HitCount, Zipf};
use common::{grouped, Kind, Server};

const MIB: u64 = 1024 * 1024;
const CEILING: u64 = 64 * MIB;
const KEY_LEN: u64 = 14; // "key:" + 10 digits

struct Kept {
    written: u64,
    stored: u64,
    errors: u64,
    hits: u64,
    idle_rss: u64,
    hwm: u64,
    evictions: Option<u64>,
    write_secs: f64,
    read_secs: f64,
}

fn items_kept(kind: Kind) -> io::Result<Kept> {
    let s = Server::start(kind, &["-m", "64", "-t", "2"])?;
    let idle_rss = s.status_bytes("VmRSS")?;
    let n = 1_000_000;
    let value = common::make_value(100);
    let t = Instant::now();
    let w = common::bulk_set(s.addr, "key:", 0..n, &value, 2, 500)?;
    let write_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = common::bulk_get(s.addr, "key:", 0..n, 100, 10, 2)?;
    let read_secs = t.elapsed().as_secs_f64();
    Ok(Kept {
        written: n,
        stored: w.stored,
        errors: w.errors + w.other,
        hits: r.hits,
        idle_rss,
        hwm: s.status_bytes("VmHWM")?,
        evictions: s.stat_u64("evictions"),
        write_secs,
        read_secs,
    })
}

struct SweepPoint {
    keys: u64,
    stored: u64,
    errors: u64,
    hwm: u64,
    curr_items: Option<u64>,
    secs: f64,
}

/// One server's outcome at one value size.
type SweepCell = (Kind, Result<SweepPoint, String>);

fn sweep_point(kind: Kind, value_size: u64) -> io::Result<SweepPoint> {
    let s = Server::start(kind, &["-m", "64", "-t", "2", "-I", "1m"])?;
    let keys = (3 * CEILING).div_ceil(KEY_LEN + value_size);
    let value = common::make_value(value_size as usize);
    // About 256 KiB per write, at most 500 requests.
    let batch = ((256 * 1024) / (value_size + 40)).clamp(1, 500) as usize;
    let t = Instant::now();
    let w = common::bulk_set(s.addr, "key:", 0..keys, &value, 2, batch)?;
    Ok(SweepPoint {
        keys,
        stored: w.stored,
        errors: w.errors + w.other,
        hwm: s.status_bytes("VmHWM")?,
        curr_items: s.stat_u64("curr_items"),
        secs: t.elapsed().as_secs_f64(),
    })
}

/// Keys the read-through workload draws from.
const HR_KEYS: u64 = 4_000_000;
/// Ceilings (MiB) the hit ratio is measured at: small, the usual, large.
const HR_CEILINGS: [u64; 3] = [8, 64, 1024];
const HR_EXPONENTS: [f64; 2] = [0.7, 0.9];

/// One server's hit ratio at one ceiling for one distribution, and the
/// items it held at the end.
fn hit_ratio(kind: Kind, mib: u64, zipf: &Zipf, seed: u64) -> io::Result<(HitCount, Option<u64>)> {
    let m = mib.to_string();
    let s = Server::start(kind, &["-m", &m, "-t", "2"])?;
    let warmup = common::env_num("FC_HR_WARMUP", 3_000_000u64);
    let measured = common::env_num("FC_HR_REQUESTS", 2_000_000u64);
    let count = read_through(
        s.addr,
        zipf,
        seed,
        &common::make_value(100),
        warmup,
        measured,
        100,
    )?;
    Ok((count, s.stat_u64("curr_items")))
}

/// The hit-ratio table (see the module header), with its markdown.
fn hit_ratios(kinds: &[Kind]) -> String {
    let mut report = String::from(
        "\n**Eviction quality (hit ratio of a read-through client)**: keys drawn from a \
         seeded Zipf distribution over 4,000,000 keys (14 B, values 100 B); a 100-key \
         multi-get, then a set of each key that missed; a fresh server per cell (`-t 2`); \
         the hit ratio of the requests after the warm-up, the same sequence for both servers.\n\n\
         | ceiling | Zipf exponent |",
    );
    for k in kinds {
        report.push_str(&format!(" {} hit ratio |", k.name()));
    }
    report.push_str(" ferrocache / memcached |\n|---:|---:|");
    for _ in kinds {
        report.push_str("---:|");
    }
    report.push_str("---:|\n");
    // FC_HR_CEILINGS=8,64 limits the run to those ceilings (MiB)
    let ceilings: Vec<u64> = match std::env::var("FC_HR_CEILINGS") {
        Ok(list) => list
            .split(',')
            .filter_map(|m| m.trim().parse().ok())
            .collect(),
        Err(_) => HR_CEILINGS.to_vec(),
    };
    for &s in &HR_EXPONENTS {
        let zipf = Zipf::new(HR_KEYS, s);
        for &mib in &ceilings {
            let mut row = Vec::new();
            for &k in kinds {
                let r = hit_ratio(k, mib, &zipf, 0x5eed ^ mib);
                match &r {
                    Ok((h, items)) => println!(
                        "   -m {mib:<5} zipf {s}  {:<10} {} gets, hit ratio {:.4}, {} items held",
                        k.name(),
                        grouped(h.gets),
                        h.ratio(),
                        opt(*items)
                    ),
                    Err(e) => println!("!! -m {mib} zipf {s} {}: {e}", k.name()),
                }
                row.push((k, r.ok().map(|(h, _)| h)));
            }
            report.push_str(&format!("| -m {mib} | {s} |"));
            for (_, h) in &row {
                match h {
                    Some(h) => report.push_str(&format!(" {:.4} |", h.ratio())),
                    None => report.push_str(" failed |"),
                }
            }
            let get = |kind: Kind| row.iter().find(|(k, _)| *k == kind).and_then(|(_, h)| *h);
            match (get(Kind::Memcached), get(Kind::Ferrocache)) {
                (Some(m), Some(f)) => {
                    report.push_str(&format!(" **{:.3}** |\n", f.ratio() / m.ratio()))
                }
                _ => report.push_str(" |\n"),
            }
        }
    }
    report
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / MIB as f64)
}

fn size_name(b: u64) -> String {
    if b >= 1024 {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(grouped).unwrap_or_else(|| "?".into())
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    let machine = common::machine_info();
    println!("memory benchmark — {machine}");
    let kinds = Kind::selected();
    let mut report = String::new();

    if want("items") {
        println!(
            "\n== items kept at -m 64: 1,000,000 keys of 14 B with 100 B values, then read back"
        );
        let mut kept: Vec<(Kind, Result<Kept, String>)> = Vec::new();
        for &k in &kinds {
            let r = items_kept(k).map_err(|e| e.to_string());
            match &r {
                Ok(x) => println!(
                    "   {:<10} wrote {} ({} stored, {} errors) in {:.1} s, read back in {:.1} s: {} hits, peak RSS {} MiB",
                    k.name(),
                    grouped(x.written),
                    grouped(x.stored),
                    x.errors,
                    x.write_secs,
                    x.read_secs,
                    grouped(x.hits),
                    mb(x.hwm)
                ),
                Err(e) => println!("!! {}: {e}", k.name()),
            }
            kept.push((k, r));
        }
        report.push_str(&format!(
            "### Memory (`cargo bench --bench memory`)\n\n{machine}.\n\n\
             **Items kept at `-m 64`**: 1,000,000 distinct keys `key:0000000000`… (14 B) with 100 B \
             values written (pipelined), then every key read back. Hits = items that survived; peak \
             RSS = VmHWM of /proc/PID/status after the read-back; the ceiling is 64 MiB.\n\n\
             | server | hits (items kept) | bytes / item kept | write errors | evictions | idle RSS MiB | peak RSS MiB | peak RSS / ceiling |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        for (k, r) in &kept {
            match r {
                Ok(x) => report.push_str(&format!(
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {:.2} |\n",
                    k.name(),
                    grouped(x.hits),
                    if x.hits > 0 {
                        CEILING as f64 / x.hits as f64
                    } else {
                        f64::NAN
                    },
                    grouped(x.errors),
                    opt(x.evictions),
                    mb(x.idle_rss),
                    mb(x.hwm),
                    x.hwm as f64 / CEILING as f64
                )),
                Err(e) => report.push_str(&format!(
                    "| {} | not measured: {e} | | | | | | |\n",
                    k.name()
                )),
            }
        }
        let get = |kind: Kind| {
            kept.iter()
                .find(|(k, _)| *k == kind)
                .and_then(|(_, r)| r.as_ref().ok())
        };
        if let (Some(m), Some(f)) = (get(Kind::Memcached), get(Kind::Ferrocache)) {
            report.push_str(&format!(
                "| **ferrocache / memcached** | **{:.2}** | | | | | **{:.2}** | |\n",
                f.hits as f64 / m.hits as f64,
                f.hwm as f64 / m.hwm as f64
            ));
        }
        report.push_str(
            "\n(bytes / item kept = 64 MiB / hits; the raw key + value is 114 B, so no server can \
             keep more than ~588,000 of them in 64 MiB.)\n",
        );
    }

    if want("sweep") {
        println!("\n== RSS / ceiling sweep at -m 64 -I 1m, writing 3 × 64 MiB of key + value bytes per size");
        let sizes = [10u64, 100, 1024, 10 * 1024, 100 * 1024, 512 * 1024];
        let mut rows: Vec<(u64, Vec<SweepCell>)> = Vec::new();
        for &size in &sizes {
            let mut row = Vec::new();
            for &k in &kinds {
                let r = sweep_point(k, size).map_err(|e| e.to_string());
                match &r {
                    Ok(p) => println!(
                        "   {:>7} values {:<10} {} keys ({} stored, {} errors) in {:.1} s: peak RSS {} MiB = {:.2} × ceiling, {} items at the end",
                        size_name(size),
                        k.name(),
                        grouped(p.keys),
                        grouped(p.stored),
                        p.errors,
                        p.secs,
                        mb(p.hwm),
                        p.hwm as f64 / CEILING as f64,
                        opt(p.curr_items)
                    ),
                    Err(e) => println!("!! {} values on {}: {e}", size_name(size), k.name()),
                }
                row.push((k, r));
            }
            rows.push((size, row));
        }
        report.push_str(
            "\n**Peak RSS / ceiling by value size**: a fresh server per size with `-m 64 -I 1m`, \
             written with distinct 14 B keys until 3 × 64 MiB of key + value bytes had been sent.\n\n",
        );
        report.push_str("| value size | keys written |");
        for k in &kinds {
            report.push_str(&format!(
                " {0} peak RSS MiB | {0} RSS / ceiling | {0} items kept |",
                k.name()
            ));
        }
        report.push_str("\n|---:|---:|");
        for _ in &kinds {
            report.push_str("---:|---:|---:|");
        }
        report.push('\n');
        for (size, row) in &rows {
            let keys = (3 * CEILING).div_ceil(KEY_LEN + size);
            report.push_str(&format!("| {} | {} |", size_name(*size), grouped(keys)));
            for (_, r) in row {
                match r {
                    Ok(p) => report.push_str(&format!(
                        " {} | **{:.2}** | {}{} |",
                        mb(p.hwm),
                        p.hwm as f64 / CEILING as f64,
                        opt(p.curr_items),
                        if p.errors > 0 {
                            format!(" ({} write errors)", grouped(p.errors))
                        } else {
                            String::new()
                        }
                    )),
                    Err(e) => report.push_str(&format!(" failed: {e} | | |")),
                }
            }
            report.push('\n');
        }
    }

    if want("hitratio") {
        println!("\n== hit ratio of a read-through client, Zipf over 4,000,000 keys of 100 B");
        report.push_str(&hit_ratios(&kinds));
    }

    println!("\n{report}");
    let dir = common::report_dir();
    match std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("memory.md"), &report))
    {
        Ok(()) => println!("wrote {}", dir.join("memory.md").display()),
        Err(e) => println!("!! could not write {}: {e}", dir.display()),
    }
}
