//! What `main` needs to behave like memcached as a process: logging levels,
//! the root rule and the switch to `-u`, `-d`, the pid file, signals, and
//! the file-descriptor, core-file, memory-lock and huge-page limits.
//!
//! Owns the process-wide state; must not parse flags (that is `config`) or
//! open sockets (that is `server`). Each function is small and returns a
//! typed [`ProcessError`] whose `Display` is memcached's own message and
//! whose [`ProcessError::exit_code`] is memcached's exit status, checked
//! against memcached 1.6.18.
//!
//! Order matters, as in memcached: [`raise_fd_limit`] and
//! [`enable_core_dumps`] before [`drop_privileges`] (raising a hard limit
//! needs root), [`daemonize`] and [`block_signals`] before any thread is
//! started (a fork keeps only the calling thread; a signal mask is inherited
//! only by threads started after it is set), [`lock_memory`] after
//! [`daemonize`] (memory locks are not inherited across `fork`).

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use log::LevelFilter;

use crate::config::Config;

/// `EX_USAGE` from sysexits.h: the command line is wrong.
pub const EX_USAGE: i32 = 64;
/// `EX_NOUSER` from sysexits.h: `-u` names no user.
pub const EX_NOUSER: i32 = 67;
/// `EX_OSERR` from sysexits.h: the system refused a start-up step.
pub const EX_OSERR: i32 = 71;

/// File descriptors [`raise_fd_limit`] asks for beyond `-c`: listeners,
/// each worker's poll and waker descriptors, stdio, the pid and log files.
pub const FD_HEADROOM: u64 = 128;

/// A start-up step the system refused. `Display` gives memcached's message.
#[derive(Debug)]
pub enum ProcessError {
    /// Running as root without `-u` (exit 64).
    RootWithoutUser,
    /// `-u` names no user (exit 67).
    NoSuchUser(String),
    /// `setgroups(0)` failed other than with EPERM (exit 71).
    DropGroups(io::Error),
    /// `setgid`/`setuid` failed (exit 71).
    AssumeIdentity { user: String, source: io::Error },
    /// `fork`, `setsid`, `chdir` or redirecting stdio failed (exit 1).
    Daemonize(io::Error),
    /// The pid file could not be written; memcached goes on (exit 1 if the
    /// caller chooses to stop).
    PidFile { message: String, source: io::Error },
    /// The pid file could not be removed at exit.
    RemovePidFile { path: PathBuf, source: io::Error },
    /// `getrlimit(RLIMIT_NOFILE)` failed (exit 71).
    GetFdLimit(io::Error),
    /// Fewer descriptors than `-c` connections could be had (exit 71).
    FdLimit { wanted: u64, got: u64 },
    /// `-r` could not make core files possible (exit 71).
    CoreLimit,
    /// `-k`: `mlockall` failed; memcached warns and goes on.
    LockMemory(io::Error),
    /// `-L`: no transparent huge pages here (exit 1).
    LargePages(&'static str),
    /// Setting up or waiting for signals failed (exit 71).
    Signal(io::Error),
    /// A logger was already installed (exit 1).
    Logging(String),
}

impl ProcessError {
    /// The process exit status memcached uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProcessError::RootWithoutUser => EX_USAGE,
            ProcessError::NoSuchUser(_) => EX_NOUSER,
            ProcessError::DropGroups(_)
            | ProcessError::AssumeIdentity { .. }
            | ProcessError::GetFdLimit(_)
            | ProcessError::FdLimit { .. }
            | ProcessError::CoreLimit
            | ProcessError::Signal(_) => EX_OSERR,
            ProcessError::Daemonize(_)
            | ProcessError::PidFile { .. }
            | ProcessError::RemovePidFile { .. }
            | ProcessError::LockMemory(_)
            | ProcessError::LargePages(_)
            | ProcessError::Logging(_) => 1,
        }
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::RootWithoutUser => f.write_str("can't run as root without the -u switch"),
            ProcessError::NoSuchUser(u) => write!(f, "can't find the user {u} to switch to"),
            ProcessError::DropGroups(e) => {
                write!(f, "failed to drop supplementary groups: {}", strerror(e))
            }
            // memcached names no cause here; `source()` has it.
            ProcessError::AssumeIdentity { user, .. } => {
                write!(f, "failed to assume identity of user {user}")
            }
            ProcessError::Daemonize(_) => f.write_str("failed to daemon() in order to daemonize"),
            ProcessError::PidFile { message, source } => {
                write!(f, "{message}: {}", strerror(source))
            }
            ProcessError::RemovePidFile { path, source } => write!(
                f,
                "Could not remove the pid file {}: {}",
                path.display(),
                strerror(source)
            ),
            ProcessError::GetFdLimit(_) => f.write_str("failed to getrlimit number of files"),
            ProcessError::FdLimit { .. } => f.write_str(
                "failed to set rlimit for open files. Try starting as root or requesting \
                 smaller maxconns value.",
            ),
            ProcessError::CoreLimit => f.write_str("failed to ensure corefile creation"),
            ProcessError::LockMemory(e) => {
                write!(f, "warning: -k invalid, mlockall() failed: {}", strerror(e))
            }
            ProcessError::LargePages(why) => write!(
                f,
                "{why}\nWill use default page size.\nCannot enable large pages on this \
                 system\n(There is no support as of this version)"
            ),
            ProcessError::Signal(e) => {
                write!(f, "failed to set up signal handling: {}", strerror(e))
            }
            ProcessError::Logging(e) => write!(f, "failed to start logging: {e}"),
        }
    }
}

