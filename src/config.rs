//! memcached's command line → a plain [`Config`].
//!
//! Owns flag names, defaults, parsing of sizes (`-I 2m`) and `-o` options,
//! and the typed [`ConfigError`]. Must not open sockets or touch the process
//! (daemonizing, pid files and privilege drops live in `process`, called by
//! `main`).
//!
//! The rules follow memcached 1.6.18 as it behaves, not as its help text
//! says: options are applied in command-line order (so `-c 0 -h` fails while
//! `-h -c 0` prints the usage), numbers are read the way C's `atoi` reads
//! them (`-p abc` is port 0, `-m 64k` is 64 megabytes), the same checks run
//! after the options in the same order, and every refusal carries
//! memcached's wording and exit status. Where memcached would go on with a
//! nonsensical value (a negative port or memory limit) we refuse instead;
//! those places say so.
//!
//! `--config-file FILE` (ours; memcached has no such flag) reads options
//! from a file in `/etc/memcached.conf`'s format, one per line, before the
//! command line's; an option the command line gives replaces the file's
//! (for `-o`, item by item). A bad line is refused naming file and line.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cnum::{atof, atoi, strtol, whole_f64, whole_i32, whole_u32};

mod tls;
pub use tls::{TlsOptions, TlsVersion, VerifyMode, KEYFORMAT_DER, KEYFORMAT_PEM};

/// Exit status for a command line memcached rejects with `EX_USAGE`.
pub const EX_USAGE: i32 = 64;

/// memcached refuses `-I` below this (`ITEM_SIZE_MAX_LOWER_LIMIT`).
const ITEM_SIZE_MAX_LOWER_LIMIT: i64 = 1024;
/// memcached refuses `-I` above this (`ITEM_SIZE_MAX_UPPER_LIMIT`).
const ITEM_SIZE_MAX_UPPER_LIMIT: i64 = 1024 * 1024 * 1024;
/// memcached's slab page; `-I` and `slab_chunk_max` are checked against it.
const SLAB_PAGE_SIZE: i64 = 1024 * 1024;
/// memcached's default `slab_chunk_max` (half a page).
const SLAB_CHUNK_MAX_DEFAULT: i64 = SLAB_PAGE_SIZE / 2;
/// memcached's `CHUNK_ALIGN_BYTES`, the least step between `slab_sizes`.
const CHUNK_ALIGN_BYTES: u64 = 8;
/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`.
const MAX_SLAB_CLASSES: usize = 64;

/// How the metrics endpoint shows the most read keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsKeys {
    /// A hash of each key (FNV-1a, 64 bits, in hex): which keys are hot
    /// without their names.
    Hashed,
    /// The keys themselves.
    Shown,
    /// Not at all.
    Off,
}

/// Everything the server needs from the command line, with memcached's
/// defaults (see [`Config::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `-p`: TCP port (default 11211). 0 binds an ephemeral port (tests);
    /// the command line's `-p 0` clears [`Config::tcp_enabled`] instead.
    pub port: u16,
    /// False when the command line said `-p 0` (or `-p` with no number, which
    /// memcached reads as 0): memcached then opens no TCP listener at all.
    /// Built by hand (tests), a `Config` keeps it true and port 0 is an
    /// ephemeral port.
    pub tcp_enabled: bool,
    /// `-U`: UDP port; 0 (the default) disables UDP. Given without `-p`, a
    /// non-zero `-U` also moves the TCP port there, as in memcached.
    pub udp_port: u16,
    /// `-l`: addresses to listen on (default `127.0.0.1`); each may carry its
    /// own `:port` (see [`Config::listen_addrs`]). `-l a,b` and `-l a;b` are
    /// split here; `*` means every interface. Empty when every `-l` was empty:
    /// memcached then listens on no network address.
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
    /// `-v` count (0–3; more `v`s are kept but mean what 3 means).
    pub verbosity: u8,
    /// `-d`
    pub daemonize: bool,
    /// `-P`
    pub pid_file: Option<PathBuf>,
    /// `-u` (an empty `-u ''` is stored as `None`, as memcached treats it).
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
    /// `-o lru_crawler` / `no_lru_crawler`: whether the background expirer
    /// and requested crawls run (default on, as in memcached 1.6).
    pub lru_crawler: bool,
    /// `-o lru_crawler_sleep=N` (microseconds; `None`: the crawler's default).
    pub lru_crawler_sleep: Option<u32>,
    /// `-o lru_crawler_tocrawl=N` (items per class a crawl checks, 0 = all;
    /// `None`: the crawler's default).
    pub lru_crawler_tocrawl: Option<u32>,
    /// `-o slab_automove[=N]`: the level `stats settings` reports and
    /// `slabs automove` changes (default 1, a bare `slab_automove` is 1).
    pub slab_automove: u32,
    /// `-o` options accepted for compatibility but without effect here, as
    /// given (`name` or `name=value`), in command-line order.
    pub ignored_options: Vec<String>,
    /// `-D` also turns on per-prefix stats (`stats detail on`).
    pub detail_enabled: bool,
    /// `-r`: raise the core file limit (and do not `chdir /` when daemonizing).
    pub enable_coredumps: bool,
    /// `-L`: ask for transparent huge pages.
    pub large_pages: bool,
    /// `-X`: refuse `stats cachedump` and `lru_crawler metadump`.
    pub disable_dumping: bool,
    /// `-W`: refuse `watch`.
    pub disable_watch: bool,
    /// `-Y`: ASCII authentication token file (memcached reads `user:pass`
    /// lines). Implies `-B ascii`; refused together with UDP.
    pub auth_file: Option<PathBuf>,
    /// `-S`: SASL authentication (the system's libsasl2, loaded at
    /// start-up). Implies `-B binary`; refused with ASCII or UDP.
    pub sasl: bool,
    /// `-e`: memcached's restartable-cache memory file (recorded only).
    pub memory_file: Option<PathBuf>,
    /// `-N`: number of NAPI ids (0 = off; recorded only).
    pub napi_ids: u32,
    /// `-Z` and the `ssl_*` options.
    pub tls: TlsOptions,
    /// `-o read_buf_mem_limit=MB`, in bytes (0: none): what all connections'
    /// read and reply buffers may hold together, split evenly over the
    /// workers as memcached splits it over its threads.
    pub read_buf_mem_limit: u64,
    /// `-o metrics_listen=IP:PORT` (ferrocache's own): where the Prometheus
    /// endpoint (`GET /metrics`) listens; off without it.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `-o metrics_keys=hashed|shown|off`: how the endpoint shows the most
    /// read keys (hashed by default: key names can be private).
    pub metrics_keys: MetricsKeys,
    /// Things memcached prints on stderr while parsing and then carries on
    /// (e.g. `-t 65`), plus notes of ours about values read leniently.
    /// `main` prints each on its own line to stderr.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 11211,
            tcp_enabled: true,
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
            lru_crawler: true,
            lru_crawler_sleep: None,
            lru_crawler_tocrawl: None,
            slab_automove: 1,
            ignored_options: Vec::new(),
            detail_enabled: false,
            enable_coredumps: false,
            large_pages: false,
            disable_dumping: false,
            disable_watch: false,
            auth_file: None,
            sasl: false,
            memory_file: None,
            napi_ids: 0,
            tls: TlsOptions::default(),
            read_buf_mem_limit: 0,
            metrics_listen: None,
            metrics_keys: MetricsKeys::Hashed,
            warnings: Vec::new(),
        }
    }
}

/// A command line that memcached would refuse, or that asks to exit early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `-h`/`-i`/`-V`: print this text to stdout as is (it ends with a
    /// newline) and exit 0.
    Exit(String),
    /// A bad flag or value that memcached rejects with status 1: print to
    /// stderr and exit 1.
    Invalid(String),
    /// A bad flag or value that memcached rejects with `EX_USAGE`: print to
    /// stderr and exit 64.
    Usage(String),
}

impl ConfigError {
    /// The process exit status memcached uses for this case.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Exit(_) => 0,
            ConfigError::Invalid(_) => 1,
            ConfigError::Usage(_) => EX_USAGE,
        }
    }

    /// The text to print (stdout for [`ConfigError::Exit`], else stderr).
    pub fn message(&self) -> &str {
        match self {
            ConfigError::Exit(s) | ConfigError::Invalid(s) | ConfigError::Usage(s) => s,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ConfigError {}

/// One `-l` entry, split the way memcached splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// Host name or address literal (IPv6 without brackets); `None` for `*`,
    /// meaning every interface (IPv4 and IPv6).
    pub host: Option<String>,
    /// The entry's own `:port`; `None` means the `-p` (TCP) or `-U` (UDP)
    /// port. memcached applies it to both TCP and UDP.
    pub port: Option<u16>,
    /// Given as `notls:…` under `-Z`: this listener speaks plain text.
    pub notls: bool,
}

/// Splits one `-l` entry: `host`, `host:port`, `v6`, `[v6]`, `[v6]:port`,
/// `*`, `*:port`. Names are not resolved here (the server does, like
/// memcached's `getaddrinfo`). memcached finds these errors only when it
/// binds (and exits 71); we find them while parsing and exit 64.
pub fn parse_listen_entry(entry: &str, tls: bool) -> Result<ListenAddr, ConfigError> {
    let fail = |msg: String| {
        ConfigError::Usage(format!(
            "{msg}\nfailed to listen on one of interface(s) {entry}"
        ))
    };
    let (notls, entry) = match entry.strip_prefix("notls:") {
        Some(rest) if tls => (true, rest),
        _ if entry.starts_with("notls") => {
            return Err(fail(
                "'notls' option is valid only when SSL is enabled".to_string(),
            ))
        }
        _ => (false, entry),
    };
    let (host, rest, bracketed) = if let Some(inner) = entry.strip_prefix('[') {
        match inner.find(']') {
            Some(end) => (&inner[..end], &inner[end + 1..], true),
            None => return Err(fail(format!("Invalid IPV6 address: \"{entry}\""))),
        }
    } else {
        (entry, "", false)
    };
    let (host, port_text) = if bracketed {
        // After `[v6]` only `:port` (or nothing) makes sense; memcached reads
        // whatever follows the first colon as the port.
        match rest.find(':') {
            Some(i) => (host, Some(&rest[i + 1..])),
            None => (host, None),
        }
    } else {
        match host.find(':') {
            // Exactly one colon: host:port. More: a bare IPv6 address.
            Some(i) if !host[i + 1..].contains(':') => (&host[..i], Some(&host[i + 1..])),
            _ => (host, None),
        }
    };
    let port = match port_text {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => return Err(fail(format!("Invalid port number: \"{text}\""))),
        },
    };
    let host = if host == "*" {
        None
    } else {
        Some(host.to_string())
    };
    Ok(ListenAddr { host, port, notls })
}

impl Config {
    /// Parses a full argv (`args[0]` is the program name).
    pub fn from_args<I, S>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let argv0 = argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ferrocache".to_string());
        let argv = normalize_verbose(argv);
        let matches = command()
            .try_get_matches_from(&argv)
            .map_err(|e| clap_error(&argv0, &argv, &e))?;
        let cli = occurrences(&matches);
        let mut parser = Parser::default();
        // Given more than once, the last one counts, as for other options.
        if let Some(path) = matches
            .get_raw("config-file")
            .and_then(|mut v| v.next_back())
        {
            let path = Path::new(path);
            for line in read_config_file(path)? {
                if let Some(value) = line.after_command_line(&cli) {
                    parser.apply_from_file(path, &line, value)?;
                }
            }
        }
        for (_, id, value) in cli {
            parser.apply(id, value)?;
        }
        parser.finish()
    }

    /// `-l` entries split into host and port (see [`parse_listen_entry`]).
    /// [`Config::from_args`] has already checked them, so on a parsed config
    /// this only fails for entries set by hand.
    pub fn listen_addrs(&self) -> Result<Vec<ListenAddr>, ConfigError> {
        self.listen
            .iter()
            .map(|e| parse_listen_entry(e, self.tls.enabled))
            .collect()
    }
}

