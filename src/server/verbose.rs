//! `-vv`: the request and reply lines memcached logs for each command.
//!
//! Owns what `-vv` logs of a request (`log_request`) and of its reply
//! (`log_reply`, from the reply values the text codec's `Logged` sink
//! recorded, never from re-reading the bytes). Must not change what the
//! client receives.

use log::debug;

use crate::command::Context;
use crate::protocol::text::Summary;
use crate::protocol::{Request, Verbose};

/// `-vv`: the reply summary memcached logs after a request (`>fd END`,
/// `>fd sending key k`, `>fd NOREPLY STORED` with `prefix` "NOREPLY "); none
/// for `stats` or a metadump, and for the meta commands only what memcached
/// logs of theirs: `MN`, `me`'s `EN` and errors (their other replies are
/// not logged, nor, ever, a value's bytes). A cas refused because the item
/// changed is preceded by memcached's `CAS:  failure: expected <unique>,
/// got <unique>`.
pub(super) fn log_reply(
    fd: i32,
    ctx: &Context<'_>,
    req: &Request<'_>,
    reply: &Summary,
    prefix: &str,
) {
    match req.verbose() {
        Verbose::Nothing => return,
        Verbose::ErrorsOnly if !reply.error => return,
        _ => {}
    }
    if let (Some((key, cas)), true) = (req.cas_compare(), reply.exists) {
        if let Some(meta) = ctx.cache.item_meta(key) {
            debug!("CAS:  failure: expected {}, got {}", meta.cas, cas);
        }
    }
    for (what, line) in reply.lines() {
        debug!(
            ">{} {}{}{}",
            fd,
            prefix,
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(line)
        );
    }
}

/// `-vv`: the request line as it came (`<fd get k`), after memcached's `fd:
/// Client using the ascii protocol` at the connection's first command.
pub(super) fn log_request(fd: i32, announced: &mut bool, input: &[u8]) {
    if !*announced {
        *announced = true;
        debug!("{}: Client using the ascii protocol", fd);
    }
    let line_end = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    debug!(
        "<{} {}",
        fd,
        String::from_utf8_lossy(&input[..line_end]).trim_end()
    );
}
