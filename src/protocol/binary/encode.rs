//! The binary codec's encoder: what `command` answers, as memcached
//! 1.6.18's response frames.
//!
//! Owns every reply byte of the binary protocol: the response header
//! (opcode and opaque echoed, the item's cas), which status each outcome
//! earns for each opcode, quiet-mode silence (a quiet opcode's success is
//! not sent, its errors are), what a retrieval's miss looks like, the
//! `stat` frames and their empty terminator. Must not decide outcomes.

use std::fmt::Display;
use std::io::Write;

use super::{opcode, Header, Status, HEADER_LEN, RESPONSE_MAGIC};
use crate::protocol::{splice, Failure, MetaReply, Reply, Response, Shared, Splices};

/// What a SASL request came to, for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslAnswer<'a> {
    /// The mechanisms on offer, separated by spaces.
    Mechanisms(&'a [u8]),
    Authenticated,
    /// Another step is needed: the server's challenge.
    Continue(&'a [u8]),
    /// Refused, or the library failed.
    Failed,
}

/// The reply sink of one binary request, appending to `out`.
pub struct BinaryReply<'o, 'k> {
    out: &'o mut Vec<u8>,
    header: Header,
    /// The opcode without its quiet form.
    loud: u8,
    quiet: bool,
    /// The request's key: a GETK/GATK miss sends it back.
    key: &'k [u8],
    /// The unique of the item the request wrote, for a success's header.
    cas: u64,
    /// A retrieval found its item.
    hit: bool,
    /// memcached sends its stacked replies right after this one.
    flushes: bool,
    /// Where values held in the cache go among `out`'s bytes, when the
    /// sink sends them from there (see [`crate::protocol::splice`]).
    splices: Option<&'o mut Splices>,
}

impl<'o, 'k> BinaryReply<'o, 'k> {
    pub fn new(out: &'o mut Vec<u8>, header: Header, key: &'k [u8]) -> BinaryReply<'o, 'k> {
        let (loud, quiet) = header.loud();
        BinaryReply {
            out,
            header,
            loud,
            quiet,
            key,
            cas: 0,
            hit: false,
            flushes: false,
            splices: None,
        }
    }

    /// The same sink, sending values held in the cache from there:
    /// `splices` says where they go among the output's bytes.
    pub fn spliced(mut self, splices: &'o mut Splices) -> BinaryReply<'o, 'k> {
        self.splices = Some(splices);
        self
    }

    /// The reply to a SASL request, as memcached words it.
    pub fn sasl(&mut self, answer: SaslAnswer<'_>) {
        match answer {
            SaslAnswer::Mechanisms(list) => self.success(list),
            SaslAnswer::Authenticated => self.success(b"Authenticated"),
            SaslAnswer::Continue(challenge) => {
                let n = challenge.len();
                head(self.out, &self.header, Status::AuthContinue, 0, 0, n, 0);
                self.out.extend_from_slice(challenge);
                // memcached sends a challenge at once
                self.flushes = true;
            }
            SaslAnswer::Failed => self.error(Status::AuthError),
        }
    }

    /// Whether memcached would have sent every stacked reply right after
    /// this request's (a `noop`, most errors): replies it has sent are
    /// not lost when a bad frame later closes the connection.
    pub fn flushes(&self) -> bool {
        self.flushes
    }

    /// A success: nothing for a quiet opcode.
    fn success(&mut self, body: &[u8]) {
        if self.quiet {
            return;
        }
        let cas = self.cas;
        head(
            self.out,
            &self.header,
            Status::NoError,
            0,
            0,
            body.len(),
            cas,
        );
        self.out.extend_from_slice(body);
    }

    /// An error, with memcached's text for it; sent even when quiet.
    fn error(&mut self, status: Status) {
        write_error(self.out, &self.header, status);
        // memcached throws away a value refused for its size or memory
        // before it goes on, and sends nothing meanwhile
        let swallowed =
            status == Status::TooLarge || (status == Status::OutOfMemory && self.stores());
        self.flushes |= !swallowed;
    }

    fn stores(&self) -> bool {
        matches!(
            self.loud,
            opcode::SET | opcode::ADD | opcode::REPLACE | opcode::APPEND | opcode::PREPEND
        )
    }

    /// A retrieval's hit: flags as extras, the key for the K forms, the
    /// value except for `touch`: from `shared` when it holds the value in
    /// the cache and the sink splices, else copied.
    fn value(&mut self, key: &[u8], flags: u32, data: &[u8], cas: u64, shared: Option<Shared>) {
        self.hit = true;
        let key: &[u8] = match self.loud {
            opcode::GETK | opcode::GATK => key,
            _ => b"",
        };
        let data: &[u8] = if self.loud == opcode::TOUCH {
            b""
        } else {
            data
        };
        let body = 4 + key.len() + data.len();
        head(
            self.out,
            &self.header,
            Status::NoError,
            4,
            key.len(),
            body,
            cas,
        );
        self.out.extend_from_slice(&flags.to_be_bytes());
        self.out.extend_from_slice(key);
        match (shared, self.splices.as_deref_mut()) {
            (Some(v), Some(splices)) if !data.is_empty() => {
                debug_assert_eq!(v.as_ref().as_ref().len(), data.len());
                splices.push(self.out.len(), v);
            }
            _ => self.out.extend_from_slice(data),
        }
    }

    /// The end of a retrieval (a miss, when nothing was found) or of a
    /// `stat` listing (its empty terminator frame).
    fn end(&mut self) {
        if self.loud == opcode::STAT {
            if self.key.starts_with(b"detail dump") {
                // memcached sends the (text) prefix dump as one stat
                self.stat(&"detailed", &"END\r\n");
            }
            head(self.out, &self.header, Status::NoError, 0, 0, 0, 0);
            return;
        }
        if self.hit || self.quiet {
            return;
        }
        match self.loud {
            // the key comes back instead of the text, and memcached does
            // not send at once
            opcode::GETK | opcode::GATK => {
                let n = self.key.len();
                head(self.out, &self.header, Status::KeyNotFound, 0, n, n, 0);
                self.out.extend_from_slice(self.key);
            }
            _ => self.error(Status::KeyNotFound),
        }
    }

    /// What "not stored" is for each opcode: memcached names an add's and
    /// a replace's failures by their cause.
    fn not_stored(&self) -> Status {
        match self.loud {
            opcode::ADD => Status::KeyExists,
            opcode::REPLACE => Status::KeyNotFound,
            _ => Status::NotStored,
        }
    }
}

impl Reply for BinaryReply<'_, '_> {
    fn respond(&mut self, r: &Response<'_>) {
        match *r {
            Response::Value {
                key,
                flags,
                data,
                cas,
            } => self.value(key, flags, data, cas.unwrap_or(0), None),
            Response::End => self.end(),
            Response::Stored
            | Response::Deleted
            | Response::Touched
            | Response::Ok
            | Response::Reset => self.success(b""),
            Response::MetaNoop => {
                self.success(b"");
                self.flushes = true;
            }
            Response::Number(n) => self.success(&n.to_be_bytes()),
            Response::Version(v) => self.success(v.as_bytes()),
            Response::NotStored => self.error(self.not_stored()),
            Response::Exists => self.error(Status::KeyExists),
            Response::NotFound => self.error(Status::KeyNotFound),
            Response::Fault(_) if self.loud == opcode::STAT => self.error(Status::KeyNotFound),
            Response::Fault(_) => self.error(Status::InvalidArguments),
            Response::Failure(f) => self.error(failure_status(f)),
            // the operator dumps, `me` and `refresh_certs` are text
            // commands only
            Response::CachedumpItem { .. }
            | Response::MetadumpItem(_)
            | Response::MetaDebug(_)
            | Response::CertRefreshFailed(_) => {}
        }
    }

    /// Meta commands are text only: nothing.
    fn meta(&mut self, _r: &MetaReply<'_>) {}

    /// One `stat` frame: the name as key, the value as value.
    fn stat(&mut self, name: &dyn Display, value: &dyn Display) {
        let at = self.out.len();
        head(self.out, &self.header, Status::NoError, 0, 0, 0, 0);
        // writing into a Vec cannot fail
        let _ = write!(self.out, "{name}");
        let key_len = self.out.len() - at - HEADER_LEN;
        let _ = write!(self.out, "{value}");
        let body = self.out.len() - at - HEADER_LEN;
        let key_len = u16::try_from(key_len).unwrap_or(u16::MAX);
        self.out[at + 2..at + 4].copy_from_slice(&key_len.to_be_bytes());
        let body = u32::try_from(body).unwrap_or(u32::MAX);
        self.out[at + 8..at + 12].copy_from_slice(&body.to_be_bytes());
    }

    fn item_cas(&mut self, cas: u64) {
        self.cas = cas;
    }

    fn takes_shared(&self) -> bool {
        self.splices.is_some()
    }

    fn respond_shared(&mut self, r: &Response<'_>, value: Shared) {
        match *r {
            Response::Value {
                key,
                flags,
                data,
                cas,
            } => self.value(key, flags, data, cas.unwrap_or(0), Some(value)),
            _ => self.respond(r),
        }
    }

    fn len(&self) -> usize {
        splice::output_len(self.out, self.splices.as_deref())
    }

    fn truncate(&mut self, len: usize) {
        splice::truncate_output(self.out, self.splices.as_deref_mut(), len);
    }
}

/// The status memcached's binary protocol gives each failure.
fn failure_status(f: Failure) -> Status {
    match f {
        Failure::TooLarge => Status::TooLarge,
        Failure::NoMemoryStoring | Failure::NoMemory => Status::OutOfMemory,
        Failure::NonNumeric => Status::NonNumeric,
        // memcached's answer to a flush under -F
        Failure::FlushDisabled => Status::AuthError,
        Failure::StatsDetailUsage => Status::KeyNotFound,
        _ => Status::InvalidArguments,
    }
}

/// An error frame: the status and memcached's text for it.
fn write_error(out: &mut Vec<u8>, header: &Header, status: Status) {
    let text = status.message();
    head(out, header, status, 0, 0, text.len(), 0);
    out.extend_from_slice(text);
}

/// The error frame of a request the parser refused.
pub fn encode_refusal(out: &mut Vec<u8>, header: &Header, status: Status) {
    write_error(out, header, status);
}

/// A response header.
fn head(
    out: &mut Vec<u8>,
    req: &Header,
    status: Status,
    extlen: u8,
    keylen: usize,
    bodylen: usize,
    cas: u64,
) {
    let keylen = u16::try_from(keylen).unwrap_or(u16::MAX);
    let bodylen = u32::try_from(bodylen).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + bodylen as usize);
    out.push(RESPONSE_MAGIC);
    out.push(req.opcode);
    out.extend_from_slice(&keylen.to_be_bytes());
    out.push(extlen);
    out.push(0); // data type: raw bytes
    out.extend_from_slice(&(status as u16).to_be_bytes());
    out.extend_from_slice(&bodylen.to_be_bytes());
    out.extend_from_slice(&req.opaque);
    out.extend_from_slice(&cas.to_be_bytes());
}
