//! The clients that speak only (or mostly) the binary protocol, pointed at
//! ferrocache and at Debian's memcached 1.6.18 with the same flags: PHP
//! sessions with php-memcached's default settings (written in one process,
//! read and rewritten in others, with its locking), php-memcached with
//! `OPT_BINARY_PROTOCOL`, Ruby's dalli 3.0.6, Node's memjs 1.3.2 and
//! pylibmc with `binary=True`,
//! each also with SASL credentials against `-S` servers (and a wrong
//! password refused).
//!
//! The servers run with `-B binary` (or `-S`, which implies it), so a client
//! that fell back to text would be closed: these runs prove the binary
//! protocol. The scripts are in `tests/interop/`; the memcached runs prove
//! the scripts' expectations.
//!
//! Needs `php-cli` with `php-memcached`, `ruby` with `ruby-dalli`,
//! `python3-pylibmc`, node with `npm install -g memjs@1.3.2` (and the SASL
//! packages of `tests/binary_sasl.rs`):
//! each test is skipped loudly without its client, a failure when `CI` is
//! set. `.ci/run` installs them.

mod common;

use common::sasl::{sasl_setup, PASSWORD, USER};
use common::tools::{args, on_path, require, run, Process, Run, Target, PYTHON};

fn script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn have_php_memcached() -> bool {
    let present = on_path("php") && {
        let r = run("php", &args(&["-m"]), &[]);
        r.stdout().lines().any(|l| l.trim() == "memcached")
    };
    require("php-memcached", present, "php-cli php-memcached")
}

fn have_dalli() -> bool {
    let present = on_path("ruby")
        && run("ruby", &args(&["-e", "require 'dalli'"]), &[])
            .status
            .success();
    require("ruby-dalli", present, "ruby ruby-dalli")
}

/// Where npm's global modules are (memjs is installed there by `.ci/run`),
/// for node's `NODE_PATH`; `None` without npm.
fn node_path() -> Option<String> {
    if !on_path("node") || !on_path("npm") {
        return None;
    }
    let r = run("npm", &args(&["root", "-g"]), &[]);
    r.status.success().then(|| r.stdout().trim().to_string())
}

fn have_memjs() -> Option<String> {
    let path = node_path().filter(|p| {
        run(
            "node",
            &args(&["-e", "require('memjs')"]),
            &[("NODE_PATH", p)],
        )
        .status
        .success()
    });
    require(
        "memjs",
        path.is_some(),
        "nodejs npm, then npm install -g memjs@1.3.2",
    )
    .then_some(path)
    .flatten()
}

fn have_pylibmc() -> bool {
    let present = run(PYTHON, &args(&["-c", "import pylibmc"]), &[])
        .status
        .success();
    require("pylibmc", present, "python3-pylibmc")
}

/// A server of `target` with `flags`: `-B binary`, or `-S` (with the SASL
/// set-up in place); `None` when that is not here.
fn server(target: Target, sasl: bool) -> Option<Process> {
    if !target.available() || (sasl && sasl_setup().is_none()) {
        return None;
    }
    let flags: &[&str] = if sasl { &["-S"] } else { &["-B", "binary"] };
    Some(Process::start(target, flags))
}

fn assert_passed(r: &Run, line: &str) {
    r.assert_success();
    assert!(
        r.stdout().contains(line),
        "no '{line}':\n{}",
        r.transcript()
    );
}

fn php_sessions(target: Target) {
    let Some(s) = server(target, false).filter(|_| have_php_memcached()) else {
        return;
    };
    let path = s.addr().to_string();
    let php = script("php_session.php");
    let w = run("php", &args(&[&php, &path, "write"]), &[]);
    w.assert_success();
    let id = w.stdout().trim().to_string();
    assert!(id.len() >= 16, "no session id:\n{}", w.transcript());
    // another process resumes the session, takes its lock, changes it
    let r = run("php", &args(&[&php, &path, "read", &id]), &[]);
    r.assert_success();
    assert_eq!(r.stdout().trim(), "[42,5000]", "{}", r.transcript());
    let r = run("php", &args(&[&php, &path, "read", &id]), &[]);
    r.assert_success();
    assert_eq!(r.stdout().trim(), "[43,5000]", "{}", r.transcript());
}

