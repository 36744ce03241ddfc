//! Stuck readers, side by side: what clients that ask for large values and
//! never read cost each server in resident memory.
//!
//! `cargo bench --bench stuck`: memcached and ferrocache with `-m 1024 -t 2
//! -c 4096`; 50 values of 1 MB stored; then N clients each send one `get`
//! naming 200 of them (the 50, four times over) and never read. After the
//! servers have written what the sockets take, the growth of resident
//! memory (VmRSS) since before the clients came is printed, for N = 300
//! and 600 (a fresh server each), with the ratio ferrocache/memcached.
//! Writes the table to `target/bench-report/stuck.md`.
//! `FC_BENCH_SERVERS`, `FC_MEMCACHED`, `FC_FERROCACHE` as for the load bench.

mod common;

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{grouped, Kind, Server};

const MIB: f64 = 1024.0 * 1024.0;
const VALUES: u64 = 50;
const VALUE_LEN: usize = 1_000_000;

struct Growth {
    clients: usize,
    before: u64,
    after: u64,
    hits_after: bool,
}

/// One server, `clients` stuck readers.
fn stuck(kind: Kind, clients: usize) -> io::Result<Growth> {
    let s = Server::start(kind, &["-m", "1024", "-t", "2", "-c", "4096"])?;
    let value = common::make_value(VALUE_LEN);
    let w = common::bulk_set(s.addr, "big:", 0..VALUES, &value, 1, 10)?;
    if w.stored != VALUES {
        return Err(io::Error::other(format!("stored {} of {VALUES}", w.stored)));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = s.status_bytes("VmRSS")?;
    let mut line = b"get".to_vec();
    for i in 0..200 {
        line.push(b' ');
        common::push_key(&mut line, "big:", i % VALUES);
    }
    line.extend_from_slice(b"\r\n");
    let mut readers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c = TcpStream::connect(s.addr)?;
        c.write_all(&line)?;
        readers.push(c);
    }
    // the servers write what the sockets take, then wait
    std::thread::sleep(Duration::from_secs(3));
    let after = s.status_bytes("VmRSS")?;
    // others are still served
    let r = common::bulk_get(s.addr, "big:", 0..1, 1, 1, 1)?;
    drop(readers);
    Ok(Growth {
        clients,
        before,
        after,
        hits_after: r.hits == 1,
    })
}

fn main() {
    let machine = common::machine_info();
    println!("stuck readers benchmark — {machine}");
    let mut report = format!(
        "### Stuck readers (`cargo bench --bench stuck`)\n\n{machine}.\n\n\
         Both servers `-m 1024 -t 2 -c 4096`, 50 values of 1 MB stored; N clients each send \
         one `get` of 200 of them and never read. RSS growth = VmRSS after the servers wrote \
         what the sockets take, less VmRSS before the clients came.\n\n\
         | clients | server | RSS before MiB | RSS growth MiB | per client KiB | served others | growth ferrocache / memcached |\n\
         |---:|---|---:|---:|---:|---|---:|\n"
    );
    for clients in [300, 600] {
        let mut rows: Vec<(Kind, Growth)> = Vec::new();
        for kind in Kind::selected() {
            match stuck(kind, clients) {
                Ok(g) => {
                    let grown = g.after.saturating_sub(g.before);
                    println!(
                        "   {:<10} {} clients: RSS {:.1} → {:.1} MiB (+{:.1} MiB, {:.0} KiB per client){}",
                        kind.name(),
                        grouped(g.clients as u64),
                        g.before as f64 / MIB,
                        g.after as f64 / MIB,
                        grown as f64 / MIB,
                        grown as f64 / 1024.0 / clients as f64,
                        if g.hits_after { "" } else { ", NOT serving others" }
                    );
                    rows.push((kind, g));
                }
                Err(e) => println!("!! {} with {clients} clients: {e}", kind.name()),
            }
        }
        let growth = |k: Kind| {
            rows.iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, g)| g.after.saturating_sub(g.before) as f64)
        };
        let ratio = match (growth(Kind::Ferrocache), growth(Kind::Memcached)) {
            (Some(f), Some(m)) if m > 0.0 => format!("{:.2}", f / m),
            _ => "—".into(),
        };
        for (i, (kind, g)) in rows.iter().enumerate() {
            let grown = g.after.saturating_sub(g.before) as f64;
            report.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:.0} | {} | {} |\n",
                grouped(clients as u64),
                kind.name(),
                g.before as f64 / MIB,
                grown / MIB,
                grown / 1024.0 / clients as f64,
                if g.hits_after { "yes" } else { "no" },
                if i == 0 { ratio.as_str() } else { "" }
            ));
        }
    }
    let path = common::report_dir().join("stuck.md");
    match std::fs::write(&path, &report) {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => println!("!! {}: {e}", path.display()),
    }
}
