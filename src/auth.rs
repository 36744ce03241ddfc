//! ASCII authentication (`-Y FILE`): the table of `user:password` entries
//! and the check of a presented token against it.
//!
//! Owns: reading the file with memcached's rules and error messages, keeping
//! the entries (swapped whole on a reload, so a bad reload keeps the old
//! ones), the constant-time comparison, and the warning about a file others
//! can read. Must not: know the wire format of the token (`protocol` parses
//! `set <key> <flags> <exptime> <len>\r\n<user> <password>\r\n`), sockets, or
//! when a reload happens (`process` turns SIGHUP into a call of
//! [`Authenticator::reload`]).
//!
//! The file format is memcached 1.6.18's: one `user:password` entry a line,
//! the user ending at the first `:`, the password at the end of the line (a
//! `\r` before the `\n` is not part of it). A line without a `:` (an empty
//! line or a comment too) or longer than memcached's 255-byte entry buffer
//! is malformed, and so is the whole file. Where memcached's loader has bugs
//! (it drops the last byte of a file that does not end in a newline, refuses
//! a file with CRLF line ends and silently keeps only the first 64 entries)
//! ferrocache reads what the file says; those files never started a
//! memcached that authenticated its users, so no deployment relies on it.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// memcached reads each entry into a 256-byte buffer (`MAX_ENTRY_LEN`),
/// which holds 255 bytes of line and its newline.
const MAX_ENTRY_LEN: usize = 255;

/// Why the auth file could not be used; `Display` gives memcached's words
/// (it exits with status 1 for each of them).
#[derive(Debug)]
pub enum AuthFileError {
    /// The file could not be read: missing, not permitted, a directory.
    Open { path: PathBuf, err: io::Error },
    /// A line is not `user:password`.
    Malformed { path: PathBuf, line: usize },
}

impl fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // memcached prints these through `vperror`, which repeats the reason
        // after a colon; the words and the repetition are kept.
        match self {
            AuthFileError::Open { path, err } => {
                let why = os_reason(err);
                write!(
                    f,
                    "Could not open authfile [{}] for reading, error {why}: {why}",
                    path.display()
                )
            }
            AuthFileError::Malformed { path, .. } => write!(
                f,
                "Authfile [{}] has a malformed entry. Should be 'user:password'",
                path.display()
            ),
        }
    }
}

impl std::error::Error for AuthFileError {}

/// The C library's sentence for an I/O error ("No such file or
/// directory"), without Rust's " (os error 2)" suffix.
fn os_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// One `user:password` entry.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    user: Vec<u8>,
    pass: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never print a password, even in a debug dump
        write!(
            f,
            "Entry({:?}, <{} bytes>)",
            String::from_utf8_lossy(&self.user),
            self.pass.len()
        )
    }
}

/// The entries of one version of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthTable {
    entries: Vec<Entry>,
}

