//! Security defaults of the spawned binary: no UDP without `-U`, only
//! loopback without `-l`, `-u` drops root, and a hash seed per process.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::is_root;
use crate::common::tools::free_port;

use super::Spawned;

/// Without `-U` the process holds no UDP socket, and a datagram to its
/// port gets no answer.
#[test]
fn udp_off_without_flag() {
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(&["-u", "root", "-p", &p], port);
    let inodes = server.socket_inodes();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(
                f.len() < 10 || !inodes.contains(f[9]),
                "ferrocache holds a UDP socket without -U: {line}"
            );
        }
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let frame = [0u8, 1, 0, 0, 0, 1, 0, 0];
    let mut req = frame.to_vec();
    req.extend_from_slice(b"version\r\n");
    let _ = sock.send_to(&req, ("127.0.0.1", port));
    let mut buf = [0u8; 1500];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a UDP reply came without -U"
    );
}

/// Without `-l`, every listening socket is on 127.0.0.1.
#[test]
fn default_listen_is_loopback() {
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(&["-u", "root", "-p", &p, "-U", "0"], port);
    let inodes = server.socket_inodes();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st 0A = LISTEN
            if f.len() >= 10 && f[3] == "0A" && inodes.contains(f[9]) {
                listening.push((table, f[1].to_string()));
            }
        }
    }
    assert!(!listening.is_empty(), "no listening socket found");
    for (table, local) in &listening {
        assert_eq!(
            (*table, local.as_str()),
            ("/proc/net/tcp", format!("0100007F:{port:04X}").as_str()),
            "listening beyond loopback by default"
        );
    }
}

/// Started as root with `-u nobody`, the process runs as nobody (user,
/// group, no supplementary groups).
#[test]
fn user_flag_drops_root() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root; -u is only used by root");
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(
        &["-u", "nobody", "-l", "127.0.0.1", "-p", &p, "-U", "0"],
        port,
    );
    let uid = server.status_field("Uid:");
    let gid = server.status_field("Gid:");
    let groups = server.status_field("Groups:");
    assert!(
        uid.split_whitespace().all(|u| u == "65534"),
        "Uid: {uid} (want nobody's 65534 everywhere)"
    );
    assert!(
        gid.split_whitespace().all(|g| g != "0"),
        "Gid: {gid} (still root's group)"
    );
    assert!(
        groups.split_whitespace().all(|g| g != "0"),
        "Groups: {groups}"
    );
    // And it serves.
    let mut c = server.connect();
    c.roundtrip("set u 0 0 1\r\n1\r\n", "STORED\r\n");
}

/// Keys in the order `lru_crawler metadump all` lists them (shard by
/// shard, so by hash).
fn dump_order(server: &Spawned, keys: &[String]) -> Vec<String> {
    let mut c = server.connect();
    for k in keys {
        c.roundtrip(format!("set {k} 0 0 1\r\nx\r\n"), "STORED\r\n");
    }
    c.send("lru_crawler metadump all\r\n");
    let mut order = Vec::new();
    loop {
        let line = c.read_line();
        if line == b"END\r\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let key = text
            .strip_prefix("key=")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("metadump line {text:?}"));
        order.push(key.to_string());
    }
    order
}

/// The hash that places keys is seeded per process: the same keys written
/// in the same order to two processes land in a different order of shards
/// (with a fixed seed, someone who knows it could choose keys that all
/// collide). 64 keys over 32 shards: the same order by chance is out of
/// the question.
#[test]
fn hash_seed_differs_per_process() {
    let keys: Vec<String> = (0..64).map(|i| format!("seed-{i}")).collect();
    let orders: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let server = Spawned::start(&["-m", "64", "-t", "4"]);
            dump_order(&server, &keys)
        })
        .collect();
    for order in &orders {
        let mut sorted = order.clone();
        sorted.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(sorted, want, "metadump lists every key once");
    }
    assert_ne!(
        orders[0], orders[1],
        "two processes placed 64 keys identically: the hash is not seeded per process"
    );
}