/// The C library's text for an OS error, without Rust's "(os error N)".
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::DropGroups(e)
            | ProcessError::Daemonize(e)
            | ProcessError::GetFdLimit(e)
            | ProcessError::LockMemory(e)
            | ProcessError::Signal(e)
            | ProcessError::AssumeIdentity { source: e, .. }
            | ProcessError::PidFile { source: e, .. }
            | ProcessError::RemovePidFile { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- logging

/// The level for `-v` count: none → errors and warnings (memcached prints
/// its start-up warnings without `-v` too), `-v` → info (what memcached
/// prints only under `-v`: errors met while serving), `-vv` → debug (each
/// command and reply), `-vvv` and more → trace (internal state changes).
/// Other modules log at those levels accordingly.
pub fn level_for(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Starts `log` output on stderr at [`level_for`]`(verbosity)`. When
/// `RUST_LOG` is set (and not empty) it decides alone and `-v` is ignored.
/// Call once, early: after [`daemonize`] without `-v` the output goes to
/// /dev/null, as memcached's does.
pub fn init_logging(verbosity: u8) -> Result<(), ProcessError> {
    let mut builder = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            builder.parse_filters(&spec);
        }
        _ => {
            // everything passes env_logger's own filter; the level is the
            // global one, which the `verbosity` command moves at run time
            builder.filter_level(LevelFilter::Trace);
        }
    }
    builder
        .target(env_logger::Target::Stderr)
        .format_timestamp_millis()
        .try_init()
        .map_err(|e| ProcessError::Logging(e.to_string()))?;
    if std::env::var("RUST_LOG").map_or(true, |spec| spec.trim().is_empty()) {
        log::set_max_level(level_for(verbosity));
    }
    Ok(())
}

// ---------------------------------------------------------- root and -u

/// memcached's rule: as root (real or effective uid 0) `-u` is required and
/// names the user to become; as anyone else `-u` is ignored. Returns the
/// user to pass to [`drop_privileges`], if any.
pub fn check_root(config: &Config) -> Result<Option<String>, ProcessError> {
    // SAFETY: getuid and geteuid cannot fail and touch no memory.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    root_rule(uid, euid, config.user.as_deref())
}

/// [`check_root`] with the ids given (for tests).
pub fn root_rule(uid: u32, euid: u32, user: Option<&str>) -> Result<Option<String>, ProcessError> {
    if uid != 0 && euid != 0 {
        return Ok(None);
    }
    match user {
        Some(u) if !u.is_empty() => Ok(Some(u.to_string())),
        _ => Err(ProcessError::RootWithoutUser),
    }
}

