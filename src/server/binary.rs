//! The request loop of a connection that speaks the binary protocol, and
//! the binary requests of one UDP datagram.
//!
//! Owns where a binary connection's input stands between turns (a refused
//! value being thrown away), which of its replies memcached would have
//! sent before a bad frame closes the connection, and under `-S` where it
//! stands with SASL (its exchange, whether it is authenticated, the
//! `auth_*` counters). Must not touch the socket or the buffers' memory,
//! nor parse or encode a byte itself: frames are
//! `protocol::binary::parse`'s, replies its `BinaryReply`'s, executing is
//! `command::execute`'s and the SASL exchange `crate::sasl`'s.

use log::debug;

use super::buf::{ReadBuf, WriteBuf, OUT_LIMIT};
use super::pipeline::{Step, Turn};
use crate::command::{self, Context, Flow};
use crate::protocol::binary::{self, Action, BinaryReply, Frame, FrameError, Gate, SaslAnswer};
use crate::protocol::{Limits, Reply, Response, Splices};
use crate::sasl::{Outcome, SaslConn};
use crate::stats::bump;

/// A binary connection's state between turns.
#[derive(Default)]
pub(super) struct BinaryConn {
    /// Bytes of a refused value (or of memcached's over-long swallow) still
    /// to throw away.
    swallow: usize,
    /// Under `-S`: where the connection stands with SASL.
    sasl: Option<SaslState>,
}

/// A connection's SASL exchange under `-S`.
#[derive(Default)]
struct SaslState {
    /// Made at the first SASL request, as memcached does.
    conn: Option<SaslConn>,
    authenticated: bool,
}

impl BinaryConn {
    /// A binary connection; `sasl`: the server runs with `-S`.
    pub(super) fn new(sasl: bool) -> BinaryConn {
        BinaryConn {
            swallow: 0,
            sasl: sasl.then(SaslState::default),
        }
    }

    /// Parses and executes the buffered frames, as `Pipeline::process`
    /// does for text.
    pub(super) fn process(
        &mut self,
        input: &mut ReadBuf,
        output: &mut WriteBuf,
        turn: &mut Turn<'_, '_>,
    ) -> Step {
        let mut did = false;
        // Replies up to here are as good as sent: memcached sends what it
        // has when its input runs out (which is where a turn starts) and
        // after a `noop` or most errors. The rest it loses when a bad
        // frame closes the connection.
        let mut sent = output.len();
        loop {
            if self.swallow > 0 {
                self.swallow = input.skip(self.swallow);
                if self.swallow > 0 {
                    return ran(did);
                }
            }
            if input.is_empty() {
                return ran(did);
            }
            if output.pending() >= OUT_LIMIT {
                return Step::Executed;
            }
            if turn.budget == 0 {
                return Step::Yield;
            }
            let gate = match &self.sasl {
                None => Gate::Open,
                Some(s) if s.authenticated => Gate::Authenticated,
                Some(_) => Gate::Locked,
            };
            let frame = match binary::parse_gated(input.unread(), turn.limits, gate) {
                Ok(frame) => frame,
                Err(FrameError::Incomplete) => return ran(did),
                Err(FrameError::Close) => {
                    debug!(
                        "connection {}: not a binary request frame, closing",
                        turn.fd
                    );
                    output.truncate(sent);
                    return Step::Close;
                }
            };
            turn.budget -= 1;
            did = true;
            let consumed = frame.consumed;
            let (close, flushes) = match (&frame.action, &mut self.sasl) {
                (Action::SaslList | Action::SaslAuth { .. }, Some(sasl)) => {
                    (false, sasl.answer(turn.ctx, &frame, output.replies()))
                }
                _ => {
                    let (out, splices) = output.parts();
                    answer(turn.ctx, &frame, out, Some(splices))
                }
            };
            if close || flushes {
                sent = output.len();
            }
            self.swallow = input.skip(consumed);
            if close {
                return Step::Close;
            }
        }
    }
}

/// The loop stopped for input: with replies to write if it executed any.
fn ran(did: bool) -> Step {
    if did {
        Step::Executed
    } else {
        Step::NeedInput
    }
}

/// Answers one frame into `out`: whether to close the connection after
/// it, and whether memcached would send its stacked replies now.
fn answer(
    ctx: &Context<'_>,
    frame: &Frame<'_>,
    out: &mut Vec<u8>,
    splices: Option<&mut Splices>,
) -> (bool, bool) {
    match &frame.action {
        Action::Execute(req) => {
            let mut reply = BinaryReply::new(out, frame.header, frame.key);
            if let Some(splices) = splices {
                // a large value is sent from the cache itself
                reply = reply.spliced(splices);
            }
            // one key, or a stats listing: nothing pauses
            let flow = command::execute(ctx, req, None, &mut reply, usize::MAX);
            (flow == Flow::Close, reply.flushes())
        }
        Action::Refuse {
            status,
            close,
            flushes,
        } => {
            binary::encode_refusal(out, &frame.header, *status);
            (*close, *flushes)
        }
        Action::Quit => {
            BinaryReply::new(out, frame.header, frame.key).respond(&Response::Ok);
            (true, true)
        }
        // only under -S, which `SaslState::answer` serves
        Action::SaslList | Action::SaslAuth { .. } => {
            binary::encode_refusal(out, &frame.header, binary::Status::UnknownCommand);
            (false, true)
        }
    }
}

