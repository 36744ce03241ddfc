//! The request loop: the requests waiting in a connection's read buffer,
//! parsed and executed in order, their replies appended to its write buffer.
//!
//! Owns where a connection's requests stand between turns (a value being
//! thrown away, a multi-get paused at the output limit, replies stacked,
//! whether `-Y` still wants a token), memcached's pipelining refusal, the
//! -R budget, and [`Step`], what a turn comes to. Must not touch the socket, the poller or the buffers' memory:
//! it reads from a [`ReadBuf`] and appends to a [`WriteBuf`]; parsing is
//! `protocol::parse` and executing is `command::execute`.

use std::sync::Arc;

use log::{debug, trace};

use super::binary::BinaryConn;
use super::buf::{ReadBuf, WriteBuf, OUT_LIMIT};
use super::verbose::{log_reply, log_request};
use crate::auth::Authenticator;
use crate::command::{self, Context, Flow, Resume};
use crate::protocol::text::{parse_auth, AuthAttempt, Logged};
use crate::protocol::{
    self, Failure, Keys, Limits, ParseError, Reply, Request, Response, TextReply,
};
use crate::stats::bump;

/// How far serving a connection got, and what comes next: one type for
/// both levels of a connection's turn. The request loop
/// ([`Pipeline::process`]) ends with `Executed`, `NeedInput`, `Yield`,
/// `Close` or `Watch`; the whole turn (`conn::drive`) ends with `Wait`,
/// `Yield`, `Close` or `Watch`, which the worker acts on.
pub(super) enum Step {
    /// Requests were executed: write their replies, then go on.
    Executed,
    /// Nothing buffered is left to execute (or the next request is not all
    /// here): read more.
    NeedInput,
    /// Nothing more can be done without blocking (nothing to read, or the
    /// replies are over their limit): wait for the socket's next event.
    Wait,
    /// The request budget (-R) is used up with work left: let the worker's
    /// other connections have their turn first.
    Yield,
    /// Close the connection: from the request loop (`quit`, a command line
    /// too long), once its replies are written; from `drive`, now.
    Close,
    /// The connection sent `watch`: register it as a watcher of this mask.
    Watch(u32),
}

/// What one run of the request loop works with, besides the buffers.
pub(super) struct Turn<'t, 'a> {
    pub(super) ctx: &'t Context<'a>,
    pub(super) limits: &'t Limits,
    /// The connection's descriptor, for the logs.
    pub(super) fd: i32,
    /// Requests this turn may still execute (-R).
    pub(super) budget: usize,
}

/// Where a connection's requests stand between turns.
#[derive(Default)]
pub(super) struct Pipeline {
    /// Bytes of a too-large value still to throw away.
    swallow: usize,
    /// Where the multi-get or dump at the front of the input goes on (see
    /// [`Flow::Paused`]); `None` when no request is paused.
    resume: Option<Resume>,
    /// The paused multi-get itself, so that resuming it does not parse its
    /// line again (up to 2 MiB, thousands of times for a large reply).
    paused: Option<Resumable>,
    /// Replies of earlier pipelined requests are still stacked, in
    /// memcached's terms: it sends a connection's replies when its input
    /// runs out and after a get (`get`, `gets`, `gat`, `gats`), `mn` or a
    /// dump, and refuses a `watch` or `lru_crawler metadump` that comes
    /// while others wait.
    stacked: bool,
    /// `-vv` has logged the connection's protocol (memcached's `fd: Client
    /// using the ascii protocol`, at its first command).
    announced: bool,
    /// Under `-Y`, until a token is accepted: the entries to check tokens
    /// against. While set, the input is read as authentication attempts
    /// (`protocol::text::parse_auth`), not requests.
    pub(super) locked: Option<Arc<Authenticator>>,
    /// The protocol the connection speaks, decided by its first byte.
    codec: Codec,
}

/// A connection's protocol: `-B auto` decides by the first byte (0x80:
/// binary, as memcached), `-B ascii` and `-B binary` by themselves.
#[derive(Default)]
enum Codec {
    #[default]
    Undecided,
    Text,
    Binary(BinaryConn),
}

impl Pipeline {
    /// A multi-get is half answered: its reply goes on once the client
    /// has read what it has.
    pub(super) fn is_paused(&self) -> bool {
        self.resume.is_some()
    }

    /// The paused request's length in the input (tests).
    #[cfg(test)]
    pub(super) fn paused_len(&self) -> Option<usize> {
        self.paused.map(|p| p.consumed)
    }

