//! The server's TLS context (`-Z`): what every TLS connection is made from.
//!
//! Owns loading the certificate chain, key and client CAs that the `ssl_*`
//! options name, the rustls server configuration built from them and the
//! other settings (verify mode, ciphers, minimum version, session cache),
//! replacing it on `refresh_certs`, and the TLS counters `stats` reports.
//! Errors carry memcached's words. Must not touch sockets (a connection's
//! TLS stream is `server`'s) nor know the protocol.
//!
//! The TLS stack is rustls with the ring provider: memory-safe, and built
//! with nothing but Rust and a C compiler, so `cargo run` works on a machine
//! without OpenSSL's headers. What it cannot do is refused or done more
//! strictly, never less: TLS 1.0/1.1 are not offered (`ssl_min_version`
//! 0 or 1 means 1.2), OpenSSL ENGINE keys are not loaded, only AEAD suites
//! with forward secrecy exist (see `ciphers`).

mod ciphers;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rustls::crypto::ring::Ticketer;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ProducesTickets;
use rustls::server::{
    NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::config::{TlsOptions, TlsVersion, VerifyMode, KEYFORMAT_DER, KEYFORMAT_PEM};

/// Sessions the resumption cache holds (`ssl_session_cache`): OpenSSL's
/// default size, which memcached keeps.
const SESSION_CACHE_SIZE: usize = 20 * 1024;

/// A connection's TLS send buffer is never smaller than this, whatever
/// `ssl_wbuf_size` says (memcached takes 0, which would send nothing).
const MIN_WBUF: usize = 1024;

/// Why the context could not be built or refreshed, in memcached's words
/// where it has them (it follows each with OpenSSL's reason; ours follows
/// with rustls's or the system's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    Chain {
        path: String,
        reason: String,
    },
    Key {
        path: String,
        reason: String,
    },
    Ca {
        path: String,
        reason: String,
    },
    Ciphers(String),
    /// `ssl_verify_mode` 1–3 without `ssl_ca_cert`: no client certificate
    /// could ever be verified (OpenSSL would refuse each at its handshake;
    /// this refuses at start-up).
    VerifyWithoutCa(u32),
    /// The parts loaded but do not make a configuration (e.g. a key that is
    /// not the certificate's).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Chain { path, reason } => {
                write!(f, "Error loading the certificate chain: {path} : {reason}")
            }
            TlsError::Key { path, reason } => write!(f, "Error loading the key: {path} : {reason}"),
            TlsError::Ca { path, reason } => {
                write!(f, "Error loading the CA certificate: {path} : {reason}")
            }
            TlsError::Ciphers(list) => write!(f, "Error setting the provided cipher(s): {list}"),
            TlsError::VerifyWithoutCa(mode) => write!(
                f,
                "ssl_verify_mode={mode} needs ssl_ca_cert: without it no client certificate can \
                 be verified"
            ),
            TlsError::Config(reason) => write!(f, "Error setting up TLS: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// What `stats` shows of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsCounters {
    pub handshake_errors: u64,
    /// Sessions stored for resumption; `None` without `ssl_session_cache`
    /// (memcached prints the line only with it).
    pub new_sessions: Option<u64>,
    /// Seconds since the certificate was last loaded (start or refresh).
    pub secs_since_cert_refresh: u64,
}

/// The TLS context of a server run with `-Z`.
#[derive(Debug)]
pub struct TlsContext {
    options: TlsOptions,
    /// Replaced whole by a refresh; connections keep the one they began with.
    current: RwLock<Arc<ServerConfig>>,
    /// Kept across refreshes, so sessions survive a certificate change as
    /// they do in memcached (one OpenSSL context throughout).
    sessions: Option<Arc<CountedSessions>>,
    /// Without it: stateless tickets, as OpenSSL issues them by default,
    /// so clients resume either way. Kept across refreshes too.
    tickets: Arc<dyn ProducesTickets>,
    handshake_errors: AtomicU64,
    refreshed_at: Mutex<Instant>,
    /// Notes about the settings, logged once at start-up by `main`.
    notes: Vec<String>,
}

impl TlsContext {
    /// Loads the files `options` names and builds the configuration.
    pub fn open(options: &TlsOptions) -> Result<TlsContext, TlsError> {
        let sessions = options.session_cache.then(|| {
            Arc::new(CountedSessions {
                inner: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
                stored: AtomicU64::new(0),
            })
        });
        let tickets = Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        let resume = Resumption {
            sessions: sessions.as_ref(),
            tickets: &tickets,
        };
        let mut notes = options.notes();
        let config = build(options, &resume, &mut notes)?;
        Ok(TlsContext {
            options: options.clone(),
            current: RwLock::new(Arc::new(config)),
            sessions,
            tickets,
            handshake_errors: AtomicU64::new(0),
            refreshed_at: Mutex::new(Instant::now()),
            notes,
        })
    }