/// Value-taking options, by clap id. Each also has a short flag equal to its
/// id's first letter unless noted in [`command`].
const VALUE_IDS: &[&str] = &[
    "port",
    "udp-port",
    "unix-socket",
    "unix-mask",
    "listen",
    "user",
    "memory-limit",
    "conn-limit",
    "pidfile",
    "slab-growth-factor",
    "slab-min-size",
    "stat-prefix",
    "threads",
    "max-reqs-per-event",
    "listen-backlog",
    "protocol",
    "max-item-size",
    "auth-file",
    "memory-file",
    "extended",
    "napi-ids",
    "args",
];

/// Flags, by clap id.
const FLAG_IDS: &[&str] = &[
    "enable-shutdown",
    "daemon",
    "enable-coredumps",
    "disable-evictions",
    "lock-memory",
    "verbose",
    "help",
    "license",
    "version",
    "enable-largepages",
    "disable-cas",
    "enable-sasl",
    "disable-flush-all",
    "disable-dumping",
    "disable-watch",
    "enable-ssl",
];

/// memcached's long options in the order of its `getopt_long` table, the
/// order glibc lists them in when a prefix is ambiguous.
const GETOPT_ORDER: &[&str] = &[
    "unix-mask",
    "enable-shutdown",
    "enable-ssl",
    "port",
    "unix-socket",
    "udp-port",
    "memory-limit",
    "disable-evictions",
    "conn-limit",
    "lock-memory",
    "help",
    "license",
    "version",
    "enable-coredumps",
    "verbose",
    "daemon",
    "listen",
    "user",
    "pidfile",
    "slab-growth-factor",
    "slab-min-size",
    "threads",
    "enable-largepages",
    "max-reqs-per-event",
    "disable-cas",
    "listen-backlog",
    "protocol",
    "max-item-size",
    "enable-sasl",
    "disable-flush-all",
    "disable-dumping",
    "disable-watch",
    "auth-file",
    "memory-file",
    "extended",
    "napi-ids",
];

/// The clap definition, shared by the parser and (later) the man page.
///
/// Every option takes memcached's short and long names; help and version
/// are ours (`-h`, `-V`), so clap's automatic ones are off. Values may start
/// with `-` (`-p -1`, `-u -d`) because `getopt` takes the next word whatever
/// it is; long names may be shortened to any unambiguous prefix, as
/// `getopt_long` allows.
pub fn command() -> Command {
    let d = Config::default();
    let value = |id: &'static str, short: char, name: &'static str, help: String| {
        Arg::new(id)
            .short(short)
            .long(id)
            .value_name(name)
            .help(help)
            .num_args(1)
            .allow_hyphen_values(true)
            .action(ArgAction::Append)
    };
    let flag = |id: &'static str, short: char, help: String| {
        Arg::new(id)
            .short(short)
            .long(id)
            .help(help)
            .action(ArgAction::SetTrue)
    };
    Command::new("ferrocache")
        .version(clap::crate_version!())
        .about(
            "A memcached-compatible cache server: same flags, same text protocol, bounded memory",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .infer_long_args(true)
        .max_term_width(100)
        .override_usage("ferrocache [OPTIONS]")
        .arg(value(
            "port",
            'p',
            "NUM",
            format!(
                "TCP port to listen on; 0 opens no TCP port [default: {}]",
                d.port
            ),
        ))
        .arg(value(
            "udp-port",
            'U',
            "NUM",
            format!(
                "UDP port to listen on; 0 turns UDP off [default: {}]",
                d.udp_port
            ),
        ))
        .arg(value(
            "unix-socket",
            's',
            "FILE",
            "Unix socket to listen on instead of TCP and UDP [default: none]".to_string(),
        ))
        .arg(value(
            "unix-mask",
            'a',
            "MASK",
            format!(
                "Permissions of the unix socket, in octal [default: {:o}]",
                d.unix_mask
            ),
        ))
        .arg(flag(
            "enable-shutdown",
            'A',
            "Allow the `shutdown` command".to_string(),
        ))
        .arg(value(
            "listen",
            'l',
            "ADDR",
            format!(
                "Address to listen on: host, host:port, [ipv6]:port, * for all;\n\
             comma-separated and repeatable [default: {}]",
                d.listen.join(",")
            ),
        ))
        .arg(flag(
            "daemon",
            'd',
            "Run in the background as a daemon".to_string(),
        ))
        .arg(flag(
            "enable-coredumps",
            'r',
            "Raise the core file size limit as far as allowed".to_string(),
        ))
        .arg(value(
            "user",
            'u',
            "USER",
            "User to run as; required as root, ignored otherwise".to_string(),
        ))
        .arg(value(
            "memory-limit",
            'm',
            "MB",
            format!(
                "Memory for items, in megabytes [default: {}]",
                d.memory_limit >> 20
            ),
        ))
        .arg(flag(
            "disable-evictions",
            'M',
            "Refuse writes when memory is full instead of evicting".to_string(),
        ))
        .arg(
            value(
                "conn-limit",
                'c',
                "NUM",
                format!(
                    "Most simultaneous connections [default: {}]",
                    d.max_connections
                ),
            )
            // In memcached's table `--c`, `--co` and `--con` can only mean
            // this; --config-file would make them ambiguous to clap.
            .aliases(["c", "co", "con"]),
        )
        .arg(flag(
            "lock-memory",
            'k',
            "Lock all memory pages in RAM".to_string(),
        ))
        .arg(
            flag(
                "verbose",
                'v',
                "Log more: -v errors and warnings, -vv also each command and reply,\n\
             -vvv also internal state changes; RUST_LOG overrides [default: errors]"
                    .to_string(),
            )
            .action(ArgAction::Count),
        )
        .arg(flag("help", 'h', "Show this text and exit".to_string()))
        .arg(flag(
            "license",
            'i',
            "Show the license and exit".to_string(),
        ))
        .arg(flag(
            "version",
            'V',
            "Show the version and exit".to_string(),
        ))
        .arg(value(
            "pidfile",
            'P',
            "FILE",
            "Write the process id to FILE (removed at exit under -d) [default: none]".to_string(),
        ))
        .arg(value(
            "slab-growth-factor",
            'f',
            "FACTOR",
            format!(
                "Growth factor between size classes, above 1 [default: {}]",
                d.growth_factor
            ),
        ))
        .arg(value(
            "slab-min-size",
            'n',
            "BYTES",
            format!(
                "Smallest space for key, value and flags [default: {}]",
                d.chunk_size
            ),
        ))
        .arg(
            Arg::new("stat-prefix")
                .short('D')
                .value_name("CHAR")
                .help(format!(
                    "Character ending the key prefix in per-prefix stats;\n\
                 turns those stats on [default: {}]",
                    d.stat_key_prefix
                ))
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append),
        )
        .arg(flag(
            "enable-largepages",
            'L',
            "Use transparent huge pages where the system has them".to_string(),
        ))
        .arg(value(
            "threads",
            't',
            "NUM",
            format!(
                "Worker threads; more than 64 is not advised [default: {}]",
                d.threads
            ),
        ))
        .arg(value(
            "max-reqs-per-event",
            'R',
            "NUM",
            format!(
                "Requests served on one connection before the next [default: {}]",
                d.reqs_per_event
            ),
        ))
        .arg(flag(
            "disable-cas",
            'C',
            "Turn off CAS unique ids (smaller items)".to_string(),
        ))
        .arg(value(
            "listen-backlog",
            'b',
            "NUM",
            format!(
                "Length of the queue of connections not yet accepted [default: {}]",
                d.backlog
            ),
        ))
        .arg(value(
            "protocol",
            'B',
            "NAME",
            format!(
                "Protocol: ascii, binary or auto [default: {}]",
                d.binding_protocol
            ),
        ))
        .arg(value(
            "max-item-size",
            'I',
            "SIZE",
            format!(
                "Largest item, in bytes or with a k or m suffix;\n\
             from 1k to 1024m, at most half of -m [default: {}m]",
                d.item_size_max >> 20
            ),
        ))
        .arg(flag(
            "enable-sasl",
            'S',
            "SASL authentication with the system's Cyrus SASL (implies -B binary)".to_string(),
        ))
        .arg(flag(
            "disable-flush-all",
            'F',
            "Refuse the `flush_all` command".to_string(),
        ))
        .arg(flag(
            "disable-dumping",
            'X',
            "Refuse `stats cachedump` and `lru_crawler metadump`".to_string(),
        ))
        .arg(flag(
            "disable-watch",
            'W',
            "Refuse the `watch` command".to_string(),
        ))
        .arg(value(
            "auth-file",
            'Y',
            "FILE",
            "ASCII authentication, user:password lines in FILE;\n\
             implies -B ascii, excludes UDP [default: none]"
                .to_string(),
        ))
        .arg(value(
            "memory-file",
            'e',
            "FILE",
            "memcached's restartable memory file; not used [default: none]".to_string(),
        ))
        .arg(flag(
            "enable-ssl",
            'Z',
            "TLS on every TCP listener but those given as -l notls:ADDR;\n\
             certificate and key from -o ssl_chain_cert=FILE,ssl_key=FILE"
                .to_string(),
        ))
        .arg(value(
            "extended",
            'o',
            "OPTS",
            "Comma-separated extended options, repeatable; see below".to_string(),
        ))
        .arg(
            Arg::new("napi-ids")
                .short('N')
                .long("napi-ids")
                .alias("napi_ids")
                .value_name("NUM")
                .help("Number of NAPI ids, at most -t; not used [default: 0]")
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("config-file")
                .long("config-file")
                .value_name("FILE")
                .help(
                    "Read options from FILE first, one per line as on the command line\n\
                     (e.g. -m 64); # starts a comment. Options given on the command\n\
                     line win over the file's [default: none]",
                )
                .num_args(1)
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("args")
                .num_args(0..)
                .action(ArgAction::Append)
                .hide(true),
        )
        .after_help(EXTENDED_HELP)
}

/// The `-o` part of `-h`.
const EXTENDED_HELP: &str = "\
Extended options (-o name[=value],...):
  idle_timeout=SECONDS   close connections idle this long; 0 never [default: 0]
  item_size_max=SIZE     same as -I
  read_buf_mem_limit=MB  what all connections' buffers may hold together [default: 0, none]
  metrics_listen=IP:PORT serve Prometheus metrics at http://IP:PORT/metrics [default: off]
  metrics_keys=MODE      most read keys in the metrics: hashed, shown or off [default: hashed]
  Accepted for compatibility with memcached, checked as memcached checks them,
  and otherwise without effect (each is listed in the log at start-up):
  maxconns_fast, no_maxconns_fast, hashpower=N, no_hashexpand, tail_repair_time=N,
  hash_algorithm=NAME, lru_crawler, no_lru_crawler, lru_crawler_sleep=N,
  lru_crawler_tocrawl=N, lru_maintainer, no_lru_maintainer, hot_lru_pct=N,
  warm_lru_pct=N, hot_max_factor=F, warm_max_factor=F, temporary_ttl=N,
  watcher_logbuf_size=KB, worker_logbuf_size=KB, slab_reassign, no_slab_reassign,
  slab_automove[=N], slab_automove_ratio=F, slab_automove_window=N,
  slab_automove_freeratio=F, slab_chunk_max=N, slab_sizes=A-B-..., track_sizes,
  inline_ascii_resp, no_inline_ascii_resp, modern, no_modern, no_chunked_items,
  drop_privileges, no_drop_privileges, resp_obj_mem_limit,
  meta_response_old, sock_cookie_id=N, ext_*=... (extstore), ssl_*=... (TLS).
Any other name is refused.
";

/// The text of `-i`.
const LICENSE: &str = "\
ferrocache is distributed under the MIT license:

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the \"Software\"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
";

/// `getopt_long` lets `--verbose` take an optional `=value` (which memcached
/// ignores); clap's counter cannot, so the value is dropped before parsing.
fn normalize_verbose(argv: Vec<OsString>) -> Vec<OsString> {
    let mut done = false;
    argv.into_iter()
        .map(|arg| {
            if done {
                return arg;
            }
            let Some(text) = arg.to_str() else {
                return arg;
            };
            if text == "--" {
                done = true;
                return arg;
            }
            if let Some((name, _)) = text.strip_prefix("--").and_then(|t| t.split_once('=')) {
                if name.len() >= 4 && "verbose".starts_with(name) {
                    return OsString::from(format!("--{name}"));
                }
            }
            arg
        })
        .collect()
}

