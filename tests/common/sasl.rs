//! The SASL set-up the `-S` tests share: one sasldb user made with
//! `saslpasswd2`, and a `memcached.conf` naming it, found by both servers
//! through `SASL_CONF_PATH` as an operator's configuration would be.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::tools::{on_path, require};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret pass";

/// The SASL set-up both servers read, made once per test process:
/// `SASL_CONF_PATH` names a directory with `memcached.conf` pointing at a
/// fresh sasldb holding one user. `None` (loudly) without the tools.
pub fn sasl_setup() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !require(
            "saslpasswd2",
            on_path("saslpasswd2"),
            "sasl2-bin libsasl2-modules libsasl2-modules-db",
        ) {
            return None;
        }
        let dir = super::temp_path("sasl");
        std::fs::create_dir_all(&dir).expect("sasl dir");
        let db = dir.join("sasldb");
        let mut child = Command::new("saslpasswd2")
            .args(["-p", "-c", "-a", "memcached", "-f"])
            .arg(&db)
            .arg(USER)
            .stdin(Stdio::piped())
            .spawn()
            .expect("saslpasswd2");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(PASSWORD.as_bytes())
            .expect("password");
        assert!(child.wait().expect("saslpasswd2").success());
        std::fs::write(
            dir.join("memcached.conf"),
            format!("mech_list: plain cram-md5\nsasldb_path: {}\n", db.display()),
        )
        .expect("memcached.conf");
        // read by ferrocache in this process and by the memcached it spawns
        std::env::set_var("SASL_CONF_PATH", &dir);
        Some(dir)
    })
    .as_ref()
}
