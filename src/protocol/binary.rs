//! memcached's binary protocol (the "binary protocol revamped" frames that
//! memcached 1.6.18 still serves): 24-byte headers, big-endian fields,
//! request magic 0x80, response magic 0x81.
//!
//! Owns the binary wire format, both ways: [`parse`] turns one frame at
//! the front of the read buffer into a [`Frame`] (the codec-neutral
//! [`Request`](crate::protocol::Request) it asks for, or the refusal
//! memcached answers without executing anything), and [`BinaryReply`]
//! turns what `command` answers into response frames, echoing the
//! request's opcode, opaque and the item's cas. Must not know sockets,
//! storage or time, nor decide outcomes: the statuses a command can earn
//! come in as [`Response`](crate::protocol::Response) values.
//!
//! Opcodes and status codes are the protocol's published numbers; which
//! frames memcached accepts, what it answers and when it closes were
//! checked against memcached 1.6.18 byte for byte (`tests/binary_*.rs`).

mod encode;
mod parse;

pub use encode::{encode_refusal, BinaryReply, SaslAnswer};
pub use parse::{parse, parse_gated, Action, Frame, FrameError, Gate};

/// The first byte of every request frame; `-B auto` also reads it as
/// "this connection speaks binary".
pub const REQUEST_MAGIC: u8 = 0x80;
/// The first byte of every response frame.
pub const RESPONSE_MAGIC: u8 = 0x81;
/// Bytes in a request or response header.
pub const HEADER_LEN: usize = 24;
/// memcached's read buffer (16 KiB): a frame whose header, extras and key
/// do not fit in it is never read, and the connection is closed once the
/// buffer is full.
pub const MAX_HEAD: usize = 16 * 1024;

/// The opcodes memcached 1.6.18 answers (the quiet forms are the plain
/// ones that stay silent on success).
pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    /// Listed by the specification; memcached 1.6.18 answers it "Unknown
    /// command".
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;

    /// The loud form of a quiet opcode, and whether it was quiet.
    pub fn loud(op: u8) -> (u8, bool) {
        let loud = match op {
            SETQ => SET,
            ADDQ => ADD,
            REPLACEQ => REPLACE,
            DELETEQ => DELETE,
            INCREMENTQ => INCREMENT,
            DECREMENTQ => DECREMENT,
            QUITQ => QUIT,
            FLUSHQ => FLUSH,
            APPENDQ => APPEND,
            PREPENDQ => PREPEND,
            GETQ => GET,
            GETKQ => GETK,
            GATQ => GAT,
            GATKQ => GATK,
            other => return (other, false),
        };
        (loud, true)
    }
}

/// A response's status, with memcached's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    NoError = 0x00,
    KeyNotFound = 0x01,
    KeyExists = 0x02,
    TooLarge = 0x03,
    InvalidArguments = 0x04,
    NotStored = 0x05,
    NonNumeric = 0x06,
    /// memcached's numbers for the authentication statuses (0x20, 0x21),
    /// not the specification's (0x08, 0x09).
    AuthError = 0x20,
    AuthContinue = 0x21,
    UnknownCommand = 0x81,
    OutOfMemory = 0x82,
}

impl Status {
    /// The text memcached sends as an error's body.
    pub fn message(self) -> &'static [u8] {
        match self {
            Status::NoError | Status::AuthContinue => b"",
            Status::KeyNotFound => b"Not found",
            Status::KeyExists => b"Data exists for key.",
            Status::TooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::NotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }
}

/// The fields of a request header that its replies depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// As sent (the quiet form stays quiet in the reply's opcode).
    pub opcode: u8,
    /// Echoed as sent, byte for byte.
    pub opaque: [u8; 4],
    /// The request's cas field.
    pub cas: u64,
}

impl Header {
    /// The opcode without its quiet form, and whether it was quiet.
    pub fn loud(&self) -> (u8, bool) {
        opcode::loud(self.opcode)
    }
}
