"""pylibmc (libmemcached) with binary=True, and SASL when USER and PASSWORD
are given: every call checked.
usage: python3 pylibmc_binary.py HOST:PORT [USER PASSWORD]"""
import sys

import pylibmc

kw = {"binary": True}
if len(sys.argv) > 2:
    kw.update(username=sys.argv[2], password=sys.argv[3])
mc = pylibmc.Client([sys.argv[1]], **kw)
mc.behaviors = {"cas": True, "tcp_nodelay": True, "connect_timeout": 2000, "receive_timeout": 2000000,
                "send_timeout": 2000000}
fails = 0


def check(what, got, want):
    global fails
    if got != want:
        fails += 1
        print(f"FAIL {what}: got {got!r}, want {want!r}", file=sys.stderr)


check("flush first", mc.flush_all(), True)
check("set", mc.set("k", "v1"), True)
check("get", mc.get("k"), "v1")
check("add existing", mc.add("k", "x"), False)
check("add new", mc.add("k2", "v2"), True)
check("replace", mc.replace("k2", "v3"), True)
try:
    mc.replace("nope", "x")
    check("replace missing raises", False, True)
except pylibmc.NotFound:
    pass
check("append", mc.append("k", "+a"), True)
check("prepend", mc.prepend("k", "p+"), True)
check("get joined", mc.get("k"), "p+v1+a")
check("set int", mc.set("n", 5), True)
check("incr", mc.incr("n", 10), 15)
check("decr", mc.decr("n", 100), 0)
try:
    mc.incr("none", 1)
    check("incr missing raises", False, True)
except pylibmc.NotFound:
    pass
val, cas = mc.gets("k")
check("gets", val, "p+v1+a")
check("cas", mc.cas("k", "swapped", cas), True)
check("cas stale", mc.cas("k", "again", cas), False)
check("get_multi", mc.get_multi(["k", "k2", "nope"]), {"k": "swapped", "k2": "v3"})
check("set_multi", mc.set_multi({"m1": "a", "m2": b"b"}), [])
check("delete", mc.delete("k2"), True)
check("delete missing", mc.delete("k2"), False)
check("get missing", mc.get("k2"), None)
check("touch", mc.touch("k", 100), True)
big = "b" * 300000
check("set big", mc.set("big", big), True)
check("get big", mc.get("big"), big)
stats = mc.get_stats()
check("stats", len(stats) == 1 and b"curr_items" in stats[0][1] or "curr_items" in stats[0][1], True)
check("flush", mc.flush_all(), True)
check("get flushed", mc.get("m1"), None)
if fails:
    sys.exit(1)
print("all pylibmc binary checks passed")
