//! The .deb, heavy: installed system-wide, its files, account, man page and
//! unit checked, upgraded over a local edit, served from as its unit would
//! (`service.rs`), then removed and purged with nothing left behind.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ferrocache::config::command;

use super::service::{
    check_items, store_items, syscalls_stay_within_the_filter, talk, UnitProcess,
};
use super::unit::Unit;
use super::{
    account, have, heavy, output, packages, read, repo, require_root, run, skip_check, Account,
    ACCOUNT_COMMENT, INSTALLED_BIN, INSTALLED_CONF, INSTALLED_MAN, INSTALLED_UNIT, VERSION,
    WANTS_LINK,
};

/// dpkg's state for ferrocache, e.g. "install ok installed"; empty when
/// dpkg does not know it.
fn dpkg_status() -> String {
    let out = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", "ferrocache"]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Purges the package when dropped, so a failed test leaves no install.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if !dpkg_status().is_empty() && dpkg_status() != "unknown ok not-installed" {
            let _ = Command::new("dpkg")
                .args(["--purge", "ferrocache"])
                .stdin(Stdio::null())
                .status();
        }
    }
}

fn group_exists(name: &str) -> bool {
    output(Command::new("getent").args(["group", name]))
        .status
        .success()
}

#[test]
fn deb_installs_serves_and_purges_cleanly() {
    if !heavy("deb_installs_serves_and_purges_cleanly") {
        return;
    }
    require_root();
    assert!(have("dpkg", "--version"), "dpkg is needed");
    let pkgs = packages();
    let status = dpkg_status();
    assert!(
        status.is_empty() || status == "unknown ok not-installed",
        "ferrocache is already known to dpkg ({status}); this test installs and \
         purges it, so purge it first"
    );
    let _purge = PurgeOnDrop;

    // --- install: the scripts must cope with no systemd running.
    let started = Instant::now();
    run(Command::new("dpkg").arg("--install").arg(&pkgs.deb));
    assert_eq!(dpkg_status(), "install ok installed");
    check_installed_files();
    let user = check_service_account();
    check_enabled_link();
    check_man_page();
    check_unit_with_systemd_analyze();

    // --- an upgrade (the same version again) keeps a local edit: here the
    // memory file (warm restart) the packaged conf suggests.
    let edited = format!(
        "{}# a local edit\n-c 512\n-e /run/ferrocache/cache\n",
        read(INSTALLED_CONF)
    );
    fs::write(INSTALLED_CONF, &edited).unwrap();
    run(Command::new("dpkg").arg("--install").arg(&pkgs.deb));
    assert_eq!(dpkg_status(), "install ok installed");
    assert_eq!(
        read(INSTALLED_CONF),
        edited,
        "dpkg replaced the edited conffile"
    );
    assert_eq!(account("ferrocache").unwrap().uid, user.uid);

    // --- the server, started as the unit starts it, keeps its items across
    // an upgrade: postinst's try-restart stops it (SIGTERM saves the
    // memory file), the new package goes in, it starts again.
    let unit = Unit::parse(&read(INSTALLED_UNIT));
    let server = UnitProcess::start(&unit, None);
    server.check_identity(&user);
    talk(server.port);
    store_items(server.port, 1000);
    let server = server.restart(&unit, || {
        run(Command::new("dpkg").arg("--install").arg(&pkgs.deb));
        assert_eq!(dpkg_status(), "install ok installed");
    });
    check_items(server.port, 1000);
    server.stop();
    syscalls_stay_within_the_filter(&unit);

    // --- remove: program files go, configuration and account stay.
    run(Command::new("dpkg").args(["--remove", "ferrocache"]));
    assert_eq!(dpkg_status(), "deinstall ok config-files");
    for gone in [
        INSTALLED_BIN,
        INSTALLED_UNIT,
        INSTALLED_MAN,
        "/usr/share/doc/ferrocache",
    ] {
        assert!(!exists(gone), "{gone} is left after dpkg --remove");
    }
    assert_eq!(read(INSTALLED_CONF), edited);
    assert!(
        account("ferrocache").is_some(),
        "the user goes only on purge"
    );

    // --- purge: nothing at all is left.
    run(Command::new("dpkg").args(["--purge", "ferrocache"]));
    let status = dpkg_status();
    assert!(
        status.is_empty() || status == "unknown ok not-installed",
        "dpkg still knows ferrocache after purge: {status}"
    );
    // Reading the page (systemd-analyze verify --man=yes runs man) makes
    // man-db cache a formatted copy, as it would for any reader; man-db's
    // daily job drops it once the source is gone. Not the package's: the
    // test removes what it caused.
    for dir in ["/var/cache/man/cat1", "/var/cache/man/local/cat1"] {
        for name in ["ferrocache.1.gz", "ferrocache.1"] {
            let _ = fs::remove_file(Path::new(dir).join(name));
        }
    }
    assert!(account("ferrocache").is_none(), "user ferrocache is left");
    assert!(!group_exists("ferrocache"), "group ferrocache is left");
    let leftovers = find_leftovers(user.uid);
    assert!(
        leftovers.is_empty(),
        "left behind after purge: {leftovers:#?}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "deb install, serve, remove and purge took {:.1?}",
        started.elapsed()
    );
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn check_installed_files() {
    let files = run(Command::new("dpkg-query").args(["-L", "ferrocache"]));
    for want in [
        INSTALLED_BIN,
        INSTALLED_UNIT,
        INSTALLED_CONF,
        INSTALLED_MAN,
        "/usr/share/doc/ferrocache/copyright",
    ] {
        assert!(
            files.lines().any(|l| l == want),
            "{want} not in dpkg -L:\n{files}"
        );
        assert!(exists(want), "{want} is not installed");
    }
    let mode = |p: &str| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(INSTALLED_BIN), 0o755);
    for f in [INSTALLED_UNIT, INSTALLED_CONF, INSTALLED_MAN] {
        assert_eq!(mode(f), 0o644, "{f}");
        assert_eq!(fs::metadata(f).unwrap().uid(), 0, "{f} belongs to root");
    }
    assert_eq!(
        read(INSTALLED_UNIT),
        read(repo().join("packaging/ferrocache.service"))
    );
    assert_eq!(
        read(INSTALLED_CONF),
        read(repo().join("packaging/ferrocache.conf"))
    );
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "ferrocache"]));
    assert!(
        conffiles.contains(INSTALLED_CONF),
        "{INSTALLED_CONF} is not a conffile: {conffiles:?}"
    );
    let version = run(Command::new(INSTALLED_BIN).arg("-V"));
    assert_eq!(version, format!("ferrocache {VERSION}\n"));
}

