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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ferrocache::config::{command, Config};

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

// ------------------------------------------------------------ light tests

#[test]
fn packaged_config_file_gives_the_documented_defaults() {
    let conf = repo().join("packaging/ferrocache.conf");
    let got = Config::from_args(["ferrocache", "--config-file", conf.to_str().unwrap()]).unwrap();
    assert_eq!(got.memory_limit, 64 << 20);
    assert_eq!((got.port, got.tcp_enabled, got.udp_port), (11211, true, 0));
    assert_eq!(got.listen, vec!["127.0.0.1"]);
    assert_eq!(got.user.as_deref(), Some("ferrocache"));
    assert!(got.warnings.is_empty(), "{:?}", got.warnings);
    // The unit's command line plus an override, as the heavy test runs it.
    let got = Config::from_args([
        "ferrocache",
        "--config-file",
        conf.to_str().unwrap(),
        "-p",
        "12345",
    ])
    .unwrap();
    assert_eq!((got.port, got.memory_limit), (12345, 64 << 20));
    // Every commented-out example in it is a valid line once uncommented.
    let text = read(&conf);
    let examples: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# -"))
        .map(|rest| rest.trim())
        .collect();
    assert!(examples.len() >= 5, "{examples:?}");
    for example in examples {
        let path = std::env::temp_dir().join(format!(
            "ferrocache-packaging-example-{}.conf",
            std::process::id()
        ));
        fs::write(&path, format!("-{example}\n")).unwrap();
        let parsed = Config::from_args(["ferrocache", "--config-file", path.to_str().unwrap()]);
        let _ = fs::remove_file(&path);
        assert!(parsed.is_ok(), "example -{example}: {parsed:?}");
    }
}

#[test]
fn unit_runs_the_server_unprivileged_and_hardened() {
    let unit = Unit::parse(&read(repo().join("packaging/ferrocache.service")));
    assert_eq!(
        unit.get("Service", "ExecStart"),
        Some("/usr/bin/ferrocache --config-file /etc/ferrocache.conf")
    );
    for (key, want) in [
        ("Type", "simple"),
        ("User", "ferrocache"),
        ("Group", "ferrocache"),
        ("Restart", "always"),
        ("CapabilityBoundingSet", ""),
        ("NoNewPrivileges", "true"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "true"),
        ("PrivateTmp", "true"),
        ("PrivateDevices", "true"),
        ("ProtectKernelTunables", "true"),
        ("ProtectKernelModules", "true"),
        ("ProtectControlGroups", "true"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "true"),
        ("RestrictRealtime", "true"),
        ("MemoryDenyWriteExecute", "true"),
        ("SystemCallArchitectures", "native"),
        ("RuntimeDirectory", "ferrocache"),
    ] {
        assert_eq!(unit.get("Service", key), Some(want), "[Service] {key}");
    }
    assert_eq!(unit.get("Unit", "Documentation"), Some("man:ferrocache(1)"));
    assert_eq!(unit.get("Install", "WantedBy"), Some("multi-user.target"));
    assert!(unit.all("Service", "SystemCallFilter").count() >= 1);
}

#[test]
fn exec_start_is_expanded_as_systemd_expands_it() {
    let env_file = std::env::temp_dir().join(format!("ferrocache-env-{}", std::process::id()));
    fs::write(
        &env_file,
        "# comment\nOPTS=\"-m 32  -c 10\"\nPORT=1234\n; other comment\n",
    )
    .unwrap();
    let unit = Unit::parse(&format!(
        "[Service]\nEnvironment=\"A=x y\" B=z\nEnvironmentFile={}\n\
         EnvironmentFile=-/nonexistent/file\n\
         ExecStart=-/usr/bin/prog --conf \"/a b\" $OPTS ${{PORT}}x $A \\\n  ${{A}} $$B\n",
        env_file.display()
    ));
    let argv = unit.exec_start();
    let _ = fs::remove_file(&env_file);
    assert_eq!(
        argv,
        [
            "/usr/bin/prog",
            "--conf",
            "/a b",
            "-m",
            "32",
            "-c",
            "10",
            "1234x",
            "x",
            "y",
            "x y",
            "$B"
        ]
    );
}

/// One run of a maintainer script against the stand-in tools.
struct ScriptRun<'a> {
    script: &'a str,
    args: &'a [&'a str],
    account: &'a str,
    enabled: bool,
}

