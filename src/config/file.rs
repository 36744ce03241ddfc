//! `--config-file FILE` (ours; memcached has no such flag): options from a
//! file in `/etc/memcached.conf`'s format, one per line.
//!
//! Owns reading and splitting the file's lines into option occurrences, and
//! naming the file and line in what they cause. Must not apply an option's
//! value: the parser does, as for the command line.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::cli::{clap_error, command, normalize_verbose, occurrences};
use super::{ConfigError, Parser};

/// One option line of a config file such as `/etc/ferrocache.conf`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileOption {
    /// 1-based, for messages.
    line: usize,
    /// The line as written, trimmed, for messages.
    text: String,
    /// clap id of the option.
    id: &'static str,
    /// One value per occurrence (`-vv` is two `None`s).
    values: Vec<Option<String>>,
}

impl FileOption {
    /// `file:line: "text"`, the prefix of every message about this line.
    fn place(&self, path: &Path) -> String {
        format!("{}:{}: \"{}\"", path.display(), self.line, self.text)
    }

    /// What is left of this line once the command line has had its say:
    /// nothing when the command line gives the same option, and for `-o`
    /// the items whose names the command line's `-o`s do not give. (A flag
    /// set in the file cannot be unset on the command line, as no flag has
    /// a negation; comment it out instead.)
    pub(super) fn after_command_line(
        &self,
        cli: &[(usize, &'static str, Option<OsString>)],
    ) -> Option<Vec<Option<String>>> {
        if self.id != "extended" {
            return (!cli.iter().any(|o| o.1 == self.id)).then(|| self.values.clone());
        }
        let named: HashSet<String> = cli
            .iter()
            .filter(|o| o.1 == "extended")
            .filter_map(|o| o.2.as_deref().map(OsStr::to_string_lossy))
            .flat_map(|v| {
                v.split(',')
                    .map(|item| subopt_name(item).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let kept: Vec<Option<String>> = self
            .values
            .iter()
            .flatten()
            .filter_map(|v| {
                let items: Vec<&str> = v
                    .split(',')
                    .filter(|item| !named.contains(subopt_name(item)))
                    .collect();
                (!items.is_empty()).then(|| Some(items.join(",")))
            })
            .collect();
        (!kept.is_empty()).then_some(kept)
    }
}

/// `name` of an `-o` item `name=value`.
pub(super) fn subopt_name(item: &str) -> &str {
    item.split_once('=').map_or(item, |(name, _)| name)
}

/// Reads a config file in `/etc/memcached.conf`'s format: one option per
/// line written as on the command line (`-m 64`, `--port=11211`, `-vv`);
/// blank lines and lines starting with `#` are skipped. Values are single
/// words (no quoting), so a line is split at blanks. Every option is checked
/// here as clap sees it; values are checked later, in order, by the parser.
pub(super) fn read_config_file(path: &Path) -> Result<Vec<FileOption>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!("cannot read config file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, values) = parse_config_line(line).map_err(|msg| {
            ConfigError::Invalid(format!("{}:{}: \"{line}\": {msg}", path.display(), i + 1))
        })?;
        out.push(FileOption {
            line: i + 1,
            text: line.to_string(),
            id,
            values,
        });
    }
    Ok(out)
}

/// One config file line → its option's id and values, or why not.
pub(super) fn parse_config_line(line: &str) -> Result<(&'static str, Vec<Option<String>>), String> {
    let mut argv: Vec<OsString> = vec!["ferrocache".into()];
    argv.extend(line.split_whitespace().map(OsString::from));
    let argv = normalize_verbose(argv);
    let matches = command().try_get_matches_from(&argv).map_err(|e| {
        // getopt's sentence without memcached's `Illegal argument "?"`.
        let err = clap_error("ferrocache", &argv, &e);
        let first = err.message().lines().next().unwrap_or_default();
        first.trim_start_matches("ferrocache: ").to_string()
    })?;
    if matches.get_raw("config-file").is_some() {
        return Err("--config-file cannot be used inside a config file".into());
    }
    let occ = occurrences(&matches);
    if let Some((_, _, word)) = occ.iter().find(|o| o.1 == "args") {
        let word = word
            .as_deref()
            .map(OsStr::to_string_lossy)
            .unwrap_or_default();
        return Err(if word.starts_with('#') {
            "a comment must be on a line of its own".to_string()
        } else if word == "logfile" {
            // Debian's /etc/memcached.conf has this line for its wrapper.
            "'logfile' is not an option (Debian's memcached wrapper reads it); \
             ferrocache logs to stderr, which systemd sends to the journal"
                .to_string()
        } else {
            format!(
                "'{word}' is not an option; write one option per line as on the \
                 command line, e.g. -m 64"
            )
        });
    }
    let Some(&(_, id, _)) = occ.first() else {
        return Err("no option on this line".into());
    };
    if occ.iter().any(|o| o.1 != id) {
        return Err("more than one option on this line; write one per line".into());
    }
    if matches!(id, "help" | "version" | "license") {
        return Err("this option prints and exits; it has no place in a config file".into());
    }
    let values = occ
        .into_iter()
        .map(|o| o.2.map(|v| v.to_string_lossy().into_owned()))
        .collect();
    Ok((id, values))
}

impl Parser {
    /// [`Parser::apply`] for a config file line: errors and notes name the
    /// file and line; an error keeps its kind (and so its exit status).
    pub(super) fn apply_from_file(
        &mut self,
        path: &Path,
        line: &FileOption,
        values: Vec<Option<String>>,
    ) -> Result<(), ConfigError> {
        for value in values {
            let before = self.warnings.len();
            self.apply(line.id, value.map(OsString::from))
                .map_err(|e| {
                    let msg = format!("{}: {}", line.place(path), e.message());
                    match e {
                        ConfigError::Usage(_) => ConfigError::Usage(msg),
                        ConfigError::Invalid(_) | ConfigError::Exit(_) => ConfigError::Invalid(msg),
                    }
                })?;
            for w in &mut self.warnings[before..] {
                *w = format!("{}: {w}", line.place(path));
            }
        }
        Ok(())
    }
}
