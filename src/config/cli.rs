//! The command line's shape: clap's definition of memcached's flags (names,
//! short letters, which take values), the `-h`, `-V` and `-i` texts, and
//! getopt's own error wording.
//!
//! Owns what a flag is called and how argv is split into occurrences. Must
//! not interpret a value: applying each occurrence in order, with
//! memcached's checks, is the parser's (`config`).

use std::ffi::OsString;

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::{Config, ConfigError};

/// Value-taking options, by clap id. Each also has a short flag equal to its
/// id's first letter unless noted in [`command`].
pub(super) const VALUE_IDS: &[&str] = &[
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
pub(super) const FLAG_IDS: &[&str] = &[
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
pub(super) const GETOPT_ORDER: &[&str] = &[
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
            "keep item memory in FILE (tmpfs: /dev/shm, /run), sized to -m;\n\
             SIGUSR1 (and SIGTERM, unless -o save_on_term=0) saves it for a\n\
             warm restart [default: none]"
                .to_string(),
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
pub(super) const EXTENDED_HELP: &str = "\
Extended options (-o name[=value],...):
  idle_timeout=SECONDS   close connections idle this long; 0 never [default: 0]
  item_size_max=SIZE     same as -I
  read_buf_mem_limit=MB  what all connections' buffers may hold together [default: 0, none]
  pinned_mem_limit=MB    what replies may hold of large values they send from the cache [default: half of -m]
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
pub(super) const LICENSE: &str = "\
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
pub(super) fn normalize_verbose(argv: Vec<OsString>) -> Vec<OsString> {
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
pub(super) fn occurrences(m: &ArgMatches) -> Vec<(usize, &'static str, Option<OsString>)> {
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
pub(super) fn clap_error(argv0: &str, argv: &[OsString], e: &clap::Error) -> ConfigError {
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

/// `-V`'s text.
pub(super) fn version() -> String {
    format!("ferrocache {}\n", clap::crate_version!())
}

/// `-h`'s text: every flag with its default, then the `-o` options.
pub(super) fn usage() -> String {
    let mut text = command().render_help().to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