fn check_service_account() -> Account {
    let user = account("ferrocache").expect("postinst creates the user ferrocache");
    assert!(user.uid < 1000, "not a system user: {user:?}");
    assert_eq!(user.comment, ACCOUNT_COMMENT);
    assert_eq!(user.home, "/nonexistent");
    assert_eq!(user.shell, "/usr/sbin/nologin");
    assert!(!exists("/nonexistent"), "a home was made for ferrocache");
    let group = run(Command::new("getent").args(["group", "ferrocache"]));
    let gid: u32 = group.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(user.gid, gid, "ferrocache's primary group is ferrocache");
    user
}

fn check_enabled_link() {
    if !have("deb-systemd-helper", "--help") && !exists("/usr/bin/deb-systemd-helper") {
        skip_check("deb-systemd-helper not installed: the unit is not enabled offline");
        return;
    }
    let target = fs::read_link(WANTS_LINK)
        .unwrap_or_else(|e| panic!("postinst should enable the unit ({WANTS_LINK}): {e}"));
    assert_eq!(target, Path::new(INSTALLED_UNIT));
}

fn check_man_page() {
    let page = run(Command::new("gzip").args(["-dc", INSTALLED_MAN]));
    // Generated from the same clap definition as -h: every option is there.
    for arg in command().get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(page.contains(&roff), "man page lacks --{long}");
        }
    }
    for section in ["SYNOPSIS", "OPTIONS", "CONFIGURATION FILE", "FILES"] {
        assert!(
            page.contains(&format!(".SH \"{section}\""))
                || page.contains(&format!(".SH {section}")),
            "man page lacks {section}"
        );
    }
    if have("groff", "--version") {
        let mut child = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "groff finds fault with the man page:\n{warnings}"
        );
    } else {
        skip_check("groff not installed: the man page's roff is not checked");
    }
    if have("man", "--version") {
        let found = run(Command::new("man").args(["-w", "ferrocache"]));
        assert_eq!(found.trim(), INSTALLED_MAN);
    } else {
        skip_check("man not installed: `man -w ferrocache` not checked");
    }
}

fn check_unit_with_systemd_analyze() {
    if !have("systemd-analyze", "--version") {
        skip_check("systemd-analyze not available: the unit is not verified");
        return;
    }
    // verify checks the Documentation= man page with man(1) when asked.
    let man = if have("man", "--version") {
        "--man=yes"
    } else {
        skip_check("man not installed: systemd-analyze verify --man=no");
        "--man=no"
    };
    let out = output(Command::new("systemd-analyze").args(["verify", man, INSTALLED_UNIT]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {INSTALLED_UNIT} ({}):\n{said}",
        out.status
    );
    // The exposure score of the hardening, as systemd rates it (0 = best,
    // 10 = none); reported, and held below "MEDIUM".
    let out = output(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        "--no-pager",
        INSTALLED_UNIT,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let score = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .map(str::to_string);
    match score {
        Some(line) => {
            let _ = writeln!(std::io::stderr(), "systemd-analyze security: {line}");
            let value: f64 = line
                .split(": ")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
            assert!(value <= 3.0, "exposure {value} is too high:\n{text}");
        }
        None => skip_check(&format!(
            "systemd-analyze security --offline gave no score ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Files the package or its user left after purge: names with
/// "ferrocache" under the system directories, and files owned by its uid.
fn find_leftovers(uid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for root in [
        "/etc",
        "/usr",
        "/lib",
        "/var/lib",
        "/var/cache",
        "/var/log",
        "/run",
        "/opt",
        "/srv",
        "/tmp",
        "/var/tmp",
    ] {
        walk(Path::new(root), &mut |path, meta| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let in_tmp = path.starts_with("/tmp") || path.starts_with("/var/tmp");
            if (name.contains("ferrocache") && !in_tmp) || meta.uid() == uid {
                found.push(path.display().to_string());
            }
        });
    }
    found
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        f(&path, &meta);
        if meta.is_dir() && !path.starts_with("/proc") && !path.starts_with("/sys") {
            walk(&path, f);
        }
    }
}