impl ScriptRun<'_> {
    /// Runs it with systemd present or not; returns the tool calls made.
    fn calls(&self, systemd_running: bool) -> Vec<String> {
        let dir = TempDir::new("scripts");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let stub = repo().join("tests/packaging/stub-tool");
        for tool in [
            "getent",
            "groupadd",
            "useradd",
            "userdel",
            "groupdel",
            "systemctl",
            "deb-systemd-helper",
            "rm",
        ] {
            std::os::unix::fs::symlink(&stub, bin.join(tool)).unwrap();
        }
        // The scripts' pipelines need the real ones.
        for tool in ["cut", "grep", "basename"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("no {tool}"));
            std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
        }
        // The scripts test /run/systemd/system; point them at a directory
        // of ours that exists or not.
        let run_dir = dir.path().join("run-systemd-system");
        if systemd_running {
            fs::create_dir(&run_dir).unwrap();
        }
        let text = read(repo().join("packaging").join(self.script));
        assert!(text.contains("/run/systemd/system") || !text.contains("systemctl"));
        let script = dir.path().join("script");
        fs::write(
            &script,
            text.replace("/run/systemd/system", run_dir.to_str().unwrap()),
        )
        .unwrap();
        let log = dir.path().join("calls");
        fs::write(&log, "").unwrap();
        let out = Command::new("/bin/sh")
            .arg(&script)
            .args(self.args)
            .env_clear()
            .env("PATH", &bin)
            .env("STUB_LOG", &log)
            .env("STUB_ACCOUNT", self.account)
            .env("STUB_ENABLED", if self.enabled { "0" } else { "1" })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {:?} failed: {}",
            self.script,
            self.args,
            String::from_utf8_lossy(&out.stderr)
        );
        read(&log).lines().map(str::to_string).collect()
    }
}

const USERADD_DEB: &str = "useradd --system --gid ferrocache --no-create-home --home-dir \
     /nonexistent --shell /usr/sbin/nologin --comment ferrocache cache server ferrocache";
const USERADD_RPM: &str = "useradd --system --gid ferrocache --no-create-home --home-dir \
     /nonexistent --shell /sbin/nologin --comment ferrocache cache server ferrocache";

/// (run, calls without systemd, calls added when systemd is running).
type ScriptCase<'a> = (ScriptRun<'a>, &'a [&'a str], &'a [&'a str]);

fn check_script_cases(cases: &[ScriptCase]) {
    for (run, without, with) in cases {
        let name = format!("{} {:?} (account {})", run.script, run.args, run.account);
        assert_eq!(run.calls(false), *without, "{name} without systemd");
        let mut all: Vec<&str> = without.to_vec();
        all.extend(*with);
        // Order: the calls are listed in script order in `with` too.
        let got = run.calls(true);
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "{name} with systemd: {got:#?}");
        for w in with.windows(2) {
            let pos = |s: &str| got.iter().position(|g| g == s).unwrap();
            assert!(pos(w[0]) < pos(w[1]), "{name}: {} before {}", w[0], w[1]);
        }
    }
}