/// A user's uid and gid, from the password database.
pub fn lookup_user(user: &str) -> Result<(u32, u32), ProcessError> {
    let missing = || ProcessError::NoSuchUser(user.to_string());
    let name = CString::new(user).map_err(|_| missing())?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero is a valid passwd (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives pwd's use.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        // memcached reports every failed lookup as an unknown user.
        if rc != 0 || found.is_null() {
            return Err(missing());
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}

/// Becomes `user` as memcached does: drops every supplementary group, then
/// sets the group and user ids. Call as root (see [`check_root`]), after
/// [`raise_fd_limit`] and [`enable_core_dumps`], before starting threads.
pub fn drop_privileges(user: &str) -> Result<(), ProcessError> {
    let (uid, gid) = lookup_user(user)?;
    // SAFETY: setgroups with 0 entries reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        let e = io::Error::last_os_error();
        // EPERM means there is nothing left to drop; memcached goes on.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(ProcessError::DropGroups(e));
        }
        log::warn!("failed to drop supplementary groups: {e}");
    }
    let identity = |source| ProcessError::AssumeIdentity {
        user: user.to_string(),
        source,
    };
    // SAFETY: plain syscalls on integers.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(identity(io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(identity(io::Error::last_os_error()));
    }
    Ok(())
}

// ------------------------------------------------------------ -d and -P

/// `-d`: fork; the parent exits 0 at once; the child starts a new session,
/// moves to `/` (unless `nochdir`: memcached keeps the directory under `-r`
/// so cores land there) and points stdin, stdout and stderr at /dev/null
/// (unless `noclose`: memcached keeps them under `-v`).
///
/// Must be called before any thread is spawned: the child keeps only the
/// calling thread, and locks held by the others would stay locked forever.
/// Call it after everything that can fail with a message worth seeing, and
/// before [`write_pid_file`] (the pid is the child's).
pub fn daemonize(nochdir: bool, noclose: bool) -> Result<(), ProcessError> {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let fail = |_| ProcessError::Daemonize(io::Error::last_os_error());
    // SAFETY: fork in a single-threaded process; the parent only _exits.
    match unsafe { libc::fork() } {
        -1 => return Err(fail(())),
        0 => {}
        // SAFETY: _exit skips destructors and atexit handlers, as the
        // parent must (it shares them with the child).
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscalls.
    if unsafe { libc::setsid() } == -1 {
        return Err(fail(()));
    }
    if !nochdir {
        std::env::set_current_dir("/").map_err(ProcessError::Daemonize)?;
    }
    if !noclose {
        let null = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(ProcessError::Daemonize)?;
        use std::os::fd::AsRawFd;
        for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: both descriptors are open; dup2 replaces the target.
            if unsafe { libc::dup2(null.as_raw_fd(), target) } == -1 {
                return Err(fail(()));
            }
        }
    }
    Ok(())
}