fn php_binary(target: Target, sasl: bool) {
    let Some(s) = server(target, sasl).filter(|_| have_php_memcached()) else {
        return;
    };
    let port = s.port().to_string();
    let php = script("php_binary.php");
    let mut argv = vec![php.as_str(), "127.0.0.1", &port];
    if sasl {
        argv.extend([USER, PASSWORD]);
    }
    assert_passed(
        &run("php", &args(&argv), &[]),
        "all php-memcached binary checks passed",
    );
    if sasl {
        let refused = run(
            "php",
            &args(&[&php, "127.0.0.1", &port, USER, "wrong"]),
            &[],
        );
        assert!(!refused.status.success(), "{}", refused.transcript());
        assert!(
            refused.stderr().contains("FAIL"),
            "{}",
            refused.transcript()
        );
    }
}

fn dalli(target: Target, sasl: bool) {
    let Some(s) = server(target, sasl).filter(|_| have_dalli()) else {
        return;
    };
    let addr = s.addr().to_string();
    let rb = script("dalli_roundtrip.rb");
    let mut argv = vec![rb.as_str(), addr.as_str()];
    if sasl {
        argv.extend([USER, PASSWORD]);
    }
    assert_passed(&run("ruby", &args(&argv), &[]), "all dalli checks passed");
    if sasl {
        let refused = run("ruby", &args(&[&rb, &addr, USER, "wrong"]), &[]);
        assert!(!refused.status.success(), "{}", refused.transcript());
    }
}

fn pylibmc(target: Target, sasl: bool) {
    let Some(s) = server(target, sasl).filter(|_| have_pylibmc()) else {
        return;
    };
    let addr = s.addr().to_string();
    let py = script("pylibmc_binary.py");
    let mut argv = vec![py.as_str(), addr.as_str()];
    if sasl {
        argv.extend([USER, PASSWORD]);
    }
    assert_passed(
        &run(PYTHON, &args(&argv), &[]),
        "all pylibmc binary checks passed",
    );
    if sasl {
        let refused = run(PYTHON, &args(&[&py, &addr, USER, "wrong"]), &[]);
        assert!(!refused.status.success(), "{}", refused.transcript());
    }
}

fn memjs(target: Target, sasl: bool) {
    let Some(path) = have_memjs() else {
        return;
    };
    let Some(s) = server(target, sasl) else {
        return;
    };
    let addr = s.addr().to_string();
    let js = script("memjs_roundtrip.js");
    let mut argv = vec![js.as_str(), addr.as_str()];
    if sasl {
        argv.extend([USER, PASSWORD]);
    }
    let env = [("NODE_PATH", path.as_str())];
    assert_passed(&run("node", &args(&argv), &env), "all memjs checks passed");
    if sasl {
        let refused = run("node", &args(&[&js, &addr, USER, "wrong"]), &env);
        assert!(!refused.status.success(), "{}", refused.transcript());
    }
}

macro_rules! clients {
    ($target:expr) => {
        /// PHP sessions, php-memcached's defaults (binary, locking).
        #[test]
        fn php_sessions_with_default_settings() {
            super::php_sessions($target);
        }

        #[test]
        fn php_memcached_binary_protocol() {
            super::php_binary($target, false);
        }

        #[test]
        fn php_memcached_binary_protocol_with_sasl() {
            super::php_binary($target, true);
        }

        #[test]
        fn ruby_dalli() {
            super::dalli($target, false);
        }

        #[test]
        fn ruby_dalli_with_sasl() {
            super::dalli($target, true);
        }

        #[test]
        fn node_memjs() {
            super::memjs($target, false);
        }

        #[test]
        fn node_memjs_with_sasl() {
            super::memjs($target, true);
        }

        #[test]
        fn pylibmc_binary() {
            super::pylibmc($target, false);
        }

        #[test]
        fn pylibmc_binary_with_sasl() {
            super::pylibmc($target, true);
        }
    };
}

mod against_ferrocache {
    use super::*;
    clients!(Target::Ferrocache);
}

mod against_memcached {
    use super::*;
    clients!(Target::Memcached);
}
