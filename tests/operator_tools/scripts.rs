//! The operators' scripts and programs: Debian's memcached-tool (display,
//! stats, settings, dump), libmemcached's memcstat, and damemtop.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::tools::require;
use crate::common::{stat_u64, temp_path, Conn, Server};

const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";
const DAMEMTOP: &str = "/usr/share/memcached/scripts/damemtop";
const MEMCSTAT: &str = "/usr/bin/memcstat";

fn perl_tool(path: &str) -> bool {
    Path::new(path).exists()
        && Command::new("perl")
            .args(["-c", path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

// ------------------------------------------------------ memcached-tool

fn tool(server: &Server, args: &[&str]) -> (String, String) {
    let addr = server.tcp_addr().to_string();
    let out = Command::new("perl")
        .arg(MEMCACHED_TOOL)
        .arg(&addr)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run memcached-tool");
    assert!(
        out.status.success(),
        "memcached-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn have_tool() -> bool {
    require(MEMCACHED_TOOL, perl_tool(MEMCACHED_TOOL), "memcached perl")
}

fn load_items(c: &mut Conn) {
    c.roundtrip("set a 1 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("set b 2 0 2\r\nyy\r\n", "STORED\r\n");
    c.roundtrip("set odd%key:1 3 0 3\r\nzzz\r\n", "STORED\r\n");
    let big = "B".repeat(3000);
    c.roundtrip(format!("set big 4 0 3000\r\n{big}\r\n"), "STORED\r\n");
    c.roundtrip("set ttl 5 1000 2\r\ntt\r\n", "STORED\r\n");
}

fn tool_display(server: &Server) {
    if !have_tool() {
        return;
    }
    load_items(&mut server.connect());
    let (out, _) = tool(server, &["display"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("  #  Item_Size  Max_age   Pages   Count   Full?  Evicted Evict_Time OOM")
    );
    let mut total = 0;
    for row in lines {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 9, "{row}");
        let id: u32 = cols[0].parse().expect("class id");
        assert!(id >= 1);
        assert!(cols[1].ends_with('B') || cols[1].ends_with('K'), "{row}");
        total += cols[4].parse::<u64>().expect("count");
        assert_eq!(cols[6], "0", "evicted");
    }
    assert_eq!(total, 5, "{out}");
}
both!(tool_display, &[]);

fn tool_stats_and_settings(server: &Server) {
    if !have_tool() {
        return;
    }
    load_items(&mut server.connect());
    let field = |out: &str, name: &str| -> String {
        out.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("{name} missing from {out}"))
    };
    let (stats, _) = tool(server, &["stats"]);
    assert!(stats.starts_with(&format!("#{}", server.tcp_addr())));
    assert_eq!(field(&stats, "curr_items"), "5");
    assert_eq!(field(&stats, "cmd_set"), "5");
    let (settings, _) = tool(server, &["settings"]);
    assert_eq!(field(&settings, "lru_crawler"), "yes");
    assert_eq!(field(&settings, "maxbytes"), "67108864");
    let (sizes, _) = tool(server, &["sizes"]);
    assert_eq!(field(&sizes, "sizes_status"), "disabled");
}
both!(tool_stats_and_settings, &[]);

/// `dump` lists every item as an `add` command that reloads it: fed to a
/// fresh server, the same keys, flags and values come back.
fn tool_dump_reloads(server: &Server) {
    if !have_tool() {
        return;
    }
    let mut c = server.connect();
    load_items(&mut c);
    let (out, err) = tool(server, &["dump"]);
    assert!(err.contains("Dumping memcache contents"), "{err}");
    for want in [
        "add a 1 0 1\r\nx\r\n",
        "add b 2 0 2\r\nyy\r\n",
        "add odd%key:1 3 0 3\r\nzzz\r\n",
    ] {
        assert!(out.contains(want), "{want:?} not in {out:?}");
    }
    assert!(out.contains(&format!("add big 4 0 3000\r\n{}\r\n", "B".repeat(3000))));
    let now = stat_u64(&c.stats(""), "time");
    let ttl_line = out
        .lines()
        .find(|l| l.starts_with("add ttl 5 "))
        .expect("ttl item");
    let exp: u64 = ttl_line.split(' ').nth(3).unwrap().parse().unwrap();
    assert!((now + 990..=now + 1001).contains(&exp), "{ttl_line}");

    let fresh = Server::ferrocache(&[]);
    let mut f = fresh.connect();
    f.send(&out);
    for _ in 0..5 {
        f.expect("STORED\r\n");
    }
    assert_eq!(f.gets("a").0, 1);
    assert_eq!(f.gets("odd%key:1").1, b"zzz");
    assert_eq!(f.gets("big").1, "B".repeat(3000).as_bytes());
    assert_eq!(f.gets("ttl").0, 5);
}
both!(tool_dump_reloads, &[]);

// ------------------------------------------------------- memcstat, damemtop

fn memcstat_reads_stats(server: &Server) {
    if !require(MEMCSTAT, Path::new(MEMCSTAT).exists(), "libmemcached-tools") {
        return;
    }
    load_items(&mut server.connect());
    let addr = server.tcp_addr();
    let out = Command::new(MEMCSTAT)
        .arg(format!("--servers={addr}"))
        .output()
        .expect("run memcstat");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("Server: {} ({})", addr.ip(), addr.port())),
        "{text}"
    );
    assert!(text.contains("\tcurr_items: 5\n"), "{text}");
    assert!(text.contains("\tversion: 1.6.18"), "{text}");
}
both!(memcstat_reads_stats, &[]);

/// damemtop (a terminal UI) polls `stats` of both servers side by side; it
/// needs a terminal, so it runs under `script`.
#[test]
fn damemtop_shows_both_servers() {
    let script = Path::new("/usr/bin/script");
    if !require(
        DAMEMTOP,
        perl_tool(DAMEMTOP) && script.exists(),
        "memcached libanyevent-perl libyaml-perl libterm-readkey-perl bsdutils",
    ) {
        return;
    }
    let ferro = Server::ferrocache(&[]);
    let reference = crate::common::memcached_or_skip(&[]);
    load_items(&mut ferro.connect());
    let home = temp_path("damemtop-home");
    std::fs::create_dir_all(home.join(".damemtop")).unwrap();
    let mut servers = vec![ferro.tcp_addr().to_string()];
    if let Some(r) = &reference {
        servers.push(r.tcp_addr().to_string());
    }
    // damemtop ignores --config and reads ~/.damemtop/damemtop.yaml
    let yaml = format!(
        "delay: 1\nmode: t\ntop_mode:\n    sort_column: \"hostname\"\n    sort_order: \"asc\"\n    \
         columns:\n        - hostname\n        - all_version\n        - curr_items\n        \
         - bytes_written\nservers:\n{}",
        servers
            .iter()
            .map(|s| format!("    - {s}\n"))
            .collect::<String>()
    );
    std::fs::write(home.join(".damemtop/damemtop.yaml"), yaml).unwrap();
    let out = Command::new("timeout")
        .args([
            "6",
            "script",
            "-qfc",
            &format!("stty cols 200 rows 40; perl {DAMEMTOP}"),
            "/dev/null",
        ])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .expect("run damemtop");
    let _ = std::fs::remove_dir_all(&home);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let row = |addr: &str| {
        text.lines()
            .rev()
            .find(|l| l.starts_with(addr))
            .unwrap_or_else(|| panic!("no row for {addr} in {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // curr_items and bytes_written are shown as numbers (damemtop shows
    // counters as per-second rates)
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == ',');
    let f = row(&servers[0]);
    assert_eq!(f[1], "1.6.18", "{f:?}");
    assert!(numeric(&f[2]) && numeric(&f[3]), "{f:?}");
    if let Some(addr) = servers.get(1) {
        let m = row(addr);
        assert_eq!(m[1], "1.6.18", "{m:?}");
        assert!(numeric(&m[2]) && numeric(&m[3]), "{m:?}");
    }
}
