//! ferrocache: a memcached-compatible cache server.
//!
//! ```text
//!             accept thread (server/listen: mio Poll over TCP listeners, unix socket)
//!                  │ accepted stream, over crossbeam-channel + mio::Waker
//!                  ▼
//!    worker 1 … worker N   (server/worker; -t N, each its own mio Poll and connections)
//!      server/transport  Stream: plain TCP | unix | TLS (server/tls, rustls)
//!           │ bytes into server/buf ReadBuf
//!           ▼
//!      server/pipeline: the first byte picks the codec (0x80: binary, -B)
//!           → protocol::text::parse | protocol::binary::parse (borrow the read buffer) → Request
//!           → command::execute (generic over a protocol::Reply sink)
//!                → storage::Cache (sharded)        → outcome values
//!           → protocol::text::TextReply | protocol::binary::BinaryReply → WriteBuf → transport
//!             (a large value is not copied: the reply holds it in the cache, pinned,
//!              and WriteBuf sends it from there with the bytes around it in one writev)
//!                                         ▲
//!    clock thread (server/mod): ticks the coarse clock; each tick the expirer
//!    sweeps a bounded slice of every shard (never the whole table at once)
//!
//!    metrics thread (server/metrics, only with -o metrics_listen): GET /metrics
//!      → command::stats::snapshot → protocol::metrics (memcached_exporter's names)
//! ```
//!
//! A request never crosses a thread on its way through: the accept thread only
//! hands sockets over, and the worker that owns a connection parses, executes
//! and answers it. UDP datagrams (server/udp) take the same path.
//!
//! Modules, lowest first; a module imports only those listed before it:
//!
//! | module | owns |
//! |---|---|
//! | `cnum` | C-style number readers and the decimal writer (memcached's rules) |
//! | `clock` | coarse seconds; exptime → deadline |
//! | `auth` | the `-Y` file: entries, reload, constant-time check |
//! | `sasl` | `-S`: Cyrus SASL's libsasl2 loaded at run time, one exchange per connection |
//! | `config` | memcached's flags → a typed [`Config`], refusals with its words |
//! | `process` | root and `-u`, daemonizing, pid file, signals, rlimits |
//! | `storage` | index, segments of packed records, byte accounting, eviction, expiry, crawler |
//! | `tls` | the `-Z` context: certificate, key and CAs, rustls settings, refresh, TLS counters |
//! | `stats` | counters and buffer gauges, per worker, summed on read; sampled service times and most read keys (`stats/keys`) |
//! | `protocol` | every byte on the wire: `Request`, outcome values, the `Reply` sink; the text+meta codec in `protocol/text`, the binary one in `protocol/binary`; the `stats` lines (`protocol/stats`) and the Prometheus exposition (`protocol/metrics`) |
//! | `watch` | the `watch` log streams (memcached's logger) |
//! | `command` | `Request` → cache calls → outcome values; never writes bytes |
//! | `server` | listeners, workers, connections and their buffers, transports, UDP, limits, drain |
//!
//! The binary protocol is a second codec beside `protocol/text` (its own
//! parser and its own `Reply` sink; `command` is shared), chosen per
//! connection in `server/pipeline`. TLS is one more `Transport`
//! (`server/tls`), its handshake driven inside the worker's event loop,
//! made from the context in `tls`.

pub mod auth;
pub mod clock;
mod cnum;
pub mod command;
pub mod config;
pub mod process;
pub mod protocol;
pub mod sasl;
pub mod server;
pub mod stats;
pub mod storage;
pub mod tls;
pub mod watch;

pub use config::Config;
pub use server::{start, ServerHandle};
