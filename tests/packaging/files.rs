//! The packaged files read as they are, no package built: the config file
//! parses to the documented defaults, the unit carries its hardening, and
//! its ExecStart expands as systemd expands it.

use std::fs;

use ferrocache::config::Config;

use super::unit::Unit;
use super::{read, repo};

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
        // a memory file (-e) there survives a restart and an upgrade
        ("RuntimeDirectoryPreserve", "restart"),
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
