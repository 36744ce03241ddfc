//! The operator commands' wire format: `lru_crawler …`, `slabs …` and
//! `watch …` requests.
//!
//! As observed on memcached 1.6.18: arguments are separated by one or more
//! spaces; a wrong number of arguments or an unknown word is `ERROR`; the
//! numbers of `sleep` and `tocrawl` are read as memcached's `safe_strtoul`
//! reads them (32-bit truncation, `-1` refused); class lists are ids
//! separated by commas (empty items skipped), each 1 to 63.

use super::text::next_token;
use super::{Fault, Request};
use crate::cnum::{safe_strtod, safe_strtol, safe_strtoul};

/// Highest class id memcached accepts in a class list.
const MAX_CLASS_ID: u32 = 63;

const ERROR: Fault = Fault::UnknownCommand;
const BAD_FORMAT: Fault = Fault::BadCommandLineFormat;
const SLEEP_TOO_LONG: Fault = Fault::SleepTooLong;

/// What a crawl or a dump covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlTarget {
    /// `all`
    All,
    /// `hash` (memcached walks its hash table instead of its LRUs; the
    /// items are the same).
    Hash,
    /// A class list: bit `i` set for class id `i`.
    Classes(u64),
    /// A class list with an id that is not a number from 1 to 63:
    /// `BADCLASS invalid class id`, once the crawler's state is checked.
    BadClass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruCrawler {
    Enable,
    Disable,
    Crawl(CrawlTarget),
    Metadump(CrawlTarget),
    /// Microseconds, at most 1 000 000.
    Sleep(u32),
    Tocrawl(u32),
}

/// `watch` streams: bits of [`Request::Watch`]'s mask.
pub mod watch {
    pub const RAWCMDS: u32 = 1 << 0;
    pub const EVICTIONS: u32 = 1 << 1;
    pub const FETCHERS: u32 = 1 << 2;
    pub const MUTATIONS: u32 = 1 << 3;
    pub const SYSEVENTS: u32 = 1 << 4;
    pub const CONNEVENTS: u32 = 1 << 5;
    pub const PROXYREQS: u32 = 1 << 6;
    pub const PROXYEVENTS: u32 = 1 << 7;
    pub const PROXYUSER: u32 = 1 << 8;

    /// The words memcached 1.6.18 accepts after `watch`.
    pub const NAMES: [(&str, u32); 9] = [
        ("rawcmds", RAWCMDS),
        ("evictions", EVICTIONS),
        ("fetchers", FETCHERS),
        ("mutations", MUTATIONS),
        ("sysevents", SYSEVENTS),
        ("connevents", CONNEVENTS),
        ("proxyreqs", PROXYREQS),
        ("proxyevents", PROXYEVENTS),
        ("proxyuser", PROXYUSER),
    ];
}

/// memcached splits a line into at most this many tokens; `watch` reads
/// the words among them.
const MAX_TOKENS: usize = 24;

/// `rest`: what follows `lru_crawler` on the line.
pub(in crate::protocol) fn lru_crawler(rest: &[u8]) -> Request<'_> {
    let (sub, rest) = next_token(rest);
    let (arg, rest) = next_token(rest);
    let (extra, _) = next_token(rest);
    if !extra.is_empty() {
        return invalid(ERROR);
    }
    let cmd = match (sub, arg.is_empty()) {
        (b"enable", true) => LruCrawler::Enable,
        (b"disable", true) => LruCrawler::Disable,
        (b"crawl", false) => LruCrawler::Crawl(target(arg)),
        (b"metadump", false) => LruCrawler::Metadump(target(arg)),
        (b"sleep", false) => match safe_strtoul(arg) {
            Some(n) if n <= 1_000_000 => LruCrawler::Sleep(n),
            Some(_) => return invalid(SLEEP_TOO_LONG),
            None => return invalid(BAD_FORMAT),
        },
        (b"tocrawl", false) => match safe_strtoul(arg) {
            Some(n) => LruCrawler::Tocrawl(n),
            None => return invalid(BAD_FORMAT),
        },
        _ => return invalid(ERROR),
    };
    Request::LruCrawler(cmd)
}