    /// Parses and executes buffered requests.
    pub(super) fn process(
        &mut self,
        input: &mut ReadBuf,
        output: &mut WriteBuf,
        turn: &mut Turn<'_, '_>,
    ) -> Step {
        if !matches!(self.codec, Codec::Text) {
            if let Some(step) = self.binary(input, output, turn) {
                return step;
            }
        }
        let mut did = false;
        // Where this turn's last answer to an authentication attempt
        // starts in the output (see `authenticate`).
        let mut auth_reply_at: Option<usize> = None;
        loop {
            if self.swallow > 0 {
                self.swallow = input.skip(self.swallow);
                if self.swallow > 0 {
                    return ran(did);
                }
            }
            if input.is_empty() {
                self.stacked = false;
                return ran(did);
            }
            if output.pending() >= OUT_LIMIT {
                return Step::Executed;
            }
            if turn.budget == 0 {
                return Step::Yield;
            }
            if self.locked.is_some() {
                match self.authenticate(input, output, turn, &mut auth_reply_at) {
                    None => {
                        did = true;
                        continue;
                    }
                    Some(Step::NeedInput) => return ran(did),
                    Some(step) => return step,
                }
            }
            let bytes = input.unread();
            let (req, consumed) = match self.next_request(input, turn.limits) {
                Ok(r) => r,
                Err(ParseError::Incomplete) => {
                    self.stacked = false;
                    input.note_incomplete();
                    return ran(did);
                }
                Err(ParseError::LineTooLong) => {
                    debug!("connection {}: command line too long, closing", turn.fd);
                    return Step::Close;
                }
            };
            turn.budget -= 1;
            did = true;
            let debug = log::log_enabled!(log::Level::Debug);
            if debug && self.resume.is_none() {
                log_request(turn.fd, &mut self.announced, bytes);
            }
            let flow = self.execute(&req, output, turn, debug);
            match flow {
                Flow::Paused(at) => {
                    trace!(
                        "{}: reply paused at {} bytes, resuming at {:?}",
                        turn.fd,
                        output.len(),
                        at
                    );
                    self.resume = Some(at);
                    if self.paused.is_none() {
                        self.paused = Resumable::of(&req, bytes, consumed);
                    }
                    return Step::Executed;
                }
                Flow::Watch(mask) => {
                    // nothing after `watch` is executed: drop the rest of the input
                    self.resume = None;
                    self.paused = None;
                    input.discard();
                    return Step::Watch(mask);
                }
                Flow::Done | Flow::Close => {
                    self.resume = None;
                    self.paused = None;
                    self.swallow = input.skip(consumed);
                    if flow == Flow::Close {
                        return Step::Close;
                    }
                }
            }
        }
    }

    /// The codec hook: decides the connection's protocol from its first
    /// byte, and runs the binary request loop (`super::binary`) for a
    /// binary connection; `None` for a text one, whose loop is the
    /// caller's. The text path pays one comparison per turn for this.
    fn binary(
        &mut self,
        input: &mut ReadBuf,
        output: &mut WriteBuf,
        turn: &mut Turn<'_, '_>,
    ) -> Option<Step> {
        if let Codec::Undecided = self.codec {
            let first = *input.unread().first()?;
            let binary = match turn.ctx.config.binding_protocol.as_str() {
                "ascii" => false,
                // memcached reads whatever comes as binary, and closes
                // the connection at a bad magic byte
                "binary" => true,
                _ => first == crate::protocol::binary::REQUEST_MAGIC,
            };
            self.codec = if binary {
                debug!("connection {}: binary protocol", turn.fd);
                Codec::Binary(BinaryConn::new(turn.ctx.config.sasl))
            } else {
                Codec::Text
            };
        }
        match &mut self.codec {
            Codec::Binary(conn) => Some(conn.process(input, output, turn)),
            _ => None,
        }
    }

    /// One authentication attempt from the front of `input`, answered as
    /// memcached 1.6.18 answers it: `None` when it was consumed and
    /// answered (go on with the input), `Some(Step::NeedInput)` when more
    /// input is needed, `Some(Step::Close)` to close the connection.
    ///
    /// memcached writes each answer to an attempt into the same response
    /// object until the connection's replies are sent, so of several
    /// attempts pipelined in one read only the last answer reaches the
    /// client (`get a\r\nget b\r\n` gets one `CLIENT_ERROR
    /// unauthenticated`; a refused command before a good token gets only
    /// `STORED`). `reply_at` keeps where the turn's last answer starts, so
    /// that the next one replaces it. `noreply` is not honoured here.
    fn authenticate(
        &mut self,
        input: &mut ReadBuf,
        output: &mut WriteBuf,
        turn: &mut Turn<'_, '_>,
        reply_at: &mut Option<usize>,
    ) -> Option<Step> {
        let (attempt, consumed) = match parse_auth(input.unread()) {
            Ok(r) => r,
            Err(ParseError::Incomplete) => return Some(Step::NeedInput),
            Err(ParseError::LineTooLong) => {
                debug!(
                    "connection {}: authentication data too long, closing",
                    turn.fd
                );
                return Some(Step::Close);
            }
        };
        turn.budget -= 1;
        let w = turn.ctx.worker;
        let answer = match attempt {
            AuthAttempt::NotAToken => Response::Failure(Failure::Unauthenticated),
            AuthAttempt::BadTermination => Response::Failure(Failure::AuthBadTermination),
            AuthAttempt::BadFormat => Response::Failure(Failure::AuthBadFormat),
            AuthAttempt::Token { user, pass } => {
                bump(&w.auth_cmds, 1);
                if self.locked.as_ref().is_some_and(|a| a.check(user, pass)) {
                    self.locked = None;
                    Response::Stored
                } else {
                    bump(&w.auth_errors, 1);
                    Response::Failure(Failure::AuthFailure)
                }
            }
        };
        input.skip(consumed);
        let replies = output.replies();
        match *reply_at {
            Some(at) if at <= replies.len() => replies.truncate(at),
            _ => *reply_at = Some(replies.len()),
        }
        TextReply::new(replies).respond(&answer);
        None
    }

