"""pymemcache over TLS: a client with an ssl.SSLContext that trusts the test
CA (and presents a client certificate when given one) stores, reads,
counts and deletes through the server at HOST:PORT, then prints OK.

usage: pymemcache_tls.py PORT CA [CERT KEY]
"""
import ssl
import sys

from pymemcache.client.base import Client


def main():
    port, ca = int(sys.argv[1]), sys.argv[2]
    ctx = ssl.create_default_context(cafile=ca)
    if len(sys.argv) > 4:
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    client = Client(("127.0.0.1", port), tls_context=ctx, timeout=5)
    big = bytes(range(256)) * 4096  # 1 MiB minus nothing: binary-safe
    assert client.set("tls:a", b"hello") is True
    assert client.get("tls:a") == b"hello"
    assert client.set("tls:big", big[: 1000 * 1000]) is True
    assert client.get("tls:big") == big[: 1000 * 1000]
    got = client.get_many(["tls:a", "tls:none", "tls:big"])
    assert sorted(got) == ["tls:a", "tls:big"], got
    assert client.set("tls:n", b"41") is True
    assert client.incr("tls:n", 1) == 42
    assert client.delete("tls:a") is True
    assert client.get("tls:a") is None
    client.close()
    print("OK")


if __name__ == "__main__":
    main()
