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
//!
//! ```text
//! config.rs       Config, ConfigError, -l entries, the parser: each flag and
//!                 -o option applied in order with memcached's checks
//! config/cli.rs   clap's definition of the flags, -h/-V/-i, getopt's words
//! config/file.rs  --config-file: lines into option occurrences
//! config/tls.rs   -Z and the ssl_* options, typed
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::cnum::{atof, atoi, strtol, whole_f64, whole_i32, whole_u32};

mod cli;
mod file;
mod tls;
pub use cli::command;
use cli::{clap_error, normalize_verbose, occurrences, usage, version, LICENSE};
use file::read_config_file;
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
    /// `-e`: the memory file items live in; a graceful stop saves what a
    /// warm restart needs beside it (`FILE.meta`).
    pub memory_file: Option<PathBuf>,
    /// `-o save_on_term=0|1` (ferrocache's own, default 1): with `-e`,
    /// SIGTERM, SIGINT and a plain `shutdown` save the cache as SIGUSR1
    /// does, so `systemctl restart` and package upgrades keep it.
    pub save_on_term: bool,
    /// `-N`: number of NAPI ids (0 = off; recorded only).
    pub napi_ids: u32,
    /// `-Z` and the `ssl_*` options.
    pub tls: TlsOptions,
    /// `-o read_buf_mem_limit=MB`, in bytes (0: none): what all connections'
    /// read and reply buffers may hold together, split evenly over the
    /// workers as memcached splits it over its threads.
    pub read_buf_mem_limit: u64,
    /// `-o pinned_mem_limit=MB` (ferrocache's own), in bytes: the most
    /// bytes of large items replies may hold to send their values from the
    /// cache itself; `None`: half of `-m`.
    pub pinned_mem_limit: Option<u64>,
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
            save_on_term: true,
            napi_ids: 0,
            tls: TlsOptions::default(),
            read_buf_mem_limit: 0,
            pinned_mem_limit: None,
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
            "save_on_term" => {
                self.cfg.save_on_term = match need("Missing save_on_term argument")? {
                    "1" | "yes" | "true" => true,
                    "0" | "no" | "false" => false,
                    v => return invalid(format!("save_on_term is 0 or 1, not \"{v}\"")),
                };
                return Ok(());
            }
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
            "pinned_mem_limit" => {
                let Some(mb) = whole_u32(need(&missing_arg(name))?) else {
                    return invalid(parse_fail(name));
                };
                self.cfg.pinned_mem_limit = Some(u64::from(mb) * 1024 * 1024);
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
        let unkept = unkept_promises(&self.unkept_options);
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

/// Fail closed: one line for each `-o` option in `options` whose meaning
/// is a promise this build does not keep, naming the option and what
/// starting anyway would break. Empty when every promise asked for is
/// kept. memcached would honour each of these; starting without doing so
/// would leave an operator who moved the option over from memcached
/// believing in a guarantee that is not there (items evicted that
/// memcached would have kept on flash). `-Y`, TLS and `-e` were among
/// them until they were built.
fn unkept_promises(options: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
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

#[cfg(test)]
mod tests;
