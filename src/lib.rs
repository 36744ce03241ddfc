//! ferrocache: a memcached-compatible cache server.
//!
//! ```text
//!             accept thread (mio Poll: TCP listeners, unix socket)
//!                  │ accepted stream, over crossbeam-channel + mio::Waker
//!                  ▼
//!    worker 1 … worker N   (-t N; each its own mio Poll and its connections)
//!      read → protocol::parse (borrows the read buffer) → command::execute
//!           → storage::Cache (sharded) → protocol::encode → write buffer
//!                                         ▲
//!    clock thread: ticks the coarse clock; each tick the expirer sweeps a
//!    bounded slice of every shard (never the whole table at once)
//! ```
//!
//! A request never crosses a thread on its way through: the accept thread only
//! hands sockets over, and the worker that owns a connection parses, executes
//! and answers it.

pub mod auth;
pub mod clock;
mod cnum;
pub mod command;
pub mod config;
pub mod process;
pub mod protocol;
pub mod server;
pub mod stats;
pub mod storage;
pub mod watch;

pub use config::Config;
pub use server::{start, ServerHandle};
