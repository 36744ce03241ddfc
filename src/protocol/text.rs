//! memcached's text protocol, meta commands included: the codec the
//! server speaks today. [`parse`] turns bytes into [`Request`]s; a
//! [`TextReply`] turns what `command` answers into bytes.
//!
//! Owns the text wire format, both ways: the parser (`parse`, with the meta
//! and operator commands' syntax in [`crate::protocol::meta`] and
//! [`crate::protocol::admin`]) and the encoder (`encode`: every reply line,
//! memcached's strings for each [`crate::protocol::Fault`] and
//! [`crate::protocol::Failure`], and the `-vv` summary). Must not know
//! sockets, storage or time.
//!
//! [`Request`]: crate::protocol::Request

mod auth;
mod encode;
mod parse;

pub use auth::{parse_auth, AuthAttempt, AUTH_MAX_DATA, AUTH_MAX_LINE};

pub(super) use encode::push_decimal;
pub use encode::{
    encode, failure_line, fault_line, write_uriencoded, yes_no, Logged, Summary, TextReply,
};
pub(super) use parse::{error, invalid, next_token, BAD_FORMAT};
pub use parse::{parse, unfinished_line};
