//! TLS for the tests: certificates made once per test binary with the
//! `openssl` command (a CA, servers and clients it signed, and a client it
//! did not), and a rustls client that trusts that CA.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::tools::{args, on_path, require, run};
use super::READ_TIMEOUT;

/// A client's TLS stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The files every TLS test uses, under one scratch directory.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    /// `CN=localhost`, with 127.0.0.1 and localhost as names, by the CA.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Another server certificate by the same CA (`CN=localhost-2`), for
    /// refreshes.
    pub server2_cert: PathBuf,
    pub server2_key: PathBuf,
    /// A client certificate by the CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A self-signed client certificate, which the CA did not sign.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

/// The certificates, made on first use; `None` (loudly) without the
/// `openssl` command, a failure under CI.
pub fn certs() -> Option<&'static Certs> {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    if !require("openssl", on_path("openssl"), "openssl") {
        return None;
    }
    Some(CERTS.get_or_init(make_certs))
}

fn openssl(list: &[&str]) {
    run("openssl", &args(list), &[]).assert_success();
}

fn make_certs() -> Certs {
    let dir = std::env::temp_dir().join(format!("ferrocache-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make the certificate directory");
    let p = |name: &str| dir.join(name);
    let s = |path: &PathBuf| path.to_string_lossy().into_owned();
    let certs = Certs {
        ca: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
        server2_cert: p("server2.crt"),
        server2_key: p("server2.key"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
        rogue_cert: p("rogue.crt"),
        rogue_key: p("rogue.key"),
        dir: dir.clone(),
    };
    let ca_key = s(&p("ca.key"));
    let self_signed = |key: &str, cert: &str, cn: &str| {
        openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days",
            "3650", "-subj", cn,
        ]);
    };
    self_signed(&ca_key, &s(&certs.ca), "/CN=ferrocache test CA");
    self_signed(
        &s(&certs.rogue_key),
        &s(&certs.rogue_cert),
        "/CN=rogue client",
    );
    // X.509 v3 (the extensions make it so): webpki refuses v1 certificates
    let server_ext = p("server.cnf");
    std::fs::write(&server_ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write");
    let client_ext = p("client.cnf");
    std::fs::write(&client_ext, "extendedKeyUsage=clientAuth\n").expect("write");
    let signed = |key: &PathBuf, cert: &PathBuf, cn: &str, ext: &PathBuf| {
        let csr = s(&cert.with_extension("csr"));
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &s(key),
            "-out",
            &csr,
            "-subj",
            cn,
        ]);
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &s(&certs.ca),
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &s(cert),
            "-days",
            "3650",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        sign.extend(["-extfile".to_string(), s(ext)]);
        let sign: Vec<&str> = sign.iter().map(String::as_str).collect();
        openssl(&sign);
    };
    signed(
        &certs.server_key,
        &certs.server_cert,
        "/CN=localhost",
        &server_ext,
    );
    signed(
        &certs.server2_key,
        &certs.server2_cert,
        "/CN=localhost-2",
        &server_ext,
    );
    signed(
        &certs.client_key,
        &certs.client_cert,
        "/CN=client",
        &client_ext,
    );
    certs
}

/// Which certificate, if any, the client presents.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientCert {
    None,
    /// Signed by the test CA.
    Signed,
    /// Self-signed.
    Rogue,
}

/// A client that trusts the test CA, speaks `versions` (`None`: TLS 1.2
/// and 1.3) and presents `cert`.
#[allow(deprecated)] // ring's provider: see src/tls.rs
pub fn client_config(
    certs: &Certs,
    cert: ClientCert,
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&certs.ca).expect("read the CA") {
        roots.add(c.expect("CA PEM")).expect("add the CA");
    }
    let versions = versions.unwrap_or(rustls::DEFAULT_VERSIONS);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let pair = match cert {
        ClientCert::None => None,
        ClientCert::Signed => Some((&certs.client_cert, &certs.client_key)),
        ClientCert::Rogue => Some((&certs.rogue_cert, &certs.rogue_key)),
    };
    let config = match pair {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(chain)
                .expect("read the client chain")
                .map(|c| c.expect("client PEM"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("read the client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
    };
    Arc::new(config)
}

/// A TLS connection to `addr` whose handshake has completed (as far as
/// the client can tell: with TLS 1.3 a server that refuses the client's
/// certificate says so only at the first read).
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(READ_TIMEOUT))?;
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}
