//! The two servers the load benchmark drives, started with the same flags
//! (`-m 1024 -t 2`): plain, or with TLS on their `-p` port and a plain
//! port beside it; ferrocache also serving `/metrics`, scraped every second
//! by a thread of the benchmark, when `FC_BENCH_SCRAPE` is set.

use std::time::Duration;

use super::tls::BenchTls;
use super::{Kind, Server};

/// `GET /metrics` once a second until the process ends, as Prometheus would.
fn scrape_forever(port: u16) {
    use std::io::{Read, Write};
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ =
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}

/// Both servers (`-m 1024 -t 2`), with `tls` on their `-p` port and a
/// plain port beside it.
pub fn start_servers(tls: Option<&BenchTls>) -> Vec<(Kind, Option<Server>, Option<String>)> {
    let mut servers = Vec::new();
    for kind in Kind::selected() {
        let mut args: Vec<String> = ["-m", "1024", "-t", "2"].map(String::from).to_vec();
        let scrape = (kind == Kind::Ferrocache && std::env::var_os("FC_BENCH_SCRAPE").is_some())
            .then(|| super::free_port().ok())
            .flatten();
        if let Some(port) = scrape {
            args.extend(["-o".into(), format!("metrics_listen=127.0.0.1:{port}")]);
        }
        let mut plain = None;
        if let Some(tls) = tls {
            let port = super::free_port().unwrap_or(0);
            args.extend(tls.server_args(port));
            plain = Some(port);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match Server::start_with_plain(kind, &args, plain) {
            Ok(s) => {
                let what = match tls.map(|t| t.negotiated(s.addr)) {
                    Some(Ok(how)) => format!(" ({how})"),
                    Some(Err(e)) => format!(" (TLS handshake failed: {e})"),
                    None => String::new(),
                };
                println!(
                    "started {}{what} (pid {}) on {}",
                    kind.name(),
                    s.pid(),
                    s.addr
                );
                if let Some(port) = scrape {
                    println!("   scraping its /metrics on port {port} every second");
                    std::thread::spawn(move || scrape_forever(port));
                }
                servers.push((kind, Some(s), None));
            }
            Err(e) => {
                println!("!! {} not started: {e}", kind.name());
                servers.push((kind, None, Some(format!("did not start: {e}"))));
            }
        }
    }
    servers
}
