//! The meta commands against the cache: a status (hit, miss, not stored,
//! exists, not found) carrying the flags the client asked back, as values
//! in the order it sent them, as memcached 1.6 answers. The codec writes
//! them (`HD`/`VA`/`EN`/`NS`/`EX`/`NF` in text).
//!
//! Must not write wire bytes: replies are [`MetaReply`] values.

use std::io::Write;

use super::{count_get, count_write, ops, reply, Context, Flow, NO_MEMORY, TOO_LARGE};
use crate::clock::Secs;
use crate::protocol::{
    base64, meta, Failure, ItemInfo, Meta, MetaField, MetaFields, MetaReply, MetaStatus, Reply,
    Response,
};
use crate::stats::bump;
use crate::storage::{
    ArithOpts, DeleteAction, DeleteOutcome, Lookup, MetaArithOutcome, MetaView, StoreOp,
    StoreOutcome, WriteOpts,
};

/// `mg`.
pub(super) fn get<R: Reply>(ctx: &Context<'_>, m: &Meta<'_>, out: &mut R) -> Flow {
    let w = ctx.worker;
    let f = &m.flags;
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = m.lookup_key(&mut buf);
    let now = ctx.clock.now();
    let touch = f.ttl.map(|t| ctx.clock.deadline(i64::from(t)));
    let recache = f.recache.map(|t| ctx.clock.deadline(i64::from(t)));
    let use_cas = ctx.config.use_cas;
    let bump_item = !f.no_update;
    // the reply of a hit, written under the shard lock; the value length
    // is for `watch`
    let mut refused = false;
    let mut read = |it: &mut MetaView<'_>, vivified| {
        refused = !hit_reply(m, it, vivified, now, touch, recache, use_cas, out);
        it.value().len()
    };
    let (mut lookup, mut done) = ctx.cache.meta_read(key, bump_item, |it| read(it, None));
    if done.is_none() {
        if let Some(ttl) = f.vivify {
            // a stub item whose recache token this client wins (`W`);
            // losing the race to another creator is an ordinary hit
            let opts = WriteOpts {
                win: true,
                binary_key: f.base64,
                cas: f.new_cas,
                ..WriteOpts::default()
            };
            // the stub lives without a deadline until the reply reaches N
            // (see hit_reply): an N already past (N-1) still answers this
            // request with the stub, as memcached's does, and only then
            // leaves it expired
            let deadline = ctx.clock.deadline(i64::from(ttl));
            let (stored, _) = ctx.cache.store_with(StoreOp::Add, key, 0, 0, b"", &opts);
            let created = stored == StoreOutcome::Stored;
            if created || stored == StoreOutcome::NotStored {
                let vivified = created.then_some(deadline);
                (lookup, done) = ctx.cache.meta_read(key, bump_item, |it| read(it, vivified));
            }
        }
    }
    if refused {
        bump(&w.response_obj_oom, 1);
    }
    ops::log_fetch(ctx, key, lookup, done.unwrap_or(0));
    // memcached counts a hit with T as a touch, anything else as a get
    if lookup == Lookup::Hit && touch.is_some() {
        bump(&w.cmd_touch, 1);
        bump(&w.touch_hits, 1);
    } else {
        count_get(w, lookup);
    }
    if done.is_none() && !f.quiet {
        status_reply(MetaStatus::Miss, m, key, f.base64, out);
    }
    Flow::Done
}

