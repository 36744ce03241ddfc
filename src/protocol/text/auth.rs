//! The `-Y` authentication token on the text protocol: what a connection
//! that has not authenticated yet sends, read as memcached 1.6.18 reads it.
//!
//! Owns the token's wire format: `set <key> <flags> <exptime> <bytes>
//! [anything]\r\n<user> <password>[ anything]\r\n`, of which only the word
//! `set`, the byte count and the two words of the data count. Must not know
//! the credentials (`crate::auth` checks them) or the connection's state.
//!
//! memcached's rules, observed on 1.6.18 and kept:
//! - Nothing is read before two bytes are there. The line ends at the
//!   first `\n` (a `\r` before it is left in the last token, where the byte
//!   count's reader stops at it). A line is looked for only in the first
//!   2048 bytes: past that without a newline, the connection is closed.
//! - Anything but `set` with at least five words and a byte count that
//!   `safe_strtoul` reads is not a token (`CLIENT_ERROR unauthenticated`),
//!   and only its line is consumed; what follows is read as the next
//!   attempt.
//! - The data block is exactly `bytes + 2` bytes; not ending in `\r\n` is
//!   `CLIENT_ERROR bad command line termination`, fewer than two words in
//!   it `CLIENT_ERROR bad authentication token format`. A block memcached's
//!   16 KiB read buffer cannot hold closes the connection (memcached would
//!   wait for it forever).

use super::parse::next_token;
use crate::cnum::safe_strtoul;
use crate::protocol::ParseError;

/// memcached looks for a newline in this many bytes before giving up on
/// the connection.
pub const AUTH_MAX_LINE: usize = 2048;

/// memcached's read buffer: a token's data block must fit in it, line
/// ends included.
pub const AUTH_MAX_DATA: usize = 16 * 1024;

/// What an unauthenticated connection's next bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAttempt<'a> {
    /// A user and a password to check.
    Token { user: &'a [u8], pass: &'a [u8] },
    /// Not an authentication token: refused (`unauthenticated`).
    NotAToken,
    /// The data block does not end in `\r\n`.
    BadTermination,
    /// The data block holds fewer than two words.
    BadFormat,
}

/// Reads one attempt from the front of `buf` and how many bytes it takes.
/// `Err(Incomplete)`: more bytes are needed; `Err(LineTooLong)`: the
/// connection is to be closed, as memcached closes it.
pub fn parse_auth(buf: &[u8]) -> Result<(AuthAttempt<'_>, usize), ParseError> {
    // memcached waits for two bytes before it looks for a line: a lone
    // `\n` left after a bad block is not an attempt of its own.
    if buf.len() < 2 {
        return Err(ParseError::Incomplete);
    }
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return Err(if buf.len() > AUTH_MAX_LINE {
            ParseError::LineTooLong
        } else {
            ParseError::Incomplete
        });
    };
    let line_len = nl + 1;
    let Some(size) = token_size(&buf[..nl]) else {
        return Ok((AuthAttempt::NotAToken, line_len));
    };
    let total = size.saturating_add(2);
    if total > AUTH_MAX_DATA {
        return Err(ParseError::LineTooLong);
    }
    let Some(data) = buf.get(line_len..line_len + total) else {
        return Err(ParseError::Incomplete);
    };
    let consumed = line_len + total;
    let Some(body) = data.strip_suffix(b"\r\n") else {
        return Ok((AuthAttempt::BadTermination, consumed));
    };
    // memcached reads the block as a C string: a NUL ends it.
    let body = body.split(|&b| b == 0).next().unwrap_or(body);
    let (user, rest) = next_token(body);
    let (pass, _) = next_token(rest);
    if user.is_empty() || pass.is_empty() {
        return Ok((AuthAttempt::BadFormat, consumed));
    }
    Ok((AuthAttempt::Token { user, pass }, consumed))
}