#[test]
fn deb_maintainer_scripts_with_and_without_systemd() {
    let run = |script, args, account, enabled| ScriptRun {
        script,
        args,
        account,
        enabled,
    };
    let fresh_user = [
        "getent group ferrocache",
        "groupadd --system ferrocache",
        "getent passwd ferrocache",
        USERADD_DEB,
    ];
    let enable = [
        "deb-systemd-helper --quiet was-enabled ferrocache.service",
        "deb-systemd-helper enable ferrocache.service",
    ];
    let install: Vec<&str> = fresh_user.iter().chain(&enable).copied().collect();
    let upgrade: Vec<&str> = ["getent group ferrocache", "getent passwd ferrocache"]
        .iter()
        .chain(&enable)
        .copied()
        .collect();
    let purge_ours = [
        "deb-systemd-helper purge ferrocache.service",
        "getent passwd ferrocache",
        "userdel ferrocache",
        "getent group ferrocache",
        "getent group ferrocache",
        "groupdel ferrocache",
    ];
    let cases: Vec<ScriptCase> = vec![
        (
            run("debian/postinst", &["configure"], "absent", true),
            &install,
            &[
                "systemctl daemon-reload",
                "systemctl --quiet is-enabled ferrocache.service",
                "systemctl start ferrocache.service",
            ],
        ),
        // Disabled by the operator before an upgrade: stays disabled.
        (
            run("debian/postinst", &["configure", "0.0.9-1"], "ours", false),
            &[
                "getent group ferrocache",
                "getent passwd ferrocache",
                "deb-systemd-helper --quiet was-enabled ferrocache.service",
                "deb-systemd-helper update-state ferrocache.service",
            ],
            &[
                "systemctl daemon-reload",
                "systemctl try-restart ferrocache.service",
            ],
        ),
        (
            run("debian/postinst", &["configure", "0.0.9-1"], "ours", true),
            &upgrade,
            &[
                "systemctl daemon-reload",
                "systemctl try-restart ferrocache.service",
            ],
        ),
        (
            run("debian/prerm", &["remove"], "ours", true),
            &[],
            &["systemctl stop ferrocache.service"],
        ),
        (
            run("debian/prerm", &["upgrade", "0.2.0-1"], "ours", true),
            &[],
            &[],
        ),
        (
            run("debian/postrm", &["remove"], "ours", true),
            &[],
            &["systemctl daemon-reload"],
        ),
        (
            run("debian/postrm", &["purge"], "ours", true),
            &purge_ours,
            &["systemctl daemon-reload"],
        ),
        // An account the package did not make is left alone.
        (
            run("debian/postrm", &["purge"], "foreign", true),
            &[
                "deb-systemd-helper purge ferrocache.service",
                "getent passwd ferrocache",
            ],
            &["systemctl daemon-reload"],
        ),
        (
            run("debian/postrm", &["upgrade", "0.2.0-1"], "ours", true),
            &[],
            &[],
        ),
    ];
    check_script_cases(&cases);
}

#[test]
fn rpm_scriptlets_with_and_without_systemd() {
    let run = |script, args, account| ScriptRun {
        script,
        args,
        account,
        enabled: true,
    };
    let cases: Vec<ScriptCase> = vec![
        (
            run("rpm/pre", &["1"], "absent"),
            &[
                "getent group ferrocache",
                "groupadd --system ferrocache",
                "getent passwd ferrocache",
                USERADD_RPM,
            ],
            &[],
        ),
        (
            run("rpm/pre", &["2"], "ours"),
            &["getent group ferrocache", "getent passwd ferrocache"],
            &[],
        ),
        (
            run("rpm/post", &["1"], "ours"),
            &[],
            &[
                "systemctl daemon-reload",
                "systemctl enable --now ferrocache.service",
            ],
        ),
        (
            run("rpm/post", &["2"], "ours"),
            &[],
            &["systemctl daemon-reload"],
        ),
        (
            run("rpm/preun", &["0"], "ours"),
            &[],
            &["systemctl disable --now ferrocache.service"],
        ),
        (run("rpm/preun", &["1"], "ours"), &[], &[]),
        (
            run("rpm/postun", &["0"], "ours"),
            &["rm -f /etc/systemd/system/multi-user.target.wants/ferrocache.service"],
            &["systemctl daemon-reload"],
        ),
        (
            run("rpm/postun", &["1"], "ours"),
            &[],
            &[
                "systemctl daemon-reload",
                "systemctl try-restart ferrocache.service",
            ],
        ),
    ];
    check_script_cases(&cases);
}

// ------------------------------------------------------------ heavy tests

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

    // --- an upgrade (the same version again) keeps a local edit.
    let edited = format!("{}# a local edit\n-c 512\n", read(INSTALLED_CONF));
    fs::write(INSTALLED_CONF, &edited).unwrap();
    run(Command::new("dpkg").arg("--install").arg(&pkgs.deb));
    assert_eq!(dpkg_status(), "install ok installed");
    assert_eq!(
        read(INSTALLED_CONF),
        edited,
        "dpkg replaced the edited conffile"
    );
    assert_eq!(account("ferrocache").unwrap().uid, user.uid);

    // --- the server, started as the unit starts it.
    let unit = Unit::parse(&read(INSTALLED_UNIT));
    let server = UnitProcess::start(&unit, None);
    server.check_identity(&user);
    talk(server.port);
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

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server started the way systemd starts the unit's ExecStart: as its
/// User and Group, in /, with systemd's environment, file limit and umask.
/// (The namespaces and filters of the hardening need systemd itself.)
struct UnitProcess {
    child: Child,
    pid: i32,
    port: u16,
    log: PathBuf,
    runtime_dir: Option<PathBuf>,
}

