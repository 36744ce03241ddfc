//! A real client library, the `memcache` crate in its ASCII mode, against
//! the server: what an application would see. Runs against ferrocache and
//! the reference memcached.

#[macro_use]
mod common;

use std::io::Write;

use memcache::{Client, CommandError, MemcacheError, Stream, ToMemcacheValue};

use common::Server;

fn client(server: &Server) -> Client {
    let url = format!("memcache://{}?protocol=ascii&timeout=5", server.tcp_addr());
    Client::builder()
        .add_server(url.as_str())
        .expect("url")
        .with_max_pool_size(2)
        .build()
        .unwrap_or_else(|e| panic!("memcache::Client for {url}: {e}"))
}

/// A value with chosen flags: the crate's own value types always send 0.
struct Flagged<'a>(&'a [u8], u32);

impl ToMemcacheValue<Stream> for Flagged<'_> {
    fn get_flags(&self) -> u32 {
        self.1
    }

    fn get_length(&self) -> usize {
        self.0.len()
    }

    fn write_to(&self, stream: &mut Stream) -> std::io::Result<()> {
        stream.write_all(self.0)
    }
}

fn crate_basics(server: &Server) {
    let c = client(server);
    let versions = c.version().expect("version");
    assert_eq!(versions.len(), 1);
    assert!(!versions[0].1.is_empty(), "empty version");

    // set / get, strings and numbers
    c.set("s", "hello", 0).unwrap();
    assert_eq!(c.get::<String>("s").unwrap().as_deref(), Some("hello"));
    assert_eq!(c.get::<String>("missing").unwrap(), None);
    c.set("n", 41u64, 100).unwrap();
    assert_eq!(c.get::<u64>("n").unwrap(), Some(41));

    // flags round-trip, including the largest
    for flags in [0, 1, 0xdead_beef, u32::MAX] {
        c.set("f", Flagged(b"\x00binary\r\n", flags), 0).unwrap();
        let got: Option<(Vec<u8>, u32)> = c.get("f").unwrap();
        assert_eq!(got, Some((b"\x00binary\r\n".to_vec(), flags)));
    }

    // add / replace: the crate maps NOT_STORED to Ok, so look at the value
    c.add("s", "other", 0).unwrap();
    assert_eq!(c.get::<String>("s").unwrap().as_deref(), Some("hello"));
    c.add("a", "added", 0).unwrap();
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("added"));
    c.replace("missing", "x", 0).unwrap();
    assert_eq!(c.get::<String>("missing").unwrap(), None);
    c.replace("a", "replaced", 0).unwrap();
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("replaced"));

    // append / prepend keep the flags
    c.set("ap", Flagged(b"mid", 77), 0).unwrap();
    c.append("ap", "end").unwrap();
    c.prepend("ap", "start").unwrap();
    let got: Option<(String, u32)> = c.get("ap").unwrap();
    assert_eq!(got, Some(("startmidend".to_string(), 77)));

    // incr / decr
    assert_eq!(c.increment("n", 1).unwrap(), 42);
    assert_eq!(c.decrement("n", 50).unwrap(), 0);
    assert_eq!(c.increment("n", u64::MAX).unwrap(), u64::MAX);
    assert_eq!(c.increment("n", 2).unwrap(), 1);
    match c.increment("nothere", 1) {
        Err(MemcacheError::CommandError(CommandError::KeyNotFound)) => {}
        other => panic!("incr of a missing key: {other:?}"),
    }
    match c.increment("s", 1) {
        Err(MemcacheError::ClientError(e)) => assert!(
            e.to_string().contains("non-numeric"),
            "incr of a string: {e}"
        ),
        other => panic!("incr of a string: {other:?}"),
    }

    // cas: with the unique from gets, then with the stale one
    let (_, _, cas): (String, u32, Option<u64>) = c.get("a").unwrap().expect("a");
    let cas = cas.expect("gets returns a cas unique");
    assert!(
        c.cas("a", "swapped", 0, cas).unwrap(),
        "cas with a fresh unique"
    );
    assert!(
        !c.cas("a", "stale", 0, cas).unwrap(),
        "cas with a stale unique"
    );
    assert!(
        !c.cas("missing", "x", 0, cas).unwrap(),
        "cas of a missing key"
    );
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("swapped"));

    // multi-key gets
    let many = c.gets::<String>(&["s", "a", "missing", "ap"]).unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(many["s"], "hello");
    assert_eq!(many["ap"], "startmidend");

    // touch
    assert!(c.touch("s", 1000).unwrap());
    assert!(!c.touch("missing", 1000).unwrap());

    // delete
    assert!(c.delete("s").unwrap());
    assert!(!c.delete("s").unwrap());
    assert_eq!(c.get::<String>("s").unwrap(), None);

    // a large value
    let big: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    c.set("big", big.as_slice(), 0).unwrap();
    assert_eq!(
        c.get::<Vec<u8>>("big").unwrap().as_deref(),
        Some(big.as_slice())
    );

    // flush
    c.flush().unwrap();
    assert_eq!(c.get::<String>("a").unwrap(), None);
    assert_eq!(c.get::<Vec<u8>>("big").unwrap(), None);
}
both!(crate_basics, &[]);

/// The crate over the unix socket.
fn crate_unix(server: &Server) {
    let url = format!("memcache://{}?protocol=ascii", server.unix_path().display());
    let c = Client::connect(url.as_str()).unwrap_or_else(|e| panic!("{url}: {e}"));
    c.set("u", "over unix", 0).unwrap();
    assert_eq!(c.get::<String>("u").unwrap().as_deref(), Some("over unix"));
    assert_eq!(c.increment("u2", 1).ok(), None);
}
mod crate_unix {
    fn args() -> Vec<String> {
        let path = crate::common::temp_path("crate.sock");
        vec!["-s".into(), path.to_str().unwrap().into()]
    }

    #[test]
    fn ferrocache() {
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        super::crate_unix(&crate::common::Server::ferrocache(&args));
    }

    #[test]
    fn memcached() {
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(server) = crate::common::memcached_or_skip(&args) {
            super::crate_unix(&server);
        }
    }
}
