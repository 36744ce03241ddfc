//! Counters (per worker, summed on read) and the `stats` replies.
//!
//! Must not do I/O.
