#!/usr/bin/python3
"""Drive a memcached-compatible server through pymemcache and check every reply.

Usage: pymemcache_roundtrip.py HOST:PORT HOST:PORT HOST:PORT

The first server gets the single-client checks; all three together back a
HashClient. Every server must have been started with `-m 64 -t 2` and be
empty. Each check group runs even when an earlier one failed; every mismatch
is printed, and the exit status is 1 if there was any (0 otherwise).

Run it with Debian's /usr/bin/python3 (package python3-pymemcache).
"""

import sys
import traceback

from pymemcache import exceptions as mcexc
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.serde import PickleSerde

FAILURES = []
TIMEOUTS = {"connect_timeout": 5, "timeout": 10}


def fail(msg):
    FAILURES.append(msg)
    print("MISMATCH: " + msg, flush=True)


def eq(got, want, what):
    if got == want:
        return
    if isinstance(got, dict) and isinstance(want, dict):
        fail("%s: %s" % (what, dict_diff(got, want)))
    else:
        fail("%s: got %r, want %r" % (what, short(got), short(want)))


def dict_diff(got, want):
    """Name the keys that differ instead of printing two huge dicts."""
    missing = sorted(k for k in want if k not in got)
    extra = sorted(k for k in got if k not in want)
    wrong = sorted(k for k in want if k in got and got[k] != want[k])
    parts = []
    for label, keys in [("missing", missing), ("unexpected", extra), ("wrong value", wrong)]:
        if keys:
            shown = ", ".join(str(k) for k in keys[:5])
            more = " and %d more" % (len(keys) - 5) if len(keys) > 5 else ""
            parts.append("%d %s (%s%s)" % (len(keys), label, shown, more))
    return "; ".join(parts)


def short(v):
    """Keep messages readable when a value is hundreds of KiB long."""
    if isinstance(v, (bytes, str)) and len(v) > 80:
        return "%r...(%d bytes)" % (v[:40], len(v))
    return v


def raises(exc_type, fn, what):
    try:
        got = fn()
    except exc_type as e:
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong kind, go on
        fail("%s: raised %s(%s), want %s" % (what, type(e).__name__, e, exc_type.__name__))
        return None
    fail("%s: returned %r, want %s raised" % (what, short(got), exc_type.__name__))
    return None


class FlagsSerde:
    """Stores bytes as given and hands back (value, flags), so flags are visible."""

    def __init__(self):
        self.next_flags = 0

    def serialize(self, key, value):
        return value, self.next_flags

    def deserialize(self, key, value, flags):
        return value, flags


def client(server, **kw):
    args = dict(TIMEOUTS)
    args["default_noreply"] = False
    args.update(kw)
    return Client(server, **args)


def parse(spec):
    host, port = spec.rsplit(":", 1)
    return (host, int(port))


# Values a text protocol is most likely to mangle: every byte value, protocol
# terminators inside the data, an empty value, and a large one.
ALL_BYTES = bytes(range(256)) * 4
TRICKY = b"line\r\nEND\r\nVALUE other 0 5\r\nSTORED\r\n\x00\r"
LARGE = bytes((i * 7 + 3) % 256 for i in range(512 * 1024))


def check_version_and_flush(c):
    v = c.version()
    if not v or any(ch in v for ch in b" \r\n"):
        fail("version: %r is empty or has whitespace" % v)
    eq(c.stats()[b"version"], v, "stats version equals version command")
    eq(c.flush_all(), True, "flush_all")


def check_set_get(c):
    for name, value in [("allbytes", ALL_BYTES), ("tricky", TRICKY),
                        ("empty", b""), ("large", LARGE)]:
        eq(c.set("bin:" + name, value), True, "set bin:%s" % name)
        eq(c.get("bin:" + name), value, "get bin:%s" % name)
    eq(c.get("bin:missing"), None, "get of a missing key")
    eq(c.get("bin:missing", default=b"dflt"), b"dflt", "get default on miss")
    eq(c.set("bin:allbytes", b"second"), True, "set overwrites")
    eq(c.get("bin:allbytes"), b"second", "get after overwrite")
    k250 = "k" * 250
    eq(c.set(k250, b"longest key"), True, "set 250-byte key")
    eq(c.get(k250), b"longest key", "get 250-byte key")
    eq(c.set("exp:past", b"v", expire=-1), True, "set with negative exptime")
    eq(c.get("exp:past"), None, "negative exptime expires at once")
    eq(c.set("exp:future", b"v", expire=3600), True, "set with exptime 3600")
    eq(c.get("exp:future"), b"v", "exptime 3600 still live")


