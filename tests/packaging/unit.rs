//! Reading a systemd unit file as systemd does: sections, continued lines,
//! Environment= and EnvironmentFile=, and ExecStart= with its variables
//! expanded and its words split.

use std::collections::BTreeMap;
use std::fs;

/// A systemd unit file: (section, key, value) in order, continuation lines
/// joined, comments dropped.
pub(crate) struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    pub(crate) fn parse(text: &str) -> Unit {
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

    pub(crate) fn all<'a>(
        &'a self,
        section: &'a str,
        key: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
    }

    /// The last setting of `key` (later ones win in systemd).
    pub(crate) fn get<'a>(&'a self, section: &'a str, key: &'a str) -> Option<&'a str> {
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
    pub(crate) fn exec_start(&self) -> Vec<String> {
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