/// The `VA`/`HD` reply of an `mg` hit, acting on `T`, `N` and `R` where
/// they stand among the flags (memcached's order: `t` before `T` shows the
/// old TTL), then the `Z` / `X` / `W` marks. `vivified` is the `N`
/// deadline of an item this request created (stored without one). False
/// when the value would pin more than `-o pinned_mem_limit`: the reply is
/// memcached's "out of memory writing get response" instead.
#[allow(clippy::too_many_arguments)]
fn hit_reply<R: Reply>(
    m: &Meta<'_>,
    item: &mut MetaView<'_>,
    vivified: Option<Secs>,
    now: Secs,
    touch: Option<Secs>,
    recache: Option<Secs>,
    use_cas: bool,
    out: &mut R,
) -> bool {
    // held first: a refusal changes nothing (no touch, no win handed out)
    let pinned = if m.flags.value {
        match super::hold_value(item.share(), out) {
            Ok(pinned) => pinned,
            Err(_) => {
                out.respond(&Response::Failure(Failure::ReplyNoMemory));
                return false;
            }
        }
    } else {
        None
    };
    let mut won = false;
    // memcached gives a created item its N deadline only when it reaches
    // the N flag: a `t` before it shows -1
    let created = vivified.is_some();
    let mut fields = MetaFields::new();
    for tok in m.flag_tokens() {
        match tok[0] {
            b'T' => {
                if let Some(deadline) = touch {
                    item.set_deadline(deadline);
                }
            }
            b'N' => {
                if let Some(deadline) = vivified {
                    item.set_deadline(deadline);
                    won = true;
                }
            }
            b'R' => {
                let deadline = item.deadline();
                won |= !item.win_sent()
                    && !created
                    && deadline != 0
                    && recache.is_some_and(|r| deadline < r);
            }
            b's' => fields.push(MetaField::Size(item.value().len() as u64)),
            b't' => fields.push(ttl(item.deadline(), now)),
            b'c' => fields.push(MetaField::Cas(if use_cas { item.cas() } else { 0 })),
            b'f' => fields.push(MetaField::Flags(item.flags())),
            b'l' => fields.push(MetaField::LastAccess(u64::from(
                now.wrapping_sub(item.last_access()),
            ))),
            b'h' => fields.push(MetaField::Hit(item.fetched())),
            b'O' => fields.push(MetaField::Opaque(tok)),
            // the item's key, filled in once the item is no longer changed
            b'k' => fields.push(MetaField::Key {
                key: &[],
                binary: false,
            }),
            _ => {}
        }
    }
    // a created item carries its win from birth; memcached shows only W
    if item.win_sent() && !created {
        fields.push(MetaField::WinSent);
    }
    if item.stale() {
        fields.push(MetaField::Stale);
        won |= !item.win_sent();
    }
    if won {
        fields.push(MetaField::Win);
        item.set_win_sent();
    }
    fields.set_key(item.key(), item.binary_key());
    let reply = MetaReply {
        status: MetaStatus::Done,
        fields: fields.as_slice(),
        value: m.flags.value.then(|| item.value()),
    };
    match pinned {
        None => out.meta(&reply),
        Some(pinned) => out.meta_shared(&reply, Box::new(pinned)),
    }
    true
}

/// `ms`.
pub(super) fn set<R: Reply>(ctx: &Context<'_>, m: &Meta<'_>, out: &mut R) -> Flow {
    let w = ctx.worker;
    let f = &m.flags;
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = m.lookup_key(&mut buf);
    bump(&w.cmd_set, 1);
    // as memcached: a compare unique turns set and replace into cas; add
    // ignores it; append and prepend check it themselves
    let op = match (f.mode, f.compare_cas) {
        (Some(b'E'), _) => StoreOp::Add,
        (Some(b'A'), _) => StoreOp::Append,
        (Some(b'P'), _) => StoreOp::Prepend,
        (_, Some(unique)) => StoreOp::Cas(unique),
        (Some(b'R'), None) => StoreOp::Replace,
        _ => StoreOp::Set,
    };
    // append and prepend compare only a nonzero C, as memcached (whose
    // compare there is with the new item's unique, 0 meaning none)
    let compare = match op {
        StoreOp::Append | StoreOp::Prepend => f.compare_cas.filter(|&c| c != 0),
        _ => f.compare_cas,
    };
    let opts = WriteOpts {
        compare,
        // memcached takes an older unique as stale only when it is not 0
        invalidate: f.invalidate && f.compare_cas != Some(0),
        cas: f.new_cas,
        binary_key: f.base64,
        win: false,
    };
    let deadline = ctx.clock.deadline(i64::from(f.ttl.unwrap_or(0)));
    ops::log_lookup(ctx, key);
    let (outcome, cas) = ctx
        .cache
        .store_with(op, key, f.client_flags, deadline, m.data, &opts);
    ops::log_store(ctx, op, key, m.data.len(), deadline, outcome);
    count_write(w, matches!(op, StoreOp::Cas(_)), outcome);
    let status = match outcome {
        StoreOutcome::Stored if f.quiet => return Flow::Done,
        StoreOutcome::Stored => MetaStatus::Done,
        StoreOutcome::NotStored => MetaStatus::NotStored,
        StoreOutcome::Exists => MetaStatus::Exists,
        StoreOutcome::NotFound => MetaStatus::NotFound,
        StoreOutcome::TooLarge => return reply(false, &TOO_LARGE, out),
        StoreOutcome::NoMemory => return reply(false, &NO_MEMORY, out),
    };
    let cas = if ctx.config.use_cas { cas } else { 0 };
    let mut fields = MetaFields::new();
    for tok in m.flag_tokens() {
        match tok[0] {
            b'c' => fields.push(MetaField::Cas(cas)),
            b'O' => fields.push(MetaField::Opaque(tok)),
            b'k' => fields.push(MetaField::Key {
                key,
                binary: f.base64,
            }),
            _ => {}
        }
    }
    out.meta(&MetaReply {
        status,
        fields: fields.as_slice(),
        value: None,
    });
    Flow::Done
}