/// The data block's length, when `line` (without its `\n`) is a `set` with
/// at least five words whose fifth is a number `safe_strtoul` accepts.
fn token_size(line: &[u8]) -> Option<usize> {
    // a NUL ends the line, as memcached reads it as a C string
    let line = line.split(|&b| b == 0).next().unwrap_or(line);
    let mut words = [&b""[..]; 5];
    let mut rest = line;
    for w in &mut words {
        let (word, after) = next_token(rest);
        if word.is_empty() {
            return None;
        }
        *w = word;
        rest = after;
    }
    if words[0] != b"set" {
        return None;
    }
    // a `\r` left at the end of the byte count is where strtoul stops
    let count = words[4].strip_suffix(b"\r").unwrap_or(words[4]);
    safe_strtoul(count).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(buf: &[u8]) -> Result<(AuthAttempt<'_>, usize), ParseError> {
        parse_auth(buf)
    }

    #[test]
    fn a_token_is_a_set_with_two_words() {
        let buf = b"set a 0 0 9\r\nuser pass\r\nget a\r\n";
        let (a, n) = attempt(buf).unwrap();
        assert_eq!(
            a,
            AuthAttempt::Token {
                user: b"user",
                pass: b"pass"
            }
        );
        assert_eq!(&buf[n..], b"get a\r\n");
        // noreply and other trailing words change nothing; flags and
        // exptime are not read
        let (a, _) = attempt(b"set k x y 9 noreply\r\nuser pass\r\n").unwrap();
        assert!(matches!(a, AuthAttempt::Token { .. }));
        // extra words in the block are ignored; leading spaces skipped
        let (a, _) = attempt(b"set  a 0 0 12\r\n user pass x\r\n").unwrap();
        assert_eq!(
            a,
            AuthAttempt::Token {
                user: b"user",
                pass: b"pass"
            }
        );
    }

    #[test]
    fn anything_else_is_refused_line_by_line() {
        for line in [
            &b"get a\r\n"[..],
            b"quit\r\n",
            b"\r\n",
            b"set a 0 0\r\n",
            b"set a 0 0 x\r\n",
            b"set a 0 0 -1\r\n",
            b"add a 0 0 9\r\n",
            b"SET a 0 0 9\r\n",
            b"ms a 9\r\n",
        ] {
            assert_eq!(
                attempt(line).unwrap(),
                (AuthAttempt::NotAToken, line.len()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn malformed_blocks() {
        let buf = b"set a 0 0 9\r\nuser passX\r\n";
        let (a, n) = attempt(buf).unwrap();
        assert_eq!((a, n), (AuthAttempt::BadTermination, 13 + 11));
        assert_eq!(
            attempt(&buf[n..]),
            Err(ParseError::Incomplete),
            "the lone \\n waits"
        );
        let (a, _) = attempt(b"set a 0 0 4\r\nuser\r\n").unwrap();
        assert_eq!(a, AuthAttempt::BadFormat);
        let (a, _) = attempt(b"set a 0 0 0\r\n\r\n").unwrap();
        assert_eq!(a, AuthAttempt::BadFormat);
        let (a, _) = attempt(b"set a 0 0 9\nuser pass\r\n").unwrap();
        assert!(
            matches!(a, AuthAttempt::Token { .. }),
            "a bare \\n ends the line"
        );
    }

    #[test]
    fn waiting_and_giving_up() {
        assert_eq!(attempt(b"set a 0 0 9\r\nuser"), Err(ParseError::Incomplete));
        assert_eq!(attempt(b"set a 0 0"), Err(ParseError::Incomplete));
        assert_eq!(attempt(&[b'x'; 2048]), Err(ParseError::Incomplete));
        assert_eq!(attempt(&[b'x'; 2049]), Err(ParseError::LineTooLong));
        assert_eq!(
            attempt(b"set a 0 0 16382\r\n"),
            Err(ParseError::Incomplete),
            "a block that fits memcached's read buffer is waited for"
        );
        assert_eq!(
            attempt(b"set a 0 0 16383\r\n"),
            Err(ParseError::LineTooLong)
        );
    }
}
