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
            c.warnings =
                vec!["note: -p 'abc' is not a plain number; read as 0 (as memcached does)".into()];
        }),
        (&["-p", "11300x"], |c| {
            c.port = 11300;
            c.warnings = vec![
                "note: -p '11300x' is not a plain number; read as 11300 (as memcached does)".into(),
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
            c.warnings =
                vec!["note: -m '64k' is not a plain number; read as 64 (as memcached does)".into()]
        }),
        (&["-m", "2m"], |c| {
            c.memory_limit = 2 * 1024 * 1024;
            c.warnings =
                vec!["note: -m '2m' is not a plain number; read as 2 (as memcached does)".into()]
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
            c.warnings =
                vec!["note: ignoring 'stray', which is not an option (as memcached does)".into()]
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

/// `-e` is kept now: the memory file and the SIGTERM option are read.
#[test]
fn the_memory_file_and_its_term_option_are_read() {
    let c = parse(&["-e", "/dev/shm/mc"]).unwrap();
    assert_eq!(
        c.memory_file.as_deref(),
        Some(std::path::Path::new("/dev/shm/mc"))
    );
    assert!(c.save_on_term, "SIGTERM saves by default");
    let c = parse(&["--memory-file=/m", "-o", "save_on_term=0"]).unwrap();
    assert_eq!(c.memory_file.as_deref(), Some(std::path::Path::new("/m")));
    assert!(!c.save_on_term);
    assert!(matches!(
        parse(&["-o", "save_on_term=maybe"]),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn unkept_promises_are_refused() {
    let table: &[(&[&str], &[&str])] = &[
        (
            &["-o", "ext_path=/d/f:64m,ext_page_size=64"],
            &["-o ext_path (extstore"],
        ),
        (
            &["-e", "/m", "-Y", "/a", "-o", "ext_path=/d:1g"],
            &["-o ext_path (extstore"],
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
