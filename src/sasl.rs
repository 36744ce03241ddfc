//! SASL authentication (`-S`) through the system's Cyrus SASL, loaded at
//! run time: `libsasl2.so.2` is opened when `-S` is given, so the build
//! needs nothing but Rust, and an operator's sasldb and
//! `memcached.conf` (found as memcached finds it: `SASL_CONF_PATH`, then
//! `/etc/sasl/memcached.conf`, then `/etc/sasl2/memcached.conf`) work
//! unchanged, with the mechanisms their plugins provide (PLAIN and
//! CRAM-MD5 over sasldb, among others).
//!
//! Owns loading the library, its one-time set-up (as memcached's
//! `init_sasl`: application name `memcached`, a log callback and the
//! configuration-path callback) and each connection's exchange
//! ([`SaslConn`]: list the mechanisms, start, step). Must not know the
//! wire: what a step's outcome looks like in a frame is the binary
//! codec's.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

const SASL_OK: c_int = 0;
const SASL_CONTINUE: c_int = 1;
const SASL_FAIL: c_int = -1;
const SASL_CB_LIST_END: c_ulong = 0;
const SASL_CB_LOG: c_ulong = 2;
const SASL_CB_GETCONFPATH: c_ulong = 5;

/// Cyrus SASL's `sasl_callback_t`.
#[repr(C)]
struct Callback {
    id: c_ulong,
    proc_: *const c_void,
    context: *mut c_void,
}

type ServerInit = unsafe extern "C" fn(*const Callback, *const c_char) -> c_int;
type ServerNew = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *const Callback,
    c_uint,
    *mut *mut c_void,
) -> c_int;
type ListMech = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *mut *const c_char,
    *mut c_uint,
    *mut c_int,
) -> c_int;
type ServerStart = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    c_uint,
    *mut *const c_char,
    *mut c_uint,
) -> c_int;
type ServerStep = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    c_uint,
    *mut *const c_char,
    *mut c_uint,
) -> c_int;
type Dispose = unsafe extern "C" fn(*mut *mut c_void);

/// The library's entry points, resolved once.
struct Lib {
    server_new: ServerNew,
    listmech: ListMech,
    server_start: ServerStart,
    server_step: ServerStep,
    dispose: Dispose,
}

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
/// The configuration path handed to the library (kept alive for it).
static CONF_PATH: OnceLock<Option<CString>> = OnceLock::new();

/// Loads libsasl2 and initialises it as memcached does; an error names
/// what is missing. Called at start-up with `-S`; later calls return the
/// first one's result.
pub fn init() -> Result<(), String> {
    match LIB.get_or_init(load) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

/// The library, if [`init`] succeeded.
fn lib() -> Option<&'static Lib> {
    LIB.get().and_then(|r| r.as_ref().ok())
}

fn load() -> Result<Lib, String> {
    let name = c"libsasl2.so.2";
    // SAFETY: dlopen with a valid C string; the handle is kept for the
    // process's life (never closed), so the symbols stay valid.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(format!(
            "-S: SASL needs Cyrus SASL's libsasl2.so.2, which could not be loaded ({}); \
             install it (Debian: libsasl2-2, with libsasl2-modules and libsasl2-modules-db \
             for PLAIN, CRAM-MD5 and sasldb)",
            dl_error()
        ));
    }
    let sym = |s: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: a valid handle and C string.
        let p = unsafe { libc::dlsym(handle, s.as_ptr()) };
        if p.is_null() {
            Err(format!("-S: libsasl2.so.2 has no {s:?}"))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is the libsasl2 function of that name, whose C
    // signature the type spells (sasl/sasl.h, API version 2).
    let (init, lib) = unsafe {
        let init: ServerInit = std::mem::transmute(sym(c"sasl_server_init")?);
        let lib = Lib {
            server_new: std::mem::transmute::<*mut c_void, ServerNew>(sym(c"sasl_server_new")?),
            listmech: std::mem::transmute::<*mut c_void, ListMech>(sym(c"sasl_listmech")?),
            server_start: std::mem::transmute::<*mut c_void, ServerStart>(sym(
                c"sasl_server_start",
            )?),
            server_step: std::mem::transmute::<*mut c_void, ServerStep>(sym(c"sasl_server_step")?),
            dispose: std::mem::transmute::<*mut c_void, Dispose>(sym(c"sasl_dispose")?),
        };
        (init, lib)
    };
    let callbacks: &'static [Callback; 3] = Box::leak(Box::new([
        Callback {
            id: SASL_CB_LOG,
            proc_: log_cb as *const c_void,
            context: ptr::null_mut(),
        },
        Callback {
            id: SASL_CB_GETCONFPATH,
            proc_: conf_path_cb as *const c_void,
            context: ptr::null_mut(),
        },
        Callback {
            id: SASL_CB_LIST_END,
            proc_: ptr::null(),
            context: ptr::null_mut(),
        },
    ]));
    // SAFETY: the callback list lives for the process; the name is a
    // valid C string.
    let rc = unsafe { init(callbacks.as_ptr(), c"memcached".as_ptr()) };
    if rc != SASL_OK {
        return Err(format!("Error initializing sasl. (libsasl2: {rc})"));
    }
    Ok(lib)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a C string valid until the next call.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The library's messages go to the log at memcached's levels: errors
/// always, failures and warnings (a wrong password) with `-v`, the rest
/// with `-vv`.
extern "C" fn log_cb(_ctx: *mut c_void, level: c_int, message: *const c_char) -> c_int {
    if !message.is_null() && level > 0 {
        // SAFETY: the library passes a NUL-terminated message.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        match level {
            1 => log::warn!("SASL (severity {level}): {text}"),
            2 | 3 => log::info!("SASL (severity {level}): {text}"),
            _ => log::debug!("SASL (severity {level}): {text}"),
        }
    }
    SASL_OK
}

