from pymemcache.client.hash import HashClient


def cache_client(servers):
    """servers: [("127.0.0.1", 11211), ("127.0.0.1", 11212), ...]"""
    return HashClient(
        servers,
        connect_timeout=1.0,
        timeout=1.0,
        # A dead node reads as a miss and a write to it returns False,
        # instead of raising.
        ignore_exc=True,
        # After 2 failed retries, 1 s apart, the node leaves the ring (its
        # keys rehash to the others) for 60 s, then it is tried again.
        retry_attempts=2,
        retry_timeout=1,
        dead_timeout=60,
        # Wait for STORED/NOT_STORED, so set() reports failures.
        default_noreply=False,
    )
