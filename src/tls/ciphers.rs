//! `ssl_ciphers`: an OpenSSL cipher list read against the TLS 1.2 suites
//! rustls offers.
//!
//! Owns the mapping from OpenSSL's cipher-list syntax (suite names, the
//! aliases that select among them, `!`/`-` exclusions, `:`/`,`/space
//! separators) to the TLS 1.2 suites of the ring provider. Must not read
//! files or build a server configuration.
//!
//! OpenSSL accepts a list as long as something in it names a cipher it has,
//! and so does this: names that select none of ours (CBC or RSA key
//! exchange suites, `@STRENGTH`) are left out and reported, and a list that
//! leaves nothing is refused, with memcached's message. As in OpenSSL, the
//! list governs TLS 1.2 only; TLS 1.3 suites are all offered.

use rustls::crypto::ring::cipher_suite as cs;
use rustls::SupportedCipherSuite;

/// One TLS 1.2 suite: its OpenSSL name and the aliases that select it.
struct Suite {
    suite: SupportedCipherSuite,
    name: &'static str,
    aliases: &'static [&'static str],
}

/// Aliases every suite here answers to: all are ECDHE, AEAD, "HIGH".
const COMMON: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "TLSv1.2", "ECDHE", "EECDH", "kECDHE", "kEECDH", "AEAD",
];

fn suites() -> [Suite; 6] {
    [
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            name: "ECDHE-ECDSA-AES256-GCM-SHA384",
            aliases: &["aECDSA", "ECDSA", "AES", "AES256", "AESGCM", "SHA384"],
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            name: "ECDHE-ECDSA-AES128-GCM-SHA256",
            aliases: &["aECDSA", "ECDSA", "AES", "AES128", "AESGCM", "SHA256"],
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            name: "ECDHE-ECDSA-CHACHA20-POLY1305",
            aliases: &["aECDSA", "ECDSA", "CHACHA20", "SHA256"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            name: "ECDHE-RSA-AES256-GCM-SHA384",
            aliases: &["aRSA", "AES", "AES256", "AESGCM", "SHA384"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            name: "ECDHE-RSA-AES128-GCM-SHA256",
            aliases: &["aRSA", "AES", "AES128", "AESGCM", "SHA256"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            name: "ECDHE-RSA-CHACHA20-POLY1305",
            aliases: &["aRSA", "CHACHA20", "SHA256"],
        },
    ]
}

impl Suite {
    /// The OpenSSL name, the IANA name (as rustls spells it) or an alias.
    fn answers_to(&self, word: &str) -> bool {
        self.name == word
            || COMMON.contains(&word)
            || self.aliases.contains(&word)
            || self.suite.suite().as_str().is_some_and(|iana| iana == word)
    }
}

/// The suites `list` selects, in its order, and the words that selected
/// nothing here (to be logged).
pub struct Selection {
    pub suites: Vec<SupportedCipherSuite>,
    pub unmatched: Vec<String>,
}

/// Reads `list`. `!name` removes for good, `-name` removes (a later word
/// may add it again), `+name` only reorders in OpenSSL (a no-op here),
/// `@…` directives are ignored.
pub fn select(list: &str) -> Selection {
    let all = suites();
    let mut chosen: Vec<usize> = Vec::new();
    let mut banned: Vec<usize> = Vec::new();
    let mut unmatched = Vec::new();
    for word in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with('@') {
            continue;
        }
        let (op, name) = match word.as_bytes()[0] {
            b'!' | b'-' | b'+' => (word.as_bytes()[0], &word[1..]),
            _ => (b' ', word),
        };
        // `A+B` in OpenSSL: the suites that answer to both
        let hits: Vec<usize> = (0..all.len())
            .filter(|&i| name.split('+').all(|part| all[i].answers_to(part)))
            .collect();
        match op {
            b'!' => banned.extend(&hits),
            b'-' => chosen.retain(|i| !hits.contains(i)),
            b'+' => {}
            _ => {
                if hits.is_empty() {
                    unmatched.push(word.to_string());
                }
                for i in hits {
                    if !chosen.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    chosen.retain(|i| !banned.contains(i));
    Selection {
        suites: chosen.into_iter().map(|i| all[i].suite).collect(),
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<String> {
        select(list)
            .suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn lists_select_as_openssl_would() {
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256"),
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        );
        // IANA names work too, and the order given is kept
        assert_eq!(
            names("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES256-GCM-SHA384"),
            [
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ]
        );
        // the common hardening idiom selects every suite
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        // exclusions
        assert_eq!(names("ALL:!CHACHA20:!aECDSA").len(), 2);
        assert!(names("ALL:!CHACHA20:!aECDSA")
            .iter()
            .all(|n| n.contains("RSA_WITH_AES")));
        assert_eq!(names("AESGCM:-AES256:AES256+aRSA").len(), 3);
        // CBC and RSA key exchange suites are not offered: nothing left
        let s = select("AES128-SHA:ECDHE-RSA-AES256-SHA");
        assert!(s.suites.is_empty());
        assert_eq!(s.unmatched, ["AES128-SHA", "ECDHE-RSA-AES256-SHA"]);
        assert!(select("FOO").suites.is_empty());
        let partly = select("ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(partly.suites.len(), 1);
        assert_eq!(partly.unmatched, ["ECDHE-RSA-AES256-SHA"]);
    }
}
