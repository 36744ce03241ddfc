//! `-vv`: the request and reply lines memcached logs for each command.
//!
//! Owns what `-vv` logs of a request (`log_request`) and of its reply
//! (`log_reply`), and running a `noreply` request loud so its outcome can
//! be logged (`with_reply`). Must not change what the client receives.

use log::debug;

use crate::command::Context;
use crate::protocol::admin::{self as admin_proto, LruCrawler};
use crate::protocol::{self, Request};

/// `-vv`: the reply summary memcached logs after a request (`>fd END`,
/// `>fd sending key k`, `>fd NOREPLY STORED` with `prefix` "NOREPLY "); none
/// for `stats` or a metadump, and for the meta commands only what memcached
/// logs of theirs: `MN`, `me`'s `EN` and errors (their other replies are
/// not logged, nor, ever, a value's bytes). A cas refused because the item
/// changed is preceded by memcached's `CAS:  failure: expected <unique>,
/// got <unique>`.
pub(super) fn log_reply(fd: i32, ctx: &Context<'_>, req: &Request<'_>, reply: &[u8], prefix: &str) {
    let is_error = |r: &[u8]| {
        r.starts_with(b"ERROR") || r.starts_with(b"CLIENT_ERROR") || r.starts_with(b"SERVER_ERROR")
    };
    match req {
        Request::Stats { .. } | Request::LruCrawler(LruCrawler::Metadump(_)) => return,
        Request::MetaGet(_)
        | Request::MetaSet(_)
        | Request::MetaDelete(_)
        | Request::MetaArith(_)
            if !is_error(reply) =>
        {
            return
        }
        Request::MetaDebug { .. } if reply.starts_with(b"ME ") => return,
        Request::Store {
            mode: protocol::StoreMode::Cas,
            key,
            cas,
            ..
        } if reply == b"EXISTS\r\n" => {
            if let Some(meta) = ctx.cache.item_meta(key) {
                debug!("CAS:  failure: expected {}, got {}", meta.cas, cas);
            }
        }
        _ => {}
    }
    admin_proto::reply_summary(reply, |what, line| {
        debug!(
            ">{} {}{}{}",
            fd,
            prefix,
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(line)
        );
    });
}

/// `req` with its reply turned on, if it had `noreply`; `None` otherwise.
pub(super) fn with_reply<'a>(req: &Request<'a>) -> Option<Request<'a>> {
    let mut loud = req.clone();
    match &mut loud {
        Request::Store { noreply, .. }
        | Request::TooLarge { noreply, .. }
        | Request::Delete { noreply, .. }
        | Request::Arith { noreply, .. }
        | Request::Touch { noreply, .. }
        | Request::FlushAll { noreply, .. }
        | Request::Verbosity { noreply, .. }
        | Request::CacheMemlimit { noreply, .. }
        | Request::Invalid { noreply, .. }
            if *noreply =>
        {
            *noreply = false;
            Some(loud)
        }
        _ => None,
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
