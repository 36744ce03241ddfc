//! The tools operators point at memcached, pointed at ferrocache: Debian's
//! memcached-tool (display, stats, settings, sizes, dump), libmemcached's
//! memcstat, damemtop; and the commands behind them: `lru_crawler`
//! (metadump, crawl, its switches), `watch` log streams, and `-vv` logging.
//!
//! Replies that must be byte-identical run as transcripts against both
//! servers; where ferrocache legitimately differs (`size=` is its own item
//! size, timestamps, descriptors) the tests parse and compare the rest.
//! Outside tools missing from the machine skip loudly (and fail under CI).
//!
//! By topic: `crawler.rs` (`lru_crawler`, metadump, crawl), `watch.rs`
//! (`watch` log streams), `verbose.rs` (`-vv` logging), `scripts.rs`
//! (memcached-tool, memcstat, damemtop), `slabs.rs` (`slabs`, `stats
//! cachedump`). This file holds what several of them use.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod crawler;
mod scripts;
mod slabs;
mod verbose;
mod watch;

use std::collections::HashMap;
use std::os::unix::io::AsRawFd;

use common::Conn;

type Table = &'static [(&'static [u8], &'static [u8])];

/// `key=… exp=… …` → field map.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split(' ')
        .map(|f| {
            f.split_once('=')
                .unwrap_or_else(|| panic!("field {f:?} in {line:?}"))
        })
        .collect()
}

fn num(f: &HashMap<&str, &str>, name: &str) -> i64 {
    f[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name}={} is not a number", f[name]))
}

/// memcached's LRU maintainer starts crawls of its own (at start-up and
/// as items come and go), which make a requested crawl or dump `BUSY` or
/// `ERROR an unknown error happened` for a moment: off for the crawler
/// transcripts (ferrocache accepts the option and has no such thread).
const NO_AUTOCRAWL: &[&str] = &["-o", "no_lru_maintainer"];

/// A fixed 64 KiB receive buffer (no autotuning), so a client that does
/// not read fills up soon. (Smaller than the loopback MSS, TCP's
/// silly-window avoidance would make even a reading client crawl.)
fn small_rcvbuf(conn: &Conn) {
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket we own, with a valid int option.
    let r = unsafe {
        libc::setsockopt(
            conn.tcp().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF");
}