def check_flags(server):
    serde = FlagsSerde()
    c = client(server, serde=serde)
    for flags in [0, 1, 12345, 2**31, 2**32 - 1]:
        serde.next_flags = flags
        eq(c.set("flags:%d" % flags, b"f"), True, "set flags %d" % flags)
        eq(c.get("flags:%d" % flags), (b"f", flags), "flags %d round-trip" % flags)
    # append/prepend keep the item's flags, whatever flags they send.
    serde.next_flags = 42
    c.set("flags:keep", b"mid")
    serde.next_flags = 7
    eq(c.append("flags:keep", b">"), True, "append")
    eq(c.prepend("flags:keep", b"<"), True, "prepend")
    eq(c.get("flags:keep"), (b"<mid>", 42), "append/prepend keep flags")
    c.close()
    # pymemcache's own serializer marks types in the flags.
    p = client(server, serde=PickleSerde())
    obj = {"list": [1, 2, 3], "text": "héllo", "bytes": b"\x00\xff"}
    eq(p.set("pickle:obj", obj), True, "set pickled object")
    eq(p.get("pickle:obj"), obj, "get pickled object")
    eq(p.set("pickle:int", 41), True, "set int")
    eq(p.incr("pickle:int", 1), 42, "incr a stored int")
    eq(p.get("pickle:int"), 42, "get int after incr")
    eq(p.set("pickle:text", "ünïcode"), True, "set text")
    eq(p.get("pickle:text"), "ünïcode", "get text")
    p.close()


def check_get_many_gets_cas(c):
    present = {"many:%d" % i: ("v%d" % i).encode() * (i + 1) for i in range(0, 40, 2)}
    for k, v in present.items():
        c.set(k, v)
    asked = ["many:%d" % i for i in range(40)]
    eq(c.get_many(asked), present, "get_many returns exactly the present keys")
    eq(c.get_many([]), {}, "get_many of nothing")

    c.set("cas:a", b"one")
    c.set("cas:b", b"one")
    va, ca = c.gets("cas:a")
    vb, cb = c.gets("cas:b")
    eq(va, b"one", "gets value")
    if not ca.isdigit() or not cb.isdigit():
        fail("gets: cas tokens %r %r are not decimal" % (ca, cb))
    if ca == cb:
        fail("gets: two items share cas %r" % ca)
    eq(c.gets("cas:missing"), (None, None), "gets of a missing key")
    many = c.gets_many(["cas:a", "cas:b", "cas:missing"])
    eq(many, {"cas:a": (b"one", ca), "cas:b": (b"one", cb)}, "gets_many")
    eq(c.cas("cas:a", b"two", ca), True, "cas with current token")
    eq(c.get("cas:a"), b"two", "value after cas")
    eq(c.cas("cas:a", b"three", ca), False, "cas with stale token (EXISTS)")
    eq(c.get("cas:a"), b"two", "stale cas leaves the value")
    eq(c.cas("cas:missing", b"x", ca), None, "cas on a missing key (NOT_FOUND)")
    _, ca2 = c.gets("cas:a")
    if ca2 == ca:
        fail("cas token did not change after a cas store")
    c.set("cas:a", b"plain set")
    _, ca3 = c.gets("cas:a")
    if ca3 == ca2:
        fail("cas token did not change after a set")
    eq(c.cas("cas:a", b"late", ca2), False, "cas after an intervening set")


def check_add_replace_append_prepend(c):
    eq(c.add("arp:k", b"first"), True, "add a new key")
    eq(c.add("arp:k", b"second"), False, "add an existing key")
    eq(c.get("arp:k"), b"first", "add did not overwrite")
    eq(c.replace("arp:missing", b"x"), False, "replace a missing key")
    eq(c.get("arp:missing"), None, "replace did not create")
    eq(c.replace("arp:k", b"replaced"), True, "replace an existing key")
    eq(c.get("arp:k"), b"replaced", "value after replace")
    eq(c.append("arp:k", b"\r\n+tail"), True, "append")
    eq(c.prepend("arp:k", b"head+\x00"), True, "prepend")
    eq(c.get("arp:k"), b"head+\x00replaced\r\n+tail", "value after append/prepend")
    eq(c.append("arp:missing", b"x"), False, "append to a missing key")
    eq(c.prepend("arp:missing", b"x"), False, "prepend to a missing key")
    eq(c.get("arp:missing"), None, "append/prepend did not create")