/// Every option occurrence as (position, id, value), in command-line order,
/// the order `getopt` hands them to memcached. A flag given several times
/// shows up once per time, at the position of the last (clap keeps one).
fn occurrences(m: &ArgMatches) -> Vec<(usize, &'static str, Option<OsString>)> {
    let mut out = Vec::new();
    for &id in VALUE_IDS {
        if let (Some(indices), Some(values)) = (m.indices_of(id), m.get_raw(id)) {
            for (i, v) in indices.zip(values) {
                out.push((i, id, Some(v.to_os_string())));
            }
        }
    }
    for &id in FLAG_IDS {
        let count = if id == "verbose" {
            usize::from(m.get_count(id))
        } else {
            usize::from(m.get_flag(id))
        };
        let at = m.index_of(id).unwrap_or(0);
        for _ in 0..count {
            out.push((at, id, None));
        }
    }
    out.sort_by_key(|o| o.0);
    out
}

/// clap's errors, reworded the way glibc's `getopt_long` words them for
/// memcached (followed by memcached's own `Illegal argument "?"`, exit 1).
fn clap_error(argv0: &str, argv: &[OsString], e: &clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let first = match e.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(long) = invalid.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                // getopt quotes the word as typed, `=value` included.
                let invalid = argv
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .find(|a| a.strip_prefix("--").and_then(|a| a.split('=').next()) == Some(name))
                    .map(|a| a.into_owned())
                    .unwrap_or_else(|| invalid.clone());
                let candidates: Vec<String> = GETOPT_ORDER
                    .iter()
                    .filter(|l| !name.is_empty() && l.starts_with(name))
                    .map(|l| format!("'--{l}'"))
                    .collect();
                if candidates.len() > 1 {
                    format!(
                        "{argv0}: option '{invalid}' is ambiguous; possibilities: {}",
                        candidates.join(" ")
                    )
                } else {
                    format!("{argv0}: unrecognized option '{invalid}'")
                }
            } else {
                let c = invalid
                    .trim_start_matches('-')
                    .chars()
                    .next()
                    .unwrap_or('?');
                format!("{argv0}: invalid option -- '{c}'")
            }
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            // With hyphen values allowed, a value can only be missing when the
            // option is the last word.
            let last = argv
                .last()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(long) = last.strip_prefix("--") {
                let name = command()
                    .get_arguments()
                    .filter_map(|a| a.get_long())
                    .find(|l| l.starts_with(long))
                    .unwrap_or(long)
                    .to_string();
                format!("{argv0}: option '--{name}' requires an argument")
            } else {
                let c = last.chars().last().unwrap_or('?');
                format!("{argv0}: option requires an argument -- '{c}'")
            }
        }
        _ => {
            let text = e.to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            format!("{argv0}: {line}")
        }
    };
    ConfigError::Invalid(format!("{first}\nIllegal argument \"?\""))
}

/// `-I`'s reading: a trailing k/K or m/M multiplies what `atoi` reads of
/// the rest, in 32-bit arithmetic that wraps as memcached's does (so
/// `-I 2048m` comes out negative and is refused as too small). Any other
/// suffix, `g` included, is ignored with the rest of the tail.
fn item_size(s: &str) -> (i64, bool) {
    let (mult, body) = match s.chars().last() {
        Some('k' | 'K') => (1024i32, &s[..s.len() - 1]),
        Some('m' | 'M') => (1024 * 1024, &s[..s.len() - 1]),
        _ => (1, s),
    };
    let (n, clean) = atoi(body);
    (i64::from(n.wrapping_mul(mult)), clean)
}

/// Parsing state: the config being built and what memcached's checks after
/// the options need to know.
struct Parser {
    cfg: Config,
    warnings: Vec<String>,
    port: i64,
    udp_port: i64,
    tcp_specified: bool,
    udp_specified: bool,
    protocol_specified: bool,
    memory_mb: i64,
    item_size_max: i64,
    slab_chunk_max: i64,
    slab_chunk_changed: bool,
    slab_sizes: Option<String>,
    hot_lru_pct: i64,
    warm_lru_pct: i64,
    napi_ids: i64,
    listen_given: bool,
    /// `-o` options whose meaning is a promise ferrocache cannot keep yet
    /// (`ext_path`, `ssl_*`), by name, in command-line order: refused once
    /// memcached's own checks have passed (see [`unkept_promises`]).
    unkept_options: Vec<String>,
}

impl Default for Parser {
    fn default() -> Self {
        let cfg = Config::default();
        Parser {
            port: i64::from(cfg.port),
            udp_port: i64::from(cfg.udp_port),
            memory_mb: (cfg.memory_limit >> 20) as i64,
            item_size_max: cfg.item_size_max as i64,
            cfg,
            warnings: Vec::new(),
            tcp_specified: false,
            udp_specified: false,
            protocol_specified: false,
            slab_chunk_max: SLAB_CHUNK_MAX_DEFAULT,
            slab_chunk_changed: false,
            slab_sizes: None,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            napi_ids: 0,
            listen_given: false,
            unkept_options: Vec::new(),
        }
    }
}

impl Parser {
    /// Notes that `text` was not wholly a number and was read as `got`.
    fn lenient(&mut self, flag: &str, text: &str, got: impl fmt::Display) {
        self.warnings.push(format!(
            "note: {flag} '{text}' is not a plain number; read as {got} (as memcached does)"
        ));
    }

    /// `atoi` with the note.
    fn number(&mut self, flag: &str, text: &str) -> i32 {
        let (v, clean) = atoi(text);
        if !clean {
            self.lenient(flag, text, v);
        }
        v
    }

    /// Applies one option, as memcached's `getopt` loop does.
    fn apply(&mut self, id: &str, value: Option<OsString>) -> Result<(), ConfigError> {
        let raw = value.unwrap_or_default();
        // Taken as given: memcached 1.6.18 does not trim values (atoi skips
        // leading blanks by itself; `-B ' ascii'` is refused).
        let text_owned = raw.to_string_lossy().into_owned();
        let text = text_owned.as_str();
        let path = || PathBuf::from(text);
        match id {
            "port" => {
                self.port = i64::from(self.number("-p", text));
                self.tcp_specified = true;
            }
            "udp-port" => {
                self.udp_port = i64::from(self.number("-U", text));
                self.udp_specified = true;
            }
            "unix-socket" => self.cfg.unix_socket = Some(path()),
            "unix-mask" => {
                let (v, clean) = strtol(text, 8);
                if !clean {
                    self.lenient("-a", text, format!("{v:o}"));
                }
                self.cfg.unix_mask = (v as u32) & 0o777;
            }
            "enable-shutdown" => self.cfg.enable_shutdown = true,
            "listen" => {
                if !self.listen_given {
                    self.cfg.listen.clear();
                    self.listen_given = true;
                }
                for entry in text.split([',', ';']).filter(|e| !e.is_empty()) {
                    if !self.cfg.listen.iter().any(|l| l == entry) {
                        self.cfg.listen.push(entry.to_string());
                    }
                }
            }
            "daemon" => self.cfg.daemonize = true,
            "enable-coredumps" => self.cfg.enable_coredumps = true,
            "user" => self.cfg.user = (!text.is_empty()).then(|| text.to_string()),
            "memory-limit" => {
                let mb = self.number("-m", text);
                if mb < 0 {
                    // memcached turns this into an all but unlimited ceiling.
                    return Err(ConfigError::Usage(format!(
                        "Memory limit must not be negative: -m {text}"
                    )));
                }
                self.memory_mb = i64::from(mb);
            }
            "disable-evictions" => self.cfg.no_evict = true,
            "conn-limit" => {
                let v = self.number("-c", text);
                if v <= 0 {
                    return Err(ConfigError::Invalid(
                        "Maximum connections must be greater than 0".into(),
                    ));
                }
                self.cfg.max_connections = v as usize;
            }
            "lock-memory" => self.cfg.lock_memory = true,
            "verbose" => self.cfg.verbosity = self.cfg.verbosity.saturating_add(1),
            "help" => return Err(ConfigError::Exit(usage())),
            "license" => return Err(ConfigError::Exit(LICENSE.to_string())),
            "version" => return Err(ConfigError::Exit(version())),
            "pidfile" => self.cfg.pid_file = Some(path()),
            "memory-file" => self.cfg.memory_file = Some(path()),
            "slab-growth-factor" => {
                let f = atof(text);
                if f.is_nan() || f <= 1.0 {
                    return Err(ConfigError::Invalid("Factor must be greater than 1".into()));
                }
                self.cfg.growth_factor = f;
            }
            "slab-min-size" => {
                let v = self.number("-n", text);
                // memcached only refuses 0; a negative size would wrap.
                if v <= 0 {
                    return Err(ConfigError::Invalid(
                        "Chunk size must be greater than 0".into(),
                    ));
                }
                self.cfg.chunk_size = v as usize;
            }
            "threads" => {
                let v = self.number("-t", text);
                if v <= 0 {
                    return Err(ConfigError::Invalid(
                        "Number of threads must be greater than 0".into(),
                    ));
                }
                if v > 64 {
                    self.warnings.push(
                        "WARNING: Setting a high number of workerthreads is not recommended.\n \
                         Set this value to the number of cores in your machine or less."
                            .into(),
                    );
                }
                self.cfg.threads = v as usize;
            }
            "stat-prefix" => match text.chars().next() {
                None => return Err(ConfigError::Invalid("No delimiter specified".into())),
                Some(c) => {
                    self.cfg.stat_key_prefix = c;
                    self.cfg.detail_enabled = true;
                }
            },
            "enable-largepages" => self.cfg.large_pages = true,
            "max-reqs-per-event" => {
                let v = self.number("-R", text);
                if v <= 0 {
                    return Err(ConfigError::Invalid(
                        "Number of requests per event must be greater than 0".into(),
                    ));
                }
                self.cfg.reqs_per_event = v as usize;
            }
            "disable-cas" => self.cfg.use_cas = false,
            "listen-backlog" => self.cfg.backlog = self.number("-b", text),
            "protocol" => {
                self.protocol_specified = true;
                match text {
                    "auto" | "binary" | "ascii" => self.cfg.binding_protocol = text.to_string(),
                    _ => {
                        return Err(ConfigError::Usage(format!(
                            "Invalid value for binding protocol: {text}\n -- should be one of \
                             auto, binary, or ascii"
                        )))
                    }
                }
            }
            "max-item-size" => self.set_item_size("-I", text),
            "enable-sasl" => self.cfg.sasl = true,
            "enable-ssl" => self.cfg.tls.enabled = true,
            "disable-flush-all" => self.cfg.disable_flush = true,
            "disable-dumping" => self.cfg.disable_dumping = true,
            "disable-watch" => self.cfg.disable_watch = true,
            "auth-file" => self.cfg.auth_file = Some(path()),
            "napi-ids" => {
                let v = self.number("-N", text);
                if v <= 0 {
                    return Err(ConfigError::Invalid(
                        "Maximum number of NAPI IDs must be greater than 0".into(),
                    ));
                }
                self.napi_ids = i64::from(v);
            }
            "extended" => {
                // getsubopt: comma-separated; an empty list is fine, an empty
                // item (`a,,b`) is not; a trailing comma is.
                let mut rest = text;
                while !rest.is_empty() {
                    let (item, next) = match rest.find(',') {
                        Some(i) => (&rest[..i], &rest[i + 1..]),
                        None => (rest, ""),
                    };
                    self.subopt(item)?;
                    rest = next;
                }
            }
            "args" => self.warnings.push(format!(
                "note: ignoring '{}', which is not an option (as memcached does)",
                raw.to_string_lossy()
            )),
            _ => {}
        }
        Ok(())
    }

    fn set_item_size(&mut self, flag: &str, text: &str) {
        let (v, clean) = item_size(text);
        if !clean {
            self.lenient(flag, text, v);
        }
        self.item_size_max = v;
    }