/// `-P`: writes this process's id and a newline, through `PATH.tmp` and a
/// rename so a reader never sees half a file. If the old file names a
/// process that is still running, that is logged as a warning (memcached
/// warns too) and the file is replaced. memcached writes it with or without
/// `-d`, after switching to `-u`, and only reports a failure (exit status 1
/// here is for a caller that wants to stop).
pub fn write_pid_file(path: &Path) -> Result<(), ProcessError> {
    if let Ok(old) = fs::read_to_string(path) {
        if let Ok(pid) = old.trim().parse::<libc::pid_t>() {
            // SAFETY: signal 0 only checks that the process exists.
            if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
                log::warn!("WARNING: The pid file contained the following (running) pid: {pid}");
            }
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let err = |message: String| move |source| ProcessError::PidFile { message, source };
    let mut file = fs::File::create(&tmp).map_err(err(format!(
        "Could not open the pid file {} for writing",
        tmp.display()
    )))?;
    writeln!(file, "{}", std::process::id())
        .and_then(|_| file.sync_all())
        .map_err(err(format!(
            "Could not write the pid file {}",
            tmp.display()
        )))?;
    drop(file);
    fs::rename(&tmp, path).map_err(err(format!(
        "Could not rename the pid file from {} to {}",
        tmp.display(),
        path.display()
    )))
}

/// Removes the pid file at exit (memcached does so only under `-d`).
pub fn remove_pid_file(path: &Path) -> Result<(), ProcessError> {
    fs::remove_file(path).map_err(|source| ProcessError::RemovePidFile {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------- signals

/// The signals [`wait_for_signal`] waits for.
const WAITED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

fn waited_set() -> Result<libc::sigset_t, ProcessError> {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if libc::sigemptyset(&mut set) != 0 {
            return Err(ProcessError::Signal(io::Error::last_os_error()));
        }
        for sig in WAITED {
            if libc::sigaddset(&mut set, sig) != 0 {
                return Err(ProcessError::Signal(io::Error::last_os_error()));
            }
        }
        Ok(set)
    }
}

/// Ignores SIGPIPE (a write to a closed socket is an EPIPE error, not a
/// death) and blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in the calling
/// thread. Call in `main` before any thread starts: threads inherit the
/// mask, so the signals stay pending until [`wait_for_signal`] takes them
/// and no worker is ever interrupted.
pub fn block_signals() -> Result<(), ProcessError> {
    let set = waited_set()?;
    // SAFETY: installing SIG_IGN touches no memory of ours.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(ProcessError::Signal(io::Error::last_os_error()));
    }
    // SAFETY: set is initialised; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(ProcessError::Signal(io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

/// Blocks until SIGTERM, SIGINT, SIGUSR1 or SIGHUP arrives and returns it
/// (for [`signal_name`], the shutdown, or, for SIGHUP, reading the `-Y`
/// file again as memcached does; nothing else). The signals must be
/// blocked (see [`block_signals`]); run this on its own thread or at the
/// end of `main`.
pub fn wait_for_signal() -> Result<i32, ProcessError> {
    let set = waited_set()?;
    let mut sig: libc::c_int = 0;
    // SAFETY: set is initialised and sig is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(ProcessError::Signal(io::Error::from_raw_os_error(rc)));
    }
    Ok(sig)
}

/// A signal's name for the log ("SIGTERM").
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

// ----------------------------------------------------------------- limits

/// What [`raise_fd_limit`] did to `RLIMIT_NOFILE`'s soft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// `-c` plus [`FD_HEADROOM`].
    pub wanted: u64,
}

impl FdLimit {
    /// True when `-c` connections fit but the headroom does not: worth a
    /// warning, not a refusal.
    pub fn is_short(&self) -> bool {
        self.soft < self.wanted
    }
}

fn get_nofile() -> Result<libc::rlimit, ProcessError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(ProcessError::GetFdLimit(io::Error::last_os_error()));
    }
    Ok(lim)
}

fn set_limit(resource: libc::__rlimit_resource_t, cur: u64, max: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: lim is a valid rlimit.
    unsafe { libc::setrlimit(resource, &lim) == 0 }
}

/// Raises the soft `RLIMIT_NOFILE` to `max_connections +` [`FD_HEADROOM`],
/// up to the hard limit, or past it when privileged (call before
/// [`drop_privileges`]). Never lowers a limit. Fails, as memcached does
/// (exit 71), only when fewer than `max_connections` descriptors can be had;
/// short of the headroom it succeeds and [`FdLimit::is_short`] says so.
/// (memcached sets both limits to exactly `-c`; we keep the higher ones.)
pub fn raise_fd_limit(max_connections: usize) -> Result<FdLimit, ProcessError> {
    let lim = get_nofile()?;
    let before = lim.rlim_cur;
    let conns = max_connections as u64;
    let wanted = conns.saturating_add(FD_HEADROOM);
    if before >= wanted {
        return Ok(FdLimit {
            before,
            soft: before,
            wanted,
        });
    }
    let raised = if wanted <= lim.rlim_max {
        set_limit(libc::RLIMIT_NOFILE, wanted, lim.rlim_max)
    } else {
        // Past the hard limit only with privilege; else as far as allowed.
        set_limit(libc::RLIMIT_NOFILE, wanted, wanted)
            || set_limit(libc::RLIMIT_NOFILE, lim.rlim_max, lim.rlim_max)
    };
    let _ = raised;
    let soft = get_nofile()?.rlim_cur;
    if soft < conns {
        return Err(ProcessError::FdLimit {
            wanted: conns,
            got: soft,
        });
    }
    Ok(FdLimit {
        before,
        soft,
        wanted,
    })
}

