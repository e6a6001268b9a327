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