impl UnitProcess {
    /// `wrapper`: a command line to run ExecStart under (strace).
    fn start(unit: &Unit, wrapper: Option<&[String]>) -> UnitProcess {
        let user_name = unit.get("Service", "User").expect("User=");
        let user = account(user_name).expect("the unit's user exists");
        let group = unit.get("Service", "Group").unwrap_or(user_name);
        let gid = run(Command::new("getent").args(["group", group]))
            .split(':')
            .nth(2)
            .unwrap()
            .parse::<u32>()
            .unwrap();
        // RuntimeDirectory: made for the service, owned by it, removed
        // when it stops.
        let runtime_dir = unit.get("Service", "RuntimeDirectory").map(|d| {
            let path = Path::new("/run").join(d);
            fs::create_dir_all(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(user.uid), Some(gid)).unwrap();
            let mode = unit
                .get("Service", "RuntimeDirectoryMode")
                .map_or(0o755, |m| u32::from_str_radix(m, 8).unwrap());
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        });
        // The unit's port is replaced on the command line (which wins over
        // the config file) by one that is free, so the test does not need
        // 11211 and cannot meet another server there.
        let port = free_port();
        let mut argv = unit.exec_start();
        argv.extend(["-p".to_string(), port.to_string()]);
        let log =
            std::env::temp_dir().join(format!("ferrocache-unit-{}-{port}.log", std::process::id()));
        let log_file = fs::File::create(&log).unwrap();
        let (mut cmd, switch_user) = match wrapper {
            // The wrapper (strace -u) switches user itself.
            Some(w) => {
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).args(&argv);
                (c, None)
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                (c, Some((user.uid, gid)))
            }
        };
        cmd.current_dir("/")
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("USER", user_name)
            .env("LOGNAME", user_name)
            .env("HOME", &user.home)
            .env("SHELL", &user.shell)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        if let Some(dir) = &runtime_dir {
            cmd.env("RUNTIME_DIRECTORY", dir);
        }
        let nofile: Option<u64> = unit
            .get("Service", "LimitNOFILE")
            .map(|v| v.parse().expect("LimitNOFILE as one number"));
        let hard = {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: writes only `lim`.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
            lim.rlim_max
        };
        if let Some(n) = nofile.filter(|&n| n > hard) {
            note(&format!(
                "LimitNOFILE={n} is above this machine's hard limit {hard}: \
                 applied if root may raise it here, else {hard}"
            ));
        }
        let umask = unit
            .get("Service", "UMask")
            .map(|m| u32::from_str_radix(m, 8).unwrap());
        // systemd's order: limits and umask as root, then the user switch.
        // SAFETY: only async-signal-safe calls (setrlimit, umask, setgroups,
        // setgid, setuid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(n) = nofile {
                    let lim = |n| libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim(n)) != 0
                        && libc::setrlimit(libc::RLIMIT_NOFILE, &lim(n.min(hard))) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(m) = umask {
                    libc::umask(m as libc::mode_t);
                }
                if let Some((uid, gid)) = switch_user {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let mut me = UnitProcess {
            pid: child.id() as i32,
            child,
            port,
            log,
            runtime_dir,
        };
        me.wait_until_listening();
        if wrapper.is_some() {
            me.pid = me.traced_pid();
        }
        me
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the server exited ({status}) before listening:\n{}",
                    read(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server is not listening on {} after {PATIENCE:?}:\n{}",
                self.port,
                read(&self.log)
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Under a wrapper, the server is the wrapper's child.
    fn traced_pid(&self) -> i32 {
        let wrapper = self.child.id() as i32;
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: i32 = after.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == wrapper {
                return pid;
            }
        }
        panic!("no child of the wrapper {wrapper}");
    }

    fn check_identity(&self, user: &Account) {
        let status = read(format!("/proc/{}/status", self.pid));
        for (key, want) in [("Uid:", user.uid), ("Gid:", user.gid)] {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            let ids: Vec<u32> = line[key.len()..]
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            assert_eq!(ids, [want; 4], "{key} of the server");
        }
    }

    /// SIGTERM, as `systemctl stop` sends; the server must exit cleanly.
    fn stop(mut self) -> ExitStatus {
        // SAFETY: plain syscall.
        assert_eq!(unsafe { libc::kill(self.pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the server did not exit cleanly on SIGTERM ({status}):\n{}",
                    read(&self.log)
                );
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within {PATIENCE:?} of SIGTERM"
            );
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for UnitProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: plain syscalls.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::kill(self.child.id() as i32, libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
        if let Some(dir) = &self.runtime_dir {
            let _ = fs::remove_dir_all(dir);
        }
        let _ = fs::remove_file(&self.log);
    }
}

/// `version`, a `set` and a `get` over TCP.
fn talk(port: u16) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let line = |reader: &mut BufReader<TcpStream>| {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        l
    };
    writer.write_all(b"version\r\n").unwrap();
    let v = line(&mut reader);
    assert!(
        v.starts_with("VERSION ") && v.ends_with("\r\n"),
        "version: {v:?}"
    );
    writer
        .write_all(b"set packaging 7 0 5\r\nhello\r\n")
        .unwrap();
    assert_eq!(line(&mut reader), "STORED\r\n");
    writer.write_all(b"get packaging\r\n").unwrap();
    let mut reply = String::new();
    for _ in 0..3 {
        reply.push_str(&line(&mut reader));
    }
    assert_eq!(reply, "VALUE packaging 7 5\r\nhello\r\nEND\r\n");
    writer.write_all(b"quit\r\n").unwrap();
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "after quit: {rest:?}"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("after quit: {e}"),
    }
}

