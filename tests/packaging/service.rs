//! The installed server run as systemd runs its unit (user, group,
//! environment, limits, umask), talked to, stopped with SIGTERM, and traced
//! to check that its system calls pass the unit's SystemCallFilter.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::tools::free_port;

use super::unit::Unit;
use super::{account, have, note, read, run, skip_check, Account, INSTALLED_BIN, PATIENCE};

/// The server started the way systemd starts the unit's ExecStart: as its
/// User and Group, in /, with systemd's environment, file limit and umask.
/// (The namespaces and filters of the hardening need systemd itself.)
pub(crate) struct UnitProcess {
    child: Child,
    pid: i32,
    pub(crate) port: u16,
    log: PathBuf,
    runtime_dir: Option<PathBuf>,
}

impl UnitProcess {
    /// `wrapper`: a command line to run ExecStart under (strace).
    pub(crate) fn start(unit: &Unit, wrapper: Option<&[String]>) -> UnitProcess {
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
        // when it stops (kept across a restart: RuntimeDirectoryPreserve).
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

    pub(crate) fn check_identity(&self, user: &Account) {
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

    /// `systemctl restart` (or a package upgrade's try-restart) with
    /// `between` done while it is down: SIGTERM, the runtime directory kept
    /// as `RuntimeDirectoryPreserve=restart` keeps it, a new start.
    pub(crate) fn restart(mut self, unit: &Unit, between: impl FnOnce()) -> UnitProcess {
        assert_eq!(
            unit.get("Service", "RuntimeDirectoryPreserve"),
            Some("restart")
        );
        self.runtime_dir = None;
        self.stop();
        between();
        UnitProcess::start(unit, None)
    }

    /// SIGTERM, as `systemctl stop` sends; the server must exit cleanly.
    pub(crate) fn stop(mut self) -> ExitStatus {
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

/// Sends `request` and reads until the reply ends with `end`.
fn ask(port: u16, request: &[u8], end: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Stores `n` items `warm:<i>` (flags i, value `value-<i>`), answered
/// one `mn` at the end.
pub(crate) fn store_items(port: u16, n: u32) {
    let mut req = Vec::new();
    for i in 0..n {
        let v = format!("value-{i}");
        req.extend(format!("set warm:{i} {i} 0 {} noreply\r\n{v}\r\n", v.len()).bytes());
    }
    req.extend(b"mn\r\n");
    assert_eq!(ask(port, &req, b"MN\r\n"), b"MN\r\n");
}

/// Every item [`store_items`] stored is there, flags and value.
pub(crate) fn check_items(port: u16, n: u32) {
    let keys: Vec<String> = (0..n).map(|i| format!("warm:{i}")).collect();
    let got = ask(
        port,
        format!("get {}\r\n", keys.join(" ")).as_bytes(),
        b"END\r\n",
    );
    let mut want = String::new();
    for i in 0..n {
        let v = format!("value-{i}");
        want.push_str(&format!("VALUE warm:{i} {i} {}\r\n{v}\r\n", v.len()));
    }
    want.push_str("END\r\n");
    assert_eq!(String::from_utf8_lossy(&got), want, "items after a restart");
}

/// `version`, a `set` and a `get` over TCP.
pub(crate) fn talk(port: u16) {
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
pub(crate) fn syscalls_stay_within_the_filter(unit: &Unit) {
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