def check_incr_decr(c):
    c.set("num:a", b"10")
    eq(c.incr("num:a", 5), 15, "incr")
    eq(c.decr("num:a", 3), 12, "decr")
    eq(c.decr("num:a", 100), 0, "decr floors at 0")
    eq(c.incr("num:missing", 1), None, "incr a missing key")
    eq(c.decr("num:missing", 1), None, "decr a missing key")
    c.set("num:max", b"18446744073709551615")
    eq(c.incr("num:max", 2), 1, "incr wraps at 2^64")
    c.set("num:wide", b"100")
    eq(c.decr("num:wide", 1), 99, "decr 100 by 1")
    # memcached rewrites a shrinking number in place, space-padded.
    eq(c.get("num:wide"), b"99 ", "decr result keeps the item length")
    c.set("num:grow", b"99")
    eq(c.incr("num:grow", 1), 100, "incr 99 by 1")
    eq(c.get("num:grow"), b"100", "incr result grows the item")
    c.set("num:text", b"abc")
    raises(mcexc.MemcacheClientError, lambda: c.incr("num:text", 1),
           "incr of a non-numeric value")
    raises(mcexc.MemcacheClientError, lambda: c.incr("num:a", 2**64),
           "incr by more than 64 bits")
    eq(c.incr("num:a", 7), 7, "connection usable after CLIENT_ERROR")


def check_delete_touch(c):
    c.set("del:k", b"v")
    eq(c.delete("del:k"), True, "delete an existing key")
    eq(c.get("del:k"), None, "get after delete")
    eq(c.delete("del:k"), False, "delete a missing key")
    c.set("touch:k", b"v")
    eq(c.touch("touch:k", 3600), True, "touch an existing key")
    eq(c.get("touch:k"), b"v", "touch keeps the value")
    eq(c.touch("touch:missing", 10), False, "touch a missing key")
    eq(c.touch("touch:k", -1), True, "touch with negative exptime")
    eq(c.get("touch:k"), None, "negative touch expires at once")


def check_too_large(c):
    c.set("big:set", b"small")
    raises(mcexc.MemcacheServerError, lambda: c.set("big:set", b"x" * (2 * 1024 * 1024)),
           "set over the 1 MiB item limit")
    # memcached drops the old value when a set fails, so no stale data stays.
    eq(c.get("big:set"), None, "failed oversized set removes the old item")
    c.set("big:add", b"small")
    raises(mcexc.MemcacheServerError, lambda: c.add("big:add", b"x" * (2 * 1024 * 1024)),
           "add over the 1 MiB item limit")
    eq(c.get("big:add"), b"small", "failed oversized add keeps the old item")


def check_keys_rejected_client_side(c, server):
    for key, what in [("ключ", "unicode key"), ("has space", "key with a space"),
                      ("k" * 251, "251-byte key"), ("nul\x00", "key with NUL")]:
        raises(mcexc.MemcacheIllegalInputError, lambda k=key: c.set(k, b"v"),
               "%s rejected by the client" % what)
    # The server itself takes any non-whitespace bytes as a key.
    u = client(server, allow_unicode_keys=True)
    eq(u.set("ключ", b"unicode"), True, "set a UTF-8 key")
    eq(u.get("ключ"), b"unicode", "get a UTF-8 key")
    u.close()


def check_noreply(server):
    # One connection throughout: a reply sent to a noreply command would be
    # read as the answer to the next command and show up as a mismatch.
    n = client(server, default_noreply=True)
    v = client(server)
    eq(n.set("nr:k", b"v1"), True, "set noreply")
    eq(n.get("nr:k"), b"v1", "get after set noreply")
    n.add("nr:k", b"not stored")
    n.add("nr:new", b"added")
    n.replace("nr:k", b"v2")
    n.replace("nr:missing", b"nope")
    eq(n.get_many(["nr:k", "nr:new", "nr:missing"]),
       {"nr:k": b"v2", "nr:new": b"added"}, "after add/replace noreply")
    n.append("nr:k", b"+a")
    n.prepend("nr:k", b"p+")
    eq(n.get("nr:k"), b"p+v2+a", "after append/prepend noreply")
    _, token = n.gets("nr:k")
    n.cas("nr:k", b"cas1", token, noreply=True)
    n.cas("nr:k", b"cas2", token, noreply=True)
    eq(n.get("nr:k"), b"cas1", "after cas noreply (second one stale)")
    n.set("nr:n", b"5")
    eq(n.incr("nr:n", 10, noreply=True), None, "incr noreply returns None")
    eq(n.decr("nr:n", 3, noreply=True), None, "decr noreply returns None")
    eq(n.get("nr:n"), b"12", "after incr/decr noreply")
    n.delete("nr:new")
    n.delete("nr:missing")
    eq(n.get("nr:new"), None, "after delete noreply")
    n.touch("nr:k", -1)
    n.touch("nr:missing", 10)
    eq(n.get("nr:k"), None, "after touch noreply")
    eq(v.get("nr:n"), b"12", "second connection sees the same data")
    n.set("nr:flush", b"x")
    n.flush_all()
    eq(n.get("nr:flush"), None, "after flush_all noreply")
    eq(n.version() != b"", True, "connection still in step after noreplies")
    n.close()
    v.close()


