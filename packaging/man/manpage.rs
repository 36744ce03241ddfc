//! Writes ferrocache(1) from the clap definition, so the man page lists the
//! same options, help texts and defaults as `ferrocache -h`.
//!
//! Run at package-build time (packaging/build-packages.sh does):
//!
//! ```text
//! cargo run --release --example manpage -- target/packaging/ferrocache.1
//! ```
//!
//! A Cargo example rather than a `build.rs` or a binary: it needs
//! clap_mangen, a dev-dependency, so the server's own build and its
//! dependencies stay as they are.

use std::io::Write;
use std::path::PathBuf;

use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ferrocache.1"));
    let mut page = Vec::new();
    if let Err(e) = render(&mut page) {
        eprintln!("manpage: cannot render: {e}");
        std::process::exit(1);
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("manpage: cannot create {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
    if let Err(e) = std::fs::write(&out, page) {
        eprintln!("manpage: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}

/// The whole page: clap_mangen's sections for what clap knows (name,
/// synopsis, options, version), ours for what it does not.
fn render(w: &mut dyn Write) -> std::io::Result<()> {
    let cmd = ferrocache::config::command();
    let extended = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    // The -o list is rendered as its own section below, verbatim.
    let man = Man::new(cmd.after_help("")).manual("ferrocache manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    description().to_writer(w)?;
    man.render_options_section(w)?;
    preformatted("EXTENDED OPTIONS", &extended).to_writer(w)?;
    trailer().to_writer(w)?;
    man.render_version_section(w)
}

fn description() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["DESCRIPTION"]);
    r.text([
        bold("ferrocache"),
        roman(
            " is a cache server that speaks memcached's text protocol and takes \
             memcached's command-line flags, so it can replace ",
        ),
        bold("memcached"),
        roman(
            "(1) without changes to clients, proxies or tools. Items are kept \
             in memory up to the limit set with ",
        ),
        bold("-m"),
        roman("; when it is reached the least recently used items are evicted (or, with "),
        bold("-M"),
        roman(", writes are refused)."),
    ]);
    r.control("PP", []);
    r.text([
        roman("Options are read in order; given twice, the later one counts. Options may also be read from a file with "),
        bold("--config-file"),
        roman(" (see "),
        bold("CONFIGURATION FILE"),
        roman(" below). As with memcached, running as root requires "),
        bold("-u"),
        roman(", the user to switch to."),
    ]);
    r
}

fn preformatted(title: &str, text: &str) -> Roff {
    let mut r = Roff::new();
    r.control("SH", [title]);
    r.control("nf", []);
    for line in text.lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r
}

fn trailer() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["CONFIGURATION FILE"]);
    r.text([
        roman("With "),
        bold("--config-file"),
        roman(" "),
        italic("FILE"),
        roman(
            ", options are first read from FILE, in the format of memcached's \
             /etc/memcached.conf: one option per line, written as on the \
             command line (",
        ),
        bold("-m 64"),
        roman(", "),
        bold("--port=11211"),
        roman(
            "). Blank lines and lines starting with # are skipped; a comment \
             cannot share a line with an option, and values cannot contain \
             spaces. The command line wins: an option given there replaces \
             the file's (for ",
        ),
        bold("-o"),
        roman(
            ", item by item), and flags set in the file cannot be unset there. \
             A bad line stops ferrocache with an error naming the file and the \
             line number.",
        ),
    ]);
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([italic("/etc/ferrocache.conf")]);
    r.text([roman(
        "Settings of the packaged service, read through --config-file by the \
         systemd unit.",
    )]);
    r.control("TP", []);
    r.text([italic("/lib/systemd/system/ferrocache.service")]);
    r.text([roman(
        "The packaged systemd unit (under /usr/lib on RPM-based systems). It \
         runs the server as the system user ferrocache; change it with \
         systemctl edit ferrocache.",
    )]);
    r.control("SH", ["EXIT STATUS"]);
    r.text([roman(
        "0 after -h, -V or -i, or a clean shutdown; 64 or 1 for an option \
         memcached also refuses (the same status as memcached); 71 when a \
         listening socket cannot be opened.",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("memcached"),
        roman("(1), "),
        bold("systemctl"),
        roman("(1), "),
        bold("journalctl"),
        roman("(1)"),
    ]);
    r
}