impl SaslState {
    /// Answers a SASL frame into `out`, as memcached does: every SASL
    /// request first drops the connection's authentication, a refused
    /// attempt counts in `auth_cmds` and `auth_errors`, an accepted one in
    /// `auth_cmds`. Returns whether memcached sends its replies now.
    fn answer(&mut self, ctx: &Context<'_>, frame: &Frame<'_>, out: &mut Vec<u8>) -> bool {
        self.authenticated = false;
        if self.conn.is_none() {
            self.conn = SaslConn::new();
        }
        let mut reply = BinaryReply::new(out, frame.header, frame.key);
        let w = ctx.worker;
        let outcome = match (&frame.action, self.conn.as_mut()) {
            (Action::SaslList, Some(conn)) => {
                match conn.mechanisms() {
                    Some(list) => reply.sasl(SaslAnswer::Mechanisms(&list)),
                    None => reply.sasl(SaslAnswer::Failed),
                }
                return reply.flushes();
            }
            (Action::SaslAuth { mech, data, step }, Some(conn)) => {
                if *step {
                    conn.step(data)
                } else {
                    conn.start(mech, data)
                }
            }
            _ => Outcome::Failed,
        };
        match outcome {
            Outcome::Done => {
                self.authenticated = true;
                bump(&w.auth_cmds, 1);
                reply.sasl(SaslAnswer::Authenticated);
            }
            Outcome::Continue(challenge) => reply.sasl(SaslAnswer::Continue(&challenge)),
            Outcome::Failed => {
                bump(&w.auth_cmds, 1);
                bump(&w.auth_errors, 1);
                reply.sasl(SaslAnswer::Failed);
            }
        }
        reply.flushes()
    }
}

/// Runs the binary frames of one UDP datagram, calling `send` with each
/// frame's reply (memcached sends each in datagrams of its own); stops at
/// an incomplete frame or one that would close a connection.
pub(super) fn udp_execute(
    ctx: &Context<'_>,
    mut payload: &[u8],
    limits: &Limits,
    out: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]),
) {
    while let Ok(frame) = binary::parse(payload, limits) {
        out.clear();
        // a datagram copies its value
        let (close, _) = answer(ctx, &frame, out, None);
        if !out.is_empty() {
            send(out);
        }
        if close || frame.consumed > payload.len() {
            return;
        }
        payload = &payload[frame.consumed..];
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::{drive, Conn};
    use super::super::testing::*;
    use super::super::transport::{Script, Stream};

    /// A binary set frame: `key`, flags 0, a `vlen`-byte value announced
    /// (only `sent` bytes of it included).
    fn set_frame(key: &[u8], vlen: usize, sent: usize) -> Vec<u8> {
        let mut f = vec![0x80, 0x01];
        f.extend_from_slice(&(key.len() as u16).to_be_bytes());
        f.extend_from_slice(&[8, 0, 0, 0]);
        f.extend_from_slice(&((8 + key.len() + vlen) as u32).to_be_bytes());
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(key);
        f.extend(std::iter::repeat_n(b'v', sent));
        f
    }

    fn conn_of(chunks: Vec<Vec<u8>>) -> Conn {
        let script = Script {
            chunks: chunks.into(),
            eof: false,
            written: Vec::new(),
            room: usize::MAX,
        };
        Conn::new(Stream::Script(script), 0)
    }

    fn written(c: &Conn) -> &[u8] {
        match &c.stream {
            Stream::Script(s) => &s.written,
            _ => unreachable!(),
        }
    }

    /// A value over -I is thrown away as it arrives: the read buffer
    /// never holds more than a read's worth of it, however long it is;
    /// one that fits is buffered whole, and no more.
    #[test]
    fn buffers_hold_one_frame_at_most() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0), -1);
        let vlen = 8 << 20;
        let mut chunks = vec![set_frame(b"big", vlen, 0)];
        chunks.extend((0..vlen / 65_536).map(|_| vec![b'v'; 65_536]));
        let noop = {
            let mut n = vec![0x80, 0x0a];
            n.extend_from_slice(&[0; 22]);
            n
        };
        chunks.push(noop.clone());
        let mut c = conn_of(Vec::new());
        let mut most = 0;
        for chunk in chunks {
            if let Stream::Script(s) = &mut c.stream {
                s.chunks.push_back(chunk);
            }
            c.readable = true;
            drive(&mut c, &ctx, &shared.limits);
            most = most.max(c.input.allocated());
        }
        assert!(most <= 256 * 1024, "read buffer grew to {most} bytes");
        let out = written(&c);
        assert_eq!(&out[..2], &[0x81, 0x01]);
        assert_eq!(&out[6..8], &[0, 3], "too large");
        assert_eq!(&out[out.len() - 24..out.len() - 22], &[0x81, 0x0a]);

        // a value that fits: buffered whole, then given back
        let fits = 1_000_000;
        let mut frame = set_frame(b"one", fits, fits);
        frame.extend_from_slice(&noop);
        let pieces: Vec<Vec<u8>> = frame.chunks(100_000).map(<[u8]>::to_vec).collect();
        let mut c = conn_of(Vec::new());
        let mut most = 0;
        for piece in pieces {
            if let Stream::Script(s) = &mut c.stream {
                s.chunks.push_back(piece);
            }
            c.readable = true;
            drive(&mut c, &ctx, &shared.limits);
            most = most.max(c.input.allocated());
        }
        assert!(most >= fits, "the frame is parsed in place");
        assert!(
            most <= 2 * (fits + 24 + 11),
            "read buffer grew to {most} bytes"
        );
        let out = written(&c);
        assert_eq!((&out[..2], &out[6..8]), (&[0x81, 0x01][..], &[0, 0][..]));
        assert_eq!(out.len(), 48, "the set's and the noop's replies");
        assert!(c.input.allocated() <= 64 * 1024, "given back once idle");
    }
}
