//! memcached's command line → a plain [`Config`].
//!
//! Owns flag names, defaults, parsing of sizes (`-I 2m`) and `-o` options,
//! and the typed [`ConfigError`]. Must not open sockets or touch the process
//! (daemonizing, pid files and privilege drops happen in `main`).

use std::fmt;
use std::path::PathBuf;

/// Everything the server needs from the command line, with memcached's
/// defaults (see [`Config::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `-p`: TCP port (default 11211). 0 binds an ephemeral port (tests).
    pub port: u16,
    /// `-U`: UDP port; 0 (the default) disables UDP.
    pub udp_port: u16,
    /// `-l`: addresses to listen on (default `127.0.0.1`); each may carry its
    /// own `:port`.
    pub listen: Vec<String>,
    /// `-s`: unix socket path; when set, TCP and UDP are off, as in memcached.
    pub unix_socket: Option<PathBuf>,
    /// `-a`: permissions of the unix socket (octal, default 0o700).
    pub unix_mask: u32,
    /// `-m`: memory ceiling in bytes (default 64 MiB).
    pub memory_limit: usize,
    /// `-M`: answer `SERVER_ERROR out of memory` instead of evicting.
    pub no_evict: bool,
    /// `-c`: simultaneous connections (default 1024).
    pub max_connections: usize,
    /// `-t`: worker threads (default 4).
    pub threads: usize,
    /// `-R`: requests served per connection per event (default 20).
    pub reqs_per_event: usize,
    /// `-C` clears it: CAS uniques are 0 in replies and items are smaller.
    pub use_cas: bool,
    /// `-b`: listen backlog (default 1024).
    pub backlog: i32,
    /// `-I`: largest item (default 1 MiB).
    pub item_size_max: usize,
    /// `-F`: refuse `flush_all`.
    pub disable_flush: bool,
    /// `-A`: allow the `shutdown` command.
    pub enable_shutdown: bool,
    /// `-v` count (0–3).
    pub verbosity: u8,
    /// `-d`
    pub daemonize: bool,
    /// `-P`
    pub pid_file: Option<PathBuf>,
    /// `-u`
    pub user: Option<String>,
    /// `-k`
    pub lock_memory: bool,
    /// `-f` (reported in `stats settings`; storage has its own classes).
    pub growth_factor: f64,
    /// `-n` (reported only).
    pub chunk_size: usize,
    /// `-D` (reported only).
    pub stat_key_prefix: char,
    /// `-B`: `ascii`, `binary` or `auto` (reported as memcached does).
    pub binding_protocol: String,
    /// `-o idle_timeout=N`: close clients idle this many seconds (0 = never).
    pub idle_timeout: u64,
    /// `-o` options accepted for compatibility but without effect here.
    pub ignored_options: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 11211,
            udp_port: 0,
            listen: vec!["127.0.0.1".to_string()],
            unix_socket: None,
            unix_mask: 0o700,
            memory_limit: 64 * 1024 * 1024,
            no_evict: false,
            max_connections: 1024,
            threads: 4,
            reqs_per_event: 20,
            use_cas: true,
            backlog: 1024,
            item_size_max: 1024 * 1024,
            disable_flush: false,
            enable_shutdown: false,
            verbosity: 0,
            daemonize: false,
            pid_file: None,
            user: None,
            lock_memory: false,
            growth_factor: 1.25,
            chunk_size: 48,
            stat_key_prefix: ':',
            binding_protocol: "auto".to_string(),
            idle_timeout: 0,
            ignored_options: Vec::new(),
        }
    }
}

/// A command line that memcached would refuse, or that asks to exit early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `-h`/`-V`: print this text to stdout and exit 0.
    Exit(String),
    /// A bad flag or value: print to stderr and exit 1 (EX_USAGE 64 where
    /// memcached does).
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Exit(s) | ConfigError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses a full argv (`args[0]` is the program name).
    pub fn from_args<I, S>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let _ = args;
        todo!("config::from_args")
    }
}

/// The clap definition, shared by the parser and (later) the man page.
pub fn command() -> clap::Command {
    todo!("config::command")
}