    /// One `-o` item, checked the way memcached 1.6.18 checks it.
    fn subopt(&mut self, item: &str) -> Result<(), ConfigError> {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        // A value is required: memcached's own "missing" sentence.
        let need = |missing: &str| -> Result<&str, ConfigError> {
            value.ok_or_else(|| ConfigError::Invalid(missing.to_string()))
        };
        let missing_arg = |n: &str| format!("Missing {n} argument");
        let missing_num = |n: &str| format!("Missing numeric argument for {n}");
        let parse_fail = |n: &str| format!("could not parse argument to {n}");
        if name.starts_with("ssl_") {
            return self.cfg.tls.set(name, value);
        }
        if is_promise_option(name) && !self.unkept_options.iter().any(|o| o == name) {
            self.unkept_options.push(name.to_string());
        }
        match name {
            "metrics_keys" => {
                self.cfg.metrics_keys = match need("Missing metrics_keys argument")? {
                    "hashed" => MetricsKeys::Hashed,
                    "shown" => MetricsKeys::Shown,
                    "off" => MetricsKeys::Off,
                    v => {
                        return invalid(format!(
                            "metrics_keys is hashed, shown or off, not \"{v}\""
                        ))
                    }
                };
                return Ok(());
            }
            "metrics_listen" => {
                let v = need("Missing metrics_listen argument")?;
                match v.parse() {
                    Ok(addr) => self.cfg.metrics_listen = Some(addr),
                    Err(_) => {
                        return invalid(format!(
                        "metrics_listen wants an IP address and port (127.0.0.1:9150), not \"{v}\""
                    ))
                    }
                }
                return Ok(());
            }
            "idle_timeout" => {
                let v = need(&missing_num(name))?;
                let n = self.number("-o idle_timeout", v);
                if n < 0 {
                    self.warnings.push(format!(
                        "note: -o idle_timeout={v} is negative; idle connections are kept"
                    ));
                }
                self.cfg.idle_timeout = n.max(0) as u64;
                return Ok(());
            }
            "item_size_max" => {
                let v = need(&missing_arg(name))?;
                self.set_item_size("-o item_size_max", v);
                return Ok(());
            }
            // Flags (a value, if any, is ignored as getsubopt leaves it).
            "maxconns_fast"
            | "no_maxconns_fast"
            | "no_hashexpand"
            | "track_sizes"
            | "no_inline_ascii_resp"
            | "inline_ascii_resp"
            | "modern"
            | "drop_privileges"
            | "no_drop_privileges"
            | "lru_maintainer"
            | "no_lru_maintainer"
            | "slab_reassign"
            | "no_slab_reassign"
            | "ext_drop_unread"
            | "meta_response_old"
            | "sock_cookie_id" => {}
            "no_modern" => {
                if !self.slab_chunk_changed {
                    self.slab_chunk_max = SLAB_PAGE_SIZE;
                }
            }
            "no_chunked_items" => self.slab_chunk_max = SLAB_PAGE_SIZE,
            "lru_crawler" | "no_lru_crawler" => {
                self.cfg.lru_crawler = name == "lru_crawler";
                return Ok(());
            }
            "resp_obj_mem_limit" => self.warnings.push(
                "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,".into(),
            ),
            "hashpower" => {
                let n = atoi(need(&missing_num(name))?).0;
                if n < 12 {
                    return invalid(format!("Initial hashtable multiplier of {n} is too low"));
                }
                if n > 32 {
                    return invalid(format!(
                        "Initial hashtable multiplier of {n} is too high\nChoose a value \
                         based on \"STAT hash_power_level\" from a running instance"
                    ));
                }
            }
            "tail_repair_time" => {
                if atoi(need(&missing_num(name))?).0 < 10 {
                    return invalid("Cannot set tail_repair_time to less than 10 seconds".into());
                }
            }
            "hash_algorithm" => {
                let v = need("Missing hash_algorithm argument")?;
                if !matches!(v, "jenkins" | "murmur3" | "xxh3") {
                    return invalid(
                        "Unknown hash_algorithm option (jenkins, murmur3, xxh3)".into(),
                    );
                }
            }
            "read_buf_mem_limit" => {
                let Some(mb) = whole_u32(need(&missing_arg(name))?) else {
                    return invalid(parse_fail(name));
                };
                self.cfg.read_buf_mem_limit = u64::from(mb) * 1024 * 1024;
                return Ok(());
            }
            "watcher_logbuf_size" | "worker_logbuf_size" => {
                if whole_u32(need(&missing_arg(name))?).is_none() {
                    return invalid(parse_fail(name));
                }
            }
            "slab_chunk_max" => {
                match whole_i32(need(&missing_arg(name))?) {
                    None => return invalid(parse_fail(name)),
                    // memcached 1.6.18 divides by it (and crashes on 0).
                    Some(n) if n <= 0 => return invalid("slab_chunk_max must be >= 0".into()),
                    Some(n) => self.slab_chunk_max = i64::from(n),
                }
                self.slab_chunk_changed = true;
            }
            "slab_sizes" => {
                self.slab_sizes = Some(need("Missing slab_sizes argument")?.to_string());
            }
            "lru_crawler_sleep" => {
                let n = atoi(need("Missing lru_crawler_sleep value")?).0;
                if !(0..=1_000_000).contains(&n) {
                    return invalid("LRU crawler sleep must be between 0 and 1 second".into());
                }
                self.cfg.lru_crawler_sleep = Some(n as u32);
                return Ok(());
            }
            "lru_crawler_tocrawl" => {
                match whole_u32(need("Missing lru_crawler_tocrawl value")?) {
                    None => {
                        return invalid("lru_crawler_tocrawl takes a numeric 32bit value".into())
                    }
                    Some(n) => self.cfg.lru_crawler_tocrawl = Some(n),
                }
                return Ok(());
            }
            "hot_lru_pct" | "warm_lru_pct" => {
                let n = atoi(need(&missing_arg(name))?).0;
                if !(1..80).contains(&n) {
                    return invalid(format!("{name} must be > 1 and < 80"));
                }
                if name == "hot_lru_pct" {
                    self.hot_lru_pct = i64::from(n);
                } else {
                    self.warm_lru_pct = i64::from(n);
                }
            }
            "hot_max_factor" | "warm_max_factor" => {
                if atof(need(&missing_arg(name))?) <= 0.0 {
                    return invalid(format!("{name} must be > 0"));
                }
            }
            "temporary_ttl" => {
                need(&missing_arg(name))?;
            }
            "slab_automove" => {
                // (memcached reads a bare `slab_automove` as level 1)
                let level = value.map_or(1, |v| atoi(v).0);
                if !(0..=2).contains(&level) {
                    return invalid("slab_automove must be between 0 and 2".into());
                }
                self.cfg.slab_automove = level as u32;
                return Ok(());
            }
            "slab_automove_ratio" => {
                let f = atof(need(&missing_arg(name))?);
                if f <= 0.0 || f > 1.0 {
                    return invalid("slab_automove_ratio must be > 0 and < 1".into());
                }
            }
            "slab_automove_window" => {
                if atoi(need(&missing_arg(name))?).0 <= 2 {
                    return invalid("slab_automove_window must be > 2".into());
                }
            }
            "slab_automove_freeratio" | "ext_max_frag" => {
                if whole_f64(need(&missing_arg(name))?).is_none() {
                    return invalid(parse_fail(name));
                }
            }
            "ext_path" => {
                let v = need("missing argument to ext_path, ie: ext_path=/d/file:5G")?;
                if !v.contains(':') {
                    return invalid(
                        "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P \
                         supported)\nfailed to parse ext_path argument"
                            .into(),
                    );
                }
            }
            "ext_page_size" | "ext_wbuf_size" | "ext_threads" | "ext_item_size"
            | "ext_item_age" | "ext_low_ttl" | "ext_recache_rate" | "ext_compact_under"
            | "ext_drop_under" | "ext_max_sleep" => {
                if whole_u32(need(&missing_arg(name))?).is_none() {
                    return invalid(parse_fail(name));
                }
            }
            _ => return invalid(format!("Illegal suboption \"{item}\"")),
        }
        self.cfg.ignored_options.push(item.to_string());
        Ok(())
    }

    /// memcached's checks after the options, in memcached's order.
    fn finish(mut self) -> Result<Config, ConfigError> {
        let usage = |m: String| Err(ConfigError::Usage(m));
        if self.napi_ids > self.cfg.threads as i64 {
            return usage(format!(
                "Number of napi_ids({}) cannot be greater than number of threads({})",
                self.napi_ids, self.cfg.threads
            ));
        }
        let maxbytes = self.memory_mb * 1024 * 1024;
        let isz = self.item_size_max;
        if isz < ITEM_SIZE_MAX_LOWER_LIMIT {
            return usage("Item max size cannot be less than 1024 bytes.".into());
        }
        if isz > maxbytes / 2 {
            return usage("Cannot set item size limit higher than 1/2 of memory max.".into());
        }
        if isz > ITEM_SIZE_MAX_UPPER_LIMIT {
            return usage("Cannot set item size limit higher than a gigabyte.".into());
        }
        if isz > 1024 * 1024 && !self.slab_chunk_changed {
            self.slab_chunk_max = SLAB_PAGE_SIZE / 2;
        }
        let chunk = self.slab_chunk_max;
        if chunk > isz {
            return usage(format!(
                "slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {isz})"
            ));
        }
        if isz % chunk != 0 {
            return usage(format!(
                "-I (item_size_max: {isz}) must be evenly divisible by slab_chunk_max (bytes: {chunk})"
            ));
        }
        if SLAB_PAGE_SIZE % chunk != 0 {
            return usage(format!(
                "slab_chunk_max (bytes: {chunk}) must divide evenly into {SLAB_PAGE_SIZE} (slab_page_size)"
            ));
        }
        if let Some(list) = self.slab_sizes.take() {
            check_slab_sizes(&list, self.cfg.chunk_size as u64, chunk as u64)?;
        }
        if self.hot_lru_pct + self.warm_lru_pct > 80 {
            return usage("hot_lru_pct + warm_lru_pct cannot be more than 80% combined".into());
        }
        if self.cfg.auth_file.is_some() {
            if !self.protocol_specified {
                self.cfg.binding_protocol = "ascii".into();
            } else if self.cfg.binding_protocol != "ascii" {
                return usage(
                    "ERROR: You cannot allow the BINARY protocol while using ascii \
                     authentication tokens."
                        .into(),
                );
            }
        }
        if self.cfg.sasl {
            if !self.protocol_specified {
                self.cfg.binding_protocol = "binary".into();
            } else if self.cfg.binding_protocol != "binary" {
                return usage(
                    "ERROR: You cannot allow the ASCII protocol while using SASL.".into(),
                );
            }
            if self.udp_port != 0 {
                return usage(
                    "ERROR: Cannot enable UDP while using binary SASL authentication.".into(),
                );
            }
        }
        if self.udp_specified && self.udp_port != 0 && !self.tcp_specified {
            self.port = self.udp_port;
        }
        // memcached checks only the upper bound of -p and none of -U; a
        // negative or oversized port would be bound as some other number.
        for p in [self.port, self.udp_port] {
            if !(0..=65535).contains(&p) {
                return usage(format!("ERROR: Invalid port number {p}."));
            }
        }
        if self.cfg.tls.enabled && self.port == 0 {
            return usage("ERROR: You cannot enable SSL without a TCP port.".into());
        }
        if self.cfg.auth_file.is_some() && self.udp_port != 0 {
            return usage(
                "Cannot use UDP with ascii authentication enabled (-U 0 to disable)".into(),
            );
        }
        for entry in &self.cfg.listen {
            parse_listen_entry(entry, self.cfg.tls.enabled)?;
        }
        self.cfg.port = self.port as u16;
        self.cfg.udp_port = self.udp_port as u16;
        self.cfg.tcp_enabled = self.port != 0;
        self.cfg.memory_limit = maxbytes as usize;
        self.cfg.item_size_max = isz as usize;
        self.cfg.napi_ids = self.napi_ids as u32;
        self.cfg.warnings = self.warnings;
        let unkept = unkept_promises(&self.cfg, &self.unkept_options);
        if !unkept.is_empty() {
            return usage(unkept.join("\n"));
        }
        Ok(self.cfg)
    }
}