impl AuthTable {
    /// Parses the file's bytes; `Err(line)` names the first malformed line
    /// (1-based).
    pub fn parse(bytes: &[u8]) -> Result<AuthTable, usize> {
        let mut entries = Vec::new();
        if bytes.is_empty() {
            return Ok(AuthTable { entries });
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_ENTRY_LEN {
                return Err(i + 1);
            }
            let colon = line.iter().position(|&b| b == b':').ok_or(i + 1)?;
            entries.push(Entry {
                user: line[..colon].to_vec(),
                pass: line[colon + 1..].to_vec(),
            });
        }
        Ok(AuthTable { entries })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<AuthTable, AuthFileError> {
        let owned = || path.to_path_buf();
        let bytes = fs::read(path).map_err(|err| AuthFileError::Open { path: owned(), err })?;
        AuthTable::parse(&bytes).map_err(|line| AuthFileError::Malformed {
            path: owned(),
            line,
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file had no entries (no token can then succeed).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `user` and `pass` match an entry. Every entry is compared,
    /// and each comparison reads every byte of the shorter side whatever
    /// they hold, so the time taken does not tell an attacker how much of a
    /// guess was right (memcached 1.6.18 stops at the first differing byte).
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        let mut found = false;
        for e in &self.entries {
            // `&` rather than `&&`: no short cut on the user either.
            found |= same_bytes(&e.user, user) & same_bytes(&e.pass, pass);
        }
        found
    }
}

/// Compares two byte strings without stopping at the first difference.
/// Lengths are compared openly: the length of a password is the one thing
/// a timing can still tell, as in memcached.
#[inline(never)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // keep the optimiser from turning the loop into an early-exit compare
    std::hint::black_box(diff) == 0
}

/// The live table of a running server: read by every worker that checks a
/// token, replaced whole by a reload.
#[derive(Debug)]
pub struct Authenticator {
    path: PathBuf,
    table: RwLock<Arc<AuthTable>>,
}

impl Authenticator {
    /// Loads `path` for a server about to start; an error is fatal there.
    pub fn open(path: &Path) -> Result<Authenticator, AuthFileError> {
        let table = AuthTable::load(path)?;
        Ok(Authenticator {
            path: path.to_path_buf(),
            table: RwLock::new(Arc::new(table)),
        })
    }

    /// The file this table comes from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again (SIGHUP). On success the new entries replace
    /// the old ones for every token checked from then on; on failure the
    /// old entries stay in force and the error says why.
    pub fn reload(&self) -> Result<usize, AuthFileError> {
        let table = AuthTable::load(&self.path)?;
        let n = table.len();
        let mut live = self.table.write().unwrap_or_else(|p| p.into_inner());
        *live = Arc::new(table);
        Ok(n)
    }

    /// Checks one presented token against the current entries.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        let table = Arc::clone(&self.table.read().unwrap_or_else(|p| p.into_inner()));
        table.check(user, pass)
    }
}

/// A warning for an auth file that users other than its owner and group can
/// read or write (memcached says nothing); `None` when its mode is tight or
/// it cannot be examined (loading reports that).
pub fn permissions_warning(path: &Path) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o006 == 0 {
        return None;
    }
    Some(format!(
        "-Y {}: the auth file is {} by other users (mode {:o}); passwords in it are \
         exposed: chmod o-rw it",
        path.display(),
        if mode & 0o002 != 0 {
            "writable"
        } else {
            "readable"
        },
        mode & 0o777
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(bytes: &[u8]) -> AuthTable {
        AuthTable::parse(bytes).unwrap()
    }

    #[test]
    fn entries_split_at_the_first_colon() {
        let t = table(b"user:pass\nfoo:bar:baz\n:nouser\nempty:\n");
        assert_eq!(t.len(), 4);
        assert!(t.check(b"user", b"pass"));
        assert!(
            t.check(b"foo", b"bar:baz"),
            "the password runs to the end of the line"
        );
        assert!(t.check(b"", b"nouser"));
        assert!(t.check(b"empty", b""));
        assert!(!t.check(b"user", b"pas"));
        assert!(!t.check(b"user", b"passs"));
        assert!(!t.check(b"use", b"pass"));
        assert!(!t.check(b"foo", b"bar"));
        assert!(
            !t.check(b"user", b"bar:baz"),
            "a password belongs to its own user"
        );
    }

    #[test]
    fn line_ends_are_not_part_of_the_password() {
        let t = table(b"a:b\r\nc:d");
        assert!(t.check(b"a", b"b"));
        assert!(!t.check(b"a", b"b\r"));
        assert!(
            t.check(b"c", b"d"),
            "a last line without a newline is whole"
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(AuthTable::parse(b"nocolon\n"), Err(1));
        assert_eq!(AuthTable::parse(b"a:b\n\nc:d\n"), Err(2), "an empty line");
        assert_eq!(AuthTable::parse(b"a:b\n#comment\n"), Err(2));
        let long = [vec![b'x'; 254], b":y\n".to_vec()].concat();
        assert_eq!(
            AuthTable::parse(&long),
            Err(1),
            "memcached's 255-byte entry"
        );
        let fits = [vec![b'x'; 253], b":y\n".to_vec()].concat();
        assert!(AuthTable::parse(&fits).unwrap().check(&[b'x'; 253], b"y"));
    }

    #[test]
    fn an_empty_file_lets_no_one_in() {
        let t = table(b"");
        assert!(t.is_empty());
        assert!(!t.check(b"", b""));
    }

    #[test]
    fn load_errors_use_memcacheds_words() {
        let missing = Path::new("/nonexistent/ferrocache-auth");
        let e = AuthTable::load(missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Could not open authfile [/nonexistent/ferrocache-auth] for reading, error No such \
             file or directory: No such file or directory"
        );
        let dir = std::env::temp_dir();
        let e = AuthTable::load(&dir).unwrap_err();
        assert!(
            e.to_string().starts_with("Could not open authfile ["),
            "a directory is refused: {e}"
        );
    }

    #[test]
    fn a_bad_reload_keeps_the_old_entries() {
        let path = std::env::temp_dir().join(format!("ferrocache-auth-{}", std::process::id()));
        fs::write(&path, b"old:one\n").unwrap();
        let auth = Authenticator::open(&path).unwrap();
        assert!(auth.check(b"old", b"one"));
        fs::write(&path, b"new:two\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 1);
        assert!(auth.check(b"new", b"two"));
        assert!(!auth.check(b"old", b"one"), "a reload replaces the entries");
        fs::write(&path, b"broken\n").unwrap();
        assert!(matches!(
            auth.reload(),
            Err(AuthFileError::Malformed { line: 1, .. })
        ));
        assert!(
            auth.check(b"new", b"two"),
            "a bad reload keeps what was there"
        );
        fs::remove_file(&path).unwrap();
        assert!(matches!(auth.reload(), Err(AuthFileError::Open { .. })));
        assert!(auth.check(b"new", b"two"));
    }

    #[test]
    fn loose_permissions_are_reported() {
        let path = std::env::temp_dir().join(format!("ferrocache-authp-{}", std::process::id()));
        fs::write(&path, b"a:b\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(permissions_warning(&path), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(permissions_warning(&path), None, "the group may read it");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let w = permissions_warning(&path).unwrap();
        assert!(
            w.contains("readable by other users") && w.contains("644"),
            "{w}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(permissions_warning(&path).unwrap().contains("writable"));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn debug_output_hides_passwords() {
        let t = table(b"alice:s3cret\n");
        let shown = format!("{t:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