/// An `ms` too large for `-I`: memcached drops the old value too.
pub(super) fn too_large<R: Reply>(
    ctx: &Context<'_>,
    key: &[u8],
    base64_key: bool,
    out: &mut R,
) -> Flow {
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = meta::lookup_key(key, base64_key, &mut buf);
    bump(&ctx.worker.cmd_set, 1);
    bump(&ctx.worker.store_too_large, 1);
    ctx.cache.delete(key);
    reply(false, &TOO_LARGE, out)
}

/// `md`.
pub(super) fn delete<R: Reply>(ctx: &Context<'_>, m: &Meta<'_>, out: &mut R) -> Flow {
    let w = ctx.worker;
    let f = &m.flags;
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = m.lookup_key(&mut buf);
    ops::log_lookup(ctx, key);
    let action = if f.invalidate {
        DeleteAction::Invalidate {
            deadline: f.ttl.map(|t| ctx.clock.deadline(i64::from(t))),
            cas: f.new_cas,
        }
    } else if f.remove_value {
        DeleteAction::ClearValue { cas: f.new_cas }
    } else {
        DeleteAction::Remove
    };
    let status = match ctx.cache.meta_delete(key, f.compare_cas, action) {
        DeleteOutcome::Done => {
            bump(&w.delete_hits, 1);
            if f.quiet {
                return Flow::Done;
            }
            MetaStatus::Done
        }
        DeleteOutcome::NotFound => {
            bump(&w.delete_misses, 1);
            MetaStatus::NotFound
        }
        DeleteOutcome::Exists => MetaStatus::Exists,
    };
    status_reply(status, m, key, f.base64, out);
    Flow::Done
}