    /// The request at the front of `input` and its length: a paused
    /// multi-get again without parsing its line, or a parse, which is not
    /// even tried while the line is known to be still arriving.
    fn next_request<'b>(
        &self,
        input: &'b ReadBuf,
        limits: &Limits,
    ) -> Result<(Request<'b>, usize), ParseError> {
        let bytes = input.unread();
        match self.paused {
            Some(p) if self.resume.is_some() && p.consumed <= bytes.len() => {
                Ok((p.request(bytes), p.consumed))
            }
            _ if input.line_unfinished() => Err(protocol::unfinished_line(bytes)),
            _ => protocol::parse(bytes, limits),
        }
    }

    /// Executes one request, its reply appended to `output`, or answers
    /// memcached's pipelining refusal instead; `-vv` logs the reply.
    fn execute(
        &mut self,
        req: &Request<'_>,
        output: &mut WriteBuf,
        turn: &Turn<'_, '_>,
        debug: bool,
    ) -> Flow {
        let (ctx, fd) = (turn.ctx, turn.fd);
        let refused = self.refuses(req, ctx);
        self.stacked = refused || !req.sends_replies();
        if !debug {
            // the hot path: the text codec straight into the write buffer,
            // large values sent from the cache itself
            let (bytes, splices) = output.parts();
            let mut out = TextReply::spliced(bytes, splices);
            return self.run(req, refused, ctx, &mut out);
        }
        // -vv: the same through a sink that records what memcached logs
        // (and copies values: debug logging is not the fast path).
        // A `noreply` request runs with its reply on, into a scratch
        // buffer, so that its outcome is logged as memcached logs it
        // (`>fd NOREPLY STORED`); the client still gets nothing.
        match req.with_reply().filter(|_| !refused) {
            Some(loud) => {
                let mut scratch = Vec::new();
                let mut out = Logged::new(&mut scratch);
                let flow = self.run(&loud, false, ctx, &mut out);
                log_reply(fd, ctx, &loud, &out.summary, "NOREPLY ");
                flow
            }
            None => {
                let mut out = Logged::new(output.replies());
                let flow = self.run(req, refused, ctx, &mut out);
                log_reply(fd, ctx, req, &out.summary, "");
                flow
            }
        }
    }

    /// The request's reply into `out`: the command's, or the refusal.
    fn run<R: Reply>(
        &self,
        req: &Request<'_>,
        refused: bool,
        ctx: &Context<'_>,
        out: &mut R,
    ) -> Flow {
        match req.pipelining_refusal().filter(|_| refused) {
            Some(failure) => {
                out.respond(&Response::Failure(failure));
                Flow::Done
            }
            None => command::execute(ctx, req, self.resume, out, OUT_LIMIT),
        }
    }

    /// Whether memcached refuses `req` because replies it has not sent yet
    /// are stacked (see [`Request::pipelining_refusal`]), after its own
    /// checks of -W, or of the crawler's state and -X; a dump already
    /// under way goes on.
    fn refuses(&self, req: &Request<'_>, ctx: &Context<'_>) -> bool {
        if !self.stacked || req.pipelining_refusal().is_none() {
            return false;
        }
        match req {
            Request::Watch { .. } => !ctx.config.disable_watch,
            _ => {
                self.resume.is_none() && ctx.cache.crawler_enabled() && !ctx.config.disable_dumping
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

/// A multi-get paused at its output limit, as offsets into the unread
/// input, which stays in place until the request is done.
#[derive(Debug, Clone, Copy)]
struct Resumable {
    /// The request's bytes (its whole line).
    consumed: usize,
    keys_at: usize,
    keys_len: usize,
    /// `gat`/`gats`: the exptime.
    exptime: Option<i64>,
    with_cas: bool,
}

impl Resumable {
    fn of(req: &Request<'_>, input: &[u8], consumed: usize) -> Option<Resumable> {
        let (keys, exptime, with_cas) = req.retrieval()?;
        let raw = keys.raw();
        let keys_at = (raw.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
        if keys_at.checked_add(raw.len())? > consumed.min(input.len()) {
            return None;
        }
        Some(Resumable {
            consumed,
            keys_at,
            keys_len: raw.len(),
            exptime,
            with_cas,
        })
    }

    fn request<'a>(&self, input: &'a [u8]) -> Request<'a> {
        let keys = Keys::new(&input[self.keys_at..self.keys_at + self.keys_len]);
        Request::retrieval_of(keys, self.exptime, self.with_cas)
    }
}
