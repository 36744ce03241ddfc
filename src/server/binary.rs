//! The request loop of a connection that speaks the binary protocol, and
//! the binary requests of one UDP datagram.
//!
//! Owns where a binary connection's input stands between turns (a refused
//! value being thrown away) and which of its replies memcached would have
//! sent before a bad frame closes the connection. Must not touch the
//! socket or the buffers' memory, nor parse or encode a byte itself:
//! frames are `protocol::binary::parse`'s, replies its `BinaryReply`'s,
//! and executing is `command::execute`'s.

use log::debug;

use super::buf::{ReadBuf, WriteBuf, OUT_LIMIT};
use super::pipeline::{Step, Turn};
use crate::command::{self, Context, Flow};
use crate::protocol::binary::{self, Action, BinaryReply, Frame, FrameError};
use crate::protocol::{Limits, Reply, Response};

/// A binary connection's state between turns.
#[derive(Default)]
pub(super) struct BinaryConn {
    /// Bytes of a refused value (or of memcached's over-long swallow) still
    /// to throw away.
    swallow: usize,
}

impl BinaryConn {
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
            let frame = match binary::parse(input.unread(), turn.limits) {
                Ok(frame) => frame,
                Err(FrameError::Incomplete) => return ran(did),
                Err(FrameError::Close) => {
                    debug!(
                        "connection {}: not a binary request frame, closing",
                        turn.fd
                    );
                    output.replies().truncate(sent);
                    return Step::Close;
                }
            };
            turn.budget -= 1;
            did = true;
            let consumed = frame.consumed;
            let (close, flushes) = answer(turn.ctx, &frame, output.replies());
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
fn answer(ctx: &Context<'_>, frame: &Frame<'_>, out: &mut Vec<u8>) -> (bool, bool) {
    match &frame.action {
        Action::Execute(req) => {
            let mut reply = BinaryReply::new(out, frame.header, frame.key);
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
        let (close, _) = answer(ctx, &frame, out);
        if !out.is_empty() {
            send(out);
        }
        if close || frame.consumed > payload.len() {
            return;
        }
        payload = &payload[frame.consumed..];
    }
}
