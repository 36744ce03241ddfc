//! The .rpm, heavy: its file list, modes, config marking and scriptlets, as
//! `rpm -qp` reports them.

use std::process::Command;

use super::{have, heavy, packages, read, repo, run, VERSION};

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