fn invalid(fault: Fault) -> Request<'static> {
    Request::Invalid {
        fault,
        noreply: false,
    }
}

fn target(arg: &[u8]) -> CrawlTarget {
    match arg {
        b"all" => CrawlTarget::All,
        b"hash" => CrawlTarget::Hash,
        list => {
            let mut mask = 0u64;
            for id in list.split(|&b| b == b',').filter(|t| !t.is_empty()) {
                match safe_strtoul(id) {
                    Some(n) if (1..=MAX_CLASS_ID).contains(&n) => mask |= 1 << n,
                    _ => return CrawlTarget::BadClass,
                }
            }
            CrawlTarget::Classes(mask)
        }
    }
}

/// `rest`: what follows `slabs`. As memcached 1.6.18 reads it:
/// `reassign <src> <dst>` takes exactly two numbers (`safe_strtol`, so
/// 32-bit truncation) and knows no `noreply`; `automove <0|1|2> …` and
/// `automove ratio <float> …` ignore extra words and are silent when the
/// last word is `noreply`; anything else is `ERROR`.
pub(in crate::protocol) fn slabs(rest: &[u8]) -> Request<'_> {
    let mut words: [&[u8]; 4] = [&[]; 4];
    let mut count = 0;
    let mut last: &[u8] = &[];
    let mut s = rest;
    loop {
        let (word, after) = next_token(s);
        if word.is_empty() {
            break;
        }
        if count < words.len() {
            words[count] = word;
        }
        count += 1;
        last = word;
        s = after;
    }
    match (words[0], count) {
        (b"reassign", 3) => match (safe_strtol(words[1]), safe_strtol(words[2])) {
            (Some(src), Some(dst)) => Request::SlabsReassign { src, dst },
            _ => invalid(BAD_FORMAT),
        },
        (b"automove", 2..) => {
            let noreply = last == b"noreply";
            let outcome = if words[1] == b"ratio" {
                match safe_strtod(words[2]) {
                    Some(_) => Ok(None),
                    None => Err(ERROR),
                }
            } else {
                match safe_strtoul(words[1]) {
                    Some(level @ 0..=2) => Ok(Some(level as u8)),
                    Some(_) => Err(ERROR),
                    None => Err(BAD_FORMAT),
                }
            };
            match outcome {
                Ok(level) => Request::SlabsAutomove { level, noreply },
                Err(fault) => Request::Invalid { fault, noreply },
            }
        }
        _ => invalid(ERROR),
    }
}

/// `stats cachedump <class> <limit>`'s numbers, read as memcached reads
/// them (`safe_strtoul`: 32-bit truncation, `-1` refused).
pub fn cachedump_args(class: &[u8], limit: &[u8]) -> Option<(u32, u32)> {
    Some((safe_strtoul(class)?, safe_strtoul(limit)?))
}

