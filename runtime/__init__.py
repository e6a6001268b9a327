"""The real executor: Redis storage, the AWS Lambda backend and its local emulator, and the
client API that runs a plan for real.

Names are imported lazily so a Lambda worker's cold start loads only what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run": "runtime.client",
    "RunResult": "runtime.client",
    "flexible_plan": "runtime.client",
    "RemoteTaskError": "runtime.errors",
    "TaskFailure": "runtime.errors",
    "WorkerLost": "runtime.errors",
    "RedisStore": "runtime.store",
    "StoreLost": "runtime.errors",
    "connect": "runtime.store",
    "cleanup": "runtime.store",
    "RedisDriver": "runtime.redis_driver",
    "LambdaBackend": "runtime.lambda_backend",
    "LocalBackend": "runtime.backends",
    "LambdaEmulator": "runtime.lambda_local",
    "run_in_process": "runtime.inprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