/// Runs the server once more under strace and checks that every system
/// call it makes while starting, serving and stopping passes the unit's
/// SystemCallFilter (which only systemd can apply).
fn syscalls_stay_within_the_filter(unit: &Unit) {
    let filters: Vec<&str> = unit.all("Service", "SystemCallFilter").collect();
    if filters.is_empty() {
        return;
    }
    let strace_works = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !strace_works {
        skip_check(
            "strace missing or not allowed to trace here: SystemCallFilter not checked \
             against the server",
        );
        return;
    }
    if !have("systemd-analyze", "--version") {
        skip_check("systemd-analyze not available: SystemCallFilter not checked");
        return;
    }
    let user = unit.get("Service", "User").unwrap();
    let trace = std::env::temp_dir().join(format!("ferrocache-strace-{}", std::process::id()));
    let wrapper: Vec<String> = [
        "strace",
        "-f",
        "-qq",
        "-o",
        trace.to_str().unwrap(),
        "-u",
        user,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = UnitProcess::start(unit, Some(&wrapper));
    talk(server.port);
    server.stop();
    let text = read(&trace);
    let _ = fs::remove_file(&trace);
    let used = syscalls_after_exec(&text, INSTALLED_BIN);
    assert!(used.len() > 10, "too few calls traced: {used:?}");
    let groups = syscall_groups();
    let (allow, set) = filter_set(&filters, &groups);
    let outside: Vec<&String> = used.iter().filter(|s| set.contains(*s) != allow).collect();
    assert!(
        outside.is_empty(),
        "the server makes system calls its unit's SystemCallFilter {filters:?} \
         refuses: {outside:?}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SystemCallFilter: the server's {} distinct system calls all pass",
        used.len()
    );
}

/// Names of the calls in an `strace -f` log from `binary`'s execve on.
fn syscalls_after_exec(log: &str, binary: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut started = false;
    for line in log.lines() {
        // "PID name(args) = ret", "PID <... name resumed>..."
        let rest = line
            .trim_start()
            .split_once(' ')
            .map_or("", |(_, r)| r.trim_start());
        if !started {
            started = rest.starts_with(&format!("execve(\"{binary}\"")) && rest.contains(" = 0");
            if !started {
                continue;
            }
        }
        let name = if let Some(r) = rest.strip_prefix("<... ") {
            r.split(' ').next().unwrap_or("")
        } else {
            rest.split('(').next().unwrap_or("")
        };
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            used.insert(name.to_string());
        }
    }
    assert!(started, "no execve of {binary} in the trace");
    used
}

/// systemd's syscall groups (`systemd-analyze syscall-filter`): name →
/// members, which may be groups themselves.
fn syscall_groups() -> BTreeMap<String, Vec<String>> {
    let text = run(Command::new("systemd-analyze").args(["syscall-filter", "--no-pager"]));
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && trimmed.starts_with('@') {
            current = Some(trimmed.to_string());
            groups.entry(trimmed.to_string()).or_default();
        } else if let Some(g) = &current {
            groups.get_mut(g).unwrap().push(trimmed.to_string());
        }
    }
    assert!(groups.contains_key("@system-service"), "{text}");
    groups
}

