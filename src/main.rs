//! The `ferrocache` binary: memcached's command line in, a running server
//! out. Only the start-up order lives here (it matters: limits before
//! dropping root, fork before any thread, pid file once listening).

use std::process::exit;

use ferrocache::auth;
use ferrocache::config::{Config, ConfigError};
use ferrocache::process;
use ferrocache::server::Stop;
use ferrocache::tls;

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("{}", msg);
    exit(code);
}

fn main() {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Exit(text)) => {
            print!("{}", text);
            exit(0);
        }
        Err(e) => fail(e.exit_code(), e),
    };
    for w in &config.warnings {
        eprintln!("{}", w);
    }
    if let Err(e) = process::init_logging(config.verbosity) {
        fail(e.exit_code(), e);
    }
    // A warning, not info: an operator should see at the default level
    // that a knob they set does nothing here (promises are refused instead,
    // in `config`).
    for opt in &config.ignored_options {
        log::warn!(
            "-o {}: accepted for compatibility, no effect in ferrocache",
            opt
        );
    }
    if config.large_pages {
        if let Err(e) = process::check_large_pages() {
            fail(1, e);
        }
    }
    if config.enable_coredumps {
        if let Err(e) = process::enable_core_dumps() {
            fail(e.exit_code(), e);
        }
    }
    match process::raise_fd_limit(config.max_connections) {
        Ok(l) if l.is_short() => log::warn!("open file limit is lower than -c needs: {:?}", l),
        Ok(_) => {}
        Err(e) => fail(e.exit_code(), e),
    }
    // As memcached: certificate and key are read before -u drops root (a
    // key only root may read works), and a bad one stops the start (64).
    let tls = config.tls.enabled.then(|| {
        let ctx = tls::TlsContext::open(&config.tls).unwrap_or_else(|e| fail(64, e));
        for note in ctx.notes() {
            log::warn!("{}", note);
        }
        ctx
    });
    if config.tls.enabled && config.udp_port != 0 {
        // memcached serves UDP in the clear beside TLS too
        log::warn!(
            "-Z: TLS covers TCP only; UDP (-U {}) is served in the clear",
            config.udp_port
        );
    }
    if !config.tls.enabled {
        for note in config.tls.notes() {
            log::warn!("{}", note);
        }
    }
    match process::check_root(&config) {
        Ok(Some(user)) => {
            if let Err(e) = process::drop_privileges(&user) {
                fail(e.exit_code(), e);
            }
        }
        Ok(None) => {}
        Err(e) => fail(e.exit_code(), e),
    }
    if config.daemonize {
        if let Err(e) = process::daemonize(config.enable_coredumps, config.verbosity > 0) {
            fail(1, e);
        }
    }
    if config.lock_memory {
        if let Err(e) = process::lock_memory() {
            log::warn!("{}", e);
        }
    }
    // As memcached: the -Y file is read as the user the server runs as
    // (after -u), and a file that cannot be used stops the start (exit 1).
    let auth = config.auth_file.as_ref().map(|path| {
        if let Some(w) = auth::permissions_warning(path) {
            log::warn!("{}", w);
        }
        auth::Authenticator::open(path).unwrap_or_else(|e| fail(1, e))
    });
    // As memcached: SASL is set up before serving, and a library that
    // cannot be loaded or initialised stops the start (exit 1).
    if config.sasl {
        if let Err(e) = ferrocache::sasl::init() {
            fail(1, e);
        }
    }
    // As memcached: the memory file is opened as the user the server runs
    // as (after -u). One that cannot be created, sized or mapped (a
    // directory that is not there or not writable, a filesystem too small
    // for -m) stops the start: never a server without the promised file.
    let memory = config.memory_file.as_ref().map(|path| {
        let file = ferrocache::storage::MemoryFile::open(path, config.memory_limit)
            .unwrap_or_else(|e| fail(process::EX_OSERR, e));
        if !file.on_tmpfs() {
            log::warn!(
                "-e {}: not on tmpfs; it works, but the cache's pages are also written to disk",
                path.display()
            );
        }
        file
    });
    process::pin_malloc_thresholds();
    if let Err(e) = process::block_signals() {
        fail(e.exit_code(), e);
    }
    let preloaded = ferrocache::server::Preloaded { auth, tls, memory };
    let handle = match ferrocache::server::start_with(config.clone(), preloaded) {
        Ok(h) => h,
        Err(e) => fail(process::EX_OSERR, format!("failed to listen: {}", e)),
    };
    if let Some(p) = &config.pid_file {
        if let Err(e) = process::write_pid_file(p) {
            log::error!("{}", e);
        }
    }
    let stop = handle.stopper_as();
    let reload_auth = handle.auth_reloader();
    let verbose = config.verbosity > 0;
    // The signal thread outlives nothing: exit() below ends it.
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match process::wait_for_signal() {
                // memcached reads its -Y file again on SIGHUP
                Ok(libc::SIGHUP) => reload_auth(),
                Ok(sig) => {
                    // memcached's graceful stop: SIGUSR1 (saves -e's file)
                    if sig == libc::SIGUSR1 {
                        eprintln!("Gracefully stopping");
                        stop(Stop::Graceful);
                    } else {
                        if verbose {
                            eprintln!("Exiting normally");
                        }
                        stop(Stop::Normal);
                    }
                    return;
                }
                Err(e) => {
                    eprintln!("{}", e);
                    stop(Stop::Normal);
                    return;
                }
            }
        });
    handle.wait();
    if config.daemonize {
        if let Some(p) = &config.pid_file {
            if let Err(e) = process::remove_pid_file(p) {
                log::warn!("{}", e);
            }
        }
    }
    exit(0);
}