/// `ma`.
pub(super) fn arith<R: Reply>(ctx: &Context<'_>, m: &Meta<'_>, out: &mut R) -> Flow {
    let w = ctx.worker;
    let f = &m.flags;
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = m.lookup_key(&mut buf);
    let incr = !matches!(f.mode, Some(b'D' | b'-'));
    let touch = f.ttl.map(|t| ctx.clock.deadline(i64::from(t)));
    let vivify = f.vivify.map(|t| ctx.clock.deadline(i64::from(t)));
    let opts = ArithOpts {
        compare: f.compare_cas,
        touch,
        cas: f.new_cas,
    };
    ops::log_lookup(ctx, key);
    // memcached acts on T where it stands among the flags: a `t` before it
    // shows the TTL the item had (read here, just before; only a touch by
    // another client in between could make it stale)
    let position = |flag| m.flag_tokens().position(|t| t[0] == flag);
    let old_deadline = match (position(b't'), position(b'T')) {
        (Some(t), Some(touch)) if t < touch => {
            ctx.cache.meta_read(key, false, |it| it.deadline()).1
        }
        _ => None,
    };
    let mut outcome = ctx.cache.meta_incr_decr(key, f.delta, incr, &opts);
    let mut created = false;
    if let (MetaArithOutcome::NotFound, Some(_)) = (outcome, vivify) {
        // a miss with N creates the item holding J (the delta is not
        // applied); memcached makes it without a TTL, then N and T each
        // set theirs where they stand: the later one stays
        let mut digits = Vec::with_capacity(20);
        let _ = write!(digits, "{}", f.initial);
        let deadline = m
            .flag_tokens()
            .filter_map(|t| match t[0] {
                b'N' => vivify,
                b'T' => touch,
                _ => None,
            })
            .last()
            .unwrap_or(0);
        let write = WriteOpts {
            binary_key: f.base64,
            cas: f.new_cas,
            ..WriteOpts::default()
        };
        let (stored, cas) = ctx
            .cache
            .store_with(StoreOp::Add, key, 0, deadline, &digits, &write);
        outcome = match stored {
            StoreOutcome::Stored => {
                created = true;
                MetaArithOutcome::Done {
                    value: f.initial,
                    cas,
                    deadline,
                }
            }
            // someone else created it meanwhile: apply the delta to theirs
            StoreOutcome::NotStored => ctx.cache.meta_incr_decr(key, f.delta, incr, &opts),
            _ => MetaArithOutcome::NoMemory,
        };
    }
    let (hits, misses) = if incr {
        (&w.incr_hits, &w.incr_misses)
    } else {
        (&w.decr_hits, &w.decr_misses)
    };
    let status = match outcome {
        MetaArithOutcome::Done {
            value,
            cas,
            deadline,
        } => {
            bump(hits, 1);
            // quiet hides the success, but not the reply that says an item
            // was created
            if f.quiet && !created {
                return Flow::Done;
            }
            // the value is the number's digits, as the item holds it
            let mut digits = Vec::with_capacity(20);
            let _ = write!(digits, "{}", value);
            let now = ctx.clock.now();
            let cas = if ctx.config.use_cas { cas } else { 0 };
            // as in `mg`, a created item shows its N deadline from N on,
            // and any item its T deadline from T on
            let mut shown = match old_deadline {
                _ if created => 0,
                Some(old) => old,
                None => deadline,
            };
            let mut fields = MetaFields::new();
            for tok in m.flag_tokens() {
                match tok[0] {
                    b'N' if created => shown = vivify.unwrap_or(0),
                    b'T' => shown = touch.unwrap_or(deadline),
                    b't' => fields.push(ttl(shown, now)),
                    b'c' => fields.push(MetaField::Cas(cas)),
                    b'O' => fields.push(MetaField::Opaque(tok)),
                    b'k' => fields.push(MetaField::Key {
                        key,
                        binary: f.base64,
                    }),
                    _ => {}
                }
            }
            out.meta(&MetaReply {
                status: MetaStatus::Done,
                fields: fields.as_slice(),
                value: f.value.then_some(&digits[..]),
            });
            return Flow::Done;
        }
        MetaArithOutcome::NotFound => {
            bump(misses, 1);
            if f.vivify.is_some() {
                MetaStatus::NotStored
            } else {
                MetaStatus::NotFound
            }
        }
        MetaArithOutcome::Exists => MetaStatus::Exists,
        MetaArithOutcome::NonNumeric => {
            return reply(false, &Response::Failure(Failure::NonNumeric), out);
        }
        MetaArithOutcome::NoMemory if f.vivify.is_some() => MetaStatus::NotStored,
        MetaArithOutcome::NoMemory => {
            return reply(false, &Response::Failure(Failure::NoMemory), out);
        }
    };
    status_reply(status, m, key, f.base64, out);
    Flow::Done
}

/// `me`: memcached's debug line (see [`Response::MetaDebug`]), or a miss.
/// The item is not read (no bump, no fetched mark).
pub(super) fn debug<R: Reply>(
    ctx: &Context<'_>,
    key: &[u8],
    base64_key: bool,
    out: &mut R,
) -> Flow {
    let mut buf = [0u8; base64::MAX_DECODED];
    let key = meta::lookup_key(key, base64_key, &mut buf);
    match ctx.cache.item_meta(key) {
        Some(meta) => {
            let item = ItemInfo {
                key,
                binary_key: meta.binary_key,
                ..ops::item_info(key, &meta, ctx.config.use_cas)
            };
            out.respond(&Response::MetaDebug(&item));
        }
        None => out.meta(&MetaReply {
            status: MetaStatus::Miss,
            fields: &[],
            value: None,
        }),
    }
    Flow::Done
}

/// A reply that is only a status and the flags every meta reply echoes
/// whatever its status: `O` and `k`.
fn status_reply<R: Reply>(status: MetaStatus, m: &Meta<'_>, key: &[u8], binary: bool, out: &mut R) {
    let mut fields = MetaFields::new();
    for tok in m.flag_tokens() {
        match tok[0] {
            b'O' => fields.push(MetaField::Opaque(tok)),
            b'k' => fields.push(MetaField::Key { key, binary }),
            _ => {}
        }
    }
    out.meta(&MetaReply {
        status,
        fields: fields.as_slice(),
        value: None,
    });
}

/// `t`: seconds left, none for never; as memcached, a deadline already past
/// wraps around as an unsigned 32-bit number.
fn ttl(deadline: Secs, now: Secs) -> MetaField<'static> {
    if deadline == 0 {
        MetaField::Ttl(None)
    } else {
        MetaField::Ttl(Some(deadline.wrapping_sub(now)))
    }
}
