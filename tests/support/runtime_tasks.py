"""Task functions for runtime tests, importable by worker processes (tests/support is on their
PYTHONPATH)."""

from __future__ import annotations

import os
import time

import numpy as np

from dag.lang import task


@task
def number(value: int) -> int:
    return value


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def nothing(_: object = None) -> None:
    return None


@task
def is_none(value: object) -> bool:
    return value is None


@task
def explode(value: int) -> int:
    raise ZeroDivisionError(f"boom on {value}")


@task
def big_array(n_bytes: int) -> np.ndarray:
    return np.arange(n_bytes // 8, dtype=np.float64)


@task
def checksum(array: np.ndarray) -> float:
    return float(array.sum())


@task
def slow(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


@task
def pid(_: object = None) -> int:
    return os.getpid()


@task
def freeze_once(value: int, marker: str, seconds: float) -> int:
    """The first time: the worker goes silent (its heartbeat stops, as when its process is
    frozen or cut off) for `seconds`, then returns; later calls return at once. A local-thread
    worker's only way to 'die' and come back: its late writes must be refused."""
    import threading
    from pathlib import Path

    from runtime.liveness import heartbeats

    if not Path(marker).exists():
        Path(marker).write_text("frozen")
        me = threading.current_thread().name  # the local backend names threads by worker id
        beats = heartbeats()
        with beats._lock:
            for token, (store, _ttl, _due) in list(beats._beats.items()):
                if store.writer and store.writer[0] == me:
                    del beats._beats[token]
        time.sleep(seconds)
    return value