def check_stats(c):
    c.flush_all()
    before = c.stats()
    for name in [b"pid", b"uptime", b"time", b"version", b"curr_connections",
                 b"total_connections", b"cmd_get", b"cmd_set", b"get_hits",
                 b"get_misses", b"curr_items", b"total_items", b"bytes",
                 b"limit_maxbytes", b"threads", b"evictions"]:
        if name not in before:
            fail("stats: %s missing" % name.decode())
    eq(before.get(b"limit_maxbytes"), 64 * 1024 * 1024, "stats limit_maxbytes for -m 64")
    eq(before.get(b"threads"), 2, "stats threads for -t 2")
    c.set("st:a", b"1")
    c.set("st:b", b"2")
    c.set("st:c", b"3")
    c.get_many(["st:a", "st:b", "st:nope"])
    c.get("st:c")
    c.delete("st:c")
    after = c.stats()

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    eq(delta(b"cmd_set"), 3, "stats cmd_set delta")
    eq(delta(b"cmd_get"), 4, "stats cmd_get delta (counts keys)")
    eq(delta(b"get_hits"), 3, "stats get_hits delta")
    eq(delta(b"get_misses"), 1, "stats get_misses delta")
    eq(delta(b"delete_hits"), 1, "stats delete_hits delta")
    eq(delta(b"total_items"), 3, "stats total_items delta")
    settings = c.stats("settings")
    eq(settings.get(b"maxbytes"), 64 * 1024 * 1024, "stats settings maxbytes")
    eq(settings.get(b"item_size_max"), 1024 * 1024, "stats settings item_size_max")
    eq(settings.get(b"num_threads"), 2, "stats settings num_threads")


def check_hash_client(servers):
    for s in servers:
        f = client(s)
        f.flush_all()
        f.close()
    h = HashClient(servers, default_noreply=False, **TIMEOUTS)
    data = {"ring:%03d" % i: ("value-%d-" % i).encode() * (i % 9 + 1) for i in range(300)}
    eq(h.set_many(data), [], "HashClient set_many failed keys")
    eq(h.get_many(list(data)), data, "HashClient get_many reads everything back")
    for k in ["ring:000", "ring:150", "ring:299"]:
        eq(h.get(k), data[k], "HashClient get %s" % k)
    seen = {}
    for s in servers:
        d = client(s)
        got = d.get_many(list(data))
        d.close()
        if not got:
            fail("HashClient put no keys on %s:%d" % s)
        for k, v in got.items():
            if k in seen:
                fail("key %s on both %s and %s" % (k, seen[k], s))
            seen[k] = s
            eq(v, data[k], "direct read of %s from %s:%d" % (k, s[0], s[1]))
    eq(len(seen), len(data), "every key on exactly one node")
    eq(h.delete("ring:000"), True, "HashClient delete")
    eq(h.get("ring:000"), None, "HashClient get after delete")
    eq(h.incr("ring:missing", 1), None, "HashClient incr missing")
    h.set("ring:n", b"1")
    eq(h.incr("ring:n", 41), 42, "HashClient incr")
    h.close()


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    servers = [parse(a) for a in argv[1:]]
    first = servers[0]
    c = client(first)
    groups = [
        ("version/flush_all", lambda: check_version_and_flush(c)),
        ("set/get", lambda: check_set_get(c)),
        ("flags", lambda: check_flags(first)),
        ("get_many/gets/cas", lambda: check_get_many_gets_cas(c)),
        ("add/replace/append/prepend", lambda: check_add_replace_append_prepend(c)),
        ("incr/decr", lambda: check_incr_decr(c)),
        ("delete/touch", lambda: check_delete_touch(c)),
        ("too large", lambda: check_too_large(c)),
        ("keys", lambda: check_keys_rejected_client_side(c, first)),
        ("noreply", lambda: check_noreply(first)),
        ("stats", lambda: check_stats(c)),
        ("HashClient", lambda: check_hash_client(servers)),
    ]
    for name, run in groups:
        before = len(FAILURES)
        try:
            run()
        except Exception:  # noqa: BLE001 - one broken group must not hide the rest
            fail("%s: unexpected exception\n%s" % (name, traceback.format_exc()))
            c.close()  # reconnects on next use
        status = "ok" if len(FAILURES) == before else "FAILED"
        print("%-28s %s" % (name, status), flush=True)
    if FAILURES:
        print("%d mismatch(es)" % len(FAILURES), flush=True)
        return 1
    print("all pymemcache checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