/// `-o` options whose meaning is a promise about capacity: the flash tier
/// (`ext_path`: items memcached would keep on flash would be evicted
/// instead). TLS (`ssl_*`) was one until it was built.
fn is_promise_option(name: &str) -> bool {
    name == "ext_path"
}

/// Fail closed: one line for each flag of `cfg` (and each `-o` option in
/// `options`) whose meaning is a promise this build does not keep, naming
/// the flag and what starting anyway would break. Empty when every promise
/// asked for is kept. memcached would honour each of these; starting
/// without doing so would leave an operator who moved the flag over from
/// memcached believing in a guarantee that is not there (a cold cache after
/// a restart with `-e`). `-Y` and TLS were among them until they were
/// built.
fn unkept_promises(cfg: &Config, options: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(file) = &cfg.memory_file {
        lines.push(format!(
            "ferrocache: -e {} (restartable memory file) is not supported yet: refusing to start \
             a cache that would be lost on restart",
            file.display()
        ));
    }
    for name in options {
        lines.push(format!(
            "ferrocache: -o {name} (extstore flash tier) is not supported yet: refusing to \
             start a cache that would evict what should go to flash"
        ));
    }
    lines
}

/// `-o slab_sizes=A-B-...`, checked as memcached checks it.
fn check_slab_sizes(list: &str, chunk_size: u64, chunk_max: u64) -> Result<(), ConfigError> {
    let usage = |m: String| Err(ConfigError::Usage(m));
    if list.is_empty() {
        return usage("slab_sizes: no sizes given".into());
    }
    let mut last = 0u64;
    let mut size;
    let mut count = 0;
    for part in list.split('-').filter(|p| !p.is_empty()) {
        // memcached reports the last good size when a part is not a number.
        // memcached's safe_strtoul leaves 0 behind when it fails.
        let parsed = whole_u32(part);
        size = parsed.map_or(0, u64::from);
        if parsed.is_none() || size < chunk_size || size > chunk_max {
            return usage(format!("slab size {size} is out of valid range"));
        }
        if last >= size {
            return usage(format!(
                "slab size {size} cannot be lower than or equal to a previous class size"
            ));
        }
        if size <= last + CHUNK_ALIGN_BYTES {
            return usage(format!(
                "slab size {size} must be at least {CHUNK_ALIGN_BYTES} bytes larger than previous class"
            ));
        }
        last = size;
        count += 1;
        if count >= MAX_SLAB_CLASSES - 1 {
            return usage("too many slab classes specified".into());
        }
    }
    Ok(())
}

/// `-V`'s text.
fn version() -> String {
    format!("ferrocache {}\n", clap::crate_version!())
}

