//! The maintainer scripts (.deb) and scriptlets (.rpm), run with and
//! without systemd against stand-in tools (tests/packaging/stub-tool), so
//! that they change nothing on the machine.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::tools::TempDir;

use super::{read, repo};

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
        let bin = dir.path("bin");
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
        let run_dir = dir.path("run-systemd-system");
        if systemd_running {
            fs::create_dir(&run_dir).unwrap();
        }
        let text = read(repo().join("packaging").join(self.script));
        assert!(text.contains("/run/systemd/system") || !text.contains("systemctl"));
        let script = dir.path("script");
        fs::write(
            &script,
            text.replace("/run/systemd/system", run_dir.to_str().unwrap()),
        )
        .unwrap();
        let log = dir.path("calls");
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