/// Where the library looks for `memcached.conf`, as memcached answers it:
/// `SASL_CONF_PATH`, else the first of its two file names that exists.
extern "C" fn conf_path_cb(_ctx: *mut c_void, path: *mut *const c_char) -> c_int {
    let chosen = CONF_PATH.get_or_init(|| {
        let found = std::env::var_os("SASL_CONF_PATH")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                ["/etc/sasl/memcached.conf", "/etc/sasl2/memcached.conf"]
                    .iter()
                    .map(std::path::PathBuf::from)
                    .find(|p| p.exists())
            })?;
        CString::new(found.into_os_string().into_encoded_bytes()).ok()
    });
    match chosen {
        Some(p) if !path.is_null() => {
            // SAFETY: `path` is the library's out pointer; the string is
            // kept alive in a static.
            unsafe { *path = p.as_ptr() };
            SASL_OK
        }
        _ => SASL_FAIL,
    }
}

/// What one step of an exchange came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated.
    Done,
    /// Another step is needed; the challenge to send.
    Continue(Vec<u8>),
    /// Refused (a bad password, an unknown mechanism, a step before a
    /// start).
    Failed,
}

/// One connection's SASL context.
pub struct SaslConn {
    conn: *mut c_void,
    started: bool,
}

// SAFETY: a Cyrus SASL connection context is not shared: it belongs to
// one client connection and is used by the one worker thread serving it.
unsafe impl Send for SaslConn {}

impl SaslConn {
    /// A new context (as memcached's: service `memcached`, the host's name
    /// as server and realm); `None` if SASL is off or the library refused.
    pub fn new() -> Option<SaslConn> {
        let lib = lib()?;
        let mut conn = ptr::null_mut();
        // SAFETY: valid C strings or NULL as the API allows; `conn` is an
        // out pointer.
        let rc = unsafe {
            (lib.server_new)(
                c"memcached".as_ptr(),
                ptr::null(),
                ptr::null(),
                ptr::null(),
                ptr::null(),
                ptr::null(),
                0,
                &mut conn,
            )
        };
        (rc == SASL_OK && !conn.is_null()).then_some(SaslConn {
            conn,
            started: false,
        })
    }

    /// The mechanisms on offer, separated by spaces; `None` if the library
    /// cannot list them.
    pub fn mechanisms(&mut self) -> Option<Vec<u8>> {
        let lib = lib()?;
        let (mut out, mut len) = (ptr::null(), 0);
        // SAFETY: our context; prefix, separator and suffix are C strings;
        // out pointers are valid.
        let rc = unsafe {
            (lib.listmech)(
                self.conn,
                ptr::null(),
                c"".as_ptr(),
                c" ".as_ptr(),
                c"".as_ptr(),
                &mut out,
                &mut len,
                ptr::null_mut(),
            )
        };
        (rc == SASL_OK).then(|| copy_out(out, len))
    }

    /// Starts an exchange with `mech` and the client's first data.
    pub fn start(&mut self, mech: &[u8], data: &[u8]) -> Outcome {
        let Some(lib) = lib() else {
            return Outcome::Failed;
        };
        let (Ok(mech), Ok(len)) = (CString::new(mech), c_uint::try_from(data.len())) else {
            return Outcome::Failed;
        };
        let (mut out, mut out_len) = (ptr::null(), 0);
        let input = c_bytes(data);
        // SAFETY: our context, a C string, the client's bytes with their
        // length, and out pointers.
        let rc = unsafe {
            (lib.server_start)(self.conn, mech.as_ptr(), input, len, &mut out, &mut out_len)
        };
        self.started = rc == SASL_OK || rc == SASL_CONTINUE;
        outcome(rc, out, out_len)
    }

    /// The next step of a started exchange (a step before any start
    /// fails, as memcached's does).
    pub fn step(&mut self, data: &[u8]) -> Outcome {
        let Some(lib) = lib() else {
            return Outcome::Failed;
        };
        let Ok(len) = c_uint::try_from(data.len()) else {
            return Outcome::Failed;
        };
        if !self.started {
            return Outcome::Failed;
        }
        let (mut out, mut out_len) = (ptr::null(), 0);
        let input = c_bytes(data);
        // SAFETY: as in `start`.
        let rc = unsafe { (lib.server_step)(self.conn, input, len, &mut out, &mut out_len) };
        outcome(rc, out, out_len)
    }
}

/// The client's bytes as libsasl2 takes them: a null pointer when there
/// are none (as memcached passes them).
fn c_bytes(data: &[u8]) -> *const c_char {
    if data.is_empty() {
        ptr::null()
    } else {
        data.as_ptr().cast()
    }
}

impl Drop for SaslConn {
    fn drop(&mut self) {
        if let Some(lib) = lib() {
            // SAFETY: our context, disposed once.
            unsafe { (lib.dispose)(&mut self.conn) };
        }
    }
}

fn outcome(rc: c_int, out: *const c_char, len: c_uint) -> Outcome {
    match rc {
        SASL_OK => Outcome::Done,
        SASL_CONTINUE => Outcome::Continue(copy_out(out, len)),
        _ => Outcome::Failed,
    }
}

/// Bytes the library handed out (valid until its next call on the
/// context).
fn copy_out(out: *const c_char, len: c_uint) -> Vec<u8> {
    if out.is_null() {
        return Vec::new();
    }
    // SAFETY: the library's buffer of `len` bytes.
    unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len as usize) }.to_vec()
}
