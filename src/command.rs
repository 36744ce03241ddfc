//! The one place that joins protocol and storage: a parsed
//! [`Request`](crate::protocol::Request) becomes cache calls and replies.
//!
//! Must not touch a socket.