fn expand(item: &str, groups: &BTreeMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
    if let Some(members) = groups.get(item) {
        for m in members {
            expand(m, groups, out);
        }
    } else {
        out.insert(item.to_string());
    }
}

/// The set SystemCallFilter= lines describe, as systemd combines them: the
/// first line decides allow-list or deny-list; later lines of the other
/// kind take away. Returns (is an allow-list, the set).
fn filter_set(lines: &[&str], groups: &BTreeMap<String, Vec<String>>) -> (bool, BTreeSet<String>) {
    let mut allow = true;
    let mut set = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let (deny, names) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, *line),
        };
        let mut items = BTreeSet::new();
        for name in names.split_whitespace() {
            // name:errno sets a per-call error; the name is what counts.
            expand(name.split(':').next().unwrap(), groups, &mut items);
        }
        if i == 0 {
            allow = !deny;
            set = items;
        } else if deny != allow {
            set.extend(items);
        } else {
            set.retain(|s| !items.contains(s));
        }
    }
    (allow, set)
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

#[test]
fn rpm_has_the_files_and_scripts() {
    if !heavy("rpm_has_the_files_and_scripts") {
        return;
    }
    assert!(
        have("rpm", "--version"),
        "rpm is needed (apt-get install rpm)"
    );
    let pkgs = packages();
    let query = |fmt: &str| {
        run(Command::new("rpm")
            .args(["-qp", "--qf", fmt])
            .arg(&pkgs.rpm))
    };
    assert_eq!(
        query("%{NAME} %{VERSION} %{RELEASE} %{LICENSE}"),
        format!("ferrocache {VERSION} 1 MIT")
    );
    let list = run(Command::new("rpm").arg("-qlp").arg(&pkgs.rpm));
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        [
            "/etc/ferrocache.conf",
            "/usr/bin/ferrocache",
            "/usr/lib/systemd/system/ferrocache.service",
            "/usr/share/doc/ferrocache/README.md",
            "/usr/share/licenses/ferrocache/LICENSE",
            "/usr/share/man/man1/ferrocache.1.gz",
        ]
    );
    // Modes, owners and flags (c = config, n = noreplace, d = doc).
    let files = query(
        "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\\n]",
    );
    let want = "\
/etc/ferrocache.conf -rw-r--r-- root:root cn
/usr/bin/ferrocache -rwxr-xr-x root:root \n\
/usr/lib/systemd/system/ferrocache.service -rw-r--r-- root:root \n\
/usr/share/doc/ferrocache/README.md -rw-r--r-- root:root d
/usr/share/licenses/ferrocache/LICENSE -rw-r--r-- root:root d
/usr/share/man/man1/ferrocache.1.gz -rw-r--r-- root:root d
";
    assert_eq!(files, want);
    assert_eq!(
        run(Command::new("rpm").arg("-qcp").arg(&pkgs.rpm)),
        "/etc/ferrocache.conf\n"
    );
    // The payload is what packaging/ and the build made.
    let digests = query("[%{FILENAMES} %{FILEDIGESTS}\\n]");
    let digest_of = |name: &str| {
        digests
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no digest for {name}"))
            .to_string()
    };
    assert_eq!(query("%{FILEDIGESTALGO}"), "8", "digests are SHA-256");
    for (name, source) in [
        ("/etc/ferrocache.conf", "packaging/ferrocache.conf"),
        ("/usr/bin/ferrocache", "target/packaging/ferrocache"),
        (
            "/usr/lib/systemd/system/ferrocache.service",
            "packaging/ferrocache.service",
        ),
        (
            "/usr/share/man/man1/ferrocache.1.gz",
            "target/packaging/ferrocache.1.gz",
        ),
    ] {
        let sum = run(Command::new("sha256sum").arg(repo().join(source)));
        assert_eq!(digest_of(name), sum.split(' ').next().unwrap(), "{name}");
    }
    let sections = run(Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(repo().join("target/packaging/ferrocache")));
    assert!(
        !sections.contains(".symtab") && !sections.contains(".debug_info"),
        "the packaged binary is not stripped:\n{sections}"
    );
    // Scriptlets: exactly ours, run by /bin/sh.
    let scripts = run(Command::new("rpm")
        .args(["-qp", "--scripts"])
        .arg(&pkgs.rpm));
    for (header, source) in [
        ("preinstall", "packaging/rpm/pre"),
        ("postinstall", "packaging/rpm/post"),
        ("preuninstall", "packaging/rpm/preun"),
        ("postuninstall", "packaging/rpm/postun"),
    ] {
        let head = format!("{header} scriptlet (using /bin/sh):\n");
        let start = scripts
            .find(&head)
            .unwrap_or_else(|| panic!("no {header} scriptlet:\n{scripts}"))
            + head.len();
        let body = &scripts[start..];
        let want = read(repo().join(source));
        assert!(
            body.starts_with(want.trim_end()),
            "{header} scriptlet differs from {source}:\n{body}"
        );
    }
    let requires = run(Command::new("rpm")
        .args(["-qp", "--requires"])
        .arg(&pkgs.rpm));
    for want in ["/bin/sh", "/usr/sbin/useradd"] {
        assert!(
            requires.lines().any(|l| l.trim() == want),
            "requires {want}:\n{requires}"
        );
    }
}