/// `-h`'s text: every flag with its default, then the `-o` options.
fn usage() -> String {
    let mut text = command().render_help().to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

// ------------------------------------------------------------ --config-file

/// One option line of a config file such as `/etc/ferrocache.conf`.
#[derive(Debug, Clone, PartialEq)]
struct FileOption {
    /// 1-based, for messages.
    line: usize,
    /// The line as written, trimmed, for messages.
    text: String,
    /// clap id of the option.
    id: &'static str,
    /// One value per occurrence (`-vv` is two `None`s).
    values: Vec<Option<String>>,
}

impl FileOption {
    /// `file:line: "text"`, the prefix of every message about this line.
    fn place(&self, path: &Path) -> String {
        format!("{}:{}: \"{}\"", path.display(), self.line, self.text)
    }

    /// What is left of this line once the command line has had its say:
    /// nothing when the command line gives the same option, and for `-o`
    /// the items whose names the command line's `-o`s do not give. (A flag
    /// set in the file cannot be unset on the command line, as no flag has
    /// a negation; comment it out instead.)
    fn after_command_line(
        &self,
        cli: &[(usize, &'static str, Option<OsString>)],
    ) -> Option<Vec<Option<String>>> {
        if self.id != "extended" {
            return (!cli.iter().any(|o| o.1 == self.id)).then(|| self.values.clone());
        }
        let named: HashSet<String> = cli
            .iter()
            .filter(|o| o.1 == "extended")
            .filter_map(|o| o.2.as_deref().map(OsStr::to_string_lossy))
            .flat_map(|v| {
                v.split(',')
                    .map(|item| subopt_name(item).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let kept: Vec<Option<String>> = self
            .values
            .iter()
            .flatten()
            .filter_map(|v| {
                let items: Vec<&str> = v
                    .split(',')
                    .filter(|item| !named.contains(subopt_name(item)))
                    .collect();
                (!items.is_empty()).then(|| Some(items.join(",")))
            })
            .collect();
        (!kept.is_empty()).then_some(kept)
    }
}

/// `name` of an `-o` item `name=value`.
fn subopt_name(item: &str) -> &str {
    item.split_once('=').map_or(item, |(name, _)| name)
}

/// Reads a config file in `/etc/memcached.conf`'s format: one option per
/// line written as on the command line (`-m 64`, `--port=11211`, `-vv`);
/// blank lines and lines starting with `#` are skipped. Values are single
/// words (no quoting), so a line is split at blanks. Every option is checked
/// here as clap sees it; values are checked later, in order, by the parser.
fn read_config_file(path: &Path) -> Result<Vec<FileOption>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!("cannot read config file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, values) = parse_config_line(line).map_err(|msg| {
            ConfigError::Invalid(format!("{}:{}: \"{line}\": {msg}", path.display(), i + 1))
        })?;
        out.push(FileOption {
            line: i + 1,
            text: line.to_string(),
            id,
            values,
        });
    }
    Ok(out)
}

/// One config file line → its option's id and values, or why not.
fn parse_config_line(line: &str) -> Result<(&'static str, Vec<Option<String>>), String> {
    let mut argv: Vec<OsString> = vec!["ferrocache".into()];
    argv.extend(line.split_whitespace().map(OsString::from));
    let argv = normalize_verbose(argv);
    let matches = command().try_get_matches_from(&argv).map_err(|e| {
        // getopt's sentence without memcached's `Illegal argument "?"`.
        let err = clap_error("ferrocache", &argv, &e);
        let first = err.message().lines().next().unwrap_or_default();
        first.trim_start_matches("ferrocache: ").to_string()
    })?;
    if matches.get_raw("config-file").is_some() {
        return Err("--config-file cannot be used inside a config file".into());
    }
    let occ = occurrences(&matches);
    if let Some((_, _, word)) = occ.iter().find(|o| o.1 == "args") {
        let word = word
            .as_deref()
            .map(OsStr::to_string_lossy)
            .unwrap_or_default();
        return Err(if word.starts_with('#') {
            "a comment must be on a line of its own".to_string()
        } else if word == "logfile" {
            // Debian's /etc/memcached.conf has this line for its wrapper.
            "'logfile' is not an option (Debian's memcached wrapper reads it); \
             ferrocache logs to stderr, which systemd sends to the journal"
                .to_string()
        } else {
            format!(
                "'{word}' is not an option; write one option per line as on the \
                 command line, e.g. -m 64"
            )
        });
    }
    let Some(&(_, id, _)) = occ.first() else {
        return Err("no option on this line".into());
    };
    if occ.iter().any(|o| o.1 != id) {
        return Err("more than one option on this line; write one per line".into());
    }
    if matches!(id, "help" | "version" | "license") {
        return Err("this option prints and exits; it has no place in a config file".into());
    }
    let values = occ
        .into_iter()
        .map(|o| o.2.map(|v| v.to_string_lossy().into_owned()))
        .collect();
    Ok((id, values))
}

impl Parser {
    /// [`Parser::apply`] for a config file line: errors and notes name the
    /// file and line; an error keeps its kind (and so its exit status).
    fn apply_from_file(
        &mut self,
        path: &Path,
        line: &FileOption,
        values: Vec<Option<String>>,
    ) -> Result<(), ConfigError> {
        for value in values {
            let before = self.warnings.len();
            self.apply(line.id, value.map(OsString::from))
                .map_err(|e| {
                    let msg = format!("{}: {}", line.place(path), e.message());
                    match e {
                        ConfigError::Usage(_) => ConfigError::Usage(msg),
                        ConfigError::Invalid(_) | ConfigError::Exit(_) => ConfigError::Invalid(msg),
                    }
                })?;
            for w in &mut self.warnings[before..] {
                *w = format!("{}: {w}", line.place(path));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("memcached").chain(args.iter().copied()))
    }

    type Edit = fn(&mut Config);

    /// argv → the default config with these edits, compared whole.
    #[test]
    fn accepted_command_lines() {
        let table: Vec<(&[&str], Edit)> = vec![
            (&[], |_| {}),
            (&["-p", "12345"], |c| c.port = 12345),
            (&["--port=12345"], |c| c.port = 12345),
            (&["--port", "12345"], |c| c.port = 12345),
            (&["-p12345"], |c| c.port = 12345),
            (&["--po=12345"], |c| c.port = 12345),
            (&["-p", "1", "-p", "2"], |c| c.port = 2),
            (&["-p", "0"], |c| {
                c.port = 0;
                c.tcp_enabled = false;
            }),
            (&["-p", "abc"], |c| {
                c.port = 0;
                c.tcp_enabled = false;
                c.warnings = vec![
                    "note: -p 'abc' is not a plain number; read as 0 (as memcached does)".into(),
                ];
            }),
            (&["-p", "11300x"], |c| {
                c.port = 11300;
                c.warnings = vec![
                    "note: -p '11300x' is not a plain number; read as 11300 (as memcached does)"
                        .into(),
                ];
            }),
            (&["-p", "65535"], |c| c.port = 65535),
            // -U alone moves TCP there too; with -p it does not.
            (&["-U", "11299"], |c| {
                c.udp_port = 11299;
                c.port = 11299;
            }),
            (&["--udp-port=11299", "-p", "5"], |c| {
                c.udp_port = 11299;
                c.port = 5;
            }),
            (&["-U", "0"], |_| {}),
            (&["-s", "/tmp/mc.sock"], |c| {
                c.unix_socket = Some("/tmp/mc.sock".into())
            }),
            (&["--unix-socket", "/x"], |c| {
                c.unix_socket = Some("/x".into())
            }),
            (&["-a", "770"], |c| c.unix_mask = 0o770),
            (&["--unix-mask=0644"], |c| c.unix_mask = 0o644),
            (&["-A"], |c| c.enable_shutdown = true),
            (&["--enable-shutdown"], |c| c.enable_shutdown = true),
            (&["-l", "10.0.0.1"], |c| c.listen = vec!["10.0.0.1".into()]),
            (&["-l", "10.0.0.1,10.0.0.2", "-l", "::1"], |c| {
                c.listen = vec!["10.0.0.1".into(), "10.0.0.2".into(), "::1".into()]
            }),
            (&["-l", "a;b,a", "--listen", "[::1]:5"], |c| {
                c.listen = vec!["a".into(), "b".into(), "[::1]:5".into()]
            }),
            (&["-l", "*:11300"], |c| c.listen = vec!["*:11300".into()]),
            (&["-l", ""], |c| c.listen = vec![]),
            (&["-d"], |c| c.daemonize = true),
            (&["--daemon"], |c| c.daemonize = true),
            (&["-r"], |c| c.enable_coredumps = true),
            (&["--enable-coredumps"], |c| c.enable_coredumps = true),
            (&["-u", "memcache"], |c| c.user = Some("memcache".into())),
            (&["--user=nobody"], |c| c.user = Some("nobody".into())),
            (&["-u", ""], |c| c.user = None),
            (&["-u", "-d"], |c| c.user = Some("-d".into())),
            (&["-m", "128"], |c| c.memory_limit = 128 * 1024 * 1024),
            (&["--memory-limit=2048"], |c| {
                c.memory_limit = 2048 * 1024 * 1024
            }),
            // memcached 1.6.18 takes no suffix on -m: "64k" is 64 MB.
            (&["-m", "64k"], |c| {
                c.warnings = vec![
                    "note: -m '64k' is not a plain number; read as 64 (as memcached does)".into(),
                ]
            }),
            (&["-m", "2m"], |c| {
                c.memory_limit = 2 * 1024 * 1024;
                c.warnings = vec![
                    "note: -m '2m' is not a plain number; read as 2 (as memcached does)".into(),
                ]
            }),
            (&["-M"], |c| c.no_evict = true),
            (&["--disable-evictions"], |c| c.no_evict = true),
            (&["-c", "4096"], |c| c.max_connections = 4096),
            (&["--conn-limit=1"], |c| c.max_connections = 1),
            (&["-k"], |c| c.lock_memory = true),
            (&["--lock-memory"], |c| c.lock_memory = true),
            (&["-v"], |c| c.verbosity = 1),
            (&["-vv"], |c| c.verbosity = 2),
            (&["-vvv"], |c| c.verbosity = 3),
            (&["-v", "-v", "--verbose"], |c| c.verbosity = 3),
            (&["--verbose=2"], |c| c.verbosity = 1),
            (&["-vvvvv"], |c| c.verbosity = 5),
            (&["-P", "/run/mc.pid"], |c| {
                c.pid_file = Some("/run/mc.pid".into())
            }),
            (&["--pidfile=/x.pid"], |c| {
                c.pid_file = Some("/x.pid".into())
            }),
            (&["-f", "1.08"], |c| c.growth_factor = 1.08),
            (&["--slab-growth-factor=2"], |c| c.growth_factor = 2.0),
            (&["-n", "96"], |c| c.chunk_size = 96),
            (&["--slab-min-size=32"], |c| c.chunk_size = 32),
            (&["-D", "/"], |c| {
                c.stat_key_prefix = '/';
                c.detail_enabled = true;
            }),
            (&["-L"], |c| c.large_pages = true),
            (&["--enable-largepages"], |c| c.large_pages = true),
            (&["-t", "8"], |c| c.threads = 8),
            (&["--threads=1"], |c| c.threads = 1),
            (&["-t", "65"], |c| {
                c.threads = 65;
                c.warnings = vec![
                    "WARNING: Setting a high number of workerthreads is not recommended.\n \
                     Set this value to the number of cores in your machine or less."
                        .into(),
                ];
            }),
            (&["-R", "5"], |c| c.reqs_per_event = 5),
            (&["--max-reqs-per-event=100"], |c| c.reqs_per_event = 100),
            (&["-C"], |c| c.use_cas = false),
            (&["--disable-cas"], |c| c.use_cas = false),
            (&["-b", "128"], |c| c.backlog = 128),
            (&["--listen-backlog=-1"], |c| c.backlog = -1),
            (&["-B", "ascii"], |c| c.binding_protocol = "ascii".into()),
            (&["-B", "binary"], |c| c.binding_protocol = "binary".into()),
            (&["--protocol=auto"], |c| c.binding_protocol = "auto".into()),
            (&["-S"], |c| {
                c.sasl = true;
                c.binding_protocol = "binary".into();
            }),
            (&["--enable-sasl", "-B", "binary"], |c| {
                c.sasl = true;
                c.binding_protocol = "binary".into();
            }),
            (&["-I", "2m"], |c| c.item_size_max = 2 * 1024 * 1024),
            (&["-I", "2M"], |c| c.item_size_max = 2 * 1024 * 1024),
            (&["-I", "512k"], |c| c.item_size_max = 512 * 1024),
            (&["-I", "1536K"], |c| c.item_size_max = 1536 * 1024),
            (&["-I", "1048576"], |c| c.item_size_max = 1024 * 1024),
            (&["-I", " 2m"], |c| c.item_size_max = 2 * 1024 * 1024),
            (&["--max-item-size=4m"], |c| {
                c.item_size_max = 4 * 1024 * 1024
            }),
            (&["-I", "1024m", "-m", "8000"], |c| {
                c.item_size_max = 1024 * 1024 * 1024;
                c.memory_limit = 8000 * 1024 * 1024;
            }),
            (&["-I", "2k", "-o", "slab_chunk_max=16"], |c| {
                c.item_size_max = 2048;
                c.ignored_options = vec!["slab_chunk_max=16".into()];
            }),
            (&["-I", "1m", "-o", "no_chunked_items"], |c| {
                c.ignored_options = vec!["no_chunked_items".into()];
            }),
            (&["-F"], |c| c.disable_flush = true),
            (&["--disable-flush-all"], |c| c.disable_flush = true),
            (&["-X"], |c| c.disable_dumping = true),
            (&["--disable-dumping"], |c| c.disable_dumping = true),
            (&["-W"], |c| c.disable_watch = true),
            (&["--disable-watch"], |c| c.disable_watch = true),
            (&["-Y", "/etc/auth"], |c| {
                c.auth_file = Some("/etc/auth".into());
                c.binding_protocol = "ascii".into();
            }),
            (&["--auth-file=/a", "-B", "ascii"], |c| {
                c.auth_file = Some("/a".into());
                c.binding_protocol = "ascii".into();
            }),
            (&["-N", "2"], |c| c.napi_ids = 2),
            (&["--napi-ids=4"], |c| c.napi_ids = 4),
            (&["--napi_ids=4"], |c| c.napi_ids = 4),
            (&["-o", "idle_timeout=30"], |c| c.idle_timeout = 30),
            (&["--extended=idle_timeout=30"], |c| c.idle_timeout = 30),
            (&["-o", "item_size_max=2m"], |c| {
                c.item_size_max = 2 * 1024 * 1024
            }),
            (&["-o", ""], |_| {}),
            (&["-o", "idle_timeout=5,"], |c| c.idle_timeout = 5),
            // The crawler's options are honoured, so typed, not "ignored".
            (&["-o", "no_lru_crawler,lru_crawler"], |_| {}),
            (&["-o", "lru_crawler,no_lru_crawler"], |c| {
                c.lru_crawler = false
            }),
            (&["-o", "lru_crawler_sleep=0"], |c| {
                c.lru_crawler_sleep = Some(0)
            }),
            (&["-o", "lru_crawler_tocrawl=7"], |c| {
                c.lru_crawler_tocrawl = Some(7)
            }),
            (&["-o", "slab_automove"], |c| c.slab_automove = 1),
            (&["-o", "slab_automove=0"], |c| c.slab_automove = 0),
            (&["-o", "slab_automove=2"], |c| c.slab_automove = 2),
            (
                &[
                    "-o",
                    "modern,hashpower=20",
                    "-o",
                    "idle_timeout=9,lru_crawler",
                ],
                |c| {
                    c.idle_timeout = 9;
                    c.ignored_options = vec!["modern".into(), "hashpower=20".into()];
                },
            ),
            (
                &[
                    "-o",
                    "maxconns_fast,no_maxconns_fast,tail_repair_time=10,no_lru_crawler,\
                     lru_crawler_sleep=100,lru_crawler_tocrawl=0,lru_maintainer,\
                     no_lru_maintainer,hot_lru_pct=20,warm_lru_pct=40,hot_max_factor=0.2,\
                     warm_max_factor=2.0,temporary_ttl=61,watcher_logbuf_size=256,\
                     worker_logbuf_size=64,slab_reassign,no_slab_reassign,slab_automove=1,\
                     slab_automove_ratio=0.8,slab_automove_window=30,track_sizes,\
                     no_inline_ascii_resp,inline_ascii_resp,no_hashexpand,\
                     hash_algorithm=murmur3,read_buf_mem_limit=3,drop_privileges,\
                     no_drop_privileges,meta_response_old,slab_sizes=100-200",
                ],
                |c| {
                    c.lru_crawler = false;
                    c.lru_crawler_sleep = Some(100);
                    c.lru_crawler_tocrawl = Some(0);
                    c.slab_automove = 1;
                    c.read_buf_mem_limit = 3 << 20;
                    c.ignored_options = "maxconns_fast,no_maxconns_fast,tail_repair_time=10,\
                        lru_maintainer,no_lru_maintainer,hot_lru_pct=20,warm_lru_pct=40,\
                        hot_max_factor=0.2,warm_max_factor=2.0,temporary_ttl=61,\
                        watcher_logbuf_size=256,worker_logbuf_size=64,slab_reassign,\
                        no_slab_reassign,slab_automove_ratio=0.8,\
                        slab_automove_window=30,track_sizes,no_inline_ascii_resp,\
                        inline_ascii_resp,no_hashexpand,hash_algorithm=murmur3,\
                        drop_privileges,no_drop_privileges,\
                        meta_response_old,slab_sizes=100-200"
                        .split(',')
                        .map(String::from)
                        .collect();
                },
            ),
            (&["-o", "metrics_listen=[::1]:9150"], |c| {
                c.metrics_listen = Some("[::1]:9150".parse().unwrap());
            }),
            (&["-o", "resp_obj_mem_limit"], |c| {
                c.ignored_options = vec!["resp_obj_mem_limit".into()];
                c.warnings = vec![
                    "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,".into(),
                ];
            }),
            (&["stray"], |c| {
                c.warnings = vec![
                    "note: ignoring 'stray', which is not an option (as memcached does)".into(),
                ]
            }),
            // The Debian unit's command line.
            (
                &[
                    "-m",
                    "64",
                    "-p",
                    "11211",
                    "-u",
                    "memcache",
                    "-l",
                    "127.0.0.1",
                    "-P",
                    "/var/run/memcached/memcached.pid",
                ],
                |c| {
                    c.user = Some("memcache".into());
                    c.pid_file = Some("/var/run/memcached/memcached.pid".into());
                },
            ),
            (&["-dvp", "11300", "-c4096"], |c| {
                c.daemonize = true;
                c.verbosity = 1;
                c.port = 11300;
                c.max_connections = 4096;
            }),
        ];
        for (argv, edit) in table {
            let mut want = Config::default();
            edit(&mut want);
            match parse(argv) {
                Ok(got) => assert_eq!(got, want, "argv {argv:?}"),
                Err(e) => panic!("argv {argv:?} refused: {e}"),
            }
        }
    }

    /// Fail closed: a flag whose meaning is a promise this build does not
    /// keep is refused with exit 64 and a line naming it, after memcached's
    /// own checks of its syntax (which still come first, with memcached's
    /// words). Each case is one that memcached 1.6.18 starts with.
    /// `-Z` and the `ssl_*` options are typed as memcached reads them; the
    /// verify mode prints as OpenSSL's flags in `stats settings`.
    #[test]
    fn tls_options_are_typed() {
        let cfg = parse(&[
            "-Z",
            "-o",
            "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_verify_mode=2,ssl_ca_cert=/ca.pem,\
             ssl_ciphers=ECDHE-RSA-AES128-GCM-SHA256,ssl_wbuf_size=32,ssl_session_cache,\
             ssl_min_version=3,ssl_keyformat=2",
            "-l",
            "127.0.0.1,notls:127.0.0.1:7",
        ])
        .unwrap();
        let t = &cfg.tls;
        assert!(t.enabled && t.session_cache && !t.kernel_tls);
        assert_eq!(t.chain_cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(t.key.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(t.ca_cert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(t.ciphers.as_deref(), Some("ECDHE-RSA-AES128-GCM-SHA256"));
        assert_eq!((t.wbuf_kib, t.key_format), (32, KEYFORMAT_DER));
        assert_eq!(t.verify_mode, VerifyMode::Require);
        assert_eq!(t.verify_mode.openssl_flags(), 3);
        assert_eq!(t.min_version, TlsVersion::Tls13);
        let notls: Vec<bool> = cfg
            .listen_addrs()
            .unwrap()
            .iter()
            .map(|a| a.notls)
            .collect();
        assert_eq!(notls, [false, true]);
        // memcached's defaults, and its refusals
        let d = parse(&[]).unwrap().tls;
        assert!(!d.enabled);
        assert_eq!(
            (d.wbuf_kib, d.min_version, d.verify_mode),
            (16, TlsVersion::Tls12, VerifyMode::None)
        );
        for (opt, msg) in [
            (
                "ssl_min_version=tlsv1.3",
                "could not parse argument to ssl_min_version",
            ),
            (
                "ssl_keyformat=PEM",
                "could not parse argument to ssl_keyformat",
            ),
            (
                "ssl_verify_mode=4",
                "Invalid ssl_verify_mode. Use help to see valid options.",
            ),
            ("ssl_ciphers", "Missing ssl_ciphers argument"),
        ] {
            match parse(&["-Z", "-o", opt]) {
                Err(ConfigError::Invalid(m)) => assert_eq!(m, msg, "{opt}"),
                other => panic!("{opt}: {other:?}"),
            }
        }
    }

    #[test]
    fn unkept_promises_are_refused() {
        let table: &[(&[&str], &[&str])] = &[
            (
                &["-e", "/dev/shm/mc"],
                &["-e /dev/shm/mc (restartable memory file)"],
            ),
            (&["--memory-file=/m"], &["-e /m (restartable memory file)"]),
            (
                &["-o", "ext_path=/d/f:64m,ext_page_size=64"],
                &["-o ext_path (extstore"],
            ),
            (
                &["-e", "/m", "-Y", "/a", "-o", "ext_path=/d:1g"],
                &["-e /m (restartable", "-o ext_path (extstore"],
            ),
        ];
        for (args, wanted) in table {
            match parse(args) {
                Err(ConfigError::Usage(msg)) => {
                    let lines: Vec<&str> = msg.lines().collect();
                    assert_eq!(lines.len(), wanted.len(), "{args:?}: {msg}");
                    for (line, want) in lines.iter().zip(wanted.iter()) {
                        assert!(
                            line.starts_with(&format!("ferrocache: {want}")),
                            "{args:?}: {line:?} should start with {want:?}"
                        );
                        assert!(line.contains("refusing to start"), "{args:?}: {line}");
                    }
                }
                other => panic!("{args:?} must be refused with exit 64, got {other:?}"),
            }
        }
        // memcached's own refusals keep their words and come first.
        let binary = parse(&["-Y", "/a", "-B", "binary"]).unwrap_err();
        assert!(binary
            .message()
            .starts_with("ERROR: You cannot allow the BINARY"));
        let udp = parse(&["-Y", "/a", "-U", "11211"]).unwrap_err();
        assert!(udp.message().starts_with("Cannot use UDP with ascii"));
        let bad = parse(&["-o", "ext_path=/tmp/x"]).unwrap_err();
        assert!(bad.message().starts_with("must supply size to ext_path"));
        // Tuning knobs that promise nothing stay accepted.
        assert!(parse(&["-o", "ext_page_size=64,hashpower=20,no_lru_maintainer"]).is_ok());
    }

    /// argv → memcached 1.6.18's refusal (wording and exit status checked
    /// against /usr/bin/memcached).
    #[test]
    fn refused_command_lines() {
        let inv = |s: &str| ConfigError::Invalid(s.to_string());
        let use_ = |s: &str| ConfigError::Usage(s.to_string());
        let table: Vec<(&[&str], ConfigError)> = vec![
            (&["-c", "0"], inv("Maximum connections must be greater than 0")),
            (&["-c", "-5"], inv("Maximum connections must be greater than 0")),
            (&["-c", "abc"], inv("Maximum connections must be greater than 0")),
            (&["-t", "0"], inv("Number of threads must be greater than 0")),
            (&["-t", "-1"], inv("Number of threads must be greater than 0")),
            (&["-R", "0"], inv("Number of requests per event must be greater than 0")),
            (&["-f", "1"], inv("Factor must be greater than 1")),
            (&["-f", "abc"], inv("Factor must be greater than 1")),
            (&["-n", "0"], inv("Chunk size must be greater than 0")),
            (&["-D", ""], inv("No delimiter specified")),
            (&["-N", "0"], inv("Maximum number of NAPI IDs must be greater than 0")),
            (
                &["-N", "5"],
                use_("Number of napi_ids(5) cannot be greater than number of threads(4)"),
            ),
            (
                &["-B", "http"],
                use_("Invalid value for binding protocol: http\n -- should be one of auto, binary, or ascii"),
            ),
            (
                &["-S", "-B", "auto"],
                use_("ERROR: You cannot allow the ASCII protocol while using SASL."),
            ),
            (
                &["--enable-sasl", "-B", "ascii"],
                use_("ERROR: You cannot allow the ASCII protocol while using SASL."),
            ),
            (
                &["-S", "-U", "11211"],
                use_("ERROR: Cannot enable UDP while using binary SASL authentication."),
            ),
            // Options apply in order: the first bad one is reported.
            (&["-c", "0", "-t", "0"], inv("Maximum connections must be greater than 0")),
            (&["-t", "0", "-c", "0"], inv("Number of threads must be greater than 0")),
            (&["-c", "0", "-B", "http"], inv("Maximum connections must be greater than 0")),
            (&["-c", "0", "-h"], inv("Maximum connections must be greater than 0")),
            // -I: suffixes, bounds and memcached's slab arithmetic.
            (
                &["-I", "2k"],
                use_("slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 2048)"),
            ),
            (&["-I", "2g"], use_("Item max size cannot be less than 1024 bytes.")),
            (&["-I", "1000"], use_("Item max size cannot be less than 1024 bytes.")),
            (&["-I", "-1"], use_("Item max size cannot be less than 1024 bytes.")),
            (&["-I", ""], use_("Item max size cannot be less than 1024 bytes.")),
            (&["-I", "2048m"], use_("Item max size cannot be less than 1024 bytes.")),
            (&["-I", "3m", "-m", "4"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-I", "64m"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-m", "1"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-m", "0"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-m", "1g"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-m", "abc"], use_("Cannot set item size limit higher than 1/2 of memory max.")),
            (&["-I", "1025m", "-m", "8000"], use_("Cannot set item size limit higher than a gigabyte.")),
            (&["-I", "2000m", "-m", "8000"], use_("Cannot set item size limit higher than a gigabyte.")),
            (
                &["-I", "700k"],
                use_("-I (item_size_max: 716800) must be evenly divisible by slab_chunk_max (bytes: 524288)"),
            ),
            (
                &["-I", "512k", "-o", "no_modern"],
                use_("slab_chunk_max (bytes: 1048576) cannot be larger than -I (item_size_max 524288)"),
            ),
            (
                &["-o", "slab_chunk_max=2000"],
                use_("-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 2000)"),
            ),
            (
                &["-I", "2k", "-N", "9"],
                use_("Number of napi_ids(9) cannot be greater than number of threads(4)"),
            ),
            (&["-p", "65536"], use_("ERROR: Invalid port number 65536.")),
            (&["-Z", "-p", "0"], use_("ERROR: You cannot enable SSL without a TCP port.")),
            (&["-p", "99999"], use_("ERROR: Invalid port number 99999.")),
            (&["-U", "70000"], use_("ERROR: Invalid port number 70000.")),
            (&["-p", "-1"], use_("ERROR: Invalid port number -1.")),
            (&["-m", "-5"], use_("Memory limit must not be negative: -m -5")),
            (
                &["-Y", "/x", "-B", "binary"],
                use_("ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens."),
            ),
            (
                &["-Y", "/x", "-U", "5"],
                use_("Cannot use UDP with ascii authentication enabled (-U 0 to disable)"),
            ),
            // -o
            (&["-o", "bogus"], inv("Illegal suboption \"bogus\"")),
            (&["-o", "metrics_listen"], inv("Missing metrics_listen argument")),
            (
                &["-o", "metrics_listen=localhost"],
                inv("metrics_listen wants an IP address and port (127.0.0.1:9150), not \"localhost\""),
            ),
            (&["-o", "bogus=5"], inv("Illegal suboption \"bogus=5\"")),
            (&["-o", "bogus,idle_timeout=5"], inv("Illegal suboption \"bogus\"")),
            (&["-o", "idle_timeout=5,bogus"], inv("Illegal suboption \"bogus\"")),
            (&["-o", ","], inv("Illegal suboption \"\"")),
            (&["-o", "idle_timeout=5,,track_sizes"], inv("Illegal suboption \"\"")),
            (&["-o", "IDLE_TIMEOUT=5"], inv("Illegal suboption \"IDLE_TIMEOUT=5\"")),
            (&["-o", "item_lock_power"], inv("Illegal suboption \"item_lock_power\"")),
            (&["-o", "ext_bogus"], inv("Illegal suboption \"ext_bogus\"")),
            (&["-o", "idle_timeout"], inv("Missing numeric argument for idle_timeout")),
            (&["-o", "hashpower"], inv("Missing numeric argument for hashpower")),
            (&["-o", "hashpower=5"], inv("Initial hashtable multiplier of 5 is too low")),
            (&["-o", "hashpower=x"], inv("Initial hashtable multiplier of 0 is too low")),
            (
                &["-o", "hashpower=33"],
                inv("Initial hashtable multiplier of 33 is too high\nChoose a value based on \"STAT hash_power_level\" from a running instance"),
            ),
            (&["-o", "tail_repair_time=5"], inv("Cannot set tail_repair_time to less than 10 seconds")),
            (&["-o", "hash_algorithm"], inv("Missing hash_algorithm argument")),
            (&["-o", "hash_algorithm=foo"], inv("Unknown hash_algorithm option (jenkins, murmur3, xxh3)")),
            (&["-o", "watcher_logbuf_size"], inv("Missing watcher_logbuf_size argument")),
            (&["-o", "worker_logbuf_size=x"], inv("could not parse argument to worker_logbuf_size")),
            (&["-o", "read_buf_mem_limit=-1"], inv("could not parse argument to read_buf_mem_limit")),
            (&["-o", "lru_crawler_sleep"], inv("Missing lru_crawler_sleep value")),
            (&["-o", "lru_crawler_sleep=1000001"], inv("LRU crawler sleep must be between 0 and 1 second")),
            (&["-o", "lru_crawler_tocrawl=5x"], inv("lru_crawler_tocrawl takes a numeric 32bit value")),
            (&["-o", "hot_lru_pct=80"], inv("hot_lru_pct must be > 1 and < 80")),
            (&["-o", "warm_lru_pct=x"], inv("warm_lru_pct must be > 1 and < 80")),
            (&["-o", "hot_max_factor=0"], inv("hot_max_factor must be > 0")),
            (&["-o", "temporary_ttl"], inv("Missing temporary_ttl argument")),
            (&["-o", "slab_automove=5"], inv("slab_automove must be between 0 and 2")),
            (&["-o", "slab_automove_ratio=0"], inv("slab_automove_ratio must be > 0 and < 1")),
            (&["-o", "slab_automove_window=2"], inv("slab_automove_window must be > 2")),
            (&["-o", "slab_chunk_max=x"], inv("could not parse argument to slab_chunk_max")),
            (&["-o", "ssl_verify_mode=4"], inv("Invalid ssl_verify_mode. Use help to see valid options.")),
            (&["-o", "ssl_key"], inv("Missing ssl_key argument")),
            (&["-o", "ext_page_size=5x"], inv("could not parse argument to ext_page_size")),
            (&["-o", "ext_path"], inv("missing argument to ext_path, ie: ext_path=/d/file:5G")),
            (
                &["-o", "ext_path=/tmp/x"],
                inv("must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\nfailed to parse ext_path argument"),
            ),
            (
                &["-o", "hot_lru_pct=50,warm_lru_pct=50"],
                use_("hot_lru_pct + warm_lru_pct cannot be more than 80% combined"),
            ),
            (&["-o", "slab_sizes=10-20"], use_("slab size 10 is out of valid range")),
            (&["-o", "slab_sizes=x"], use_("slab size 0 is out of valid range")),
            (&["-o", "slab_sizes=100-x"], use_("slab size 0 is out of valid range")),
            (
                &["-B", " ascii"],
                use_("Invalid value for binding protocol:  ascii\n -- should be one of auto, binary, or ascii"),
            ),
            (
                &["--ver"],
                inv("memcached: option '--ver' is ambiguous; possibilities: '--version' '--verbose'\nIllegal argument \"?\""),
            ),
            (&["-o", "slab_sizes=100-600000"], use_("slab size 600000 is out of valid range")),
            (
                &["-o", "slab_sizes=200-100"],
                use_("slab size 100 cannot be lower than or equal to a previous class size"),
            ),
            (
                &["-o", "slab_sizes=100-104"],
                use_("slab size 104 must be at least 8 bytes larger than previous class"),
            ),
            // -l, checked at parse time (memcached: when binding, exit 71).
            (
                &["-l", "127.0.0.1:abc"],
                use_("Invalid port number: \"abc\"\nfailed to listen on one of interface(s) 127.0.0.1:abc"),
            ),
            (
                &["-l", "[::1"],
                use_("Invalid IPV6 address: \"[::1\"\nfailed to listen on one of interface(s) [::1"),
            ),
            (
                &["-l", "notls:127.0.0.1"],
                use_("'notls' option is valid only when SSL is enabled\nfailed to listen on one of interface(s) notls:127.0.0.1"),
            ),
            // getopt's own complaints.
            (&["-z"], inv("memcached: invalid option -- 'z'\nIllegal argument \"?\"")),
            (&["--bogus"], inv("memcached: unrecognized option '--bogus'\nIllegal argument \"?\"")),
            (&["-p"], inv("memcached: option requires an argument -- 'p'\nIllegal argument \"?\"")),
            (&["--port"], inv("memcached: option '--port' requires an argument\nIllegal argument \"?\"")),
            (
                &["--mem=5"],
                inv("memcached: option '--mem=5' is ambiguous; possibilities: '--memory-limit' '--memory-file'\nIllegal argument \"?\""),
            ),
        ];
        for (argv, want) in table {
            assert_eq!(parse(argv), Err(want.clone()), "argv {argv:?}");
            let code = match want {
                ConfigError::Invalid(_) => 1,
                ConfigError::Usage(_) => 64,
                ConfigError::Exit(_) => 0,
            };
            assert_eq!(parse(argv).unwrap_err().exit_code(), code);
        }
    }

    #[test]
    fn help_lists_every_flag_with_defaults() {
        let Err(ConfigError::Exit(text)) = parse(&["-h"]) else {
            panic!("-h should exit");
        };
        assert_eq!(parse(&["--help"]), Err(ConfigError::Exit(text.clone())));
        // -h wins over a bad option that comes after it, as in memcached.
        assert_eq!(
            parse(&["-h", "-c", "0"]),
            Err(ConfigError::Exit(text.clone()))
        );
        for flag in [
            "-p, --port",
            "-U, --udp-port",
            "-s, --unix-socket",
            "-a, --unix-mask",
            "-A, --enable-shutdown",
            "-l, --listen",
            "-d, --daemon",
            "-r, --enable-coredumps",
            "-u, --user",
            "-m, --memory-limit",
            "-M, --disable-evictions",
            "-c, --conn-limit",
            "-k, --lock-memory",
            "-v, --verbose",
            "-h, --help",
            "-i, --license",
            "-V, --version",
            "-P, --pidfile",
            "-f, --slab-growth-factor",
            "-n, --slab-min-size",
            "-D <CHAR>",
            "-L, --enable-largepages",
            "-t, --threads",
            "-R, --max-reqs-per-event",
            "-C, --disable-cas",
            "-b, --listen-backlog",
            "-B, --protocol",
            "-I, --max-item-size",
            "-S, --enable-sasl",
            "-F, --disable-flush-all",
            "-X, --disable-dumping",
            "-W, --disable-watch",
            "-Y, --auth-file",
            "-e, --memory-file",
            "-o, --extended",
            "-N, --napi-ids",
            "idle_timeout=",
            "item_size_max=",
        ] {
            assert!(text.contains(flag), "help lacks {flag}:\n{text}");
        }
        for default in [
            "[default: 11211]",
            "[default: 0]",
            "[default: 700]",
            "[default: 127.0.0.1]",
            "[default: 64]",
            "[default: 1024]",
            "[default: 1.25]",
            "[default: 48]",
            "[default: :]",
            "[default: 4]",
            "[default: 20]",
            "[default: auto]",
            "[default: 1m]",
        ] {
            assert!(text.contains(default), "help lacks {default}:\n{text}");
        }
        assert!(!text.contains('\u{1b}'), "no terminal styling in -h");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn version_and_license_exit() {
        let want = format!("ferrocache {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(parse(&["-V"]), Err(ConfigError::Exit(want.clone())));
        assert_eq!(parse(&["--version"]), Err(ConfigError::Exit(want.clone())));
        assert_eq!(parse(&["-V", "-p", "abc"]), Err(ConfigError::Exit(want)));
        let Err(ConfigError::Exit(lic)) = parse(&["-i"]) else {
            panic!("-i should exit");
        };
        assert!(lic.contains("MIT"));
        assert_eq!(ConfigError::Exit(lic).exit_code(), 0);
    }

    #[test]
    fn listen_entries_split_like_memcached() {
        let cases: &[(&str, Option<&str>, Option<u16>)] = &[
            ("127.0.0.1", Some("127.0.0.1"), None),
            ("127.0.0.1:11300", Some("127.0.0.1"), Some(11300)),
            ("localhost:5", Some("localhost"), Some(5)),
            ("::1", Some("::1"), None),
            ("fe80::1:2", Some("fe80::1:2"), None),
            ("[::1]", Some("::1"), None),
            ("[::1]:11300", Some("::1"), Some(11300)),
            ("*", None, None),
            ("*:11300", None, Some(11300)),
        ];
        for &(entry, host, port) in cases {
            let got = parse_listen_entry(entry, false).unwrap();
            assert_eq!(got.host.as_deref(), host, "{entry}");
            assert_eq!(got.port, port, "{entry}");
        }
        assert!(parse_listen_entry("1.2.3.4:99999", false).is_err());
        // under -Z, `notls:` marks a plain listener; without, it is refused
        let plain = parse_listen_entry("notls:127.0.0.1:5", true).unwrap();
        assert_eq!(
            (plain.host.as_deref(), plain.port, plain.notls),
            (Some("127.0.0.1"), Some(5), true)
        );
        assert!(!parse_listen_entry("127.0.0.1", true).unwrap().notls);
        assert!(parse_listen_entry("notls:127.0.0.1", false).is_err());
        let cfg = parse(&["-l", "127.0.0.1:1,[::1]:2"]).unwrap();
        let addrs = cfg.listen_addrs().unwrap();
        assert_eq!(addrs[0].port, Some(1));
        assert_eq!(addrs[1].host.as_deref(), Some("::1"));
    }

    #[test]
    fn numbers_read_like_c() {
        // (the readers themselves are tested in `cnum`)
        assert_eq!(item_size("2k"), (2048, true));
        assert_eq!(item_size("2g"), (2, false));
        assert_eq!(item_size("2048m").0, i64::from(i32::MIN));
    }

    /// A config file in the temp directory, removed when dropped.
    struct TempConf(PathBuf);

    impl TempConf {
        fn new(name: &str, text: &str) -> TempConf {
            let path = std::env::temp_dir().join(format!(
                "ferrocache-config-test-{}-{name}.conf",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            TempConf(path)
        }

        fn arg(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempConf {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn config_file_is_read_like_memcached_conf() {
        let conf = TempConf::new(
            "format",
            "# ferrocache settings\n\
             \n\
             -m 128\n\
             \t  # an indented comment\n\
             --port=12000\r\n\
             -l 127.0.0.2\n\
             \t-c   77  \n\
             -u ferrocache\n\
             -vv\n\
             -o idle_timeout=5,modern\n\
             -M\n",
        );
        let got = parse(&["--config-file", &conf.arg()]).unwrap();
        let want = Config {
            memory_limit: 128 << 20,
            port: 12000,
            listen: vec!["127.0.0.2".into()],
            max_connections: 77,
            user: Some("ferrocache".into()),
            verbosity: 2,
            idle_timeout: 5,
            ignored_options: vec!["modern".into()],
            no_evict: true,
            ..Config::default()
        };
        assert_eq!(got, want);
        // `=` and a prefix of the long name work as on the command line.
        assert_eq!(
            parse(&[&format!("--config-file={}", conf.arg())]),
            Ok(want.clone())
        );
        assert_eq!(parse(&["--conf", &conf.arg()]), Ok(want));
    }

    #[test]
    fn command_line_wins_over_config_file() {
        let conf = TempConf::new(
            "precedence",
            "-m 128\n-p 12000\n-l 10.0.0.1\n-v\n-t 2\n-o idle_timeout=5,modern\n",
        );
        let got = parse(&[
            "-p",
            "13000",
            "--config-file",
            &conf.arg(),
            "-l",
            "127.0.0.1,::1",
            "-o",
            "idle_timeout=9",
            "-vv",
        ])
        .unwrap();
        assert_eq!(got.port, 13000, "-p from the command line, wherever it is");
        assert_eq!(
            got.listen,
            vec!["127.0.0.1", "::1"],
            "the file's -l is dropped"
        );
        assert_eq!(got.memory_limit, 128 << 20, "-m from the file");
        assert_eq!(got.threads, 2, "-t from the file");
        assert_eq!(got.verbosity, 2, "-v counted from the command line only");
        assert_eq!(got.idle_timeout, 9);
        assert_eq!(
            got.ignored_options,
            vec!["modern"],
            "the file's other -o items stay"
        );
        // The packaged default: the service's port moved on the command line.
        let conf = TempConf::new("port", "-p 11211\n-U 0\n");
        let got = parse(&["--config-file", &conf.arg(), "-p", "0"]).unwrap();
        assert!(!got.tcp_enabled);
        // Given twice, the last file counts.
        let other = TempConf::new("other", "-m 256\n");
        let got = parse(&["--config-file", &conf.arg(), "--config-file", &other.arg()]).unwrap();
        assert_eq!((got.port, got.memory_limit), (11211, 256 << 20));
    }

    #[test]
    fn bad_config_lines_name_file_and_line() {
        let cases: &[(&str, &str, i32)] = &[
            ("-z", "invalid option -- 'z'", 1),
            ("--bogus=1", "unrecognized option '--bogus=1'", 1),
            ("-p", "option requires an argument -- 'p'", 1),
            ("-c 0", "Maximum connections must be greater than 0", 1),
            ("-B foo", "Invalid value for binding protocol: foo", 64),
            ("-m 64 -c 5", "more than one option on this line", 1),
            ("memory-limit 64", "'memory-limit' is not an option", 1),
            (
                "logfile /var/log/memcached.log",
                "ferrocache logs to stderr",
                1,
            ),
            ("-m 64 # MB", "a comment must be on a line of its own", 1),
            ("-h", "has no place in a config file", 1),
            ("-V", "has no place in a config file", 1),
            (
                "--config-file /etc/x",
                "cannot be used inside a config file",
                1,
            ),
            ("--", "no option on this line", 1),
        ];
        for &(line, reason, code) in cases {
            let conf = TempConf::new("bad", &format!("# comment\n\n-m 64\n  {line}  \n-c 5\n"));
            let err = parse(&["--config-file", &conf.arg()]).unwrap_err();
            let want = format!("{}:4: \"{line}\": ", conf.arg());
            assert!(
                err.message().starts_with(&want) && err.message().contains(reason),
                "line {line:?}: got {:?}",
                err.message()
            );
            assert_eq!(err.exit_code(), code, "line {line:?}");
        }
        let missing = std::env::temp_dir().join("ferrocache-config-test-no-such.conf");
        let err = parse(&["--config-file", &missing.display().to_string()]).unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("cannot read config file {}: ", missing.display())),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn config_file_notes_name_file_and_line() {
        let conf = TempConf::new("notes", "\n-m 64k\n");
        let got = parse(&["--config-file", &conf.arg()]).unwrap();
        assert_eq!(got.memory_limit, 64 << 20);
        assert_eq!(got.warnings.len(), 1);
        let want = format!("{}:2: \"-m 64k\": note: -m '64k'", conf.arg());
        assert!(got.warnings[0].starts_with(&want), "{:?}", got.warnings);
    }

    #[test]
    fn config_file_keeps_memcached_long_prefixes() {
        for argv in [
            &["--c", "7"][..],
            &["--co=7"],
            &["--con", "7"],
            &["--conn=7"],
        ] {
            assert_eq!(parse(argv).map(|c| c.max_connections), Ok(7), "{argv:?}");
        }
        let Err(ConfigError::Exit(help)) = parse(&["-h"]) else {
            panic!("-h should exit");
        };
        assert!(help.contains("--config-file <FILE>"), "{help}");
    }
}
