"""pymemcache HashClient over three nodes, one of which dies.

Usage: hashclient_failover.py PID_OF_THIRD_NODE HOST:PORT HOST:PORT HOST:PORT

Builds its client with cache_client() from pymemcache_hashclient.py, the
snippet docs/scale-out.md shows. Spreads keys over the three nodes and reads
them back; then kills the third node (SIGKILL to the given pid) and checks that
the client keeps serving: keys on the other two still hit, the dead node's
keys read as misses instead of raising, and once the client has dropped the
dead node, writes of old and new keys succeed on the survivors.

Driven by tests/scaleout.rs. Prints one line per check group and exits 1 on
any mismatch.
"""

import os
import signal
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pymemcache.client.base import Client  # noqa: E402

from pymemcache_hashclient import cache_client  # noqa: E402

NOTICE_DEATH = 30.0  # seconds; generous for a loaded machine
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("MISMATCH: " + msg, flush=True)


def eq(got, want, what):
    if got != want:
        fail("%s: got %r, want %r" % (what, got, want))


def parse(spec):
    host, port = spec.rsplit(":", 1)
    return (host, int(port))


def direct(server):
    return Client(server, connect_timeout=5, timeout=5, default_noreply=False)


def value_of(key):
    return ("value of %s" % key).encode()


def placement(servers, keys):
    """{key: index of the node holding it}, read from each node directly."""
    at = {}
    for i, s in enumerate(servers):
        d = direct(s)
        for start in range(0, len(keys), 100):
            for k in d.get_many(keys[start:start + 100]):
                if k in at:
                    fail("%s is on node %d and on node %d" % (k, at[k], i))
                at[k] = i
        d.close()
    return at


def refuses(server):
    try:
        socket.create_connection(server, timeout=2).close()
        return False
    except OSError:
        return True


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    pid = int(argv[1])
    servers = [parse(a) for a in argv[2:]]
    dead = 2
    h = cache_client(servers)

    # Three live nodes: every key on exactly one node, each node a fair share.
    keys = ["user:%d" % i for i in range(300)]
    eq(h.set_many({k: value_of(k) for k in keys}), [], "set_many failed keys")
    eq(h.get_many(keys), {k: value_of(k) for k in keys}, "get_many reads everything back")
    at = placement(servers, keys)
    eq(len(at), len(keys), "every key on exactly one node")
    for i in range(3):
        n = sum(1 for k in at if at[k] == i)
        if not 0.15 * len(keys) <= n <= 0.55 * len(keys):
            fail("node %d holds %d of %d keys, want 15%%..55%%" % (i, n, len(keys)))
    print("spread over three nodes: ok", flush=True)

    # Kill the third node, for real.
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + NOTICE_DEATH
    while not refuses(servers[dead]):
        if time.time() > deadline:
            fail("node %s:%d still accepts connections after SIGKILL" % servers[dead])
            return 1
        time.sleep(0.05)
    dead_keys = [k for k in keys if at.get(k) == dead]
    live_keys = [k for k in keys if at.get(k) not in (None, dead)]

    # The survivors' keys still hit: the client never asks the dead node.
    for k in live_keys:
        eq(h.get(k), value_of(k), "get %s (on a surviving node)" % k)
    # The dead node's keys: misses, not exceptions (ignore_exc).
    for k in dead_keys[:5]:
        eq(h.get(k), None, "get %s (on the dead node)" % k)
    print("reads after the kill: ok", flush=True)

    # Writes to a dead node's key fail softly until the client drops the
    # node (retry_attempts, retry_timeout); then they go to a survivor.
    probe = dead_keys[0]
    attempts = []
    deadline = time.time() + NOTICE_DEATH
    while True:
        ok = h.set(probe, value_of(probe))
        attempts.append(ok)
        if ok is True:
            break
        if time.time() > deadline:
            fail("set %s still fails %.0f s after its node died: %r"
                 % (probe, NOTICE_DEATH, attempts[-5:]))
            return 1
        time.sleep(0.1)
    print("dropped the dead node after %d failed set(s)" % (len(attempts) - 1), flush=True)

    new_keys = ["after:%d" % i for i in range(100)]
    rewritten = dead_keys + new_keys
    eq(h.set_many({k: value_of(k) for k in rewritten}), [], "set_many after the kill")
    eq(h.get_many(rewritten), {k: value_of(k) for k in rewritten},
       "get_many of keys written after the kill")
    now_at = placement(servers[:dead], rewritten)
    eq(len(now_at), len(rewritten), "keys written after the kill are on the survivors")
    eq(sorted(set(now_at.values())), [0, 1], "both survivors take keys")
    # Rendezvous hashing: the survivors' own keys did not move.
    still = placement(servers[:dead], live_keys)
    for k in live_keys:
        eq(still.get(k), at[k], "%s stays on its node" % k)
    eq(h.get_many(live_keys), {k: value_of(k) for k in live_keys},
       "get_many of the survivors' keys")
    h.set("counter", b"41")
    eq(h.incr("counter", 1), 42, "incr after the kill")
    eq(h.delete("counter"), True, "delete after the kill")
    eq(h.get("counter"), None, "get after delete")
    print("writes after the kill: ok", flush=True)

    if FAILURES:
        print("%d mismatch(es)" % len(FAILURES), flush=True)
        return 1
    print("all HashClient checks passed", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception:  # noqa: BLE001 - report, fail
        traceback.print_exc()
        print("MISMATCH: unexpected exception", flush=True)
        sys.exit(1)
