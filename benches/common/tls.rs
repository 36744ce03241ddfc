//! TLS for the load benchmark: a certificate made with the `openssl`
//! command, the flags that give both servers a TLS port (and a plain one
//! beside it, for pre-loading and the readiness probe), and the
//! generator's non-blocking rustls client stream.

use std::io::{self, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A self-signed server certificate for 127.0.0.1 and the client that
/// trusts it.
pub struct BenchTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: Arc<ClientConfig>,
}

impl BenchTls {
    /// Makes a CA and a server certificate it signed, under `dir`, with
    /// the `openssl` command (webpki takes no self-signed server
    /// certificate as its own anchor).
    pub fn new(dir: &std::path::Path) -> io::Result<BenchTls> {
        std::fs::create_dir_all(dir)?;
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let (ca, ca_key) = (path("ca.crt"), path("ca.key"));
        let (cert, key, csr, ext) = (
            path("bench.crt"),
            path("bench.key"),
            path("bench.csr"),
            path("bench.cnf"),
        );
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=bench CA",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        ];
        for step in steps {
            let ok = Command::new("openssl")
                .args(step)
                .stderr(std::process::Stdio::null())
                .status()?
                .success();
            if !ok {
                return Err(io::Error::other(format!("openssl {} failed", step[0])));
            }
        }
        let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ca).map_err(io::Error::other)? {
            roots
                .add(c.map_err(io::Error::other)?)
                .map_err(io::Error::other)?;
        }
        #[allow(deprecated)] // ring's provider: see src/tls.rs
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(BenchTls {
            cert,
            key,
            client: Arc::new(client),
        })
    }

    /// The protocol version and suite a connection of this client to
    /// `addr` negotiates (printed beside the figures).
    pub fn negotiated(&self, addr: std::net::SocketAddr) -> io::Result<String> {
        let mut sock = std::net::TcpStream::connect(addr)?;
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let mut conn =
            ClientConnection::new(Arc::clone(&self.client), name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(format!(
            "{:?} {:?}",
            conn.protocol_version()
                .ok_or_else(|| io::Error::other("no version"))?,
            conn.negotiated_cipher_suite()
                .ok_or_else(|| io::Error::other("no suite"))?
                .suite()
        ))
    }

    /// `-Z` with this certificate, and a plain listener on `plain_port`.
    pub fn server_args(&self, plain_port: u16) -> Vec<String> {
        vec![
            "-Z".into(),
            "-o".into(),
            format!(
                "ssl_chain_cert={},ssl_key={}",
                self.cert.display(),
                self.key.display()
            ),
            "-l".into(),
            format!("notls:127.0.0.1:{plain_port}"),
        ]
    }
}

/// A generator connection's byte stream: plain, or TLS over it.
pub enum Link {
    Plain(TcpStream),
    Tls(Box<(TcpStream, ClientConnection)>),
}

impl Link {
    pub fn tls(sock: TcpStream, config: &Arc<ClientConfig>) -> io::Result<Link> {
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
        Ok(Link::Tls(Box::new((sock, conn))))
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(b) => &mut b.0,
        }
    }

    /// Takes all of `buf` (TLS seals it at once) or as much as the socket
    /// does (plain).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(b) => {
                b.1.writer().write_all(buf)?;
                flush_tls(&mut b.0, &mut b.1)?;
                Ok(buf.len())
            }
        }
    }

    /// Sends what TLS holds, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(_) => Ok(()),
            Link::Tls(b) => flush_tls(&mut b.0, &mut b.1),
        }
    }

    /// Plaintext: `WouldBlock` when none has arrived.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(b) => read_tls(&mut b.0, &mut b.1, buf),
        }
    }
}

fn flush_tls(sock: &mut TcpStream, conn: &mut ClientConnection) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_tls(
    sock: &mut TcpStream,
    conn: &mut ClientConnection,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match conn.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if conn.read_tls(sock)? == 0 {
            return Ok(0);
        }
        conn.process_new_packets().map_err(io::Error::other)?;
        flush_tls(sock, conn)?;
    }
}