/// `-r`: lifts the core file size limit (to unlimited, else to the hard
/// limit), as memcached does. Call before [`drop_privileges`]. Fails (exit
/// 71) if core files stay impossible (a soft limit of 0).
pub fn enable_core_dumps() -> Result<(), ProcessError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) } == 0
        && !set_limit(libc::RLIMIT_CORE, libc::RLIM_INFINITY, libc::RLIM_INFINITY)
    {
        set_limit(libc::RLIMIT_CORE, lim.rlim_max, lim.rlim_max);
    }
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) } != 0 || lim.rlim_cur == 0 {
        return Err(ProcessError::CoreLimit);
    }
    Ok(())
}

/// `-k`: locks current and future memory in RAM. memcached only warns when
/// this fails; so should `main`. Call after [`daemonize`] (locks do not
/// survive `fork`).
pub fn lock_memory() -> Result<(), ProcessError> {
    // SAFETY: plain syscall.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(ProcessError::LockMemory(io::Error::last_os_error()));
    }
    Ok(())
}

/// `-L`: memcached refuses to start (exit 1) where the kernel has no
/// transparent huge pages or has them set to `never`.
pub fn check_large_pages() -> Result<(), ProcessError> {
    const PATHS: [&str; 2] = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/redhat_transparent_hugepage/enabled",
    ];
    let Some(text) = PATHS.iter().find_map(|p| fs::read_to_string(p).ok()) else {
        return Err(ProcessError::LargePages(
            "Transparent huge pages support not detected.",
        ));
    };
    large_pages_setting(&text)
}

/// [`check_large_pages`] on the text of the kernel's setting.
fn large_pages_setting(text: &str) -> Result<(), ProcessError> {
    if text.trim().is_empty() {
        return Err(ProcessError::LargePages(
            "Transparent huge pages could not read the configuration.",
        ));
    }
    if text.contains("[never]") {
        return Err(ProcessError::LargePages(
            "Transparent huge pages support disabled.",
        ));
    }
    Ok(())
}

