//! UDP: memcached's 8-byte frame header around text and binary requests
//! and replies.
//!
//! Owns a worker's share of the UDP sockets (every worker reads all of
//! them), the frame header, running the requests of one datagram, the reply
//! size bound and cutting a reply into datagrams. Must not hold connection
//! state: every datagram stands alone.

use std::io;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use log::{debug, error};
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use crate::command::{self, Context, Flow};
use crate::protocol::{self, Failure, Limits, Reply, Response, TextReply};
use crate::stats::{bump, WorkerStats};

/// memcached's UDP reply payload per datagram.
const UDP_PAYLOAD: usize = 1400;
/// A datagram's replies stop at this many bytes (plus one value): a
/// multi-get that would go past it answers `SERVER_ERROR out of memory
/// writing get response` instead, so one datagram cannot make the server
/// build hundreds of MB of reply (and send them to a forged source).
const UDP_REPLY_MAX: usize = 8 * 1024 * 1024;

/// A worker's UDP sockets.
pub(super) struct Udp {
    sockets: Vec<UdpSocket>,
    /// One datagram's worth of receive space, kept for the worker's life
    /// (empty when UDP is off).
    buf: Vec<u8>,
}

impl Udp {
    /// This worker's handles on the bound `sockets`, the i-th registered
    /// with `registry` as `Token(first + i)`.
    pub(super) fn register(
        sockets: &[std::net::UdpSocket],
        registry: &Registry,
        first: usize,
    ) -> io::Result<Udp> {
        let mut udp = Vec::new();
        for (i, u) in sockets.iter().enumerate() {
            let mut s = UdpSocket::from_std(u.try_clone()?);
            registry.register(&mut s, Token(first + i), Interest::READABLE)?;
            udp.push(s);
        }
        Ok(Udp {
            buf: if udp.is_empty() {
                Vec::new()
            } else {
                vec![0u8; 65536]
            },
            sockets: udp,
        })
    }

    /// The descriptor of socket `i` (this worker's handle on it).
    pub(super) fn fd(&self, i: usize) -> i32 {
        self.sockets[i].as_raw_fd()
    }

    /// Answers every datagram waiting on socket `i`.
    pub(super) fn serve(&mut self, i: usize, ctx: &Context<'_>, limits: &Limits) {
        let worker = ctx.worker;
        let mut out = Vec::new();
        loop {
            let (n, peer) = match self.sockets[i].recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("udp recv: {}", e);
                    return;
                }
            };
            if n < 8 {
                continue;
            }
            bump(&worker.bytes_read, n as u64);
            let (hdr, payload) = self.buf[..n].split_at(8);
            let req_id = [hdr[0], hdr[1]];
            out.clear();
            if hdr[4] != 0 || hdr[5] != 1 {
                TextReply::new(&mut out).respond(&Response::Failure(Failure::UdpMultiPacket));
            } else if payload.first() == Some(&crate::protocol::binary::REQUEST_MAGIC) {
                // memcached reads every datagram starting with 0x80 as
                // binary, whatever -B says, and sends each frame's reply
                // in datagrams of its own
                let socket = &self.sockets[i];
                let r = catch_unwind(AssertUnwindSafe(|| {
                    super::binary::udp_execute(ctx, payload, limits, &mut out, |reply| {
                        send_reply(socket, req_id, reply, peer, worker)
                    })
                }));
                if r.is_err() {
                    error!("panic while serving a UDP request");
                    bump(&worker.worker_panics, 1);
                }
                continue;
            } else {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    udp_execute(ctx, payload, limits, &mut out)
                }));
                if r.is_err() {
                    error!("panic while serving a UDP request");
                    bump(&worker.worker_panics, 1);
                    continue;
                }
            }
            send_reply(&self.sockets[i], req_id, &out, peer, worker);
        }
    }
}

/// Sends `out` to `peer` in datagrams of up to `UDP_PAYLOAD` bytes, each
/// behind its frame header (request id, sequence number, total, reserved);
/// nothing when there is no reply or it would take more than 65,535.
fn send_reply(
    socket: &UdpSocket,
    req_id: [u8; 2],
    out: &[u8],
    peer: SocketAddr,
    worker: &WorkerStats,
) {
    if out.is_empty() {
        return;
    }
    let total = out.len().div_ceil(UDP_PAYLOAD);
    if total > u16::MAX as usize {
        return;
    }
    let mut dgram = Vec::with_capacity(UDP_PAYLOAD + 8);
    for (seq, chunk) in out.chunks(UDP_PAYLOAD).enumerate() {
        dgram.clear();
        dgram.extend_from_slice(&req_id);
        dgram.extend_from_slice(&(seq as u16).to_be_bytes());
        dgram.extend_from_slice(&(total as u16).to_be_bytes());
        dgram.extend_from_slice(&[0, 0]);
        dgram.extend_from_slice(chunk);
        match socket.send_to(&dgram, peer) {
            Ok(w) => bump(&worker.bytes_written, w as u64),
            Err(e) => {
                debug!("udp send: {}", e);
                break;
            }
        }
    }
}

/// Runs every whole request of one datagram.
fn udp_execute(ctx: &Context<'_>, mut payload: &[u8], limits: &Limits, out: &mut Vec<u8>) {
    while !payload.is_empty() {
        match protocol::parse(payload, limits) {
            Ok((req, consumed)) => {
                if req.streams() {
                    // memcached sends no usable answer to these over UDP
                    payload = &payload[consumed.min(payload.len())..];
                    continue;
                }
                let start = out.len();
                // A multi-get pauses once the output holds UDP_REPLY_MAX: a
                // 1.4 KB datagram naming one 1 MB value 700 times asked for
                // 700 MB of reply.
                let mut reply = TextReply::new(out);
                if let Flow::Paused(_) =
                    command::execute(ctx, &req, None, &mut reply, UDP_REPLY_MAX)
                {
                    reply.truncate(start);
                    reply.respond(&Response::Failure(Failure::ReplyNoMemory));
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
        let ctx = shared.context(shared.stats.worker(0), -1);
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
