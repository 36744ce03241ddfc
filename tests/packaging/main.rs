//! Packaging: the files in packaging/ and the .deb and .rpm built from them.
//!
//! Light tests always run: the packaged config file parses to the documented
//! defaults, the unit carries its hardening, and the maintainer scripts do
//! what they should with and without systemd (run against stand-in tools,
//! tests/packaging/stub-tool, so they change nothing on the machine).
//!
//! Heavy tests build both packages (packaging/build-packages.sh), install
//! the .deb system-wide, start the installed server exactly as its unit
//! would, talk to it, then remove and purge the package and look for
//! leftovers; the .rpm's file list and scripts are checked with `rpm`. They
//! need root, dpkg, cargo-deb, cargo-generate-rpm and rpm, and run only with
//! FERROCACHE_PACKAGING_TESTS=1 (.ci/packaging.sh sets it); otherwise they
//! say SKIPPED and pass. A guard purges the package whatever happens.
//!
//! By topic: light, `files.rs` (the config file and the unit as they are)
//! and `scripts.rs` (maintainer scripts against stand-in tools); heavy,
//! `deb.rs` (install, upgrade, remove, purge), `service.rs` (the installed
//! server run as its unit runs it) and `rpm.rs`; and `unit.rs`, reading a
//! unit file as systemd does. This file holds the paths, the package build
//! and the helpers the heavy tests share.

#[path = "../common/mod.rs"]
mod common;

mod deb;
mod files;
mod rpm;
mod scripts;
mod service;
mod unit;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const INSTALLED_UNIT: &str = "/lib/systemd/system/ferrocache.service";
const INSTALLED_CONF: &str = "/etc/ferrocache.conf";
const INSTALLED_BIN: &str = "/usr/bin/ferrocache";
const INSTALLED_MAN: &str = "/usr/share/man/man1/ferrocache.1.gz";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/ferrocache.service";
/// The account comment postinst gives the user it creates (and postrm looks
/// for before deleting it).
const ACCOUNT_COMMENT: &str = "ferrocache cache server";
/// How long the server gets to start listening and to stop.
const PATIENCE: Duration = Duration::from_secs(15);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ------------------------------------------ what the heavy tests share

/// True when the heavy tests should run; otherwise says SKIPPED where it
/// is seen (straight to stderr, past the test harness's capture).
fn heavy(test: &str) -> bool {
    if std::env::var("FERROCACHE_PACKAGING_TESTS").as_deref() == Ok("1") {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: set FERROCACHE_PACKAGING_TESTS=1 (needs root, dpkg, cargo-deb)"
    );
    false
}

/// Says loudly that a check could not run here.
fn skip_check(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED CHECK: {what}");
}

/// Says something worth knowing about this run.
fn note(what: &str) {
    let _ = writeln!(std::io::stderr(), "NOTE: {what}");
}

fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the packaging tests install packages: run as root");
}

/// `cmd`'s output; panics with everything it printed unless it succeeded.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Whether `prog` can be run here at all.
fn have(prog: &str, version_arg: &str) -> bool {
    Command::new(prog)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// Builds both packages once per test run, with the script
/// docs/packaging.md documents.
fn packages() -> &'static Packages {
    static BUILT: OnceLock<Result<Packages, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let started = Instant::now();
        let out = output(Command::new(repo().join("packaging/build-packages.sh")).arg("all"));
        if !out.status.success() {
            return Err(format!(
                "packaging/build-packages.sh failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let _ = writeln!(
            std::io::stderr(),
            "packages built in {:.0?}",
            started.elapsed()
        );
        let find = |prefix: &str, suffix: &str| {
            let dir = repo().join("target/packaging");
            let found: Vec<PathBuf> = fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with(prefix) && name.ends_with(suffix)
                })
                .collect();
            match found.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(format!("want one {prefix}*{suffix}, found {found:?}")),
            }
        };
        Ok(Packages {
            deb: find(&format!("ferrocache_{VERSION}-1_"), ".deb")?,
            rpm: find(&format!("ferrocache-{VERSION}-1."), ".rpm")?,
        })
    });
    built.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// A passwd entry.
#[derive(Debug)]
struct Account {
    uid: u32,
    gid: u32,
    comment: String,
    home: String,
    shell: String,
}

fn account(name: &str) -> Option<Account> {
    let out = output(Command::new("getent").args(["passwd", name]));
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    assert_eq!(f.len(), 7, "odd passwd line {line:?}");
    Some(Account {
        uid: f[2].parse().unwrap(),
        gid: f[3].parse().unwrap(),
        comment: f[4].to_string(),
        home: f[5].to_string(),
        shell: f[6].to_string(),
    })
}
