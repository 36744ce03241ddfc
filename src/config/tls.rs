//! TLS settings: `-Z` and memcached's `ssl_*` options, typed.
//!
//! Owns reading each `ssl_*` option the way memcached 1.6.18 reads it (its
//! messages for a missing or unparsable value) and the settings that follow
//! from them, in memcached's terms (`stats settings` prints them). Must not
//! open a file or know the TLS library: loading certificates and building
//! the server's TLS context is `crate::tls`'s.

use std::path::PathBuf;

use super::ConfigError;
use crate::cnum::{whole_i32, whole_u32};

/// `ssl_verify_mode`: whether and how a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: asked for; a client without one is served, one with a
    /// certificate the CA did not sign is refused.
    Request,
    /// 2: required.
    Require,
    /// 3: required at the first handshake only (memcached never
    /// renegotiates, nor does ferrocache: the same as `Require` here).
    Once,
}

impl VerifyMode {
    /// memcached's `stats settings` line prints OpenSSL's flags for the
    /// mode, not the number given: SSL_VERIFY_PEER (1), with
    /// FAIL_IF_NO_PEER_CERT (2), with CLIENT_ONCE (4).
    pub fn openssl_flags(self) -> u32 {
        match self {
            VerifyMode::None => 0,
            VerifyMode::Request => 1,
            VerifyMode::Require => 3,
            VerifyMode::Once => 7,
        }
    }

    /// A client without a certificate is refused.
    pub fn requires_certificate(self) -> bool {
        matches!(self, VerifyMode::Require | VerifyMode::Once)
    }
}

/// `ssl_min_version`: memcached takes the number (0–3) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The name `stats settings` prints.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "tlsv1.0",
            TlsVersion::Tls11 => "tlsv1.1",
            TlsVersion::Tls12 => "tlsv1.2",
            TlsVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// `ssl_keyformat`: OpenSSL's file type numbers, as memcached passes them on.
pub const KEYFORMAT_PEM: i32 = 1;
pub const KEYFORMAT_DER: i32 = 2;

/// What `-Z` and the `ssl_*` options asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `-Z`: TCP listeners speak TLS (those given as `notls:` do not).
    pub enabled: bool,
    /// `ssl_chain_cert`: the server's certificate chain, PEM.
    pub chain_cert: Option<PathBuf>,
    /// `ssl_key`: its private key.
    pub key: Option<PathBuf>,
    /// `ssl_keyformat`: [`KEYFORMAT_PEM`] or [`KEYFORMAT_DER`] (another
    /// number fails when the key is loaded, as in memcached).
    pub key_format: i32,
    pub verify_mode: VerifyMode,
    /// `ssl_ciphers`: OpenSSL's cipher list syntax, for TLS 1.2.
    pub ciphers: Option<String>,
    /// `ssl_ca_cert`: the CAs a client certificate must chain to.
    pub ca_cert: Option<PathBuf>,
    /// `ssl_wbuf_size`, in KiB: the TLS bytes a connection may hold that
    /// the socket has not taken yet.
    pub wbuf_kib: u32,
    /// `ssl_session_cache`: resumption of earlier sessions.
    pub session_cache: bool,
    /// `ssl_kernel_tls`: kernel offload (not done here; a tuning knob).
    pub kernel_tls: bool,
    pub min_version: TlsVersion,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            enabled: false,
            chain_cert: None,
            key: None,
            key_format: KEYFORMAT_PEM,
            verify_mode: VerifyMode::None,
            ciphers: None,
            ca_cert: None,
            wbuf_kib: 16,
            session_cache: false,
            kernel_tls: false,
            min_version: TlsVersion::Tls12,
        }
    }
}

impl TlsOptions {
    /// Reads one `ssl_*` option (`name` includes the prefix); `value` is
    /// what followed `=`, if anything. memcached's words when it is missing
    /// or not a number.
    pub(super) fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let need = || value.ok_or_else(|| ConfigError::Invalid(format!("Missing {name} argument")));
        let parse_fail = || invalid(format!("could not parse argument to {name}"));
        match name {
            "ssl_chain_cert" => self.chain_cert = Some(need()?.into()),
            "ssl_key" => self.key = Some(need()?.into()),
            "ssl_ca_cert" => self.ca_cert = Some(need()?.into()),
            "ssl_ciphers" => self.ciphers = Some(need()?.to_string()),
            "ssl_keyformat" => match whole_i32(need()?) {
                Some(n) => self.key_format = n,
                None => return parse_fail(),
            },
            "ssl_wbuf_size" => match whole_u32(need()?) {
                Some(n) => self.wbuf_kib = n,
                None => return parse_fail(),
            },
            "ssl_verify_mode" | "ssl_min_version" => {
                let n = match whole_i32(need()?) {
                    Some(n) if (0..=3).contains(&n) => n,
                    Some(_) => {
                        return invalid(format!("Invalid {name}. Use help to see valid options."))
                    }
                    None => return parse_fail(),
                };
                if name == "ssl_verify_mode" {
                    self.verify_mode = [
                        VerifyMode::None,
                        VerifyMode::Request,
                        VerifyMode::Require,
                        VerifyMode::Once,
                    ][n as usize];
                } else {
                    self.min_version = [
                        TlsVersion::Tls10,
                        TlsVersion::Tls11,
                        TlsVersion::Tls12,
                        TlsVersion::Tls13,
                    ][n as usize];
                }
            }
            // flags: a value, if any, is ignored as getsubopt leaves it
            "ssl_session_cache" => self.session_cache = true,
            "ssl_kernel_tls" => self.kernel_tls = true,
            _ => return invalid(format!("Illegal suboption \"{name}\"")),
        }
        Ok(())
    }

    /// Start-up notes about settings honoured differently from memcached
    /// (stricter, never looser), for `main` to log.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.enabled {
            if self.chain_cert.is_some() || self.key.is_some() || self.ca_cert.is_some() {
                notes.push("ssl_* options have no effect without -Z: TLS is off".into());
            }
            return notes;
        }
        if self.min_version < TlsVersion::Tls12 {
            notes.push(format!(
                "ssl_min_version={}: TLS 1.0 and 1.1 are not offered; clients need TLS 1.2 or later",
                self.min_version.name()
            ));
        }
        if self.kernel_tls {
            notes.push(
                "ssl_kernel_tls: kernel TLS offload is not done; records are sealed in the worker"
                    .into(),
            );
        }
        notes
    }
}