/// Pins glibc's mmap threshold at 128 KiB (its default starting point).
///
/// glibc raises the threshold each time an mmapped block is freed, after
/// which large item blocks come from the heap, where freed ones fragment it
/// and are rarely given back. The cache charges blocks of 128 KiB and more as
/// page-rounded mmaps (`storage::item`), so keeping them mmapped makes the
/// charge true and returns evicted large values to the system at once
/// (measured with `cargo bench --bench memory -- sweep`: peak RSS for
/// 512 KiB values at `-m 64` went from 1.21 to 1.09 × the ceiling). Call it
/// before any thread starts.
pub fn pin_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called single-threaded.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// A fresh directory under the system's temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrocache-process-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs one test of this binary in a child process with `env` set; the
    /// test named does its real work only there.
    /// Its output is kept out of this run's (its own test summary would
    /// read like this run's) and shown when it fails.
    fn run_child_test(test: &str, env: &[(&str, &str)]) -> std::process::ExitStatus {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--test-threads=1", "--nocapture"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        if !out.status.success() {
            eprintln!(
                "child test {test} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status
    }

    #[test]
    fn root_rule_follows_memcached() {
        /// uid, euid, -u → the user to become, or the exit status.
        type Case = (
            u32,
            u32,
            Option<&'static str>,
            Result<Option<&'static str>, i32>,
        );
        let cases: &[Case] = &[
            (0, 0, None, Err(EX_USAGE)),
            (0, 0, Some(""), Err(EX_USAGE)),
            (0, 0, Some("nobody"), Ok(Some("nobody"))),
            (1000, 0, None, Err(EX_USAGE)),
            (0, 1000, None, Err(EX_USAGE)),
            (1000, 1000, None, Ok(None)),
            // Not root: -u is ignored, even for a user that does not exist.
            (1000, 1000, Some("no-such-user"), Ok(None)),
        ];
        for &(uid, euid, user, ref want) in cases {
            let got = root_rule(uid, euid, user)
                .map_err(|e| e.exit_code())
                .map(|u| u.map(|s| s.to_string()));
            let want = want.map(|u| u.map(|s| s.to_string()));
            assert_eq!(got, want, "uid {uid} euid {euid} user {user:?}");
        }
        assert_eq!(
            root_rule(0, 0, None).unwrap_err().to_string(),
            "can't run as root without the -u switch"
        );
        // check_root is root_rule on the real ids.
        let cfg = Config::default();
        let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
        assert_eq!(
            check_root(&cfg).map_err(|e| e.exit_code()),
            root_rule(uid, euid, None).map_err(|e| e.exit_code())
        );
    }

    #[test]
    fn users_are_looked_up() {
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
        let e = lookup_user("no-such-user-ferrocache").unwrap_err();
        assert_eq!(
            e.to_string(),
            "can't find the user no-such-user-ferrocache to switch to"
        );
        assert_eq!(e.exit_code(), EX_NOUSER);
        // An unknown user fails before any identity changes, even as root.
        let e = drop_privileges("no-such-user-ferrocache").unwrap_err();
        assert_eq!(e.exit_code(), 67);
        assert!(matches!(
            lookup_user("a\0b"),
            Err(ProcessError::NoSuchUser(_))
        ));
    }

    #[test]
    fn messages_and_exit_codes_are_memcacheds() {
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        let cases: Vec<(ProcessError, &str, i32)> = vec![
            (
                ProcessError::RootWithoutUser,
                "can't run as root without the -u switch",
                64,
            ),
            (
                ProcessError::NoSuchUser("x".into()),
                "can't find the user x to switch to",
                67,
            ),
            (
                ProcessError::AssumeIdentity {
                    user: "x".into(),
                    source: enoent(),
                },
                "failed to assume identity of user x",
                71,
            ),
            (
                ProcessError::FdLimit { wanted: 9, got: 1 },
                "failed to set rlimit for open files. Try starting as root or requesting \
                 smaller maxconns value.",
                71,
            ),
            (
                ProcessError::CoreLimit,
                "failed to ensure corefile creation",
                71,
            ),
            (
                ProcessError::Daemonize(enoent()),
                "failed to daemon() in order to daemonize",
                1,
            ),
            (
                ProcessError::LockMemory(io::Error::from_raw_os_error(libc::EPERM)),
                "warning: -k invalid, mlockall() failed: Operation not permitted",
                1,
            ),
            (
                ProcessError::LargePages("Transparent huge pages support disabled."),
                "Transparent huge pages support disabled.\nWill use default page size.\n\
                 Cannot enable large pages on this system\n(There is no support as of this \
                 version)",
                1,
            ),
        ];
        for (e, text, code) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.exit_code(), code, "{text}");
        }
    }

    #[test]
    fn pid_file_round_trip() {
        let dir = temp_dir("pid");
        let path = dir.join("ferrocache.pid");
        fs::write(&path, "999999999\n").unwrap(); // a stale file is replaced
        write_pid_file(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert!(!dir.join("ferrocache.pid.tmp").exists());
        remove_pid_file(&path).unwrap();
        assert!(!path.exists());
        let e = remove_pid_file(&path).unwrap_err();
        assert!(
            e.to_string().starts_with("Could not remove the pid file"),
            "{e}"
        );

        let bad = dir.join("missing").join("x.pid");
        let e = write_pid_file(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Could not open the pid file {}.tmp for writing: No such file or directory",
                bad.display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Sends `sig` to this thread only, so it stays pending here while
    /// blocked and never reaches the rest of the test process.
    fn raise_here(sig: libc::c_int) {
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
        assert_eq!(rc, 0);
    }

    #[test]
    fn signals_are_waited_for_on_a_blocked_mask() {
        let got = std::thread::spawn(|| {
            block_signals().unwrap();
            let mut seen = Vec::new();
            for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1] {
                raise_here(sig);
                seen.push(wait_for_signal().unwrap());
            }
            seen
        })
        .join()
        .unwrap();
        let want = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1];
        assert_eq!(got, want);
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        // SIGPIPE is ignored for the whole process.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        assert_eq!(old, libc::SIG_IGN);
    }

    #[test]
    fn fd_limit_is_raised_not_lowered() {
        let lim = raise_fd_limit(10).unwrap();
        assert!(lim.soft >= lim.before);
        assert!(lim.soft >= 10 + FD_HEADROOM || lim.is_short());
        assert_eq!(lim.wanted, 10 + FD_HEADROOM);
        // More than the kernel allows any process.
        let e = raise_fd_limit(1 << 40).unwrap_err();
        assert_eq!(e.exit_code(), EX_OSERR);
        assert!(matches!(e, ProcessError::FdLimit { wanted, .. } if wanted == 1 << 40));
        let after = get_nofile().unwrap();
        assert!(after.rlim_cur >= lim.soft, "never lowered");
    }

    #[test]
    fn core_dumps_can_be_enabled() {
        // Raising RLIMIT_CORE affects only this test process.
        match enable_core_dumps() {
            Ok(()) => {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
                assert!(lim.rlim_cur > 0);
            }
            // A hard limit of 0 set by the environment.
            Err(e) => assert_eq!(e.exit_code(), EX_OSERR),
        }
    }

    #[test]
    fn large_pages_setting_is_read() {
        assert!(large_pages_setting("always [madvise] never\n").is_ok());
        assert!(large_pages_setting("[always] madvise never\n").is_ok());
        let e = large_pages_setting("always madvise [never]\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Transparent huge pages support disabled."));
        assert!(large_pages_setting("").is_err());
    }

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(level_for(0), LevelFilter::Warn);
        assert_eq!(level_for(1), LevelFilter::Info);
        assert_eq!(level_for(2), LevelFilter::Debug);
        assert_eq!(level_for(3), LevelFilter::Trace);
        assert_eq!(level_for(9), LevelFilter::Trace);
        // A logger can be installed once per process.
        let _ = init_logging(0);
        assert!(matches!(init_logging(0), Err(ProcessError::Logging(_))));
    }

    const DAEMON_OUT: &str = "FERROCACHE_TEST_DAEMON_OUT";

    /// Child side of `daemonize_detaches`: does nothing in a normal run.
    #[test]
    fn daemon_child() {
        let Ok(out) = std::env::var(DAEMON_OUT) else {
            return;
        };
        daemonize(false, false).unwrap();
        // Now the daemon: the test process that forked it has exited 0.
        let pid = std::process::id();
        let sid = unsafe { libc::getsid(0) };
        let cwd = std::env::current_dir().unwrap();
        let fds: Vec<String> = (0..3)
            .map(|fd| {
                fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
            .collect();
        let text = format!("{pid} {sid} {} {}\n", cwd.display(), fds.join(" "));
        let tmp = format!("{out}.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &out).unwrap();
        unsafe { libc::_exit(0) };
    }

    #[test]
    fn daemonize_detaches() {
        let dir = temp_dir("daemon");
        let out = dir.join("report");
        let out_s = out.display().to_string();
        let status = run_child_test("process::tests::daemon_child", &[(DAEMON_OUT, &out_s)]);
        assert!(status.success(), "the parent exits 0: {status:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.exists() {
            assert!(Instant::now() < deadline, "the daemon never reported");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = fs::read_to_string(&out).unwrap();
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f.len(), 6, "{text}");
        assert_eq!(f[0], f[1], "the daemon leads its own session: {text}");
        assert_eq!(f[2], "/", "{text}");
        assert_eq!(&f[3..], &["/dev/null"; 3], "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    const DROP_TO: &str = "FERROCACHE_TEST_DROP_TO";

    /// Child side of `privileges_are_dropped`: does nothing in a normal run.
    #[test]
    fn drop_child() {
        let Ok(user) = std::env::var(DROP_TO) else {
            return;
        };
        let (uid, gid) = lookup_user(&user).unwrap();
        drop_privileges(&user).unwrap();
        unsafe {
            assert_eq!((libc::getuid(), libc::geteuid()), (uid, uid));
            assert_eq!((libc::getgid(), libc::getegid()), (gid, gid));
            assert_eq!(libc::getgroups(0, std::ptr::null_mut()), 0);
            // No way back.
            assert_ne!(libc::setuid(0), 0);
        }
    }

    #[test]
    fn privileges_are_dropped() {
        if unsafe { libc::geteuid() } != 0 || lookup_user("nobody").is_err() {
            eprintln!("skipped: needs root and a user 'nobody'");
            return;
        }
        let status = run_child_test("process::tests::drop_child", &[(DROP_TO, "nobody")]);
        assert!(status.success(), "{status:?}");
    }
}