    /// `refresh_certs`: reads the certificate, key and CA files again. New
    /// connections use them; connections already open keep theirs. On
    /// failure the previous configuration stays in force (memcached's can
    /// be left half-replaced: a key that does not match the new chain
    /// fails every handshake after).
    pub fn refresh(&self) -> Result<(), TlsError> {
        let resume = Resumption {
            sessions: self.sessions.as_ref(),
            tickets: &self.tickets,
        };
        let config = build(&self.options, &resume, &mut Vec::new())?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *self.refreshed_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// A server side of a new connection, its send buffer bounded by
    /// `ssl_wbuf_size`.
    pub fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        let config = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(self.wbuf_size()));
        Ok(conn)
    }

    /// A handshake failed (the peer spoke something other than TLS, or
    /// its certificate was refused).
    pub fn count_handshake_error(&self) {
        self.handshake_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> TlsCounters {
        let since = self
            .refreshed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        TlsCounters {
            handshake_errors: self.handshake_errors.load(Ordering::Relaxed),
            new_sessions: self
                .sessions
                .as_ref()
                .map(|s| s.stored.load(Ordering::Relaxed)),
            secs_since_cert_refresh: since.as_secs(),
        }
    }

    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// Settings honoured more strictly than memcached would, and cipher
    /// names that selected nothing: for `main` to log at start-up.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Bytes of sealed records a connection may hold (`ssl_wbuf_size`).
    pub fn wbuf_size(&self) -> usize {
        (self.options.wbuf_kib as usize * 1024).max(MIN_WBUF)
    }
}

/// The resumption cache, counting what it stores (`ssl_new_sessions`).
#[derive(Debug)]
struct CountedSessions {
    inner: Arc<ServerSessionMemoryCache>,
    stored: AtomicU64,
}

impl StoresServerSessions for CountedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let stored = self.inner.put(key, value);
        if stored {
            self.stored.fetch_add(1, Ordering::Relaxed);
        }
        stored
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// memcached prints a path it was not given as `(null)`.
fn shown(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "(null)".into(), |p| p.display().to_string())
}

fn read(path: Option<&Path>) -> Result<Vec<u8>, String> {
    let path = path.ok_or_else(|| "no file given".to_string())?;
    std::fs::read(path).map_err(|e| io_reason(&e))
}

/// The system's words without Rust's "(os error N)".
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn load_chain(path: Option<&PathBuf>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Chain {
        path: shown(path),
        reason,
    };
    let pem = read(path.map(PathBuf::as_path)).map_err(fail)?;
    certificates(&pem).map_err(fail)
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM".into());
    }
    Ok(certs)
}

fn load_key(options: &TlsOptions) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = options.key.as_ref();
    let fail = |reason: String| TlsError::Key {
        path: shown(path),
        reason,
    };
    let bytes = read(path.map(PathBuf::as_path)).map_err(fail)?;
    match options.key_format {
        KEYFORMAT_PEM => PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| fail(e.to_string())),
        KEYFORMAT_DER => PrivateKeyDer::try_from(bytes).map_err(|e| fail(e.to_string())),
        other => Err(fail(format!(
            "ssl_keyformat {other} is not supported (1: PEM, 2: DER)"
        ))),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let pem = read(Some(path)).map_err(fail)?;
    let mut roots = RootCertStore::empty();
    for cert in certificates(&pem).map_err(fail)? {
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    Ok(roots)
}

/// The crypto provider: ring's, its TLS 1.2 suites narrowed by
/// `ssl_ciphers` (TLS 1.3's are left whole, as OpenSSL leaves them).
///
/// rustls 0.23.48 deprecates ring's provider because it has no
/// post-quantum key exchange (neither has the OpenSSL 3.0 memcached is
/// built with on Debian 12); ring is kept because it builds with only a C
/// compiler, where aws-lc also wants CMake on some targets.
#[allow(deprecated)]
fn provider(options: &TlsOptions, notes: &mut Vec<String>) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(list) = &options.ciphers {
        let chosen = ciphers::select(list);
        if chosen.suites.is_empty() {
            return Err(TlsError::Ciphers(list.clone()));
        }
        for word in &chosen.unmatched {
            notes.push(format!(
                "ssl_ciphers: {word} selects no suite this server offers (TLS 1.2 AEAD suites \
                 with ECDHE only); left out"
            ));
        }
        provider.cipher_suites.retain(|s| s.tls13().is_some());
        provider.cipher_suites.extend(chosen.suites);
    }
    Ok(provider)
}

/// How a client resumes an earlier session: from the server's cache
/// (`ssl_session_cache`: session IDs, stateful TLS 1.3 tickets, each one
/// counted) or else from a ticket it holds (what OpenSSL does by default).
struct Resumption<'a> {
    sessions: Option<&'a Arc<CountedSessions>>,
    tickets: &'a Arc<dyn ProducesTickets>,
}

fn build(
    options: &TlsOptions,
    resume: &Resumption<'_>,
    notes: &mut Vec<String>,
) -> Result<ServerConfig, TlsError> {
    let chain = load_chain(options.chain_cert.as_ref())?;
    let key = load_key(options)?;
    let provider = Arc::new(provider(options, notes)?);
    let versions: &[&rustls::SupportedProtocolVersion] = if options.min_version >= TlsVersion::Tls13
    {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if options.verify_mode == VerifyMode::None {
        builder.with_no_client_auth()
    } else {
        let Some(ca) = &options.ca_cert else {
            return Err(TlsError::VerifyWithoutCa(options.verify_mode as u32));
        };
        let roots = Arc::new(load_roots(ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
        let verifier = if options.verify_mode.requires_certificate() {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Key {
            path: shown(options.key.as_ref()),
            reason: e.to_string(),
        })?;
    match resume.sessions {
        Some(store) => {
            config.session_storage = Arc::clone(store) as Arc<dyn StoresServerSessions>;
        }
        None => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.ticketer = Arc::clone(resume.tickets);
        }
    }
    Ok(config)
}
