//! UDP: memcached's 8-byte frame header around text requests and replies.
//!
//! Owns running the requests of one datagram and the reply size bound.
//! Must not hold connection state: every datagram stands alone.

use crate::command::{self, Context, Flow};
use crate::protocol::admin::LruCrawler;
use crate::protocol::{self, Limits, Request};

/// memcached's UDP reply payload per datagram.
pub(super) const UDP_PAYLOAD: usize = 1400;
/// A datagram's replies stop at this many bytes (plus one value): a
/// multi-get that would go past it answers `SERVER_ERROR out of memory
/// writing get response` instead, so one datagram cannot make the server
/// build hundreds of MB of reply (and send them to a forged source).
const UDP_REPLY_MAX: usize = 8 * 1024 * 1024;

/// Runs every whole request of one datagram.
pub(super) fn udp_execute(
    ctx: &Context<'_>,
    mut payload: &[u8],
    limits: &Limits,
    out: &mut Vec<u8>,
) {
    while !payload.is_empty() {
        match protocol::parse(payload, limits) {
            Ok((req, consumed)) => {
                if matches!(
                    req,
                    Request::Watch { .. } | Request::LruCrawler(LruCrawler::Metadump(_))
                ) {
                    // memcached sends no usable answer to these over UDP
                    payload = &payload[consumed.min(payload.len())..];
                    continue;
                }
                let start = out.len();
                // A multi-get pauses once the output holds UDP_REPLY_MAX: a
                // 1.4 KB datagram naming one 1 MB value 700 times asked for
                // 700 MB of reply.
                if let Flow::Paused(_) = command::execute(ctx, &req, 0, out, UDP_REPLY_MAX) {
                    out.truncate(start);
                    out.extend_from_slice(b"SERVER_ERROR out of memory writing get response\r\n");
                }
                payload = &payload[consumed.min(payload.len())..];
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    /// A datagram's replies are bounded: a multi-get whose reply would pass
    /// UDP_REPLY_MAX answers an error instead (before, one 1.4 KB datagram
    /// took the server to 662 MiB resident at -m 64), and the requests
    /// around it are answered.
    #[test]
    fn a_udp_reply_is_bounded() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let value = vec![b'u'; 1_000_000];
        let mut set = format!("set b 0 0 {}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        let mut out = Vec::new();
        udp_execute(&ctx, &set, &shared.limits, &mut out);
        assert_eq!(out, b"STORED\r\n");
        let one = format!("VALUE b 0 {}\r\n", value.len());
        // a reply under the limit is whole
        out.clear();
        udp_execute(&ctx, b"get b b b\r\n", &shared.limits, &mut out);
        assert_eq!(out.len(), 3 * (one.len() + value.len() + 2) + 5);
        assert!(out.ends_with(b"\r\nEND\r\n"));
        // one past it is refused, and the requests around it answered
        let many = format!("get{}\r\n", " b".repeat(690));
        let payload = format!("get nope\r\n{many}version\r\n");
        out.clear();
        udp_execute(&ctx, payload.as_bytes(), &shared.limits, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("END\r\nSERVER_ERROR out of memory writing get response\r\nVERSION "),
            "{:?}",
            &text[..text.len().min(200)]
        );
        assert!(
            out.capacity() < 2 * (UDP_REPLY_MAX + value.len()),
            "{}",
            out.capacity()
        );
    }
}
