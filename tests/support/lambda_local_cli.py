"""`faasdag lambda-local` as a person starts it: a subprocess that prints its endpoint."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def lambda_local(*paths: str, memory_mb: int = 1024, timeout_s: float = 30.0) -> Iterator[str]:
    """Run `faasdag lambda-local` (this environment, the project and `paths` on its
    PYTHONPATH); yields its endpoint URL and stops it at the end."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *paths])}
    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "lambda-local", "--port", "0",
         "--memory", str(memory_mb)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        endpoint = None
        deadline = time.monotonic() + timeout_s
        while endpoint is None and time.monotonic() < deadline:
            found = re.search(r"(http://\S+)", server.stdout.readline())
            endpoint = found.group(1) if found else None
        assert endpoint, "the emulator did not print its endpoint"
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)