// ------------------------------------------------------------ unit files

/// A systemd unit file: (section, key, value) in order, continuation lines
/// joined, comments dropped.
struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty()
                && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
            {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            let line = format!("{pending}{line}");
            pending.clear();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                entries.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
            } else {
                panic!("odd unit line {line:?}");
            }
        }
        Unit { entries }
    }

    fn all<'a>(&'a self, section: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
    }

    /// The last setting of `key` (later ones win in systemd).
    fn get<'a>(&'a self, section: &'a str, key: &'a str) -> Option<&'a str> {
        self.all(section, key).last()
    }

    /// The service's environment: Environment= and EnvironmentFile= (a
    /// leading `-` makes a missing file fine), in order.
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (s, k, v) in &self.entries {
            if s != "Service" {
                continue;
            }
            if k == "Environment" {
                for word in split_words(v) {
                    if let Some((name, value)) = word.split_once('=') {
                        env.insert(name.to_string(), value.to_string());
                    }
                }
            } else if k == "EnvironmentFile" {
                let (optional, path) = match v.strip_prefix('-') {
                    Some(p) => (true, p),
                    None => (false, v.as_str()),
                };
                let text = match fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(_) if optional => continue,
                    Err(e) => panic!("EnvironmentFile {path}: {e}"),
                };
                for line in text.lines() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                        continue;
                    }
                    let (name, value) = line.split_once('=').expect("NAME=value");
                    let value = value.trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                        .unwrap_or(value);
                    env.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
        env
    }

    /// ExecStart= as the argv systemd would exec: prefixes dropped, words
    /// split with quotes, `$NAME` as a whole word split into words,
    /// `${NAME}` substituted in place, `$$` a dollar sign.
    fn exec_start(&self) -> Vec<String> {
        let line = self.get("Service", "ExecStart").expect("ExecStart=");
        let line = line.trim_start_matches(['-', '+', '!']);
        assert!(
            !line.starts_with('@') && !line.starts_with(':'),
            "ExecStart prefixes @ and : are not handled here: {line}"
        );
        let env = self.environment();
        let mut argv = Vec::new();
        for word in split_words(line) {
            if let Some(name) = word.strip_prefix('$').filter(|n| {
                !n.starts_with('{')
                    && !n.starts_with('$')
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                argv.extend(
                    env.get(name)
                        .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                        .unwrap_or_default(),
                );
                continue;
            }
            let mut out = String::new();
            let mut rest = word.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                if let Some(r) = after.strip_prefix('$') {
                    out.push('$');
                    rest = r;
                } else if let Some(r) = after.strip_prefix('{') {
                    let end = r.find('}').expect("unclosed ${");
                    out.push_str(env.get(&r[..end]).map_or("", String::as_str));
                    rest = &r[end + 1..];
                } else {
                    out.push('$');
                    rest = after;
                }
            }
            out.push_str(rest);
            argv.push(out);
        }
        argv
    }
}

/// systemd's word splitting: blanks separate, quotes group, backslash
/// escapes the next character.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), _) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in {text:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// A directory under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ferrocache-packaging-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