/// `rest`: what follows `watch`. No word means `fetchers`; an unknown word
/// is `ERROR`. A last word `noreply` makes memcached silent (it is an
/// unknown word too: the `ERROR` is not sent).
pub(in crate::protocol) fn watch(rest: &[u8]) -> Request<'_> {
    if rest.split(|&b| b == b' ').rfind(|w| !w.is_empty()) == Some(b"noreply") {
        return Request::Invalid {
            fault: ERROR,
            noreply: true,
        };
    }
    let mut mask = 0;
    let mut s = rest;
    let mut tokens = 1;
    loop {
        let (word, after) = next_token(s);
        if word.is_empty() || tokens == MAX_TOKENS {
            break;
        }
        tokens += 1;
        match watch::NAMES
            .iter()
            .find(|(name, _)| name.as_bytes() == word)
        {
            Some((_, bit)) => mask |= bit,
            None => return invalid(ERROR),
        }
        s = after;
    }
    if mask == 0 {
        mask = watch::FETCHERS;
    }
    Request::Watch { mask }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crawler(line: &str) -> Request<'_> {
        lru_crawler(line.as_bytes())
    }

    fn reply(r: &Request<'_>) -> Fault {
        match r {
            Request::Invalid { fault, .. } => *fault,
            _ => panic!("not refused: {r:?}"),
        }
    }

    #[test]
    fn lru_crawler_commands() {
        use CrawlTarget::*;
        use LruCrawler::*;
        let ok =
            |l: &str, want: LruCrawler| assert_eq!(crawler(l), Request::LruCrawler(want), "{l}");
        ok(" enable", Enable);
        ok("  disable ", Disable);
        ok(" crawl all", Crawl(All));
        ok(" metadump hash", Metadump(Hash));
        ok(" metadump 1,2", Metadump(Classes(0b110)));
        ok(" metadump ,1,", Metadump(Classes(0b10)));
        ok(" metadump 4294967297", Metadump(Classes(0b10)));
        ok(" metadump 63", Metadump(Classes(1 << 63)));
        ok(" crawl 0", Crawl(BadClass));
        ok(" crawl 64", Crawl(BadClass));
        ok(" metadump 1,all", Metadump(BadClass));
        ok(" metadump -1", Metadump(BadClass));
        ok(" sleep 1000000", Sleep(1_000_000));
        ok(" tocrawl 99999999999", Tocrawl(1215752191));
        for bad in [
            "",
            " bogus",
            " metadump",
            " enable x",
            " crawl all 1",
            " tocrawl",
        ] {
            assert_eq!(reply(&crawler(bad)), ERROR, "{bad:?}");
        }
        assert_eq!(reply(&crawler(" sleep 1000001")), SLEEP_TOO_LONG);
        assert_eq!(reply(&crawler(" sleep -1")), BAD_FORMAT);
        assert_eq!(reply(&crawler(" tocrawl 12abc")), BAD_FORMAT);
    }

    #[test]
    fn slabs_commands() {
        let re = |src, dst| Request::SlabsReassign { src, dst };
        let am = |level, noreply| Request::SlabsAutomove { level, noreply };
        let err = |fault, noreply| Request::Invalid { fault, noreply };
        let cases: &[(&str, Request<'_>)] = &[
            (" reassign 1 2", re(1, 2)),
            ("  reassign  -1  +2 ", re(-1, 2)),
            (" reassign 1 4294967298", re(1, 2)),
            (" reassign 1 2147483648", re(1, i32::MIN)),
            (" reassign a 2", err(BAD_FORMAT, false)),
            (" reassign 1 99999999999999999999", err(BAD_FORMAT, false)),
            (" reassign 1", err(ERROR, false)),
            (" reassign 1 2 noreply", err(ERROR, false)),
            (" automove 0", am(Some(0), false)),
            (" automove 2 x y", am(Some(2), false)),
            (" automove 4294967297", am(Some(1), false)),
            (" automove 1 noreply", am(Some(1), true)),
            (" automove 1 noreply x", am(Some(1), false)),
            (" automove 3", err(ERROR, false)),
            (" automove -1", err(BAD_FORMAT, false)),
            (" automove x noreply", err(BAD_FORMAT, true)),
            (" automove noreply", err(BAD_FORMAT, true)),
            (" automove ratio 0.5", am(None, false)),
            (" automove ratio -3 x", am(None, false)),
            (" automove ratio", err(ERROR, false)),
            (" automove ratio x", err(ERROR, false)),
            (" automove ratio 1e400", err(ERROR, false)),
            (" automove", err(ERROR, false)),
            ("", err(ERROR, false)),
            (" foo", err(ERROR, false)),
        ];
        for (line, want) in cases {
            assert_eq!(&slabs(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn watch_words() {
        assert_eq!(
            watch(b""),
            Request::Watch {
                mask: watch::FETCHERS
            }
        );
        assert_eq!(
            watch(b" mutations  evictions"),
            Request::Watch {
                mask: watch::MUTATIONS | watch::EVICTIONS
            }
        );
        assert_eq!(reply(&watch(b" deletions")), ERROR);
        for quiet in [&b" noreply"[..], b" fetchers noreply ", b" bogus noreply"] {
            assert_eq!(
                watch(quiet),
                Request::Invalid {
                    fault: ERROR,
                    noreply: true
                }
            );
        }
    }
}
